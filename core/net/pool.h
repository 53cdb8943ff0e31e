/* pool.h — idle keep-alive connections keyed by scheme/host/port, every TLS option of trust and
 * the protocol offered. The pool owns idle conns (closing them on expiry, excess or any sign of
 * life); pool_take hands one back to a request, which then owns it. Shared conns (a multiplexing
 * session owns each, c->mux) are only listed here, so requests find one with room. */
#ifndef LUAFETCH_POOL_H
#define LUAFETCH_POOL_H

#include "buf.h"
#include "net.h"
#include "tls.h"

struct conn;
struct pool;

struct pool *pool_new(struct net *net);
void pool_free(struct pool *p);
/* Most recently used idle conn for key that is still alive (dead ones are closed), or NULL. */
struct conn *pool_take(struct pool *p, const char *key);
/* Parks c (no owner) for reuse; closes it instead when the key already has enough idle ones.
 * Beyond max_idle_total idle conns across all keys, the least recently parked is closed. */
void pool_put(struct pool *p, struct conn *c);
/* Writes the pool key of a target into out: "http://host:port" or with the TLS options. */
int pool_key(struct buf *out, int https, const char *host, int port, const struct tls_options *tls);
int pool_idle_count(const struct pool *p);

/* Lists c (owned by the session c->mux) under its key as able to take more requests. 0 or -1. */
int pool_share(struct pool *p, struct conn *c);
/* Unlists it (no more room for good: GOAWAY, closing). Safe when not listed. */
void pool_unshare(struct pool *p, struct conn *c);
/* A shared conn of key whose session has room (room(c->mux) != 0), or NULL. Still the session's. */
struct conn *pool_take_shared(struct pool *p, const char *key, int (*room)(void *mux));
/* The first connect for key that may become shared: who (opaque) is setting it up; NULL clears.
 * 0 or -1 (out of memory). */
int pool_set_pending(struct pool *p, const char *key, void *who);
void *pool_pending(struct pool *p, const char *key);
int pool_shared_count(const struct pool *p);
/* Remembers (h1 = 1) or forgets that key's server answered an h2 offer with HTTP/1.1. */
void pool_note_h1(struct pool *p, const char *key, int h1);
int pool_known_h1(const struct pool *p, const char *key);
/* Keys with at least one idle conn (empty buckets are freed). */
int pool_bucket_count(const struct pool *p);

#endif
