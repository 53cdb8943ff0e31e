/* lua_redis.c — the `_redis` bindings under lua/queue.lua: a client per redis:// URL whose calls
 * (one command, or several pipelined in one round trip) yield the task like http.request does.
 * The userdata holds a pointer to the client (closed by :close, __close or __gc); a waiting task
 * holds only its call, which the client owns until done and the continuation frees. */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host.h"
#include "lua_bindings.h"
#include "lua_redis.h"
#include "redis.h"
#include "task.h"

#define CLIENT "luafetch.redis_client"
#define CALL_BOX "luafetch.redis_call"
#define ARGS LUA_REDIS_ARGS
#define MAX_ARGS 100000

/* How a call's replies come back to Lua (the continuation's ctx, with the box's stack index). */
enum { AS_VALUE, AS_LIST, AS_ENTRIES };

struct lua_redis {
    struct redis_client *c;     /* NULL once closed */
    double timeout;             /* seconds per call unless the call says (0: none) */
};

static struct lua_redis *check_client(lua_State *L)
{
    return luaL_checkudata(L, 1, CLIENT);
}

static int push_failure(lua_State *L, const char *msg, const char *kind)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, kind);
    return 3;
}

void lua_redis_push_reply(lua_State *L, const struct redis_reply *r)
{
    luaL_checkstack(L, 4, "redis reply nested too deeply");
    switch (r->type) {
    case REDIS_T_STRING:
    case REDIS_T_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_T_INTEGER:
        lua_pushinteger(L, (lua_Integer)r->integer);
        break;
    case REDIS_T_ERROR: /* inside an array or a pipeline: {err = "..."} */
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    case REDIS_T_ARRAY:
        lua_createtable(L, r->n > 0x7fffffff ? 0 : (int)r->n, 0);
        for (size_t i = 0; i < r->n; i++) {
            lua_redis_push_reply(L, &r->elem[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    default: /* nil, as Redis' own Lua scripting shows it */
        lua_pushboolean(L, 0);
        break;
    }
}

/* Commands that would turn the connection into something other than request/reply. */
static int refused_command(const char *name, size_t len)
{
    static const char *const names[] = { "subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                                         "punsubscribe", "sunsubscribe", "monitor", "sync", "psync",
                                         "quit", "reset", NULL };
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && !strncasecmp(names[i], name, len))
            return 1;
    return 0;
}

/* Appends the command in the table at idx to call; 0, or -1 with err set (the call is then
 * discarded whole). Arguments go straight into the call's buffer: no copy on the Lua side. */
static int append_command(lua_State *L, int idx, struct redis_call *call, const struct lua_redis_args *tail,
                          char *err, size_t errlen)
{
    if (!lua_istable(L, idx)) {
        snprintf(err, errlen, "a command is a table of strings and numbers");
        return -1;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n < 1 || n > MAX_ARGS) {
        snprintf(err, errlen, n < 1 ? "empty command" : "too many arguments");
        return -1;
    }
    if (tail && tail->n > MAX_ARGS * 100) {
        snprintf(err, errlen, "too many arguments");
        return -1;
    }
    if (redis_call_begin(call, (int)n + (tail ? tail->n : 0)))
        goto nomem;
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, idx, i);
        int rc;
        if (t == LUA_TSTRING) {
            size_t len;
            const char *p = lua_tolstring(L, -1, &len);
            if (i == 1 && refused_command(p, len)) {
                snprintf(err, errlen, "%s is not supported here (it changes what the connection is for)", p);
                lua_pop(L, 1);
                return -1;
            }
            rc = redis_call_arg(call, p, len);
        } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
            rc = redis_call_arg_int(call, (long long)lua_tointeger(L, -1));
        } else if (t == LUA_TNUMBER) {
            char num[64];
            int len = snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, -1));
            rc = redis_call_arg(call, num, (size_t)len);
        } else {
            snprintf(err, errlen, "argument %d of the command is a %s (strings and numbers only)",
                     (int)i, lua_typename(L, t));
            lua_pop(L, 1);
            return -1;
        }
        lua_pop(L, 1);
        if (rc)
            goto nomem;
    }
    if (tail && tail->len && redis_call_raw(call, tail->buf, tail->len))
        goto nomem;
    redis_call_end(call);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void on_done(struct redis_call *call)
{
    task_resume(call->data, 0);
}

