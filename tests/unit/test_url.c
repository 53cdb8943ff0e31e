/* test_url.c — url_parse, url_authority and url_resolve (core/http/url.c): schemes, hosts, ports, IPv6,
 * refused userinfo and control characters, targets; RFC 3986 §5.4 reference resolution examples and
 * the percent-encoding of raw UTF-8 and spaces in a resolved reference. */
#include "url.h"

#include <stdlib.h>

#include "unit.h"

/* Parses s, expecting success with these fields. */
static void parse_ok(const char *s, int https, const char *host, int ipv6, int port, const char *target)
{
    struct url u;
    char err[256] = "";
    int rc = url_parse(&u, s, err, sizeof err);
    CHECK_MSG(rc == 0, "url_parse(\"%s\") failed: %s", s, err);
    if (rc)
        return;
    CHECK_MSG(u.https == https, "%s: https=%d", s, u.https);
    CHECK_MSG(u.host && strcmp(u.host, host) == 0, "%s: host \"%s\", expected \"%s\"", s, u.host, host);
    CHECK_MSG(u.is_ipv6 == ipv6, "%s: is_ipv6=%d", s, u.is_ipv6);
    CHECK_MSG(u.port == port, "%s: port %d, expected %d", s, u.port, port);
    CHECK_MSG(u.target && strcmp(u.target, target) == 0, "%s: target \"%s\", expected \"%s\"", s,
              u.target, target);
    url_free(&u);
    CHECK(u.host == NULL && u.target == NULL);
}

/* Expects url_parse to refuse s with a message. */
static void parse_bad(const char *s, const char *label)
{
    struct url u;
    char err[256] = "";
    int rc = url_parse(&u, s, err, sizeof err);
    CHECK_MSG(rc == -1, "url_parse accepted a URL with %s: \"%s\" (host \"%s\", target \"%s\")", label, s,
              rc == 0 ? u.host : "", rc == 0 ? u.target : "");
    if (rc == 0)
        url_free(&u);
    else
        CHECK_MSG(err[0] != '\0', "no error message for %s", label);
}

static void test_schemes(void)
{
    TEST("schemes");
    parse_ok("http://example.com", 0, "example.com", 0, 80, "/");
    parse_ok("https://example.com", 1, "example.com", 0, 443, "/");
    parse_ok("HTTP://example.com/", 0, "example.com", 0, 80, "/");
    parse_ok("HtTpS://example.com/", 1, "example.com", 0, 443, "/");
    parse_bad("ftp://example.com/", "the ftp scheme");
    parse_bad("file:///etc/passwd", "the file scheme");
    parse_bad("example.com/path", "no scheme");
    parse_bad("//example.com/", "a scheme-relative reference");
    parse_bad("http:/example.com/", "one slash");
    parse_bad("httpx://example.com/", "scheme httpx");
    parse_bad("", "nothing");
}

static void test_hosts(void)
{
    TEST("hosts");
    parse_ok("http://EXAMPLE.Com/", 0, "example.com", 0, 80, "/");
    parse_ok("http://a-b.c_d.example./", 0, "a-b.c_d.example.", 0, 80, "/");
    parse_ok("http://127.0.0.1:8080/", 0, "127.0.0.1", 0, 8080, "/");
    parse_ok("http://localhost", 0, "localhost", 0, 80, "/");
    parse_bad("http:///path", "an empty host");
    parse_bad("http://:80/", "an empty host before a port");
    parse_bad("http://", "nothing after the scheme");
    parse_bad("http://exa!mple.com/", "'!' in the host");
    parse_bad("http://exa%41mple.com/", "'%' in the host");
    parse_bad("http://exa*mple.com/", "'*' in the host");
    parse_bad("http://[::1/", "an unclosed IPv6 bracket");
    parse_bad("http://[]/", "empty brackets");
    parse_bad("http://[::g]/", "a non-hex IPv6 digit");
    parse_bad("http://[::1]x/", "junk after the IPv6 bracket");
    parse_bad("http://[::1]:99999/", "a bad port after IPv6");
    parse_bad("http://\xc3\xa9.example/", "a non-ASCII host");
}

