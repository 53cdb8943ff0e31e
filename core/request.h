/* request.h — one HTTP exchange: resolve, connect (or reuse), TLS, send, receive, and its timers.
 * The caller fills a request from request_new, starts it, and gets exactly one done callback
 * (unless it cancels first). The request frees itself after done returns or after cancel. */
#ifndef LUAFETCH_REQUEST_H
#define LUAFETCH_REQUEST_H

#include <uv.h>

#include "buf.h"
#include "dns.h"
#include "http1.h"
#include "net.h"
#include "tls.h"
#include "url.h"

struct request_timeouts {
    double connect;   /* DNS + TCP connect, seconds; 0 = none */
    double tls;       /* TLS handshake */
    double read;      /* idle time between bytes once the request is sent */
    double total;     /* the whole exchange */
};

struct request_timings {
    double dns, connect, tls, ttfb, total;   /* seconds; 0 when the phase did not happen */
};

struct request;
typedef void (*request_done_fn)(struct request *r);

struct request {
    struct net *net;
    /* what to send (filled by the caller before request_start) */
    struct url url;
    char *method;
    struct http_head head;
    char *body;                 /* owned copy */
    size_t body_len;
    int has_body;
    struct request_timeouts timeouts;
    size_t max_body;
    int decompress;
    struct tls_options tls;     /* strings owned by the request */
    request_done_fn done;
    void *data;

    /* outcome, valid in done */
    enum net_kind kind;         /* NET_OK or the failure */
    char *err;                  /* failure message (malloc'd), NULL on success */
    struct http_response resp;
    struct request_timings timings;
    int reused;                 /* served over a pooled connection */
    struct tls_info tls_info;   /* valid when has_tls_info */
    int has_tls_info;
    int tls_resumed;            /* the handshake resumed a cached session */

    /* private */
    struct buf wire;            /* serialised head (+ small body) */
    struct buf key;             /* pool key */
    struct dns_waiter dns;
    struct dns_addrs *addrs;
    int addr_index;
    struct conn *conn;
    uv_timer_t timer;
    int phase;
    int starting;               /* inside request_start: defer completion */
    int finished;
    int stale_retry_done;
    uint64_t t0;                /* uv_hrtime at start */
    uint64_t phase_t0;
    uint64_t deadline_total;    /* uv_now ms, 0 = none */
    uint64_t deadline_phase;
    uint64_t last_activity;
    struct request *queue_next; /* waiting for a connect slot */
    int queued;
    int done_pending;           /* completion deferred to the next loop turn */
    int resp_ready;             /* resp initialised */
};

struct request *request_new(struct net *net);
/* Frees a request that was never started. */
void request_discard(struct request *r);
/* Starts the exchange; done runs later, never inside this call. */
void request_start(struct request *r);
/* Stops everything; done will not run. The request frees itself. */
void request_cancel(struct request *r);
/* GET, HEAD, PUT, DELETE, OPTIONS, TRACE: safe to send twice. */
int request_is_idempotent(const char *method);

#endif
