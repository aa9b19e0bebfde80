/* SPDX-License-Identifier: MIT */
/*
 * test_restart.c: a restarted broker re-learns the bus from the clients
 * that reconnect (zcbus_reconnect: ADOPT), so that a peer that died while
 * there was no broker is repaired like any other (issue 10, defect 10).
 * Real brokers killed with SIGKILL and started again on the same socket,
 * real peers killed with SIGKILL in between.
 *
 * Before, the new broker knew nothing of the old topics: a producer that
 * died holding a claim left a hole every reader of the old ring waited at
 * for ever, a dead subscriber held its reliable topic's producers back for
 * ever, and a new producer of the topic's name made a new ring the old
 * readers never saw.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "raw_peer.h"
#include "proto.h"
#include "seg.h"
#include "sock.h"
#include "zcbus.h"

#define UID_FORGER 65534

/* Open pub on topic, retrying while the re-learned topic waits for the
 * peers that may still hand its tables back (-EAGAIN, documented). */
static int pub_open_retry(zcbus *bus, const char *topic, const zcbus_topic_opts *o, zcbus_pub **pub) {
        int r = -EAGAIN;
        for (int i = 0; i < 100 && r == -EAGAIN; i++) {
                r = zcbus_pub_open(bus, topic, o, pub);
                if (r == -EAGAIN)
                        usleep(50 * 1000);
        }
        return r;
}

struct dying_pub {
        const char *sock;
        struct chan ready;
};

/* Publish 0..4, then claim sequence 5 (a loan) and never commit it. */
static int dying_pub_peer(void *arg) {
        struct dying_pub *a = arg;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 64};
        zcbus *bus;
        zcbus_pub *pub;
        void *buf;

        chan_keep_write(&a->ready);
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        PEER_CHECK(zcbus_pub_open(bus, "restart.hole", &o, &pub) == 0, "pub_open");
        for (uint64_t i = 0; i < 5; i++)
                PEER_CHECK(zcbus_pub_send(pub, &i, 8, 5000) == 0, "send %llu", (unsigned long long)i);
        PEER_CHECK(zcbus_pub_loan(pub, 8, &buf) == 0, "loan");
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        for (;;)
                pause();
}

START_TEST(test_a_producer_that_dies_without_a_broker_is_repaired_by_the_next) {
        struct broker b;
        struct dying_pub a;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 16, .slot_size = 64, .wait_mode = ZCBUS_WAIT_FUTEX};
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 16, .slot_size = 64};
        zcbus *bus, *bus2;
        zcbus_sub *sub;
        zcbus_pub *pub;
        zcbus_msg m;
        uint64_t v;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "restart.hole", &so, &sub), 0);
        a.sock = b.sock;
        chan_open(&a.ready);
        pid_t pid = spawn(dying_pub_peer, &a);
        ck_assert_int_eq(chan_recv(&a.ready), 'R');
        for (uint64_t i = 0; i < 5; i++) {
                ck_assert_int_eq(zcbus_sub_recv(sub, &m, 5000), 0);
                memcpy(&v, m.data, 8);
                ck_assert_uint_eq(v, i);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }

        /* The broker dies, then the producer, holding its claim. */
        broker_kill(&b);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(wait_exit(pid), 128 + SIGKILL);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 100), -ETIMEDOUT); /* at the hole */
        /* No broker yet: refused, and what it closed it forgets (the
         * number may be someone else's by the next call). */
        ck_assert_int_lt(zcbus_reconnect(bus), 0);
        int other = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(other, 0);

        /* A new broker, told by the subscriber what it holds. */
        ck_assert_int_eq(broker_restart(&b, NULL), 0);
        int r = zcbus_reconnect(bus);
        ck_assert_msg(r == 0, "reconnect: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        ck_assert_msg(fcntl(other, F_GETFD) >= 0, "zcbus_reconnect closed a descriptor that was not its own");
        (void)close(other);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus2), 0);
        r = pub_open_retry(bus2, "restart.hole", &o, &pub);
        ck_assert_msg(r == 0, "pub_open after the restart: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus2));
        /* The new producer publishes into the old ring; the reader steps
         * over the dead producer's sequence, written off by the broker. */
        for (uint64_t i = 10; i < 40; i++) {
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 5000), 0);
                r = zcbus_sub_recv(sub, &m, 5000);
                ck_assert_msg(r == 0, "receive of %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                memcpy(&v, m.data, 8);
                ck_assert_uint_eq(v, i);
                ck_assert_uint_eq(m.lost, 0);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        zcbus_topic_entry e[4];
        unsigned total = 0;
        ck_assert_int_eq(zcbus_list_topics(bus2, 0, e, 4, &total), 1);
        ck_assert_str_eq(e[0].name, "restart.hole");
        ck_assert_uint_eq(e[0].producers, 1);
        ck_assert_uint_eq(e[0].subscribers, 1);

        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus2);
        zcbus_disconnect(bus);
        chan_close(&a.ready);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

