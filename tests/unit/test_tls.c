/* test_tls.c — drives core/net/tls.c against real TLS 1.2 servers on loopback (tests/fixtures/tls_echo.py)
 * with certificates that tests/fixtures/certs.sh generates into build/tls-certs. Blocking sockets; the
 * test pumps bytes between the socket and tls_conn_feed / the send callback. Run from the repo root
 * (or pass it as argv[1]). Prints "N passed, M failed" last; exits 1 on any failure. */
#define _DEFAULT_SOURCE
#include "tls.h"
#include "tls_cert.h"
#include "tls_ecp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static const char *root = ".";
static char certs[512];

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (cond) {                                                                                        \
            passed++;                                                                                      \
        } else {                                                                                           \
            failed++;                                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

static const char *cert(const char *name)
{
    static char buf[8][600];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", certs, name);
    return b;
}

/* ---------- fixture server ---------- */

struct server {
    pid_t pid;
    int stdin_fd;
    int port;
};

/* CIPHERS (OpenSSL syntax) restricts the server's TLS 1.2 suites, CURVE (OpenSSL name) its ECDHE
 * group; NULL = Python's defaults. */
static int server_start_with(struct server *s, const char *leaf, const char *client_ca, const char *ciphers,
                             const char *curve)
{
    int in[2], out[2];
    char script[600], pem[64], key[64], buf[32];
    FILE *f;
    snprintf(script, sizeof script, "%s/tests/fixtures/tls_echo.py", root);
    snprintf(pem, sizeof pem, "%s.pem", leaf);
    snprintf(key, sizeof key, "%s.key", leaf);
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        const char *py = getenv("PYTHON");
        if (!py || !*py)
            py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        const char *argv[14];
        int n = 0;
        argv[n++] = py;
        argv[n++] = script;
        argv[n++] = "--cert";
        argv[n++] = cert(pem);
        argv[n++] = "--key";
        argv[n++] = cert(key);
        if (client_ca) {
            argv[n++] = "--client-ca";
            argv[n++] = cert(client_ca);
        }
        if (ciphers) {
            argv[n++] = "--ciphers";
            argv[n++] = ciphers;
        }
        if (curve) {
            argv[n++] = "--ecdh-curve";
            argv[n++] = curve;
        }
        argv[n] = NULL;
        execvp(py, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    s->stdin_fd = in[1];
    f = fdopen(out[0], "r");
    s->port = f && fgets(buf, sizeof buf, f) ? atoi(buf) : 0;
    if (f)
        fclose(f);
    return s->port > 0 ? 0 : -1;
}

static int server_start_ciphers(struct server *s, const char *leaf, const char *client_ca, const char *ciphers)
{
    return server_start_with(s, leaf, client_ca, ciphers, NULL);
}

static int server_start(struct server *s, const char *leaf, const char *client_ca)
{
    return server_start_ciphers(s, leaf, client_ca, NULL);
}

static void server_stop(struct server *s)
{
    if (s->pid <= 0)
        return;
    close(s->stdin_fd); /* the server exits when its stdin closes */
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* ---------- one client exchange ---------- */

struct result {
    int rc;                 /* TLS_OK or TLS_ERROR (handshake or exchange) */
    char err[256];
    struct tls_info info;
    int resumed;
    int got_eof;            /* read ended with close_notify */
    char reply[256];        /* start of the reply, NUL-terminated */
    size_t reply_len;       /* whole reply */
    int reply_matches;      /* reply == "echo:" + payload */
};

/* How exchange() talks: ciphertext fed FEED bytes at a time, plaintext read READ bytes at a time. */
static size_t feed_chunk = 4096, read_chunk = 64;
static const char *payload = "hello\n";
static size_t payload_len = 6;

static int send_cb(void *ud, const unsigned char *buf, size_t len)
{
    int fd = *(int *)ud;
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return 0; /* like a queued write: a dead peer shows up when we read */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static size_t sent_bytes;
static int count_cb(void *ud, const unsigned char *buf, size_t len)
{
    (void)ud;
    (void)buf;
    sent_bytes += len;
    return 0;
}

static unsigned char captured[4096];
static size_t captured_len;
static int capture_cb(void *ud, const unsigned char *buf, size_t len)
{
    (void)ud;
    if (captured_len + len <= sizeof captured) {
        memcpy(captured + captured_len, buf, len);
        captured_len += len;
    }
    return 0;
}

static int pump(int fd, struct tls_conn *t)
{
    unsigned char buf[4096];
    ssize_t n = recv(fd, buf, feed_chunk < sizeof buf ? feed_chunk : sizeof buf, 0);
    if (n <= 0)
        return -1;
    tls_conn_feed(t, buf, (size_t)n);
    return 0;
}

static void exchange(int port, const struct tls_options *o, struct result *r)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    struct tls_conn *t = NULL;
    int fd, rc;
    size_t got = 0;
    memset(r, 0, sizeof *r);
    r->rc = TLS_ERROR;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(r->err, sizeof r->err, "connect: %s", strerror(errno));
        close(fd);
        return;
    }
    if (tls_conn_new(&t, o, send_cb, &fd, r->err, sizeof r->err) != 0) {
        close(fd);
        return;
    }
    while ((rc = tls_conn_handshake(t, r->err, sizeof r->err)) == TLS_WANT_INPUT)
        if (pump(fd, t) != 0) {
            snprintf(r->err, sizeof r->err, "test: connection closed during handshake");
            break;
        }
    if (rc != TLS_OK)
        goto out;
    tls_conn_get_info(t, &r->info);
    r->resumed = tls_conn_resumed(t);
    if (tls_conn_write(t, (const unsigned char *)payload, payload_len, r->err, sizeof r->err) != TLS_OK)
        goto out;
    r->reply_matches = 1;
    for (;;) {
        unsigned char buf[4096];
        size_t want = read_chunk < sizeof buf ? read_chunk : sizeof buf;
        ssize_t n = tls_conn_read(t, buf, want, r->err, sizeof r->err);
        if (n > 0) {
            size_t i;
            for (i = 0; i < (size_t)n; i++, got++) {
                char want = got < 5 ? "echo:"[got] : got - 5 < payload_len ? payload[got - 5] : 0;
                if (got + 1 < sizeof r->reply)
                    r->reply[got] = (char)buf[i];
                if ((char)buf[i] != want || got >= payload_len + 5)
                    r->reply_matches = 0;
            }
            r->reply_len = got;
        } else if (n == TLS_WANT_INPUT) {
            if (pump(fd, t) != 0) {
                snprintf(r->err, sizeof r->err, "test: connection closed before close_notify");
                goto out;
            }
        } else if (n == TLS_EOF) {
            r->got_eof = 1;
            break;
        } else {
            goto out;
        }
    }
    if (got != payload_len + 5)
        r->reply_matches = 0;
    tls_conn_close_notify(t);
    r->rc = TLS_OK;
out:
    tls_conn_free(t);
    close(fd);
}

static struct tls_options opts(const char *host, int port)
{
    struct tls_options o;
    memset(&o, 0, sizeof o);
    o.verify = 1;
    o.ca_file = cert("ca.pem");
    o.host = host;
    o.port = port;
    return o;
}

/* Connects to a fresh server for LEAF and expects success. */
static void expect_ok(const char *leaf, const char *host, const char *ca_file, int verify)
{
    struct server s;
    struct result r;
    struct tls_options o;
    if (server_start(&s, leaf, NULL) != 0) {
        CHECK(0, "%s: server did not start", leaf);
        return;
    }
    o = opts(host, s.port);
    o.ca_file = ca_file;
    o.verify = verify;
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "%s as %s: expected success, got: %s", leaf, host, r.err);
    CHECK(r.rc != TLS_OK || r.reply_matches, "%s as %s: reply '%s'", leaf, host, r.reply);
    CHECK(r.rc != TLS_OK || r.got_eof, "%s as %s: no close_notify seen", leaf, host);
    CHECK(r.rc != TLS_OK || r.info.verified == verify, "%s as %s: verified=%d", leaf, host, r.info.verified);
    server_stop(&s);
}

/* Connects to a fresh server for LEAF (trusting ca.pem) and expects failure with WANT in the message. */
static void expect_fail(const char *leaf, const char *host, const char *want)
{
    struct server s;
    struct result r;
    struct tls_options o;
    if (server_start(&s, leaf, NULL) != 0) {
        CHECK(0, "%s: server did not start", leaf);
        return;
    }
    o = opts(host, s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_ERROR, "%s as %s: expected failure", leaf, host);
    CHECK(strstr(r.err, want) != NULL, "%s as %s: want '%s', got '%s'", leaf, host, want, r.err);
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "  %-12s %-16s -> %s\n", leaf, host, r.err);
    server_stop(&s);
}

