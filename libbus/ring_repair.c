/* SPDX-License-Identifier: MIT */
/*
 * ring_repair.c: the broker's side of the ring (ring_repair.h). Entries
 * are reset before they are handed out; a freed subscriber stops gating
 * and gives back its LATEST holds; a dead producer's claim is written off
 * slot by slot once each slot is free (J tells a producer that died
 * between its intent and its sequence from one that never came).
 * Ordering points are those of ring.c's table.
 *
 * Everything a repair reads is producer-writable, and the producer may
 * have been hostile: so the claim is read once when the repair starts
 * (counts clamped to the ring, a claim above head ignored), the range to
 * look at is fixed then, and each step examines a bounded number of
 * sequences (a budget, in units of one sequence or one claim compared)
 * and remembers where it stopped. Other producers' claims are read once
 * per step, and a sequence they cover is skipped together with the rest
 * of that claim, so a step costs O(budget + P + S) whatever the segment
 * holds. How often steps run and when to give up is the broker's choice.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

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

void ring_bind_table(const struct seg_map *m, uint32_t table) {
        struct seg_ring_notify *rn = seg_ring_notify(m);
        /* Before any entry of it goes live: producers look at the tables
         * below this count. */
        if (table < m->g.sub_tables && load_rlx(&rn->tables_bound) <= table)
                store_sc(&rn->tables_bound, table + 1);
}

/* Entry index's bit in table t's mask. */
static au64 *mask_word(const struct seg_map *m, uint32_t t, uint32_t index, uint64_t *bit) {
        *bit = UINT64_C(1) << (index % 64);
        return &seg_table_mask(m, t)[(index % m->g.max_subs) / 64];
}

uint64_t ring_sub_register(const struct seg_map *m, uint32_t index, uint32_t table, uint32_t pid,
                           uint32_t history) {
        struct seg_sub *e = seg_sub(m, table, index);
        uint32_t n = m->g.slot_count;
        uint64_t h, f, bit;
        au64 *mw = mask_word(m, table, index, &bit);

        ring_bind_table(m, table);
        /* Untrusted head: clamp into [start_seq, SEG_SEQ_LIMIT]. */
        h = load_acq(&seg_head(m)->head);
        if (h < m->g.start_seq || h > SEG_SEQ_LIMIT)
                h = m->g.start_seq;
        history = MIN(history, n);
        f = h - MIN((uint64_t)history, h - m->g.start_seq);

        store_rlx(&e->received, 0);
        store_rlx(&e->lost, 0);
        store_rlx(&e->sleeps, 0);
        store_rlx(&e->held, 0);
        /* G: the floor, then the entry live (its state, its mask bit: a
         * scan that sees the bit sees the floor), then tell producers to
         * re-scan, then see how far they may have claimed without seeing
         * it. */
        store_sc(&e->floor, ring_is_latest(m) ? SEG_FLOOR_NONE : f);
        store_rlx(&seg_sub_state(m, index)->pid, pid);
        store_sc(&seg_sub_state(m, index)->state, seg_sub_state_word(SEG_ENTRY_ACTIVE, table));
        (void)atomic_fetch_or_explicit(mw, bit, memory_order_seq_cst);
        if (!ring_is_latest(m)) {
                (void)faa_sc(&seg_ring_notify(m)->gen, 1);
                h = load_sc(&seg_head(m)->head);
                if (h <= SEG_SEQ_LIMIT && h >= n && f < h - n) {
                        f = h - n;
                        /* A raise: a producer may already sleep on the first
                         * value (E). */
                        store_rel(&e->floor, f);
                        full_fence();
                        (void)wait_wake_armed(ring_room_words(m, table));
                }
        }
        store_rlx(&e->next, f);
        return f;
}

/* A peer that died may have been anywhere in a wake-up: between taking a
 * sleepers' arm (K) and bumping the word, or between its last store and
 * its notify. Whatever it left undone, wake every sleeper on every word:
 * each re-checks and, if it still has to wait, arms again. */
