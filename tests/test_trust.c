/* SPDX-License-Identifier: MIT */
/*
 * test_trust.c: Check suite "trust", the ring against peers that die at
 * the worst moment or scribble over the memory they share (issue 10's
 * demonstrated defects). Each case does the damage for real on a topic
 * mapped as the broker, producers and subscribers map it (ring_fixture.h),
 * with threads or forked processes as the peers, and checks what an
 * honest peer sees: every blocking call returns by its deadline, and no
 * death leaves a sleeper stranded or the topic slower.
 *
 * Nothing asserts on timing: a case that would hang fails by its own
 * receive deadline or by Check's timeout.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "killpoint.h"
#include "ring_fixture.h"

/* Wait until thread (or process) tid is asleep in the kernel: state S in
 * /proc. Used to do damage only once a sleeper has re-checked and slept. */
static void wait_until_sleeping(pid_t tid) {
        char path[64], buf[512];

        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
        if (access(path, R_OK) != 0)
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
        for (;;) {
                FILE *f = fopen(path, "r");
                ck_assert_msg(f, "%s: %s", path, strerror(errno));
                size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                (void)fclose(f);
                buf[n] = '\0';
                const char *p = strrchr(buf, ')'); /* the name may hold spaces */
                if (p && p[1] == ' ' && p[2] == 'S')
                        return;
                (void)sched_yield();
        }
}

/* Every stamp of the ring says "a later lap", and head says nothing was
 * ever claimed: what a producer can write, and no producer can honestly
 * leave. */
static void scribble_lapped(struct topic *t, uint64_t head) {
        const struct seg_map *m = &t->pm;
        store_sc(&seg_head(m)->head, head);
        for (uint64_t i = 0; i < m->g.slot_count; i++)
                store_sc(&seg_slot(m, i)->stamp, SEG_STAMP_SEQ_MASK);
}

/* Defect 3: with every stamp lapped and head = 0, recv(timeout = 100)
 * still ran after 2 s, under both policies. Now each call returns
 * -EBADMSG and steps the cursor on, whatever the timeout. */
START_TEST(test_recv_returns_whatever_a_producer_scribbled) {
        static const uint32_t policies[] = {ZCBUS_POLICY_RELIABLE, ZCBUS_POLICY_LATEST};
        static const uint32_t modes[] = {ZCBUS_WAIT_FUTEX, ZCBUS_WAIT_ADAPTIVE, ZCBUS_WAIT_SPIN};

        for (unsigned pi = 0; pi < 2; pi++) {
                for (unsigned mi = 0; mi < 3; mi++) {
                        struct seg_params p = params(8, 32, policies[pi], 1, 1);
                        static const uint64_t heads[] = {0, 5, UINT64_MAX};
                        struct topic t;
                        struct ring_sub s;
                        uint64_t held[4];
                        zcbus_msg m;

                        topic_open(&t, &p);
                        sub_start(&t, &s, 0, 0, 4, held, modes[mi]);
                        for (unsigned hi = 0; hi < 3; hi++) {
                                scribble_lapped(&t, heads[hi]);
                                static const int timeouts[] = {0, 100, -1};
                                for (unsigned ti = 0; ti < 3; ti++) {
                                        uint64_t before = s.next;
                                        int r = ring_sub_recv(&s, &m, 1, timeouts[ti]);
                                        ck_assert_msg(r == -EBADMSG,
                                                      "%s, wait mode %u, head %llu, timeout %d: recv %d",
                                                      zcbus_policy_name(policies[pi]), modes[mi],
                                                      (unsigned long long)heads[hi], timeouts[ti], r);
                                        ck_assert_uint_gt(s.next, before);
                                        ck_assert_uint_le(s.nheld, 0);
                                }
                        }
                        ring_sub_deinit(&s);
                        topic_close(&t);
                }
        }
}
END_TEST

/* A reader on an empty ring whose slots are all "being written" forever
 * (a producer stamped WRITING and stopped) gets -ETIMEDOUT by its
 * deadline in every wait mode. */