static void test_good(void)
{
    struct server s;
    struct result r;
    struct tls_options o;
    if (server_start(&s, "good", NULL) != 0) {
        CHECK(0, "good: server did not start");
        return;
    }
    o = opts("localhost", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "good by DNS name: %s", r.err);
    CHECK(r.reply_matches, "reply '%s'", r.reply);
    CHECK(r.got_eof, "close_notify read as TLS_EOF");
    CHECK(r.info.version && strcmp(r.info.version, "TLSv1.2") == 0, "version %s", r.info.version);
    CHECK(r.info.cipher && r.info.cipher[0], "cipher '%s'", r.info.cipher);
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "  good: %s %s\n", r.info.version, r.info.cipher);
    CHECK(r.info.verified == 1, "verified");
    CHECK(r.info.expires > (long long)time(NULL), "expires %lld in the future", r.info.expires);
    CHECK(r.info.expires < (long long)time(NULL) + 40 * 86400, "expires %lld within 40 days", r.info.expires);
    CHECK(r.resumed == 0, "first connection is not resumed");

    /* same host, port and options: resumed; info still complete */
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "second connection: %s", r.err);
    CHECK(r.resumed == 1, "second connection resumed");
    CHECK(r.info.verified == 1 && r.info.expires > (long long)time(NULL), "resumed info verified/expires");
    CHECK(r.reply_matches, "resumed reply '%s'", r.reply);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK && r.resumed == 1, "third connection resumed too");

    /* ciphertext one byte at a time, plaintext one byte at a time (1 is a byte count, not a status) */
    feed_chunk = read_chunk = 1;
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK && r.reply_matches, "byte-by-byte: rc=%d '%s' %s", r.rc, r.reply, r.err);
    feed_chunk = 4096;
    read_chunk = 64;

    /* a payload of many records each way */
    {
        static char big[200001];
        memset(big, 'x', sizeof big - 2);
        big[sizeof big - 2] = '\n';
        payload = big;
        payload_len = sizeof big - 1;
        read_chunk = 4096;
        exchange(s.port, &o, &r);
        CHECK(r.rc == TLS_OK && r.reply_matches && r.reply_len == payload_len + 5, "200 kB echo: rc=%d len=%zu %s",
              r.rc, r.reply_len, r.err);
        payload = "hello\n";
        payload_len = 6;
        read_chunk = 64;
    }

    /* IP SANs: 127.0.0.1, ::1 and [::1] match; 127.0.0.2 does not. A new host is a new session. */
    o = opts("127.0.0.1", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "good by 127.0.0.1: %s", r.err);
    CHECK(r.resumed == 0, "other host name: not resumed");
    CHECK(r.info.verified == 1, "127.0.0.1 verified");
    o = opts("::1", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "good by ::1: %s", r.err);
    o = opts("[::1]", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "good by [::1]: %s", r.err);
    o = opts("localhost.", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "good by localhost. (trailing dot): %s", r.err);
    o = opts("127.0.0.2", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_ERROR && strstr(r.err, "certificate name mismatch (host 127.0.0.2)"), "127.0.0.2: '%s'",
          r.err);
    o = opts("::2", s.port);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_ERROR && strstr(r.err, "certificate name mismatch (host ::2)"), "::2: '%s'", r.err);

    /* other options are another config: no resumption across them */
    o = opts("localhost", s.port);
    o.verify = 0;
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK && r.resumed == 0 && r.info.verified == 0, "verify=0: rc=%d resumed=%d %s", r.rc,
          r.resumed, r.err);

    /* the system bundle does not know our CA */
    o = opts("localhost", s.port);
    o.ca_file = NULL;
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_ERROR && strstr(r.err, "certificate issuer is not trusted"), "system bundle: '%s'", r.err);
    server_stop(&s);
}

