/* conn.c — one TCP connection (optionally TLS) to one address: connect, handshake, read, write, close.
 * The conn struct and its buffers and tls_conn are freed in on_close, after uv_close. Reads go
 * through the loop's shared buffer; writes go through a writeq (try at once, queue the rest). */
#include "conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void fail(struct conn *c, enum net_kind kind, const char *msg);

static void release_connect_slot(struct conn *c)
{
    if (c->counted_connecting) {
        c->counted_connecting = 0;
        c->net->connecting--;
    }
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->tls)
        tls_conn_free(c->tls);
    writeq_free(&c->out);
    free(c->pool_key);
    free(c);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->handler = NULL;
    c->owner = NULL;
    release_connect_slot(c);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void conn_set_owner(struct conn *c, const struct conn_handler *h, void *owner)
{
    c->handler = h;
    c->owner = owner;
}

int conn_reusable(struct conn *c)
{
    return !c->closing && !writeq_busy(&c->out) &&
           !c->handshake_write_failed && !(c->tls && tls_conn_input_pending(c->tls));
}

int conn_alive(struct conn *c)
{
    uv_os_fd_t fd;
    if (c->closing || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return 0;
    /* The loop has not polled since the connection was parked, or it has but the FIN came
     * after: ask the kernel. EOF, an error or any byte (a response nobody asked for; over TLS
     * an alert or close_notify) all mean the connection is unfit for a request. */
    char b;
    ssize_t n;
    do
        n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* --- writing ------------------------------------------------------------- */

/* The write queue drained (status 0) or failed. */
static void on_written(struct writeq *q, int status)
{
    struct conn *c = (struct conn *)((char *)q - offsetof(struct conn, out));
    if (status < 0 && !c->closing)
        fail(c, NET_CLOSED, uv_strerror(status));
}

/* Ciphertext or plaintext onto the socket: try at once, queue what the kernel did not take. */
static int raw_write(struct conn *c, const char *data, size_t len)
{
    if (c->closing)
        return -1;
    if (c->handshake_write_failed)
        return 0;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int rc = writeq_write(&c->out, &b, 1);
    if (rc == 0)
        return 0;
    if (c->tls && !c->tls_done && rc != UV_ENOMEM) {
        /* The server refused the handshake and closed: its alert, still to be read, says
         * why (e.g. a client certificate is required), so let the read side report it. */
        c->handshake_write_failed = 1;
        return 0;
    }
    return -1; /* the read side sees the reset or EOF that caused this */
}

static int tls_send(void *ud, const unsigned char *buf, size_t len)
{
    return raw_write(ud, (const char *)buf, len);
}

int conn_write(struct conn *c, const char *data, size_t len)
{
    if (c->closing)
        return -1;
    if (!c->tls)
        return raw_write(c, data, len);
    char err[256];
    if (tls_conn_write(c->tls, (const unsigned char *)data, len, err, sizeof err) != TLS_OK) {
        fail(c, NET_TLS, err);
        return -1;
    }
    return 0;
}

/* --- reading ------------------------------------------------------------- */

static void fail(struct conn *c, enum net_kind kind, const char *msg)
{
    const struct conn_handler *h = c->handler;
    int handshaking = c->tls && !c->tls_done;
    if (!h) {
        conn_close(c);
        return;
    }
    if (handshaking || c->counted_connecting)
        h->ready(c, kind, msg);
    else
        h->closed(c, kind, msg);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->net->read_buf, (unsigned)c->net->read_buf_size);
}

static void handshake_step(struct conn *c)
{
    char err[256];
    int rc = tls_conn_handshake(c->tls, err, sizeof err);
    if (rc == TLS_WANT_INPUT || c->closing)
        return;
    if (rc != TLS_OK) {
        fail(c, NET_TLS, err);
        return;
    }
    c->tls_done = 1;
    if (c->handler)
        c->handler->ready(c, NET_OK, NULL);
}

static void tls_input(struct conn *c, const char *data, size_t len)
{
    tls_conn_feed(c->tls, (const unsigned char *)data, len);
    if (!c->tls_done) {
        handshake_step(c);
        if (!c->tls_done || c->closing)
            return;
    }
    char err[256];
    for (;;) {
        ssize_t n = tls_conn_read(c->tls, c->net->plain_buf, c->net->plain_buf_size, err, sizeof err);
        if (n == TLS_WANT_INPUT)
            return;
        if (n == TLS_EOF) {
            if (c->handler)
                c->handler->closed(c, NET_OK, "close_notify");
            else
                conn_close(c);
            return;
        }
        if (n < 0) {
            fail(c, NET_TLS, err);
            return;
        }
        if (!c->handler) {
            conn_close(c);
            return;
        }
        void *owner = c->owner;
        c->handler->data(c, (const char *)c->net->plain_buf, (size_t)n);
        /* A finished response hands the conn on (pool, next request): later records are not
         * the old owner's, and conn_reusable kept it out of the pool if any were waiting. */
        if (c->closing || c->owner != owner)
            return;
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (c->closing)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            if (c->tls && !c->tls_done) {
                fail(c, NET_TLS, "connection closed during the TLS handshake");
            } else if (c->handler) {
                /* Without close_notify a TLS EOF may be a truncation attack: say so. */
                c->handler->closed(c, c->tls ? NET_CLOSED : NET_OK,
                                   c->tls ? "connection closed without TLS close_notify" : "EOF");
            } else {
                conn_close(c);
            }
        } else {
            fail(c, NET_CLOSED, uv_strerror((int)nread));
        }
        return;
    }
    if (c->tls) {
        tls_input(c, b->base, (size_t)nread);
    } else if (c->handler) {
        c->handler->data(c, b->base, (size_t)nread);
    } else {
        conn_close(c);  /* bytes on an idle connection: it is out of step, drop it */
    }
}