START_TEST(test_recv_on_a_ring_written_forever_times_out) {
        static const uint32_t modes[] = {ZCBUS_WAIT_FUTEX, ZCBUS_WAIT_ADAPTIVE, ZCBUS_WAIT_SPIN};

        for (unsigned mi = 0; mi < 3; mi++) {
                struct seg_params p = params(8, 32, ZCBUS_POLICY_LATEST, 1, 1);
                struct topic t;
                struct ring_sub s;
                uint64_t held[4];
                zcbus_msg m;

                topic_open(&t, &p);
                sub_start(&t, &s, 0, 0, 4, held, modes[mi]);
                for (uint64_t i = 0; i < 8; i++)
                        store_sc(&seg_slot(&t.pm, i)->stamp, SEG_STAMP_WRITING | seg_stamp(i));
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN);
                ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 30), -ETIMEDOUT);
                ring_sub_deinit(&s);
                topic_close(&t);
        }
}
END_TEST

/* Defect 5: a LATEST reader's hold that does not stand (a marker at its
 * cursor, here) was dropped without the wake a release gives, so a
 * producer that saw the bit and slept, believing every slot held, slept
 * on beside a free slot. The drop must take a room sleeper's arm. */
START_TEST(test_a_transient_latest_hold_wakes_an_armed_room_sleeper) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_LATEST, 1, 1);
        struct seg_subs_notify *sn;
        struct topic t;
        struct ring_sub s;
        uint64_t held[4];
        zcbus_msg m;

        topic_open(&t, &p);
        sn = seg_subs_notify(&t.bm, 0);
        sub_start(&t, &s, 0, 0, 4, held, ZCBUS_WAIT_ADAPTIVE);
        /* A producer stepped over seq 0 (the real marker code), and one
         * waits for room: armed, word read. */
        (void)faa_sc(&seg_head(&t.pm)->head, 1);
        ring_mark_slot(&t.pm, 0, 0, SEG_SLOT_SKIPPED);
        uint32_t word = ld32(&sn->room_word);
        store_sc(&sn->room_armed, 1);

        ck_assert_int_eq(ring_sub_recv(&s, &m, 1, 0), -EAGAIN); /* stepped over the marker */
        ck_assert_uint_eq(s.next, 1);
        ck_assert_msg(!ring_held(&t.bm, 0), "the marker's slot is still held");
        ck_assert_msg(ld32(&sn->room_armed) == 0 && ld32(&sn->room_word) == word + 1,
                      "the dropped hold woke nobody: armed %u, word %u (was %u)", ld32(&sn->room_armed),
                      ld32(&sn->room_word), word);
        ring_sub_deinit(&s);
        topic_close(&t);
}
END_TEST

struct sleeper {
        struct topic *t;
        struct ring_sub s;
        uint64_t held[4];
        _Atomic pid_t tid;
        int result;
        uint64_t seq;
};

static void *sleeper_main(void *arg) {
        struct sleeper *x = arg;
        zcbus_msg m;

        atomic_store(&x->tid, (pid_t)syscall(SYS_gettid));
        x->result = ring_sub_recv(&x->s, &m, 1, 10000);
        if (x->result == 1) {
                x->seq = m.seq;
                (void)ring_sub_release(&x->s, &m.seq, 1);
        }
        return NULL;
}

/* Defect 4: a producer killed after it took the sleepers' arm (K) and
 * before it bumped the futex word left every reader asleep for good: the
 * arm was gone, so no later publish woke anyone, and evicting the
 * producer woke nobody. The broker's eviction now wakes both words. */
