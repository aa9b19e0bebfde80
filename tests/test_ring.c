/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c: Check suite "ring", the data plane on a mapped topic.
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


/* ------------------------------------------------------------ index */

START_TEST(test_prev_stamp_and_slot_index_wrap_at_every_boundary) {
        static const uint64_t seqs[] = {
                0, 1, 7, 8, 9, 255, 256,
                (UINT64_C(1) << 32) - 2, (UINT64_C(1) << 32) - 1, UINT64_C(1) << 32, (UINT64_C(1) << 32) + 1,
                (UINT64_C(1) << 62) + (UINT64_C(1) << 32) - 1000,
                SEG_SEQ_LIMIT - 9, SEG_SEQ_LIMIT - 1, SEG_SEQ_LIMIT,
        };
        struct seg_params p = params(256, 64, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;

        ck_assert_uint_eq(seg_stamp(0), 1);
        ck_assert_uint_eq(seg_stamp(SEG_SEQ_LIMIT), SEG_STAMP_SEQ_MASK);
        ck_assert_uint_eq(seg_stamp(SEG_SEQ_LIMIT) & SEG_STAMP_WRITING, 0);
        ck_assert_uint_eq(seg_prev_stamp(0, 8), 0);
        ck_assert_uint_eq(seg_prev_stamp(7, 8), 0);
        ck_assert_uint_eq(seg_prev_stamp(8, 8), 1);
        ck_assert_uint_eq(seg_prev_stamp(9, 8), 2);
        ck_assert_uint_eq(seg_prev_stamp(UINT64_C(1) << 32, 8), (UINT64_C(1) << 32) - 7);
        ck_assert_uint_eq(seg_prev_stamp((UINT64_C(1) << 32) + 3, 1u << 24), (UINT64_C(1) << 32) + 3 - (1u << 24) + 1);
        ck_assert_uint_eq(seg_prev_stamp(SEG_SEQ_LIMIT, 8), SEG_SEQ_LIMIT - 7);
        ck_assert_uint_eq(seg_prev_stamp(SEG_SEQ_LIMIT, SEG_SLOT_COUNT_MAX), SEG_SEQ_LIMIT - SEG_SLOT_COUNT_MAX + 1);
        for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
                uint64_t s = seqs[i];
                /* The previous lap's stamp is the stamp of s - count. */
                if (s >= 8)
                        ck_assert_uint_eq(seg_prev_stamp(s, 8), seg_stamp(s - 8));
        }

        topic_open(&t, &p);
        uint8_t *base = t.bm.ring + t.bm.g.slots_offset;
        for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
                uint64_t s = seqs[i];
                uint8_t *sl = (uint8_t *)seg_slot(&t.bm, s);
                ck_assert_ptr_eq(sl, base + (s % 256) * t.bm.g.slot_stride);
                ck_assert_ptr_eq((void *)seg_slot(&t.bm, s + 256), sl);
                ck_assert_ptr_eq(seg_payload((struct seg_slot *)sl), sl + SEG_SLOT_DESC);
                ck_assert((uint64_t)(sl + t.bm.g.slot_stride - t.bm.ring) <= t.bm.g.ring_size);
        }
        /* Masking keeps any sequence, even a nonsense one, inside the ring. */
        ck_assert_ptr_eq((void *)seg_slot(&t.bm, UINT64_MAX), base + 255 * t.bm.g.slot_stride);
        topic_close(&t);
}
END_TEST

struct wrap_ctx {
        struct ring_sub *s;
        uint64_t start;
        _Atomic uint64_t total; /* messages to read; unknown (max) at first */
};

static void *wrap_reader(void *arg) {
        struct wrap_ctx *x = arg;
        struct ring_sub *s = x->s;
        uint64_t expect = x->start;
        zcbus_msg m;

        while (expect - x->start < atomic_load_explicit(&x->total, memory_order_acquire)) {
                int r = ring_sub_recv(s, &m, 1, TIMEOUT_FOREVER);
                FAST_CHECK(r == 1, "recv %llu: %d", (unsigned long long)(expect - x->start), r);
                FAST_CHECK(m.seq == expect, "got seq %#llx, want %#llx", (unsigned long long)m.seq,
                           (unsigned long long)expect);
                check_msg(&m, s->m->g.slot_size);
                FAST_EQ(ring_sub_release(s, &m.seq, 1), 0);
                expect++;
        }
        return NULL;
}

