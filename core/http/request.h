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
#include "timerq.h"
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

/* The TLS files a request names, allocated only when it names one; owned, with the strings. */
struct request_tls_files {
    char *ca_file, *cert_file, *key_file;
};

/* Body bytes buffered for a streamed response beyond which the socket is not read (HTTP/1.1) or
 * the stream's window not reopened (HTTP/2) until the consumer takes them. */
#define REQUEST_STREAM_HIGH (256 * 1024)

/* Pieces of a request body read from a file or asked of the caller, one at a time. */
#define REQUEST_UPLOAD_PIECE (64 * 1024)

/* Streaming state, allocated only for requests that stream (owned and freed by the request):
 *  - a streamed response (the stream option, resp): the call returns after the head and the
 *    consumer takes the body from r->resp->body as it arrives;
 *  - a streamed request body (upload): read from a file descriptor (Content-Length), or asked
 *    of the caller piece by piece (sent chunked), each piece only once the last one was written. */
struct request_stream {
    /* The head is in, body bytes arrived, or the next body piece is wanted (not called when r
     * finishes: done is). */
    void (*wake)(struct request *r);
    void *waiter;               /* the binding's: the task waiting for the next event */
    void *handle;               /* the binding's: its handle on r, once the head was given out */
    uint64_t taken;             /* body bytes the consumer took */
    size_t unacked;             /* HTTP/2: DATA bytes not yet given back to the stream's window */
    unsigned head_sent : 1;     /* wake ran for the head */
    unsigned held : 1;          /* the consumer holds r: it stays after done until request_close */
    unsigned in_done : 1;       /* done is running */
    unsigned paused : 1;        /* waiting for the consumer: the read timeout does not run */
    unsigned resp : 1;          /* the response is streamed */
    unsigned upload : 1;        /* the body is streamed: from fd, or asked for (upload_fn) */
    unsigned upload_fn : 1;
    unsigned upload_sized : 1;  /* upload_fn with a declared size: Content-Length, not chunked */
    unsigned upload_want : 1;   /* upload_fn: the next piece is wanted (request_upload_push) */
    unsigned upload_ask : 1;    /* HTTP/2: wake the binding for that piece after the flush */
    unsigned upload_done : 1;   /* every byte of the body was handed to the connection */
    unsigned upload_began : 1;  /* some of it was, or its function was asked (no resend then) */
    int fd;                     /* file upload: owned (a dup), -1 when none */
    /* a file: offsets in fd, the body is [start, size); a sized function: off counts the bytes
     * it gave, size is the declared size */
    uint64_t file_start, file_off, file_size;
    struct buf decoded;         /* a coded streamed body: the piece decoded for the consumer */
    struct buf pending;         /* HTTP/2: a function's piece not yet taken into DATA frames */
};

/* The http2 option: HTTP/1.1 only, h2 offered by ALPN on https (the default), or h2c spoken at
 * once on plain http (prior knowledge). */
enum request_http2 { REQUEST_HTTP2_OFF, REQUEST_HTTP2_ON, REQUEST_HTTP2_PRIOR };

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

/* Name resolution, then Happy Eyeballs (RFC 8305) while connecting: attempts racing to the
 * addresses, the first to connect wins. Allocated from the DNS phase until TCP is up (a pooled
 * connection needs none, nor does a request waiting for a connect slot or for its response). */
struct connect_race {
    struct dns_waiter dns;
    struct request *r;          /* the owner, for the DNS callback */
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
    struct request_timeouts timeouts;
    size_t max_body;
    struct request_tls_files *tls_files; /* NULL: none named (the default trust, no client cert) */
    struct request_proxy *proxy;   /* NULL: direct */
    struct request_stream *stream; /* NULL: the body is collected in r->resp->body */
    const struct proto_ops *proto; /* the wire format (proto.h) */
    request_done_fn done;
    void *data;

    int addr_index;             /* private: the next address to try (placed to fill a hole) */
    uint32_t unsent_seen;       /* private: conn_unsent (mod 2^32) at the last read-timeout check */
    /* outcome, valid in done (kind, reused, has_tls_info and tls_resumed are with the flags) */
    char *err;                  /* failure message (malloc'd), NULL on success */
    /* the response: made at its first byte (HTTP/1.1) or when r joins an HTTP/2 session, so a
     * request waiting for its answer holds none; owned, freed by proto->release */
    struct http_response *resp;
    struct request_timings timings;
    struct tls_info tls_info;   /* valid when has_tls_info */