START_TEST(test_a_producer_dead_inside_its_wake_strands_no_sleeper) {
        static const uint32_t policies[] = {ZCBUS_POLICY_RELIABLE, ZCBUS_POLICY_LATEST};

        for (unsigned pi = 0; pi < 2; pi++) {
                struct seg_params p = params(8, 32, policies[pi], 2, 1);
                struct sleeper x = {0};
                struct topic t;
                struct ring_pub pub;
                pthread_t th;
                uint64_t seq;

                topic_open(&t, &p);
                x.t = &t;
                sub_start(&t, &x.s, 0, 0, 4, x.held, ZCBUS_WAIT_FUTEX);
                pub_start(&t, &pub, 1, ZCBUS_WAIT_ADAPTIVE);
                ck_assert_int_eq(pthread_create(&th, NULL, sleeper_main, &x), 0);
                while (atomic_load(&x.tid) == 0)
                        (void)sched_yield();
                wait_until_sleeping(atomic_load(&x.tid));

                /* The producer publishes, fences, takes the arm, and dies
                 * before the word moves. */
                ck_assert_int_eq(ring_pub_claim(&pub, 1, 0, &seq), 0);
                fill_publish(&pub, seq);
                full_fence();
                ck_assert_uint_eq(atomic_exchange(&seg_subs_notify(&t.pm, 0)->data_armed, 0), 1);
                /* The broker finds it dead. */
                ck_assert_int_eq(ring_prod_evict(&t.bm, 1), 0);

                ck_assert_int_eq(pthread_join(th, NULL), 0);
                ck_assert_msg(x.result == 1, "%s: the sleeper got %d, not the message",
                              zcbus_policy_name(policies[pi]), x.result);
                ck_assert_uint_eq(x.seq, seq);
                ring_sub_deinit(&x.s);
                topic_close(&t);
        }
}
END_TEST

/* Defect 6: a sleeper killed between raising and lowering the shared
 * waiter count left it raised for the topic's life, and every later
 * commit took the wake path. Now nothing counts sleepers: what a killed
 * sleeper leaves (its arm) is taken by the next wake, once, and the
 * topic's notify path is idle again. */
START_TEST(test_a_killed_sleeper_costs_one_wake_and_nothing_after) {
        struct seg_params p = params(8, 32, ZCBUS_POLICY_RELIABLE, 1, 2);
        struct seg_subs_notify *sn;
        struct topic t;
        struct ring_pub pub;
        struct ring_sub live;
        uint64_t held[4], lheld[4];

        topic_open(&t, &p);
        sn = seg_subs_notify(&t.bm, 0);
        sub_start(&t, &live, 1, 0, 4, lheld, ZCBUS_WAIT_ADAPTIVE);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct ring_sub s;
                zcbus_msg m;
                sub_start(&t, &s, 0, 0, 4, held, ZCBUS_WAIT_FUTEX);
                (void)ring_sub_recv(&s, &m, 1, -1); /* sleeps until killed */
                _exit(3);
        }
        wait_until_sleeping(pid);
        ck_assert_uint_eq(ld32(&sn->data_armed), 1);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFSIGNALED(st));
        ring_sub_evict(&t.bm, 0, 0); /* the broker */

        pub_start(&t, &pub, 0, ZCBUS_WAIT_ADAPTIVE);
        for (unsigned i = 0; i < 1000; i++) {
                ck_assert_int_eq(pub_one(&pub, 1000, NULL), 0);
                (void)recv_check_release(&live);
        }
        ck_assert_msg(ld64(&seg_prod(&t.bm, 0)->wakeups) <= 1, "%llu wake-ups for one dead sleeper",
                      (unsigned long long)ld64(&seg_prod(&t.bm, 0)->wakeups));
        ck_assert_uint_eq(ld32(&sn->data_armed), 0);
        ck_assert_uint_eq(ld32(&sn->room_armed), 0);
        ring_sub_deinit(&live);
        ring_pub_deinit(&pub);
        topic_close(&t);
}
END_TEST

