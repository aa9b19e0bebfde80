/* SPDX-License-Identifier: MIT */
/*
 * ring_sub.h: the subscriber side of a mapped topic: a private cursor,
 * reading slots in place, holding them until released, publishing the
 * floor that gates RELIABLE producers and the holds LATEST producers
 * step around. The hot path (one plain message, RELIABLE, received and
 * released in order) is inline here; anything else takes the general
 * code in ring_sub.c, which makes the same checks in the same order.
 */
#ifndef ZCBUS_RING_SUB_H
#define ZCBUS_RING_SUB_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ring.h"

#define RING_MAX_HOLDS_DEFAULT 16u
#define RING_MAX_HOLDS_LIMIT 4096u
/* Spins the inline receive path makes before the general wait. */
#define RING_SPIN_INLINE 64u

/* Private state of one subscription. */
struct ring_sub {
        const struct seg_map *m;
        struct seg_sub *me;         /* its words, in its table */
        struct seg_sub_state *st;   /* its broker-written state, in the ring */
        uint32_t active;            /* the state word while it is live */
        uint32_t index;
        uint32_t table;
        au32 *room_armed;           /* its table's */
        struct wait_how wait;
        uint64_t next;      /* next sequence to read */
        uint64_t *held;     /* sequences received and not released */
        uint32_t nheld;
        uint32_t max_holds;
        uint64_t received;  /* local mirrors of the shared counters */
        uint64_t lost;      /* total missed, counted when reported */
        uint64_t pending_lost; /* missed since the last delivered message */
        uint64_t skipped;   /* markers stepped over (abandoned, skipped) */
        uint64_t pub_floor; /* RELIABLE: the floor last published */
        uint64_t sleeps;
        bool reliable;      /* topic policy RELIABLE: the fast paths apply */
};

/* Entry index of table table, registered by the broker (which chose the
 * start: ring_sub_register); held: caller-provided array of max_holds
 * entries. */
int ring_sub_init(struct ring_sub *s, const struct seg_map *m, uint32_t index, uint32_t table, uint64_t start,
                  uint32_t max_holds, uint64_t *held, struct wait_how wait);
/* Is a message (or a skip) ready at the cursor? Non-blocking; an SC load
 * (the re-check of C). */
bool ring_sub_ready(struct ring_sub *s);
/* The words a sleeper on this subscription announces itself on. */
static inline struct wait_words ring_sub_words(const struct ring_sub *s) {
        return ring_data_words(s->m, s->table);
}
/* Stop gating producers and drop every hold; the broker frees the entry
 * when told (a subscriber cannot write its state). */
void ring_sub_deinit(struct ring_sub *s);

/* The general paths behind the inline ones below. */
int ring_sub_recv_slow(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms);
int ring_sub_release_slow(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n);
void ring_sub_wake_room(struct ring_sub *s);

/* RELIABLE: the floor this subscriber must publish: its oldest hold
 * (holds are kept in the order received, which is sequence order), else
 * its cursor. */
static _always_inline_ uint64_t ring_floor_of(const struct ring_sub *s) {
        return s->nheld && s->held[0] < s->next ? s->held[0] : s->next;
}

/* Has the broker evicted this subscription under the stall policy? Its
 * holds then protect nothing (producers may overwrite what it holds), its
 * receives and releases fail with -ESTALE. */
static _always_inline_ bool ring_sub_evicted(const struct ring_sub *s) {
        return _unlikely_(load_acq(&s->st->state) == seg_sub_state_word(SEG_ENTRY_EVICTED, s->table));
}

/* Does the short way of receiving apply: one message, RELIABLE, room for
 * one more hold, no loss to report, and the entry still ours (the stall
 * policy may have evicted it: the general path says so)? The state is in
 * a ring line only the broker writes, and rarely: a load from cache. */
static _always_inline_ bool ring_recv_fast_ok(const struct ring_sub *s, uint32_t n) {
        return n == 1 && s->reliable && s->nheld < s->max_holds && s->pending_lost == 0 &&
               load_rlx(&s->st->state) == s->active;
}

/* Hand the message at the cursor c (slot sl, descriptor read) to the
 * caller and hold it: the one way a message is delivered. report_lost:
 * the losses since the last message go with it (the fast path, which
 * runs only when there are none, passes false). */
static _always_inline_ void ring_deliver(struct ring_sub *s, zcbus_msg *msg, struct seg_slot *sl, uint64_t c,
                                         uint32_t len, uint64_t ts, bool report_lost) {
        *msg = (zcbus_msg){
                .data = seg_payload(sl),
                .len = len,
                .seq = c,
                .timestamp_ns = ts,
                .lost = report_lost ? s->pending_lost : 0,
        };
        if (report_lost) {
                s->lost += s->pending_lost;
                s->pending_lost = 0;
        }
        s->held[s->nheld++] = c;
        s->next = c + 1;
        /* Pull a later slot's first line in ahead of time: when the
         * producer is ahead, its lines are ready and the miss is hidden
         * behind this message's processing. */
        __builtin_prefetch(seg_slot(s->m, c + 3), 0, 3);
}

