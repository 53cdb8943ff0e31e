/* conn.h — one TCP connection (optionally TLS) to one address: connect, handshake, read, write, close.
 * A conn is owned by a request while in use and by the pool while idle; memory is freed in the
 * handle's close callback only, after conn_close. */
#ifndef LUAFETCH_CONN_H
#define LUAFETCH_CONN_H

#include <uv.h>

#include "buf.h"
#include "net.h"
#include "tls.h"
#include "writeq.h"

struct conn;

/* Events for the current owner. kind is NET_OK or a failure kind with a message. */
struct conn_handler {
    void (*tcp_connected)(struct conn *c);                                /* before TLS; may be NULL */
    void (*ready)(struct conn *c, enum net_kind kind, const char *msg);   /* connected (+TLS) */
    void (*data)(struct conn *c, const char *buf, size_t len);            /* plaintext */
    void (*closed)(struct conn *c, enum net_kind kind, const char *msg);  /* EOF or error */
};

struct conn {
    uv_tcp_t tcp;
    struct net *net;
    const struct conn_handler *handler;
    void *owner;
    char *pool_key;                 /* owned */
    struct tls_conn *tls;           /* NULL for plain http */
    int tls_done;
    struct writeq out;              /* bytes the kernel has not taken yet */
    int handshake_write_failed;     /* peer closed mid-handshake: drop output, read its alert */
    int closing;
    int counted_connecting;         /* holds a connect-pacing slot */
    uint64_t idle_since;            /* ms, while pooled */
    struct conn *idle_next, *idle_prev;   /* the bucket's list, while pooled */
    struct conn *lru_next, *lru_prev;     /* the pool's list across all keys, while pooled */
    struct pool_bucket *bucket;     /* set while idle in the pool */
};

/* Starts a connection to addr (port set). Returns 0 and later calls handler->ready, or a uv error
 * (nothing left allocated; UV_EINVAL means the TLS set-up failed, reason in err). tls may be NULL. */
int conn_open(struct conn **out, struct net *net, const struct sockaddr *addr,
              const struct tls_options *tls, const char *pool_key,
              const struct conn_handler *h, void *owner, char *err, size_t errlen);
/* Queues plaintext for sending (through TLS when on). 0 or -1. */
int conn_write(struct conn *c, const char *data, size_t len);
/* Closes (idempotent); no more events. Freed in the close callback. */
void conn_close(struct conn *c);
void conn_set_owner(struct conn *c, const struct conn_handler *h, void *owner);
/* 1 if c can serve another request: nothing left to write, no received bytes unread. */
int conn_reusable(struct conn *c);
/* 1 if an idle c still looks usable to the kernel: no EOF, no error, no unread byte waiting. */
int conn_alive(struct conn *c);

#endif
