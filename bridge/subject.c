/* SPDX-License-Identifier: MIT */
/*
 * subject.c: the name mapping of subject.h. Everything works on
 * NUL-terminated strings into caller buffers and says when a buffer is
 * too small; nothing allocates.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "subject.h"
#include "util.h"

static bool plain_byte(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-';
}

struct out {
        char *buf;
        size_t len, pos;
        int err;
};

static void put(struct out *o, char c) {
        if (o->pos + 1 >= o->len) {
                o->err = -ENAMETOOLONG;
                return;
        }
        o->buf[o->pos++] = c;
        o->buf[o->pos] = '\0';
}

static void put_str(struct out *o, const char *s) {
        while (*s)
                put(o, *s++);
}

static void put_escaped(struct out *o, unsigned char c) {
        static const char hex[] = "0123456789ABCDEF";

        put(o, '%');
        put(o, hex[c >> 4]);
        put(o, hex[c & 15]);
}

static int out_start(struct out *o, char *buf, size_t len, const char *prefix) {
        *o = (struct out){.buf = buf, .len = len};
        if (len == 0)
                return -ENAMETOOLONG;
        buf[0] = '\0';
        put_str(o, prefix);
        put(o, '.');
        return o->err;
}

int subj_from_topic(const char *prefix, const char *topic, char *buf, size_t len) {
        struct out o;
        size_t n = strlen(topic);

        if (n == 0)
                return -EINVAL;
        if (out_start(&o, buf, len, prefix) < 0)
                return o.err;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)topic[i];

                if (c == '.') {
                        /* A dot separates only between two non-empty tokens. */
                        bool empty_before = i == 0 || topic[i - 1] == '.';
                        bool empty_after = i + 1 == n || topic[i + 1] == '.';

                        if (empty_before || empty_after)
                                put_escaped(&o, c);
                        else
                                put(&o, '.');
                } else if (plain_byte(c)) {
                        put(&o, (char)c);
                } else {
                        put_escaped(&o, c);
                }
        }
        return o.err;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int subj_to_topic(const char *prefix, const char *subject, char *buf, size_t len) {
        size_t pl = strlen(prefix), pos = 0;
        const char *s;

        if (strncmp(subject, prefix, pl) != 0 || subject[pl] != '.' || subject[pl + 1] == '\0')
                return -EINVAL;
        for (s = subject + pl + 1; *s; s++) {
                int c = (unsigned char)*s;

                if (c == '%') {
                        int hi = unhex(s[1]), lo = hi < 0 ? -1 : unhex(s[2]);

                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = hi << 4 | lo;
                        s += 2;
                }
                if (c == 0)
                        return -EINVAL;
                if (pos + 1 >= len)
                        return -ENAMETOOLONG;
                buf[pos++] = (char)c;
        }
        buf[pos] = '\0';
        return 0;
}

bool subj_has_wildcard(const char *pattern) {
        for (const char *t = pattern; *t;) {
                size_t n = strcspn(t, ".");

                if ((n == 1 && (*t == '*' || *t == '>')))
                        return true;
                t += n;
                if (*t == '.')
                        t++;
        }
        return false;
}

int subj_check_pattern(const char *pattern, char *err, size_t errlen) {
        const char *t = pattern;

        if (*t == '\0') {
                (void)snprintf(err, errlen, "empty pattern");
                return -EINVAL;
        }
        for (;;) {
                size_t n = strcspn(t, ".");

                if (n == 0) {
                        (void)snprintf(err, errlen, "pattern '%s' has an empty token (a leading, trailing or double dot)",
                                       pattern);
                        return -EINVAL;
                }
                for (size_t i = 0; i < n; i++) {
                        unsigned char c = (unsigned char)t[i];

                        if (c <= ' ' || c == 0x7f) {
                                (void)snprintf(err, errlen, "pattern '%s' has a space or a control character",
                                               pattern);
                                return -EINVAL;
                        }
                        if ((c == '*' || c == '>') && n != 1) {
                                (void)snprintf(err, errlen,
                                               "pattern '%s': '%c' must be a whole token (between dots)", pattern, c);
                                return -EINVAL;
                        }
                }
                if (n == 1 && *t == '>' && t[1] != '\0') {
                        (void)snprintf(err, errlen, "pattern '%s': '>' must be the last token", pattern);
                        return -EINVAL;
                }
                t += n;
                if (*t == '\0')
                        return 0;
                t++; /* the dot */
                if (*t == '\0') {
                        (void)snprintf(err, errlen, "pattern '%s' has an empty token (a leading, trailing or double dot)",
                                       pattern);
                        return -EINVAL;
                }
        }
}

int subj_from_pattern(const char *prefix, const char *pattern, char *buf, size_t len) {
        struct out o;

        if (out_start(&o, buf, len, prefix) < 0)
                return o.err;
        for (const char *t = pattern; *t; t++) {
                unsigned char c = (unsigned char)*t;

                /* Tokens are non-empty (subj_check_pattern), so every dot
                 * separates, and '*', '>' stand alone. */
                if (c == '.' || c == '*' || c == '>' || plain_byte(c))
                        put(&o, (char)c);
                else
                        put_escaped(&o, c);
        }
        return o.err;
}

bool subj_prefix_ok(const char *prefix) {
        char err[8];

        if (subj_check_pattern(prefix, err, sizeof(err)) < 0 || subj_has_wildcard(prefix))
                return false;
        for (const char *p = prefix; *p; p++)
                if (*p != '.' && !plain_byte((unsigned char)*p))
                        return false;
        return true;
}

bool subj_match(const char *pattern, const char *subject) {
        const char *p = pattern, *s = subject;

        for (;;) {
                size_t pn = strcspn(p, "."), sn = strcspn(s, ".");

                if (pn == 1 && *p == '>')
                        return sn > 0;
                if (sn == 0 && *s == '\0')
                        return false;
                if (!(pn == 1 && *p == '*') && (pn != sn || memcmp(p, s, pn) != 0))
                        return false;
                p += pn;
                s += sn;
                if (*p == '\0' || *s == '\0')
                        return *p == '\0' && *s == '\0';
                p++;
                s++;
        }
}

void subj_stream_name(const char *subject, char *buf, size_t len) {
        char body[STREAM_NAME_MAX];
        size_t n = 0;

        for (const char *s = subject; *s && n + 1 < sizeof(body) - 24; s++)
                body[n++] = plain_byte((unsigned char)*s) ? *s : '_';
        body[n] = '\0';
        (void)snprintf(buf, len, "ZCBUS_%s_%08x", body, (unsigned)(hash64(subject, strlen(subject)) & 0xffffffffu));
}
