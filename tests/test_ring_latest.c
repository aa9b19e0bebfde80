/* SPDX-License-Identifier: MIT */
/*
 * test_ring_latest.c: Check suite "ring_latest", the LATEST policy:
 * lapped readers, holds against overwrites, slow holders that never see a
 * torn message.
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


/* ----------------------------------------------------------- latest */

START_TEST(test_lapped_latest_subscriber_counts_what_it_lost) {
        struct seg_params p = params(16, 32, ZCBUS_POLICY_LATEST, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4], prev, received = 0, lost = 0;
        zcbus_msg m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        /* A LATEST producer never waits for a reader that holds nothing. */
        pub_n(&pub, 100);
        prev = UINT64_MAX; /* "before seq 0" */
        for (;;) {
                int r = ring_sub_recv(&s, &m, 1, 0);
                if (r == -EAGAIN)
                        break;
                ck_assert_int_eq(r, 1);
                check_msg(&m, 32);
                ck_assert_msg(m.seq == prev + 1 + m.lost, "seq %llu after %llu with lost %llu",
                              (unsigned long long)m.seq, (unsigned long long)prev, (unsigned long long)m.lost);
                received++;
                lost += m.lost;
                prev = m.seq;
                ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), 0);
        }
        ck_assert_uint_eq(prev, 99);
        ck_assert_uint_gt(lost, 0);
        ck_assert_uint_eq(received + lost, 100);
        ck_assert_uint_eq(ld64(&seg_sub(&t.bm, 0, 0)->lost), lost);
        ck_assert_uint_eq(ld64(&seg_sub(&t.bm, 0, 0)->received), received);
        ring_pub_deinit(&pub);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_latest_producer_never_waits_and_never_overwrites_a_held_message) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_LATEST, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4], seq = 0;
        zcbus_msg hold, m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 1);
        ck_assert_int_eq(ring_sub_recv(&s, &hold, 1, 0), 1);
        ck_assert_uint_eq(hold.seq, 0);
        /* Many laps while seq 0 is held: no claim waits, none writes it. */
        for (int i = 0; i < 50; i++) {
                int r = pub_one(&pub, 0, &seq);
                ck_assert_msg(r == 0, "LATEST claim %d with a held slot: %d", i, r);
                ck_assert_uint_ne(seq & 7, 0);
                check_msg(&hold, 32);
        }
        ck_assert_msg(ring_held(&t.bm, 0), "the held slot is not marked held");
        ck_assert_int_eq(ring_sub_release(&s, &hold.seq, 1), 0);
        ck_assert_msg(!ring_held(&t.bm, 0), "the released slot is still marked held");
        /* Released: the reader catches up with the newest, never a torn one. */
        uint64_t prev = hold.seq;
        for (;;) {
                int r = ring_sub_recv(&s, &m, 1, 0);
                if (r == -EAGAIN)
                        break;
                ck_assert_int_eq(r, 1);
                ck_assert_uint_gt(m.seq, prev);
                check_msg(&m, 32);
                prev = m.seq;
                ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), 0);
        }
        ck_assert_uint_eq(prev, seq);
        /* The slot is reused once nobody holds it. */
        for (int i = 0; i < 8; i++)
                ck_assert_int_eq(pub_one(&pub, 0, NULL), 0);
        ck_assert_uint_eq(ld64(&seg_slot(&t.bm, 0)->stamp) & SEG_STAMP_SEQ_MASK,
                          seg_stamp(ring_head(&t.bm) - 1 - ((ring_head(&t.bm) - 1) & 7)));
        ring_pub_deinit(&pub);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_latest_hold_by_a_subscriber_past_the_first_64_protects_its_slot) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_LATEST, 1, 100);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4];
        zcbus_msg hold;

        topic_open_sub_pub(&t, &p, &s, 70, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 1);
        ck_assert_int_eq(ring_sub_recv(&s, &hold, 1, 0), 1);
        ck_assert_msg(ring_held(&t.bm, hold.seq), "subscriber 70's hold is not visible");
        for (int i = 0; i < 30; i++) {
                ck_assert_int_eq(pub_one(&pub, 0, NULL), 0);
                check_msg(&hold, 32);
        }
        ck_assert_int_eq(ring_sub_release(&s, &hold.seq, 1), 0);
        ck_assert(!ring_held(&t.bm, hold.seq));
        ring_sub_deinit(&s);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

/* LATEST messages carry the producer's count of committed messages in their
 * first 8 bytes (xor the pattern), so a reader can tell messages from
 * sequences: seqs stamped SKIPPED or ABANDONED are not messages. */
