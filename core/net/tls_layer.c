/* tls_layer.c — TLS as a layer of a connection's stack: ciphertext from the layer below is fed to
 * the session, plaintext goes up; plaintext from above is encrypted and sent down. While more than
 * one handshake is in progress, their costly halves (public-key operations) run on libuv's thread
 * pool, one thread per session at a time, so concurrent handshakes use every core. The layer owns
 * its tls_conn (tls_conn_free in its free; deferred while a half runs on the pool). */
#include "tls_layer.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"

struct tls_layer {
    struct layer base;
    struct tls_conn *tls;
    int done;               /* handshake complete */
    int counted;            /* in handshakes_running */
    int working;            /* tls_conn_handshake_steps runs on the pool: the session is its */
    int orphaned;           /* the conn freed the layer meanwhile: freed when the work returns */
    int step_ret;
    struct buf held;        /* ciphertext that came while working, fed once it returns */
    uv_work_t work;
};

/* Handshakes begun and not ended in this process (the loop's thread only). */
static int handshakes_running;

static void stop_counting(struct tls_layer *t)
{
    if (t->counted) {
        t->counted = 0;
        handshakes_running--;
    }
}

static int send_down(void *ud, const unsigned char *buf, size_t len)
{
    return layer_send(ud, (const char *)buf, len);
}

/* The result of a handshake half: 1 done (the layer is ready), 0 more input needed, -1 failed. */
static int conclude(struct tls_layer *t, int ret)
{
    char err[256];
    int rc = tls_conn_handshake_end(t->tls, ret, err, sizeof err);
    if (rc == TLS_WANT_INPUT)
        return 0;
    stop_counting(t);
    if (rc != TLS_OK) {
        layer_fail(&t->base, NET_TLS, err);
        return -1;
    }
    t->done = 1;
    layer_ready(&t->base);
    return 1;
}

static void work_cb(uv_work_t *w)
{
    struct tls_layer *t = w->data;
    t->step_ret = tls_conn_handshake_steps(t->tls);
}

static void after_work(uv_work_t *w, int status);

/* Runs the handshake on what came: on the pool when other handshakes are in progress too. */
static void handshake_step(struct tls_layer *t)
{
    if (handshakes_running > 1) {
        t->working = 1;
        t->work.data = t;
        tls_conn_defer_sends(t->tls, 1);
        struct net *net = t->base.conn->net;
        if (uv_queue_work(net->loop, &t->work, work_cb, after_work) == 0) {
            net->stats.tls_handshakes_pooled++;
            return;
        }
        t->working = 0;
        tls_conn_defer_sends(t->tls, 0);
    }
    conclude(t, tls_conn_handshake_steps(t->tls));
}

static void destroy(struct tls_layer *t)
{
    stop_counting(t);
    tls_conn_free(t->tls);
    buf_free(&t->held);
    free(t);
}

static int tls_open(struct layer *l)
{
    struct tls_layer *t = (struct tls_layer *)l;
    t->counted = 1;
    handshakes_running++;
    /* the ClientHello is cheap: always sent from here */
    conclude(t, tls_conn_handshake_steps(t->tls));
    return 0;
}

/* Plaintext that is ready, up to the protocol, while the conn is still the same owner's. */
static void read_plain(struct tls_layer *t, const void *owner)
{
    struct layer *l = &t->base;
    size_t size;
    unsigned char *plain = layer_scratch(l, &size);
    char err[256];
    for (;;) {
        ssize_t n = tls_conn_read(t->tls, plain, size, err, sizeof err);
        if (n == TLS_WANT_INPUT)
            return;
        if (n == TLS_EOF) {
            layer_eof(l);
            return;
        }
        if (n < 0) {
            layer_fail(l, NET_TLS, err);
            return;
        }
        layer_deliver(l, (const char *)plain, (size_t)n);
        /* A finished response hands the conn on (pool, next request): later records are not
         * the old owner's, and input_pending keeps it out of the pool if any were waiting. */
        if (!layer_owner_unchanged(l, owner))
            return;
    }
}

