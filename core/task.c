/* task.c — Lua coroutines run as tasks: spawn, suspend on I/O, wake, finish, cancel.
 * The only place that calls lua_resume. A task is freed once it has finished and its Lua handle
 * has been collected; its sleep timer, if it ever slept, is freed in the timer's close callback. */
#include "task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define TASK_HANDLE "luafetch.task"

static void free_timer_cb(uv_handle_t *h)
{
    free(h);
}

static void maybe_free(struct task *t)
{
    if (t->state != TASK_DONE || t->handle_alive)
        return;
    if (t->timer)
        uv_close((uv_handle_t *)t->timer, free_timer_cb);
    free(t);
}

static void ready_push(struct host *h, struct task *t)
{
    t->ready_next = NULL;
    if (h->ready_tail)
        h->ready_tail->ready_next = t;
    else
        h->ready_head = t;
    h->ready_tail = t;
    if (!uv_is_active((uv_handle_t *)&h->ready_timer))
        uv_timer_start(&h->ready_timer, task_on_ready_timer, 0, 0);
}

static void ready_remove(struct host *h, struct task *t)
{
    struct task *prev = NULL;
    for (struct task *p = h->ready_head; p; prev = p, p = p->ready_next) {
        if (p != t)
            continue;
        if (prev)
            prev->ready_next = p->ready_next;
        else
            h->ready_head = p->ready_next;
        if (h->ready_tail == p)
            h->ready_tail = prev;
        p->ready_next = NULL;
        return;
    }
}

struct task *task_spawn(lua_State *L, int nargs)
{
    struct host *h = host_of(L);
    struct task *t = calloc(1, sizeof *t);
    if (!t)
        luaL_error(L, "out of memory");
    t->host = h;
    t->result_ref = LUA_NOREF;
    t->co = lua_newthread(L);
    t->thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!lua_checkstack(t->co, nargs + 1)) {
        luaL_unref(L, LUA_REGISTRYINDEX, t->thread_ref);
        free(t);
        luaL_error(L, "too many arguments for a task");
    }
    lua_xmove(L, t->co, nargs + 1);

    struct task **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = t;
    luaL_setmetatable(L, TASK_HANDLE);
    t->handle_alive = 1;
    lua_pushvalue(L, -1); /* registry[t] = handle while unfinished, for task.current() */
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);

    t->alive_next = h->alive;
    if (h->alive)
        h->alive->alive_prev = t;
    h->alive = t;
    h->tasks_alive++;
    t->state = TASK_NEW;
    t->nwake = nargs;
    ready_push(h, t);
    return t;
}

struct task *task_from_handle(lua_State *L, int idx)
{
    struct task **box = luaL_checkudata(L, idx, TASK_HANDLE);
    return *box;
}

void task_handle_gc(struct task *t)
{
    t->handle_alive = 0;
    if (t->result_ref != LUA_NOREF && !t->host->closing) {
        luaL_unref(t->host->L, LUA_REGISTRYINDEX, t->result_ref);
        t->result_ref = LUA_NOREF;
    }
    maybe_free(t);
}

struct task *task_check_current(lua_State *L, const char *fn)
{
    struct host *h = host_of(L);
    struct task *t = h->current;
    if (!t || t->co != L)
        luaL_error(L, "%s must be called from a task (not from the main state or a nested coroutine)", fn);
    /* Checked before any I/O starts: a yield through a C function (string.gsub, table.sort, a
     * metamethod called from C) cannot come back. */
    if (!lua_isyieldable(L))
        luaL_error(L, "%s cannot wait here: it was called through a C function (such as string.gsub "
                      "or table.sort) that cannot be suspended", fn);
    return t;
}

int task_yield(lua_State *L, struct task *t, void (*cancel)(struct task *), void *op)
{
    t->state = TASK_WAITING;
    t->wait.cancel = cancel;
    t->wait.op = op;
    return lua_yield(L, 0);
}

/* Pushes `ok, values...` of a finished task onto L; returns the count. */
static int push_results(struct task *t, lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 1, "too many results");
    lua_getfield(L, -1, "ok");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -2 - (i - 1), i);
    lua_remove(L, -(n + 2));
    return n + 1;
}

int task_push_results(struct task *t, lua_State *L)
{
    return push_results(t, L);
}

static void report_error(struct task *t, lua_State *co)
{
    struct host *h = t->host;
    /* error({exit_code = N, message = "..."}): a deliberate exit, not a crash. */
    if (lua_istable(co, -1)) {
        lua_getfield(co, -1, "exit_code");
        if (lua_isinteger(co, -1)) {
            int code = (int)lua_tointeger(co, -1);
            lua_getfield(co, -2, "message");
            const char *msg = lua_tostring(co, -1);
            if (msg)
                fprintf(stderr, "%s: %s\n", h->progname, msg);
            lua_pop(co, 2);
            if (code > h->exit_code)
                h->exit_code = code;
            return;
        }
        lua_pop(co, 1);
    }
    const char *msg = luaL_tolstring(co, -1, NULL);
    luaL_traceback(co, co, msg, 0);
    fprintf(stderr, "%s: task error: %s\n", h->progname, lua_tostring(co, -1));
    lua_pop(co, 2);
    if (h->exit_code < LUAFETCH_EXIT_ERROR)
        h->exit_code = LUAFETCH_EXIT_ERROR;
}