/* The wait's op is the box on the task's stack: emptied here, so its __gc frees nothing twice. */
static void cancel_call(struct task *t)
{
    struct redis_call **box = t->wait.op;
    redis_call_cancel(*box);
    *box = NULL;
}

static int box_gc(lua_State *L)
{
    struct redis_call **box = luaL_checkudata(L, 1, CALL_BOX);
    redis_call_free(*box);
    *box = NULL;
    return 0;
}

static int is_str(const struct redis_reply *r, const char *s, size_t len)
{
    return (r->type == REDIS_T_STRING || r->type == REDIS_T_STATUS) && r->len == len && !memcmp(r->str, s, len);
}

const struct redis_reply *lua_redis_stream_entries(const struct redis_reply *r)
{
    if (r->type == REDIS_T_ARRAY && r->n >= 1 && r->elem[0].type == REDIS_T_ARRAY && r->elem[0].n >= 2 &&
        r->elem[0].elem[1].type == REDIS_T_ARRAY && r->elem[0].elem[1].n < 0x7fffffff)
        return &r->elem[0].elem[1];
    return NULL;
}

const struct redis_reply *lua_redis_entry_url(const struct redis_reply *e)
{
    const struct redis_reply *f = &e->elem[1];
    if (f->type == REDIS_T_ARRAY && f->n == 2 && is_str(&f->elem[0], "url", 3) && f->elem[1].type == REDIS_T_STRING)
        return &f->elem[1];
    return NULL;
}

/* A stream read's reply ([[stream, [[id, [field, value, ...]], ...]]], or nil) as three lists:
 * ids, urls (false where the entry is more than a url field), and the field lists of those others
 * by position: two tables per read instead of two per entry. */
static int push_entries(lua_State *L, const struct redis_reply *r)
{
    const struct redis_reply *list = lua_redis_stream_entries(r);
    int n = list ? (int)list->n : 0;
    luaL_checkstack(L, 6, "stream entries");
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    lua_createtable(L, 0, 0);
    for (int i = 0; i < n; i++) {
        const struct redis_reply *e = &list->elem[i];
        if (e->type != REDIS_T_ARRAY || e->n < 2 || e->elem[0].type != REDIS_T_STRING)
            continue;
        lua_pushlstring(L, e->elem[0].str, e->elem[0].len);
        lua_rawseti(L, -4, i + 1);
        const struct redis_reply *url = lua_redis_entry_url(e);
        if (url) {
            lua_pushlstring(L, url->str, url->len);
            lua_rawseti(L, -3, i + 1);
        } else {
            lua_pushboolean(L, 0);
            lua_rawseti(L, -3, i + 1);
            lua_redis_push_reply(L, &e->elem[1]); /* a deleted entry's nil comes as false */
            lua_rawseti(L, -2, i + 1);
        }
    }
    return 3;
}

/* Inside the resumed task: the call's outcome as Lua values, then the call is freed (by the box
 * if building them raises). ctx: the box's stack index times 4, plus AS_*. */
static int call_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    struct redis_call **box = luaL_checkudata(L, (int)(ctx >> 2), CALL_BOX);
    struct redis_call *call = *box;
    int n;
    ctx &= 3;
    if (call->err != REDIS_E_NONE) {
        n = push_failure(L, call->errmsg, redis_err_name(call->err));
    } else if (ctx == AS_ENTRIES && call->replies[0]->type != REDIS_T_ERROR) {
        n = lua_isnil(L, 4) ? push_entries(L, call->replies[0]) : lua_redis_ledger_take_read(L, 4, call->replies[0]);
    } else if (ctx == AS_LIST) {
        lua_createtable(L, call->ncmds, 0);
        for (int i = 0; i < call->ncmds; i++) {
            lua_redis_push_reply(L, call->replies[i]);
            lua_rawseti(L, -2, i + 1);
        }
        n = 1;
    } else if (call->replies[0]->type == REDIS_T_ERROR) {
        n = push_failure(L, call->replies[0]->str, "server");
    } else {
        lua_redis_push_reply(L, call->replies[0]);
        n = 1;
    }
    redis_call_free(call);
    *box = NULL;
    return n;
}

