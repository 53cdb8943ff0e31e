/* server.c — the embedded HTTP/1.1 server's network side: listen, accept, feeding the request parser
 * (server_parse.c), keep-alive and pipelining (one request at a time per connection), timeouts,
 * responses.
 * A connection's buffers and struct are freed once both its handles (tcp, timer) have closed; the
 * server struct once its listener has closed and its last connection is freed. */
#include "server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>

#include "headers.h"
#include "server_parse.h"
#include "writeq.h"

#define LINGER_MS 2000          /* after a final response: wait this long at most for the peer's EOF */
#define ACCEPT_RETRY_MS 100     /* after a connection could not be set up (out of memory) */
#define BODY_PIECE (1u << 30)   /* a response body goes to the write queue in pieces of this at most */

enum conn_state {
    SC_IDLE,        /* no byte of the next request yet: idle (or, when new, header) timeout */
    SC_HEAD,        /* a request head is arriving: header timeout from its first byte */
    SC_BODY,        /* its body is arriving: body timeout between two reads */
    SC_HANDLER,     /* the handler runs; not reading */
    SC_WRITING,     /* the response is being written; not reading */
    SC_LINGER,      /* final response sent and FIN sent; input discarded until EOF or LINGER_MS */
};

struct server {
    uv_tcp_t listener;
    struct net *net;
    struct server_options opt;
    const struct server_callbacks *cb;
    void *data;
    struct server_conn *conns;      /* open connections, doubly linked */
    int live;                       /* connections not yet freed */
    uv_timer_t retry;               /* takes a pending connection again after a failed set-up */
    int open_handles;               /* listener and retry timer, until their close callbacks */
    int closing;
    int port;
    struct server_stats stats;
    time_t date_at;
    char date[64];
};

struct server_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct server *srv;
    struct server_conn *next, *prev;
    struct server_parser sp;
    enum conn_state state;
    int handles;            /* handles still to close before the free */
    int closing;
    int reading;
    int keep_alive;         /* of the request being answered */
    int head_request;
    int http_minor;
    unsigned long served;   /* requests dispatched on this connection */
    size_t unsent_mark;     /* unsent() when the write timeout was armed */
    struct buf pending;     /* pipelined bytes read past the request being handled */
    struct buf scratch;     /* response head being built */
    struct writeq out;      /* response bytes the kernel has not taken yet */
    void *user;
    char remote_addr[64];
    int remote_port;
};

static void conn_close(struct server_conn *c);
static void reject(struct server_conn *c, int status);

/* --- small helpers ------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    static const struct { int code; const char *text; } reasons[] = {
        { 100, "Continue" }, { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
        { 203, "Non-Authoritative Information" }, { 204, "No Content" }, { 205, "Reset Content" },
        { 206, "Partial Content" }, { 300, "Multiple Choices" }, { 301, "Moved Permanently" },
        { 302, "Found" }, { 303, "See Other" }, { 304, "Not Modified" }, { 307, "Temporary Redirect" },
        { 308, "Permanent Redirect" }, { 400, "Bad Request" }, { 401, "Unauthorized" },
        { 402, "Payment Required" }, { 403, "Forbidden" }, { 404, "Not Found" },
        { 405, "Method Not Allowed" }, { 406, "Not Acceptable" }, { 408, "Request Timeout" },
        { 409, "Conflict" }, { 410, "Gone" }, { 411, "Length Required" },
        { 412, "Precondition Failed" }, { 413, "Content Too Large" }, { 414, "URI Too Long" },
        { 415, "Unsupported Media Type" }, { 416, "Range Not Satisfiable" },
        { 417, "Expectation Failed" }, { 418, "I'm a teapot" }, { 422, "Unprocessable Content" },
        { 425, "Too Early" }, { 426, "Upgrade Required" }, { 428, "Precondition Required" },
        { 429, "Too Many Requests" }, { 431, "Request Header Fields Too Large" },
        { 500, "Internal Server Error" }, { 501, "Not Implemented" }, { 502, "Bad Gateway" },
        { 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
        { 505, "HTTP Version Not Supported" },
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == status)
            return reasons[i].text;
    return ""; /* an empty reason phrase is valid (RFC 9112 §4) */
}

/* IMF-fixdate, rebuilt once a second; fixed English names whatever the C locale says. */
static const char *http_date(struct server *s)
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    time_t now = time(NULL);
    if (now != s->date_at || !s->date[0]) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(s->date, sizeof s->date, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
                 days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon, tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_at = now;
    }
    return s->date;
}

