/* test_headers.c — header_name_ok, header_tchar and header_value_ok (core/http/headers.c): RFC 9110 tokens
 * for names and methods; values free of CR, LF, NUL and other control bytes (tab and obs-text allowed). */
#include "headers.h"

#include "unit.h"

#define NAME_OK(s) CHECK_MSG(header_name_ok((s), sizeof(s) - 1) == 1, "name \"%s\" refused", #s)
#define NAME_BAD(s) CHECK_MSG(header_name_ok((s), sizeof(s) - 1) == 0, "name %s accepted", #s)
#define VALUE_OK(s) CHECK_MSG(header_value_ok((s), sizeof(s) - 1) == 1, "value %s refused", #s)
#define VALUE_BAD(s) CHECK_MSG(header_value_ok((s), sizeof(s) - 1) == 0, "value %s accepted", #s)

static void test_names(void)
{
    TEST("header names");
    NAME_OK("Content-Type");
    NAME_OK("x");
    NAME_OK("X-Request-ID");
    NAME_OK("accept");
    NAME_OK("0123456789");
    NAME_OK("!#$%&'*+-.^_`|~");
    NAME_OK("GET");          /* methods are tokens too */
    NAME_OK("M-SEARCH");
    NAME_BAD("");
    NAME_BAD("Bad Name");
    NAME_BAD(" X");
    NAME_BAD("X ");
    NAME_BAD("X:Y");
    NAME_BAD("X-A:");
    NAME_BAD("X\r\nInjected");
    NAME_BAD("X\n");
    NAME_BAD("X\r");
    NAME_BAD("X\tY");
    NAME_BAD("X\0Y");        /* length counts the NUL: it is inside the name */
    NAME_BAD("\x7f");
    NAME_BAD("\x01");
    NAME_BAD("(comment)");
    NAME_BAD("a\"b");
    NAME_BAD("a/b");
    NAME_BAD("a@b");
    NAME_BAD("a[b]");
    NAME_BAD("a{b}");
    NAME_BAD("a=b");
    NAME_BAD("a,b");
    NAME_BAD("a;b");
    NAME_BAD("a?b");
    NAME_BAD("a\\b");
    NAME_BAD("\xc3\xa9t\xc3\xa9"); /* non-ASCII */
    NAME_BAD("\x80");

    /* every byte: exactly the 77 tchars pass */
    int accepted = 0;
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        accepted += header_name_ok(&b, 1);
    }
    CHECK_INT(accepted, 26 + 26 + 10 + 15);
}

static void test_values(void)
{
    TEST("header values");
    VALUE_OK("");
    VALUE_OK("text/html; charset=utf-8");
    VALUE_OK("a b  c");
    VALUE_OK("a\tb");
    VALUE_OK("\"quoted\", (comment), a=b; c");
    VALUE_OK("\xc3\xa9");    /* obs-text */
    VALUE_OK("\x80\xff");
    VALUE_BAD("a\rb");
    VALUE_BAD("a\nb");
    VALUE_BAD("a\r\nX-Injected: 1");
    VALUE_BAD("value\r\n");
    VALUE_BAD("a\0b");
    VALUE_BAD("\0");
    VALUE_BAD("a\x01");
    VALUE_BAD("\x1b[31m");
    VALUE_BAD("a\x7f");
    VALUE_BAD("\x0b");
    VALUE_BAD("\x0c");

    /* only the stated length counts: a bad byte past it is not looked at */
    CHECK(header_value_ok("ok\r\n", 2) == 1);
    CHECK(header_name_ok("ok:", 2) == 1);

    int refused = 0;
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        refused += !header_value_ok(&b, 1);
    }
    CHECK_INT(refused, 32 - 1 + 1); /* C0 controls but tab, and DEL */
}

static void test_tchar(void)
{
    TEST("header_tchar agrees with header_name_ok on every byte");
    int tchars = 0;
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        CHECK_MSG(header_tchar((unsigned char)c) == header_name_ok(&one, 1), "byte 0x%02x", c);
        tchars += header_tchar((unsigned char)c);
    }
    CHECK_INT(tchars, 26 + 26 + 10 + 15); /* letters, digits, !#$%&'*+-.^_`|~ */
    CHECK(!header_tchar(' ') && !header_tchar('\t') && !header_tchar(':') && !header_tchar(0x80));
}

int main(void)
{
    test_names();
    test_tchar();
    test_values();
    return unit_summary();
}
