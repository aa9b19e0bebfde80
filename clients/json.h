/* SPDX-License-Identifier: MIT */
/*
 * json.h: the JSON writers the CLI (`zcbus list --json`, `zcbus sub
 * --json`) and the measurement lab (`zcbus lat|perf --json`) share, so that
 * all say a name or a number the same way. Plain libc; nothing else.
 */
#ifndef ZCBUS_JSON_H
#define ZCBUS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* s as a JSON string literal, always valid JSON whatever the bytes:
 * valid UTF-8 passes through; '"' and '\\' are escaped; control bytes
 * get \b \f \n \r \t or \u00XX; a byte that is not part of valid UTF-8
 * (overlong, surrogate, past U+10FFFF, truncated) becomes \u00XX too, the
 * byte value as a code point, so nothing is lost: a \u0080..\u00ff escape
 * can only stand for such a raw byte, never for a character. */
void json_str(FILE *f, const char *s);
/* The same for len bytes that may hold NULs (each becomes \u0000). */
void json_strn(FILE *f, const void *data, size_t len);
/* Length of the valid UTF-8 sequence at p (1..4) within the left bytes
 * (left >= 1), or 0 if it is not one. */
size_t json_utf8_len(const void *p, size_t left);
/* Are the len bytes valid UTF-8 (RFC 3629; NUL bytes included)? */
bool json_utf8_valid(const void *data, size_t len);
/* The bytes in standard base64 (RFC 4648, padded), as a JSON string. */
void json_base64(FILE *f, const void *data, size_t len);

/* v with printf's %.*f (style 'f') or %.*g (style 'g') at prec, or null
 * when v is not finite (JSON has no NaN or infinity). */
void json_num(FILE *f, double v, char style, int prec);

#endif
