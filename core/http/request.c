/* request.c — one HTTP exchange: resolve, connect (or reuse), TLS, send, receive (its deadlines:
 * request_timers.c). The request owns its strings, response buffers, address list and, while in
 * use, its conn; it is freed from the loop's timer queue on the next loop turn after done has run
 * or after request_cancel (request_free_later). */
#define _GNU_SOURCE /* vasprintf */
#include "request.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conn.h"
#include "h2.h"
#include "pool.h"
#include "proto.h"
#include "request_internal.h"
#include "tunnel.h"

static void resolve(struct request *r);
static void connect_next(struct request *r);
static void route(struct request *r);
static void note_tls(struct request *r, struct conn *c);
static const struct conn_handler handler;

int request_is_idempotent(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "PUT") || !strcmp(m, "DELETE") ||
           !strcmp(m, "OPTIONS") || !strcmp(m, "TRACE");
}

static double since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e9;
}

/* Deadline in loop milliseconds; 0 (none) for no timeout or one too long to matter. */
static uint64_t ms_after(struct request *r, double seconds)
{
    if (!(seconds > 0) || seconds > 1e12)
        return 0;
    return uv_now(r->net->loop) + (uint64_t)(seconds * 1000 + 0.5);
}

/* --- life and death ------------------------------------------------------ */

struct request *request_new(struct net *net)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->net = net;
    r->proto = &proto_h1;
    r->max_body = 64u * 1024 * 1024;
    r->decompress = 1;
    r->tls_verify = 1;
    r->http2 = REQUEST_HTTP2_ON;
    /* a heap slot for its deadlines: arming them never allocates */
    if (timerq_reserve(&net->timers)) {
        free(r);
        return NULL;
    }
    return r;
}

void request_tls_options(const struct request *r, struct tls_options *o)
{
    const struct request_tls_files *f = r->tls_files;
    *o = (struct tls_options){
        .verify = r->tls_verify,
        .ca_file = f ? f->ca_file : NULL,
        .cert_file = f ? f->cert_file : NULL,
        .key_file = f ? f->key_file : NULL,
        .host = r->url.host,
        .port = r->url.port,
        .alpn_h2 = r->url.https && r->http2 != REQUEST_HTTP2_OFF,
    };
}

struct http_response *request_resp_new(struct request *r)
{
    if (r->resp)
        http_response_free(r->resp);
    else if (!(r->resp = malloc(sizeof *r->resp)))
        return NULL;
    http_response_init(r->resp, r->max_body, r->net->limits.max_header_bytes, r->net->limits.max_header_count,
                       r->decompress, !strcmp(r->method, "HEAD"));
    http_response_share_budget(r->resp, &r->net->inflated_total, r->net->limits.max_inflated_total);
    r->resp->raw_body = r->stream && r->stream->resp; /* decoded as the consumer takes it */
    return r->resp;
}

void request_free_now(struct request *r)
{
    timerq_unreserve(&r->net->timers);
    url_free(&r->url);
    free(r->method);
    http_head_free(&r->head);
    free(r->body);
    free(r->err);
    if (r->tls_files) {
        free(r->tls_files->ca_file);
        free(r->tls_files->cert_file);
        free(r->tls_files->key_file);
        free(r->tls_files);
    }
    request_proxy_free(r->proxy);
    if (r->stream && r->stream->upload && !r->stream->upload_fn)
        close(r->stream->fd);
    if (r->stream) {
        buf_free(&r->stream->decoded);
        buf_free(&r->stream->pending);
    }
    free(r->stream);
    r->proto->release(r);
    buf_free(&r->wire);
    buf_free(&r->key);
    dns_addrs_unref(r->addrs);
    free(r);
}

void request_proxy_free(struct request_proxy *p)
{
    if (!p)
        return;
    free(p->host);
    free(p->user);
    if (p->pass) {
        memset(p->pass, 0, strlen(p->pass)); /* no credentials left in freed memory */
        free(p->pass);
    }
    free(p);
}

