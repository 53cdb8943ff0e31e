/* lua_server.c — the `_server` bindings under http.serve (placeholder until the embedded server
 * lands: serve() raises a clear error). Owns nothing yet. */
#include <lauxlib.h>
#include <lua.h>

#include "lua_bindings.h"

static int l_serve(lua_State *L)
{
    return luaL_error(L, "http.serve is not available yet");
}

int luaopen_luafetch_server(lua_State *L)
{
    static const luaL_Reg funcs[] = { { "serve", l_serve }, { NULL, NULL } };
    luaL_newlib(L, funcs);
    return 1;
}
