/* SPDX-License-Identifier: MIT */
/*
 * test_ring_repair.c: Check suite "ring_repair", what the broker does to a
 * ring after its peers (ring_repair.c): evicting subscribers, writing off
 * dead producers' claims.
 * The fixtures and their conventions are those of test_ring.c
 * (ring_fixture.h).
 *
 * Threads stand in for processes: each topic is created with seg_create()
 * and mapped three times, as the broker (read-write), as producers
 * (read-write) and as subscribers (ring read-only through an O_RDONLY
 * reopen, as a real subscriber gets it), so a subscriber path that wrote
 * the ring would fault here. The test plays the broker: it activates and
 * evicts table entries itself.
 *
 * Every payload byte derives from the message's sequence (pattern_fill),
 * so a torn, overwritten or misplaced message is caught on every receive.
 * Nothing sleeps and nothing asserts on timing: threads wait for each
 * other through the ring itself or through the segment's own counters
 * (e.g. "a producer has announced it is waiting"). Also built under TSan.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h" /* header-only helpers: pattern_*, test_scaled, RUN_SUITE */
#include "ring_fixture.h"


/* ----------------------------------------------------------- repair */

struct blocked_ctx {
        struct topic *t;
        int result;
        uint64_t seq;
};

static void *blocked_producer(void *arg) {
        struct blocked_ctx *x = arg;
        struct ring_pub p;

        pub_start(x->t, &p, 0, ZCBUS_WAIT_FUTEX);
        x->result = pub_one(&p, TIMEOUT_FOREVER, &x->seq);
        ring_pub_deinit(&p);
        return NULL;
}

START_TEST(test_evicting_a_stalled_subscriber_unblocks_a_waiting_producer) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 2, 2);
        struct blocked_ctx x = {.result = 1};
        struct topic t;
        struct ring_pub pub;
        struct ring_sub live, stalled;
        uint64_t h1[2], h2[2];
        pthread_t th;

        topic_open(&t, &p);
        x.t = &t;
        sub_start(&t, &stalled, 0, 0, 2, h1, ZCBUS_WAIT_ADAPTIVE);
        sub_start(&t, &live, 1, 0, 2, h2, ZCBUS_WAIT_ADAPTIVE);
        pub_start(&t, &pub, 1, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 8);
        for (uint64_t q = 0; q < 8; q++)
                ck_assert_uint_eq(recv_check_release(&live), q);
        /* The stalled one never reads: the ring is full for it. */
        ck_assert_int_eq(pthread_create(&th, NULL, blocked_producer, &x), 0);
        /* Wait until the producer has announced it sleeps for room. */
        yield_until_nonzero(&seg_subs_notify(&t.bm, 0)->room_armed);
        ring_sub_evict(&t.bm, 0, 0); /* the broker, after the owner died */
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(x.result, 0);
        ck_assert_uint_eq(x.seq, 8);
        ck_assert_uint_eq(ld32(&seg_sub_state(&t.bm, 0)->state), SEG_ENTRY_FREE);
        ck_assert_uint_eq(recv_check_release(&live), 8);
        /* And the topic goes on without it. */
        for (int lap = 0; lap < 3; lap++) {
                pub_n(&pub, 8);
                for (int i = 0; i < 8; i++)
                        (void)recv_check_release(&live);
        }
        ring_pub_deinit(&pub);
        ring_sub_deinit(&live);
        topic_close(&t);
}
END_TEST

START_TEST(test_closing_a_subscriber_stops_it_gating_producers) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[2];

        topic_open_sub_pub(&t, &p, &s, 0, 2, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 8);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EAGAIN);
        ring_sub_deinit(&s);
        ring_sub_deinit(&s); /* twice is harmless */
        /* It gates nothing from its close on; the broker frees the entry
         * when told (the subscriber cannot write its state). */
        ck_assert_uint_eq(ld64(&seg_sub(&t.bm, 0, 0)->floor), SEG_FLOOR_NONE);
        ck_assert_uint_eq(ld32(&seg_sub_state(&t.bm, 0)->state), SEG_ENTRY_ACTIVE);
        pub_n(&pub, 20);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

