/* main.c — the command line: run, get, test, -e, --version, --help; exit codes 0/1/2.
 * Owns the host for the process's life and hands each command to a task. */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "task.h"

static const char usage[] =
    "usage: luafetch run SCRIPT [ARG...]     run a workflow script\n"
    "       luafetch get [-c N] [--timeout S] [--retries N] [--json] URL...\n"
    "       luafetch test [busted options] [PATHS]\n"
    "       luafetch -e CODE                 run a chunk\n"
    "       luafetch --version | --help\n";

/* Sets the global `arg` like the lua interpreter: arg[0] = script, arg[1..] = args. */
static void set_arg(lua_State *L, const char *script, int n, char **args)
{
    lua_createtable(L, n, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
}

/* Pushes a chunk calling require(module).main(arg) and returning its result. */
static int load_module_main(lua_State *L, const char *module)
{
    char code[256];
    snprintf(code, sizeof code, "return require(%s).main(arg)", module);
    return luaL_loadbuffer(L, code, strlen(code), "=luafetch");
}

/* The main task's result: an integer return value becomes the exit status. */
static void take_main_result(struct host *h, int handle_ref)
{
    lua_State *L = h->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, handle_ref);
    struct task *t = task_from_handle(L, -1);
    lua_pop(L, 1);
    if (!t || t->state != TASK_DONE)
        return;
    int n = task_push_results(t, L);
    if (n >= 2 && lua_toboolean(L, -n) && lua_isinteger(L, -n + 1)) {
        int code = (int)lua_tointeger(L, -n + 1);
        if (code > h->exit_code)
            h->exit_code = code;
    }
    lua_pop(L, n);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return LUAFETCH_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
        printf("luafetch %s (%s, libuv %s)\n", LUAFETCH_VERSION, LUA_RELEASE, uv_version_string());
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }

    struct host host;
    if (host_init(&host)) {
        fprintf(stderr, "luafetch: cannot start the host\n");
        return LUAFETCH_EXIT_ERROR;
    }
    lua_State *L = host.L;
    int rc;
    if (!strcmp(cmd, "run")) {
        if (argc < 3) {
            fputs(usage, stderr);
            host_close(&host);
            return LUAFETCH_EXIT_USAGE;
        }
        set_arg(L, argv[2], argc - 3, argv + 3);
        rc = luaL_loadfile(L, argv[2]);
        for (int i = 3; rc == LUA_OK && i < argc; i++)
            lua_pushstring(L, argv[i]);
        if (rc == LUA_OK)
            rc = -(argc - 3) - 1; /* marks "loaded with args" below */
    } else if (!strcmp(cmd, "-e")) {
        if (argc < 3) {
            fputs(usage, stderr);
            host_close(&host);
            return LUAFETCH_EXIT_USAGE;
        }
        set_arg(L, "-e", argc - 3, argv + 3);
        rc = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
    } else if (!strcmp(cmd, "get") || !strcmp(cmd, "test")) {
        set_arg(L, cmd, argc - 2, argv + 2);
        rc = load_module_main(L, !strcmp(cmd, "get") ? "'cli_get'" : "'test_runner'");
    } else {
        fprintf(stderr, "luafetch: unknown command '%s'\n%s", cmd, usage);
        host_close(&host);
        return LUAFETCH_EXIT_USAGE;
    }

    int nargs = 0;
    if (rc < 0) {
        nargs = -rc - 1;
        rc = LUA_OK;
    }
    if (rc != LUA_OK) {
        fprintf(stderr, "luafetch: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        host_close(&host);
        return LUAFETCH_EXIT_ERROR;
    }
    task_spawn(L, nargs);
    int handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    host_run(&host);
    take_main_result(&host, handle_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, handle_ref);
    int code = host.exit_code;
    if (host_close(&host) != 0) {
        fprintf(stderr, "luafetch: event loop did not close cleanly\n");
        if (code == 0)
            code = LUAFETCH_EXIT_ERROR;
    }
    fflush(stdout);
    return code;
}