void request_discard(struct request *r)
{
    request_free_later(r);
}

static void dequeue(struct request *r)
{
    struct net *n = r->net;
    if (!r->queued)
        return;
    struct request **pp = &n->connect_head, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (*pp) {
        *pp = r->queue_next;
        if (n->connect_tail == r)
            n->connect_tail = prev;
    }
    r->queue_next = NULL;
    r->queued = 0;
}

/* A connect slot may have freed up: start waiting requests in arrival order. A request started
 * here counts as "starting", so a connect that fails at once completes on a later loop turn:
 * no task resumes inside another request's release or cancel. The pumping flag stops the
 * recursion finish → release → pump when many connects fail in a row. */
static void pump_connect_queue(struct net *n)
{
    if (n->pumping)
        return;
    n->pumping = 1;
    while (n->connect_head && n->connecting < n->limits.max_connecting) {
        struct request *r = n->connect_head;
        n->connect_head = r->queue_next;
        if (!n->connect_head)
            n->connect_tail = NULL;
        r->queue_next = NULL;
        r->queued = 0;
        r->starting = 1;
        connect_next(r);
        r->starting = 0;
    }
    n->pumping = 0;
}

/* Drops the request's hold on network resources; the conn goes back to the pool if reusable. */
/* Ends the connect race: every attempt but keep is closed. */
static void drop_attempts(struct request *r, struct conn *keep)
{
    struct connect_race *race = r->race;
    if (!race)
        return;
    for (int i = 0; i < race->n; i++)
        if (race->attempts[i] != keep)
            conn_close(race->attempts[i]);
    free(race->last_err);
    free(race);
    r->race = NULL;
}

/* --- the first connect of a key that may speak h2, and those waiting for it ---- */

/* r waits for lead's connection (its ALPN answer) instead of opening one. */
static void wait_for(struct request *lead, struct request *r)
{
    r->phase = PH_QUEUED;
    r->waiting = 1;
    r->via.leader = lead;
    r->queue_next = lead->waiters;
    lead->waiters = r;
    if (!r->deadline_phase)
        r->deadline_phase = ms_after(r, r->timeouts.connect);
    request_arm_timer(r);
}

static void unwait(struct request *r)
{
    struct request **pp = &r->via.leader->waiters;
    while (*pp && *pp != r)
        pp = &(*pp)->queue_next;
    if (*pp)
        *pp = r->queue_next;
    r->queue_next = NULL;
    r->waiting = 0;
    r->via.leader = NULL;
}

/* r no longer leads: the waiters go on, to the shared connection r made, or each to a connection
 * of its own (no_wait: r's was HTTP/1.1 or failed), or (r gave up) behind a new leader. A waiter
 * started here completes on a later loop turn at the earliest (starting). */
static void lead_over(struct request *r, int no_wait)
{
    if (!r->leading)
        return;
    r->leading = 0;
    if (pool_pending(r->net->pool, r->key.data) == r)
        pool_set_pending(r->net->pool, r->key.data, NULL);
    struct request *w = r->waiters;
    r->waiters = NULL;
    /* in arrival order: the list is newest first */
    struct request *order = NULL;
    while (w) {
        struct request *next = w->queue_next;
        w->queue_next = order;
        order = w;
        w = next;
    }
    while (order) {
        w = order;
        order = w->queue_next;
        w->queue_next = NULL;
        w->waiting = 0;
        w->via.leader = NULL;
        w->no_wait = no_wait;
        w->starting = 1;
        route(w);
        w->starting = 0;
    }
}

