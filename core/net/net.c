/* net.c — set-up and tear-down of the network layer's shared context.
 * struct net is owned by the host. net_close closes the pool and DNS cache (their handles finish
 * closing in the loop); net_free, once the loop has run dry, frees the buffers and TLS configs. */
#include "net.h"

#include <stdlib.h>

#include "dns.h"
#include "pool.h"
#include "tls.h"

static const char *const kind_names[] = {
    "ok", "dns", "connect", "tls", "timeout", "closed",
    "protocol", "limit", "redirect", "canceled", "invalid", "replay", "proxy",
};

const char *net_kind_name(enum net_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "unknown";
}

int net_init(struct net *n, uv_loop_t *loop)
{
    n->loop = loop;
    n->limits.max_connecting = 128;
    n->limits.max_idle_per_host = 256;
    n->limits.max_idle_total = 512;
    n->limits.idle_timeout = 30.0;
    n->limits.max_header_bytes = 64 * 1024;
    n->limits.max_header_count = 256;
    n->limits.max_inflated_total = 128u * 1024 * 1024;
    n->read_buf_size = 64 * 1024;
    n->read_buf = malloc(n->read_buf_size);
    n->plain_buf_size = 32 * 1024;
    n->plain_buf = malloc(n->plain_buf_size);
    n->dns = dns_cache_new(loop, 60.0);
    n->pool = pool_new(n);
    if (timerq_init(&n->timers, loop))
        return UV_ENOMEM;
    if (!n->read_buf || !n->plain_buf || !n->dns || !n->pool)
        return UV_ENOMEM;
    return 0;
}

void net_close(struct net *n)
{
    if (n->pool)
        pool_free(n->pool);
    if (n->dns)
        dns_cache_free(n->dns);
    n->pool = NULL;
    n->dns = NULL;
    /* after the pool: its connections' sessions may still let go of requests */
    timerq_close(&n->timers);
}

void net_free(struct net *n)
{
    free(n->read_buf);
    free(n->plain_buf);
    n->read_buf = NULL;
    n->plain_buf = NULL;
    timerq_free(&n->timers);
    buf_free(&n->key_scratch);
    /* Last: a closing TLS connection frees its mbedTLS context, which reads its config. */
    tls_global_cleanup();
}
