/* http1.c — HTTP/1.1 on the wire: the chunked framing checks llhttp leaves out (client and server),
 * request head serialisation and response parsing with llhttp. The response's buffers belong to the
 * struct http_response and are freed by http_response_free; the parser copies what it keeps, so the
 * read buffer it is fed from can be reused at once. */
#include "http1.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"

#define USER_AGENT "luafetch/" LUAFETCH_VERSION

/* --- chunked framing checks ---------------------------------------------- */

enum { EXT_OFF, EXT_START, EXT_NAME, EXT_VALUE_START, EXT_VALUE, EXT_QUOTED, EXT_ESCAPE, EXT_QUOTED_END };

static int chunk_error(struct h1_chunks *g, const char *why)
{
    g->error = why;
    return -1;
}

/* Checks the bytes of the CRLF after chunk data that lie in [p, g->end). */
static int check_crlf(struct h1_chunks *g, const char *p)
{
    while (g->crlf < 2 && p < g->end) {
        if (*p++ != "\r\n"[g->crlf])
            return chunk_error(g, "chunk data not followed by CRLF");
        g->crlf++;
    }
    g->crlf_due = g->crlf < 2;
    return 0;
}

void h1_on_chunk_header(struct h1_chunks *g, uint64_t size)
{
    g->left = size;
    g->in_data = size > 0;
    g->ext_bytes = 0;
}

int h1_on_chunk_data(struct h1_chunks *g, const char *at, size_t len)
{
    if (!g->in_data)
        return 0;
    g->left = len < g->left ? g->left - len : 0;
    if (g->left)
        return 0;
    /* The data's last byte: llhttp skips the next two unchecked. */
    g->in_data = 0;
    g->crlf = 0;
    return check_crlf(g, at + len);
}

int h1_on_ext_value(struct h1_chunks *g, const char *at, size_t len)
{
    if (len) {
        if (!g->ext_vlen)
            g->ext_quoted = at[0] == '"';
        g->ext_last = (unsigned char)at[len - 1];
        g->ext_vlen += len;
    }
    /* An unquoted value ended by ';': llhttp would take the next parameter for the chunk size. */
    if (at + len < g->end && at[len] == ';' && !(g->ext_quoted && g->ext_last == '"')) {
        if (!g->ext_vlen)
            return chunk_error(g, "empty chunk extension value");
        g->ext_read = EXT_START;
    }
    return 0;
}

int h1_on_ext_value_complete(struct h1_chunks *g)
{
    g->ext_vlen = 0;
    g->ext_quoted = 0;
    return g->ext_read ? HPE_PAUSED : 0;
}

/* Reads extension bytes from p up to the CR that ends the chunk line (left for llhttp). Returns where
 * llhttp goes on (end while still reading), or NULL on a malformed list. */
static const char *read_ext(struct h1_chunks *g, const char *p, const char *end)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (++g->ext_bytes > H1_MAX_EXT)
            return chunk_error(g, "chunk extensions too long"), NULL;
        int tchar = header_tchar(c);
        switch (g->ext_read) {
        case EXT_START:
            if (!tchar)
                return chunk_error(g, "bad chunk extension name"), NULL;
            g->ext_read = EXT_NAME;
            break;
        case EXT_NAME:
        case EXT_VALUE:
        case EXT_QUOTED_END:
            if (c == '\r') {
                g->ext_read = EXT_OFF;
                return p;
            }
            if (c == ';')
                g->ext_read = EXT_START;
            else if (c == '=' && g->ext_read == EXT_NAME)
                g->ext_read = EXT_VALUE_START;
            else if (!tchar || g->ext_read == EXT_QUOTED_END)
                return chunk_error(g, "bad character in chunk extensions"), NULL;
            break;
        case EXT_VALUE_START:
            if (c == '"')
                g->ext_read = EXT_QUOTED;
            else if (tchar)
                g->ext_read = EXT_VALUE;
            else
                return chunk_error(g, "bad chunk extension value"), NULL;
            break;
        case EXT_QUOTED:
            /* qdtext: HTAB, SP, VCHAR but '"' and '\\', obs-text */
            if (c == '"')
                g->ext_read = EXT_QUOTED_END;
            else if (c == '\\')
                g->ext_read = EXT_ESCAPE;
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                return chunk_error(g, "bad character in a quoted chunk extension"), NULL;
            break;
        case EXT_ESCAPE:
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return chunk_error(g, "bad character in a quoted chunk extension"), NULL;
            g->ext_read = EXT_QUOTED;
            break;
        }
    }
    return end;
}

