/* redis_reply.h — replies parsed by hiredis straight into struct redis_reply (redis_reply.c): one
 * arena per reply, owned by its root; taken by the client, freed by the call (redis_reply_free). */
#ifndef LUAFETCH_REDIS_REPLY_H
#define LUAFETCH_REDIS_REPLY_H

#include "redis.h"

struct redisContext;
struct redisReader;

/* Makes the context's parser build our replies (call once per connection, before any reply). */
void redis_reply_use(struct redisContext *c);
/* The same for a bare parser (tests/fuzz/fuzz_redis_reply.c). */
void redis_reply_use_reader(struct redisReader *r);
/* The reply hiredis handed to a callback, kept: hiredis will not free it. */
struct redis_reply *redis_reply_take(void *reply);
/* Frees a taken reply and everything in it. NULL: nothing. */
void redis_reply_free(struct redis_reply *reply);

#endif
