/* conn.c — one connection: TCP connect, read and write, and the stack of layers above it (a proxy
 * tunnel, TLS) through which bytes pass up and down. The conn struct, its layers and buffers are
 * freed in on_close, after uv_close. Reads go through the loop's shared buffer; writes go through
 * a writeq (try at once, queue the rest). */
#include "conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "tls_layer.h"

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
    if (c->mux_free)
        c->mux_free(c->mux);
    for (int i = 0; i < c->nlayers; i++)
        c->layer[i]->ops->free(c->layer[i]);
    writeq_free(&c->out);
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

static int handshaking(const struct conn *c)
{
    return c->layers_ready < c->nlayers;
}

int conn_reusable(struct conn *c)
{
    if (c->closing || writeq_busy(&c->out) || c->handshake_write_failed)
        return 0;
    for (int i = 0; i < c->nlayers; i++)
        if (c->layer[i]->ops->input_pending && c->layer[i]->ops->input_pending(c->layer[i]))
            return 0;
    return 1;
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

size_t conn_unsent(struct conn *c)
{
    uv_os_fd_t fd;
    int in_kernel = 0;
    if (c->closing)
        return 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &in_kernel) < 0)
        in_kernel = 0;
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->out.pending.len + (size_t)in_kernel;
}

int conn_tls_info(struct conn *c, struct tls_info *info, int *resumed)
{
    for (int i = 0; i < c->nlayers; i++)
        if (c->layer[i]->is_tls)
            return tls_layer_info(c->layer[i], info, resumed);
    return 0;
}

const char *conn_alpn(struct conn *c)
{
    for (int i = 0; i < c->nlayers; i++)
        if (c->layer[i]->is_tls)
            return tls_layer_alpn(c->layer[i]);
    return NULL;
}

/* --- writing ------------------------------------------------------------- */

/* The write queue drained (status 0) or failed. */
static void on_written(struct writeq *q, int status)
{
    struct conn *c = (struct conn *)((char *)q - offsetof(struct conn, out));
    if (status < 0 && !c->closing)
        fail(c, NET_CLOSED, uv_strerror(status));
    else if (status == 0 && !c->closing && c->handler && c->handler->drained)
        c->handler->drained(c);
}

void conn_hold_loop(struct conn *c, int hold)
{
    if (hold)
        uv_ref((uv_handle_t *)&c->tcp);
    else
        uv_unref((uv_handle_t *)&c->tcp);
}

size_t conn_write_queued(const struct conn *c)
{
    return c->out.flight.len + c->out.pending.len;
}

/* Bytes onto the socket: try at once, queue what the kernel did not take. */
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
    if (handshaking(c) && rc != UV_ENOMEM) {
        /* The peer refused the handshake and closed: what it sent before closing (a TLS alert,
         * a proxy's refusal), still to be read, says why, so let the read side report it. */
        c->handshake_write_failed = 1;
        return 0;
    }
    return -1; /* the read side sees the reset or EOF that caused this */
}

int conn_write(struct conn *c, const char *data, size_t len)
{
    if (c->closing)
        return -1;
    if (c->nlayers == 0)
        return raw_write(c, data, len);
    struct layer *top = c->layer[c->nlayers - 1];
    return top->ops->write(top, data, len);
}

/* --- the layer stack ----------------------------------------------------- */

int layer_send(struct layer *l, const char *data, size_t len)
{
    struct conn *c = l->conn;
    if (l->index == 0)
        return raw_write(c, data, len);
    struct layer *below = c->layer[l->index - 1];
    return below->ops->write(below, data, len);
}

void layer_deliver(struct layer *l, const char *data, size_t len)
{
    struct conn *c = l->conn;
    if (c->closing)
        return;
    if (l->index + 1 < c->nlayers) {
        struct layer *above = c->layer[l->index + 1];
        above->ops->input(above, data, len);
    } else if (c->handler) {
        c->handler->data(c, data, len);
    } else {
        conn_close(c); /* bytes on an idle connection: it is out of step, drop it */
    }
}

const void *layer_owner(struct layer *l)
{
    return l->conn->owner;
}

int layer_owner_unchanged(struct layer *l, const void *owner_before)
{
    return !l->conn->closing && l->conn->owner == owner_before;
}

unsigned char *layer_scratch(struct layer *l, size_t *size)
{
    *size = l->conn->net->plain_buf_size;
    return l->conn->net->plain_buf;
}