static void release(struct request *r, int reusable)
{
    timerq_stop(&r->net->timers, &r->tq);
    if (r->race)
        dns_cancel(&r->race->dns);
    dequeue(r);
    if (r->waiting)
        unwait(r);
    if (r->attached)
        proto_h2.detach(r);
    lead_over(r, r->kind != NET_CANCELED);
    drop_attempts(r, NULL);
    if (r->conn) {
        conn_resume(r->conn); /* a pooled connection must read (to see the server close it) */
        if (reusable)
            pool_put(r->net->pool, r->conn);
        else
            conn_close(r->conn);
        r->conn = NULL;
    }
    r->net->stats.in_flight--;
    pump_connect_queue(r->net);
}

static void run_done(struct request *r)
{
    r->done_pending = 0;
    struct request_stream *s = r->stream;
    if (s)
        s->in_done = 1;
    r->done(r);
    if (s) {
        s->in_done = 0;
        if (s->held)
            return; /* the consumer still reads the body: request_close frees r */
    }
    request_free_later(r);
}

static void on_deferred_done(struct timerq *q, struct timerq_entry *e)
{
    if (q->closed)
        return; /* shutting down: every task was cancelled, nobody waits for done */
    run_done(request_of_entry(e));
}

void request_finish(struct request *r, enum net_kind kind, const char *fmt, ...)
{
    if (r->finished)
        return;
    r->finished = 1;
    r->phase = PH_DONE;
    r->kind = kind;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&r->err, fmt, ap) < 0)
            r->err = NULL;
        va_end(ap);
    }
    r->timings.total = since(r->t0);
    int reusable = kind == NET_OK && r->conn && r->proto->reusable(r) && conn_reusable(r->conn) &&
                   !(r->stream && r->stream->upload && !r->stream->upload_done);
    release(r, reusable);
    if (r->starting) {
        /* Never complete inside the call that started the request. */
        r->done_pending = 1;
        timerq_start(&r->net->timers, &r->tq, on_deferred_done, 0);
        return;
    }
    run_done(r);
}

void request_cancel(struct request *r)
{
    if (r->finished && !r->done_pending)
        return;
    if (!r->finished) {
        r->finished = 1;
        r->kind = NET_CANCELED;
        release(r, 0);
    }
    r->done_pending = 0;
    request_free_later(r);
}

/* --- sending and receiving ----------------------------------------------- */

static void send_request(struct request *r)
{
    if (!r->wire.len && r->proto->encode(r, &r->wire)) {
        request_finish(r, NET_INVALID, "out of memory");
        return;
    }
    r->phase = PH_WAIT;
    r->deadline_phase = 0;
    r->last_activity = uv_now(r->net->loop);
    r->proto->begin(r);
    struct conn *c = r->conn;
    note_tls(r, c);
    struct request_stream *s = r->stream;
    if (s && s->upload) {
        s->file_off = s->file_start; /* a resend (stale connection) starts again */
        s->upload_done = 0;
        s->upload_want = 0;
    }
    if (conn_write(c, r->wire.data, r->wire.len) == 0 && r->conn == c && r->body && r->body_len > REQUEST_INLINE_BODY_MAX)
        conn_write(c, r->body, r->body_len);
    /* A write can fail at once and start the stale retry (or finish) from inside conn_write:
     * the bytes are then still needed, or no longer ours to touch. */
    if (r->finished || r->conn != c)
        return;
    if (!r->reused || r->stale_retry_done) {
        /* No second send can follow on a fresh connection: the bytes are in the kernel or
         * copied by conn_write, so drop them while the response is awaited. */
        buf_free(&r->wire);
        free(r->body);
        r->body = NULL;
    }
    /* A failed write surfaces as a closed event; nothing more to do here. */
    if (!r->finished)
        request_arm_timer(r);
    if (s && s->upload && !r->finished)
        request_upload_pump(r);
}

static void note_tls(struct request *r, struct conn *c)
{
    int resumed = 0;
    r->has_tls_info = conn_tls_info(c, &r->tls_info, &resumed) == 1;
    r->tls_resumed = resumed != 0;
}