/* --- connecting ---------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    free(req); /* needed only while connecting */
    release_connect_slot(c);
    if (c->closing)
        return;
    if (status < 0) {
        if (c->handler)
            c->handler->ready(c, status == UV_ECANCELED ? NET_CANCELED : NET_CONNECT, uv_strerror(status));
        return;
    }
    c->net->stats.connections_opened++;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        c->handler->ready(c, NET_CONNECT, uv_strerror(rc));
        return;
    }
    if (c->tls) {
        if (c->handler->tcp_connected)
            c->handler->tcp_connected(c);
        if (!c->closing && c->handler)
            handshake_step(c);
        return;
    }
    c->handler->ready(c, NET_OK, NULL);
}

int conn_open(struct conn **out, struct net *net, const struct sockaddr *addr,
              const struct tls_options *tls, const char *pool_key,
              const struct conn_handler *h, void *owner, char *err, size_t errlen)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return UV_ENOMEM;
    c->net = net;
    c->handler = h;
    c->owner = owner;
    c->pool_key = strdup(pool_key);
    if (!c->pool_key) {
        free(c);
        return UV_ENOMEM;
    }
    int rc = uv_tcp_init(net->loop, &c->tcp);
    if (rc < 0) {
        free(c->pool_key);
        free(c);
        return rc;
    }
    c->tcp.data = c;
    writeq_init(&c->out, (uv_stream_t *)&c->tcp, on_written);
    if (tls) {
        if (tls_conn_new(&c->tls, tls, tls_send, c, err, errlen) != 0) {
            c->tls = NULL;
            conn_close(c);
            return UV_EINVAL;
        }
    }
    uv_connect_t *req = malloc(sizeof *req);
    if (!req) {
        conn_close(c);
        return UV_ENOMEM;
    }
    req->data = c;
    rc = uv_tcp_connect(req, &c->tcp, addr, on_connect);
    if (rc < 0) {
        free(req);
        conn_close(c);
        return rc;
    }
    c->counted_connecting = 1;
    net->connecting++;
    *out = c;
    return 0;
}
