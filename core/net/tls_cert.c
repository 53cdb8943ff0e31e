/* tls_cert.c — X.509 checks on raw DER that mbedTLS 2.28 lacks: host names against subjectAltName
 * (RFC 6125 as browsers apply it), SAN lists for messages, unparseable critical extensions, validity
 * times in unix seconds. Owns nothing: reads the caller's certificates and messages, writes the
 * caller's buffers. */
#define _DEFAULT_SOURCE /* timegm */
#include "tls_cert.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

#define SAN_DNS (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)
#define SAN_IP (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)
#define CTX_CONS(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)

/* ---------- walking extensions ---------- */

/* Called for each extension; a non-zero return stops the walk and is returned by ext_walk. */
typedef int (*ext_fn)(void *ud, const unsigned char *oid, size_t oid_len, int critical, unsigned char *val,
                      size_t val_len);

/* Walks the extensions in p..end: the [3] EXPLICIT wrapper of a TBSCertificate, or the bare Extensions
 * SEQUENCE (crt->v3_ext is either, depending on how mbedTLS parsed it). -1 means malformed. */
static int ext_walk(unsigned char *p, const unsigned char *end, ext_fn fn, void *ud)
{
    unsigned char *ext_end, *oid;
    size_t len, oid_len;
    int crit, r;
    if (p < end && *p == CTX_CONS(3)) {
        if (mbedtls_asn1_get_tag(&p, end, &len, *p) != 0)
            return -1;
        end = p + len;
    }
    if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
        return -1;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
            return -1;
        ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid_len, MBEDTLS_ASN1_OID) != 0)
            return -1;
        oid = p;
        p += oid_len;
        crit = 0;
        if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN && mbedtls_asn1_get_bool(&p, ext_end, &crit) != 0)
            return -1;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return -1;
        if ((r = fn(ud, oid, oid_len, crit, p, len)) != 0)
            return r;
        p = ext_end;
    }
    return 0;
}

/* ---------- subjectAltName ---------- */

/* Called for each GeneralName of the subjectAltName extension, walked from the raw DER so that we see every
 * entry with its tag, whatever mbedTLS keeps in subject_alt_names. */
typedef void (*san_fn)(void *ud, int tag, const unsigned char *p, size_t len);

struct san_ctx {
    san_fn fn;
    void *ud;
    int found;
};

static int san_ext(void *ud, const unsigned char *oid, size_t oid_len, int critical, unsigned char *q,
                   size_t len)
{
    struct san_ctx *w = ud;
    const unsigned char *q_end = q + len;
    (void)critical;
    if (oid_len != MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME) ||
        memcmp(oid, MBEDTLS_OID_SUBJECT_ALT_NAME, oid_len) != 0)
        return 0;
    if (mbedtls_asn1_get_tag(&q, q_end, &len, SEQ) != 0)
        return -1;
    q_end = q + len;
    while (q < q_end) {
        int tag = *q++;
        if (mbedtls_asn1_get_len(&q, q_end, &len) != 0)
            return -1;
        if (w->fn)
            w->fn(w->ud, tag, q, len);
        q += len;
    }
    w->found = 1;
    return 0;
}

/* 1 if the certificate has the extension, 0 if not, -1 if it is malformed. */
static int san_walk(const mbedtls_x509_crt *crt, san_fn fn, void *ud)
{
    struct san_ctx w = {fn, ud, 0};
    if (!crt->v3_ext.p || crt->v3_ext.len == 0)
        return 0;
    if (ext_walk(crt->v3_ext.p, crt->v3_ext.p + crt->v3_ext.len, san_ext, &w) != 0)
        return -1;
    return w.found;
}

/* 1 if the last label of host is a number ("1", "0x7f"): getaddrinfo and URL parsers read such a name as an
 * IPv4 address (127.1, 0x7f.0.0.1), so no wildcard may match it. */
static int ends_in_number(const char *host)
{
    const char *l = strrchr(host, '.');
    l = l ? l + 1 : host;
    if (l[0] == '0' && (l[1] == 'x' || l[1] == 'X'))
        return l[2 + strspn(l + 2, "0123456789abcdefABCDEF")] == 0;
    return *l && l[strspn(l, "0123456789")] == 0;
}