/* r's connection answered h2 by ALPN, or r speaks h2c to it by prior knowledge. */
static int speaks_h2(const struct request *r, struct conn *c)
{
    if (!request_may_mux(r))
        return 0;
    if (!r->url.https)
        return r->http2 == REQUEST_HTTP2_PRIOR;
    const char *alpn = conn_alpn(c);
    return alpn && !strcmp(alpn, "h2");
}

/* r becomes a stream of the session that owns c. */
static void start_stream(struct request *r, struct conn *c)
{
    r->phase = PH_WAIT;
    r->deadline_phase = 0;
    r->last_activity = uv_now(r->net->loop);
    note_tls(r, c);
    proto_h2.attach(c, r);
    if (!r->finished)
        request_arm_timer(r);
}

void request_mux_data(struct request *r, size_t n)
{
    struct request_stream *s = r->stream;
    if (!s || !s->resp) {
        h2_consumed(r, n);
        return;
    }
    s->unacked += n;
    if (!r->resp || r->resp->body.len < REQUEST_STREAM_HIGH) {
        h2_consumed(r, s->unacked);
        s->unacked = 0;
    }
    request_stream_progress(r);
}

void request_mux_finish(struct request *r, enum net_kind kind, const char *msg)
{
    if (msg)
        request_finish(r, kind, "%s", msg);
    else
        request_finish(r, kind, NULL);
}

/* Starts r again from the pool (a session with room, a leader, an idle or a new connection);
 * its completion waits for a later loop turn. */
static void restart(struct request *r)
{
    r->phase = PH_NEW;
    r->reused = 0;
    r->deadline_phase = 0;
    if (r->proxy)
        r->proxy->origin_resolved = 0;
    unsigned was = r->starting;
    r->starting = 1;
    route(r);
    r->starting = was;
}

/* The body's function was asked for a piece: the body cannot be sent again. */
static int upload_spent(const struct request *r)
{
    return r->stream && r->stream->upload_fn && r->stream->upload_began;
}

void request_mux_retry(struct request *r)
{
    if (r->finished)
        return;
    if (upload_spent(r)) {
        request_finish(r, NET_CLOSED, "the server refused the stream after the body's function was "
                       "asked for a piece (the body cannot be sent again)");
        return;
    }
    if (r->mux_retries >= H2_MAX_RETRIES) {
        request_finish(r, NET_CLOSED, "the server did not take the request (refused %d times)", r->mux_retries + 1);
        return;
    }
    r->mux_retries++;
    restart(r);
}

void request_mux_lost(struct request *r, enum net_kind kind, const char *msg)
{
    if (r->finished)
        return;
    if (r->reused && !r->stale_retry_done && request_bytes_in(r) == 0 && request_is_idempotent(r->method) &&
        !upload_spent(r)) {
        r->stale_retry_done = 1;
        r->reused = 0;
        restart(r);
        return;
    }
    request_finish(r, kind, "%s", msg);
}

/* The parser refused the response or the connection ended it early. */
static void fail_parse(struct request *r)
{
    const struct http_response *p = r->resp;
    if (!p)
        request_finish(r, NET_LIMIT, "out of memory");
    else if (p->err_detail)
        request_finish(r, p->err_kind, "%s: %s", p->err, p->err_detail);
    else
        request_finish(r, p->err_kind, "%s", p->err ? p->err : "bad response");
}

static void on_data(struct conn *c, const char *data, size_t len)
{
    struct request *r = c->owner;
    if (r->phase != PH_WAIT)
        return;
    if (request_bytes_in(r) == 0)
        r->timings.ttfb = since(r->t0);
    r->last_activity = uv_now(r->net->loop);
    int rc = r->proto->input(r, data, len);
    if (rc < 0)
        fail_parse(r);
    else if (rc > 0)
        request_finish(r, NET_OK, NULL);
    else if (r->stream)
        request_stream_progress(r);
}

