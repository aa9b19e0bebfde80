/* SPDX-License-Identifier: MIT */
/*
 * test_uids.c: what a subscriber of one uid writes reaches no subscriber
 * of another uid (docs/design.md, Threat model; issue 10, defect 2). A
 * real broker, a producer, an honest subscriber of one uid and a
 * scribbler of another, all real processes: the scribbler opens the topic
 * through the protocol, maps what the broker gives it, and then writes
 * every word of it it can, as fast as it can, while the honest subscriber
 * must receive every message (RELIABLE) or only whole messages (LATEST),
 * asleep on its futex between bursts, within its deadlines.
 *
 * Before the subscriber tables were split by uid, the scribbler's writes
 * of other entries' floors, holds and arms tore and lost messages on a
 * RELIABLE topic, stalled it for good, and silenced sleepers.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "futex.h"
#include "harness.h"
#include "raw_peer.h"
#include "zcbus.h"

#define UID_SCRIBBLER 65534
#define UID_HONEST 65533
#define MSGS 20000u
#define SLOTS 64u
#define SLOT_SIZE 256u

static void write_conf(char *path, size_t len, const char *text) {
        char dir[128];
        harness_mkdtemp(dir, sizeof(dir));
        ck_assert((size_t)snprintf(path, len, "%s/zcbusd.conf", dir) < len);
        FILE *f = fopen(path, "we");
        ck_assert(f != NULL);
        ck_assert(fputs(text, f) >= 0);
        ck_assert_int_eq(fclose(f), 0);
}

/* Let other uids reach the socket (the harness's directories are 0700). */
static void open_dirs(const struct broker *b) {
        char d[sizeof(b->dir)];
        snprintf(d, sizeof(d), "%s", b->dir);
        ck_assert_int_eq(chmod(b->dir, 0711), 0);
        ck_assert_int_eq(chmod(dirname(d), 0711), 0);
}

static int become(uid_t uid) {
        if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
                peer_fail(__FILE__, __LINE__, "becoming %u: %s", (unsigned)uid, strerror(errno));
                return -1;
        }
        return 0;
}

struct peer_args {
        const char *sock;
        const char *topic;
        uint32_t policy;
        struct chan ready; /* peer -> test: mapped / subscribed */
        struct chan stop;  /* test -> scribbler: enough */
};

/* Every word of the scribbler's own table, written with what hurts most:
 * floors that gate everything or nothing, every hold bit, arms taken
 * (so that a sleeper is not woken), room words bumped and woken. */
static void scribble(const struct seg_map *m, uint32_t table, uint64_t round) {
        struct seg_subs_notify *sn = seg_subs_notify(m, table);

        for (uint32_t i = 0; i < m->g.max_subs; i++) {
                struct seg_sub *e = seg_sub(m, table, i);
                store_rlx(&e->floor, (round + i) & 1 ? SEG_FLOOR_NONE : 0);
                store_rlx(&e->next, round);
        }
        if (m->g.policy == ZCBUS_POLICY_LATEST)
                for (uint64_t s = 0; s < m->g.slot_count; s++)
                        for (uint32_t w = 0; w < m->g.hold_words; w++)
                                store_rlx(&seg_holds(m, table, s)[w], UINT64_MAX);
        store_rlx(&sn->data_armed, 0);
        store_rlx(&sn->room_armed, 0);
        (void)faa_sc(&sn->room_word, 1);
        (void)futex_wake(&sn->room_word, 1 << 30);
}

static int scribbler_peer(void *arg) {
        struct peer_args *a = arg;
        struct proto_open o = {.role = PROTO_ROLE_SUB, .slot_count = SLOTS, .slot_size = SLOT_SIZE, .policy = a->policy};
        struct proto_open_reply rep = {0};
        struct seg_map m = {0};
        int fd = -1;

        chan_keep_write(&a->ready);
        chan_keep_read(&a->stop);
        if (become(UID_SCRIBBLER) < 0 || raw_open(a->sock, &o, a->topic, &fd, &m, &rep) < 0)
                return 2;
        /* It was handed its own table and nothing else. */
        for (uint32_t t = 0; t < SEG_TABLES_MAX; t++)
                PEER_CHECK(!m.tables[t] == (t != rep.table), "table %u %s", t, m.tables[t] ? "mapped" : "missing");
        PEER_CHECK(m.ring && !m.ring_writable, "the ring is writable");
        /* Its entry's own floor must not gate for ever either: it keeps it
         * low until the stall policy evicts it (RELIABLE), then goes on. */
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        int fl = fcntl(a->stop.r, F_GETFL);
        PEER_CHECK(fl >= 0 && fcntl(a->stop.r, F_SETFL, fl | O_NONBLOCK) == 0, "nonblocking stop");
        for (uint64_t round = 0;; round++) {
                char c;
                scribble(&m, rep.table, round);
                if (read(a->stop.r, &c, 1) == 1)
                        break;
        }
        seg_unmap(&m);
        (void)close(fd);
        return 0;
}

