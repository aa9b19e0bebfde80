/* SPDX-License-Identifier: MIT */
/*
 * killpoint.c: the test-only kill points (killpoint.h). One armed point
 * per process: a forked peer arms it, and its n-th pass dies by SIGKILL,
 * as kill -9 would kill it there.
 */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>

#include "killpoint.h"

#ifdef ZCBUS_KILL_POINTS
static _Atomic int armed_point = -1;
static _Atomic unsigned armed_left;

void kill_point_arm(enum kill_point p, unsigned n) {
        atomic_store(&armed_left, n ? n : 1);
        atomic_store(&armed_point, (int)p);
}

void kill_point_hit(enum kill_point p) {
        if (atomic_load_explicit(&armed_point, memory_order_relaxed) != (int)p)
                return;
        if (atomic_fetch_sub(&armed_left, 1) == 1)
                (void)raise(SIGKILL);
}

const char *kill_point_name(enum kill_point p) {
        static const char *const names[KP_COUNT_] = {
                [KP_CLAIM_INTENT] = "claim-intent",     [KP_CLAIM_TAKEN] = "claim-taken",
                [KP_CLAIM_RECORDED] = "claim-recorded", [KP_BEFORE_STAMP] = "before-stamp",
                [KP_AFTER_STAMP] = "after-stamp",       [KP_WAKE_TAKEN] = "wake-taken",
                [KP_SLEEP_ARMED] = "sleep-armed",       [KP_LATEST_WRITING] = "latest-writing",
                [KP_HOLD_TAKEN] = "hold-taken",         [KP_FLOOR_STORED] = "floor-stored",
                [KP_RELAY_TAKEN] = "relay-taken",
        };
        return (unsigned)p < KP_COUNT_ ? names[p] : "?";
}
#endif
