/* tls.c — TLS 1.2 client connections with mbedTLS 2.28 over an in-memory BIO (no sockets, no loop, no Lua).
 * A tls_conn owns its mbedtls_ssl_context, buffers and host copy; tls_conn_free frees them. The session
 * cache is process-wide (configs, CA bundles and the RNG: tls_config.c), freed by tls_global_cleanup. */
#include "tls.h"
#include "tls_cert.h"
#include "tls_config.h"
#include "tls_ecp.h"
#include "tls_verify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/ssl_internal.h>
#include <mbedtls/net_sockets.h> /* MBEDTLS_ERR_NET_SEND_FAILED only */
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#define SESSION_SLOTS 64

/* ---------- process-wide state (used from the loop thread only) ---------- */

struct tls_sess {               /* last session per (host, port, config) */
    char *host;                 /* NULL = free slot */
    int port;
    const struct tls_cfg *cfg;
    unsigned long long used;
    mbedtls_ssl_session s;
};

static struct {
    struct tls_sess sess[SESSION_SLOTS];
    unsigned long long tick;
} G;
/* ---------- per connection ---------- */

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_cfg *cfg;
    tls_send_fn send;
    void *ud;
    unsigned char *in;          /* received ciphertext not yet consumed: in[in_off .. in_len) */
    size_t in_off, in_len, in_cap;
    int oom;                    /* tls_conn_feed could not buffer: next call fails */
    int send_failed;            /* the transport refused bytes (peer reset or closed) */
    char *host;                 /* normalised: no brackets, no zone, no trailing dot */
    int port;
    int ip_len;                 /* 4 or 16 when host is an IP literal, else 0 */
    unsigned char ip[16];
    int offered;                /* a cached session was offered */
    int full;                   /* the server sent its certificate: not a resumption */
    int resumed, done, failed, eof;
    /* what the verify callback saw, for readable reasons */
    int vr_untrusted_depth;     /* -1 = none */
    int vr_untrusted_self;      /* that certificate is self-signed */
    char vr_issuer[160];
    char vr_names[160];         /* names the leaf is valid for (on a mismatch), or its subject */
    int vr_no_san;              /* the leaf has no subjectAltName: valid for no name */
    char vr_time[64];           /* validity bound of the leaf (on expired / not yet valid) */
    /* sends held while the handshake runs on another thread (tls_conn_defer_sends) */
    int defer;
    unsigned char *out;
    size_t out_len, out_cap;
    int verify_ran;             /* the chain was checked (tls_verify_chain): verify_flags hold its verdict */
    int verify_cached;          /* ... answered from the config's cache of verified chains */
    uint32_t verify_flags;
};

/* ---------- session cache ---------- */

static struct tls_sess *sess_find(const struct tls_conn *t)
{
    int i;
    for (i = 0; i < SESSION_SLOTS; i++) {
        struct tls_sess *s = &G.sess[i];
        if (s->host && s->cfg == t->cfg && s->port == t->port && strcmp(s->host, t->host) == 0)
            return s;
    }
    return NULL;
}

static void sess_clear(struct tls_sess *s)
{
    if (!s || !s->host)
        return;
    mbedtls_ssl_session_free(&s->s);
    free(s->host);
    memset(s, 0, sizeof *s);
}

static void sess_save(const struct tls_conn *t)
{
    struct tls_sess *s = sess_find(t);
    int i;
    if (!s) {
        s = &G.sess[0];
        for (i = 0; i < SESSION_SLOTS && s->host; i++)
            if (!G.sess[i].host || G.sess[i].used < s->used)
                s = &G.sess[i];
    }
    sess_clear(s);
    s->host = tls_strdup(t->host);
    if (!s->host)
        return;
    mbedtls_ssl_session_init(&s->s);
    if (mbedtls_ssl_get_session(&t->ssl, &s->s) != 0) {
        sess_clear(s);
        return;
    }
    s->port = t->port;
    s->cfg = t->cfg;
    s->used = ++G.tick;
}

static void fmt_time(char *buf, size_t len, const char *what, const mbedtls_x509_time *tm)
{
    snprintf(buf, len, "%s %04d-%02d-%02d %02d:%02d:%02d UTC", what, tm->year, tm->mon, tm->day, tm->hour,
             tm->min, tm->sec);
}