static void latest_fill(struct ring_pub *p, uint64_t seq, uint64_t count) {
        uint32_t size = p->m->g.slot_size;
        size_t len = pattern_len(seq, 16, size);
        uint8_t *b = ring_pub_payload(p, seq);
        uint64_t w;
        pattern_fill(b, len, seq);
        memcpy(&w, b, 8);
        w ^= count;
        memcpy(b, &w, 8);
        ring_pub_publish(p, seq, (uint32_t)len, seq * 3);
}

/* The count carried by a message, after checking all its other bytes. */
static uint64_t latest_check(const zcbus_msg *m, uint32_t slot_size) {
        uint8_t want[256];
        uint64_t w, x;

        FAST_CHECK(slot_size <= sizeof(want), "slot_size %u too big", slot_size);
        FAST_CHECK(m->len == pattern_len(m->seq, 16, slot_size), "seq %llu: len %zu",
                   (unsigned long long)m->seq, m->len);
        pattern_fill(want, m->len, m->seq);
        FAST_CHECK(memcmp((const uint8_t *)m->data + 8, want + 8, m->len - 8) == 0,
                   "seq %llu: payload torn or overwritten", (unsigned long long)m->seq);
        memcpy(&w, m->data, 8);
        memcpy(&x, want, 8);
        return w ^ x;
}

struct latest_ctx {
        struct topic *t;
        uint64_t n;
        pthread_barrier_t go;
};

struct latest_sub_arg {
        struct latest_ctx *x;
        uint32_t index;
        uint32_t holds; /* how many messages it keeps before releasing */
        uint32_t mode;
        uint64_t received, lost, skipped;
        char miscount[160]; /* the first message whose lost count is wrong */
};

static void *latest_producer(void *arg) {
        struct latest_ctx *x = arg;
        struct ring_pub p;
        uint64_t seq;

        pub_start(x->t, &p, 0, ZCBUS_WAIT_ADAPTIVE);
        (void)pthread_barrier_wait(&x->go);
        for (uint64_t i = 0; i < x->n; i++) {
                /* (Timeout 0 with held slots is the business of
                 * test_latest_producer_never_waits_...; here, the readers.)
                 * The long timeout is a safety net only: it turns a
                 * producer stuck behind held slots into a message. */
                int r = ring_pub_claim(&p, 1, 30000, &seq);
                if (r == -ETIMEDOUT) {
                        unsigned held = 0;
                        for (uint32_t k = 0; k < p.m->g.slot_count; k++)
                                held += ring_held(p.m, k);
                        ck_abort_msg("LATEST producer stuck in claim %llu for 30 s with %u of %u slots held "
                                     "(the holders are waiting for data)",
                                     (unsigned long long)i, held, p.m->g.slot_count);
                }
                FAST_CHECK(r == 0, "claim %llu: %d", (unsigned long long)i, r);
                latest_fill(&p, seq, i);
                ring_pub_notify(&p);
        }
        ring_pub_deinit(&p);
        return NULL;
}

static void *latest_subscriber(void *arg) {
        struct latest_sub_arg *a = arg;
        struct ring_sub s;
        uint64_t held[8], prev_seq = 0, prev_count = UINT64_MAX, prev_skipped = 0;
        zcbus_msg keep[8];
        uint32_t nkeep = 0;
        const uint64_t last = a->x->n - 1;

        sub_start(a->x->t, &s, a->index, 0, 8, held, a->mode);
        (void)pthread_barrier_wait(&a->x->go);
        for (;;) {
                zcbus_msg m;
                if (nkeep == a->holds) {
                        /* Before letting go of the oldest, check it again:
                         * held messages must not change under us. */
                        FAST_EQ(latest_check(&keep[0], 200), keep[0].timestamp_ns);
                        FAST_EQ(ring_sub_release(&s, &keep[0].seq, 1), 0);
                        memmove(keep, keep + 1, (nkeep - 1) * sizeof(keep[0]));
                        nkeep--;
                }
                int r = ring_sub_recv(&s, &m, 1, TIMEOUT_FOREVER);
                FAST_CHECK(r == 1, "subscriber %u recv: %d", a->index, r);
                uint64_t count = latest_check(&m, 200);
                FAST_CHECK(prev_count == UINT64_MAX || m.seq > prev_seq, "subscriber %u: seq %llu after %llu",
                           a->index, (unsigned long long)m.seq, (unsigned long long)prev_seq);
                FAST_CHECK(count > prev_count || prev_count == UINT64_MAX,
                           "subscriber %u: message %llu after %llu", a->index, (unsigned long long)count,
                           (unsigned long long)prev_count);
                /* Accounting is checked at the end, so that a miscount
                 * does not stop the torn-read checks. lost counts missed
                 * sequences: with the markers stepped over (slots a
                 * producer found held), it accounts for the whole gap; of
                 * the sequences missed, at most lost were messages. */
                uint64_t want_seq = prev_count == UINT64_MAX ? 0 : prev_seq + 1;
                uint64_t missed = prev_count == UINT64_MAX ? count : count - prev_count - 1;
                if ((m.seq != want_seq + m.lost + (s.skipped - prev_skipped) || missed > m.lost) &&
                    !a->miscount[0])
                        snprintf(a->miscount, sizeof(a->miscount),
                                 "message %llu (seq %llu) after %llu (seq %llu) reports lost %llu, markers %llu",
                                 (unsigned long long)count, (unsigned long long)m.seq,
                                 (unsigned long long)prev_count, (unsigned long long)prev_seq,
                                 (unsigned long long)m.lost, (unsigned long long)(s.skipped - prev_skipped));
                prev_skipped = s.skipped;
                a->received++;
                a->lost += m.lost;
                prev_seq = m.seq;
                prev_count = count;
                m.timestamp_ns = count; /* remember it for the re-check */
                keep[nkeep++] = m;
                for (uint32_t i = 0; i + 1 < nkeep; i++)
                        FAST_EQ(latest_check(&keep[i], 200), keep[i].timestamp_ns);
                if (count == last)
                        break;
        }
        for (uint32_t i = 0; i < nkeep; i++) {
                FAST_EQ(latest_check(&keep[i], 200), keep[i].timestamp_ns);
                FAST_EQ(ring_sub_release(&s, &keep[i].seq, 1), 0);
        }
        a->skipped = s.skipped;
        ring_sub_deinit(&s);
        return NULL;
}

