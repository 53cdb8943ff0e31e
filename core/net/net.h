/* net.h — the network layer's shared context: loop, DNS cache, pool, shared buffers, pacing, stats.
 * host.c owns one struct net (net_init/net_close); nothing here knows about Lua. */
#ifndef LUAFETCH_NET_H
#define LUAFETCH_NET_H

#include <uv.h>
#include <stddef.h>

#include "buf.h"
#include "timerq.h"

/* Failure kinds of DESIGN.md, in the order of net_kind_names. */
enum net_kind {
    NET_OK = 0,
    NET_DNS,
    NET_CONNECT,
    NET_TLS,
    NET_TIMEOUT,
    NET_CLOSED,
    NET_PROTOCOL,
    NET_LIMIT,
    NET_REDIRECT,
    NET_CANCELED,
    NET_INVALID,
    NET_REPLAY,
    NET_PROXY,
};

const char *net_kind_name(enum net_kind k);

struct net_stats {
    unsigned long long requests;
    unsigned long long connections_opened;
    unsigned long long connections_reused;
    unsigned long long tls_handshakes_pooled; /* handshake halves run on libuv's thread pool */
    long long in_flight;
};

struct request;
struct pool;
struct dns_cache;

struct net_limits {
    int max_connecting;         /* simultaneous TCP connects in progress */
    int max_idle_per_host;      /* idle keep-alive connections kept per pool key */
    int max_idle_total;         /* idle keep-alive connections kept across all keys */
    double idle_timeout;        /* seconds an idle connection is kept */
    size_t max_header_bytes;    /* response head size cap */
    size_t max_inflated_total;  /* decompressed body bytes of all responses in flight */
    int max_header_count;
};

struct net {
    uv_loop_t *loop;
    struct dns_cache *dns;
    struct pool *pool;
    struct net_limits limits;
    struct net_stats stats;
    /* One read buffer per loop: libuv fills it and the parser consumes it before the next read. */
    char *read_buf;
    size_t read_buf_size;
    /* Plaintext out of TLS records, consumed the same way. */
    unsigned char *plain_buf;
    size_t plain_buf_size;
    /* Connect pacing: requests waiting for a connect slot, FIFO. */
    int connecting;
    int pumping;                /* inside pump_connect_queue */
    size_t inflated_total;      /* decompressed body bytes held by responses in flight */
    struct request *connect_head, *connect_tail;
    /* The deadlines of every request in flight, on one libuv timer. */
    struct timerq timers;
    /* Where a request's pool key is built before it is copied to a block of its size. */
    struct buf key_scratch;
};

int net_init(struct net *n, uv_loop_t *loop);
/* Closes idle connections and frees caches; handles finish closing in the loop. */
void net_close(struct net *n);
/* After the loop has closed every handle: frees the shared buffers and TLS configs. */
void net_free(struct net *n);

#endif