/* client:call(args [, timeout [, tail]]), client:read_entries(args [, timeout [, ledger]]) or
 * client:pipeline({args, ...} [, timeout]). Yields. With a ledger, read_entries puts the entries
 * that are a url alone into it and returns their count, then the others' ids and fields. */
static int start_call(lua_State *L, int mode)
{
    struct lua_redis *lr = check_client(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    double timeout = luaL_optnumber(L, 3, lr->timeout);
    const struct lua_redis_args *tail = mode == AS_VALUE && !lua_isnoneornil(L, 4) ? luaL_checkudata(L, 4, ARGS) : NULL;
    if (mode == AS_ENTRIES && !lua_isnoneornil(L, 4))
        luaL_checkudata(L, 4, LUA_REDIS_LEDGER);
    struct task *t = task_check_current(L, mode == AS_LIST ? "redis pipeline" : "redis call");
    lua_settop(L, 4); /* the box goes to 5: the continuation finds a ledger at 4 */
    if (!lr->c)
        return push_failure(L, "the redis client is closed", "invalid");
    struct redis_call **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, CALL_BOX);
    int box_idx = lua_gettop(L);
    struct redis_call *call = *box = redis_call_new();
    if (!call)
        return push_failure(L, "out of memory", "invalid");
    char err[256];
    int rc = 0;
    if (mode == AS_LIST) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
        if (n < 1)
            rc = -1, snprintf(err, sizeof err, "an empty pipeline");
        for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
            lua_rawgeti(L, 2, i);
            rc = append_command(L, lua_gettop(L), call, NULL, err, sizeof err);
            lua_pop(L, 1);
        }
    } else {
        rc = append_command(L, 2, call, tail, err, sizeof err);
    }
    if (rc)
        return push_failure(L, err, "invalid"); /* the box frees the call */
    call->done = on_done;
    call->data = t;
    redis_call_start(lr->c, call, timeout > 0 ? timeout : 0);
    /* the box stays on the task's stack: the continuation finds it there */
    return task_yieldk(L, t, cancel_call, box, (lua_KContext)box_idx * 4 + mode, call_cont);
}

static int l_call(lua_State *L)
{
    return start_call(L, AS_VALUE);
}

static int l_pipeline(lua_State *L)
{
    return start_call(L, AS_LIST);
}

static int l_read_entries(lua_State *L)
{
    return start_call(L, AS_ENTRIES);
}

/* ---- argument lists ---------------------------------------------------------------------- */

