/* tls_ceiling.c — the public-key operations of a full TLS 1.2 ECDHE-ECDSA handshake, timed in
 * mbedTLS (the library luafetch uses): ECDSA P-256 verify (the client does two: the certificate
 * chain's signature and the ServerKeyExchange's), ECDH P-256 and X25519 key generation plus the
 * shared secret (one each). Prints operations per second and the handshakes per second those
 * operations alone allow on one core, as `RESULT {json}`; bench/run.sh sets them beside
 * `openssl speed` on the same machine. Owns everything it allocates; frees it before exit.
 *
 * usage: tls_ceiling [SECONDS per operation, default 1] */
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mbedtls_ctr_drbg_context drbg;

/* Runs op() for about `seconds`; returns operations per second (0 if op failed). */
static double rate(int (*op)(void *), void *arg, double seconds)
{
    long n = 0;
    double t0 = now(), t;
    do {
        if (op(arg) != 0)
            return 0;
        n++;
        t = now();
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

struct verify_arg {
    mbedtls_ecdsa_context key;
    unsigned char hash[32], sig[MBEDTLS_ECDSA_MAX_LEN];
    size_t sig_len;
};

static int verify_op(void *p)
{
    struct verify_arg *a = p;
    return mbedtls_ecdsa_read_signature(&a->key, a->hash, sizeof a->hash, a->sig, a->sig_len);
}

/* The client's side of ECDHE: its key pair, then the shared secret with the server's point. */
struct ecdh_arg {
    mbedtls_ecp_group_id curve;
    mbedtls_ecp_point peer;
};

static int ecdh_op(void *p)
{
    struct ecdh_arg *a = p;
    mbedtls_ecp_group grp;
    mbedtls_mpi d, z;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);
    mbedtls_ecp_point_init(&q);
    int rc = mbedtls_ecp_group_load(&grp, a->curve) ||
             mbedtls_ecdh_gen_public(&grp, &d, &q, mbedtls_ctr_drbg_random, &drbg) ||
             mbedtls_ecdh_compute_shared(&grp, &z, &a->peer, &d, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ecp_point_free(&q);
    mbedtls_mpi_free(&z);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

static int peer_point(mbedtls_ecp_group_id curve, mbedtls_ecp_point *out)
{
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    int rc = mbedtls_ecp_group_load(&grp, curve) ||
             mbedtls_ecdh_gen_public(&grp, &d, out, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0)
        seconds = 1.0;
    mbedtls_entropy_context entropy;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0)) {
        fprintf(stderr, "tls_ceiling: cannot seed the random generator\n");
        return 1;
    }
    struct verify_arg v;
    mbedtls_ecdsa_init(&v.key);
    for (size_t i = 0; i < sizeof v.hash; i++)
        v.hash[i] = (unsigned char)i;
    int rc = mbedtls_ecdsa_genkey(&v.key, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random, &drbg) ||
             mbedtls_ecdsa_write_signature(&v.key, MBEDTLS_MD_SHA256, v.hash, sizeof v.hash, v.sig,
                                           &v.sig_len, mbedtls_ctr_drbg_random, &drbg);
    struct ecdh_arg p256 = { .curve = MBEDTLS_ECP_DP_SECP256R1 }, x25519 = { .curve = MBEDTLS_ECP_DP_CURVE25519 };
    mbedtls_ecp_point_init(&p256.peer);
    mbedtls_ecp_point_init(&x25519.peer);
    rc = rc || peer_point(p256.curve, &p256.peer) || peer_point(x25519.curve, &x25519.peer);
    if (rc) {
        fprintf(stderr, "tls_ceiling: cannot make the test keys\n");
        return 1;
    }
    double verify = rate(verify_op, &v, seconds);
    double ecdh_p256 = rate(ecdh_op, &p256, seconds);
    double ecdh_x25519 = rate(ecdh_op, &x25519, seconds);
    /* one full handshake on the client: two ECDSA verifies and one ECDH (P-256, as nginx picks by
     * default with a P-256 certificate and the client's curve list) */
    double per_handshake = 2.0 / verify + 1.0 / ecdh_p256;
    printf("ECDSA P-256 verify     %8.0f/s\n", verify);
    printf("ECDH P-256 (gen+shared) %7.0f/s\n", ecdh_p256);
    printf("X25519 (gen+shared)    %8.0f/s\n", ecdh_x25519);
    printf("full handshakes/s one core allows with mbedTLS as shipped (2 verify + 1 ECDH P-256, fresh groups; luafetch keeps\n"
           "  the curve tables, core/net/tls_ecp.c, and verifies one signature per handshake): %.0f\n", 1.0 / per_handshake);
    printf("RESULT {\"ecdsa_p256_verify\":%.1f,\"ecdh_p256\":%.1f,\"x25519\":%.1f,\"handshakes_per_core\":%.1f}\n",
           verify, ecdh_p256, ecdh_x25519, 1.0 / per_handshake);
    mbedtls_ecp_point_free(&x25519.peer);
    mbedtls_ecp_point_free(&p256.peer);
    mbedtls_ecdsa_free(&v.key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return 0;
}
