/* main.c — the command line: run, get, test, -e, --version, --help; exit codes 0/1/2.
 * Owns the host for the process's life and hands each command to a task. */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "host.h"
#include "task.h"

#ifndef LUAFETCH_SHAREDIR
#define LUAFETCH_SHAREDIR "/usr/local/share/luafetch"
#endif

static const char usage[] =
    "usage: luafetch run SCRIPT [ARG...]     run a workflow script (a path, or the name of an\n"
    "                                        installed one: luafetch run monitor --help)\n"
    "       luafetch get [options] URL...    a small curl: luafetch get --help\n"
    "       luafetch test [busted options] [PATHS]\n"
    "       luafetch -e CODE                 run a chunk\n"
    "       luafetch --version | --help\n"
    "run options, before SCRIPT (docs/record-replay.md):\n"
    "  --record FILE.har        write every HTTP exchange (each redirect hop) as HAR 1.2\n"
    "  --record-secrets         keep Authorization/Cookie/Set-Cookie values (default: redacted)\n"
    "  --record-body-max BYTES  body bytes kept per entry (default 1048576)\n"
    "  --replay FILE.har        answer requests from the HAR, without the network\n"
    "  --replay-miss error|network  a request with no entry fails (kind \"replay\") or goes out\n"
    "  --clock virtual|real     virtual: sleeps, timeouts and schedules jump ahead when all wait\n"
    "see luafetch(1)\n";

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Looks for NAME and NAME.lua in DIR/scripts; 1 and the path in out when found. */
static int find_in(const char *dir, const char *name, char *out, size_t size)
{
    static const char *const suffixes[] = { "", ".lua" };
    for (int i = 0; i < 2; i++) {
        int n = snprintf(out, size, "%s/scripts/%s%s", dir, name, suffixes[i]);
        if (n > 0 && (size_t)n < size && is_file(out))
            return 1;
    }
    return 0;
}

/* The file `run NAME` means: NAME itself when it is a file; else, for a bare name (no '/'), the
 * installed script NAME[.lua] in the share directory built in, then in ../share/luafetch beside
 * the executable (an install unpacked under another prefix). NAME as given when none is found,
 * so the error names what was asked for. */
static const char *find_script(const char *name, char *out, size_t size)
{
    if (is_file(name) || strchr(name, '/'))
        return name;
    if (find_in(LUAFETCH_SHAREDIR, name, out, size))
        return out;
    char exe[PATH_MAX];
    size_t len = sizeof exe;
    if (uv_exepath(exe, &len) == 0) {
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0'; /* the bin directory */
            char share[PATH_MAX + 32];
            snprintf(share, sizeof share, "%s/../share/luafetch", exe);
            char real[PATH_MAX];
            if (find_in(share, name, out, size) && realpath(out, real) && strlen(real) < size) {
                memcpy(out, real, strlen(real) + 1); /* without the "bin/.." */
                return out;
            }
        }
    }
    return name;
}

/* Puts the folder of the script first on package.path (as Python puts the script's directory
 * first on sys.path), so `require "helper"` finds helper.lua beside the script whatever the
 * working directory is (cron, systemd). A folder whose name holds ';' or '?' cannot be written
 * into a search path and is left out. */
static void add_script_dir(lua_State *L, const char *script)
{
    char real[PATH_MAX];
    if (!realpath(script, real))
        return;
    char *slash = strrchr(real, '/');
    if (!slash)
        return;
    *slash = '\0';
    const char *dir = slash == real ? "" : real; /* a script in / */
    if (strpbrk(dir, ";?"))
        return;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

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

/* `run` options for lua/cassette.lua (record, replay, clock), taken off argv by take_run_options. */
static const char *const run_options[] = { "--record", "--record-body-max", "--replay",
                                           "--replay-miss", "--clock", NULL };

/* Moves the run options before SCRIPT into a Lua table (kept on the host's stack by the caller
 * through start_cassette); returns the new argc, argv compacted in place. -1 on a missing value. */
static int take_run_options(int argc, char **argv, const char **vals, int *secrets)
{
    int i = 2;
    while (i < argc && !strncmp(argv[i], "--", 2)) {
        if (!strcmp(argv[i], "--record-secrets")) {
            *secrets = 1;
            i++;
            continue;
        }
        int k = 0;
        while (run_options[k] && strcmp(run_options[k], argv[i]))
            k++;
        if (!run_options[k])
            break;
        if (i + 1 >= argc)
            return -1;
        vals[k] = argv[i + 1];
        i += 2;
    }
    int n = 2;
    for (int j = i; j < argc; j++)
        argv[n++] = argv[j];
    return n;
}

struct cassette_opts {
    const char *vals[5];
    int secrets;
};

/* Protected: require("cassette")._cli{...} when any run option was given; its error is raised as
 * a string (the caller exits 2). */
static int start_cassette(lua_State *L)
{
    struct cassette_opts *co = lua_touserdata(L, 1);
    static const char *const keys[] = { "record", "record_body_max", "replay", "replay_miss", "clock" };
    int any = co->secrets;
    for (int k = 0; k < 5; k++)
        any |= co->vals[k] != NULL;
    if (!any)
        return 0;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cassette");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "_cli");
    lua_createtable(L, 0, 6);
    for (int k = 0; k < 5; k++) {
        if (co->vals[k]) {
            lua_pushstring(L, co->vals[k]);
            lua_setfield(L, -2, keys[k]);
        }
    }
    lua_pushboolean(L, co->secrets);
    lua_setfield(L, -2, "record_secrets");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        if (lua_istable(L, -1))
            lua_getfield(L, -1, "message");
        return lua_error(L);
    }
    return 0;
}

