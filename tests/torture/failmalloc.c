/* failmalloc.c — an LD_PRELOAD allocation-failure injector for the torture test.
 * It owns no memory: every call is passed to glibc's own allocator (__libc_*), except the k-th. */
/*
 * Environment:
 *   FAILMALLOC_K=k        the k-th allocation call (malloc, calloc, realloc with a size,
 *                         reallocarray, posix_memalign, aligned_alloc, memalign, valloc) returns
 *                         NULL with errno ENOMEM; every other call succeeds. 0 or unset: none fails.
 *   FAILMALLOC_RUN=r      calls k .. k+r-1 fail (default 1); 0: every call from k on fails (memory
 *                         is gone for good: the exit path itself must cope). Lua retries a failed
 *                         allocation once after an emergency collection, so r = 2 reaches its
 *                         out-of-memory errors where r = 1 is absorbed.
 *   FAILMALLOC_PROGRAM=P  count only in a process whose argv[0] ends in "/P" or is P: the preload
 *                         is inherited by wrappers (timeout, valgrind's launcher), which must
 *                         not see failures.
 *   FAILMALLOC_TIME=t     time() returns t. Lua seeds its string hashes with time() and addresses,
 *                         and table growth depends on collisions: with this and ASLR off
 *                         (setarch -R) the k-th allocation is the same call in every run.
 *   FAILMALLOC_REPORT=F   at exit, writes "<calls> <k if it was injected, else 0>\n" to file F.
 *
 * Calls are counted from the entry of main() (this library wraps __libc_start_main), so the
 * dynamic loader's and libc's own start-up allocations are never failed: those are not the
 * program's to handle. glibc routes its internal allocations (strdup, getaddrinfo, fopen, ...)
 * through the interposed malloc, and so do libuv, mbedTLS, zlib and Lua's allocator.
 * A breakpoint on failmalloc_injected (gdb) stops at the failing call, with its backtrace.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long fail_at;      /* k, 0 = never */
static unsigned long fail_run = 1; /* how many calls from k fail, 0 = all */
static unsigned long calls;        /* counted calls since main() */
static int armed;                  /* main() has been entered */
static int injected;

/* Not inlined, so a debugger can stop here and show who asked. */
__attribute__((noinline)) void failmalloc_injected(unsigned long k)
{
    __asm__ volatile("" ::"r"(k) : "memory");
}

/* 1 when this call must fail. Threads (libuv's pool) count too: the counter is atomic. */
static int should_fail(void)
{
    if (!__atomic_load_n(&armed, __ATOMIC_RELAXED))
        return 0;
    unsigned long n = __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    if (fail_at == 0 || n < fail_at || (fail_run && n - fail_at >= fail_run))
        return 0;
    if (!injected) {
        injected = 1;
        failmalloc_injected(n);
    }
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    return should_fail() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    /* realloc(p, 0) frees; it is not an allocation that can fail */
    if (p && n == 0)
        return __libc_realloc(p, 0);
    return should_fail() ? NULL : __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

void *memalign(size_t align, size_t n)
{
    return should_fail() ? NULL : __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return memalign(align, n);
}

void *valloc(size_t n)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    if (should_fail())
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

time_t time(time_t *out)
{
    static time_t fixed = -1;
    time_t now;
    if (fixed == -1) {
        const char *t = getenv("FAILMALLOC_TIME");
        fixed = t ? (time_t)strtoll(t, NULL, 10) : 0;
    }
    if (fixed > 0) {
        now = fixed;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = ts.tv_sec;
    }
    if (out)
        *out = now;
    return now;
}

/* --- counting from main() --------------------------------------------------- */

typedef int (*main_fn)(int, char **, char **);
static main_fn real_main;

/* 1 when argv0 names the program FAILMALLOC_PROGRAM (or that is unset). */
static int is_target(const char *argv0)
{
    const char *want = getenv("FAILMALLOC_PROGRAM");
    if (!want)
        return 1;
    size_t n = strlen(argv0), w = strlen(want);
    return n >= w && strcmp(argv0 + n - w, want) == 0 && (n == w || argv0[n - w - 1] == '/');
}

static int counted_main(int argc, char **argv, char **envp)
{
    if (argc > 0 && is_target(argv[0]))
        __atomic_store_n(&armed, 1, __ATOMIC_RELAXED);
    return real_main(argc, argv, envp);
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end)
{
    const char *k = getenv("FAILMALLOC_K");
    const char *r = getenv("FAILMALLOC_RUN");
    fail_at = k ? strtoul(k, NULL, 10) : 0;
    fail_run = r ? strtoul(r, NULL, 10) : 1;
    real_main = main;
    int (*next)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *) =
        (int (*)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *))
            dlsym(RTLD_NEXT, "__libc_start_main");
    return next(counted_main, argc, argv, init, fini, rtld_fini, stack_end);
}

/* Runs at exit() (main returned or exit called), not after _exit or a fatal signal. */
__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("FAILMALLOC_REPORT");
    if (!path || !__atomic_load_n(&armed, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&armed, 0, __ATOMIC_RELAXED);
    char line[64];
    int len = snprintf(line, sizeof line, "%lu %lu\n", __atomic_load_n(&calls, __ATOMIC_RELAXED),
                       injected ? fail_at : 0UL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)len) < 0) {
        /* nothing to do: the runner treats a missing count as an error */
    }
    close(fd);
}
