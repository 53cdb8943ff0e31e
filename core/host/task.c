/* task.c — Lua coroutines run as tasks: spawn, suspend on I/O, wake, finish, cancel.
 * The only place that calls lua_resume; what is built on the main state around it goes through
 * host_pcall. A task is freed once it has finished and its Lua handle has been collected; its
 * sleep timer, if it ever slept, is freed in the timer's close callback. */
#include "task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define TASK_HANDLE "luafetch.task"

/* How a task ended, for finish. */
enum { TASK_RETURNED, TASK_FAILED, TASK_CANCELED };

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
    /* Everything that can raise comes first, and an error leaves nothing behind: the task is
     * registered by one last registry write, and until then the handle's __gc frees it. */
    struct task **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, TASK_HANDLE);
    lua_State *co = lua_newthread(L);
    if (!lua_checkstack(co, nargs + 1))
        luaL_error(L, "too many arguments for a task");
    struct task *t = calloc(1, sizeof *t);
    if (!t)
        luaL_error(L, "not enough memory");
    t->host = h;
    t->co = co;
    t->result_ref = LUA_NOREF;
    t->state = TASK_DONE; /* not scheduled yet: what __gc needs to free it */
    t->handle_alive = 1;
    *box = t;
    lua_pushvalue(L, -2); /* registry[co] = handle: both anchored while unfinished */
    lua_rawset(L, LUA_REGISTRYINDEX);

    /* nothing below raises */
    lua_insert(L, -(nargs + 2)); /* the handle below the function and its arguments */
    lua_xmove(L, co, nargs + 1);
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

void task_handle_gc(struct task *t, lua_State *L)
{
    t->handle_alive = 0;
    if (t->result_ref != LUA_NOREF && !t->host->closing) {
        luaL_unref(L, LUA_REGISTRYINDEX, t->result_ref);
        t->result_ref = LUA_NOREF;
    }
    maybe_free(t);
}

int task_is_thread(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTHREAD)
        return 0;
    lua_pushvalue(L, idx);
    int is = lua_rawget(L, LUA_REGISTRYINDEX) == LUA_TUSERDATA;
    lua_pop(L, 1);
    return is;
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

int task_yieldk(lua_State *L, struct task *t, void (*cancel)(struct task *), void *op,
                lua_KContext ctx, lua_KFunction k)
{
    t->state = TASK_WAITING;
    t->wait.cancel = cancel;
    t->wait.op = op;
    return lua_yieldk(L, 0, ctx, k);
}

int task_yield(lua_State *L, struct task *t, void (*cancel)(struct task *), void *op)
{
    return task_yieldk(L, t, cancel, op, 0, NULL);
}

int task_push_results(struct task *t, lua_State *L)
{
    if (t->lost) {
        luaL_checkstack(L, 2, "no room for a task's results");
        lua_pushboolean(L, 0);
        lua_pushstring(L, t->lost);
        return 2;
    }
    luaL_checkstack(L, t->nres + 2, "too many results from a task");
    lua_pushboolean(L, t->ok);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
    int tbl = lua_gettop(L);
    for (int i = 1; i <= t->nres; i++)
        lua_rawgeti(L, tbl, i);
    lua_remove(L, tbl);
    return t->nres + 1;
}

/* Protected (main state): prints a task's error. The value is copied from the dead coroutine,
 * whose frames are still there for the traceback; its __index or __tostring may raise. */
static int report_error(lua_State *L)
{
    struct task *t = lua_touserdata(L, 1);
    struct host *h = t->host;
    lua_State *co = t->co;
    if (!lua_checkstack(co, 1))
        return luaL_error(L, "not enough memory");
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    int err = lua_gettop(L);
    /* error({exit_code = N, message = "..."}): a deliberate exit, not a crash. */
    if (lua_istable(L, err)) {
        lua_getfield(L, err, "exit_code");
        if (lua_isinteger(L, -1)) {
            int code = (int)lua_tointeger(L, -1);
            lua_getfield(L, err, "message");
            const char *msg = lua_tostring(L, -1);
            if (msg)
                fprintf(stderr, "%s: %s\n", h->progname, msg);
            if (code > h->exit_code)
                h->exit_code = code;
            return 0;
        }
    }
    const char *msg = luaL_tolstring(L, err, NULL);
    luaL_traceback(L, co, msg, 0);
    fprintf(stderr, "%s: task error: %s\n", h->progname, lua_tostring(L, -1));
    if (h->exit_code < LUAFETCH_EXIT_ERROR)
        h->exit_code = LUAFETCH_EXIT_ERROR;
    return 0;
}