/* RFC 6125 §6.4 as browsers, curl and OpenSSL apply it: the only wildcard is a whole left-most label "*"
 * that matches exactly one non-empty label, and at least two labels must follow it ("*.localhost" and
 * "*.com" match nothing). A '*' anywhere else ("f*.example.com") matches nothing. */
int tls_cert_dns_match(const char *host, const unsigned char *name, size_t len)
{
    size_t hlen = strlen(host), slen;
    const unsigned char *suffix, *inner;
    const char *dot;
    if (len == 0 || memchr(name, 0, len) || name[len - 1] == '.') /* hosts come without the final dot */
        return 0;
    if (name[0] != '*')
        return !memchr(name, '*', len) && len == hlen && strncasecmp(host, (const char *)name, len) == 0;
    if (len < 2 || name[1] != '.' || memchr(name + 1, '*', len - 1))
        return 0;
    suffix = name + 1; /* ".example.com": a dot, a label, a dot, more */
    slen = len - 1;
    inner = slen > 2 ? memchr(suffix + 2, '.', slen - 2) : NULL;
    if (!inner)
        return 0;
    dot = strchr(host, '.');
    if (!dot || dot == host || ends_in_number(host))
        return 0;
    return hlen - (size_t)(dot - host) == slen && strncasecmp(dot, (const char *)suffix, slen) == 0;
}

struct name_match {
    const char *host;
    const unsigned char *ip;
    int ip_len;
    int matched;
};

static void match_cb(void *ud, int tag, const unsigned char *p, size_t len)
{
    struct name_match *m = ud;
    if (m->ip_len) {
        if (tag == SAN_IP && len == (size_t)m->ip_len && memcmp(p, m->ip, len) == 0)
            m->matched = 1;
    } else if (tag == SAN_DNS && tls_cert_dns_match(m->host, p, len)) {
        m->matched = 1;
    }
}

/* The CN is never looked at: a certificate without subjectAltName is valid for no name, as in Chrome and
 * Firefox (CAs have had to include the SAN since 2012). */
int tls_cert_name_ok(const mbedtls_x509_crt *crt, const char *host, const unsigned char *ip, int ip_len)
{
    struct name_match m = {host, ip, ip_len, 0};
    return san_walk(crt, match_cb, &m) > 0 && m.matched;
}

struct names_buf {
    char *buf;
    size_t len;
};

static void names_cb(void *ud, int tag, const unsigned char *p, size_t len)
{
    struct names_buf *nb = ud;
    char name[INET6_ADDRSTRLEN + 1];
    size_t used = strlen(nb->buf);
    if (tag == SAN_DNS && len < sizeof name && !memchr(p, 0, len)) {
        memcpy(name, p, len);
        name[len] = 0;
    } else if (tag == SAN_IP && (len == 4 || len == 16)) {
        if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, p, name, sizeof name))
            return;
    } else {
        return;
    }
    if (used + strlen(name) + 6 >= nb->len) {
        if (used + 6 < nb->len && !strstr(nb->buf, "..."))
            strcat(nb->buf, ", ...");
        return;
    }
    if (used)
        strcat(nb->buf, ", ");
    strcat(nb->buf, name);
}

int tls_cert_san_names(const mbedtls_x509_crt *crt, char *buf, size_t len)
{
    struct names_buf nb = {buf, len};
    if (len == 0)
        return san_walk(crt, NULL, NULL) < 0 ? -1 : 0;
    buf[0] = 0;
    return san_walk(crt, names_cb, &nb);
}

/* ---------- critical extensions mbedTLS cannot parse ---------- */

struct bad_ext {
    char *name;
    size_t len;
};

static int bad_ext_cb(void *ud, const unsigned char *oid, size_t oid_len, int critical, unsigned char *val,
                      size_t val_len)
{
    static const struct {
        const char *oid;
        const char *name;
    } known[] = {
        {MBEDTLS_OID_NAME_CONSTRAINTS, "nameConstraints"},
        {MBEDTLS_OID_POLICY_CONSTRAINTS, "policyConstraints"},
        {MBEDTLS_OID_POLICY_MAPPINGS, "policyMappings"},
        {MBEDTLS_OID_ID_CE "\x36", "inhibitAnyPolicy"},
    };
    struct bad_ext *b = ud;
    mbedtls_asn1_buf o;
    int type;
    size_t i;
    (void)val, (void)val_len;
    o.tag = MBEDTLS_ASN1_OID;
    o.len = oid_len;
    o.p = (unsigned char *)oid;
    if (!critical || mbedtls_oid_get_x509_ext_type(&o, &type) == 0)
        return 0; /* skipped, or parsed by mbedTLS */
    for (i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].oid) == oid_len && memcmp(known[i].oid, oid, oid_len) == 0) {
            snprintf(b->name, b->len, "%s", known[i].name);
            return 1;
        }
    snprintf(b->name, b->len, "OID ");
    if (b->len <= 4 || mbedtls_oid_get_numeric_string(b->name + 4, b->len - 4, &o) < 0)
        snprintf(b->name, b->len, "unknown");
    return 1;
}

