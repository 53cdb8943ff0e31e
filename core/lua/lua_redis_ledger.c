/* lua_redis_ledger.c — the queue's ledger (lua/queue.lua): the stream entries this worker holds
 * (read and waiting, handed to the fetcher, being settled) and the outbox of settle records for
 * the next SETTLE script call, built in RESP as results come in. In C because every URL passes
 * through it four times, and a Lua table per entry cost the worker more CPU than Redis itself.
 * The ledger userdata owns its slots, its map and its outbox buffer; the items (a URL string or a
 * request table) and the URLs of table items live in its two uservalue tables, by slot + 1. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_redis.h"

#define ID_MAX 47   /* a stream id is at most 41 characters: 20 digits, '-', 20 digits */
#define MAP_MAX 65536 /* places in the seq map at most */
#define NONE (-1)
#define ITEMS 1     /* uservalues */
#define URLS 2
#define FLUSH_ARGS 3 /* the args list a flush sends: its buffer and the outbox's trade places */

enum slot_state { SLOT_FREE, SLOT_READY, SLOT_OUT, SLOT_SETTLING, SLOT_FLUSHING };

struct slot {
    char id[ID_MAX + 1];
    unsigned char idlen;
    unsigned char state;
    unsigned char own_url;   /* the URL is kept beside the item (a request table) */
    int deliveries;
    lua_Integer seq;         /* the fetcher's index, from the hand-out on */
    int next;                /* the list the slot is on: free, ready, outbox or flush */
};

static const char ledger_mark = 'L';

struct ledger {
    const char *mark;        /* &ledger_mark (self_ledger) */
    struct slot *slots;
    int cap;
    int free_list;
    int ready_head, ready_tail, nready;
    int held;                /* slots not free */
    lua_Integer handed;      /* entries handed out: the last seq */
    lua_Integer base;        /* seq of the current source's first item - 1 (settle adds it) */
    int *by_seq;             /* seq & seq_mask → slot + 1 (0: none), for SLOT_OUT slots */
    lua_Integer seq_mask;
    struct lua_redis_args box;  /* settle records for the next flush */
    int box_records, box_results;
    int box_list, flush_list;   /* slots whose records are in the box / in the flush on the wire */
    int flushing;
};

static struct ledger *check_ledger(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LUA_REDIS_LEDGER);
}

/* Every method's upvalues: the result fields settle reads and the ops it answers, as Lua strings
 * made once (a lua_getfield by C string looks its key up in the string cache on every call). */
enum { UP_STATUS = 1, UP_SUCCESS, UP_ELAPSED, UP_ATTEMPTS, UP_BODY, UP_KIND, UP_ERROR,
       UP_OP_r, UP_OP_R, UP_OP_d, UP_OP_p, UP_COUNT = UP_OP_p };
static const char *const upvalue_strings[] = { "status_code", "success", "elapsed", "attempts", "body", "kind",
                                               "error", "r", "R", "d", "p" };

/* The ledger at 1 for a method on the per-URL path, told by its mark instead of its metatable
 * (luaL_checkudata looks the metatable up by name on every call). Only C makes userdata, and
 * only this file makes one of this size with this mark. */
static struct ledger *self_ledger(lua_State *L)
{
    struct ledger *lg = lua_touserdata(L, 1);
    if (lg && lua_type(L, 1) == LUA_TUSERDATA && lua_rawlen(L, 1) == sizeof *lg && lg->mark == &ledger_mark)
        return lg;
    return check_ledger(L, 1);
}

/* Pushes result[field]: raw first (a fetcher result's fields are its own, its metatable only adds
 * headers), through the metatable when that finds nothing (a wrapped or proxy result). */
static void result_field(lua_State *L, int result, int up)
{
    lua_pushvalue(L, lua_upvalueindex(up));
    if (lua_rawget(L, result) != LUA_TNIL || !lua_getmetatable(L, result))
        return;
    lua_pop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(up));
    lua_gettable(L, result);
}

/* ---- slots ------------------------------------------------------------------------------- */

