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
#include <unistd.h>

#include "harness.h"
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

        /* A new broker, told by the subscriber what it holds. */
        ck_assert_int_eq(broker_restart(&b, NULL), 0);
        int r = zcbus_reconnect(bus);
        ck_assert_msg(r == 0, "reconnect: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
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
        char name[96];
        int fd, fds[2];
        ssize_t n;

        if (setgroups(0, NULL) < 0 || setresgid(UID_FORGER, UID_FORGER, UID_FORGER) < 0 ||
            setresuid(UID_FORGER, UID_FORGER, UID_FORGER) < 0)
                return 2;
        /* A real topic's layout, made by this uid. */
        struct seg_params p = {.slot_count = 8, .slot_size = 64, .policy = ZCBUS_POLICY_RELIABLE,
                               .max_producers = 4, .max_subs = 4, .sub_tables = 1,
                               .name_hash = seg_name_hash("forged.topic")};
        for (int i = 0; i < 16; i++)
                p.segment_id[i] = (uint8_t)i;
        PEER_CHECK(seg_create(&p, &fds[0], &fds[1]) == 0, "seg_create");
        seg_memfd_name(name, sizeof(name), p.segment_id, -1, p.name_hash);
        memcpy(ad.segment_id, p.segment_id, 16);
        PEER_CHECK(sock_connect(sock, &fd) == 0, "connect");
        n = proto_enc_hello(buf, sizeof(buf), 1);
        PEER_CHECK(sock_send(fd, buf, (size_t)n, NULL, 0) == 0, "HELLO");
        n = recv(fd, buf, sizeof(buf), 0);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &m) == 0 && m.hdr.type == PROTO_HELLO_REPLY, "HELLO reply");
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

static Suite *restart_suite(void) {
        Suite *s = suite_create("restart");
        TCase *tc = tcase_create("adopt");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_producer_that_dies_without_a_broker_is_repaired_by_the_next);
        tcase_add_test(tc, test_a_subscriber_that_dies_without_a_broker_stops_gating_once_one_is_back);
        tcase_add_test(tc, test_segments_the_broker_did_not_make_cannot_be_handed_back);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        int failed;

        harness_init(); /* exits 77 without $ZCBUSD */
        if (geteuid() != 0) {
                fprintf(stderr, "test_restart needs root (it forks a peer of another uid): skipping\n");
                harness_cleanup();
                return EXIT_SKIP;
        }
        require_memfd_sealing();
        (void)signal(SIGPIPE, SIG_IGN);
        failed = RUN_SUITE(restart_suite());
        harness_cleanup();
        return failed ? 1 : 0;
}