/* Starts (or restarts) the connection's one timer; seconds <= 0 means no timeout. */
static void on_timeout(uv_timer_t *t);

static void arm(struct server_conn *c, double seconds)
{
    if (!(seconds > 0)) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t ms = seconds * 1000 >= 1.8e19 ? UINT64_MAX : (uint64_t)(seconds * 1000 + 0.5);
    uv_timer_start(&c->timer, on_timeout, ms ? ms : 1, 0);
}

/* --- writing ------------------------------------------------------------- */

static void write_drained(struct server_conn *c);

/* The write queue drained (status 0: the response is out) or failed. */
static void on_written(struct writeq *q, int status)
{
    struct server_conn *c = (struct server_conn *)((char *)q - offsetof(struct server_conn, out));
    if (c->closing)
        return;
    if (status < 0)
        conn_close(c);
    else
        write_drained(c);
}

/* Sends the buffers: what the kernel takes at once is not copied; the rest is queued.
 * 0, or a negative uv error (the connection is closed then). */
static int send_bufs(struct server_conn *c, uv_buf_t *b, int n)
{
    if (c->closing)
        return UV_ECANCELED;
    int rc = writeq_write(&c->out, b, (unsigned)n);
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    return 0;
}

static int pending_output(const struct server_conn *c)
{
    return writeq_busy(&c->out);
}

/* Response bytes the peer has not taken yet: queued here, in libuv, and (where the kernel says)
 * in the socket's send queue, which alone can hold megabytes a slow reader takes seconds to drain. */
static size_t unsent(struct server_conn *c)
{
    size_t n = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + c->out.pending.len;
#ifdef TIOCOUTQ
    uv_os_fd_t fd;
    int queued = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, TIOCOUTQ, &queued) == 0 && queued > 0)
        n += (size_t)queued;
#endif
    return n;
}

/* --- reading ------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct server_conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->srv->net->read_buf, (unsigned)c->srv->net->read_buf_size);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void start_reading(struct server_conn *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
}

static void stop_reading(struct server_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* --- the parser's head hook --------------------------------------------- */

/* A request head was accepted: its body, if any, is read under the body timeout. */
static int on_head(struct server_parser *sp, int expect_continue)
{
    struct server_conn *c = sp->data;
    if (expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        if (send_bufs(c, &b, 1))
            return -1; /* the connection is closed */
    }
    c->state = SC_BODY;
    arm(c, c->srv->opt.body_timeout);
    return 0;
}

/* --- the request cycle --------------------------------------------------- */

static void dispatch(struct server_conn *c)
{
    struct server *s = c->srv;
    stop_reading(c);
    uv_timer_stop(&c->timer);
    c->state = SC_HANDLER;
    c->http_minor = c->sp.parser.http_minor;
    c->keep_alive = c->sp.keep_alive;
    c->head_request = c->sp.head_request;
    if (s->closing || !s->data || !s->cb || !s->cb->request) {
        reject(c, 503);
        return;
    }
    s->stats.requests++;
    c->served++;
    struct server_request req;
    server_parser_request(&c->sp, &req);
    req.remote_addr = c->remote_addr;
    req.remote_port = c->remote_port;
    s->cb->request(c, &req, s->data);
    server_parser_shrink(&c->sp); /* the callback copied what it keeps */
}

/* Feeds request bytes to the parser; dispatches a complete request, answers a bad one. */
static void feed(struct server_conn *c, const char *data, size_t len)
{
    if (c->closing || c->state == SC_LINGER || len == 0)
        return;
    if (c->state == SC_IDLE) {
        c->state = SC_HEAD;
        if (c->served) /* a new connection's head deadline runs from the accept */
            arm(c, c->srv->opt.header_timeout);
    }
    const char *rest;
    enum sp_result r = server_parser_feed(&c->sp, data, len, &rest);
    if (c->closing)
        return;
    if (r == SP_REQUEST) {
        if (c->sp.keep_alive && rest && buf_append(&c->pending, rest, (size_t)(data + len - rest))) {
            conn_close(c);
            return;
        }
        dispatch(c);
        return;
    }
    if (r == SP_ERROR) {
        reject(c, c->sp.reject);
        return;
    }
    if (c->state == SC_BODY)
        arm(c, c->srv->opt.body_timeout); /* a read arrived: the body is still moving */
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct server_conn *c = st->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        conn_close(c); /* EOF or reset: nothing is owed to a peer that left */
        return;
    }
    switch (c->state) {
    case SC_LINGER:
        return; /* discarded: the peer is told to go away */
    case SC_HANDLER:
    case SC_WRITING:
        /* Not expected (reading stops first); keep the bytes in order all the same. */
        if (buf_append(&c->pending, b->base, (size_t)nread))
            conn_close(c);
        return;
    default:
        feed(c, b->base, (size_t)nread);
    }
}

