/* redis_url.c — redis://[[user]:password@]host[:port][/db] into a struct redis_config, and the
 * names of the client's failure kinds. The config owns its strings (redis_config_free). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

const char *redis_err_name(enum redis_err e)
{
    switch (e) {
    case REDIS_E_NONE: return "ok";
    case REDIS_E_CONNECT: return "connect";
    case REDIS_E_AUTH: return "auth";
    case REDIS_E_CLOSED: return "closed";
    case REDIS_E_TIMEOUT: return "timeout";
    case REDIS_E_CANCELED: return "canceled";
    case REDIS_E_NOMEM: return "nomem";
    }
    return "error";
}

void redis_config_free(struct redis_config *cfg)
{
    free(cfg->host);
    free(cfg->user);
    if (cfg->password) /* do not leave the secret in freed memory */
        memset(cfg->password, 0, strlen(cfg->password));
    free(cfg->password);
    memset(cfg, 0, sizeof *cfg);
}

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

/* A percent-decoded copy of s[0..len), or NULL (bad escape, a NUL byte, out of memory). */
static char *decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= len || hexval((unsigned char)s[i + 1]) < 0 || hexval((unsigned char)s[i + 2]) < 0) {
                free(out);
                return NULL;
            }
            ch = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
            i += 2;
        }
        if (ch == 0) {
            free(out);
            return NULL;
        }
        *o++ = (char)ch;
    }
    *o = 0;
    return out;
}

static int fail(struct redis_config *cfg, char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    redis_config_free(cfg);
    return -1;
}

int redis_url_parse(const char *url, struct redis_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 6379;
    cfg->connect_timeout = 5;
    cfg->backoff_min = 0.05;
    cfg->backoff_max = 2;
    if (!strncmp(url, "rediss://", 9))
        return fail(cfg, err, errlen, "rediss:// (TLS) is not supported: hiredis 0.14 has no TLS; "
                                      "run a local TLS tunnel such as stunnel and use redis://127.0.0.1:PORT "
                                      "(docs/scale-out.md)");
    if (strncmp(url, "redis://", 8))
        return fail(cfg, err, errlen, "a Redis URL starts with redis://");
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#')
        return fail(cfg, err, errlen, "a Redis URL takes no query or fragment");
    /* userinfo: up to the last '@' of the authority (a password may contain '@' when escaped) */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return fail(cfg, err, errlen, "a Redis URL's user needs a password: redis://user:password@host");
        if (colon > p && !(cfg->user = decode(p, (size_t)(colon - p))))
            return fail(cfg, err, errlen, "bad %-escape in the Redis URL's user");
        if (!(cfg->password = decode(colon + 1, (size_t)(at - colon - 1))))
            return fail(cfg, err, errlen, "bad %-escape in the Redis URL's password");
        if (!*cfg->password)
            return fail(cfg, err, errlen, "empty password in the Redis URL");
        p = at + 1;
    }
    const char *host_end, *port_at = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return fail(cfg, err, errlen, "unclosed [ in the Redis URL's host");
        host_end = close;
        p++;
        if (close + 1 < end) {
            if (close[1] != ':')
                return fail(cfg, err, errlen, "bad Redis URL: text after ]");
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        if (colon)
            port_at = colon + 1;
    }
    if (host_end == p)
        return fail(cfg, err, errlen, "a Redis URL needs a host: redis://host:port");
    cfg->host = strndup(p, (size_t)(host_end - p));
    if (!cfg->host)
        return fail(cfg, err, errlen, "out of memory");
    if (port_at) {
        long port = 0;
        const char *q = port_at;
        for (; q < end && isdigit((unsigned char)*q) && port <= 65535; q++)
            port = port * 10 + (*q - '0');
        if (q != end || q == port_at || port < 1 || port > 65535)
            return fail(cfg, err, errlen, "bad port in the Redis URL");
        cfg->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        char *stop;
        errno = 0;
        long db = strtol(end + 1, &stop, 10);
        if (*stop || errno || db < 0 || db > 1000000 || !isdigit((unsigned char)end[1]))
            return fail(cfg, err, errlen, "the Redis URL's path must be a database number, e.g. redis://host:6379/2");
        cfg->db = (int)db;
    }
    return 0;
}
