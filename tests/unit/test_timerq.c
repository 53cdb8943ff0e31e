/* test_timerq.c — core/net/timerq.c on a real libuv loop: entries fire in due order and, within a
 * millisecond, in arming order; stop and re-arm move them; an entry re-armed at 0 from its callback
 * goes after those armed before; unref'd entries do not hold the loop; closing calls what is still armed;
 * the heap grows by reservation and shrinks back. Owns its loop and queue; frees both. */
#include "timerq.h"
#include "unit.h"

#include <stddef.h>
#include <stdlib.h>

struct item {
    struct timerq_entry e;
    int id;
    int rearm;            /* times left to re-arm itself at 0 from the callback */
};

static int order[64], fired, closed_calls;
static uv_loop_t *loop;

static struct item *item_of(struct timerq_entry *e)
{
    return (struct item *)((char *)e - offsetof(struct item, e));
}

static void on_due(struct timerq *q, struct timerq_entry *e)
{
    struct item *it = item_of(e);
    if (q->closed) {
        closed_calls++;
        return;
    }
    if (fired < 64)
        order[fired] = it->id;
    fired++;
    if (it->rearm > 0) {
        it->rearm--;
        timerq_start(q, e, on_due, 0);
    }
}

static void reset(void)
{
    fired = closed_calls = 0;
    for (int i = 0; i < 64; i++)
        order[i] = -1;
}

static void test_order(struct timerq *q)
{
    TEST("due order, then arming order");
    reset();
    struct item it[6] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 }, { .id = 4 }, { .id = 5 } };
    uint64_t delays[6] = { 30, 10, 20, 10, 0, 10 };
    for (int i = 0; i < 6; i++) {
        CHECK_INT(timerq_reserve(q), 0);
        timerq_start(q, &it[i].e, on_due, delays[i]);
    }
    CHECK_INT(q->n, 6);
    uv_run(loop, UV_RUN_DEFAULT);
    int want[6] = { 4, 1, 3, 5, 2, 0 };
    CHECK_INT(fired, 6);
    for (int i = 0; i < 6; i++)
        CHECK_MSG(order[i] == want[i], "fired #%d: %d, want %d", i, order[i], want[i]);
    CHECK_INT(q->n, 0);
    for (int i = 0; i < 6; i++)
        timerq_unreserve(q);
}

static void test_stop_and_move(struct timerq *q)
{
    TEST("stop, re-arm");
    reset();
    struct item a = { .id = 1 }, b = { .id = 2 }, c = { .id = 3 };
    for (int i = 0; i < 3; i++)
        CHECK_INT(timerq_reserve(q), 0);
    timerq_start(q, &a.e, on_due, 5);
    timerq_start(q, &b.e, on_due, 10);
    timerq_start(q, &c.e, on_due, 15);
    timerq_stop(q, &a.e);                 /* the earliest goes: the others still fire */
    CHECK(!timerq_armed(&a.e));
    timerq_stop(q, &a.e);                 /* stopping twice is nothing */
    timerq_start(q, &c.e, on_due, 1);     /* moved before b */
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(fired, 2);
    CHECK_INT(order[0], 3);
    CHECK_INT(order[1], 2);
    for (int i = 0; i < 3; i++)
        timerq_unreserve(q);
}

static void test_rearm_in_callback(struct timerq *q)
{
    TEST("re-armed at 0 from its callback");
    reset();
    struct item it = { .id = 7, .rearm = 3 }, other = { .id = 8 };
    CHECK_INT(timerq_reserve(q), 0);
    CHECK_INT(timerq_reserve(q), 0);
    timerq_start(q, &it.e, on_due, 0);
    timerq_start(q, &other.e, on_due, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(fired, 5);
    /* the re-armed entry goes after what was armed before it: the other entry is not starved */
    CHECK_INT(order[0], 7);
    CHECK_INT(order[1], 8);
    CHECK_INT(order[2], 7);
    timerq_unreserve(q);
    timerq_unreserve(q);
}

static void test_unref(struct timerq *q)
{
    TEST("unref'd entries do not hold the loop");
    reset();
    struct item held = { .id = 1 }, loose = { .id = 2 };
    CHECK_INT(timerq_reserve(q), 0);
    CHECK_INT(timerq_reserve(q), 0);
    timerq_ref(q, &loose.e, 0);
    timerq_start(q, &loose.e, on_due, 50);
    uint64_t t0 = uv_now(loop);
    uv_run(loop, UV_RUN_DEFAULT);         /* returns at once: nothing holds it */
    CHECK_INT(fired, 0);
    CHECK(uv_now(loop) - t0 < 50);
    timerq_start(q, &held.e, on_due, 60); /* a held entry: the loose one fires on the way */
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(fired, 2);
    CHECK_INT(order[0], 2);
    CHECK_INT(order[1], 1);
    timerq_ref(q, &loose.e, 1);
    timerq_unreserve(q);
    timerq_unreserve(q);
}

static void test_grow_shrink(struct timerq *q)
{
    TEST("reservations grow the heap, and it shrinks back");
    reset();
    enum { N = 5000 };
    struct item *its = calloc(N, sizeof *its);
    CHECK(its != NULL);
    for (int i = 0; i < N; i++) {
        CHECK_INT(timerq_reserve(q), 0);
        its[i].id = i % 64;
        timerq_start(q, &its[i].e, on_due, (uint64_t)(N - i) % 7);
    }
    CHECK(q->cap >= N);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(fired, N);
    for (int i = 0; i < N; i++)
        timerq_unreserve(q);
    CHECK_INT(q->reserved, 0);
    CHECK_MSG(q->cap <= 2048, "cap %u after every reservation was given back", q->cap);
    free(its);
}

static void test_close(struct timerq *q)
{
    TEST("close calls what is still armed");
    reset();
    struct item a = { .id = 1 }, b = { .id = 2 };
    CHECK_INT(timerq_reserve(q), 0);
    CHECK_INT(timerq_reserve(q), 0);
    timerq_start(q, &a.e, on_due, 10000);
    timerq_start(q, &b.e, on_due, 20000);
    timerq_close(q);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(closed_calls, 2);
    CHECK_INT(fired, 0);
    CHECK_INT(q->n, 0);
    timerq_unreserve(q);
    timerq_unreserve(q);
}

int main(void)
{
    static uv_loop_t l;
    struct timerq q;
    loop = &l;
    if (uv_loop_init(loop) != 0 || timerq_init(&q, loop) != 0)
        return 1;
    test_order(&q);
    test_stop_and_move(&q);
    test_rearm_in_callback(&q);
    test_unref(&q);
    test_grow_shrink(&q);
    test_close(&q);
    timerq_free(&q);
    CHECK_INT(uv_loop_close(loop), 0);
    return unit_summary();
}