#ifdef ZCBUS_KILL_POINTS
/* ------------------------------------------------ kill -9 at every point
 *
 * A forked peer (the victim) runs the real producer or subscriber code and
 * dies by SIGKILL at the n-th pass through one kill point (killpoint.h);
 * the test then plays the broker, evicting it, and checks what the honest
 * peers see: a subscriber asleep in FUTEX mode receives every committed
 * message in order (no stranded sleeper), a producer in FUTEX mode goes on
 * publishing (no stall), and the accounting is exact.
 */
enum kp_role { KP_PRODUCER, KP_SUBSCRIBER };

struct kp_case {
        enum kill_point point;
        enum kp_role role;
        bool reliable, latest; /* the policies the point exists under */
};

static const struct kp_case kp_cases[] = {
        {KP_CLAIM_INTENT, KP_PRODUCER, true, true},
        {KP_CLAIM_TAKEN, KP_PRODUCER, true, true},
        {KP_CLAIM_RECORDED, KP_PRODUCER, true, true},
        {KP_BEFORE_STAMP, KP_PRODUCER, true, true},
        {KP_AFTER_STAMP, KP_PRODUCER, true, true},
        {KP_WAKE_TAKEN, KP_PRODUCER, true, true},
        {KP_LATEST_WRITING, KP_PRODUCER, false, true},
        {KP_SLEEP_ARMED, KP_SUBSCRIBER, true, true},
        {KP_HOLD_TAKEN, KP_SUBSCRIBER, false, true},
        {KP_FLOOR_STORED, KP_SUBSCRIBER, true, false},
        {KP_WAKE_TAKEN, KP_SUBSCRIBER, true, false},
        {KP_RELAY_TAKEN, KP_SUBSCRIBER, true, true},
};
#define KP_CASES (int)(sizeof(kp_cases) / sizeof(kp_cases[0]))
#define KP_SENTINEL_LEN 0 /* pattern_len never gives 0 */

struct kp_reader {
        struct ring_sub s;
        uint64_t held[4];
        uint64_t start, last, sentinel;
        int error;
};

/* The honest subscriber: receive until the sentinel, every message
 * checked byte for byte, in order, never waiting in vain. */
static void *kp_reader_main(void *arg) {
        struct kp_reader *x = arg;
        zcbus_msg m;

        x->last = UINT64_MAX;
        for (;;) {
                int r = ring_sub_recv(&x->s, &m, 1, 5000);
                if (r != 1) {
                        x->error = r;
                        return NULL;
                }
                if (x->last != UINT64_MAX && m.seq <= x->last) {
                        x->error = -EILSEQ;
                        return NULL;
                }
                x->last = m.seq;
                bool sentinel = m.len == KP_SENTINEL_LEN;
                if (!sentinel && (m.len != pattern_len(m.seq, 1, 32) || pattern_check(m.data, m.len, m.seq) >= 0)) {
                        x->error = -EBADMSG;
                        return NULL;
                }
                (void)ring_sub_release(&x->s, &m.seq, 1);
                if (sentinel) {
                        x->sentinel = m.seq;
                        return NULL;
                }
        }
}

/* The broker's part: wait for the victim's death, then evict it at once
 * (a producer blocked on a dead subscriber is freed by this, as by
 * zcbusd). */
struct kp_broker {
        struct topic *t;
        enum kp_role role;
        pid_t pid;
        int status;
        int repair; /* ring_prod_evict's last result */
        _Atomic bool done;
};

static void *kp_broker_main(void *arg) {
        struct kp_broker *b = arg;

        if (waitpid(b->pid, &b->status, 0) != b->pid)
                b->status = -1;
        if (b->role == KP_SUBSCRIBER) {
                ring_sub_evict(&b->t->bm, 1, 0);
        } else {
                b->repair = ring_prod_evict(&b->t->bm, 1);
                for (unsigned i = 0; b->repair == -EAGAIN && i < 1000000; i++) {
                        (void)sched_yield();
                        b->repair = ring_prod_repair(&b->t->bm, 1);
                }
        }
        atomic_store(&b->done, true);
        return NULL;
}

