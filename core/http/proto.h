/* proto.h — the seams between the request lifecycle (request.c: connections, timers, retries,
 * pool) and an HTTP wire format. A protocol is one of two kinds:
 *  - per request (HTTP/1.1, proto_h1.c): the request owns its connection while it is in use and
 *    feeds it the connection's bytes; its state lives in r->resp and is freed by release.
 *  - per connection (HTTP/2, h2.c): a session owns the connection and carries many requests at
 *    once, one stream each; request.c attaches requests to it and detaches them, and the session
 *    ends each one through the request_mux_* calls below. r->resp is filled the same way. */
#ifndef LUAFETCH_PROTO_H
#define LUAFETCH_PROTO_H

#include <stddef.h>

#include "buf.h"
#include "net.h"

struct request;
struct conn;

struct proto_ops {
    const char *name;
    /* The request as bytes for the wire (the head, and a small body after it) into out. 0 or -1
     * (out of memory). Runs once per request, when its first connection is ready. */
    int (*encode)(struct request *r, struct buf *out);
    /* A connection is ready for r: get ready to read its response. */
    void (*begin)(struct request *r);
    /* Response bytes. 1: the response is complete; 0: more to come; -1: refused (kind and
     * reason in r->resp). */
    int (*input)(struct request *r, const char *data, size_t len);
    /* The connection ended cleanly: 0 when that completes the response, -1 when it cuts it. */
    int (*eof)(struct request *r);
    /* 1 if, after r's complete response, the connection may carry another request. */
    int (*reusable)(const struct request *r);
    /* Frees the exchange state begin set up (safe to call when begin never ran). */
    void (*release)(struct request *r);
};

extern const struct proto_ops proto_h1;

/* A multiplexing protocol: one session per connection, one stream per request. */
struct proto_mux_ops {
    const char *name;
    /* Takes the ready conn c over: the session becomes its owner and lists it as shared in the
     * pool. 0, or -1 (out of memory; c is untouched and still the caller's). */
    int (*session_new)(struct net *n, struct conn *c);
    /* 1 if the session of a shared conn (c->mux) takes another request now. */
    int (*room)(void *mux);
    /* r becomes a stream of the session of c; its response arrives in r->resp. */
    void (*attach)(struct conn *c, struct request *r);
    /* r gives up or is done (finish, cancel, timeout): its stream is reset if still open; the
     * session and its other streams go on. Safe when r is not attached. */
    void (*detach)(struct request *r);
};

extern const struct proto_mux_ops proto_h2;

/* From a session, about one of its requests (each ends r's part in the session first). */
/* The exchange ended: NET_OK with r->resp complete, or a failure. */
void request_mux_finish(struct request *r, enum net_kind kind, const char *msg);
/* n DATA bytes for r went into r->resp: r gives them back to the stream's window now, or (a
 * streamed body the consumer is behind on) once they are taken, and wakes a streaming consumer. */
void request_mux_data(struct request *r, size_t n);
/* The server did not process r (REFUSED_STREAM, GOAWAY above its last-stream-id, or the
 * connection went before r's headers were sent): r starts again elsewhere, whatever its method. */
void request_mux_retry(struct request *r);
/* The connection failed after r was sent: the HTTP/1.1 rule applies (one retry on a new
 * connection for an idempotent request that got nothing over a reused connection), else r ends
 * with kind and msg. */
void request_mux_lost(struct request *r, enum net_kind kind, const char *msg);

#endif
