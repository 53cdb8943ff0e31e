/* request_internal.h — what request.c (the lifecycle), request_timers.c (its deadlines) and
 * request_stream.c (streamed bodies) share; not for other files. Ownership is as in request.h. */
#ifndef LUAFETCH_REQUEST_INTERNAL_H
#define LUAFETCH_REQUEST_INTERNAL_H

#include <stddef.h>
#include <uv.h>

#include "conn.h"
#include "net.h"
#include "request.h"

struct request;

enum phase { PH_NEW, PH_DNS, PH_QUEUED, PH_CONNECT, PH_TLS, PH_WAIT, PH_DONE };

/* Ends the exchange once (kind, message); done runs now or, inside request_start, next turn. */
void request_finish(struct request *r, enum net_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The request whose timer queue entry e is. */
static inline struct request *request_of_entry(struct timerq_entry *e)
{
    return (struct request *)((char *)e - offsetof(struct request, tq));
}
/* Frees r and everything it owns, now (request_free_later's end). */
void request_free_now(struct request *r);
/* Sets r's timer queue entry to its nearest deadline (request_timers.c). */
void request_arm_timer(struct request *r);
/* Starts the next connect attempt of r's race (request.c; the race's timer calls it). */
void request_start_attempt(struct request *r);
/* Streamed bodies (request_stream.c): the next upload piece once the kernel took the last; the
 * consumer woken for new response bytes (reading paused when it is behind); the conn drained. */
void request_upload_pump(struct request *r);
void request_stream_progress(struct request *r);
void request_on_drained(struct conn *c);

#endif
