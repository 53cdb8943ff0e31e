/* lua_http.c — the `_http` bindings under lua/http.lua: one request per call, stats, configure, URLs.
 * A request belongs to request.c once started; the waiting task holds only its pointer, and the
 * done callback resumes the task, whose continuation copies the response before the request
 * frees itself. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dns.h"
#include "headers.h"
#include "host.h"
#include "lua_bindings.h"
#include "lua_http_options.h"
#include "pool.h"
#include "request.h"
#include "task.h"
#include "url.h"

static int push_failure(lua_State *L, const char *msg, const char *kind)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, kind);
    return 3;
}

static double opt_number(lua_State *L, int t, const char *field, double dflt)
{
    lua_getfield(L, t, field);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}


/* What a response carries besides status, reason and body: kept in one userdata and turned into
 * tables only when a script reads res.headers, res.timings or res.tls (most never do), so a
 * response costs one table, its strings and this block. */
#define DETAILS "luafetch.response_details"
static const char RESPONSE_CLASS = 'R'; /* registry key of http.lua's Response metatable */

struct details {
    struct request_timings timings;
    struct tls_info tls;
    int has_tls, tls_resumed;
    int version;                /* 10, 11, 20 */
    int header_count;
    size_t headers_len;
    char headers[]; /* name\0value\0 pairs, names lower-case */
};

static struct details *check_details(lua_State *L)
{
    return luaL_checkudata(L, 1, DETAILS);
}

void luafetch_push_headers(lua_State *L, const char *block, size_t len, int count)
{
    lua_createtable(L, 0, count);
    const char *p = block, *end = block + len;
    while (len && p < end) {
        size_t nlen = strlen(p);
        const char *v = p + nlen + 1;
        if (v >= end)
            break;
        size_t vlen = strlen(v);
        lua_pushlstring(L, p, nlen);
        if (lua_rawget(L, -2) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, vlen);
        }
        lua_pushlstring(L, p, nlen);
        lua_insert(L, -2);
        lua_rawset(L, -3);
        p = v + vlen + 1;
    }
}

/* _http.details_headers(d) → table: lower-case names, repeated ones joined with ", " */
static int l_details_headers(lua_State *L)
{
    const struct details *d = check_details(L);
    luafetch_push_headers(L, d->headers, d->headers_len, d->header_count);
    return 1;
}

static void set_number(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* _http.details_values(d, name) → array of the values of header `name` (lower-case) in arrival
 * order: Set-Cookie values must not be joined with ", " and split again (dates hold commas). */
static int l_details_values(lua_State *L)
{
    const struct details *d = check_details(L);
    size_t wl;
    const char *want = luaL_checklstring(L, 2, &wl);
    lua_newtable(L);
    const char *p = d->headers, *end = d->headers + d->headers_len;
    lua_Integer n = 0;
    while (d->headers_len && p < end) {
        size_t nl = strlen(p);
        const char *v = p + nl + 1;
        if (v >= end)
            break;
        size_t vl = strlen(v);
        if (nl == wl && memcmp(p, want, nl) == 0) {
            lua_pushlstring(L, v, vl);
            lua_rawseti(L, -2, ++n);
        }
        p = v + vl + 1;
    }
    return 1;
}

/* _http.details_version(d) → "1.0", "1.1" or "2" */
static int l_details_version(lua_State *L)
{
    const struct details *d = check_details(L);
    if (d->version == 20)
        lua_pushliteral(L, "2");
    else
        lua_pushfstring(L, "%d.%d", d->version / 10, d->version % 10);
    return 1;
}

/* _http.details_timings(d) → {dns, connect, tls, ttfb, total} in seconds */
static int l_details_timings(lua_State *L)
{
    const struct details *d = check_details(L);
    lua_createtable(L, 0, 5);
    set_number(L, "dns", d->timings.dns);
    set_number(L, "connect", d->timings.connect);
    set_number(L, "tls", d->timings.tls);
    set_number(L, "ttfb", d->timings.ttfb);
    set_number(L, "total", d->timings.total);
    return 1;
}

/* _http.details_tls(d) → {version, cipher, verified, verify_cached, expires, resumed} or nil
 * (plain http) */
static int l_details_tls(lua_State *L)
{
    const struct details *d = check_details(L);
    if (!d->has_tls) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, d->tls.version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, d->tls.cipher);
    lua_setfield(L, -2, "cipher");
    lua_pushboolean(L, d->tls.verified);
    lua_setfield(L, -2, "verified");
    lua_pushboolean(L, d->tls.verify_cached);
    lua_setfield(L, -2, "verify_cached");
    lua_pushinteger(L, d->tls.expires);
    lua_setfield(L, -2, "expires");
    lua_pushboolean(L, d->tls_resumed);
    lua_setfield(L, -2, "resumed");
    return 1;
}

