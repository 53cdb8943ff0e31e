/* lua_task.c — the `_task` bindings under lua/task.lua: spawn, join, cancel, sleep, now (real or
 * virtual clock), suspend, wake.
 * Handles are userdata boxes holding a task pointer; the task outlives its handle when running. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "lua_bindings.h"
#include "task.h"

#define TASK_HANDLE "luafetch.task"

static int l_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    task_spawn(L, lua_gettop(L) - 1);
    return 1;
}

static void cancel_join(struct task *t)
{
    struct task *target = t->joining;
    if (!target)
        return;
    for (struct task **pp = &target->joiners; *pp; pp = &(*pp)->join_next) {
        if (*pp == t) {
            *pp = t->join_next;
            break;
        }
    }
    t->join_next = NULL;
    t->joining = NULL;
}

/* Runs in the joiner once the target has finished: the results are copied here, inside the
 * joiner's own (protected) resume, where running out of room is an ordinary Lua error. */
static int join_cont(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return task_push_results(task_from_handle(L, 1), L);
}

static int l_join(lua_State *L)
{
    struct task *target = task_from_handle(L, 1);
    if (!target)
        return luaL_error(L, "task handle already released");
    if (target->state == TASK_DONE)
        return task_push_results(target, L);
    struct task *self = task_check_current(L, "join");
    if (self == target)
        return luaL_error(L, "a task cannot join itself");
    self->joining = target;
    self->join_next = target->joiners;
    target->joiners = self;
    return task_yieldk(L, self, cancel_join, target, 0, join_cont);
}

static int l_cancel(lua_State *L)
{
    struct task *t = task_from_handle(L, 1);
    if (!t || t->state == TASK_DONE || t->canceling) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (t->state == TASK_RUNNING)
        return luaL_error(L, "a task cannot cancel itself (return or raise an error instead)");
    task_cancel(t);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_status(lua_State *L)
{
    static const char *const names[] = { "ready", "ready", "running", "waiting", "done" };
    struct task *t = task_from_handle(L, 1);
    lua_pushstring(L, t ? names[t->state] : "done");
    return 1;
}

static int l_gc(lua_State *L)
{
    struct task **box = luaL_checkudata(L, 1, TASK_HANDLE);
    if (*box) {
        task_handle_gc(*box, L);
        *box = NULL;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    struct task *t = task_from_handle(L, 1);
    lua_pushfstring(L, "task (%p)", (void *)t);
    return 1;
}

static void on_sleep_done(uv_timer_t *timer)
{
    struct task *t = timer->data;
    task_resume(t, 0);
}

static void cancel_sleep(struct task *t)
{
    uv_timer_stop(t->timer);
}

/* The virtual clock (`--clock virtual`, cassette.use): task.now reads vc.now, and a sleep is an
 * entry in vc.sleepers (sorted by deadline, then by arrival) instead of a libuv timer. The driver,
 * a 0 ms timer alive while sleepers wait, moves vc.now to the first deadline and wakes its tasks
 * whenever no task is ready and no request is in flight; while one is (a replay miss sent to the
 * network), it looks again 1 ms later, so real I/O runs as usual. One host per process: static.
 * The driver is malloc'd, and closed (freed in its close callback) once no sleeper is left. */
struct sleeper {
    double deadline;
    struct task *task;
};
static struct {
    int on;
    double now;                 /* seconds, continuing the monotonic clock it started from */
    struct sleeper *sleepers;   /* owned; grown by doubling */
    size_t n, cap;
    uv_timer_t *driver;
} vc;

static void free_driver(uv_handle_t *h)
{
    free(h);
}

static void on_vtick(uv_timer_t *timer)
{
    struct host *h = timer->data;
    if (h->ready_head || h->net.stats.in_flight > 0) {
        uv_timer_start(timer, on_vtick, h->ready_head ? 0 : 1, 0);
        return;
    }
    if (vc.n > 0) {
        if (vc.sleepers[0].deadline > vc.now)
            vc.now = vc.sleepers[0].deadline;
        /* every sleeper due now, in order; one resumed may add sleepers (later ones) */
        while (vc.n > 0 && vc.sleepers[0].deadline <= vc.now) {
            struct task *t = vc.sleepers[0].task;
            vc.n--;
            memmove(vc.sleepers, vc.sleepers + 1, vc.n * sizeof *vc.sleepers);
            task_resume(t, 0);
        }
    }
    if (vc.driver != timer)
        return; /* closed by a cancel while tasks ran (and perhaps replaced by a new sleep) */
    if (vc.n > 0) {
        uv_timer_start(timer, on_vtick, 0, 0);
    } else {
        uv_close((uv_handle_t *)timer, free_driver);
        vc.driver = NULL;
    }
}

static void cancel_vsleep(struct task *t)
{
    for (size_t i = 0; i < vc.n; i++) {
        if (vc.sleepers[i].task == t) {
            vc.n--;
            memmove(vc.sleepers + i, vc.sleepers + i + 1, (vc.n - i) * sizeof *vc.sleepers);
            break;
        }
    }
    if (vc.n == 0 && vc.driver) {
        uv_close((uv_handle_t *)vc.driver, free_driver);
        vc.driver = NULL;
    }
    if (vc.n == 0 && !vc.on) {
        free(vc.sleepers);
        vc.sleepers = NULL;
        vc.cap = 0;
    }
}

static int vsleep(lua_State *L, struct task *t, double s)
{
    struct host *h = host_of(L);
    if (vc.n == vc.cap) {
        size_t cap = vc.cap ? vc.cap * 2 : 16;
        struct sleeper *grown = realloc(vc.sleepers, cap * sizeof *grown);
        if (!grown)
            return luaL_error(L, "out of memory");
        vc.sleepers = grown;
        vc.cap = cap;
    }
    if (!vc.driver) {
        vc.driver = malloc(sizeof *vc.driver);
        if (!vc.driver)
            return luaL_error(L, "out of memory");
        uv_timer_init(&h->loop, vc.driver);
        vc.driver->data = h;
        uv_timer_start(vc.driver, on_vtick, 0, 0);
    }
    double deadline = vc.now + s;
    size_t i = vc.n;
    while (i > 0 && vc.sleepers[i - 1].deadline > deadline)
        i--;
    memmove(vc.sleepers + i + 1, vc.sleepers + i, (vc.n - i) * sizeof *vc.sleepers);
    vc.sleepers[i] = (struct sleeper){ deadline, t };
    vc.n++;
    return task_yield(L, t, cancel_vsleep, NULL);
}

/* _task.clock([mode]) → "real" or "virtual" (the mode before the call); mode switches it. Sleeps
 * already waiting on the virtual clock still end on it. */
static int l_clock(lua_State *L)
{
    static const char *const modes[] = { "real", "virtual", NULL };
    lua_pushstring(L, vc.on ? "virtual" : "real");
    if (!lua_isnoneornil(L, 1)) {
        int on = luaL_checkoption(L, 1, NULL, modes);
        if (on && !vc.on)
            vc.now = (double)uv_hrtime() / 1e9;
        vc.on = on;
    }
    return 1;
}

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s == s, 1, "not a number (NaN)");
    struct task *t = task_check_current(L, "task.sleep");
    if (s <= 0) {
        /* sleep(0): let every other ready task run first */
        t->state = TASK_WAITING;
        task_wake(t, 0);
        return lua_yield(L, 0);
    }
    if (vc.on)
        return vsleep(L, t, s);
    if (!t->timer) {
        t->timer = malloc(sizeof *t->timer);
        if (!t->timer)
            return luaL_error(L, "out of memory");
        uv_timer_init(&host_of(L)->loop, t->timer);
        t->timer->data = t;
    }
    /* Beyond ~500 million years is forever; libuv clamps a deadline that overflows. */
    uint64_t ms = s * 1000 >= 1.8e19 ? UINT64_MAX : (uint64_t)(s * 1000 + 0.5);
    /* The loop's clock was read before this turn's Lua work: refresh it so the sleep is not
     * cut short by the time the script has already spent. */
    uv_update_time(t->timer->loop);
    uv_timer_start(t->timer, on_sleep_done, ms, 0);
    return task_yield(L, t, cancel_sleep, NULL);
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, vc.on ? vc.now : (double)uv_hrtime() / 1e9);
    return 1;
}

