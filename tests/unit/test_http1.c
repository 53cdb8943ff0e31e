/* test_http1.c — core/http/http1.c without a network: http_response_feed on whole and split inputs
 * (down to one byte at a time), Content-Length, chunked, EOF-delimited and HEAD bodies, interim 1xx
 * responses, gzip/deflate decoding (every gzip member, transfer codings), limits and malformed input
 * (the chunked framing llhttp leaves unchecked, status and field-name checks, cut at every byte);
 * http_head_add/http_head_finish. */
#include "http1.h"

#include <stdlib.h>
#include <strings.h>
#include <zlib.h>

#include "unit.h"

#define BIG (1u << 30)

static const size_t steps[] = { 0, 1, 2, 3, 7, 64 }; /* 0 = the whole input at once */
#define NSTEPS (sizeof steps / sizeof steps[0])

/* Feeds data in pieces of `step` bytes (all at once for 0); stops at the first error. */
static int feed(struct http_response *r, const char *data, size_t len, size_t step)
{
    if (step == 0)
        return http_response_feed(r, data, len);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        if (http_response_feed(r, data + off, n) < 0)
            return -1;
    }
    return 0;
}

static void init(struct http_response *r)
{
    http_response_init(r, BIG, 64 * 1024, 256, 1, 0);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_content_length(void)
{
    TEST("Content-Length body, split anywhere");
    static const char in[] = "HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/plain\r\n"
                             "X-Very-Long-Header-Name-For-Splitting: some value here\r\n"
                             "Content-Length: 11\r\n"
                             "\r\n"
                             "hello world";
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        CHECK_MSG(feed(&r, S(in), steps[i]) == 0, "step %zu: %s", steps[i], r.err);
        CHECK_MSG(r.complete, "step %zu: not complete", steps[i]);
        CHECK_INT(r.status, 200);
        CHECK_MEM(r.reason.data, r.reason.len, "OK", 2);
        CHECK_MEM(r.body.data, r.body.len, "hello world", 11);
        CHECK(r.keep_alive);
        CHECK_INT(r.header_count, 3);
        CHECK_STR(http_response_header(&r, "content-type"), "text/plain");
        CHECK_STR(http_response_header(&r, "x-very-long-header-name-for-splitting"), "some value here");
        CHECK_STR(http_response_header(&r, "content-length"), "11");
        CHECK(http_response_header(&r, "Content-Type") == NULL); /* stored lower-case */
        CHECK(http_response_header(&r, "missing") == NULL);
        CHECK_INT(r.bytes_in, sizeof in - 1);
        http_response_free(&r);
    }
}

static void test_incomplete_then_complete(void)
{
    TEST("incomplete input is not complete");
    struct http_response r;
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")) == 0);
    CHECK(!r.complete);
    CHECK(r.headers_done);
    CHECK(http_response_feed(&r, S("lo")) == 0);
    CHECK(r.complete);
    CHECK_MEM(r.body.data, r.body.len, "hello", 5);
    http_response_free(&r);
}

static void test_repeated_headers(void)
{
    TEST("repeated headers are kept in order");
    struct http_response r;
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX: y\r\nSET-COOKIE: b=2\r\n"
                                   "Content-Length: 0\r\n\r\n")) == 0);
    CHECK(r.complete);
    CHECK_INT(r.header_count, 4);
    CHECK_STR(http_response_header(&r, "set-cookie"), "a=1"); /* first occurrence */
    /* both values are in the list, names lower-cased */
    int seen = 0;
    for (const char *p = r.headers.data; p < r.headers.data + r.headers.len;) {
        const char *v = p + strlen(p) + 1;
        if (!strcmp(p, "set-cookie"))
            seen += !strcmp(v, "a=1") ? 1 : !strcmp(v, "b=2") ? 2 : 100;
        p = v + strlen(v) + 1;
    }
    CHECK_INT(seen, 3);
    http_response_free(&r);
}

static void test_chunked(void)
{
    TEST("chunked body, split anywhere");
    static const char in[] = "HTTP/1.1 200 OK\r\n"
                             "Transfer-Encoding: chunked\r\n"
                             "\r\n"
                             "5\r\nhello\r\n"
                             "1;ext=1\r\n \r\n"
                             "A\r\n0123456789\r\n"
                             "0\r\n"
                             "X-Trailer: yes\r\n"
                             "\r\n";
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        CHECK_MSG(feed(&r, S(in), steps[i]) == 0, "step %zu: %s", steps[i], r.err);
        CHECK_MSG(r.complete, "step %zu: not complete", steps[i]);
        CHECK_MEM(r.body.data, r.body.len, "hello 0123456789", 16);
        CHECK(r.keep_alive);
        http_response_free(&r);
    }
}

