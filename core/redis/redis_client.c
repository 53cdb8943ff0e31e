/* redis_client.c — the Redis transport on hiredis 0.14 and its libuv adapter: resolve (net/dns),
 * connect, AUTH and SELECT, then calls in order; a timeout of our own per call (a call that times
 * out in flight drops the connection: its reply may still come, so nothing after it can be trusted);
 * connection loss fails the calls in flight; the next call reconnects, after a backoff once an
 * attempt has failed. The client owns its hiredis context (freed through hiredis), its timers and
 * its config; calls are owned as redis.h says. Done callbacks never run inside a hiredis callback
 * or inside redis_call_start: they run from a zero timer, so a caller may do anything there. */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "redis.h"
#include "redis_reply.h"

enum { CALL_NONE, CALL_WAITING, CALL_INFLIGHT, CALL_COMPLETED };
enum { ST_IDLE, ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_READY };

struct call_list {
    struct redis_call *head, *tail;
    int count;
};

struct redis_client {
    uv_loop_t *loop;
    struct dns_cache *dns;
    struct redis_config cfg;
    char address[280];
    int state;
    redisAsyncContext *ac;
    struct dns_waiter dns_w;        /* in use while ST_RESOLVING */
    int handshake_left;             /* AUTH/SELECT replies still awaited */
    int dropping;                   /* we are freeing ac ourselves: drop_err/drop_msg say why */
    enum redis_err drop_err;
    char drop_msg[512];
    struct call_list waiting, inflight, completed;
    uv_timer_t connect_timer;       /* resolve + connect + handshake */
    uv_timer_t backoff_timer;       /* the next connect attempt */
    uv_timer_t deadline_timer;      /* the earliest call deadline */
    uv_timer_t done_timer;          /* runs done callbacks of completed calls (and keeps poll from blocking) */
    uv_check_t done_check;          /* the same right after the poll that read the replies */
    double deadline_due;            /* when deadline_timer fires (loop ms) */
    double backoff;                 /* seconds; 0 after a good connection */
    uint64_t next_attempt;          /* loop ms before which no connect starts */
    int closing, handles_open, handles_closed;
    struct redis_stats stats;
};

static void want_connection(struct redis_client *c);
static void on_backoff(uv_timer_t *t);
static void drop_connection(struct redis_client *c, enum redis_err err, const char *msg);

/* ---- lists ------------------------------------------------------------------------------- */

static struct call_list *list_of(struct redis_client *c, int where)
{
    return where == CALL_WAITING ? &c->waiting : where == CALL_INFLIGHT ? &c->inflight
         : where == CALL_COMPLETED ? &c->completed : NULL;
}

static void list_push(struct redis_client *c, struct redis_call *call, int where)
{
    struct call_list *l = list_of(c, where);
    call->where = where;
    call->next = NULL;
    call->prev = l->tail;
    if (l->tail)
        l->tail->next = call;
    else
        l->head = call;
    l->tail = call;
    l->count++;
}

static void list_remove(struct redis_client *c, struct redis_call *call)
{
    struct call_list *l = list_of(c, call->where);
    if (!l)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        l->head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        l->tail = call->prev;
    l->count--;
    call->prev = call->next = NULL;
    call->where = CALL_NONE;
}

/* ---- handles and refs -------------------------------------------------------------------- */

/* The loop stays alive only while some call waits: an idle connection must not keep a finished
 * program running. */
