/* host.h — struct host: the loop, the network layer, the Lua state and the task scheduler.
 * main.c owns the host (host_init/host_run/host_close); everything else borrows it. */
#ifndef LUAFETCH_HOST_H
#define LUAFETCH_HOST_H

#include <lua.h>
#include <uv.h>

#include "lua_alloc.h"
#include "net.h"

#define LUAFETCH_EXIT_OK 0
#define LUAFETCH_EXIT_ERROR 1
#define LUAFETCH_EXIT_USAGE 2

struct task;

struct host {
    uv_loop_t loop;
    struct net net;
    lua_State *L;
    struct lua_alloc lua_alloc;     /* Lua's allocator caches; released after lua_close */
    struct task *current;           /* the task running now, NULL in callbacks */
    struct task *alive;             /* every unfinished task (doubly linked) */
    long long tasks_alive;
    struct task *ready_head, *ready_tail;   /* woken tasks to resume next turn */
    uv_timer_t ready_timer;
    uv_signal_t sigint, sigterm;    /* unref'd: they never keep the program alive */
    int signals_seen;
    int exit_code;
    int closing;
    const char *progname;
    char error[1024];               /* the message of the last host_pcall that failed */
};

int host_init(struct host *h);
/* Runs the loop until every task has ended. */
void host_run(struct host *h);
/* Closes Lua, then every handle; returns uv_loop_close's result (0 when nothing leaked). */
int host_close(struct host *h);
/* The one protected entry from C callbacks (libuv, request completion, signals, start-up) into
 * Lua: runs fn on the main state under lua_pcall with a and b as light userdata arguments 1 and 2
 * (fn returns nothing). Returns LUA_OK, or an error status with h->error set to the message;
 * either way the main state's stack is left as it was. */
int host_pcall(struct host *h, lua_CFunction fn, void *a, void *b);
/* The host of a Lua state (kept in the state's extra space). */
static inline struct host *host_of(lua_State *L)
{
    return *(struct host **)lua_getextraspace(L);
}

#endif