START_TEST(test_traffic_crosses_32bit_sequence_and_futex_word_wraparound) {
        struct seg_params p = params(64, 48, ZCBUS_POLICY_RELIABLE, 2, 2);
        const uint32_t word0 = UINT32_MAX - 100;
        const uint64_t bulk = 5000;
        struct wrap_ctx x = {.total = UINT64_MAX};
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4];
        pthread_t th;

        p.start_seq = (UINT64_C(1) << 62) + (UINT64_C(1) << 32) - 1000;
        p.data_word_start = word0;
        x.start = p.start_seq;
        x.s = &s;
        topic_open(&t, &p);
        FAST_EQ(ring_head(&t.bm), p.start_seq);
        FAST_EQ(ld32(&seg_ring_notify(&t.bm)->data_word), word0);
        FAST_EQ(ld32(&seg_subs_notify(&t.bm, 0)->data_word), word0);

        /* FUTEX mode: the reader sleeps at once whenever the ring is empty.
         * Its entry exists before the first claim, so it sees everything. */
        sub_start(&t, &s, 0, 0, 4, held, ZCBUS_WAIT_FUTEX);
        FAST_EQ(pthread_create(&th, NULL, wrap_reader, &x), 0);
        pub_start(&t, &pub, 0, ZCBUS_WAIT_ADAPTIVE);

        /* Publish each message only once the reader has taken the one
         * before and announced that it sleeps again, so that every commit
         * bumps the futex word, until the word has wrapped past 2^32. */
        struct seg_subs_notify *sn = seg_subs_notify(&t.bm, 0);
        struct seg_sub *me = seg_sub(&t.bm, 0, 0);
        uint64_t rounds = 0;
        /* The reader's word: its table's. */
        while (load_rlx(&seg_subs_notify(&t.bm, 0)->data_word) >= word0) {
                FAST_CHECK(rounds < 100000, "data word stuck at %#x after %llu wake-ups",
                           load_rlx(&seg_subs_notify(&t.bm, 0)->data_word), (unsigned long long)rounds);
                while (load_rlx(&me->next) != x.start + rounds || load_sc(&sn->data_armed) == 0)
                        (void)sched_yield();
                FAST_EQ(pub_one(&pub, TIMEOUT_FOREVER, NULL), 0);
                rounds++;
        }
        ck_assert_uint_ge(rounds, 101);
        /* Then enough traffic to carry the low 32 bits of the sequence
         * across 2^32 (1000 messages in) and lap the ring many times. */
        atomic_store_explicit(&x.total, rounds + bulk, memory_order_release);
        for (uint64_t i = 0; i < bulk; i++)
                FAST_EQ(pub_one(&pub, TIMEOUT_FOREVER, NULL), 0);
        FAST_EQ(pthread_join(th, NULL), 0);

        uint64_t end = p.start_seq + rounds + bulk;
        FAST_EQ(ring_head(&t.bm), end);
        FAST_EQ(end >> 32, (p.start_seq >> 32) + 1); /* crossed a 2^32 boundary */
                FAST_EQ(ld64(&me->received), rounds + bulk);
        ring_sub_deinit(&s);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

/* Put a fresh ring in the state it would be in with the head at seq h:
 * what seg_create does for start_seq, for a start past what it allows. */
static void rebase_ring(struct topic *t, uint64_t h) {
        const struct seg_map *m = &t->bm;
        store_sc(&seg_head(m)->head, h);
        for (uint64_t s = h; s < h + m->g.slot_count; s++) {
                struct seg_slot *sl = seg_slot(m, s);
                sl->flags = SEG_SLOT_ABANDONED;
                store_sc(&sl->stamp, seg_prev_stamp(s, m->g.slot_count));
        }
}

START_TEST(test_claims_past_the_sequence_limit_fail_with_eoverflow) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[16], seq, last = 0;
        unsigned ok = 0;
        int r = 0;

        p.start_seq = SEG_SEQ_LIMIT - (UINT64_C(1) << 40);
        topic_open(&t, &p);
        rebase_ring(&t, SEG_SEQ_LIMIT - 5);
        sub_start(&t, &s, 0, 0, 16, held, ZCBUS_WAIT_ADAPTIVE);
        pub_start(&t, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        for (unsigned i = 0; i < 7; i++) {
                r = pub_one(&pub, 0, &seq);
                if (r < 0)
                        break;
                ck_assert_uint_le(seq, SEG_SEQ_LIMIT);
                last = seq;
                ok++;
        }
        ck_assert_msg(r == -EOVERFLOW, "claim after %u messages: %d, want -EOVERFLOW", ok, r);
        ck_assert_uint_ge(ok, 5); /* LIMIT-5 .. at least LIMIT-1 were handed out */
        /* It stays refused: the counter never wraps to small sequences. */
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EOVERFLOW);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EOVERFLOW);
        /* Everything handed out is delivered, in order. */
        for (uint64_t q = SEG_SEQ_LIMIT - 5; q <= last; q++)
                ck_assert_uint_eq(recv_check_release(&s), q);
        zcbus_msg m;
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
        topic_close(&t);
}
END_TEST

