/* tunnel_socks.c — the SOCKS5 tunnel (RFC 1928) with username/password (RFC 1929): greeting,
 * optional login, CONNECT to the origin by address (socks5) or by name (socks5h), then bytes pass
 * through. The layer owns its copies of the options and its input buffer. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tunnel.h"

enum socks_state { S_GREETING, S_LOGIN, S_CONNECT, S_OPEN };

struct tunnel_socks {
    struct layer base;
    enum socks_state state;
    struct buf in;                  /* reply bytes not yet consumed */
    struct sockaddr_storage addr;   /* the origin's address, when resolved locally */
    int by_addr;
    char *host, *user, *pass, *proxy;
    int port;
};

static void fail(struct tunnel_socks *t, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof msg, "SOCKS5 proxy %s: %s", t->proxy, what);
    layer_fail(&t->base, NET_PROXY, msg);
}

static int send_greeting(struct tunnel_socks *t)
{
    /* Offer "no authentication" only without credentials, so a proxy cannot skip the login. */
    unsigned char g[3] = { 5, 1, t->user ? 2 : 0 };
    return layer_send(&t->base, (const char *)g, sizeof g);
}

static int send_login(struct tunnel_socks *t)
{
    size_t ul = strlen(t->user), pl = strlen(t->pass ? t->pass : "");
    unsigned char m[3 + 255 + 255];
    m[0] = 1;
    m[1] = (unsigned char)ul;
    memcpy(m + 2, t->user, ul);
    m[2 + ul] = (unsigned char)pl;
    memcpy(m + 3 + ul, t->pass ? t->pass : "", pl);
    int rc = layer_send(&t->base, (const char *)m, 3 + ul + pl);
    memset(m, 0, sizeof m);
    return rc;
}

static int send_connect(struct tunnel_socks *t)
{
    unsigned char m[4 + 1 + 255 + 2];
    size_t n = 0;
    m[n++] = 5;
    m[n++] = 1; /* CONNECT */
    m[n++] = 0;
    if (t->by_addr && t->addr.ss_family == AF_INET) {
        m[n++] = 1;
        memcpy(m + n, &((struct sockaddr_in *)&t->addr)->sin_addr, 4);
        n += 4;
    } else if (t->by_addr) {
        m[n++] = 4;
        memcpy(m + n, &((struct sockaddr_in6 *)&t->addr)->sin6_addr, 16);
        n += 16;
    } else {
        size_t hl = strlen(t->host);
        m[n++] = 3;
        m[n++] = (unsigned char)hl;
        memcpy(m + n, t->host, hl);
        n += hl;
    }
    m[n++] = (unsigned char)(t->port >> 8);
    m[n++] = (unsigned char)(t->port & 0xff);
    return layer_send(&t->base, (const char *)m, n);
}

static int socks_open(struct layer *l)
{
    return send_greeting((struct tunnel_socks *)l);
}

static const char *reply_text(int rep)
{
    static const char *const text[] = {
        "succeeded", "general failure", "connection not allowed by ruleset", "network unreachable",
        "host unreachable", "connection refused", "TTL expired", "command not supported",
        "address type not supported",
    };
    return rep >= 0 && rep < 9 ? text[rep] : "unknown error";
}

/* Consumes n bytes from the front of the input. */
static void consume(struct tunnel_socks *t, size_t n)
{
    memmove(t->in.data, t->in.data + n, t->in.len - n);
    t->in.len -= n;
}

/* Advances through the replies in t->in; returns 1 while more input is needed or the tunnel
 * opened, 0 after a failure was reported. */
