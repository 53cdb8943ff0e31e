/* test_dns.c — core/net/dns.c on a real libuv loop: the TTL cache (dns_get_stats hits), merged concurrent
 * lookups, IP literals answered at once, failures, cancel, expiry, and freeing the cache while a lookup
 * runs. Names come from /etc/hosts ("localhost") or are reserved to fail (".invalid", RFC 6761). */
#include "dns.h"

#include <arpa/inet.h>
#include <stdlib.h>

#include "unit.h"

struct got {
    struct dns_waiter w;    /* first: the callback finds its struct got from the waiter */
    int calls;
    int status;
    struct dns_addrs *addrs;
};

static void on_dns(struct dns_waiter *w, int status, struct dns_addrs *addrs)
{
    struct got *g = (struct got *)w;
    g->calls++;
    g->status = status;
    g->addrs = addrs;
}

static void got_init(struct got *g)
{
    memset(g, 0, sizeof *g);
    g->w.cb = on_dns;
}

static void got_done(struct got *g)
{
    dns_addrs_unref(g->addrs);
    g->addrs = NULL;
}

static int has_loopback(const struct dns_addrs *a)
{
    for (int i = 0; a && i < a->count; i++) {
        const struct sockaddr_storage *ss = &a->addr[i];
        if (ss->ss_family == AF_INET &&
            ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            return 1;
        if (ss->ss_family == AF_INET6 &&
            IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr))
            return 1;
    }
    return 0;
}

