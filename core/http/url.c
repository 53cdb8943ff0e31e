/* url.c — parsing absolute http(s) URLs and resolving redirect targets (RFC 3986 subset).
 * Pure functions; struct url strings are malloc'd here and freed by url_free. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg, const char *s)
{
    snprintf(err, errlen, "%s: %.200s", msg, s);
    return -1;
}

static char *dup_range(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int host_char_ok(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

int url_parse(struct url *u, const char *s, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        p = s + 8;
        u->https = 1;
    } else {
        return fail(err, errlen, "unsupported URL (need http:// or https://)", s);
    }
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return fail(err, errlen, "URL contains a space or control character", s);

    size_t alen = strcspn(p, "/?#");
    const char *auth_end = p + alen;
    if (memchr(p, '@', alen))
        return fail(err, errlen, "credentials in URLs are not supported (use headers)", s);

    const char *host_start = p, *host_end, *port_start = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        if (!close || close == p + 1)
            return fail(err, errlen, "bad IPv6 address in URL", s);
        for (const char *c = p + 1; c < close; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
                return fail(err, errlen, "bad IPv6 address in URL", s);
        host_start = p + 1;
        host_end = close;
        u->is_ipv6 = 1;
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                return fail(err, errlen, "bad authority in URL", s);
            port_start = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        host_end = colon ? colon : auth_end;
        if (colon)
            port_start = colon + 1;
        if (host_end == host_start)
            return fail(err, errlen, "URL has no host", s);
        for (const char *c = host_start; c < host_end; c++)
            if (!host_char_ok((unsigned char)*c))
                return fail(err, errlen, "bad character in URL host", s);
    }

    u->port = u->https ? 443 : 80;
    if (port_start && port_start < auth_end) {
        long port = 0;
        for (const char *c = port_start; c < auth_end; c++) {
            if (!isdigit((unsigned char)*c) || port > 65535)
                return fail(err, errlen, "bad port in URL", s);
            port = port * 10 + (*c - '0');
        }
        if (port < 1 || port > 65535)
            return fail(err, errlen, "bad port in URL", s);
        u->port = (int)port;
    }

    size_t tlen = strcspn(auth_end, "#");
    u->host = dup_range(host_start, (size_t)(host_end - host_start));
    if (tlen && *auth_end == '/') {
        u->target = dup_range(auth_end, tlen); /* NULL here is out of memory, not an empty path */
    } else {
        /* "http://h?q" has an empty path: the target is "/?q". */
        u->target = malloc(tlen + 2);
        if (u->target) {
            u->target[0] = '/';
            memcpy(u->target + 1, auth_end, tlen);
            u->target[tlen + 1] = '\0';
        }
    }
    if (!u->host || !u->target) {
        url_free(u);
        return fail(err, errlen, "out of memory", s);
    }
    for (char *c = u->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

void url_free(struct url *u)
{
    free(u->host);
    free(u->target);
    u->host = u->target = NULL;
}

int url_authority(const struct url *u, struct buf *out, int with_default_port)
{
    int rc = u->is_ipv6 ? buf_puts(out, "[") || buf_puts(out, u->host) || buf_puts(out, "]")
                        : buf_puts(out, u->host);
    if (with_default_port || u->port != (u->https ? 443 : 80))
        rc = rc || buf_append(out, ":", 1) || buf_put_uint(out, (unsigned)u->port);
    return rc;
}

static int has_scheme(const char *ref)
{
    if (!isalpha((unsigned char)*ref))
        return 0;
    for (const char *c = ref; *c; c++) {
        if (*c == ':')
            return 1;
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return 0;
    }
    return 0;
}

/* RFC 3986 §5.2.4 on a path (no query), appended to out. */
static int remove_dot_segments(const char *path, size_t n, struct buf *out)
{
    size_t start = out->len;
    const char *p = path, *end = path + n;
    while (p < end) {
        const char *seg_end = memchr(p + 1, '/', (size_t)(end - p - 1));
        if (!seg_end)
            seg_end = end;
        size_t sl = (size_t)(seg_end - p); /* segment incl. leading '/' */
        if (sl == 2 && p[1] == '.') {
            if (seg_end == end && buf_puts(out, "/"))
                return -1;
        } else if (sl == 3 && p[1] == '.' && p[2] == '.') {
            while (out->len > start && out->data[out->len - 1] != '/')
                out->len--;
            if (out->len > start)
                out->len--;
            if (seg_end == end && buf_puts(out, "/"))
                return -1;
        } else if (buf_append(out, p, sl)) {
            return -1;
        }
        p = seg_end;
    }
    if (out->len == start && buf_puts(out, "/"))
        return -1;
    out->data[out->len] = '\0';
    return 0;
}

static int resolve(const char *base, const char *ref, struct buf *out)
{
    if (has_scheme(ref))
        return buf_puts(out, ref);
    const char *sep = strstr(base, "://");
    if (!sep)
        return -1;
    const char *auth = sep + 3;
    const char *path = auth + strcspn(auth, "/?#");
    if (ref[0] == '/' && ref[1] == '/')
        return buf_append(out, base, (size_t)(auth - 2 - base)) || buf_puts(out, ref);
    if (buf_append(out, base, (size_t)(path - base)))
        return -1;
    size_t plen = strcspn(path, "?#");
    if (ref[0] == '\0')
        return buf_append(out, path, strcspn(path, "#"));
    if (ref[0] == '#')
        return buf_append(out, path, strcspn(path, "#"));
    if (ref[0] == '?')
        return buf_append(out, path, plen) || buf_puts(out, ref);

    size_t rpath = strcspn(ref, "?#");
    struct buf merged = {0};
    int rc;
    if (ref[0] == '/') {
        rc = buf_append(&merged, ref, rpath);
    } else {
        const char *slash = NULL;
        for (const char *c = path; c < path + plen; c++)
            if (*c == '/')
                slash = c;
        rc = slash ? buf_append(&merged, path, (size_t)(slash - path + 1)) : buf_puts(&merged, "/");
        rc = rc || buf_append(&merged, ref, rpath);
    }
    rc = rc || remove_dot_segments(merged.data, merged.len, out);
    buf_free(&merged);
    return rc || buf_append(out, ref + rpath, strcspn(ref + rpath, "#"));
}

/* Bytes a Location may carry raw that cannot go on the wire as they are: non-ASCII (UTF-8) and
 * spaces. They are percent-encoded, as curl and browsers do; other controls stay and are refused
 * by url_parse. */
static int needs_encoding(unsigned char c)
{
    return c >= 0x80 || c == ' ';
}

int url_resolve(const char *base, const char *ref, struct buf *out)
{
    size_t start = out->len;
    if (resolve(base, ref, out))
        return -1;
    size_t extra = 0;
    for (size_t i = start; i < out->len; i++)
        extra += needs_encoding((unsigned char)out->data[i]) ? 2 : 0;
    if (!extra)
        return 0;
    if (buf_reserve(out, extra))
        return -1;
    /* Backwards in place: each byte moves right by the encodings still before it. */
    static const char hex[] = "0123456789ABCDEF";
    char *d = out->data;
    size_t r = out->len, w = out->len + extra;
    while (r > start) {
        unsigned char c = (unsigned char)d[--r];
        if (needs_encoding(c)) {
            d[--w] = hex[c & 15];
            d[--w] = hex[c >> 4];
            d[--w] = '%';
        } else {
            d[--w] = (char)c;
        }
    }
    out->len += extra;
    d[out->len] = '\0';
    return 0;
}
