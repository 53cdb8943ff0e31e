/* tls_config.c — what TLS connections share, built lazily and kept for the process: the random
 * generator, parsed CA bundles, one mbedtls_ssl_config per distinct set of options (trust, client
 * certificate, ALPN). All of it is freed by tls_configs_free (tls_global_cleanup) and nothing else. */
#include "tls_config.h"
#include "tls_ecp.h"
#include "tls_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/version.h>

/* P-256 first: its key pair uses the generator's table kept for the process (tls_ecp.c), which
 * makes it mbedTLS 2.28's cheapest key exchange (1.05 ms against X25519's 1.21 ms, bench machine). */
static const mbedtls_ecp_group_id preferred_curves[] = {
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE,
};

/* Mozilla's "intermediate" TLS 1.2 suites without the DHE ones: forward secrecy and AEAD only (no CBC, no
 * RSA key exchange, no CCM). mbedTLS's own order: ChaCha20 first (faster than 2.28's AES-GCM), then AES. */
static const int allowed_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,       MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,       MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    0,
};

/* ALPN offer when HTTP/2 is allowed (RFC 7301; the server picks). */
static const char *alpn_h2_list[] = { "h2", "http/1.1", NULL };

#if MBEDTLS_VERSION_MAJOR != 2
#error "tls_config.c is written for mbedTLS 2.x (2.28 LTS)"
#endif

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* ---------- process-wide state (used from the loop thread only) ---------- */

static struct {
    int rng_ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    struct tls_ca *cas;
    struct tls_cfg *cfgs;
} C;

char *tls_strdup(const char *s)
{
    char *d;
    size_t n;
    if (!s)
        return NULL;
    n = strlen(s) + 1;
    d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Formats a message into err; with an mbedTLS error code, appends its text: "msg: SSL - ...". */
__attribute__((format(printf, 4, 5)))
void tls_set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    n = strlen(err);
    if (code != 0 && n + 3 < errlen) {
        memcpy(err + n, ": ", 3);
        mbedtls_strerror(code, err + n + 2, errlen - n - 2);
    }
}

int tls_rng_init(char *err, size_t errlen)
{
    static const unsigned char pers[] = "luafetch tls";
    int ret;
    if (C.rng_ready)
        return 0;
    mbedtls_entropy_init(&C.entropy);
    mbedtls_ctr_drbg_init(&C.drbg);
    ret = mbedtls_ctr_drbg_seed(&C.drbg, mbedtls_entropy_func, &C.entropy, pers, sizeof pers - 1);
    if (ret != 0) {
        mbedtls_ctr_drbg_free(&C.drbg);
        mbedtls_entropy_free(&C.entropy);
        tls_set_err(err, errlen, ret, "cannot seed the random generator");
        return -1;
    }
    C.rng_ready = 1;
    return 0;
}

/* ---------- CA chains ---------- */

static const char *system_bundle(void)
{
    const char *p = getenv("SSL_CERT_FILE");
    return p && *p ? p : SYSTEM_CA_BUNDLE;
}

/* mbedTLS says only "file I/O error": check first, to report errno. A directory opens and then reads as
 * a huge file (mbedTLS reported "memory allocation failed"), and a FIFO would block the loop: regular
 * files only, opened without blocking. */
static int readable(const char *path, const char *what, char *err, size_t errlen)
{
    struct stat st = {0};
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tls_set_err(err, errlen, 0, "cannot read %s %s: %s", what, path, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        tls_set_err(err, errlen, 0, "cannot read %s %s: %s", what, path,
                st.st_mode == 0 ? strerror(e) : S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return 0;
    }
    close(fd);
    return 1;
}

static struct tls_ca *ca_get(const char *path, char *err, size_t errlen)
{
    struct tls_ca *ca;
    int ret;
    for (ca = C.cas; ca; ca = ca->next)
        if (strcmp(ca->path, path) == 0)
            return ca;
    if (!readable(path, "CA file", err, errlen))
        return NULL;
    ca = calloc(1, sizeof *ca);
    if (!ca || !(ca->path = tls_strdup(path))) {
        free(ca);
        tls_set_err(err, errlen, 0, "out of memory");
        return NULL;
    }
    mbedtls_x509_crt_init(&ca->chain);
    /* >0 means some certificates were skipped; accept the bundle if any parsed */
    ret = mbedtls_x509_crt_parse_file(&ca->chain, path);
    if (ret < 0 || ca->chain.version == 0) {
        if (X509_EXT_INVALID(ret))
            tls_set_err(err, errlen, 0, "no usable certificate in CA file %s: " EXT_HINT, path);
        else
            tls_set_err(err, errlen, ret < 0 ? ret : 0, "no usable certificate in CA file %s", path);
        mbedtls_x509_crt_free(&ca->chain);
        free(ca->path);
        free(ca);
        return NULL;
    }
    /* trust anchors check every new chain's top signature: with tables kept for the process */
    for (mbedtls_x509_crt *crt = &ca->chain; crt; crt = crt->next)
        tls_ecp_share_verify(&crt->pk);
    ca->next = C.cas;
    C.cas = ca;
    return ca;
}

/* ---------- configs ---------- */

static void cfg_free(struct tls_cfg *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->own_cert);
    mbedtls_pk_free(&c->own_key);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
}