static int retry_stale(struct request *r)
{
    /* A pooled connection the server had already closed: nothing arrived, try once afresh (not
     * with a body asked of the caller: its pieces cannot be sent again). */
    if (upload_spent(r))
        return 0;
    if (!r->reused || r->stale_retry_done || request_bytes_in(r) > 0 || !request_is_idempotent(r->method))
        return 0;
    r->stale_retry_done = 1;
    r->reused = 0;
    conn_close(r->conn);
    r->conn = NULL;
    r->phase = PH_NEW;
    if (r->proxy)
        r->proxy->origin_resolved = 0;
    resolve(r);
    return 1;
}

static void on_closed(struct conn *c, enum net_kind kind, const char *msg)
{
    struct request *r = c->owner;
    if (kind == NET_OK) {
        if (r->proto->eof(r) == 0) {
            request_finish(r, NET_OK, NULL);
            return;
        }
        if (retry_stale(r))
            return;
        if (r->resp_ready)
            fail_parse(r);
        else
            request_finish(r, NET_CLOSED, "connection closed");
        return;
    }
    if (retry_stale(r))
        return;
    if (kind == NET_CLOSED && request_bytes_in(r) > 0)
        request_finish(r, NET_CLOSED, "connection closed before the response was complete (%s)", msg);
    else
        request_finish(r, kind, "%s", msg);
}

/* --- connecting ---------------------------------------------------------- */

static int attempt_index(struct request *r, struct conn *c)
{
    for (int i = 0; r->race && i < r->race->n; i++)
        if (r->race->attempts[i] == c)
            return i;
    return -1;
}

/* The first attempt to connect (TCP) wins; the others are closed. */
static void on_tcp_connected(struct conn *c)
{
    struct request *r = c->owner;
    drop_attempts(r, c);
    r->conn = c;
    pump_connect_queue(r->net); /* the connect slot is free already; later layers need none */
}

/* Everything below TLS (TCP, a proxy tunnel) is up: the rest is the TLS phase. */
static void on_tls_started(struct conn *c)
{
    struct request *r = c->owner;
    r->timings.connect = since(r->phase_t0);
    r->phase_t0 = uv_hrtime();
    r->phase = PH_TLS;
    r->deadline_phase = ms_after(r, r->timeouts.tls);
    request_arm_timer(r);
}

/* The host connected to: the proxy when there is one. */
static const char *connect_host(const struct request *r)
{
    return r->proxy ? r->proxy->host : r->url.host;
}

static int connect_port(const struct request *r)
{
    return r->proxy ? r->proxy->port : r->url.port;
}

static void connect_failed(struct request *r)
{
    const char *why = r->race && r->race->last_err ? r->race->last_err : "no address";
    const char *what = r->proxy ? "proxy " : "";
    if (r->addrs && r->addrs->count > 1)
        request_finish(r, NET_CONNECT, "cannot connect to %s%s port %d (%d addresses tried): %s", what,
               connect_host(r), connect_port(r), r->addrs->count, why);
    else
        request_finish(r, NET_CONNECT, "cannot connect to %s%s port %d: %s", what, connect_host(r),
               connect_port(r), why);
}

static void note_connect_err(struct request *r, const char *msg)
{
    free(r->race->last_err);
    r->race->last_err = strdup(msg);
}

/* One racing attempt failed: start the next address now, or give up when none is left. */
static void attempt_failed(struct request *r, int i, enum net_kind kind, const char *msg)
{
    struct connect_race *race = r->race;
    struct conn *c = race->attempts[i];
    race->attempts[i] = race->attempts[--race->n];
    conn_close(c);
    if (kind == NET_CANCELED) {
        request_finish(r, kind, "%s", msg);
        return;
    }
    note_connect_err(r, msg);
    if (r->addr_index < r->addrs->count) {
        race->next_at = 0;
        request_start_attempt(r);
        if (!r->finished)
            request_arm_timer(r);
    } else if (race->n == 0) {
        connect_failed(r);
    }
}

