/* http1.h — HTTP/1.1 on the wire: request head serialisation and response parsing with llhttp.
 * A struct http_response owns its buffers (status reason, headers, body); http_response_free. */
#ifndef LUAFETCH_HTTP1_H
#define LUAFETCH_HTTP1_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "decode.h"
#include "net.h"

/* --- chunked framing checks llhttp 8.1 leaves out, shared by the client and the server ---------
 * llhttp skips the two bytes after a chunk's data without looking at them ("3\r\nabcXX0\r\n\r\n"
 * parses: a request smuggling vector), and its state machine refuses an extension list in which an
 * unquoted value is followed by another parameter ("2;a=b;c=d"). A parser's llhttp callbacks report
 * to a struct h1_chunks through the h1_on_* functions and h1_execute runs llhttp_execute: together
 * they check that CRLF, and read the rest of such an extension list themselves (RFC 9112 §7.1.1,
 * no whitespace, as llhttp; capped at H1_MAX_EXT bytes a line). Nothing is allocated. */
#define H1_MAX_EXT 4096

struct h1_chunks {
    const char *end;            /* end of the bytes llhttp is parsing now */
    uint64_t left;              /* data bytes of the current chunk still to come */
    unsigned char in_data;      /* a chunk's data is arriving */
    unsigned char crlf_due;     /* the CRLF after a chunk's data is not all checked yet */
    unsigned char crlf;         /* its bytes checked so far */
    unsigned char ext_read;     /* state of the extension reader; 0: llhttp reads them */
    unsigned char ext_quoted;   /* the extension value llhttp is reading began with a quote */
    unsigned char ext_last;     /* the last byte of that value so far */
    size_t ext_vlen;            /* its length so far */
    size_t ext_bytes;           /* extension bytes the reader took on this chunk line */
    const char *error;          /* static text once a check failed: every later call fails */
};

/* Parts of the llhttp callbacks on_chunk_header, on_body (chunked bodies), on_chunk_extension_value
 * and on_chunk_extension_value_complete; the int ones return what the callback should return. */
void h1_on_chunk_header(struct h1_chunks *g, uint64_t size);
int h1_on_chunk_data(struct h1_chunks *g, const char *at, size_t len);
int h1_on_ext_value(struct h1_chunks *g, const char *at, size_t len);
int h1_on_ext_value_complete(struct h1_chunks *g);
/* llhttp_execute with those checks: llhttp's result, or HPE_USER with g->error set. A pause other
 * than the checks' own is returned as it is (llhttp_get_error_pos points into data). */
llhttp_errno_t h1_execute(llhttp_t *p, struct h1_chunks *g, const char *data, size_t len);

/* The parser's state, allocated at a response's first byte and freed once it is complete: a
 * request waiting for its response (or carried by HTTP/2) holds none. */
struct h1_parse {
    llhttp_t parser;
    struct h1_chunks chunks;
    size_t name_len;            /* of the field name being received */
};

struct http_response {
    struct h1_parse *parse;     /* NULL before the first byte and once complete */
    int status;
    int version;                /* 10, 11 (HTTP/1.0, 1.1); HTTP/2 will give 20 */
    struct buf reason;
    /* name\0value\0 pairs in arrival order; names lower-cased. */
    struct buf headers;
    int header_count;
    int max_header_count;
    size_t header_bytes;
    struct buf body;
    struct body_decoder *decoder;   /* allocated for a transfer- or content-coded body only */
    size_t max_body;
    /* Decompressed bytes of all responses in flight share one budget: a gzip bomb costs its
     * sender about 1/1000 of what it costs us, so bounding each body does not bound their sum.
     * inflated_total is the caller's counter (NULL: no shared budget); inflated is this body's
     * share of it, given back by http_response_free. */
    size_t *inflated_total;
    size_t inflated_max;
    size_t inflated;
    size_t max_header_bytes;
    /* flags, kept small: the response is embedded in every struct request */
    unsigned in_value : 1;      /* llhttp may split a field: continue the current one */
    unsigned raw_body : 1;      /* a streamed body: coded bytes kept as they come, decoded as taken */
    unsigned decompress : 1;
    unsigned head_request : 1;  /* no body follows a response to HEAD */
    unsigned headers_done : 1;
    unsigned complete : 1;
    unsigned keep_alive : 1;
    size_t bytes_in;            /* raw bytes received, for "did anything arrive" */
    enum net_kind err_kind;
    const char *err;            /* static text: what went wrong */
    const char *err_detail;     /* static text or NULL: llhttp's or zlib's reason */
};

void http_response_init(struct http_response *r, size_t max_body, size_t max_header_bytes,
                        int max_header_count, int decompress, int head_request);
/* Puts the decompressed body under a budget shared with other responses (see inflated_total). */
void http_response_share_budget(struct http_response *r, size_t *total, size_t max);
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
