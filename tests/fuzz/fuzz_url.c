/* fuzz_url.c — libFuzzer driver for core/http/url.c: url_parse, url_authority and url_resolve.
 * The input is "base\nref": base alone goes to url_parse, both to url_resolve, whose result is
 * parsed again. Properties that must hold are checked with abort(). Only stack and url-owned
 * memory: everything is freed before returning. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

static void check_parsed(const struct url *u)
{
    if (!u->host || !u->target || u->target[0] != '/' || u->port < 1 || u->port > 65535)
        abort();
    if (!u->is_ipv6 && !u->host[0])
        abort();
    for (const char *c = u->target; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '#')
            abort(); /* a target goes on the request line as it is */
    for (const char *c = u->host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            abort(); /* hosts are lower-cased */
}

static void parse_and_check(const char *s)
{
    struct url u;
    char err[256];
    if (url_parse(&u, s, err, sizeof err) != 0) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return;
    }
    check_parsed(&u);
    struct buf auth = {0};
    if (url_authority(&u, &auth, 1) == 0 && (!auth.data || !strchr(auth.data, ':')))
        abort(); /* with the port, always host:port */
    buf_free(&auth);
    url_free(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *nl = memchr(s, '\n', size);
    const char *ref = "";
    if (nl) {
        *nl = '\0';
        ref = nl + 1;
    }
    parse_and_check(s);
    struct buf out = {0};
    if (url_resolve(s, ref, &out) == 0 && out.data) {
        if (strlen(out.data) != out.len)
            abort();
        for (size_t i = 0; i < out.len; i++)
            if ((unsigned char)out.data[i] >= 0x80 || out.data[i] == ' ')
                abort(); /* raw UTF-8 and spaces come out percent-encoded */
        parse_and_check(out.data);
    }
    buf_free(&out);
    free(s);
    return 0;
}
