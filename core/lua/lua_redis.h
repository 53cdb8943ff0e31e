/* lua_redis.h — what the `_redis` bindings (lua_redis.c) and the queue's ledger
 * (lua_redis_ledger.c) share: argument lists kept in RESP, and the ledger's hooks into a stream
 * read. An args userdata owns its buffer; a ledger owns its slots, its map and its outbox. */
#ifndef LUAFETCH_LUA_REDIS_H
#define LUAFETCH_LUA_REDIS_H

#include <lua.h>
#include <stddef.h>
#include <string.h>

#include "redis.h"

#define LUA_REDIS_ARGS "luafetch.redis_args"
#define LUA_REDIS_LEDGER "luafetch.redis_ledger"

/* Arguments kept in RESP as they are added (_redis.args()): a long command (a batch of results
 * for one script call) is built one record at a time without a Lua table of every argument. */
struct lua_redis_args {
    char *buf;
    size_t len, cap;
    int n;
};

/* Room for `more` bytes: 0, or -1 when out of memory. */
int lua_redis_args_reserve(struct lua_redis_args *a, size_t more);
/* Appends one argument made of two pieces ($len CRLF bytes CRLF; p2 may be NULL); room for
 * len + len2 + 32 bytes must be reserved. Inline: the ledger writes eight per result. */
static inline void lua_redis_args_put2(struct lua_redis_args *a, const char *p, size_t len, const char *p2,
                                       size_t len2)
{
    char *out = a->buf + a->len;
    size_t total = len + len2, width = 1;
    for (size_t v = total; v >= 10; v /= 10)
        width++;
    *out++ = '$';
    char *d = out + width;
    size_t v = total;
    do
        *--d = (char)('0' + v % 10);
    while (v /= 10);
    out += width;
    *out++ = '\r';
    *out++ = '\n';
    memcpy(out, p, len);
    out += len;
    if (len2) {
        memcpy(out, p2, len2);
        out += len2;
    }
    *out++ = '\r';
    *out++ = '\n';
    a->len = (size_t)(out - a->buf);
    a->n++;
}

/* The same for one argument in one piece. */
static inline void lua_redis_args_put(struct lua_redis_args *a, const char *p, size_t len)
{
    lua_redis_args_put2(a, p, len, NULL, 0);
}

/* Appends an argument already written in RESP (a literal such as "$1\r\nr\r\n"); room reserved. */
static inline void lua_redis_args_put_resp(struct lua_redis_args *a, const char *resp, size_t len)
{
    memcpy(a->buf + a->len, resp, len);
    a->len += len;
    a->n++;
}
/* Pushes a new args userdata that takes over a's buffer (a is left empty). */
void lua_redis_args_push_moved(lua_State *L, struct lua_redis_args *a);

/* Pushes a reply as Lua values (strings, integers, tables; nil as false, an error as {err=}). */
void lua_redis_push_reply(lua_State *L, const struct redis_reply *r);

/* The entries of a one-stream read's reply, or NULL; the URL of an entry that is a url field
 * alone, or NULL. */
const struct redis_reply *lua_redis_stream_entries(const struct redis_reply *r);
const struct redis_reply *lua_redis_entry_url(const struct redis_reply *entry);

/* Stream entries read into the ledger at stack index ledger: each entry that is a url field alone
 * joins its ready entries (delivered once); pushes how many did, then the ids and field lists of
 * the others (false for a deleted entry's fields), for Lua to decode: 3 values. */
int lua_redis_ledger_take_read(lua_State *L, int ledger, const struct redis_reply *r);

/* The ledger's metatable (luaopen_luafetch_redis) and its constructor, _redis.ledger(). */
void lua_redis_ledger_register(lua_State *L);
int lua_redis_ledger_new(lua_State *L);

#endif
