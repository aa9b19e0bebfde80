/* SPDX-License-Identifier: MIT */
/*
 * json.c: the JSON string, base64 and number writers of json.h. The string
 * writer validates UTF-8 itself (overlong forms, surrogates and values
 * past U+10FFFF are invalid, per RFC 3629) because names and payloads come
 * from the broker, the command line or a ring and are bytes, not text.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

size_t json_utf8_len(const void *at, size_t left) {
        const unsigned char *p = at;
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
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

bool json_utf8_valid(const void *data, size_t len) {
        const unsigned char *p = data;

        while (len > 0) {
                size_t n = json_utf8_len(p, len);

                if (n == 0)
                        return false;
                p += n;
                len -= n;
        }
        return true;
}

void json_str(FILE *f, const char *s) {
        json_strn(f, s, strlen(s));
}

void json_strn(FILE *f, const void *data, size_t len) {
        const unsigned char *p = data, *end = p + len;

        (void)fputc('"', f);
        while (p < end) {
                size_t n = json_utf8_len(p, (size_t)(end - p));

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

void json_base64(FILE *f, const void *data, size_t len) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *p = data;
        char out[4];

        (void)fputc('"', f);
        for (; len >= 3; p += 3, len -= 3) {
                out[0] = b64[p[0] >> 2];
                out[1] = b64[((p[0] & 3) << 4) | (p[1] >> 4)];
                out[2] = b64[((p[1] & 15) << 2) | (p[2] >> 6)];
                out[3] = b64[p[2] & 63];
                (void)fwrite(out, 1, 4, f);
        }
        if (len > 0) {
                out[0] = b64[p[0] >> 2];
                out[1] = b64[((p[0] & 3) << 4) | (len > 1 ? p[1] >> 4 : 0)];
                out[2] = len > 1 ? b64[(p[1] & 15) << 2] : '=';
                out[3] = '=';
                (void)fwrite(out, 1, 4, f);
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
