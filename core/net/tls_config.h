/* tls_config.h — inside the TLS files only (tls.c, tls_config.c): the shared configs and CA
 * bundles (owned by tls_config.c, freed by tls_configs_free) and small helpers. */
#ifndef LUAFETCH_TLS_CONFIG_H
#define LUAFETCH_TLS_CONFIG_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"

struct tls_ca {                 /* one parsed PEM bundle, shared by every config that trusts it */
    struct tls_ca *next;
    char *path;
    mbedtls_x509_crt chain;
    struct tls_verify_cache *verified;  /* server chains verified against it (tls_verify.c) */
};

struct tls_cfg {                /* one mbedtls_ssl_config per distinct (verify, ca_file, cert_file, key_file, alpn) */
    struct tls_cfg *next;
    int verify;
    int alpn_h2;
    char *ca_file, *cert_file, *key_file;
    mbedtls_ssl_config conf;
    int has_own;
    mbedtls_x509_crt own_cert;
    mbedtls_pk_context own_key;
    struct tls_ca *trust;       /* with verify: the trust anchors */
};

/* A critical extension that mbedTLS 2.28 has no parser for makes it refuse the whole certificate with
 * "extension tag or value is invalid": nameConstraints, in practice (RFC 5280 requires it critical). */
#define X509_EXT_INVALID(ret) ((ret) < 0 && ((-(ret)) & 0xFF80) == -MBEDTLS_ERR_X509_INVALID_EXTENSIONS)
#define EXT_HINT "a certificate has an extension mbedTLS 2.28 cannot parse (a critical nameConstraints?)"

/* The random generator, seeded on first use: 0, or -1 with err set. */
int tls_rng_init(char *err, size_t errlen);
/* The config for these options (made on first use, CA and key files read then): NULL with err set. */
struct tls_cfg *tls_cfg_get(const struct tls_options *o, char *err, size_t errlen);
/* 1 if the client offers the curve grp (mbedtls_ecp_group_id). */
int tls_curve_offered(int grp);
/* Frees every config, CA bundle and the random generator (after every tls_conn_free). */
void tls_configs_free(void);

/* strdup that passes NULL through. */
char *tls_strdup(const char *s);
/* Formats a message into err; with an mbedTLS error code, appends its text: "msg: SSL - ...". */
__attribute__((format(printf, 4, 5)))
void tls_set_err(char *err, size_t errlen, int code, const char *fmt, ...);

#endif
