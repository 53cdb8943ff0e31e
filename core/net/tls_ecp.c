/* tls_ecp.c — a handshake's elliptic-curve work (TLS 1.2, P-256 and P-384) with multiplication
 * tables kept for the process instead of built per handshake: the curve generator's (one group per
 * curve, built on first use, only read after), lent to the ECDHE key generation and used for the
 * server's ECDSA signature, and the server key's (a cache of 16 keys, LRU; an entry is built by its
 * first user and freed by its last once evicted). All of it is freed by tls_ecp_cleanup. A peer key
 * keeps its own context and free function; only its pk_info is ours.
 *
 * Why: mbedTLS 2.28 recomputes these tables in every handshake. It verifies with an EC key by
 * copying the key's group (eckey_verify_wrap → mbedtls_ecdsa_from_keypair), so the generator's comb
 * table is built again, and Q's always is; the ECDHE context loads a fresh group too. A P-256
 * verify takes 1.58 ms so, 0.72 ms with both tables; a P-256 key pair 0.73 ms, 0.31 ms with the
 * generator's (bench machine). The verification follows mbedtls_ecdsa_verify step by step with
 * mbedTLS's own arithmetic (mbedtls_ecp_mul, mbedtls_ecp_muladd, mbedtls_mpi_*); the unit test
 * compares its verdicts with mbedTLS's on good and altered signatures. */
#include "tls_ecp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk_internal.h>
#include <mbedtls/version.h>

/* What this file follows: mbedTLS 2.28's own ECDSA and ECP code paths (its pk_info layout, its comb
 * tables built in the group on first use), none of their replaced or PSA variants. */
#if MBEDTLS_VERSION_NUMBER < 0x021C0000 || MBEDTLS_VERSION_NUMBER >= 0x03000000 || defined(MBEDTLS_USE_PSA_CRYPTO) || \
    defined(MBEDTLS_ECDSA_VERIFY_ALT) || defined(MBEDTLS_ECP_ALT) || defined(MBEDTLS_ECP_RESTARTABLE) ||         \
    !defined(MBEDTLS_ECP_NIST_OPTIM)
#error "tls_ecp.c follows mbedTLS 2.28's own ECDSA and ECP code paths"
#endif

struct shared_group {
    mbedtls_ecp_group_id id;
    int state;              /* 0: not built, 1: built with its table, -1: could not be built */
    mbedtls_ecp_group grp;
};

static struct shared_group groups[] = {
    { MBEDTLS_ECP_DP_SECP256R1, 0, { 0 } },
    { MBEDTLS_ECP_DP_SECP384R1, 0, { 0 } },
};
#define NGROUPS (sizeof groups / sizeof groups[0])
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned long verified, lent;          /* with the kept tables (tls_ecp_counts) */

static mbedtls_pk_info_t fast_eckey_info;     /* mbedTLS's EC key info with our verify_func */
static const mbedtls_pk_info_t *eckey_info;   /* mbedTLS's own */
static pthread_once_t info_once = PTHREAD_ONCE_INIT;
static void make_info(void);

/* Loads the group and multiplies its generator once: mbedTLS keeps the comb table in the group.
 * (NULL RNG: mbedTLS's own blinding, as in its muladd; the scalar 2 is no secret.) */
static void build(struct shared_group *g)
{
    mbedtls_ecp_point r;
    mbedtls_mpi two;
    mbedtls_ecp_group_init(&g->grp);
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&two);
    int ok = mbedtls_ecp_group_load(&g->grp, g->id) == 0 && mbedtls_mpi_lset(&two, 2) == 0 &&
             mbedtls_ecp_mul(&g->grp, &r, &two, &g->grp.G, NULL, NULL) == 0 && g->grp.T != NULL;
    if (!ok)
        mbedtls_ecp_group_free(&g->grp); /* not used: verification falls back to mbedTLS's own way */
    mbedtls_ecp_point_free(&r);
    mbedtls_mpi_free(&two);
    /* -1 (never again) only for a curve this mbedTLS lacks; out of memory, say: tried again */
    __atomic_store_n(&g->state, ok ? 1 : mbedtls_ecp_curve_info_from_grp_id(g->id) ? 0 : -1, __ATOMIC_RELEASE);
}