/* _http.set_response_class(mt): the metatable every response gets (its __index builds the rest). */
static int l_set_response_class(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RESPONSE_CLASS);
    return 0;
}

static int push_response(lua_State *co, struct request *r)
{
    struct http_response *resp = r->resp;
    luaL_checkstack(co, 8, "response");
    lua_createtable(co, 0, 8);
    lua_pushinteger(co, resp->status);
    lua_setfield(co, -2, "status");
    lua_pushlstring(co, resp->reason.data ? resp->reason.data : "", resp->reason.len);
    lua_setfield(co, -2, "reason");
    if (!(r->stream && r->stream->resp)) {
        lua_pushlstring(co, resp->body.data ? resp->body.data : "", resp->body.len);
        lua_setfield(co, -2, "body");
    }
    lua_pushboolean(co, r->reused);
    lua_setfield(co, -2, "reused");

    struct details *d = lua_newuserdatauv(co, sizeof *d + resp->headers.len, 0);
    d->timings = r->timings;
    d->has_tls = r->has_tls_info;
    d->tls = r->tls_info;
    d->tls_resumed = r->tls_resumed;
    d->version = resp->version;
    d->header_count = resp->header_count;
    d->headers_len = resp->headers.len;
    if (resp->headers.len)
        memcpy(d->headers, resp->headers.data, resp->headers.len);
    luaL_setmetatable(co, DETAILS);
    lua_setfield(co, -2, "_details");

    if (lua_rawgetp(co, LUA_REGISTRYINDEX, &RESPONSE_CLASS) == LUA_TTABLE)
        lua_setmetatable(co, -2);
    else
        lua_pop(co, 1);
    return 1;
}

/* The request ended: resume its task at once, while the request is still alive; the task's
 * continuation copies the response onto its own stack. */
static void on_done(struct request *r)
{
    task_resume(r->data, 0);
}

/* A streamed response (stream = true): the handle a response holds on its request, which stays
 * alive (held) until the handle is closed or collected. The task waiting for the head or for the
 * next chunk is in r->stream->waiter; it is resumed at once from the request's callbacks. */
#define STREAM "luafetch.stream"

struct stream_handle {
    struct request *r;          /* NULL once closed */
};

static void stream_wake(struct request *r)
{
    struct task *t = r->stream->waiter;
    if (t) {
        r->stream->waiter = NULL;
        if (r->stream->handle)
            request_hold_loop(r, 0);
        task_resume(t, 0);
    }
}

static void push_stream_handle(lua_State *L, struct request *r)
{
    struct stream_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->r = r;
    luaL_setmetatable(L, STREAM);
    r->stream->handle = h;
    r->stream->held = 1;
    request_hold_loop(r, 0); /* until a task waits in res:read() */
}

/* Runs inside the resumed task, so running out of memory here is an error raised in the task. */
static int body_cont(lua_State *L, int status, lua_KContext ctx);
static void cancel_request(struct task *t);

/* Closed with the task's stack while a body function runs: a task cancelled there (or an error
 * in the function) ends the exchange it was feeding. body_cont disarms it. */
