/* SPDX-License-Identifier: MIT */
/*
 * test_integration.c: Check suite "integration": a real zcbusd on a
 * private socket, real producer and subscriber processes, the public API
 * only.
 *
 * Peers are forked with spawn() (PR_SET_PDEATHSIG) and talk to the test
 * through one-byte pipe signals (chan): "I am subscribed", "go", "I hold a
 * loan". Nobody sleeps to wait for anyone. Peers verify every message
 * (every payload byte derives from the message's counter) and report
 * through their exit status; calls that could block carry a generous
 * safety timeout (PEER_WAIT_MS) only so that a hang becomes a precise
 * failure message instead of a Check timeout.
 *
 * Each test checks that the test process itself ends with the descriptors
 * and zcbus mappings it started with.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"
#include "zcbus.h"

#define PEER_WAIT_MS 60000

/* ------------------------------------------------------------ peers */

struct peer_args {
        const char *sock;
        const char *topic;
        uint32_t slot_count, slot_size, policy; /* 0: defaults / the topic's */
        uint64_t first, n; /* message counters first .. first + n - 1 */
        uint64_t stop_after; /* subscribers: leave after this many */
        uint64_t gap_after;  /* subscribers: the one sequence gap comes after this counter */
        int how;             /* variant, per peer function */
        struct chan up;      /* peer -> test */
        struct chan down;    /* test -> peer */
};

static void peer_args_init(struct peer_args *a, const char *sock, const char *topic) {
        memset(a, 0, sizeof(*a));
        a->sock = sock;
        a->topic = topic;
        a->gap_after = UINT64_MAX;
        chan_open(&a->up);
        chan_open(&a->down);
}

/* In the test, after spawn(): keep only our ends. */
static pid_t spawn_peer(int (*fn)(void *), struct peer_args *a) {
        pid_t pid = spawn(fn, a);
        chan_keep_read(&a->up);
        chan_keep_write(&a->down);
        return pid;
}

/* In the peer, first thing: keep only the peer's ends. */
static void peer_enter(struct peer_args *a) {
        chan_keep_write(&a->up);
        chan_keep_read(&a->down);
}

static void peer_args_done(struct peer_args *a) {
        chan_close(&a->up);
        chan_close(&a->down);
}

static void expect_signal(struct peer_args *a, char want, const char *what) {
        int c = chan_recv(&a->up);
        ck_assert_msg(c == want, "waiting for %s: got %d, want '%c' (peer died?)", what, c, want);
}

/* Spawn a peer and wait for its 'R' (open). */
static pid_t spawn_ready(int (*fn)(void *), struct peer_args *a, const char *what) {
        pid_t pid = spawn_peer(fn, a);
        expect_signal(a, 'R', what);
        return pid;
}

/* A producer that creates a reliable topic of slot_count x slot_size. */
static void reliable_pub_args(struct peer_args *a, const char *sock, const char *topic, uint32_t slot_count,
                              uint32_t slot_size, uint64_t n) {
        peer_args_init(a, sock, topic);
        a->slot_count = slot_count;
        a->slot_size = slot_size;
        a->policy = ZCBUS_POLICY_RELIABLE;
        a->n = n;
}

/* A subscriber (or a producer opening the topic as it is). */
static void sized_peer_args(struct peer_args *a, const char *sock, const char *topic, uint32_t slot_size,
                            uint64_t n) {
        peer_args_init(a, sock, topic);
        a->slot_size = slot_size;
        a->n = n;
}

static size_t msg_len(uint64_t counter, uint32_t slot_size) {
        uint32_t min = slot_size > 4096 ? slot_size - 4096 : 8;
        return pattern_len(counter, min, slot_size);
}

static zcbus_topic_opts topic_opts(const struct peer_args *a) {
        return (zcbus_topic_opts){
                .size = sizeof(zcbus_topic_opts),
                .slot_count = a->slot_count,
                .slot_size = a->slot_size,
                .policy = a->policy,
        };
}

/* Connect and open a producer; 'R' once open. */
static int pub_open_peer(const struct peer_args *a, zcbus **bus, zcbus_pub **pub) {
        zcbus_topic_opts o = topic_opts(a);
        int r = zcbus_connect(a->sock, bus);
        PEER_CHECK(r == 0, "connect %s: %s", a->sock, zcbus_strerror(r));
        r = zcbus_pub_open(*bus, a->topic, a->slot_size ? &o : NULL, pub);
        PEER_CHECK(r == 0, "pub_open '%s': %s (%s)", a->topic, zcbus_strerror(r), zcbus_last_error(*bus));
        return 0;
}

/* Send counters [first, first + n) with loan/commit, send, send_batch and
 * loan_batch/commit_batch in turn (the copying batch only for small slots). */