/* The shared group for a curve, built on first use; NULL when there is none. */
static mbedtls_ecp_group *shared_for(mbedtls_ecp_group_id id)
{
    for (size_t i = 0; i < NGROUPS; i++) {
        struct shared_group *g = &groups[i];
        if (g->id != id)
            continue;
        int state = __atomic_load_n(&g->state, __ATOMIC_ACQUIRE);
        if (state == 0) {
            pthread_mutex_lock(&build_lock);
            if (g->state == 0)
                build(g);
            state = g->state;
            pthread_mutex_unlock(&build_lock);
        }
        return state == 1 ? &g->grp : NULL;
    }
    return NULL;
}

/* ---- a table per server key ------------------------------------------------------------- */

/* A server's handshake signatures are all checked with its one key, Q: a group whose "generator"
 * is Q keeps the comb table of Q's multiples, as the curve's own group keeps G's. Valid because
 * these curves have cofactor 1 (every point has the group order N, which the comb's parity trick
 * relies on). An entry is built by a user (its own u2·Q computes the table) and published finished:
 * after that it is only read. Evicted while in use, it is freed by its last user. Only a key seen
 * before is published: a crawl's one-off leaf keys (later connections resume) would otherwise push
 * out the CA and intermediate keys that check every new chain. */
#define KEY_SLOTS 16
#define SEEN_SLOTS 64   /* fingerprints of keys seen once, a ring */

struct key_table {
    mbedtls_ecp_group_id id;
    unsigned char point[MBEDTLS_ECP_MAX_PT_LEN];
    size_t point_len;
    mbedtls_ecp_group grp;      /* the curve's parameters; G: a heap copy of the key */
    int refs, evicted;
    unsigned long long last;
};

static struct key_table *keys[KEY_SLOTS];
static unsigned long long key_tick;
static unsigned long long seen[SEEN_SLOTS];
static unsigned seen_next;
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a of the curve and the key's bytes; never 0 (an empty ring slot). */
static unsigned long long fingerprint(mbedtls_ecp_group_id id, const unsigned char *p, size_t len)
{
    unsigned long long h = 1469598103934665603ULL ^ (unsigned long long)id;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1;
}

static void key_free(struct key_table *k)
{
    if (!k)
        return;
    /* the loaded group's G is the curve's static constant, which mbedtls_ecp_group_free leaves
     * alone (grp.h = 1); ours is a heap copy */
    mbedtls_ecp_point_free(&k->grp.G);
    mbedtls_ecp_group_free(&k->grp);
    free(k);
}

/* The published entry for this key (counted as used), or NULL. */
static struct key_table *key_acquire(mbedtls_ecp_group_id id, const unsigned char *point, size_t len)
{
    struct key_table *found = NULL;
    pthread_mutex_lock(&key_lock);
    for (int i = 0; i < KEY_SLOTS; i++) {
        struct key_table *k = keys[i];
        if (k && k->id == id && k->point_len == len && memcmp(k->point, point, len) == 0) {
            k->refs++;
            k->last = ++key_tick;
            found = k;
            break;
        }
    }
    pthread_mutex_unlock(&key_lock);
    return found;
}

static void key_release(struct key_table *k)
{
    pthread_mutex_lock(&key_lock);
    int drop = --k->refs == 0 && k->evicted;
    pthread_mutex_unlock(&key_lock);
    if (drop)
        key_free(k);
}

/* Puts a finished entry (used once, by the caller) in the cache, in place of the least recently
 * used one when full; a key seen for the first time is only remembered as seen. A same key
 * published meanwhile wins. An entry not published is freed on release. */
