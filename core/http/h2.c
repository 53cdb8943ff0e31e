/* h2.c — HTTP/2 behind the multiplexing seam (proto.h) on libnghttp2: a session owns one conn (it
 * is the conn's owner and c->mux), feeds nghttp2_session_mem_recv with the bytes that come up the
 * layer stack, and sends what nghttp2 makes in few writes (gathered, written before the loop
 * polls). Requests are attached as streams and ended through request_mux_*; a stream's response
 * is read in h2_response.c. The session struct (h2_internal.h), its nghttp2 session and its two
 * handles are freed after the conn's close callback. */
#define _GNU_SOURCE
#include "h2.h"
#include "h2_internal.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "pool.h"
#include "proto.h"
#include "request.h"

static void session_end(struct h2_session *s, enum net_kind kind, const char *msg);
static void submit(struct h2_session *s, struct request *r);

/* --- small helpers --------------------------------------------------------- */

static void link_req(struct h2_session *s, struct request *r)
{
    r->attached = 1;
    r->via.mux = s;
    r->mux_prev = NULL;
    r->queue_next = s->reqs;
    if (s->reqs)
        s->reqs->mux_prev = r;
    s->reqs = r;
    s->nreqs++;
}

static void on_idle_timer(uv_timer_t *t);

/* The session lost its last request: it waits in the pool, not keeping the loop alive. */
static void became_idle(struct h2_session *s)
{
    s->idle_since = uv_now(s->net->loop);
    if (!s->conn)
        return;
    if (s->goaway) {
        session_end(s, NET_CLOSED, "connection finished (GOAWAY)");
        return;
    }
    conn_hold_loop(s->conn, 0);
    double idle = s->net->limits.idle_timeout;
    uv_timer_start(&s->timer, on_idle_timer, idle > 0 ? (uint64_t)(idle * 1000) : 0, 0);
    uv_unref((uv_handle_t *)&s->timer);
}

static void unlink_req(struct h2_session *s, struct request *r)
{
    if (r->mux_prev)
        r->mux_prev->queue_next = r->queue_next;
    else
        s->reqs = r->queue_next;
    if (r->queue_next)
        r->queue_next->mux_prev = r->mux_prev;
    r->queue_next = r->mux_prev = NULL;
    r->attached = 0;
    r->held = 0;
    r->via.mux = NULL;
    if (r->stream_id > 0 && !s->ended)
        nghttp2_session_set_stream_user_data(s->ng, r->stream_id, NULL);
    if (--s->nreqs == 0 && !s->ended)
        became_idle(s);
}

static int protocol_code(uint32_t code)
{
    return code == NGHTTP2_PROTOCOL_ERROR || code == NGHTTP2_FLOW_CONTROL_ERROR ||
           code == NGHTTP2_FRAME_SIZE_ERROR || code == NGHTTP2_COMPRESSION_ERROR;
}

/* Ends r's part in the session, then its exchange. */
void h2_end_req(struct h2_session *s, struct request *r, enum net_kind kind, const char *msg)
{
    unlink_req(s, r);
    request_mux_finish(r, kind, msg);
}

/* r's stream fails with resp's reason; the stream is reset (the others go on). */
int h2_fail_stream(struct h2_session *s, struct request *r, enum net_kind kind, const char *why)
{
    struct http_response *p = r->resp;
    if (p->err_kind == NET_OK) {
        p->err_kind = kind;
        p->err = why;
    }
    char msg[200];
    if (p->err_detail)
        snprintf(msg, sizeof msg, "%s: %s", p->err, p->err_detail);
    else
        snprintf(msg, sizeof msg, "%s", p->err);
    int32_t id = r->stream_id;
    h2_end_req(s, r, p->err_kind, msg);
    nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h2_want_flush(s);
    return 0;
}

void h2_consumed(struct request *r, size_t n)
{
    struct h2_session *s = r->attached ? r->via.mux : NULL;
    if (s && !s->ended && n) {
        nghttp2_session_consume(s->ng, r->stream_id, n);
        h2_want_flush(s); /* a consumer outside the session's reads: the WINDOW_UPDATE must go out */
    }
}