static void test_client_cert(void)
{
    struct server s;
    struct result r;
    struct tls_options o;
    if (server_start(&s, "good", "client_ca.pem") != 0) {
        CHECK(0, "client-cert server did not start");
        return;
    }
    o = opts("localhost", s.port);
    o.cert_file = cert("client.pem");
    o.key_file = cert("client.key");
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK, "client cert accepted: %s", r.err);
    CHECK(strcmp(r.reply, "client=luafetch test client echo:hello\n") == 0, "server saw client cert: '%s'",
          r.reply);
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_OK && r.resumed == 1, "client-cert session resumed: rc=%d resumed=%d %s", r.rc, r.resumed,
          r.err);

    /* certificate and key in one PEM file, key_file left out */
    {
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", cert("client.pem"), cert("client.key"),
                 cert("client_combined.pem"));
        CHECK(system(cmd) == 0, "write client_combined.pem");
        o.cert_file = cert("client_combined.pem");
        o.key_file = NULL;
        exchange(s.port, &o, &r);
        CHECK(r.rc == TLS_OK && strncmp(r.reply, "client=", 7) == 0, "combined client PEM: '%s' %s", r.reply,
              r.err);
    }

    o.cert_file = o.key_file = NULL;
    exchange(s.port, &o, &r);
    CHECK(r.rc == TLS_ERROR, "no client cert: refused");
    CHECK(strstr(r.err, "handshake failed") || strstr(r.err, "closed"), "no client cert: '%s'", r.err);
    /* the server sent a CertificateRequest: the alert carries the hint */
    CHECK(strstr(r.err, "does it require a client certificate?") != NULL, "no client cert hint: '%s'", r.err);
    if (getenv("TEST_TLS_VERBOSE"))
        fprintf(stderr, "  no client cert -> %s\n", r.err);
    server_stop(&s);
}