/* Protected (main state): moves what the task ended with (t->nres values on its stack, or its
 * error value, copied so its __close handlers still see it) into a table in the registry. */
static int keep_results(lua_State *L)
{
    struct task *t = lua_touserdata(L, 1);
    int how = *(int *)lua_touserdata(L, 2);
    lua_State *co = t->co;
    lua_createtable(L, t->nres, 0);
    if (how == TASK_CANCELED) {
        lua_pushliteral(L, "task canceled");
    } else {
        luaL_checkstack(L, t->nres, "too many results from a task");
        if (how == TASK_FAILED) {
            if (!lua_checkstack(co, 1))
                return luaL_error(L, "not enough memory");
            lua_pushvalue(co, -1);
        }
        lua_xmove(co, L, t->nres);
    }
    for (int i = t->nres; i >= 1; i--)
        lua_rawseti(L, -(i + 1), i);
    t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Protected (main state): registry[co] = nil, so the coroutine and the handle can be collected. */
static int unanchor(lua_State *L)
{
    struct task *t = lua_touserdata(L, 1);
    lua_pushthread(t->co);
    lua_xmove(t->co, L, 1);
    lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Runs the coroutine's pending __close handlers and empties its stack. For a canceled task an
 * error raised there is reported (a failed task's status is its own error again). */
static void close_thread(struct task *t)
{
    lua_State *co = t->co;
    if (lua_resetthread(co) != LUA_OK && t->canceling) {
        fprintf(stderr, "%s: error while closing a canceled task: %s\n", t->host->progname,
                lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "(not a string)");
    }
    lua_settop(co, 0);
}

/* The coroutine returned (nres values on top), died (error value on top) or was canceled (closed
 * already). Never raises: every step on the main state is protected, and when the results cannot
 * be kept the task fails with the reason instead. */
static void finish(struct task *t, int how, int nres)
{
    struct host *h = t->host;
    lua_State *co = t->co;
    if (how == TASK_FAILED && !t->joiners && host_pcall(h, report_error, t, NULL) != LUA_OK) {
        fprintf(stderr, "%s: task error: (an error value of type %s that cannot be shown: %s)\n",
                h->progname, luaL_typename(co, -1), h->error);
        if (h->exit_code < LUAFETCH_EXIT_ERROR)
            h->exit_code = LUAFETCH_EXIT_ERROR;
    }
    t->ok = how == TASK_RETURNED;
    t->nres = t->ok ? nres : 1;
    int rc = host_pcall(h, keep_results, t, &how);
    if (rc != LUA_OK) {
        t->ok = 0;
        t->nres = 0;
        t->lost = rc == LUA_ERRMEM ? "not enough memory" : "too many results from a task";
    }
    if (how == TASK_FAILED)
        close_thread(t); /* after the traceback: it unwinds the frames */
    else
        lua_settop(co, 0);
    /* A failure here only keeps the coroutine until lua_close. */
    host_pcall(h, unanchor, t, NULL);

    t->state = TASK_DONE;
    if (t->alive_prev)
        t->alive_prev->alive_next = t->alive_next;
    else
        h->alive = t->alive_next;
    if (t->alive_next)
        t->alive_next->alive_prev = t->alive_prev;
    h->tasks_alive--;
    t->co = NULL;

    /* each joiner takes the results itself when it runs (join's continuation) */
    while (t->joiners) {
        struct task *j = t->joiners;
        t->joiners = j->join_next;
        j->join_next = NULL;
        j->joining = NULL;
        task_wake(j, 0);
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
    finish(t, rc == LUA_OK ? TASK_RETURNED : TASK_FAILED, nres);
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
    close_thread(t);
    finish(t, TASK_CANCELED, 0);
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
