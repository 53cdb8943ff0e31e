/* pool.c — idle keep-alive connections keyed by scheme/host/port and every TLS option of trust,
 * and, per key, the shared (multiplexed) connections that can take more requests and the request
 * setting up the first connection that may become one. Buckets and idle conns are owned here (a
 * bucket lives while it holds anything); shared conns stay owned by their session, which lists
 * and unlists them. A sweep timer (unref'd, so an idle pool never keeps the program alive) closes
 * connections idle too long. */
#include "pool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define POOL_BUCKETS 1024
/* Keys whose server answered HTTP/1.1 to an h2 offer: their requests open connections at once
 * instead of waiting for a first one's answer. A hash per key, overwritten round robin: a
 * forgotten or colliding key costs one wait, never a wrong protocol. */
#define POOL_H1_SLOTS 512

/* The idle connections of one key; freed as soon as it holds none. */
struct pool_bucket {
    struct pool_bucket *next;   /* hash chain */
    unsigned slot;              /* index in pool->bucket */
    char *key;
    struct conn *head;          /* most recently parked first */
    struct conn *tail;
    int count;
    struct conn *shared;        /* multiplexed conns of this key (their sessions own them) */
    int shared_count;
    void *pending;              /* the request connecting first for this key, or NULL */
};

struct pool {
    struct net *net;
    uv_timer_t sweep;
    int idle;
    int shared;
    int buckets;
    /* Every idle conn across all keys, most recently parked first: the LRU end is the oldest,
     * which both the idle timeout and the max_idle_total cap close first. */
    struct conn *lru_head, *lru_tail;
    struct pool_bucket *bucket[POOL_BUCKETS];
    uint64_t h1[POOL_H1_SLOTS];
    unsigned h1_next;
};

static const struct conn_handler idle_handler;

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % POOL_BUCKETS;
}

static void free_bucket(struct pool *p, struct pool_bucket *b)
{
    struct pool_bucket **pp = &p->bucket[b->slot];
    while (*pp != b)
        pp = &(*pp)->next;
    *pp = b->next;
    free(b->key);
    free(b);
    p->buckets--;
}

static void maybe_free_bucket(struct pool *p, struct pool_bucket *b)
{
    if (b->count == 0 && b->shared_count == 0 && !b->pending)
        free_bucket(p, b);
}

static void unlink_conn(struct pool *p, struct conn *c)
{
    struct pool_bucket *b = c->bucket;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        b->head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        b->tail = c->idle_prev;
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        p->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        p->lru_tail = c->lru_prev;
    c->idle_next = c->idle_prev = c->lru_next = c->lru_prev = NULL;
    c->bucket = NULL;
    c->idle_since = 0; /* the shared list's fields lie over these: all zero again */
    p->idle--;
    b->count--;
    maybe_free_bucket(p, b);
}

static void close_idle(struct pool *p, struct conn *c)
{
    unlink_conn(p, c);
    conn_close(c);
}

/* An idle connection spoke or closed: it can no longer be trusted with a request. */
static void idle_closed(struct conn *c, enum net_kind kind, const char *msg)
{
    (void)kind;
    (void)msg;
    close_idle(c->owner, c);
}

static void idle_data(struct conn *c, const char *buf, size_t len)
{
    (void)buf;
    (void)len;
    idle_closed(c, NET_PROTOCOL, "unexpected bytes on an idle connection");
}

static void idle_ready(struct conn *c, enum net_kind kind, const char *msg)
{
    idle_closed(c, kind, msg);
}

static const struct conn_handler idle_handler = { NULL, NULL, idle_ready, idle_data, idle_closed, NULL };

/* Walks only the expired end of the LRU list: its cost follows what expires, not the keys seen. */
static void on_sweep(uv_timer_t *t)
{
    struct pool *p = t->data;
    uint64_t now = uv_now(p->net->loop);
    uint64_t max_idle = (uint64_t)(p->net->limits.idle_timeout * 1000);
    while (p->lru_tail && now - p->lru_tail->idle_since >= max_idle)
        close_idle(p, p->lru_tail);
}

struct pool *pool_new(struct net *net)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->net = net;
    uv_timer_init(net->loop, &p->sweep);
    p->sweep.data = p;
    uv_timer_start(&p->sweep, on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&p->sweep);
    return p;
}

static void free_pool(uv_handle_t *h)
{
    free(h->data);
}

void pool_free(struct pool *p)
{
    while (p->lru_head)
        close_idle(p, p->lru_head);  /* the last conn of a key frees its bucket */
    /* Shared conns belong to their sessions: tell each one to end (it unlists itself). */
    for (unsigned i = 0; i < POOL_BUCKETS; i++) {
        while (p->bucket[i]) {
            struct pool_bucket *b = p->bucket[i];
            b->pending = NULL;
            if (!b->shared) {
                maybe_free_bucket(p, b);
                continue;
            }
            struct conn *c = b->shared;
            if (c->handler)
                c->handler->closed(c, NET_CANCELED, "shutting down");
            if (c->shared_bucket) {
                pool_unshare(p, c);
                conn_close(c);
            }
        }
    }
    uv_close((uv_handle_t *)&p->sweep, free_pool);
}

static struct pool_bucket *find(struct pool *p, const char *key, int create)
{
    unsigned h = hash(key);
    for (struct pool_bucket *b = p->bucket[h]; b; b = b->next)
        if (strcmp(b->key, key) == 0)
            return b;
    if (!create)
        return NULL;
    struct pool_bucket *b = calloc(1, sizeof *b);
    if (!b || !(b->key = strdup(key))) {
        free(b);
        return NULL;
    }
    b->slot = h;
    b->next = p->bucket[h];
    p->bucket[h] = b;
    p->buckets++;
    return b;
}