static void release_held(struct h2_session *s);

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    struct h2_session *s = ud;
    if (s->ended)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
        /* streams above last-stream-id are closed by nghttp2 with REFUSED_STREAM: retried */
        s->goaway = 1;
        s->goaway_code = frame->goaway.error_code;
        if (s->conn)
            pool_unshare(s->net->pool, s->conn);
        return 0;
    case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && s->pinging) {
            s->pinging = 0;
            uv_timer_stop(&s->timer);
            release_held(s);
        }
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !s->settings) {
            s->settings = 1;
            release_held(s);
        }
        return 0;
    case NGHTTP2_RST_STREAM: {
        struct request *r = h2_req_of(s, frame->hd.stream_id);
        if (r)
            r->mux_rst_recv = 1;
        return 0;
    }
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        break;
    default:
        return 0;
    }
    struct request *r = h2_req_of(s, frame->hd.stream_id);
    if (!r)
        return 0;
    r->last_activity = uv_now(s->net->loop);
    if (frame->hd.type == NGHTTP2_HEADERS && r->resp->status >= 200 && !r->resp->headers_done &&
        h2_headers_done(r))
        return h2_fail_stream(s, r, r->resp->err_kind, r->resp->err);
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && r->resp->headers_done)
        h2_response_complete(s, r);
    else if (frame->hd.type == NGHTTP2_HEADERS && r->stream && r->resp->headers_done)
        request_mux_data(r, 0); /* a streamed body: the head goes to the consumer now */
    return 0;
}

static const char *code_name(uint32_t code)
{
    return nghttp2_http2_strerror(code);
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng;
    struct h2_session *s = ud;
    struct request *r = h2_req_of(s, id);
    if (!r)
        return 0;
    if (code == NGHTTP2_REFUSED_STREAM && r->resp->bytes_in == 0) {
        /* not processed by the server: another connection takes it (and the next ones) */
        s->goaway = 1;
        if (s->conn)
            pool_unshare(s->net->pool, s->conn);
        unlink_req(s, r);
        request_mux_retry(r);
        return 0;
    }
    char msg[256];
    if (r->mux_rst_recv)
        snprintf(msg, sizeof msg, "stream reset by the server: %s (0x%x)", code_name(code), code);
    else if (code == NGHTTP2_NO_ERROR)
        snprintf(msg, sizeof msg, "stream closed before the response was complete");
    else
        snprintf(msg, sizeof msg, "stream reset: %s (0x%x)%s%s", code_name(code), code,
                 s->err[0] ? ": " : "", s->err);
    h2_end_req(s, r, protocol_code(code) ? NET_PROTOCOL : NET_CLOSED, msg);
    return 0;
}

static int before_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    struct h2_session *s = ud;
    /* a request that left before its HEADERS went out: they never go */
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        !nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id))
        return NGHTTP2_ERR_CANCEL;
    (void)s;
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    (void)ng;
    struct h2_session *s = ud;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        struct request *r = h2_req_of(s, frame->hd.stream_id);
        if (r)
            r->mux_sent = 1;
    } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        /* nghttp2 found a connection error: its code, and the reason it put in the frame */
        s->sent_error = 1;
        snprintf(s->err, sizeof s->err, "%s%s%.*s", code_name(frame->goaway.error_code),
                 frame->goaway.opaque_data_len ? ": " : "", (int)frame->goaway.opaque_data_len,
                 frame->goaway.opaque_data ? (const char *)frame->goaway.opaque_data : "");
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *frame, int lib_error, void *ud)
{
    (void)ng;
    struct h2_session *s = ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct request *r = h2_req_of(s, frame->hd.stream_id);
    if (!r)
        return 0;
    /* never sent (GOAWAY came first, no stream ids left): another connection takes it */
    (void)lib_error;
    s->goaway = 1;
    if (s->conn)
        pool_unshare(s->net->pool, s->conn);
    unlink_req(s, r);
    request_mux_retry(r);
    return 0;
}

static int on_error(nghttp2_session *ng, int lib_error, const char *msg, size_t len, void *ud)
{
    (void)ng;
    (void)lib_error;
    struct h2_session *s = ud;
    snprintf(s->err, sizeof s->err, "%.*s", (int)len, msg);
    return 0;
}

/* DATA for a body from a file (read as the window allows) or a function (its pieces, asked for
 * one at a time: the stream is deferred until the next one is pushed). */
