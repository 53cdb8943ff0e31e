/* lua_http_options.c — the options table of _http.request turned into a struct request: url,
 * method, headers (validated), body (a string, an open file, a function), timeouts, limits, TLS
 * trust, proxy, http2. Strings are copied into the request, which owns them from then on. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "headers.h"
#include "lua_http_options.h"
#include "request.h"
#include "url.h"

static int add_header(struct request *r, lua_State *L, const char *name, size_t nlen, int vidx,
                      char *err, size_t errlen)
{
    size_t vlen;
    const char *v = lua_tolstring(L, vidx, &vlen);
    return http_head_add(&r->head, name, nlen, v, vlen, err, errlen);
}

static int fill_headers(lua_State *L, int t, struct request *r, char *err, size_t errlen)
{
    lua_getfield(L, t, "headers");
    int h = lua_gettop(L);
    int rc = 0;
    if (lua_isnil(L, h))
        goto out;
    if (!lua_istable(L, h)) {
        snprintf(err, errlen, "headers must be a table");
        rc = -1;
        goto out;
    }
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, h)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, errlen, "header names must be strings");
            rc = -1;
        } else {
            size_t nlen;
            const char *name = lua_tolstring(L, -2, &nlen);
            int vt = lua_type(L, -1);
            if (vt == LUA_TSTRING || vt == LUA_TNUMBER) {
                rc = add_header(r, L, name, nlen, -1, err, errlen);
            } else if (vt == LUA_TTABLE) {
                /* repeated header: an array of values */
                lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
                    lua_rawgeti(L, -1, i);
                    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                        snprintf(err, errlen, "header %s: values must be strings", name);
                        rc = -1;
                    } else {
                        rc = add_header(r, L, name, nlen, -1, err, errlen);
                    }
                    lua_pop(L, 1);
                }
            } else {
                snprintf(err, errlen, "header %s: value must be a string", name);
                rc = -1;
            }
        }
        lua_pop(L, 1);
    }
    if (rc)
        lua_pop(L, 1); /* the key left by the interrupted lua_next */
out:
    lua_settop(L, h - 1);
    return rc;
}

/* The string at idx for C code that takes a NUL-terminated string, or NULL with err set: a value
 * that is not a string, or one with a NUL byte inside (C would silently cut it there). */
const char *http_options_string(lua_State *L, int idx, const char *what, char *err, size_t errlen)
{
    size_t len;
    const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
    if (!s)
        snprintf(err, errlen, "%s must be a string", what);
    else if (strlen(s) != len)
        snprintf(err, errlen, "%s contains a NUL byte", what);
    else
        return s;
    return NULL;
}

/* proxy = { kind = "http"|"socks5"|"socks5h", host=, port=, user=, pass= } (lua/proxy.lua made
 * it) or false; on top of the stack. 0 or -1 with err set. */
static int fill_proxy(lua_State *L, struct request *r, char *err, size_t errlen)
{
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        return 0;
    if (!lua_istable(L, -1) || r->proxy) {
        snprintf(err, errlen, "proxy must be a table or false");
        return -1;
    }
    struct request_proxy *p = r->proxy = calloc(1, sizeof *r->proxy);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    static const char *const kinds[] = { "http", "socks5", "socks5h", NULL };
    static const enum request_proxy_kind values[] = { PROXY_HTTP, PROXY_SOCKS5, PROXY_SOCKS5H };
    lua_getfield(L, -1, "kind");
    const char *kind = lua_tostring(L, -1);
    int k = 0;
    while (kind && kinds[k] && strcmp(kinds[k], kind))
        k++;
    lua_pop(L, 1);
    if (!kind || !kinds[k]) {
        snprintf(err, errlen, "proxy kind must be http, socks5 or socks5h");
        return -1;
    }
    p->kind = values[k];
    lua_getfield(L, -1, "port");
    lua_Integer port = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "proxy port out of range");
        return -1;
    }
    p->port = (int)port;
    char **fields[] = { &p->host, &p->user, &p->pass };
    const char *names[] = { "host", "user", "pass" };
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, names[i]);
        if (!lua_isnil(L, -1)) {
            const char *v = http_options_string(L, -1, names[i], err, errlen);
            if (!v || (i > 0 && strpbrk(v, "\r\n"))) {
                if (v)
                    snprintf(err, errlen, "proxy %s must not contain CR or LF", names[i]);
                lua_pop(L, 1);
                return -1;
            }
            if (!(*fields[i] = strdup(v))) {
                snprintf(err, errlen, "out of memory");
                lua_pop(L, 1);
                return -1;
            }
        }
        lua_pop(L, 1);
    }
    if (!p->host || !*p->host) {
        snprintf(err, errlen, "proxy host is required");
        return -1;
    }
    return 0;
}

