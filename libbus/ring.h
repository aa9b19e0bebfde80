/* SPDX-License-Identifier: MIT */
/*
 * ring.h: what the producer side (ring_pub), the subscriber side
 * (ring_sub) and the broker's repairs (ring_repair) share on a mapped
 * topic: the two notification directions, the hold protocol of LATEST
 * topics (points H and I), the floor arithmetic of RELIABLE ones, and the
 * markers readers step over. Nothing here waits or allocates.
 *
 * The algorithm and its ordering argument are in docs/design.md; the
 * lettered ordering points (A, B, ...) named in the ring modules are
 * tabled there and in ring.c.
 */
#ifndef ZCBUS_RING_H
#define ZCBUS_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "killpoint.h"
#include "layout.h"
#include "macro.h"
#include "wait.h"
#include "zcbus.h"

/* Is this topic LATEST (lossy)? The one spelling of the policy test. */
static inline bool ring_is_latest(const struct seg_map *m) {
        return m->g.policy == ZCBUS_POLICY_LATEST;
}

/* Readers wait for data (and producers for the lap before to be
 * published) on the ring's data word; producers wait for room on the
 * subs segment's room word. */
static inline struct wait_words ring_data_words(const struct seg_map *m) {
        struct seg_subs_notify *sn = seg_subs_notify(m);
        return (struct wait_words){&sn->data_armed, &seg_ring_notify(m)->data_word};
}
static inline struct wait_words ring_room_words(const struct seg_map *m) {
        struct seg_subs_notify *sn = seg_subs_notify(m);
        return (struct wait_words){&sn->room_armed, &sn->room_word};
}

/* floor + n, saturating: SEG_FLOOR_NONE gates nothing. */
static inline uint64_t ring_floor_plus(uint64_t floor, uint32_t n) {
        return floor > UINT64_MAX - n ? UINT64_MAX : floor + n;
}

/* Lowest floor over the live (ACTIVE) subscriber entries (SC loads:
 * points F, G). */
uint64_t ring_scan_floors(const struct seg_map *m);

/* Stamp seq's slot as a marker readers step over (SEG_SLOT_ABANDONED:
 * its producer gave up on it or died; SEG_SLOT_SKIPPED: a reader held the
 * old message). Only the descriptor is written, never the payload, so it
 * is safe while a LATEST reader holds the old message (I, then A). */
void ring_mark_slot(const struct seg_map *m, uint64_t seq, uint32_t producer, uint32_t flag);

/* Has the previous lap's occupant of seq's slot been published? (Or has
 * the claimant of seq, the only one who may, already marked it?) */
static _always_inline_ bool ring_prev_done(const struct seg_map *m, uint64_t seq) {
        uint64_t v = load_acq(&seg_slot(m, seq)->stamp); /* B: previous writer is done */
        return v == seg_prev_stamp(seq, m->g.slot_count) || v == (SEG_STAMP_WRITING | seg_stamp(seq));
}

/* Sequences claimed so far on the topic. */
static inline uint64_t ring_head(const struct seg_map *m) {
        return load_acq(&seg_head(m)->head);
}

/* --------------------------------------------- LATEST holds (H and I) */

/* Does anyone hold seq's slot? (SC loads: point I) */
static inline bool ring_held(const struct seg_map *m, uint64_t seq) {
        au64 *w = seg_holds(m, seq);
        for (uint32_t i = 0; i < m->g.hold_words; i++)
                if (load_sc(&w[i]))
                        return true;
        return false;
}

/* Subscriber sub takes or drops its hold on seq's slot (SC: point H).
 * take returns whether sub held the slot already: it may hold an older
 * lap's message there while the slot shows markers stepped over it. */
static inline bool ring_hold_take(const struct seg_map *m, uint64_t seq, uint32_t sub) {
        uint64_t bit = UINT64_C(1) << (sub % 64);
        return atomic_fetch_or_explicit(&seg_holds(m, seq)[(sub % m->g.max_subs) / 64], bit, memory_order_seq_cst) &
               bit;
}
static inline void ring_hold_drop(const struct seg_map *m, uint64_t seq, uint32_t sub) {
        (void)atomic_fetch_and_explicit(&seg_holds(m, seq)[(sub % m->g.max_subs) / 64],
                                        ~(UINT64_C(1) << (sub % 64)), memory_order_seq_cst);
}

#endif