/* ------------------------------------------------------- one to one */

struct spsc_ctx {
        struct topic *t;
        uint64_t n;
        uint64_t start;
};

static void *spsc_producer(void *arg) {
        struct spsc_ctx *x = arg;
        struct ring_pub p;
        uint64_t sent = 0, seq;

        pub_start(x->t, &p, 0, ZCBUS_WAIT_ADAPTIVE);
        while (sent < x->n) {
                /* Mostly single claims, sometimes a batch of up to 8. */
                uint32_t k = (sent % 7 == 0) ? (uint32_t)(1 + sent % 8) : 1;
                if (k > x->n - sent)
                        k = (uint32_t)(x->n - sent);
                int r = ring_pub_claim(&p, k, TIMEOUT_FOREVER, &seq);
                FAST_CHECK(r == 0, "claim: %d", r);
                FAST_EQ(seq, x->start + sent);
                for (uint32_t i = 0; i < k; i++)
                        fill_publish(&p, seq + i);
                ring_pub_notify(&p);
                sent += k;
        }
        ring_pub_deinit(&p);
        return NULL;
}

START_TEST(test_one_producer_one_subscriber_pass_a_million_messages_in_order) {
        struct seg_params p = params(1024, 64, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct spsc_ctx x = {.n = test_scaled(1000000), .start = 5};
        struct topic t;
        struct ring_sub s;
        uint64_t held[16], expect;
        zcbus_msg msgs[16];
        pthread_t th;

        p.start_seq = 5;
        topic_open(&t, &p);
        x.t = &t;
        sub_start(&t, &s, 0, 0, 16, held, ZCBUS_WAIT_ADAPTIVE);
        FAST_EQ(pthread_create(&th, NULL, spsc_producer, &x), 0);
        expect = x.start;
        while (expect < x.start + x.n) {
                int r = ring_sub_recv(&s, msgs, 16, TIMEOUT_FOREVER);
                FAST_CHECK(r >= 1 && r <= 16, "recv: %d", r);
                uint64_t seqs[16];
                for (int i = 0; i < r; i++) {
                        FAST_CHECK(msgs[i].seq == expect, "got seq %llu, want %llu",
                                   (unsigned long long)msgs[i].seq, (unsigned long long)expect);
                        FAST_EQ(msgs[i].lost, 0);
                        check_msg(&msgs[i], 64);
                        seqs[i] = msgs[i].seq;
                        expect++;
                }
                FAST_EQ(ring_sub_release(&s, seqs, (uint32_t)r), 0);
        }
        FAST_EQ(pthread_join(th, NULL), 0);
        FAST_EQ(ring_sub_recv(&s, msgs, 1, 0), -EAGAIN);
        FAST_EQ(ld64(&seg_sub(&t.bm, 0, 0)->received), x.n);
        FAST_EQ(ld64(&seg_prod(&t.bm, 0)->published), x.n);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

/* ---------------------------------------------------- many to many */

#define MP_PRODUCERS 3
#define MP_SUBS 3

struct mp_ctx {
        struct topic *t;
        uint64_t per_producer;
        uint64_t start;
        pthread_barrier_t go;
};

struct mp_arg {
        struct mp_ctx *x;
        uint32_t index;
};

/* Message: 8-byte tag (producer << 48 | its counter), then pattern(seq). */
static void mp_fill(struct ring_pub *p, uint64_t seq, uint64_t tag) {
        uint32_t size = p->m->g.slot_size;
        size_t len = pattern_len(seq, 16, size);
        uint8_t *b = ring_pub_payload(p, seq);
        memcpy(b, &tag, 8);
        pattern_fill(b + 8, len - 8, seq);
        ring_pub_publish(p, seq, (uint32_t)len, seq * 3);
}

static void *mp_producer(void *arg) {
        struct mp_arg *a = arg;
        struct ring_pub p;
        uint64_t seq;

        pub_start(a->x->t, &p, a->index, ZCBUS_WAIT_ADAPTIVE);
        (void)pthread_barrier_wait(&a->x->go);
        for (uint64_t i = 0; i < a->x->per_producer;) {
                uint32_t k = (i % 5 == 0) ? 3 : 1;
                if (k > a->x->per_producer - i)
                        k = (uint32_t)(a->x->per_producer - i);
                int r = ring_pub_claim(&p, k, TIMEOUT_FOREVER, &seq);
                FAST_CHECK(r == 0, "producer %u claim: %d", a->index, r);
                for (uint32_t j = 0; j < k; j++)
                        mp_fill(&p, seq + j, (uint64_t)a->index << 48 | (i + j));
                ring_pub_notify(&p);
                i += k;
        }
        ring_pub_deinit(&p);
        return NULL;
}

static void *mp_subscriber(void *arg) {
        struct mp_arg *a = arg;
        struct ring_sub s;
        uint64_t held[8], expect = a->x->start;
        uint64_t next_count[MP_PRODUCERS] = {0};
        const uint64_t total = a->x->per_producer * MP_PRODUCERS;
        zcbus_msg msgs[8];

        sub_start(a->x->t, &s, a->index, 0, 8, held, ZCBUS_WAIT_ADAPTIVE);
        (void)pthread_barrier_wait(&a->x->go);
        while (expect < a->x->start + total) {
                int r = ring_sub_recv(&s, msgs, 1 + (uint32_t)(expect % 8), TIMEOUT_FOREVER);
                FAST_CHECK(r >= 1, "subscriber %u recv: %d", a->index, r);
                uint64_t seqs[8];
                for (int i = 0; i < r; i++) {
                        const zcbus_msg *m = &msgs[i];
                        uint64_t tag;
                        FAST_CHECK(m->seq == expect, "subscriber %u: got seq %llu, want %llu", a->index,
                                   (unsigned long long)m->seq, (unsigned long long)expect);
                        FAST_EQ(m->len, pattern_len(m->seq, 16, 96));
                        memcpy(&tag, m->data, 8);
                        uint32_t prod = (uint32_t)(tag >> 48);
                        FAST_CHECK(prod < MP_PRODUCERS, "bad producer tag %#llx", (unsigned long long)tag);
                        FAST_CHECK((tag & 0xffffffffffffu) == next_count[prod],
                                   "producer %u: message %llu arrived when %llu was due", prod,
                                   (unsigned long long)(tag & 0xffffffffffffu),
                                   (unsigned long long)next_count[prod]);
                        next_count[prod]++;
                        long bad = pattern_check((const uint8_t *)m->data + 8, m->len - 8, m->seq);
                        FAST_CHECK(bad < 0, "seq %llu: byte %ld wrong", (unsigned long long)m->seq, bad + 8);
                        seqs[i] = m->seq;
                        expect++;
                }
                FAST_EQ(ring_sub_release(&s, seqs, (uint32_t)r), 0);
        }
        for (uint32_t i = 0; i < MP_PRODUCERS; i++)
                FAST_EQ(next_count[i], a->x->per_producer);
        ring_sub_deinit(&s);
        return NULL;
}

START_TEST(test_many_producers_many_subscribers_see_every_sequence_once_in_order) {
        struct seg_params p = params(256, 96, ZCBUS_POLICY_RELIABLE, 4, 4);
        struct mp_ctx x = {.per_producer = test_scaled(100000), .start = 0};
        struct mp_arg pa[MP_PRODUCERS], sa[MP_SUBS];
        pthread_t pt[MP_PRODUCERS], st[MP_SUBS];
        struct topic t;

        topic_open(&t, &p);
        x.t = &t;
        ck_assert_int_eq(pthread_barrier_init(&x.go, NULL, MP_PRODUCERS + MP_SUBS), 0);
        /* Subscriber entries and floors exist before any claim (barrier). */
        for (uint32_t i = 0; i < MP_SUBS; i++) {
                sa[i] = (struct mp_arg){.x = &x, .index = i};
                ck_assert_int_eq(pthread_create(&st[i], NULL, mp_subscriber, &sa[i]), 0);
        }
        for (uint32_t i = 0; i < MP_PRODUCERS; i++) {
                pa[i] = (struct mp_arg){.x = &x, .index = i};
                ck_assert_int_eq(pthread_create(&pt[i], NULL, mp_producer, &pa[i]), 0);
        }
        for (uint32_t i = 0; i < MP_PRODUCERS; i++)
                ck_assert_int_eq(pthread_join(pt[i], NULL), 0);
        for (uint32_t i = 0; i < MP_SUBS; i++)
                ck_assert_int_eq(pthread_join(st[i], NULL), 0);
        ck_assert_uint_eq(ring_head(&t.bm), x.per_producer * MP_PRODUCERS);
        (void)pthread_barrier_destroy(&x.go);
        topic_close(&t);
}
END_TEST

/* Subscribers that join while producers run (ordering point G) never get
 * a message that is overwritten while they read it, and never a gap. */
struct join_ctx {
        struct topic *t;
        _Atomic int stop;
};

static void *join_producer(void *arg) {
        struct join_ctx *x = arg;
        struct ring_pub p;

        pub_start(x->t, &p, 0, ZCBUS_WAIT_ADAPTIVE);
        while (!atomic_load_explicit(&x->stop, memory_order_acquire)) {
                /* Bounded waits, so that the stop flag is seen. */
                int r = pub_one(&p, 20, NULL);
                FAST_CHECK(r == 0 || r == -ETIMEDOUT, "claim: %d", r);
        }
        ring_pub_deinit(&p);
        return NULL;
}

START_TEST(test_subscribers_joining_mid_stream_never_see_gaps_or_overwrites) {
        struct seg_params p = params(16, 128, ZCBUS_POLICY_RELIABLE, 1, 2);
        struct join_ctx x = {0};
        const unsigned joins = (unsigned)test_scaled(300), per_join = 200;
        struct topic t;
        pthread_t th;

        topic_open(&t, &p);
        x.t = &t;
        FAST_EQ(pthread_create(&th, NULL, join_producer, &x), 0);
        for (unsigned j = 0; j < joins; j++) {
                struct ring_sub s;
                uint64_t held[4], prev = 0;
                zcbus_msg m;
                /* Alternate entries, and ask for history now and then. */
                sub_start(&t, &s, j % 2, j % 3 == 0 ? 16 : 0, 4, held, ZCBUS_WAIT_ADAPTIVE);
                for (unsigned i = 0; i < per_join; i++) {
                        int r = ring_sub_recv(&s, &m, 1, TIMEOUT_FOREVER);
                        FAST_CHECK(r == 1, "join %u recv %u: %d", j, i, r);
                        FAST_CHECK(i == 0 || m.seq == prev + 1, "join %u: seq %llu after %llu", j,
                                   (unsigned long long)m.seq, (unsigned long long)prev);
                        check_msg(&m, 128);
                        prev = m.seq;
                        FAST_EQ(ring_sub_release(&s, &m.seq, 1), 0);
                }
                ring_sub_deinit(&s);
                ring_sub_evict(&t.bm, j % 2, 0);
        }
        atomic_store_explicit(&x.stop, 1, memory_order_release);
        FAST_EQ(pthread_join(th, NULL), 0);
        topic_close(&t);
}
END_TEST

/* ---------------------------------------------------------- history */

START_TEST(test_history_gives_a_late_subscriber_exactly_the_last_k) {
        static const uint32_t policies[] = {ZCBUS_POLICY_RELIABLE, ZCBUS_POLICY_LATEST};

        for (int pi = 0; pi < 2; pi++) {
                struct seg_params p = params(32, 40, policies[pi], 1, 4);
                struct topic t;
                struct ring_pub pub;
                struct ring_sub s;
                uint64_t held[64];
                zcbus_msg m;

                p.start_seq = 1000;
                topic_open(&t, &p);
                pub_start(&t, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
                /* Only 5 published yet: history 10 gets those 5. */
                pub_n(&pub, 5);
                sub_start(&t, &s, 0, 10, 64, held, ZCBUS_WAIT_ADAPTIVE);
                for (uint64_t q = 1000; q < 1005; q++)
                        ck_assert_uint_eq(recv_check_release(&s), q);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
                ring_sub_deinit(&s);
                ring_sub_evict(&t.bm, 0, 0);

                /* 100 published (more than the ring holds). */
                pub_n(&pub, 95);
                sub_start(&t, &s, 0, 10, 64, held, ZCBUS_WAIT_ADAPTIVE);
                for (uint64_t q = 1090; q < 1100; q++)
                        ck_assert_uint_eq(recv_check_release(&s), q);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
                /* ... and then whatever comes next. */
                pub_n(&pub, 1);
                ck_assert_uint_eq(recv_check_release(&s), 1100);
                ring_sub_deinit(&s);
                ring_sub_evict(&t.bm, 0, 0);

                /* history 0: only what is published from now on. */
                sub_start(&t, &s, 1, 0, 64, held, ZCBUS_WAIT_ADAPTIVE);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
                pub_n(&pub, 1);
                ck_assert_uint_eq(recv_check_release(&s), 1101);
                ring_sub_deinit(&s);
                ring_sub_evict(&t.bm, 1, 0);

                /* More than the ring holds: at most a ring's worth, ending
                 * with the newest, no gaps, nothing lost reported. */
                sub_start(&t, &s, 2, 1000, 64, held, ZCBUS_WAIT_ADAPTIVE);
                uint64_t first = 0, prev = 0;
                unsigned got = 0;
                for (;;) {
                        int r = ring_sub_recv(&s, &m, 1, 0);
                        if (r == -EAGAIN)
                                break;
                        ck_assert_int_eq(r, 1);
                        check_msg(&m, 40);
                        ck_assert_uint_eq(m.lost, 0);
                        if (got++ == 0)
                                first = m.seq;
                        else
                                ck_assert_uint_eq(m.seq, prev + 1);
                        prev = m.seq;
                        ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), 0);
                }
                ck_assert_uint_eq(prev, 1101);
                ck_assert_uint_le(got, 32);
                ck_assert_uint_ge(got, 31);
                ck_assert_uint_eq(first, 1102 - got);
                ring_sub_deinit(&s);
                ring_pub_deinit(&pub);
                topic_close(&t);
        }
}
END_TEST

/* ------------------------------------------------------------ holds */

START_TEST(test_holds_beyond_max_fail_with_enobufs_and_release_in_any_order) {
        struct seg_params p = params(16, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4];
        zcbus_msg m[8];

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 10);
        ck_assert_int_eq(ring_sub_recv(&s, &m[0], 1, 0), 1);
        ck_assert_int_eq(ring_sub_recv(&s, &m[1], 2, 0), 2); /* m[1], m[2] */
        /* A batch stops at the hold limit ... */
        ck_assert_int_eq(ring_sub_recv(&s, &m[3], 4, 0), 1);
        /* ... and with the limit reached nothing more is handed out. */
        ck_assert_int_eq(ring_sub_recv(&s, &m[4], 1, 0), -ENOBUFS);
        ck_assert_int_eq(ring_sub_recv(&s, &m[4], 1, TIMEOUT_FOREVER), -ENOBUFS);
        for (int i = 0; i < 4; i++) {
                ck_assert_uint_eq(m[i].seq, (uint64_t)i);
                check_msg(&m[i], 32);
        }
        ck_assert_uint_eq(ld32(&seg_sub(&t.bm, 0, 0)->held), 4);

        /* Release out of order; held messages stay intact meanwhile. */
        ck_assert_int_eq(ring_sub_release(&s, &m[2].seq, 1), 0);
        ck_assert_int_eq(ring_sub_recv(&s, &m[4], 1, 0), 1);
        ck_assert_uint_eq(m[4].seq, 4);
        ck_assert_int_eq(ring_sub_release(&s, &m[0].seq, 1), 0);
        uint64_t pair[2] = {m[3].seq, m[1].seq};
        ck_assert_int_eq(ring_sub_release(&s, pair, 2), 0);
        check_msg(&m[4], 32);
        ck_assert_int_eq(ring_sub_release(&s, &m[4].seq, 1), 0);
        ck_assert_uint_eq(ld32(&seg_sub(&t.bm, 0, 0)->held), 0);
        /* Everything released: the subscriber gates at its cursor only. */
        ck_assert_uint_eq(ld64(&seg_sub(&t.bm, 0, 0)->floor), 5);
        for (uint64_t q = 5; q < 10; q++)
                ck_assert_uint_eq(recv_check_release(&s), q);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_releasing_a_sequence_not_held_fails_with_enoent) {
        struct seg_params p = params(16, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4], never = 12345, none = 0;
        zcbus_msg m;

        topic_open(&t, &p);
        sub_start(&t, &s, 0, 0, 4, held, ZCBUS_WAIT_ADAPTIVE);
        ck_assert_int_eq(ring_sub_release(&s, &none, 1), -ENOENT);
        pub_start(&t, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 2);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), 1);
        ck_assert_int_eq(ring_sub_release(&s, &never, 1), -ENOENT);
        uint64_t one = 1; /* published but not received */
        ck_assert_int_eq(ring_sub_release(&s, &one, 1), -ENOENT);
        ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), 0);
        ck_assert_int_eq(ring_sub_release(&s, &m.seq, 1), -ENOENT); /* twice */
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

