/* tls_layer.h — TLS as a layer of a connection's stack (tls.c's sessions over layer.h).
 * The layer owns its tls_conn; both are freed by the layer's free, from the conn's close. */
#ifndef LUAFETCH_TLS_LAYER_H
#define LUAFETCH_TLS_LAYER_H

#include "layer.h"
#include "tls.h"

/* A TLS layer for o (host = SNI and the name checked), or NULL with the reason in err. */
struct layer *tls_layer_new(const struct tls_options *o, char *err, size_t errlen);
/* Session details of a TLS layer; returns 1. */
int tls_layer_info(struct layer *l, struct tls_info *info, int *resumed);
/* The protocol the server chose by ALPN, or NULL. */
const char *tls_layer_alpn(struct layer *l);

#endif
