/* headers.h — checks on header names, values and methods: from scripts (requests and server
 * responses) and from the wire (received field names). Pure; nothing is allocated here. */
#ifndef LUAFETCH_HEADERS_H
#define LUAFETCH_HEADERS_H

#include <stddef.h>

/* For each byte: its lower-case form if it is an RFC 9110 tchar, else 0 (one lookup both checks
 * and folds a received header name). */
extern const unsigned char header_token_lower[256];

/* 1 if c is an RFC 9110 tchar. */
static inline int header_tchar(unsigned char c)
{
    return header_token_lower[c] != 0;
}
/* 1 if s[0..n) is a non-empty RFC 9110 token (header names, methods). */
int header_name_ok(const char *s, size_t n);
/* 1 if s[0..n) has no CR, LF or NUL (and no other control byte but tab). */
int header_value_ok(const char *s, size_t n);

#endif
