/* buf.h — a growable byte buffer used for request bytes, headers and bodies.
 * The owner of a struct buf frees it with buf_free; data is NUL-terminated for convenience. */
#ifndef LUAFETCH_BUF_H
#define LUAFETCH_BUF_H

#include <stdlib.h>
#include <string.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Makes room for n more bytes; 0 or -1 when out of memory. */
static inline int buf_reserve(struct buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static inline int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* Appends n in decimal (hot paths: ports, Content-Length; no printf). */
static inline int buf_put_uint(struct buf *b, unsigned long long n)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return buf_append(b, tmp + i, sizeof tmp - (size_t)i);
}

static inline void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static inline void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
