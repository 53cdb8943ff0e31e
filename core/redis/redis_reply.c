/* redis_reply.c — replies built by hiredis' parser straight into our struct redis_reply (through
 * its reply-object hooks), in an arena of one or a few blocks per reply: no hiredis objects to
 * allocate, copy and free node by node. The root owns its arena; hiredis frees it after the reply
 * callback (freeObject) unless the client took it, and then redis_reply_free does. */
#include <hiredis/hiredis.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "redis_reply.h"

/* hiredis hands our replies around as its own: it reads the type of a reply nobody waits for,
 * and the message of an error reply then (async.c). Those fields must lie where redisReply has
 * them, and the type numbers agree. (elements/element never match: they are read only for
 * SUBSCRIBE and MONITOR replies, commands lua_redis.c refuses.) */
_Static_assert(REDIS_REPLY_STRING == REDIS_T_STRING && REDIS_REPLY_ARRAY == REDIS_T_ARRAY &&
               REDIS_REPLY_INTEGER == REDIS_T_INTEGER && REDIS_REPLY_NIL == REDIS_T_NIL &&
               REDIS_REPLY_STATUS == REDIS_T_STATUS && REDIS_REPLY_ERROR == REDIS_T_ERROR,
               "reply type numbers");
_Static_assert(offsetof(struct redis_reply, type) == offsetof(redisReply, type) &&
               sizeof(enum redis_type) == sizeof(int) &&
               offsetof(struct redis_reply, integer) == offsetof(redisReply, integer) &&
               offsetof(struct redis_reply, len) == offsetof(redisReply, len) &&
               offsetof(struct redis_reply, str) == offsetof(redisReply, str),
               "struct redis_reply's first fields lie where redisReply has them");

#define FIRST_CHUNK 1024
#define MAX_CHUNK (64 * 1024) /* below malloc's mmap threshold: a big read is a few chunks */
/* Sizes capped: hiredis 0.14 takes any array length a server sends, and an array's nodes are
 * allocated when its header arrives, before any element; a reply beyond these is refused (the
 * parser reports out of memory and the connection is dropped). The queue's largest replies are
 * reads of a few thousand entries. */
#define ARRAY_MAX (1 << 20)              /* elements in one array */
#define REPLY_MAX ((size_t)64 << 20)     /* bytes of nodes and strings in one reply */

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct reply_root {
    struct redis_reply node; /* first: the root's node is the reply hiredis hands around */
    struct chunk *chunks;    /* newest first; the last one is inline, right after this struct */
    size_t total;            /* bytes handed out (REPLY_MAX) */
    int taken;
};
/* The first chunk lives in the root's own block, right after it, aligned as a chunk must be. */
#define ROOT_SPACE ((sizeof(struct reply_root) + _Alignof(struct chunk) - 1) / _Alignof(struct chunk) * \
                    _Alignof(struct chunk))

static struct chunk *inline_chunk(struct reply_root *root)
{
    return (struct chunk *)((char *)root + ROOT_SPACE);
}

/* The root of the reply a task belongs to: a task's privdata is its reader (redis_reply_use_reader),
 * whose first task holds the root once its array exists; a task without parent is the root. */
static struct reply_root *root_of(const redisReadTask *task)
{
    return ((const redisReader *)task->privdata)->rstack[0].obj;
}

/* size bytes (8-aligned) from the reply's arena, or NULL when out of memory. */
static void *arena_alloc(struct reply_root *root, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (size > REPLY_MAX - root->total)
        return NULL;
    root->total += size;
    struct chunk *c = root->chunks;
    if (c->cap - c->used < size) {
        size_t cap = c->cap * 2 < MAX_CHUNK ? c->cap * 2 : MAX_CHUNK;
        if (cap < size)
            cap = size;
        struct chunk *n = malloc(sizeof *n + cap);
        if (!n)
            return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        root->chunks = n;
        c = n;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

/* The node a task fills: a new root (with its first chunk), or its place in the parent array. */
static struct redis_reply *node_for(const redisReadTask *task)
{
    if (!task->parent) {
        struct reply_root *root = malloc(ROOT_SPACE + sizeof(struct chunk) + FIRST_CHUNK);
        if (!root)
            return NULL;
        root->chunks = inline_chunk(root);
        root->chunks->next = NULL;
        root->chunks->used = 0;
        root->chunks->cap = FIRST_CHUNK;
        root->taken = 0;
        root->total = 0;
        memset(&root->node, 0, sizeof root->node);
        return &root->node;
    }
    struct redis_reply *parent = task->parent->obj;
    return (struct redis_reply *)&parent->elem[task->idx];
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    struct redis_reply *node = node_for(task);
    if (!node)
        return NULL;
    char *copy = arena_alloc(task->parent ? root_of(task) : (struct reply_root *)node, len + 1);
    if (!copy) {
        if (!task->parent)
            free(node);
        return NULL;
    }
    memcpy(copy, str, len);
    copy[len] = 0;
    *node = (struct redis_reply){ .type = (enum redis_type)task->type, .str = copy, .len = len };
    return node;
}

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements > ARRAY_MAX)
        return NULL;
    struct redis_reply *node = node_for(task);
    if (!node)
        return NULL;
    size_t n = elements > 0 ? (size_t)elements : 0;
    struct redis_reply *kids = NULL;
    if (n) {
        /* not cleared: the parser fills every element (create_* set all of a node's fields) before
         * anyone sees the reply, and a reply it gives up on is freed whole */
        kids = arena_alloc(task->parent ? root_of(task) : (struct reply_root *)node, n * sizeof *kids);
        if (!kids) {
            if (!task->parent)
                free(node);
            return NULL;
        }
    }
    *node = (struct redis_reply){ .type = REDIS_T_ARRAY, .n = n, .elem = kids };
    return node;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    struct redis_reply *node = node_for(task);
    if (!node)
        return NULL;
    *node = (struct redis_reply){ .type = REDIS_T_INTEGER, .integer = value };
    return node;
}

static void *create_nil(const redisReadTask *task)
{
    struct redis_reply *node = node_for(task);
    if (!node)
        return NULL;
    *node = (struct redis_reply){ .type = REDIS_T_NIL };
    return node;
}

static void free_arena(struct reply_root *root)
{
    struct chunk *first = inline_chunk(root);
    for (struct chunk *c = root->chunks, *next; c != first; c = next) {
        next = c->next;
        free(c);
    }
    free(root);
}

/* hiredis calls this with a root only: after the reply callback, or on a parse error. */
static void free_object(void *obj)
{
    struct reply_root *root = obj;
    if (root && !root->taken)
        free_arena(root);
}

static redisReplyObjectFunctions reply_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

void redis_reply_use_reader(redisReader *r)
{
    r->fn = &reply_functions;
    r->privdata = r; /* handed to every task (root_of) */
}

void redis_reply_use(redisContext *c)
{
    redis_reply_use_reader(c->reader);
}

struct redis_reply *redis_reply_take(void *reply)
{
    struct reply_root *root = reply;
    root->taken = 1;
    return &root->node;
}

void redis_reply_free(struct redis_reply *reply)
{
    if (reply)
        free_arena((struct reply_root *)reply);
}
