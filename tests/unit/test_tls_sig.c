/* test_tls_sig.c — core/net/tls_sig.c: a key switched to the process-wide curve group gives the
 * same verdict and the same error code as mbedTLS's own verification, for good signatures, altered
 * hashes, altered signatures, trailing bytes and bad encodings; on P-256, P-384 (switched) and
 * P-521 (left alone); also from several threads at once on one shared group. Keys and signatures
 * are made here with mbedTLS; everything allocated is freed. */
#include "tls_sig.h"
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

struct keyset {
    mbedtls_pk_context shared, plain;   /* the same public key: switched, and as mbedTLS made it */
    unsigned char hash[48];
    unsigned char sig[MBEDTLS_ECDSA_MAX_LEN + 1];
    size_t sig_len;
};

/* A key pair on the curve; two public-key contexts holding its public half, and a signature. */
static int make_keys(struct keyset *k, mbedtls_ecp_group_id curve)
{
    mbedtls_pk_context priv;
    mbedtls_pk_init(&priv);
    mbedtls_pk_init(&k->shared);
    mbedtls_pk_init(&k->plain);
    unsigned char der[512];
    int ok = mbedtls_pk_setup(&priv, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0 &&
             mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(priv), mbedtls_ctr_drbg_random, &drbg) == 0;
    int n = ok ? mbedtls_pk_write_pubkey_der(&priv, der, sizeof der) : -1;
    ok = n > 0 && mbedtls_pk_parse_public_key(&k->shared, der + sizeof der - n, (size_t)n) == 0 &&
         mbedtls_pk_parse_public_key(&k->plain, der + sizeof der - n, (size_t)n) == 0;
    for (size_t i = 0; i < sizeof k->hash; i++)
        k->hash[i] = (unsigned char)(i * 7 + 1);
    ok = ok && mbedtls_pk_sign(&priv, MBEDTLS_MD_SHA256, k->hash, 32, k->sig, &k->sig_len, mbedtls_ctr_drbg_random,
                               &drbg) == 0;
    mbedtls_pk_free(&priv);
    return ok;
}

static void free_keys(struct keyset *k)
{
    mbedtls_pk_free(&k->shared);
    mbedtls_pk_free(&k->plain);
}

/* Verifies with both contexts; checks they agree; returns the shared one's code. */
static int both(struct keyset *k, const unsigned char *hash, const unsigned char *sig, size_t sig_len)
{
    int a = mbedtls_pk_verify(&k->shared, MBEDTLS_MD_SHA256, hash, 32, sig, sig_len);
    int b = mbedtls_pk_verify(&k->plain, MBEDTLS_MD_SHA256, hash, 32, sig, sig_len);
    CHECK_MSG(a == b, "shared group gives -0x%04x, mbedTLS's own way -0x%04x", (unsigned)-a, (unsigned)-b);
    return a;
}

static void test_curve(mbedtls_ecp_group_id curve, int switched)
{
    struct keyset k;
    CHECK(make_keys(&k, curve));
    CHECK_INT(tls_sig_share_group(&k.shared), switched);
    CHECK_INT(tls_sig_share_group(NULL), 0);
    unsigned char sig[sizeof k.sig], hash[sizeof k.hash];

    CHECK_INT(both(&k, k.hash, k.sig, k.sig_len), 0);                 /* good */
    memcpy(hash, k.hash, sizeof hash);
    hash[5] ^= 1;
    CHECK_INT(both(&k, hash, k.sig, k.sig_len), MBEDTLS_ERR_ECP_VERIFY_FAILED); /* another hash */
    memcpy(sig, k.sig, k.sig_len);
    sig[k.sig_len - 3] ^= 0x40;                                       /* s altered */
    CHECK(both(&k, k.hash, sig, k.sig_len) != 0);
    memcpy(sig, k.sig, k.sig_len);
    sig[k.sig_len] = 0;                                               /* a byte after the signature */
    CHECK(both(&k, k.hash, sig, k.sig_len + 1) != 0);
    CHECK(both(&k, k.hash, k.sig, k.sig_len - 1) != 0);               /* cut short */
    sig[0] = 0x31;                                                    /* not a SEQUENCE */
    CHECK(both(&k, k.hash, sig, k.sig_len) != 0);
    CHECK(both(&k, k.hash, sig, 0) != 0);                             /* empty */
    free_keys(&k);
}

/* ---- many threads on one shared group (handshakes run on libuv's thread pool) ---- */

struct worker {
    struct keyset *k;
    int good, bad;
};

static void *verify_many(void *arg)
{
    struct worker *w = arg;
    unsigned char hash[48];
    memcpy(hash, w->k->hash, sizeof hash);
    for (int i = 0; i < 12; i++) {
        hash[0] = (unsigned char)(w->k->hash[0] ^ (i & 1)); /* odd rounds: a hash the signature is not for */
        int r = mbedtls_pk_verify(&w->k->shared, MBEDTLS_MD_SHA256, hash, 32, w->k->sig, w->k->sig_len);
        if (r == 0 && !(i & 1))
            w->good++;
        else if (r == MBEDTLS_ERR_ECP_VERIFY_FAILED && (i & 1))
            w->bad++;
    }
    return NULL;
}

static void test_threads(void)
{
    TEST("threads");
    tls_sig_cleanup(); /* the first verifications below build the group while others wait for it */
    struct keyset k;
    CHECK(make_keys(&k, MBEDTLS_ECP_DP_SECP256R1));
    CHECK_INT(tls_sig_share_group(&k.shared), 1);
    struct worker w[4] = { { &k, 0, 0 }, { &k, 0, 0 }, { &k, 0, 0 }, { &k, 0, 0 } };
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_INT(pthread_create(&th[i], NULL, verify_many, &w[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].good, 6);
        CHECK_INT(w[i].bad, 6);
    }
    free_keys(&k);
}

int main(void)
{
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0)
        return 1;
    TEST("P-256");
    test_curve(MBEDTLS_ECP_DP_SECP256R1, 1);
    TEST("P-384");
    test_curve(MBEDTLS_ECP_DP_SECP384R1, 1);
    TEST("P-521 (left to mbedTLS)");
    test_curve(MBEDTLS_ECP_DP_SECP521R1, 0);
    test_threads();
    tls_sig_cleanup();
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return unit_summary();
}