static void test_bad_options(void)
{
    struct tls_conn *t = NULL;
    struct tls_options o = opts("localhost", 1);
    char err[256];
    int fd = -1;

    o.ca_file = cert("does-not-exist.pem");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0 && t == NULL, "missing ca_file refused");
    CHECK(strstr(err, "cannot read CA file") != NULL, "missing ca_file: '%s'", err);

    o = opts("localhost", 1);
    o.ca_file = cert("ca.key");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "ca_file without certificates refused");
    CHECK(strstr(err, "no usable certificate") != NULL, "bad ca_file: '%s'", err);

    o = opts("localhost", 1);
    o.cert_file = cert("client.pem");
    o.key_file = cert("good.key");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "mismatched client key refused");
    CHECK(strstr(err, "does not match") != NULL, "mismatched key: '%s'", err);

    o.key_file = cert("missing.key");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "missing client key refused");
    CHECK(strstr(err, "cannot read client key") != NULL, "missing key: '%s'", err);

    o.key_file = cert("ca.pem");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "client key that is no key refused");
    CHECK(strstr(err, "cannot load client key") != NULL, "bad key: '%s'", err);

    o = opts("", 1);
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "empty host refused");

    /* a directory, or anything but a regular file, is refused by name (a directory read as a huge file:
     * "memory allocation failed"; a FIFO would block) */
    o = opts("localhost", 1);
    o.ca_file = certs;
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0 && t == NULL, "ca_file directory refused");
    CHECK(strstr(err, "cannot read CA file") && strstr(err, "is a directory") && strstr(err, certs),
          "ca_file directory: '%s'", err);
    o.ca_file = "/dev/null";
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "ca_file /dev/null refused");
    CHECK(strstr(err, "not a regular file") != NULL, "ca_file /dev/null: '%s'", err);
    o = opts("localhost", 1);
    o.cert_file = certs;
    o.key_file = cert("client.key");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "cert_file directory refused");
    CHECK(strstr(err, "cannot read client certificate") && strstr(err, "is a directory"), "cert_file dir: '%s'",
          err);

    /* a CA file whose only certificate has a critical nameConstraints extension */
    o = opts("localhost", 1);
    o.ca_file = cert("nc_int.pem");
    CHECK(tls_conn_new(&t, &o, send_cb, &fd, err, sizeof err) != 0, "name-constrained CA refused");
    CHECK(strstr(err, "mbedTLS 2.28 cannot parse") && strstr(err, "nameConstraints"), "nc CA file: '%s'", err);

    /* in memory, no server: the ClientHello goes out, then a plain-HTTP answer is refused */
    o = opts("localhost", 1);
    CHECK(tls_conn_new(&t, &o, count_cb, NULL, err, sizeof err) == 0, "valid options: %s", err);
    if (t) {
        static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        CHECK(tls_conn_handshake(t, err, sizeof err) == TLS_WANT_INPUT, "handshake waits for input");
        CHECK(sent_bytes > 50, "ClientHello sent (%zu bytes)", sent_bytes);
        tls_conn_feed(t, (const unsigned char *)http, sizeof http - 1);
        CHECK(tls_conn_handshake(t, err, sizeof err) == TLS_ERROR, "plain HTTP answer refused");
        CHECK(strstr(err, "handshake failed: the server answered in plain HTTP") != NULL, "plain HTTP: '%s'", err);
        CHECK(tls_conn_handshake(t, err, sizeof err) == TLS_ERROR, "a failed connection stays failed");
        tls_conn_free(t);
        t = NULL;
    }
}

