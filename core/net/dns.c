/* dns.c — name resolution through uv_getaddrinfo behind a bounded TTL cache (LRU), concurrent
 * lookups merged, fixed addresses (http.configure{hosts=}) first. Entries and fixed hosts are
 * owned by the cache; a running getaddrinfo owns its entry until its callback, which frees it
 * when the cache was freed meanwhile (entry->cache == NULL). */
#include "dns.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DNS_BUCKETS 256

struct dns_entry {
    struct dns_cache *cache;        /* NULL once orphaned by dns_cache_free */
    struct dns_entry *next;         /* bucket chain */
    struct dns_entry *lru_next, *lru_prev;  /* most recently used first */
    unsigned slot;
    char *host;
    struct dns_addrs *addrs;        /* NULL while resolving or after a failure */
    uint64_t expires_ms;
    int resolving;
    int literal;                    /* an IP address: parsed once, never expires */
    uv_getaddrinfo_t req;
    struct dns_waiter *waiters;     /* doubly linked, head */
};

/* A name with addresses given by the script: used before DNS, never expires. */
struct dns_fixed {
    struct dns_fixed *next;
    char *host;
    struct dns_addrs *addrs;
};

struct dns_cache {
    uv_loop_t *loop;
    uint64_t ttl_ms;
    int max_entries;
    int entries;
    struct dns_entry *lru_head, *lru_tail;
    struct dns_fixed *fixed;
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
        c->max_entries = 10000;
        dns_set_ttl(c, ttl_seconds);
    }
    return c;
}

void dns_set_max_entries(struct dns_cache *c, int max)
{
    c->max_entries = max > 0 ? max : 1;
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
    dns_addrs_interleave(a);
    return a;
}

void dns_addrs_interleave(struct dns_addrs *a)
{
    /* RFC 8305 §4: the first family the resolver preferred, then alternate families, each
     * family keeping its own order, so a dead family costs one stagger step, not its whole list. */
    if (a->count < 3)
        return;
    int first = a->addr[0].ss_family;
    struct sockaddr_storage *tmp = malloc((size_t)a->count * sizeof *tmp);
    if (!tmp)
        return; /* the resolver's order is still correct, only slower to fall back */
    int i_same = 0, i_other = 0, n = 0;
    for (int want_same = 1; n < a->count; want_same = !want_same) {
        int *i = want_same ? &i_same : &i_other;
        while (*i < a->count && (a->addr[*i].ss_family == first) != want_same)
            (*i)++;
        if (*i < a->count)
            tmp[n++] = a->addr[(*i)++];
    }
    memcpy(a->addr, tmp, (size_t)a->count * sizeof *tmp);
    free(tmp);
}

static void entry_free(struct dns_entry *e)
{
    dns_addrs_unref(e->addrs);
    free(e->host);
    free(e);
}

static void lru_unlink(struct dns_cache *c, struct dns_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_next = e->lru_prev = NULL;
}

static void lru_push(struct dns_cache *c, struct dns_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
}

static void touch(struct dns_cache *c, struct dns_entry *e)
{
    if (c->lru_head != e) {
        lru_unlink(c, e);
        lru_push(c, e);
    }
}

static void insert(struct dns_cache *c, struct dns_entry *e, unsigned h)
{
    e->cache = c;
    e->slot = h;
    e->next = c->bucket[h];
    c->bucket[h] = e;
    lru_push(c, e);
    c->entries++;
}

static void remove_entry(struct dns_cache *c, struct dns_entry *e)
{
    struct dns_entry **pp = &c->bucket[e->slot];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    lru_unlink(c, e);
    c->entries--;
    entry_free(e);
}

/* Drops least recently used entries beyond the cap, and expired ones at the cold end. An entry
 * with a lookup running is in use and stays (it is touched again when the lookup completes). */
static void prune(struct dns_cache *c)
{
    uint64_t now = uv_now(c->loop);
    struct dns_entry *e = c->lru_tail;
    while (e) {
        struct dns_entry *warmer = e->lru_prev;
        if (!e->resolving) {
            int expired = !e->literal && now >= e->expires_ms;
            if (c->entries <= c->max_entries && !expired)
                break;
            remove_entry(c, e);
        }
        e = warmer;
    }
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
    touch(e->cache, e);
    if (status == 0 && !addrs)
        status = UV_EAI_NODATA;
    dns_addrs_unref(e->addrs);
    e->addrs = addrs ? addrs_ref(addrs) : NULL;  /* ours stays valid if a waiter prunes e */
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
    dns_addrs_unref(addrs);
}