static void update_refs(struct redis_client *c)
{
    int pending = c->waiting.count + c->inflight.count > 0;
    uv_handle_t *hs[] = { (uv_handle_t *)&c->connect_timer, (uv_handle_t *)&c->backoff_timer, NULL };
    if (c->ac && c->ac->ev.data)
        hs[2] = (uv_handle_t *)&((redisLibuvEvents *)c->ac->ev.data)->handle;
    for (int i = 0; i < 3; i++) {
        if (!hs[i])
            continue;
        if (pending)
            uv_ref(hs[i]);
        else
            uv_unref(hs[i]);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct redis_client *c = h->data;
    if (--c->handles_open > 0)
        return;
    redis_config_free(&c->cfg);
    free(c);
}

/* Once closing and nothing is left: close the handles; the last close frees the client. */
static void maybe_finish_close(struct redis_client *c)
{
    if (!c->closing || c->handles_closed || c->ac || c->state == ST_RESOLVING ||
        c->waiting.count || c->inflight.count || c->completed.count)
        return;
    c->handles_closed = 1;
    uv_close((uv_handle_t *)&c->done_check, on_handle_closed);
    uv_close((uv_handle_t *)&c->connect_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->backoff_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->done_timer, on_handle_closed);
}

static void copy_msg(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- completing calls -------------------------------------------------------------------- */

static void run_done(struct redis_client *c)
{
    uv_timer_stop(&c->done_timer);
    uv_check_stop(&c->done_check);
    /* one at a time from the head: a done callback may cancel or start other calls */
    while (c->completed.head) {
        struct redis_call *call = c->completed.head;
        list_remove(c, call);
        if (call->released || !call->done)
            redis_call_free(call);
        else
            call->done(call);
    }
    maybe_finish_close(c);
}

static void on_done_timer(uv_timer_t *t)
{
    run_done(t->data);
}

static void on_done_check(uv_check_t *h)
{
    run_done(h->data);
}

static void complete(struct redis_client *c, struct redis_call *call)
{
    list_remove(c, call);
    list_push(c, call, CALL_COMPLETED);
    /* the check runs them right after this poll; the zero timer keeps the next poll from
     * blocking when they were completed elsewhere (a deadline, a failed connect) */
    if (!uv_is_active((uv_handle_t *)&c->done_timer)) {
        uv_timer_start(&c->done_timer, on_done_timer, 0, 0);
        uv_check_start(&c->done_check, on_done_check);
    }
    update_refs(c);
}

static void fail_call(struct redis_client *c, struct redis_call *call, enum redis_err err, const char *msg)
{
    call->err = err;
    copy_msg(call->errmsg, sizeof call->errmsg, msg);
    complete(c, call);
}

static void fail_list(struct redis_client *c, struct call_list *l, enum redis_err err, const char *msg)
{
    while (l->head)
        fail_call(c, l->head, err, msg);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_call *call = priv;
    struct redis_client *c = call->client;
    call->outstanding--;
    if (call->released) {
        if (call->outstanding == 0) {
            list_remove(c, call);
            redis_call_free(call);
            update_refs(c);
        }
        return;
    }
    if (call->where != CALL_INFLIGHT)
        return; /* already failed (timeout, close): this reply or its absence changes nothing */
    if (!reply) {
        char msg[512];
        if (c->dropping)
            fail_call(c, call, c->drop_err, c->drop_msg);
        else {
            snprintf(msg, sizeof msg, "connection to redis at %s lost: %s", c->address,
                     ac->err ? ac->errstr : "closed");
            fail_call(c, call, REDIS_E_CLOSED, msg);
        }
        return;
    }
    call->replies[call->nreplied++] = redis_reply_take(reply);
    if (call->nreplied == call->ncmds)
        complete(c, call);
}

/* ---- the event hooks --------------------------------------------------------------------- */

/* hiredis 0.14's libuv adapter ignores a poll error (status < 0, which is how libuv reports POLLERR,
 * e.g. a refused connect), so hiredis would wait for that socket forever. Its hooks are replaced by
 * these, which start the poll with a callback that passes an error on as the events asked for:
 * hiredis then reads the socket error itself. The adapter's struct and cleanup stay in use. */
static void on_poll(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    if (status != 0)
        events = p->events;
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void set_events(redisLibuvEvents *p, int events)
{
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void add_read(void *data)
{
    redisLibuvEvents *p = data;
    set_events(p, p->events | UV_READABLE);
}

static void del_read(void *data)
{
    redisLibuvEvents *p = data;
    set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *data)
{
    redisLibuvEvents *p = data;
    set_events(p, p->events | UV_WRITABLE);
}

static void del_write(void *data)
{
    redisLibuvEvents *p = data;
    set_events(p, p->events & ~UV_WRITABLE);
}

/* ---- connecting -------------------------------------------------------------------------- */

static void send_waiting(struct redis_client *c)
{
    while (c->waiting.head && c->state == ST_READY) {
        struct redis_call *call = c->waiting.head;
        list_remove(c, call);
        list_push(c, call, CALL_INFLIGHT);
        size_t start = 0;
        for (int i = 0; i < call->ncmds; i++) {
            if (redisAsyncFormattedCommand(c->ac, on_reply, call, call->buf + start, call->ends[i] - start) != REDIS_OK) {
                fail_call(c, call, REDIS_E_CLOSED, "the connection is closing");
                break;
            }
            call->outstanding++;
            start = call->ends[i];
        }
        c->stats.commands += (unsigned long long)call->ncmds;
    }
}

/* Connect, resolve or handshake failed: the calls waiting for this connection fail with it, and
 * the next attempt waits a backoff that doubles with each failure. */
static void connect_failed(struct redis_client *c, enum redis_err err, const char *msg)
{
    c->state = ST_IDLE;
    uv_timer_stop(&c->connect_timer);
    c->stats.connect_failures++;
    c->backoff = c->backoff > 0 ? c->backoff * 2 : c->cfg.backoff_min;
    if (c->backoff > c->cfg.backoff_max)
        c->backoff = c->cfg.backoff_max;
    c->next_attempt = uv_now(c->loop) + (uint64_t)(c->backoff * 1000);
    fail_list(c, &c->waiting, err, msg);
    update_refs(c);
    maybe_finish_close(c);
}

/* The hiredis context is gone (freed by hiredis or by us). */
static void connection_gone(struct redis_client *c)
{
    int was_ready = c->state == ST_READY;
    c->ac = NULL;
    c->stats.connected = 0;
    enum redis_err err = c->dropping ? c->drop_err : REDIS_E_CLOSED;
    char msg[512];
    copy_msg(msg, sizeof msg, c->dropping ? c->drop_msg : "connection lost");
    c->dropping = 0;
    fail_list(c, &c->inflight, err, msg); /* normally failed already by their NULL replies */
    if (!was_ready) {
        connect_failed(c, err, msg);
        return;
    }
    c->state = ST_IDLE;
    uv_timer_stop(&c->connect_timer);
    if (c->closing)
        maybe_finish_close(c);
    else if (c->waiting.count) /* on the next turn: hiredis is still freeing the old context */
        uv_timer_start(&c->backoff_timer, on_backoff, 0, 0);
    update_refs(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct redis_client *c = ac->data;
    if (!c->dropping) {
        c->dropping = 1;
        c->drop_err = REDIS_E_CLOSED;
        snprintf(c->drop_msg, sizeof c->drop_msg, "connection to redis at %s lost: %s", c->address,
                 ac->err ? ac->errstr : "closed by the server");
    }
    connection_gone(c);
}

/* Frees the context ourselves; the calls in flight fail with err/msg. */
static void drop_connection(struct redis_client *c, enum redis_err err, const char *msg)
{
    redisAsyncContext *ac = c->ac;
    if (!ac || c->dropping)
        return;
    c->dropping = 1;
    c->drop_err = err;
    copy_msg(c->drop_msg, sizeof c->drop_msg, msg);
    int connected = ac->c.flags & REDIS_CONNECTED;
    redisAsyncFree(ac); /* inside a hiredis callback: done when it returns */
    if (!connected)
        connection_gone(c); /* hiredis calls on_disconnect only for connected contexts */
}

static void ready(struct redis_client *c)
{
    c->state = ST_READY;
    uv_timer_stop(&c->connect_timer);
    c->backoff = 0;
    c->stats.connects++;
    c->stats.connected = 1;
    send_waiting(c);
    update_refs(c);
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
    struct redis_client *c = ac->data;
    const char *what = priv;
    const struct redis_reply *r = reply;
    if (!r || c->dropping)
        return; /* the connection is going away: on_disconnect says why */
    if (r->type == REDIS_T_ERROR) {
        char msg[512];
        snprintf(msg, sizeof msg, "redis at %s refused %s: %s", c->address, what, r->str);
        drop_connection(c, REDIS_E_AUTH, msg);
        return;
    }
    if (--c->handshake_left == 0)
        ready(c);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct redis_client *c = ac->data;
    char msg[512];
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it when this returns */
        snprintf(msg, sizeof msg, "cannot connect to redis at %s: %s", c->address, ac->errstr);
        connect_failed(c, REDIS_E_CONNECT, msg);
        return;
    }
    redisEnableKeepAlive(&ac->c);
    c->state = ST_HANDSHAKE;
    c->handshake_left = 0;
    if (c->cfg.password) {
        const char *argv[3] = { "AUTH", c->cfg.user ? c->cfg.user : c->cfg.password, c->cfg.password };
        size_t lens[3] = { 4, strlen(argv[1]), strlen(argv[2]) };
        if (redisAsyncCommandArgv(ac, on_handshake, (void *)"AUTH", c->cfg.user ? 3 : 2, argv, lens) == REDIS_OK)
            c->handshake_left++;
    }
    if (c->cfg.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->cfg.db);
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, strlen(db) };
        if (redisAsyncCommandArgv(ac, on_handshake, (void *)"SELECT", 2, argv, lens) == REDIS_OK)
            c->handshake_left++;
    }
    if (c->handshake_left == 0)
        ready(c);
}

static void connect_to(struct redis_client *c, struct dns_addrs *a)
{
    char ip[64], msg[512];
    const struct sockaddr *sa = (const struct sockaddr *)&a->addr[0];
    if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
    else
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
    dns_addrs_unref(a);
    redisAsyncContext *ac = redisAsyncConnect(ip, c->cfg.port);
    if (!ac) {
        connect_failed(c, REDIS_E_NOMEM, "out of memory");
        return;
    }
    if (ac->err || redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        snprintf(msg, sizeof msg, "cannot connect to redis at %s: %s", c->address,
                 ac->err ? ac->errstr : "cannot watch the socket");
        if (!ac->ev.data)
            ac->ev.cleanup = NULL; /* a failed attach leaves a cleanup without its data */
        redisAsyncFree(ac);
        connect_failed(c, REDIS_E_CONNECT, msg);
        return;
    }
    redis_reply_use(&ac->c);
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = ST_CONNECTING;
    update_refs(c);
}

static void on_dns(struct dns_waiter *w, int status, struct dns_addrs *addrs)
{
    struct redis_client *c = (struct redis_client *)((char *)w - offsetof(struct redis_client, dns_w));
    if (status < 0 || !addrs || addrs->count < 1) {
        char msg[512];
        if (addrs)
            dns_addrs_unref(addrs);
        snprintf(msg, sizeof msg, "cannot resolve redis host %s: %s", c->cfg.host,
                 status < 0 ? uv_strerror(status) : "no address");
        connect_failed(c, REDIS_E_CONNECT, msg);
        return;
    }
    connect_to(c, addrs);
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct redis_client *c = t->data;
    char msg[512];
    snprintf(msg, sizeof msg, "cannot connect to redis at %s: no answer within %g s", c->address,
             c->cfg.connect_timeout);
    if (c->state == ST_RESOLVING) {
        dns_cancel(&c->dns_w);
        connect_failed(c, REDIS_E_CONNECT, msg);
    } else if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        drop_connection(c, REDIS_E_CONNECT, msg);
    }
}

static void begin_connect(struct redis_client *c)
{
    c->state = ST_RESOLVING;
    uv_timer_start(&c->connect_timer, on_connect_timeout, (uint64_t)(c->cfg.connect_timeout * 1000), 0);
    int err = 0;
    memset(&c->dns_w, 0, sizeof c->dns_w);
    c->dns_w.cb = on_dns;
    struct dns_addrs *a = dns_resolve(c->dns, c->cfg.host, &c->dns_w, &err);
    if (a) {
        connect_to(c, a);
    } else if (err) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot resolve redis host %s: %s", c->cfg.host, uv_strerror(err));
        connect_failed(c, REDIS_E_CONNECT, msg);
    }
    update_refs(c);
}

