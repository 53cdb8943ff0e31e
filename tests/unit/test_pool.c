/* test_pool.c — pool keys (core/net/pool.c): scheme/host/port, every TLS option of trust changes an
 * https key, '|' and '\' in paths cannot make two keys collide; an empty pool on a real loop. */
#include "pool.h"

#include <stdlib.h>

#include "unit.h"

/* The key as a malloc'd string (caller frees). */
static char *key(int https, const char *host, int port, const struct tls_options *tls)
{
    struct buf b = {0};
    CHECK(pool_key(&b, https, host, port, tls) == 0);
    char *s = strdup(b.data ? b.data : "");
    buf_free(&b);
    return s;
}

static struct tls_options opts(int verify, const char *ca, const char *cert, const char *keyf, const char *host)
{
    struct tls_options o = { .verify = verify, .ca_file = ca, .cert_file = cert, .key_file = keyf, .host = host, .port = 443 };
    return o;
}

#define SAME(a, b)                                                                                  \
    do {                                                                                            \
        char *x_ = (a), *y_ = (b);                                                                  \
        CHECK_MSG(strcmp(x_, y_) == 0, "keys differ: \"%s\" vs \"%s\"", x_, y_);                    \
        free(x_);                                                                                   \
        free(y_);                                                                                   \
    } while (0)

#define DIFFERENT(a, b)                                                                             \
    do {                                                                                            \
        char *x_ = (a), *y_ = (b);                                                                  \
        CHECK_MSG(strcmp(x_, y_) != 0, "keys collide: \"%s\"", x_);                                 \
        free(x_);                                                                                   \
        free(y_);                                                                                   \
    } while (0)

static void test_plain(void)
{
    TEST("scheme, host and port");
    char *k = key(0, "example.com", 80, NULL);
    CHECK_STR(k, "http://example.com:80");
    free(k);
    SAME(key(0, "example.com", 80, NULL), key(0, "example.com", 80, NULL));
    DIFFERENT(key(0, "example.com", 80, NULL), key(0, "example.com", 8080, NULL));
    DIFFERENT(key(0, "example.com", 80, NULL), key(0, "example.org", 80, NULL));
    DIFFERENT(key(0, "a.example", 443, NULL), key(1, "a.example", 443, NULL));
    struct tls_options t = opts(1, NULL, NULL, NULL, "a.example");
    DIFFERENT(key(0, "a.example", 443, NULL), key(1, "a.example", 443, &t));
    DIFFERENT(key(0, "localhost", 80, NULL), key(0, "127.0.0.1", 80, NULL));
    /* port digits cannot run into the host */
    DIFFERENT(key(0, "h1", 23, NULL), key(0, "h12", 3, NULL));

    TEST("TLS options do not matter for http");
    struct tls_options a = opts(0, "/ca.pem", NULL, NULL, "h");
    struct tls_options b = opts(1, NULL, NULL, NULL, "h");
    SAME(key(0, "h", 80, &a), key(0, "h", 80, &b));
    SAME(key(0, "h", 80, &a), key(0, "h", 80, NULL));
}

static void test_tls_options(void)
{
    TEST("every TLS option changes an https key");
    struct tls_options base = opts(1, NULL, NULL, NULL, "h");
    struct tls_options noverify = opts(0, NULL, NULL, NULL, "h");
    struct tls_options ca = opts(1, "/etc/ca.pem", NULL, NULL, "h");
    struct tls_options ca2 = opts(1, "/etc/other.pem", NULL, NULL, "h");
    struct tls_options cert = opts(1, NULL, "/c.pem", NULL, "h");
    struct tls_options keyf = opts(1, NULL, NULL, "/k.pem", "h");
    struct tls_options sni = opts(1, NULL, NULL, NULL, "other");
    const struct tls_options *all[] = { &base, &noverify, &ca, &ca2, &cert, &keyf, &sni };
    int n = (int)(sizeof all / sizeof all[0]);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            DIFFERENT(key(1, "h", 443, all[i]), key(1, "h", 443, all[j]));
    struct tls_options base2 = opts(1, NULL, NULL, NULL, "h");
    SAME(key(1, "h", 443, &base), key(1, "h", 443, &base2));
    struct tls_options ca_again = opts(1, "/etc/ca.pem", NULL, NULL, "h");
    SAME(key(1, "h", 443, &ca), key(1, "h", 443, &ca_again));
    /* a file moved between roles is a different key */
    struct tls_options as_ca = opts(1, "/x.pem", NULL, NULL, "h");
    struct tls_options as_cert = opts(1, NULL, "/x.pem", NULL, "h");
    struct tls_options as_key = opts(1, NULL, NULL, "/x.pem", "h");
    DIFFERENT(key(1, "h", 443, &as_ca), key(1, "h", 443, &as_cert));
    DIFFERENT(key(1, "h", 443, &as_cert), key(1, "h", 443, &as_key));
    DIFFERENT(key(1, "h", 443, &as_ca), key(1, "h", 443, &as_key));
}

static void test_separators(void)
{
    TEST("'|' and '\\' in paths cannot make keys collide");
    const struct { const char *a[3], *b[3]; } pairs[] = {
        { { "x|", "y", NULL }, { "x", "|y", NULL } },
        { { "a|b", NULL, NULL }, { "a", "b", NULL } },
        { { "a|b", "c", NULL }, { "a", "b|c", NULL } },
        { { "a\\", "b", NULL }, { "a\\|b", NULL, NULL } },
        { { "a\\|", "b", NULL }, { "a\\", "|b", NULL } },
        { { "a", "b", "c" }, { "a|b", "c", NULL } },
        { { "|verify|", NULL, NULL }, { NULL, NULL, "|verify|" } },
        { { "noverify|x", NULL, NULL }, { "noverify", "x", NULL } },
        { { "\\", NULL, NULL }, { "\\\\", NULL, NULL } },
        { { "p\\|q", NULL, NULL }, { "p|q", NULL, NULL } },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct tls_options a = opts(1, pairs[i].a[0], pairs[i].a[1], pairs[i].a[2], "h");
        struct tls_options b = opts(1, pairs[i].b[0], pairs[i].b[1], pairs[i].b[2], "h");
        DIFFERENT(key(1, "h", 443, &a), key(1, "h", 443, &b));
    }
    /* a path cannot pose as the SNI host either */
    struct tls_options a = opts(1, "/ca.pem|||evil", NULL, NULL, "h");
    struct tls_options b = opts(1, "/ca.pem", NULL, NULL, "evil");
    DIFFERENT(key(1, "h", 443, &a), key(1, "h", 443, &b));
}

static void test_empty_pool(void)
{
    TEST("an empty pool on a real loop");
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct net n;
    memset(&n, 0, sizeof n);
    CHECK_INT(net_init(&n, &loop), 0);
    CHECK(pool_take(n.pool, "http://127.0.0.1:80") == NULL);
    CHECK_INT(pool_idle_count(n.pool), 0);
    /* the sweep timer is unref'd: an idle pool does not keep the loop alive */
    uint64_t t0 = uv_hrtime();
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK((uv_hrtime() - t0) < 500000000ull);
    net_close(&n);
    uv_run(&loop, UV_RUN_DEFAULT);
    net_free(&n);
    CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    test_plain();
    test_tls_options();
    test_separators();
    test_empty_pool();
    return unit_summary();
}