/* Protected: closes a recording at exit (the file is valid at every step already). */
static int finish_cassette(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    if (lua_getfield(L, -1, "cassette") == LUA_TTABLE) {
        lua_getfield(L, -1, "_finish");
        lua_call(L, 0, 0);
    }
    return 0;
}

/* What the command line asks for; start_main fills handle_ref. */
struct start {
    const char *cmd;
    int argc;
    char **argv;
    int handle_ref;
};

/* Protected: loads the script, chunk or module and spawns it as the main task; a load error is
 * raised with its message. */
static int start_main(lua_State *L)
{
    struct start *st = lua_touserdata(L, 1);
    int nargs = 0, rc;
    if (!strcmp(st->cmd, "run")) {
        char found[PATH_MAX];
        const char *script = find_script(st->argv[2], found, sizeof found);
        set_arg(L, script, st->argc - 3, st->argv + 3);
        if (!is_file(script) && !strchr(script, '/'))
            return luaL_error(L, "cannot open %s: no such file here, and no installed script of "
                                 "that name in " LUAFETCH_SHAREDIR "/scripts", script);
        rc = luaL_loadfile(L, script);
        if (rc == LUA_OK)
            add_script_dir(L, script);
        nargs = st->argc - 3;
        for (int i = 3; rc == LUA_OK && i < st->argc; i++) {
            luaL_checkstack(L, 1, "too many arguments");
            lua_pushstring(L, st->argv[i]);
        }
    } else if (!strcmp(st->cmd, "-e")) {
        set_arg(L, "-e", st->argc - 3, st->argv + 3);
        rc = luaL_loadbuffer(L, st->argv[2], strlen(st->argv[2]), "=(command line)");
    } else {
        set_arg(L, st->cmd, st->argc - 2, st->argv + 2);
        rc = load_module_main(L, !strcmp(st->cmd, "get") ? "'cli_get'" : "'test_runner'");
    }
    if (rc != LUA_OK)
        return lua_error(L);
    task_spawn(L, nargs);
    st->handle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Protected: the main task's result. A number returned is the exit status when it is an integer
 * 0-255 (DESIGN.md); any other number is refused with a warning and exits 1. Other values (a
 * string, nothing) leave the status alone. */
static int take_main_result(lua_State *L)
{
    struct host *h = host_of(L);
    int handle_ref = *(int *)lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, handle_ref);
    struct task *t = task_from_handle(L, -1);
    if (!t || t->state != TASK_DONE)
        return 0;
    int n = task_push_results(t, L);
    if (n >= 2 && lua_toboolean(L, -n) && lua_type(L, -n + 1) == LUA_TNUMBER) {
        int isint = 0;
        lua_Integer code = lua_tointegerx(L, -n + 1, &isint); /* 3.0 is 3 */
        if (!isint || code < 0 || code > 255) {
            fprintf(stderr, "%s: warning: the script returned %s, which is not an exit status "
                            "(an integer 0-255): exiting with 1\n", h->progname,
                    lua_tostring(L, -n + 1));
            code = LUAFETCH_EXIT_ERROR;
        }
        if (code > h->exit_code)
            h->exit_code = (int)code;
    }
    return 0;
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
    int usage_error = 0;
    if (!strcmp(cmd, "run") || !strcmp(cmd, "-e"))
        usage_error = argc < 3;
    else if (strcmp(cmd, "get") && strcmp(cmd, "test")) {
        fprintf(stderr, "luafetch: unknown command '%s'\n", cmd);
        usage_error = 1;
    }
    if (usage_error) {
        fputs(usage, stderr);
        host_close(&host);
        return LUAFETCH_EXIT_USAGE;
    }
    struct cassette_opts co = { { NULL }, 0 };
    if (!strcmp(cmd, "run")) {
        argc = take_run_options(argc, argv, co.vals, &co.secrets);
        if (argc < 3) {
            fputs(argc < 0 ? "luafetch: run: an option is missing its value\n" : usage, stderr);
            host_close(&host);
            return LUAFETCH_EXIT_USAGE;
        }
        if (host_pcall(&host, start_cassette, &co, NULL) != LUA_OK) {
            fprintf(stderr, "luafetch: %s\n", host.error);
            host_close(&host);
            return LUAFETCH_EXIT_USAGE;
        }
    }
    struct start st = { cmd, argc, argv, LUA_NOREF };
    if (host_pcall(&host, start_main, &st, NULL) != LUA_OK) {
        fprintf(stderr, "luafetch: %s\n", host.error);
        host_close(&host);
        return LUAFETCH_EXIT_ERROR;
    }
    host_run(&host);
    if (host_pcall(&host, finish_cassette, NULL, NULL) != LUA_OK)
        fprintf(stderr, "luafetch: %s\n", host.error);
    if (host_pcall(&host, take_main_result, &st.handle_ref, NULL) != LUA_OK) {
        fprintf(stderr, "luafetch: %s\n", host.error);
        if (host.exit_code < LUAFETCH_EXIT_ERROR)
            host.exit_code = LUAFETCH_EXIT_ERROR;
    }
    luaL_unref(host.L, LUA_REGISTRYINDEX, st.handle_ref);
    int code = host.exit_code;
    if (host_close(&host) != 0) {
        fprintf(stderr, "luafetch: event loop did not close cleanly\n");
        if (code == 0)
            code = LUAFETCH_EXIT_ERROR;
    }
    fflush(stdout);
    return code;
}
