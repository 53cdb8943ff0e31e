/* lua_http_options.h — _http.request's options table → struct request (lua_http_options.c). The
 * request owns every string copied into it. */
#ifndef LUAFETCH_LUA_HTTP_OPTIONS_H
#define LUAFETCH_LUA_HTTP_OPTIONS_H

#include <stddef.h>

#include <lua.h>

struct request;

/* Fills r from the options table at index t (only the fields present). 0, or -1 with err set
 * ("out of memory" when nothing more precise applies). */
int http_options_fill(lua_State *L, int t, struct request *r, char *err, size_t errlen);

/* The quick form _http.request(url, method, total_timeout [, opts]): url, method and the total
 * timeout from the arguments, the rest from the caller's own options table (lua/http.lua checked
 * it holds only options the core takes, besides timeout and max_redirects, which are skipped). */
int http_options_fill_quick(lua_State *L, struct request *r, char *err, size_t errlen);

/* The string at idx for C code that takes a NUL-terminated string, or NULL with err set: a value
 * that is not a string, or one with a NUL byte inside (C would silently cut it there). */
const char *http_options_string(lua_State *L, int idx, const char *what, char *err, size_t errlen);

#endif
