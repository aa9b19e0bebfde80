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
/* Sleep on several words at once (futex_waitv); -ENOSYS if the kernel
 * lacks it. Returns >= 0 (the index woken), -ETIMEDOUT, -EINTR, or 0 with
 * EAGAIN folded in when a value already differed. */
int futex_waitv_words(au32 *const *words, const uint32_t *expected, unsigned n, uint64_t deadline_ns);

/*
 * Asymmetric fences for the "announce, then re-check" pairs (C/D, E/F):
 * the hot side (a producer publishing, a reader releasing) pays only a
 * compiler barrier, and the side about to sleep pays for both with
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which runs a full barrier
 * on every CPU running a registered process. A process registers at its
 * first open; until then, or where the kernel refuses, its hot side uses
 * a real fence. If the sleeping side cannot issue the membarrier, it
 * sleeps at most 1 ms at a time, so a missed wake-up costs latency, never
 * progress.
 */
extern _Atomic int fence_asym; /* this process registered */
void fence_register(void);
static inline void fence_light(void) {
        if (atomic_load_explicit(&fence_asym, memory_order_relaxed))
                atomic_signal_fence(memory_order_seq_cst);
        else
                full_fence();
}
/* Returns 0 if every registered process was fenced, or a negative errno
 * (then the caller must bound its sleep). */
int fence_heavy(void);

uint64_t now_ns(void);
/* Deadline for a timeout in ms: 0 means "none" (wait forever) for
 * timeout < 0; for timeout == 0 the caller must not wait at all. */
uint64_t deadline_from_ms(int timeout_ms);

#endif
