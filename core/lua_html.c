/* lua_html.c — the `_html` bindings under lua/html.lua (placeholder until the gumbo binding
 * lands: parse() raises a clear error). Owns nothing yet. */
#include <lauxlib.h>
#include <lua.h>

#include "lua_bindings.h"

static int l_parse(lua_State *L)
{
    return luaL_error(L, "html.parse is not available yet");
}

int luaopen_luafetch_html(lua_State *L)
{
    static const luaL_Reg funcs[] = { { "parse", l_parse }, { NULL, NULL } };
    luaL_newlib(L, funcs);
    return 1;
}
