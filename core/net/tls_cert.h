/* tls_cert.h — X.509 checks that mbedTLS 2.28 lacks or gets wrong, done on the certificates' DER (no
 * sockets, no Lua). Nothing here allocates: results go to the caller's buffers. Used by tls.c. */
#ifndef LUAFETCH_TLS_CERT_H
#define LUAFETCH_TLS_CERT_H

#include <stddef.h>

#include <mbedtls/x509_crt.h>

/* 1 if the dNSName entry NAME (LEN bytes, not NUL-terminated) covers HOST (a name, not an IP literal;
 * no trailing dot; a NAME ending in a dot matches nothing). Case-insensitive; "*" only as a whole
 * left-most label, with two labels after it. */
int tls_cert_dns_match(const char *host, const unsigned char *name, size_t len);

/* 1 if CRT is valid for the host: IP/IP_LEN (4 or 16 bytes) against iPAddress entries when IP_LEN is
 * non-zero, else HOST against dNSName entries. Never the CN: without subjectAltName, 0. */
int tls_cert_name_ok(const mbedtls_x509_crt *crt, const char *host, const unsigned char *ip, int ip_len);

/* Writes CRT's DNS and IP subjectAltName entries into BUF ("a.example, 10.0.0.1, ..."), truncated with
 * "..." to fit. Returns 1 if CRT has a subjectAltName, 0 if not, -1 if it is malformed. */
int tls_cert_san_names(const mbedtls_x509_crt *crt, char *buf, size_t len);

/* The moment XT names (UTC), in seconds since 1970. */
long long tls_cert_time_unix(const mbedtls_x509_time *xt);

/* MSG/LEN: a TLS 1.2 Certificate handshake message, header included. Finds the first certificate with a
 * critical extension mbedTLS has no parser for (it refuses such a certificate whole). Returns its position
 * (1 = the leaf) and writes the extension's name ("nameConstraints", or "OID 1.2.3") and the
 * certificate's CN ("" if none); 0 if there is none or the message is malformed. */
int tls_cert_find_unparsed_ext(const unsigned char *msg, size_t len, char *ext, size_t extlen, char *cn,
                               size_t cnlen);

#endif
