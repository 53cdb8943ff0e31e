/* redis_call.c — a call: one or more commands in RESP, back to back in one buffer, and the replies
 * they got. The call owns its buffer and its replies (an arena each, redis_reply.c); it is freed by
 * redis_call_free, or by the client after the last transport callback once the caller let go. */
#include <stdlib.h>
#include <string.h>

#include "redis.h"
#include "redis_reply.h"

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

/* Decimal digits of v at the end of buf (size 24); returns where they start. */
static char *digits(char *end, unsigned long long v)
{
    do
        *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

static void put_count(struct redis_call *call, char prefix, unsigned long long n)
{
    char tmp[24], *end = tmp + sizeof tmp;
    char *p = digits(end, n);
    *--p = prefix;
    put(call, p, (size_t)(end - p));
    put(call, "\r\n", 2);
}

int redis_call_begin(struct redis_call *call, int argc)
{
    if (call->ncmds == call->ends_cap) {
        int cap = call->ends_cap ? call->ends_cap * 2 : 4;
        size_t *e = realloc(call->ends, (size_t)cap * sizeof *e);
        if (!e)
            return -1;
        call->ends = e;
        call->ends_cap = cap;
    }
    if (reserve(call, 32))
        return -1;
    put_count(call, '*', (unsigned long long)argc);
    return 0;
}

int redis_call_arg(struct redis_call *call, const char *p, size_t len)
{
    if (reserve(call, len + 32))
        return -1;
    put_count(call, '$', len);
    put(call, p, len);
    put(call, "\r\n", 2);
    return 0;
}

int redis_call_arg_int(struct redis_call *call, long long v)
{
    char tmp[24], *end = tmp + sizeof tmp;
    char *p = digits(end, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
    if (v < 0)
        *--p = '-';
    return redis_call_arg(call, p, (size_t)(end - p));
}

int redis_call_raw(struct redis_call *call, const char *resp, size_t len)
{
    if (reserve(call, len))
        return -1;
    put(call, resp, len);
    return 0;
}

void redis_call_end(struct redis_call *call)
{
    call->ends[call->ncmds++] = call->buf_len;
}

int redis_call_append(struct redis_call *call, int argc, const char *const *argv, const size_t *argvlen)
{
    if (redis_call_begin(call, argc))
        return -1;
    for (int i = 0; i < argc; i++)
        if (redis_call_arg(call, argv[i], argvlen[i]))
            return -1;
    redis_call_end(call);
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
            redis_reply_free(call->replies[i]);
        free(call->replies);
    }
    free(call->buf);
    free(call->ends);
    free(call);
}
