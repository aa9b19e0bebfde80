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
 *   J  producer claim record: claim = PENDING|head (release) before the
 *      fetch-add, the sequence after; the broker reads head, then the
 *      claims, then the stamps, so a dead producer's hole is found
 */
#include "config.h"

#include "ring.h"

uint64_t ring_scan_floors(const struct seg_map *m) {
        uint64_t g = SEG_FLOOR_NONE;
        for (uint32_t i = 0; i < m->g.max_subs; i++) {
                struct seg_sub *e = seg_sub(m, i);
                uint64_t f = load_sc(&e->floor);
                /* Only a live entry gates: a free one may hold a stale floor,
                 * an evicted one its owner's (who does not know yet). The
                 * state is read after the floor: a floor stored by a
                 * subscriber was stored after the broker activated it. */
                if (f < g && load_acq(&e->state) == SEG_ENTRY_ACTIVE)
                        g = f;
        }
        return g;
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