static void wake_both(const struct seg_map *m) {
        ring_wake_data_all(m);
        ring_wake_room(m);
}

/* Entry index stops gating in every table: its mask bit goes. */
static void sub_unmask(const struct seg_map *m, uint32_t index) {
        for (uint32_t t = 0; t < m->g.sub_tables; t++) {
                uint64_t bit;
                au64 *mw = mask_word(m, t, index, &bit);
                if (load_rlx(mw) & bit)
                        (void)atomic_fetch_and_explicit(mw, ~bit, memory_order_seq_cst);
        }
}

static void sub_release_entry(const struct seg_map *m, uint32_t index, uint32_t table, uint32_t state) {
        /* The mask and state first: from here on its floor and its holds
         * count for nothing, whatever its owner stores there. */
        sub_unmask(m, index);
        store_sc(&seg_sub_state(m, index)->state, seg_sub_state_word(state, table));
        if (seg_has_table(m, table)) {
                struct seg_sub *e = seg_sub(m, table, index);
                /* Give back any LATEST holds it left, so that its entry
                 * starts clean when handed out again in this table. */
                if (ring_is_latest(m))
                        for (uint64_t i = 0; i < m->g.slot_count; i++)
                                ring_hold_drop(m, table, i, index);
                store_sc(&e->floor, SEG_FLOOR_NONE); /* E */
                store_rlx(&e->held, 0);
        }
        wake_both(m);
}

void ring_sub_evict(const struct seg_map *m, uint32_t index, uint32_t table) {
        sub_release_entry(m, index, table, SEG_ENTRY_FREE);
}

void ring_sub_stall_evict(const struct seg_map *m, uint32_t index, uint32_t table) {
        sub_release_entry(m, index, table, SEG_ENTRY_EVICTED);
}

bool ring_sub_gating(const struct seg_map *m, uint32_t index, uint32_t table, uint64_t *ret_floor) {
        uint64_t f, h = load_acq(&seg_head(m)->head), bit;

        *ret_floor = SEG_FLOOR_NONE;
        if (ring_is_latest(m) || !seg_has_table(m, table))
                return false;
        f = load_acq(&seg_sub(m, table, index)->floor);
        *ret_floor = f;
        if (!(load_acq(mask_word(m, table, index, &bit)) & bit) || f > h || h - f < m->g.slot_count)
                return false;
        /* The ring is full from its floor. Its fault only if it could move:
         * the message at its floor is there (published, or a marker). A
         * producer that has not finished seq f holds everyone back, not
         * this subscriber. */
        return seg_stamp_state(load_acq(&seg_slot(m, f)->stamp), f) == SEG_STAMP_READY;
}

bool ring_sub_entry_reset(const struct seg_map *m, uint32_t index, uint32_t table, uint32_t state) {
        uint32_t want = seg_sub_state_word(state, table);
        bool masked = false;

        for (uint32_t t = 0; t < m->g.sub_tables; t++) {
                uint64_t bit;
                masked |= (load_acq(mask_word(m, t, index, &bit)) & bit) != 0;
        }
        if (load_acq(&seg_sub_state(m, index)->state) == want && !masked)
                return false;
        sub_unmask(m, index);
        store_sc(&seg_sub_state(m, index)->state, want);
        return true;
}

uint64_t ring_sub_count_holds(const struct seg_map *m, uint32_t index, uint32_t table, uint64_t from, uint64_t to) {
        uint64_t n = 0, bit;

        if (!ring_is_latest(m) || !seg_has_table(m, table))
                return 0;
        bit = UINT64_C(1) << (index % 64);
        for (uint64_t s = from; s < to && s < m->g.slot_count; s++)
                n += (load_rlx(&seg_holds(m, table, s)[(index % m->g.max_subs) / 64]) & bit) != 0;
        return n;
}

