/* h2.h — HTTP/2 behind the multiplexing seam (proto.h: proto_h2) on libnghttp2: one session per
 * connection, one stream per request. A session owns its conn and its nghttp2 session; both are
 * freed after the conn's close callback (conn->mux_free). Requests stay owned by request.c. */
#ifndef LUAFETCH_H2_H
#define LUAFETCH_H2_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct request;

/* Windows advertised to servers: per stream and for the whole connection. Data is consumed (the
 * window reopened) as the body is taken, never before: see h2_consumed. */
#define H2_STREAM_WINDOW (1u << 20)
#define H2_CONN_WINDOW (16u << 20)
/* Frames are gathered into writes of about this size; above this many bytes waiting for the
 * kernel no more frames are made until it drains. */
#define H2_WRITE_CHUNK (64u * 1024)
#define H2_WRITE_HIGH (256u * 1024)
/* A pooled session idle this long is checked with a PING before it carries a request again; the
 * answer must come within the request's connect timeout, or this default. */
#define H2_PING_AFTER_MS 1000
#define H2_PING_TIMEOUT_MS 5000
/* Restarts of one request after refusals (REFUSED_STREAM, GOAWAY, a failed PING check). */
#define H2_MAX_RETRIES 4

/* The consumer took n body bytes of r's stream: the windows reopen by n. The body path calls it
 * as data is taken; a consumer that stops taking (a streamed body nobody reads) stops the
 * server once the stream's window is used up. */
void h2_consumed(struct request *r, size_t n);

/* The next piece of r's function body (len 0: its end; sizes already checked by
 * request_upload_push): kept until DATA frames take it, the stream's data resumed. */
void h2_upload_push(struct request *r, const char *data, size_t len);

/* The request headers of r as HTTP/2 fields, as curl builds them: :method, :scheme, :authority
 * (the Host header's value when a script set one), :path, then the headers with names
 * lower-cased, connection-specific ones dropped (Connection, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade, Host) and TE kept only as "trailers". names/values point into
 * scratch (owned by the caller) or static strings. Returns the count, or -1 (out of memory). */
struct h2_field {
    const char *name, *value;
    size_t nlen, vlen;
};
int h2_request_fields(const struct request *r, struct buf *scratch, struct h2_field **out);

/* Feeds bytes to a session built over no connection, as if they came from a server, after
 * submitting one GET: the fuzz harness's entry to the frame input path. Returns 0. */
int h2_fuzz_input(const uint8_t *data, size_t len);

#endif