static int publish_range(zcbus_pub *pub, uint64_t first, uint64_t n, uint32_t slot_size) {
        static uint8_t bufs[8][256];
        uint64_t i = first, end = first + n;

        while (i < end) {
                int r;
                size_t len = msg_len(i, slot_size);
                unsigned how = (unsigned)(i % 4);
                if (slot_size > sizeof(bufs[0]) && how != 3) /* the copies go through bufs */
                        how = 0;
                if (how == 0) {
                        void *buf;
                        r = zcbus_pub_loan_timeout(pub, len, &buf, PEER_WAIT_MS);
                        PEER_CHECK(r == 0, "loan %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                        pattern_fill(buf, len, i);
                        r = zcbus_pub_commit(pub, len);
                        PEER_CHECK(r == 0, "commit %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                        i++;
                } else if (how == 1) {
                        pattern_fill(bufs[0], len, i);
                        r = zcbus_pub_send(pub, bufs[0], len, PEER_WAIT_MS);
                        PEER_CHECK(r == 0, "send %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                        i++;
                } else if (how == 3) {
                        void *slots[8];
                        size_t lens[8];
                        unsigned want = end - i < 8 ? (unsigned)(end - i) : 8;
                        r = zcbus_pub_loan_batch(pub, want, slots, PEER_WAIT_MS);
                        PEER_CHECK(r >= 1 && (unsigned)r <= want, "loan_batch %llu (+%u): %s",
                                   (unsigned long long)i, want, r < 0 ? zcbus_strerror(r) : "bad count");
                        for (int k = 0; k < r; k++) {
                                lens[k] = msg_len(i + (unsigned)k, slot_size);
                                pattern_fill(slots[k], lens[k], i + (unsigned)k);
                        }
                        r = zcbus_pub_commit_batch(pub, lens, (unsigned)r) == 0 ? r : -1;
                        PEER_CHECK(r >= 1, "commit_batch %llu", (unsigned long long)i);
                        i += (unsigned)r;
                } else {
                        zcbus_iov iov[8];
                        unsigned k = 0;
                        for (; k < 8 && i + k < end; k++) {
                                iov[k].len = msg_len(i + k, slot_size);
                                iov[k].data = bufs[k];
                                pattern_fill(bufs[k], iov[k].len, i + k);
                        }
                        r = zcbus_pub_send_batch(pub, iov, k, PEER_WAIT_MS);
                        PEER_CHECK(r >= 1 && (unsigned)r <= k, "send_batch %llu (+%u): %s", (unsigned long long)i, k,
                                   r < 0 ? zcbus_strerror(r) : "bad count");
                        i += (unsigned)r;
                }
        }
        return 0;
}

/* In a producer peer: open, 'R', wait for 'G', publish [first, first + n).
 * Nonzero when any of it failed (and said why). */
static int pub_open_go_publish(struct peer_args *a, zcbus **bus, zcbus_pub **pub) {
        peer_enter(a);
        if (pub_open_peer(a, bus, pub))
                return 1;
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "signal");
        PEER_CHECK(chan_recv(&a->down) == 'G', "no go");
        if (publish_range(*pub, a->first, a->n, a->slot_size))
                return 1;
        return 0;
}

/* Producer: open, 'R', wait for 'G', publish, close. */
static int producer_peer(void *arg) {
        struct peer_args *a = arg;
        zcbus *bus;
        zcbus_pub *pub;

        if (pub_open_go_publish(a, &bus, &pub))
                return 1;
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        return 0;
}

/* Check one received message: in order, intact, nothing lost. */
struct rx {
        uint64_t expect; /* next counter */
        uint64_t prev_seq;
        uint64_t gap_after;
        uint32_t slot_size;
        int started;
};

static int rx_check(struct rx *x, const zcbus_msg *m) {
        uint64_t want_seq = x->prev_seq + (x->expect == x->gap_after + 1 ? 2 : 1);
        PEER_CHECK(m->lost == 0, "message %llu: lost %llu on a reliable topic", (unsigned long long)x->expect,
                   (unsigned long long)m->lost);
        PEER_CHECK(!x->started || m->seq == want_seq, "message %llu: seq %llu, want %llu",
                   (unsigned long long)x->expect, (unsigned long long)m->seq, (unsigned long long)want_seq);
        size_t len = msg_len(x->expect, x->slot_size);
        PEER_CHECK(m->len == len, "message %llu: len %zu, want %zu (out of order or torn)",
                   (unsigned long long)x->expect, m->len, len);
        long bad = pattern_check(m->data, m->len, x->expect);
        PEER_CHECK(bad < 0, "message %llu: byte %ld differs (out of order, torn or overwritten)",
                   (unsigned long long)x->expect, bad);
        x->started = 1;
        x->prev_seq = m->seq;
        x->expect++;
        return 0;
}

/* Receive, check and release `count` messages, one at a time or in
 * batches of up to 16. */
static int receive_range(zcbus_sub *sub, struct rx *x, uint64_t count) {
        zcbus_msg msgs[16];
        const uint64_t end = x->expect + count;

        while (x->expect < end) {
                uint64_t left = end - x->expect;
                unsigned k = left < 16 ? (unsigned)left : 16;
                int r;
                if (x->expect % 5 == 0)
                        k = 1;
                if (k == 1) {
                        r = zcbus_sub_recv(sub, msgs, PEER_WAIT_MS);
                        PEER_CHECK(r == 0, "recv at message %llu: %s", (unsigned long long)x->expect,
                                   zcbus_strerror(r));
                        r = 1;
                } else {
                        r = zcbus_sub_recv_batch(sub, msgs, k, PEER_WAIT_MS);
                        PEER_CHECK(r >= 1 && (unsigned)r <= k, "recv_batch at message %llu: %s",
                                   (unsigned long long)x->expect, r < 0 ? zcbus_strerror(r) : "bad count");
                }
                for (int i = 0; i < r; i++)
                        if (rx_check(x, &msgs[i]))
                                return 1;
                r = r == 1 ? zcbus_sub_release(sub, &msgs[0]) : zcbus_sub_release_batch(sub, msgs, (unsigned)r);
                PEER_CHECK(r == 0, "release: %s", zcbus_strerror(r));
        }
        return 0;
}

enum { SUB_READ_ALL, SUB_EXIT, SUB_CLOSE, SUB_HANG };

/* Subscriber: open, 'R', receive; then per how:
 *   SUB_READ_ALL  read all n, close, exit 0
 *   SUB_EXIT      after stop_after, exit without closing anything
 *   SUB_CLOSE     after stop_after, close and disconnect, 'D', wait for 'X'
 *   SUB_HANG      after stop_after, receive 5 more and keep them, 'K',
 *                 then block until killed */
static int subscriber_peer(void *arg) {
        struct peer_args *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .max_holds = 16};
        struct rx x = {.expect = a->first, .gap_after = a->gap_after, .slot_size = a->slot_size};
        zcbus *bus;
        zcbus_sub *sub;
        uint64_t until = a->how == SUB_READ_ALL ? a->n : a->stop_after;
        int r;

        peer_enter(a);
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "connect: %s", zcbus_strerror(r));
        r = zcbus_sub_open(bus, a->topic, &so, &sub);
        PEER_CHECK(r == 0, "sub_open '%s': %s (%s)", a->topic, zcbus_strerror(r), zcbus_last_error(bus));
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "signal");
        if (receive_range(sub, &x, until))
                return 1;
        switch (a->how) {
        case SUB_EXIT:
                return 0;
        case SUB_CLOSE:
                zcbus_sub_close(sub);
                zcbus_disconnect(bus);
                PEER_CHECK(chan_send(&a->up, 'D') == 0, "signal");
                PEER_CHECK(chan_recv(&a->down) == 'X', "no exit signal");
                return 0;
        case SUB_HANG: {
                zcbus_msg keep[5];
                for (int i = 0; i < 5; i++) {
                        r = zcbus_sub_recv(sub, &keep[i], PEER_WAIT_MS);
                        PEER_CHECK(r == 0, "recv: %s", zcbus_strerror(r));
                        if (rx_check(&x, &keep[i]))
                                return 1;
                }
                PEER_CHECK(chan_send(&a->up, 'K') == 0, "signal");
                (void)chan_recv(&a->down); /* until killed */
                return 1;
        }
        default:
                break;
        }
        PEER_CHECK(zcbus_sub_recv(sub, &(zcbus_msg){0}, 0) == -EAGAIN, "a message after the last one");
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        return 0;
}

/* Producer that publishes [first, first + n), then takes a loan, writes
 * into it, tells the test ('L') and waits to be killed. */
static int loan_and_die_peer(void *arg) {
        struct peer_args *a = arg;
        zcbus *bus;
        zcbus_pub *pub;
        void *buf;

        if (pub_open_go_publish(a, &bus, &pub))
                return 1;
        int r = zcbus_pub_loan_timeout(pub, a->slot_size, &buf, PEER_WAIT_MS);
        PEER_CHECK(r == 0, "loan: %s", zcbus_strerror(r));
        pattern_fill(buf, a->slot_size, UINT64_C(0xdead));
        PEER_CHECK(chan_send(&a->up, 'L') == 0, "signal");
        (void)chan_recv(&a->down); /* until killed */
        return 1;
}

