/* proto_h1.c — HTTP/1.1 behind the protocol seam (proto.h): the request head in origin form,
 * or absolute form with Proxy-Authorization through a forwarding HTTP proxy, and the response
 * parsed by http1.c into r->resp, which the request owns. */
#include <string.h>

#include "http1.h"
#include "proto.h"
#include "request.h"
#include "tunnel.h"

/* Plain http through an HTTP proxy: the absolute URL as target, credentials for the proxy. */
static int proxy_form(struct request *r, const char *authority, struct buf *target)
{
    char err[128];
    if (r->proxy->user) {
        struct buf cred = {0};
        int rc = proxy_basic_credentials(&cred, r->proxy->user, r->proxy->pass) ||
                 http_head_add(&r->head, "Proxy-Authorization", 19, cred.data, cred.len, err, sizeof err);
        if (cred.data)
            memset(cred.data, 0, cred.len);
        buf_free(&cred);
        if (rc)
            return -1;
    }
    return buf_puts(target, "http://") || buf_puts(target, authority) || buf_puts(target, r->url.target) ||
           buf_append(target, "", 1);
}

static int h1_encode(struct request *r, struct buf *out)
{
    struct buf authority = {0}, absolute = {0};
    if (buf_reserve(out, 160 + r->head.bytes.len + (r->body_len <= REQUEST_INLINE_BODY_MAX ? r->body_len : 0)))
        return -1;
    int rc = url_authority(&r->url, &authority, 0);
    const char *target = r->url.target;
    if (!rc && r->proxy && r->proxy->kind == PROXY_HTTP && !r->url.https) {
        rc = proxy_form(r, authority.data, &absolute);
        target = absolute.data;
    }
    int chunked = r->stream && r->stream->upload_fn && !r->stream->upload_sized;
    rc = rc || http_head_finish(&r->head, out, r->method, target, authority.data, r->body_len,
                                r->has_body && !chunked, r->decompress);
    if (!rc && chunked) {
        /* a body asked for piece by piece: chunked, announced before the blank line */
        out->len -= 2;
        rc = buf_puts(out, "Transfer-Encoding: chunked\r\n\r\n");
    }
    if (!rc && r->has_body && r->body && r->body_len <= REQUEST_INLINE_BODY_MAX)
        rc = buf_append(out, r->body, r->body_len);
    buf_free(&absolute);
    buf_free(&authority);
    return rc;
}

/* The response is made at its first byte: a request waiting for its answer holds none. */
static void h1_begin(struct request *r)
{
    if (r->resp) { /* from an earlier try (a stale pooled connection) */
        http_response_free(r->resp);
        free(r->resp);
        r->resp = NULL;
    }
    r->resp_ready = 1;
}

static int h1_input(struct request *r, const char *data, size_t len)
{
    if (!r->resp && !request_resp_new(r))
        return -1;
    if (http_response_feed(r->resp, data, len) < 0)
        return -1;
    return r->resp->complete;
}

static int h1_eof(struct request *r)
{
    if (!r->resp_ready || (!r->resp && !request_resp_new(r)))
        return -1;
    return http_response_eof(r->resp);
}

static int h1_reusable(const struct request *r)
{
    return r->resp && r->resp->complete && r->resp->keep_alive;
}

static void h1_release(struct request *r)
{
    if (r->resp) {
        http_response_free(r->resp);
        free(r->resp);
        r->resp = NULL;
    }
    r->resp_ready = 0;
}

const struct proto_ops proto_h1 = {
    "HTTP/1.1", h1_encode, h1_begin, h1_input, h1_eof, h1_reusable, h1_release,
};
