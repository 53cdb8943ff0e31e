/* request_stream.c — a request's streamed bodies: the response handed to its consumer as it comes
 * (reading paused while the consumer is behind) and request bodies sent from a file or a function,
 * a piece at a time. The per-request stream state is allocated on first use and freed with the
 * request (request.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "h2.h"
#include "request.h"
#include "request_internal.h"

static struct request_stream *stream_of(struct request *r)
{
    if (!r->stream)
        r->stream = calloc(1, sizeof *r->stream);
    return r->stream;
}

int request_stream_enable(struct request *r)
{
    if (!stream_of(r))
        return -1;
    r->stream->resp = 1;
    r->max_body = SIZE_MAX; /* max_body bounds a collected body only */
    return 0;
}

int request_upload_file(struct request *r, int fd, uint64_t offset, uint64_t size)
{
    struct request_stream *s = stream_of(r);
    if (!s || s->upload) {
        close(fd);
        return -1;
    }
    s->upload = 1;
    s->fd = fd;
    s->file_start = s->file_off = offset;
    s->file_size = size;
    r->has_body = 1;
    r->body_len = size - offset;
    return 0;
}

int request_upload_function(struct request *r)
{
    struct request_stream *s = stream_of(r);
    if (!s || s->upload)
        return -1;
    s->upload = 1;
    s->upload_fn = 1;
    r->has_body = 0; /* no Content-Length: Transfer-Encoding: chunked (proto_h1.c) */
    return 0;
}

void request_upload_size(struct request *r, uint64_t size)
{
    r->stream->upload_sized = 1;
    r->stream->file_size = size;
    r->has_body = 1;
    r->body_len = (size_t)size;
}

/* Hands the body to the connection, a piece at a time: the next piece only once the kernel took
 * the last one (the conn's drained event calls this again). */
void request_upload_pump(struct request *r)
{
    struct request_stream *s = r->stream;
    struct conn *c = r->conn;
    char piece[REQUEST_UPLOAD_PIECE];
    while (s && s->upload && !s->upload_done && !r->finished && c && r->conn == c &&
           conn_write_queued(c) == 0) {
        if (s->upload_fn) {
            if (!s->upload_want) {
                s->upload_began = 1; /* asked: what it gives cannot be given to a resend */
                s->upload_want = 1;
                if (!r->starting) /* else the caller sees upload_want when request_start returns */
                    s->wake(r);
            }
            return;
        }
        uint64_t left = s->file_size - s->file_off;
        size_t n = left < sizeof piece ? (size_t)left : sizeof piece;
        ssize_t got = n ? pread(s->fd, piece, n, (off_t)s->file_off) : 0;
        if (got <= 0 && left) {
            request_finish(r, NET_INVALID, "cannot read the request body file: %s",
                   got < 0 ? strerror(errno) : "it is shorter than its size");
            return;
        }
        s->file_off += (uint64_t)got;
        s->upload_began = 1;
        s->upload_done = s->file_off >= s->file_size;
        if (got > 0 && conn_write(c, piece, (size_t)got))
            return; /* the read side reports the failure */
    }
}

void request_upload_push(struct request *r, const char *data, size_t len)
{
    struct request_stream *s = r->stream;
    struct conn *c = r->conn;
    s->upload_want = 0;
    if (r->finished || s->upload_done)
        return;
    if (s->upload_sized) {
        /* the pieces must add up to the Content-Length sent ahead of them */
        if (len > s->file_size - s->file_off || (!len && s->file_off < s->file_size)) {
            request_finish(r, NET_INVALID, "body: the function gave %s than the body_size of %llu bytes",
                           len ? "more" : "fewer", (unsigned long long)s->file_size);
            return;
        }
        s->file_off += len;
    }
    if (r->attached) { /* a stream of an HTTP/2 session (r->via.mux) */
        h2_upload_push(r, data, len);
        return;
    }
    if (!c || r->phase != PH_WAIT) {
        /* no resend follows an asked function (upload_began), so this cannot happen: never
         * write on a connection being set up */
        request_finish(r, NET_INVALID, "body: a piece came while the request had no connection");
        return;
    }
    s->upload_began = 1;
    char head[32];
    int rc;
    if (s->upload_sized) {
        s->upload_done = !len || s->file_off == s->file_size;
        rc = len ? conn_write(c, data, len) : 0;
    } else if (len) {
        int hl = snprintf(head, sizeof head, "%zx\r\n", len);
        rc = conn_write(c, head, (size_t)hl) || conn_write(c, data, len) || conn_write(c, "\r\n", 2);
    } else {
        s->upload_done = 1;
        rc = conn_write(c, "0\r\n\r\n", 5);
    }
    if (rc == 0 && !r->finished)
        request_upload_pump(r);
}

void request_on_drained(struct conn *c)
{
    struct request *r = c->owner;
    if (r->phase == PH_WAIT)
        request_upload_pump(r);
}

/* After response bytes went into r->resp: the head or body bytes for the consumer, and reading
 * stops while it is behind. */
void request_stream_progress(struct request *r)
{
    struct request_stream *s = r->stream;
    if (!s->resp || !r->resp || !r->resp->headers_done || r->finished)
        return;
    if (r->resp->body.len >= REQUEST_STREAM_HIGH) {
        s->paused = 1;
        if (r->conn)
            conn_pause(r->conn);
    }
    if (!s->head_sent || r->resp->body.len) {
        s->head_sent = 1;
        s->wake(r);
    }
}

int request_stream_decode(struct request *r, const char **err)
{
    struct request_stream *s = r->stream;
    struct http_response *p = r->resp;
    size_t used = 0;
    buf_reset(&s->decoded);
    while (used < p->body.len && s->decoded.len < REQUEST_UPLOAD_PIECE) {
        size_t n = p->body.len - used < 512 ? p->body.len - used : 512;
        if (decoder_feed(p->decoder, p->body.data + used, n, &s->decoded, SIZE_MAX, err) < 0)
            return -1;
        used += n;
    }
    memmove(p->body.data, p->body.data + used, p->body.len - used);
    p->body.len -= used;
    return 0;
}

void request_stream_took(struct request *r, size_t n)
{
    struct request_stream *s = r->stream;
    s->taken += n;
    if (r->finished || r->resp->body.len >= REQUEST_STREAM_HIGH)
        return;
    if (s->paused) {
        s->paused = 0;
        r->last_activity = uv_now(r->net->loop);
        if (r->conn)
            conn_resume(r->conn);
    }
    if (s->unacked) {
        h2_consumed(r, s->unacked);
        s->unacked = 0;
    }
}

void request_hold_loop(struct request *r, int hold)
{
    request_timer_hold(r, hold);
    if (r->conn)
        conn_hold_loop(r->conn, hold);
}

void request_close(struct request *r)
{
    struct request_stream *s = r->stream;
    s->held = 0;
    s->handle = NULL;
    s->waiter = NULL;
    if (!r->finished || r->done_pending) {
        request_cancel(r); /* the connection is closed, not drained */
        return;
    }
    if (!s->in_done)
        request_free_later(r);
}

