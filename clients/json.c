/* SPDX-License-Identifier: MIT */
/*
 * json.c: the JSON string and number writers of json.h. The string
 * writer validates UTF-8 itself (overlong forms, surrogates and values
 * past U+10FFFF are invalid, per RFC 3629) because names come from the
 * broker or the command line and are bytes, not text.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p) {
        unsigned c = p[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                n = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                cp = c & 0x07;
        } else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

void json_str(FILE *f, const char *s) {
        const unsigned char *p = (const unsigned char *)s;

        (void)fputc('"', f);
        while (*p) {
                size_t n = utf8_len(p);

                if (n > 1) {
                        (void)fwrite(p, 1, n, f);
                        p += n;
                        continue;
                }
                switch (*p) {
                case '"':
                        (void)fputs("\\\"", f);
                        break;
                case '\\':
                        (void)fputs("\\\\", f);
                        break;
                case '\b':
                        (void)fputs("\\b", f);
                        break;
                case '\f':
                        (void)fputs("\\f", f);
                        break;
                case '\n':
                        (void)fputs("\\n", f);
                        break;
                case '\r':
                        (void)fputs("\\r", f);
                        break;
                case '\t':
                        (void)fputs("\\t", f);
                        break;
                default:
                        /* n == 0: a byte outside valid UTF-8 */
                        if (*p < 0x20 || n == 0)
                                (void)fprintf(f, "\\u%04x", *p);
                        else
                                (void)fputc(*p, f);
                }
                p++;
        }
        (void)fputc('"', f);
}

void json_num(FILE *f, double v, char style, int prec) {
        if (!isfinite(v))
                (void)fputs("null", f);
        else if (style == 'f')
                (void)fprintf(f, "%.*f", prec, v);
        else
                (void)fprintf(f, "%.*g", prec, v);
}
