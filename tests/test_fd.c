/* SPDX-License-Identifier: MIT */
/*
 * test_fd.c: the descriptors for event loops (zcbus_sub_fd, wait sets),
 * used the way zcbus.h says, in a plain epoll loop: wait for readable,
 * receive until -EAGAIN, wait again. A producer in another process
 * publishes in bursts with pauses, so that the loop keeps going back to
 * epoll and the descriptor must be signaled again each time; every
 * message must arrive, in order, and a drained descriptor must stop
 * polling readable.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"
#include "zcbus.h"

#define MSGS 2000u
#define TOPICS 3u
/* How long the loop waits for a message it was promised: below the 1 s
 * after which the notifier looks again anyway (WAIT_RELAY_SLICE_NS), so a
 * signal that did not come fails here instead of arriving by that look. */
#define WAIT_MS 900

struct pub_args {
        const char *sock;
        unsigned ntopics;
        struct chan go;
};

/* Publish MSGS messages to each topic (interleaved), in bursts. */
static int pub_peer(void *arg) {
        struct pub_args *a = arg;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 64, .slot_size = 64};
        zcbus_pub *pub[TOPICS];
        zcbus *bus;
        char name[32];

        chan_keep_read(&a->go);
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        for (unsigned t = 0; t < a->ntopics; t++) {
                snprintf(name, sizeof(name), "fd.%u", t);
                PEER_CHECK(zcbus_pub_open(bus, name, &o, &pub[t]) == 0, "pub_open %s", name);
        }
        PEER_CHECK(chan_recv(&a->go) == 'G', "go");
        for (uint64_t i = 0; i < MSGS; i++) {
                for (unsigned k = 0; k < a->ntopics; k++) {
                        unsigned t = (unsigned)((k + i) % a->ntopics); /* a different order each round */
                        uint64_t v[2] = {t, i};
                        int r = zcbus_pub_send(pub[t], v, sizeof(v), 10000);
                        PEER_CHECK(r == 0, "send: %s", zcbus_strerror(r));
                }
                if (i % 16 == 15)
                        usleep(500); /* the loop goes back to epoll and sleeps */
        }
        zcbus_disconnect(bus);
        return 0;
}

static void check_msg(const zcbus_msg *m, uint64_t *next) {
        uint64_t v[2];
        ck_assert_uint_eq(m->len, sizeof(v));
        memcpy(v, m->data, sizeof(v));
        ck_assert_uint_lt(v[0], TOPICS);
        ck_assert_msg(v[1] == next[v[0]], "topic %llu: got %llu, want %llu", (unsigned long long)v[0],
                      (unsigned long long)v[1], (unsigned long long)next[v[0]]);
        next[v[0]]++;
}

/* Receive from sub until -EAGAIN; returns how many. */
static unsigned drain(zcbus_sub *sub, uint64_t *next) {
        zcbus_msg m;
        unsigned n = 0;
        int r;

        while ((r = zcbus_sub_recv(sub, &m, 0)) == 0) {
                check_msg(&m, next);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
                n++;
        }
        ck_assert_msg(r == -EAGAIN, "receive: %s", zcbus_strerror(r));
        return n;
}

/* Once nothing more comes, a drained descriptor stops polling readable
 * (a stray signal costs at most one more turn of the loop). */
static void expect_quiet(int fd, zcbus_sub *sub, zcbus_waitset *ws, uint64_t *next) {
        for (int turn = 0;; turn++) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, 200);
                ck_assert_int_ge(r, 0);
                if (r == 0)
                        return;
                ck_assert_msg(turn < 3, "the descriptor polls readable with nothing to receive");
                if (sub) {
                        ck_assert_uint_eq(drain(sub, next), 0);
                } else {
                        zcbus_sub *s;
                        while (zcbus_waitset_next(ws, &s) == 0)
                                ck_assert_uint_eq(drain(s, next), 0);
                }
        }
}