static void test_interim(void)
{
    TEST("interim 1xx responses are skipped");
    static const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
                             "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                             "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok";
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        CHECK_MSG(feed(&r, S(in), steps[i]) == 0, "step %zu: %s", steps[i], r.err);
        CHECK(r.complete);
        CHECK_INT(r.status, 201);
        CHECK_MEM(r.reason.data, r.reason.len, "Created", 7);
        CHECK_MEM(r.body.data, r.body.len, "ok", 2);
        CHECK(http_response_header(&r, "link") == NULL);
        CHECK_STR(http_response_header(&r, "x-final"), "1");
        CHECK_INT(r.header_count, 2);
        http_response_free(&r);
    }
}

static void test_eof_body(void)
{
    TEST("body delimited by EOF");
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        CHECK(feed(&r, S("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"), steps[i]) == 0);
        CHECK(!r.complete);
        CHECK_MSG(http_response_eof(&r) == 0, "eof: %s", r.err);
        CHECK(r.complete);
        CHECK(!r.keep_alive);
        CHECK_MEM(r.body.data, r.body.len, "all of it", 9);
        http_response_free(&r);
    }
    TEST("HTTP/1.0 body delimited by EOF");
    struct http_response r;
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.0 200 OK\r\n\r\nold")) == 0);
    CHECK(http_response_eof(&r) == 0);
    CHECK_MEM(r.body.data, r.body.len, "old", 3);
    CHECK(!r.keep_alive);
    http_response_free(&r);
}

static void test_truncation(void)
{
    struct http_response r;
    TEST("EOF before any byte");
    init(&r);
    CHECK(http_response_eof(&r) == -1);
    CHECK_INT(r.err_kind, NET_CLOSED);
    http_response_free(&r);

    TEST("EOF inside the head");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Le")) == 0);
    CHECK(http_response_eof(&r) == -1);
    CHECK_INT(r.err_kind, NET_CLOSED);
    http_response_free(&r);

    TEST("EOF inside a Content-Length body");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")) == 0);
    CHECK(http_response_eof(&r) == -1);
    CHECK_INT(r.err_kind, NET_CLOSED);
    CHECK(!r.complete);
    http_response_free(&r);

    TEST("EOF inside a chunked body");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")) == 0);
    CHECK(http_response_eof(&r) == -1);
    CHECK_INT(r.err_kind, NET_CLOSED);
    http_response_free(&r);
}

static void test_keep_alive(void)
{
    struct http_response r;
    TEST("Connection: close");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")) == 0);
    CHECK(r.complete);
    CHECK(!r.keep_alive);
    http_response_free(&r);

    TEST("HTTP/1.0 without keep-alive");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")) == 0);
    CHECK(r.complete);
    CHECK(!r.keep_alive);
    http_response_free(&r);

    TEST("bytes after the response: not reusable");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")) == 0);
    CHECK(r.complete);
    CHECK_MEM(r.body.data, r.body.len, "ok", 2);
    CHECK(!r.keep_alive);
    http_response_free(&r);

    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) == 0);
    CHECK(r.complete && r.keep_alive);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\n")) == 0);
    CHECK(!r.keep_alive);
    http_response_free(&r);
}

static void test_bodiless(void)
{
    struct http_response r;
    TEST("HEAD: no body follows");
    http_response_init(&r, BIG, 65536, 256, 1, 1);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")) == 0);
    CHECK(r.complete);
    CHECK_INT(r.body.len, 0);
    CHECK(r.keep_alive);
    http_response_free(&r);

    /* RFC 9110 §6.4.1: a 304 (and 204) never has a body, whatever Content-Length says (in a 304
     * it is the size of the representation that was not sent). */
    TEST("204 and 304 have no body");
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 204 No Content\r\n\r\n")) == 0);
    CHECK(r.complete);
    CHECK_INT(r.status, 204);
    http_response_free(&r);
    init(&r);
    CHECK(http_response_feed(&r, S("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")) == 0);
    CHECK(r.complete);
    CHECK_INT(r.body.len, 0);
    http_response_free(&r);
}

