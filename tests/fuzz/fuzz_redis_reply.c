/* fuzz_redis_reply.c — libFuzzer driver for core/redis/redis_reply.c: hiredis' parser building our
 * replies in their arenas, from bytes fed in two pieces (a reply split across reads). Every reply
 * is walked (ASan sees a bad pointer or length) and freed; a partial one is freed with the parser.
 * Properties that must hold are checked with abort(). */
#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_reply.h"

static size_t walk(const struct redis_reply *r, int depth)
{
    if (depth > 16)
        abort(); /* hiredis nests at most 7 deep */
    size_t sum = 0;
    switch (r->type) {
    case REDIS_T_STRING:
    case REDIS_T_STATUS:
    case REDIS_T_ERROR:
        if (!r->str || r->str[r->len] != 0)
            abort(); /* NUL-terminated after len bytes */
        for (size_t i = 0; i < r->len; i++)
            sum += (unsigned char)r->str[i];
        break;
    case REDIS_T_ARRAY:
        if (r->n && !r->elem)
            abort();
        for (size_t i = 0; i < r->n; i++)
            sum += walk(&r->elem[i], depth + 1);
        break;
    case REDIS_T_INTEGER:
    case REDIS_T_NIL:
        break;
    default:
        abort();
    }
    return sum;
}

static void drain(redisReader *rd)
{
    void *reply;
    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        struct redis_reply *r = redis_reply_take(reply);
        (void)walk(r, 0);
        redis_reply_free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    redis_reply_use_reader(rd);
    size_t half = size / 2;
    if (redisReaderFeed(rd, (const char *)data, half) == REDIS_OK)
        drain(rd);
    if (!rd->err && redisReaderFeed(rd, (const char *)data + half, size - half) == REDIS_OK)
        drain(rd);
    redisReaderFree(rd); /* frees a reply left half built */
    return 0;
}