/* The broker goes away while these two run (see broker_death()). */
static int survivor_pub_peer(void *arg) {
        struct peer_args *a = arg;
        zcbus *bus, *bus2;
        zcbus_pub *pub, *pub2, *other;
        zcbus_sub *osub;
        zcbus_topic_entry e;
        int r;

        peer_enter(a);
        if (pub_open_peer(a, &bus, &pub))
                return 1;
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "signal");
        PEER_CHECK(chan_recv(&a->down) == 'G', "no go");
        /* The broker is gone: the open topic still flows. */
        if (publish_range(pub, 0, a->n, a->slot_size))
                return 1;
        /* What needs the broker fails, promptly and cleanly. */
        r = zcbus_pub_open(bus, "other", NULL, &other);
        PEER_CHECK(r < 0, "pub_open without a broker: %d", r);
        r = zcbus_sub_open(bus, "other", NULL, &osub);
        PEER_CHECK(r < 0, "sub_open without a broker: %d", r);
        r = zcbus_list_topics(bus, 0, &e, 1, NULL);
        PEER_CHECK(r < 0, "list_topics without a broker: %d", r);
        PEER_CHECK(chan_send(&a->up, 'D') == 0, "signal");
        PEER_CHECK(chan_recv(&a->down) == 'N', "no new-broker signal");
        /* A new broker: the old topic still flows, and we reconnect. */
        if (publish_range(pub, a->n, 100, a->slot_size))
                return 1;
        r = zcbus_connect(a->sock, &bus2);
        PEER_CHECK(r == 0, "reconnect: %s", zcbus_strerror(r));
        r = zcbus_pub_open(bus2, "flow2", NULL, &pub2);
        PEER_CHECK(r == 0, "pub_open on the new broker: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus2));
        if (publish_range(pub2, 0, 100, a->slot_size))
                return 1;
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        zcbus_pub_close(pub2);
        zcbus_disconnect(bus2);
        return 0;
}

static int survivor_sub_peer(void *arg) {
        struct peer_args *a = arg;
        struct rx x = {.expect = 0, .gap_after = UINT64_MAX, .slot_size = a->slot_size};
        struct rx x2 = {.expect = 0, .gap_after = UINT64_MAX, .slot_size = a->slot_size};
        zcbus *bus, *bus2;
        zcbus_sub *sub, *sub2, *osub;
        zcbus_pub *other;
        int r;

        peer_enter(a);
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "connect: %s", zcbus_strerror(r));
        r = zcbus_sub_open(bus, a->topic, NULL, &sub);
        PEER_CHECK(r == 0, "sub_open: %s", zcbus_strerror(r));
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "signal");
        if (receive_range(sub, &x, a->n))
                return 1;
        r = zcbus_sub_open(bus, "other", NULL, &osub);
        PEER_CHECK(r < 0, "sub_open without a broker: %d", r);
        r = zcbus_pub_open(bus, "other", NULL, &other);
        PEER_CHECK(r < 0, "pub_open without a broker: %d", r);
        PEER_CHECK(chan_send(&a->up, 'D') == 0, "signal");
        PEER_CHECK(chan_recv(&a->down) == 'N', "no new-broker signal");
        r = zcbus_connect(a->sock, &bus2);
        PEER_CHECK(r == 0, "reconnect: %s", zcbus_strerror(r));
        r = zcbus_sub_open(bus2, "flow2", NULL, &sub2);
        PEER_CHECK(r == 0, "sub_open on the new broker: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus2));
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "signal");
        if (receive_range(sub, &x, 100))
                return 1;
        if (receive_range(sub2, &x2, 100))
                return 1;
        zcbus_disconnect(bus); /* handles outlive the connection */
        zcbus_sub_close(sub);
        zcbus_sub_close(sub2);
        zcbus_disconnect(bus2);
        return 0;
}

/* ------------------------------------------------------------ tests */

static void wait_ok(pid_t pid, const char *who) {
        int st = wait_exit(pid);
        ck_assert_msg(st == 0, "%s exited with status %d (its stderr says why)", who, st);
}

/* Note the descriptors and mappings, then start a broker. */
static void broker_begin(struct leak_check *lc, struct broker *b) {
        leak_begin(lc);
        ck_assert_int_eq(broker_start(b, NULL), 0);
}

/* Stop the broker cleanly, remove it, and check nothing leaked. */
static void broker_end(struct leak_check *lc, struct broker *b) {
        broker_stop(b);
        broker_destroy(b);
        leak_end(lc);
}

/* Release the producer, wait for it and for nsubs subscribers. */
static void go_and_wait_all(struct peer_args *pa, pid_t pp, struct peer_args *sa, const pid_t *sp, int nsubs) {
        ck_assert_int_eq(chan_send(&pa->down, 'G'), 0);
        wait_ok(pp, "producer");
        for (int i = 0; i < nsubs; i++) {
                wait_ok(sp[i], "subscriber");
                peer_args_done(&sa[i]);
        }
        peer_args_done(pa);
}

START_TEST(test_broker_serves_a_private_socket_and_shuts_down_cleanly) {
        struct leak_check lc;
        struct broker b;
        zcbus *bus, *bus2;
        uint8_t id[16], id2[16], zero[16] = {0};
        struct stat st;

        broker_begin(&lc, &b);
        ck_assert_int_eq(stat(b.sock, &st), 0);
        ck_assert_msg(S_ISSOCK(st.st_mode), "%s is not a socket", b.sock);
        ck_assert_msg((st.st_mode & 0007) == 0, "socket mode %o is open to others", st.st_mode & 0777);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus2), 0);
        ck_assert_int_eq(zcbus_session_id(bus, id), 0);
        ck_assert_int_eq(zcbus_session_id(bus2, id2), 0);
        ck_assert_msg(memcmp(id, zero, 16) != 0, "session id is all zero");
        ck_assert_msg(memcmp(id, id2, 16) != 0, "two sessions share an id");
        zcbus_disconnect(bus);
        zcbus_disconnect(bus2);
        zcbus_disconnect(NULL);
        broker_end(&lc, &b);
}
END_TEST

/* One reliable producer and nsubs subscribers (at most 4) that read all n
 * messages, on a topic of slot_count x slot_size. */
