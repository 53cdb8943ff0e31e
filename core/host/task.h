/* task.h — Lua coroutines run as tasks: spawn, suspend on I/O, wake, finish, cancel.
 * task.c is the only place that calls lua_resume. A task struct is owned jointly by the
 * scheduler (until it finishes) and its Lua handle (until collected); freed when both let go
 * (its sleep timer, if any, in that timer's close callback). While unfinished, registry[co] =
 * handle anchors the coroutine and the handle, and marks the thread as a task's. */
#ifndef LUAFETCH_TASK_H
#define LUAFETCH_TASK_H

#include <lua.h>
#include <uv.h>

struct host;
struct task;

enum task_state { TASK_NEW, TASK_READY, TASK_RUNNING, TASK_WAITING, TASK_DONE };

/* What a waiting task waits on; cancel stops it without resuming the task. */
struct task_wait {
    void (*cancel)(struct task *t);
    void *op;
};

/* Small fields packed together: 10,000 waiting tasks are 10,000 of these (120 bytes). */
struct task {
    struct host *host;
    lua_State *co;                  /* NULL once finished */
    const char *lost;               /* the results could not be kept: it failed with this message */
    struct task_wait wait;
    int result_ref;                 /* once finished: table of the nres values (or the error) */
    int nres;
    int nwake;                      /* values pushed on co for the next resume */
    enum task_state state;
    unsigned char ok;
    unsigned char handle_alive;     /* the Lua handle has not been collected */
    unsigned char error_seen;       /* the error was delivered to a joiner or logged */
    unsigned char canceling;        /* inside task_cancel */
    struct task *alive_next, *alive_prev;
    struct task *ready_next;
    struct task *joiners;           /* tasks waiting in join, chained by join_next */
    struct task *join_next;
    struct task *joining;           /* the task this one waits for in join */
    uv_timer_t *timer;              /* task.sleep; made on the first sleep */
};

/* Makes a task of the function and nargs arguments on top of L (popped) and pushes its handle.
 * It starts on the next loop turn. */
struct task *task_spawn(lua_State *L, int nargs);
/* From a yielding binding: the running task, or raises a Lua error naming fn. */
struct task *task_check_current(lua_State *L, const char *fn);
/* Yield the running task until task_resume/task_wake; sets the wait. Use as `return task_yield(...)`. */
int task_yield(lua_State *L, struct task *t, void (*cancel)(struct task *), void *op);
/* The same with a continuation: k(L, status, ctx) runs inside the task when it is resumed and
 * returns what the binding returns. Callbacks resume with no values and let k build them, so an
 * allocation failure there is an error raised in the task (protected), never in the callback. */
int task_yieldk(lua_State *L, struct task *t, void (*cancel)(struct task *), void *op,
                lua_KContext ctx, lua_KFunction k);
/* Resumes a waiting task at once with nargs values already pushed onto t->co (I/O callbacks). */
void task_resume(struct task *t, int nargs);
/* Schedules a waiting task for the next loop turn with nargs values already on t->co. */
void task_wake(struct task *t, int nargs);
/* Cancels a task: its wait is cancelled, its to-be-closed variables closed, joiners get an error. */
void task_cancel(struct task *t);
/* Pushes `ok, results...` of a finished task onto L (raises if L has no room); returns how many. */
int task_push_results(struct task *t, lua_State *L);
/* Handle userdata → task, and the Lua-side release of the handle (from its __gc, on L). */
struct task *task_from_handle(lua_State *L, int idx);
void task_handle_gc(struct task *t, lua_State *L);
/* Whether the value at idx is the coroutine of an unfinished task (Lua must not resume it). */
int task_is_thread(lua_State *L, int idx);
/* Shutdown: cancels every unfinished task (without running Lua). */
void task_cancel_all(struct host *h);
void task_on_ready_timer(uv_timer_t *timer);

#endif
