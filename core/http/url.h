/* url.h — parsing absolute http(s) URLs and resolving redirect targets (pure, no I/O).
 * A struct url owns its strings; url_free releases them. */
#ifndef LUAFETCH_URL_H
#define LUAFETCH_URL_H

#include <stddef.h>
#include "buf.h"

struct url {
    int https;      /* 1 for https, 0 for http */
    char *host;     /* lower-case; IPv6 without brackets */
    int is_ipv6;
    int port;       /* explicit or the scheme default */
    char *target;   /* path and query, "/" at least; never a fragment */
};

/* 0 on success; -1 with a message in err (bad scheme, host, port, characters). */
int url_parse(struct url *u, const char *s, char *err, size_t errlen);
void url_free(struct url *u);
/* "host:port" with brackets for IPv6, into out (appended). */
int url_authority(const struct url *u, struct buf *out, int with_default_port);
/* Resolves ref (absolute, scheme-relative, absolute-path or relative) against base (RFC 3986 §5.2),
 * appending to out; non-ASCII bytes and spaces come out percent-encoded (a raw UTF-8 Location). */
int url_resolve(const char *base, const char *ref, struct buf *out);

#endif