/* Opens layer i, or reports the conn ready when every layer is. */
static void open_layer(struct conn *c, int i)
{
    if (i >= c->nlayers) {
        if (c->handler)
            c->handler->ready(c, NET_OK, NULL);
        return;
    }
    struct layer *l = c->layer[i];
    if (l->is_tls && c->handler && c->handler->tls_started) {
        c->handler->tls_started(c);
        if (c->closing)
            return;
    }
    /* A layer whose first bytes cannot be queued (out of memory) may not have said so. */
    if (l->ops->open(l) < 0 && !c->closing)
        fail(c, l->is_tls ? NET_TLS : NET_PROXY, "cannot send the handshake");
}

void layer_ready(struct layer *l)
{
    struct conn *c = l->conn;
    c->layers_ready = l->index + 1;
    open_layer(c, l->index + 1);
}

void layer_fail(struct layer *l, enum net_kind kind, const char *msg)
{
    fail(l->conn, kind, msg);
}

void layer_eof(struct layer *l)
{
    struct conn *c = l->conn;
    if (c->handler)
        c->handler->closed(c, NET_OK, "close_notify");
    else
        conn_close(c);
}

/* --- reading ------------------------------------------------------------- */

static void fail(struct conn *c, enum net_kind kind, const char *msg)
{
    const struct conn_handler *h = c->handler;
    if (!h) {
        conn_close(c);
        return;
    }
    if (handshaking(c) || c->counted_connecting)
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

static void on_eof(struct conn *c)
{
    if (handshaking(c)) {
        struct layer *l = c->layer[c->layers_ready];
        char msg[96];
        snprintf(msg, sizeof msg, "connection closed during the %s handshake", l->ops->name);
        fail(c, l->is_tls ? NET_TLS : NET_PROXY, msg);
        return;
    }
    if (!c->handler) {
        conn_close(c);
        return;
    }
    /* Without close_notify a TLS EOF may be a truncation attack: say so. */
    int tls = 0;
    for (int i = 0; i < c->nlayers; i++)
        tls |= c->layer[i]->is_tls;
    c->handler->closed(c, tls ? NET_CLOSED : NET_OK,
                       tls ? "connection closed without TLS close_notify" : "EOF");
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            on_eof(c);
        else
            fail(c, NET_CLOSED, uv_strerror((int)nread));
        return;
    }
    if (c->nlayers == 0) {
        if (c->handler)
            c->handler->data(c, b->base, (size_t)nread);
        else
            conn_close(c); /* bytes on an idle connection: it is out of step, drop it */
        return;
    }
    c->layer[0]->ops->input(c->layer[0], b->base, (size_t)nread);
}

void conn_pause(struct conn *c)
{
    if (c->paused || c->closing || !c->tcp_up)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paused = 1;
}

void conn_resume(struct conn *c)
{
    if (!c->paused || c->closing)
        return;
    c->paused = 0;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0)
        fail(c, NET_CLOSED, uv_strerror(rc));
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
    c->tcp_up = 1;
    c->net->stats.connections_opened++;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0) {
        c->handler->ready(c, NET_CONNECT, uv_strerror(rc));
        return;
    }
    if (c->handler->tcp_connected) {
        c->handler->tcp_connected(c);
        if (c->closing || !c->handler)
            return;
    }
    open_layer(c, 0);
}

static int add_layer(struct conn *c, struct layer *l)
{
    if (!l)
        return -1;
    l->conn = c;
    l->index = c->nlayers;
    c->layer[c->nlayers++] = l;
    return 0;
}

int conn_open(struct conn **out, struct net *net, const struct sockaddr *addr,
              const struct conn_stack *stack, const char *pool_key,
              const struct conn_handler *h, void *owner, char *err, size_t errlen)
{
    /* the key in the same block: one allocation per connection */
    size_t key_len = strlen(pool_key);
    struct conn *c = calloc(1, sizeof *c + key_len + 1);
    if (!c)
        return UV_ENOMEM;
    c->net = net;
    c->handler = h;
    c->owner = owner;
    c->pool_key = memcpy(c + 1, pool_key, key_len + 1);
    int rc = uv_tcp_init(net->loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->tcp.data = c;
    writeq_init(&c->out, (uv_stream_t *)&c->tcp, on_written);
    /* Layers are built now, so a bad CA file or proxy setting fails before any packet is sent. */
    if ((stack && stack->tunnel && add_layer(c, tunnel_layer_new(stack->tunnel, err, errlen))) ||
        (stack && stack->tls && add_layer(c, tls_layer_new(stack->tls, err, errlen)))) {
        conn_close(c);
        return UV_EINVAL;
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