/* Mirror the private counters into the shared entry (statistics). */
static _always_inline_ void ring_sub_mirror(struct ring_sub *s) {
        store_rlx(&s->me->received, s->received);
        store_rlx(&s->me->next, s->next);
        store_rlx(&s->me->held, s->nheld);
}

/* RELIABLE, a plain message at the cursor, room for one more hold,
 * nothing to report: deliver it. The checks are those of the general
 * path (stamp, B, then descriptor); anything else goes that way. */
static _always_inline_ bool ring_take_fast(struct ring_sub *s, zcbus_msg *msg) {
        const struct seg_map *m = s->m;
        uint64_t c = s->next;
        struct seg_slot *sl = seg_slot(m, c);

        if (seg_stamp_state(load_acq(&sl->stamp), c) != SEG_STAMP_READY) /* B */
                return false;
        uint32_t len = load_rlx(&sl->len);
        if (_unlikely_(load_rlx(&sl->flags) != 0 || len > m->g.slot_size))
                return false;
        ring_deliver(s, msg, sl, c, len, load_rlx(&sl->ts_ns), false);
        s->received++;
        ring_sub_mirror(s);
        return true;
}

/* Receive up to n messages, waiting per timeout_ms for the first. Returns
 * the count (>= 1), -EAGAIN, -ETIMEDOUT, -EINTR, -ENOBUFS (holds full),
 * or -EBADMSG when the segment holds an impossible length. */
static _always_inline_ int ring_sub_recv(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms) {
        if (_likely_(ring_recv_fast_ok(s, n))) {
                if (ring_take_fast(s, msgs))
                        return 1;
                /* A prompt answer comes within a few hundred nanoseconds:
                 * watch the slot here for a little while (when the mode
                 * spins at all, and nothing needs doing before a wait),
                 * then take the general way, which spins on for the rest
                 * of the budget and sleeps. */
                if (timeout_ms != 0 && s->wait.mode != ZCBUS_WAIT_FUTEX && ring_floor_of(s) == s->pub_floor) {
                        const au64 *stamp = &seg_slot(s->m, s->next)->stamp;
                        uint64_t old = load_rlx(stamp);
                        /* Spin only while the slot is not yet ours: a marker,
                         * a bad length or a lap are final already. */
                        bool pending = seg_stamp_state(old, s->next) == SEG_STAMP_NOT_YET;
                        for (unsigned i = 0; pending && i < RING_SPIN_INLINE; i++) {
                                cpu_relax();
                                if (load_rlx(stamp) != old) {
                                        if (ring_take_fast(s, msgs))
                                                return 1;
                                        break;
                                }
                        }
                }
        }
        return ring_sub_recv_slow(s, msgs, n, timeout_ms);
}

/* Publish a higher floor and wake producers waiting for it (E). Every
 * raise of a floor goes through here: a producer may be asleep on the
 * old value. */
static _always_inline_ void ring_sub_publish_floor(struct ring_sub *s, uint64_t f) {
        s->pub_floor = f;
        store_rel(&s->me->floor, f); /* E: payload reads done before the floor moves */
        KILL_POINT(KP_FLOOR_STORED);
        full_fence();                /* E: the floor before the look at room_armed */
        if (_unlikely_(load_rlx(s->room_armed) != 0))
                ring_sub_wake_room(s);
}

/* The i-th sequence of an array of n records stride bytes apart. */
static _always_inline_ uint64_t ring_seq_at(const void *base, size_t stride, uint32_t i) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)base + (size_t)i * stride, sizeof(v));
        return v;
}

/* Release held sequences given as the seq fields of n records stride
 * bytes apart (e.g. &msgs[0].seq, sizeof(zcbus_msg)): all or nothing,
 * whatever n; -ENOENT for one not held. */
static _always_inline_ int ring_sub_release_strided(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n) {
        /* RELIABLE, the oldest hold alone (recv, then release). */
        if (_likely_(n == 1 && s->reliable && s->nheld && s->held[0] == ring_seq_at(seqs, stride, 0))) {
                if (_unlikely_(--s->nheld))
                        memmove(s->held, s->held + 1, s->nheld * sizeof(s->held[0]));
                store_rlx(&s->me->held, s->nheld);
                uint64_t f = ring_floor_of(s);
                if (f != s->pub_floor)
                        ring_sub_publish_floor(s, f);
                /* Evicted while it held the message: it may have been
                 * overwritten under the caller, who learns it here. */
                return ring_sub_evicted(s) ? -ESTALE : 0;
        }
        return ring_sub_release_slow(s, seqs, stride, n);
}

static _always_inline_ int ring_sub_release(struct ring_sub *s, const uint64_t *seqs, uint32_t n) {
        return ring_sub_release_strided(s, seqs, sizeof(*seqs), n);
}

#endif