/* The victim's life; it ends by the kill point or, if the point was never
 * passed often enough, by _exit(0) after a bounded run. */
static void kp_victim(struct topic *t, const struct kp_case *c, unsigned n, bool reliable) {
        kill_point_arm(c->point, n);
        if (c->role == KP_PRODUCER) {
                struct ring_pub pub;
                ring_pub_init(&pub, &t->pm, 1, wait_mode(ZCBUS_WAIT_FUTEX));
                for (unsigned i = 0; i < 2000; i++) {
                        /* To die in a wake-up, a reader must be asleep. */
                        if (c->point == KP_WAKE_TAKEN)
                                while (load_sc(&seg_subs_notify(&t->pm, 0)->data_armed) == 0)
                                        (void)sched_yield();
                        if (pub_one(&pub, 5000, NULL) < 0)
                                _exit(2);
                }
                _exit(0);
        }
        struct ring_sub s;
        uint64_t held[4];
        zcbus_msg m;
        /* Registered by the parent (the broker's part): it starts where
         * the registration put it. */
        if (ring_sub_init(&s, &t->sm, 1, 0, load_rlx(&seg_sub(&t->sm, 0, 1)->next), 4, held,
                          wait_mode(ZCBUS_WAIT_FUTEX)) < 0)
                _exit(3);
        (void)reliable;
        for (unsigned i = 0; i < 20000; i++) {
                int r = ring_sub_recv(&s, &m, 1, 5000);
                if (r != 1 && r != -EBADMSG)
                        _exit(4);
                if (r != 1)
                        continue;
                /* To die in a wake-up, a producer must be asleep for room
                 * behind this subscriber's hold (the other reader is asleep
                 * for data then, so the arm is this one's to take). */
                if (c->point == KP_WAKE_TAKEN)
                        while (load_sc(&seg_subs_notify(&t->sm, 0)->room_armed) == 0)
                                (void)sched_yield();
                (void)ring_sub_release(&s, &m.seq, 1);
        }
        _exit(0);
}

