/* tls_ecp.h — a handshake's elliptic-curve work with tables kept for the process: the server's
 * ECDSA signature and the ECDHE key pair (tls_ecp.c owns the tables; tls_ecp_cleanup frees them
 * after every connection is gone). */
#ifndef LUAFETCH_TLS_ECP_H
#define LUAFETCH_TLS_ECP_H

#include <mbedtls/pk.h>

/* Makes pk (a peer's or a trust anchor's key, an EC key on P-256 or P-384) verify signatures with
 * the kept tables: 1 if it does now, 0 if pk is left as it was. Verdicts and error codes are
 * mbedTLS's own. Never for a key that goes to mbedtls_pk_check_pair (an own certificate's): that
 * compares pk_info pointers. */
int tls_ecp_share_verify(mbedtls_pk_context *pk);
/* Lends the generator's table of the shared P-256 group to grp (a key exchange's group, without a
 * table of its own) for one step of the handshake: 1 if lent. tls_ecp_take_back must follow before
 * the step's session can be freed: the group must not free a table it does not own. */
int tls_ecp_lend_generator(mbedtls_ecp_group *grp);
void tls_ecp_take_back(mbedtls_ecp_group *grp);
/* Signatures verified with the kept tables, and key exchanges that borrowed the generator's, so far. */
void tls_ecp_counts(unsigned long *verifications, unsigned long *lends);
/* Frees the shared groups and key tables (tls_global_cleanup). */
void tls_ecp_cleanup(void);

#endif