#define UPLOAD_GUARD "luafetch.upload_guard"

static int upload_guard_close(lua_State *L)
{
    struct stream_handle *g = luaL_checkudata(L, 1, UPLOAD_GUARD);
    struct request *r = g->r;
    if (r) {
        g->r = NULL;
        request_close(r);
    }
    return 0;
}

static int request_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct request *r = (struct request *)ctx;
    struct request_stream *s = r->stream;
    if (s && s->upload_want && !r->finished) {
        /* the next piece of a function body, asked in the task: the function may yield, so r is
         * held (not freed if it finishes meanwhile) until body_cont looks at it */
        s->held = 1;
        struct stream_handle *g = lua_newuserdatauv(L, sizeof *g, 0);
        g->r = r;
        luaL_setmetatable(L, UPLOAD_GUARD);
        lua_toclose(L, -1); /* the task cancelled inside the function: the exchange ends */
        lua_getfield(L, 1, "body");
        lua_callk(L, 0, 1, ctx, body_cont);
        return body_cont(L, LUA_OK, ctx);
    }
    int streamed = s && s->resp;
    if (streamed && s->head_sent && !s->handle && (r->kind == NET_OK || !r->finished)) {
        push_response(L, r);
        push_stream_handle(L, r);
        lua_setfield(L, -2, "_stream");
        return 1;
    }
    if (r->kind == NET_OK && !streamed)
        return push_response(L, r);
    if (r->kind == NET_OK) { /* a streamed response complete with its head */
        s->head_sent = 1;
        return request_cont(L, status, ctx);
    }
    return push_failure(L, r->err ? r->err : "out of memory", net_kind_name(r->kind));
}

/* A piece of a function body is in (or nil: the end): to the wire, then wait again. */
static int body_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct request *r = (struct request *)ctx;
    struct request_stream *s = r->stream;
    ((struct stream_handle *)lua_touserdata(L, -2))->r = NULL; /* disarm the guard */
    int vt = lua_type(L, -1);
    /* still held: a push may finish r (a body_size not kept), which must not free it yet */
    if (!r->finished) {
        if (vt == LUA_TSTRING) {
            size_t len;
            const char *p = lua_tolstring(L, -1, &len);
            if (len)
                request_upload_push(r, p, len); /* "" pushes nothing: upload_want stays, ask again */
        } else if (vt == LUA_TNIL) {
            request_upload_push(r, NULL, 0);
        } else {
            lua_pop(L, 1);
            lua_closeslot(L, -1);
            lua_pop(L, 1);
            request_cancel(r);
            return push_failure(L, "body: the function must return a string or nil", "invalid");
        }
    }
    lua_pop(L, 1);
    lua_closeslot(L, -1);
    lua_pop(L, 1);
    s->held = 0;
    if (r->finished) {
        int n = request_cont(L, LUA_OK, ctx);
        if (!s->held)
            request_close(r);
        return n;
    }
    if (s->upload_want)
        return request_cont(L, LUA_OK, ctx);
    struct task *t = task_check_current(L, "http.request");
    s->waiter = t;
    return task_yieldk(L, t, cancel_request, r, ctx, request_cont);
}

/* The task waiting for a chunk was cancelled: the exchange ends with it. */
static void cancel_stream_read(struct task *t)
{
    struct request *r = t->wait.op;
    struct stream_handle *h = r->stream->handle;
    if (h)
        h->r = NULL;
    request_close(r);
}

static int stream_read_cont(lua_State *L, int status, lua_KContext ctx);

/* The chunk pushed as a string; or, with an open file as argument 2 (`output`), written to it and
 * its length pushed, so a download makes no Lua string per chunk (the collector would run a
 * cycle every chunk or two). Returns 0, or 2 after pushing false, message when the write fails. */
