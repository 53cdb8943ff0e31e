/* tls_verify.c — the server's certificate chain checked as mbedTLS's client checks it, with a cache
 * of chains already verified (see tls_verify.h). A cache belongs to one set of trust anchors and
 * is freed with it; it holds hashes and times, no certificates. */
#include "tls_verify.h"
#include "tls_cert.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

struct verified {
    unsigned char key[32];      /* SHA-256 of the host and the chain's DER; all zero: a free slot */
    long long not_before, until;
    unsigned long long used;
};

struct tls_verify_cache {
    struct verified slot[TLS_VERIFY_CACHE_SLOTS];
    unsigned long long tick;
};

/* Handshakes may run on libuv's thread pool (tls_layer.c): every cache is read and written under
 * this lock (held for a lookup or an insert, never during a verification). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Chains being verified now, by key: a second handshake with the same chain (the first burst of
 * connections to a host) waits for that verdict instead of doing the same work (`done` is
 * broadcast as each ends). With every slot taken, verifications simply run side by side. */
#define INFLIGHT_SLOTS 16
static struct {
    unsigned char key[32];
    int active;
} inflight[INFLIGHT_SLOTS];
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;

static int inflight_find(const unsigned char key[32])
{
    for (int i = 0; i < INFLIGHT_SLOTS; i++)
        if (inflight[i].active && memcmp(inflight[i].key, key, 32) == 0)
            return i;
    return -1;
}

/* The cache key: the host (the name check depends on it), then each certificate's DER with its
 * length, so no two different chains give the same bytes. 0, or -1 if hashing failed. */
static int chain_key(const mbedtls_x509_crt *chain, const char *host, unsigned char key[32])
{
    mbedtls_sha256_context h;
    int rc;
    mbedtls_sha256_init(&h);
    rc = mbedtls_sha256_starts_ret(&h, 0) ||
         mbedtls_sha256_update_ret(&h, (const unsigned char *)host, strlen(host) + 1);
    for (const mbedtls_x509_crt *c = chain; !rc && c && c->raw.p; c = c->next) {
        unsigned char len[4] = { (unsigned char)(c->raw.len >> 24), (unsigned char)(c->raw.len >> 16),
                                 (unsigned char)(c->raw.len >> 8), (unsigned char)c->raw.len };
        rc = mbedtls_sha256_update_ret(&h, len, sizeof len) || mbedtls_sha256_update_ret(&h, c->raw.p, c->raw.len);
    }
    rc = rc || mbedtls_sha256_finish_ret(&h, key);
    mbedtls_sha256_free(&h);
    return rc ? -1 : 0;
}

static struct verified *lookup(struct tls_verify_cache *cache, const unsigned char key[32], long long now)
{
    for (int i = 0; cache && i < TLS_VERIFY_CACHE_SLOTS; i++) {
        struct verified *v = &cache->slot[i];
        if (v->used && memcmp(v->key, key, 32) == 0) {
            if (now < v->not_before || now >= v->until) {
                memset(v, 0, sizeof *v); /* out of its dates, or checked too long ago */
                return NULL;
            }
            v->used = ++cache->tick;
            return v;
        }
    }
    return NULL;
}

static void remember(struct tls_verify_cache **cache, const mbedtls_x509_crt *chain,
                     const unsigned char key[32], long long now)
{
    if (!*cache && !(*cache = calloc(1, sizeof **cache)))
        return;
    /* the same key again (two threads checked it at once) takes its slot, else a free or the
     * least recently used one */
    struct verified *v = NULL;
    for (int i = 0; i < TLS_VERIFY_CACHE_SLOTS && !v; i++)
        if ((*cache)->slot[i].used && memcmp((*cache)->slot[i].key, key, 32) == 0)
            v = &(*cache)->slot[i];
    if (!v) {
        v = &(*cache)->slot[0];
        for (int i = 0; i < TLS_VERIFY_CACHE_SLOTS && v->used; i++)
            if (!(*cache)->slot[i].used || (*cache)->slot[i].used < v->used)
                v = &(*cache)->slot[i];
    }
    long long not_before = 0, until = now + TLS_VERIFY_CACHE_TTL;
    for (const mbedtls_x509_crt *c = chain; c && c->raw.p; c = c->next) {
        long long from = tls_cert_time_unix(&c->valid_from), to = tls_cert_time_unix(&c->valid_to);
        if (from > not_before)
            not_before = from;
        if (to < until)
            until = to;
    }
    memcpy(v->key, key, 32);
    v->not_before = not_before;
    v->until = until;
    v->used = ++(*cache)->tick;
}

int tls_verify_chain(struct tls_verify_cache **cache, const mbedtls_x509_crt *chain,
                     const struct tls_verify_ctx *ctx, uint32_t *flags, int *cached)
{
    unsigned char key[32];
    long long now = (long long)time(NULL);
    int keyed = chain_key(chain, ctx->host, key) == 0;
    *flags = 0;
    *cached = 0;
    int claimed = -1;
    if (keyed) {
        pthread_mutex_lock(&lock);
        for (;;) {
            if (lookup(*cache, key, now)) {
                pthread_mutex_unlock(&lock);
                *cached = 1;
                return 0;
            }
            if (!ctx->may_wait || inflight_find(key) < 0)
                break;
            pthread_cond_wait(&done, &lock); /* another thread checks this very chain */
        }
        for (int i = 0; i < INFLIGHT_SLOTS && claimed < 0 && inflight_find(key) < 0; i++)
            if (!inflight[i].active)
                claimed = i;
        if (claimed >= 0) {
            memcpy(inflight[claimed].key, key, 32);
            inflight[claimed].active = 1;
        }
        pthread_mutex_unlock(&lock);
    }
    /* mbedTLS's own order (ssl_parse_certificate_verify): the chain, the key's curve, the usages */
    int ret = mbedtls_x509_crt_verify_with_profile((mbedtls_x509_crt *)chain, ctx->ca, NULL, ctx->profile,
                                                   ctx->host, flags, ctx->cb, ctx->cb_ud);
    if (ret != 0 && *flags == 0)
        *flags = MBEDTLS_X509_BADCERT_OTHER; /* a failure that set no flag (out of memory ...) */
    if (mbedtls_pk_can_do(&chain->pk, MBEDTLS_PK_ECKEY) && !ctx->curve_ok(mbedtls_pk_ec(chain->pk)->grp.id))
        *flags |= MBEDTLS_X509_BADCERT_BAD_KEY;
    /* every suite offered is ECDHE with a signature from the certificate's key */
    if (mbedtls_x509_crt_check_key_usage(chain, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0)
        *flags |= MBEDTLS_X509_BADCERT_KEY_USAGE;
    if (mbedtls_x509_crt_check_extended_key_usage(chain, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0)
        *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    if (keyed) {
        pthread_mutex_lock(&lock);
        if (!*flags)
            remember(cache, chain, key, now);
        if (claimed >= 0) {
            inflight[claimed].active = 0;
            pthread_cond_broadcast(&done); /* the waiters look again: a hit, or their own check */
        }
        pthread_mutex_unlock(&lock);
    }
    return *flags ? -1 : 0;
}

void tls_verify_cache_free(struct tls_verify_cache *cache)
{
    free(cache);
}