static void on_ready(struct conn *c, enum net_kind kind, const char *msg)
{
    struct request *r = c->owner;
    pump_connect_queue(r->net);
    if (r->finished)
        return;
    if (kind != NET_OK) {
        int i = attempt_index(r, c);
        if (i >= 0)
            attempt_failed(r, i, kind, msg);    /* no TCP connection: try the next address */
        else if (r->phase == PH_TLS)
            request_finish(r, NET_TLS, "%s", msg);      /* any failure while TLS is set up is TLS's */
        else if (kind == NET_PROXY || kind == NET_CANCELED)
            request_finish(r, kind, "%s", msg);
        else
            request_finish(r, NET_PROXY, "proxy %s port %d failed during the tunnel set-up: %s",
                   connect_host(r), connect_port(r), msg);
        return;
    }
    if (r->phase == PH_TLS)
        r->timings.tls = since(r->phase_t0);
    else
        r->timings.connect = since(r->phase_t0);
    if (speaks_h2(r, c)) {
        if (proto_h2.session_new(r->net, c)) {
            request_finish(r, NET_INVALID, "out of memory");
            return;
        }
        r->conn = NULL; /* the session's now */
        pool_note_h1(r->net->pool, r->key.data, 0);
        start_stream(r, c);
        lead_over(r, 0); /* the waiters join the session */
        return;
    }
    if (request_may_mux(r))
        pool_note_h1(r->net->pool, r->key.data, 1);
    lead_over(r, 1); /* HTTP/1.1: the waiters open their own */
    send_request(r);
}

static const struct conn_handler handler = { on_tcp_connected, on_tls_started, on_ready, on_data,
                                             on_closed, request_on_drained };

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* The tunnel through the proxy, if the route needs one: https through an HTTP proxy (CONNECT) and
 * everything through SOCKS5. Plain http through an HTTP proxy needs none (absolute-form). */
static const struct tunnel_options *tunnel_for(struct request *r, struct tunnel_options *t)
{
    struct request_proxy *p = r->proxy;
    if (!p || (p->kind == PROXY_HTTP && !r->url.https))
        return NULL;
    enum request_proxy_kind k = p->kind;
    memset(t, 0, sizeof *t);
    t->kind = k == PROXY_HTTP ? TUNNEL_HTTP_CONNECT : TUNNEL_SOCKS5;
    t->host = r->url.host;
    t->port = r->url.port;
    t->user = p->user;
    t->pass = p->pass;
    t->proxy = p->host;
    if (k == PROXY_SOCKS5 && p->origin_resolved) {
        set_port(&p->origin_addr, r->url.port);
        t->addr = (const struct sockaddr *)&p->origin_addr;
    }
    return t;
}

/* Starts a connect to the next address that can be tried, and schedules the one after it.
 * Without a free connect slot (max_connecting) the stagger simply tries again later. */
void request_start_attempt(struct request *r)
{
    struct net *n = r->net;
    struct connect_race *race = r->race;
    while (r->addr_index < r->addrs->count) {
        if (race->n >= REQUEST_MAX_ATTEMPTS) {
            race->next_at = uv_now(n->loop) + REQUEST_ATTEMPT_DELAY_MS;
            return;
        }
        struct sockaddr_storage *ss = &r->addrs->addr[r->addr_index++];
        set_port(ss, connect_port(r));
        char err[256] = "";
        struct conn *c = NULL;
        struct tunnel_options tunnel;
        struct tls_options tls;
        request_tls_options(r, &tls);
        struct conn_stack stack = { tunnel_for(r, &tunnel), r->url.https ? &tls : NULL };
        int rc = conn_open(&c, n, (struct sockaddr *)ss, &stack, r->key.data, &handler, r, err,
                           sizeof err);
        if (rc == 0) {
            race->attempts[race->n++] = c;
            if (r->addr_index < r->addrs->count)
                race->next_at = uv_now(n->loop) + REQUEST_ATTEMPT_DELAY_MS;
            return;
        }
        if (rc == UV_EINVAL && err[0]) {
            request_finish(r, stack.tls && !stack.tunnel ? NET_TLS : NET_INVALID, "%s", err);
            return;
        }
        note_connect_err(r, uv_strerror(rc));
    }
    if (race->n == 0)
        connect_failed(r);
}