static int push_or_write(lua_State *L, const char *data, size_t n)
{
    luaL_Stream *f = luaL_testudata(L, 2, LUA_FILEHANDLE);
    if (!f) {
        lua_pushlstring(L, data, n);
        return 0;
    }
    if (!f->closef || fwrite(data, 1, n, f->f) != n) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, f->closef ? strerror(errno) : "file is closed");
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)n);
    return 0;
}

/* _http.stream_read(h [, file]) → chunk (or with a file: the bytes written to it) | nil (the end)
 * | nil, msg, kind | false, msg (the write failed). Yields while nothing is in. */
static int l_stream_read(lua_State *L)
{
    struct stream_handle *h = luaL_checkudata(L, 1, STREAM);
    struct request *r = h->r;
    if (!r)
        return push_failure(L, "closed", "canceled");
    struct buf *b = &r->resp->body;
    if (r->resp->raw_body && r->resp->decoder) {
        /* a coded body: decoded here, a bounded piece at a time */
        const char *why = NULL;
        struct buf *d = &r->stream->decoded;
        while (b->len && !d->len)
            if (request_stream_decode(r, &why) < 0) {
                lua_pushnil(L);
                lua_pushfstring(L, "cannot decode body: %s", why ? why : "corrupt data");
                lua_pushliteral(L, "protocol");
                return 3;
            }
        if (d->len) {
            size_t n = d->len;
            if (push_or_write(L, d->data, n))
                return 2;
            buf_reset(d);
            request_stream_took(r, n);
            return 1;
        }
        if (r->finished && r->kind == NET_OK && decoder_incomplete(r->resp->decoder))
            return push_failure(L, "cannot decode body: the compressed stream ended early", "protocol");
    } else if (b->len) {
        size_t n = b->len;
        if (push_or_write(L, b->data, n))
            return 2;
        buf_reset(b);
        request_stream_took(r, n);
        return 1;
    }
    if (r->finished) {
        if (r->kind == NET_OK) {
            lua_pushnil(L);
            return 1;
        }
        return push_failure(L, r->err ? r->err : "out of memory", net_kind_name(r->kind));
    }
    struct task *t = task_check_current(L, "res:read");
    if (r->stream->waiter)
        return luaL_error(L, "res:read: another task is reading this body");
    r->stream->waiter = t;
    request_hold_loop(r, 1);
    return task_yieldk(L, t, cancel_stream_read, r, (lua_KContext)h, stream_read_cont);
}

static int stream_read_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return l_stream_read(L); /* the handle is still argument 1 */
}

/* _http.stream_size(h) → body bytes taken so far [, the exchange's total seconds once it ended];
 * nothing once closed */
static int l_stream_size(lua_State *L)
{
    struct stream_handle *h = luaL_checkudata(L, 1, STREAM);
    if (!h->r)
        return 0;
    lua_pushinteger(L, (lua_Integer)h->r->stream->taken);
    if (!h->r->finished)
        return 1;
    lua_pushnumber(L, h->r->timings.total);
    return 2;
}

/* _http.stream_close(h): ends the exchange (closing its connection when unfinished). Idempotent. */
static int l_stream_close(lua_State *L)
{
    struct stream_handle *h = luaL_checkudata(L, 1, STREAM);
    struct request *r = h->r;
    if (r) {
        h->r = NULL;
        request_close(r);
    }
    return 0;
}

static void cancel_request(struct task *t)
{
    request_cancel(t->wait.op);
}

/* _http.request(opts) or _http.request(url, method, total_timeout [, opts]) (the quick form,
 * lua_http_options.h) → response table | nil, message, kind. Yields. */