void ring_wake_room(const struct seg_map *m) {
        for (uint32_t t = 0; t < m->g.sub_tables; t++)
                if (m->tables[t])
                        wait_wake_all(ring_room_words(m, t).word);
}

/* Write off seq if its slot is free. 0 done; not yet: -EBUSY while the
 * lap before is unfinished (another producer's), -EAGAIN while a
 * subscriber still needs it. The
 * lowest floor is scanned once per step (*floor, UINT64_MAX until then):
 * honest floors only move up, so an older scan is the more careful one. */
static int abandon(const struct seg_map *m, uint64_t seq, uint32_t producer, uint64_t *floor, uint64_t *budget,
                   bool *marked) {
        uint64_t v = load_sc(&seg_slot(m, seq)->stamp);

        if (seg_stamp_state(v, seq) != SEG_STAMP_NOT_YET)
                return 0; /* published, or the slot has moved on */
        if (v != seg_prev_stamp(seq, m->g.slot_count) && v != (SEG_STAMP_WRITING | seg_stamp(seq)))
                return -EBUSY; /* the lap before is not done yet */
        if (!ring_is_latest(m)) {
                if (*floor == UINT64_MAX) {
                        *floor = ring_scan_floors(m);
                        *budget -= MIN(*budget, m->g.max_subs);
                }
                if (ring_floor_plus(*floor, m->g.slot_count) <= seq)
                        return -EAGAIN; /* a subscriber still needs the old message */
        }
        ring_mark_slot(m, seq, producer, SEG_SLOT_ABANDONED);
        *marked = true;
        return 0;
}

/* The other producers' recorded claims, read once per step: each is
 * producer-written, so its count is clamped to the ring and a claim word
 * that will not hold still is taken as it was last read. */
struct claim_snap {
        uint64_t c, end; /* [c, end) */
};

static uint32_t snap_claims(const struct seg_map *m, uint32_t self, struct claim_snap *v) {
        uint32_t n = 0;

        for (uint32_t i = 0; i < m->g.max_producers; i++) {
                struct seg_prod *e = seg_prod(m, i);
                uint64_t c = 0;
                uint32_t k = 0;

                if (i == self)
                        continue;
                for (unsigned tries = 0; tries < 4; tries++) { /* claim_n belongs to the claim read around it */
                        c = load_sc(&e->claim);
                        k = load_sc(&e->claim_n);
                        if (load_sc(&e->claim) == c)
                                break;
                }
                if (c == SEG_CLAIM_NONE || (c & SEG_CLAIM_PENDING) || k == 0 || c > SEG_SEQ_LIMIT)
                        continue;
                v[n].c = c;
                v[n].end = c + MIN(k, m->g.slot_count);
                n++;
        }
        return n;
}

/* If another producer's claim covers seq, the end of the longest such
 * claim (every sequence up to it is covered too); else 0. */