START_TEST(test_failed_release_batch_leaves_holds_and_floor_consistent) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[8], seq;
        zcbus_msg m[8];

        topic_open_sub_pub(&t, &p, &s, 0, 8, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 8);
        ck_assert_int_eq(ring_sub_recv(&s, m, 8, 0), 8);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EAGAIN); /* seq 0 held: full */
        uint64_t batch[2] = {m[0].seq, 999};
        ck_assert_int_eq(ring_sub_release(&s, batch, 2), -ENOENT);
        /* Either the batch was refused as a whole (seq 0 still held, and
         * releasing it works) or seq 0 was released and the shared floor
         * says so (the producer has room for seq 8). Not half of each. */
        int again = ring_sub_release(&s, &m[0].seq, 1);
        int room = ring_pub_claim(&pub, 1, 0, &seq);
        ck_assert_msg(again == 0 || room == 0,
                      "after a failed batch release seq 0 is neither held (release: %d) "
                      "nor freed for producers (claim: %d): the shared floor is stale",
                      again, room);
        topic_close(&t);
}
END_TEST

/* A reliable subscriber whose oldest hold is a whole ring behind its
 * cursor would wait on itself (found by the protocol model): recv says
 * -ENOBUFS at once instead of sleeping until its timeout. */
START_TEST(test_a_hold_a_ring_behind_the_cursor_fails_recv_with_enobufs) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[4];
        zcbus_msg first, m;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        pub_n(&pub, 8);
        ck_assert_int_eq(ring_sub_recv(&s, &first, 1, 0), 1); /* seq 0, kept */
        for (int i = 1; i < 8; i++)
                (void)recv_check_release(&s);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -ENOBUFS);
        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 10000), -ENOBUFS);
        ck_assert_int_eq(ring_sub_release(&s, &first.seq, 1), 0);
        pub_n(&pub, 1);
        ck_assert_uint_eq(recv_check_release(&s), 8);
        ring_sub_deinit(&s);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