static void key_publish(struct key_table *k)
{
    struct key_table *gone = NULL;
    unsigned long long fp = fingerprint(k->id, k->point, k->point_len);
    pthread_mutex_lock(&key_lock);
    int known = 0;
    for (int i = 0; i < SEEN_SLOTS && !known; i++)
        known = seen[i] == fp;
    if (!known) {
        seen[seen_next++ % SEEN_SLOTS] = fp;
        k->evicted = 1;
        pthread_mutex_unlock(&key_lock);
        return;
    }
    int slot = -1;
    for (int i = 0; i < KEY_SLOTS; i++) {
        struct key_table *o = keys[i];
        if (o && o->id == k->id && o->point_len == k->point_len && memcmp(o->point, k->point, k->point_len) == 0) {
            k->evicted = 1;
            pthread_mutex_unlock(&key_lock);
            return;
        }
        if (!o) {
            if (slot < 0 || keys[slot])
                slot = i; /* an empty slot first */
        } else if (slot < 0 || (keys[slot] && o->last < keys[slot]->last)) {
            slot = i;     /* else the least recently used */
        }
    }
    struct key_table *old = keys[slot];
    if (old) {
        old->evicted = 1;
        if (old->refs == 0)
            gone = old;
    }
    keys[slot] = k;
    k->last = ++key_tick;
    pthread_mutex_unlock(&key_lock);
    key_free(gone);
}

/* m·P on the group whose generator P is (the curve's or a key's group), as mbedTLS's muladd takes
 * its two products: 0 and 1 without multiplying. */
static int mul_generator(mbedtls_ecp_group *grp, mbedtls_ecp_point *r, const mbedtls_mpi *m)
{
    if (mbedtls_mpi_cmp_int(m, 0) == 0)
        return mbedtls_ecp_set_zero(r);
    if (mbedtls_mpi_cmp_int(m, 1) == 0)
        return mbedtls_ecp_copy(r, &grp->G);
    return mbedtls_ecp_mul(grp, r, m, &grp->G, NULL, NULL); /* NULL: mbedTLS's own blinding RNG */
}

/* u2·Q with Q's table: from the cache, or by a new entry whose table this multiplication computes. */
static int mul_key(const mbedtls_ecp_keypair *key, mbedtls_ecp_point *r, const mbedtls_mpi *u2)
{
    unsigned char point[MBEDTLS_ECP_MAX_PT_LEN];
    size_t len;
    int ret = mbedtls_ecp_point_write_binary(&key->grp, &key->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, point,
                                             sizeof point);
    if (ret != 0)
        return ret;
    struct key_table *k = key_acquire(key->grp.id, point, len);
    if (k) {
        ret = mul_generator(&k->grp, r, u2);
        key_release(k);
        return ret;
    }
    if (!(k = calloc(1, sizeof *k)))
        return MBEDTLS_ERR_ECP_ALLOC_FAILED;
    k->id = key->grp.id;
    memcpy(k->point, point, len);
    k->point_len = len;
    k->refs = 1;
    mbedtls_ecp_group_init(&k->grp);
    if ((ret = mbedtls_ecp_group_load(&k->grp, k->id)) != 0) {
        mbedtls_ecp_group_free(&k->grp);
        free(k);
        return ret;
    }
    mbedtls_ecp_point_init(&k->grp.G); /* replaces the reference to the static constant */
    if ((ret = mbedtls_ecp_copy(&k->grp.G, &key->Q)) == 0)
        ret = mul_generator(&k->grp, r, u2);
    if (ret == 0 && k->grp.T == NULL) { /* u2 was 0 or 1: compute the table anyway */
        mbedtls_ecp_point tmp;
        mbedtls_mpi two;
        mbedtls_ecp_point_init(&tmp);
        mbedtls_mpi_init(&two);
        ret = mbedtls_mpi_lset(&two, 2);
        if (ret == 0)
            ret = mbedtls_ecp_mul(&k->grp, &tmp, &two, &k->grp.G, NULL, NULL);
        mbedtls_ecp_point_free(&tmp);
        mbedtls_mpi_free(&two);
    }
    if (ret == 0 && k->grp.T != NULL)
        key_publish(k);
    else
        k->evicted = 1; /* not published: freed just below */
    key_release(k);
    return ret;
}

/* The hash as an integer, as mbedTLS's ECDSA takes it (SEC1 4.1.4 step 5: its leftmost bits, as
 * many as N has; then reduced below N once). */
static int hash_integer(const mbedtls_ecp_group *grp, mbedtls_mpi *e, const unsigned char *hash, size_t hash_len)
{
    size_t n_size = (grp->nbits + 7) / 8, use = hash_len > n_size ? n_size : hash_len;
    int ret = mbedtls_mpi_read_binary(e, hash, use);
    if (ret == 0 && use * 8 > grp->nbits)
        ret = mbedtls_mpi_shift_r(e, use * 8 - grp->nbits);
    if (ret == 0 && mbedtls_mpi_cmp_mpi(e, &grp->N) >= 0)
        ret = mbedtls_mpi_sub_mpi(e, e, &grp->N);
    return ret;
}