    /* private */
    struct buf wire;            /* serialised head (+ small body) */
    struct buf key;             /* pool key */
    struct dns_addrs *addrs;
    struct conn *conn;          /* the connection in use, once one has connected */
    struct connect_race *race;  /* while resolving and connecting */
    struct timerq_entry tq;     /* in net->timers: the nearest deadline, a deferred done, the free */
    /* Flags kept small: struct request stays in malloc's small-chunk (tcache) sizes. */
    unsigned char phase;
    unsigned char http2;        /* enum request_http2 */
    unsigned char kind;         /* outcome: enum net_kind, NET_OK or the failure */
    unsigned reused : 1;        /* outcome: served over a pooled connection */
    unsigned has_tls_info : 1;  /* outcome: tls_info is valid */
    unsigned tls_resumed : 1;   /* outcome: the handshake resumed a cached session */
    unsigned has_body : 1;      /* what to send: a body (maybe empty) with Content-Length */
    unsigned decompress : 1;    /* what to send: Accept-Encoding, and decode the body */
    unsigned tls_verify : 1;    /* what to send: https checks the chain and the name (the default) */
    unsigned starting : 1;      /* inside request_start: defer completion */
    unsigned finished : 1;
    unsigned stale_retry_done : 1;
    unsigned queued : 1;
    unsigned done_pending : 1;  /* completion deferred to the next loop turn */
    unsigned resp_ready : 1;    /* a response is expected: proto->begin ran (resp may still be NULL) */
    unsigned waiting : 1;       /* in a leader's list (via.leader) */
    unsigned attached : 1;      /* a stream of a session (via.mux) */
    unsigned held : 1;          /* attached, not submitted yet: the session checks itself first */
    unsigned leading : 1;       /* r's connect is the pending one of its key */
    unsigned no_wait : 1;       /* connect on its own: the leader's answer was HTTP/1.1, or it failed */
    unsigned mux_sent : 1;      /* r's HEADERS went out */
    unsigned mux_rst_recv : 1;  /* the server reset r's stream */
    unsigned mux_retries : 3;   /* restarts after refusals */
    uint64_t t0;                /* uv_hrtime at start */
    uint64_t phase_t0;
    uint64_t deadline_total;    /* uv_now ms, 0 = none */
    uint64_t deadline_phase;
    uint64_t last_activity;
    struct request *queue_next; /* waiting for a connect slot (or see below) */
    /* HTTP/2 (proto.h's multiplexing seam). While the first connection of a key that may speak
     * h2 is set up, its request leads and the others for the key wait in its list (linked by
     * queue_next, which a waiting request does not use otherwise); a request attached to a session
     * is in the session's list (queue_next, mux_prev). */
    union {
        struct request *leader; /* while waiting: the request r waits for */
        void *mux;              /* while attached: the session r is a stream of (h2.c) */
    } via;
    struct request *waiters;    /* as a leader: the requests waiting for its ALPN answer */
    struct request *mux_prev;
    uint32_t body_sent;         /* request body bytes handed to the session (bodies < 2 GiB) */
    int32_t stream_id;          /* 0 until submitted */
};

struct request *request_new(struct net *net);
/* Makes r->resp (freeing one from an earlier try), set for r's limits: NULL when out of memory. */
struct http_response *request_resp_new(struct request *r);
/* The TLS options of r's connections (strings borrowed from r). */
void request_tls_options(const struct request *r, struct tls_options *o);
/* Response bytes received so far (0 before any). */
static inline size_t request_bytes_in(const struct request *r)
{
    return r->resp ? r->resp->bytes_in : 0;
}
/* Frees a request that was never started. */
void request_discard(struct request *r);
/* Starts the exchange; done runs later, never inside this call. */
void request_start(struct request *r);
/* Stops everything; done will not run. The request frees itself. */
void request_cancel(struct request *r);
/* Frees r on the next loop turn (what request_close and request_discard come to). */
void request_free_later(struct request *r);
/* Whether r's deadlines keep the loop running (see request_hold_loop). */
void request_timer_hold(struct request *r, int hold);
/* Makes r a streamed request (before request_start): 0 or -1 (out of memory). */
int request_stream_enable(struct request *r);
/* The body comes from fd (owned by r from now on; closed with it), bytes [offset, size), sent with
 * Content-Length. 0 or -1 (out of memory: fd is closed). */
int request_upload_file(struct request *r, int fd, uint64_t offset, uint64_t size);
/* The body is asked for piece by piece through stream->wake (upload_want set), sent chunked over
 * HTTP/1.1. */
int request_upload_function(struct request *r);
/* A function body's declared size (after request_upload_function): sent with Content-Length,
 * and the pieces must add up to it. */
void request_upload_size(struct request *r, uint64_t size);
/* The next piece of a function body (copied), len 0 for the end. */
void request_upload_push(struct request *r, const char *data, size_t len);
/* Whether r keeps the loop running: a streamed response nobody is reading from does not, so a
 * script that ends without reading its body to the end ends (the body is closed then). */
void request_hold_loop(struct request *r, int hold);
/* A coded streamed body (r->resp.raw_body with a decoder): decodes the next piece (at most about
 * REQUEST_UPLOAD_PIECE bytes, fed 512 coded bytes at a time so a highly compressed body cannot
 * expand at once) into stream->decoded, consuming what it used of r->resp->body. 0, or -1 on
 * corrupt data (static reason in *err). */
int request_stream_decode(struct request *r, const char **err);
/* The consumer took n body bytes from r->resp->body (and reset it): reading resumes. */
void request_stream_took(struct request *r, size_t n);
/* The consumer lets go of a streamed request: it ends at once if unfinished (its connection is
 * closed), and is freed (now, or after done returns when called from inside done). */
void request_close(struct request *r);
/* Whether r may be carried by HTTP/2: https with h2 offered, or h2c by prior knowledge (never
 * through a forwarding HTTP proxy, which speaks HTTP/1.1 for plain http). */
int request_may_mux(const struct request *r);
/* GET, HEAD, PUT, DELETE, OPTIONS, TRACE: safe to send twice. */
int request_is_idempotent(const char *method);

#endif