struct gating_sub {
        const char *sock;
        struct chan ready;
};

/* Subscribe and never read: the ring fills from its floor. */
static int gating_sub_peer(void *arg) {
        struct gating_sub *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;

        chan_keep_write(&a->ready);
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        PEER_CHECK(zcbus_sub_open(bus, "restart.gate", &so, &sub) == 0, "sub_open");
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        for (;;)
                pause();
}

START_TEST(test_a_subscriber_that_dies_without_a_broker_stops_gating_once_one_is_back) {
        struct broker b;
        struct gating_sub a;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_pub *pub;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "restart.gate", &o, &pub), 0);
        a.sock = b.sock;
        chan_open(&a.ready);
        pid_t pid = spawn(gating_sub_peer, &a);
        ck_assert_int_eq(chan_recv(&a.ready), 'R');
        for (uint64_t i = 0; i < 8; i++)
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 5000), 0);
        ck_assert_int_eq(zcbus_pub_send(pub, &a, 8, 0), -EAGAIN); /* full from its floor */

        broker_kill(&b);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(wait_exit(pid), 128 + SIGKILL);
        ck_assert_int_eq(zcbus_pub_send(pub, &a, 8, 100), -ETIMEDOUT); /* nobody to evict it */

        ck_assert_int_eq(broker_restart(&b, NULL), 0);
        int r = zcbus_reconnect(bus);
        ck_assert_msg(r == 0, "reconnect: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        for (uint64_t i = 8; i < 108; i++) {
                r = zcbus_pub_send(pub, &i, 8, 5000);
                ck_assert_msg(r == 0, "send %llu after the restart: %s", (unsigned long long)i, zcbus_strerror(r));
        }
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        chan_close(&a.ready);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ADOPT of segments the broker did not make: a memfd of another uid,
 * named and laid out like a ring, is refused. */
static int forger_peer(void *arg) {
        const char *sock = arg;
        static uint8_t buf[PROTO_MSG_MAX];
        struct proto_adopt ad = {.role = PROTO_ROLE_PUB, .ntables = 1};
        struct proto_msg m;
        int fd = -1, fds[2];
        ssize_t n;

        if (setgroups(0, NULL) < 0 || setresgid(UID_FORGER, UID_FORGER, UID_FORGER) < 0 ||
            setresuid(UID_FORGER, UID_FORGER, UID_FORGER) < 0)
                return 2;
        /* A real topic's layout, made by this uid. */
        struct seg_params p = {.slot_count = 8, .slot_size = 64, .policy = ZCBUS_POLICY_RELIABLE,
                               .max_producers = 4, .max_subs = 4, .sub_tables = 1};
        for (int i = 0; i < 16; i++)
                p.segment_id[i] = (uint8_t)i;
        PEER_CHECK(seg_create(&p, &fds[0], &fds[1]) == 0, "seg_create");
        memcpy(ad.segment_id, p.segment_id, 16);
        if (raw_hello(sock, &fd) != 0)
                return 1;
        n = proto_enc_adopt(buf, sizeof(buf), 2, &ad, "forged.topic");
        PEER_CHECK(sock_send(fd, buf, (size_t)n, fds, 2) == 0, "ADOPT");
        n = recv(fd, buf, sizeof(buf), 0);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &m) == 0, "ADOPT reply");
        PEER_CHECK(m.hdr.type == PROTO_ERROR && m.u.error.err == -EPERM, "forged segments %s (%s)",
                   m.hdr.type == PROTO_ERROR ? "refused, but not with EPERM" : "taken", m.errmsg);
        return 0;
}