/* The honest subscriber: futex waits (the arms matter), every message
 * whole; under RELIABLE every sequence once and in order. */
static int honest_peer(void *arg) {
        struct peer_args *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = SLOTS, .slot_size = SLOT_SIZE, .policy = a->policy,
                             .wait_mode = ZCBUS_WAIT_FUTEX};
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_msg m;
        uint64_t next = 0, got = 0, lost = 0;
        int r;

        chan_keep_write(&a->ready);
        if (become(UID_HONEST) < 0)
                return 2;
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "connect: %s", zcbus_strerror(r));
        r = zcbus_sub_open(bus, a->topic, &so, &sub);
        PEER_CHECK(r == 0, "sub_open: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        PEER_CHECK(chan_send(&a->ready, 'R') == 0, "ready");
        for (;;) {
                r = zcbus_sub_recv(sub, &m, 10000);
                PEER_CHECK(r == 0, "recv after %llu: %s", (unsigned long long)got, zcbus_strerror(r));
                uint64_t key;
                PEER_CHECK(m.len >= sizeof(key), "message of %zu bytes", m.len);
                memcpy(&key, m.data, sizeof(key));
                PEER_CHECK(pattern_check((const uint8_t *)m.data + 8, m.len - 8, key) < 0,
                           "message %llu torn (seq %llu)", (unsigned long long)key, (unsigned long long)m.seq);
                if (a->policy == ZCBUS_POLICY_RELIABLE)
                        PEER_CHECK(key == next && m.lost == 0, "got message %llu (lost %llu), want %llu",
                                   (unsigned long long)key, (unsigned long long)m.lost, (unsigned long long)next);
                else
                        PEER_CHECK(key >= next, "message %llu after %llu", (unsigned long long)key,
                                   (unsigned long long)next);
                lost += m.lost;
                next = key + 1;
                got++;
                PEER_CHECK(zcbus_sub_release(sub, &m) == 0, "release");
                if (key == MSGS - 1)
                        break;
        }
        PEER_CHECK(a->policy != ZCBUS_POLICY_RELIABLE || got == MSGS, "%llu of %u", (unsigned long long)got, MSGS);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        return 0;
}

static void run(uint32_t policy, const char *topic) {
        char conf[256];
        struct broker b;
        struct peer_args sa = {.topic = topic, .policy = policy}, ha = {.topic = topic, .policy = policy};
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = SLOTS, .slot_size = SLOT_SIZE, .policy = policy};
        uint8_t buf[SLOT_SIZE];
        zcbus *bus;
        zcbus_pub *pub;

        require_memfd_sealing();
        write_conf(conf, sizeof(conf),
                   "socket_mode = 0666\nstall = x.* 300\nrule = x x.* publish=any subscribe=any create=any\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        open_dirs(&b);
        sa.sock = ha.sock = b.sock;
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, topic, &o, &pub), 0);
        chan_open(&sa.ready);
        chan_open(&sa.stop);
        chan_open(&ha.ready);
        pid_t ps = spawn(scribbler_peer, &sa);
        ck_assert_int_eq(chan_recv(&sa.ready), 'R');
        pid_t ph = spawn(honest_peer, &ha);
        ck_assert_int_eq(chan_recv(&ha.ready), 'R');

        for (uint64_t i = 0; i < MSGS; i++) {
                size_t len = 8 + pattern_len(i, 0, SLOT_SIZE - 8);
                memcpy(buf, &i, 8);
                pattern_fill(buf + 8, len - 8, i);
                int r = zcbus_pub_send(pub, buf, len, 10000);
                ck_assert_msg(r == 0, "send %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                if ((i & 255) == 255)
                        usleep(200); /* let the subscriber fall asleep */
        }
        ck_assert_int_eq(wait_exit(ph), 0);
        ck_assert_int_eq(chan_send(&sa.stop, 'S'), 0);
        ck_assert_int_eq(wait_exit(ps), 0);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        chan_close(&sa.ready);
        chan_close(&sa.stop);
        chan_close(&ha.ready);
        broker_stop(&b);
        broker_destroy(&b);
}

START_TEST(test_a_scribbling_subscriber_of_another_uid_loses_and_tears_nothing_on_a_reliable_topic) {
        run(ZCBUS_POLICY_RELIABLE, "x.reliable");
}
END_TEST

START_TEST(test_a_scribbling_subscriber_of_another_uid_tears_nothing_on_a_latest_topic) {
        run(ZCBUS_POLICY_LATEST, "x.latest");
}
END_TEST

static Suite *uids_suite(void) {
        Suite *s = suite_create("uids");
        TCase *tc = tcase_create("scribbler");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_a_scribbling_subscriber_of_another_uid_loses_and_tears_nothing_on_a_reliable_topic);
        tcase_add_test(tc, test_a_scribbling_subscriber_of_another_uid_tears_nothing_on_a_latest_topic);
        suite_add_tcase(s, tc);
        return s;
}

HARNESS_MAIN(uids_suite, true)