static ssize_t read_upload(struct h2_session *s, struct request *r, uint8_t *buf, size_t length,
                           uint32_t *flags)
{
    struct request_stream *u = r->stream;
    if (!u->upload_fn) {
        uint64_t left = u->file_size - u->file_off;
        size_t n = left < length ? (size_t)left : length;
        ssize_t got = n ? pread(u->fd, buf, n, (off_t)u->file_off) : 0;
        if (got <= 0 && n) {
            h2_fail_stream(s, r, NET_INVALID, got < 0 ? "cannot read the request body file"
                                                   : "the request body file is shorter than its size");
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        u->file_off += (uint64_t)got;
        u->upload_began = 1;
        if (u->file_off >= u->file_size) {
            u->upload_done = 1;
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        }
        return got;
    }
    if (u->pending.len) {
        size_t n = u->pending.len < length ? u->pending.len : length;
        memcpy(buf, u->pending.data, n);
        memmove(u->pending.data, u->pending.data + n, u->pending.len - n);
        u->pending.len -= n;
        u->upload_began = 1;
        if (!u->pending.len && u->upload_done)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (u->upload_done) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    if (!u->upload_want) {
        /* the binding runs the function after this flush (wake_uploads), never inside nghttp2;
         * what it gives cannot be given again, so from here the body is never resent */
        u->upload_began = 1;
        u->upload_want = 1;
        u->upload_ask = 1;
        s->uploads_asked = 1;
    }
    return NGHTTP2_ERR_DEFERRED;
}

void h2_upload_push(struct request *r, const char *data, size_t len)
{
    struct h2_session *s = r->via.mux;
    struct request_stream *u = r->stream;
    if (len && buf_append(&u->pending, data, len)) {
        h2_fail_stream(s, r, NET_INVALID, "out of memory");
        return;
    }
    if (!len || (u->upload_sized && u->file_off == u->file_size))
        u->upload_done = 1;
    if (!s->ended && r->stream_id > 0) {
        nghttp2_session_resume_data(s->ng, r->stream_id);
        h2_want_flush(s);
    }
}

/* After a flush: the bindings of the streams whose function body is wanted run now (each may
 * end or cancel requests, so the list is walked afresh after every one). */
static void wake_uploads(struct h2_session *s)
{
    while (s->uploads_asked && !s->ended) {
        s->uploads_asked = 0;
        for (struct request *r = s->reqs; r; r = r->queue_next) {
            if (r->stream && r->stream->upload_ask) {
                r->stream->upload_ask = 0;
                s->uploads_asked = 1; /* look again: the wake may have changed the list */
                r->stream->wake(r);
                break;
            }
        }
    }
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)src;
    struct h2_session *s = ud;
    struct request *r = nghttp2_session_get_stream_user_data(ng, id);
    if (!r || s->ended)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (r->stream && r->stream->upload)
        return read_upload(s, r, buf, length, flags);
    size_t left = r->body_len - r->body_sent;
    size_t n = left < length ? left : length;
    if (n)
        memcpy(buf, r->body + r->body_sent, n);
    r->body_sent += (uint32_t)n;
    if (r->body_sent == r->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_session_callbacks *callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (cbs || nghttp2_session_callbacks_new(&cbs))
        return cbs;
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_before_frame_send_callback(cbs, before_frame_send);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
    return cbs;
}

static nghttp2_option *options(void)
{
    static nghttp2_option *opt;
    if (opt || nghttp2_option_new(&opt))
        return opt;
    /* windows reopen as the body is taken (h2_consumed), not as bytes arrive */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    return opt;
}

/* --- sending ------------------------------------------------------------- */

static void write_out(struct h2_session *s)
{
    if (!s->out.len)
        return;
    struct conn *c = s->conn;
    if (c && !s->fuzz)
        conn_write(c, s->out.data, s->out.len); /* a failure comes back as the conn's closed event */
    buf_reset(&s->out);
}

/* Makes frames and writes them, until nghttp2 has nothing more or the kernel is behind. */
static void flush(struct h2_session *s)
{
    if (s->ended)
        return;
    s->blocked = 0;
    for (;;) {
        if (s->conn && !s->fuzz && conn_write_queued(s->conn) > H2_WRITE_HIGH) {
            s->blocked = 1; /* resumed by the conn's drained event */
            break;
        }
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s->ng, &data);
        if (n < 0) {
            write_out(s);
            session_end(s, NET_PROTOCOL, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        if (buf_append(&s->out, data, (size_t)n)) {
            session_end(s, NET_CLOSED, "out of memory");
            return;
        }
        if (s->out.len >= H2_WRITE_CHUNK) {
            write_out(s);
            if (s->ended)
                return;
        }
    }
    write_out(s);
    if (s->ended)
        return;
    if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) {
        char msg[200];
        snprintf(msg, sizeof msg, "HTTP/2 protocol error: %s", s->err[0] ? s->err : "invalid frame");
        if (s->sent_error)
            session_end(s, NET_PROTOCOL, msg);
        else
            session_end(s, NET_CLOSED, "connection finished (GOAWAY)");
    }
}

static void on_flush(uv_prepare_t *h)
{
    struct h2_session *s = h->data;
    uv_prepare_stop(h);
    s->flushing = 0;
    flush(s);
    wake_uploads(s);
}

void h2_want_flush(struct h2_session *s)
{
    if (s->flushing || s->ended || s->fuzz)
        return;
    s->flushing = 1;
    uv_prepare_start(&s->flusher, on_flush);
}

/* --- connection events ----------------------------------------------------- */

static void on_conn_data(struct conn *c, const char *data, size_t len)
{
    struct h2_session *s = c->owner;
    ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *)data, len);
    if (s->ended)
        return;
    if (rv < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "HTTP/2 protocol error: %s", s->err[0] ? s->err : nghttp2_strerror((int)rv));
        session_end(s, NET_PROTOCOL, msg);
        return;
    }
    if (s->sent_error) {
        /* nghttp2 found a connection error and queued GOAWAY: send it, then end */
        flush(s);
        if (!s->ended) {
            char msg[200];
            snprintf(msg, sizeof msg, "HTTP/2 protocol error: %s", s->err[0] ? s->err : "invalid frame");
            session_end(s, NET_PROTOCOL, msg);
        }
        return;
    }
    h2_want_flush(s);
}