static void grow_slots(lua_State *L, struct ledger *lg)
{
    int cap = lg->cap ? lg->cap * 2 : 256;
    struct slot *s = realloc(lg->slots, (size_t)cap * sizeof *s);
    if (!s)
        luaL_error(L, "not enough memory");
    lg->slots = s;
    for (int i = cap - 1; i >= lg->cap; i--) {
        s[i].state = SLOT_FREE;
        s[i].next = lg->free_list;
        lg->free_list = i;
    }
    lg->cap = cap;
}

/* A free slot for id, appended to the ready list (raises only before changing anything). */
static int take_slot(lua_State *L, struct ledger *lg, const char *id, size_t idlen, int deliveries)
{
    if (idlen > ID_MAX)
        luaL_error(L, "stream entry id too long");
    if (lg->free_list == NONE)
        grow_slots(L, lg);
    int i = lg->free_list;
    struct slot *s = &lg->slots[i];
    lg->free_list = s->next;
    memcpy(s->id, id, idlen);
    s->id[idlen] = 0;
    s->idlen = (unsigned char)idlen;
    s->state = SLOT_READY;
    s->deliveries = deliveries;
    s->own_url = 0;
    s->seq = 0;
    s->next = NONE;
    if (lg->ready_tail == NONE)
        lg->ready_head = i;
    else
        lg->slots[lg->ready_tail].next = i;
    lg->ready_tail = i;
    lg->nready++;
    lg->held++;
    return i;
}

static int find_id(const struct ledger *lg, const char *id, size_t idlen)
{
    for (int i = 0; i < lg->cap; i++) {
        const struct slot *s = &lg->slots[i];
        if (s->state != SLOT_FREE && s->idlen == idlen && !memcmp(s->id, id, idlen))
            return i;
    }
    return NONE;
}

/* ---- the seq map: which slot the fetcher's index stands for ------------------------------ */

/* A map of `size` (a power of two) holding every SLOT_OUT slot; where two would share a place the
 * one handed out last keeps it. NULL when out of memory. */
static int *rebuild_map(const struct ledger *lg, lua_Integer size)
{
    int *m = calloc((size_t)size, sizeof *m);
    if (!m)
        return NULL;
    for (int i = 0; i < lg->cap; i++) {
        if (lg->slots[i].state != SLOT_OUT)
            continue;
        lua_Integer pos = lg->slots[i].seq & (size - 1);
        if (!m[pos] || lg->slots[m[pos] - 1].seq < lg->slots[i].seq)
            m[pos] = i + 1;
    }
    return m;
}

/* Room in the map for seq. The place may be held by an entry handed out long ago and still out
 * (a slow fetch, or one the fetcher never reports): the map doubles while that keeps it small,
 * and at MAP_MAX the old entry leaves the map instead (settle then finds it by its item). */
static void map_room(lua_State *L, struct ledger *lg, lua_Integer seq)
{
    if (lg->by_seq && !lg->by_seq[seq & lg->seq_mask])
        return;
    lua_Integer size = lg->by_seq ? lg->seq_mask + 1 : 512;
    while (size < MAP_MAX) {
        size *= 2;
        int *m = rebuild_map(lg, size);
        if (!m)
            luaL_error(L, "not enough memory");
        free(lg->by_seq);
        lg->by_seq = m;
        lg->seq_mask = size - 1;
        if (!m[seq & (size - 1)])
            return;
    }
    lg->by_seq[seq & lg->seq_mask] = 0;
}

/* The SLOT_OUT slot handed out as `index` (checked against the item at item_idx unless that is
 * nil), else the one holding that item; NONE when neither. */
