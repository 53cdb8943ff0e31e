/* tls_layer.c — TLS as a layer of a connection's stack: ciphertext from the layer below is fed to
 * the session, plaintext goes up; plaintext from above is encrypted and sent down. The layer owns
 * its tls_conn (tls_conn_free in its free). */
#include "tls_layer.h"

#include <stdio.h>
#include <stdlib.h>

struct tls_layer {
    struct layer base;
    struct tls_conn *tls;
    int done;               /* handshake complete */
};

static int send_down(void *ud, const unsigned char *buf, size_t len)
{
    return layer_send(ud, (const char *)buf, len);
}

static void handshake_step(struct tls_layer *t)
{
    char err[256];
    int rc = tls_conn_handshake(t->tls, err, sizeof err);
    if (rc == TLS_WANT_INPUT)
        return;
    if (rc != TLS_OK) {
        layer_fail(&t->base, NET_TLS, err);
        return;
    }
    t->done = 1;
    layer_ready(&t->base);
}

static int tls_open(struct layer *l)
{
    handshake_step((struct tls_layer *)l);
    return 0;
}

static void tls_input(struct layer *l, const char *data, size_t len)
{
    struct tls_layer *t = (struct tls_layer *)l;
    tls_conn_feed(t->tls, (const unsigned char *)data, len);
    const void *owner = layer_owner(l);
    if (!t->done) {
        handshake_step(t);
        /* Application data may have come with the last flight: read on if still ours. */
        if (!t->done || !layer_owner_unchanged(l, owner))
            return;
    }
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
    return tls_conn_input_pending(((const struct tls_layer *)l)->tls);
}

static void tls_free(struct layer *l)
{
    struct tls_layer *t = (struct tls_layer *)l;
    tls_conn_free(t->tls);
    free(t);
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
