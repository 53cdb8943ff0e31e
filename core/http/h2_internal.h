/* h2_internal.h — what h2.c (the session: connection, frames out, streams) and h2_response.c (a
 * stream's response: head, body, completion) share: the session struct and the calls that end a
 * request's stream. Sessions are owned and freed by h2.c; requests by request.c. */
#ifndef LUAFETCH_H2_INTERNAL_H
#define LUAFETCH_H2_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "buf.h"
#include "net.h"

struct request;

struct h2_session {
    nghttp2_session *ng;
    struct net *net;
    struct conn *conn;          /* NULL once the session ended */
    uv_prepare_t flusher;       /* sends gathered frames before the loop polls */
    uv_timer_t timer;           /* idle expiry, or the PING check's deadline */
    struct buf out;
    struct request *reqs;       /* attached requests (queue_next, mux_prev) */
    int nreqs;
    int handles;                /* open handles; the struct is freed when the last one closes */
    uint64_t idle_since;        /* uv_now ms when the last request left */
    uint32_t goaway_code;
    char err[160];              /* what nghttp2 said about a connection error */
    unsigned flushing : 1;      /* flusher started */
    unsigned blocked : 1;       /* waiting for the kernel to drain before making frames */
    unsigned served : 1;        /* carried a request before: a candidate for the PING check */
    unsigned pinging : 1;       /* a PING is out; attached requests are held */
    unsigned settings : 1;      /* the server's SETTINGS arrived (its stream limit is known) */
    unsigned goaway : 1;        /* no new streams: GOAWAY received or a stream refused */
    unsigned ended : 1;
    unsigned sent_error : 1;    /* we sent GOAWAY with an error: the server broke the protocol */
    unsigned fuzz : 1;          /* no conn: frames are dropped (the fuzz harness) */
    unsigned uploads_asked : 1; /* a stream wants its function body's next piece (wake_uploads) */
};

/* The request on stream id, or NULL (it left, or the session ended). */
static inline struct request *h2_req_of(struct h2_session *s, int32_t id)
{
    return s->ended ? NULL : nghttp2_session_get_stream_user_data(s->ng, id);
}

/* Ends r's part in the session, then its exchange (request_mux_finish). */
void h2_end_req(struct h2_session *s, struct request *r, enum net_kind kind, const char *msg);
/* r's stream fails with its response's reason (or kind/why when it has none) and is reset; the
 * other streams go on. Returns 0 (what an nghttp2 callback returns to carry on). */
int h2_fail_stream(struct h2_session *s, struct request *r, enum net_kind kind, const char *why);
/* Frames are waiting: they go out before the loop next polls. */
void h2_want_flush(struct h2_session *s);

/* h2_response.c: nghttp2's callbacks for a response (ud: the session) */
int h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud);
int h2_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t nlen,
                 const uint8_t *value, size_t vlen, uint8_t flags, void *ud);
int h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                     void *ud);
/* The final response head is in: its decoder set up. -1: out of memory (the reason in r->resp). */
int h2_headers_done(struct request *r);
/* The stream ended cleanly: r finishes (or fails, a coded body cut short). */
void h2_response_complete(struct h2_session *s, struct request *r);

#endif