static void on_backoff(uv_timer_t *t)
{
    struct redis_client *c = t->data;
    if (c->state == ST_IDLE && c->waiting.count && !c->closing)
        want_connection(c);
}

/* Calls are waiting: connect now, or when the backoff allows; never from inside hiredis. */
static void want_connection(struct redis_client *c)
{
    if (c->state != ST_IDLE || c->closing)
        return;
    uint64_t now = uv_now(c->loop);
    if (now < c->next_attempt || c->ac || c->dropping) {
        if (!uv_is_active((uv_handle_t *)&c->backoff_timer))
            uv_timer_start(&c->backoff_timer, on_backoff, now < c->next_attempt ? c->next_attempt - now : 0, 0);
        update_refs(c);
        return;
    }
    begin_connect(c);
}

/* ---- deadlines --------------------------------------------------------------------------- */

static void arm_deadline(struct redis_client *c, double due);

static void on_deadline(uv_timer_t *t)
{
    struct redis_client *c = t->data;
    double now = (double)uv_now(c->loop), next = 0;
    int drop = 0;
    char msg[512];
    struct call_list *lists[2] = { &c->waiting, &c->inflight };
    for (int k = 0; k < 2; k++) {
        struct redis_call *call = lists[k]->head;
        while (call) {
            struct redis_call *after = call->next;
            if (call->deadline > 0 && call->deadline <= now) {
                c->stats.timeouts++;
                if (k == 0)
                    snprintf(msg, sizeof msg, "no connection to redis at %s in time%s", c->address,
                             c->stats.connected ? "" : " (it cannot be reached)");
                else
                    snprintf(msg, sizeof msg, "redis at %s did not answer in time", c->address);
                drop |= k == 1;
                fail_call(c, call, REDIS_E_TIMEOUT, msg);
            } else if (call->deadline > 0 && (next == 0 || call->deadline < next)) {
                next = call->deadline;
            }
            call = after;
        }
    }
    c->deadline_due = 0;
    if (drop) {
        /* the late reply would be taken for the next call's: start over on a new connection */
        snprintf(msg, sizeof msg, "connection to redis at %s reset after a call timed out", c->address);
        drop_connection(c, REDIS_E_CLOSED, msg);
    }
    if (next > 0)
        arm_deadline(c, next);
}