/* The next pipelined request was already read: parse it on a fresh loop turn, never inside
 * server_respond (which runs inside a Lua call). */
static void on_resume(uv_timer_t *t)
{
    struct server_conn *c = t->data;
    struct buf p = c->pending;
    memset(&c->pending, 0, sizeof c->pending);
    c->state = SC_IDLE;
    arm(c, c->srv->opt.idle_timeout);
    feed(c, p.data, p.len);
    buf_free(&p);
    if (!c->closing && (c->state == SC_IDLE || c->state == SC_HEAD || c->state == SC_BODY))
        start_reading(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct server_conn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* The final response is out: send FIN, then drain what the peer still sends (a body we refused)
 * until it closes, so the kernel does not answer it with a reset that could destroy our reply. */
static void linger(struct server_conn *c)
{
    c->state = SC_LINGER;
    buf_free(&c->pending);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    start_reading(c);
    uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
}

static void finish_response(struct server_conn *c)
{
    if (!c->keep_alive || c->srv->closing) {
        linger(c);
        return;
    }
    server_parser_next(&c->sp);
    c->state = SC_IDLE;
    if (c->pending.len) {
        uv_timer_start(&c->timer, on_resume, 0, 0);
        return;
    }
    arm(c, c->srv->opt.idle_timeout);
    start_reading(c);
}

static void write_drained(struct server_conn *c)
{
    if (c->state == SC_WRITING)
        finish_response(c);
}

/* Sends head + body as the answer to the current request (or a rejection). */
static int send_response(struct server_conn *c, const char *body, size_t len)
{
    stop_reading(c);
    uv_timer_stop(&c->timer);
    c->state = SC_WRITING;
    /* uv_buf_init takes an unsigned length: a body over 4 GiB goes in pieces, never truncated. */
    size_t piece = len < BODY_PIECE ? len : BODY_PIECE;
    uv_buf_t b[2] = { uv_buf_init(c->scratch.data, (unsigned)c->scratch.len),
                      uv_buf_init((char *)body, (unsigned)piece) };
    int rc = send_bufs(c, b, piece ? 2 : 1);
    for (size_t off = piece; rc == 0 && off < len; off += piece) {
        piece = len - off < BODY_PIECE ? len - off : BODY_PIECE;
        uv_buf_t more = uv_buf_init((char *)body + off, (unsigned)piece);
        rc = send_bufs(c, &more, 1);
    }
    buf_reset(&c->scratch);
    if (rc)
        return rc;
    if (pending_output(c)) {
        c->unsent_mark = unsent(c);
        arm(c, c->srv->opt.idle_timeout); /* a peer that stops reading does not hold us forever */
    }
    else
        finish_response(c);
    return 0;
}

static int put_status_line(struct buf *b, int status)
{
    return buf_puts(b, "HTTP/1.1 ") || buf_put_uint(b, (unsigned)status) || buf_puts(b, " ") ||
           buf_puts(b, reason_phrase(status)) || buf_puts(b, "\r\n");
}

/* The server's own answer (400, 408, 413, 417, 431, 503): a short text, then the connection ends. */
static void reject(struct server_conn *c, int status)
{
    struct server *s = c->srv;
    s->stats.rejected++;
    c->keep_alive = 0;
    c->head_request = 0;
    const char *text = reason_phrase(status);
    size_t tlen = strlen(text);
    struct buf *h = &c->scratch;
    buf_reset(h);
    if (put_status_line(h, status) || buf_puts(h, "Date: ") || buf_puts(h, http_date(s)) ||
        buf_puts(h, "\r\nServer: luafetch\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: ") ||
        buf_put_uint(h, tlen + 1) || buf_puts(h, "\r\nConnection: close\r\n\r\n") ||
        buf_puts(h, text) || buf_puts(h, "\n")) {
        conn_close(c);
        return;
    }
    send_response(c, NULL, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct server_conn *c = t->data;
    switch (c->state) {
    case SC_HEAD:
    case SC_BODY:
        reject(c, 408); /* slow head or stalled body */
        return;
    case SC_WRITING:
        if (unsent(c) < c->unsent_mark) {
            /* Still moving (a large body to a slow reader): only a stalled write ends it. */
            c->unsent_mark = unsent(c);
            arm(c, c->srv->opt.idle_timeout);
            return;
        }
        conn_close(c);
        return;
    default:
        conn_close(c); /* idle, stalled write, or the linger time is over */
    }
}

/* --- connections --------------------------------------------------------- */

static void maybe_free_server(struct server *s)
{
    if (s->open_handles > 0 || s->live > 0)
        return;
    if (s->cb && s->cb->freed && s->data)
        s->cb->freed(s->data);
    free(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct server_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct server *s = c->srv;
    server_parser_free(&c->sp);
    buf_free(&c->pending);
    buf_free(&c->scratch);
    writeq_free(&c->out);
    free(c);
    s->live--;
    maybe_free_server(s);
}

static void conn_close(struct server_conn *c)
{
    if (c->closing)
        return;
    struct server *s = c->srv;
    c->closing = 1;
    if (c->user) {
        void *u = c->user;
        c->user = NULL;
        if (s->cb && s->cb->detach)
            s->cb->detach(u);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    s->stats.open--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void set_peer(struct server_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->remote_addr, sizeof c->remote_addr);
        c->remote_port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->remote_addr, sizeof c->remote_addr);
        c->remote_port = ntohs(a->sin6_port);
    }
}

static void on_accept_retry(uv_timer_t *t);

/* Takes one pending connection. One that cannot be set up (out of memory) is left pending and
 * taken again shortly: libuv stops watching the listener until uv_accept takes it, so giving up
 * would end accepting for good. */
static void accept_one(struct server *s)
{
    uv_loop_t *loop = s->net->loop;
    struct server_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(loop, &c->tcp) < 0) {
        free(c);
        uv_timer_start(&s->retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    writeq_init(&c->out, (uv_stream_t *)&c->tcp, on_written);
    c->handles = 2;
    c->srv = s;
    s->live++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->stats.open++;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    s->stats.connections++;
    uv_tcp_nodelay(&c->tcp, 1);
    set_peer(c);
    struct server_parse_limits lim = { s->opt.max_body, s->opt.max_header_bytes, s->opt.max_header_count };
    server_parser_init(&c->sp, &lim);
    c->sp.on_head = on_head;
    c->sp.data = c;
    c->state = SC_IDLE;
    arm(c, s->opt.header_timeout); /* a new connection owes its first head as soon as it can */
    start_reading(c);
}

static void on_accept_retry(uv_timer_t *t)
{
    struct server *s = t->data;
    if (!s->closing)
        accept_one(s);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct server *s = ls->data;
    if (status < 0 || s->closing)
        return;
    accept_one(s);
}

/* --- the server ---------------------------------------------------------- */

void server_options_default(struct server_options *o)
{
    o->max_body = 8u * 1024 * 1024;
    o->max_header_bytes = 16 * 1024;
    o->max_header_count = 100;
    o->header_timeout = 10.0;
    o->body_timeout = 30.0;
    o->idle_timeout = 60.0;
    o->backlog = 511;
}

static void free_listener(uv_handle_t *h)
{
    free(h->data);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct server *s = h->data;
    s->open_handles--;
    maybe_free_server(s);
}

int server_listen(struct server **out, struct net *net, const char *host, int port,
                  const struct server_options *o, const struct server_callbacks *cb, void *data,
                  char *err, size_t errlen)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    char literal[64];
    size_t hl = strlen(host);
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    else if (hl >= 2 && hl < sizeof literal && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(literal, host + 1, hl - 2); /* "[::1]" as in URLs */
        literal[hl - 2] = '\0';
        host = literal;
    }
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "port must be 0..65535, got %d", port);
        return UV_EINVAL;
    }
    int v6 = strchr(host, ':') != NULL;
    if ((v6 ? uv_ip6_addr(host, port, &addr.in6) : uv_ip4_addr(host, port, &addr.in4)) != 0) {
        snprintf(err, errlen, "host must be an IPv4 or IPv6 address literal (such as 127.0.0.1 or ::1), "
                              "got '%.100s'", host);
        return UV_EINVAL;
    }
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    s->net = net;
    s->opt = *o;
    s->cb = cb;
    s->data = data;
    int rc = uv_tcp_init(net->loop, &s->listener);
    if (rc < 0) {
        free(s);
        snprintf(err, errlen, "cannot listen: %s", uv_strerror(rc));
        return rc;
    }
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, &addr.sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, o->backlog > 0 ? o->backlog : 511, on_connection);
    if (rc == 0) {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
        if (rc == 0)
            s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (rc < 0) {
        snprintf(err, errlen, v6 ? "cannot listen on [%s]:%d: %s" : "cannot listen on %s:%d: %s", host,
                 port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, free_listener);
        return rc;
    }
    uv_timer_init(net->loop, &s->retry);
    s->retry.data = s;
    s->open_handles = 2;
    *out = s;
    return 0;
}

int server_port(const struct server *s)
{
    return s->port;
}

const struct server_stats *server_get_stats(const struct server *s)
{
    return &s->stats;
}

void server_set_data(struct server *s, void *data)
{
    s->data = data;
}

void server_close(struct server *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->retry, on_server_handle_closed);
    struct server_conn *next;
    for (struct server_conn *c = s->conns; c; c = next) {
        next = c->next;
        /* Idle or still sending a request: nobody is working for it. A handler's connection
         * closes after its response; a lingering one ends on its own. */
        if (c->state == SC_IDLE || c->state == SC_HEAD || c->state == SC_BODY)
            conn_close(c);
    }
}