static void one_to_many(const char *topic, uint32_t slot_count, uint32_t slot_size, uint64_t n, int nsubs) {
        struct leak_check lc;
        struct broker b;
        struct peer_args pa, sa[4];
        pid_t pp, sp[4];

        ck_assert_int_le(nsubs, 4);
        broker_begin(&lc, &b);
        reliable_pub_args(&pa, b.sock, topic, slot_count, slot_size, n);
        pp = spawn_ready(producer_peer, &pa, "the producer's open");
        for (int i = 0; i < nsubs; i++) {
                sized_peer_args(&sa[i], b.sock, topic, slot_size, n);
                sa[i].how = SUB_READ_ALL;
                sp[i] = spawn_ready(subscriber_peer, &sa[i], "a subscriber's open");
        }
        go_and_wait_all(&pa, pp, sa, sp, nsubs);
        broker_end(&lc, &b);
}

START_TEST(test_one_producer_and_four_subscriber_processes_pass_a_million_messages) {
        one_to_many("bulk", 1024, 64, test_scaled(1000000), 4);
}
END_TEST

START_TEST(test_one_mebibyte_messages_arrive_intact) {
        one_to_many("frames", 8, 1u << 20, test_scaled(300), 2);
}
END_TEST

START_TEST(test_message_larger_than_the_slot_fails_with_emsgsize) {
        struct leak_check lc;
        struct broker b;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 256};
        static uint8_t big[512], small[16];
        void *buf;
        zcbus_msg m;

        broker_begin(&lc, &b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "sized", &o, &pub), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "sized", NULL, &sub), 0);

        ck_assert_int_eq(zcbus_pub_send(pub, big, 257, 0), -EMSGSIZE);
        ck_assert_int_eq(zcbus_pub_send(pub, big, 512, -1), -EMSGSIZE);
        ck_assert_int_eq(zcbus_pub_loan(pub, 257, &buf), -EMSGSIZE);
        ck_assert_int_eq(zcbus_pub_loan_timeout(pub, SIZE_MAX, &buf, 0), -EMSGSIZE);
        zcbus_iov one_big = {.data = big, .len = 257};
        ck_assert_int_eq(zcbus_pub_send_batch(pub, &one_big, 1, 0), -EMSGSIZE);
        /* A batch with an oversized message sends what comes before it
         * (a count) or nothing at all (-EMSGSIZE); never the big one. */
        pattern_fill(small, 10, 0);
        zcbus_iov mixed[3] = {{small, 10}, {big, 257}, {small, 10}};
        int sent = zcbus_pub_send_batch(pub, mixed, 3, 0);
        ck_assert_msg(sent == 1 || sent == -EMSGSIZE, "send_batch with an oversized second message: %d", sent);
        uint64_t first = sent == 1 ? 0 : 1;
        /* None of that cost a slot or broke the producer. */
        ck_assert_int_eq(zcbus_pub_loan(pub, 256, &buf), 0);
        pattern_fill(buf, 256, 1);
        ck_assert_int_eq(zcbus_pub_commit(pub, 256), 0);
        pattern_fill(big, 256, 2);
        ck_assert_int_eq(zcbus_pub_send(pub, big, 256, 0), 0);

        static const size_t lens[3] = {10, 256, 256};
        uint64_t prev = 0;
        for (uint64_t k = first; k < 3; k++) {
                ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), 0);
                ck_assert_uint_eq(m.len, lens[k]);
                ck_assert_int_lt(pattern_check(m.data, m.len, k), 0);
                if (k > first)
                        ck_assert_uint_eq(m.seq, prev + 1);
                prev = m.seq;
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -EAGAIN);
        zcbus_sub_close(sub);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        broker_end(&lc, &b);
}
END_TEST

/* Zero-copy batches: one claim of consecutive slots, written in place;
 * what is loaned and not committed is written off, never delivered; a
 * LATEST topic loans one at a time; the errors. */
START_TEST(test_a_zero_copy_batch_commits_what_was_written_and_writes_off_the_rest) {
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 128};
        zcbus_topic_opts lo = {.size = sizeof(lo), .slot_count = 16, .slot_size = 128,
                               .policy = ZCBUS_POLICY_LATEST};
        struct leak_check lc;
        struct broker b;
        zcbus *bus;
        zcbus_pub *pub, *lpub;
        zcbus_sub *sub;
        zcbus_msg m;
        void *bufs[32], *one;
        size_t lens[32];

        broker_begin(&lc, &b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "zc.batch", &o, &pub), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "zc.batch", NULL, &sub), 0);
        ck_assert_int_eq(zcbus_pub_loan_batch(pub, 0, bufs, 0), -EINVAL);
        /* At most a ring's worth at once. */
        ck_assert_int_eq(zcbus_pub_loan_batch(pub, 32, bufs, 0), 16);
        ck_assert_int_eq(zcbus_pub_loan_batch(pub, 1, bufs, 0), -EBUSY);
        ck_assert_int_eq(zcbus_pub_loan(pub, 8, &one), -EBUSY);
        for (unsigned i = 0; i < 16; i++) {
                ck_assert_ptr_ne(bufs[i], NULL);
                if (i)
                        ck_assert_ptr_ne(bufs[i], bufs[i - 1]);
                lens[i] = 8 + i;
                pattern_fill(bufs[i], lens[i], i);
        }
        lens[3] = 129;
        ck_assert_int_eq(zcbus_pub_commit_batch(pub, lens, 17), -EINVAL);
        ck_assert_int_eq(zcbus_pub_commit_batch(pub, lens, 4), -EMSGSIZE); /* nothing published */
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -EAGAIN);
        lens[3] = 11;
        /* Five of sixteen: the other eleven are written off. */
        ck_assert_int_eq(zcbus_pub_commit_batch(pub, lens, 5), 0);
        ck_assert_int_eq(zcbus_pub_commit_batch(pub, lens, 1), -EINVAL); /* no loan now */
        for (uint64_t i = 0; i < 5; i++) {
                ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), 0);
                ck_assert_uint_eq(m.len, lens[i]);
                ck_assert_int_lt(pattern_check(m.data, m.len, i), 0);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        /* The next batch goes on past the written-off ones. */
        int k = zcbus_pub_loan_batch(pub, 4, bufs, 1000);
        ck_assert_int_eq(k, 4);
        for (int i = 0; i < k; i++) {
                lens[i] = 100;
                pattern_fill(bufs[i], 100, 100 + (uint64_t)i);
        }
        ck_assert_int_eq(zcbus_pub_commit_batch(pub, lens, 4), 0);
        for (uint64_t i = 0; i < 4; i++) {
                ck_assert_int_eq(zcbus_sub_recv(sub, &m, 1000), 0);
                ck_assert_uint_eq(m.len, 100);
                ck_assert_uint_eq(m.lost, 0);
                ck_assert_int_lt(pattern_check(m.data, m.len, 100 + i), 0);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -EAGAIN);
        /* A batch loan committed as one message: the rest written off. */
        ck_assert_int_eq(zcbus_pub_loan_batch(pub, 3, bufs, 0), 3);
        pattern_fill(bufs[0], 9, 7);
        ck_assert_int_eq(zcbus_pub_commit(pub, 9), 0);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), 0);
        ck_assert_int_lt(pattern_check(m.data, m.len, 7), 0);
        ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -EAGAIN);

        ck_assert_int_eq(zcbus_pub_open(bus, "zc.latest", &lo, &lpub), 0);
        ck_assert_int_eq(zcbus_pub_loan_batch(lpub, 8, bufs, 0), 1);
        lens[0] = 1;
        ck_assert_int_eq(zcbus_pub_commit_batch(lpub, lens, 1), 0);
        zcbus_pub_close(lpub);
        zcbus_sub_close(sub);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        broker_end(&lc, &b);
}
END_TEST

