/* tls.h — TLS client sessions over an in-memory BIO (mbedTLS 2.28): no sockets, no libuv, no Lua.
 * conn.c feeds received ciphertext in with tls_conn_feed and sends what the send callback hands out.
 * A tls_conn is owned by its connection and freed with tls_conn_free; shared configs are process-wide. */
#ifndef LUAFETCH_TLS_H
#define LUAFETCH_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Negative so that tls_conn_read can return them beside a byte count (1 byte must not read as WANT_INPUT). */
enum {
    TLS_OK = 0,
    TLS_ERROR = -1,        /* failure; message in err */
    TLS_WANT_INPUT = -2,   /* needs more ciphertext: feed and call again */
    TLS_EOF = -3           /* peer sent close_notify */
};

/* What changes trust: every field here is part of the pool key. */
struct tls_options {
    int verify;             /* 1 = verify chain and host name (default) */
    const char *ca_file;    /* PEM bundle path, NULL = system bundle */
    const char *cert_file;  /* client certificate (PEM), NULL = none */
    const char *key_file;   /* client key (PEM), NULL = none */
    const char *host;       /* SNI and name to check: host name or IP literal (never NULL) */
    int port;               /* with host, keys the session-resumption cache */
    int alpn_h2;            /* 1: offer "h2" and "http/1.1" by ALPN; 0: no ALPN (HTTP/1.1 only) */
};

struct tls_info {
    const char *version;    /* "TLSv1.2" (static string) */
    const char *cipher;     /* suite name (static string) */
    int verified;           /* chain and name verified */
    int verify_cached;      /* ... by a chain verified before under the same trust options */
    long long expires;      /* unix time of the peer certificate's notAfter, 0 if none */
};

struct tls_conn;

/* Called with ciphertext to send; must take all of it (copy/queue). Returns 0 or -1. */
typedef int (*tls_send_fn)(void *ud, const unsigned char *buf, size_t len);

/* 0 on success; -1 with a readable reason in err (bad CA file, bad client key ...). The first use of a
 * (verify, ca_file, cert_file, key_file) combination parses its files; later ones share the result. */
int tls_conn_new(struct tls_conn **out, const struct tls_options *opt,
                 tls_send_fn send, void *ud, char *err, size_t errlen);
/* Append received ciphertext (copied; an allocation failure is reported by the next call). */
void tls_conn_feed(struct tls_conn *t, const unsigned char *data, size_t len);
/* TLS_OK when the handshake completed (verification included), TLS_WANT_INPUT, or TLS_ERROR. After TLS_OK
 * call tls_conn_read even without new input: application data may have arrived with the last flight. */
int tls_conn_handshake(struct tls_conn *t, char *err, size_t errlen);
/* tls_conn_handshake in two halves, for running the costly one on another thread: _steps does the
 * handshake's work on the buffered input (public-key operations included) and may run off the
 * loop's thread, with sends deferred, while nothing else touches t; it returns mbedTLS's code,
 * which _end (on the loop's thread) turns into tls_conn_handshake's result (caches updated). */
int tls_conn_handshake_steps(struct tls_conn *t);
int tls_conn_handshake_end(struct tls_conn *t, int ret, char *err, size_t errlen);
/* While on, what the session sends is kept in t instead of going to the send callback; flush
 * hands it on (0, or -1 when the callback refused it). */
void tls_conn_defer_sends(struct tls_conn *t, int on);
int tls_conn_flush_sends(struct tls_conn *t);
/* >0 plaintext bytes, TLS_WANT_INPUT (0 is never returned), TLS_EOF, or TLS_ERROR. One call returns at most
 * one record: after a feed, call again until TLS_WANT_INPUT. A TCP EOF without close_notify is a truncation
 * the caller judges (e.g. fine after a complete Content-Length body). */
ssize_t tls_conn_read(struct tls_conn *t, unsigned char *buf, size_t len, char *err, size_t errlen);
/* Encrypts all of buf and hands records to send; TLS_OK or TLS_ERROR. */
int tls_conn_write(struct tls_conn *t, const unsigned char *buf, size_t len, char *err, size_t errlen);
/* Sends close_notify (best effort). */
void tls_conn_close_notify(struct tls_conn *t);
void tls_conn_get_info(struct tls_conn *t, struct tls_info *info);
/* 1 if received bytes wait to be read: buffered ciphertext or decrypted plaintext. */
int tls_conn_input_pending(struct tls_conn *t);
/* The protocol the server chose by ALPN ("h2", "http/1.1"), or NULL when none was chosen. */
const char *tls_conn_alpn(struct tls_conn *t);
/* 1 if the handshake resumed a cached session. */
int tls_conn_resumed(struct tls_conn *t);
void tls_conn_free(struct tls_conn *t);
/* Frees shared configs, CA chains, the RNG and the session cache (at host shutdown, after every
 * tls_conn_free). All functions are for the loop's thread but tls_conn_handshake_steps (see there); the
 * session cache has no lock, the verified-chains cache (tls_verify.c) has one. */
void tls_global_cleanup(void);

/* 1 if the transport refused bytes (the peer closed or reset): a closed connection, not a TLS failure. */
int tls_conn_send_failed(const struct tls_conn *t);

#endif
