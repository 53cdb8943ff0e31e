/* unit.h — the smallest test harness: CHECK macros that count, and a summary line.
 * Each test binary includes it once, calls its test functions from main and ends with
 * `return unit_summary();`, which prints "N passed, M failed" last and returns 1 on any failure. */
#ifndef LUAFETCH_UNIT_H
#define LUAFETCH_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;
static const char *unit_test_name = "";

/* Names the test whose checks follow (shown on failures). */
#define TEST(name) (unit_test_name = (name))

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            unit_passed++;                                                                         \
        } else {                                                                                   \
            unit_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d [%s]: ", __FILE__, __LINE__, unit_test_name);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK(cond) CHECK_MSG((cond), "%s", #cond)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        CHECK_MSG(g_ == w_, "%s == %lld, expected %lld", #got, g_, w_);                            \
    } while (0)

/* NULL-safe string equality. */
#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        CHECK_MSG((g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0),                 \
                  "%s == \"%s\", expected \"%s\"", #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } while (0)

/* Exact bytes (the data may hold NULs). */
#define CHECK_MEM(got, gotlen, want, wantlen)                                                      \
    do {                                                                                           \
        size_t gl_ = (size_t)(gotlen), wl_ = (size_t)(wantlen);                                    \
        CHECK_MSG(gl_ == wl_ && (gl_ == 0 || memcmp((got), (want), gl_) == 0),                     \
                  "%s: %zu bytes differ from the expected %zu bytes", #got, gl_, wl_);             \
    } while (0)

static inline int unit_summary(void)
{
    fflush(stderr);
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    fflush(stdout);
    return unit_failed ? 1 : 0;
}

#endif
