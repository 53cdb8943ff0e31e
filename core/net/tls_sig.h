/* tls_sig.h — the server's ECDSA handshake signature verified with a curve group kept for the
 * process (tls_sig.c owns the groups; tls_sig_cleanup frees them after every connection is gone). */
#ifndef LUAFETCH_TLS_SIG_H
#define LUAFETCH_TLS_SIG_H

#include <mbedtls/pk.h>

/* Makes pk (the server certificate's key, an EC key on P-256 or P-384) verify signatures with the
 * shared group of its curve: 1 if it does now, 0 if pk is left as it was. Verdicts and error codes
 * are mbedTLS's own. */
int tls_sig_share_group(mbedtls_pk_context *pk);
/* Frees the shared groups (tls_global_cleanup). */
void tls_sig_cleanup(void);

#endif