static int find_out(lua_State *L, struct ledger *lg, int items, lua_Integer index, int item_idx)
{
    int has_item = !lua_isnoneornil(L, item_idx);
    if (lg->by_seq) {
        int i = lg->by_seq[index & lg->seq_mask] - 1;
        if (i >= 0 && lg->slots[i].seq == index && lg->slots[i].state == SLOT_OUT) {
            if (!has_item)
                return i;
            lua_rawgeti(L, items, i + 1);
            int same = lua_rawequal(L, -1, item_idx);
            lua_pop(L, 1);
            if (same)
                return i;
        }
    }
    if (!has_item)
        return NONE;
    /* a request table (or a copy of it) names its entry */
    if (lua_type(L, item_idx) == LUA_TTABLE && lua_getfield(L, item_idx, "queue_id") == LUA_TSTRING) {
        size_t idlen;
        const char *id = lua_tolstring(L, -1, &idlen);
        int i = find_id(lg, id, idlen);
        lua_pop(L, 1);
        if (i != NONE && lg->slots[i].state == SLOT_OUT)
            return i;
    } else if (lua_type(L, item_idx) == LUA_TTABLE) {
        lua_pop(L, 1);
    }
    /* a source wrapped by the caller (indexes shifted): the entry by its item */
    for (int i = 0; i < lg->cap; i++) {
        if (lg->slots[i].state != SLOT_OUT)
            continue;
        lua_rawgeti(L, items, i + 1);
        int same = lua_rawequal(L, -1, item_idx);
        lua_pop(L, 1);
        if (same)
            return i;
    }
    return NONE;
}

/* ---- the outbox -------------------------------------------------------------------------- */

/* One argument of a settle record: up to two pieces ("=" and a body), from C or the Lua stack. */
struct piece {
    const char *p, *p2;
    size_t len, len2;
};

/* The decimal digits of v into num; their count. */
static size_t format_integer(char num[64], long long v)
{
    char tmp[24], *end = tmp + sizeof tmp, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    size_t len = (size_t)(end - p);
    memcpy(num, p, len);
    num[len] = 0;
    return len;
}

/* x with 3 decimals (seconds to the millisecond), without printf's cost for the usual sizes. */
static size_t format_millis(char num[64], double x)
{
    if (!(x > -1e15 && x < 1e15)) /* NaN, infinities, and what a long long cannot hold */
        return (size_t)snprintf(num, 64, "%.3f", x);
    int neg = x < 0;
    long long ms = (long long)((neg ? -x : x) * 1000 + 0.5); /* half away from zero, as llround */
    char tmp[32], *end = tmp + sizeof tmp, *p = end;
    for (int k = 0; k < 3; k++, ms /= 10)
        *--p = (char)('0' + ms % 10);
    *--p = '.';
    do
        *--p = (char)('0' + ms % 10);
    while (ms /= 10);
    if (neg)
        *--p = '-';
    size_t len = (size_t)(end - p);
    memcpy(num, p, len);
    num[len] = 0;
    return len;
}

/* The value at idx as a record argument: a string or an integer as it is, a float with 3
 * decimals, nil as "", anything else through tostring (pushed: the caller's stack grows). */
static struct piece value_piece(lua_State *L, int idx, char num[64])
{
    struct piece pc = { "", NULL, 0, 0 };
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER && lua_isinteger(L, idx)) {
        pc.len = format_integer(num, (long long)lua_tointeger(L, idx));
        pc.p = num;
    } else if (t == LUA_TNUMBER) {
        pc.len = format_millis(num, (double)lua_tonumber(L, idx));
        pc.p = num;
    } else if (t == LUA_TSTRING) {
        pc.p = lua_tolstring(L, idx, &pc.len);
    } else if (t != LUA_TNIL && t != LUA_TNONE) {
        pc.p = luaL_tolstring(L, idx, &pc.len);
    }
    return pc;
}

/* Appends the record's pieces to the outbox, all or nothing. */
static void box_record(lua_State *L, struct ledger *lg, const struct piece *pcs, int n)
{
    size_t need = 0;
    for (int k = 0; k < n; k++)
        need += pcs[k].len + pcs[k].len2 + 32;
    if (lua_redis_args_reserve(&lg->box, need))
        luaL_error(L, "not enough memory");
    for (int k = 0; k < n; k++)
        lua_redis_args_put2(&lg->box, pcs[k].p, pcs[k].len, pcs[k].p2, pcs[k].len2);
}

/* The usual result record (a URL entry, integer status and attempts, a number of seconds, no
 * body kept) with one reservation and no Lua value conversions; 0 when the values are of other
 * types (the general way then). */
