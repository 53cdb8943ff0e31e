/* tls_verify.h — the server's certificate chain checked by luafetch itself (mbedTLS runs with its
 * own check off: tls.c calls this once the Certificate message is parsed, before the key exchange
 * goes on), with a cache of chains already verified, so the many connections of a crawl to one
 * host pay for the chain's signatures once. The handshake's own signature (ServerKeyExchange) is
 * still checked by mbedTLS every time. No sockets, no Lua; a cache is owned by the trust anchors
 * (the parsed CA bundle) it was verified against, and freed with them. */
#ifndef LUAFETCH_TLS_VERIFY_H
#define LUAFETCH_TLS_VERIFY_H

#include <stdint.h>

#include <mbedtls/x509_crt.h>

/* Entries a cache keeps (the least recently used one gives way), and the longest an entry is
 * trusted without checking again (the chain's own validity bounds it too). */
#define TLS_VERIFY_CACHE_SLOTS 64
#define TLS_VERIFY_CACHE_TTL 3600

struct tls_verify_cache;

/* What to check a chain against: the trust anchors, the profile, the host (its name for the
 * chain's name check, which `cb` may refine), and the callback mbedTLS calls per certificate. */
struct tls_verify_ctx {
    mbedtls_x509_crt *ca;
    const mbedtls_x509_crt_profile *profile;
    const char *host;
    int (*cb)(void *, mbedtls_x509_crt *, int, uint32_t *);
    void *cb_ud;
    int (*curve_ok)(int grp_id); /* an EC leaf key must be on a curve the client offers */
    int may_wait;               /* off the loop's thread: wait for a check of the same chain */
};

/* Checks `chain` (leaf first) as mbedTLS's client would: the chain to a trust anchor, validity
 * dates, the host name, the leaf's key usage (digitalSignature) and extended key usage (server
 * authentication), the leaf key's curve. Answers from *cache (allocated on first use) when this
 * exact chain (its DER bytes) was verified for this host less than TLS_VERIFY_CACHE_TTL ago and
 * is still within its dates. Returns 0 (*flags = 0) or -1 with mbedTLS's MBEDTLS_X509_BADCERT_*
 * flags; *cached says the answer came from the cache. Out of memory only skips caching. Safe to
 * call from several threads at once (for different connections); with ctx->may_wait a caller
 * waits for another thread's check of the same chain instead of repeating it (the loop's thread
 * never waits: it checks for itself). */
int tls_verify_chain(struct tls_verify_cache **cache, const mbedtls_x509_crt *chain,
                     const struct tls_verify_ctx *ctx, uint32_t *flags, int *cached);

void tls_verify_cache_free(struct tls_verify_cache *cache);

#endif
