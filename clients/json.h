/* SPDX-License-Identifier: MIT */
/*
 * json.h: the two JSON writers the CLI (`zcbus list --json`) and the
 * measurement lab (`zcbus lat|perf --json`) share, so that both say a name
 * or a number the same way. Plain libc; nothing else.
 */
#ifndef ZCBUS_JSON_H
#define ZCBUS_JSON_H

#include <stdio.h>

/* s as a JSON string literal, always valid JSON whatever the bytes:
 * valid UTF-8 passes through; '"' and '\\' are escaped; control bytes
 * get \b \f \n \r \t or \u00XX; a byte that is not part of valid UTF-8
 * (overlong, surrogate, past U+10FFFF, truncated) becomes \u00XX too, the
 * byte value as a code point, so nothing is lost: a \u0080..\u00ff escape
 * can only stand for such a raw byte, never for a character. */
void json_str(FILE *f, const char *s);

/* v with printf's %.*f (style 'f') or %.*g (style 'g') at prec, or null
 * when v is not finite (JSON has no NaN or infinity). */
void json_num(FILE *f, double v, char style, int prec);

#endif
