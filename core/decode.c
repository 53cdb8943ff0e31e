/* decode.c — streaming gzip/deflate decoding of response bodies with zlib.
 * The size cap applies to decoded bytes, so a small compressed bomb stops at the cap. */
#include "decode.h"

#include <string.h>
#include <strings.h>

int decoder_kind(const char *ce)
{
    if (!ce)
        return DECODE_NONE;
    if (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0)
        return DECODE_GZIP;
    if (strcasecmp(ce, "deflate") == 0)
        return DECODE_DEFLATE;
    return DECODE_NONE;
}

static int start(struct body_decoder *d, int bits)
{
    memset(&d->zs, 0, sizeof d->zs);
    if (inflateInit2(&d->zs, bits) != Z_OK)
        return -1;
    d->started = 1;
    return 0;
}

/* "deflate" is meant to be zlib-wrapped (RFC 9110) but some servers send raw deflate: a zlib
 * header is two bytes whose big-endian value is a multiple of 31 with method 8. */
static int looks_like_zlib(const unsigned char h[2])
{
    return (h[0] & 0x0f) == 8 && ((h[0] << 8) | h[1]) % 31 == 0;
}

static int inflate_into(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                        const char **err)
{
    d->zs.next_in = (Bytef *)in;
    d->zs.avail_in = (uInt)len;
    while (d->zs.avail_in > 0 && !d->finished) {
        unsigned char probe;
        size_t room = max - out->len;
        if (room > 65536)
            room = 65536;
        if (room == 0) {
            /* At the cap: only the stream's end (trailer bytes) may follow, not one more byte. */
            d->zs.next_out = &probe;
            d->zs.avail_out = 1;
        } else {
            if (buf_reserve(out, room)) {
                *err = "out of memory";
                return -1;
            }
            d->zs.next_out = (Bytef *)out->data + out->len;
            d->zs.avail_out = (uInt)room;
        }
        int rc = inflate(&d->zs, Z_NO_FLUSH);
        if (room == 0) {
            if (d->zs.avail_out == 0)
                return -2;
        } else {
            out->len += room - d->zs.avail_out;
            out->data[out->len] = '\0';
        }
        if (rc == Z_STREAM_END) {
            d->finished = 1;
        } else if (rc == Z_BUF_ERROR) {
            if (d->zs.avail_out != 0)
                break; /* wants more input */
        } else if (rc != Z_OK) {
            *err = d->zs.msg ? d->zs.msg : "corrupt compressed body";
            return -1;
        }
    }
    return 0; /* bytes after the end of the stream are ignored */
}

int decoder_feed(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                 const char **err)
{
    if (!d->started) {
        if (d->kind == DECODE_GZIP) {
            if (start(d, 15 + 16)) {
                *err = "cannot start zlib";
                return -1;
            }
        } else {
            /* Hold the first two bytes until the wrapper (or its absence) is known. */
            while (d->stash_len < 2 && len > 0) {
                d->stash[d->stash_len++] = (unsigned char)*in++;
                len--;
            }
            if (d->stash_len < 2)
                return 0;
            if (start(d, looks_like_zlib(d->stash) ? 15 : -15)) {
                *err = "cannot start zlib";
                return -1;
            }
            int rc = inflate_into(d, (const char *)d->stash, 2, out, max, err);
            if (rc)
                return rc;
        }
    }
    return inflate_into(d, in, len, out, max, err);
}

void decoder_end(struct body_decoder *d)
{
    if (d->started)
        inflateEnd(&d->zs);
    d->started = 0;
}
