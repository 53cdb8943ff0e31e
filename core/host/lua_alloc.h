/* lua_alloc.h — the Lua state's allocator: per-size-class free lists in front of malloc.
 * The host owns one struct lua_alloc; lua_alloc_release frees every cached block after lua_close. */
#ifndef LUAFETCH_LUA_ALLOC_H
#define LUAFETCH_LUA_ALLOC_H

#include <stddef.h>

#define LUA_ALLOC_CLASS_SIZE 16
#define LUA_ALLOC_MAX_SMALL 512
#define LUA_ALLOC_CLASSES (LUA_ALLOC_MAX_SMALL / LUA_ALLOC_CLASS_SIZE + 1)

struct lua_alloc {
    void *free_list[LUA_ALLOC_CLASSES];
    size_t cached_bytes;
    size_t max_cached_bytes;
};

/* A lua_Alloc: pass the struct lua_alloc as ud to lua_newstate. */
void *lua_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);
void lua_alloc_release(struct lua_alloc *a);

#endif