static void on_conn_closed(struct conn *c, enum net_kind kind, const char *msg)
{
    struct h2_session *s = c->owner;
    char m[200];
    if (s->goaway && s->goaway_code != NGHTTP2_NO_ERROR) {
        snprintf(m, sizeof m, "connection closed after GOAWAY (%s)", code_name(s->goaway_code));
        session_end(s, protocol_code(s->goaway_code) ? NET_PROTOCOL : NET_CLOSED, m);
        return;
    }
    if (kind == NET_OK)
        kind = NET_CLOSED;
    snprintf(m, sizeof m, "connection closed before the response was complete (%s)", msg);
    session_end(s, kind, kind == NET_CANCELED ? msg : m);
}

static void on_conn_ready(struct conn *c, enum net_kind kind, const char *msg)
{
    on_conn_closed(c, kind, msg);
}

static void on_conn_drained(struct conn *c)
{
    struct h2_session *s = c->owner;
    if (s->blocked)
        h2_want_flush(s);
}

static const struct conn_handler session_handler = { NULL, NULL, on_conn_ready, on_conn_data,
                                                     on_conn_closed, on_conn_drained };

/* --- life of a session ----------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct h2_session *s = h->data;
    if (--s->handles > 0)
        return;
    nghttp2_session_del(s->ng);
    buf_free(&s->out);
    free(s);
}

static void session_free(void *mux)
{
    struct h2_session *s = mux;
    uv_close((uv_handle_t *)&s->flusher, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* Every request still attached ends or starts again; the connection closes. */
static void session_end(struct h2_session *s, enum net_kind kind, const char *msg)
{
    if (s->ended)
        return;
    s->ended = 1;
    uv_timer_stop(&s->timer);
    uv_prepare_stop(&s->flusher);
    s->flushing = 0;
    struct conn *c = s->conn;
    if (c)
        pool_unshare(s->net->pool, c);
    char copy[200];
    snprintf(copy, sizeof copy, "%s", msg ? msg : "connection closed");
    while (s->reqs) {
        struct request *r = s->reqs;
        int sent = r->mux_sent;
        unlink_req(s, r);
        if (!sent)
            request_mux_retry(r);
        else
            request_mux_lost(r, kind, copy);
    }
    s->conn = NULL;
    if (c)
        conn_close(c); /* the session is freed after the conn (session_free) */
    else
        session_free(s);
}

