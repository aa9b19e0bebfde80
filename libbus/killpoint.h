/* SPDX-License-Identifier: MIT */
/*
 * killpoint.h: test-only points in the data plane where a test can have
 * the calling process die by SIGKILL, the exact instants at which a peer's
 * death matters (between a claim's intent and its sequence, between a
 * stamp and the wake-up, after a waker took the sleepers' arm, ...).
 *
 * Compiled in only by `configure --enable-kill-points` (scripts/check.sh
 * builds the ASan+UBSan tree that way); otherwise KILL_POINT() is nothing
 * and costs nothing. A test arms one point in a forked peer with
 * kill_point_arm(point, n): the n-th pass through it kills the process.
 */
#ifndef ZCBUS_KILLPOINT_H
#define ZCBUS_KILLPOINT_H

enum kill_point {
        KP_CLAIM_INTENT,   /* producer: intent recorded, before the fetch-add (J) */
        KP_CLAIM_TAKEN,    /* producer: fetch-add done, sequence not recorded (J) */
        KP_CLAIM_RECORDED, /* producer: claim recorded, slot not written */
        KP_BEFORE_STAMP,   /* producer: payload and descriptor written, no stamp (A) */
        KP_AFTER_STAMP,    /* producer: stamped, not notified (D) */
        KP_WAKE_TAKEN,     /* waker: took the arm, word not bumped (K) */
        KP_SLEEP_ARMED,    /* sleeper: armed, before its re-check (C / F) */
        KP_LATEST_WRITING, /* LATEST producer: WRITING stamped, holds not looked at (I) */
        KP_HOLD_TAKEN,     /* LATEST reader: hold bit set, stamp not re-checked (H) */
        KP_FLOOR_STORED,   /* reader: floor raised, producers not woken (E) */
        KP_RELAY_TAKEN,    /* reader woken: took the relay, the rest not woken (R) */
        KP_COUNT_
};

#ifdef ZCBUS_KILL_POINTS
void kill_point_hit(enum kill_point p);
void kill_point_arm(enum kill_point p, unsigned n);
const char *kill_point_name(enum kill_point p);
#define KILL_POINT(p) kill_point_hit(p)
#else
#define KILL_POINT(p) ((void)0)
#endif

#endif
