/* SPDX-License-Identifier: MIT */
/*
 * futex.c: shared (not private) futex waits and wakes on words inside the
 * segments, futex_waitv for waiting on several topics, and the monotonic
 * clock. Waits take absolute CLOCK_MONOTONIC deadlines so that a wait
 * interrupted and restarted never stretches its timeout.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "macro.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

uint64_t now_ns(void) {
        struct timespec ts;
        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t deadline_from_ms(int timeout_ms) {
        if (timeout_ms < 0)
                return 0;
        return now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static struct timespec ts_of(uint64_t ns) {
        return (struct timespec){.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
}

/* A wait's outcome: >= 0 as is (woken, or the waitv index); "the value
 * had already changed" (EAGAIN) counts as woken. */
static int wait_result(long r) {
        if (r >= 0)
                return (int)r;
        if (errno == EAGAIN)
                return 0;
        return negerrno(); /* -ETIMEDOUT, -EINTR, or what the kernel said */
}

int futex_wait(au32 *word, uint32_t expected, uint64_t deadline_ns) {
        return futex_wait_bits(word, expected, deadline_ns, FUTEX_BITSET_MATCH_ANY);
}

int futex_wait_bits(au32 *word, uint32_t expected, uint64_t deadline_ns, uint32_t bits) {
        struct timespec ts;
        long r;

        if (deadline_ns) {
                if (now_ns() >= deadline_ns)
                        return -ETIMEDOUT;
                ts = ts_of(deadline_ns);
        }
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
        r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected, deadline_ns ? &ts : NULL,
                    NULL, bits);
        return wait_result(r);
}

int futex_wake_bits(au32 *word, int n, uint32_t bits) {
        long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_BITSET, n, NULL, NULL, bits);
        return r < 0 ? negerrno() : (int)r;
}

int futex_wake(au32 *word, int n) {
        long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
        return r < 0 ? negerrno() : (int)r;
}

struct waitv {
        uint64_t val;
        uint64_t uaddr;
        uint32_t flags;
        uint32_t reserved;
};

int futex_waitv_words(au32 *const *words, const uint32_t *expected, unsigned n, uint64_t deadline_ns) {
        struct waitv v[128];
        struct timespec ts;
        long r;

        if (n == 0 || n > ARRAY_SIZE(v))
                return -EINVAL;
        for (unsigned i = 0; i < n; i++)
                v[i] = (struct waitv){.val = expected[i], .uaddr = (uintptr_t)words[i], .flags = FUTEX_32};
        if (deadline_ns) {
                if (now_ns() >= deadline_ns)
                        return -ETIMEDOUT;
                ts = ts_of(deadline_ns);
        }
        r = syscall(SYS_futex_waitv, v, n, 0, deadline_ns ? &ts : NULL, CLOCK_MONOTONIC);
        return wait_result(r);
}
