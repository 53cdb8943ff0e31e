/* lua_server.c — the `_server` bindings under lua/server.lua: listen, close, stats, respond.
 * A server handle is a userdata holding a pointer to the C server (NULL once freed), anchored in the
 * registry while listening; each request gets a userdata holding its connection (NULL once answered
 * or closed). Both sides clear those pointers, so Lua's GC and libuv's closes never race. */
#include <lauxlib.h>
#include <math.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "lua_bindings.h"
#include "server.h"
#include "task.h"

#define SERVER_MT "luafetch.server"
#define REQUEST_MT "luafetch.server_request"

struct lserver {
    struct server *s;               /* NULL once the C server is freed */
    lua_State *L;                   /* the main state: request callbacks spawn tasks from it */
    struct server_stats last;       /* the counters when the server was freed */
};

struct lrequest {
    struct server_conn *c;          /* NULL once answered, or when the connection closed */
};

static void cb_detach(void *user)
{
    ((struct lrequest *)user)->c = NULL;
}

static void cb_freed(void *data)
{
    struct lserver *ls = data;
    ls->last = *server_get_stats(ls->s);
    ls->s = NULL;
}

/* Lower-case names; repeated headers joined with ", " (as for client responses). */
static void push_headers(lua_State *L, const struct server_request *req)
{
    luafetch_push_headers(L, req->headers, req->headers_len, req->header_count);
}

static void set_string(lua_State *L, const char *k, const char *s, size_t len)
{
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, k);
}

static void push_request(lua_State *L, const struct server_request *req)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    set_string(L, "target", req->target, req->target_len);
    const char *q = memchr(req->target, '?', req->target_len);
    size_t plen = q ? (size_t)(q - req->target) : req->target_len;
    set_string(L, "path", req->target, plen);
    set_string(L, "query", q ? q + 1 : "", q ? req->target_len - plen - 1 : 0);
    push_headers(L, req);
    lua_setfield(L, -2, "headers");
    set_string(L, "body", req->body, req->body_len);
    lua_pushstring(L, req->remote_addr);
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, req->remote_port);
    lua_setfield(L, -2, "remote_port");
    lua_pushfstring(L, "%d.%d", req->http_major, req->http_minor);
    lua_setfield(L, -2, "version");
}

struct handler_call {
    struct lserver *ls;
    struct server_conn *c;
    const struct server_request *req;
    int spawned;
};

/* Protected (host_pcall): a task running dispatch(request handle, req). */
static int spawn_handler(lua_State *L)
{
    struct handler_call *hc = lua_touserdata(L, 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, hc->ls) != LUA_TUSERDATA)
        return 0; /* closed meanwhile */
    lua_getiuservalue(L, -1, 1); /* the dispatch function */
    struct lrequest *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->c = NULL;
    luaL_setmetatable(L, REQUEST_MT);
    push_request(L, hc->req);
    task_spawn(L, 2); /* may raise (out of memory): only then are box and conn tied */
    box->c = hc->c;
    server_conn_set_user(hc->c, box);
    hc->spawned = 1;
    return 0;
}

static void cb_request(struct server_conn *c, const struct server_request *req, void *data)
{
    struct lserver *ls = data;
    struct host *h = host_of(ls->L);
    struct handler_call hc = { ls, c, req, 0 };
    if (host_pcall(h, spawn_handler, &hc, NULL) != LUA_OK) {
        fprintf(stderr, "%s: http.serve: cannot start a handler: %s\n", h->progname, h->error);
        hc.spawned = 0;
    }
    if (!hc.spawned)
        server_conn_release(c); /* the box, if any, was detached: its __gc does nothing */
}

static const struct server_callbacks callbacks = { cb_request, cb_detach, cb_freed };

static struct lserver *check_server(lua_State *L)
{
    return luaL_checkudata(L, 1, SERVER_MT);
}

static double opt_num(lua_State *L, int t, const char *k, double dflt)
{
    lua_getfield(L, t, k);
    double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= 0))
        luaL_error(L, "option %s must be a non-negative number", k);
    return v;
}

/* _server.listen(opts, dispatch) → handle, port | nil, message.
 * opts: host, port, backlog, max_body, max_header_bytes, max_header_count, header_timeout,
 * body_timeout, idle_timeout (checked in lua/server.lua; numbers here). */