START_TEST(test_a_subscription_descriptor_in_an_epoll_loop_delivers_everything) {
        struct broker b;
        struct pub_args a;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 64, .slot_size = 64};
        uint64_t next[TOPICS] = {0};
        struct epoll_event ev = {.events = EPOLLIN};
        zcbus *bus;
        zcbus_sub *sub;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "fd.0", &so, &sub), 0);
        int fd = zcbus_sub_fd(sub);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(zcbus_sub_fd(sub), fd); /* the same one */
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        ck_assert_int_ge(ep, 0);
        ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
        /* Nothing yet: not readable. */
        ck_assert_int_eq(epoll_wait(ep, &ev, 1, 100), 0);

        a = (struct pub_args){.sock = b.sock, .ntopics = 1};
        chan_open(&a.go);
        pid_t pid = spawn(pub_peer, &a);
        ck_assert_int_eq(chan_send(&a.go, 'G'), 0);
        unsigned got = 0, wakes = 0;
        while (got < MSGS) {
                int r = epoll_wait(ep, &ev, 1, WAIT_MS);
                ck_assert_msg(r == 1, "no readable descriptor after %u of %u messages", got, MSGS);
                wakes++;
                got += drain(sub, next);
        }
        ck_assert_int_eq(wait_exit(pid), 0);
        ck_assert_uint_eq(next[0], MSGS);
        ck_assert_uint_gt(wakes, 1); /* it did go back to epoll */
        expect_quiet(fd, sub, NULL, next);

        (void)close(ep);
        zcbus_sub_close(sub);
        ck_assert_int_lt(fcntl(fd, F_GETFD), 0); /* closed with the subscription */
        zcbus_disconnect(bus);
        chan_close(&a.go);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

START_TEST(test_a_wait_set_gives_one_descriptor_for_many_subscriptions) {
        struct broker b;
        struct pub_args a;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 64, .slot_size = 64};
        uint64_t next[TOPICS] = {0};
        zcbus_sub *sub[TOPICS], *other;
        zcbus_waitset *ws;
        zcbus *bus;
        char name[32];

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_waitset_new(&ws), 0);
        for (unsigned t = 0; t < TOPICS; t++) {
                snprintf(name, sizeof(name), "fd.%u", t);
                ck_assert_int_eq(zcbus_sub_open(bus, name, &so, &sub[t]), 0);
                ck_assert_int_eq(zcbus_waitset_add(ws, sub[t]), 0);
        }
        ck_assert_int_eq(zcbus_waitset_add(ws, sub[0]), -EBUSY);
        ck_assert_int_eq(zcbus_sub_fd(sub[0]), -EBUSY);
        ck_assert_int_eq(zcbus_sub_open(bus, "fd.other", &so, &other), 0);
        ck_assert_int_ge(zcbus_sub_fd(other), 0);
        ck_assert_int_eq(zcbus_waitset_add(ws, other), -EBUSY); /* has its own */
        int fd = zcbus_waitset_fd(ws);
        ck_assert_int_ge(fd, 0);

        a = (struct pub_args){.sock = b.sock, .ntopics = TOPICS};
        chan_open(&a.go);
        pid_t pid = spawn(pub_peer, &a);
        ck_assert_int_eq(chan_send(&a.go, 'G'), 0);
        unsigned got = 0;
        while (got < MSGS * TOPICS) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                ck_assert_msg(poll(&p, 1, WAIT_MS) == 1, "no readable descriptor after %u messages", got);
                zcbus_sub *s;
                int r;
                while ((r = zcbus_waitset_next(ws, &s)) == 0)
                        got += drain(s, next);
                ck_assert_int_eq(r, -EAGAIN);
        }
        ck_assert_int_eq(wait_exit(pid), 0);
        for (unsigned t = 0; t < TOPICS; t++)
                ck_assert_uint_eq(next[t], MSGS);
        expect_quiet(fd, NULL, ws, next);

        /* A member closed while in the set leaves it. */
        zcbus_sub_close(sub[1]);
        ck_assert_int_eq(zcbus_waitset_remove(ws, sub[0]), 0);
        ck_assert_int_eq(zcbus_waitset_remove(ws, sub[0]), -EINVAL);
        zcbus_waitset_free(ws);
        zcbus_sub_close(sub[0]);
        zcbus_sub_close(sub[2]);
        zcbus_sub_close(other);
        zcbus_disconnect(bus);
        chan_close(&a.go);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