START_TEST(test_subscribers_that_exit_close_or_are_killed_do_not_stall_a_reliable_producer) {
        enum { FULL, CLOSER, EXITER, KILLED, NSUBS };
        static const int how[NSUBS] = {SUB_READ_ALL, SUB_CLOSE, SUB_EXIT, SUB_HANG};
        static const uint64_t stop[NSUBS] = {0, 100, 200, 300};
        const uint64_t n = 1000 + test_scaled(20000);
        struct leak_check lc;
        struct broker b;
        struct peer_args pa, sa[NSUBS];
        pid_t pp, sp[NSUBS];

        broker_begin(&lc, &b);
        /* A small reliable ring: the producer is a few messages ahead of
         * the slowest live subscriber at most. */
        reliable_pub_args(&pa, b.sock, "gate", 8, 64, n);
        pp = spawn_ready(producer_peer, &pa, "the producer's open");
        for (int i = 0; i < NSUBS; i++) {
                sized_peer_args(&sa[i], b.sock, "gate", 64, n);
                sa[i].how = how[i];
                sa[i].stop_after = stop[i];
                sp[i] = spawn_ready(subscriber_peer, &sa[i], "a subscriber's open");
        }
        ck_assert_int_eq(chan_send(&pa.down, 'G'), 0);

        /* Killed mid-stream, holding 5 unreleased messages. */
        expect_signal(&sa[KILLED], 'K', "the doomed subscriber");
        ck_assert_int_eq(kill(sp[KILLED], SIGKILL), 0);
        ck_assert_int_eq(wait_exit(sp[KILLED]), 128 + SIGKILL);
        /* Exited without closing anything. */
        wait_ok(sp[EXITER], "exiting subscriber");
        /* Closed its subscription but lives on. */
        expect_signal(&sa[CLOSER], 'D', "the closing subscriber");

        wait_ok(pp, "producer");
        wait_ok(sp[FULL], "subscriber reading everything");
        ck_assert_int_eq(chan_send(&sa[CLOSER].down, 'X'), 0);
        wait_ok(sp[CLOSER], "closing subscriber");
        for (int i = 0; i < NSUBS; i++)
                peer_args_done(&sa[i]);
        peer_args_done(&pa);
        broker_end(&lc, &b);
}
END_TEST

static void broker_death(int sig) {
        struct leak_check lc;
        struct broker b;
        struct peer_args pa, sa;
        pid_t pp, sp;

        broker_begin(&lc, &b);
        reliable_pub_args(&pa, b.sock, "flow", 64, 64, 1000);
        pp = spawn_ready(survivor_pub_peer, &pa, "the producer's open");
        sized_peer_args(&sa, b.sock, "flow", 64, 1000);
        sp = spawn_ready(survivor_sub_peer, &sa, "the subscriber's open");

        if (sig == SIGTERM)
                broker_stop(&b); /* asserts exit 0 and no socket left */
        else
                broker_kill(&b);
        ck_assert_int_eq(chan_send(&pa.down, 'G'), 0);
        expect_signal(&pa, 'D', "the producer, done without a broker");
        expect_signal(&sa, 'D', "the subscriber, done without a broker");

        /* A new broker on the same path (after SIGKILL the old socket file
         * is still there). */
        ck_assert_int_eq(broker_restart(&b, NULL), 0);
        ck_assert_int_eq(chan_send(&sa.down, 'N'), 0);
        expect_signal(&sa, 'R', "the subscriber's reopen on the new broker");
        ck_assert_int_eq(chan_send(&pa.down, 'N'), 0);
        wait_ok(pp, "producer");
        wait_ok(sp, "subscriber");
        peer_args_done(&pa);
        peer_args_done(&sa);
        broker_end(&lc, &b);
}

START_TEST(test_topics_keep_flowing_after_broker_sigterm_and_clients_reconnect) {
        broker_death(SIGTERM);
}
END_TEST

START_TEST(test_topics_keep_flowing_after_broker_sigkill_and_clients_reconnect) {
        broker_death(SIGKILL);
}
END_TEST

START_TEST(test_producer_killed_between_loan_and_commit_is_skipped_and_a_second_producer_continues) {
        struct leak_check lc;
        struct broker b;
        struct peer_args p1, p2, sa;
        pid_t pid1, pid2, sp;
        const uint64_t before = 10, after = 200;

        broker_begin(&lc, &b);
        reliable_pub_args(&p1, b.sock, "loan", 16, 64, before);
        pid1 = spawn_ready(loan_and_die_peer, &p1, "the first producer's open");
        /* The subscriber sees 0..9, then one sequence skipped, then
         * 10..209 from the second producer. */
        sized_peer_args(&sa, b.sock, "loan", 64, before + after);
        sa.gap_after = before - 1;
        sp = spawn_ready(subscriber_peer, &sa, "the subscriber's open");
        ck_assert_int_eq(chan_send(&p1.down, 'G'), 0);
        expect_signal(&p1, 'L', "the first producer's loan");
        ck_assert_int_eq(kill(pid1, SIGKILL), 0);
        ck_assert_int_eq(wait_exit(pid1), 128 + SIGKILL);

        /* More messages than the ring holds: the second producer can only
         * finish if the dead one's slot is written off. */
        /* slot_size 64 and no count: opens with the topic's geometry. */
        sized_peer_args(&p2, b.sock, "loan", 64, after);
        p2.first = before;
        pid2 = spawn_ready(producer_peer, &p2, "the second producer's open");
        ck_assert_int_eq(chan_send(&p2.down, 'G'), 0);
        wait_ok(pid2, "second producer");
        wait_ok(sp, "subscriber");
        peer_args_done(&p1);
        peer_args_done(&p2);
        peer_args_done(&sa);
        broker_end(&lc, &b);
}
END_TEST

