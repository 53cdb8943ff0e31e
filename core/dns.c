/* dns.c — name resolution through uv_getaddrinfo behind a TTL cache; concurrent lookups merged.
 * Entries are owned by the cache; a running getaddrinfo owns its entry until its callback,
 * which frees it when the cache was freed meanwhile (entry->cache == NULL). */
#include "dns.h"

#include <stdlib.h>
#include <string.h>

#define DNS_BUCKETS 256

struct dns_entry {
    struct dns_cache *cache;        /* NULL once orphaned by dns_cache_free */
    struct dns_entry *next;         /* bucket chain */
    char *host;
    struct dns_addrs *addrs;        /* NULL while resolving or after a failure */
    uint64_t expires_ms;
    int resolving;
    int literal;                    /* an IP address: parsed once, never expires */
    uv_getaddrinfo_t req;
    struct dns_waiter *waiters;     /* doubly linked, head */
};

struct dns_cache {
    uv_loop_t *loop;
    uint64_t ttl_ms;
    struct dns_entry *bucket[DNS_BUCKETS];
    struct dns_stats stats;
};

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % DNS_BUCKETS;
}

struct dns_cache *dns_cache_new(uv_loop_t *loop, double ttl_seconds)
{
    struct dns_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->loop = loop;
        dns_set_ttl(c, ttl_seconds);
    }
    return c;
}

void dns_set_ttl(struct dns_cache *c, double ttl_seconds)
{
    c->ttl_ms = ttl_seconds > 0 ? (uint64_t)(ttl_seconds * 1000) : 0;
}

const struct dns_stats *dns_get_stats(const struct dns_cache *c)
{
    return &c->stats;
}

void dns_addrs_unref(struct dns_addrs *a)
{
    if (a && --a->refs == 0)
        free(a);
}

static struct dns_addrs *addrs_ref(struct dns_addrs *a)
{
    a->refs++;
    return a;
}

static struct dns_addrs *literal(const char *host)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (uv_inet_pton(AF_INET, host, &in4->sin_addr) == 0)
        in4->sin_family = AF_INET;
    else if (uv_inet_pton(AF_INET6, host, &in6->sin6_addr) == 0)
        in6->sin6_family = AF_INET6;
    else
        return NULL;
    struct dns_addrs *a = malloc(sizeof *a + sizeof ss);
    if (!a)
        return NULL;
    a->refs = 1;
    a->count = 1;
    a->addr[0] = ss;
    return a;
}

static struct dns_addrs *from_addrinfo(const struct addrinfo *ai)
{
    int n = 0;
    for (const struct addrinfo *p = ai; p; p = p->ai_next)
        if (p->ai_family == AF_INET || p->ai_family == AF_INET6)
            n++;
    if (n == 0)
        return NULL;
    struct dns_addrs *a = malloc(sizeof *a + (size_t)n * sizeof a->addr[0]);
    if (!a)
        return NULL;
    a->refs = 1;
    a->count = 0;
    for (const struct addrinfo *p = ai; p; p = p->ai_next) {
        if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
            continue;
        /* getaddrinfo repeats an address per socket type; keep each once. */
        int dup = 0;
        for (int i = 0; i < a->count && !dup; i++)
            dup = memcmp(&a->addr[i], p->ai_addr, p->ai_addrlen) == 0;
        if (dup)
            continue;
        memset(&a->addr[a->count], 0, sizeof a->addr[0]);
        memcpy(&a->addr[a->count], p->ai_addr, p->ai_addrlen);
        a->count++;
    }
    return a;
}

static void entry_free(struct dns_entry *e)
{
    dns_addrs_unref(e->addrs);
    free(e->host);
    free(e);
}

/* Holds the waiters being called back, so dns_cancel can unlink one of them meanwhile. */
static struct dns_entry detached;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct dns_entry *e = req->data;
    struct dns_addrs *addrs = status == 0 ? from_addrinfo(res) : NULL;
    if (res)
        uv_freeaddrinfo(res);
    e->resolving = 0;
    if (!e->cache) {
        dns_addrs_unref(addrs);
        entry_free(e);
        return;
    }
    if (status == 0 && !addrs)
        status = UV_EAI_NODATA;
    dns_addrs_unref(e->addrs);
    e->addrs = addrs;
    e->expires_ms = uv_now(e->cache->loop) + e->cache->ttl_ms;
    /* Waiters may start new lookups (of this name too: they join a fresh wait list) or cancel
     * others from their callbacks: detach the list, mark each as pending, pop one at a time. */
    struct dns_waiter *list = e->waiters;
    e->waiters = NULL;
    for (struct dns_waiter *w = list; w; w = w->next)
        w->entry = &detached;
    while (list) {
        struct dns_waiter *w = list;
        list = w->next;
        if (list)
            list->prev = NULL;
        detached.waiters = list;
        w->next = w->prev = NULL;
        w->entry = NULL;
        w->cb(w, status, addrs ? addrs_ref(addrs) : NULL);
        list = detached.waiters;
    }
}

static struct dns_entry *find(struct dns_cache *c, const char *host, unsigned h)
{
    for (struct dns_entry *e = c->bucket[h]; e; e = e->next)
        if (strcmp(e->host, host) == 0)
            return e;
    return NULL;
}

struct dns_addrs *dns_resolve(struct dns_cache *c, const char *host, struct dns_waiter *w, int *err)
{
    *err = 0;
    unsigned h = hash(host);
    struct dns_entry *e = find(c, host, h);
    if (e && e->literal)
        return addrs_ref(e->addrs);
    if (e && e->addrs && !e->resolving && uv_now(c->loop) < e->expires_ms) {
        c->stats.hits++;
        return addrs_ref(e->addrs);
    }
    if (!e) {
        /* An IP literal needs no lookup: parse it once and keep it, uncounted. */
        struct dns_addrs *lit = literal(host);
        if (lit) {
            e = calloc(1, sizeof *e);
            if (!e || !(e->host = strdup(host))) {
                free(e);
                return lit; /* uncached, still correct */
            }
            e->cache = c;
            e->literal = 1;
            e->addrs = lit;
            e->next = c->bucket[h];
            c->bucket[h] = e;
            return addrs_ref(lit);
        }
        e = calloc(1, sizeof *e);
        if (!e || !(e->host = strdup(host))) {
            free(e);
            *err = UV_ENOMEM;
            return NULL;
        }
        e->cache = c;
        e->next = c->bucket[h];
        c->bucket[h] = e;
    }
    if (e->resolving) {
        c->stats.hits++;
    } else {
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        e->req.data = e;
        int rc = uv_getaddrinfo(c->loop, &e->req, on_resolved, host, NULL, &hints);
        if (rc) {
            *err = rc;
            return NULL;
        }
        e->resolving = 1;
        c->stats.lookups++;
    }
    w->entry = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
    return NULL;
}

void dns_cancel(struct dns_waiter *w)
{
    struct dns_entry *e = w->entry;
    if (!e)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->entry = NULL;
}

void dns_cache_free(struct dns_cache *c)
{
    for (int i = 0; i < DNS_BUCKETS; i++) {
        struct dns_entry *e = c->bucket[i];
        while (e) {
            struct dns_entry *next = e->next;
            if (e->resolving) {
                /* uv_cancel may fail if the lookup runs now; on_resolved frees it either way. */
                e->cache = NULL;
                e->waiters = NULL;
                uv_cancel((uv_req_t *)&e->req);
            } else {
                entry_free(e);
            }
            e = next;
        }
    }
    free(c);
}
