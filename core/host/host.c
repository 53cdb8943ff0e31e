/* host.c — struct host: start-up (loop, network layer, Lua state, module loaders) and orderly
 * shutdown. The host owns the Lua state (closed first, so task handles release their tasks),
 * then the network layer, then every remaining handle before uv_loop_close. */
#include "host.h"

#include <lauxlib.h>
#include <lualib.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_bindings.h"
#include "task.h"

/* Under AddressSanitizer every Lua block goes straight back to malloc, so ASan sees each free. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LUAFETCH_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LUAFETCH_ASAN 1
#endif
#ifdef LUAFETCH_ASAN
#define LUA_ALLOC_CACHE_BYTES 0
#else
#define LUA_ALLOC_CACHE_BYTES (16u * 1024 * 1024)
#endif

#ifndef LUAFETCH_SHAREDIR
#define LUAFETCH_SHAREDIR "/usr/local/share/luafetch"
#endif

static int load_embedded(lua_State *L)
{
    const struct embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "@[luafetch]/%s.lua", m->name);
    if (luaL_loadbuffer(L, m->source, m->len, chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* lua/ modules go to package.preload; embedded plugins to a table that boot.lua searches last,
 * so a plugin dropped into ./plugins or LUAFETCH_PLUGIN_PATH wins over the built-in copy. */
static void register_modules(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_luafetch_task);
    lua_setfield(L, -2, "_task");
    lua_pushcfunction(L, luaopen_luafetch_http);
    lua_setfield(L, -2, "_http");
    lua_pushcfunction(L, luaopen_luafetch_server);
    lua_setfield(L, -2, "_server");
    lua_pushcfunction(L, luaopen_luafetch_html);
    lua_setfield(L, -2, "_html");
    lua_pushcfunction(L, luaopen_luafetch_redis);
    lua_setfield(L, -2, "_redis");
    lua_pushcfunction(L, luaopen_luafetch_stats);
    lua_setfield(L, -2, "_stats");
    lua_newtable(L); /* embedded plugins */
    for (const struct embedded_module *m = embedded_modules; m->name; m++) {
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, strncmp(m->name, "plugins.", 8) == 0 ? -2 : -3, m->name);
    }
    /* boot(plugins, sharedir) sets the search paths */
    lua_getfield(L, -2, "boot");
    lua_call(L, 0, 1);
    lua_insert(L, -2);
    lua_pushstring(L, LUAFETCH_SHAREDIR);
    lua_call(L, 2, 0);
    lua_pop(L, 1);
}

int host_pcall(struct host *h, lua_CFunction fn, void *a, void *b)
{
    lua_State *L = h->L;
    int top = lua_gettop(L);
    int rc = LUA_ERRMEM;
    /* no room for the call itself (growing the stack failed): reported as what it is */
    if (lua_checkstack(L, 3)) {
        lua_pushcfunction(L, fn);
        lua_pushlightuserdata(L, a);
        lua_pushlightuserdata(L, b);
        rc = lua_pcall(L, 2, 0, 0);
    }
    if (rc != LUA_OK) {
        /* the message is copied: the value is popped, and a string may be collected after */
        const char *msg = lua_gettop(L) > top && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (msg)
            snprintf(h->error, sizeof h->error, "%s", msg);
        else if (rc == LUA_ERRMEM)
            snprintf(h->error, sizeof h->error, "not enough memory");
        else
            snprintf(h->error, sizeof h->error, "(error object is a %s value)",
                     lua_gettop(L) > top ? luaL_typename(L, -1) : "missing");
    }
    lua_settop(L, top);
    return rc;
}

struct signal_call {
    struct host *h;
    const char *name;
    int spawned;
};

/* Protected: spawns the task.on_signal handler, if there is one, with the signal's name. */
static int spawn_signal_handler(lua_State *L)
{
    struct signal_call *sc = lua_touserdata(L, 1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sc->h->sigint) != LUA_TFUNCTION)
        return 0;
    lua_pushstring(L, sc->name);
    task_spawn(L, 1);
    sc->spawned = 1;
    return 0;
}

/* SIGINT/SIGTERM: with a handler from task.on_signal, run it as a task (a graceful stop: the
 * handler stops schedules, lets requests finish, flushes sinks); without one, or on a second
 * signal, or when the handler cannot be started, end at once with the shell's status for it. */