static int put_plain_result(lua_State *L, struct ledger *lg, const struct slot *s, int repeat, int success)
{
    if (lua_type(L, 8) != LUA_TSTRING || !lua_isinteger(L, 9) || lua_type(L, 11) != LUA_TNUMBER ||
        !lua_isinteger(L, 12))
        return 0;
    size_t urllen;
    const char *url = lua_tolstring(L, 8, &urllen);
    char st[64], el[64], at[64];
    size_t stlen = format_integer(st, (long long)lua_tointeger(L, 9));
    size_t ellen = lua_isinteger(L, 11) ? format_integer(el, (long long)lua_tointeger(L, 11))
                                        : format_millis(el, (double)lua_tonumber(L, 11));
    size_t atlen = format_integer(at, (long long)lua_tointeger(L, 12));
    if (lua_redis_args_reserve(&lg->box, s->idlen + urllen + stlen + ellen + atlen + 8 * 32))
        luaL_error(L, "not enough memory");
    struct lua_redis_args *box = &lg->box;
#define RESP_LITERAL(s) s, sizeof s - 1
    if (repeat)
        lua_redis_args_put_resp(box, RESP_LITERAL("$1\r\nR\r\n"));
    else
        lua_redis_args_put_resp(box, RESP_LITERAL("$1\r\nr\r\n"));
    lua_redis_args_put(box, s->id, s->idlen);
    lua_redis_args_put(box, url, urllen);
    lua_redis_args_put(box, st, stlen);
    if (success)
        lua_redis_args_put_resp(box, RESP_LITERAL("$4\r\ntrue\r\n"));
    else
        lua_redis_args_put_resp(box, RESP_LITERAL("$5\r\nfalse\r\n"));
    lua_redis_args_put(box, el, ellen);
    lua_redis_args_put(box, at, atlen);
    lua_redis_args_put_resp(box, RESP_LITERAL("$0\r\n\r\n"));
#undef RESP_LITERAL
    return 1;
}

/* ---- methods ----------------------------------------------------------------------------- */