static void test_ipv6(void)
{
    TEST("ipv6");
    parse_ok("http://[::1]/", 0, "::1", 1, 80, "/");
    parse_ok("http://[::1]:8080/x", 0, "::1", 1, 8080, "/x");
    parse_ok("https://[2001:DB8::A]/", 1, "2001:db8::a", 1, 443, "/");
    parse_ok("http://[::ffff:127.0.0.1]:81", 0, "::ffff:127.0.0.1", 1, 81, "/");
}

static void test_ports(void)
{
    TEST("ports");
    parse_ok("http://h:1/", 0, "h", 0, 1, "/");
    parse_ok("http://h:65535/", 0, "h", 0, 65535, "/");
    parse_ok("https://h:80/", 1, "h", 0, 80, "/");
    parse_ok("http://h:443/", 0, "h", 0, 443, "/");
    parse_ok("http://h:0080/", 0, "h", 0, 80, "/");
    /* RFC 3986 §3.2.3: an empty port means the default. */
    parse_ok("http://h:/", 0, "h", 0, 80, "/");
    parse_bad("http://h:0/", "port 0");
    parse_bad("http://h:65536/", "port 65536");
    parse_bad("http://h:99999999999999999999999/", "an overflowing port");
    parse_bad("http://h:8a/", "a non-digit port");
    parse_bad("http://h:-1/", "a negative port");
    parse_bad("http://h:+80/", "a signed port");
    parse_bad("http://h:80:81/", "two ports");
}

static void test_userinfo(void)
{
    TEST("userinfo refused");
    parse_bad("http://user@example.com/", "a user name");
    parse_bad("http://user:pw@example.com/", "user and password");
    parse_bad("http://@example.com/", "an empty userinfo");
    parse_bad("http://a@b@example.com/", "two '@'");
    /* '@' after the authority is part of the path and fine. */
    parse_ok("http://example.com/@user", 0, "example.com", 0, 80, "/@user");
    parse_ok("http://example.com/?mail=a@b", 0, "example.com", 0, 80, "/?mail=a@b");
}

static void test_control_chars(void)
{
    TEST("control characters");
    parse_bad("http://exa mple.com/", "a space in the host");
    parse_bad("http://example.com/a b", "a space in the path");
    parse_bad("http://example.com/a\tb", "a tab");
    parse_bad("http://example.com/\r\nX-Injected: 1", "CR LF");
    parse_bad("http://example.com/a\nb", "LF");
    parse_bad("http://example.com/\x01", "byte 0x01");
    parse_bad("http://example.com/\x7f", "DEL");
    parse_bad("http://example.com/?q=\x1b", "ESC in the query");
    parse_bad("http://example.com/#\r\n", "CR LF in the fragment");
    parse_bad(" http://example.com/", "a leading space");
    parse_bad("http://example.com/ ", "a trailing space");
}

static void test_targets(void)
{
    TEST("targets");
    parse_ok("http://h/a/b?x=1&y=2", 0, "h", 0, 80, "/a/b?x=1&y=2");
    parse_ok("http://h/a/b?x=1#frag", 0, "h", 0, 80, "/a/b?x=1");
    parse_ok("http://h/a#frag?notquery", 0, "h", 0, 80, "/a");
    parse_ok("http://h#frag", 0, "h", 0, 80, "/");
    parse_ok("http://h?q=1", 0, "h", 0, 80, "/?q=1");
    parse_ok("http://h:81?q=1#f", 0, "h", 0, 81, "/?q=1");
    parse_ok("http://h/%20encoded%2F", 0, "h", 0, 80, "/%20encoded%2F");
    parse_ok("http://h//double//slash", 0, "h", 0, 80, "//double//slash");
    parse_ok("http://h/a/../b/./c", 0, "h", 0, 80, "/a/../b/./c");
}