START_TEST(test_first_opener_creates_and_a_conflicting_later_opener_gets_eexist) {
        struct leak_check lc;
        struct broker b;
        zcbus *bus, *bus2;
        zcbus_pub *pub, *p2, *p3, *bad;
        zcbus_sub *sub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 64,
                              .policy = ZCBUS_POLICY_RELIABLE};
        zcbus_topic_info i1 = {.size = sizeof(i1)}, i2 = {.size = sizeof(i2)}, i3 = {.size = sizeof(i3)};

        broker_begin(&lc, &b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus2), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "geo", &o, &pub), 0);
        ck_assert_int_eq(zcbus_pub_info(pub, &i1), 0);
        ck_assert_uint_eq(i1.slot_count, 16);
        ck_assert_uint_eq(i1.slot_size, 64);
        ck_assert_uint_eq(i1.policy, ZCBUS_POLICY_RELIABLE);

        zcbus_topic_opts bigger = o;
        bigger.slot_size = 128;
        ck_assert_int_eq(zcbus_pub_open(bus2, "geo", &bigger, &bad), -EEXIST);
        ck_assert_msg(zcbus_last_error(bus2) && *zcbus_last_error(bus2), "no explanation for -EEXIST");
        bigger = o;
        bigger.slot_count = 32;
        ck_assert_int_eq(zcbus_pub_open(bus2, "geo", &bigger, &bad), -EEXIST);
        bigger = o;
        bigger.policy = ZCBUS_POLICY_LATEST;
        ck_assert_int_eq(zcbus_pub_open(bus2, "geo", &bigger, &bad), -EEXIST);

        /* No options, or the same: the topic as it is. */
        ck_assert_int_eq(zcbus_pub_open(bus2, "geo", NULL, &p2), 0);
        ck_assert_int_eq(zcbus_pub_info(p2, &i2), 0);
        ck_assert_uint_eq(i2.slot_size, 64);
        ck_assert_uint_eq(i2.slot_count, 16);
        ck_assert_mem_eq(i2.topic_id, i1.topic_id, 16);
        ck_assert_mem_eq(i2.segment_id, i1.segment_id, 16);
        ck_assert_int_eq(zcbus_pub_open(bus2, "geo", &o, &p3), 0);
        ck_assert_int_eq(zcbus_sub_open(bus2, "geo", NULL, &sub), 0);
        ck_assert_int_eq(zcbus_sub_info(sub, &i3), 0);
        ck_assert_mem_eq(i3.topic_id, i1.topic_id, 16);
        ck_assert_uint_eq(i3.slot_size, 64);

        /* Names and options the API refuses outright. */
        ck_assert_int_eq(zcbus_pub_open(bus, "has space", NULL, &bad), -EINVAL);
        ck_assert_int_eq(zcbus_pub_open(bus, "", NULL, &bad), -EINVAL);
        ck_assert_int_eq(zcbus_pub_open(bus, NULL, NULL, &bad), -EINVAL);
        zcbus_topic_opts odd = o;
        odd.slot_count = 12;
        ck_assert_int_lt(zcbus_pub_open(bus, "odd", &odd, &bad), 0);

        zcbus_sub_close(sub);
        zcbus_pub_close(p3);
        zcbus_pub_close(p2);
        zcbus_pub_close(pub);
        zcbus_pub_close(NULL);
        zcbus_sub_close(NULL);
        zcbus_disconnect(bus2);
        zcbus_disconnect(bus);
        broker_end(&lc, &b);
}
END_TEST

static uint64_t mono_ns(void) {
        struct timespec ts;
        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

START_TEST(test_messages_carry_a_timestamp_only_when_the_producer_asks) {
        struct leak_check lc;
        struct broker b;
        zcbus *bus;
        zcbus_pub *plain, *stamped, *bad;
        zcbus_sub *sub;
        zcbus_msg m[2];
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 64};
        zcbus_topic_opts ts = o;
        ts.flags = ZCBUS_PUB_TIMESTAMP;
        zcbus_iov two[2] = {{.data = "a", .len = 1}, {.data = "b", .len = 1}};
        uint64_t t0, t1;

        broker_begin(&lc, &b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "ts", NULL, &sub), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "ts", &o, &plain), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "ts", &ts, &stamped), 0);
        zcbus_topic_opts unknown = o;
        unknown.flags = 1u << 7;
        ck_assert_int_eq(zcbus_pub_open(bus, "ts", &unknown, &bad), -EINVAL);

        /* Not asked: 0, not a stale value from the slot's last lap. */
        for (int lap = 0; lap < 2; lap++) {
                for (int i = 0; i < 16; i++) {
                        ck_assert_int_eq(zcbus_pub_send(lap ? plain : stamped, "x", 1, 0), 0);
                        ck_assert_int_eq(zcbus_sub_recv(sub, &m[0], 0), 0);
                        if (lap)
                                ck_assert_uint_eq(m[0].timestamp_ns, 0);
                        else
                                ck_assert_uint_ne(m[0].timestamp_ns, 0);
                        ck_assert_int_eq(zcbus_sub_release(sub, &m[0]), 0);
                }
        }

        /* Asked: CLOCK_MONOTONIC at commit, for a loan, a send and a batch. */
        void *buf;
        t0 = mono_ns();
        ck_assert_int_eq(zcbus_pub_loan(stamped, 1, &buf), 0);
        *(char *)buf = 'l';
        ck_assert_int_eq(zcbus_pub_commit(stamped, 1), 0);
        t1 = mono_ns();
        ck_assert_int_eq(zcbus_sub_recv(sub, &m[0], 0), 0);
        ck_assert_uint_ge(m[0].timestamp_ns, t0);
        ck_assert_uint_le(m[0].timestamp_ns, t1);
        ck_assert_int_eq(zcbus_sub_release(sub, &m[0]), 0);

        t0 = mono_ns();
        ck_assert_int_eq(zcbus_pub_send_batch(stamped, two, 2, 0), 2);
        t1 = mono_ns();
        ck_assert_int_eq(zcbus_sub_recv_batch(sub, m, 2, 0), 2);
        ck_assert_uint_ge(m[0].timestamp_ns, t0);
        ck_assert_uint_le(m[1].timestamp_ns, t1);
        ck_assert_uint_le(m[0].timestamp_ns, m[1].timestamp_ns);
        ck_assert_int_eq(zcbus_sub_release_batch(sub, m, 2), 0);

        ck_assert_int_eq(zcbus_pub_send_batch(plain, two, 2, 0), 2);
        ck_assert_int_eq(zcbus_sub_recv_batch(sub, m, 2, 0), 2);
        ck_assert_uint_eq(m[0].timestamp_ns, 0);
        ck_assert_uint_eq(m[1].timestamp_ns, 0);
        ck_assert_int_eq(zcbus_sub_release_batch(sub, m, 2), 0);

        zcbus_pub_close(stamped);
        zcbus_pub_close(plain);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        broker_end(&lc, &b);
}
END_TEST

