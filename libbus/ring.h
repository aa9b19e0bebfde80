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

/* Readers wait for data on the ring's data word, arming in their own
 * table; producers waiting for another producer's publish arm in the
 * ring. Producers wait for room on the room words of every bound table
 * (subscribers of each wake through their own). */
static inline struct wait_words ring_data_words(const struct seg_map *m, uint32_t table) {
        struct seg_subs_notify *sn = seg_subs_notify(m, table);
        return (struct wait_words){&sn->data_armed, &sn->data_word, &sn->relayed};
}
static inline struct wait_words ring_prod_data_words(const struct seg_map *m) {
        struct seg_ring_notify *rn = seg_ring_notify(m);
        return (struct wait_words){&rn->prod_armed, &rn->data_word, NULL};
}
static inline struct wait_words ring_room_words(const struct seg_map *m, uint32_t table) {
        struct seg_subs_notify *sn = seg_subs_notify(m, table);
        return (struct wait_words){&sn->room_armed, &sn->room_word, NULL};
}
/* The room words of every bound, mapped table into ww (SEG_TABLES_MAX
 * entries); returns how many (0 when no table is bound). */
unsigned ring_room_words_all(const struct seg_map *m, struct wait_words *ww);

/* Wake data sleepers if any armed: producers waiting on the ring's word
 * (taking the arm, then a bump and wake-all), readers of each bound table
 * (a relayed wake: two woken, who wake the rest, R). After the caller's
 * stores and a full fence (D). Returns whether it woke. */
bool ring_wake_data(const struct seg_map *m);
/* Bump every data word and wake every sleeper on it: after a peer died
 * (it may have died inside a wake-up or a relay), or slots were written
 * off. */
void ring_wake_data_all(const struct seg_map *m);
/* floor + n, saturating: SEG_FLOOR_NONE gates nothing. */
static inline uint64_t ring_floor_plus(uint64_t floor, uint32_t n) {
        return floor > UINT64_MAX - n ? UINT64_MAX : floor + n;
}

/* Lowest floor over the entries live in each bound table (their masks,
 * then their floors: SC loads, points F, G). */
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

/* Does anyone hold seq's slot? Only the bits of entries live in each
 * table count (its mask, broker-written): a table's own subscribers may
 * write any bit of it. (SC loads of the holds: point I; the mask after
 * them, relaxed: a hold bit seen was set after its entry went live.) */
static inline bool ring_held(const struct seg_map *m, uint64_t seq) {
        for (uint32_t t = 0, n = seg_tables_bound(m); t < n; t++) {
                if (!m->tables[t])
                        continue;
                au64 *w = seg_holds(m, t, seq), *mask = seg_table_mask(m, t);
                for (uint32_t i = 0; i < m->g.hold_words; i++)
                        if (load_sc(&w[i]) & load_rlx(&mask[i]))
                                return true;
        }
        return false;
}

/* Subscriber sub of table t takes or drops its hold on seq's slot (SC:
 * point H). take returns whether sub held the slot already: it may hold an
 * older lap's message there while the slot shows markers stepped over it. */
static inline bool ring_hold_take(const struct seg_map *m, uint32_t t, uint64_t seq, uint32_t sub) {
        uint64_t bit = UINT64_C(1) << (sub % 64);
        return atomic_fetch_or_explicit(&seg_holds(m, t, seq)[(sub % m->g.max_subs) / 64], bit,
                                        memory_order_seq_cst) &
               bit;
}
static inline void ring_hold_drop(const struct seg_map *m, uint32_t t, uint64_t seq, uint32_t sub) {
        (void)atomic_fetch_and_explicit(&seg_holds(m, t, seq)[(sub % m->g.max_subs) / 64],
                                        ~(UINT64_C(1) << (sub % 64)), memory_order_seq_cst);
}

#endif