/* ECDSA verification (SEC1 4.1.4) as mbedtls_ecdsa_verify does it, with the curve's shared group
 * for u1·G and the key's table for u2·Q: 0, MBEDTLS_ERR_ECP_VERIFY_FAILED, or another error. */
static int ecdsa_verify_tables(mbedtls_ecp_group *grp, const mbedtls_ecp_keypair *key, const unsigned char *hash,
                               size_t hash_len, const mbedtls_mpi *r, const mbedtls_mpi *s)
{
    if (mbedtls_mpi_cmp_int(r, 1) < 0 || mbedtls_mpi_cmp_mpi(r, &grp->N) >= 0 || mbedtls_mpi_cmp_int(s, 1) < 0 ||
        mbedtls_mpi_cmp_mpi(s, &grp->N) >= 0)
        return MBEDTLS_ERR_ECP_VERIFY_FAILED;
    mbedtls_mpi e, s_inv, u1, u2, one;
    mbedtls_ecp_point r1, r2, sum;
    mbedtls_mpi_init(&e);
    mbedtls_mpi_init(&s_inv);
    mbedtls_mpi_init(&u1);
    mbedtls_mpi_init(&u2);
    mbedtls_mpi_init(&one);
    mbedtls_ecp_point_init(&r1);
    mbedtls_ecp_point_init(&r2);
    mbedtls_ecp_point_init(&sum);
    int ret;
    /* u1 = e / s mod N, u2 = r / s mod N; R = u1·G + u2·Q; valid when R ≠ 0 and R.x mod N = r */
    if ((ret = hash_integer(grp, &e, hash, hash_len)) != 0 || (ret = mbedtls_mpi_inv_mod(&s_inv, s, &grp->N)) != 0 ||
        (ret = mbedtls_mpi_mul_mpi(&u1, &e, &s_inv)) != 0 || (ret = mbedtls_mpi_mod_mpi(&u1, &u1, &grp->N)) != 0 ||
        (ret = mbedtls_mpi_mul_mpi(&u2, r, &s_inv)) != 0 || (ret = mbedtls_mpi_mod_mpi(&u2, &u2, &grp->N)) != 0 ||
        (ret = mul_generator(grp, &r1, &u1)) != 0 || (ret = mul_key(key, &r2, &u2)) != 0)
        goto done;
    /* the sum: mbedTLS's muladd with both factors 1 adds its two points as they are */
    if (mbedtls_ecp_is_zero(&r1))
        ret = mbedtls_ecp_copy(&sum, &r2);
    else if (mbedtls_ecp_is_zero(&r2))
        ret = mbedtls_ecp_copy(&sum, &r1);
    else if ((ret = mbedtls_mpi_lset(&one, 1)) == 0)
        ret = mbedtls_ecp_muladd(grp, &sum, &one, &r1, &one, &r2);
    if (ret != 0)
        goto done;
    if (mbedtls_ecp_is_zero(&sum)) {
        ret = MBEDTLS_ERR_ECP_VERIFY_FAILED;
        goto done;
    }
    if ((ret = mbedtls_mpi_mod_mpi(&sum.X, &sum.X, &grp->N)) == 0 && mbedtls_mpi_cmp_mpi(&sum.X, r) != 0)
        ret = MBEDTLS_ERR_ECP_VERIFY_FAILED;
done:
    mbedtls_mpi_free(&e);
    mbedtls_mpi_free(&s_inv);
    mbedtls_mpi_free(&u1);
    mbedtls_mpi_free(&u2);
    mbedtls_mpi_free(&one);
    mbedtls_ecp_point_free(&r1);
    mbedtls_ecp_point_free(&r2);
    mbedtls_ecp_point_free(&sum);
    return ret;
}

/* As mbedTLS's eckey_verify_wrap + mbedtls_ecdsa_read_signature (same parsing, same error codes),
 * with the tables above. ctx: the key's mbedtls_ecp_keypair. */