START_TEST(test_connect_to_a_missing_or_dead_socket_fails_with_enoent_or_econnrefused) {
        struct leak_check lc;
        char dir[128], path[160];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        zcbus *bus = (zcbus *)&bus;

        leak_begin(&lc);
        harness_mkdtemp(dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/none", dir);
        ck_assert_int_eq(zcbus_connect(path, &bus), -ENOENT);
        ck_assert_ptr_eq(bus, (zcbus *)&bus); /* untouched on failure */

        /* A socket file nobody listens on (a broker that died). */
        snprintf(path, sizeof(path), "%s/dead", dir);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        (void)close(fd);
        ck_assert_int_eq(zcbus_connect(path, &bus), -ECONNREFUSED);
        (void)unlink(path);
        ck_assert_int_eq(zcbus_connect(dir, &bus) < 0, 1); /* a directory */
        ck_assert_int_eq(zcbus_connect("", &bus) < 0, 1);
        (void)rmdir(dir);
        leak_end(&lc);
}
END_TEST

START_TEST(test_disconnect_leaves_no_descriptor_or_mapping_behind) {
        static const char *const topics[] = {"leak.a", "leak.b", "leak.c"};
        struct leak_check lc;
        struct broker b;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        leak_begin(&lc);
        for (int round = 0; round < 3; round++) {
                zcbus *bus;
                zcbus_pub *pub[3];
                zcbus_sub *sub[3];
                zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
                zcbus_msg m;

                ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
                int fds_connected = fd_count();
                for (int i = 0; i < 3; i++) {
                        ck_assert_int_eq(zcbus_pub_open(bus, topics[i], &o, &pub[i]), 0);
                        ck_assert_int_eq(zcbus_sub_open(bus, topics[i], NULL, &sub[i]), 0);
                }
                /* One descriptor per connection; each handle keeps its
                 * segments' (a producer the ring and every table, 1 + 8
                 * by default; a subscriber the ring and its table), so
                 * that a restarted broker can re-learn the topic. */
                ck_assert_msg(fd_count() == fds_connected + 3 * (1 + 8 + 2), "%d descriptors for 3 open topics",
                              fd_count() - fds_connected);
                ck_assert_msg(memfd_map_count() > lc.maps, "no memfd:zcbus mappings seen while topics are open");
                for (int i = 0; i < 3; i++) {
                        uint8_t msg[16];
                        pattern_fill(msg, sizeof(msg), (uint64_t)i);
                        ck_assert_int_eq(zcbus_pub_send(pub[i], msg, sizeof(msg), 0), 0);
                        ck_assert_int_eq(zcbus_sub_recv(sub[i], &m, 0), 0);
                        ck_assert_int_lt(pattern_check(m.data, m.len, (uint64_t)i), 0);
                        /* Close with the message still held: close releases it. */
                }
                /* Half closed before the disconnect, half after it. */
                zcbus_pub_close(pub[0]);
                zcbus_sub_close(sub[0]);
                zcbus_disconnect(bus);
                for (int i = 1; i < 3; i++) {
                        zcbus_pub_close(pub[i]);
                        zcbus_sub_close(sub[i]);
                }
                leak_end(&lc);
        }
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ---------------------------------------------------- hostile peers */


static void raw_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 32)];
        } control;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        ck_assert_uint_le(nfds, 32);
        if (nfds) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        ck_assert_msg(n == (ssize_t)len, "sendmsg of %zu bytes: %zd (%s)", len, n, strerror(errno));
}

/* Wait until the broker hangs up on us (an error reply first is fine). */
static void expect_hangup(int fd, const char *what) {
        static uint8_t buf[PROTO_MSG_MAX];

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        break;
                if (n < 0 && errno == EINTR)
                        continue;
                ck_assert_msg(n > 0, "%s: recv: %s", what, strerror(errno));
                struct proto_msg m;
                int r = proto_decode(buf, (size_t)n, &m);
                ck_assert_msg(r == 0 && m.hdr.type == PROTO_ERROR, "%s: the broker answered with %s", what,
                              r == 0 ? proto_type_name(m.hdr.type) : "garbage");
        }
        (void)close(fd);
}

/* Connect, send one datagram, and wait until the broker hangs up. */
static void send_expect_hangup(const char *sock, const void *buf, size_t len, const int *fds, unsigned nfds,
                               const char *what) {
        int fd = harness_raw_connect(sock);
        raw_send(fd, buf, len, fds, nfds);
        expect_hangup(fd, what);
}

static size_t hdr_only(uint8_t *buf, uint32_t magic, uint16_t version, uint16_t type, uint32_t len) {
        struct proto_hdr h = {.magic = magic, .version = version, .type = type, .len = len, .req_id = 1};
        memcpy(buf, &h, sizeof(h));
        return sizeof(h);
}

START_TEST(test_broker_disconnects_garbage_peers_and_keeps_serving) {
        struct leak_check lc;
        struct broker b;
        static uint8_t buf[PROTO_MSG_MAX + 4096];
        int fds[20], p[2], q[2];
        size_t n;

        broker_begin(&lc, &b);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);

        send_expect_hangup(b.sock, "abc", 3, NULL, 0, "3-byte datagram");

        n = hdr_only(buf, 0x12345678, PROTO_VERSION, PROTO_HELLO, 8);
        memset(buf + n, 0, 8);
        send_expect_hangup(b.sock, buf, n + 8, NULL, 0, "bad magic");

        n = hdr_only(buf, PROTO_MAGIC, PROTO_VERSION, PROTO_HELLO, UINT32_MAX);
        memset(buf + n, 0, 8);
        send_expect_hangup(b.sock, buf, n + 8, NULL, 0, "header length 2^32-1");

        n = hdr_only(buf, PROTO_MAGIC, PROTO_VERSION, PROTO_OPEN, sizeof(buf) - sizeof(struct proto_hdr));
        memset(buf + n, 'a', sizeof(buf) - n);
        send_expect_hangup(b.sock, buf, sizeof(buf), NULL, 0, "datagram above PROTO_MSG_MAX");

        n = hdr_only(buf, PROTO_MAGIC, PROTO_VERSION + 1, PROTO_HELLO, 8);
        memset(buf + n, 0, 8);
        send_expect_hangup(b.sock, buf, n + 8, NULL, 0, "unknown protocol version");

        n = hdr_only(buf, PROTO_MAGIC, PROTO_VERSION, 200, 0);
        send_expect_hangup(b.sock, buf, n, NULL, 0, "unknown message type");

        /* Garbage carrying descriptors: the broker must not keep them. */
        for (int i = 0; i < 20; i++) {
                fds[i] = dup(p[1]);
                ck_assert_int_ge(fds[i], 0);
        }
        n = hdr_only(buf, 0, 0, 0, 0);
        send_expect_hangup(b.sock, buf, n, fds, 2, "bad magic with 2 descriptors");
        n = (size_t)proto_enc_hello(buf, sizeof(buf), 1);
        send_expect_hangup(b.sock, buf, n, fds, 20, "HELLO with 20 descriptors");
        for (int i = 0; i < 20; i++)
                (void)close(fds[i]);
        (void)close(p[1]);
        /* Every copy of the pipe's write end is closed once the broker let
         * go of the ones it received: the read end sees EOF. */
        char c;
        ck_assert_msg(read(p[0], &c, 1) == 0, "the broker still holds a descriptor it was sent");
        (void)close(p[0]);

        /* A well-formed HELLO with a descriptor it did not ask for: answered
         * or refused, but the descriptor is not kept. */
        int fd = harness_raw_connect(b.sock);
        n = (size_t)proto_enc_hello(buf, sizeof(buf), 1);
        raw_send(fd, buf, n, &q[1], 1);
        (void)close(q[1]);
        (void)close(fd);
        ck_assert_msg(read(q[0], &c, 1) == 0, "the broker kept a descriptor sent with a HELLO");
        (void)close(q[0]);

        /* A client that connects and says nothing, and one that says HELLO
         * twice, do not hurt either. */
        int silent = harness_raw_connect(b.sock);
        fd = harness_raw_connect(b.sock);
        n = (size_t)proto_enc_hello(buf, sizeof(buf), 1);
        raw_send(fd, buf, n, NULL, 0);
        raw_send(fd, buf, n, NULL, 0);
        (void)close(fd);

        /* The broker still serves a normal client. */
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        zcbus_msg m;
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "after.garbage", NULL, &pub), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "after.garbage", NULL, &sub), 0);
        ck_assert_int_eq(zcbus_pub_send(pub, "hello", 5, 0), 0);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), 0);
        ck_assert_mem_eq(m.data, "hello", 5);
        zcbus_sub_close(sub);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        (void)close(silent);
        broker_stop(&b); /* still exits cleanly */
        broker_destroy(&b);
        leak_end(&lc);
}
END_TEST