START_TEST(test_segments_the_broker_did_not_make_cannot_be_handed_back) {
        char dir[128], conf[160];
        struct broker b;

        harness_mkdtemp(dir, sizeof(dir));
        snprintf(conf, sizeof(conf), "%s/zcbusd.conf", dir);
        FILE *f = fopen(conf, "we");
        ck_assert(f != NULL);
        fputs("socket_mode = 0666\nrule = all * publish=any subscribe=any create=any\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        char d[sizeof(b.dir)];
        snprintf(d, sizeof(d), "%s", b.dir);
        ck_assert_int_eq(chmod(b.dir, 0711), 0);
        ck_assert_int_eq(chmod(dirname(d), 0711), 0);
        ck_assert_int_eq(wait_exit(spawn(forger_peer, b.sock)), 0);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST


/* --------------------------- found by review: two uids, a restart, a spoof */

static void conf_open_to_all(char *conf, size_t len, const char *extra) {
        char dir[128];
        harness_mkdtemp(dir, sizeof(dir));
        snprintf(conf, len, "%s/zcbusd.conf", dir);
        FILE *f = fopen(conf, "we");
        ck_assert(f != NULL);
        fputs("socket_mode = 0666\nrule = all * publish=any subscribe=any create=any\n", f);
        if (extra)
                fputs(extra, f);
        ck_assert_int_eq(fclose(f), 0);
}

static void open_dirs(struct broker *b) {
        char d[sizeof(b->dir)];
        snprintf(d, sizeof(d), "%s", b->dir);
        ck_assert_int_eq(chmod(b->dir, 0711), 0);
        ck_assert_int_eq(chmod(dirname(d), 0711), 0);
}

static int become_forger(void) {
        return setgroups(0, NULL) < 0 || setresgid(UID_FORGER, UID_FORGER, UID_FORGER) < 0 ||
                               setresuid(UID_FORGER, UID_FORGER, UID_FORGER) < 0
                       ? -1
                       : 0;
}

struct other_sub {
        const char *sock;
        const char *topic;
        struct chan ready;
};

/* A subscriber of another uid that stays and never reconnects. */
static int other_uid_sub(void *arg) {
        struct other_sub *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;

        chan_keep_write(&a->ready);
        if (become_forger() < 0)
                return 2;
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        PEER_CHECK(zcbus_sub_open(bus, a->topic, &so, &sub) == 0, "sub_open");
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        for (;;)
                pause();
}

/* Two uids' subscribers (two tables bound); after a restart only one
 * table comes back: the broker must not look into the missing one. */
START_TEST(test_a_relearned_topic_missing_a_table_keeps_the_broker_up) {
        char conf[160];
        struct broker b;
        struct other_sub a = {.topic = "rv.crash"};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus *bus, *bus2;
        zcbus_sub *sub;
        zcbus_pub *pub;
        int st;

        conf_open_to_all(conf, sizeof(conf), NULL);
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        open_dirs(&b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "rv.crash", &so, &sub), 0);
        a.sock = b.sock;
        chan_open(&a.ready);
        pid_t pid = spawn(other_uid_sub, &a);
        ck_assert_int_eq(chan_recv(&a.ready), 'R');
        broker_kill(&b);
        ck_assert_int_eq(broker_restart(&b, "-c", conf, NULL), 0);
        int r = zcbus_reconnect(bus);
        ck_assert_msg(r == 0, "reconnect: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        usleep(500 * 1000); /* five looks of the stall policy */
        ck_assert_msg(waitpid(b.pid, &st, WNOHANG) == 0, "the broker died after one hand-back");
        /* The other uid's table is lost while its subscriber lives: a new
         * producer waits for it (it could come back). */
        ck_assert_int_eq(zcbus_connect(b.sock, &bus2), 0);
        ck_assert_int_eq(zcbus_pub_open(bus2, "rv.crash", &o, &pub), -EAGAIN);
        /* Once that subscriber is gone, the table is made anew. */
        (void)kill(pid, SIGKILL);
        (void)wait_exit(pid);
        r = pub_open_retry(bus2, "rv.crash", &o, &pub);
        ck_assert_msg(r == 0, "pub_open once the orphan is gone: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus2));
        uint64_t v = 1;
        zcbus_msg m;
        ck_assert_int_eq(zcbus_pub_send(pub, &v, 8, 1000), 0);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 1000), 0);
        ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus2);
        zcbus_disconnect(bus);
        chan_close(&a.ready);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

struct spoof {
        const char *sock;
        struct chan ready, go, done;
};

/* A subscriber of another uid (table 1) rewrites its table's header to
 * say "table 0" and hands it back first after a restart, then gates
 * entry 0 through its own table: the broker places tables by their
 * kernel-kept names, and reads floors only through its masks. */
static int spoof_peer(void *arg) {
        struct spoof *a = arg;
        static uint8_t buf[PROTO_MSG_MAX];
        struct proto_open o = {.role = PROTO_ROLE_SUB, .slot_count = 8, .slot_size = 64};
        struct proto_msg msg;
        int fd, fds[PROTO_FDS_MAX];
        unsigned nfds = 0;
        ssize_t n;

        chan_keep_write(&a->ready);
        chan_keep_read(&a->go);
        chan_keep_write(&a->done);
        if (become_forger() < 0)
                return 2;
        if (raw_hello(a->sock, &fd) != 0)
                return 1;
        n = proto_enc_open(buf, sizeof(buf), 2, &o, "rv.spoof");
        PEER_CHECK(sock_send(fd, buf, (size_t)n, NULL, 0) == 0, "OPEN");
        n = raw_recv(fd, buf, sizeof(buf), fds, PROTO_FDS_MAX, &nfds);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &msg) == 0 && msg.hdr.type == PROTO_OPEN_REPLY, "reply");
        struct proto_open_reply rep = msg.u.open_reply;
        struct seg_map m;
        PEER_CHECK(rep.table == 1, "table %u", rep.table);
        PEER_CHECK(seg_map_fds(fds[0], &fds[1], 1, 1, 0, &m) == 0, "map");
        ((struct seg_subs_hdr *)m.tables[1])->table = 0;
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        PEER_CHECK(chan_recv(&a->go) == 'G', "go");
        (void)close(fd);
        if (raw_hello(a->sock, &fd) != 0)
                return 1;
        struct proto_adopt ad = {.role = PROTO_ROLE_SUB, .index = rep.index, .table = 1, .ntables = 1};
        memcpy(ad.topic_id, rep.topic_id, 16);
        memcpy(ad.segment_id, rep.segment_id, 16);
        n = proto_enc_adopt(buf, sizeof(buf), 3, &ad, "rv.spoof");
        PEER_CHECK(sock_send(fd, buf, (size_t)n, fds, 2) == 0, "ADOPT");
        n = raw_recv(fd, buf, sizeof(buf), NULL, 0, NULL);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &msg) == 0, "ADOPT reply");
        PEER_CHECK(chan_send(&a->done, 'D') == 0, "done");
        for (;;) {
                uint64_t h = load_sc(&seg_head(&m)->head);
                store_sc(&seg_sub(&m, 1, 0)->floor, h >= 8 ? h - 8 : 0);
                store_sc(&seg_subs_notify(&m, 1)->room_armed, 1);
                store_sc(&seg_sub(&m, 1, rep.index)->floor, SEG_FLOOR_NONE);
                usleep(1000);
        }
}

