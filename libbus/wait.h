/* SPDX-License-Identifier: MIT */
/*
 * wait.h: the one waiting engine of zcbus. A waiter spins (per its mode),
 * then reads the futex word, arms, re-checks and sleeps on the word; a
 * waker, after its own store and a full fence, wakes only if it takes the
 * arm. There is no count of sleepers: a count that a sleeper raises and
 * lowers is left raised for good by one killed in between, while an arm
 * left raised by a dead sleeper costs one wake-up and is gone. The ring's readers and producers, the
 * wait-any of several subscriptions, and the measurement lab's shm floor
 * all wait here (ordering points C/D, E/F and K of docs/design.md).
 */
#ifndef ZCBUS_WAIT_H
#define ZCBUS_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"

#define WAIT_SPIN_US_DEFAULT 50u

/* How a side waits: enum zcbus_wait_mode (never DEFAULT) and, for
 * ADAPTIVE, how long it spins before it sleeps. */
struct wait_how {
        uint32_t mode;
        uint32_t spin_us;
};

/* DEFAULT (or nonsense) becomes ADAPTIVE; spin_us 0 the default budget. */
void wait_how_init(struct wait_how *w, uint32_t mode, uint32_t spin_us);

/* The words of one direction of notification. */
struct wait_words {
        au32 *armed;   /* 1: a sleeper wants a wake-up; a waker takes it (C / F, K) */
        au32 *word;    /* the futex word, bumped by each wake */
        au32 *relayed; /* NULL, or a relayed wake (R): wakers wake two
                          (wait_wake_relay), and the first sleeper woken
                          by a change wakes the rest; this word records
                          the value relayed last */
};

/* How long a sleeper with a relayed wake sleeps at most before it looks
 * again: the bound on a wake lost with a relaying sleeper that stopped
 * (SIGSTOP) between its wake and its relay. */
#define WAIT_RELAY_SLICE_NS (1000u * 1000u * 1000u)

/* Is the awaited state there? Must load with seq_cst what the waker
 * stores (its re-check is the Dekker half of C / F). */
typedef bool (*wait_ready_fn)(void *ctx);

/* Wait until ready(ctx), at most until deadline_ns (CLOCK_MONOTONIC, 0:
 * none). Returns 0, -ETIMEDOUT or -EINTR. *sleeps (may be NULL) counts
 * the futex sleeps taken. */
int wait_until(const struct wait_how *w, struct wait_words ww, uint64_t deadline_ns, wait_ready_fn ready,
               void *ctx, uint64_t *sleeps);

/* The same on n words at once (n <= WAIT_ANY_MAX): arm all, re-check,
 * sleep until any changes. slice_ns (0: none) caps each sleep, for
 * wakers that may be hostile. */
int wait_until_n(const struct wait_how *w, const struct wait_words *ww, unsigned n, uint64_t deadline_ns,
                 uint64_t slice_ns, wait_ready_fn ready, void *ctx, uint64_t *sleeps);

/* Several waits at once (futex_waitv): ready(ctx, i) for i < n, each on
 * its own words. Returns the index of one that is ready, -EAGAIN when
 * none is and timeout_ms is 0, -ETIMEDOUT, -EINTR, -EINVAL, or -ENOSYS
 * when the kernel lacks futex_waitv. n <= WAIT_ANY_MAX. */
#define WAIT_ANY_MAX 128u
typedef bool (*wait_ready_at_fn)(void *ctx, unsigned i);
int wait_any(const struct wait_words *ww, unsigned n, int timeout_ms, wait_ready_at_fn ready, void *ctx);

/* The hot side's wake-up, after its store and full fence (D / E): only if
 * a sleeper armed, and only once per arming (K). Returns whether it woke. */
bool wait_wake_armed(struct wait_words ww);
/* Bump the word and wake every sleeper on it, unconditionally. */
void wait_wake_all(au32 *word);
/* A sleeper woken on a relayed word it slept on with value v: if the
 * word moved and nobody relayed its new value yet, wake every sleeper. */
void wait_relay(struct wait_words ww, uint32_t v);
/* A sleeper that matches every tag (futex_waitv) woken on a relayed word:
 * relay its value unless that was done, changed or not (R). */
void wait_relay_woken(struct wait_words ww);
/* A relayed wake (R), after the waker's store and full fence: if a
 * sleeper armed, take the arm, bump the word and wake two of the sleepers
 * that slept on its old value; whoever of them sees the change first
 * wakes everyone else. O(1) for the waker, however many sleep. */
bool wait_wake_relay(struct wait_words ww);

#endif