static void check_authority(const char *s, int with_default, const char *want)
{
    struct url u;
    char err[256];
    if (url_parse(&u, s, err, sizeof err)) {
        CHECK_MSG(0, "url_parse(\"%s\"): %s", s, err);
        return;
    }
    struct buf b = {0};
    CHECK(url_authority(&u, &b, with_default) == 0);
    CHECK_MSG(b.data && strcmp(b.data, want) == 0, "authority of %s (default %d): \"%s\", expected \"%s\"", s,
              with_default, b.data ? b.data : "", want);
    buf_free(&b);
    url_free(&u);
}

static void test_authority(void)
{
    TEST("url_authority");
    check_authority("http://h/", 0, "h");
    check_authority("http://h/", 1, "h:80");
    check_authority("https://h/", 0, "h");
    check_authority("https://h/", 1, "h:443");
    check_authority("http://h:8080/", 0, "h:8080");
    check_authority("https://h:80/", 0, "h:80");
    check_authority("http://[::1]/", 0, "[::1]");
    check_authority("http://[::1]:8080/", 0, "[::1]:8080");
    check_authority("http://[::1]/", 1, "[::1]:80");
}

/* --- url_resolve ---------------------------------------------------------- */

static const char *strip_fragment(const char *s, char *out, size_t n)
{
    snprintf(out, n, "%.*s", (int)strcspn(s, "#"), s);
    return out;
}

/* Fragments are never sent, so the core may drop them: the result must equal the RFC's, with or
 * without its fragment. */
static void resolve_is(const char *base, const char *ref, const char *want)
{
    struct buf out = {0};
    int rc = url_resolve(base, ref, &out);
    char a[512], b[512];
    const char *got = out.data ? out.data : "";
    int same = rc == 0 && (strcmp(got, want) == 0 ||
                           strcmp(strip_fragment(got, a, sizeof a), strip_fragment(want, b, sizeof b)) == 0);
    CHECK_MSG(same, "resolve(\"%s\", \"%s\") = \"%s\" (rc %d), expected \"%s\"", base, ref, got, rc, want);
    buf_free(&out);
}

static void test_resolve_rfc3986(void)
{
    TEST("url_resolve RFC 3986 5.4.1");
    const char *base = "http://a/b/c/d;p?q";
    static const char *const normal[][2] = {
        { "g:h", "g:h" },
        { "g", "http://a/b/c/g" },
        { "./g", "http://a/b/c/g" },
        { "g/", "http://a/b/c/g/" },
        { "/g", "http://a/g" },
        { "//g", "http://g" },
        { "?y", "http://a/b/c/d;p?y" },
        { "g?y", "http://a/b/c/g?y" },
        { "#s", "http://a/b/c/d;p?q#s" },
        { "g#s", "http://a/b/c/g#s" },
        { "g?y#s", "http://a/b/c/g?y#s" },
        { ";x", "http://a/b/c/;x" },
        { "g;x", "http://a/b/c/g;x" },
        { "g;x?y#s", "http://a/b/c/g;x?y#s" },
        { "", "http://a/b/c/d;p?q" },
        { ".", "http://a/b/c/" },
        { "./", "http://a/b/c/" },
        { "..", "http://a/b/" },
        { "../", "http://a/b/" },
        { "../g", "http://a/b/g" },
        { "../..", "http://a/" },
        { "../../", "http://a/" },
        { "../../g", "http://a/g" },
    };
    for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++)
        resolve_is(base, normal[i][0], normal[i][1]);

    TEST("url_resolve RFC 3986 5.4.2");
    static const char *const abnormal[][2] = {
        { "../../../g", "http://a/g" },
        { "../../../../g", "http://a/g" },
        { "/./g", "http://a/g" },
        { "/../g", "http://a/g" },
        { "g.", "http://a/b/c/g." },
        { ".g", "http://a/b/c/.g" },
        { "g..", "http://a/b/c/g.." },
        { "..g", "http://a/b/c/..g" },
        { "./../g", "http://a/b/g" },
        { "./g/.", "http://a/b/c/g/" },
        { "g/./h", "http://a/b/c/g/h" },
        { "g/../h", "http://a/b/c/h" },
        { "g;x=1/./y", "http://a/b/c/g;x=1/y" },
        { "g;x=1/../y", "http://a/b/c/y" },
        { "g?y/./x", "http://a/b/c/g?y/./x" },
        { "g?y/../x", "http://a/b/c/g?y/../x" },
        { "g#s/./x", "http://a/b/c/g#s/./x" },
        { "g#s/../x", "http://a/b/c/g#s/../x" },
        { "http:g", "http:g" }, /* strict parser */
    };
    for (size_t i = 0; i < sizeof abnormal / sizeof abnormal[0]; i++)
        resolve_is(base, abnormal[i][0], abnormal[i][1]);
}