int lua_redis_args_reserve(struct lua_redis_args *a, size_t more)
{
    if (a->len + more <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 1024;
    while (cap < a->len + more)
        cap *= 2;
    char *b = realloc(a->buf, cap);
    if (!b)
        return -1;
    a->buf = b;
    a->cap = cap;
    return 0;
}

/* The decimal digits of v, ending at end; returns where they start. */
static char *digits(char *end, unsigned long long v)
{
    do
        *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

void lua_redis_args_push_moved(lua_State *L, struct lua_redis_args *from)
{
    struct lua_redis_args *a = lua_newuserdatauv(L, sizeof *a, 0);
    *a = *from;
    memset(from, 0, sizeof *from);
    luaL_setmetatable(L, ARGS);
}

/* _redis.args() → an empty argument list for client:call's tail */
static int l_args(lua_State *L)
{
    struct lua_redis_args *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, ARGS);
    return 1;
}

/* args:add(...) appends strings and numbers; returns args */
static int l_args_add(lua_State *L)
{
    struct lua_redis_args *a = luaL_checkudata(L, 1, ARGS);
    int top = lua_gettop(L);
    for (int i = 2; i <= top; i++) {
        size_t len;
        const char *p;
        char num[64];
        int t = lua_type(L, i);
        if (t == LUA_TSTRING) {
            p = lua_tolstring(L, i, &len);
        } else if (t == LUA_TNUMBER) {
            if (lua_isinteger(L, i)) {
                lua_Integer v = lua_tointeger(L, i);
                char *d = digits(num + sizeof num, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
                if (v < 0)
                    *--d = '-';
                len = (size_t)(num + sizeof num - d);
                memmove(num, d, len);
            } else
                len = (size_t)snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, i));
            p = num;
        } else {
            return luaL_argerror(L, i, "strings and numbers only");
        }
        if (lua_redis_args_reserve(a, len + 32))
            return luaL_error(L, "not enough memory");
        lua_redis_args_put(a, p, len);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_args_count(lua_State *L)
{
    struct lua_redis_args *a = luaL_checkudata(L, 1, ARGS);
    lua_pushinteger(L, a->n);
    return 1;
}

/* args:list() → the arguments as strings, in order (for tests and debugging) */
static int l_args_list(lua_State *L)
{
    struct lua_redis_args *a = luaL_checkudata(L, 1, ARGS);
    lua_createtable(L, a->n, 0);
    size_t pos = 0;
    for (int i = 1; i <= a->n && pos < a->len; i++) {
        char *end;
        size_t len = strtoul(a->buf + pos + 1, &end, 10); /* $len CRLF bytes CRLF */
        const char *p = end + 2;
        lua_pushlstring(L, p, len);
        lua_rawseti(L, -2, i);
        pos = (size_t)(p - a->buf) + len + 2;
    }
    return 1;
}

static int l_args_gc(lua_State *L)
{
    struct lua_redis_args *a = luaL_checkudata(L, 1, ARGS);
    free(a->buf);
    memset(a, 0, sizeof *a);
    return 0;
}

static void set_int(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L)
{
    struct lua_redis *lr = check_client(L);
    lua_createtable(L, 0, 6);
    if (!lr->c)
        return 1;
    const struct redis_stats *s = redis_client_stats(lr->c);
    set_int(L, "calls", (long long)s->calls);
    set_int(L, "commands", (long long)s->commands);
    set_int(L, "connects", (long long)s->connects);
    set_int(L, "connect_failures", (long long)s->connect_failures);
    set_int(L, "timeouts", (long long)s->timeouts);
    lua_pushboolean(L, s->connected);
    lua_setfield(L, -2, "connected");
    return 1;
}

static int l_address(lua_State *L)
{
    struct lua_redis *lr = check_client(L);
    lua_pushstring(L, lr->c ? redis_client_address(lr->c) : "(closed)");
    return 1;
}

static int l_close(lua_State *L)
{
    struct lua_redis *lr = luaL_checkudata(L, 1, CLIENT);
    if (lr->c) /* at exit too (lua_close): its handles close before the loop ends */
        redis_client_close(lr->c);
    lr->c = NULL;
    return 0;
}

/* _redis.connect(url [, {timeout=, connect_timeout=}]) → client | nil, msg, "invalid".
 * Nothing is sent yet: the first call connects. */
static int l_connect(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    struct redis_config cfg;
    char err[256];
    if (redis_url_parse(url, &cfg, err, sizeof err))
        return push_failure(L, err, "invalid");
    double timeout = 10;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "timeout");
        if (lua_isnumber(L, -1))
            timeout = lua_tonumber(L, -1);
        lua_getfield(L, 2, "connect_timeout");
        if (lua_isnumber(L, -1) && lua_tonumber(L, -1) > 0)
            cfg.connect_timeout = lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    struct lua_redis *lr = lua_newuserdatauv(L, sizeof *lr, 0);
    lr->c = NULL;
    lr->timeout = timeout > 0 ? timeout : 0;
    luaL_setmetatable(L, CLIENT);
    struct host *h = host_of(L);
    lr->c = redis_client_new(&h->loop, h->net.dns, &cfg);
    redis_config_free(&cfg);
    if (!lr->c)
        return push_failure(L, "out of memory", "invalid");
    return 1;
}

int luaopen_luafetch_redis(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "call", l_call }, { "pipeline", l_pipeline }, { "read_entries", l_read_entries }, { "stats", l_stats },
        { "address", l_address }, { "close", l_close }, { NULL, NULL },
    };
    static const luaL_Reg funcs[] = { { "connect", l_connect }, { "args", l_args },
                                      { "ledger", lua_redis_ledger_new }, { NULL, NULL } };
    static const luaL_Reg args_methods[] = { { "add", l_args_add }, { "count", l_args_count },
                                                   { "list", l_args_list }, { NULL, NULL } };
    if (luaL_newmetatable(L, CLIENT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ARGS)) {
        luaL_newlib(L, args_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_args_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, CALL_BOX)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_redis_ledger_register(L);
    luaL_newlib(L, funcs);
    return 1;
}
