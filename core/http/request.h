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

/* Connection attempts of one request in flight at once; the next address starts this long after
 * the last one without an answer (RFC 8305's recommended Connection Attempt Delay). */
#define REQUEST_MAX_ATTEMPTS 8
#define REQUEST_ATTEMPT_DELAY_MS 250
/* Bodies up to this size travel in the same write as the head. */
#define REQUEST_INLINE_BODY_MAX (16 * 1024)

struct proto_ops;

enum request_proxy_kind { PROXY_NONE, PROXY_HTTP, PROXY_SOCKS5, PROXY_SOCKS5H };

/* The proxy a request goes through (chosen by lua/http.lua), allocated only for requests that
 * use one. Owned by the request with its strings (request_proxy_free). */
struct request_proxy {
    enum request_proxy_kind kind;
    char *host;
    int port;
    char *user, *pass;          /* NULL when the proxy URL had none */
    struct sockaddr_storage origin_addr;  /* socks5 (not socks5h): the origin, resolved here */
    int origin_resolved;
};

void request_proxy_free(struct request_proxy *p);

/* Happy Eyeballs (RFC 8305) while connecting: attempts racing to the addresses, the first to
 * connect wins. Allocated for the connect phase only (a pooled connection needs none). */
struct connect_race {
    struct conn *attempts[REQUEST_MAX_ATTEMPTS];
    int n;
    uint64_t next_at;           /* uv_now ms to start the next address, 0 = none */
    char *last_err;             /* the latest attempt's failure, for the final message */
};

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
    struct request_proxy *proxy;   /* NULL: direct */
    const struct proto_ops *proto; /* the wire format (proto.h) */
    request_done_fn done;
    void *data;

    /* outcome, valid in done */
    enum net_kind kind;         /* NET_OK or the failure */
    char *err;                  /* failure message (malloc'd), NULL on success */
    struct http_response resp;
    struct request_timings timings;
    struct tls_info tls_info;   /* valid when has_tls_info */
    int reused;                 /* served over a pooled connection */
    int has_tls_info;
    int tls_resumed;            /* the handshake resumed a cached session */

    /* private */
    struct buf wire;            /* serialised head (+ small body) */
    struct buf key;             /* pool key */
    struct dns_waiter dns;
    struct dns_addrs *addrs;
    int addr_index;             /* the next address to try */
    struct conn *conn;          /* the connection in use, once one has connected */
    struct connect_race *race;  /* while connecting */
    uv_timer_t timer;
    /* Flags kept small: struct request stays in malloc's small-chunk (tcache) sizes. */
    unsigned char phase;
    unsigned starting : 1;      /* inside request_start: defer completion */
    unsigned finished : 1;
    unsigned stale_retry_done : 1;
    unsigned queued : 1;
    unsigned done_pending : 1;  /* completion deferred to the next loop turn */
    unsigned resp_ready : 1;    /* resp initialised */
    uint64_t t0;                /* uv_hrtime at start */
    uint64_t phase_t0;
    uint64_t deadline_total;    /* uv_now ms, 0 = none */
    uint64_t deadline_phase;
    uint64_t last_activity;
    struct request *queue_next; /* waiting for a connect slot */
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