/* ledger:push(id, item, url, deliveries) → true, or false when the entry is held already */
static int l_push(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    size_t idlen;
    const char *id = luaL_checklstring(L, 2, &idlen);
    luaL_argexpected(L, lua_type(L, 3) == LUA_TSTRING || lua_type(L, 3) == LUA_TTABLE, 3, "URL or request table");
    int deliveries = (int)luaL_checkinteger(L, 5);
    if (find_id(lg, id, idlen) != NONE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_getiuservalue(L, 1, ITEMS);
    lua_getiuservalue(L, 1, URLS);
    int i = take_slot(L, lg, id, idlen, deliveries);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -3, i + 1);
    if (lua_type(L, 3) != LUA_TSTRING) {
        lua_pushvalue(L, 4);
        lua_rawseti(L, -2, i + 1);
        lg->slots[i].own_url = 1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ledger:next() → item, entries still ready; or nil, 0. A table item gets queue_id. */
static int l_next(lua_State *L)
{
    struct ledger *lg = self_ledger(L);
    if (lg->nready == 0) {
        lua_pushnil(L);
        lua_pushinteger(L, 0);
        return 2;
    }
    lua_getiuservalue(L, 1, ITEMS);
    lua_Integer seq = lg->handed + 1;
    int i = lg->ready_head;
    struct slot *s = &lg->slots[i];
    map_room(L, lg, seq);
    s->state = SLOT_OUT;
    s->seq = seq;
    lg->by_seq[seq & lg->seq_mask] = i + 1;
    lg->handed = seq;
    lg->ready_head = s->next;
    if (lg->ready_head == NONE)
        lg->ready_tail = NONE;
    lg->nready--;
    s->next = NONE;
    lua_rawgeti(L, -1, i + 1);
    if (lua_istable(L, -1)) {
        lua_pushlstring(L, s->id, s->idlen);
        lua_setfield(L, -2, "queue_id");
    }
    lua_pushinteger(L, lg->nready);
    return 2;
}

/* ledger:settle(index, item, result, max_deliveries, keep_body) → the record's op ("r" or "R": a
 * result, "d": dead-lettered, "p": parked for another delivery), or nil when the ledger does not
 * hold that entry. An integer index counts from the last begin_source(). The record goes to the
 * outbox; the slot is freed by release() after the flush that carries it. */
static int l_settle(lua_State *L)
{
    struct ledger *lg = self_ledger(L);
    lua_Integer index = lua_tointegerx(L, 2, NULL); /* not a number: found by item alone */
    if (lua_isinteger(L, 2))
        index += lg->base;
    if (lua_type(L, 4) != LUA_TTABLE)
        return luaL_typeerror(L, 4, "table");
    int isnum;
    int max_deliveries = (int)lua_tointegerx(L, 5, &isnum);
    if (!isnum)
        return luaL_typeerror(L, 5, "integer");
    int keep_body = lua_toboolean(L, 6);
    lua_settop(L, 6); /* below: at most 9 more values, within the LUA_MINSTACK a C call has */
    lua_getiuservalue(L, 1, ITEMS); /* 7 */
    int i = find_out(L, lg, 7, index, 3);
    if (i == NONE)
        return 0;
    struct slot *s = &lg->slots[i];
    /* 8: the entry's URL, the item itself or kept beside a table item */
    lua_rawgeti(L, 7, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_getiuservalue(L, 1, URLS);
        lua_rawgeti(L, -1, i + 1);
        lua_remove(L, -2);
    }
    char nums[4][64];
    struct piece pcs[8];
    const char *op;
    result_field(L, 4, UP_STATUS); /* 9 */
    if (!lua_isnil(L, 9)) {
        op = s->deliveries > 1 ? "R" : "r";
        result_field(L, 4, UP_SUCCESS);
        int success = lua_toboolean(L, -1);
        result_field(L, 4, UP_ELAPSED);
        result_field(L, 4, UP_ATTEMPTS); /* 10, 11, 12 */
        if (!keep_body && put_plain_result(L, lg, s, s->deliveries > 1, success))
            goto recorded;
        pcs[0] = (struct piece){ op, NULL, 1, 0 };
        pcs[1] = (struct piece){ s->id, NULL, s->idlen, 0 };
        pcs[2] = value_piece(L, 8, nums[0]);
        pcs[3] = value_piece(L, 9, nums[1]);
        pcs[4] = (struct piece){ success ? "true" : "false", NULL, success ? 4 : 5, 0 };
        pcs[5] = value_piece(L, 11, nums[2]);
        pcs[6] = value_piece(L, 12, nums[3]);
        pcs[7] = (struct piece){ "", NULL, 0, 0 };
        if (keep_body) { /* "=" then the body: told apart from "no body kept" */
            result_field(L, 4, UP_BODY);
            pcs[7] = (struct piece){ "=", NULL, 1, 0 };
            if (lua_type(L, -1) == LUA_TSTRING)
                pcs[7].p2 = lua_tolstring(L, -1, &pcs[7].len2);
        }
        box_record(L, lg, pcs, 8);
    recorded:
        lg->box_results++;
    } else {
        result_field(L, 4, UP_KIND);
        result_field(L, 4, UP_ERROR); /* 10, 11 */
        const char *kind = lua_tostring(L, 10);
        int dead = (kind && !strcmp(kind, "invalid")) || s->deliveries >= max_deliveries;
        op = dead ? "d" : "p";
        pcs[0] = (struct piece){ op, NULL, 1, 0 };
        pcs[1] = (struct piece){ s->id, NULL, s->idlen, 0 };
        struct piece err = { NULL, NULL, 0, 0 }, knd = { NULL, NULL, 0, 0 }; /* tostring() of each */
        err.p = luaL_tolstring(L, 11, &err.len);
        knd.p = luaL_tolstring(L, 10, &knd.len);
        if (dead) {
            pcs[2] = value_piece(L, 8, nums[0]);
            pcs[3] = err;
            pcs[4] = knd;
            pcs[5] = (struct piece){ nums[1], NULL, (size_t)snprintf(nums[1], 64, "%d", s->deliveries), 0 };
            box_record(L, lg, pcs, 6);
        } else {
            pcs[2] = knd;
            pcs[3] = err;
            box_record(L, lg, pcs, 4);
        }
    }
    if (lg->by_seq[s->seq & lg->seq_mask] == i + 1)
        lg->by_seq[s->seq & lg->seq_mask] = 0;
    s->state = SLOT_SETTLING;
    s->next = lg->box_list;
    lg->box_list = i;
    lg->box_records++;
    int up = op[0] == 'r' ? UP_OP_r : op[0] == 'R' ? UP_OP_R : op[0] == 'd' ? UP_OP_d : UP_OP_p;
    lua_pushvalue(L, lua_upvalueindex(up));
    return 1;
}

/* ledger:record(op, id, ...) → appends a record for an entry the ledger does not hold (one that
 * could not be decoded is dead-lettered at once). */
static int l_record(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    int top = lua_gettop(L);
    if (top < 3 || top > 9)
        return luaL_error(L, "a settle record has 2 to 8 fields");
    const char *op = luaL_checkstring(L, 2);
    char nums[8][64];
    struct piece pcs[8];
    luaL_checkstack(L, 8, "settle record");
    for (int k = 2; k <= top; k++)
        pcs[k - 2] = value_piece(L, k, nums[k - 2]);
    box_record(L, lg, pcs, top - 1);
    lg->box_records++;
    if (op[0] == 'r' || op[0] == 'R')
        lg->box_results++;
    return 0;
}

/* ledger:take() → the outbox as an args list, its records and results; nil when empty. The
 * slots it settles are freed by release(), once the flush is done. The list is the ledger's own
 * and good until the next take: the two buffers trade places and keep their size. */
static int l_take(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    if (lg->box_records == 0)
        return 0;
    if (lg->flushing)
        return luaL_error(L, "take: the last flush was not released");
    lua_getiuservalue(L, 1, FLUSH_ARGS);
    struct lua_redis_args *out = luaL_checkudata(L, -1, LUA_REDIS_ARGS);
    struct lua_redis_args spare = *out;
    *out = lg->box;
    lg->box = spare;
    lg->box.len = 0;
    lg->box.n = 0;
    lua_pushinteger(L, lg->box_records);
    lua_pushinteger(L, lg->box_results);
    for (int i = lg->box_list; i != NONE; i = lg->slots[i].next)
        lg->slots[i].state = SLOT_FLUSHING;
    lg->flush_list = lg->box_list;
    lg->box_list = NONE;
    lg->box_records = lg->box_results = 0;
    lg->flushing = 1;
    return 3;
}

/* ledger:release() → frees the slots of the taken flush; how many */
static int l_release(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    lua_getiuservalue(L, 1, ITEMS);
    lua_getiuservalue(L, 1, URLS);
    int n = 0;
    for (int i = lg->flush_list; i != NONE;) {
        struct slot *s = &lg->slots[i];
        int next = s->next;
        lua_pushnil(L);
        lua_rawseti(L, -3, i + 1);
        if (s->own_url) {
            lua_pushnil(L);
            lua_rawseti(L, -2, i + 1);
        }
        s->state = SLOT_FREE;
        s->next = lg->free_list;
        lg->free_list = i;
        lg->held--;
        n++;
        i = next;
    }
    lg->flush_list = NONE;
    lg->flushing = 0;
    lua_pushinteger(L, n);
    return 1;
}

/* ledger:deliveries(id) → the held entry's delivery count, or nil */
static int l_deliveries(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    size_t idlen;
    const char *id = luaL_checklstring(L, 2, &idlen);
    int i = find_id(lg, id, idlen);
    if (i == NONE)
        return 0;
    lua_pushinteger(L, lg->slots[i].deliveries);
    return 1;
}

/* ledger:ids() → the ids of every entry held (for lease extension) */
static int l_ids(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    lua_createtable(L, lg->held, 0);
    int n = 0;
    for (int i = 0; i < lg->cap; i++) {
        if (lg->slots[i].state == SLOT_FREE)
            continue;
        lua_pushlstring(L, lg->slots[i].id, lg->slots[i].idlen);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* ledger:begin_source() → the next item handed out is the fetcher's index 1 of a new source:
 * settle(index) counts from there (the ledger's own count goes on across sources) */
static int l_begin_source(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    lg->base = lg->handed;
    return 0;
}

/* ledger:counts() → entries ready (read, not handed out), entries held (read, not settled),
 * entries handed out so far (the last index next() gave) */
static int l_counts(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    lua_pushinteger(L, lg->nready);
    lua_pushinteger(L, lg->held);
    lua_pushinteger(L, lg->handed);
    return 3;
}

static int l_gc(lua_State *L)
{
    struct ledger *lg = check_ledger(L, 1);
    free(lg->slots);
    free(lg->by_seq);
    free(lg->box.buf);
    memset(lg, 0, sizeof *lg);
    lg->mark = &ledger_mark;
    lg->free_list = lg->ready_head = lg->ready_tail = lg->box_list = lg->flush_list = NONE;
    return 0;
}

int lua_redis_ledger_new(lua_State *L)
{
    struct ledger *lg = lua_newuserdatauv(L, sizeof *lg, 3);
    memset(lg, 0, sizeof *lg);
    lg->mark = &ledger_mark;
    lg->free_list = lg->ready_head = lg->ready_tail = lg->box_list = lg->flush_list = NONE;
    luaL_setmetatable(L, LUA_REDIS_LEDGER);
    lua_newtable(L);
    lua_setiuservalue(L, -2, ITEMS);
    lua_newtable(L);
    lua_setiuservalue(L, -2, URLS);
    struct lua_redis_args empty = { NULL, 0, 0, 0 };
    lua_redis_args_push_moved(L, &empty);
    lua_setiuservalue(L, -2, FLUSH_ARGS);
    return 1;
}

int lua_redis_ledger_take_read(lua_State *L, int ledger, const struct redis_reply *r)
{
    struct ledger *lg = check_ledger(L, ledger);
    const struct redis_reply *list = lua_redis_stream_entries(r);
    size_t n = list ? list->n : 0;
    luaL_checkstack(L, 8, "stream entries");
    lua_pushinteger(L, 0);  /* the count, set at the end */
    lua_newtable(L);        /* others' ids, fields */
    lua_newtable(L);
    lua_getiuservalue(L, ledger, ITEMS);
    int added = 0, others = 0;
    for (size_t k = 0; k < n; k++) {
        const struct redis_reply *e = &list->elem[k];
        if (e->type != REDIS_T_ARRAY || e->n < 2 || e->elem[0].type != REDIS_T_STRING)
            continue;
        const struct redis_reply *url = lua_redis_entry_url(e);
        if (url && url->len > 0 && e->elem[0].len <= ID_MAX) {
            int i = take_slot(L, lg, e->elem[0].str, e->elem[0].len, 1);
            lua_pushlstring(L, url->str, url->len);
            lua_rawseti(L, -2, i + 1);
            added++;
        } else {
            others++;
            lua_pushlstring(L, e->elem[0].str, e->elem[0].len);
            lua_rawseti(L, -4, others);
            lua_redis_push_reply(L, &e->elem[1]); /* a deleted entry's nil comes as false */
            lua_rawseti(L, -3, others);
        }
    }
    lua_pop(L, 1);
    lua_pushinteger(L, added);
    lua_replace(L, -4);
    return 3;
}

void lua_redis_ledger_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "push", l_push }, { "next", l_next }, { "settle", l_settle }, { "record", l_record },
        { "take", l_take }, { "release", l_release }, { "deliveries", l_deliveries }, { "ids", l_ids },
        { "counts", l_counts }, { "begin_source", l_begin_source }, { NULL, NULL },
    };
    if (luaL_newmetatable(L, LUA_REDIS_LEDGER)) {
        lua_createtable(L, 0, sizeof methods / sizeof methods[0] - 1);
        for (int i = 0; i < UP_COUNT; i++)
            lua_pushstring(L, upvalue_strings[i]);
        luaL_setfuncs(L, methods, UP_COUNT);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