static int l_listen(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    struct host *h = host_of(L);
    struct server_options o;
    server_options_default(&o);
    lua_getfield(L, 1, "host");
    const char *host = luaL_optstring(L, -1, "127.0.0.1");
    lua_pop(L, 1); /* the string stays referenced by opts */
    /* clamped before any integer conversion: a huge double would be undefined behaviour */
    double port_n = opt_num(L, 1, "port", 0);
    if (port_n > 65535)
        return luaL_error(L, "option port must be 0..65535");
    int port = (int)port_n;
    o.backlog = (int)fmin(opt_num(L, 1, "backlog", o.backlog), 65535);
    double max_body = opt_num(L, 1, "max_body", (double)o.max_body);
    o.max_body = max_body >= 1.8e19 ? (size_t)-1 : (size_t)max_body;
    o.max_header_bytes = (size_t)fmin(opt_num(L, 1, "max_header_bytes", (double)o.max_header_bytes), 1 << 30);
    o.max_header_count = (int)fmin(opt_num(L, 1, "max_header_count", o.max_header_count), 1000000);
    o.header_timeout = opt_num(L, 1, "header_timeout", o.header_timeout);
    o.body_timeout = opt_num(L, 1, "body_timeout", o.body_timeout);
    o.idle_timeout = opt_num(L, 1, "idle_timeout", o.idle_timeout);

    struct lserver *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->L = h->L;
    luaL_setmetatable(L, SERVER_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    char err[256];
    int rc = server_listen(&ls->s, &h->net, host, port, &o, &callbacks, ls, err, sizeof err);
    if (rc < 0) {
        ls->s = NULL;
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushvalue(L, -1); /* anchored while listening: a server nobody references still serves */
    lua_rawsetp(L, LUA_REGISTRYINDEX, ls);
    lua_pushinteger(L, server_port(ls->s));
    return 2;
}

/* _server.close(handle): stops listening, closes idle connections; busy ones end after their
 * response. */
static int l_close(lua_State *L)
{
    struct lserver *ls = check_server(L);
    if (ls->s)
        server_close(ls->s);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, ls);
    return 0;
}

static void set_count(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* _server.stats(handle) → {connections, requests, rejected, open} */
static int l_stats(lua_State *L)
{
    struct lserver *ls = check_server(L);
    const struct server_stats *st = ls->s ? server_get_stats(ls->s) : &ls->last;
    lua_createtable(L, 0, 4);
    set_count(L, "connections", (long long)st->connections);
    set_count(L, "requests", (long long)st->requests);
    set_count(L, "rejected", (long long)st->rejected);
    set_count(L, "open", st->open);
    return 1;
}

static int server_gc(lua_State *L)
{
    struct lserver *ls = check_server(L);
    if (!ls->s)
        return 0;
    server_set_data(ls->s, NULL); /* this block goes away with the userdata */
    if (host_of(L)->closing)
        server_abort(ls->s); /* lua_close at shutdown: every connection closes now */
    ls->s = NULL;
    return 0;
}

static int add_header(struct server_response *r, lua_State *L, const char *name, size_t nlen,
                      char *err, size_t errlen)
{
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
        snprintf(err, errlen, "response header %.64s: values must be strings", name);
        return -1;
    }
    size_t vlen;
    const char *v = lua_tolstring(L, -1, &vlen);
    return server_response_header(r, name, nlen, v, vlen, err, errlen);
}

/* Headers name → value or name → {values...}; 0 or -1 with err. The table is at index t. */
static int fill_headers(lua_State *L, int t, struct server_response *r, char *err, size_t errlen)
{
    int rc = 0;
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "response header names must be strings");
            rc = -1;
        } else {
            size_t nlen;
            const char *name = lua_tolstring(L, -2, &nlen);
            if (lua_type(L, -1) == LUA_TTABLE) {
                lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
                    lua_rawgeti(L, -1, i);
                    rc = add_header(r, L, name, nlen, err, errlen);
                    lua_pop(L, 1);
                }
            } else {
                rc = add_header(r, L, name, nlen, err, errlen);
            }
        }
        lua_pop(L, 1);
    }
    if (rc)
        lua_pop(L, 1); /* the key of the interrupted lua_next */
    return rc;
}

/* _server.respond(request, status, headers|nil, body) → true (sent) | false (the connection is
 * gone or already answered) | nil, message (invalid: nothing was sent, the request still waits). */
static int l_respond(lua_State *L)
{
    struct lrequest *box = luaL_checkudata(L, 1, REQUEST_MT);
    int isnum = 0;
    lua_Integer status = lua_tointegerx(L, 2, &isnum);
    size_t blen = 0;
    const char *body = lua_isnoneornil(L, 4) ? "" : lua_tolstring(L, 4, &blen);
    char err[256];
    if (!box->c) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (!isnum || status < 0 || status > 999) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid status of type %s (expected an integer 200..599)", luaL_typename(L, 2));
        return 2;
    }
    if (!body) {
        lua_pushnil(L);
        lua_pushfstring(L, "body must be a string, got %s", luaL_typename(L, 4));
        return 2;
    }
    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3)) {
        lua_pushnil(L);
        lua_pushfstring(L, "headers must be a table, got %s", luaL_typename(L, 3));
        return 2;
    }
    struct server_response r;
    if (server_response_init(&r, (int)status, err, sizeof err) ||
        (lua_istable(L, 3) && fill_headers(L, 3, &r, err, sizeof err))) {
        server_response_free(&r);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    struct server_conn *c = box->c;
    box->c = NULL;
    lua_pushboolean(L, server_respond(c, &r, body, blen) == 0);
    return 1;
}

static int request_gc(lua_State *L)
{
    struct lrequest *box = luaL_checkudata(L, 1, REQUEST_MT);
    if (box->c) {
        struct server_conn *c = box->c;
        box->c = NULL;
        server_conn_release(c); /* its handler ended without answering */
    }
    return 0;
}

/* _server.pending(request) → true while the request still waits for its answer */
static int l_pending(lua_State *L)
{
    struct lrequest *box = luaL_checkudata(L, 1, REQUEST_MT);
    lua_pushboolean(L, box->c != NULL);
    return 1;
}

int luaopen_luafetch_server(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "listen", l_listen }, { "close", l_close }, { "stats", l_stats },
        { "respond", l_respond }, { "pending", l_pending }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, SERVER_MT)) {
        lua_pushcfunction(L, server_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, REQUEST_MT)) {
        lua_pushcfunction(L, request_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
