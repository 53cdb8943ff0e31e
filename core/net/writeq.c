/* writeq.c — writing to a libuv stream: uv_try_write first, only the remainder copied and sent
 * by one uv_write at a time. A uv_write_t is allocated only for that (rare) remainder and freed
 * in its callback; the buffers belong to the writeq until writeq_free. */
#include "writeq.h"

#include <stdlib.h>

void writeq_init(struct writeq *q, uv_stream_t *stream, writeq_cb cb)
{
    q->stream = stream;
    q->cb = cb;
    q->writing = 0;
}

static int start(struct writeq *q);

static void on_write(uv_write_t *req, int status)
{
    struct writeq *q = req->data;
    free(req);
    q->writing = 0;
    if (status < 0) {
        q->cb(q, status);
        return;
    }
    buf_reset(&q->flight);
    if (q->pending.len) {
        struct buf t = q->flight;
        q->flight = q->pending;
        q->pending = t;
        int rc = start(q);
        if (rc < 0)
            q->cb(q, rc);
        return;
    }
    q->cb(q, 0);
}

static int start(struct writeq *q)
{
    uv_write_t *req = malloc(sizeof *req);
    if (!req)
        return UV_ENOMEM;
    uv_buf_t b = uv_buf_init(q->flight.data, 0);
    b.len = q->flight.len; /* size_t on Unix: a queue over 4 GiB is not cut by an unsigned */
    req->data = q;
    int rc = uv_write(req, q->stream, &b, 1, on_write);
    if (rc < 0) {
        free(req);
        return rc;
    }
    q->writing = 1;
    return 0;
}

int writeq_write(struct writeq *q, const uv_buf_t *b, unsigned n)
{
    size_t done = 0;
    int idle = !q->writing && q->flight.len == 0;
    if (idle) {
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
            total += b[i].len;
        int w = uv_try_write(q->stream, b, n);
        if (w < 0 && w != UV_EAGAIN)
            return w;
        done = w > 0 ? (size_t)w : 0;
        if (done == total)
            return 0;
    }
    struct buf *dst = q->writing ? &q->pending : &q->flight;
    for (unsigned i = 0; i < n; i++) {
        if (done >= b[i].len) {
            done -= b[i].len;
            continue;
        }
        if (buf_append(dst, b[i].base + done, b[i].len - done))
            return UV_ENOMEM;
        done = 0;
    }
    return q->writing ? 0 : start(q);
}

int writeq_busy(const struct writeq *q)
{
    return q->writing || q->flight.len || q->pending.len;
}

void writeq_free(struct writeq *q)
{
    buf_free(&q->flight);
    buf_free(&q->pending);
}