/* Called by mbedTLS for each certificate of the chain, root first (depth = position from the leaf). */
static int verify_cb(void *ud, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_conn *t = ud;
    if (depth == 0) {
        /* mbedTLS 2.28 matches the host against dNSName entries (or the CN) only. For IP literals its
         * verdict is meaningless and ours (iPAddress entries) replaces it; for names we check again, which
         * can only add a failure: ours refuses the CN fallback and wildcards mbedTLS accepts. */
        if (t->ip_len)
            *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
        if (!tls_cert_name_ok(crt, t->host, t->ip, t->ip_len))
            *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
        if (*flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
            t->vr_no_san = tls_cert_san_names(crt, t->vr_names, sizeof t->vr_names) == 0;
            if (t->vr_no_san && mbedtls_x509_dn_gets(t->vr_names, sizeof t->vr_names, &crt->subject) < 0)
                t->vr_names[0] = 0;
        }
        if (*flags & MBEDTLS_X509_BADCERT_EXPIRED)
            fmt_time(t->vr_time, sizeof t->vr_time, "valid until", &crt->valid_to);
        else if (*flags & MBEDTLS_X509_BADCERT_FUTURE)
            fmt_time(t->vr_time, sizeof t->vr_time, "valid from", &crt->valid_from);
    }
    if ((*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) && t->vr_untrusted_depth < 0) {
        t->vr_untrusted_depth = depth;
        t->vr_untrusted_self = crt->issuer_raw.len == crt->subject_raw.len &&
                               memcmp(crt->issuer_raw.p, crt->subject_raw.p, crt->issuer_raw.len) == 0;
        if (mbedtls_x509_dn_gets(t->vr_issuer, sizeof t->vr_issuer, &crt->issuer) < 0)
            t->vr_issuer[0] = 0;
    }
    return 0;
}

/* ---------- BIO ---------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_conn *t = ctx;
    if (len == 0)
        return 0;
    if (len > INT32_MAX)
        len = INT32_MAX;
    if (t->defer) { /* off the loop's thread: kept for tls_conn_flush_sends */
        if (t->out_len + len > t->out_cap) {
            size_t cap = t->out_cap ? t->out_cap : 4096;
            while (cap < t->out_len + len)
                cap *= 2;
            unsigned char *n = realloc(t->out, cap);
            if (!n)
                return MBEDTLS_ERR_SSL_ALLOC_FAILED;
            t->out = n;
            t->out_cap = cap;
        }
        memcpy(t->out + t->out_len, buf, len);
        t->out_len += len;
        return (int)len;
    }
    if (t->send(t->ud, buf, len) == 0)
        return (int)len;
    t->send_failed = 1;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_conn *t = ctx;
    size_t avail = t->in_len - t->in_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    if (len > INT32_MAX)
        len = INT32_MAX;
    memcpy(buf, t->in + t->in_off, len);
    t->in_off += len;
    if (t->in_off == t->in_len)
        t->in_off = t->in_len = 0;
    return (int)len;
}

void tls_conn_feed(struct tls_conn *t, const unsigned char *data, size_t len)
{
    if (len == 0 || t->oom)
        return;
    if (t->in_len + len > t->in_cap && t->in_off > 0) {
        memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
        t->in_len -= t->in_off;
        t->in_off = 0;
    }
    if (t->in_len + len > t->in_cap) {
        size_t cap = t->in_cap ? t->in_cap : 16384;
        unsigned char *n;
        while (cap < t->in_len + len)
            cap *= 2;
        n = realloc(t->in, cap);
        if (!n) {
            t->oom = 1;
            return;
        }
        t->in = n;
        t->in_cap = cap;
    }
    memcpy(t->in + t->in_len, data, len);
    t->in_len += len;
}

/* ---------- connection ---------- */

/* Host as given ("example.com", "example.com.", "10.0.0.1", "::1", "[::1]", "fe80::1%eth0") → t->host
 * for SNI and checks, and t->ip for IP literals. */
