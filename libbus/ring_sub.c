/* SPDX-License-Identifier: MIT */
/*
 * ring_sub.c: the subscriber side's general paths (ring_sub.h has the hot
 * one): registering with history (point G), stepping over markers and
 * laps, LATEST holds taken and re-checked against the producer's mark
 * (H / I), waiting for data (C / D), releases in any order, and closing.
 * Ordering points are those of ring.c's table.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "futex.h"
#include "ring_sub.h"

/* The wake-up half of ring_sub_publish_floor (E, K). */
void ring_sub_wake_room(struct ring_sub *s) {
        (void)wait_wake_armed(ring_room_words(s->m, s->table));
}

int ring_sub_init(struct ring_sub *s, const struct seg_map *m, uint32_t index, uint32_t table, uint64_t start,
                  uint32_t max_holds, uint64_t *held, struct wait_how wait) {
        if (max_holds == 0 || max_holds > RING_MAX_HOLDS_LIMIT || !held || !seg_has_table(m, table) ||
            index >= m->g.max_subs || start > SEG_SEQ_LIMIT)
                return -EINVAL;
        *s = (struct ring_sub){
                .m = m,
                .me = seg_sub(m, table, index),
                .st = seg_sub_state(m, index),
                .active = seg_sub_state_word(SEG_ENTRY_ACTIVE, table),
                .index = index,
                .table = table,
                .room_armed = &seg_subs_notify(m, table)->room_armed,
                .wait = wait,
                .held = held,
                .max_holds = max_holds,
                .reliable = !ring_is_latest(m),
                .next = start,
                /* The broker published this floor (G). */
                .pub_floor = ring_is_latest(m) ? SEG_FLOOR_NONE : start,
        };
        return 0;
}

bool ring_sub_ready(struct ring_sub *s) {
        uint64_t v = load_sc(&seg_slot(s->m, s->next)->stamp); /* C */
        /* An evicted subscription is "ready" too: its receive fails at
         * once, and a sleeper woken by the eviction must not sleep on. */
        return seg_stamp_state(v, s->next) != SEG_STAMP_NOT_YET || ring_sub_evicted(s);
}

/* Lapped under LATEST: jump to the newest message. False when head says
 * the lap cannot be (it is not past the cursor: the stamp was written
 * without a claim). */
static bool skip_ahead(struct ring_sub *s, uint64_t *lost) {
        uint64_t h = load_acq(&seg_head(s->m)->head);

        if (h > SEG_SEQ_LIMIT || h <= s->next + 1)
                return false;
        *lost += h - 1 - s->next;
        s->next = h - 1;
        return true;
}

/* LATEST: drop a hold that did not stand (the slot was overwritten under
 * it, or holds a marker or nonsense). A producer may have seen the bit and
 * gone to sleep thinking every slot held: wake it as a release would (E). */
static void drop_transient_hold(struct ring_sub *s, uint64_t c) {
        ring_hold_drop(s->m, s->table, c, s->index);
        (void)wait_wake_armed(ring_room_words(s->m, s->table));
}

/* Take whatever is at the cursor without waiting. Returns 1 with *msg
 * filled, 0 if nothing is there, or a negative errno: -EBADMSG for a slot
 * no honest producer can have left (the cursor steps past it, so every
 * call makes progress and returns). */
static int take_one(struct ring_sub *s, zcbus_msg *msg) {
        const struct seg_map *m = s->m;
        bool latest = !s->reliable;

        for (unsigned guard = 0; guard < 1024; guard++) {
                uint64_t c = s->next;
                struct seg_slot *sl = seg_slot(m, c);
                uint64_t v = load_acq(&sl->stamp); /* B */

                switch (seg_stamp_state(v, c)) {
                case SEG_STAMP_NOT_YET:
                        return 0;
                case SEG_STAMP_LAPPED:
                        /* RELIABLE producers never pass a floor, and every
                         * stamp was claimed from head first: a lap there, or
                         * a stamp beyond head, is a scribbled ring. */
                        if (!latest && ring_sub_evicted(s))
                                return -ESTALE; /* overrun after the stall policy evicted it */
                        if (!latest || !skip_ahead(s, &s->pending_lost)) {
                                s->next = c + 1;
                                s->skipped++;
                                return -EBADMSG;
                        }
                        continue;
                case SEG_STAMP_READY:
                        break;
                }
                uint32_t len = load_rlx(&sl->len), flags = load_rlx(&sl->flags);
                uint64_t ts = load_rlx(&sl->ts_ns);
                bool had = false;
                if (latest) {
                        /* H: take the hold, then make sure the slot still
                         * holds c; the descriptor read above is then c's
                         * (every writer marks WRITING before touching it).
                         * If this subscriber held the slot already (an older
                         * message under markers), the hold stays. */
                        had = ring_hold_take(m, s->table, c, s->index);
                        KILL_POINT(KP_HOLD_TAKEN);
                        /* I: the descriptor loads above before the re-check
                         * (the seqlock's reader side). */
                        acquire_fence();
                        if (load_sc(&sl->stamp) != v) {
                                if (!had)
                                        drop_transient_hold(s, c);
                                continue; /* overwritten meanwhile: look again */
                        }
                }
                if (flags & (SEG_SLOT_ABANDONED | SEG_SLOT_SKIPPED) || len > m->g.slot_size) {
                        /* A marker, or nonsense from a producer (refused with
                         * -EBADMSG): step over it. */
                        if (latest && !had)
                                drop_transient_hold(s, c);
                        s->next = c + 1;
                        s->skipped++;
                        if (flags & (SEG_SLOT_ABANDONED | SEG_SLOT_SKIPPED))
                                continue;
                        return -EBADMSG;
                }
                ring_deliver(s, msg, sl, c, len, ts, true);
                return 1;
        }
        return 0;
}