static void test_limits(void)
{
    struct http_response r;
    TEST("header bytes limit");
    char big[600];
    int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: %0500d\r\nContent-Length: 0\r\n\r\n", 0);
    for (size_t i = 0; i < NSTEPS; i++) {
        http_response_init(&r, BIG, 400, 256, 1, 0);
        CHECK_MSG(feed(&r, big, (size_t)n, steps[i]) == -1, "step %zu: a 500-byte header passed a 400 cap",
                  steps[i]);
        CHECK_INT(r.err_kind, NET_LIMIT);
        http_response_free(&r);
    }
    http_response_init(&r, BIG, 1000, 256, 1, 0);
    CHECK(http_response_feed(&r, big, (size_t)n) == 0);
    CHECK(r.complete);
    http_response_free(&r);

    TEST("header count limit");
    static const char four[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    for (size_t i = 0; i < NSTEPS; i++) {
        http_response_init(&r, BIG, 65536, 3, 1, 0);
        CHECK(feed(&r, S(four), steps[i]) == -1);
        CHECK_INT(r.err_kind, NET_LIMIT);
        http_response_free(&r);
        http_response_init(&r, BIG, 65536, 4, 1, 0);
        CHECK_MSG(feed(&r, S(four), steps[i]) == 0, "step %zu: 4 headers refused at a cap of 4: %s", steps[i],
                  r.err);
        CHECK(r.complete);
        http_response_free(&r);
    }

    TEST("max_body");
    http_response_init(&r, 4, 65536, 256, 1, 0);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")) == -1);
    CHECK_INT(r.err_kind, NET_LIMIT);
    http_response_free(&r);
    http_response_init(&r, 5, 65536, 256, 1, 0);
    CHECK(feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 1) == 0);
    CHECK(r.complete);
    http_response_free(&r);
    http_response_init(&r, 4, 65536, 256, 1, 0);
    CHECK(feed(&r, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), 1) ==
          -1);
    CHECK_INT(r.err_kind, NET_LIMIT);
    http_response_free(&r);
    http_response_init(&r, 0, 65536, 256, 1, 0);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) == 0);
    CHECK(r.complete);
    http_response_free(&r);
}

static void expect_protocol(const char *label, const char *in, size_t len)
{
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        int rc = feed(&r, in, len, steps[i]);
        if (rc == 0)
            rc = http_response_eof(&r);
        CHECK_MSG(rc == -1 && r.err_kind == NET_PROTOCOL, "%s (step %zu): rc %d, kind %d, complete %d", label,
                  steps[i], rc, (int)r.err_kind, r.complete);
        CHECK_MSG(r.err[0], "%s: no message", label);
        http_response_free(&r);
    }
}