/* The coroutine returned (nres values on top), died (error value on top) or was canceled. */
static void finish(struct task *t, int ok, int nres, int canceled)
{
    struct host *h = t->host;
    lua_State *co = t->co;
    lua_State *L = h->L;
    luaL_checkstack(L, nres + 3, "too many results from a task");
    lua_createtable(L, nres > 0 ? nres : 1, 2);
    if (ok) {
        lua_xmove(co, L, nres);
        for (int i = nres; i >= 1; i--)
            lua_rawseti(L, -(i + 1), i);
    } else if (canceled) {
        lua_pushliteral(L, "task canceled");
        lua_rawseti(L, -2, 1);
        nres = 1;
    } else {
        if (!t->joiners)
            report_error(t, co);
        lua_xmove(co, L, 1);
        lua_rawseti(L, -2, 1);
        nres = 1;
        lua_resetthread(co); /* closes pending to-be-closed variables */
    }
    lua_pushboolean(L, ok);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, t);

    t->state = TASK_DONE;
    if (t->alive_prev)
        t->alive_prev->alive_next = t->alive_next;
    else
        h->alive = t->alive_next;
    if (t->alive_next)
        t->alive_next->alive_prev = t->alive_prev;
    h->tasks_alive--;
    luaL_unref(L, LUA_REGISTRYINDEX, t->thread_ref);
    t->thread_ref = LUA_NOREF;
    t->co = NULL;

    while (t->joiners) {
        struct task *j = t->joiners;
        t->joiners = j->join_next;
        j->join_next = NULL;
        j->joining = NULL;
        int n = push_results(t, j->co);
        task_wake(j, n);
    }
    maybe_free(t);
}

void task_resume(struct task *t, int nargs)
{
    struct host *h = t->host;
    struct task *prev = h->current;
    h->current = t;
    t->state = TASK_RUNNING;
    t->wait.cancel = NULL;
    t->wait.op = NULL;
    int nres = 0;
    int rc = lua_resume(t->co, h->L, nargs, &nres);
    h->current = prev;
    if (rc == LUA_YIELD) {
        lua_pop(t->co, nres);
        if (t->state == TASK_RUNNING) {
            /* A bare coroutine.yield() in a task: give others a turn. */
            t->state = TASK_WAITING;
            task_wake(t, 0);
        }
        return;
    }
    if (rc == LUA_OK) {
        finish(t, 1, nres, 0);
    } else {
        /* keep only the error value for finish */
        finish(t, 0, 0, 0);
    }
}

void task_wake(struct task *t, int nargs)
{
    t->nwake = nargs;
    t->state = TASK_READY;
    t->wait.cancel = NULL;
    ready_push(t->host, t);
}

void task_on_ready_timer(uv_timer_t *timer)
{
    struct host *h = timer->data;
    /* Only the tasks ready now: a task that keeps yielding must not starve I/O. */
    int n = 0;
    for (struct task *p = h->ready_head; p; p = p->ready_next)
        n++;
    while (n-- > 0 && h->ready_head) {
        struct task *t = h->ready_head;
        h->ready_head = t->ready_next;
        if (!h->ready_head)
            h->ready_tail = NULL;
        t->ready_next = NULL;
        task_resume(t, t->nwake);
    }
    if (h->ready_head)
        uv_timer_start(&h->ready_timer, task_on_ready_timer, 0, 0);
}

void task_cancel(struct task *t)
{
    struct host *h = t->host;
    /* canceling: a __close handler run below may cancel this task again */
    if (t->state == TASK_DONE || t->state == TASK_RUNNING || t->canceling)
        return;
    t->canceling = 1;
    if (t->state == TASK_WAITING && t->wait.cancel)
        t->wait.cancel(t);
    t->wait.cancel = NULL;
    if (t->state == TASK_READY || t->state == TASK_NEW)
        ready_remove(h, t);
    lua_State *co = t->co;
    /* runs pending __close handlers and empties the stack; an error raised there is reported */
    if (lua_resetthread(co) != LUA_OK) {
        fprintf(stderr, "%s: error while closing a canceled task: %s\n", h->progname,
                lua_isstring(co, -1) ? lua_tostring(co, -1) : "(not a string)");
        lua_settop(co, 0);
    }
    finish(t, 0, 0, 1);
}

void task_cancel_all(struct host *h)
{
    while (h->alive) {
        struct task *t = h->alive;
        if (t->state == TASK_RUNNING)
            break; /* cannot happen from the loop; guard against spinning */
        task_cancel(t);
    }
}
