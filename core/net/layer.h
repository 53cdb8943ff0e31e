/* layer.h — one layer of a connection's stack (a proxy tunnel, TLS): the interface every layer
 * implements and the calls it makes to its neighbours. A layer is owned by its conn, created by
 * its constructor at conn_open and freed by ops->free in the conn's close callback. */
#ifndef LUAFETCH_LAYER_H
#define LUAFETCH_LAYER_H

#include <stddef.h>

#include "net.h"

struct conn;
struct layer;

/* Bytes flow up (input: from the socket towards the protocol) and down (write: towards the
 * socket). Until a layer has called layer_ready it is handshaking: it may talk to the layer
 * below, and nothing from above reaches it. */
struct layer_ops {
    const char *name;
    /* The layers below are ready: start the handshake (send its first bytes). 0, or -1 after
     * layer_fail. */
    int (*open)(struct layer *l);
    /* Bytes from the layer below; the layer passes what belongs above to layer_deliver. */
    void (*input)(struct layer *l, const char *data, size_t len);
    /* Bytes from above, once ready; the layer hands its own bytes to layer_send. 0 or -1. */
    int (*write)(struct layer *l, const char *data, size_t len);
    /* 1 if received bytes wait inside the layer (a conn holding them cannot be reused). */
    int (*input_pending)(const struct layer *l);
    void (*free)(struct layer *l);
};

struct layer {
    const struct layer_ops *ops;
    struct conn *conn;
    int index;          /* 0 sits on TCP */
    int is_tls;         /* the TLS layer: its start and end delimit the "tls" phase */
};

/* Bytes of this layer to the layer below it (or the socket). 0 or -1. */
int layer_send(struct layer *l, const char *data, size_t len);
/* Bytes for the layer above it (or the protocol). The conn may be closed or change hands inside
 * this call: check layer_still_mine afterwards before touching anything. */
void layer_deliver(struct layer *l, const char *data, size_t len);
/* The handshake is done: the next layer opens, or the conn reports ready. */
void layer_ready(struct layer *l);
/* The layer failed: the conn reports kind and msg to its owner (and is closed by it). */
void layer_fail(struct layer *l, enum net_kind kind, const char *msg);
/* The peer ended the stream cleanly at this layer (TLS close_notify). */
void layer_eof(struct layer *l);
/* 1 if, after a deliver, the conn still has the owner it had before (see layer_deliver). */
int layer_owner_unchanged(struct layer *l, const void *owner_before);
const void *layer_owner(struct layer *l);
/* The loop's shared scratch buffer for plaintext (consumed before the next read). */
unsigned char *layer_scratch(struct layer *l, size_t *size);

#endif
