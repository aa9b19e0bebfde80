/* SPDX-License-Identifier: MIT */
/*
 * wait.c: the waiting engine (see wait.h). Spinning reads the clock only
 * when something can end the spin; an adaptive waiter past its first
 * microseconds yields its CPU between checks; a sleeper reads the futex
 * word, arms, re-checks and only then sleeps, so that a waker that changes
 * the state after the re-check also sees the arm and bumps the word the
 * sleeper waits on (C/D, E/F, K). Nothing a sleeper leaves behind when it
 * is killed (an arm) outlives the next wake-up.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>

#include "futex.h"
#include "killpoint.h"
#include "macro.h"
#include "wait.h"
#include "zcbus.h"

void wait_how_init(struct wait_how *w, uint32_t mode, uint32_t spin_us) {
        w->mode = (mode == ZCBUS_WAIT_DEFAULT || mode > ZCBUS_WAIT_FUTEX) ? ZCBUS_WAIT_ADAPTIVE : mode;
        w->spin_us = spin_us ? spin_us : WAIT_SPIN_US_DEFAULT;
}

/* Spin per the mode: 0 when ready, -ETIMEDOUT, or 1 when the budget is
 * spent and the caller should sleep. */
static int spin(const struct wait_how *w, uint64_t deadline, wait_ready_fn ready, void *ctx) {
        bool spin_only = w->mode == ZCBUS_WAIT_SPIN;
        uint64_t spin_end = spin_only ? UINT64_MAX : now_ns() + (uint64_t)w->spin_us * 1000u;

        for (unsigned i = 1;; i++) {
                if (ready(ctx))
                        return 0;
                cpu_relax();
                /* The clock only when something can end the spin. */
                if ((i & 127) == 0 && (deadline || !spin_only)) {
                        uint64_t t = now_ns();
                        if (deadline && t >= deadline)
                                return -ETIMEDOUT;
                        if (t >= spin_end)
                                return 1;
                        /* Past the first few microseconds a prompt answer
                         * is not coming: let whoever shares this CPU
                         * (another subscriber, the producer) run instead
                         * of burning the slice. */
                        if (!spin_only)
                                (void)sched_yield();
                }
        }
}

/* Arm ww (C / F, K); returns the futex word's value to sleep on. */
static uint32_t arm(struct wait_words ww) {
        uint32_t v = load_sc(ww.word);
        /* Arm after reading the word: a waker that takes the arm bumps the
         * word after we read it, so the sleep cannot miss that wake-up (K).
         * SC: the store is the sleeper's half of the Dekker pair C / F; the
         * re-check that follows is the other half's load. */
        store_sc(ww.armed, 1);
        KILL_POINT(KP_SLEEP_ARMED);
        return v;
}

/* Sleep on the words until one changes, at most until deadline (0: none):
 * one word, futex_wait; several, futex_waitv, or where the kernel lacks it
 * the first word in slices of a millisecond (every waker of the others
 * changes their words, and the next look sees it). */
static int sleep_on(const struct wait_words *ww, const uint32_t *vals, unsigned n, uint64_t deadline) {
        au32 *words[WAIT_ANY_MAX];
        int r;

        if (n == 1)
                return futex_wait(ww[0].word, vals[0], deadline);
        for (unsigned k = 0; k < n; k++)
                words[k] = ww[k].word;
        r = futex_waitv_words(words, vals, n, deadline);
        if (r == -ENOSYS) {
                uint64_t slice = now_ns() + 1000000u;
                r = futex_wait(ww[0].word, vals[0], deadline && deadline < slice ? deadline : slice);
                if (r == -ETIMEDOUT && (!deadline || now_ns() < deadline))
                        r = 0;
        }
        return r < 0 ? r : 0;
}

/* The tag of a sleeper on value v of a relayed word: wakers of the next
 * value wake only sleepers of this one, never one that came after the
 * bump (it would not see a change, so would not relay). */
static uint32_t relay_bits(uint32_t v) {
        return UINT32_C(1) << (v & 31);
}

/* A sleeper woken on a relayed word: if the word moved past v and nobody
 * relayed its new value yet, claim it and wake every sleeper (R). */
/* Claim the word's current value for relaying, unless it was claimed,
 * and if so wake every sleeper (R). */
static void relay_now(struct wait_words ww, uint32_t now) {
        uint32_t seen = load_rlx(ww.relayed);

        if (seen == now || !atomic_compare_exchange_strong_explicit(ww.relayed, &seen, now, memory_order_seq_cst,
                                                                    memory_order_relaxed))
                return;
        KILL_POINT(KP_RELAY_TAKEN);
        (void)futex_wake(ww.word, INT_MAX);
}

void wait_relay_woken(struct wait_words ww) {
        relay_now(ww, load_sc(ww.word));
}

void wait_relay(struct wait_words ww, uint32_t v) {
        uint32_t now = load_sc(ww.word);

        if (now != v)
                relay_now(ww, now);
}