static int l_request(lua_State *L)
{
    int quick = lua_type(L, 1) == LUA_TSTRING;
    if (!quick)
        luaL_checktype(L, 1, LUA_TTABLE);
    struct task *t = task_check_current(L, "http.request");
    struct host *h = host_of(L);
    struct request *r = request_new(&h->net);
    if (!r)
        return push_failure(L, "out of memory", "invalid");
    char err[256];
    if (quick ? http_options_fill_quick(L, r, err, sizeof err) : http_options_fill(L, 1, r, err, sizeof err)) {
        request_discard(r);
        return push_failure(L, err, "invalid");
    }
    r->done = on_done;
    r->data = t;
    if (r->stream) {
        if (r->stream->resp)
            r->max_body = SIZE_MAX;
        r->done = stream_wake;
        r->stream->wake = stream_wake;
        r->stream->waiter = t;
    }
    request_start(r);
    if (r->stream && r->stream->upload_want && !r->finished) {
        /* a pooled connection took the head at once: the body's first piece is wanted now */
        r->stream->waiter = NULL;
        return request_cont(L, LUA_OK, (lua_KContext)r);
    }
    return task_yieldk(L, t, cancel_request, r, (lua_KContext)r, request_cont);
}

static void set_count(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L)
{
    struct net *n = &host_of(L)->net;
    const struct dns_stats *ds = dns_get_stats(n->dns);
    lua_createtable(L, 0, 12);
    set_count(L, "requests", (long long)n->stats.requests);
    set_count(L, "connections_opened", (long long)n->stats.connections_opened);
    set_count(L, "connections_reused", (long long)n->stats.connections_reused);
    set_count(L, "dns_lookups", (long long)ds->lookups);
    set_count(L, "dns_hits", (long long)ds->hits);
    set_count(L, "in_flight", n->stats.in_flight);
    set_count(L, "idle_connections", pool_idle_count(n->pool));
    set_count(L, "idle_hosts", pool_bucket_count(n->pool));
    set_count(L, "dns_cache_entries", dns_cache_size(n->dns));
    set_count(L, "connecting", n->connecting);
    set_count(L, "tls_handshakes_pooled", (long long)n->stats.tls_handshakes_pooled);
    return 1;
}

static double opt_clamp(double v, double lo, double hi)
{
    return v != v ? lo : v < lo ? lo : v > hi ? hi : v; /* NaN → lo */
}

/* A numeric field of the table at index 1, clamped to [lo, hi] before any integer conversion. */
static double opt_count(lua_State *L, const char *field, double dflt, double lo, double hi)
{
    return opt_clamp(opt_number(L, 1, field, dflt), lo, hi);
}

/* hosts = { name = { "addr", ... } | false }: fixed addresses per name (false removes one).
 * Raises on a bad entry: configure is set-up code, a mistake there is a usage error. */
