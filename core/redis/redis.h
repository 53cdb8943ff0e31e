/* redis.h — the Redis client interface: one connection per client, kept up on demand (resolve,
 * connect, AUTH, SELECT, reconnect with backoff), calls of one or more commands answered in order,
 * a timeout of our own per call. The transport (redis_client.c, on hiredis and its libuv adapter)
 * stays behind these functions, so a TLS or cluster transport can replace it without touching the
 * callers. A call belongs to the client from redis_call_start until its done callback has run (or
 * redis_call_cancel); after done the caller reads it and frees it with redis_call_free. Replies are
 * our own structs, parsed straight into an arena each (redis_reply.c), owned by the call. */
#ifndef LUAFETCH_REDIS_H
#define LUAFETCH_REDIS_H

#include <stddef.h>
#include <uv.h>

struct dns_cache;

/* Why a call failed (nothing to do with an error reply, which is a reply). */
enum redis_err {
    REDIS_E_NONE = 0,
    REDIS_E_CONNECT,    /* the name did not resolve, or the connection could not be made */
    REDIS_E_AUTH,       /* AUTH or SELECT refused by the server */
    REDIS_E_CLOSED,     /* the connection went away with the call in flight */
    REDIS_E_TIMEOUT,    /* no whole answer within the call's timeout */
    REDIS_E_CANCELED,   /* the client was closed */
    REDIS_E_NOMEM,
};

/* "connect", "auth", "closed", "timeout", "canceled", "nomem" */
const char *redis_err_name(enum redis_err e);

enum redis_type {
    REDIS_T_STRING = 1,
    REDIS_T_ARRAY,
    REDIS_T_INTEGER,
    REDIS_T_NIL,
    REDIS_T_STATUS,
    REDIS_T_ERROR,
};

/* The first four fields lie where hiredis' redisReply has its own (redis_reply.c checks): hiredis
 * reads type and str of a reply it has no callback for. */
struct redis_reply {
    enum redis_type type;
    long long integer;              /* INTEGER */
    size_t len;
    const char *str;                /* STRING, STATUS, ERROR: len bytes, NUL-terminated */
    size_t n;                       /* ARRAY: elements */
    const struct redis_reply *elem;
};

/* Where and how: from a redis:// URL (redis_url_parse) plus options. Strings are owned. */
struct redis_config {
    char *host;
    int port;
    char *user;                     /* ACL user (Redis 6+), or NULL for the default user */
    char *password;                 /* NULL: no AUTH */
    int db;
    double connect_timeout;         /* seconds for resolve + connect + AUTH/SELECT */
    double backoff_min, backoff_max;/* seconds between connect attempts after a failure */
};

/* redis://[[user]:password@]host[:port][/db] → cfg (defaults: port 6379, db 0, connect timeout
 * 5 s, backoff 0.05 s doubling to 2 s). 0, or -1 with err set. */
int redis_url_parse(const char *url, struct redis_config *cfg, char *err, size_t errlen);
void redis_config_free(struct redis_config *cfg);

struct redis_stats {
    unsigned long long calls;       /* calls started (each one round trip) */
    unsigned long long commands;    /* commands sent */
    unsigned long long connects;    /* connections made ready (AUTH and SELECT done) */
    unsigned long long connect_failures;
    unsigned long long timeouts;
    int connected;
};

struct redis_client;

struct redis_call {
    /* set by the caller before redis_call_start */
    void (*done)(struct redis_call *call);
    void *data;
    /* the outcome, valid from done until redis_call_free */
    enum redis_err err;             /* REDIS_E_NONE: every reply is in */
    char errmsg[512];
    int ncmds;
    struct redis_reply **replies;   /* ncmds replies, each may be an ERROR reply */
    /* private to the client */
    struct redis_client *client;
    char *buf;                      /* the commands in RESP, back to back */
    size_t buf_len, buf_cap;
    size_t *ends;                   /* where each command ends in buf */
    int ends_cap;
    int nreplied;                   /* replies received so far */
    int outstanding;                /* commands handed to the transport and not called back */
    int where;                      /* which list holds it (CALL_* in redis_client.c) */
    int released;                   /* the caller let go (cancel, or free before the last callback) */
    double deadline;                /* loop time in ms; 0: none */
    struct redis_call *prev, *next;
};

/* A client for cfg (copied). Connects on the first call. NULL when out of memory. */
struct redis_client *redis_client_new(uv_loop_t *loop, struct dns_cache *dns, const struct redis_config *cfg);
/* Fails every call still pending with REDIS_E_CANCELED (their done callbacks run on a later loop
 * turn), drops the connection; the client frees itself once its handles have closed. */
void redis_client_close(struct redis_client *c);
const struct redis_stats *redis_client_stats(const struct redis_client *c);
/* "host:port" of the client, for messages. */
const char *redis_client_address(const struct redis_client *c);

struct redis_call *redis_call_new(void);
/* Appends one command (its arguments are copied). 0, or -1 when out of memory. */
int redis_call_append(struct redis_call *call, int argc, const char *const *argv, const size_t *argvlen);
/* The same piece by piece: begin with the argument count, then each argument (copied), then end.
 * 0, or -1 when out of memory (the call is then only good for redis_call_free). */
int redis_call_begin(struct redis_call *call, int argc);
int redis_call_arg(struct redis_call *call, const char *p, size_t len);
int redis_call_arg_int(struct redis_call *call, long long v);
/* Arguments already in RESP ($len CRLF bytes CRLF each), counted in begin's argc. */
int redis_call_raw(struct redis_call *call, const char *resp, size_t len);
void redis_call_end(struct redis_call *call);
/* Sends the call's commands back to back; done runs once, on a later loop turn, when every reply
 * is in or the call failed. timeout: seconds (0: none). */
void redis_call_start(struct redis_client *c, struct redis_call *call, double timeout);
/* The caller no longer wants the outcome: done will not run; the call is freed when safe. */
void redis_call_cancel(struct redis_call *call);
/* After done (or for a call never started). */
void redis_call_free(struct redis_call *call);

#endif
