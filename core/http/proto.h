/* proto.h — the seam between the request lifecycle (request.c: connections, timers, retries,
 * pool) and an HTTP wire format. request.c calls only these operations; HTTP/1.1 (proto_h1.c)
 * is the first implementation. The exchange state a protocol keeps lives in the request's
 * response (r->resp) and is freed by release. */
#ifndef LUAFETCH_PROTO_H
#define LUAFETCH_PROTO_H

#include <stddef.h>

#include "buf.h"

struct request;

struct proto_ops {
    const char *name;
    /* The request as bytes for the wire (the head, and a small body after it) into out. 0 or -1
     * (out of memory). Runs once per request, before any connection is chosen. */
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

#endif
