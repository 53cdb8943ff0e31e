/* timerq.c — many deadlines on one libuv timer: a binary min-heap of embedded entries.
 * The queue owns its heap array (grown by timerq_reserve, so arming never allocates) and its
 * timer handle; entries and what they are embedded in belong to their owners. */
#include "timerq.h"

#include <stdlib.h>

/* Sequence number a was taken before b (they wrap at 2^31). */
static int seq_before(uint32_t a, uint32_t b)
{
    return (int32_t)((a - b) << 1) < 0;
}

/* a before b: due earlier, or in the same millisecond and armed earlier */
static int before(const struct timerq_entry *a, const struct timerq_entry *b)
{
    if (a->due != b->due)
        return a->due < b->due;
    return seq_before(a->seq, b->seq);
}

static void put(struct timerq *q, uint32_t i, struct timerq_entry *e)
{
    q->heap[i] = e;
    e->pos = i + 1;
}

static void sift_up(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(e, q->heap[parent]))
            break;
        put(q, i, q->heap[parent]);
        i = parent;
    }
    put(q, i, e);
}

static void sift_down(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && before(q->heap[child + 1], q->heap[child]))
            child++;
        if (!before(q->heap[child], e))
            break;
        put(q, i, q->heap[child]);
        i = child;
    }
    put(q, i, e);
}

static void remove_at(struct timerq *q, uint32_t i)
{
    struct timerq_entry *e = q->heap[i];
    e->pos = 0;
    if (!e->unref)
        q->nref--;
    q->n--;
    if (i == q->n)
        return;
    struct timerq_entry *last = q->heap[q->n];
    put(q, i, last);
    if (i > 0 && before(last, q->heap[(i - 1) / 2]))
        sift_up(q, i);
    else
        sift_down(q, i);
}

static void on_fire(uv_timer_t *t);

/* The libuv timer follows the earliest entry; it holds the loop while an armed entry does. */
static void update_timer(struct timerq *q)
{
    if (q->closed)
        return;
    if (q->n == 0) {
        uv_timer_stop(&q->timer);
        return;
    }
    uint64_t due = q->heap[0]->due, now = uv_now(q->timer.loop);
    uv_timer_start(&q->timer, on_fire, due > now ? due - now : 0, 0);
    if (q->nref)
        uv_ref((uv_handle_t *)&q->timer);
    else
        uv_unref((uv_handle_t *)&q->timer);
}

/* Runs what is due, like libuv's own timer pass, except entries armed during this call: they
 * wait for the next call (libuv 1.44 makes it in the same loop turn when the timer is due at once,
 * as it does for its own timers), so an entry re-armed at 0 goes after those already due. */
static void on_fire(uv_timer_t *t)
{
    struct timerq *q = t->data;
    uint32_t seq0 = q->seq;
    while (q->n > 0) {
        struct timerq_entry *e = q->heap[0];
        if (e->due > uv_now(t->loop) || !seq_before(e->seq, seq0))
            break;
        remove_at(q, 0);
        e->cb(q, e);
    }
    update_timer(q);
}

int timerq_init(struct timerq *q, uv_loop_t *loop)
{
    *q = (struct timerq){0};
    int rc = uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    return rc;
}

int timerq_reserve(struct timerq *q)
{
    if (q->reserved == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 64;
        struct timerq_entry **h = realloc(q->heap, cap * sizeof *h);
        if (!h)
            return -1;
        q->heap = h;
        q->cap = cap;
    }
    q->reserved++;
    return 0;
}

void timerq_unreserve(struct timerq *q)
{
    q->reserved--;
    /* give back most of a heap a burst grew, once it is mostly unused */
    if (q->cap > 1024 && q->reserved < q->cap / 4 && q->n <= q->cap / 2) {
        struct timerq_entry **h = realloc(q->heap, q->cap / 2 * sizeof *h);
        if (h) {
            q->heap = h;
            q->cap /= 2;
        }
    }
}

void timerq_start(struct timerq *q, struct timerq_entry *e, timerq_cb cb, uint64_t delay_ms)
{
    if (e->pos)
        remove_at(q, e->pos - 1);
    e->cb = cb;
    if (q->closed)
        return;
    uint64_t now = uv_now(q->timer.loop);
    e->due = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
    e->seq = q->seq;
    q->seq = (q->seq + 1) & 0x7fffffffu;
    if (!e->unref)
        q->nref++;
    q->n++;
    put(q, q->n - 1, e);
    sift_up(q, q->n - 1);
    /* A later entry leaves the libuv timer where it is (set for an earlier one, or firing soon
     * to follow the heap after a stop); a new earliest one, or the first to hold the loop, moves it. */
    if (e->pos == 1 || (!e->unref && q->nref == 1))
        update_timer(q);
}

void timerq_stop(struct timerq *q, struct timerq_entry *e)
{
    if (!e->pos)
        return;
    remove_at(q, e->pos - 1);
    /* The libuv timer is left as it is when the earliest entry stays: it fires, finds nothing
     * due and follows the heap then. */
    if (q->n == 0 || !q->nref)
        update_timer(q);
}

void timerq_ref(struct timerq *q, struct timerq_entry *e, int ref)
{
    if (e->unref == !ref)
        return;
    e->unref = !ref;
    if (!e->pos)
        return;
    q->nref += ref ? 1 : -1;
    update_timer(q);
}

static void on_closed(uv_handle_t *h)
{
    struct timerq *q = h->data;
    while (q->n > 0) {
        struct timerq_entry *e = q->heap[0];
        remove_at(q, 0);
        e->cb(q, e);
    }
}

void timerq_close(struct timerq *q)
{
    if (q->closed)
        return;
    q->closed = 1;
    uv_close((uv_handle_t *)&q->timer, on_closed);
}

void timerq_free(struct timerq *q)
{
    free(q->heap);
    q->heap = NULL;
    q->cap = q->reserved = q->n = 0;
}