static void on_idle_timer(uv_timer_t *t)
{
    struct h2_session *s = t->data;
    if (s->pinging) {
        s->pinging = 0;
        session_end(s, NET_CLOSED, "no answer to PING: the connection is dead");
        return;
    }
    if (s->nreqs == 0)
        session_end(s, NET_OK, "idle");
}

/* Requests held back (a PING check, or the server's first SETTINGS) go out. */
static void release_held(struct h2_session *s)
{
    /* Oldest first (the list is newest first). A submit may end requests and so change the
     * list: the search starts over each time. */
    while (!s->ended && !s->pinging && s->settings) {
        struct request *oldest = NULL;
        for (struct request *r = s->reqs; r; r = r->queue_next)
            if (r->held)
                oldest = r;
        if (!oldest)
            break;
        oldest->held = 0;
        submit(s, oldest);
    }
    h2_want_flush(s);
}

static int session_init(struct h2_session *s, struct net *n)
{
    s->net = n;
    if (!callbacks() || !options() || nghttp2_session_client_new2(&s->ng, callbacks(), s, options()))
        return -1;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
    };
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW)) {
        nghttp2_session_del(s->ng);
        return -1;
    }
    uv_prepare_init(n->loop, &s->flusher);
    uv_timer_init(n->loop, &s->timer);
    s->flusher.data = s->timer.data = s;
    s->handles = 2;
    return 0;
}

static int h2_session_new(struct net *n, struct conn *c)
{
    struct h2_session *s = calloc(1, sizeof *s);
    if (!s || session_init(s, n)) {
        free(s);
        return -1;
    }
    s->conn = c;
    c->mux = s;
    c->mux_free = session_free;
    conn_set_owner(c, &session_handler, s);
    pool_share(n->pool, c); /* out of memory: the session is simply not shared */
    h2_want_flush(s);          /* the preface and SETTINGS go out with the first request */
    return 0;
}

static int h2_room(void *mux)
{
    struct h2_session *s = mux;
    return !s->ended && !s->goaway && nghttp2_session_check_request_allowed(s->ng);
}

/* --- streams --------------------------------------------------------------- */

static void submit(struct h2_session *s, struct request *r)
{
    struct buf scratch = {0};
    struct h2_field *f = NULL;
    int n = h2_request_fields(r, &scratch, &f);
    nghttp2_nv stack_nv[32], *nv = n <= 32 ? stack_nv : malloc((size_t)(n > 0 ? n : 1) * sizeof *nv);
    int32_t id = NGHTTP2_ERR_NOMEM;
    if (n >= 0 && nv) {
        for (int i = 0; i < n; i++) {
            nv[i].name = (uint8_t *)f[i].name;
            nv[i].namelen = f[i].nlen;
            nv[i].value = (uint8_t *)f[i].value;
            nv[i].valuelen = f[i].vlen;
            /* the request's strings outlive this call; nghttp2 copies the fields anyway */
            nv[i].flags = NGHTTP2_NV_FLAG_NONE;
        }
        nghttp2_data_provider prd = { .source.ptr = r, .read_callback = read_body };
        r->body_sent = 0;
        struct request_stream *u = r->stream;
        int streamed = u && u->upload;
        if (streamed) { /* a resend (another connection) starts the file again */
            u->file_off = u->upload_fn ? 0 : u->file_start;
            u->upload_done = u->upload_want = u->upload_ask = 0;
            buf_reset(&u->pending);
        }
        int has_data = streamed ? (u->upload_fn || u->file_size > u->file_start) : r->has_body && r->body_len;
        id = nghttp2_submit_request(s->ng, NULL, nv, (size_t)n, has_data ? &prd : NULL, r);
    }
    if (nv != stack_nv)
        free(nv);
    free(f);
    buf_free(&scratch);
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
        s->goaway = 1;
        if (s->conn)
            pool_unshare(s->net->pool, s->conn);
        unlink_req(s, r);
        request_mux_retry(r);
        return;
    }
    if (id < 0) {
        h2_end_req(s, r, NET_INVALID, id == NGHTTP2_ERR_NOMEM ? "out of memory" : nghttp2_strerror(id));
        return;
    }
    r->stream_id = id;
    h2_want_flush(s);
}

