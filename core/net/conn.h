/* conn.h — one connection to one address: TCP at the bottom, then the layers of its stack (a
 * proxy tunnel, TLS), each with the same small interface (layer.h). A conn is owned by a request
 * while in use and by the pool while idle; it and its layers are freed in the handle's close
 * callback only, after conn_close. */
#ifndef LUAFETCH_CONN_H
#define LUAFETCH_CONN_H

#include <uv.h>

#include "buf.h"
#include "layer.h"
#include "net.h"
#include "tls.h"
#include "tunnel.h"
#include "writeq.h"

#define CONN_MAX_LAYERS 2

struct conn;

/* Events for the current owner. kind is NET_OK or a failure kind with a message. */
struct conn_handler {
    void (*tcp_connected)(struct conn *c);                                /* TCP is up; may be NULL */
    void (*tls_started)(struct conn *c);                                  /* all below TLS is up; may be NULL */
    void (*ready)(struct conn *c, enum net_kind kind, const char *msg);   /* every layer is ready */
    void (*data)(struct conn *c, const char *buf, size_t len);            /* application bytes */
    void (*closed)(struct conn *c, enum net_kind kind, const char *msg);  /* EOF or error */
    void (*drained)(struct conn *c);   /* every queued byte went to the kernel; may be NULL */
};

/* What to build on top of TCP, bottom first. Strings are copied by conn_open. */
struct conn_stack {
    const struct tunnel_options *tunnel;   /* NULL: no proxy tunnel */
    const struct tls_options *tls;         /* NULL: no TLS */
};

struct conn {
    uv_tcp_t tcp;
    struct net *net;
    const struct conn_handler *handler;
    void *owner;
    char *pool_key;                 /* in the conn's own allocation, after the struct */
    struct layer *layer[CONN_MAX_LAYERS];
    struct writeq out;              /* bytes the kernel has not taken yet */
    unsigned char nlayers;
    unsigned char layers_ready;     /* how many layers, from the bottom, finished their handshake */
    /* flags kept small: a conn per waiting request */
    unsigned handshake_write_failed : 1;  /* peer closed mid-handshake: drop output, read its reason */
    unsigned tcp_up : 1;
    unsigned closing : 1;
    unsigned paused : 1;            /* reading stopped by conn_pause (a slow consumer) */
    unsigned counted_connecting : 1;      /* holds a connect-pacing slot */
    /* A multiplexing protocol's session (HTTP/2), opaque here: set while such a session owns the
     * conn; the pool lists the conn as shared (many requests at once) while it takes more. */
    void *mux;
    void (*mux_free)(void *mux);    /* frees it, from the conn's close callback; may be NULL */
    /* A conn is idle in the pool (parked by its request) or listed as shared (owned by its
     * session), never both: a session's conn is never parked. Both zero when neither. */
    union {
        struct {
            uint64_t idle_since;            /* ms, while pooled */
            struct conn *idle_next, *idle_prev;   /* the bucket's list, while pooled */
            struct conn *lru_next, *lru_prev;     /* the pool's list across all keys, while pooled */
            struct pool_bucket *bucket;     /* set while idle in the pool */
        };
        struct {
            struct conn *shared_next, *shared_prev;
            struct pool_bucket *shared_bucket;
        };
    };
};

/* Starts a connection to addr (port set). Returns 0 and later calls handler->ready, or a uv error
 * (nothing left allocated; UV_EINVAL means a layer could not be set up, reason in err). */
int conn_open(struct conn **out, struct net *net, const struct sockaddr *addr,
              const struct conn_stack *stack, const char *pool_key,
              const struct conn_handler *h, void *owner, char *err, size_t errlen);
/* Queues application bytes for sending (through the layers). 0 or -1. */
int conn_write(struct conn *c, const char *data, size_t len);
/* Closes (idempotent); no more events. Freed in the close callback. */
void conn_close(struct conn *c);
void conn_set_owner(struct conn *c, const struct conn_handler *h, void *owner);
/* 1 if c can serve another request: nothing left to write, no received bytes unread. */
int conn_reusable(struct conn *c);
/* 1 if an idle c still looks usable to the kernel: no EOF, no error, no unread byte waiting. */
int conn_alive(struct conn *c);
/* Whether the conn keeps the loop alive (a live exchange) or not (idle, waiting for reuse). */
void conn_hold_loop(struct conn *c, int hold);
/* Bytes handed to conn_write that the kernel has not taken yet (a sender's backpressure). */
size_t conn_write_queued(const struct conn *c);
/* The protocol the server chose by ALPN on the TLS layer, or NULL (no TLS, no ALPN answer). */
const char *conn_alpn(struct conn *c);
/* Stops reading from the socket (the consumer is behind) / starts again. Idempotent. Bytes of a
 * read already under way are still delivered. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* Bytes written but not yet taken by the kernel (0 when the queue is empty). */
size_t conn_unsent(struct conn *c);
/* The TLS layer's session details: 1 when c has TLS (info and *resumed filled), else 0. */
int conn_tls_info(struct conn *c, struct tls_info *info, int *resumed);

#endif