llhttp_errno_t h1_execute(llhttp_t *p, struct h1_chunks *g, const char *data, size_t len)
{
    const char *end = data + len;
    for (;;) {
        if (g->error)
            return HPE_USER;
        if (g->ext_read) {
            data = read_ext(g, data, end);
            if (!data)
                return HPE_USER;
            if (g->ext_read)
                return HPE_OK; /* all taken; the line goes on in the next bytes */
        }
        g->end = end;
        if (g->crlf_due && check_crlf(g, data))
            return HPE_USER;
        llhttp_errno_t e = llhttp_execute(p, data, (size_t)(end - data));
        if (e != HPE_PAUSED || g->ext_read != EXT_START)
            return g->error ? HPE_USER : e;
        /* Paused after the ';' that llhttp mishandles: read the rest of the line here. */
        data = llhttp_get_error_pos(p);
        llhttp_resume(p);
    }
}

/* --- responses ----------------------------------------------------------- */

static struct http_response *resp_of(llhttp_t *p)
{
    return p->data;
}

static struct h1_parse *parse_of(llhttp_t *p)
{
    return (struct h1_parse *)((char *)p - offsetof(struct h1_parse, parser));
}

static int fail(struct http_response *r, enum net_kind kind, const char *msg)
{
    r->err_kind = kind;
    r->err = msg;
    return -1;
}

static int count_header_bytes(struct http_response *r, size_t len)
{
    r->header_bytes += len;
    if (r->header_bytes > r->max_header_bytes)
        return fail(r, NET_LIMIT, "response headers too large");
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct http_response *r = resp_of(p);
    if (count_header_bytes(r, len) || buf_append(&r->reason, at, len))
        return -1;
    return 0;
}

/* A malformed response, with the reason (static text) in err_detail. */
static int malformed(struct http_response *r, const char *why)
{
    r->err_detail = why;
    return fail(r, NET_PROTOCOL, "malformed response");
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct http_response *r = resp_of(p);
    if (count_header_bytes(r, len))
        return -1;
    r->parse->name_len += len;
    if (!r->in_value) {
        /* first piece of a new name */
        r->in_value = 1;
        if (++r->header_count > r->max_header_count)
            return fail(r, NET_LIMIT, "too many response headers");
    }
    /* A chunked body's trailer is checked and counted, not merged into the headers. */
    int keep = !r->headers_done;
    if (keep && buf_reserve(&r->headers, len))
        return -1;
    /* One pass checks each byte (llhttp lets spaces into a name, "X-A : v", and RFC 9112 §5.1
     * has none before the colon) and lower-cases it. llhttp may split a name across reads. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = header_token_lower[(unsigned char)at[i]];
        if (!c) {
            if (keep)
                r->headers.data[r->headers.len] = '\0'; /* the block stays NUL-terminated */
            return malformed(r, "whitespace or a bad character in a header name");
        }
        if (keep)
            r->headers.data[r->headers.len++] = (char)c;
    }
    if (keep)
        r->headers.data[r->headers.len] = '\0';
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct http_response *r = resp_of(p);
    if (r->parse->name_len == 0)
        return malformed(r, "empty header name"); /* llhttp takes ": v" */
    return r->headers_done ? 0 : buf_append(&r->headers, "", 1);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct http_response *r = resp_of(p);
    if (count_header_bytes(r, len))
        return -1;
    return r->headers_done ? 0 : buf_append(&r->headers, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct http_response *r = resp_of(p);
    r->in_value = 0;
    r->parse->name_len = 0;
    if (r->headers_done)
        return 0;
    /* llhttp keeps the OWS after a value (RFC 9112 §5: not part of it) */
    while (r->headers.len && (r->headers.data[r->headers.len - 1] == ' ' ||
                              r->headers.data[r->headers.len - 1] == '\t'))
        r->headers.len--;
    return buf_append(&r->headers, "", 1);
}