static void test_malformed(void)
{
    TEST("malformed responses");
    expect_protocol("garbage", S("HELLO WORLD\r\n\r\n"));
    expect_protocol("bad version", S("HTTP/9 200 OK\r\nContent-Length: 0\r\n\r\n"));
    expect_protocol("bad status", S("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"));
    expect_protocol("bad chunk size", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
    expect_protocol("Content-Length with Transfer-Encoding",
                    S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    expect_protocol("two different Content-Lengths",
                    S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!"));
    expect_protocol("a bad Content-Length", S("HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"));
    expect_protocol("a header without colon", S("HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n"));
    expect_protocol("corrupt gzip",
                    S("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!"));
}

/* --- framing llhttp leaves unchecked, status range, field names ---------- */

static const char *detail(const struct http_response *r)
{
    return r->err_detail ? r->err_detail : "";
}

/* Every cut of in into two reads, and the steps, must give a complete response with body. */
static void expect_body(const char *label, const char *in, size_t len, const char *body, size_t blen)
{
    for (size_t k = 0; k <= len; k++) {
        struct http_response r;
        init(&r);
        int rc = http_response_feed(&r, in, k);
        if (rc == 0)
            rc = http_response_feed(&r, in + k, len - k);
        CHECK_MSG(rc == 0 && r.complete, "%s, cut at %zu: rc %d, complete %d: %s %s", label, k, rc, r.complete,
                  r.err ? r.err : "", detail(&r));
        CHECK_MSG(r.body.len == blen && (blen == 0 || memcmp(r.body.data, body, blen) == 0),
                  "%s, cut at %zu: %zu body bytes, want %zu", label, k, r.body.len, blen);
        http_response_free(&r);
    }
    for (size_t i = 0; i < NSTEPS; i++) {
        struct http_response r;
        init(&r);
        int rc = feed(&r, in, len, steps[i]);
        CHECK_MSG(rc == 0 && r.complete && r.body.len == blen, "%s, step %zu: rc %d: %s %s", label, steps[i], rc,
                  r.err ? r.err : "", detail(&r));
        http_response_free(&r);
    }
}

/* Every cut of in into two reads must end in a protocol error whose detail contains why. */
static void expect_refused(const char *label, const char *in, size_t len, const char *why)
{
    for (size_t k = 0; k <= len; k++) {
        struct http_response r;
        init(&r);
        int rc = http_response_feed(&r, in, k);
        if (rc == 0)
            rc = http_response_feed(&r, in + k, len - k);
        if (rc == 0)
            rc = http_response_eof(&r);
        CHECK_MSG(rc == -1 && r.err_kind == NET_PROTOCOL, "%s, cut at %zu: rc %d, kind %d, complete %d", label, k,
                  rc, (int)r.err_kind, r.complete);
        CHECK_MSG(!why || strstr(detail(&r), why), "%s, cut at %zu: detail '%s', want '%s'", label, k, detail(&r),
                  why);
        http_response_free(&r);
    }
}

#define CHUNKED_HEAD "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

static void test_chunk_crlf(void)
{
    TEST("chunk data must be followed by CRLF");
    expect_refused("XX", S(CHUNKED_HEAD "3\r\nabcXX0\r\n\r\n"), "not followed by CRLF");
    expect_refused("CR X", S(CHUNKED_HEAD "3\r\nabc\rX0\r\n\r\n"), "not followed by CRLF");
    expect_refused("LF CR", S(CHUNKED_HEAD "3\r\nabc\n\r0\r\n\r\n"), "not followed by CRLF");
    expect_refused("second chunk", S(CHUNKED_HEAD "1\r\na\r\n2\r\nbc0\r\n0\r\n\r\n"), "not followed by CRLF");
    expect_refused("a longer chunk than announced", S(CHUNKED_HEAD "2\r\nabc\r\n0\r\n\r\n"), "not followed by CRLF");
    TEST("well-formed chunks still parse");
    expect_body("three chunks", S(CHUNKED_HEAD "3\r\nabc\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n"), S("abcdef"));
    expect_body("chunk data holding CRLF", S(CHUNKED_HEAD "4\r\n\r\n\r\n\r\n0\r\n\r\n"), S("\r\n\r\n"));
    expect_body("trailers", S(CHUNKED_HEAD "2\r\nab\r\n0\r\nX-T: 1\r\n\r\n"), S("ab"));
}

static void test_chunk_extensions(void)
{
    TEST("chunk extensions with several parameters");
    expect_body("a=b;c=d", S(CHUNKED_HEAD "2;a=b;c=d\r\nab\r\n3;x=1;y;z=\"q;r\"\r\ncde\r\n0;last=1;k=v\r\n\r\n"),
                S("abcde"));
    expect_body("a quoted-pair", S(CHUNKED_HEAD "1;a=b;c=\"x\\\"y\";d\r\nz\r\n0\r\n\r\n"), S("z"));
    expect_body("llhttp's own cases", S(CHUNKED_HEAD "1;a;b=\"c\";d=e\r\nz\r\n0\r\n\r\n"), S("z"));
    TEST("malformed chunk extensions");
    expect_refused("a space", S(CHUNKED_HEAD "2;a=b;c d\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("an empty name", S(CHUNKED_HEAD "2;a=b;\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("an empty value at the end", S(CHUNKED_HEAD "2;a=b;c=\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("an empty value before ';'", S(CHUNKED_HEAD "2;a=;c=d\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("an open quote", S(CHUNKED_HEAD "2;a=b;c=\"open\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("a control byte", S(CHUNKED_HEAD "2;a=b;c=d\001\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("bytes after a quoted value", S(CHUNKED_HEAD "2;a=b;c=\"d\"e\r\nab\r\n0\r\n\r\n"), NULL);
    expect_refused("a bare LF", S(CHUNKED_HEAD "2;a=b;c=d\nab\r\n0\r\n\r\n"), NULL);
    {
        struct buf in = {0};
        buf_puts(&in, CHUNKED_HEAD "1;a=b;c=");
        for (int i = 0; i < H1_MAX_EXT + 10; i++)
            buf_append(&in, "x", 1);
        buf_puts(&in, "\r\nz\r\n0\r\n\r\n");
        struct http_response r;
        init(&r);
        CHECK(feed(&r, in.data, in.len, 7) == -1 && r.err_kind == NET_PROTOCOL);
        CHECK_STR(detail(&r), "chunk extensions too long");
        http_response_free(&r);
        buf_free(&in);
    }
}

static void test_status_range(void)
{
    TEST("status codes below 100 are refused");
    expect_refused("000", S("HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n"), "below 100");
    expect_refused("099", S("HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"), "below 100");
    expect_refused("20", S("HTTP/1.1 20 Short\r\nContent-Length: 0\r\n\r\n"), "below 100");
    expect_refused("0", S("HTTP/1.1 0\r\nContent-Length: 0\r\n\r\n"), "below 100");
    TEST("three digits from 100 are taken");
    expect_body("999", S("HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"), S("ok"));
}

static void test_field_names(void)
{
    TEST("whitespace in a header name is refused");
    expect_refused("X-A : v", S("HTTP/1.1 200 OK\r\nX-A : v\r\nContent-Length: 0\r\n\r\n"), "header name");
    expect_refused("X A: v", S("HTTP/1.1 200 OK\r\nX A: v\r\nContent-Length: 0\r\n\r\n"), "header name");
    expect_refused("an empty name", S("HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 0\r\n\r\n"), "empty header name");
    expect_refused("in a trailer", S(CHUNKED_HEAD "0\r\nX-T : v\r\n\r\n"), "header name");
    TEST("OWS around a value is not part of it");
    struct http_response r;
    init(&r);
    CHECK(feed(&r, S("HTTP/1.1 200 OK\r\nX-A:  v  w \t\r\nX-B: \r\nContent-Length: 0\r\n\r\n"), 1) == 0);
    CHECK_STR(http_response_header(&r, "x-a"), "v  w");
    CHECK_STR(http_response_header(&r, "x-b"), "");
    http_response_free(&r);
}

/* --- compression ---------------------------------------------------------- */

/* Compresses in with zlib windowBits (31 gzip, 15 zlib, -15 raw deflate) into out (malloc'd). */
static size_t compress_with(const unsigned char *in, size_t len, int bits, unsigned char **out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&zs, len) + 64;
    *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = *out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    return n;
}

/* A full response with Content-Encoding enc and the compressed body. */
static size_t response_with(const char *enc, const unsigned char *body, size_t blen, char **out)
{
    char head[128];
    int hn = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %zu\r\n\r\n",
                      enc, blen);
    *out = malloc((size_t)hn + blen);
    memcpy(*out, head, (size_t)hn);
    memcpy(*out + hn, body, blen);
    return (size_t)hn + blen;
}

static void test_compression(void)
{
    enum { N = 5000 };
    unsigned char plain[N];
    for (int i = 0; i < N; i++)
        plain[i] = (unsigned char)('a' + i % 26);
    static const struct { const char *enc; int bits; } kinds[] = {
        { "gzip", 31 }, { "x-gzip", 31 }, { "deflate", 15 }, { "deflate", -15 }, { "GZIP", 31 },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unsigned char *z;
        size_t zn = compress_with(plain, N, kinds[k].bits, &z);
        char *resp;
        size_t rn = response_with(kinds[k].enc, z, zn, &resp);
        for (size_t i = 0; i < NSTEPS; i++) {
            struct http_response r;
            TEST("decoded body, split anywhere");
            init(&r);
            int rc = feed(&r, resp, rn, steps[i]);
            CHECK_MSG(rc == 0 && r.complete, "%s (bits %d), step %zu: rc %d: %s", kinds[k].enc, kinds[k].bits,
                      steps[i], rc, r.err);
            CHECK_MSG(r.body.len == N && memcmp(r.body.data, plain, N) == 0,
                      "%s (bits %d), step %zu: decoded %zu bytes", kinds[k].enc, kinds[k].bits, steps[i],
                      r.body.len);
            http_response_free(&r);

            TEST("max_body applies to the decoded size");
            http_response_init(&r, N - 1, 65536, 256, 1, 0);
            rc = feed(&r, resp, rn, steps[i]);
            CHECK_MSG(rc == -1 && r.err_kind == NET_LIMIT, "%s (bits %d), step %zu, cap N-1: rc %d kind %d",
                      kinds[k].enc, kinds[k].bits, steps[i], rc, (int)r.err_kind);
            http_response_free(&r);

            TEST("max_body equal to the decoded size");
            http_response_init(&r, N, 65536, 256, 1, 0);
            rc = feed(&r, resp, rn, steps[i]);
            CHECK_MSG(rc == 0 && r.complete && r.body.len == N,
                      "%s (bits %d), step %zu, cap N: rc %d kind %d (%s), %zu bytes", kinds[k].enc,
                      kinds[k].bits, steps[i], rc, (int)r.err_kind, r.err, r.body.len);
            http_response_free(&r);

            TEST("decompress off: raw bytes");
            http_response_init(&r, BIG, 65536, 256, 0, 0);
            rc = feed(&r, resp, rn, steps[i]);
            CHECK(rc == 0 && r.complete);
            CHECK_MEM(r.body.data, r.body.len, z, zn);
            http_response_free(&r);
        }
        free(resp);
        free(z);
    }

    TEST("a bomb stops at the cap");
    size_t big = 50u << 20;
    unsigned char *zeros = calloc(1, big), *z;
    size_t zn = compress_with(zeros, big, 31, &z);
    free(zeros);
    char *resp;
    size_t rn = response_with("gzip", z, zn, &resp);
    struct http_response r;
    http_response_init(&r, 1 << 20, 65536, 256, 1, 0);
    CHECK(http_response_feed(&r, resp, rn) == -1);
    CHECK_INT(r.err_kind, NET_LIMIT);
    CHECK(r.body.len <= (1u << 20));
    http_response_free(&r);
    free(resp);
    free(z);

    TEST("a compressed stream cut short is an error, not a short body");
    {
        unsigned char *zz;
        size_t zzn = compress_with(plain, N, 31, &zz);
        char *cut;
        size_t cutn = response_with("gzip", zz, zzn / 2, &cut); /* Content-Length covers half */
        http_response_init(&r, BIG, 65536, 256, 1, 0);
        int rc = http_response_feed(&r, cut, cutn);
        CHECK_MSG(rc == -1 && r.err_kind == NET_PROTOCOL,
                  "half a gzip stream: rc %d, kind %d, complete %d, %zu decoded bytes of %d", rc,
                  (int)r.err_kind, r.complete, r.body.len, N);
        http_response_free(&r);
        free(cut);
        free(zz);
    }

    TEST("identity and unknown encodings are left alone");
    http_response_init(&r, BIG, 65536, 256, 1, 0);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nxyz")) == 0);
    CHECK_MEM(r.body.data, r.body.len, "xyz", 3);
    http_response_free(&r);
}

/* --- gzip members and transfer codings ----------------------------------- */

static void append_gzip(struct buf *b, const char *plain, size_t n)
{
    unsigned char *z;
    size_t zn = compress_with((const unsigned char *)plain, n, 31, &z);
    buf_append(b, z, zn);
    free(z);
}

/* head + body with Content-Length */
static void with_length(struct buf *out, const char *head, const struct buf *body)
{
    buf_puts(out, head);
    buf_puts(out, "Content-Length: ");
    buf_put_uint(out, body->len);
    buf_puts(out, "\r\n\r\n");
    buf_append(out, body->data, body->len);
}

/* head + body as two chunks */
static void with_chunks(struct buf *out, const char *head, const struct buf *body)
{
    char line[32];
    size_t half = body->len / 2;
    buf_puts(out, head);
    buf_puts(out, "\r\n");
    snprintf(line, sizeof line, "%zx\r\n", half);
    buf_puts(out, line);
    buf_append(out, body->data, half);
    snprintf(line, sizeof line, "\r\n%zx\r\n", body->len - half);
    buf_puts(out, line);
    buf_append(out, body->data + half, body->len - half);
    buf_puts(out, "\r\n0\r\n\r\n");
}

static void test_gzip_members(void)
{
    static const char text[] = "the first member, then the second member, then the third";
    TEST("every gzip member is decoded");
    struct buf z = {0}, in = {0};
    append_gzip(&z, text, 17);
    append_gzip(&z, text + 17, 23);
    append_gzip(&z, "", 0);
    append_gzip(&z, text + 40, sizeof text - 1 - 40);
    with_length(&in, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &z);
    expect_body("four members, one empty", in.data, in.len, text, sizeof text - 1);

    TEST("bytes after the last member that are not a member");
    buf_reset(&in);
    buf_append(&z, "garbage!", 8);
    with_length(&in, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &z);
    expect_refused("garbage", in.data, in.len, NULL);
    buf_reset(&z);
    buf_reset(&in);
    append_gzip(&z, text, 10);
    buf_append(&z, "\x1f\x8b", 2); /* the start of a member, then the end of the body */
    with_length(&in, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n", &z);
    expect_refused("half a second member", in.data, in.len, "ended early");

    TEST("bytes after a deflate stream");
    buf_reset(&z);
    buf_reset(&in);
    unsigned char *d;
    size_t dn = compress_with((const unsigned char *)text, 10, 15, &d);
    buf_append(&z, d, dn);
    buf_append(&z, d, dn);
    free(d);
    with_length(&in, "HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n", &z);
    expect_refused("two zlib streams", in.data, in.len, "after the end");
    buf_free(&z);
    buf_free(&in);
}

static void test_transfer_codings(void)
{
    enum { N = 3000 };
    char plain[N];
    for (int i = 0; i < N; i++)
        plain[i] = (char)('a' + i % 26);
    struct buf once = {0}, twice = {0}, in = {0};
    append_gzip(&once, plain, N);
    append_gzip(&twice, once.data, once.len);

    TEST("Transfer-Encoding: gzip, chunked is decoded");
    with_chunks(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n", &once);
    expect_body("gzip, chunked", in.data, in.len, plain, N);
    buf_reset(&in);
    with_chunks(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", &once);
    expect_body("in two header lines", in.data, in.len, plain, N);
    buf_reset(&in);
    with_chunks(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: GZIP ,, Chunked\r\n", &once);
    expect_body("case, spaces, an empty element", in.data, in.len, plain, N);

    TEST("a transfer coding over a content coding: both are decoded");
    buf_reset(&in);
    with_chunks(&in, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: gzip, chunked\r\n", &twice);
    expect_body("gzip over gzip", in.data, in.len, plain, N);

    TEST("decompress off: the transfer coding is still removed, the content coding kept");
    struct http_response r;
    http_response_init(&r, BIG, 65536, 256, 0, 0);
    CHECK(feed(&r, in.data, in.len, 64) == 0 && r.complete);
    CHECK_MEM(r.body.data, r.body.len, once.data, once.len);
    http_response_free(&r);

    TEST("max_body applies to every stage");
    http_response_init(&r, N - 1, 65536, 256, 1, 0);
    CHECK(feed(&r, in.data, in.len, 0) == -1);
    CHECK_INT(r.err_kind, NET_LIMIT);
    http_response_free(&r);
    http_response_init(&r, N, 65536, 256, 1, 0);
    CHECK(feed(&r, in.data, in.len, 0) == 0 && r.complete && r.body.len == N);
    http_response_free(&r);
    {
        /* a transfer-coded bomb whose inner stage would grow past the cap */
        size_t big = 8u << 20;
        char *zeros = calloc(1, big);
        struct buf bomb = {0}, outer = {0}, bin = {0};
        append_gzip(&bomb, zeros, big);
        append_gzip(&outer, bomb.data, bomb.len);
        with_chunks(&bin, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: gzip, chunked\r\n", &outer);
        http_response_init(&r, 1 << 20, 65536, 256, 1, 0);
        CHECK(feed(&r, bin.data, bin.len, 0) == -1);
        CHECK_INT(r.err_kind, NET_LIMIT);
        CHECK(r.body.len <= (1u << 20));
        http_response_free(&r);
        free(zeros);
        buf_free(&bomb);
        buf_free(&outer);
        buf_free(&bin);
    }

    TEST("a body delimited by EOF under Transfer-Encoding: gzip");
    buf_reset(&in);
    buf_puts(&in, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    buf_append(&in, once.data, once.len);
    init(&r);
    CHECK(feed(&r, in.data, in.len, 3) == 0 && !r.complete);
    CHECK(http_response_eof(&r) == 0 && r.complete);
    CHECK_MEM(r.body.data, r.body.len, plain, N);
    http_response_free(&r);

    TEST("transfer codings that cannot be removed");
    expect_refused("br, chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n0\r\n\r\n"),
                   "unsupported transfer coding");
    expect_refused("chunked, gzip", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxx"),
                   "not the last");
    expect_refused("chunked twice", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
                   NULL);
    expect_refused("a parameter", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n0\r\n\r\n"),
                   "unsupported transfer coding");
    expect_refused("too many", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, gzip, gzip, gzip, chunked\r\n\r\n"
                                 "0\r\n\r\n"), "too many");
    TEST("a HEAD response's transfer codings are not looked at");
    http_response_init(&r, BIG, 65536, 256, 1, 1);
    CHECK(http_response_feed(&r, S("HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n")) == 0 && r.complete);
    http_response_free(&r);
    buf_free(&once);
    buf_free(&twice);
    buf_free(&in);
}

/* --- request head --------------------------------------------------------- */

static int count_ci(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, len) == 0)
            n++;
    return n;
}

static void test_head_defaults(void)
{
    TEST("request head with defaults");
    struct http_head h = {0};
    char err[256];
    struct buf out = {0};
    CHECK(http_head_add(&h, S("X-Custom"), S("v1"), err, sizeof err) == 0);
    CHECK(http_head_add(&h, S("X-Custom"), S("v2"), err, sizeof err) == 0);
    CHECK(http_head_finish(&h, &out, "GET", "/p?q=1", "example.com:8080", 0, 0, 1) == 0);
    const char *s = out.data;
    static const char start[] = "GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n";
    CHECK(strncmp(s, start, sizeof start - 1) == 0);
    CHECK(strstr(s, "\r\nUser-Agent: luafetch/") != NULL);
    CHECK(strstr(s, "\r\nAccept: */*\r\n") != NULL);
    CHECK(strstr(s, "\r\nAccept-Encoding: gzip, deflate\r\n") != NULL);
    CHECK(strstr(s, "\r\nX-Custom: v1\r\nX-Custom: v2\r\n") != NULL);
    CHECK(count_ci(s, "content-length") == 0);
    CHECK(out.len >= 4 && memcmp(s + out.len - 4, "\r\n\r\n", 4) == 0);
    CHECK(strstr(s, "\r\n\r\n") == s + out.len - 4); /* one blank line, at the end */
    /* every line ends in CRLF: no bare LF */
    int bare = 0;
    for (size_t i = 0; i < out.len; i++)
        bare += s[i] == '\n' && (i == 0 || s[i - 1] != '\r');
    CHECK_INT(bare, 0);
    buf_free(&out);
    http_head_free(&h);

    TEST("request head with a body");
    struct http_head h2 = {0};
    CHECK(http_head_finish(&h2, &out, "POST", "/", "h", 12345, 1, 0) == 0);
    CHECK(strstr(out.data, "\r\nContent-Length: 12345\r\n") != NULL);
    CHECK(count_ci(out.data, "accept-encoding") == 0); /* decompress off */
    buf_free(&out);
    CHECK(http_head_finish(&h2, &out, "PUT", "/", "h", 0, 1, 0) == 0);
    CHECK(strstr(out.data, "\r\nContent-Length: 0\r\n") != NULL);
    buf_free(&out);
    http_head_free(&h2);
}

static void test_head_overrides(void)
{
    TEST("script headers replace the defaults");
    struct http_head h = {0};
    char err[256];
    struct buf out = {0};
    CHECK(http_head_add(&h, S("host"), S("virtual.example"), err, sizeof err) == 0);
    CHECK(http_head_add(&h, S("USER-AGENT"), S("me/1"), err, sizeof err) == 0);
    CHECK(http_head_add(&h, S("Accept"), S("application/json"), err, sizeof err) == 0);
    CHECK(http_head_add(&h, S("accept-encoding"), S("identity"), err, sizeof err) == 0);
    CHECK(http_head_finish(&h, &out, "GET", "/", "real:80", 0, 0, 1) == 0);
    CHECK_INT(count_ci(out.data, "\nhost:"), 1);
    CHECK_INT(count_ci(out.data, "\nuser-agent:"), 1);
    CHECK_INT(count_ci(out.data, "\naccept:"), 1);
    CHECK_INT(count_ci(out.data, "\naccept-encoding:"), 1);
    CHECK(strstr(out.data, "host: virtual.example\r\n") != NULL);
    CHECK(strstr(out.data, "real:80") == NULL);
    CHECK(strstr(out.data, "luafetch/") == NULL);
    buf_free(&out);
    http_head_free(&h);
}

static void head_add_bad(const char *name, size_t nlen, const char *value, size_t vlen, const char *label)
{
    struct http_head h = {0};
    char err[256] = "";
    CHECK(http_head_add(&h, S("X-Before"), S("1"), err, sizeof err) == 0);
    size_t before = h.bytes.len;
    CHECK_MSG(http_head_add(&h, name, nlen, value, vlen, err, sizeof err) == -1, "accepted %s", label);
    CHECK_MSG(err[0] != '\0', "no message for %s", label);
    CHECK_MSG(h.bytes.len == before, "%s: bytes were appended before refusing", label);
    http_head_free(&h);
}

static void test_head_refusals(void)
{
    TEST("bad script headers are refused");
    head_add_bad(S("Bad Name"), S("x"), "a space in the name");
    head_add_bad(S(""), S("x"), "an empty name");
    head_add_bad(S("X:Y"), S("x"), "a colon in the name");
    head_add_bad(S("X\r\nEvil"), S("x"), "CR LF in the name");
    head_add_bad(S("X\0Y"), S("x"), "NUL in the name");
    head_add_bad(S("X-A"), S("a\r\nX-Injected: 1"), "CR LF in the value");
    head_add_bad(S("X-A"), S("a\nb"), "LF in the value");
    head_add_bad(S("X-A"), S("a\rb"), "CR in the value");
    head_add_bad(S("X-A"), S("a\0b"), "NUL in the value");
    head_add_bad(S("Content-Length"), S("5"), "Content-Length");
    head_add_bad(S("content-length"), S("5"), "content-length");
    head_add_bad(S("Transfer-Encoding"), S("chunked"), "Transfer-Encoding");
}

int main(void)
{
    test_content_length();
    test_incomplete_then_complete();
    test_repeated_headers();
    test_chunked();
    test_interim();
    test_eof_body();
    test_truncation();
    test_keep_alive();
    test_bodiless();
    test_limits();
    test_malformed();
    test_compression();
    test_chunk_crlf();
    test_chunk_extensions();
    test_status_range();
    test_field_names();
    test_gzip_members();
    test_transfer_codings();
    test_head_defaults();
    test_head_overrides();
    test_head_refusals();
    return unit_summary();
}