/* tls_cert_dns_match: the wildcard rules, table-driven (the fixtures below check them end to end). */
static void test_dns_match(void)
{
    static const struct {
        const char *host, *name;
        int want;
    } cases[] = {
        {"localhost", "localhost", 1},
        {"LocalHost", "localHOST", 1},
        {"a.example.com", "*.example.com", 1},
        {"A.Example.COM", "*.example.com", 1},
        {"x.sub.localhost", "*.sub.localhost", 1},
        {"a.localhost", "*.localhost", 0},        /* one label after the star: too wide */
        {"a.com", "*.com", 0},
        {"localhost", "*.localhost", 0},
        {"a.b.example.com", "*.example.com", 0},  /* exactly one label */
        {"example.com", "*.example.com", 0},
        {".example.com", "*.example.com", 0},     /* empty label */
        {"foo.example.com", "f*.example.com", 0}, /* partial-label wildcards match nothing */
        {"foo.example.com", "*o.example.com", 0},
        {"foo.example.com", "foo.*.com", 0},
        {"foo.example.com", "*.*.com", 0},
        {"f*.example.com", "f*.example.com", 0},  /* a '*' is never a literal */
        {"a.example.com", "*", 0},
        {"a.example.com", "*.", 0},
        {"a.example.com.", "*.example.com.", 0},  /* names ending in a dot */
        {"a.com.", "*.com.", 0},
        {"1.0.0.1", "*.0.0.1", 0},                /* IPv4 spellings never match a wildcard */
        {"0x7f.0.0.1", "*.0.0.1", 0},
        {"a.b.0x1F", "*.b.0x1F", 0},
        {"a.b.c1", "*.b.c1", 1},                  /* a label with digits is still a name */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = tls_cert_dns_match(cases[i].host, (const unsigned char *)cases[i].name, strlen(cases[i].name));
        CHECK(got == cases[i].want, "dns_match(%s, %s) = %d, want %d", cases[i].host, cases[i].name, got,
              cases[i].want);
    }
    CHECK(tls_cert_dns_match("a.example.com", (const unsigned char *)"*.example.com\0x", 15) == 0,
          "dns_match: a NUL inside the name never matches");
}

