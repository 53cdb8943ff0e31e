/* lua_stats.c — `_stats`: the durations of a run kept for its percentiles (lua/thresholds.lua).
 * They live in C memory, not in a Lua table: the collector would walk a table of thousands of
 * numbers on every cycle, and table.sort costs a couple of thousand instructions per number. Up to
 * EXACT_MAX durations are kept as they are (percentiles exact); past that they are folded into a
 * log-linear histogram of fixed size, so a run of any length keeps at most ~512 KB (percentiles
 * then within 1/BUCKETS_PER_OCTAVE of the true value). A samples object owns its buffers; __gc
 * frees them. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_bindings.h"

#define SAMPLES "luafetch.samples"
#define EXACT_MAX 65536            /* durations kept one by one (8 bytes each) */
#define BUCKETS_PER_OCTAVE 128     /* histogram: each power of two split in 128 equal parts */
#define OCTAVE_MIN (-24)           /* 2^-24 s (60 ns): shorter durations share the first bucket */
#define OCTAVES 48                 /* up to 2^24 s (194 days) */
#define BUCKETS (OCTAVES * BUCKETS_PER_OCTAVE)

struct samples {
    double *v;                     /* exact: n durations (NULL once folded) */
    uint32_t *hist;                /* folded: BUCKETS counts (NULL while exact) */
    size_t n, cap;
    double min, max, sum;
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
    memset(s, 0, sizeof *s);
    s->sorted = 1;
    luaL_setmetatable(L, SAMPLES);
    return 1;
}

static int bucket_of(double x)
{
    if (!(x > 0))
        return 0;
    int e;
    double m = frexp(x, &e); /* x = m * 2^e, m in [0.5, 1) */
    int octave = e - 1 - OCTAVE_MIN;
    if (octave < 0)
        return 0;
    if (octave >= OCTAVES)
        return BUCKETS - 1;
    return octave * BUCKETS_PER_OCTAVE + (int)((m - 0.5) * 2 * BUCKETS_PER_OCTAVE);
}

/* The middle of bucket b. */
static double bucket_value(int b)
{
    int octave = b / BUCKETS_PER_OCTAVE, part = b % BUCKETS_PER_OCTAVE;
    return ldexp(1.0 + (part + 0.5) / BUCKETS_PER_OCTAVE, octave + OCTAVE_MIN);
}

/* From exact to folded: 0, or -1 when out of memory (nothing changed). */
static int fold(struct samples *s)
{
    uint32_t *h = calloc(BUCKETS, sizeof *h);
    if (!h)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        h[bucket_of(s->v[i])]++;
    free(s->v);
    s->v = NULL;
    s->cap = 0;
    s->hist = h;
    return 0;
}

/* s:add(x): one more number (NaN is no duration: left out) */
static int l_add(lua_State *L)
{
    struct samples *s = check(L);
    double x = luaL_checknumber(L, 2);
    if (x != x)
        return 0;
    if (!s->hist && s->n == EXACT_MAX && fold(s))
        return luaL_error(L, "not enough memory");
    if (s->hist) {
        uint32_t *c = &s->hist[bucket_of(x)];
        if (*c < UINT32_MAX)
            (*c)++;
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 256;
            double *v = realloc(s->v, cap * sizeof *v);
            if (!v)
                return luaL_error(L, "not enough memory");
            s->v = v;
            s->cap = cap;
        }
        s->sorted = s->sorted && (s->n == 0 || s->v[s->n - 1] <= x);
        s->v[s->n] = x;
    }
    if (s->n == 0 || x < s->min)
        s->min = x;
    if (s->n == 0 || x > s->max)
        s->max = x;
    s->sum += x;
    s->n++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sort_exact(struct samples *s)
{
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, cmp_double);
        s->sorted = 1;
    }
}

/* s:percentile(p) → the nearest-rank p-th percentile (0 < p <= 100), or nil when empty: exact
 * while every duration is kept, else the middle of the histogram bucket holding that rank
 * (within [min, max]; the first and last ranks are min and max). */
static int l_percentile(lua_State *L)
{
    struct samples *s = check(L);
    double p = luaL_checknumber(L, 2);
    if (s->n == 0)
        return 0;
    double r = ceil(p / 100 * (double)s->n);
    size_t rank = r < 1 ? 1 : r > (double)s->n ? s->n : (size_t)r;
    if (!s->hist) {
        sort_exact(s);
        lua_pushnumber(L, s->v[rank - 1]);
        return 1;
    }
    if (rank == 1 || rank == s->n) { /* the ends are known exactly */
        lua_pushnumber(L, rank == 1 ? s->min : s->max);
        return 1;
    }
    size_t seen = 0;
    int b = 0;
    for (; b < BUCKETS - 1; b++) {
        seen += s->hist[b];
        if (seen >= rank)
            break;
    }
    double v = bucket_value(b);
    lua_pushnumber(L, v < s->min ? s->min : v > s->max ? s->max : v);
    return 1;
}

/* s:stats() → count, min, max, sum (min and max nil when empty) */
static int l_stats(lua_State *L)
{
    struct samples *s = check(L);
    lua_pushinteger(L, (lua_Integer)s->n);
    if (s->n == 0) {
        lua_pushnil(L);
        lua_pushnil(L);
    } else {
        lua_pushnumber(L, s->min);
        lua_pushnumber(L, s->max);
    }
    lua_pushnumber(L, s->sum);
    return 4;
}

/* s:exact() → whether every duration is kept (percentiles exact) */
static int l_exact(lua_State *L)
{
    lua_pushboolean(L, check(L)->hist == NULL);
    return 1;
}

/* s:sorted() → a new array of the numbers in ascending order while every one is kept (the order
 * they came in is not kept); nil once they are folded into the histogram */
static int l_sorted(lua_State *L)
{
    struct samples *s = check(L);
    if (s->hist)
        return 0;
    sort_exact(s);
    lua_createtable(L, (int)s->n, 0);
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
    free(s->hist);
    memset(s, 0, sizeof *s);
    return 0;
}

int luaopen_luafetch_stats(lua_State *L)
{
    static const luaL_Reg methods[] = { { "add", l_add }, { "percentile", l_percentile }, { "stats", l_stats },
                                        { "exact", l_exact }, { "sorted", l_sorted }, { NULL, NULL } };
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
