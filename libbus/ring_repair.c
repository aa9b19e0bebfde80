/* SPDX-License-Identifier: MIT */
/*
 * ring_repair.c: the broker's side of the ring (ring_repair.h). Entries
 * are reset before they are handed out; a freed subscriber stops gating
 * and gives back its LATEST holds; a dead producer's claim is written off
 * slot by slot once each slot is free (J tells a producer that died
 * between its intent and its sequence from one that never came).
 * Ordering points are those of ring.c's table.
 */
#include "config.h"

#include <errno.h>

#include "ring_repair.h"

void ring_prod_activate(const struct seg_map *m, uint32_t index, uint32_t pid) {
        struct seg_prod *e = seg_prod(m, index);
        store_rlx(&e->claim, SEG_CLAIM_NONE);
        store_rlx(&e->claim_n, 0);
        store_rlx(&e->published, 0);
        store_rlx(&e->waits, 0);
        store_rlx(&e->wakeups, 0);
        store_rlx(&e->abandoned, 0);
        store_rlx(&e->skipped, 0);
        store_rlx(&e->pid, pid);
        store_rel(&e->state, SEG_ENTRY_ACTIVE);
}

void ring_sub_activate(const struct seg_map *m, uint32_t index, uint32_t pid) {
        struct seg_sub *e = seg_sub(m, index);
        store_sc(&e->floor, SEG_FLOOR_NONE);
        store_rlx(&e->next, 0);
        store_rlx(&e->received, 0);
        store_rlx(&e->lost, 0);
        store_rlx(&e->sleeps, 0);
        store_rlx(&e->held, 0);
        store_rlx(&e->pid, pid);
        store_rel(&e->state, SEG_ENTRY_ACTIVE);
}

void ring_sub_evict(const struct seg_map *m, uint32_t index) {
        struct seg_sub *e = seg_sub(m, index);
        /* Give back any LATEST holds it left: its bit in every slot. */
        for (uint64_t i = 0; i < m->g.slot_count; i++)
                ring_hold_drop(m, i, index);
        store_sc(&e->floor, SEG_FLOOR_NONE); /* E */
        store_rlx(&e->held, 0);
        store_rel(&e->state, SEG_ENTRY_FREE);
        wait_wake_all(ring_room_words(m).word);
}

/* Write off seq if its slot is free. 0 done, -EAGAIN not yet. */
static int abandon(const struct seg_map *m, uint64_t seq, uint32_t producer) {
        uint64_t v = load_sc(&seg_slot(m, seq)->stamp);

        if (seg_stamp_state(v, seq) != SEG_STAMP_NOT_YET)
                return 0; /* published, or the slot has moved on */
        if (v != seg_prev_stamp(seq, m->g.slot_count) && v != (SEG_STAMP_WRITING | seg_stamp(seq)))
                return -EAGAIN; /* the lap before is not done yet */
        if (!ring_is_latest(m) && ring_floor_plus(ring_scan_floors(m), m->g.slot_count) <= seq)
                return -EAGAIN; /* a subscriber still needs the old message */
        ring_mark_slot(m, seq, producer, SEG_SLOT_ABANDONED);
        wait_wake_all(ring_data_words(m).word);
        return 0;
}

static bool claimed_by_other(const struct seg_map *m, uint32_t self, uint64_t seq) {
        for (uint32_t i = 0; i < m->g.max_producers; i++) {
                if (i == self)
                        continue;
                struct seg_prod *e = seg_prod(m, i);
                uint64_t c;
                uint32_t k;
                do { /* claim_n belongs to the claim read around it */
                        c = load_sc(&e->claim);
                        k = load_sc(&e->claim_n);
                } while (load_sc(&e->claim) != c);
                if (c == SEG_CLAIM_NONE || (c & SEG_CLAIM_PENDING))
                        continue;
                if (seq >= c && seq - c < k)
                        return true;
        }
        return false;
}

/* Is any other live producer between recording its intent and its
 * sequence? It might own a hole below head. */
static bool other_claim_pending(const struct seg_map *m, uint32_t self) {
        for (uint32_t i = 0; i < m->g.max_producers; i++) {
                struct seg_prod *o = seg_prod(m, i);
                if (i == self || load_sc(&o->state) != SEG_ENTRY_ACTIVE)
                        continue;
                uint64_t oc = load_sc(&o->claim);
                if (oc != SEG_CLAIM_NONE && (oc & SEG_CLAIM_PENDING))
                        return true;
        }
        return false;
}

int ring_prod_evict(const struct seg_map *m, uint32_t index) {
        struct seg_prod *e = seg_prod(m, index);
        uint64_t c = load_sc(&e->claim);
        uint32_t k = load_rlx(&e->claim_n);
        int r;

        /* Not live any more: another eviction must not wait for this one
         * to leave its claim window. */
        store_sc(&e->state, SEG_ENTRY_CLOSING);

        if (c == SEG_CLAIM_NONE)
                goto done;
        if (!(c & SEG_CLAIM_PENDING)) {
                if (k == 0 || k > m->g.slot_count)
                        k = 1; /* untrusted: a claim covers at least its first seq */
                for (uint32_t i = 0; i < k; i++) {
                        r = abandon(m, c + i, index);
                        if (r < 0)
                                return r;
                }
                goto done;
        }

        /* J: it died between recording its intent and recording the
         * sequence. Look for holes from its lower bound to the head:
         * uncommitted sequences nobody else has recorded. A live producer
         * still between the two steps might own one: wait for it. */
        uint64_t lo = c & ~SEG_CLAIM_PENDING;
        uint64_t h = load_sc(&seg_head(m)->head);
        uint64_t span = (uint64_t)m->g.slot_count * (m->g.max_producers + 1u);
        if (other_claim_pending(m, index))
                return -EAGAIN;
        if (h > SEG_SEQ_LIMIT)
                goto done;
        if (h > span && lo < h - span)
                lo = h - span;
        for (uint64_t t = lo; t < h; t++) {
                if (seg_stamp_state(load_sc(&seg_slot(m, t)->stamp), t) != SEG_STAMP_NOT_YET)
                        continue;
                if (claimed_by_other(m, index, t))
                        continue;
                r = abandon(m, t, index);
                if (r < 0)
                        return r;
        }
done:
        store_rel(&e->claim, SEG_CLAIM_NONE);
        store_rel(&e->state, SEG_ENTRY_FREE);
        return 0;
}