/* Copies the CN of the Name (SEQUENCE OF SET OF {OID, value}) at p into buf; "" if none. */
static void name_cn(unsigned char *p, const unsigned char *end, char *buf, size_t buflen)
{
    unsigned char *set_end, *seq_end;
    size_t len;
    if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
        return;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET) != 0)
            return;
        set_end = p + len;
        while (p < set_end) {
            if (mbedtls_asn1_get_tag(&p, set_end, &len, SEQ) != 0)
                return;
            seq_end = p + len;
            if (mbedtls_asn1_get_tag(&p, seq_end, &len, MBEDTLS_ASN1_OID) != 0)
                return;
            if (len == MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN) && memcmp(p, MBEDTLS_OID_AT_CN, len) == 0) {
                p += len; /* the value: any string type */
                if (p < seq_end && mbedtls_asn1_get_tag(&p, seq_end, &len, *p) == 0 && len < buflen &&
                    !memchr(p, 0, len)) {
                    memcpy(buf, p, len);
                    buf[len] = 0;
                }
                return;
            }
            p = seq_end;
        }
    }
}

/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial, signature, issuer,
 * validity, subject, subjectPublicKeyInfo, [1], [2], [3] extensions }, ... }. 1 if the certificate at p
 * has an unparseable critical extension. */
static int crt_bad_ext(unsigned char *p, const unsigned char *end, struct bad_ext *b, char *cn, size_t cnlen)
{
    unsigned char *subject = NULL, *start;
    const unsigned char *tbs_end;
    size_t len;
    int i, tag;
    if (mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0 || mbedtls_asn1_get_tag(&p, end, &len, SEQ) != 0)
        return 0;
    tbs_end = p + len;
    for (i = 0; p < tbs_end; i++) {
        tag = *p;
        start = p;
        if (mbedtls_asn1_get_tag(&p, tbs_end, &len, tag) != 0)
            return 0;
        if (i == 0 && tag != CTX_CONS(0))
            i++; /* v1: no version field */
        if (i == 5)
            subject = start;
        if (tag == CTX_CONS(3) && ext_walk(start, p + len, bad_ext_cb, b) == 1) {
            if (subject)
                name_cn(subject, tbs_end, cn, cnlen);
            return 1;
        }
        p += len;
    }
    return 0;
}

int tls_cert_find_unparsed_ext(const unsigned char *msg, size_t n, char *ext, size_t extlen, char *cn,
                               size_t cnlen)
{
    struct bad_ext b = {ext, extlen};
    unsigned char *p = (unsigned char *)msg; /* mbedtls_asn1_* take non-const pointers; nothing is written */
    const unsigned char *end = msg + n;
    size_t len;
    int pos = 0;
    if (extlen == 0 || cnlen == 0)
        return 0;
    ext[0] = cn[0] = 0;
    if (n < 7 || msg[0] != 11) /* HandshakeType certificate(11) */
        return 0;
    p += 7; /* handshake header, certificate_list length */
    while (end - p >= 3) {
        len = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        p += 3;
        if (len > (size_t)(end - p))
            return 0;
        pos++;
        if (crt_bad_ext(p, p + len, &b, cn, cnlen))
            return pos;
        p += len;
    }
    return 0;
}

long long tls_cert_time_unix(const mbedtls_x509_time *xt)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = xt->year - 1900;
    tm.tm_mon = xt->mon - 1;
    tm.tm_mday = xt->day;
    tm.tm_hour = xt->hour;
    tm.tm_min = xt->min;
    tm.tm_sec = xt->sec;
    return (long long)timegm(&tm);
}