static int set_host(struct tls_conn *t, const char *host)
{
    size_t n = strlen(host);
    char *h, *pct;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    h = malloc(n + 1);
    if (!h)
        return -1;
    memcpy(h, host, n);
    h[n] = 0;
    if (strchr(h, ':') && (pct = strchr(h, '%')) != NULL)
        *pct = 0;
    n = strlen(h);
    if (n > 1 && h[n - 1] == '.')
        h[--n] = 0;
    t->host = h;
    if (inet_pton(AF_INET, h, t->ip) == 1)
        t->ip_len = 4;
    else if (inet_pton(AF_INET6, h, t->ip) == 1)
        t->ip_len = 16;
    return 0;
}

int tls_conn_new(struct tls_conn **out, const struct tls_options *opt, tls_send_fn send, void *ud, char *err,
                 size_t errlen)
{
    struct tls_conn *t;
    struct tls_sess *s;
    int ret;
    *out = NULL;
    if (!opt || !opt->host || !*opt->host || !send) {
        tls_set_err(err, errlen, 0, "TLS needs a host name");
        return -1;
    }
    if (tls_rng_init(err, errlen) != 0)
        return -1;
    t = calloc(1, sizeof *t);
    if (!t) {
        tls_set_err(err, errlen, 0, "out of memory");
        return -1;
    }
    mbedtls_ssl_init(&t->ssl);
    t->send = send;
    t->ud = ud;
    t->port = opt->port;
    t->vr_untrusted_depth = -1;
    if (set_host(t, opt->host) != 0) {
        tls_set_err(err, errlen, 0, "out of memory");
        goto fail;
    }
    t->cfg = tls_cfg_get(opt, err, errlen);
    if (!t->cfg)
        goto fail;
    if ((ret = mbedtls_ssl_setup(&t->ssl, &t->cfg->conf)) != 0) {
        tls_set_err(err, errlen, ret, "TLS setup failed");
        goto fail;
    }
    /* Always: with no host name set, mbedTLS 2.28.3 skips the name check (CVE-2025-27809). For IP
     * literals this also sends the address as SNI; verify_cb replaces the name check. */
    if ((ret = mbedtls_ssl_set_hostname(&t->ssl, t->host)) != 0) {
        tls_set_err(err, errlen, ret, "invalid TLS host name %s", t->host);
        goto fail;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    s = sess_find(t);
    if (s && mbedtls_ssl_set_session(&t->ssl, &s->s) == 0) {
        t->offered = 1;
        s->used = ++G.tick;
    }
    *out = t;
    return 0;
fail:
    tls_conn_free(t);
    return -1;
}

static const char *alert_name(int a)
{
    switch (a) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 100: return "no_renegotiation";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "unknown";
    }
}

static void verify_reason(struct tls_conn *t, uint32_t flags, char *err, size_t errlen)
{
    char info[256];
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        if (t->vr_untrusted_self && t->vr_untrusted_depth == 0)
            snprintf(err, errlen, "self-signed certificate");
        else if (t->vr_untrusted_self)
            snprintf(err, errlen, "certificate issuer is not trusted (self-signed root %s)", t->vr_issuer);
        else if (t->vr_issuer[0])
            snprintf(err, errlen, "certificate issuer is not trusted (issuer %s)", t->vr_issuer);
        else
            snprintf(err, errlen, "certificate issuer is not trusted");
    } else if (flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        snprintf(err, errlen, "certificate has expired%s%s%s", t->vr_time[0] ? " (" : "", t->vr_time,
                 t->vr_time[0] ? ")" : "");
    } else if (flags & MBEDTLS_X509_BADCERT_FUTURE) {
        snprintf(err, errlen, "certificate is not yet valid%s%s%s", t->vr_time[0] ? " (" : "", t->vr_time,
                 t->vr_time[0] ? ")" : "");
    } else if ((flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) && t->vr_no_san) {
        snprintf(err, errlen,
                 "certificate has no subjectAltName (subject %s): a name only in the CN is not accepted, "
                 "as in browsers", t->vr_names[0] ? t->vr_names : "empty");
    } else if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        snprintf(err, errlen, "certificate name mismatch (host %s)%s%s", t->host,
                 t->vr_names[0] ? "; certificate is for " : "", t->vr_names);
    } else if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                        MBEDTLS_X509_BADCERT_NS_CERT_TYPE)) {
        snprintf(err, errlen, "certificate is not valid for a TLS server (key usage)");
    } else {
        char *nl;
        if (mbedtls_x509_crt_verify_info(info, sizeof info, "", flags) < 0)
            info[0] = 0;
        if ((nl = strchr(info, '\n')) != NULL)
            *nl = 0;
        snprintf(err, errlen, "certificate verification failed: %s", info[0] ? info : "unknown reason");
    }
}

