/* test_http1.c — core/http1.c without a network: http_response_feed on whole and split inputs
 * (down to one byte at a time), Content-Length, chunked, EOF-delimited and HEAD bodies, interim 1xx
 * responses, gzip/deflate decoding, limits and malformed input; http_head_add/http_head_finish. */
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
    test_head_defaults();
    test_head_overrides();
    test_head_refusals();
    return unit_summary();
}
