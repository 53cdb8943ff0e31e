/* h2_response.c — an HTTP/2 stream's response: header fields counted against the limits and kept
 * as HTTP/1.1 keeps them, the body appended (decoded when coded), the end checked. Writes only
 * into the request's response (r->resp, owned by the request); the session is h2.c's. */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "h2_internal.h"
#include "proto.h"
#include "request.h"

static int body_append(struct http_response *p, const uint8_t *data, size_t len)
{
    if (p->decoder) {
        const char *err = NULL;
        int rc = decoder_feed(p->decoder, (const char *)data, len, &p->body, p->max_body, &err);
        if (rc == -2) {
            p->err_kind = NET_LIMIT;
            p->err = "response body exceeds max_body";
            return -1;
        }
        if (rc < 0) {
            p->err_kind = NET_PROTOCOL;
            p->err = "cannot decode body";
            p->err_detail = err;
            return -1;
        }
        return 0;
    }
    if (p->body.len + len > p->max_body) {
        p->err_kind = NET_LIMIT;
        p->err = "response body exceeds max_body";
        return -1;
    }
    if (buf_append(&p->body, data, len)) {
        p->err_kind = NET_LIMIT;
        p->err = "out of memory";
        return -1;
    }
    return 0;
}

int h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                     void *ud)
{
    (void)flags;
    struct h2_session *s = ud;
    struct request *r = h2_req_of(s, id);
    if (!r) {
        /* nobody takes it (the request left): the connection's window reopens at once */
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    r->last_activity = uv_now(s->net->loop);
    r->resp->bytes_in += len;
    if (body_append(r->resp, data, len) < 0) {
        nghttp2_session_consume_connection(ng, len);
        return h2_fail_stream(s, r, r->resp->err_kind, r->resp->err);
    }
    request_mux_data(r, len); /* the window reopens now, or as a streamed body is taken */
    return 0;
}

int h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    struct h2_session *s = ud;
    struct request *r = h2_req_of(s, frame->hd.stream_id);
    if (r && r->timings.ttfb == 0)
        r->timings.ttfb = (double)(uv_hrtime() - r->t0) / 1e9;
    return 0;
}

static int header_limit(struct h2_session *s, struct request *r, size_t bytes)
{
    struct http_response *p = r->resp;
    p->header_bytes += bytes + 32; /* RFC 9113 §6.5.2's accounting */
    if (p->header_bytes > p->max_header_bytes) {
        h2_fail_stream(s, r, NET_LIMIT, "response headers too large");
        return -1;
    }
    if (++p->header_count > p->max_header_count) {
        h2_fail_stream(s, r, NET_LIMIT, "too many response headers");
        return -1;
    }
    return 0;
}

int h2_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
                 const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)ng;
    (void)flags;
    struct h2_session *s = ud;
    struct request *r = h2_req_of(s, frame->hd.stream_id);
    if (!r)
        return 0;
    struct http_response *p = r->resp;
    p->bytes_in += nlen + vlen;
    r->last_activity = uv_now(s->net->loop);
    if (p->headers_done) { /* trailers: checked and counted, not merged (as HTTP/1.1) */
        header_limit(s, r, nlen + vlen);
        return 0;
    }
    if (nlen == 7 && !memcmp(name, ":status", 7)) {
        /* nghttp2 checked it is three digits */
        p->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        if (p->status < 200) {
            /* an interim response (100, 103): its fields are dropped, the real one follows */
            buf_reset(&p->headers);
            p->header_count = 0;
            p->header_bytes = 0;
        }
        return 0;
    }
    if (p->status < 200 || name[0] == ':')
        return 0;
    if (header_limit(s, r, nlen + vlen))
        return 0;
    if (buf_append(&p->headers, name, nlen) || buf_append(&p->headers, "", 1) ||
        buf_append(&p->headers, value, vlen) || buf_append(&p->headers, "", 1))
        h2_fail_stream(s, r, NET_LIMIT, "out of memory");
    return 0;
}

/* The final response head is in: decoding as HTTP/1.1 does (content codings only: HTTP/2 has no
 * transfer codings). */
int h2_headers_done(struct request *r)
{
    struct http_response *p = r->resp;
    p->headers_done = 1;
    p->version = 20;
    if (p->head_request || p->status == 204 || p->status == 304 || !p->decompress)
        return 0;
    int ce = decoder_kind(http_response_header(p, "content-encoding"));
    if (ce == DECODE_NONE)
        return 0;
    p->decoder = calloc(1, sizeof *p->decoder);
    if (!p->decoder) {
        p->err_kind = NET_LIMIT;
        p->err = "out of memory";
        return -1;
    }
    decoder_add(p->decoder, ce);
    return 0;
}

void h2_response_complete(struct h2_session *s, struct request *r)
{
    struct http_response *p = r->resp;
    if (p->decoder && decoder_incomplete(p->decoder)) {
        p->err_detail = "the compressed stream ended early";
        h2_fail_stream(s, r, NET_PROTOCOL, "cannot decode body");
        return;
    }
    p->complete = 1;
    /* the rest of an upload the server did not wait for is dropped with the stream */
    if (nghttp2_session_get_stream_remote_close(s->ng, r->stream_id) &&
        !nghttp2_session_get_stream_local_close(s->ng, r->stream_id)) {
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_NO_ERROR);
        h2_want_flush(s);
    }
    h2_end_req(s, r, NET_OK, NULL);
}
