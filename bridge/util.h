/* SPDX-License-Identifier: MIT */
/*
 * util.h: the few helpers every module of zcbus-bridge uses: the cleanup
 * macros (the bridge builds on the public API alone, so it does not reach
 * into libbus/ for libbus's own copy), the clock, logging and hashing.
 *
 * Logging is one line on stderr, "zcbus-bridge: ...", written with one
 * write(2) so lines from different threads never interleave.
 */
#ifndef ZCBUS_BRIDGE_UTIL_H
#define ZCBUS_BRIDGE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                (void)close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p = (p);         \
                (p) = NULL;                     \
                _p;                             \
        })
#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd = (fd);                 \
                (fd) = -1;                      \
                _fd;                            \
        })

static inline uint64_t now_ms(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A 64-bit fingerprint, FNV-1a's constants over 8-byte words (a 64 KiB
 * message costs 8 K rounds, not 64 K): stream names and the echo filter.
 * It need not resist an adversary: the echo filter also compares lengths
 * and keeps a short window (in.c). */
static inline uint64_t hash64(const void *data, size_t len) {
        const unsigned char *p = data;
        uint64_t h = 0xcbf29ce484222325ull ^ len;

        while (len >= 8) {
                uint64_t w;

                __builtin_memcpy(&w, p, 8);
                h = (h ^ w) * 0x100000001b3ull;
                h ^= h >> 29;
                p += 8;
                len -= 8;
        }
        while (len--)
                h = (h ^ *p++) * 0x100000001b3ull;
        return h ^ (h >> 32);
}

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Verbose lines (-v) only. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int log_verbose;

#endif