static void on_signal(uv_signal_t *sig, int signum)
{
    struct host *h = sig->data;
    struct signal_call sc = { h, signum == SIGINT ? "SIGINT" : "SIGTERM", 0 };
    if (h->signals_seen++ == 0 && h->L) {
        if (host_pcall(h, spawn_signal_handler, &sc, NULL) != LUA_OK)
            fprintf(stderr, "%s: cannot start the %s handler: %s\n", h->progname, sc.name, h->error);
        if (sc.spawned)
            return;
    }
    fprintf(stderr, "%s: %s, stopping now\n", h->progname, sc.name);
    fflush(stdout);
    signal(signum, SIG_DFL);
    raise(signum);
}

/* Protected: the standard libraries, the task metatable and the module loaders. */
static int open_state(lua_State *L)
{
    luaL_openlibs(L);
    /* _task first: task handles need its metatable, also the main task's. */
    luaL_requiref(L, "_task", luaopen_luafetch_task, 0);
    lua_pop(L, 1);
    register_modules(L);
    return 0;
}

static int on_panic(lua_State *L)
{
    fprintf(stderr, "luafetch: unprotected Lua error: %s\n", lua_tostring(L, -1));
    return 0; /* then abort() */
}

int host_init(struct host *h)
{
    memset(h, 0, sizeof *h);
    h->progname = "luafetch";
    /* DNS lookups run on libuv's pool: give them room before the pool starts. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    signal(SIGPIPE, SIG_IGN);
    /* glibc raises its mmap threshold to the largest block freed so far: after a burst of
     * megabyte bodies, later ones come from a fragmented heap that never shrinks. Fixed, bodies
     * of 256 KiB and more are mapped and unmapped whole. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    int rc = uv_loop_init(&h->loop);
    if (rc)
        return rc;
    rc = net_init(&h->net, &h->loop);
    if (rc)
        return rc;
    uv_timer_init(&h->loop, &h->ready_timer);
    h->ready_timer.data = h;
    uv_signal_init(&h->loop, &h->sigint);
    uv_signal_init(&h->loop, &h->sigterm);
    h->sigint.data = h->sigterm.data = h;
    uv_signal_start(&h->sigint, on_signal, SIGINT);
    uv_signal_start(&h->sigterm, on_signal, SIGTERM);
    uv_unref((uv_handle_t *)&h->sigint);
    uv_unref((uv_handle_t *)&h->sigterm);

    h->lua_alloc.max_cached_bytes = LUA_ALLOC_CACHE_BYTES;
    /* LUAFETCH_LUA_CACHE=0 (valgrind, the allocation torture): every Lua block goes straight
     * back to malloc, so a checker sees each free and each allocation is a real malloc call. */
    const char *cache = getenv("LUAFETCH_LUA_CACHE");
    if (cache && !strcmp(cache, "0"))
        h->lua_alloc.max_cached_bytes = 0;
    h->L = lua_newstate(lua_alloc_fn, &h->lua_alloc);
    if (!h->L)
        return UV_ENOMEM;
    lua_atpanic(h->L, on_panic);
    *(struct host **)lua_getextraspace(h->L) = h;
    if (host_pcall(h, open_state, NULL, NULL) != LUA_OK) {
        fprintf(stderr, "%s: %s\n", h->progname, h->error);
        return UV_ENOMEM;
    }
    return 0;
}

void host_run(struct host *h)
{
    uv_run(&h->loop, UV_RUN_DEFAULT);
    if (h->tasks_alive > 0) {
        fprintf(stderr, "%s: %lld task(s) still waiting with nothing left to wake them (deadlock)\n",
                h->progname, h->tasks_alive);
        if (h->exit_code < LUAFETCH_EXIT_ERROR)
            h->exit_code = LUAFETCH_EXIT_ERROR;
    }
}

static void close_any(uv_handle_t *handle, void *arg)
{
    int *left = arg;
    if (!uv_is_closing(handle)) {
        (*left)++;
        uv_close(handle, NULL);
    }
}

int host_close(struct host *h)
{
    if (h->L) {
        task_cancel_all(h);
        h->closing = 1;
        lua_close(h->L);
        h->L = NULL;
        lua_alloc_release(&h->lua_alloc);
    }
    net_close(&h->net);
    uv_close((uv_handle_t *)&h->ready_timer, NULL);
    uv_close((uv_handle_t *)&h->sigint, NULL);
    uv_close((uv_handle_t *)&h->sigterm, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    /* Anything still open now is a handle nobody closed: close it so the loop can end. */
    int left = 0;
    uv_walk(&h->loop, close_any, &left);
    if (left)
        fprintf(stderr, "%s: warning: %d handle(s) left open at exit\n", h->progname, left);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    net_free(&h->net); /* every connection is closed and freed now: TLS configs can go */
    return uv_loop_close(&h->loop);
}