/* Fields of mbedtls_ssl_context read here (state, in_msg, in_msgtype, in_hdr) are public in 2.28. */
static int got_alert(const struct tls_conn *t, int ret)
{
    return ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && t->ssl.in_msgtype == MBEDTLS_SSL_MSG_ALERT &&
           t->ssl.in_msg != NULL;
}

/* The alert mbedTLS sends for a chain it refuses (ssl_parse_certificate_verify). */
static unsigned char verify_alert(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE |
                 MBEDTLS_X509_BADCERT_NS_CERT_TYPE | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
        return MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT;
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED;
    return MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
}

/* Right after mbedTLS parsed the server's Certificate message: the chain checked (or found among
 * the chains verified before against the same trust anchors). 0, or MBEDTLS_ERR_X509_CERT_VERIFY_FAILED after a fatal
 * alert, with the verdict in verify_flags. */
static int verify_peer(struct tls_conn *t)
{
    const mbedtls_x509_crt *chain = t->ssl.session_negotiate ? t->ssl.session_negotiate->peer_cert : NULL;
    struct tls_ca *trust = t->cfg->trust;
    /* sends are deferred exactly while the steps run on the thread pool (tls_layer.c) */
    struct tls_verify_ctx ctx = { &trust->chain, t->cfg->conf.cert_profile, t->host, verify_cb, t, tls_curve_offered,
                                  t->defer };
    t->verify_ran = 1;
    if (!chain) {
        t->verify_flags = MBEDTLS_X509_BADCERT_MISSING;
    } else if (tls_verify_chain(&trust->verified, chain, &ctx, &t->verify_flags, &t->verify_cached) == 0) {
        return 0;
    }
    mbedtls_ssl_send_alert_message(&t->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, verify_alert(t->verify_flags));
    return MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;
}

static void handshake_error(struct tls_conn *t, int ret, char *err, size_t errlen)
{
    char mb[160];
    uint32_t flags = t->verify_ran ? t->verify_flags : mbedtls_ssl_get_verify_result(&t->ssl);
    int cert_err = ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || ret == MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE;
    if (!err || errlen == 0)
        return;
    if (t->cfg->verify && cert_err && flags != 0 && flags != (uint32_t)-1) {
        verify_reason(t, flags, err, errlen);
        return;
    }
    if (got_alert(t, ret)) {
        int a = t->ssl.in_msg[1];
        const char *hint = "";
        /* client_auth: the server sent a CertificateRequest (set by mbedTLS when it reads one). Before the
         * ServerHello, a handshake_failure means the server found nothing acceptable in the ClientHello. */
        if (a == 116 || (a == 40 && t->ssl.client_auth))
            hint = t->cfg->has_own ? "" : "; does it require a client certificate?";
        else if (a == 40 && t->ssl.state <= MBEDTLS_SSL_SERVER_HELLO)
            hint = "; does the server accept none of the offered cipher suites (ECDHE with AES-GCM or "
                   "ChaCha20-Poly1305)?";
        snprintf(err, errlen, "handshake failed: server sent fatal alert %s (%d)%s", alert_name(a), a, hint);
        return;
    }
    if (X509_EXT_INVALID(ret)) {
        /* The server's Certificate message is still in in_msg when parsing one of its certificates failed,
         * whole: mbedTLS 2.28 refuses a TLS handshake message split across records (in_hslen <= in_msglen). */
        char ext[48], cn[64];
        int pos = 0;
        if (t->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE && t->ssl.in_msg &&
            t->ssl.in_msgtype == MBEDTLS_SSL_MSG_HANDSHAKE && t->ssl.in_hslen <= t->ssl.in_msglen)
            pos = tls_cert_find_unparsed_ext(t->ssl.in_msg, t->ssl.in_hslen, ext, sizeof ext, cn, sizeof cn);
        if (pos > 0)
            snprintf(err, errlen,
                     "handshake failed: certificate %d of the server's chain%s%s%s has a critical %s extension, "
                     "which mbedTLS 2.28 cannot parse", pos, cn[0] ? " (" : "", cn, cn[0] ? ")" : "", ext);
        else
            snprintf(err, errlen, "handshake failed: in the server's chain, " EXT_HINT);
        return;
    }
    if (ret == MBEDTLS_ERR_NET_SEND_FAILED) {
        snprintf(err, errlen, "handshake failed: cannot send");
        return;
    }
    if (ret == MBEDTLS_ERR_SSL_INVALID_RECORD && t->ssl.in_hdr && memcmp(t->ssl.in_hdr, "HTTP/", 5) == 0) {
        snprintf(err, errlen, "handshake failed: the server answered in plain HTTP, not TLS");
        return;
    }
    mbedtls_strerror(ret, mb, sizeof mb);
    snprintf(err, errlen, "handshake failed: %s (-0x%04x)", mb, (unsigned)-ret);
}

