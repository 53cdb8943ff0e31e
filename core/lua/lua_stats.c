/* lua_stats.c — `_stats`: the durations of a run kept for its percentiles (lua/thresholds.lua).
 * They live in C memory, not in a Lua table: the collector would walk a table of thousands of
 * numbers on every cycle, and table.sort costs a couple of thousand instructions per number. Up to
 * EXACT_MAX durations are kept as they are (percentiles exact); past that they are folded into a
 * log-linear histogram of fixed size, so a run of any length keeps at most ~512 KB (percentiles
 * then within 1/BUCKETS_PER_OCTAVE of the true value). A samples object owns its buffers; __gc
 * frees them. Durations can come in batches (s:add_all(t, n), s:add_field(t, n, key)), one call
 * for many; the exact ones
 * are sorted by radix on their bit patterns (no comparison callback). */
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
#define PLACED_MAX 16              /* ranks remembered as in place (percentiles of one summary) */

struct samples {
    double *v;                     /* exact: n durations (NULL once folded) */
    uint32_t *hist;                /* folded: BUCKETS counts (NULL while exact) */
    size_t n, cap;
    double min, max, sum;
    int sorted;
    /* While not sorted: 0-based ranks r whose v[r] is in place (everything before is <=, after
     * >=), found by earlier percentiles; a new one is looked for only between its neighbours. */
    size_t placed[PLACED_MAX];
    int nplaced;
};

/* The methods carry the metatable as their upvalue: comparing it is cheaper than
 * luaL_checkudata's lookup of the metatable by name in the registry. */
static struct samples *check(lua_State *L)
{
    struct samples *s = lua_touserdata(L, 1);
    if (s && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (same)
            return s;
    }
    return luaL_checkudata(L, 1, SAMPLES); /* raises the usual error */
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

/* One more number; 0, or -1 when out of memory (nothing changed). */
static int add_one(struct samples *s, double x)
{
    if (!s->hist && s->n == EXACT_MAX && fold(s))
        return -1;
    if (s->hist) {
        uint32_t *c = &s->hist[bucket_of(x)];
        if (*c < UINT32_MAX)
            (*c)++;
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 256;
            double *v = realloc(s->v, cap * sizeof *v);
            if (!v)
                return -1;
            s->v = v;
            s->cap = cap;
        }
        s->sorted = s->sorted && (s->n == 0 || s->v[s->n - 1] <= x);
        s->v[s->n] = x;
        s->nplaced = 0;
    }
    if (s->n == 0 || x < s->min)
        s->min = x;
    if (s->n == 0 || x > s->max)
        s->max = x;
    s->sum += x;
    s->n++;
    return 0;
}

/* s:add(x): one more number (NaN is no duration: left out) */
static int l_add(lua_State *L)
{
    struct samples *s = check(L);
    double x = luaL_checknumber(L, 2);
    if (x == x && add_one(s, x))
        return luaL_error(L, "not enough memory");
    return 0;
}

/* s:add_all(t, n): t[1] .. t[n] added as by s:add (t is only read) */
static int l_add_all(lua_State *L)
{
    struct samples *s = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_checkinteger(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int isnum;
        double x = lua_tonumberx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum)
            return luaL_error(L, "add_all: t[%d] is not a number", (int)i);
        if (x == x && add_one(s, x))
            return luaL_error(L, "not enough memory");
    }
    return 0;
}

/* s:add_field(t, n, key): t[1][key] .. t[n][key] added as by s:add (raw reads: a run's results
 * hand over their durations in one call when the run ends) */
static int l_add_field(lua_State *L)
{
    struct samples *s = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_checkany(L, 4);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
            return luaL_error(L, "add_field: t[%d] is not a table", (int)i);
        lua_pushvalue(L, 4);
        lua_rawget(L, -2);
        int isnum;
        double x = lua_tonumberx(L, -1, &isnum);
        lua_pop(L, 2);
        if (!isnum)
            return luaL_error(L, "add_field: t[%d].%s is not a number", (int)i, luaL_tolstring(L, 4, NULL));
        if (x == x && add_one(s, x))
            return luaL_error(L, "not enough memory");
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A double's bits turned into an unsigned key of the same order (NaN is never added). */
static uint64_t key_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u >> 63 ? ~u : u | (uint64_t)1 << 63;
}