static void attach(struct h2_session *s, struct request *r, double ping_timeout)
{
    int was_idle = s->nreqs == 0;
    if (!request_resp_new(r)) {
        if (was_idle) /* nobody else holds the session: its idle timer runs as if r had ended */
            became_idle(s);
        request_mux_finish(r, NET_INVALID, "out of memory");
        return;
    }
    /* as before this response was made lazily: HTTP/2 decodes as the body arrives, outside the
     * shared inflate budget */
    r->resp->raw_body = 0;
    http_response_share_budget(r->resp, NULL, 0);
    r->resp_ready = 1;
    r->stream_id = 0;
    r->mux_sent = 0;
    r->mux_rst_recv = 0;
    link_req(s, r);
    /* The HTTP/1.1 stale rule (one retry when a pooled connection dies under a request) is
     * for a session that was idle when r took it; a busy one that dies fails its requests. */
    if (!was_idle)
        r->stale_retry_done = 1;
    if (was_idle && s->conn) {
        uv_timer_stop(&s->timer);
        conn_hold_loop(s->conn, 1);
        /* idle for a while in the pool: make sure the peer is still there before using it */
        if (s->served && uv_now(s->net->loop) - s->idle_since >= H2_PING_AFTER_MS && !s->pinging &&
            nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL) == 0) {
            s->pinging = 1;
            uint64_t ms = ping_timeout > 0 ? (uint64_t)(ping_timeout * 1000) : H2_PING_TIMEOUT_MS;
            uv_timer_start(&s->timer, on_idle_timer, ms, 0);
        }
    }
    s->served = 1;
    /* Until the server's SETTINGS say how many streams it takes, one goes out: the others would
     * risk a REFUSED_STREAM, and a retry on a new connection. */
    if (s->pinging || (!s->settings && s->nreqs > 1)) {
        r->held = 1;
        h2_want_flush(s);
        return;
    }
    submit(s, r);
}

static void h2_attach(struct conn *c, struct request *r)
{
    attach(c->mux, r, r->timeouts.connect);
}

static void h2_detach(struct request *r)
{
    if (!r->attached)
        return;
    struct h2_session *s = r->via.mux;
    int32_t id = r->stream_id;
    int sent = r->mux_sent;
    unlink_req(s, r);
    if (s->ended || id <= 0)
        return;
    /* before its HEADERS went out, the cleared user data cancels them (before_frame_send) */
    if (sent && !(nghttp2_session_get_stream_local_close(s->ng, id) &&
                  nghttp2_session_get_stream_remote_close(s->ng, id)))
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h2_want_flush(s);
}

const struct proto_mux_ops proto_h2 = { "HTTP/2", h2_session_new, h2_room, h2_attach, h2_detach };

/* --- fuzzing ----------------------------------------------------------------- */

static void fuzz_done(struct request *r)
{
    (void)r;
}

int h2_fuzz_input(const uint8_t *data, size_t len)
{
    static uv_loop_t loop;
    static struct net net;
    static int ready;
    if (!ready) {
        uv_loop_init(&loop);
        net_init(&net, &loop);
        ready = 1;
    }
    struct h2_session *s = calloc(1, sizeof *s);
    if (!s || session_init(s, &net)) {
        free(s);
        return 0;
    }
    s->fuzz = 1;
    struct request *r = request_new(&net);
    char err[64];
    /* a retry (GOAWAY, REFUSED_STREAM) goes to a closed loopback port, and is canceled below */
    if (!r || url_parse(&r->url, "http://127.0.0.1:9/x", err, sizeof err) || !(r->method = strdup("GET")) ||
        buf_puts(&r->key, "http://127.0.0.1:9 h2c")) {
        if (r)
            request_discard(r);
        session_end(s, NET_CLOSED, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        return 0;
    }
    r->done = fuzz_done;
    r->http2 = REQUEST_HTTP2_PRIOR;
    r->stale_retry_done = 1;
    r->max_body = 1 << 20;
    r->starting = 0;
    net.stats.in_flight++;
    attach(s, r, 0);
    flush(s);
    /* the server's preface (SETTINGS) is expected first: the input is framed as it comes */
    if (!s->ended) {
        ssize_t rv = nghttp2_session_mem_recv(s->ng, data, len);
        if (!s->ended) {
            if (rv < 0)
                session_end(s, NET_PROTOCOL, nghttp2_strerror((int)rv));
            else
                flush(s);
        }
    }
    request_cancel(r); /* nothing if it ended already (freed by the loop run below) */
    session_end(s, NET_CLOSED, "fuzz input ended");
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