/* The ClientHello offers only ECDHE with AES-GCM or ChaCha20-Poly1305 (read from the bytes sent). */
static void test_offered_suites(void)
{
    static const unsigned allowed[] = {0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9,
                                       0x00FF /* TLS_EMPTY_RENEGOTIATION_INFO_SCSV, a signal */};
    struct tls_conn *t = NULL;
    struct tls_options o = opts("localhost", 1);
    char err[256];
    size_t p, n, i, k;
    int gcm = 0, chacha = 0, bad = 0;
    captured_len = 0;
    CHECK(tls_conn_new(&t, &o, capture_cb, NULL, err, sizeof err) == 0, "new: %s", err);
    if (!t)
        return;
    CHECK(tls_conn_handshake(t, err, sizeof err) == TLS_WANT_INPUT, "ClientHello sent");
    CHECK(captured_len > 50 && captured[0] == 22 && captured[5] == 1, "a ClientHello record (%zu bytes)",
          captured_len);
    p = 5 + 4 + 2 + 32;
    if (captured_len > p + 3) {
        p += 1 + captured[p];
        n = (size_t)captured[p] << 8 | captured[p + 1];
        p += 2;
        CHECK(n >= 4 && p + n <= captured_len, "cipher suite list of %zu bytes", n);
        for (i = 0; i + 1 < n && p + i + 1 < captured_len; i += 2) {
            unsigned id = (unsigned)captured[p + i] << 8 | captured[p + i + 1];
            int ok = 0;
            for (k = 0; k < sizeof allowed / sizeof allowed[0]; k++)
                ok |= id == allowed[k];
            if (!ok && bad++ < 5)
                fprintf(stderr, "  offered suite 0x%04x is not allowed\n", id);
            gcm |= id == 0xC02B || id == 0xC02C;
            chacha |= id == 0xCCA9;
        }
        CHECK(bad == 0, "%d suites outside ECDHE + AES-GCM/ChaCha20-Poly1305 offered", bad);
        CHECK(gcm && chacha, "ECDSA AES-GCM and ChaCha20 suites offered (gcm=%d chacha=%d)", gcm, chacha);
    }

    /* The server refuses the ClientHello (no shared suite): a handshake_failure alert before any
     * ServerHello, hence before any CertificateRequest. No client-certificate hint. */
    {
        static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 40};
        tls_conn_feed(t, alert, sizeof alert);
        CHECK(tls_conn_handshake(t, err, sizeof err) == TLS_ERROR, "alert ends the handshake");
        CHECK(strstr(err, "server sent fatal alert handshake_failure (40)") != NULL, "alert: '%s'", err);
        CHECK(strstr(err, "client certificate") == NULL, "no client-certificate hint before a request: '%s'",
              err);
        CHECK(strstr(err, "cipher suites") != NULL, "cipher-suite hint: '%s'", err);
    }
    tls_conn_free(t);
}

/* Servers restricted to one kind of suite: CBC only is refused, one AEAD suite is enough. */
static void test_server_suites(void)
{
    static const struct {
        const char *ciphers;
        int ok;
    } cases[] = {
        {"ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA", 0},
        {"ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES256-CCM", 0},
        {"ECDHE-ECDSA-AES128-GCM-SHA256", 1},
        {"ECDHE-ECDSA-AES256-GCM-SHA384", 1},
        {"ECDHE-ECDSA-CHACHA20-POLY1305", 1},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server s;
        struct result r;
        struct tls_options o;
        if (server_start_ciphers(&s, "good", NULL, cases[i].ciphers) != 0) {
            CHECK(0, "%s: server did not start", cases[i].ciphers);
            continue;
        }
        o = opts("localhost", s.port);
        exchange(s.port, &o, &r);
        if (cases[i].ok) {
            CHECK(r.rc == TLS_OK && r.reply_matches, "%s: %s", cases[i].ciphers, r.err);
        } else {
            CHECK(r.rc == TLS_ERROR, "%s: handshake must fail (got %s)", cases[i].ciphers, r.info.cipher);
            CHECK(strstr(r.err, "handshake_failure") && !strstr(r.err, "client certificate"), "%s: '%s'",
                  cases[i].ciphers, r.err);
        }
        server_stop(&s);
    }
}

/* ---------- curve tables kept for the process (tls_ecp.c) ---------- */

/* A server that uses P-256 for ECDHE: the client's key pair borrows the generator's table, the
 * exchange succeeds (both sides derived the same secret), and the ServerKeyExchange signature was
 * checked with the kept tables; a server of its own preference (X25519) needs no lend. */