START_TEST(test_a_table_that_lies_about_its_index_changes_nothing_after_a_restart) {
        char conf[160];
        struct broker b;
        struct spoof a;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64, .wait_mode = ZCBUS_WAIT_FUTEX};
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_pub *pub;
        zcbus_msg msg;

        conf_open_to_all(conf, sizeof(conf), "stall = rv.* 300\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        open_dirs(&b);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "rv.spoof", &so, &sub), 0); /* entry 0, table 0 */
        ck_assert_int_eq(zcbus_pub_open(bus, "rv.spoof", &o, &pub), 0);
        a.sock = b.sock;
        chan_open(&a.ready);
        chan_open(&a.go);
        chan_open(&a.done);
        pid_t pid = spawn(spoof_peer, &a);
        ck_assert_int_eq(chan_recv(&a.ready), 'R');
        broker_kill(&b);
        ck_assert_int_eq(broker_restart(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(chan_send(&a.go, 'G'), 0);
        ck_assert_int_eq(chan_recv(&a.done), 'D');
        int r = zcbus_reconnect(bus);
        ck_assert_msg(r == 0, "the honest reconnect: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        for (uint64_t i = 0; i < 40; i++) {
                r = zcbus_pub_send(pub, &i, 8, 2000);
                ck_assert_msg(r == 0, "send %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                r = zcbus_sub_recv(sub, &msg, 2000);
                ck_assert_msg(r == 0, "receive %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                ck_assert_int_eq(zcbus_sub_release(sub, &msg), 0);
                if (i == 7)
                        usleep(800 * 1000); /* the producer idle past the stall timeout */
        }
        (void)kill(pid, SIGKILL);
        (void)wait_exit(pid);
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        chan_close(&a.ready);
        chan_close(&a.go);
        chan_close(&a.done);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* zcbus_reconnect while the broker is still there would end the session
 * and free every entry the handles use: it refuses. */
START_TEST(test_reconnecting_to_a_broker_that_is_still_there_is_refused) {
        struct broker b;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_topic_entry e[2];

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "rv.live", &so, &sub), 0);
        ck_assert_int_eq(zcbus_reconnect(bus), -EISCONN);
        ck_assert_int_eq(zcbus_list_topics(bus, 0, e, 2, NULL), 1);
        ck_assert_uint_eq(e[0].subscribers, 1);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

static Suite *restart_suite(void) {
        Suite *s = suite_create("restart");
        TCase *tc = tcase_create("adopt");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_producer_that_dies_without_a_broker_is_repaired_by_the_next);
        tcase_add_test(tc, test_a_subscriber_that_dies_without_a_broker_stops_gating_once_one_is_back);
        tcase_add_test(tc, test_segments_the_broker_did_not_make_cannot_be_handed_back);
        tcase_add_test(tc, test_a_relearned_topic_missing_a_table_keeps_the_broker_up);
        tcase_add_test(tc, test_a_table_that_lies_about_its_index_changes_nothing_after_a_restart);
        tcase_add_test(tc, test_reconnecting_to_a_broker_that_is_still_there_is_refused);
        suite_add_tcase(s, tc);
        return s;
}

HARNESS_MAIN(restart_suite, true)
