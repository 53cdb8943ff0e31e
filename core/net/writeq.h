/* writeq.h — writing to a libuv stream: uv_try_write first, only the remainder copied and sent
 * by one uv_write at a time. Embedded in its owner (client conn, server conn); writeq_free
 * releases the buffers, in the owner's close callback. */
#ifndef LUAFETCH_WRITEQ_H
#define LUAFETCH_WRITEQ_H

#include <uv.h>

#include "buf.h"

struct writeq;
/* status 0: everything queued has been written; negative: a uv error (the owner closes). */
typedef void (*writeq_cb)(struct writeq *q, int status);

struct writeq {
    uv_stream_t *stream;
    writeq_cb cb;
    struct buf flight;      /* bytes handed to uv_write */
    struct buf pending;     /* bytes queued behind them */
    int writing;
};

void writeq_init(struct writeq *q, uv_stream_t *stream, writeq_cb cb);
/* 0 when the bytes were written at once or queued (cb runs once the queue drains); a negative
 * uv error when the stream refused them at once or memory ran out (cb does not run for that). */
int writeq_write(struct writeq *q, const uv_buf_t *b, unsigned n);
/* 1 while bytes wait to be written. */
int writeq_busy(const struct writeq *q);
void writeq_free(struct writeq *q);

#endif
