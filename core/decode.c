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

static int start(struct body_decoder *d, int raw)
{
    memset(&d->zs, 0, sizeof d->zs);
    /* 15+32: zlib or gzip header detected; -15: raw deflate. */
    int bits = raw ? -15 : (d->kind == DECODE_GZIP ? 15 + 16 : 15 + 32);
    if (inflateInit2(&d->zs, bits) != Z_OK)
        return -1;
    d->started = 1;
    return 0;
}

int decoder_feed(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                 const char **err)
{
    if (!d->started && start(d, 0)) {
        *err = "cannot start zlib";
        return -1;
    }
    if (d->finished)
        return 0; /* trailing bytes after the stream end are ignored */
    d->zs.next_in = (Bytef *)in;
    d->zs.avail_in = (uInt)len;
    while (d->zs.avail_in > 0) {
        if (out->len >= max) {
            return -2;
        }
        size_t room = max - out->len;
        if (room > 65536)
            room = 65536;
        if (buf_reserve(out, room)) {
            *err = "out of memory";
            return -1;
        }
        d->zs.next_out = (Bytef *)out->data + out->len;
        d->zs.avail_out = (uInt)room;
        int rc = inflate(&d->zs, Z_NO_FLUSH);
        size_t produced = room - d->zs.avail_out;
        out->len += produced;
        out->data[out->len] = '\0';
        if (rc == Z_DATA_ERROR && d->kind == DECODE_DEFLATE && !d->tried_raw && d->zs.total_out == 0) {
            /* Some servers send raw deflate for "deflate": restart without the wrapper. */
            size_t consumed = (size_t)(d->zs.next_in - (Bytef *)in);
            (void)consumed;
            inflateEnd(&d->zs);
            d->tried_raw = 1;
            if (start(d, 1)) {
                *err = "cannot start zlib";
                return -1;
            }
            d->zs.next_in = (Bytef *)in;
            d->zs.avail_in = (uInt)len;
            continue;
        }
        if (rc == Z_STREAM_END) {
            d->finished = 1;
            return 0;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            *err = d->zs.msg ? d->zs.msg : "corrupt compressed body";
            return -1;
        }
        if (rc == Z_BUF_ERROR && d->zs.avail_out != 0)
            break; /* needs more input */
    }
    return 0;
}

void decoder_end(struct body_decoder *d)
{
    if (d->started)
        inflateEnd(&d->zs);
    d->started = 0;
}