static void test_resolve_redirects(void)
{
    TEST("url_resolve for redirects");
    /* absolute targets, any scheme (the caller refuses non-http ones) */
    resolve_is("http://a/b", "https://other:8443/x?y", "https://other:8443/x?y");
    resolve_is("http://a/b", "ftp://files/x", "ftp://files/x");
    resolve_is("https://a/b", "//cdn.example/x", "https://cdn.example/x");
    /* a base without a path, with a port, with a query */
    resolve_is("http://a", "g", "http://a/g");
    resolve_is("http://a:8080", "/g", "http://a:8080/g");
    resolve_is("http://a:8080?q", "g", "http://a:8080/g");
    resolve_is("http://a:8080/x/y?q=1", "z?r=2", "http://a:8080/x/z?r=2");
    resolve_is("http://127.0.0.1:5000/redirect-to?url=echo", "echo", "http://127.0.0.1:5000/echo");
    resolve_is("http://127.0.0.1:5000/redirect/3", "/redirect/2", "http://127.0.0.1:5000/redirect/2");
    resolve_is("http://[::1]:81/a/b", "../c", "http://[::1]:81/c");
    /* a base with a fragment: the fragment never leaks into the result */
    resolve_is("http://a/b/c#frag", "d", "http://a/b/d");
    resolve_is("http://a/b/c?q#frag", "?r", "http://a/b/c?r");
}

static void test_resolve_encoding(void)
{
    TEST("url_resolve percent-encodes raw UTF-8 and spaces (a Location as servers send it)");
    resolve_is("http://a/b", "/caf\xc3\xa9?q=\xe2\x82\xac", "http://a/caf%C3%A9?q=%E2%82%AC");
    resolve_is("http://a/b/c", "d\xc3\xa9/e", "http://a/b/d%C3%A9/e");
    resolve_is("http://a/b", "https://x/\xc3\xa9", "https://x/%C3%A9");
    resolve_is("http://a/b", "//x/\xff", "http://x/%FF");
    resolve_is("http://a/b", "?\xc3\xa9", "http://a/b?%C3%A9");
    resolve_is("http://a/b", "/a b?c d", "http://a/a%20b?c%20d");
    resolve_is("http://a/b", "/a%20b%C3%A9", "http://a/a%20b%C3%A9");
    resolve_is("http://a/b", "/x#\xc3\xa9", "http://a/x");
    struct buf out = {0};
    CHECK(url_resolve("http://a/b", "/\xc3\xa9 \xc3\xa9", &out) == 0);
    struct url u;
    char err[256];
    CHECK_MSG(url_parse(&u, out.data, err, sizeof err) == 0, "%s", err);
    CHECK_STR(u.target, "/%C3%A9%20%C3%A9");
    url_free(&u);
    buf_free(&out);
}

int main(void)
{
    test_schemes();
    test_hosts();
    test_ipv6();
    test_ports();
    test_userinfo();
    test_control_chars();
    test_targets();
    test_authority();
    test_resolve_rfc3986();
    test_resolve_redirects();
    test_resolve_encoding();
    return unit_summary();
}
