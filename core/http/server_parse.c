/* server_parse.c — the embedded server's request parser: llhttp callbacks into the request's
 * buffers, limits, and the checks llhttp 8.1 leaves out (the chunked framing through http1.c's
 * h1_execute, one Host, token field names, no transfer coding but chunked). The buffers belong to
 * the struct server_parser: reused between requests, freed by server_parser_free. */
#include "server_parse.h"

#include <string.h>
#include <strings.h>

#include "headers.h"

#define KEEP_BUF_BYTES 65536    /* a request buffer larger than this is freed, not kept, afterwards */

static struct server_parser *sp_of(llhttp_t *p)
{
    return p->data;
}

static int refuse(struct server_parser *sp, int status)
{
    sp->reject = status;
    return -1;
}

static int count_head(struct server_parser *sp, size_t len)
{
    sp->head_bytes += len;
    return sp->head_bytes > sp->lim.max_header_bytes ? refuse(sp, 431) : 0;
}

static const char *find_header(const struct buf *h, const char *name)
{
    if (!h->data)
        return NULL;
    const char *p = h->data, *end = p + h->len;
    while (p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

static int on_message_begin(llhttp_t *p)
{
    struct server_parser *sp = sp_of(p);
    buf_reset(&sp->target);
    buf_reset(&sp->headers);
    buf_reset(&sp->body);
    sp->header_count = 0;
    sp->host_count = 0;
    sp->head_bytes = 0;
    sp->name_len = 0;
    sp->in_value = 0;
    sp->in_body = 0;
    sp->reject = 0;
    sp->message_done = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct server_parser *sp = sp_of(p);
    if (count_head(sp, len))
        return -1;
    return buf_append(&sp->target, at, len) ? refuse(sp, 500) : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct server_parser *sp = sp_of(p);
    if (count_head(sp, len))
        return -1;
    if (!sp->in_value) {
        sp->in_value = 1; /* the first piece of a new name (llhttp may split one across reads) */
        if (++sp->header_count > sp->lim.max_header_count)
            return refuse(sp, 431);
    }
    /* llhttp lets spaces into a name: RFC 9112 §5.1 has a server answer 400 to "X-A : v". */
    for (size_t i = 0; i < len; i++)
        if (!header_tchar((unsigned char)at[i]))
            return refuse(sp, 400);
    sp->name_len += len;
    if (sp->in_body)
        return 0; /* a chunked body's trailer: counted, never merged into req.headers */
    if (buf_reserve(&sp->headers, len))
        return refuse(sp, 500);
    for (size_t i = 0; i < len; i++) {
        char ch = at[i];
        sp->headers.data[sp->headers.len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    sp->headers.data[sp->headers.len] = '\0';
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct server_parser *sp = sp_of(p);
    if (count_head(sp, 2)) /* ": " */
        return -1;
    if (sp->name_len == 0)
        return refuse(sp, 400); /* llhttp takes ": v" */
    if (sp->in_body)
        return 0;
    if (sp->name_len == 4 && memcmp(sp->headers.data + sp->headers.len - 4, "host", 4) == 0)
        sp->host_count++;
    return buf_append(&sp->headers, "", 1) ? refuse(sp, 500) : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct server_parser *sp = sp_of(p);
    if (count_head(sp, len))
        return -1;
    if (sp->in_body)
        return 0;
    return buf_append(&sp->headers, at, len) ? refuse(sp, 500) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct server_parser *sp = sp_of(p);
    sp->in_value = 0;
    sp->name_len = 0;
    if (count_head(sp, 2)) /* CRLF */
        return -1;
    if (sp->in_body)
        return 0;
    /* llhttp keeps the OWS after a value (RFC 9112 §5: not part of it) */
    struct buf *h = &sp->headers;
    while (h->len && (h->data[h->len - 1] == ' ' || h->data[h->len - 1] == '\t'))
        h->len--;
    return buf_append(h, "", 1) ? refuse(sp, 500) : 0;
}

/* 0 when every Transfer-Encoding value lists exactly one coding, chunked (llhttp has checked that
 * chunked is last); else the status: 501 for a coding the server does not decode (RFC 9112 §6.1),
 * 400 for chunked twice. */
static int check_transfer_codings(const struct buf *h)
{
    if (!h->data)
        return 0;
    int chunked = 0;
    const char *p = h->data, *end = p + h->len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (v >= end)
            break;
        const char *next = v + strlen(v) + 1;
        if (strcmp(p, "transfer-encoding") == 0) {
            while (*v) {
                size_t n = strcspn(v, ",");
                const char *t = v, *e = v + n;
                v = *e ? e + 1 : e;
                while (t < e && (*t == ' ' || *t == '\t'))
                    t++;
                while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
                    e--;
                if (t == e)
                    continue;
                if ((size_t)(e - t) != 7 || strncasecmp(t, "chunked", 7) != 0)
                    return 501;
                if (chunked++)
                    return 400;
            }
        }
        p = next;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct server_parser *sp = sp_of(p);
    /* RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; any request at most one. */
    if (sp->host_count > 1 || (p->http_major == 1 && p->http_minor >= 1 && sp->host_count == 0))
        return refuse(sp, 400);
    if (p->flags & F_TRANSFER_ENCODING) {
        int status = check_transfer_codings(&sp->headers);
        if (status)
            return refuse(sp, status);
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > sp->lim.max_body)
        return refuse(sp, 413);
    int body_follows = (p->flags & F_CHUNKED) || p->content_length > 0;
    int expect_continue = 0;
    const char *expect = find_header(&sp->headers, "expect");
    if (expect && p->http_major == 1 && p->http_minor >= 1) {
        if (strcasecmp(expect, "100-continue") != 0)
            return refuse(sp, 417);
        expect_continue = body_follows;
    }
    sp->head_request = p->method == HTTP_HEAD;
    sp->in_body = 1;
    return sp->on_head ? sp->on_head(sp, expect_continue) : 0;
}

static int on_chunk_header(llhttp_t *p)
{
    h1_on_chunk_header(&sp_of(p)->chunks, p->content_length);
    return 0;
}

static int on_chunk_extension_value(llhttp_t *p, const char *at, size_t len)
{
    struct server_parser *sp = sp_of(p);
    return h1_on_ext_value(&sp->chunks, at, len) ? refuse(sp, 400) : 0;
}

static int on_chunk_extension_value_complete(llhttp_t *p)
{
    return h1_on_ext_value_complete(&sp_of(p)->chunks);
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct server_parser *sp = sp_of(p);
    if (h1_on_chunk_data(&sp->chunks, at, len))
        return refuse(sp, 400);
    if (sp->body.len + len > sp->lim.max_body)
        return refuse(sp, 413);
    return buf_append(&sp->body, at, len) ? refuse(sp, 500) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct server_parser *sp = sp_of(p);
    sp->message_done = 1;
    /* HTTP/1.0 keeps the connection only when asked; Connection: close ends it; an upgrade or
     * CONNECT is not spoken here, so the connection ends after the answer. */
    sp->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    return HPE_PAUSED; /* one request at a time: the rest waits for the response */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_extension_value = on_chunk_extension_value,
    .on_chunk_extension_value_complete = on_chunk_extension_value_complete,
};

void server_parser_init(struct server_parser *sp, const struct server_parse_limits *lim)
{
    memset(sp, 0, sizeof *sp);
    sp->lim = *lim;
    llhttp_init(&sp->parser, HTTP_REQUEST, &settings);
    sp->parser.data = sp;
}

enum sp_result server_parser_feed(struct server_parser *sp, const char *data, size_t len, const char **rest)
{
    *rest = NULL;
    llhttp_errno_t e = h1_execute(&sp->parser, &sp->chunks, data, len);
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && sp->message_done) {
        const char *pos = llhttp_get_error_pos(&sp->parser);
        if (pos && pos >= data && pos < data + len)
            *rest = pos;
        return SP_REQUEST;
    }
    if (e == HPE_OK)
        return SP_MORE;
    if (!sp->reject)
        sp->reject = 400; /* llhttp's own refusals, and the chunked checks' */
    return SP_ERROR;
}

void server_parser_request(const struct server_parser *sp, struct server_request *req)
{
    req->method = llhttp_method_name((llhttp_method_t)sp->parser.method);
    req->target = sp->target.data ? sp->target.data : "";
    req->target_len = sp->target.len;
    req->headers = sp->headers.data ? sp->headers.data : "";
    req->headers_len = sp->headers.len;
    req->header_count = sp->header_count;
    req->body = sp->body.data ? sp->body.data : "";
    req->body_len = sp->body.len;
    req->http_major = sp->parser.http_major;
    req->http_minor = sp->parser.http_minor;
}

static void shrink(struct buf *b)
{
    if (b->cap > KEEP_BUF_BYTES)
        buf_free(b);
    else
        buf_reset(b);
}

void server_parser_shrink(struct server_parser *sp)
{
    shrink(&sp->target);
    shrink(&sp->headers);
    shrink(&sp->body);
}

void server_parser_next(struct server_parser *sp)
{
    llhttp_resume(&sp->parser);
}

void server_parser_free(struct server_parser *sp)
{
    buf_free(&sp->target);
    buf_free(&sp->headers);
    buf_free(&sp->body);
}
