/* timerq.h — many deadlines on one libuv timer: a binary min-heap of entries embedded in their
 * owners (24 bytes each, against 152 for a uv_timer_t of their own), ordered by due time and then
 * by arming order, as libuv orders its timers. The queue's owner (struct net) owns the heap array;
 * entries belong to their owners, each of which holds a slot (timerq_reserve) while it lives. */
#ifndef LUAFETCH_TIMERQ_H
#define LUAFETCH_TIMERQ_H

#include <stdint.h>
#include <uv.h>

struct timerq;
struct timerq_entry;
/* e came due: it is no longer armed and may arm itself again. After timerq_close, the entries
 * still armed are called once more from the close callback, with q->closed set. */
typedef void (*timerq_cb)(struct timerq *q, struct timerq_entry *e);

struct timerq_entry {
    uint64_t due;               /* uv_now milliseconds */
    timerq_cb cb;
    uint32_t pos;               /* 1 + index in the heap; 0: not armed */
    uint32_t seq : 31;          /* arming order, for entries due in the same millisecond */
    uint32_t unref : 1;         /* while armed, this entry does not keep the loop alive */
};

struct timerq {
    uv_timer_t timer;
    struct timerq_entry **heap;
    uint32_t n;                 /* armed entries */
    uint32_t cap;               /* slots in heap */
    uint32_t reserved;          /* slots held by live entries */
    uint32_t seq;
    uint32_t nref;              /* armed entries that keep the loop alive */
    int closed;
};

int timerq_init(struct timerq *q, uv_loop_t *loop);
/* Holds a heap slot for one more entry (0, or -1 when out of memory), so arming never fails;
 * timerq_unreserve once that entry is gone (disarmed). */
int timerq_reserve(struct timerq *q);
void timerq_unreserve(struct timerq *q);
/* (Re)arms e to call cb delay_ms after the loop's now. */
void timerq_start(struct timerq *q, struct timerq_entry *e, timerq_cb cb, uint64_t delay_ms);
/* Disarms e (nothing when it is not armed). */
void timerq_stop(struct timerq *q, struct timerq_entry *e);
static inline int timerq_armed(const struct timerq_entry *e)
{
    return e->pos != 0;
}
/* Whether e keeps the loop alive while armed (it does unless told otherwise). */
void timerq_ref(struct timerq *q, struct timerq_entry *e, int ref);
/* Closes the timer; the entries still armed are called from its close callback (q->closed). */
void timerq_close(struct timerq *q);
/* Once the loop has run the close callback: frees the heap array. */
void timerq_free(struct timerq *q);

#endif