static int verify_shared(void *ctx, mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
                         const unsigned char *sig, size_t sig_len)
{
    mbedtls_ecp_keypair *key = ctx;
    mbedtls_ecp_group *grp = shared_for(key->grp.id);
    if (!grp)
        return eckey_info->verify_func(ctx, md_alg, hash, hash_len, sig, sig_len);
    unsigned char *p = (unsigned char *)sig;
    const unsigned char *end = sig + sig_len;
    size_t len;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int ret = mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (ret != 0) {
        ret += MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
    } else if (p + len != end) {
        ret = MBEDTLS_ERR_ECP_BAD_INPUT_DATA + MBEDTLS_ERR_ASN1_LENGTH_MISMATCH;
    } else if ((ret = mbedtls_asn1_get_mpi(&p, end, &r)) != 0 || (ret = mbedtls_asn1_get_mpi(&p, end, &s)) != 0) {
        ret += MBEDTLS_ERR_ECP_BAD_INPUT_DATA;
    } else if ((ret = ecdsa_verify_tables(grp, key, hash, hash_len, &r, &s)) == 0 && p != end) {
        ret = MBEDTLS_ERR_PK_SIG_LEN_MISMATCH; /* a valid signature followed by more bytes */
    }
    __atomic_add_fetch(&verified, 1, __ATOMIC_RELAXED);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ret;
}

/* ---- the generator's table lent to a key exchange ---------------------------------------- */

int tls_ecp_lend_generator(mbedtls_ecp_group *grp)
{
    pthread_once(&info_once, make_info);
    if (!eckey_info || !grp || grp->T != NULL || grp->id != MBEDTLS_ECP_DP_SECP256R1)
        return 0; /* (no eckey_info: another mbedTLS than the one built against) */
    const mbedtls_ecp_group *shared = shared_for(grp->id);
    if (!shared)
        return 0;
    /* read only: mbedTLS's comb uses a group's table as it is, and builds one only when T is NULL */
    grp->T = shared->T;
    grp->T_size = shared->T_size;
    __atomic_add_fetch(&lent, 1, __ATOMIC_RELAXED);
    return 1;
}

void tls_ecp_take_back(mbedtls_ecp_group *grp)
{
    const mbedtls_ecp_group *shared = shared_for(MBEDTLS_ECP_DP_SECP256R1);
    if (grp && shared && grp->T == shared->T) {
        grp->T = NULL; /* else mbedtls_ecp_group_free would free the shared table */
        grp->T_size = 0;
    }
}

static void make_info(void)
{
    /* the library in use is the 2.28 this was built against (its pk_info layout is copied below) */
    if (mbedtls_version_get_number() >> 16 != MBEDTLS_VERSION_NUMBER >> 16)
        return;
    eckey_info = mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY);
    if (eckey_info) {
        fast_eckey_info = *eckey_info;
        fast_eckey_info.verify_func = verify_shared;
    }
}

int tls_ecp_share_verify(mbedtls_pk_context *pk)
{
    pthread_once(&info_once, make_info);
    if (!eckey_info || !pk || pk->pk_info != eckey_info)
        return 0;
    const mbedtls_ecp_keypair *key = mbedtls_pk_ec(*pk);
    for (size_t i = 0; i < NGROUPS; i++) {
        if (groups[i].id == key->grp.id) {
            pk->pk_info = &fast_eckey_info; /* the context and its free function stay mbedTLS's */
            return 1;
        }
    }
    return 0;
}

void tls_ecp_counts(unsigned long *verifications, unsigned long *lends)
{
    *verifications = __atomic_load_n(&verified, __ATOMIC_RELAXED);
    *lends = __atomic_load_n(&lent, __ATOMIC_RELAXED);
}

void tls_ecp_cleanup(void)
{
    pthread_mutex_lock(&key_lock);
    for (int i = 0; i < KEY_SLOTS; i++) {
        key_free(keys[i]); /* in use by nobody: every connection is gone */
        keys[i] = NULL;
    }
    memset(seen, 0, sizeof seen);
    pthread_mutex_unlock(&key_lock);
    pthread_mutex_lock(&build_lock);
    for (size_t i = 0; i < NGROUPS; i++) {
        if (groups[i].state == 1)
            mbedtls_ecp_group_free(&groups[i].grp);
        groups[i].state = 0;
    }
    pthread_mutex_unlock(&build_lock);
}
