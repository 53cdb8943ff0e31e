/* test_tls_ecp.c — core/net/tls_ecp.c: a key switched to the process-wide tables gives the same
 * verdict and the same error code as mbedTLS's own verification, for good signatures, altered
 * hashes, altered signatures, trailing bytes and bad encodings; on P-256, P-384 (switched) and
 * P-521 (left alone); also from several threads at once. The generator's table lent to a key
 * exchange gives the same key pair and is taken back before the group is freed. Keys and signatures
 * are made here with mbedTLS; everything allocated is freed. */
#include "tls_ecp.h"
#include "unit.h"

#include <pthread.h>
#include <stdlib.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

struct keyset {
    mbedtls_pk_context priv;            /* the key pair */
    mbedtls_pk_context shared, plain;   /* its public key twice: switched, and as mbedTLS made it */
    unsigned char hash[48];
    unsigned char sig[MBEDTLS_ECDSA_MAX_LEN + 1];
    size_t sig_len;
};

/* A key pair on the curve; two public-key contexts holding its public half, and a signature. */
static int make_keys(struct keyset *k, mbedtls_ecp_group_id curve)
{
    mbedtls_pk_context priv;
    mbedtls_pk_init(&k->priv);
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
    k->priv = priv; /* kept: its ownership moves to the keyset */
    return ok;
}

static void free_keys(struct keyset *k)
{
    mbedtls_pk_free(&k->priv);
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
    CHECK_INT(tls_ecp_share_verify(&k.shared), switched);
    CHECK_INT(tls_ecp_share_verify(NULL), 0);
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

/* ---- signatures with chosen r and s, compared with mbedTLS's verdicts ---- */

/* r, s as a DER signature into sig (room for MBEDTLS_ECDSA_MAX_LEN); its length, 0 on failure. */
static size_t der_signature(const mbedtls_mpi *r, const mbedtls_mpi *s, unsigned char *sig)
{
    unsigned char buf[MBEDTLS_ECDSA_MAX_LEN + 16], *p = buf + sizeof buf;
    int a = mbedtls_asn1_write_mpi(&p, buf, s), b = mbedtls_asn1_write_mpi(&p, buf, r);
    if (a < 0 || b < 0)
        return 0;
    size_t len = (size_t)a + (size_t)b;
    int c = mbedtls_asn1_write_len(&p, buf, len), d = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (c < 0 || d < 0 || len + (size_t)c + (size_t)d > MBEDTLS_ECDSA_MAX_LEN)
        return 0;
    len += (size_t)c + (size_t)d;
    memcpy(sig, p, len);
    return len;
}

/* `keys` keys (18 on P-256: more than the cache holds, so entries are evicted and built again),
 * each with valid signatures over hashes of 20 to 64 bytes, and the same with the hash, r or s changed, r or s
 * at 0, 1, N - 1, N, N + 1: the switched key and mbedTLS's own way agree every time (both()). */
static void test_compare(mbedtls_ecp_group_id curve, int nkeys)
{
    static const size_t hash_lens[] = { 20, 32, 48, 64 };
    mbedtls_mpi r, s, v, n1;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    mbedtls_mpi_init(&v);
    mbedtls_mpi_init(&n1);
    int valid = 0, refused = 0;
    for (int key = 0; key < nkeys; key++) {
        struct keyset k;
        CHECK(make_keys(&k, curve));
        CHECK_INT(tls_ecp_share_verify(&k.shared), 1);
        mbedtls_ecp_keypair *kp = mbedtls_pk_ec(k.priv);
        const mbedtls_mpi *N = &kp->grp.N;
        for (int round = 0; round < 4; round++) {
            unsigned char hash[64], sig[MBEDTLS_ECDSA_MAX_LEN];
            size_t hash_len = hash_lens[round % 4];
            mbedtls_ctr_drbg_random(&drbg, hash, sizeof hash);
            CHECK_INT(mbedtls_ecdsa_sign(&kp->grp, &r, &s, &kp->d, hash, hash_len, mbedtls_ctr_drbg_random, &drbg), 0);
            size_t len = der_signature(&r, &s, sig);
            int got = mbedtls_pk_verify(&k.shared, MBEDTLS_MD_NONE, hash, hash_len, sig, len);
            CHECK_INT(got, 0);
            CHECK_INT(mbedtls_pk_verify(&k.plain, MBEDTLS_MD_NONE, hash, hash_len, sig, len), got);
            valid += got == 0;
            /* altered: the hash; r; s; then r or s at the edges of their range */
            for (int alt = 0; alt < 8; alt++) {
                unsigned char h2[64];
                memcpy(h2, hash, sizeof h2);
                mbedtls_mpi_copy(&v, alt == 1 ? &r : &s);
                if (alt == 0)
                    h2[round % hash_len] ^= 0x10;
                else if (alt <= 2)
                    mbedtls_mpi_add_int(&v, &v, 1);
                else if (alt == 3)
                    mbedtls_mpi_lset(&v, 0);
                else if (alt == 4)
                    mbedtls_mpi_lset(&v, 1);
                else if (alt == 5)
                    mbedtls_mpi_sub_int(&v, N, 1);
                else if (alt == 6)
                    mbedtls_mpi_copy(&v, N);
                else
                    mbedtls_mpi_add_int(&v, N, 1);
                const mbedtls_mpi *rr = (alt == 1 || (alt >= 3 && round % 2)) ? &v : &r;
                const mbedtls_mpi *ss = rr == &v ? &s : (alt == 0 ? &s : &v);
                len = der_signature(rr, ss, sig);
                int a = mbedtls_pk_verify(&k.shared, MBEDTLS_MD_NONE, h2, hash_len, sig, len);
                int b = mbedtls_pk_verify(&k.plain, MBEDTLS_MD_NONE, h2, hash_len, sig, len);
                CHECK_MSG(a == b, "key %d round %d change %d: -0x%04x against mbedTLS's -0x%04x", key, round, alt,
                          (unsigned)-a, (unsigned)-b);
                refused += a != 0;
            }
        }
        free_keys(&k);
    }
    CHECK_INT(valid, nkeys * 4);
    CHECK_INT(refused, nkeys * 4 * 8); /* every change refused */
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&v);
    mbedtls_mpi_free(&n1);
}