START_TEST(test_latest_slow_subscribers_never_see_torn_messages_and_account_for_every_one) {
        struct seg_params p = params(16, 200, ZCBUS_POLICY_LATEST, 1, 3);
        struct latest_ctx x = {.n = test_scaled(200000)};
        struct latest_sub_arg sa[3] = {
                {.index = 0, .holds = 1, .mode = ZCBUS_WAIT_ADAPTIVE}, /* fast: releases at once */
                {.index = 1, .holds = 4, .mode = ZCBUS_WAIT_FUTEX},    /* slow: keeps and re-checks 4 */
                {.index = 2, .holds = 8, .mode = ZCBUS_WAIT_FUTEX},    /* slower still */
        };
        pthread_t pt, st[3];
        struct topic t;

        topic_open(&t, &p);
        x.t = &t;
        ck_assert_int_eq(pthread_barrier_init(&x.go, NULL, 4), 0);
        for (int i = 0; i < 3; i++) {
                sa[i].x = &x;
                ck_assert_int_eq(pthread_create(&st[i], NULL, latest_subscriber, &sa[i]), 0);
        }
        ck_assert_int_eq(pthread_create(&pt, NULL, latest_producer, &x), 0);
        ck_assert_int_eq(pthread_join(pt, NULL), 0);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(pthread_join(st[i], NULL), 0);
        }
        /* Every sequence handed out was a message or a marker for a held
         * slot; each subscriber received it, counted it lost, or stepped
         * over it as a marker. Without markers: received + lost ==
         * published, exactly. */
        uint64_t sequences = ring_head(&t.bm) - t.bm.g.start_seq;
        uint64_t markers = ld64(&seg_prod(&t.bm, 0)->skipped);
        ck_assert_uint_eq(sequences, x.n + markers);
        for (int i = 0; i < 3; i++) {
                ck_assert_msg(!sa[i].miscount[0], "subscriber %d: %s", i, sa[i].miscount);
                ck_assert_msg(sa[i].received + sa[i].lost + sa[i].skipped == sequences,
                              "subscriber %d: received %llu + lost %llu + markers %llu != sequences %llu", i,
                              (unsigned long long)sa[i].received, (unsigned long long)sa[i].lost,
                              (unsigned long long)sa[i].skipped, (unsigned long long)sequences);
                if (markers == 0)
                        ck_assert_uint_eq(sa[i].received + sa[i].lost, x.n);
                ck_assert_uint_eq(ld64(&seg_sub(&t.bm, 0, (uint32_t)i)->lost), sa[i].lost);
        }
        (void)pthread_barrier_destroy(&x.go);
        topic_close(&t);
}
END_TEST

static Suite *ring_latest_suite(void) {
        Suite *s = suite_create("ring_latest");
        TCase *tc;

        tc = tcase_create("latest");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_lapped_latest_subscriber_counts_what_it_lost);
        tcase_add_test(tc, test_latest_producer_never_waits_and_never_overwrites_a_held_message);
        tcase_add_test(tc, test_latest_hold_by_a_subscriber_past_the_first_64_protects_its_slot);
        tcase_add_test(tc, test_latest_slow_subscribers_never_see_torn_messages_and_account_for_every_one);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        require_memfd_sealing(); /* exits 77 without it */
        return RUN_SUITE(ring_latest_suite()) ? 1 : 0;
}