/* Runs the loop until *flag becomes nonzero or 5 s pass. */
static void run_until(uv_loop_t *loop, const int *flag)
{
    uint64_t t0 = uv_hrtime();
    while (!*flag && uv_hrtime() - t0 < 5000000000ull)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_cache_hit(uv_loop_t *loop)
{
    TEST("second lookup from the cache");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got a;
    got_init(&a);
    int err = -1;
    struct dns_addrs *now = dns_resolve(c, "localhost", &a.w, &err);
    CHECK(now == NULL); /* a name is never answered inside the call the first time */
    CHECK_INT(err, 0);
    CHECK_INT(dns_get_stats(c)->lookups, 1);
    CHECK_INT(dns_get_stats(c)->hits, 0);
    CHECK_INT(a.calls, 0);
    run_until(loop, &a.calls);
    CHECK_INT(a.calls, 1);
    CHECK_INT(a.status, 0);
    CHECK(a.addrs && a.addrs->count >= 1);
    CHECK(has_loopback(a.addrs));

    struct got b;
    got_init(&b);
    now = dns_resolve(c, "localhost", &b.w, &err);
    CHECK(now != NULL);
    CHECK_INT(err, 0);
    CHECK(now && a.addrs && now->count == a.addrs->count);
    CHECK(has_loopback(now));
    CHECK_INT(dns_get_stats(c)->lookups, 1);
    CHECK_INT(dns_get_stats(c)->hits, 1);
    CHECK_INT(b.calls, 0); /* answered by the return value, not the callback */
    uv_run(loop, UV_RUN_NOWAIT);
    CHECK_INT(b.calls, 0);
    /* the addresses are unique: getaddrinfo's per-socktype repeats are folded */
    for (int i = 0; now && i < now->count; i++)
        for (int j = i + 1; j < now->count; j++)
            CHECK(memcmp(&now->addr[i], &now->addr[j], sizeof now->addr[i]) != 0);
    dns_addrs_unref(now);
    got_done(&a);

    /* the cache is per name: another name asks again */
    struct got d;
    got_init(&d);
    CHECK(dns_resolve(c, "localhost.", &d.w, &err) == NULL);
    dns_cancel(&d.w);
    CHECK_INT(dns_get_stats(c)->lookups, 2);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(d.calls, 0);
    dns_cache_free(c);
}

static void test_merged(uv_loop_t *loop)
{
    TEST("concurrent lookups of one name are merged");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got g[3];
    int err;
    for (int i = 0; i < 3; i++) {
        got_init(&g[i]);
        CHECK(dns_resolve(c, "localhost", &g[i].w, &err) == NULL);
        CHECK_INT(err, 0);
    }
    CHECK_INT(dns_get_stats(c)->lookups, 1);
    CHECK_INT(dns_get_stats(c)->hits, 2);
    uv_run(loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(g[i].calls, 1);
        CHECK_INT(g[i].status, 0);
        CHECK(has_loopback(g[i].addrs));
        got_done(&g[i]);
    }
    CHECK_INT(dns_get_stats(c)->lookups, 1);
    dns_cache_free(c);
}

static void test_literals(uv_loop_t *loop)
{
    TEST("IP literals are answered at once");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got g;
    got_init(&g);
    int err = -1;
    struct dns_addrs *a = dns_resolve(c, "127.0.0.1", &g.w, &err);
    CHECK(a != NULL);
    CHECK_INT(err, 0);
    CHECK(a && a->count == 1 && a->addr[0].ss_family == AF_INET);
    CHECK(has_loopback(a));
    dns_addrs_unref(a);
    a = dns_resolve(c, "::1", &g.w, &err);
    CHECK(a && a->count == 1 && a->addr[0].ss_family == AF_INET6);
    CHECK(has_loopback(a));
    dns_addrs_unref(a);
    a = dns_resolve(c, "192.0.2.7", &g.w, &err);
    CHECK(a && a->count == 1 && ((struct sockaddr_in *)&a->addr[0])->sin_addr.s_addr == inet_addr("192.0.2.7"));
    dns_addrs_unref(a);
    CHECK_INT(dns_get_stats(c)->lookups, 0);
    uv_run(loop, UV_RUN_NOWAIT);
    CHECK_INT(g.calls, 0);
    dns_cache_free(c);
}

static void test_failure(uv_loop_t *loop)
{
    TEST("a name that does not exist fails");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got g;
    got_init(&g);
    int err;
    CHECK(dns_resolve(c, "nonexistent.invalid", &g.w, &err) == NULL);
    run_until(loop, &g.calls);
    CHECK_INT(g.calls, 1);
    CHECK(g.status < 0);
    CHECK(g.addrs == NULL);
    /* a failure is not cached as a success: the next call asks again or fails again, never
     * returns addresses */
    struct got h;
    got_init(&h);
    struct dns_addrs *a = dns_resolve(c, "nonexistent.invalid", &h.w, &err);
    CHECK(a == NULL);
    if (!a && !err) {
        run_until(loop, &h.calls);
        CHECK(h.status < 0);
    }
    dns_cache_free(c);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_cancel(uv_loop_t *loop)
{
    TEST("cancel one waiter of a merged lookup");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got a, b, x;
    got_init(&a);
    got_init(&b);
    got_init(&x);
    int err;
    CHECK(dns_resolve(c, "localhost", &a.w, &err) == NULL);
    CHECK(dns_resolve(c, "localhost", &x.w, &err) == NULL);
    CHECK(dns_resolve(c, "localhost", &b.w, &err) == NULL);
    dns_cancel(&x.w);
    dns_cancel(&x.w); /* twice is harmless */
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(a.calls, 1);
    CHECK_INT(b.calls, 1);
    CHECK_INT(x.calls, 0);
    got_done(&a);
    got_done(&b);

    TEST("cancel the only waiter: the answer still fills the cache");
    struct dns_cache *c2 = dns_cache_new(loop, 60);
    struct got y;
    got_init(&y);
    CHECK(dns_resolve(c2, "localhost", &y.w, &err) == NULL);
    dns_cancel(&y.w);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(y.calls, 0);
    struct dns_addrs *hit = dns_resolve(c2, "localhost", &y.w, &err);
    CHECK(hit != NULL);
    CHECK_INT(dns_get_stats(c2)->lookups, 1);
    CHECK_INT(dns_get_stats(c2)->hits, 1);
    dns_addrs_unref(hit);
    dns_cache_free(c2);
    dns_cache_free(c);
}

static void test_waiter_restarts(uv_loop_t *loop)
{
    TEST("a waiter's callback may resolve again");
    /* A callback that starts a lookup of the same name gets a cache hit from inside the callback. */
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got a;
    got_init(&a);
    int err;
    CHECK(dns_resolve(c, "localhost", &a.w, &err) == NULL);
    run_until(loop, &a.calls);
    struct got b;
    got_init(&b);
    struct dns_addrs *again = dns_resolve(c, "localhost", &b.w, &err);
    CHECK(again != NULL);
    dns_addrs_unref(again);
    got_done(&a);
    dns_cache_free(c);
}

static void noop_timer(uv_timer_t *t)
{
    (void)t;
}

static void sleep_ms(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, noop_timer, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_ttl(uv_loop_t *loop)
{
    TEST("entries expire after the TTL");
    struct dns_cache *c = dns_cache_new(loop, 0.05);
    struct got a;
    got_init(&a);
    int err;
    CHECK(dns_resolve(c, "localhost", &a.w, &err) == NULL);
    run_until(loop, &a.calls);
    got_done(&a);
    struct dns_addrs *hit = dns_resolve(c, "localhost", &a.w, &err);
    CHECK(hit != NULL); /* fresh */
    dns_addrs_unref(hit);
    sleep_ms(loop, 80);
    struct got b;
    got_init(&b);
    CHECK(dns_resolve(c, "localhost", &b.w, &err) == NULL); /* expired: asks again */
    CHECK_INT(dns_get_stats(c)->lookups, 2);
    run_until(loop, &b.calls);
    CHECK_INT(b.status, 0);
    got_done(&b);

    dns_cache_free(c);

    TEST("TTL 0 disables the cache");
    c = dns_cache_new(loop, 60);
    dns_set_ttl(c, 0);
    for (int i = 1; i <= 2; i++) {
        struct got d;
        got_init(&d);
        CHECK(dns_resolve(c, "localhost", &d.w, &err) == NULL);
        CHECK_INT(dns_get_stats(c)->lookups, i);
        run_until(loop, &d.calls);
        CHECK_INT(d.status, 0);
        got_done(&d);
    }
    CHECK_INT(dns_get_stats(c)->hits, 0);
    dns_cache_free(c);
}

static void test_free_while_resolving(uv_loop_t *loop)
{
    TEST("freeing the cache while a lookup runs");
    struct dns_cache *c = dns_cache_new(loop, 60);
    struct got a;
    got_init(&a);
    int err;
    CHECK(dns_resolve(c, "localhost", &a.w, &err) == NULL);
    dns_cache_free(c);
    uv_run(loop, UV_RUN_DEFAULT); /* the orphaned lookup ends (or is cancelled) and frees itself */
    CHECK_INT(a.calls, 0);
}

static void test_bounded(uv_loop_t *loop)
{
    TEST("the cache holds at most dns_cache_size names, least recently used dropped first");
    struct dns_cache *c = dns_cache_new(loop, 60);
    dns_set_max_entries(c, 3);
    struct got g;
    got_init(&g);
    int err;
    char name[32];
    for (int i = 1; i <= 10; i++) {
        snprintf(name, sizeof name, "192.0.2.%d", i);
        dns_addrs_unref(dns_resolve(c, name, &g.w, &err));
        CHECK(dns_cache_size(c) <= 3);
    }
    CHECK_INT(dns_cache_size(c), 3);
    /* 192.0.2.8 is the coldest of the three kept; touching it keeps it past two more names */
    dns_addrs_unref(dns_resolve(c, "192.0.2.8", &g.w, &err));
    dns_addrs_unref(dns_resolve(c, "192.0.2.11", &g.w, &err));
    dns_addrs_unref(dns_resolve(c, "192.0.2.12", &g.w, &err));
    CHECK_INT(dns_cache_size(c), 3);
    dns_cache_free(c);
}

static void test_fixed(uv_loop_t *loop)
{
    TEST("fixed addresses answer before DNS, in the order given");
    struct dns_cache *c = dns_cache_new(loop, 60);
    const char *list[] = { "127.0.0.2", "[::1]", "127.0.0.1" };
    struct dns_addrs *fixed = dns_addrs_parse(list, 3);
    CHECK(fixed && fixed->count == 3);
    CHECK_INT(dns_set_fixed(c, "api.example.test", fixed), 0);
    struct got g;
    got_init(&g);
    int err = -1;
    struct dns_addrs *a = dns_resolve(c, "API.example.test", &g.w, &err);
    CHECK(a != NULL && a->count == 3);
    CHECK(a && a->addr[0].ss_family == AF_INET && a->addr[1].ss_family == AF_INET6);
    dns_addrs_unref(a);
    CHECK_INT(dns_get_stats(c)->lookups, 0);
    const char *bad[] = { "127.0.0.1", "localhost" };
    CHECK(dns_addrs_parse(bad, 2) == NULL);
    CHECK_INT(dns_set_fixed(c, "api.example.test", NULL), 0); /* removed: DNS again */
    CHECK(dns_resolve(c, "api.example.test", &g.w, &err) == NULL);
    dns_cancel(&g.w);
    dns_cache_free(c);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_interleave(void)
{
    TEST("addresses alternate families, the first family first (RFC 8305)");
    const char *list[] = { "::1", "::2", "::3", "10.0.0.1", "10.0.0.2" };
    struct dns_addrs *a = dns_addrs_parse(list, 5);
    dns_addrs_interleave(a);
    int want[] = { AF_INET6, AF_INET, AF_INET6, AF_INET, AF_INET6 };
    for (int i = 0; i < 5; i++)
        CHECK_MSG(a->addr[i].ss_family == want[i], "position %d", i);
    /* each family keeps its order */
    CHECK(((struct sockaddr_in *)&a->addr[1])->sin_addr.s_addr == inet_addr("10.0.0.1"));
    CHECK(((struct sockaddr_in *)&a->addr[3])->sin_addr.s_addr == inet_addr("10.0.0.2"));
    dns_addrs_unref(a);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_cache_hit(&loop);
    test_merged(&loop);
    test_literals(&loop);
    test_failure(&loop);
    test_cancel(&loop);
    test_waiter_restarts(&loop);
    test_ttl(&loop);
    test_free_while_resolving(&loop);
    test_bounded(&loop);
    test_fixed(&loop);
    test_interleave();
    TEST("loop closes cleanly");
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    return unit_summary();
}