static bool sub_ready_cb(void *c) {
        return ring_sub_ready(c);
}

/* RELIABLE: markers stepped over moved the cursor without a release; let
 * producers see it before waiting or failing, or a lap of markers could
 * leave both sides waiting. */
static void publish_floor_if_moved(struct ring_sub *s) {
        if (s->reliable && ring_floor_of(s) != s->pub_floor)
                ring_sub_publish_floor(s, ring_floor_of(s));
}

int ring_sub_recv_slow(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms) {
        uint64_t deadline = 0;
        uint32_t got = 0;
        int r;

        if (n == 0)
                return -EINVAL;
        for (;;) {
                if (_unlikely_(ring_sub_evicted(s)))
                        return -ESTALE;
                while (got < n) {
                        if (s->nheld >= s->max_holds) {
                                if (got)
                                        break;
                                return -ENOBUFS;
                        }
                        r = take_one(s, &msgs[got]);
                        if (r < 0) {
                                if (got)
                                        break;
                                publish_floor_if_moved(s);
                                return r;
                        }
                        if (r == 0)
                                break;
                        got++;
                }
                if (got) {
                        s->received += got;
                        store_rlx(&s->me->lost, s->lost);
                        ring_sub_mirror(s);
                        return (int)got;
                }
                publish_floor_if_moved(s);
                /* RELIABLE: the next message's slot is the one its own
                 * oldest hold occupies: no producer may write it before that
                 * hold is released, so waiting would wait on itself. */
                if (s->reliable && s->nheld && s->next - s->held[0] >= s->m->g.slot_count)
                        return -ENOBUFS;
                if (timeout_ms == 0)
                        return -EAGAIN;
                if (!deadline && timeout_ms > 0)
                        deadline = deadline_from_ms(timeout_ms);
                else if (deadline && now_ns() >= deadline)
                        /* An earlier wait saw something at the cursor that
                         * take_one could not deliver (a long run of markers,
                         * walked in bounded steps): the deadline holds
                         * whatever the ring says. */
                        return -ETIMEDOUT;
                r = wait_until(&s->wait, ring_sub_words(s), deadline, sub_ready_cb, s, &s->sleeps);
                if (s->sleeps)
                        store_rlx(&s->me->sleeps, s->sleeps);
                if (r < 0)
                        return r;
                /* Woken for a message: the short way, when it applies. */
                if (ring_recv_fast_ok(s, n) && ring_take_fast(s, msgs))
                        return 1;
        }
}

/* Forget hold i, keeping the rest in the order received. */
static void forget_hold(struct ring_sub *s, uint32_t i, uint32_t n) {
        memmove(s->held + i, s->held + i + n, (s->nheld - i - n) * sizeof(s->held[0]));
        s->nheld -= n;
}

int ring_sub_release_slow(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n) {
        bool latest = !s->reliable;

        /* Fast path: the oldest holds, in the order received (recv then
         * release, or a batch released whole): O(n). */
        uint32_t k0 = 0;
        while (k0 < n && k0 < s->nheld && s->held[k0] == ring_seq_at(seqs, stride, k0))
                k0++;
        if (k0 == n) {
                forget_hold(s, 0, n);
        } else {
                /* All or nothing: every sequence must be held, once. */
                for (uint32_t k = 0; k < n; k++) {
                        uint32_t count = 0;
                        for (uint32_t i = 0; i < s->nheld; i++)
                                count += s->held[i] == ring_seq_at(seqs, stride, k);
                        for (uint32_t j = 0; j < k; j++)
                                count -= count && ring_seq_at(seqs, stride, j) == ring_seq_at(seqs, stride, k);
                        if (count == 0)
                                return -ENOENT;
                }
                for (uint32_t k = 0; k < n; k++) {
                        uint32_t i;
                        for (i = 0; i < s->nheld; i++)
                                if (s->held[i] == ring_seq_at(seqs, stride, k))
                                        break;
                        forget_hold(s, i, 1);
                }
        }
        store_rlx(&s->me->held, s->nheld);
        if (latest) {
                /* H: payload reads done, then the SC clear of each hold bit,
                 * which is also E's store: a producer may wait because it
                 * found every slot held. */
                for (uint32_t k = 0; k < n; k++)
                        ring_hold_drop(s->m, s->table, ring_seq_at(seqs, stride, k), s->index);
                (void)wait_wake_armed(ring_room_words(s->m, s->table));
                return ring_sub_evicted(s) ? -ESTALE : 0;
        }
        publish_floor_if_moved(s);
        return ring_sub_evicted(s) ? -ESTALE : 0;
}

void ring_sub_deinit(struct ring_sub *s) {
        if (!s || !s->m)
                return;
        if (!s->reliable)
                for (uint32_t i = 0; i < s->nheld; i++)
                        ring_hold_drop(s->m, s->table, s->held[i], s->index);
        s->nheld = 0;
        /* Stop gating now; the broker frees the entry on CLOSE. */
        ring_sub_publish_floor(s, SEG_FLOOR_NONE);
        s->m = NULL;
}