/* The next value of header `name` after *pos (start with *pos = NULL), or NULL. */
static const char *next_header(const struct http_response *r, const char *name, const char **pos)
{
    if (!r->headers.data)
        return NULL;
    const char *p = *pos ? *pos : r->headers.data, *end = r->headers.data + r->headers.len;
    while (p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        const char *next = value + strlen(value) + 1;
        if (strcmp(p, name) == 0) {
            *pos = next;
            return value;
        }
        p = next;
    }
    return NULL;
}

/* Decoding stages for the body: the transfer codings, always (they are framing: chunked is
 * llhttp's, gzip and deflate are undone here, in the reverse order of the list; anything else
 * cannot be read), then, when decompress is on, the content coding beneath them. */
static int plan_decoding(struct http_response *r)
{
    struct { const char *s; size_t n; } te[DECODE_MAX_STAGES];
    int nte = 0, chunked = 0;
    const char *pos = NULL, *v;
    while ((v = next_header(r, "transfer-encoding", &pos))) {
        while (*v) {
            size_t n = strcspn(v, ",");
            const char *t = v, *e = v + n;
            v = *e ? e + 1 : e;
            while (t < e && (*t == ' ' || *t == '\t'))
                t++;
            while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (t == e)
                continue; /* an empty list element */
            if (chunked)
                return malformed(r, "chunked is not the last transfer coding");
            if ((size_t)(e - t) == 7 && strncasecmp(t, "chunked", 7) == 0) {
                chunked = 1;
            } else if (decoder_kind_n(t, (size_t)(e - t)) == DECODE_NONE) {
                return malformed(r, "unsupported transfer coding");
            } else {
                if (nte == DECODE_MAX_STAGES - 1)
                    return malformed(r, "too many transfer codings");
                te[nte].s = t;
                te[nte++].n = (size_t)(e - t);
            }
        }
    }
    int ce = r->decompress ? decoder_kind(http_response_header(r, "content-encoding")) : DECODE_NONE;
    if (!nte && ce == DECODE_NONE)
        return 0;
    r->decoder = calloc(1, sizeof *r->decoder);
    if (!r->decoder)
        return fail(r, NET_LIMIT, "out of memory");
    while (nte > 0) {
        nte--;
        decoder_add(r->decoder, decoder_kind_n(te[nte].s, te[nte].n));
    }
    if (ce != DECODE_NONE)
        decoder_add(r->decoder, ce);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct http_response *r = resp_of(p);
    r->status = p->status_code;
    r->version = p->http_major * 10 + p->http_minor;
    /* llhttp takes any one to three digits ("000", "20"); RFC 9110 §15 has 100..999. */
    if (r->status < 100)
        return malformed(r, "status code below 100");
    if (r->status < 200)
        return 0;
    r->headers_done = 1;
    int no_body = r->head_request || r->status == 204 || r->status == 304;
    if (!no_body && plan_decoding(r))
        return -1;
    /* 1 tells llhttp that no body follows: a response to HEAD, a 204 or a 304 (RFC 9110 §6.4.1),
     * whatever Content-Length says. */
    return no_body ? 1 : 0;
}

static int on_chunk_header(llhttp_t *p)
{
    h1_on_chunk_header(&parse_of(p)->chunks, p->content_length);
    return 0;
}

static int on_chunk_extension_value(llhttp_t *p, const char *at, size_t len)
{
    struct h1_chunks *g = &parse_of(p)->chunks;
    return h1_on_ext_value(g, at, len) ? malformed(resp_of(p), g->error) : 0;
}

