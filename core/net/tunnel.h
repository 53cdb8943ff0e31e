/* tunnel.h — proxy tunnels as layers of a connection's stack: HTTP CONNECT (tunnel_http.c) and
 * SOCKS5 with username/password (tunnel_socks.c). After the handshake a tunnel passes bytes
 * through untouched. Each layer copies the options it needs and frees them in its free. */
#ifndef LUAFETCH_TUNNEL_H
#define LUAFETCH_TUNNEL_H

#include <sys/socket.h>

#include "buf.h"
#include "layer.h"

enum tunnel_kind {
    TUNNEL_HTTP_CONNECT = 1,   /* CONNECT host:port to an HTTP proxy */
    TUNNEL_SOCKS5,             /* SOCKS5; the origin given by address, or by name (socks5h) */
};

struct tunnel_options {
    enum tunnel_kind kind;
    const char *host;                   /* the origin the tunnel reaches */
    int port;
    const struct sockaddr *addr;        /* SOCKS5 with local resolution: the origin's address */
    const char *user, *pass;            /* proxy credentials, or NULL */
    const char *proxy;                  /* "host:port" of the proxy, for messages */
};

/* A tunnel layer for o, or NULL with the reason in err. */
struct layer *tunnel_layer_new(const struct tunnel_options *o, char *err, size_t errlen);
struct layer *tunnel_http_new(const struct tunnel_options *o, char *err, size_t errlen);
struct layer *tunnel_socks_new(const struct tunnel_options *o, char *err, size_t errlen);

/* "Basic base64(user:pass)" appended to out (Proxy-Authorization's value). 0 or -1. */
int proxy_basic_credentials(struct buf *out, const char *user, const char *pass);

/* Passing through, once the handshake is done (shared by both tunnels). */
int tunnel_pass_write(struct layer *l, const char *data, size_t len);

#endif