static int load_own_cert(struct tls_cfg *c, char *err, size_t errlen)
{
    const char *keyf = c->key_file ? c->key_file : c->cert_file; /* key may sit in the cert PEM */
    int ret;
    if (!c->cert_file) {
        if (c->key_file) {
            tls_set_err(err, errlen, 0, "key_file given without cert_file");
            return -1;
        }
        return 0;
    }
    if (!readable(c->cert_file, "client certificate", err, errlen) || !readable(keyf, "client key", err, errlen))
        return -1;
    ret = mbedtls_x509_crt_parse_file(&c->own_cert, c->cert_file);
    if (ret != 0) {
        if (X509_EXT_INVALID(ret))
            tls_set_err(err, errlen, 0, "cannot load client certificate %s: " EXT_HINT, c->cert_file);
        else
            tls_set_err(err, errlen, ret < 0 ? ret : 0, "cannot load client certificate %s", c->cert_file);
        return -1;
    }
    ret = mbedtls_pk_parse_keyfile(&c->own_key, keyf, NULL);
    if (ret != 0) {
        tls_set_err(err, errlen, ret, "cannot load client key %s", keyf);
        return -1;
    }
    ret = mbedtls_pk_check_pair(&c->own_cert.pk, &c->own_key);
    if (ret != 0) {
        tls_set_err(err, errlen, 0, "client key %s does not match certificate %s", keyf, c->cert_file);
        return -1;
    }
    ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->own_cert, &c->own_key);
    if (ret != 0) {
        tls_set_err(err, errlen, ret, "cannot use client certificate");
        return -1;
    }
    c->has_own = 1;
    return 0;
}

struct tls_cfg *tls_cfg_get(const struct tls_options *o, char *err, size_t errlen)
{
    int verify = o->verify ? 1 : 0;
    struct tls_cfg *c;
    int ret;
    for (c = C.cfgs; c; c = c->next)
        if (c->verify == verify && c->alpn_h2 == (o->alpn_h2 ? 1 : 0) && str_eq(c->ca_file, o->ca_file) &&
            str_eq(c->cert_file, o->cert_file) && str_eq(c->key_file, o->key_file))
            return c;
    c = calloc(1, sizeof *c);
    if (!c) {
        tls_set_err(err, errlen, 0, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->own_cert);
    mbedtls_pk_init(&c->own_key);
    c->verify = verify;
    c->alpn_h2 = o->alpn_h2 ? 1 : 0;
    c->ca_file = tls_strdup(o->ca_file);
    c->cert_file = tls_strdup(o->cert_file);
    c->key_file = tls_strdup(o->key_file);
    if ((o->ca_file && !c->ca_file) || (o->cert_file && !c->cert_file) || (o->key_file && !c->key_file)) {
        tls_set_err(err, errlen, 0, "out of memory");
        goto fail;
    }
    ret = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        tls_set_err(err, errlen, ret, "TLS configuration failed");
        goto fail;
    }
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &C.drbg);
    mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    /* mbedTLS offers secp521r1 first by default and servers take the client's first choice:
     * X25519 and P-256 are several times cheaper for the same security. */
    mbedtls_ssl_conf_curves(&c->conf, preferred_curves);
    mbedtls_ssl_conf_ciphersuites(&c->conf, allowed_suites);
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    /* ALPN is part of the config's identity: a config offers h2 or it offers nothing (HTTP/1.1
     * servers never see the extension, as before). */
    if (c->alpn_h2 && (ret = mbedtls_ssl_conf_alpn_protocols(&c->conf, alpn_h2_list)) != 0) {
        tls_set_err(err, errlen, ret, "TLS configuration failed (ALPN)");
        goto fail;
    }
    /* mbedTLS parses the server's chain but leaves checking it to tls_conn_handshake, which does
     * it as mbedTLS would (with verify), before the key exchange goes on, and remembers the chains
     * it verified (tls_verify.c); the ServerKeyExchange signature is checked by mbedTLS always */
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    if (verify && !(c->trust = ca_get(o->ca_file ? o->ca_file : system_bundle(), err, errlen)))
        goto fail;
    if (load_own_cert(c, err, errlen) != 0)
        goto fail;
    c->next = C.cfgs;
    C.cfgs = c;
    return c;
fail:
    cfg_free(c);
    return NULL;
}

int tls_curve_offered(int grp)
{
    for (const mbedtls_ecp_group_id *g = preferred_curves; *g != MBEDTLS_ECP_DP_NONE; g++)
        if ((int)*g == grp)
            return 1;
    return 0;
}

void tls_configs_free(void)
{
    while (C.cfgs) {
        struct tls_cfg *c = C.cfgs;
        C.cfgs = c->next;
        cfg_free(c);
    }
    while (C.cas) {
        struct tls_ca *ca = C.cas;
        C.cas = ca->next;
        mbedtls_x509_crt_free(&ca->chain);
        tls_verify_cache_free(ca->verified);
        free(ca->path);
        free(ca);
    }
    if (C.rng_ready) {
        mbedtls_ctr_drbg_free(&C.drbg);
        mbedtls_entropy_free(&C.entropy);
    }
    memset(&C, 0, sizeof C);
}
