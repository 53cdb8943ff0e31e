/* request_timers.c — a request's deadlines (the total and phase timeouts, the read timeout, the
 * next connect attempt of a race) and its free, as one entry of the loop's timer queue
 * (net->timers, core/net/timerq.c). Owns nothing: the entry is embedded in struct request. */
#include "request.h"
#include "request_internal.h"

static void on_free_due(struct timerq *q, struct timerq_entry *e)
{
    (void)q;
    request_free_now(request_of_entry(e));
}

void request_free_later(struct request *r)
{
    struct timerq *q = &r->net->timers;
    if (q->closed) {
        /* shutting down: the queue's last turn has run */
        timerq_stop(q, &r->tq);
        request_free_now(r);
        return;
    }
    /* Like a closing handle, a request waiting to be freed keeps the loop for that turn. */
    timerq_ref(q, &r->tq, 1);
    timerq_start(q, &r->tq, on_free_due, 0);
}

void request_timer_hold(struct request *r, int hold)
{
    timerq_ref(&r->net->timers, &r->tq, hold);
}

/* The read (idle) timeout in milliseconds, 0 for none. */
static uint64_t read_idle_ms(const struct request *r)
{
    double s = r->timeouts.read;
    return s > 0 && s <= 1e12 ? (uint64_t)(s * 1000 + 0.5) : 0;
}

static void on_timer(struct timerq *q, struct timerq_entry *e)
{
    if (q->closed)
        return; /* shutting down */
    struct request *r = request_of_entry(e);
    uint64_t now = uv_now(r->net->loop);
    if (r->deadline_total && now >= r->deadline_total) {
        request_finish(r, NET_TIMEOUT, "timed out after %gs (total timeout)", r->timeouts.total);
        return;
    }
    if (r->race && r->race->next_at && now >= r->race->next_at) {
        r->race->next_at = 0;
        request_start_attempt(r);
        if (r->finished)
            return;
    }
    if (r->deadline_phase && now >= r->deadline_phase) {
        if (r->phase == PH_TLS)
            request_finish(r, NET_TIMEOUT, "TLS handshake timed out after %gs", r->timeouts.tls);
        else
            request_finish(r, NET_TIMEOUT, "connect timed out after %gs", r->timeouts.connect);
        return;
    }
    if (r->stream && r->stream->paused)
        r->last_activity = now; /* waiting for the consumer is not the server's silence */
    if (r->phase == PH_WAIT && read_idle_ms(r) &&
        now - r->last_activity >= read_idle_ms(r)) {
        /* Not idle while the request is still going out and the kernel keeps taking it. */
        size_t unsent = r->conn ? conn_unsent(r->conn) : 0;
        if (unsent && (uint32_t)unsent != r->unsent_seen) {
            r->unsent_seen = (uint32_t)unsent;
            r->last_activity = now;
            request_arm_timer(r);
            return;
        }
        request_finish(r, NET_TIMEOUT, "no data for %gs (read timeout)", r->timeouts.read);
        return;
    }
    request_arm_timer(r);
}

/* One timer queue entry per request, set to the nearest deadline; reads only stamp last_activity
 * and the entry re-arms itself lazily, so a busy connection costs no timer operations per read. */
void request_arm_timer(struct request *r)
{
    uint64_t next = r->deadline_total;
    if (r->deadline_phase && (!next || r->deadline_phase < next))
        next = r->deadline_phase;
    if (r->race && r->race->next_at && (!next || r->race->next_at < next))
        next = r->race->next_at;
    if (r->phase == PH_WAIT && read_idle_ms(r)) {
        uint64_t idle = r->last_activity + read_idle_ms(r);
        if (!next || idle < next)
            next = idle;
    }
    if (!next) {
        timerq_stop(&r->net->timers, &r->tq);
        return;
    }
    uint64_t now = uv_now(r->net->loop);
    timerq_start(&r->net->timers, &r->tq, on_timer, next > now ? next - now : 0);
}
