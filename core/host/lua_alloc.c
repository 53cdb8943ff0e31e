/* lua_alloc.c — the Lua state's allocator: per-size-class free lists in front of malloc.
 * Lua makes and drops many small tables, strings and coroutines per request; recycling their
 * blocks by size class skips malloc's bin searches. Blocks of 512 bytes or less always have
 * their class's full capacity, so any block of a class can serve any request of that class. Cached
 * blocks belong to the struct lua_alloc until lua_alloc_release. */
#include "lua_alloc.h"

#include <stdlib.h>
#include <string.h>

struct free_block {
    struct free_block *next;
};

/* Class c holds blocks of (c+1)*16 - 8 bytes: with malloc's 8-byte header that is exactly one of
 * glibc's chunk sizes, so rounding up to a class wastes nothing over a plain malloc. */
static size_t class_of(size_t size)
{
    return (size + 7) / LUA_ALLOC_CLASS_SIZE; /* size in 1..512 → 0..32 */
}

static size_t class_bytes(size_t c)
{
    return (c + 1) * LUA_ALLOC_CLASS_SIZE - 8;
}

static void *take(struct lua_alloc *a, size_t size)
{
    size_t c = class_of(size);
    struct free_block *b = a->free_list[c];
    if (b) {
        a->free_list[c] = b->next;
        a->cached_bytes -= class_bytes(c);
        return b;
    }
    return malloc(class_bytes(c));
}

static void give_back(struct lua_alloc *a, void *ptr, size_t size)
{
    size_t c = class_of(size);
    size_t bytes = class_bytes(c);
    if (a->cached_bytes + bytes > a->max_cached_bytes) {
        free(ptr);
        return;
    }
    struct free_block *b = ptr;
    b->next = a->free_list[c];
    a->free_list[c] = b;
    a->cached_bytes += bytes;
}

void *lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_alloc *a = ud;
    if (!ptr)
        osize = 0; /* osize then names the object's type, not a size */
    int was_small = osize > 0 && osize <= LUA_ALLOC_MAX_SMALL;
    int small = nsize > 0 && nsize <= LUA_ALLOC_MAX_SMALL;

    if (nsize == 0) {
        if (was_small)
            give_back(a, ptr, osize);
        else
            free(ptr);
        return NULL;
    }
    if (!was_small && !small && ptr)
        return realloc(ptr, nsize);
    if (was_small && small && class_of(osize) == class_of(nsize))
        return ptr;
    /* a new block, or a move between a class and another class or malloc */
    void *p = small ? take(a, nsize) : malloc(nsize);
    if (!p)
        return NULL; /* Lua keeps the old block on failure */
    if (ptr) {
        memcpy(p, ptr, osize < nsize ? osize : nsize);
        if (was_small)
            give_back(a, ptr, osize);
        else
            free(ptr);
    }
    return p;
}

void lua_alloc_release(struct lua_alloc *a)
{
    for (size_t c = 0; c < LUA_ALLOC_CLASSES; c++) {
        struct free_block *b = a->free_list[c];
        while (b) {
            struct free_block *next = b->next;
            free(b);
            b = next;
        }
        a->free_list[c] = NULL;
    }
    a->cached_bytes = 0;
}