/* _task.wall() → the real time of day in seconds since 1970, with microseconds (HAR start
 * times; os.time() has whole seconds only). */
static int l_wall(lua_State *L)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return luaL_error(L, "cannot read the time of day");
    lua_pushnumber(L, (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
    return 1;
}

static void cancel_suspend(struct task *t)
{
    (void)t;
}

/* Yields until _task.wake(t, ...) passes values to it. */
static int l_suspend(lua_State *L)
{
    struct task *t = task_check_current(L, "suspend");
    return task_yield(L, t, cancel_suspend, NULL);
}

static int l_wake(lua_State *L)
{
    struct task *t = task_from_handle(L, 1);
    if (!t || t->state != TASK_WAITING || t->wait.cancel != cancel_suspend) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int n = lua_gettop(L) - 1;
    if (!lua_checkstack(t->co, n)) /* never raise on the waiting task's own stack */
        return luaL_error(L, "too many values to wake a task with");
    lua_xmove(L, t->co, n);
    task_wake(t, n);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_current(lua_State *L)
{
    struct host *h = host_of(L);
    if (!h->current || h->current->co != L) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushthread(L);
    lua_rawget(L, LUA_REGISTRYINDEX); /* registry[co] = handle while unfinished */
    return 1;
}

/* _task.is_task_thread(co) → true when co is an unfinished task's coroutine (boot.lua refuses to
 * let coroutine.resume/close touch it: only the scheduler may). */
static int l_is_task_thread(lua_State *L)
{
    lua_pushboolean(L, task_is_thread(L, 1));
    return 1;
}

/* _task.on_signal(fn | nil) → the previous handler: fn(signame) runs as a task on the first
 * SIGINT/SIGTERM. Returning the old one lets modules chain handlers. */
static int l_on_signal(lua_State *L)
{
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    void *key = &host_of(L)->sigint;
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
    return 1;
}

static int l_count(lua_State *L)
{
    lua_pushinteger(L, host_of(L)->tasks_alive);
    return 1;
}

int luaopen_luafetch_task(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "join", l_join }, { "cancel", l_cancel }, { "status", l_status }, { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_gc }, { "__tostring", l_tostring }, { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "spawn", l_spawn }, { "sleep", l_sleep }, { "now", l_now }, { "wall", l_wall }, { "suspend", l_suspend },
        { "wake", l_wake }, { "current", l_current }, { "count", l_count },
        { "on_signal", l_on_signal }, { "is_task_thread", l_is_task_thread }, { "clock", l_clock },
        { NULL, NULL },
    };
    if (luaL_newmetatable(L, TASK_HANDLE)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