void tls_conn_defer_sends(struct tls_conn *t, int on)
{
    t->defer = on;
}

int tls_conn_flush_sends(struct tls_conn *t)
{
    int rc = 0;
    if (t->out_len && t->send(t->ud, t->out, t->out_len) != 0) {
        t->send_failed = 1;
        rc = -1;
    }
    t->out_len = 0;
    return rc;
}

int tls_conn_handshake_steps(struct tls_conn *t)
{
    int ret = 0;
    if (t->done || t->failed || t->oom)
        return 0;
    /* mbedtls_ssl_handshake() one step at a time, to see whether the server sends its certificate: a
     * resumed handshake goes from ServerHello straight to ChangeCipherSpec. */
    while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        int certificate = t->ssl.state == MBEDTLS_SSL_SERVER_CERTIFICATE;
        if (certificate)
            t->full = 1;
        /* the client's ECDHE key pair is made in this step: with the generator's table (taken back
         * right after, so no other step, and no free, ever sees it) */
        mbedtls_ecp_group *kx = t->ssl.state == MBEDTLS_SSL_CLIENT_KEY_EXCHANGE && t->ssl.handshake
                                    ? &t->ssl.handshake->ecdh_ctx.grp : NULL;
        int lent = tls_ecp_lend_generator(kx);
        ret = mbedtls_ssl_handshake_step(&t->ssl);
        if (lent)
            tls_ecp_take_back(kx);
        if (ret != 0)
            break;
        if (certificate && t->ssl.state != MBEDTLS_SSL_SERVER_CERTIFICATE) {
            /* the chain's keys verify with tables kept for the process (tls_ecp.c): the leaf's checks
             * the ServerKeyExchange next, the others the chain */
            for (mbedtls_x509_crt *crt = t->ssl.session_negotiate ? t->ssl.session_negotiate->peer_cert : NULL; crt;
                 crt = crt->next)
                tls_ecp_share_verify(&crt->pk);
            /* the chain is in: checked before anything of the key exchange is read or sent */
            if (t->cfg->verify && (ret = verify_peer(t)) != 0)
                break;
        }
    }
    return ret;
}

int tls_conn_handshake_end(struct tls_conn *t, int ret, char *err, size_t errlen)
{
    if (t->done)
        return TLS_OK;
    if (t->failed || t->oom) {
        tls_set_err(err, errlen, 0, "%s", t->oom ? "out of memory buffering TLS input" : "TLS connection failed");
        t->failed = 1;
        return TLS_ERROR;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ)
        return TLS_WANT_INPUT;
    if (ret != 0) {
        t->failed = 1;
        if (t->offered)
            sess_clear(sess_find(t));
        handshake_error(t, ret, err, errlen);
        return TLS_ERROR;
    }
    t->done = 1;
    t->resumed = t->offered && !t->full;
    sess_save(t);
    return TLS_OK;
}

int tls_conn_handshake(struct tls_conn *t, char *err, size_t errlen)
{
    return tls_conn_handshake_end(t, tls_conn_handshake_steps(t), err, errlen);
}

