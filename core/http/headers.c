/* headers.c — checks on header names, values and methods, from scripts and from the wire.
 * A bad name or value would let a script smuggle a second request, and a received name with
 * whitespace before its colon is read differently by different parsers: refuse both. */
#include "headers.h"

#define L(c) [c] = c
#define U(c) [c] = (c) - 'A' + 'a'
const unsigned char header_token_lower[256] = {
    L('!'), L('#'), L('$'), L('%'), L('&'), L('\''), L('*'), L('+'), L('-'), L('.'),
    L('0'), L('1'), L('2'), L('3'), L('4'), L('5'), L('6'), L('7'), L('8'), L('9'),
    U('A'), U('B'), U('C'), U('D'), U('E'), U('F'), U('G'), U('H'), U('I'), U('J'), U('K'),
    U('L'), U('M'), U('N'), U('O'), U('P'), U('Q'), U('R'), U('S'), U('T'), U('U'), U('V'),
    U('W'), U('X'), U('Y'), U('Z'), L('^'), L('_'), L('`'),
    L('a'), L('b'), L('c'), L('d'), L('e'), L('f'), L('g'), L('h'), L('i'), L('j'), L('k'),
    L('l'), L('m'), L('n'), L('o'), L('p'), L('q'), L('r'), L('s'), L('t'), L('u'), L('v'),
    L('w'), L('x'), L('y'), L('z'), L('|'), L('~'),
};
#undef L
#undef U

int header_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!header_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

int header_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}