START_TEST(test_a_peer_killed_at_any_point_stalls_nothing) {
        const struct kp_case *c = &kp_cases[_i];

        for (int pol = 0; pol < 2; pol++) {
                bool reliable = pol == 0;
                if (reliable ? !c->reliable : !c->latest)
                        continue;
                for (unsigned n = 1; n <= 7; n += 3) {
                        struct seg_params p = params(8, 32, reliable ? ZCBUS_POLICY_RELIABLE : ZCBUS_POLICY_LATEST, 2, 2);
                        struct kp_reader x = {0};
                        struct ring_pub pub;
                        struct topic t;
                        pthread_t th;
                        const char *what = kill_point_name(c->point);

                        topic_open(&t, &p);
                        /* Entries as the broker hands them out: the reader is
                         * registered before the victim starts. */
                        uint64_t start = ring_sub_register(&t.bm, 0, 0, (uint32_t)getpid(), 0);
                        ck_assert_int_eq(
                                ring_sub_init(&x.s, &t.sm, 0, 0, start, 4, x.held, wait_mode(ZCBUS_WAIT_FUTEX)), 0);
                        x.start = x.s.next;
                        if (c->role == KP_PRODUCER)
                                ring_prod_activate(&t.bm, 1, 0);
                        else
                                (void)ring_sub_register(&t.bm, 1, 0, 0, 0);
                        pub_start(&t, &pub, 0, ZCBUS_WAIT_FUTEX);
                        fflush(NULL);
                        pid_t pid = fork();
                        ck_assert_int_ge(pid, 0);
                        if (pid == 0)
                                kp_victim(&t, c, n, reliable);
                        ck_assert_int_eq(pthread_create(&th, NULL, kp_reader_main, &x), 0);
                        struct kp_broker b = {.t = &t, .role = c->role, .pid = pid};
                        pthread_t bth;
                        ck_assert_int_eq(pthread_create(&bth, NULL, kp_broker_main, &b), 0);

                        /* A subscriber victim needs traffic; one that is to die
                         * asleep needs it slow enough to catch up and sleep. */
                        for (unsigned i = 0; c->role == KP_SUBSCRIBER && !atomic_load(&b.done); i++) {
                                ck_assert_msg(i < 200000, "%s: the victim never died", what);
                                if (c->point == KP_SLEEP_ARMED || c->point == KP_RELAY_TAKEN) {
                                        uint64_t h = ring_head(&t.bm);
                                        struct seg_sub *v = seg_sub(&t.bm, 0, 1);
                                        while (load_sc(&v->next) < h && !atomic_load(&b.done))
                                                (void)sched_yield();
                                }
                                int r = pub_one(&pub, 5000, NULL);
                                ck_assert_msg(r == 0, "%s: the producer got %d", what, r);
                        }
                        ck_assert_int_eq(pthread_join(bth, NULL), 0);
                        ck_assert_msg(b.status >= 0 && WIFSIGNALED(b.status) && WTERMSIG(b.status) == SIGKILL,
                                      "%s (%s, pass %u): the victim did not die there (status %#x)", what,
                                      reliable ? "reliable" : "latest", n, b.status);
                        ck_assert_msg(b.repair == 0, "%s: the repair never finished (%d)", what, b.repair);

                        /* The topic goes on: more messages, then the sentinel. */
                        for (unsigned i = 0; i < 20; i++) {
                                int r = pub_one(&pub, 5000, NULL);
                                ck_assert_msg(r == 0, "%s: after the death the producer got %d", what, r);
                        }
                        uint64_t seq;
                        ck_assert_int_eq(ring_pub_claim(&pub, 1, 5000, &seq), 0);
                        ring_pub_publish(&pub, seq, KP_SENTINEL_LEN, 0);
                        ring_pub_notify(&pub);

                        ck_assert_int_eq(pthread_join(th, NULL), 0);
                        ck_assert_msg(x.error == 0, "%s (%s, pass %u): the reader got %d", what,
                                      reliable ? "reliable" : "latest", n, x.error);
                        ck_assert_uint_eq(x.sentinel, seq);
                        uint64_t seqs = seq + 1 - x.start;
                        uint64_t got = x.s.received + x.s.skipped + x.s.lost + x.s.pending_lost;
                        ck_assert_msg(got == seqs, "%s: received %llu + skipped %llu + lost %llu of %llu sequences",
                                      what, (unsigned long long)x.s.received, (unsigned long long)x.s.skipped,
                                      (unsigned long long)(x.s.lost + x.s.pending_lost), (unsigned long long)seqs);
                        if (reliable)
                                ck_assert_uint_eq(x.s.lost + x.s.pending_lost, 0);
                        ring_sub_deinit(&x.s);
                        ring_pub_deinit(&pub);
                        topic_close(&t);
                }
        }
}
END_TEST
#endif

static Suite *trust_suite(void) {
        Suite *s = suite_create("trust");
        TCase *tc;

        tc = tcase_create("scribbled");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_recv_returns_whatever_a_producer_scribbled);
        tcase_add_test(tc, test_recv_on_a_ring_written_forever_times_out);
        suite_add_tcase(s, tc);

        tc = tcase_create("wakeups");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_a_transient_latest_hold_wakes_an_armed_room_sleeper);
        tcase_add_test(tc, test_a_producer_dead_inside_its_wake_strands_no_sleeper);
        tcase_add_test(tc, test_a_killed_sleeper_costs_one_wake_and_nothing_after);
        suite_add_tcase(s, tc);
#ifdef ZCBUS_KILL_POINTS
        tc = tcase_create("killpoints");
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_a_peer_killed_at_any_point_stalls_nothing, 0, KP_CASES);
        suite_add_tcase(s, tc);
#endif
        return s;
}

int main(void) {
        require_memfd_sealing(); /* exits 77 without it */
        return RUN_SUITE(trust_suite()) ? 1 : 0;
}
