/* dns.h — name resolution through uv_getaddrinfo behind a bounded TTL cache; lookups merged.
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
/* At most max names cached (least recently used dropped first; lookups in progress stay). */
void dns_set_max_entries(struct dns_cache *c, int max);
int dns_cache_size(const struct dns_cache *c);
/* Fixed addresses for a name, used before DNS (takes the reference); NULL addrs removes it.
 * 0 or UV_ENOMEM. */
int dns_set_fixed(struct dns_cache *c, const char *host, struct dns_addrs *addrs);
/* n IP literals ("1.2.3.4", "::1" or "[::1]") → a new list (one reference), NULL if one is bad. */
struct dns_addrs *dns_addrs_parse(const char *const *list, int n);
/* Reorders in place: the first family, then alternating families (RFC 8305 §4). */
void dns_addrs_interleave(struct dns_addrs *a);

#endif