static struct dns_entry *find(struct dns_cache *c, const char *host, unsigned h)
{
    for (struct dns_entry *e = c->bucket[h]; e; e = e->next)
        if (strcmp(e->host, host) == 0)
            return e;
    return NULL;
}

static struct dns_addrs *fixed_addrs(struct dns_cache *c, const char *host)
{
    for (struct dns_fixed *f = c->fixed; f; f = f->next)
        if (strcasecmp(f->host, host) == 0)
            return f->addrs;
    return NULL;
}

struct dns_addrs *dns_resolve(struct dns_cache *c, const char *host, struct dns_waiter *w, int *err)
{
    *err = 0;
    if (c->fixed) {
        struct dns_addrs *f = fixed_addrs(c, host);
        if (f)
            return addrs_ref(f);
    }
    unsigned h = hash(host);
    struct dns_entry *e = find(c, host, h);
    if (e && e->literal) {
        touch(c, e);
        return addrs_ref(e->addrs);
    }
    if (e && e->addrs && !e->resolving && uv_now(c->loop) < e->expires_ms) {
        c->stats.hits++;
        touch(c, e);
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
            e->literal = 1;
            e->addrs = lit;
            insert(c, e, h);
            addrs_ref(lit); /* the caller's reference first: prune may drop e (and its ref) */
            prune(c);
            return lit;
        }
        e = calloc(1, sizeof *e);
        if (!e || !(e->host = strdup(host))) {
            free(e);
            *err = UV_ENOMEM;
            return NULL;
        }
        insert(c, e, h);
    } else {
        touch(c, e);
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
            if (!e->addrs && !e->waiters)
                remove_entry(c, e);
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
    prune(c);
    return NULL;
}

int dns_set_fixed(struct dns_cache *c, const char *host, struct dns_addrs *addrs)
{
    struct dns_fixed **pp = &c->fixed;
    while (*pp && strcasecmp((*pp)->host, host) != 0)
        pp = &(*pp)->next;
    if (*pp) {
        struct dns_fixed *f = *pp;
        if (addrs) {
            dns_addrs_unref(f->addrs);
            f->addrs = addrs;
            return 0;
        }
        *pp = f->next;
        dns_addrs_unref(f->addrs);
        free(f->host);
        free(f);
        return 0;
    }
    if (!addrs)
        return 0;
    struct dns_fixed *f = calloc(1, sizeof *f);
    if (!f || !(f->host = strdup(host))) {
        free(f);
        dns_addrs_unref(addrs);
        return UV_ENOMEM;
    }
    f->addrs = addrs;
    f->next = c->fixed;
    c->fixed = f;
    return 0;
}

struct dns_addrs *dns_addrs_parse(const char *const *list, int n)
{
    if (n <= 0)
        return NULL;
    struct dns_addrs *a = calloc(1, sizeof *a + (size_t)n * sizeof a->addr[0]);
    if (!a)
        return NULL;
    a->refs = 1;
    for (int i = 0; i < n; i++) {
        char buf[64];
        const char *s = list[i];
        size_t len = strlen(s);
        if (len >= 2 && s[0] == '[' && s[len - 1] == ']' && len - 2 < sizeof buf) {
            memcpy(buf, s + 1, len - 2);  /* [v6] as in a URL */
            buf[len - 2] = 0;
            s = buf;
        }
        struct dns_addrs *one = literal(s);
        if (!one) {
            free(a);
            return NULL;
        }
        a->addr[a->count++] = one->addr[0];
        free(one);
    }
    return a;
}

int dns_cache_size(const struct dns_cache *c)
{
    return c->entries;
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
    while (c->fixed) {
        struct dns_fixed *f = c->fixed;
        c->fixed = f->next;
        dns_addrs_unref(f->addrs);
        free(f->host);
        free(f);
    }
    free(c);
}