static void arm_deadline(struct redis_client *c, double due)
{
    if (c->deadline_due > 0 && c->deadline_due <= due && uv_is_active((uv_handle_t *)&c->deadline_timer))
        return;
    double now = (double)uv_now(c->loop);
    c->deadline_due = due;
    uv_timer_start(&c->deadline_timer, on_deadline, due > now ? (uint64_t)(due - now) : 0, 0);
}

/* ---- the interface ----------------------------------------------------------------------- */

struct redis_client *redis_client_new(uv_loop_t *loop, struct dns_cache *dns, const struct redis_config *cfg)
{
    struct redis_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->dns = dns;
    c->cfg = *cfg;
    c->cfg.host = strdup(cfg->host);
    c->cfg.user = cfg->user ? strdup(cfg->user) : NULL;
    c->cfg.password = cfg->password ? strdup(cfg->password) : NULL;
    if (!c->cfg.host || (cfg->user && !c->cfg.user) || (cfg->password && !c->cfg.password)) {
        redis_config_free(&c->cfg);
        free(c);
        return NULL;
    }
    snprintf(c->address, sizeof c->address, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);
    uv_timer_t *timers[4] = { &c->connect_timer, &c->backoff_timer, &c->deadline_timer, &c->done_timer };
    for (int i = 0; i < 4; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
    }
    uv_check_init(loop, &c->done_check);
    c->done_check.data = c;
    c->handles_open = 5;
    return c;
}

