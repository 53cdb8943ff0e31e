/* pool.c — idle keep-alive connections keyed by scheme/host/port and every TLS option of trust.
 * Buckets and idle conns are owned here; a sweep timer (unref'd, so an idle pool never keeps
 * the program alive) closes connections idle longer than the limit. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define POOL_BUCKETS 1024

struct pool_bucket {
    struct pool_bucket *next;   /* hash chain */
    char *key;
    struct conn *head;          /* most recently parked first */
    struct conn *tail;
    int count;
};

struct pool {
    struct net *net;
    uv_timer_t sweep;
    int idle;
    struct pool_bucket *bucket[POOL_BUCKETS];
};

static const struct conn_handler idle_handler;

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % POOL_BUCKETS;
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
    c->idle_next = c->idle_prev = NULL;
    c->bucket = NULL;
    b->count--;
    p->idle--;
}

/* An idle connection spoke or closed: it can no longer be trusted with a request. */
static void idle_closed(struct conn *c, enum net_kind kind, const char *msg)
{
    (void)kind;
    (void)msg;
    struct pool *p = c->owner;
    unlink_conn(p, c);
    conn_close(c);
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

static const struct conn_handler idle_handler = { NULL, idle_ready, idle_data, idle_closed };

static void on_sweep(uv_timer_t *t)
{
    struct pool *p = t->data;
    uint64_t now = uv_now(p->net->loop);
    uint64_t max_idle = (uint64_t)(p->net->limits.idle_timeout * 1000);
    for (int i = 0; i < POOL_BUCKETS; i++) {
        for (struct pool_bucket *b = p->bucket[i]; b; b = b->next) {
            /* The tail is the oldest. */
            while (b->tail && now - b->tail->idle_since >= max_idle) {
                struct conn *c = b->tail;
                unlink_conn(p, c);
                conn_close(c);
            }
        }
    }
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
    for (int i = 0; i < POOL_BUCKETS; i++) {
        struct pool_bucket *b = p->bucket[i];
        while (b) {
            while (b->head) {
                struct conn *c = b->head;
                unlink_conn(p, c);
                conn_close(c);
            }
            struct pool_bucket *next = b->next;
            free(b->key);
            free(b);
            b = next;
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
    b->next = p->bucket[h];
    p->bucket[h] = b;
    return b;
}

struct conn *pool_take(struct pool *p, const char *key)
{
    struct pool_bucket *b = find(p, key, 0);
    if (!b || !b->head)
        return NULL;
    struct conn *c = b->head;
    unlink_conn(p, c);
    conn_set_owner(c, NULL, NULL);
    uv_ref((uv_handle_t *)&c->tcp);
    return c;
}

void pool_put(struct pool *p, struct conn *c)
{
    struct pool_bucket *b = find(p, c->pool_key, 1);
    if (!b || b->count >= p->net->limits.max_idle_per_host || c->closing) {
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
    p->idle++;
    c->idle_since = uv_now(p->net->loop);
    conn_set_owner(c, &idle_handler, p);
    uv_unref((uv_handle_t *)&c->tcp);
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
