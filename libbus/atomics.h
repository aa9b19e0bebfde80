/* SPDX-License-Identifier: MIT */
/*
 * atomics.h: the vocabulary of shared-memory ordering zcbus uses.
 *
 * All cross-process words are C11 atomics used with explicit orders. Three
 * patterns cover the whole data plane (docs/design.md, "Ordering points",
 * has the lettered table; each use site names its letter and partner):
 *
 *  - publish/consume: the writer fills plain memory, then stores a word
 *    with release; the reader loads that word with acquire and only then
 *    reads the memory. (load_acq / store_rel)
 *  - Dekker pairs ("store mine, then look at yours"): two sides each store
 *    their own word and then load the other's; at least one must see the
 *    other's store. Both the store and the load are seq_cst, which the C11
 *    model orders in one total order; on x86 the store compiles to XCHG.
 *    Used for sleeper announcement vs. wake check, and for a LATEST reader's
 *    hold vs. a producer's slot mark. (store_sc / load_sc / faa_sc)
 *  - statistics: relaxed loads and stores of counters only their owner
 *    writes. (load_rlx / store_rlx)
 */
#ifndef ZCBUS_ATOMICS_H
#define ZCBUS_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t au64;
typedef _Atomic uint32_t au32;

#define load_acq(p) atomic_load_explicit((p), memory_order_acquire)
#define load_rlx(p) atomic_load_explicit((p), memory_order_relaxed)
#define load_sc(p) atomic_load_explicit((p), memory_order_seq_cst)
#define store_rel(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define store_rlx(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define store_sc(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)
#define faa_sc(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define faa_rlx(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define fas_sc(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define cas_sc(p, e, v) atomic_compare_exchange_strong_explicit((p), (e), (v), memory_order_seq_cst, memory_order_seq_cst)

/* A full (SC) fence. ThreadSanitizer (gcc) refuses atomic_thread_fence;
 * there, a locked read-modify-write of a private word, a full barrier on
 * the hardware, stands in. */
static inline void full_fence(void) {
#if defined(__SANITIZE_THREAD__)
        static _Atomic unsigned dummy;
        (void)atomic_fetch_add_explicit(&dummy, 0, memory_order_seq_cst);
#else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Release and acquire fences (the seqlock of a slot's descriptor, the
 * claim count). ThreadSanitizer refuses them too and does not model
 * fences anyway: there they stand in as full barriers, like full_fence. */
static inline void release_fence(void) {
#if defined(__SANITIZE_THREAD__)
        full_fence();
#else
        atomic_thread_fence(memory_order_release);
#endif
}

static inline void acquire_fence(void) {
#if defined(__SANITIZE_THREAD__)
        full_fence();
#else
        atomic_thread_fence(memory_order_acquire);
#endif
}

/* Busy-wait hint: tells the core we are spinning (PAUSE on x86). */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#else
        atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Owner-only counter bump: the owner is the sole writer, readers are
 * statistics; a relaxed load+store avoids a locked instruction. */
static inline void stat_inc(au64 *p, uint64_t n) {
        store_rlx(p, load_rlx(p) + n);
}

#endif