START_TEST(test_evicted_producer_claim_is_skipped_and_the_topic_continues) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 2, 1);
        struct topic t;
        struct ring_pub dead, live;
        struct ring_sub s;
        uint64_t held[4], hole, seq;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &live, 1, ZCBUS_WAIT_ADAPTIVE);
        pub_start(&t, &dead, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&live, 2);
        /* The dead producer claims seq 2 and is never heard from again. */
        ck_assert_int_eq(ring_pub_claim(&dead, 1, 0, &hole), 0);
        ck_assert_uint_eq(hole, 2);
        pub_n(&live, 3); /* 3, 4, 5 */
        ck_assert_uint_eq(recv_check_release(&s), 0);
        ck_assert_uint_eq(recv_check_release(&s), 1);
        /* Readers wait at the hole: messages stay in order. */
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
        ck_assert_int_eq(ring_prod_evict(&t.bm, 0), 0);
        ck_assert_uint_eq(ld32(&seg_prod(&t.bm, 0)->state), SEG_ENTRY_FREE);
        ck_assert_uint_eq(ld64(&seg_prod(&t.bm, 0)->claim), SEG_CLAIM_NONE);
        /* ... then step over it, losing nothing that was published. */
        for (uint64_t q = 3; q <= 5; q++) {
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), 1);
                ck_assert_uint_eq(m.seq, q);
                ck_assert_uint_eq(m.lost, 0);
                check_msg(&m, 32);
                ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), 0);
        }
        /* The topic continues across many laps, over the abandoned slot. */
        for (unsigned i = 0; i < 40; i++) {
                ck_assert_int_eq(pub_one(&live, 0, &seq), 0);
                ck_assert_uint_eq(recv_check_release(&s), seq);
        }
        /* Evicting an idle producer is immediate. */
        ck_assert_int_eq(ring_prod_evict(&t.bm, 1), 0);
        ck_assert_uint_eq(ld32(&seg_prod(&t.bm, 1)->state), SEG_ENTRY_FREE);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

/* The shared state a producer leaves when it dies right after its
 * fetch-add raced past the room it had looked at (or any claim it recorded):
 * head moved, claim recorded, nothing written. */
static uint64_t fake_dead_claim(struct topic *t, uint32_t index) {
        struct seg_prod *e = seg_prod(&t->bm, index);
        uint64_t h = load_sc(&seg_head(&t->bm)->head);
        store_rlx(&e->claim_n, 1);
        store_sc(&e->claim, SEG_CLAIM_PENDING | h);
        uint64_t seq = faa_sc(&seg_head(&t->bm)->head, 1);
        store_sc(&e->claim, seq);
        return seq;
}