/* --------------------------------------------------------- timeouts */

START_TEST(test_recv_on_an_empty_ring_returns_eagain_or_etimedout) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 1);
        static const uint32_t modes[] = {ZCBUS_WAIT_ADAPTIVE, ZCBUS_WAIT_SPIN, ZCBUS_WAIT_FUTEX};
        struct topic t;
        uint64_t held[2];
        zcbus_msg m;

        topic_open(&t, &p);
        for (int i = 0; i < 3; i++) {
                struct ring_sub s;
                sub_start(&t, &s, 0, 0, 2, held, modes[i]);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
                ck_assert(!ring_sub_ready(&s));
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 10), -ETIMEDOUT);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 0, 0), -EINVAL);
                ring_sub_deinit(&s);
                ring_sub_evict(&t.bm, 0, 0);
        }
        topic_close(&t);
}
END_TEST

START_TEST(test_full_reliable_ring_returns_eagain_or_etimedout_to_the_producer) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 2, 1);
        struct topic t;
        struct ring_pub pub;
        struct ring_sub s;
        uint64_t held[2];

        topic_open_sub_pub(&t, &p, &s, 0, 2, held, &pub, 0, ZCBUS_WAIT_FUTEX);
        pub_n(&pub, 8);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EAGAIN);
        ck_assert_int_eq(pub_one(&pub, 10, NULL), -ETIMEDOUT);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EAGAIN);
        /* The failed claims cost no sequence: the ring continues 8, 9, ... */
        ck_assert_uint_eq(recv_check_release(&s), 0);
        uint64_t seq;
        ck_assert_int_eq(pub_one(&pub, 0, &seq), 0);
        ck_assert_uint_eq(seq, 8);
        ck_assert_int_eq(pub_one(&pub, 0, NULL), -EAGAIN);
        for (uint64_t q = 1; q <= 8; q++)
                ck_assert_uint_eq(recv_check_release(&s), q);
        ck_assert_int_eq(ring_pub_claim(&pub, 0, 0, &seq), -EINVAL);
        ck_assert_int_eq(ring_pub_claim(&pub, 9, 0, &seq), -EINVAL);
        /* A batch claim needs room for all of it. */
        ck_assert_int_eq(ring_pub_claim(&pub, 8, 0, &seq), 0);
        ck_assert_uint_eq(seq, 9);
        for (uint32_t i = 0; i < 8; i++)
                fill_publish(&pub, seq + i);
        ring_pub_notify(&pub);
        ck_assert_int_eq(ring_pub_claim(&pub, 1, 0, &seq), -EAGAIN);
        ring_pub_deinit(&pub);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