struct slow_args {
        const char *sock;
        struct chan ready, go;
};

/* Subscribe to fd.room, wait for the word, then read 500 messages slowly, in
 * order. */
static int slow_sub_peer(void *arg) {
        struct slow_args *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_msg m;

        chan_keep_write(&a->ready);
        chan_keep_read(&a->go);
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        PEER_CHECK(zcbus_sub_open(bus, "fd.room", &so, &sub) == 0, "sub_open");
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        PEER_CHECK(chan_recv(&a->go) == 'G', "go");
        for (uint64_t i = 0; i < 500; i++) {
                uint64_t v;
                int r = zcbus_sub_recv(sub, &m, 10000);
                PEER_CHECK(r == 0, "receive %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                memcpy(&v, m.data, 8);
                PEER_CHECK(v == i, "got %llu, want %llu", (unsigned long long)v, (unsigned long long)i);
                PEER_CHECK(zcbus_sub_release(sub, &m) == 0, "release");
                if (i % 8 == 0)
                        usleep(1000);
        }
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        return 0;
}

START_TEST(test_a_producer_descriptor_says_when_there_is_room) {
        struct broker b;
        struct slow_args a;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_pub *pub;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "fd.room", &o, &pub), 0);
        a.sock = b.sock;
        chan_open(&a.ready);
        chan_open(&a.go);
        pid_t pid = spawn(slow_sub_peer, &a);
        chan_keep_read(&a.ready);
        chan_keep_write(&a.go);
        ck_assert_int_eq(chan_recv(&a.ready), 'R');
        int fd = zcbus_pub_fd(pub);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(zcbus_pub_fd(pub), fd);
        /* Fill the ring while the reader waits for the word: no room, so the
         * descriptor stays quiet. */
        uint64_t i = 0;
        while (zcbus_pub_send(pub, &i, 8, 0) == 0)
                i++;
        ck_assert_uint_eq(i, 8);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* (a signal armed before the ring filled may be pending once) */
        if (poll(&p, 1, 200) == 1)
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 0), -EAGAIN);
        ck_assert_int_eq(poll(&p, 1, 200), 0);
        ck_assert_int_eq(chan_send(&a.go, 'G'), 0);
        unsigned wakes = 0;
        while (i < 500) {
                ck_assert_msg(poll(&p, 1, WAIT_MS) == 1, "no room signaled after %llu messages",
                              (unsigned long long)i);
                wakes++;
                int r = 0;
                while (i < 500 && (r = zcbus_pub_send(pub, &i, 8, 0)) == 0)
                        i++;
                ck_assert(i == 500 || r == -EAGAIN);
        }
        ck_assert_uint_gt(wakes, 1);
        ck_assert_int_eq(wait_exit(pid), 0);
        zcbus_pub_close(pub);
        ck_assert_int_lt(fcntl(fd, F_GETFD), 0);
        zcbus_disconnect(bus);
        chan_close(&a.ready);
        chan_close(&a.go);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

static Suite *fd_suite(void) {
        Suite *s = suite_create("fd");
        TCase *tc = tcase_create("loop");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_subscription_descriptor_in_an_epoll_loop_delivers_everything);
        tcase_add_test(tc, test_a_wait_set_gives_one_descriptor_for_many_subscriptions);
        tcase_add_test(tc, test_a_producer_descriptor_says_when_there_is_room);
        suite_add_tcase(s, tc);
        return s;
}

HARNESS_MAIN(fd_suite, false)
