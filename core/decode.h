/* decode.h — streaming gzip/deflate decoding of response bodies with zlib.
 * A struct body_decoder is embedded in its response; decoder_end frees zlib's state. */
#ifndef LUAFETCH_DECODE_H
#define LUAFETCH_DECODE_H

#include <stddef.h>
#include <zlib.h>

#include "buf.h"

enum { DECODE_NONE = 0, DECODE_GZIP, DECODE_DEFLATE };

struct body_decoder {
    int kind;
    int started;
    int finished;
    unsigned char stash[2];     /* first bytes of a "deflate" body, to tell zlib from raw */
    int stash_len;
    z_stream zs;
};

/* kind from a Content-Encoding value; DECODE_NONE for identity or unknown. */
int decoder_kind(const char *content_encoding);
/* Appends decoded bytes to out without letting out grow past max. Returns 0, -1 on corrupt
 * data (message in err), or -2 when max would be exceeded. */
int decoder_feed(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                 const char **err);
void decoder_end(struct body_decoder *d);

#endif