/* body = an open file (sent from its position to its end, with Content-Length) or a function
 * (called for each next piece, nil at the end; sent chunked). The value is on top. */
static int fill_body_stream(lua_State *L, struct request *r, char *err, size_t errlen)
{
    if (lua_type(L, -1) == LUA_TFUNCTION) {
        if (request_upload_function(r)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    luaL_Stream *fs = luaL_testudata(L, -1, LUA_FILEHANDLE);
    struct stat st;
    long pos;
    if (!fs || !fs->closef || !fs->f) {
        snprintf(err, errlen, "body must be a string, an open file or a function");
        return -1;
    }
    if (fflush(fs->f) != 0 || (pos = ftell(fs->f)) < 0 || fstat(fileno(fs->f), &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "body: a file must be a regular file open for reading");
        return -1;
    }
    /* a descriptor of its own: the script may close its file while the body is sent */
    int fd = dup(fileno(fs->f));
    if (fd < 0 || request_upload_file(r, fd, (uint64_t)pos > (uint64_t)st.st_size ? (uint64_t)st.st_size : (uint64_t)pos,
                                      (uint64_t)st.st_size)) {
        snprintf(err, errlen, "body: %s", fd < 0 ? "cannot duplicate the file's descriptor" : "out of memory");
        return -1;
    }
    return 0;
}

/* One option of the table _http.request gets; 0 or -1 with err set. The value is on top. */
static int fill_option(lua_State *L, struct request *r, const char *key, char *err, size_t errlen)
{
    int vt = lua_type(L, -1);
    size_t len;
    if (!strcmp(key, "url")) {
        const char *url = http_options_string(L, -1, key, err, errlen);
        return url ? url_parse(&r->url, url, err, errlen) : -1;
    }
    if (!strcmp(key, "method")) {
        const char *m = lua_tolstring(L, -1, &len);
        if (vt != LUA_TSTRING || !header_name_ok(m, len)) {
            snprintf(err, errlen, "invalid method");
            return -1;
        }
        free(r->method);
        r->method = strdup(m);
        return r->method ? 0 : -1;
    }
    if (!strcmp(key, "body")) {
        if (vt == LUA_TFUNCTION || vt == LUA_TUSERDATA)
            return fill_body_stream(L, r, err, errlen);
        if (vt != LUA_TSTRING) {
            snprintf(err, errlen, "body must be a string, an open file or a function");
            return -1;
        }
        const char *b = lua_tolstring(L, -1, &len);
        if (len > INT32_MAX) {
            snprintf(err, errlen, "body too large (2 GiB at most)");
            return -1;
        }
        r->body = malloc(len ? len : 1);
        if (!r->body)
            return -1;
        memcpy(r->body, b, len);
        r->body_len = len;
        r->has_body = 1;
        return 0;
    }
    if (!strncmp(key, "timeout_", 8) || !strcmp(key, "max_body")) {
        double v = lua_tonumber(L, -1);
        if (vt != LUA_TNUMBER || !(v >= 0)) { /* also refuses NaN */
            snprintf(err, errlen, "%s must be a non-negative number", key);
            return -1;
        }
        if (isinf(v) && strcmp(key, "max_body"))
            v = 0; /* an infinite timeout is none */
        if (!strcmp(key, "max_body"))
            r->max_body = v >= 0x1p63 ? SIZE_MAX : (size_t)v;
        else if (!strcmp(key, "timeout_connect"))
            r->timeouts.connect = v;
        else if (!strcmp(key, "timeout_tls"))
            r->timeouts.tls = v;
        else if (!strcmp(key, "timeout_read"))
            r->timeouts.read = v;
        else if (!strcmp(key, "timeout_total"))
            r->timeouts.total = v;
        else
            goto unknown;
        return 0;
    }
    if (!strcmp(key, "stream")) {
        if (lua_toboolean(L, -1) && request_stream_enable(r)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "decompress")) {
        r->decompress = lua_toboolean(L, -1);
        return 0;
    }
    if (!strcmp(key, "verify")) {
        r->tls_verify = lua_toboolean(L, -1);
        return 0;
    }
    int file = !strcmp(key, "ca_file") ? 1 : !strcmp(key, "cert_file") ? 2 : !strcmp(key, "key_file") ? 3 : 0;
    if (file) {
        const char *s = http_options_string(L, -1, key, err, errlen);
        if (!s)
            return -1;
        if (!r->tls_files && !(r->tls_files = calloc(1, sizeof *r->tls_files)))
            return -1;
        char **path = file == 1 ? &r->tls_files->ca_file : file == 2 ? &r->tls_files->cert_file
                                                                   : &r->tls_files->key_file;
        free(*path);
        *path = strdup(s);
        if (!*path)
            snprintf(err, errlen, "out of memory");
        return *path ? 0 : -1;
    }
    if (!strcmp(key, "proxy"))
        return fill_proxy(L, r, err, errlen);
    if (!strcmp(key, "http2")) {
        if (vt == LUA_TBOOLEAN) {
            r->http2 = lua_toboolean(L, -1) ? REQUEST_HTTP2_ON : REQUEST_HTTP2_OFF;
            return 0;
        }
        if (vt == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "prior-knowledge")) {
            r->http2 = REQUEST_HTTP2_PRIOR;
            return 0;
        }
        snprintf(err, errlen, "http2 must be true, false or \"prior-knowledge\"");
        return -1;
    }
    if (!strcmp(key, "headers") || !strcmp(key, "body_size"))
        return 0; /* after the loop: needs its own lua_next, or the body */
unknown:
    snprintf(err, errlen, "unknown option '%s'", key);
    return -1;
}

/* Reads only the fields present (one pass of lua_next), so a plain GET costs three lookups. */
/* err says "out of memory": what a bare -1 from an option means. A copy, not snprintf: it is
 * done once per option of every request (snprintf cost ~400 instructions each time). */
static void preset_oom(char *err, size_t errlen)
{
    static const char oom[] = "out of memory";
    if (errlen == 0)
        return;
    size_t n = errlen - 1 < sizeof oom - 1 ? errlen - 1 : sizeof oom - 1;
    memcpy(err, oom, n);
    err[n] = 0;
}

/* After the options: the method's defaults, a function body's size, then the headers. */
static int fill_finish(lua_State *L, int t, struct request *r, char *err, size_t errlen)
{
    if (!r->method && !(r->method = strdup("GET")))
        return -1;
    if (t && lua_getfield(L, t, "body_size") != LUA_TNIL) {
        /* a function body's exact size: Content-Length instead of chunked */
        lua_Integer size = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || size < 0 || !(r->stream && r->stream->upload_fn)) {
            snprintf(err, errlen, "body_size must be a size in bytes, given with body = function");
            lua_pop(L, 1);
            return -1;
        }
        request_upload_size(r, (uint64_t)size);
    }
    if (t)
        lua_pop(L, 1);
    if (!r->has_body && !(r->stream && r->stream->upload_fn) &&
        (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT") || !strcmp(r->method, "PATCH")))
        r->has_body = 1; /* Content-Length: 0, as servers expect for these methods */
    return t ? fill_headers(L, t, r, err, errlen) : 0;
}

/* The options at t, one lua_next pass; with `quick`, the Lua-level keys of the caller's own table
 * (timeout, max_redirects) are passed over. */
static int fill_options(lua_State *L, int t, int quick, struct request *r, char *err, size_t errlen)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *key = http_options_string(L, -2, "an option name", err, errlen);
        int rc = !key ? -1
                 : quick && (!strcmp(key, "timeout") || !strcmp(key, "max_redirects")) ? 0
                 : fill_option(L, r, key, err, errlen);
        if (rc == 0)
            preset_oom(err, errlen);
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}

int http_options_fill(lua_State *L, int t, struct request *r, char *err, size_t errlen)
{
    preset_oom(err, errlen);
    if (fill_options(L, t, 0, r, err, errlen))
        return -1;
    if (!r->url.host) {
        snprintf(err, errlen, "url is required");
        return -1;
    }
    return fill_finish(L, t, r, err, errlen);
}

int http_options_fill_quick(lua_State *L, struct request *r, char *err, size_t errlen)
{
    preset_oom(err, errlen);
    lua_settop(L, 4);
    const char *url = http_options_string(L, 1, "url", err, errlen);
    if (!url || url_parse(&r->url, url, err, errlen))
        return -1;
    lua_pushvalue(L, 2);
    int rc = fill_option(L, r, "method", err, errlen);
    lua_pop(L, 1);
    if (rc)
        return -1;
    double total = lua_tonumber(L, 3);
    if (!(total > 0)) {
        snprintf(err, errlen, "timeout must be a positive number");
        return -1;
    }
    r->timeouts.total = isinf(total) ? 0 : total;
    int t = lua_istable(L, 4) ? 4 : 0;
    if (t && fill_options(L, t, 1, r, err, errlen))
        return -1;
    return fill_finish(L, t, r, err, errlen);
}