/* Defect 12: the broker ended a session when the process that opened it
 * exited, although a forked child still held the socket and the mappings
 * and went on using the subscription: its entry was freed, and a reliable
 * producer overran the child. A session now lasts while its socket does. */
struct fork_opener {
        const char *sock;
        int result_fd; /* the child writes 'Y' when it got every message */
        uint64_t n;
};

static int fork_opener_peer(void *arg) {
        struct fork_opener *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64, .wait_mode = ZCBUS_WAIT_FUTEX};
        zcbus *bus;
        zcbus_sub *sub;

        if (zcbus_connect(a->sock, &bus) < 0 || zcbus_sub_open(bus, "forked", &so, &sub) < 0)
                return 2;
        pid_t c = fork();
        if (c < 0)
                return 3;
        if (c > 0)
                _exit(0); /* the opener goes; its child keeps the subscription */
        char verdict = 'Y';
        uint64_t next = 0;
        for (uint64_t i = 0; i < a->n && verdict == 'Y'; i++) {
                zcbus_msg m;
                int r = zcbus_sub_recv(sub, &m, 10000);
                if (r < 0 || m.lost || m.len != 8 || memcmp(m.data, &next, 8) != 0)
                        verdict = r == -EBADMSG ? 'B' : r < 0 ? 'T' : 'G'; /* overrun, stalled, gap */
                else
                        next++;
                if (r == 0)
                        (void)zcbus_sub_release(sub, &m);
        }
        (void)!write(a->result_fd, &verdict, 1);
        _exit(0);
}

START_TEST(test_a_session_outlives_its_opener_while_a_forked_child_holds_it) {
        struct fork_opener a = {.n = 2000};
        struct leak_check lc;
        struct broker b;
        int pfd[2];
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_topic_entry e;
        unsigned total;

        broker_begin(&lc, &b);
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        a.sock = b.sock;
        a.result_fd = pfd[1];
        ck_assert_int_eq(wait_exit(spawn(fork_opener_peer, &a)), 0);
        (void)close(pfd[1]);

        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        /* Two round trips: the second is served after the broker has seen
         * the opener's exit, whatever order it saw the first in. */
        for (int i = 0; i < 2; i++)
                ck_assert_int_eq(zcbus_list_topics(bus, 0, &e, 1, &total), 1);
        ck_assert_msg(e.subscribers == 1, "the forked child's subscription was evicted with its opener (%u left)",
                      e.subscribers);
        ck_assert_int_eq(zcbus_pub_open(bus, "forked", &o, &pub), 0);
        for (uint64_t i = 0; i < a.n; i++)
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 10000), 0);
        char verdict = 0;
        ck_assert_int_eq(read(pfd[0], &verdict, 1), 1);
        ck_assert_msg(verdict == 'Y', "the forked child saw '%c' (B overrun, T stalled, G a gap)", verdict);
        (void)close(pfd[0]);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        broker_end(&lc, &b);
}
END_TEST

static Suite *integration_suite(void) {
        Suite *s = suite_create("integration");
        TCase *tc;

        tc = tcase_create("broker");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_broker_serves_a_private_socket_and_shuts_down_cleanly);
        tcase_add_test(tc, test_connect_to_a_missing_or_dead_socket_fails_with_enoent_or_econnrefused);
        tcase_add_test(tc, test_first_opener_creates_and_a_conflicting_later_opener_gets_eexist);
        tcase_add_test(tc, test_messages_carry_a_timestamp_only_when_the_producer_asks);
        tcase_add_test(tc, test_disconnect_leaves_no_descriptor_or_mapping_behind);
        tcase_add_test(tc, test_broker_disconnects_garbage_peers_and_keeps_serving);
        suite_add_tcase(s, tc);

        tc = tcase_create("flow");
        tcase_set_timeout(tc, 180);
        tcase_add_test(tc, test_one_producer_and_four_subscriber_processes_pass_a_million_messages);
        tcase_add_test(tc, test_one_mebibyte_messages_arrive_intact);
        tcase_add_test(tc, test_message_larger_than_the_slot_fails_with_emsgsize);
        tcase_add_test(tc, test_a_zero_copy_batch_commits_what_was_written_and_writes_off_the_rest);
        suite_add_tcase(s, tc);

        tc = tcase_create("failure");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_subscribers_that_exit_close_or_are_killed_do_not_stall_a_reliable_producer);
        tcase_add_test(tc, test_topics_keep_flowing_after_broker_sigterm_and_clients_reconnect);
        tcase_add_test(tc, test_topics_keep_flowing_after_broker_sigkill_and_clients_reconnect);
        tcase_add_test(tc, test_a_session_outlives_its_opener_while_a_forked_child_holds_it);
        tcase_add_test(tc, test_producer_killed_between_loan_and_commit_is_skipped_and_a_second_producer_continues);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        int failed;

        harness_init(); /* exits 77 without $ZCBUSD */
        /* A peer that writes to a pipe whose reader is gone gets EPIPE,
         * not a silent death. */
        (void)signal(SIGPIPE, SIG_IGN);
        failed = RUN_SUITE(integration_suite());
        harness_cleanup();
        return failed ? 1 : 0;
}
