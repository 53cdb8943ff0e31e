/* curl_multi_h2.c — the libcurl peer of the HTTP/2 workload (P6 in bench/harness.py): the multi
 * interface with CURLPIPE_MULTIPLEX over h2 (ALPN), transfers waiting for the multiplexed connection
 * (CURLOPT_PIPEWAIT) rather than opening their own. Fetches PREFIX1 .. PREFIXN with at most CONC
 * transfers at once, keeps each URL's status and body in `results`, and prints one `RESULT {json}`
 * line (with the number of connections libcurl opened). All memory is freed before exit.
 *
 * usage: curl_multi_h2 PREFIX N CONC REUSE CAFILE
 *   PREFIX  URL the request index is appended to, e.g. http://127.0.0.1:8080/json?i=
 *   REUSE   1 = keep-alive (connection cache of CONC), 0 = a new connection per request
 *   CAFILE  PEM bundle to trust for https ("-" for none)
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct result {
    long status;
    char *body;
    size_t len;
};

struct slot {
    CURL *easy;
    long index;                 /* URL number being fetched, or -1 */
    char *buf;
    size_t len, cap;
    char url[512];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct slot *s = ud;
    size_t add = size * n;
    if (s->len + add > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        while (cap < s->len + add) cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b) return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, add);
    s->len += add;
    return add;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PREFIX N CONC REUSE CAFILE\n", argv[0]);
        return 2;
    }
    const char *prefix = argv[1];
    long n = atol(argv[2]), conc = atol(argv[3]);
    int reuse = atoi(argv[4]);
    const char *cafile = argv[5];
    if (n < 1 || conc < 1) return 2;
    if (conc > n) conc = n;

    curl_global_init(CURL_GLOBAL_ALL);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, conc);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc);

    struct result *results = calloc((size_t)n, sizeof *results);
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    long next = 0, done = 0, ok = 0, fail = 0, conns = 0, h2 = 0;
    char first_error[256] = "";

    double t0 = now();
    for (long k = 0; k < conc; k++) {
        struct slot *s = &slots[k];
        s->easy = curl_easy_init();
        curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(s->easy, CURLOPT_PIPEWAIT, 1L);
        if (strcmp(cafile, "-") != 0) curl_easy_setopt(s->easy, CURLOPT_CAINFO, cafile);
        if (!reuse)             /* TLS session resumption stays on, as in every client: the server decides */
            curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
        s->index = -1;
    }

    /* start(s): hand the slot the next URL */
#define START(s) do {                                                           \
        (s)->index = next++;                                                    \
        (s)->len = 0;                                                           \
        snprintf((s)->url, sizeof (s)->url, "%s%ld", prefix, (s)->index + 1);   \
        curl_easy_setopt((s)->easy, CURLOPT_URL, (s)->url);                     \
        curl_multi_add_handle(multi, (s)->easy);                                \
    } while (0)

    for (long k = 0; k < conc; k++) START(&slots[k]);

    int running = 1;
    while (done < n) {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            struct slot *s;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            struct result *r = &results[s->index];
            curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &r->status);
            long nconn = 0, ver = 0;
            curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &nconn);
            curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &ver);
            conns += nconn;
            h2 += ver == CURL_HTTP_VERSION_2_0;
            if (m->data.result == CURLE_OK && r->status == 200) {
                ok++;
                r->body = malloc(s->len + 1);
                memcpy(r->body, s->buf, s->len);
                r->body[s->len] = 0;
                r->len = s->len;
            } else {
                fail++;
                if (!first_error[0])
                    snprintf(first_error, sizeof first_error, "url %ld: %s (status %ld)", s->index + 1,
                             curl_easy_strerror(m->data.result), r->status);
            }
            done++;
            curl_multi_remove_handle(multi, s->easy);
            if (next < n) START(s);
        }
        if (done < n) curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    double elapsed = now() - t0;

    size_t bytes = 0;
    for (long i = 0; i < n; i++) {
        bytes += results[i].len;
        free(results[i].body);
    }
    printf("RESULT {\"n\":%ld,\"ok\":%ld,\"fail\":%ld,\"elapsed\":%.6f,\"bytes\":%zu,\"first_error\":\"%s\","
           "\"connections_opened\":%ld,\"h2\":%ld}\n", n, ok, fail, elapsed, bytes, first_error, conns, h2);

    for (long k = 0; k < conc; k++) {
        curl_easy_cleanup(slots[k].easy);
        free(slots[k].buf);
    }
    free(slots);
    free(results);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return fail ? 1 : 0;
}
