/* request_internal.h — what request.c (the lifecycle) and request_stream.c (streamed bodies)
 * share; not for other files. Ownership is as in request.h. */
#ifndef LUAFETCH_REQUEST_INTERNAL_H
#define LUAFETCH_REQUEST_INTERNAL_H

#include <uv.h>

#include "conn.h"
#include "net.h"

struct request;

enum phase { PH_NEW, PH_DNS, PH_QUEUED, PH_CONNECT, PH_TLS, PH_WAIT, PH_DONE };

/* Ends the exchange once (kind, message); done runs now or, inside request_start, next turn. */
void request_finish(struct request *r, enum net_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Streamed bodies (request_stream.c): the next upload piece once the kernel took the last; the
 * consumer woken for new response bytes (reading paused when it is behind); the conn drained. */
void request_upload_pump(struct request *r);
void request_stream_progress(struct request *r);
void request_on_drained(struct conn *c);

#endif