/* ---- many threads at once (handshakes run on libuv's thread pool) ---- */

#define THREAD_KEYS 20 /* more than the key cache holds: entries are built, evicted and shared meanwhile */

struct worker {
    struct keyset *k;
    int first, good, bad;
};

static void *verify_many(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 2 * THREAD_KEYS; i++) {
        struct keyset *k = &w->k[(w->first + i) % THREAD_KEYS];
        unsigned char hash[48];
        memcpy(hash, k->hash, sizeof hash);
        hash[0] ^= (unsigned char)(i & 1); /* odd rounds: a hash the signature is not for */
        int r = mbedtls_pk_verify(&k->shared, MBEDTLS_MD_SHA256, hash, 32, k->sig, k->sig_len);
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
    tls_ecp_cleanup(); /* the first verifications below build the groups while others wait for them */
    static struct keyset k[THREAD_KEYS];
    for (int i = 0; i < THREAD_KEYS; i++) {
        CHECK(make_keys(&k[i], MBEDTLS_ECP_DP_SECP256R1));
        CHECK_INT(tls_ecp_share_verify(&k[i].shared), 1);
    }
    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){ k, i * 3, 0, 0 };
        CHECK_INT(pthread_create(&th[i], NULL, verify_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].good, THREAD_KEYS);
        CHECK_INT(w[i].bad, THREAD_KEYS);
    }
    for (int i = 0; i < THREAD_KEYS; i++)
        free_keys(&k[i]);
}

/* ---- the generator's table lent to a key exchange ---- */

static void test_lend(void)
{
    TEST("lend the generator's table");
    mbedtls_ecp_group lent, own, x25519;
    mbedtls_ecp_group_init(&lent);
    mbedtls_ecp_group_init(&own);
    mbedtls_ecp_group_init(&x25519);
    CHECK_INT(mbedtls_ecp_group_load(&lent, MBEDTLS_ECP_DP_SECP256R1), 0);
    CHECK_INT(mbedtls_ecp_group_load(&own, MBEDTLS_ECP_DP_SECP256R1), 0);
    CHECK_INT(mbedtls_ecp_group_load(&x25519, MBEDTLS_ECP_DP_CURVE25519), 0);
    CHECK_INT(tls_ecp_lend_generator(&x25519), 0);   /* a Montgomery curve: no comb table */
    CHECK_INT(tls_ecp_lend_generator(NULL), 0);
    CHECK_INT(tls_ecp_lend_generator(&lent), 1);
    CHECK(lent.T != NULL);
    CHECK_INT(tls_ecp_lend_generator(&lent), 0);     /* has a table now */
    /* a key pair with the lent table: the same public key as with the group's own table */
    mbedtls_mpi d;
    mbedtls_ecp_point q1, q2;
    mbedtls_mpi_init(&d);
    mbedtls_ecp_point_init(&q1);
    mbedtls_ecp_point_init(&q2);
    CHECK_INT(mbedtls_ecdh_gen_public(&lent, &d, &q1, mbedtls_ctr_drbg_random, &drbg), 0);
    CHECK_INT(mbedtls_ecp_mul(&own, &q2, &d, &own.G, mbedtls_ctr_drbg_random, &drbg), 0);
    CHECK_INT(mbedtls_ecp_point_cmp(&q1, &q2), 0);
    CHECK(own.T != NULL && own.T != lent.T);         /* own built its own */
    tls_ecp_take_back(&own);                         /* not lent: left alone */
    CHECK(own.T != NULL);
    tls_ecp_take_back(&lent);
    CHECK(lent.T == NULL && lent.T_size == 0);
    mbedtls_ecp_group_free(&lent);                   /* frees nothing shared (ASan, valgrind) */
    mbedtls_ecp_group_free(&own);
    mbedtls_ecp_group_free(&x25519);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&q1);
    mbedtls_ecp_point_free(&q2);
    /* the shared table still works after a borrower is gone */
    struct keyset k;
    CHECK(make_keys(&k, MBEDTLS_ECP_DP_SECP256R1));
    CHECK_INT(tls_ecp_share_verify(&k.shared), 1);
    CHECK_INT(both(&k, k.hash, k.sig, k.sig_len), 0);
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
    test_lend();
    test_threads();
    TEST("compared with mbedTLS, P-256");
    test_compare(MBEDTLS_ECP_DP_SECP256R1, 18);
    TEST("compared with mbedTLS, P-384");
    test_compare(MBEDTLS_ECP_DP_SECP384R1, 4);
    tls_ecp_cleanup();
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return unit_summary();
}
