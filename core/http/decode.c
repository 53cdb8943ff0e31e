/* decode.c — streaming gzip/deflate decoding of response bodies with zlib, in stages (a transfer
 * coding's output feeds the content coding's). The size cap applies to every stage's decoded bytes,
 * so a small compressed bomb stops at the cap; zlib states and the scratch are freed by decoder_end. */
#include "decode.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SLICE 65536             /* decoded bytes per inflate call into the body */
#define SCRATCH_BYTES 16384     /* per stage that feeds another stage */

int decoder_kind_n(const char *s, size_t n)
{
    if ((n == 4 && strncasecmp(s, "gzip", 4) == 0) || (n == 6 && strncasecmp(s, "x-gzip", 6) == 0))
        return DECODE_GZIP;
    if (n == 7 && strncasecmp(s, "deflate", 7) == 0)
        return DECODE_DEFLATE;
    return DECODE_NONE;
}

int decoder_kind(const char *coding)
{
    return coding ? decoder_kind_n(coding, strlen(coding)) : DECODE_NONE;
}

int decoder_add(struct body_decoder *d, int kind)
{
    if (d->n >= DECODE_MAX_STAGES)
        return -1;
    memset(&d->st[d->n], 0, sizeof d->st[0]);
    d->st[d->n++].kind = kind;
    return 0;
}

static int start(struct decode_stage *s, int bits)
{
    memset(&s->zs, 0, sizeof s->zs);
    if (inflateInit2(&s->zs, bits) != Z_OK)
        return -1;
    s->started = 1;
    return 0;
}

/* "deflate" is meant to be zlib-wrapped (RFC 9110) but some servers send raw deflate: a zlib
 * header is two bytes whose big-endian value is a multiple of 31 with method 8. */
static int looks_like_zlib(const unsigned char h[2])
{
    return (h[0] & 0x0f) == 8 && ((h[0] << 8) | h[1]) % 31 == 0;
}

static int feed_stage(struct body_decoder *d, int i, const unsigned char *in, size_t len, struct buf *out,
                      size_t max, const char **err);

/* Inflates what zs holds as input until it is used up or the stream ends. The last stage writes
 * straight into out; an earlier one into its scratch, handing each slice to the next stage. */
static int run(struct body_decoder *d, int i, struct buf *out, size_t max, const char **err)
{
    struct decode_stage *s = &d->st[i];
    int last = i == d->n - 1;
    for (;;) {
        unsigned char probe, *dst;
        size_t room;
        if (last) {
            room = max - out->len;
            if (room > SLICE)
                room = SLICE;
            if (room && buf_reserve(out, room)) {
                *err = "out of memory";
                return -1;
            }
            /* At the cap: only the stream's end (trailer bytes) may follow, not one more byte. */
            dst = room ? (unsigned char *)out->data + out->len : &probe;
        } else {
            room = SCRATCH_BYTES;
            dst = d->scratch + (size_t)i * SCRATCH_BYTES;
        }
        size_t avail = room ? room : 1;
        s->zs.next_out = dst;
        s->zs.avail_out = (uInt)avail;
        int rc = inflate(&s->zs, Z_NO_FLUSH);
        size_t got = avail - s->zs.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            *err = s->zs.msg ? s->zs.msg : "corrupt compressed body";
            return -1;
        }
        if (got) {
            if (last && !room)
                return -2;
            s->produced += got;
            if (s->produced > max)
                return -2;
            if (last) {
                out->len += got;
                out->data[out->len] = '\0';
            } else {
                int r = feed_stage(d, i + 1, dst, got, out, max, err);
                if (r)
                    return r;
            }
        }
        if (rc == Z_STREAM_END) {
            s->finished = 1;
            return 0;
        }
        /* Output room left (or no progress possible): every input byte it could use is used. Else
         * more output may be pending inside zlib, even with no input left. */
        if (rc == Z_BUF_ERROR || s->zs.avail_out != 0)
            return 0;
    }
}

static int inflate_stage(struct body_decoder *d, int i, const unsigned char *in, size_t len,
                         struct buf *out, size_t max, const char **err)
{
    struct decode_stage *s = &d->st[i];
    while (len > 0) {
        if (s->finished) {
            /* Bytes after the end of the stream: the next gzip member (RFC 1952 §2.2; inflate
             * stops at each member's end), or an error. Garbage fails as a member header. */
            if (s->kind != DECODE_GZIP) {
                *err = "data after the end of the compressed body";
                return -1;
            }
            if (inflateReset(&s->zs) != Z_OK) {
                *err = "cannot restart zlib";
                return -1;
            }
            s->finished = 0;
        }
        uInt take = len > UINT_MAX ? UINT_MAX : (uInt)len;
        s->zs.next_in = (Bytef *)in;
        s->zs.avail_in = take;
        int rc = run(d, i, out, max, err);
        if (rc)
            return rc;
        size_t used = take - s->zs.avail_in;
        in += used;
        len -= used;
        if (!used && !s->finished) {
            *err = "corrupt compressed body"; /* zlib took no input though it had output room */
            return -1;
        }
    }
    return 0;
}

static int feed_stage(struct body_decoder *d, int i, const unsigned char *in, size_t len, struct buf *out,
                      size_t max, const char **err)
{
    struct decode_stage *s = &d->st[i];
    if (!s->started && len > 0) {
        if (s->kind == DECODE_GZIP) {
            if (start(s, 15 + 16)) {
                *err = "cannot start zlib";
                return -1;
            }
        } else {
            /* Hold the first two bytes until the wrapper (or its absence) is known. */
            while (s->stash_len < 2 && len > 0) {
                s->stash[s->stash_len++] = *in++;
                len--;
            }
            if (s->stash_len < 2)
                return 0;
            if (start(s, looks_like_zlib(s->stash) ? 15 : -15)) {
                *err = "cannot start zlib";
                return -1;
            }
            int rc = inflate_stage(d, i, s->stash, 2, out, max, err);
            if (rc)
                return rc;
        }
    }
    return inflate_stage(d, i, in, len, out, max, err);
}

int decoder_feed(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                 const char **err)
{
    if (d->n == 0) {
        if (len > max - out->len)
            return -2;
        if (buf_append(out, in, len)) {
            *err = "out of memory";
            return -1;
        }
        return 0;
    }
    if (d->n > 1 && !d->scratch) {
        d->scratch = malloc((size_t)(d->n - 1) * SCRATCH_BYTES);
        if (!d->scratch) {
            *err = "out of memory";
            return -1;
        }
    }
    return feed_stage(d, 0, (const unsigned char *)in, len, out, max, err);
}

int decoder_incomplete(const struct body_decoder *d)
{
    for (int i = 0; i < d->n; i++) {
        const struct decode_stage *s = &d->st[i];
        if ((s->started && !s->finished) || (!s->started && s->stash_len > 0))
            return 1;
    }
    return 0;
}

void decoder_end(struct body_decoder *d)
{
    for (int i = 0; i < d->n; i++) {
        if (d->st[i].started)
            inflateEnd(&d->st[i].zs);
        d->st[i].started = 0;
    }
    free(d->scratch);
    d->scratch = NULL;
}
