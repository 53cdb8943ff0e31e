/* headers.h — checks on header names, values and methods: from scripts (requests and server
 * responses) and from the wire (received field names). Pure; nothing is allocated here. */
#ifndef LUAFETCH_HEADERS_H
#define LUAFETCH_HEADERS_H

#include <stddef.h>

/* 1 if c is an RFC 9110 tchar. */
int header_tchar(unsigned char c);
/* 1 if s[0..n) is a non-empty RFC 9110 token (header names, methods). */
int header_name_ok(const char *s, size_t n);
/* 1 if s[0..n) has no CR, LF or NUL (and no other control byte but tab). */
int header_value_ok(const char *s, size_t n);

#endif
