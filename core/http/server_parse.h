/* server_parse.h — the embedded server's request parser: llhttp, the checks it leaves out (the CRLF
 * after chunk data, one Host, token field names, transfer codings), the limits, and the request's
 * bytes. No socket: server.c feeds it what it reads, the fuzz harness feeds it bytes. A struct
 * server_parser owns its buffers; server_parser_free releases them. */
#ifndef LUAFETCH_SERVER_PARSE_H
#define LUAFETCH_SERVER_PARSE_H

#include <llhttp.h>
#include <stddef.h>

#include "buf.h"
#include "http1.h"
#include "server.h"

struct server_parse_limits {
    size_t max_body;            /* → 413 */
    size_t max_header_bytes;    /* request line + headers → 431 */
    int max_header_count;       /* → 431 */
};

enum sp_result {
    SP_MORE,        /* every byte taken; the request is not complete yet */
    SP_REQUEST,     /* a request is complete (see server_parser_feed's rest) */
    SP_ERROR,       /* refused: answer reject (unless the head hook stopped it and closed) */
};

struct server_parser {
    llhttp_t parser;
    struct h1_chunks chunks;
    struct server_parse_limits lim;
    /* Called once a request head is accepted (a body may follow): 0 to go on, -1 to stop. The
     * owner sends "100 Continue" when expect_continue is set. May be NULL. */
    int (*on_head)(struct server_parser *sp, int expect_continue);
    void *data;                 /* the owner's, for on_head */
    int reject;                 /* status for a request refused (400, 413, 417, 431, 500, 501) */
    int in_body;                /* the head is done: fields now are a chunked body's trailers */
    int message_done;
    int keep_alive;             /* of the complete request: another may follow */
    int head_request;
    int in_value;               /* llhttp may split a field across reads: continue it */
    int header_count;
    int host_count;
    size_t name_len;            /* of the field name being received */
    size_t head_bytes;
    struct buf target;
    struct buf headers;         /* name\0value\0, names lower-case */
    struct buf body;
};

void server_parser_init(struct server_parser *sp, const struct server_parse_limits *lim);
/* Parses bytes. On SP_REQUEST, *rest is the first byte after the request when data holds more
 * (pipelined bytes, for the owner to keep), else NULL; the parser is paused until
 * server_parser_next. */
enum sp_result server_parser_feed(struct server_parser *sp, const char *data, size_t len, const char **rest);
/* The complete request's fields (all but remote_addr and remote_port), valid until the next feed. */
void server_parser_request(const struct server_parser *sp, struct server_request *req);
/* The request's bytes were copied: drops large buffers, empties the others. */
void server_parser_shrink(struct server_parser *sp);
/* Ready for the next request on the connection. */
void server_parser_next(struct server_parser *sp);
void server_parser_free(struct server_parser *sp);

#endif