static uint64_t claimed_until(const struct claim_snap *v, uint32_t n, uint64_t seq) {
        uint64_t end = 0;

        for (uint32_t i = 0; i < n; i++)
                if (seq >= v[i].c && seq < v[i].end && v[i].end > end)
                        end = v[i].end;
        return end;
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

void ring_prod_close(const struct seg_map *m, uint32_t index) {
        /* Not live any more: another eviction must not wait for this one
         * to leave its claim window. */
        store_sc(&seg_prod(m, index)->state, SEG_ENTRY_CLOSING);
        wake_both(m);
}

int ring_prod_evict(const struct seg_map *m, uint32_t index) {
        ring_prod_close(m, index);
        return ring_prod_repair(m, index);
}

/* Read the dead producer's claim once and fix the range to repair. 0 to
 * go on, 1 if there is nothing to do, -EBUSY to try again later (another
 * producer is between its intent and its claim). */
static int repair_begin(const struct seg_map *m, uint32_t index, struct ring_repair *st) {
        struct seg_prod *e = seg_prod(m, index);
        uint64_t c = load_sc(&e->claim);
        uint32_t k = load_rlx(&e->claim_n);
        uint64_t h = load_sc(&seg_head(m)->head);

        if (c == SEG_CLAIM_NONE || h > SEG_SEQ_LIMIT)
                return 1;
        if (!(c & SEG_CLAIM_PENDING)) {
                if (k == 0 || k > m->g.slot_count)
                        k = 1; /* untrusted: a claim covers at least its first seq */
                /* A recorded claim was fetch-added, so it lies below head;
                 * anything above was never claimed and is not written off
                 * ahead of its producer. */
                if (c >= h)
                        return 1;
                st->next = c;
                st->end = MIN(c + k, h);
                st->stage = RING_REPAIR_CLAIM;
                return 0;
        }

        /* J: it died between recording its intent and recording the
         * sequence. Look for holes from its lower bound to the head (read
         * above, before this check): uncommitted sequences nobody else has
         * recorded. A live producer still between the two steps might own
         * one: wait for it. One that starts later claims at or above h. */
        uint64_t lo = c & ~SEG_CLAIM_PENDING;
        uint64_t span = (uint64_t)m->g.slot_count * (m->g.max_producers + 1u);
        if (other_claim_pending(m, index))
                return -EBUSY;
        if (h > span && lo < h - span)
                lo = h - span;
        if (lo >= h)
                return 1;
        st->next = lo;
        st->end = h;
        st->stage = RING_REPAIR_HOLES;
        return 0;
}

static void repair_done(const struct seg_map *m, uint32_t index) {
        struct seg_prod *e = seg_prod(m, index);
        store_rel(&e->claim, SEG_CLAIM_NONE);
        store_rel(&e->state, SEG_ENTRY_FREE);
}

int ring_prod_repair_step(const struct seg_map *m, uint32_t index, struct ring_repair *st, uint64_t *budget) {
        struct claim_snap snap[SEG_PRODUCERS_MAX];
        uint64_t floor = UINT64_MAX;
        uint32_t nsnap = 0;
        bool marked = false;
        int r = 0;

        if (st->stage == RING_REPAIR_NEW) {
                r = repair_begin(m, index, st);
                *budget -= MIN(*budget, m->g.max_producers);
                if (r < 0)
                        return r;
                if (r > 0) {
                        repair_done(m, index);
                        return 0;
                }
        }
        if (st->stage == RING_REPAIR_HOLES) {
                nsnap = snap_claims(m, index, snap);
                *budget -= MIN(*budget, m->g.max_producers);
        }
        r = 0;
        while (st->next < st->end) {
                uint64_t t = st->next;

                if (*budget == 0) {
                        r = -EINPROGRESS;
                        break;
                }
                (*budget)--;
                if (seg_stamp_state(load_sc(&seg_slot(m, t)->stamp), t) != SEG_STAMP_NOT_YET) {
                        st->next = t + 1;
                        continue;
                }
                if (st->stage == RING_REPAIR_HOLES) {
                        uint64_t until = claimed_until(snap, nsnap, t);
                        *budget -= MIN(*budget, nsnap);
                        if (until) {
                                st->next = MIN(until, st->end);
                                continue;
                        }
                }
                r = abandon(m, t, index, &floor, budget, &marked);
                if (r < 0)
                        break;
                st->next = t + 1;
        }
        if (marked) /* one wake for every slot written off in this step */
                ring_wake_data_all(m);
        if (r < 0)
                return r;
        repair_done(m, index);
        return 0;
}

void ring_prod_forget(const struct seg_map *m, uint32_t index) {
        repair_done(m, index);
        wake_both(m);
}

int ring_prod_repair(const struct seg_map *m, uint32_t index) {
        struct ring_repair st = {0};
        uint64_t budget = UINT64_MAX;
        int r = ring_prod_repair_step(m, index, &st, &budget);

        return r == -EBUSY ? -EAGAIN : r;
}