static int on_chunk_extension_value_complete(llhttp_t *p)
{
    return h1_on_ext_value_complete(&parse_of(p)->chunks);
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct http_response *r = resp_of(p);
    struct h1_chunks *g = &parse_of(p)->chunks;
    if (h1_on_chunk_data(g, at, len))
        return malformed(r, g->error);
    if (r->decoder && !r->raw_body) {
        const char *err = NULL;
        size_t cap = r->max_body;
        if (r->inflated_total) {
            /* what the other responses in flight leave of the shared budget */
            size_t others = *r->inflated_total - r->inflated;
            size_t room = others < r->inflated_max ? r->inflated_max - others : 0;
            if (room < cap)
                cap = room;
        }
        int rc = decoder_feed(r->decoder, at, len, &r->body, cap, &err);
        if (r->inflated_total) {
            *r->inflated_total += r->body.len - r->inflated;
            r->inflated = r->body.len;
        }
        if (rc == -2)
            return fail(r, NET_LIMIT, cap < r->max_body
                                          ? "decompressed bodies in flight exceed max_inflated_total"
                                          : "response body exceeds max_body");
        if (rc < 0) {
            r->err_detail = err;
            return fail(r, NET_PROTOCOL, "cannot decode body");
        }
        return 0;
    }
    if (r->body.len + len > r->max_body)
        return fail(r, NET_LIMIT, "response body exceeds max_body");
    return buf_append(&r->body, at, len) ? fail(r, NET_LIMIT, "out of memory") : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct http_response *r = resp_of(p);
    if (r->status >= 100 && r->status < 200 && r->status != 101) {
        /* An interim response (100 Continue, 103 Early Hints): the real one follows. */
        buf_reset(&r->reason);
        buf_reset(&r->headers);
        r->header_count = 0;
        r->status = 0;
        return 0;
    }
    if (r->decoder && !r->raw_body && decoder_incomplete(r->decoder)) {
        r->err_detail = "the compressed stream ended early";
        return fail(r, NET_PROTOCOL, "cannot decode body");
    }
    r->complete = 1;
    /* After 101 the connection speaks another protocol: never reuse it. */
    r->keep_alive = r->status != 101 && !p->upgrade && llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_status = on_status,
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

void http_response_init(struct http_response *r, size_t max_body, size_t max_header_bytes,
                        int max_header_count, int decompress, int head_request)
{
    memset(r, 0, sizeof *r);
    r->max_body = max_body;
    r->max_header_bytes = max_header_bytes;
    r->max_header_count = max_header_count;
    r->decompress = decompress;
    r->head_request = head_request;
}

void http_response_share_budget(struct http_response *r, size_t *total, size_t max)
{
    r->inflated_total = total;
    r->inflated_max = max;
}

void http_response_free(struct http_response *r)
{
    if (r->inflated_total) {
        *r->inflated_total -= r->inflated;
        r->inflated = 0;
    }
    buf_free(&r->reason);
    buf_free(&r->headers);
    buf_free(&r->body);
    if (r->decoder) {
        decoder_end(r->decoder);
        free(r->decoder);
        r->decoder = NULL;
    }
    free(r->parse);
    r->parse = NULL;
}

/* The parser's state, made at the first byte. */
static int start_parse(struct http_response *r)
{
    if (r->parse)
        return 0;
    /* malloc, not calloc: glibc's calloc skips the per-thread cache of small blocks */
    struct h1_parse *p = malloc(sizeof *p);
    if (!p)
        return fail(r, NET_LIMIT, "out of memory");
    llhttp_init(&p->parser, HTTP_RESPONSE, &settings);
    p->parser.data = r;
    memset(&p->chunks, 0, sizeof p->chunks);
    p->name_len = 0;
    r->parse = p;
    return 0;
}

/* A complete response needs its parser no more (nothing is fed to it after that). */
static void end_parse(struct http_response *r)
{
    free(r->parse);
    r->parse = NULL;
}

static int parser_error(struct http_response *r, llhttp_errno_t e)
{
    if (r->err_kind != NET_OK)
        return -1;
    if (r->parse->chunks.error)
        return malformed(r, r->parse->chunks.error);
    if (e == HPE_USER)
        return fail(r, NET_PROTOCOL, "malformed response");
    r->err_detail = llhttp_get_error_reason(&r->parse->parser);
    return fail(r, NET_PROTOCOL, "malformed response");
}

int http_response_feed(struct http_response *r, const char *data, size_t len)
{
    if (r->complete) {
        r->keep_alive = 0; /* bytes after the response: the connection is out of step */
        return 0;
    }
    if (start_parse(r))
        return -1;
    r->bytes_in += len;
    llhttp_errno_t e = h1_execute(&r->parse->parser, &r->parse->chunks, data, len);
    if (e == HPE_OK)
        return 0;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&r->parse->parser);
        if (pos && pos < data + len)
            r->keep_alive = 0;
        if (r->complete)
            end_parse(r);
        return 0;
    }
    return parser_error(r, e);
}

