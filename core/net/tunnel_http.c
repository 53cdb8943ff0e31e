/* tunnel_http.c — the HTTP CONNECT tunnel (RFC 9110 §9.3.6): ask the proxy for a tunnel to
 * host:port, read its answer head, then pass bytes through. Proxy credentials go out as
 * Proxy-Authorization: Basic, to the proxy only. The layer owns its strings and buffer. */
#include <ctype.h>
#include <mbedtls/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tunnel.h"

/* A proxy's answer head larger than this is refused. */
#define CONNECT_HEAD_MAX (16 * 1024)

struct tunnel_http {
    struct layer base;
    struct buf request;     /* the CONNECT head, until sent */
    struct buf head;        /* the answer head as it arrives */
    char *target;           /* "host:port" for messages */
    char *proxy;
    int done;
};

int tunnel_pass_write(struct layer *l, const char *data, size_t len)
{
    return layer_send(l, data, len);
}

static int http_open(struct layer *l)
{
    struct tunnel_http *t = (struct tunnel_http *)l;
    int rc = layer_send(l, t->request.data, t->request.len);
    buf_free(&t->request);
    return rc;
}

/* The answer head is complete (len bytes, ending with the blank line): 2xx opens the tunnel. */
static void answer(struct tunnel_http *t, size_t head_len)
{
    const char *h = t->head.data;
    char msg[320];
    int major = 0, minor = 0, status = 0, n = 0;
    if (sscanf(h, "HTTP/%d.%d %3d%n", &major, &minor, &status, &n) < 3 || major != 1 || n != 12 ||
        h[8] != ' ' || !isdigit((unsigned char)h[9]) || (h[n] != ' ' && h[n] != '\r')) {
        snprintf(msg, sizeof msg, "proxy %s sent a garbled answer to CONNECT %s", t->proxy, t->target);
        layer_fail(&t->base, NET_PROXY, msg);
        return;
    }
    if (status < 200 || status > 299) {
        const char *reason = h + n + (h[n] == ' ');
        int rlen = (int)strcspn(reason, "\r\n");
        if (rlen > 120)
            rlen = 120;
        snprintf(msg, sizeof msg, "proxy %s refused CONNECT %s: %d %.*s%s", t->proxy, t->target, status,
                 rlen, reason, status == 407 ? " (proxy authentication refused)" : "");
        layer_fail(&t->base, NET_PROXY, msg);
        return;
    }
    t->done = 1;
    size_t extra = t->head.len - head_len;
    char *rest = extra ? t->head.data + head_len : NULL;
    struct buf keep = t->head;
    t->head = (struct buf){0};
    const void *owner = layer_owner(&t->base);
    layer_ready(&t->base);
    /* Bytes that came after the head belong to the layer above (normally none). */
    if (rest && layer_owner_unchanged(&t->base, owner))
        layer_deliver(&t->base, rest, extra);
    buf_free(&keep);
}

static void http_input(struct layer *l, const char *data, size_t len)
{
    struct tunnel_http *t = (struct tunnel_http *)l;
    if (t->done) {
        layer_deliver(l, data, len);
        return;
    }
    size_t old = t->head.len;
    if (buf_append(&t->head, data, len) || buf_append(&t->head, "", 1)) {
        layer_fail(l, NET_PROXY, "out of memory reading the proxy's answer");
        return;
    }
    t->head.len--; /* keep a NUL after the bytes for the parsing below */
    size_t from = old > 3 ? old - 3 : 0;
    char *end = strstr(t->head.data + from, "\r\n\r\n");
    if (end) {
        answer(t, (size_t)(end + 4 - t->head.data));
        return;
    }
    if (t->head.len > CONNECT_HEAD_MAX || memchr(t->head.data, 0, t->head.len)) {
        char msg[200];
        snprintf(msg, sizeof msg, "proxy %s sent a garbled or oversized answer to CONNECT %s", t->proxy,
                 t->target);
        layer_fail(l, NET_PROXY, msg);
    }
}

static int http_write(struct layer *l, const char *data, size_t len)
{
    return tunnel_pass_write(l, data, len);
}

static void http_free(struct layer *l)
{
    struct tunnel_http *t = (struct tunnel_http *)l;
    buf_free(&t->request);
    buf_free(&t->head);
    free(t->target);
    free(t->proxy);
    free(t);
}

static const struct layer_ops http_ops = {
    "proxy CONNECT", http_open, http_input, http_write, NULL, http_free,
};

int proxy_basic_credentials(struct buf *out, const char *user, const char *pass)
{
    struct buf plain = {0};
    int rc = buf_puts(out, "Basic ") || buf_puts(&plain, user) || buf_append(&plain, ":", 1) || buf_puts(&plain, pass ? pass : "");
    size_t need = 0;
    if (!rc) {
        mbedtls_base64_encode(NULL, 0, &need, (const unsigned char *)plain.data, plain.len);
        rc = buf_reserve(out, need);
    }
    if (!rc) {
        size_t wrote = 0;
        rc = mbedtls_base64_encode((unsigned char *)out->data + out->len, need, &wrote,
                                   (const unsigned char *)plain.data, plain.len) != 0;
        out->len += wrote;
    }
    if (plain.data)
        memset(plain.data, 0, plain.len); /* no credentials left in freed memory */
    buf_free(&plain);
    return rc;
}

struct layer *tunnel_http_new(const struct tunnel_options *o, char *err, size_t errlen)
{
    struct tunnel_http *t = calloc(1, sizeof *t);
    struct buf target = {0};
    int v6 = strchr(o->host, ':') != NULL;
    int rc = !t || buf_puts(&target, v6 ? "[" : "") || buf_puts(&target, o->host) ||
             buf_puts(&target, v6 ? "]:" : ":") || buf_put_uint(&target, (unsigned)o->port) ||
             buf_append(&target, "", 1);
    if (!rc) {
        struct buf *r = &t->request;
        rc = buf_puts(r, "CONNECT ") || buf_puts(r, target.data) || buf_puts(r, " HTTP/1.1\r\nHost: ") ||
             buf_puts(r, target.data) || buf_puts(r, "\r\nUser-Agent: luafetch/" LUAFETCH_VERSION "\r\n");
        if (!rc && o->user)
            rc = buf_puts(r, "Proxy-Authorization: ") || proxy_basic_credentials(r, o->user, o->pass) ||
                 buf_puts(r, "\r\n");
        rc = rc || buf_puts(r, "\r\n");
    }
    if (!rc) {
        t->target = target.data;
        target.data = NULL;
        t->proxy = strdup(o->proxy ? o->proxy : "?");
        rc = !t->proxy;
    }
    buf_free(&target);
    if (rc) {
        if (t)
            http_free(&t->base);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &http_ops;
    return &t->base;
}

struct layer *tunnel_layer_new(const struct tunnel_options *o, char *err, size_t errlen)
{
    if (o->kind == TUNNEL_HTTP_CONNECT)
        return tunnel_http_new(o, err, errlen);
    if (o->kind == TUNNEL_SOCKS5)
        return tunnel_socks_new(o, err, errlen);
    snprintf(err, errlen, "unknown tunnel kind");
    return NULL;
}
