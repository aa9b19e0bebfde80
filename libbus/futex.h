/* SPDX-License-Identifier: MIT */
/*
 * futex.h: waiting and waking on 32-bit words in shared memory. The OS
 * quirks (raw syscalls, futex_waitv, clocks) stay behind this module.
 */
#ifndef ZCBUS_FUTEX_H
#define ZCBUS_FUTEX_H

#include <stdint.h>
#include "atomics.h"

/* Sleep while *word == expected, at most until deadline_ns on
 * CLOCK_MONOTONIC (0: no deadline). Returns 0 when woken or when the
 * value differed, -ETIMEDOUT, or -EINTR. */
int futex_wait(au32 *word, uint32_t expected, uint64_t deadline_ns);
/* Wake up to n sleepers on word. Returns how many were woken (>= 0). */
int futex_wake(au32 *word, int n);
/* The same with a bitset: futex_wait_bits sleeps tagged with bits, and
 * futex_wake_bits wakes only sleepers whose tag shares a bit with bits
 * (futex_wait's and futex_waitv's sleepers match any). */
int futex_wait_bits(au32 *word, uint32_t expected, uint64_t deadline_ns, uint32_t bits);
int futex_wake_bits(au32 *word, int n, uint32_t bits);
/* Sleep on several words at once (futex_waitv); -ENOSYS if the kernel
 * lacks it. Returns >= 0 (the index woken), -ETIMEDOUT, -EINTR, or 0 with
 * EAGAIN folded in when a value already differed. */
int futex_waitv_words(au32 *const *words, const uint32_t *expected, unsigned n, uint64_t deadline_ns);

uint64_t now_ns(void);
/* Deadline for a timeout in ms: 0 means "none" (wait forever) for
 * timeout < 0; for timeout == 0 the caller must not wait at all. */
uint64_t deadline_from_ms(int timeout_ms);

#endif
