/* dns.h — name resolution through uv_getaddrinfo behind a TTL cache; concurrent lookups merged.
 * The cache owns its entries; callers hold counted references to address lists (dns_addrs_unref). */
#ifndef LUAFETCH_DNS_H
#define LUAFETCH_DNS_H

#include <uv.h>

struct dns_addrs {
    int refs;
    int count;
    struct sockaddr_storage addr[];  /* port 0: the caller sets it */
};

struct dns_waiter;
/* status 0 with addrs (a reference the callee now owns), or a negative uv error. */
typedef void (*dns_cb)(struct dns_waiter *w, int status, struct dns_addrs *addrs);

/* Embedded in the requester; lives until its callback ran or dns_cancel. */
struct dns_waiter {
    dns_cb cb;
    struct dns_waiter *next, *prev;
    struct dns_entry *entry;
};

struct dns_stats {
    unsigned long long lookups;  /* getaddrinfo calls */
    unsigned long long hits;     /* answered from the cache or merged into a running lookup */
};

struct dns_cache;

struct dns_cache *dns_cache_new(uv_loop_t *loop, double ttl_seconds);
/* Frees entries; lookups still running finish in libuv and are dropped. */
void dns_cache_free(struct dns_cache *c);
/* Returns addrs at once (a reference) for an IP literal or a fresh cache entry; otherwise
 * NULL and w->cb runs later. *err gets a negative uv error when nothing could start. */
struct dns_addrs *dns_resolve(struct dns_cache *c, const char *host, struct dns_waiter *w, int *err);
void dns_cancel(struct dns_waiter *w);
void dns_addrs_unref(struct dns_addrs *a);
const struct dns_stats *dns_get_stats(const struct dns_cache *c);
void dns_set_ttl(struct dns_cache *c, double ttl_seconds);

#endif
