/* decode.h — streaming gzip/deflate decoding of response bodies with zlib, one stage per coding
 * (transfer codings first, then the content coding). A struct body_decoder belongs to its response;
 * decoder_end frees zlib's states and the scratch buffer between stages. */
#ifndef LUAFETCH_DECODE_H
#define LUAFETCH_DECODE_H

#include <stddef.h>
#include <zlib.h>

#include "buf.h"

enum { DECODE_NONE = 0, DECODE_GZIP, DECODE_DEFLATE };

#define DECODE_MAX_STAGES 4

struct decode_stage {
    int kind;
    int started;
    int finished;               /* the (last) compressed stream ended; a gzip member may follow */
    unsigned char stash[2];     /* first bytes of a "deflate" body, to tell zlib from raw */
    int stash_len;
    size_t produced;            /* bytes this stage has decoded, against the cap */
    z_stream zs;
};

struct body_decoder {
    int n;                      /* stages, in the order the body runs through them */
    struct decode_stage st[DECODE_MAX_STAGES];
    unsigned char *scratch;     /* output of a stage that feeds another one (n > 1 only) */
};

/* kind of one coding name (gzip, x-gzip, deflate); DECODE_NONE for identity or unknown. */
int decoder_kind(const char *coding);
/* Same, for the n bytes at s (a token inside a list). */
int decoder_kind_n(const char *s, size_t n);
/* Adds a stage after the present ones (d zeroed first). 0, or -1 when there are too many. */
int decoder_add(struct body_decoder *d, int kind);
/* Appends decoded bytes to out without letting out grow past max (nor any stage's output).
 * Returns 0, -1 on corrupt data or data after the end of a non-gzip stream or between gzip
 * members (message in err), or -2 when max would be exceeded. Every gzip member is decoded. */
int decoder_feed(struct body_decoder *d, const char *in, size_t len, struct buf *out, size_t max,
                 const char **err);
/* 1 when a stage holds an unfinished compressed stream (the body ended early). */
int decoder_incomplete(const struct body_decoder *d);
void decoder_end(struct body_decoder *d);

#endif