static void connect_next(struct request *r)
{
    struct net *n = r->net;
    if (n->connecting >= n->limits.max_connecting) {
        /* resolved, no attempt yet: nothing to keep while waiting for a slot */
        drop_attempts(r, NULL);
        r->phase = PH_QUEUED;
        r->queued = 1;
        if (n->connect_tail)
            n->connect_tail->queue_next = r;
        else
            n->connect_head = r;
        n->connect_tail = r;
        return;
    }
    r->phase = PH_CONNECT;
    r->phase_t0 = uv_hrtime();
    if (!r->race && !(r->race = calloc(1, sizeof *r->race))) {
        request_finish(r, NET_CONNECT, "out of memory");
        return;
    }
    request_start_attempt(r);
    if (!r->finished)
        request_arm_timer(r);
}

static void resolve(struct request *r);

/* socks5 (not socks5h) needs the origin's address first, then the proxy's. */
static int resolving_origin(const struct request *r)
{
    return r->proxy && r->proxy->kind == PROXY_SOCKS5 && !r->proxy->origin_resolved;
}

static void on_resolved(struct dns_waiter *w, int status, struct dns_addrs *addrs)
{
    struct request *r = ((struct connect_race *)w)->r; /* dns is the race's first member */
    const char *host = resolving_origin(r) ? r->url.host : connect_host(r);
    if (status < 0) {
        request_finish(r, NET_DNS, "cannot resolve %s%s: %s", host == r->url.host ? "" : "proxy ", host,
               uv_strerror(status));
        return;
    }
    if (resolving_origin(r)) {
        /* socks5 (not socks5h): the origin's name is resolved here, then the proxy's. */
        r->proxy->origin_addr = addrs->addr[0];
        r->proxy->origin_resolved = 1;
        dns_addrs_unref(addrs);
        resolve(r);
        return;
    }
    r->timings.dns = since(r->phase_t0);
    r->addrs = addrs;
    r->addr_index = 0;
    connect_next(r);
}

static void resolve(struct request *r)
{
    if (r->phase != PH_DNS) {
        r->phase = PH_DNS;
        r->phase_t0 = uv_hrtime();
        r->deadline_phase = ms_after(r, r->timeouts.connect);
    }
    dns_addrs_unref(r->addrs);
    r->addrs = NULL;
    if (!r->race && !(r->race = calloc(1, sizeof *r->race))) {
        request_finish(r, NET_DNS, "out of memory");
        return;
    }
    r->race->r = r;
    r->race->dns.cb = on_resolved;
    int err = 0;
    const char *host = resolving_origin(r) ? r->url.host : connect_host(r);
    struct dns_addrs *a = dns_resolve(r->net->dns, host, &r->race->dns, &err);
    if (err) {
        request_finish(r, NET_DNS, "cannot resolve %s%s: %s", host == r->url.host ? "" : "proxy ", host,
               uv_strerror(err));
        return;
    }
    if (a)
        on_resolved(&r->race->dns, 0, a);
    if (!r->finished)
        request_arm_timer(r);
}

/* --- start --------------------------------------------------------------- */

/* Appends s with the key's separators escaped, so no two credentials make the same key
 * ("a:b" + "c" against "a" + "b:c"). */
