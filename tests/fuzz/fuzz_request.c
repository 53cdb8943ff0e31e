/* fuzz_request.c — libFuzzer driver for the server's request parser (core/http/server_parse.c, with
 * http1.c's chunked checks around llhttp), without a socket. Input: byte 0 is the read size (0: all
 * at once), byte 1 picks the limits, the rest is what a client sends; pipelined requests are parsed
 * in turn, as server.c does. Properties that must hold are checked with abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server_parse.h"

static int heads;

static int on_head(struct server_parser *sp, int expect_continue)
{
    (void)sp;
    (void)expect_continue;
    heads++;
    return 0;
}

static void check_request(const struct server_parser *sp, const struct server_request *req)
{
    if (req->body_len > sp->lim.max_body || !req->method || !req->target)
        abort();
    /* names\0value\0 pairs: names are non-empty lower-case tokens; one Host at most */
    const char *p = req->headers, *end = req->headers + req->headers_len;
    int pairs = 0, hosts = 0;
    while (p < end) {
        size_t nl = strlen(p);
        if (nl == 0 || p + nl + 1 >= end)
            abort();
        for (size_t i = 0; i < nl; i++)
            if ((p[i] >= 'A' && p[i] <= 'Z') || p[i] == ' ' || p[i] == '\t' || p[i] == ':')
                abort();
        hosts += nl == 4 && memcmp(p, "host", 4) == 0;
        const char *v = p + nl + 1;
        size_t vl = strlen(v);
        if (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            abort(); /* trailing OWS is not part of a value */
        p = v + vl + 1;
        pairs++;
    }
    if (p != end || pairs > sp->lim.max_header_count || hosts > 1)
        abort();
    if (req->http_major == 1 && req->http_minor >= 1 && hosts != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = data[0];
    struct server_parse_limits lim = { (data[1] & 1) ? 16 : 1 << 20, (data[1] & 2) ? 128 : 16 * 1024,
                                       (data[1] & 4) ? 4 : 100 };
    const char *in = (const char *)data + 2, *end = (const char *)data + size;
    struct server_parser sp;
    server_parser_init(&sp, &lim);
    sp.on_head = on_head;
    heads = 0;
    int requests = 0;
    while (in < end) {
        size_t n = step && (size_t)(end - in) > step ? step : (size_t)(end - in);
        const char *rest;
        enum sp_result r = server_parser_feed(&sp, in, n, &rest);
        if (r == SP_ERROR) {
            switch (sp.reject) {
            case 400: case 413: case 417: case 431: case 500: case 501:
                break;
            default:
                abort(); /* every refusal has a status to answer with */
            }
            break;
        }
        if (r == SP_REQUEST) {
            struct server_request req;
            server_parser_request(&sp, &req);
            check_request(&sp, &req);
            if (++requests > heads)
                abort(); /* a request without its head hook */
            server_parser_shrink(&sp);
            if (!sp.keep_alive)
                break; /* server.c answers and closes */
            server_parser_next(&sp);
            if (rest) {
                if (rest < in || rest >= in + n)
                    abort();
                in = rest; /* the pipelined bytes, parsed again as server.c does */
                continue;
            }
        }
        in += n;
    }
    server_parser_free(&sp);
    return 0;
}