int http_response_eof(struct http_response *r)
{
    if (r->complete)
        return 0;
    if (r->bytes_in == 0 || !r->parse)
        return fail(r, NET_CLOSED, "connection closed before any response byte");
    llhttp_errno_t e = llhttp_finish(&r->parse->parser);
    if ((e == HPE_OK || e == HPE_PAUSED) && r->complete) {
        r->keep_alive = 0;
        return 0;
    }
    if (e == HPE_OK || e == HPE_INVALID_EOF_STATE)
        return fail(r, NET_CLOSED, r->headers_done ? "connection closed before the body was complete"
                                                   : "connection closed inside the response head");
    return parser_error(r, e);
}

const char *http_response_header(const struct http_response *r, const char *name)
{
    if (!r->headers.data)
        return NULL;
    const char *p = r->headers.data, *end = p + r->headers.len;
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

/* --- request head -------------------------------------------------------- */

int http_head_add(struct http_head *h, const char *name, size_t nlen, const char *value, size_t vlen,
                  char *err, size_t errlen)
{
    if (!header_name_ok(name, nlen)) {
        snprintf(err, errlen, "invalid header name %.*s", (int)(nlen > 64 ? 64 : nlen), name);
        return -1;
    }
    if (!header_value_ok(value, vlen)) {
        snprintf(err, errlen, "invalid value for header %.*s (control characters)",
                 (int)(nlen > 64 ? 64 : nlen), name);
        return -1;
    }
    if ((nlen == 14 && strncasecmp(name, "content-length", 14) == 0) ||
        (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0)) {
        snprintf(err, errlen, "header %.*s is set from the body, not by scripts", (int)nlen, name);
        return -1;
    }
#define IS(s) (nlen == sizeof(s) - 1 && strncasecmp(name, s, nlen) == 0)
    if (IS("user-agent"))
        h->has_user_agent = 1;
    else if (IS("accept"))
        h->has_accept = 1;
    else if (IS("accept-encoding"))
        h->has_accept_encoding = 1;
    else if (IS("host"))
        h->has_host = 1;
    else if (IS("content-type"))
        h->has_content_type = 1;
#undef IS
    if (buf_append(&h->bytes, name, nlen) || buf_append(&h->bytes, ": ", 2) ||
        buf_append(&h->bytes, value, vlen) || buf_append(&h->bytes, "\r\n", 2)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int http_head_finish(const struct http_head *h, struct buf *out, const char *method,
                     const char *target, const char *authority, size_t body_len, int has_body,
                     int decompress)
{
    int rc = buf_puts(out, method) || buf_puts(out, " ") || buf_puts(out, target) ||
             buf_puts(out, " HTTP/1.1\r\n");
    if (!h->has_host)
        rc = rc || buf_puts(out, "Host: ") || buf_puts(out, authority) || buf_puts(out, "\r\n");
    if (!h->has_user_agent)
        rc = rc || buf_puts(out, "User-Agent: " USER_AGENT "\r\n");
    if (!h->has_accept)
        rc = rc || buf_puts(out, "Accept: */*\r\n");
    if (decompress && !h->has_accept_encoding)
        rc = rc || buf_puts(out, "Accept-Encoding: gzip, deflate\r\n");
    if (has_body)
        rc = rc || buf_puts(out, "Content-Length: ") || buf_put_uint(out, body_len) ||
             buf_puts(out, "\r\n");
    if (h->bytes.len)
        rc = rc || buf_append(out, h->bytes.data, h->bytes.len);
    return rc || buf_puts(out, "\r\n");
}

void http_head_free(struct http_head *h)
{
    buf_free(&h->bytes);
}
