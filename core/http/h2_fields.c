/* h2_fields.c — a request's head as HTTP/2 header fields (RFC 9113 §8.2, §8.3), the way curl
 * builds them: pseudo-headers first, names lower-cased, connection-specific fields dropped.
 * Pure: the fields point into the caller's scratch buffer and the request's strings. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h2.h"
#include "request.h"

#define USER_AGENT "luafetch/" LUAFETCH_VERSION

static int drop(const char *n, size_t len, const char *v, size_t vlen)
{
#define IS(s) (len == sizeof(s) - 1 && strncasecmp(n, s, len) == 0)
    if (IS("connection") || IS("keep-alive") || IS("proxy-connection") || IS("transfer-encoding") ||
        IS("upgrade") || IS("host"))
        return 1;
    /* TE only as "trailers" (RFC 9113 §8.2.2) */
    return IS("te") && !(vlen == 8 && strncasecmp(v, "trailers", 8) == 0);
#undef IS
}

int h2_request_fields(const struct request *r, struct buf *scratch, struct h2_field **out)
{
    const struct http_head *h = &r->head;
    /* lower-cased copy of the script's header lines, then :authority and content-length */
    buf_reset(scratch);
    /* Room for everything at once: the fields point into scratch, which must not move. */
    if (buf_reserve(scratch, h->bytes.len + strlen(r->url.host) + 48))
        return -1;
    size_t n = 12;
    for (size_t i = 0; i + 1 < h->bytes.len; i++)
        n += h->bytes.data[i] == '\r' && h->bytes.data[i + 1] == '\n';
    struct h2_field *f = malloc(n * sizeof *f);
    if (!f)
        return -1;
    int k = 0;
#define ADD(N, V, VL) (f[k].name = (N), f[k].nlen = strlen(N), f[k].value = (V), f[k].vlen = (VL), k++)
    ADD(":method", r->method, strlen(r->method));
    ADD(":scheme", r->url.https ? "https" : "http", r->url.https ? 5 : 4);
    int authority = k++;     /* filled below: the Host header's value wins */
    ADD(":path", r->url.target, strlen(r->url.target));
    f[authority].name = ":authority";
    f[authority].nlen = 10;
    f[authority].value = NULL;
    memcpy(scratch->data, h->bytes.data ? h->bytes.data : "", h->bytes.len);
    scratch->len = h->bytes.len;
    char *p = scratch->data, *end = p + h->bytes.len;
    while (p < end) {
        char *colon = memchr(p, ':', (size_t)(end - p));
        char *eol = colon ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
        if (!eol)
            break;
        size_t nlen = (size_t)(colon - p);
        char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(eol - v);
        for (size_t i = 0; i < nlen; i++)
            if (p[i] >= 'A' && p[i] <= 'Z')
                p[i] = (char)(p[i] + 32);
        if (nlen == 4 && !memcmp(p, "host", 4)) {
            f[authority].value = v;
            f[authority].vlen = vlen;
        } else if (!drop(p, nlen, v, vlen)) {
            f[k].name = p;
            f[k].nlen = nlen;
            f[k].value = v;
            f[k].vlen = vlen;
            k++;
        }
        p = eol + 2;
    }
    if (!f[authority].value) {
        size_t at = scratch->len;
        if (url_authority(&r->url, scratch, 0)) {
            free(f);
            return -1;
        }
        f[authority].value = scratch->data + at;
        f[authority].vlen = scratch->len - at;
    }
    if (!h->has_user_agent)
        ADD("user-agent", USER_AGENT, sizeof USER_AGENT - 1);
    if (!h->has_accept)
        ADD("accept", "*/*", 3);
    if (r->decompress && !h->has_accept_encoding)
        ADD("accept-encoding", "gzip, deflate", 13);
    if (r->has_body) {
        size_t at = scratch->len;
        if (buf_put_uint(scratch, r->body_len) || buf_append(scratch, "", 1)) {
            free(f);
            return -1;
        }
        ADD("content-length", scratch->data + at, scratch->len - at - 1);
    }
#undef ADD
    *out = f;
    return k;
}
