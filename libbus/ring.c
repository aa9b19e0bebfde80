/* SPDX-License-Identifier: MIT */
/*
 * ring.c: the data plane's shared core (ring.h): the floor scan and the
 * markers. One ring of slots per topic; many producers claim sequences
 * with one fetch-add and publish each slot with a stamp (ring_pub.c);
 * every subscriber has its own cursor and reads slots in place
 * (ring_sub.c); the broker repairs after dead peers (ring_repair.c).
 *
 * Ordering points (docs/design.md has the table and the arguments):
 *   A  producer: payload + descriptor, then stamp = seq+1 (release/SC)
 *   B  reader: stamp (acquire), then descriptor + payload       [pairs A]
 *   C  reader about to sleep: load data_word (SC), data_armed = 1 (SC),
 *      re-load the stamp (SC)                                 [pairs D]
 *   D  producer after publishing: full fence, load data_armed; if it
 *      takes the arm (K), bump data_word and FUTEX_WAKE       [pairs C]
 *   E  reader releasing: floor = new floor (release) and a full fence
 *      (LATEST: the SC clear of its hold bit), then load room_armed (SC
 *      after an RMW); if it takes the arm (K), bump room_word and
 *      FUTEX_WAKE; a LATEST reader's hold that turns out transient is
 *      dropped the same way                                  [pairs F]
 *   F  producer about to sleep for room: load room_word (SC),
 *      room_armed = 1 (SC), re-scan floors or holds (SC)     [pairs E]
 *   G  new subscriber: floor = f (SC), gen++ (SC), load head (SC);
 *      producer: head fetch-add (SC), load gen (SC): a producer that
 *      missed the new floor claimed below the head the subscriber read,
 *      and the subscriber raises its floor past what it can overwrite
 *   H  LATEST reader taking a hold: hold[slot]++ (SC), re-load stamp (SC)
 *   I  LATEST producer reusing a slot: stamp = WRITING|seq+1 (SC), then
 *      load hold[slot] (SC): one of H/I sees the other; a held slot is
 *      not written but stamped SKIPPED, and the producer moves on [pairs H]
 *      The descriptor is a seqlock: a release fence after WRITING and
 *      before the descriptor stores; the reader's acquire fence after
 *      its descriptor loads and before its re-check of the stamp
 *   K  sleepers arm (armed = 1, SC) after reading the futex word and
 *      before re-checking; wakers wake only if they take the arm
 *      (exchange to 0, SC) after their store and fence [pairs C-F]
 *   R  readers' wakes are relayed: the waker bumps the table's word and
 *      wakes two sleepers tagged with its old value; a sleeper that wakes
 *      to a changed word claims the new value (CAS of `relayed`) and
 *      wakes every sleeper; the broker wakes all after any death
 *   J  producer claim record: claim = PENDING|head (release) before the
 *      fetch-add, the sequence after; the broker reads head, then the
 *      claims, then the stamps, so a dead producer's hole is found
 */
#include "config.h"

#include "ring.h"

uint64_t ring_scan_floors(const struct seg_map *m) {
        uint64_t g = SEG_FLOOR_NONE;

        for (uint32_t t = 0, n = seg_tables_bound(m); t < n; t++) {
                if (!m->tables[t])
                        continue;
                au64 *mask = seg_table_mask(m, t);
                /* Only an entry live in this table gates: a free one may
                 * hold a stale floor, an evicted or rebound one its old
                 * owner's, and every entry has a line in every table. The
                 * broker sets the floor before the mask bit. */
                for (uint32_t w = 0; w < m->g.hold_words; w++) {
                        uint64_t bits = load_sc(&mask[w]);
                        while (bits) {
                                uint32_t i = w * 64 + (uint32_t)__builtin_ctzll(bits);
                                uint64_t f = load_sc(&seg_sub(m, t, i)->floor);
                                bits &= bits - 1;
                                if (f < g)
                                        g = f;
                        }
                }
        }
        return g;
}

unsigned ring_room_words_all(const struct seg_map *m, struct wait_words *ww) {
        unsigned k = 0;
        for (uint32_t t = 0, n = seg_tables_bound(m); t < n; t++)
                if (m->tables[t])
                        ww[k++] = ring_room_words(m, t);
        return k;
}

bool ring_wake_data(const struct seg_map *m) {
        struct seg_ring_notify *rn = seg_ring_notify(m);
        bool woke = false;

        /* SC loads after the caller's fence or RMW; each exchange takes one
         * arming (K). */
        if (load_sc(&rn->prod_armed) && atomic_exchange_explicit(&rn->prod_armed, 0, memory_order_seq_cst)) {
                KILL_POINT(KP_WAKE_TAKEN);
                wait_wake_all(&rn->data_word);
                woke = true;
        }
        for (uint32_t t = 0, n = seg_tables_bound(m); t < n; t++)
                if (m->tables[t])
                        woke |= wait_wake_relay(ring_data_words(m, t));
        return woke;
}

void ring_wake_data_all(const struct seg_map *m) {
        wait_wake_all(&seg_ring_notify(m)->data_word);
        for (uint32_t t = 0; t < m->g.sub_tables; t++)
                if (m->tables[t])
                        wait_wake_all(&seg_subs_notify(m, t)->data_word);
}

void ring_mark_slot(const struct seg_map *m, uint64_t seq, uint32_t producer, uint32_t flag) {
        struct seg_slot *s = seg_slot(m, seq);
        /* I: a LATEST reader may be reading the descriptor of the lap
         * before; WRITING first makes its re-check fail. */
        if (load_rlx(&s->stamp) != (SEG_STAMP_WRITING | seg_stamp(seq)))
                store_sc(&s->stamp, SEG_STAMP_WRITING | seg_stamp(seq));
        release_fence(); /* I: WRITING before the descriptor */
        store_rlx(&s->len, 0);
        store_rlx(&s->flags, flag);
        s->producer = producer;
        store_sc(&s->stamp, seg_stamp(seq)); /* A */
}
