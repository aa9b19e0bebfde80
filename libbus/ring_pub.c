/* SPDX-License-Identifier: MIT */
/*
 * ring_pub.c: the producer side's general paths (ring_pub.h has the hot
 * one): waiting for room under RELIABLE (the lowest subscriber floor,
 * cached as a gate and re-scanned only when it says no), claiming around
 * held slots under LATEST, settling a claim left over from a timeout, and
 * waking readers. Ordering points are those of ring.c's table.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ring_pub.h"

void ring_pub_init(struct ring_pub *p, const struct seg_map *m, uint32_t index, struct wait_how wait) {
        *p = (struct ring_pub){
                .m = m,
                .me = seg_prod(m, index),
                .index = index % m->g.max_producers,
                .wait = wait,
                .room_end = 0,
                .gen = load_sc(&seg_ring_notify(m)->gen) - 1, /* force a first scan */
                .claim = SEG_CLAIM_NONE,
                .reliable = !ring_is_latest(m),
                .prod_armed = &seg_ring_notify(m)->prod_armed,
                .tables_bound = &seg_ring_notify(m)->tables_bound,
        };
        static au32 never_armed;
        for (uint32_t t = 0; t < SEG_TABLES_MAX; t++)
                p->data_armed[t] = seg_has_table(m, t) ? &seg_subs_notify(m, t)->data_armed : &never_armed;
}

/* Re-compute the cached gate from the floors. */
static void rescan(struct ring_pub *p) {
        p->room_end = ring_floor_plus(ring_scan_floors(p->m), p->m->g.slot_count);
}

/* Is the slot of seq free to be written, as far as subscribers go? Uses
 * the cached gate and re-scans only when the gate says no. */
static bool room_for(struct ring_pub *p, uint64_t seq) {
        if (seq < p->room_end)
                return true;
        rescan(p);
        return seq < p->room_end;
}

/* ... then take the new gen and re-scan under it. */
static void regate(struct ring_pub *p) {
        p->gen = load_sc(&seg_ring_notify(p->m)->gen);
        rescan(p);
}

enum room_kind {
        ROOM_PREV, /* the previous lap's producer has published the slot */
        ROOM_GATE, /* every subscriber is less than a ring behind seq */
};

struct room_ctx {
        struct ring_pub *p;
        uint64_t seq;
        enum room_kind kind;
};

static bool room_ready(void *c) {
        struct room_ctx *x = c;

        if (x->kind == ROOM_PREV)
                return ring_prev_done(x->p->m, x->seq);
        return room_for(x->p, x->seq);
}

/* A room sleep's cap: a subscriber of the table the producer waits on
 * may take the arm and wake nobody (what its uid's subscribers write is
 * untrusted); then the producer looks again after this long. */
#define ROOM_SLICE_NS (100u * 1000u * 1000u)

/* Wait for readers to free room (E): on the room word of every bound
 * table, armed in each. */
static int wait_for_readers(struct ring_pub *p, uint64_t deadline, wait_ready_fn ready, void *ctx) {
        struct wait_words ww[SEG_TABLES_MAX];
        unsigned n = ring_room_words_all(p->m, ww);

        if (n == 0) /* no subscriber table: nothing to wake us but time */
                ww[n++] = ring_prod_data_words(p->m);
        return wait_until_n(&p->wait, ww, n, deadline, ROOM_SLICE_NS, ready, ctx, NULL);
}

static int wait_room(struct ring_pub *p, uint64_t seq, enum room_kind kind, uint64_t deadline, bool may_wait) {
        struct room_ctx x = {.p = p, .seq = seq, .kind = kind};

        if (room_ready(&x))
                return 0;
        if (!may_wait)
                return -EAGAIN;
        stat_inc(&p->me->waits, 1);
        /* Waiting for another producer's publish is waiting for data: it
         * wakes data sleepers (D). Room and holds are freed by readers (E). */
        if (kind == ROOM_PREV)
                return wait_until(&p->wait, ring_prod_data_words(p->m), deadline, room_ready, &x, NULL);
        return wait_for_readers(p, deadline, room_ready, &x);
}