static int put_escaped(struct buf *k, const char *s)
{
    for (; s && *s; s++)
        if ((strchr(":@ \\", *s) && buf_append(k, "\\", 1)) || buf_append(k, s, 1))
            return -1;
    return 0;
}

/* The pool key: the proxy's part first (kind, credentials, address), then the origin's. */
static int build_key(struct request *r)
{
    static const char *const scheme[] = { "", "http", "socks5", "socks5h" };
    /* Built in the loop's scratch buffer, then copied to a block of its own size: the key lives
     * as long as the request (a waiting request's key is a 32-byte block, not 80). */
    struct buf *k = &r->net->key_scratch;
    buf_reset(k);
    const struct request_proxy *p = r->proxy;
    if (p && (buf_puts(k, "proxy=") || buf_puts(k, scheme[p->kind]) || buf_puts(k, "://") ||
              put_escaped(k, p->user) || buf_puts(k, p->user ? ":" : "") ||
              put_escaped(k, p->pass) || buf_puts(k, "@") || buf_puts(k, p->host) ||
              buf_append(k, ":", 1) || buf_put_uint(k, (unsigned)p->port) || buf_puts(k, " ")))
        return -1;
    struct tls_options tls;
    request_tls_options(r, &tls);
    if (pool_key(k, r->url.https, r->url.host, r->url.port, &tls))
        return -1;
    /* the protocol offered: connections offering h2 (or speaking h2c) are not HTTP/1.1-only ones */
    if (request_may_mux(r) && buf_puts(k, r->url.https ? " h2" : " h2c"))
        return -1;
    char *copy = malloc(k->len + 1);
    if (copy) {
        memcpy(copy, k->data, k->len + 1);
        buf_free(&r->key);
        r->key = (struct buf){ copy, k->len, k->len + 1 };
    }
    if (p && p->pass)
        memset(k->data, 0, k->len); /* no credentials left in the scratch buffer */
    return copy ? 0 : -1;
}

int request_may_mux(const struct request *r)
{
    if (r->http2 == REQUEST_HTTP2_OFF)
        return 0;
    if (r->url.https)
        return 1;
    return r->http2 == REQUEST_HTTP2_PRIOR && !(r->proxy && r->proxy->kind == PROXY_HTTP);
}

/* A shared h2 connection with room, else an idle connection, else the first one being set up
 * for the key (wait for its ALPN answer), else a new one (leading the key's first connect when
 * it may become shared). */
static void route(struct request *r)
{
    struct net *n = r->net;
    int mux = request_may_mux(r);
    struct conn *c;
    if (mux && (c = pool_take_shared(n->pool, r->key.data, proto_h2.room))) {
        r->reused = 1;
        n->stats.connections_reused++;
        start_stream(r, c);
        return;
    }
    if ((r->conn = pool_take(n->pool, r->key.data))) {
        r->reused = 1;
        n->stats.connections_reused++;
        conn_set_owner(r->conn, &handler, r);
        send_request(r);
        return;
    }
    /* a server that answered HTTP/1.1 before: no waiting, no leading */
    if (mux && !r->no_wait && !pool_known_h1(n->pool, r->key.data)) {
        struct request *lead = pool_pending(n->pool, r->key.data);
        if (lead && lead != r) {
            wait_for(lead, r);
            return;
        }
        if (!r->leading && pool_set_pending(n->pool, r->key.data, r) == 0)
            r->leading = 1;
    }
    resolve(r);
}

void request_start(struct request *r)
{
    struct net *n = r->net;
    r->starting = 1;
    /* The loop's clock was read before this turn's Lua work: deadlines count from now. */
    uv_update_time(n->loop);
    r->t0 = uv_hrtime();
    r->phase_t0 = r->t0;
    r->deadline_total = ms_after(r, r->timeouts.total);
    n->stats.requests++;
    n->stats.in_flight++;
    if (build_key(r))
        request_finish(r, NET_INVALID, "out of memory");
    else
        route(r);
    r->starting = 0;
}
