/* pool.h — idle keep-alive connections keyed by scheme/host/port and every TLS option of trust.
 * The pool owns idle conns (closing them on expiry, excess or any sign of life); pool_take
 * hands one back to a request, which then owns it. */
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
/* Keys with at least one idle conn (empty buckets are freed). */
int pool_bucket_count(const struct pool *p);

#endif
