/* server.h — the embedded HTTP/1.1 server's network side: listen, accept, parse requests (server_parse.c),
 * keep-alive, limits, timeouts, response serialisation. No Lua here. The server owns its
 * connections; each is freed in its handles' close callbacks, the server after its last one. */
#ifndef LUAFETCH_SERVER_H
#define LUAFETCH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "net.h"

struct server;
struct server_conn;

struct server_options {
    size_t max_body;            /* request body cap (decoded from chunked) → 413 */
    size_t max_header_bytes;    /* request line + headers → 431 */
    int max_header_count;       /* → 431 */
    double header_timeout;      /* seconds for a whole request head, from its first byte */
    double body_timeout;        /* seconds of silence allowed while a body arrives */
    double idle_timeout;        /* seconds a keep-alive connection waits for the next request */
    int backlog;
};

/* One parsed request, valid only during the request callback (the server reuses its buffers). */
struct server_request {
    const char *method;
    const char *target;         /* request-target as sent: path?query */
    size_t target_len;
    const char *headers;        /* name\0value\0 pairs in arrival order, names lower-case */
    size_t headers_len;
    int header_count;
    const char *body;
    size_t body_len;
    int http_major, http_minor;
    const char *remote_addr;
    int remote_port;
};

struct server_callbacks {
    /* A complete request: the connection stops reading until server_respond (or release). */
    void (*request)(struct server_conn *c, const struct server_request *req, void *data);
    /* A connection closed while its handler still held it (user as set by server_conn_set_user). */
    void (*detach)(void *user);
    /* The server is freed: no more callbacks. */
    void (*freed)(void *data);
};

struct server_stats {
    unsigned long long connections;     /* accepted since start */
    unsigned long long requests;        /* handed to the request callback */
    unsigned long long rejected;        /* answered 400/408/413/417/431 by the server itself */
    int open;                           /* connections open now */
};

/* A response being built: status and validated headers; server_respond sends and frees it. */
struct server_response {
    int status;
    struct buf headers;         /* "Name: value\r\n" lines */
    unsigned has_date : 1, has_server : 1, has_content_type : 1, close : 1;
};

void server_options_default(struct server_options *o);
/* Binds host (an IPv4 or IPv6 literal, or "localhost") and listens. 0, or a negative uv error with
 * a message in err; nothing is left allocated then. */
int server_listen(struct server **out, struct net *net, const char *host, int port,
                  const struct server_options *o, const struct server_callbacks *cb, void *data,
                  char *err, size_t errlen);
int server_port(const struct server *s);
const struct server_stats *server_get_stats(const struct server *s);
/* Stops listening and closes idle connections; busy ones close after their response. Idempotent. */
void server_close(struct server *s);
/* Closes everything now (host shutdown). */
void server_abort(struct server *s);
/* Replaces the data the callbacks get (NULL: the binding's object is gone, do not call freed on it). */
void server_set_data(struct server *s, void *data);

void server_conn_set_user(struct server_conn *c, void *user);
/* The handler is gone without answering: the connection closes. */
void server_conn_release(struct server_conn *c);

/* 0, or -1 with err set when the status is not 200..599. */
int server_response_init(struct server_response *r, int status, char *err, size_t errlen);
/* Validates and adds one header (Content-Length and Transfer-Encoding are the server's). 0 or -1. */
int server_response_header(struct server_response *r, const char *name, size_t nlen,
                           const char *value, size_t vlen, char *err, size_t errlen);
void server_response_free(struct server_response *r);
/* Sends the response to the request the connection holds and frees r. 0, or a negative uv error
 * (the connection is closed then). */
int server_respond(struct server_conn *c, struct server_response *r, const char *body, size_t len);

#endif