int wait_until_n(const struct wait_how *w, const struct wait_words *ww, unsigned n, uint64_t deadline,
                 uint64_t slice_ns, wait_ready_fn ready, void *ctx, uint64_t *sleeps) {
        uint32_t vals[WAIT_ANY_MAX];

        if (n == 0 || n > WAIT_ANY_MAX)
                return -EINVAL;
        if (w->mode != ZCBUS_WAIT_FUTEX) {
                int r = spin(w, deadline, ready, ctx);
                if (r <= 0)
                        return r;
        }
        if (n == 1 && ww[0].relayed && !slice_ns)
                slice_ns = WAIT_RELAY_SLICE_NS;
        for (;;) {
                int r = 0;

                for (unsigned k = 0; k < n; k++)
                        vals[k] = arm(ww[k]);
                if (!ready(ctx)) {
                        uint64_t until = deadline;
                        if (slice_ns) {
                                /* A capped sleep: a waker that could not
                                 * wake us (its arm taken by a peer that
                                 * wakes nobody) costs a slice, not a stall. */
                                uint64_t cap = now_ns() + slice_ns;
                                if (!until || cap < until)
                                        until = cap;
                        }
                        if (sleeps)
                                (*sleeps)++;
                        if (n == 1 && ww[0].relayed) {
                                r = futex_wait_bits(ww[0].word, vals[0], until, relay_bits(vals[0]));
                                r = r > 0 ? 0 : r;
                                wait_relay(ww[0], vals[0]);
                        } else {
                                r = sleep_on(ww, vals, n, until);
                        }
                        if (r == -ETIMEDOUT && until != deadline)
                                r = 0;
                }
                if (ready(ctx))
                        return 0;
                if (r < 0)
                        return r;
                if (deadline && now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
}

int wait_until(const struct wait_how *w, struct wait_words ww, uint64_t deadline, wait_ready_fn ready, void *ctx,
               uint64_t *sleeps) {
        return wait_until_n(w, &ww, 1, deadline, 0, ready, ctx, sleeps);
}

static int ready_index(unsigned n, wait_ready_at_fn ready, void *ctx) {
        for (unsigned i = 0; i < n; i++)
                if (ready(ctx, i))
                        return (int)i;
        return -1;
}

int wait_any(const struct wait_words *ww, unsigned n, int timeout_ms, wait_ready_at_fn ready, void *ctx) {
        au32 *words[WAIT_ANY_MAX];
        uint32_t vals[WAIT_ANY_MAX];
        uint64_t deadline = deadline_from_ms(timeout_ms);

        if (!ww || n == 0 || n > WAIT_ANY_MAX)
                return -EINVAL;
        for (;;) {
                int i = ready_index(n, ready, ctx), r = 0;

                if (i >= 0)
                        return i;
                if (timeout_ms == 0)
                        return -EAGAIN;
                /* Arm every topic (C), re-check, sleep on all. */
                for (unsigned k = 0; k < n; k++) {
                        vals[k] = arm(ww[k]);
                        words[k] = ww[k].word;
                }
                if (ready_index(n, ready, ctx) < 0) {
                        /* Relayed words are slept on with the slice cap (R). */
                        uint64_t until = now_ns() + WAIT_RELAY_SLICE_NS;
                        bool capped = !deadline || until < deadline;
                        r = futex_waitv_words(words, vals, n, capped ? until : deadline);
                        /* futex_waitv matches every tag: a wake meant for an
                         * older value's sleepers may have landed here, so the
                         * word woken on is relayed even unchanged (R; the
                         * model's BUG_WAITANY_NO_FORCE). */
                        if (r >= 0 && (unsigned)r < n && ww[r].relayed)
                                wait_relay_woken(ww[r]);
                        if (r == -ETIMEDOUT && capped)
                                r = 0;
                        for (unsigned k = 0; k < n; k++)
                                if (ww[k].relayed)
                                        wait_relay(ww[k], vals[k]);
                }
                if (r < 0 && r != -EAGAIN)
                        return r; /* -ETIMEDOUT, -EINTR, -ENOSYS, -EINVAL, ... */
        }
}

void wait_wake_all(au32 *word) {
        (void)faa_sc(word, 1);
        (void)futex_wake(word, INT_MAX);
}

bool wait_wake_relay(struct wait_words ww) {
        if (load_sc(ww.armed) == 0 || atomic_exchange_explicit(ww.armed, 0, memory_order_seq_cst) == 0)
                return false;
        KILL_POINT(KP_WAKE_TAKEN);
        uint32_t old = faa_sc(ww.word, 1);
        /* Two, so that one sleeper that dies or stops before it relays
         * does not leave the rest asleep; the broker wakes everyone when
         * it evicts a peer that died. */
        (void)futex_wake_bits(ww.word, 2, relay_bits(old));
        return true;
}

bool wait_wake_armed(struct wait_words ww) {
        /* SC load: after an SC read-modify-write (a LATEST hold drop) a
         * relaxed load could be ordered before it in C11 (D / E). The
         * exchange takes the arm: one waker per arming. */
        if (load_sc(ww.armed) == 0 || atomic_exchange_explicit(ww.armed, 0, memory_order_seq_cst) == 0)
                return false;
        KILL_POINT(KP_WAKE_TAKEN);
        wait_wake_all(ww.word);
        return true;
}
