/* SPDX-License-Identifier: MIT */
/*
 * ring_fixture.h: what the ring suites share (test_ring.c, test_hostile.c):
 * a topic created with seg_create() and mapped three times, as the broker
 * (read-write), as producers (read-write) and as subscribers (ring
 * read-only through an O_RDONLY reopen, as a real subscriber gets it);
 * starting producers and subscribers the way the broker activates them;
 * publishing and checking messages whose every byte derives from their
 * sequence. Header-only, like harness.h's helpers.
 */
#ifndef ZCBUS_TEST_RING_FIXTURE_H
#define ZCBUS_TEST_RING_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h" /* header-only helpers: pattern_*, FAST_CHECK */
#include "ring_pub.h"
#include "ring_repair.h"
#include "ring_sub.h"
#include "seg.h"

#define TIMEOUT_FOREVER (-1)

/* ------------------------------------------------------------ fixtures */

struct topic {
        struct seg_map bm; /* broker's map */
        struct seg_map pm; /* producers' map */
        struct seg_map sm; /* subscribers' map: ring read-only */
};

static inline struct seg_params params(uint32_t count, uint32_t size, uint32_t policy, uint32_t maxp, uint32_t maxs) {
        struct seg_params p = {
                .slot_count = count,
                .slot_size = size,
                .policy = policy,
                .max_producers = maxp,
                .max_subs = maxs,
                .sub_tables = 1,
        };
        for (int i = 0; i < 16; i++) {
                p.segment_id[i] = (uint8_t)(i * 3 + 1);
                p.topic_id[i] = (uint8_t)(i * 5 + 2);
        }
        return p;
}

static inline void topic_open(struct topic *t, const struct seg_params *p) {
        int rfd, sfd, rofd, r;
        char path[64];

        r = seg_create(p, &rfd, &sfd);
        ck_assert_msg(r == 0, "seg_create: %s", strerror(-r));
        ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 1, &t->bm), 0);
        ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 1, &t->pm), 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
        rofd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(rofd, 0);
        ck_assert_int_eq(seg_map_fds(rofd, &sfd, 0, 1, 0, &t->sm), 0);
        (void)close(rofd);
        (void)close(rfd);
        (void)close(sfd);
}

static inline void topic_close(struct topic *t) {
        seg_unmap(&t->sm);
        seg_unmap(&t->pm);
        seg_unmap(&t->bm);
}

static inline struct wait_how wait_mode(uint32_t mode) {
        struct wait_how w;
        wait_how_init(&w, mode, 0);
        return w;
}

static inline void pub_start(struct topic *t, struct ring_pub *p, uint32_t index, uint32_t mode) {
        ring_prod_activate(&t->bm, index, (uint32_t)getpid());
        ring_pub_init(p, &t->pm, index, wait_mode(mode));
}

static inline void sub_start(struct topic *t, struct ring_sub *s, uint32_t index, uint32_t history, uint32_t max_holds,
                      uint64_t *held, uint32_t mode) {
        uint64_t start = ring_sub_register(&t->bm, index, 0, (uint32_t)getpid(), history);
        ck_assert_int_eq(ring_sub_init(s, &t->sm, index, 0, start, max_holds, held, wait_mode(mode)), 0);
}

/* The common start: open the topic, one adaptive subscriber (no history)
 * at sub_index, then one producer at pub_index. */
static inline void topic_open_sub_pub(struct topic *t, const struct seg_params *p, struct ring_sub *s, uint32_t sub_index,
                               uint32_t max_holds, uint64_t *held, struct ring_pub *pub, uint32_t pub_index,
                               uint32_t pub_mode) {
        topic_open(t, p);
        sub_start(t, s, sub_index, 0, max_holds, held, ZCBUS_WAIT_ADAPTIVE);
        pub_start(t, pub, pub_index, pub_mode);
}

/* Write the message for seq into its claimed slot and publish it. */
static inline void fill_publish(struct ring_pub *p, uint64_t seq) {
        uint32_t size = p->m->g.slot_size;
        size_t len = pattern_len(seq, 1, size);
        pattern_fill(ring_pub_payload(p, seq), len, seq);
        ring_pub_publish(p, seq, (uint32_t)len, seq * 3);
}

/* Claim, write, publish and notify one message; returns the claim result. */
static inline int pub_one(struct ring_pub *p, int timeout_ms, uint64_t *ret_seq) {
        uint64_t seq;
        int r = ring_pub_claim(p, 1, timeout_ms, &seq);
        if (r < 0)
                return r;
        fill_publish(p, seq);
        ring_pub_notify(p);
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

static inline void pub_n(struct ring_pub *p, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                ck_assert_int_eq(pub_one(p, 0, NULL), 0);
}

/* The message is the one published for its sequence, byte for byte. */
static inline void check_msg(const zcbus_msg *m, uint32_t slot_size) {
        size_t want = pattern_len(m->seq, 1, slot_size);
        FAST_CHECK(m->len == want, "seq %llu: len %zu, want %zu", (unsigned long long)m->seq, m->len, want);
        long bad = pattern_check(m->data, m->len, m->seq);
        FAST_CHECK(bad < 0, "seq %llu: payload byte %ld is wrong (torn or overwritten)",
                   (unsigned long long)m->seq, bad);
        FAST_CHECK(m->timestamp_ns == m->seq * 3, "seq %llu: timestamp %llu", (unsigned long long)m->seq,
                   (unsigned long long)m->timestamp_ns);
}

/* Receive one message without waiting, check it, release it. */
static inline uint64_t recv_check_release(struct ring_sub *s) {
        zcbus_msg m;
        int r = ring_sub_recv(s, &m, 1, 0);
        ck_assert_msg(r == 1, "ring_sub_recv: %d", r);
        check_msg(&m, s->m->g.slot_size);
        ck_assert_int_eq(ring_sub_release(s, &m.seq, 1), 0);
        return m.seq;
}

/* Shared words, read through functions so that failed assertions print
 * the expression as written rather than the expansion of an atomic. */
static inline uint32_t ld32(const au32 *w) {
        return load_sc(w);
}
static inline uint64_t ld64(const au64 *w) {
        return load_sc(w);
}

static inline void yield_until_nonzero(au32 *w) {
        while (load_sc(w) == 0)
                (void)sched_yield();
}

#endif
