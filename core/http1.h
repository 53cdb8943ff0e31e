/* http1.h — HTTP/1.1 on the wire: request head serialisation and response parsing with llhttp.
 * A struct http_response owns its buffers (status reason, headers, body); http_response_free. */
#ifndef LUAFETCH_HTTP1_H
#define LUAFETCH_HTTP1_H

#include <llhttp.h>
#include <stddef.h>

#include "buf.h"
#include "decode.h"
#include "net.h"

struct http_response {
    llhttp_t parser;
    int status;
    struct buf reason;
    /* name\0value\0 pairs in arrival order; names lower-cased. */
    struct buf headers;
    int header_count;
    size_t header_bytes;
    int in_value;               /* llhttp may split a field: continue the current one */
    struct buf body;
    struct body_decoder *decoder;   /* allocated for a compressed body only */
    size_t max_body;
    size_t max_header_bytes;
    int max_header_count;
    int decompress;
    int head_request;           /* no body follows a response to HEAD */
    int headers_done;
    int complete;
    int keep_alive;
    size_t bytes_in;            /* raw bytes received, for "did anything arrive" */
    enum net_kind err_kind;
    const char *err;            /* static text: what went wrong */
    const char *err_detail;     /* static text or NULL: llhttp's or zlib's reason */
};

void http_response_init(struct http_response *r, size_t max_body, size_t max_header_bytes,
                        int max_header_count, int decompress, int head_request);
void http_response_free(struct http_response *r);
/* Feeds bytes. Returns 0 (need more or complete: see r->complete), or -1 with err_kind/err set. */
int http_response_feed(struct http_response *r, const char *data, size_t len);
/* The connection hit EOF: completes a body delimited by EOF, else -1 (truncated). */
int http_response_eof(struct http_response *r);
/* Value of a header (lower-case name), first occurrence, or NULL. */
const char *http_response_header(const struct http_response *r, const char *name);

/* Request head: "METHOD target HTTP/1.1\r\nHost: ...\r\n" plus defaults the caller did not set. */
struct http_head {
    struct buf bytes;
    unsigned has_user_agent : 1, has_accept : 1, has_accept_encoding : 1, has_host : 1,
        has_content_type : 1;
};

/* Adds a script header after validating it; -1 when the name/value is unacceptable (message in err). */
int http_head_add(struct http_head *h, const char *name, size_t nlen, const char *value, size_t vlen,
                  char *err, size_t errlen);
/* Writes request line and defaults before the added headers, into out. */
int http_head_finish(const struct http_head *h, struct buf *out, const char *method,
                     const char *target, const char *authority, size_t body_len, int has_body,
                     int decompress);
void http_head_free(struct http_head *h);

#endif