static void after_work(uv_work_t *w, int status)
{
    (void)status; /* never cancelled */
    struct tls_layer *t = w->data;
    t->working = 0;
    tls_conn_defer_sends(t->tls, 0);
    if (t->orphaned) {
        destroy(t);
        return;
    }
    const void *owner = layer_owner(&t->base);
    if (tls_conn_flush_sends(t->tls) != 0) {
        stop_counting(t);
        layer_fail(&t->base, NET_CLOSED, "handshake failed: cannot send");
        return;
    }
    int rc = conclude(t, t->step_ret);
    if (rc < 0)
        return;
    if (t->held.len) {
        tls_conn_feed(t->tls, (const unsigned char *)t->held.data, t->held.len);
        buf_reset(&t->held);
        if (rc == 0) {
            handshake_step(t); /* on the pool again, or done here */
            if (!t->done)
                return;
            rc = 1;
        }
    }
    /* Application data may have come with the last flight: read on if still ours. */
    if (rc == 1 && layer_owner_unchanged(&t->base, owner))
        read_plain(t, owner);
}

static void tls_input(struct layer *l, const char *data, size_t len)
{
    struct tls_layer *t = (struct tls_layer *)l;
    if (t->working) { /* the session is the pool's until the work returns */
        if (buf_append(&t->held, data, len))
            layer_fail(l, NET_TLS, "out of memory buffering TLS input");
        return;
    }
    tls_conn_feed(t->tls, (const unsigned char *)data, len);
    const void *owner = layer_owner(l);
    if (!t->done) {
        handshake_step(t);
        /* Application data may have come with the last flight: read on if still ours. */
        if (!t->done || !layer_owner_unchanged(l, owner))
            return;
    }
    read_plain(t, owner);
}

static int tls_write(struct layer *l, const char *data, size_t len)
{
    struct tls_layer *t = (struct tls_layer *)l;
    char err[256];
    if (tls_conn_write(t->tls, (const unsigned char *)data, len, err, sizeof err) != TLS_OK) {
        /* the socket refused the record: the peer closed or reset, not a TLS failure */
        layer_fail(l, tls_conn_send_failed(t->tls) ? NET_CLOSED : NET_TLS, err);
        return -1;
    }
    return 0;
}

static int tls_input_pending(const struct layer *l)
{
    const struct tls_layer *t = (const struct tls_layer *)l;
    return t->working || t->held.len || tls_conn_input_pending(t->tls);
}

static void tls_free(struct layer *l)
{
    struct tls_layer *t = (struct tls_layer *)l;
    if (t->working) {
        t->orphaned = 1; /* the pool still has the session: after_work frees it */
        stop_counting(t);
        return;
    }
    destroy(t);
}

static const struct layer_ops tls_ops = {
    "TLS", tls_open, tls_input, tls_write, tls_input_pending, tls_free,
};

struct layer *tls_layer_new(const struct tls_options *o, char *err, size_t errlen)
{
    struct tls_layer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &tls_ops;
    t->base.is_tls = 1;
    /* The session's send callback needs the layer's place in the stack: it is set before any
     * byte moves (conn_open adds the layer right after this returns). */
    if (tls_conn_new(&t->tls, o, send_down, &t->base, err, errlen) != 0) {
        free(t);
        return NULL;
    }
    return &t->base;
}

int tls_layer_info(struct layer *l, struct tls_info *info, int *resumed)
{
    struct tls_layer *t = (struct tls_layer *)l;
    tls_conn_get_info(t->tls, info);
    *resumed = tls_conn_resumed(t->tls);
    return 1;
}

const char *tls_layer_alpn(struct layer *l)
{
    return tls_conn_alpn(((struct tls_layer *)l)->tls);
}