/* A claim that waits for room, loses the freed slot to another producer
 * and waits again keeps one deadline for the whole call. */
struct race_ctx {
        struct topic *t;
        struct ring_sub *s;
        struct ring_pub *other;
        uint64_t taken;
        uint64_t freed;
};

static void *take_then_free(void *arg) {
        struct race_ctx *x = arg;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 600 * 1000000L};

        (void)nanosleep(&pause, NULL);
        /* The other producer takes the next sequence first ... */
        x->taken = ring_take_seqs(x->other, load_rlx(&seg_head(&x->t->pm)->head), 1);
        store_rel(&x->other->me->claim, x->taken);
        x->other->claim = x->taken;
        x->other->nclaim = 1;
        x->other->nwritten = 0;
        /* ... then the subscriber frees one slot. */
        x->freed = recv_check_release(x->s);
        return NULL;
}

START_TEST(test_a_claim_that_loses_a_race_for_room_times_out_once) {
        struct seg_params p = params(4, 32, ZCBUS_POLICY_RELIABLE, 2, 1);
        struct topic t;
        struct ring_pub a, c;
        struct ring_sub s;
        uint64_t held[4], seq;
        struct race_ctx x = {.t = &t, .s = &s, .other = &c};
        pthread_t th;

        topic_open_sub_pub(&t, &p, &s, 0, 4, held, &a, 0, ZCBUS_WAIT_FUTEX);
        pub_start(&t, &c, 1, ZCBUS_WAIT_FUTEX);
        pub_n(&a, 4);
        ck_assert_int_eq(pthread_create(&th, NULL, take_then_free, &x), 0);
        uint64_t t0 = now_ns();
        ck_assert_int_eq(ring_pub_claim(&a, 1, 1000, &seq), -ETIMEDOUT);
        uint64_t ms = (now_ns() - t0) / 1000000u;
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_uint_eq(x.taken, 4);
        ck_assert_uint_eq(x.freed, 0);
        /* 1000 ms in all, not 600 + a fresh 1000 after the lost race
         * (the margins are wide: a loaded machine runs this under TSan). */
        ck_assert_msg(ms >= 990 && ms < 1500, "claim with a 1000 ms timeout returned after %llu ms",
                      (unsigned long long)ms);
        ring_pub_deinit(&c);
        ring_pub_deinit(&a);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

static Suite *ring_suite(void) {
        Suite *s = suite_create("ring");
        TCase *tc;

        tc = tcase_create("index");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_prev_stamp_and_slot_index_wrap_at_every_boundary);
        tcase_add_test(tc, test_traffic_crosses_32bit_sequence_and_futex_word_wraparound);
        tcase_add_test(tc, test_claims_past_the_sequence_limit_fail_with_eoverflow);
        suite_add_tcase(s, tc);

        tc = tcase_create("reliable");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_one_producer_one_subscriber_pass_a_million_messages_in_order);
        tcase_add_test(tc, test_many_producers_many_subscribers_see_every_sequence_once_in_order);
        tcase_add_test(tc, test_subscribers_joining_mid_stream_never_see_gaps_or_overwrites);
        tcase_add_test(tc, test_history_gives_a_late_subscriber_exactly_the_last_k);
        tcase_add_test(tc, test_holds_beyond_max_fail_with_enobufs_and_release_in_any_order);
        tcase_add_test(tc, test_releasing_a_sequence_not_held_fails_with_enoent);
        tcase_add_test(tc, test_failed_release_batch_leaves_holds_and_floor_consistent);
        tcase_add_test(tc, test_a_hold_a_ring_behind_the_cursor_fails_recv_with_enobufs);
        tcase_add_test(tc, test_recv_on_an_empty_ring_returns_eagain_or_etimedout);
        tcase_add_test(tc, test_full_reliable_ring_returns_eagain_or_etimedout_to_the_producer);
        tcase_add_test(tc, test_a_claim_that_loses_a_race_for_room_times_out_once);
        suite_add_tcase(s, tc);


        return s;
}

int main(void) {
        require_memfd_sealing(); /* exits 77 without it */
        return RUN_SUITE(ring_suite()) ? 1 : 0;
}