const struct redis_stats *redis_client_stats(const struct redis_client *c)
{
    return &c->stats;
}

const char *redis_client_address(const struct redis_client *c)
{
    return c->address;
}

void redis_call_start(struct redis_client *c, struct redis_call *call, double timeout)
{
    call->client = c;
    call->err = REDIS_E_NONE;
    c->stats.calls++;
    list_push(c, call, CALL_WAITING);
    call->replies = call->ncmds ? calloc((size_t)call->ncmds, sizeof *call->replies) : NULL;
    if (c->closing || call->ncmds == 0 || !call->replies) {
        fail_call(c, call, c->closing ? REDIS_E_CANCELED : call->ncmds ? REDIS_E_NOMEM : REDIS_E_CANCELED,
                  c->closing ? "the redis client is closed" : call->ncmds ? "out of memory" : "no command");
        return;
    }
    call->deadline = timeout > 0 ? (double)uv_now(c->loop) + timeout * 1000 : 0;
    if (call->deadline > 0)
        arm_deadline(c, call->deadline);
    if (c->state == ST_READY) {
        send_waiting(c);
        /* write now rather than on the next poll (never from inside hiredis: callers run from
         * our done callbacks or other handles' callbacks, not from hiredis') */
        if (c->ac)
            redisAsyncHandleWrite(c->ac);
    } else {
        want_connection(c);
    }
    update_refs(c);
}

void redis_call_cancel(struct redis_call *call)
{
    struct redis_client *c = call->client;
    if (call->where == CALL_INFLIGHT) {
        /* Its replies still come, in order, before any later call's: it stays in flight (and under
         * its deadline) until they are in, then it is freed. Without a deadline it may never be
         * answered (BLPOP 0): only a new connection frees the ones behind it. */
        call->released = 1;
        call->done = NULL;
        if (call->deadline == 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "connection to redis at %s reset: a call without a timeout was canceled",
                     c->address);
            drop_connection(c, REDIS_E_CLOSED, msg);
        }
        return;
    }
    if (call->where == CALL_WAITING || call->where == CALL_COMPLETED)
        list_remove(c, call);
    if (c)
        update_refs(c);
    redis_call_free(call);
}

void redis_client_close(struct redis_client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    fail_list(c, &c->waiting, REDIS_E_CANCELED, "the redis client was closed");
    fail_list(c, &c->inflight, REDIS_E_CANCELED, "the redis client was closed");
    uv_timer_stop(&c->backoff_timer);
    uv_timer_stop(&c->deadline_timer);
    if (c->state == ST_RESOLVING) {
        dns_cancel(&c->dns_w);
        c->state = ST_IDLE;
        uv_timer_stop(&c->connect_timer);
    }
    if (c->ac)
        drop_connection(c, REDIS_E_CANCELED, "the redis client was closed");
    maybe_finish_close(c);
}