static int step(struct tunnel_socks *t)
{
    const unsigned char *p = (const unsigned char *)t->in.data;
    char what[160];
    for (;;) {
        p = (const unsigned char *)t->in.data;
        size_t have = t->in.len;
        switch (t->state) {
        case S_GREETING:
            if (have < 2)
                return 1;
            if (p[0] != 5) {
                fail(t, "garbled reply (not SOCKS version 5)");
                return 0;
            }
            if (p[1] == 0xff || (p[1] != 0 && p[1] != 2) || (p[1] == 2 && !t->user) ||
                (p[1] == 0 && t->user)) {
                fail(t, t->user ? "refused username/password authentication"
                                : "requires authentication (give user:pass@ in the proxy URL)");
                return 0;
            }
            consume(t, 2);
            t->state = t->user ? S_LOGIN : S_CONNECT;
            if ((t->user ? send_login(t) : send_connect(t)) < 0)
                return 0;
            break;
        case S_LOGIN:
            if (have < 2)
                return 1;
            if (p[0] != 1) {
                fail(t, "garbled reply to the login");
                return 0;
            }
            if (p[1] != 0) {
                fail(t, "authentication refused (wrong username or password)");
                return 0;
            }
            consume(t, 2);
            t->state = S_CONNECT;
            if (send_connect(t) < 0)
                return 0;
            break;
        case S_CONNECT: {
            if (have < 5)
                return 1;
            if (p[0] != 5 || p[2] != 0) {
                fail(t, "garbled reply to CONNECT");
                return 0;
            }
            if (p[1] != 0) {
                snprintf(what, sizeof what, "cannot reach %s port %d: %s", t->host, t->port, reply_text(p[1]));
                fail(t, what);
                return 0;
            }
            size_t need = p[3] == 1 ? 10 : p[3] == 4 ? 22 : p[3] == 3 ? 7 + (size_t)p[4] : 0;
            if (!need) {
                fail(t, "garbled reply to CONNECT (address type)");
                return 0;
            }
            if (have < need)
                return 1;
            consume(t, need);
            t->state = S_OPEN;
            const void *owner = layer_owner(&t->base);
            layer_ready(&t->base);
            if (t->in.len && layer_owner_unchanged(&t->base, owner)) {
                struct buf rest = t->in;
                t->in = (struct buf){0};
                layer_deliver(&t->base, rest.data, rest.len);
                buf_free(&rest);
            }
            return 1;
        }
        case S_OPEN:
            return 1;
        }
    }
}

static void socks_input(struct layer *l, const char *data, size_t len)
{
    struct tunnel_socks *t = (struct tunnel_socks *)l;
    if (t->state == S_OPEN) {
        layer_deliver(l, data, len);
        return;
    }
    if (buf_append(&t->in, data, len)) {
        fail(t, "out of memory");
        return;
    }
    step(t);
}

static int socks_write(struct layer *l, const char *data, size_t len)
{
    return tunnel_pass_write(l, data, len);
}

static void socks_free(struct layer *l)
{
    struct tunnel_socks *t = (struct tunnel_socks *)l;
    buf_free(&t->in);
    free(t->host);
    free(t->user);
    if (t->pass) {
        memset(t->pass, 0, strlen(t->pass));
        free(t->pass);
    }
    free(t->proxy);
    free(t);
}

static const struct layer_ops socks_ops = {
    "SOCKS5", socks_open, socks_input, socks_write, NULL, socks_free,
};

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

struct layer *tunnel_socks_new(const struct tunnel_options *o, char *err, size_t errlen)
{
    if (strlen(o->host) > 255 || (o->user && strlen(o->user) > 255) || (o->pass && strlen(o->pass) > 255)) {
        snprintf(err, errlen, "SOCKS5 allows host names, user names and passwords of 255 bytes at most");
        return NULL;
    }
    if (o->user && !*o->user) {
        snprintf(err, errlen, "SOCKS5 needs a non-empty user name");
        return NULL;
    }
    struct tunnel_socks *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int oom = 0;
    t->host = dup_or_null(o->host, &oom);
    t->user = dup_or_null(o->user, &oom);
    t->pass = dup_or_null(o->pass, &oom);
    t->proxy = dup_or_null(o->proxy ? o->proxy : "?", &oom);
    t->port = o->port;
    if (o->addr) {
        t->by_addr = 1;
        memcpy(&t->addr, o->addr, o->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                  : sizeof(struct sockaddr_in));
    }
    if (oom) {
        socks_free(&t->base);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &socks_ops;
    return &t->base;
}
