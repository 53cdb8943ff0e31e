/* redis_call.c — a call: one or more commands in RESP, back to back in one buffer, and the replies
 * they got. The call owns its buffer and its replies (one malloc'd block each); it is freed by
 * redis_call_free, or by the client after the last transport callback once the caller let go. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

struct redis_call *redis_call_new(void)
{
    return calloc(1, sizeof(struct redis_call));
}

static int reserve(struct redis_call *call, size_t more)
{
    if (call->buf_len + more <= call->buf_cap)
        return 0;
    size_t cap = call->buf_cap ? call->buf_cap : 256;
    while (cap < call->buf_len + more)
        cap *= 2;
    char *b = realloc(call->buf, cap);
    if (!b)
        return -1;
    call->buf = b;
    call->buf_cap = cap;
    return 0;
}

static void put(struct redis_call *call, const void *p, size_t n)
{
    memcpy(call->buf + call->buf_len, p, n);
    call->buf_len += n;
}

int redis_call_append(struct redis_call *call, int argc, const char *const *argv, const size_t *argvlen)
{
    size_t need = 32;
    for (int i = 0; i < argc; i++)
        need += argvlen[i] + 32;
    if (call->ncmds == call->ends_cap) {
        int cap = call->ends_cap ? call->ends_cap * 2 : 4;
        size_t *e = realloc(call->ends, (size_t)cap * sizeof *e);
        if (!e)
            return -1;
        call->ends = e;
        call->ends_cap = cap;
    }
    if (reserve(call, need))
        return -1;
    char head[32];
    put(call, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", argc));
    for (int i = 0; i < argc; i++) {
        put(call, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", argvlen[i]));
        put(call, argv[i], argvlen[i]);
        put(call, "\r\n", 2);
    }
    call->ends[call->ncmds++] = call->buf_len;
    return 0;
}

void redis_call_free(struct redis_call *call)
{
    if (!call)
        return;
    if (call->outstanding > 0) {
        /* the transport still holds it: the client frees it after the last callback */
        call->released = 1;
        call->done = NULL;
        return;
    }
    if (call->replies) {
        for (int i = 0; i < call->ncmds; i++)
            free(call->replies[i]);
        free(call->replies);
    }
    free(call->buf);
    free(call->ends);
    free(call);
}