/* Wait until the claimed seq's slot may be stamped: the lap before is
 * published, and (RELIABLE) every subscriber is past it. */
static int wait_slot(struct ring_pub *p, uint64_t t, uint64_t deadline, bool may_wait) {
        int r = wait_room(p, t, ROOM_PREV, deadline, may_wait);
        if (r < 0 || !p->reliable)
                return r;
        return wait_room(p, t, ROOM_GATE, deadline, may_wait);
}

/* Settle a claim left over from a timed-out call: its slots are written
 * off as abandoned once they are free. */
static int settle_claim(struct ring_pub *p, uint64_t deadline, bool may_wait) {
        while (p->nwritten < p->nclaim) {
                uint64_t t = p->claim + p->nwritten;
                int r = wait_slot(p, t, deadline, may_wait);
                if (r < 0)
                        return r;
                ring_mark_slot(p->m, t, p->index, SEG_SLOT_ABANDONED);
                stat_inc(&p->me->abandoned, 1);
                p->nwritten++;
        }
        ring_claim_clear(p);
        return 0;
}

/* RELIABLE: get each claimed slot ready to be written. */
static int prepare_slots(struct ring_pub *p, uint64_t deadline, bool may_wait) {
        for (uint32_t i = p->nwritten; i < p->nclaim; i++) {
                int r = wait_slot(p, p->claim + i, deadline, may_wait);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Is any slot of the ring free of holds? (SC loads: point F) */
static bool some_slot_unheld(void *c) {
        const struct seg_map *m = ((struct ring_pub *)c)->m;
        for (uint64_t i = 0; i < m->g.slot_count; i++)
                if (!ring_held(m, i))
                        return true;
        return false;
}

bool ring_pub_room_now(const struct seg_map *m) {
        if (ring_is_latest(m)) {
                for (uint64_t i = 0; i < m->g.slot_count; i++)
                        if (!ring_held(m, i))
                                return true;
                return false;
        }
        uint64_t h = ring_head(m);
        if (h > SEG_SEQ_LIMIT)
                return true; /* the claim fails at once: -EOVERFLOW */
        return h < ring_floor_plus(ring_scan_floors(m), m->g.slot_count) && ring_prev_done(m, h);
}

/* LATEST: claim one sequence whose slot nobody holds. A held slot is
 * stamped SKIPPED (readers step over it) and the producer claims again:
 * it waits for readers only if they hold every slot. */
static int claim_latest(struct ring_pub *p, uint64_t deadline, bool may_wait, uint64_t *ret_seq) {
        const struct seg_map *m = p->m;
        uint32_t skips = 0;
        uint64_t rounds = 0;

        for (;;) {
                /* Holds that keep moving just ahead of this producer (what
                 * subscribers write is untrusted) must not keep a call that
                 * may not wait going: two laps, then it gives up. */
                if (!may_wait && ++rounds > 2 * (uint64_t)m->g.slot_count)
                        return -EAGAIN;
                if (skips >= m->g.slot_count) {
                        /* A whole lap of held slots. Holds come and go (a
                         * reader's hold on a slot that turned out to be
                         * overwritten lasts an instant), so only if every
                         * slot is held right now is there nothing to do but
                         * wait for a release, within the timeout. */
                        skips = 0;
                        if (!some_slot_unheld(p)) {
                                if (!may_wait)
                                        return -EAGAIN;
                                stat_inc(&p->me->waits, 1);
                                int r = wait_for_readers(p, deadline, some_slot_unheld, p);
                                if (r < 0)
                                        return r;
                        }
                }
                uint64_t h = load_rlx(&seg_head(m)->head);
                if (_unlikely_(h > SEG_SEQ_LIMIT))
                        return -EOVERFLOW;
                uint64_t t = ring_take_seqs(p, h, 1);
                ring_claim_set(p, t, 1);
                if (_unlikely_(t > SEG_SEQ_LIMIT))
                        return -EOVERFLOW;
                int r = wait_room(p, t, ROOM_PREV, deadline, may_wait);
                if (r < 0)
                        return r; /* kept: settled by the next call */
                struct seg_slot *sl = seg_slot(m, t);
                store_sc(&sl->stamp, SEG_STAMP_WRITING | seg_stamp(t)); /* I */
                KILL_POINT(KP_LATEST_WRITING);
                /* I: WRITING before the descriptor stores of publish (the
                 * seqlock's writer side; the payload is guarded by H/I). */
                release_fence();
                if (!ring_held(m, t)) { /* I */
                        *ret_seq = t;
                        return 0;
                }
                ring_mark_slot(m, t, p->index, SEG_SLOT_SKIPPED);
                stat_inc(&p->me->skipped, 1);
                ring_claim_clear(p);
                ring_pub_notify(p); /* readers may wait at t */
                skips++;
                if (may_wait && deadline && now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
}

/* RELIABLE, the fetch-add handed out s..s+n-1: record them, then wait
 * until each slot may be written. */
int ring_pub_claim_taken(struct ring_pub *p, uint64_t s, uint32_t n, uint64_t deadline, bool may_wait,
                         uint64_t *ret_seq) {
        int r;

        if (_unlikely_(s > SEG_SEQ_LIMIT + 1 - n)) {
                /* Unreachable in practice (2^63 messages); the claim stays
                 * recorded for the broker, which writes it off. */
                store_rel(&p->me->claim, s); /* J */
                return -EOVERFLOW;
        }
        ring_claim_set(p, s, n);
        if (ring_gen_moved(p)) /* G */
                regate(p);
        r = prepare_slots(p, deadline, may_wait);
        if (r < 0)
                return r; /* the claim is kept and settled by the next call */
        *ret_seq = s;
        return 0;
}

int ring_pub_claim_slow(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq) {
        const struct seg_map *m = p->m;
        uint64_t deadline = deadline_from_ms(timeout_ms);
        bool may_wait = timeout_ms != 0;
        uint64_t h;
        int r;

        if (n == 0 || n > m->g.slot_count)
                return -EINVAL;
        if (p->claim != SEG_CLAIM_NONE) {
                r = settle_claim(p, deadline, may_wait);
                ring_pub_notify(p); /* readers may wait at the sequences written off */
                if (r < 0)
                        return r == -ETIMEDOUT && !may_wait ? -EAGAIN : r;
        }
        if (!p->reliable) {
                if (n != 1)
                        return -EINVAL;
                return claim_latest(p, deadline, may_wait, ret_seq);
        }

        /* Look before claiming: with one producer this check is exact, so
         * a timeout never leaves a claim behind. */
        h = load_rlx(&seg_head(m)->head);
        if (_unlikely_(h > SEG_SEQ_LIMIT + 1 - n))
                return -EOVERFLOW; /* the sequence space is used up */
        if (ring_gen_moved(p))
                regate(p);
        r = wait_room(p, h + n - 1, ROOM_GATE, deadline, may_wait);
        if (r < 0)
                return r;
        return ring_pub_claim_taken(p, ring_take_seqs(p, h, n), n, deadline, may_wait, ret_seq);
}

/* The wake-up half of ring_pub_notify: once per arming (K). */
void ring_pub_wake(struct ring_pub *p) {
        if (ring_wake_data(p->m))
                stat_inc(&p->me->wakeups, 1);
}

void ring_pub_deinit(struct ring_pub *p) {
        if (!p || !p->m)
                return;
        /* A claim whose slots are not free yet stays recorded, and the
         * broker writes it off when they are. */
        if (p->claim != SEG_CLAIM_NONE)
                (void)settle_claim(p, 0, false);
        ring_pub_notify(p);
        store_rel(&p->me->state, SEG_ENTRY_CLOSING);
        p->m = NULL;
}