int tls_conn_input_pending(struct tls_conn *t)
{
    return t->in_off < t->in_len || mbedtls_ssl_get_bytes_avail(&t->ssl) > 0;
}

ssize_t tls_conn_read(struct tls_conn *t, unsigned char *buf, size_t len, char *err, size_t errlen)
{
    int ret, tries;
    if (t->eof)
        return TLS_EOF;
    if (!t->done || t->failed || t->oom || len == 0) {
        tls_set_err(err, errlen, 0, "%s",
                t->oom ? "out of memory buffering TLS input"
                : len == 0 ? "TLS read into an empty buffer"
                : "TLS read before the handshake completed");
        t->failed = 1;
        return TLS_ERROR;
    }
    if (len > INT32_MAX)
        len = INT32_MAX;
    for (tries = 0; tries < 4; tries++) {
        ret = mbedtls_ssl_read(&t->ssl, buf, len);
        if (ret > 0)
            return ret;
        if (ret == MBEDTLS_ERR_SSL_WANT_READ)
            return TLS_WANT_INPUT;
        if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            t->eof = 1;
            return TLS_EOF;
        }
        if (ret != 0)
            break;
        /* 0: an empty record; read on */
    }
    t->failed = 1;
    if (ret == 0) {
        tls_set_err(err, errlen, 0, "TLS stream ended unexpectedly");
    } else if (got_alert(t, ret)) {
        tls_set_err(err, errlen, 0, "TLS read failed: peer sent fatal alert %s (%d)", alert_name(t->ssl.in_msg[1]),
                t->ssl.in_msg[1]);
    } else {
        tls_set_err(err, errlen, ret, "TLS read failed");
    }
    return TLS_ERROR;
}

int tls_conn_write(struct tls_conn *t, const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    size_t off = 0;
    if (!t->done || t->failed) {
        tls_set_err(err, errlen, 0, "TLS write before the handshake completed");
        return TLS_ERROR;
    }
    while (off < len) {
        int ret = mbedtls_ssl_write(&t->ssl, buf + off, len - off);
        if (ret > 0) {
            off += (size_t)ret;
            continue;
        }
        t->failed = 1;
        if (ret == MBEDTLS_ERR_NET_SEND_FAILED)
            tls_set_err(err, errlen, 0, "TLS write failed: cannot send");
        else
            tls_set_err(err, errlen, ret ? ret : MBEDTLS_ERR_SSL_INTERNAL_ERROR, "TLS write failed");
        return TLS_ERROR;
    }
    return TLS_OK;
}

int tls_conn_send_failed(const struct tls_conn *t)
{
    return t->send_failed;
}

void tls_conn_close_notify(struct tls_conn *t)
{
    if (t && t->done && !t->failed)
        (void)mbedtls_ssl_close_notify(&t->ssl);
}

void tls_conn_get_info(struct tls_conn *t, struct tls_info *info)
{
    const mbedtls_x509_crt *peer;
    const char *c;
    memset(info, 0, sizeof *info);
    info->version = t->done ? mbedtls_ssl_get_version(&t->ssl) : "";
    c = t->done ? mbedtls_ssl_get_ciphersuite(&t->ssl) : NULL;
    info->cipher = c ? c : "";
    /* a resumed session was saved only from a verified handshake under the same config */
    info->verified = t->done && t->cfg->verify && (t->verify_ran ? t->verify_flags == 0 : t->resumed);
    info->verify_cached = t->verify_cached;
    peer = t->done ? mbedtls_ssl_get_peer_cert(&t->ssl) : NULL;
    info->expires = peer ? tls_cert_time_unix(&peer->valid_to) : 0;
}

const char *tls_conn_alpn(struct tls_conn *t)
{
    return t->done ? mbedtls_ssl_get_alpn_protocol(&t->ssl) : NULL;
}

int tls_conn_resumed(struct tls_conn *t)
{
    return t->resumed;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t->out);
    free(t->in);
    free(t->host);
    free(t);
}

void tls_global_cleanup(void)
{
    int i;
    for (i = 0; i < SESSION_SLOTS; i++)
        sess_clear(&G.sess[i]);
    tls_configs_free();
    tls_ecp_cleanup();
    memset(&G, 0, sizeof G);
}