static void configure_hosts(lua_State *L, struct dns_cache *dns)
{
    lua_getfield(L, 1, "hosts");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_argexpected(L, lua_istable(L, -1), 1, "hosts as a table of name = { address, ... }");
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "configure: hosts: names must be strings");
        const char *name = lua_tostring(L, -2);
        struct dns_addrs *addrs = NULL;
        if (lua_istable(L, -1)) {
            const char *list[64];
            int n = (int)lua_rawlen(L, -1);
            if (n < 1 || n > 64)
                luaL_error(L, "configure: hosts[%s]: give 1 to 64 addresses", name);
            for (int i = 0; i < n; i++) {
                lua_rawgeti(L, -1 - i, i + 1);
                list[i] = lua_tostring(L, -1);
                if (!list[i] || lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "configure: hosts[%s]: addresses must be strings", name);
            }
            addrs = dns_addrs_parse(list, n);
            lua_pop(L, n);
            if (!addrs)
                luaL_error(L, "configure: hosts[%s]: each address must be an IPv4 or IPv6 literal", name);
        } else if (!(lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
            luaL_error(L, "configure: hosts[%s] must be a list of addresses or false", name);
        }
        if (dns_set_fixed(dns, name, addrs))
            luaL_error(L, "not enough memory");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* _http.configure{max_connecting=, max_idle_per_host=, max_idle_total=, max_inflated_total=, idle_timeout=, dns_ttl=,
 *                 dns_cache_size=, max_header_bytes=, max_header_count=, hosts=} */
static int l_configure(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    struct net *n = &host_of(L)->net;
    struct net_limits *lim = &n->limits;
    lim->max_connecting = (int)opt_count(L, "max_connecting", lim->max_connecting, 1, 1000000);
    lim->max_idle_per_host = (int)opt_count(L, "max_idle_per_host", lim->max_idle_per_host, 0, 1000000);
    lim->max_idle_total = (int)opt_count(L, "max_idle_total", lim->max_idle_total, 0, 1000000);
    lim->max_inflated_total =
        (size_t)opt_count(L, "max_inflated_total", (double)lim->max_inflated_total, 0, 0x1p62);
    lim->idle_timeout = opt_count(L, "idle_timeout", lim->idle_timeout, 0, 1e9);
    lim->max_header_bytes = (size_t)opt_count(L, "max_header_bytes", (double)lim->max_header_bytes, 1, 1 << 30);
    lim->max_header_count = (int)opt_count(L, "max_header_count", lim->max_header_count, 1, 1000000);
    lua_getfield(L, 1, "dns_ttl");
    if (lua_isnumber(L, -1))
        dns_set_ttl(n->dns, opt_clamp(lua_tonumber(L, -1), 0, 1e9));
    lua_pop(L, 1);
    lua_getfield(L, 1, "dns_cache_size");
    if (lua_isnumber(L, -1))
        dns_set_max_entries(n->dns, (int)opt_clamp(lua_tonumber(L, -1), 1, 10000000));
    lua_pop(L, 1);
    configure_hosts(L, n->dns);
    return 0;
}

/* _http.path_kind(path) → "file" | "directory" | "other" (a device, FIFO, socket) | nil when
 * absent: writers of bodies to paths rename a finished ".part" file only over regular files. */
static int l_path_kind(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
    return 1;
}

/* _http.parse_url(s) → {scheme=, host=, port=, target=, authority=} | nil, err */
static int l_parse_url(lua_State *L)
{
    luaL_checkstring(L, 1);
    struct url u;
    char err[256];
    const char *s = http_options_string(L, 1, "url", err, sizeof err);
    if (!s || url_parse(&u, s, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, u.https ? "https" : "http");
    lua_setfield(L, -2, "scheme");
    lua_pushstring(L, u.host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, u.port);
    lua_setfield(L, -2, "port");
    lua_pushstring(L, u.target);
    lua_setfield(L, -2, "target");
    url_free(&u);
    return 1;
}

/* _http.resolve_url(base, ref) → absolute URL string */
static int l_resolve_url(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    char err[64];
    const char *base = http_options_string(L, 1, "url", err, sizeof err);
    const char *ref = http_options_string(L, 2, "url", err, sizeof err);
    struct buf out = {0};
    if (!base || !ref || url_resolve(base, ref, &out)) {
        buf_free(&out);
        lua_pushnil(L);
        lua_pushliteral(L, "cannot resolve URL");
        return 2;
    }
    lua_pushlstring(L, out.data ? out.data : "", out.len);
    buf_free(&out);
    return 1;
}

int luaopen_luafetch_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "request", l_request },
        { "stats", l_stats },
        { "configure", l_configure },
        { "parse_url", l_parse_url },
        { "path_kind", l_path_kind },
        { "resolve_url", l_resolve_url },
        { "set_response_class", l_set_response_class },
        { "details_headers", l_details_headers },
        { "details_timings", l_details_timings },
        { "details_tls", l_details_tls },
        { "details_version", l_details_version },
        { "details_values", l_details_values },
        { "stream_read", l_stream_read },
        { "stream_close", l_stream_close },
        { "stream_size", l_stream_size },
        { NULL, NULL },
    };
    luaL_newmetatable(L, DETAILS);
    lua_pop(L, 1);
    luaL_newmetatable(L, STREAM);
    lua_pushcfunction(L, l_stream_close);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, UPLOAD_GUARD);
    lua_pushcfunction(L, upload_guard_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