void server_abort(struct server *s)
{
    server_close(s);
    while (s->conns)
        conn_close(s->conns);
}

void server_conn_set_user(struct server_conn *c, void *user)
{
    c->user = user;
}

void server_conn_release(struct server_conn *c)
{
    c->user = NULL;
    conn_close(c);
}

/* --- responses ----------------------------------------------------------- */

int server_response_init(struct server_response *r, int status, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (status < 200 || status > 599) {
        snprintf(err, errlen, "invalid status %d (a final status is 200..599)", status);
        return -1;
    }
    r->status = status;
    return 0;
}

static int contains_token_close(const char *v, size_t n)
{
    for (size_t i = 0; i + 5 <= n; i++)
        if (strncasecmp(v + i, "close", 5) == 0)
            return 1;
    return 0;
}

int server_response_header(struct server_response *r, const char *name, size_t nlen,
                           const char *value, size_t vlen, char *err, size_t errlen)
{
    int shown = (int)(nlen > 64 ? 64 : nlen);
    if (!header_name_ok(name, nlen)) {
        snprintf(err, errlen, "invalid response header name '%.*s'", shown, name);
        return -1;
    }
    if (!header_value_ok(value, vlen)) {
        snprintf(err, errlen, "invalid value for response header %.*s (control characters)", shown, name);
        return -1;
    }
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
    if (IS("content-length") || IS("transfer-encoding")) {
        snprintf(err, errlen, "response header %.*s is set by the server from the body", shown, name);
        return -1;
    }
    if (IS("connection")) {
        /* Hop-by-hop, the server's to manage: only a request to close is taken from handlers. */
        if (contains_token_close(value, vlen))
            r->close = 1;
        return 0;
    }
    if (IS("date"))
        r->has_date = 1;
    else if (IS("server"))
        r->has_server = 1;
#undef IS
    if (buf_append(&r->headers, name, nlen) || buf_append(&r->headers, ": ", 2) ||
        buf_append(&r->headers, value, vlen) || buf_append(&r->headers, "\r\n", 2)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void server_response_free(struct server_response *r)
{
    buf_free(&r->headers);
}

int server_respond(struct server_conn *c, struct server_response *r, const char *body, size_t len)
{
    if (c->closing || c->state != SC_HANDLER) {
        server_response_free(r);
        return UV_ECANCELED;
    }
    struct server *s = c->srv;
    c->user = NULL;
    if (r->close || s->closing)
        c->keep_alive = 0;
    int status = r->status;
    int no_body = status == 204 || status == 304;
    struct buf *h = &c->scratch;
    buf_reset(h);
    int rc = put_status_line(h, status);
    if (!r->has_date)
        rc = rc || buf_puts(h, "Date: ") || buf_puts(h, http_date(s)) || buf_puts(h, "\r\n");
    if (!r->has_server)
        rc = rc || buf_puts(h, "Server: luafetch\r\n");
    if (r->headers.len)
        rc = rc || buf_append(h, r->headers.data, r->headers.len);
    if (!no_body) /* 204 must not carry it; a 304's would describe the cached representation */
        rc = rc || buf_puts(h, "Content-Length: ") || buf_put_uint(h, len) || buf_puts(h, "\r\n");
    if (!c->keep_alive)
        rc = rc || buf_puts(h, "Connection: close\r\n");
    else if (c->http_minor == 0)
        rc = rc || buf_puts(h, "Connection: keep-alive\r\n"); /* HTTP/1.0 that asked for it */
    rc = rc || buf_puts(h, "\r\n");
    server_response_free(r);
    if (rc) {
        conn_close(c);
        return UV_ENOMEM;
    }
    return send_response(c, body, c->head_request || no_body ? 0 : len);
}