static void test_kept_tables(void)
{
    struct server srv;
    struct result r;
    unsigned long v0, l0, v1, l1;
    for (int p256 = 1; p256 >= 0; p256--) {
        if (server_start_with(&srv, "good", NULL, NULL, p256 ? "prime256v1" : NULL) != 0) {
            CHECK(0, "kept tables: server did not start");
            return;
        }
        struct tls_options o = opts("localhost", srv.port);
        tls_ecp_counts(&v0, &l0);
        exchange(srv.port, &o, &r);
        tls_ecp_counts(&v1, &l1);
        CHECK(r.rc == TLS_OK && r.reply_matches, "kept tables (P-256 %d): rc=%d '%s'", p256, r.rc, r.err);
        CHECK(v1 == v0 + 1, "kept tables (P-256 %d): %lu signature checks with them, want 1", p256, v1 - v0);
        CHECK(l1 == l0 + (unsigned long)p256, "kept tables (P-256 %d): %lu lends", p256, l1 - l0);
        server_stop(&srv);
    }
}

/* ---------- a forged ServerKeyExchange ---------- */

/* In the server's flight, the last byte of the ServerKeyExchange (the end of its signature) flipped,
 * once; the buffer holds whole records from the start. */
static void forge_key_exchange(unsigned char *b, size_t len, int *forged)
{
    for (size_t r = 0; !*forged && r + 5 <= len; r += 5 + ((size_t)b[r + 3] << 8 | b[r + 4])) {
        size_t end = r + 5 + ((size_t)b[r + 3] << 8 | b[r + 4]);
        if (b[r] != 22 || end > len) /* handshake records only */
            continue;
        for (size_t m = r + 5; m + 4 <= end; m += 4 + ((size_t)b[m + 1] << 16 | (size_t)b[m + 2] << 8 | b[m + 3])) {
            size_t mlen = (size_t)b[m + 1] << 16 | (size_t)b[m + 2] << 8 | b[m + 3];
            if (b[m] == 12 && m + 4 + mlen <= end) { /* server_key_exchange */
                b[m + 4 + mlen - 1] ^= 0x01;
                *forged = 1;
                break;
            }
        }
    }
}

/* Child: relays one connection from listen_fd to the server at port, forging the server's
 * signature when `forge` (TLS 1.2 handshake messages before ChangeCipherSpec travel in the clear). */
static void relay(int listen_fd, int port, int forge)
{
    int c = accept(listen_fd, NULL, NULL), s = socket(AF_INET, SOCK_STREAM, 0), forged = 0;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0)
        _exit(1);
    static unsigned char pend[65536]; /* from the server, not yet a whole record */
    size_t have = 0;
    struct pollfd p[2] = { { c, POLLIN, 0 }, { s, POLLIN, 0 } };
    while (poll(p, 2, 5000) > 0) {
        unsigned char buf[16384];
        if (p[0].revents) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n <= 0 || write(s, buf, (size_t)n) != n)
                break;
        }
        if (p[1].revents) {
            ssize_t n = read(s, pend + have, sizeof pend - have);
            if (n <= 0)
                break;
            have += (size_t)n;
            size_t whole = 0; /* pass on whole records only, so the forgery finds its message */
            while (whole + 5 <= have && whole + 5 + ((size_t)pend[whole + 3] << 8 | pend[whole + 4]) <= have)
                whole += 5 + ((size_t)pend[whole + 3] << 8 | pend[whole + 4]);
            if (forge)
                forge_key_exchange(pend, whole, &forged);
            if (whole && write(c, pend, whole) != (ssize_t)whole)
                break;
            memmove(pend, pend + whole, have - whole);
            have -= whole;
        }
    }
    _exit(forge && !forged ? 2 : 0);
}

/* The server's signature over the key exchange is what proves it holds the certificate's key: one
 * changed bit and the handshake must fail (checked by core/net/tls_ecp.c's tables for P-256). The
 * same relay without the change passes, so the failure is the forgery's. */