struct conn *pool_take(struct pool *p, const char *key)
{
    struct pool_bucket *b = find(p, key, 0);
    while (b && b->count) {
        struct conn *c = b->head;
        int last = b->count == 1;
        unlink_conn(p, c);  /* may free b with its last conn */
        if (conn_alive(c)) {
            conn_set_owner(c, NULL, NULL);
            uv_ref((uv_handle_t *)&c->tcp);
            return c;
        }
        /* closed by the server while the loop was busy elsewhere: try the next one */
        conn_close(c);
        if (last)
            break;
    }
    return NULL;
}

void pool_put(struct pool *p, struct conn *c)
{
    const struct net_limits *lim = &p->net->limits;
    if (c->closing) {
        conn_close(c);
        return;
    }
    struct pool_bucket *b = find(p, c->pool_key, 1);
    if (!b || b->count >= lim->max_idle_per_host) {
        if (b)
            maybe_free_bucket(p, b);
        conn_close(c);
        return;
    }
    c->bucket = b;
    c->idle_prev = NULL;
    c->idle_next = b->head;
    if (b->head)
        b->head->idle_prev = c;
    else
        b->tail = c;
    b->head = c;
    b->count++;
    c->lru_prev = NULL;
    c->lru_next = p->lru_head;
    if (p->lru_head)
        p->lru_head->lru_prev = c;
    else
        p->lru_tail = c;
    p->lru_head = c;
    p->idle++;
    c->idle_since = uv_now(p->net->loop);
    conn_set_owner(c, &idle_handler, p);
    uv_unref((uv_handle_t *)&c->tcp);
    /* Across all hosts: a crawl over many hosts keeps the recently used ones, not every one. */
    while (p->idle > lim->max_idle_total)
        close_idle(p, p->lru_tail);
}

/* --- shared (multiplexed) connections and the first connect per key ----- */

int pool_share(struct pool *p, struct conn *c)
{
    if (c->shared_bucket)
        return 0;
    struct pool_bucket *b = find(p, c->pool_key, 1);
    if (!b)
        return -1;
    c->shared_bucket = b;
    c->shared_prev = NULL;
    c->shared_next = b->shared;
    if (b->shared)
        b->shared->shared_prev = c;
    b->shared = c;
    b->shared_count++;
    p->shared++;
    return 0;
}

void pool_unshare(struct pool *p, struct conn *c)
{
    struct pool_bucket *b = c->shared_bucket;
    if (!b)
        return;
    if (c->shared_prev)
        c->shared_prev->shared_next = c->shared_next;
    else
        b->shared = c->shared_next;
    if (c->shared_next)
        c->shared_next->shared_prev = c->shared_prev;
    c->shared_next = c->shared_prev = NULL;
    c->shared_bucket = NULL;
    b->shared_count--;
    p->shared--;
    maybe_free_bucket(p, b);
}

struct conn *pool_take_shared(struct pool *p, const char *key, int (*room)(void *mux))
{
    struct pool_bucket *b = find(p, key, 0);
    for (struct conn *c = b ? b->shared : NULL; c; c = c->shared_next)
        if (!c->closing && room(c->mux))
            return c;
    return NULL;
}

int pool_set_pending(struct pool *p, const char *key, void *who)
{
    struct pool_bucket *b = find(p, key, who != NULL);
    if (!b)
        return who ? -1 : 0;
    b->pending = who;
    maybe_free_bucket(p, b);
    return 0;
}

void *pool_pending(struct pool *p, const char *key)
{
    struct pool_bucket *b = find(p, key, 0);
    return b ? b->pending : NULL;
}

static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h | 1; /* never 0, the empty slot */
}

void pool_note_h1(struct pool *p, const char *key, int h1)
{
    uint64_t h = key_hash(key);
    for (unsigned i = 0; i < POOL_H1_SLOTS; i++)
        if (p->h1[i] == h) {
            if (!h1)
                p->h1[i] = 0;
            return;
        }
    if (h1) {
        p->h1[p->h1_next] = h;
        p->h1_next = (p->h1_next + 1) % POOL_H1_SLOTS;
    }
}

int pool_known_h1(const struct pool *p, const char *key)
{
    uint64_t h = key_hash(key);
    for (unsigned i = 0; i < POOL_H1_SLOTS; i++)
        if (p->h1[i] == h)
            return 1;
    return 0;
}

int pool_shared_count(const struct pool *p)
{
    return p->shared;
}

int pool_bucket_count(const struct pool *p)
{
    return p->buckets;
}

int pool_idle_count(const struct pool *p)
{
    return p->idle;
}

static int put_opt(struct buf *out, const char *s)
{
    /* '|' separates fields; a path containing it is escaped so keys never collide. */
    for (; s && *s; s++) {
        if (*s == '|' || *s == '\\') {
            if (buf_append(out, "\\", 1))
                return -1;
        }
        if (buf_append(out, s, 1))
            return -1;
    }
    return buf_append(out, "|", 1);
}

int pool_key(struct buf *out, int https, const char *host, int port, const struct tls_options *tls)
{
    if (buf_puts(out, https ? "https://" : "http://") || buf_puts(out, host) ||
        buf_append(out, ":", 1) || buf_put_uint(out, (unsigned)port))
        return -1;
    if (!https || !tls)
        return 0;
    return buf_puts(out, tls->verify ? "|verify|" : "|noverify|") || put_opt(out, tls->ca_file) ||
           put_opt(out, tls->cert_file) || put_opt(out, tls->key_file) || put_opt(out, tls->host);
}