START_TEST(test_producer_eviction_waits_until_the_abandoned_slot_is_free) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 2, 1);
        struct topic t;
        struct ring_pub live;
        struct ring_sub s;
        uint64_t held[4], seq;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &live, 1, ZCBUS_WAIT_ADAPTIVE);
        ring_prod_activate(&t.bm, 0, 1); /* the one that dies */
        pub_n(&live, 8); /* 0..7: full for the subscriber, who read nothing */
        ck_assert_uint_eq(fake_dead_claim(&t, 0), 8);
        /* Seq 8's slot still holds seq 0, which the subscriber needs. */
        ck_assert_int_eq(ring_prod_evict(&t.bm, 0), -EAGAIN);
        ck_assert_int_eq(ring_prod_evict(&t.bm, 0), -EAGAIN);
        uint32_t state = load_rlx(&seg_prod(&t.bm, 0)->state);
        ck_assert_msg(state != SEG_ENTRY_FREE, "entry freed while its claim is still unresolved");
        ck_assert_uint_eq(recv_check_release(&s), 0);
        ck_assert_int_eq(ring_prod_evict(&t.bm, 0), 0);
        ck_assert_uint_eq(ld32(&seg_prod(&t.bm, 0)->state), SEG_ENTRY_FREE);
        for (uint64_t q = 1; q <= 7; q++)
                ck_assert_uint_eq(recv_check_release(&s), q);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN); /* 8 skipped, 9 not yet there */
        ck_assert_int_eq(pub_one(&live, 0, &seq), 0);
        ck_assert_uint_eq(seq, 9);
        ck_assert_uint_eq(recv_check_release(&s), 9);
        ring_pub_deinit(&live);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_producer_dead_between_intent_and_claim_record_leaves_a_hole_the_broker_fills) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 3, 1);
        struct topic t;
        struct ring_pub live;
        struct ring_sub s;
        uint64_t held[4], seq;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &live, 1, ZCBUS_WAIT_ADAPTIVE);
        ring_prod_activate(&t.bm, 0, 1); /* dies after its fetch-add */
        ring_prod_activate(&t.bm, 2, 2); /* dies before its fetch-add */
        pub_n(&live, 2);
        /* Producer 0: intent recorded, fetch-add done (seq 2), then dead
         * before recording which sequence it got. */
        struct seg_prod *e0 = seg_prod(&t.bm, 0);
        store_rlx(&e0->claim_n, 1);
        store_sc(&e0->claim, SEG_CLAIM_PENDING | 2);
        ck_assert_uint_eq(faa_sc(&seg_head(&t.bm)->head, 1), 2);
        /* Producer 2: intent recorded, no fetch-add. */
        store_rlx(&seg_prod(&t.bm, 2)->claim_n, 1);
        store_sc(&seg_prod(&t.bm, 2)->claim, SEG_CLAIM_PENDING | 3);
        pub_n(&live, 2); /* 3, 4 */
        ck_assert_uint_eq(recv_check_release(&s), 0);
        ck_assert_uint_eq(recv_check_release(&s), 1);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN); /* the hole at 2 */
        /* While a live producer is between intent and record, the hole
         * could be its own: the broker must wait. */
        struct seg_prod *el = seg_prod(&t.bm, 1);
        store_sc(&el->claim, SEG_CLAIM_PENDING | 5);
        ck_assert_int_eq(ring_prod_evict(&t.bm, 0), -EAGAIN);
        store_sc(&el->claim, SEG_CLAIM_NONE);
        /* The broker repairs both dead producers, retrying as it does;
         * nothing else changes meanwhile, so a few rounds must do. */
        int r0 = -EAGAIN, r2 = -EAGAIN;
        for (int round = 0; round < 4 && (r0 || r2); round++) {
                if (r0)
                        r0 = ring_prod_evict(&t.bm, 0);
                if (r2)
                        r2 = ring_prod_evict(&t.bm, 2);
        }
        ck_assert_msg(r0 == 0 && r2 == 0,
                      "two producers that died mid-claim block each other's repair (evict: %d, %d)", r0, r2);
        ck_assert_uint_eq(ld32(&seg_prod(&t.bm, 0)->state), SEG_ENTRY_FREE);
        ck_assert_uint_eq(ld32(&seg_prod(&t.bm, 2)->state), SEG_ENTRY_FREE);
        for (uint64_t q = 3; q <= 4; q++)
                ck_assert_uint_eq(recv_check_release(&s), q);
        for (unsigned i = 0; i < 20; i++) {
                ck_assert_int_eq(pub_one(&live, 0, &seq), 0);
                ck_assert_uint_eq(recv_check_release(&s), seq);
        }
        ck_assert_uint_eq(seq, 24);
        ring_pub_deinit(&live);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_pub_deinit_abandons_unpublished_claims) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 2, 1);
        struct topic t;
        struct ring_pub a, b;
        struct ring_sub s;
        uint64_t held[4], seq;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &a, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_start(&t, &b, 1, ZCBUS_WAIT_ADAPTIVE);
        ck_assert_int_eq(ring_pub_claim(&a, 3, 0, &seq), 0);
        ck_assert_uint_eq(seq, 0);
        fill_publish(&a, 0);
        ring_pub_deinit(&a); /* 1 and 2 never written */
        ck_assert_uint_eq(recv_check_release(&s), 0);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
        for (unsigned i = 0; i < 20; i++) {
                ck_assert_int_eq(pub_one(&b, 0, &seq), 0);
                ck_assert_uint_eq(seq, 3 + i);
                ck_assert_uint_eq(recv_check_release(&s), seq);
        }
        ring_pub_deinit(&b);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_corrupt_slot_length_fails_recv_with_ebadmsg) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        static const uint32_t bad[] = {33, 64, UINT32_MAX};
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4], seq;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(pub_one(&pub, 0, &seq), 0);
                /* A hostile producer rewrites the length after publishing. */
                seg_slot(&t.bm, seq)->len = bad[i];
                memset(&m, 0, sizeof(m));
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EBADMSG);
                ck_assert_uint_eq(s.nheld, 0);
                /* The topic goes on with the next message. */
                ck_assert_int_eq(pub_one(&pub, 0, &seq), 0);
                ck_assert_uint_eq(recv_check_release(&s), seq);
        }
        /* Exactly slot_size is fine. */
        ck_assert_int_eq(ring_pub_claim(&pub, 1, 0, &seq), 0);
        pattern_fill(ring_pub_payload(&pub, seq), 32, 0);
        ring_pub_publish(&pub, seq, 32, 0);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), 1);
        ck_assert_uint_eq(m.len, 32);
        ck_assert_int_lt(pattern_check(m.data, 32, 0), 0);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

static Suite *ring_repair_suite(void) {
        Suite *s = suite_create("ring_repair");
        TCase *tc;

        tc = tcase_create("repair");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_evicting_a_stalled_subscriber_unblocks_a_waiting_producer);
        tcase_add_test(tc, test_closing_a_subscriber_stops_it_gating_producers);
        tcase_add_test(tc, test_evicted_producer_claim_is_skipped_and_the_topic_continues);
        tcase_add_test(tc, test_producer_eviction_waits_until_the_abandoned_slot_is_free);
        tcase_add_test(tc, test_producer_dead_between_intent_and_claim_record_leaves_a_hole_the_broker_fills);
        tcase_add_test(tc, test_pub_deinit_abandons_unpublished_claims);
        tcase_add_test(tc, test_corrupt_slot_length_fails_recv_with_ebadmsg);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        require_memfd_sealing(); /* exits 77 without it */
        return RUN_SUITE(ring_repair_suite()) ? 1 : 0;
}
