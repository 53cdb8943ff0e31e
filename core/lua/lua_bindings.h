/* lua_bindings.h — entry points of the C modules that back the lua/ modules, and the embedded sources.
 * Nothing here owns memory; each luaopen_* follows the usual Lua conventions. */
#ifndef LUAFETCH_LUA_BINDINGS_H
#define LUAFETCH_LUA_BINDINGS_H

#include <lua.h>
#include <stddef.h>

int luaopen_luafetch_task(lua_State *L);
int luaopen_luafetch_http(lua_State *L);
int luaopen_luafetch_server(lua_State *L);
int luaopen_luafetch_html(lua_State *L);
int luaopen_luafetch_redis(lua_State *L);
int luaopen_luafetch_stats(lua_State *L);

/* Pushes a table of the name\0value\0 pairs in block (names already lower-case); repeated
 * names are joined with ", ". Shared by client responses and server requests. */
void luafetch_push_headers(lua_State *L, const char *block, size_t len, int count);

struct embedded_module {
    const char *name;       /* module name for require, e.g. "http" or "plugins.timer" */
    const char *source;
    size_t len;
};

/* Generated from the lua/ and plugins/ folders by tools/embed.c. */
extern const struct embedded_module embedded_modules[];

#endif