static double double_of(uint64_t k)
{
    uint64_t u = k >> 63 ? k & ~((uint64_t)1 << 63) : ~k;
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* LSD radix sort of n doubles, a byte at a time, skipping the bytes every key shares (a run's
 * durations share their top ones): 0, or -1 when the scratch buffer cannot be had. */
static int radix_sort(double *v, size_t n)
{
    uint64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return -1;
    }
    size_t count[8][256] = { { 0 } };
    for (size_t i = 0; i < n; i++) {
        uint64_t k = key_of(v[i]);
        a[i] = k;
        for (int d = 0; d < 8; d++)
            count[d][(k >> (8 * d)) & 0xff]++;
    }
    for (int d = 0; d < 8; d++) {
        size_t *c = count[d];
        if (c[(a[0] >> (8 * d)) & 0xff] == n)
            continue; /* every key has this byte */
        size_t sum = 0;
        for (int j = 0; j < 256; j++) {
            size_t t = c[j];
            c[j] = sum;
            sum += t;
        }
        for (size_t i = 0; i < n; i++)
            b[c[(a[i] >> (8 * d)) & 0xff]++] = a[i];
        uint64_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = double_of(a[i]);
    free(a);
    free(b);
    return 0;
}

static void swap(double *v, size_t i, size_t j)
{
    double t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* Puts the k-th smallest of v[lo..hi] (inclusive, lo <= k <= hi) at v[k], the smaller ones
 * before it and the larger after (quickselect, median of three). */
static void select_rank(double *v, size_t lo, size_t hi, size_t k)
{
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo])
            swap(v, lo, mid);
        if (v[hi] < v[lo])
            swap(v, lo, hi);
        if (v[hi] < v[mid])
            swap(v, mid, hi);
        double pivot = v[mid];
        size_t i = lo, j = hi;
        for (;;) { /* v[lo] <= pivot <= v[hi] stop both scans */
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i >= j)
                break;
            swap(v, i, j);
            i++;
            j--;
        }
        /* v[lo..j] <= pivot <= v[j+1..hi] */
        if (i == j) { /* v[i] == pivot: in place */
            if (k == i)
                return;
            if (k < i)
                hi = i - 1;
            else
                lo = i + 1;
        } else if (k <= j) {
            hi = j;
        } else {
            lo = j + 1;
        }
    }
}

/* v[rank] in place (rank 0-based), without sorting everything: a summary asks for a few
 * percentiles, and each needs only its neighbours' range. */
static double exact_rank(struct samples *s, size_t rank)
{
    if (s->sorted)
        return s->v[rank];
    size_t lo = 0, hi = s->n - 1;
    for (int i = 0; i < s->nplaced; i++) {
        size_t r = s->placed[i];
        if (r == rank)
            return s->v[rank];
        if (r < rank && r + 1 > lo)
            lo = r + 1;
        if (r > rank && r - 1 < hi)
            hi = r - 1;
    }
    select_rank(s->v, lo, hi, rank);
    if (s->nplaced < PLACED_MAX)
        s->placed[s->nplaced++] = rank;
    return s->v[rank];
}

static void sort_exact(struct samples *s)
{
    if (!s->sorted) {
        if (s->n < 64 || radix_sort(s->v, s->n))
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
        lua_pushnumber(L, exact_rank(s, rank - 1));
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
    static const luaL_Reg methods[] = { { "add", l_add }, { "add_all", l_add_all }, { "add_field", l_add_field },
                                        { "percentile", l_percentile },
                                        { "stats", l_stats }, { "exact", l_exact }, { "sorted", l_sorted },
                                        { NULL, NULL } };
    static const luaL_Reg meta[] = { { "__len", l_len }, { "__gc", l_gc }, { NULL, NULL } };
    static const luaL_Reg funcs[] = { { "samples", l_samples }, { NULL, NULL } };
    luaL_newmetatable(L, SAMPLES);
    lua_pushvalue(L, -1);
    luaL_setfuncs(L, meta, 1); /* each function's upvalue: the metatable (check) */
    luaL_newlibtable(L, methods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
