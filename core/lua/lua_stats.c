/* lua_stats.c — `_stats`: the durations of a run kept for its percentiles (lua/thresholds.lua).
 * They live in C memory, not in a Lua table: the collector would walk a table of thousands of
 * numbers on every cycle, and table.sort costs a couple of thousand instructions per number.
 * A samples object owns its buffer; __gc frees it. */
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_bindings.h"

#define SAMPLES "luafetch.samples"

struct samples {
    double *v;
    size_t n, cap;
    int sorted;
};

static struct samples *check(lua_State *L)
{
    return luaL_checkudata(L, 1, SAMPLES);
}

/* _stats.samples() → an empty samples object */
static int l_samples(lua_State *L)
{
    struct samples *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->v = NULL;
    s->n = s->cap = 0;
    s->sorted = 1;
    luaL_setmetatable(L, SAMPLES);
    return 1;
}

/* s:add(x): one more number (NaN is no duration: left out) */
static int l_add(lua_State *L)
{
    struct samples *s = check(L);
    double x = luaL_checknumber(L, 2);
    if (x != x)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return luaL_error(L, "not enough memory");
        s->v = v;
        s->cap = cap;
    }
    s->sorted = s->sorted && (s->n == 0 || s->v[s->n - 1] <= x);
    s->v[s->n++] = x;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* s:sorted() → a new array of the numbers in ascending order (the order they came in is not kept) */
static int l_sorted(lua_State *L)
{
    struct samples *s = check(L);
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, cmp_double);
        s->sorted = 1;
    }
    lua_createtable(L, s->n < (size_t)INT32_MAX ? (int)s->n : 0, 0);
    for (size_t i = 0; i < s->n; i++) {
        lua_pushnumber(L, s->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check(L)->n);
    return 1;
}

static int l_gc(lua_State *L)
{
    struct samples *s = check(L);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
    return 0;
}

int luaopen_luafetch_stats(lua_State *L)
{
    static const luaL_Reg methods[] = { { "add", l_add }, { "sorted", l_sorted }, { NULL, NULL } };
    static const luaL_Reg meta[] = { { "__len", l_len }, { "__gc", l_gc }, { NULL, NULL } };
    static const luaL_Reg funcs[] = { { "samples", l_samples }, { NULL, NULL } };
    luaL_newmetatable(L, SAMPLES);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