static void test_forged_signature(void)
{
    for (int forge = 0; forge <= 1; forge++) {
        struct server srv;
        if (server_start(&srv, "good", NULL) != 0) {
            CHECK(0, "forged signature: server did not start");
            return;
        }
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t salen = sizeof sa;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0 ||
            getsockname(l, (struct sockaddr *)&sa, &salen) != 0) {
            CHECK(0, "relay: %s", strerror(errno));
            close(l);
            server_stop(&srv);
            return;
        }
        pid_t child = fork();
        if (child == 0)
            relay(l, srv.port, forge);
        close(l);
        struct tls_options o = opts("localhost", ntohs(sa.sin_port));
        struct result r;
        exchange(ntohs(sa.sin_port), &o, &r);
        int status = 0;
        waitpid(child, &status, 0);
        if (forge) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "relay found no ServerKeyExchange to forge");
            CHECK(r.rc == TLS_ERROR && strstr(r.err, "handshake failed"), "forged signature accepted: rc=%d '%s'",
                  r.rc, r.err);
            CHECK(strstr(r.err, "ECP - The signature is not valid") != NULL, "forged signature: '%s'", r.err);
        } else {
            CHECK(r.rc == TLS_OK && r.reply_matches, "through the relay: rc=%d '%s'", r.rc, r.err);
        }
        server_stop(&srv);
    }
}

int main(int argc, char **argv)
{
    char cmd[1200];
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1)
        root = argv[1];
    snprintf(certs, sizeof certs, "%s/build/tls-certs", root);
    snprintf(cmd, sizeof cmd, "sh '%s/tests/fixtures/certs.sh' '%s'", root, certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "certs.sh failed\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }

    test_dns_match();
    test_bad_options();
    test_offered_suites();
    test_good();
    test_server_suites();
    test_forged_signature();
    test_kept_tables();

    expect_fail("expired", "localhost", "certificate has expired");
    expect_fail("notyet", "localhost", "certificate is not yet valid");
    expect_fail("wronghost", "localhost", "certificate name mismatch (host localhost)");
    expect_fail("selfsigned", "localhost", "self-signed certificate");
    expect_fail("untrusted", "localhost", "certificate issuer is not trusted");
    expect_fail("incomplete", "localhost", "certificate issuer is not trusted");
    expect_fail("incomplete", "localhost", "luafetch Test Intermediate");
    expect_fail("noip", "127.0.0.1", "certificate name mismatch (host 127.0.0.1)");
    expect_fail("wildcard", "example.test", "certificate name mismatch");
    expect_fail("wildcard", "a.b.example.test", "certificate name mismatch");
    expect_fail("wildcard", "t.co", "certificate name mismatch"); /* IP 116.46.99.111 is "t.co" as bytes */
    /* wildlocal: *.localhost, *.0.0.1, f*.example.test, *.sub.localhost */
    expect_fail("wildlocal", "a.localhost", "certificate name mismatch (host a.localhost)");
    expect_fail("wildlocal", "0x7f.0.0.1", "certificate name mismatch");
    expect_fail("wildlocal", "127.0.0.1", "certificate name mismatch");
    expect_fail("wildlocal", "foo.example.test", "certificate name mismatch");
    expect_ok("wildlocal", "x.sub.localhost", cert("ca.pem"), 1);
    /* CN=localhost and no subjectAltName: valid for no name */
    expect_fail("cnonly", "localhost", "certificate has no subjectAltName (subject O=luafetch tests, CN=localhost)");
    expect_fail("cnonly", "127.0.0.1", "certificate has no subjectAltName");
    expect_ok("cnonly", "localhost", cert("ca.pem"), 0);
    /* an intermediate with a critical nameConstraints extension, which mbedTLS 2.28 refuses to parse */
    expect_fail("nc_full", "localhost",
                "certificate 2 of the server's chain (luafetch Constrained Intermediate) has a critical "
                "nameConstraints extension, which mbedTLS 2.28 cannot parse");

    expect_ok("intermediate_full", "localhost", cert("ca.pem"), 1);
    expect_ok("noip", "localhost", cert("ca.pem"), 1);
    expect_ok("wildcard", "a.example.test", cert("ca.pem"), 1);
    expect_ok("wildcard", "A.Example.TEST", cert("ca.pem"), 1);
    expect_ok("selfsigned", "localhost", cert("ca.pem"), 0);
    expect_ok("selfsigned", "localhost", cert("selfsigned.pem"), 1); /* pinned: trusted as its own CA file */
    expect_ok("wronghost", "localhost", cert("ca.pem"), 0);

    test_client_cert();

    tls_global_cleanup();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
