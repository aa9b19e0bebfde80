/* SPDX-License-Identifier: MIT */
/*
 * test_broker.c: Check suite "broker": the broker's trust and failure
 * model (issue 10). A real zcbusd on a private socket, configured through
 * a config file, and peers forked as other uids (setresuid in the child)
 * to prove that
 *  - a producer that scribbles worst-case values into its claim words and
 *    dies costs the broker bounded CPU, and the broker keeps answering;
 *  - connections that never say HELLO time out and do not lock out real
 *    clients;
 *  - quotas per uid and per session stop one uid without stopping another;
 *  - per-topic rules allow and deny publish, subscribe and create, with
 *    the rule's name in zcbus_last_error, and SIGHUP reloads them.
 *
 * Peers report through their exit status (PEER_CHECK), never through
 * Check. Waits are on events (pipes, POLLHUP, inotify on the broker's
 * log); the one timed window is the CPU measurement of the first case,
 * which bounds unbounded work, not speed.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "raw_peer.h"
#include "proto.h"
#include "seg.h"
#include "sock.h"
#include "zcbus.h"

#define UID_A 65534
#define GID_A 65534
#define UID_B 65533
#define GID_B 65533
#define UID_C 65532
#define GID_C 65530 /* C is let in by group */

/* ------------------------------------------------------------ helpers */

static uint64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A config file in a fresh private directory. */
static void write_conf(char *path, size_t len, const char *text) {
        char dir[128];
        harness_mkdtemp(dir, sizeof(dir));
        ck_assert((size_t)snprintf(path, len, "%s/zcbusd.conf", dir) < len);
        FILE *f = fopen(path, "we");
        ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
        ck_assert(fputs(text, f) >= 0);
        ck_assert_int_eq(fclose(f), 0);
}

/* Replace a config file's content in place (same path, for SIGHUP). */
static void rewrite_conf(const char *path, const char *text) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "%s.new", path);
        FILE *f = fopen(tmp, "we");
        ck_assert(f != NULL);
        ck_assert(fputs(text, f) >= 0);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(rename(tmp, path), 0);
}

/* Let other uids reach the broker's socket: the harness's directories are
 * 0700 (the socket's own mode comes from the broker's socket_mode). */
static void open_dirs(const struct broker *b) {
        char d[sizeof(b->dir)];
        snprintf(d, sizeof(d), "%s", b->dir);
        ck_assert_int_eq(chmod(b->dir, 0711), 0);
        ck_assert_int_eq(chmod(dirname(d), 0711), 0);
}

static int start_with_conf(struct broker *b, const char *conf) {
        int r = broker_start(b, "-c", conf, NULL);
        if (r == 0)
                open_dirs(b);
        return r;
}

/* In a forked child: become uid/gid with no supplementary groups. */
static int become(uid_t uid, gid_t gid) {
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
                peer_fail(__FILE__, __LINE__, "becoming %u/%u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
                return -1;
        }
        return 0;
}

/* Does the broker's log have `what` in it? Waits (inotify, no polling)
 * up to timeout_ms for it to appear. */
static bool log_wait(const struct broker *b, const char *what, int timeout_ms) {
        static char buf[1 << 16];
        int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        uint64_t end = mono_ms() + (uint64_t)timeout_ms;
        bool found = false;

        ck_assert_int_ge(in, 0);
        ck_assert_int_ge(inotify_add_watch(in, b->log, IN_MODIFY), 0);
        for (;;) {
                int fd = open(b->log, O_RDONLY | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                (void)close(fd);
                buf[n > 0 ? n : 0] = '\0';
                if (strstr(buf, what)) {
                        found = true;
                        break;
                }
                uint64_t now = mono_ms();
                if (now >= end)
                        break;
                struct pollfd p = {.fd = in, .events = POLLIN};
                if (poll(&p, 1, (int)(end - now)) > 0) {
                        char ev[4096];
                        (void)!read(in, ev, sizeof(ev));
                }
        }
        (void)close(in);
        return found;
}

/* --------------------------------------------- peers as other uids */

enum op { OP_PUB, OP_SUB };

struct open_args {
        const char *sock;
        uid_t uid;
        gid_t gid;
        enum op op;
        const char *topic;
        uint32_t slot_count; /* 0: default */
        int want;            /* 0 or a negative errno */
        const char *want_msg; /* substring of zcbus_last_error on failure */
};

static int open_as(const struct open_args *a, zcbus *bus) {
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = a->slot_count};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = a->slot_count};
        zcbus_pub *pub = NULL;
        zcbus_sub *sub = NULL;
        int r;

        if (a->op == OP_PUB)
                r = zcbus_pub_open(bus, a->topic, a->slot_count ? &o : NULL, &pub);
        else
                r = zcbus_sub_open(bus, a->topic, a->slot_count ? &so : NULL, &sub);
        PEER_CHECK(r == a->want, "uid %u %s '%s': got %d (%s: %s), want %d", (unsigned)a->uid,
                   a->op == OP_PUB ? "pub_open" : "sub_open", a->topic, r, zcbus_strerror(r),
                   zcbus_last_error(bus), a->want);
        if (r < 0 && a->want_msg)
                PEER_CHECK(strstr(zcbus_last_error(bus), a->want_msg), "uid %u '%s': error '%s' lacks '%s'",
                           (unsigned)a->uid, a->topic, zcbus_last_error(bus), a->want_msg);
        return 0;
}

static int open_peer(void *arg) {
        const struct open_args *a = arg;
        zcbus *bus;
        int r;

        if (become(a->uid, a->gid) < 0)
                return 2;
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "uid %u: connect %s: %s", (unsigned)a->uid, a->sock, zcbus_strerror(r));
        r = open_as(a, bus);
        zcbus_disconnect(bus);
        return r;
}

/* Fork a peer of uid/gid that opens one topic and checks the outcome. */
static void expect_open(const char *sock, uid_t uid, gid_t gid, enum op op, const char *topic, int want,
                        const char *want_msg) {
        struct open_args a = {
                .sock = sock, .uid = uid, .gid = gid, .op = op, .topic = topic, .want = want, .want_msg = want_msg,
        };
        int st = wait_exit(spawn(open_peer, &a));
        ck_assert_msg(st == 0, "uid %u %s '%s' (want %d): peer exit status %d", (unsigned)uid,
                      op == OP_PUB ? "publish" : "subscribe", topic, want, st);
}

/* ------------------------------- 1. repairs cost bounded CPU (defect 7) */

#define HOSTILE_PRODUCERS 256u
#define HOSTILE_SLOTS 65536u

/* A raw producer: HELLO, then OPEN, then map the ring read-write. */
static int raw_producer(const char *sock, const char *topic, uint32_t slots, int *ret_fd, struct seg_map *ret_map,
                        uint32_t *ret_index) {
        struct proto_open o = {.role = PROTO_ROLE_PUB, .slot_count = slots, .slot_size = 64};
        struct proto_open_reply rep;
        int r = raw_open(sock, &o, topic, ret_fd, ret_map, &rep);

        *ret_index = rep.index;
        return r;
}

struct hostile_args {
        const char *sock;
        int victim; /* 1: the producer that dies; 0: its accomplice that stays */
        struct chan up;
};

/* The accomplice holds every producer entry but one and makes each claim
 * cover the whole span the broker scans (claim_n far above the slot
 * count), except its last sequence; the victim records a pending claim
 * from the ring's start and pushes head a full span ahead, then waits to
 * be killed. Before the fix, each repair attempt of the victim examined
 * slot_count x (max_producers + 1) sequences with an O(P) check each,
 * and retried every 2 ms for ever. */
static int hostile_peer(void *arg) {
        struct hostile_args *a = arg;
        struct seg_map m = {0};
        static uint8_t mine[HOSTILE_PRODUCERS];
        uint32_t index;
        int fd = -1;

        chan_keep_write(&a->up);
        unsigned n = a->victim ? 1 : HOSTILE_PRODUCERS - 1;
        for (unsigned i = 0; i < n; i++) {
                if (raw_producer(a->sock, "hostile", HOSTILE_SLOTS, &fd, &m, &index) != 0)
                        return 1;
                mine[index % HOSTILE_PRODUCERS] = 1;
        }
        uint64_t start = m.g.start_seq;
        uint64_t span = (uint64_t)m.g.slot_count * (m.g.max_producers + 1u);
        PEER_CHECK(m.g.max_producers == HOSTILE_PRODUCERS, "max_producers %u", m.g.max_producers);
        if (a->victim) {
                struct seg_prod *e = seg_prod(&m, index);
                store_sc(&e->claim_n, UINT32_MAX);
                store_sc(&e->claim, SEG_CLAIM_PENDING | start);
                store_sc(&seg_head(&m)->head, start + span);
        } else {
                for (uint32_t i = 0; i < m.g.max_producers; i++) {
                        struct seg_prod *e = seg_prod(&m, i);
                        if (!mine[i])
                                continue;
                        store_sc(&e->claim_n, (uint32_t)(span - 1));
                        store_sc(&e->claim, start);
                }
        }
        (void)chan_send(&a->up, 'R');
        for (;;)
                pause(); /* until killed */
}

static uint64_t proc_cpu_ticks(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        (void)close(fd);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        /* Fields after the command's closing parenthesis: state is 3,
         * utime 14, stime 15. */
        char *p = strrchr(buf, ')');
        ck_assert(p != NULL);
        unsigned long long ut = 0, st = 0;
        ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st), 2);
        return ut + st;
}

/* The victim (a producer that scribbles its claim words, then waits to be
 * killed) and its accomplice (holding the other entries with claims that
 * cover the span), both ready. */
static void hostile_pair(const struct broker *b, struct hostile_args *vic, struct hostile_args *acc, pid_t *ret_pv,
                         pid_t *ret_pa) {
        vic->sock = acc->sock = b->sock;
        vic->victim = 1;
        chan_open(&vic->up);
        chan_open(&acc->up);
        *ret_pv = spawn(hostile_peer, vic);
        chan_keep_read(&vic->up);
        ck_assert_int_eq(chan_recv(&vic->up), 'R');
        *ret_pa = spawn(hostile_peer, acc);
        chan_keep_read(&acc->up);
        ck_assert_int_eq(chan_recv(&acc->up), 'R');
}

START_TEST(test_a_dead_producer_with_scribbled_claims_costs_the_broker_bounded_cpu) {
        char conf[256];
        struct broker b;
        struct hostile_args acc = {0}, vic = {0};

        write_conf(conf, sizeof(conf),
                   "max_producers = 256\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        pid_t pv, pa;
        hostile_pair(&b, &vic, &acc, &pv, &pa);

        zcbus *bus;
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);

        long hz = sysconf(_SC_CLK_TCK);
        uint64_t cpu0 = proc_cpu_ticks(b.pid), t0 = mono_ms(), worst = 0;
        ck_assert_int_eq(kill(pv, SIGKILL), 0);
        ck_assert_int_eq(wait_exit(pv), 128 + SIGKILL);
        /* LIST every 50 ms for 1.5 s while the broker repairs. */
        while (mono_ms() - t0 < 1500) {
                zcbus_topic_entry e[4];
                unsigned total = 0;
                uint64_t s = mono_ms();
                int r = zcbus_list_topics(bus, 0, e, 4, &total);
                uint64_t d = mono_ms() - s;
                ck_assert_msg(r >= 0, "LIST failed: %s", zcbus_strerror(r));
                if (d > worst)
                        worst = d;
                (void)poll(NULL, 0, 50);
        }
        uint64_t wall = mono_ms() - t0;
        uint64_t cpu_ms = (proc_cpu_ticks(b.pid) - cpu0) * 1000 / (uint64_t)hz;
        ck_assert_msg(worst < 500, "a LIST round trip took %llu ms while the broker repaired",
                      (unsigned long long)worst);
        ck_assert_msg(cpu_ms * 5 < wall, "the broker used %llu ms of CPU in %llu ms (over 20%%)",
                      (unsigned long long)cpu_ms, (unsigned long long)wall);

        zcbus_disconnect(bus);
        (void)kill(pa, SIGKILL);
        (void)wait_exit(pa);
        chan_close(&vic.up);
        chan_close(&acc.up);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* A repair that can never finish is given up after repair_timeout_ms:
 * the entry is freed and the broker says so. */
START_TEST(test_a_repair_that_cannot_finish_is_given_up_and_logged) {
        char conf[256];
        struct broker b;
        struct hostile_args acc = {0}, vic = {0};

        write_conf(conf, sizeof(conf),
                   "max_producers = 256\n"
                   "repair_timeout_ms = 300\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        pid_t pv, pa;
        hostile_pair(&b, &vic, &acc, &pv, &pa);
        ck_assert_int_eq(kill(pv, SIGKILL), 0);
        ck_assert_int_eq(wait_exit(pv), 128 + SIGKILL);
        ck_assert_msg(log_wait(&b, "giving up", 5000), "no 'giving up' line in the broker's log");
        (void)kill(pa, SIGKILL);
        (void)wait_exit(pa);
        chan_close(&vic.up);
        chan_close(&acc.up);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ------------------------- 2a. silent connections time out (defect 8) */


#define SILENT 12

START_TEST(test_silent_connections_time_out_and_do_not_lock_out_real_clients) {
        char conf[256];
        struct broker b;
        struct leak_check lc;
        int fds[SILENT];

        write_conf(conf, sizeof(conf),
                   "max_sessions = 4\n"
                   "max_unauthenticated = 8\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        leak_begin(&lc);
        uint64_t t0 = mono_ms();
        for (int i = 0; i < SILENT; i++)
                fds[i] = harness_raw_connect(b.sock);

        /* More silent connections than max_sessions: a real client still
         * gets in and opens a topic. */
        zcbus *bus;
        zcbus_pub *pub;
        int r = zcbus_connect(b.sock, &bus);
        ck_assert_msg(r == 0, "connect behind %d silent connections: %s", SILENT, zcbus_strerror(r));
        r = zcbus_pub_open(bus, "behind.silent", NULL, &pub);
        ck_assert_msg(r == 0, "pub_open: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));

        /* Every silent one is closed by the broker within about a second
         * (the oldest ones at once: the pre-HELLO pool holds 8). */
        int open = SILENT;
        struct pollfd p[SILENT];
        for (int i = 0; i < SILENT; i++)
                p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        while (open > 0) {
                int left = 3000 - (int)(mono_ms() - t0);
                ck_assert_msg(left > 0, "%d silent connections still open after 3 s", open);
                ck_assert_int_ge(poll(p, SILENT, left), 0);
                for (int i = 0; i < SILENT; i++) {
                        if (p[i].fd < 0 || !(p[i].revents & (POLLHUP | POLLIN | POLLERR)))
                                continue;
                        char c;
                        if (recv(p[i].fd, &c, 1, MSG_DONTWAIT) > 0)
                                continue; /* an error reply first is fine */
                        (void)close(p[i].fd);
                        p[i].fd = -1;
                        open--;
                }
        }
        uint64_t took = mono_ms() - t0;
        ck_assert_msg(took < 2500, "silent connections closed only after %llu ms", (unsigned long long)took);

        /* The real client's session outlived them all. */
        zcbus_topic_entry e[2];
        unsigned total;
        ck_assert_int_ge(zcbus_list_topics(bus, 0, e, 2, &total), 0);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        leak_end(&lc);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ------------------------------------------ 2b. quotas per uid/session */

struct quota_args {
        const char *sock;
        uid_t uid;
        gid_t gid;
        char prefix[16];
        struct chan up, down;
};

/* uid A: 2 topics, then -EDQUOT naming uid_max_topics; 4 entries over
 * two sessions, then -EDQUOT naming uid_max_entries; a third session
 * refused. It keeps all that until told to go. */
static int quota_hog_peer(void *arg) {
        struct quota_args *a = arg;
        zcbus *bus, *bus2, *bus3;
        zcbus_pub *pub[4];
        zcbus_sub *sub;
        int r;

        chan_keep_write(&a->up);
        chan_keep_read(&a->down);
        if (become(a->uid, a->gid) < 0)
                return 2;
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "connect: %s", zcbus_strerror(r));
        PEER_CHECK(zcbus_pub_open(bus, "qa.1", NULL, &pub[0]) == 0, "qa.1: %s", zcbus_last_error(bus));
        PEER_CHECK(zcbus_pub_open(bus, "qa.2", NULL, &pub[1]) == 0, "qa.2: %s", zcbus_last_error(bus));
        r = zcbus_pub_open(bus, "qa.3", NULL, &pub[2]);
        PEER_CHECK(r == -EDQUOT, "third topic: %d (%s), want -EDQUOT", r, zcbus_last_error(bus));
        PEER_CHECK(strstr(zcbus_last_error(bus), "uid_max_topics"), "error '%s'", zcbus_last_error(bus));
        /* Entries on existing topics: 3 in this session, the 4th in a
         * second one, and the 5th is over the uid's quota. */
        PEER_CHECK(zcbus_pub_open(bus, "qa.1", NULL, &pub[2]) == 0, "entry 3: %s", zcbus_last_error(bus));
        r = zcbus_connect(a->sock, &bus2);
        PEER_CHECK(r == 0, "second session: %s", zcbus_strerror(r));
        PEER_CHECK(zcbus_pub_open(bus2, "qa.2", NULL, &pub[3]) == 0, "entry 4: %s", zcbus_last_error(bus2));
        r = zcbus_sub_open(bus2, "qa.1", NULL, &sub);
        PEER_CHECK(r == -EDQUOT, "fifth entry: %d (%s), want -EDQUOT", r, zcbus_last_error(bus2));
        PEER_CHECK(strstr(zcbus_last_error(bus2), "uid_max_entries"), "error '%s'", zcbus_last_error(bus2));
        r = zcbus_connect(a->sock, &bus3);
        PEER_CHECK(r == -EDQUOT, "third session: %d (%s), want -EDQUOT", r, zcbus_strerror(r));
        (void)chan_send(&a->up, 'R');
        (void)chan_recv(&a->down);
        for (int i = 0; i < 4; i++)
                zcbus_pub_close(pub[i]);
        zcbus_disconnect(bus2);
        zcbus_disconnect(bus);
        return 0;
}

/* uid B, while A holds its whole quota: topics, entries, a large topic
 * within its byte quota, and the per-session entry quota. */
static int quota_other_peer(void *arg) {
        struct quota_args *a = arg;
        zcbus *bus, *bus2;
        zcbus_pub *pub[3];
        zcbus_sub *sub;
        zcbus_topic_opts big = {.size = sizeof(big), .slot_count = 4096, .slot_size = 4096};
        int r;

        if (become(a->uid, a->gid) < 0)
                return 2;
        r = zcbus_connect(a->sock, &bus);
        PEER_CHECK(r == 0, "connect: %s", zcbus_strerror(r));
        r = zcbus_pub_open(bus, "qb.1", NULL, &pub[0]);
        PEER_CHECK(r == 0, "qb.1 while A is at its quota: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        /* A topic over uid_max_bytes (16M + tables). */
        r = zcbus_pub_open(bus, "qb.big", &big, &pub[1]);
        PEER_CHECK(r == -EDQUOT, "qb.big: %d (%s), want -EDQUOT", r, zcbus_last_error(bus));
        PEER_CHECK(strstr(zcbus_last_error(bus), "uid_max_bytes"), "error '%s'", zcbus_last_error(bus));
        r = zcbus_pub_open(bus, "qb.2", NULL, &pub[1]);
        PEER_CHECK(r == 0, "qb.2: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        r = zcbus_sub_open(bus, "qa.1", NULL, &sub); /* A's topic: B may open it */
        PEER_CHECK(r == 0, "qa.1 as subscriber: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus));
        r = zcbus_pub_open(bus, "qb.1", NULL, &pub[2]);
        PEER_CHECK(r == -EDQUOT, "fourth entry of one session: %d (%s), want -EDQUOT", r,
                   zcbus_last_error(bus));
        PEER_CHECK(strstr(zcbus_last_error(bus), "session_max_entries"), "error '%s'", zcbus_last_error(bus));
        r = zcbus_connect(a->sock, &bus2);
        PEER_CHECK(r == 0, "second session: %s", zcbus_strerror(r));
        r = zcbus_pub_open(bus2, "qb.1", NULL, &pub[2]);
        PEER_CHECK(r == 0, "entry in a second session: %s (%s)", zcbus_strerror(r), zcbus_last_error(bus2));
        zcbus_pub_close(pub[2]);
        zcbus_pub_close(pub[1]);
        zcbus_pub_close(pub[0]);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus2);
        zcbus_disconnect(bus);
        return 0;
}

START_TEST(test_one_uid_at_its_quota_does_not_stop_another) {
        char conf[256];
        struct broker b;
        struct quota_args qa = {0}, qb = {0};

        write_conf(conf, sizeof(conf),
                   "socket_mode = 0666\n"
                   "rule = all * publish=any subscribe=any create=any\n"
                   "uid_max_sessions = 2\n"
                   "uid_max_topics = 2\n"
                   "uid_max_entries = 4\n"
                   "uid_max_bytes = 16M\n"
                   "session_max_entries = 3\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        qa = (struct quota_args){.sock = b.sock, .uid = UID_A, .gid = GID_A};
        qb = (struct quota_args){.sock = b.sock, .uid = UID_B, .gid = GID_B};
        chan_open(&qa.up);
        chan_open(&qa.down);
        pid_t pa = spawn(quota_hog_peer, &qa);
        chan_keep_read(&qa.up);
        chan_keep_write(&qa.down);
        ck_assert_msg(chan_recv(&qa.up) == 'R', "uid A's peer failed");
        ck_assert_int_eq(wait_exit(spawn(quota_other_peer, &qb)), 0);
        (void)chan_send(&qa.down, 'G');
        ck_assert_int_eq(wait_exit(pa), 0);
        chan_close(&qa.up);
        chan_close(&qa.down);
        ck_assert_msg(log_wait(&b, "uid_max_topics", 0), "no log line for the refusal");
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ------------------------------------------ 3. access control per topic */

#define RULES                                                                                      \
        "socket_mode = 0666\n"                                                                     \
        "# cameras: A writes and creates, A and group 65530 read\n"                                \
        "rule = cams camera.* publish=uid:65534 subscribe=uid:65534,gid:65530 create=uid:65534\n" \
        "rule = public pub.* publish=any subscribe=any create=any\n"

START_TEST(test_topic_rules_allow_and_deny_publish_subscribe_and_create_per_uid) {
        char conf[256];
        struct broker b;

        write_conf(conf, sizeof(conf), RULES);
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        /* create + publish by A */
        expect_open(b.sock, UID_A, GID_A, OP_PUB, "camera.front", 0, NULL);
        /* B may neither subscribe nor publish on it */
        expect_open(b.sock, UID_B, GID_B, OP_SUB, "camera.front", -EACCES, "cams");
        expect_open(b.sock, UID_B, GID_B, OP_PUB, "camera.front", -EACCES, "cams");
        /* C is in group 65530: may subscribe, not publish, not create */
        expect_open(b.sock, UID_C, GID_C, OP_SUB, "camera.front", 0, NULL);
        expect_open(b.sock, UID_C, GID_C, OP_PUB, "camera.front", -EACCES, "cams");
        expect_open(b.sock, UID_C, GID_C, OP_SUB, "camera.new", -EACCES, "cams");
        /* no rule matches: default deny, except root */
        expect_open(b.sock, UID_B, GID_B, OP_PUB, "other.x", -EACCES, "default");
        expect_open(b.sock, UID_A, GID_A, OP_SUB, "other.x", -EACCES, "default");
        expect_open(b.sock, 0, 0, OP_PUB, "other.x", 0, NULL);
        /* open to anyone */
        expect_open(b.sock, UID_B, GID_B, OP_PUB, "pub.x", 0, NULL);
        expect_open(b.sock, UID_C, GID_C, OP_SUB, "pub.x", 0, NULL);
        ck_assert_msg(log_wait(&b, "cams", 0), "no log line for the denials");
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

START_TEST(test_sighup_reloads_the_rules_and_keeps_them_on_a_bad_file) {
        char conf[256];
        struct broker b;

        write_conf(conf, sizeof(conf),
                   "socket_mode = 0666\n"
                   "rule = hup hup.* publish=uid:65533 create=uid:65533\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        expect_open(b.sock, UID_B, GID_B, OP_PUB, "hup.a", 0, NULL);
        expect_open(b.sock, UID_A, GID_A, OP_PUB, "hup.a", -EACCES, "hup");

        rewrite_conf(conf,
                     "socket_mode = 0666\n"
                     "rule = hup2 hup.* publish=uid:65534 create=uid:65534\n");
        ck_assert_int_eq(kill(b.pid, SIGHUP), 0);
        ck_assert_msg(log_wait(&b, "configuration reloaded", 5000), "no reload in the broker's log");
        expect_open(b.sock, UID_B, GID_B, OP_PUB, "hup.a", -EACCES, "hup2");
        expect_open(b.sock, UID_A, GID_A, OP_PUB, "hup.b", 0, NULL);

        /* A bad file: the broker says where and keeps what it has. */
        rewrite_conf(conf,
                     "socket_mode = 0666\n"
                     "rule = hup3 hup.* publish=uid:nobody\n");
        ck_assert_int_eq(kill(b.pid, SIGHUP), 0);
        char where[300];
        snprintf(where, sizeof(where), "%s:2:", conf);
        ck_assert_msg(log_wait(&b, where, 5000), "no '%s' in the broker's log", where);
        expect_open(b.sock, UID_A, GID_A, OP_PUB, "hup.c", 0, NULL);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

START_TEST(test_a_bad_rule_line_stops_the_broker_with_file_and_line) {
        static const char *bad[] = {
                "rule = r1 a.* publish=uid:x\n",
                "rule = r1 a.* publish=uid:1 frobnicate=any\n",
                "rule = r1\n",
                "rule = r1 a.* publish=uid:1\nrule = r1 b.* publish=uid:1\n",
                "uid_max_topics = many\n",
                "socket_mode = 0999\n",
        };
        static const char *want[] = {"uid", "frobnicate", "pattern", "r1", "uid_max_topics", "socket_mode"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char conf[256], text[512], where[300];
                struct broker b;
                /* Line 1 is good, the bad one is line 2 (or 3). */
                snprintf(text, sizeof(text), "rule = ok ok.* publish=any\n%s", bad[i]);
                write_conf(conf, sizeof(conf), text);
                ck_assert_int_lt(broker_start(&b, "-c", conf, NULL), 0);
                snprintf(where, sizeof(where), "%s:%d: ", conf, i == 3 ? 3 : 2);
                ck_assert_msg(log_wait(&b, where, 0), "case %zu: no '%s' in the log", i, where);
                ck_assert_msg(log_wait(&b, want[i], 0), "case %zu: no '%s' in the log", i, want[i]);
                broker_destroy(&b);
        }
        /* And the good line alone starts. */
        char conf[256];
        struct broker b;
        write_conf(conf, sizeof(conf), "rule = ok ok.* publish=any subscribe=uid:1,gid:2 create=none\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* Defect 9: a subscriber stopped with SIGSTOP held a reliable topic for
 * ever: producers sent nothing, indefinitely. Under the stall policy the
 * broker evicts a subscriber that holds producers back without progress
 * for the topic's stall timeout; the others go on, and the evicted one's
 * next receive says so (-ESTALE). */
struct stall_sub {
        const char *sock;
        int ready[2], verdict[2];
};

static int stopped_sub_peer(void *arg) {
        struct stall_sub *a = arg;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_msg m;
        char v = 'Y';
        int r;

        if (zcbus_connect(a->sock, &bus) < 0 || zcbus_sub_open(bus, "stall.t", &so, &sub) < 0)
                return 2;
        (void)!write(a->ready[1], "R", 1);
        (void)raise(SIGSTOP); /* the test lets it go on once evicted */
        /* Whatever it was given before, it must learn it was evicted. */
        for (int i = 0; i < 100; i++) {
                r = zcbus_sub_recv(sub, &m, 2000);
                if (r == 0) {
                        (void)zcbus_sub_release(sub, &m);
                        continue;
                }
                break;
        }
        if (r != -ESTALE)
                v = r == -ETIMEDOUT ? 'T' : 'E';
        (void)!write(a->verdict[1], &v, 1);
        return 0;
}

START_TEST(test_a_stopped_subscriber_is_evicted_by_the_stall_policy) {
        char conf[256];
        struct broker b;
        struct stall_sub a;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *live;
        zcbus_msg m;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        char c;

        write_conf(conf, sizeof(conf), "stall_timeout_ms = 60000\nstall = stall.* 200\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        a.sock = b.sock;
        ck_assert_int_eq(pipe2(a.ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(a.verdict, O_CLOEXEC), 0);
        pid_t pid = spawn(stopped_sub_peer, &a);
        ck_assert_int_eq(read(a.ready[0], &c, 1), 1);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
        ck_assert(WIFSTOPPED(st));

        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.t", &so, &live), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.t", &o, &pub), 0);
        /* 100 messages through an 8-slot ring past a stopped subscriber:
         * the producer waits for it until the policy evicts it. */
        for (uint64_t i = 0; i < 100; i++) {
                int r = zcbus_pub_send(pub, &i, 8, 20000);
                ck_assert_msg(r == 0, "send %llu: %s (the stopped subscriber still holds the topic)",
                              (unsigned long long)i, zcbus_strerror(r));
                ck_assert_int_eq(zcbus_sub_recv(live, &m, 1000), 0);
                ck_assert_uint_eq(m.len, 8);
                ck_assert(memcmp(m.data, &i, 8) == 0);
                ck_assert_int_eq(zcbus_sub_release(live, &m), 0);
        }
        ck_assert(log_wait(&b, "(stall timeout): evicted", 2000));

        ck_assert_int_eq(kill(pid, SIGCONT), 0);
        ck_assert_int_eq(read(a.verdict[0], &c, 1), 1);
        ck_assert_msg(c == 'Y', "the evicted subscriber's receive did not say -ESTALE ('%c')", c);
        ck_assert_int_eq(wait_exit(pid), 0);

        zcbus_pub_close(pub);
        zcbus_sub_close(live);
        zcbus_disconnect(bus);
        for (int i = 0; i < 2; i++) {
                (void)close(a.ready[i]);
                (void)close(a.verdict[i]);
        }
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* The broker's descriptors and resident memory, from /proc. */
static unsigned broker_fds(pid_t pid) {
        char path[64];
        unsigned n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        DIR *d = opendir(path);
        ck_assert_msg(d, "%s: %s", path, strerror(errno));
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        (void)closedir(d);
        return n;
}

static uint64_t broker_rss_kb(pid_t pid) {
        char path[64], line[256];
        uint64_t kb = 0;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
                        break;
        (void)fclose(f);
        return kb;
}

/* The broker's descriptor count once its pre-HELLO pool has drained: a
 * connection we closed goes when the broker reads its hang-up, one we
 * left silent by hello_timeout_ms (100 ms here). Two equal readings a
 * quarter second apart, within 5 s. */
static unsigned settled_fds(pid_t pid) {
        unsigned last = broker_fds(pid);
        for (int i = 0; i < 20; i++) {
                (void)poll(NULL, 0, 250);
                unsigned now = broker_fds(pid);
                if (now == last)
                        return now;
                last = now;
        }
        ck_abort_msg("the broker's descriptors never settled (%u)", last);
        return last;
}

/* Connection floods: thousands of sessions that open and close topics,
 * and silent connections far beyond the pre-HELLO pool, leave the
 * broker's descriptor count exactly where it was and its memory flat. */
static void flood_round(const struct broker *b, unsigned sessions, unsigned silent) {
        const char *sock = b->sock;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 16, .slot_size = 64};
        for (unsigned i = 0; i < sessions; i++) {
                zcbus *bus;
                zcbus_sub *sub;
                ck_assert_int_eq(zcbus_connect(sock, &bus), 0);
                ck_assert_int_eq(zcbus_sub_open(bus, "flood", &so, &sub), 0);
                zcbus_sub_close(sub);
                zcbus_disconnect(bus);
        }
        for (unsigned i = 0; i < silent; i++) {
                int fd = harness_raw_connect(sock);
                if (i % 2)
                        (void)!write(fd, "garbage", 7); /* and half of them say nonsense */
                (void)close(fd);
        }
}

START_TEST(test_connection_floods_leave_the_brokers_fds_and_memory_flat) {
        char conf[256];
        struct broker b;

        write_conf(conf, sizeof(conf), "max_unauthenticated = 8\nhello_timeout_ms = 100\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        flood_round(&b, 50, 50); /* warm up: allocator arenas, the topic */
        unsigned fd0 = settled_fds(b.pid);
        uint64_t rss0 = broker_rss_kb(b.pid);
        for (int round = 0; round < 4; round++) {
                flood_round(&b, 500, 500);
                /* Let the pre-HELLO pool drain before real clients come
                 * again: a burst of connections accepted ahead of a real
                 * client's HELLO can push it out of the pool. */
                (void)settled_fds(b.pid);
        }
        unsigned fd1 = settled_fds(b.pid);
        uint64_t rss1 = broker_rss_kb(b.pid);
        ck_assert_msg(fd1 == fd0, "the broker holds %u descriptors after the floods, %u before", fd1, fd0);
#if defined(__SANITIZE_ADDRESS__)
        /* ASan holds freed memory in its quarantine, so RSS grows by design
         * there; LeakSanitizer checks the broker's memory at its exit. */
        (void)rss0;
        (void)rss1;
#else
        ck_assert_msg(rss1 <= rss0 + 2048, "the broker's RSS grew from %" PRIu64 " to %" PRIu64 " KiB", rss0, rss1);
#endif
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* One uid flooding the pre-HELLO pool (connections that never say HELLO,
 * as fast as it can) must not push another uid's clients out of it: when
 * the pool is full, the oldest connection of the uid with the most there
 * goes. Before, the oldest overall went, so a real client whose HELLO was
 * not read yet was dropped (-ECONNRESET) by a burst accepted after it. */
struct flood_args {
        const char *sock;
        _Atomic bool *stop;
};

static int silent_flooder(void *arg) {
        struct flood_args *a = arg;
        int fds[32] = {0};

        if (become(65534, 65534) < 0)
                return 2;
        for (unsigned i = 0; !atomic_load(a->stop) && i < 200000; i++) {
                unsigned k = i % 32;
                if (fds[k] > 0)
                        (void)close(fds[k]);
                fds[k] = harness_raw_connect(a->sock);
        }
        return 0;
}

START_TEST(test_one_uids_connection_flood_does_not_displace_another_uids_clients) {
        char conf[256];
        struct broker b;
        _Atomic bool *stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        ck_assert(stop != MAP_FAILED);
        atomic_store(stop, false);
        write_conf(conf, sizeof(conf), "socket_mode = 0666\nmax_unauthenticated = 8\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        struct flood_args a = {.sock = b.sock, .stop = stop};
        pid_t pid = spawn(silent_flooder, &a);
        for (int i = 0; i < 300; i++) {
                zcbus *bus;
                int r = zcbus_connect(b.sock, &bus);
                ck_assert_msg(r == 0, "connect %d beside another uid's flood: %s", i, zcbus_strerror(r));
                zcbus_disconnect(bus);
        }
        atomic_store(stop, true);
        ck_assert_int_eq(wait_exit(pid), 0);
        (void)munmap(stop, sizeof(*stop));
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* The stall policy blames only a subscriber that could move and does not,
 * and only while producers are held back (found by review). */

/* The subscriber receives n messages carrying 0, 1, ... (8 bytes each,
 * waiting up to timeout_ms for each), and the broker evicted nobody. */
static void expect_counting(const struct broker *b, zcbus_sub *sub, uint64_t n, int timeout_ms) {
        zcbus_msg m;

        for (uint64_t i = 0; i < n; i++) {
                int r = zcbus_sub_recv(sub, &m, timeout_ms);
                ck_assert_msg(r == 0, "message %llu: %s", (unsigned long long)i, zcbus_strerror(r));
                ck_assert(memcmp(m.data, &i, 8) == 0);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        ck_assert_msg(!log_wait(b, "evicted", 0), "the broker evicted a subscriber");
}

/* A producer that claimed seq 0 and has not committed it holds everyone
 * back: the subscriber waiting for seq 0 is not at fault. */
START_TEST(test_a_producers_unfinished_loan_gets_no_subscriber_evicted) {
        char conf[256];
        struct broker b;
        zcbus *bus;
        zcbus_pub *slow, *fast;
        zcbus_sub *sub;
        zcbus_msg m;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};
        void *buf;

        write_conf(conf, sizeof(conf), "stall = stall.* 100\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.loan", &so, &sub), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.loan", &o, &slow), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.loan", &o, &fast), 0);
        ck_assert_int_eq(zcbus_pub_loan(slow, 8, &buf), 0); /* seq 0, not committed */
        for (uint64_t i = 1; i < 8; i++)
                ck_assert_int_eq(zcbus_pub_send(fast, &i, 8, 1000), 0);
        /* The ring is full from seq 0 and a producer is held back (seq 8):
         * many stall timeouts go by while the subscriber waits for seq 0. */
        ck_assert_int_eq(zcbus_pub_send(fast, &(uint64_t){8}, 8, 600), -ETIMEDOUT);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -EAGAIN);
        memcpy(buf, &(uint64_t){0}, 8);
        ck_assert_int_eq(zcbus_pub_commit(slow, 8), 0);
        expect_counting(&b, sub, 8, 1000);
        zcbus_pub_close(slow);
        zcbus_pub_close(fast);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* A subscriber a ring behind on a topic nobody publishes to holds back
 * nobody. */
START_TEST(test_a_subscriber_behind_an_idle_topic_is_not_evicted) {
        char conf[256];
        struct broker b;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub, *other;
        zcbus_msg m;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64, .history = 8};

        write_conf(conf, sizeof(conf), "stall = stall.* 100\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.idle", &o, &pub), 0);
        for (uint64_t i = 0; i < 8; i++)
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 1000), 0);
        zcbus_pub_close(pub);
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.idle", &so, &sub), 0); /* a ring behind */
        /* Many stall timeouts, waiting on something else. */
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.other", NULL, &other), 0);
        ck_assert_int_eq(zcbus_sub_recv(other, &m, 600), -ETIMEDOUT);
        expect_counting(&b, sub, 8, 0);
        zcbus_sub_close(other);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* A subscriber that holds a message while producers are held back past
 * the stall timeout is evicted; the message may then be overwritten under
 * it, and its release says so (-ESTALE), as does every later receive. */
START_TEST(test_an_evicted_subscribers_release_of_a_held_message_fails_with_estale) {
        char conf[256];
        struct broker b;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub, *live;
        zcbus_msg held, m;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};

        write_conf(conf, sizeof(conf), "stall = stall.* 100\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.held", &so, &sub), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "stall.held", &so, &live), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.held", &o, &pub), 0);
        for (uint64_t i = 0; i < 20; i++) {
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 10000), 0);
                if (i == 0)
                        ck_assert_int_eq(zcbus_sub_recv(sub, &held, 0), 0); /* and never released */
                ck_assert_int_eq(zcbus_sub_recv(live, &m, 1000), 0);
                ck_assert_int_eq(zcbus_sub_release(live, &m), 0);
        }
        ck_assert(log_wait(&b, "(stall timeout): evicted", 2000));
        ck_assert_int_eq(zcbus_sub_release(sub, &held), -ESTALE);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 0), -ESTALE);
        ck_assert_int_eq(zcbus_sub_recv(sub, &m, 100), -ESTALE);
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_sub_close(live);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* Entry words a peer forged (a FREE entry made ACTIVE with a low floor,
 * through the subs segment every peer of the topic maps) hold producers
 * back for one look of the stall policy at most: the broker puts entries
 * it does not hand out back as they were. */
START_TEST(test_a_forged_free_entry_holds_producers_back_one_look_at_most) {
        char conf[256];
        struct broker b;
        struct seg_map map = {0};
        uint32_t index;
        int fd = -1;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};

        write_conf(conf, sizeof(conf), "stall = stall.* 100\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(raw_producer(b.sock, "stall.forged", 8, &fd, &map, &index), 0);
        /* A producer writes the ring: the entry's state and its table's
         * mask, as if the broker had handed it out. */
        struct seg_sub *e = seg_sub(&map, 0, 5);
        struct seg_sub_state *st = seg_sub_state(&map, 5);
        store_sc(&e->floor, 0);
        store_sc(&st->state, SEG_ENTRY_ACTIVE);
        (void)atomic_fetch_or_explicit(&seg_table_mask(&map, 0)[0], UINT64_C(1) << 5, memory_order_seq_cst);
        store_sc(&seg_ring_notify(&map)->tables_bound, 1);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "stall.forged", &o, &pub), 0);
        for (uint64_t i = 0; i < 100; i++) {
                int r = zcbus_pub_send(pub, &i, 8, 5000);
                ck_assert_msg(r == 0, "send %llu behind a forged entry: %s", (unsigned long long)i, zcbus_strerror(r));
        }
        ck_assert_uint_eq(load_sc(&st->state), SEG_ENTRY_FREE);
        ck_assert_uint_eq(load_sc(&seg_table_mask(&map, 0)[0]), 0);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        seg_unmap(&map);
        (void)close(fd);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* A dead producer's claim on a slot a subscriber still needs (it holds
 * the lap before) waits for that subscriber, past repair_timeout_ms: giving
 * up would leave a hole readers wait at for ever (found by review). */
START_TEST(test_a_repair_waiting_for_a_subscriber_outlasts_the_timeout_and_completes) {
        char conf[256];
        struct broker b;
        struct seg_map map = {0};
        uint32_t index;
        int fd = -1;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        zcbus_msg held, m;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 8, .slot_size = 64};
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 8, .slot_size = 64};

        write_conf(conf, sizeof(conf), "repair_timeout_ms = 100\nstall = rep.* 0\n");
        ck_assert_int_eq(broker_start(&b, "-c", conf, NULL), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_sub_open(bus, "rep.hole", &so, &sub), 0);
        ck_assert_int_eq(zcbus_pub_open(bus, "rep.hole", &o, &pub), 0);
        for (uint64_t i = 0; i < 8; i++)
                ck_assert_int_eq(zcbus_pub_send(pub, &i, 8, 1000), 0);
        ck_assert_int_eq(zcbus_sub_recv(sub, &held, 0), 0); /* seq 0, held: the floor stays at 0 */

        /* A producer claims seq 8 (seq 0's slot) and dies before writing. */
        ck_assert_int_eq(raw_producer(b.sock, "rep.hole", 8, &fd, &map, &index), 0);
        struct seg_prod *e = seg_prod(&map, index);
        uint64_t s = faa_sc(&seg_head(&map)->head, 1);
        ck_assert_uint_eq(s, 8);
        store_rlx(&e->claim_n, 1);
        store_sc(&e->claim, s);
        seg_unmap(&map);
        (void)close(fd); /* the session ends: the broker repairs */

        for (uint64_t i = 1; i < 8; i++) {
                ck_assert_int_eq(zcbus_sub_recv(sub, &m, 1000), 0);
                ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        }
        ck_assert(log_wait(&b, "still waits", 3000));
        ck_assert_msg(!log_wait(&b, "giving up", 0), "the broker gave the repair up");
        ck_assert_int_eq(zcbus_sub_release(sub, &held), 0);
        uint64_t nine = 9;
        ck_assert_int_eq(zcbus_pub_send(pub, &nine, 8, 5000), 0);
        int r = zcbus_sub_recv(sub, &m, 5000);
        ck_assert_msg(r == 0, "after the hole: %s (seq 8 never written off)", zcbus_strerror(r));
        ck_assert_uint_eq(m.seq, 9);
        ck_assert(memcmp(m.data, &nine, 8) == 0);
        ck_assert_int_eq(zcbus_sub_release(sub, &m), 0);
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* ------------------------------------------ 4. who is on the bus (PEERS) */

struct peers_args {
        const char *sock;
        struct chan up, down;
};

static const zcbus_peer *peer_by_label(const zcbus_peer *v, int n, const char *label) {
        for (int i = 0; i < n; i++)
                if (strcmp(v[i].label, label) == 0)
                        return &v[i];
        return NULL;
}

/* uid A: says who it is, holds a producer, and sees only its own session
 * (root's is not its business), then waits to be looked at. */
static int peers_other_uid_peer(void *arg) {
        struct peers_args *a = arg;
        zcbus_counter c[2] = {{"sent", 11}, {"lost", 0}};
        zcbus_peer v[8];
        unsigned total = 0;
        zcbus *bus;
        zcbus_pub *pub;

        chan_keep_write(&a->up);
        chan_keep_read(&a->down);
        if (become(UID_A, GID_A) < 0)
                return 2;
        PEER_CHECK(zcbus_connect(a->sock, &bus) == 0, "connect");
        PEER_CHECK(zcbus_set_info(bus, "uid A's peer", c, 2) == 0, "set_info: %s", zcbus_last_error(bus));
        PEER_CHECK(zcbus_pub_open(bus, "pub.peers", NULL, &pub) == 0, "pub_open: %s", zcbus_last_error(bus));
        int n = zcbus_list_peers(bus, v, 8, &total);
        PEER_CHECK(n == 1 && total == 1, "uid A sees %d sessions (total %u), want only its own", n, total);
        PEER_CHECK(strcmp(v[0].label, "uid A's peer") == 0 && v[0].uid == UID_A && v[0].producers == 1 &&
                           v[0].pid == (uint32_t)getpid(),
                   "its own session: '%s' uid %u producers %u pid %u", v[0].label, v[0].uid, v[0].producers,
                   v[0].pid);
        PEER_CHECK(chan_send(&a->up, 'R') == 0, "ready");
        PEER_CHECK(chan_recv(&a->down) == 'G', "go");
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        return 0;
}

START_TEST(test_sessions_say_who_they_are_and_see_only_what_their_uid_may) {
        char conf[256];
        struct broker b;
        struct peers_args a = {0};
        zcbus_counter c[3] = {{"forwarded", 1}, {"received", UINT64_MAX}, {"x.y-z_0", 7}};
        zcbus_peer v[8];
        unsigned total = 0;
        zcbus *bus;
        zcbus_sub *sub;
        int n;

        write_conf(conf, sizeof(conf),
                   "socket_mode = 0666\n"
                   "rule = public pub.* publish=any subscribe=any create=any\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        ck_assert_int_eq(zcbus_connect(b.sock, &bus), 0);
        ck_assert_int_eq(zcbus_set_info(bus, "root's bridge", c, 3), 0);
        a.sock = b.sock;
        chan_open(&a.up);
        chan_open(&a.down);
        pid_t pid = spawn(peers_other_uid_peer, &a);
        chan_keep_read(&a.up);
        chan_keep_write(&a.down);
        ck_assert_msg(chan_recv(&a.up) == 'R', "uid A's peer failed");
        ck_assert_int_eq(zcbus_sub_open(bus, "pub.peers", NULL, &sub), 0);

        /* Root sees both, as each said it. */
        n = zcbus_list_peers(bus, v, 8, &total);
        ck_assert_int_eq(n, 2);
        ck_assert_uint_eq(total, 2);
        const zcbus_peer *mine = peer_by_label(v, n, "root's bridge"), *theirs = peer_by_label(v, n, "uid A's peer");
        ck_assert_ptr_nonnull(mine);
        ck_assert_ptr_nonnull(theirs);
        ck_assert_uint_eq(mine->pid, (uint32_t)getpid());
        ck_assert_uint_eq(mine->uid, 0);
        ck_assert_uint_eq(mine->subscribers, 1);
        ck_assert_uint_eq(mine->producers, 0);
        ck_assert_uint_eq(mine->ncounters, 3);
        ck_assert_str_eq(mine->counters[1].name, "received");
        ck_assert_uint_eq(mine->counters[1].value, UINT64_MAX);
        ck_assert_str_eq(mine->counters[2].name, "x.y-z_0");
        ck_assert_uint_eq(theirs->uid, UID_A);
        ck_assert_uint_eq(theirs->gid, GID_A);
        ck_assert_uint_eq(theirs->pid, (uint32_t)pid);
        ck_assert_uint_eq(theirs->producers, 1);
        ck_assert_uint_eq(theirs->ncounters, 2);
        ck_assert_str_eq(theirs->counters[0].name, "sent");
        ck_assert_uint_eq(theirs->counters[0].value, 11);
        ck_assert(strlen(theirs->comm) > 0);
        uint8_t sid[16];
        ck_assert_int_eq(zcbus_session_id(bus, sid), 0);
        ck_assert_mem_eq(mine->session_id, sid, 16);
        /* Oldest first: root's session said HELLO before A's. */
        ck_assert(mine == &v[0] && theirs == &v[1] && mine->serial < theirs->serial);
        n = zcbus_list_peers(bus, v, 1, &total);
        ck_assert_int_eq(n, 1);
        ck_assert_uint_eq(total, 2);
        ck_assert_str_eq(v[0].label, "root's bridge");

        /* Saying it again replaces it; a closed entry is no longer counted. */
        zcbus_sub_close(sub);
        ck_assert_int_eq(zcbus_set_info(bus, NULL, NULL, 0), 0);
        n = zcbus_list_peers(bus, v, 8, NULL);
        ck_assert_int_eq(n, 2);
        ck_assert_ptr_null(peer_by_label(v, n, "root's bridge"));
        mine = peer_by_label(v, n, "");
        ck_assert_ptr_nonnull(mine);
        ck_assert_uint_eq(mine->ncounters, 0);
        ck_assert_uint_eq(mine->subscribers, 0);

        /* The library refuses what the broker would. */
        zcbus_counter twice[2] = {{"a", 1}, {"a", 2}}, spaced[1] = {{"a b", 1}};
        ck_assert_int_eq(zcbus_set_info(bus, "line\nbreak", NULL, 0), -EINVAL);
        ck_assert_int_eq(zcbus_set_info(bus, "x", twice, 2), -EINVAL);
        ck_assert_int_eq(zcbus_set_info(bus, "x", spaced, 1), -EINVAL);
        ck_assert_int_eq(zcbus_set_info(bus, "x", c, ZCBUS_COUNTERS_MAX + 1), -EINVAL);

        /* A forged INFO (a label with a control byte) is a protocol
         * violation: the session ends, the others stay. */
        int fd;
        ck_assert_int_eq(raw_hello(b.sock, &fd), 0);
        struct proto_info bad = {.count = 0};
        strcpy(bad.label, "bell\a");
        uint8_t buf[256];
        struct proto_hdr h = {.magic = PROTO_MAGIC, .version = PROTO_VERSION, .type = PROTO_INFO,
                              .len = sizeof(bad), .req_id = 3};
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), &bad, sizeof(bad));
        ck_assert_int_eq(sock_send(fd, buf, sizeof(h) + sizeof(bad), NULL, 0), 0);
        struct proto_msg m;
        ssize_t got = raw_recv(fd, buf, sizeof(buf), NULL, 0, NULL);
        ck_assert_int_gt(got, 0);
        ck_assert_int_eq(proto_decode(buf, (size_t)got, &m), 0);
        ck_assert_uint_eq(m.hdr.type, PROTO_ERROR);
        ck_assert_int_eq(m.u.error.err, -EBADMSG);
        ck_assert_int_eq(raw_recv(fd, buf, sizeof(buf), NULL, 0, NULL), 0);
        (void)close(fd);
        n = zcbus_list_peers(bus, v, 8, &total);
        ck_assert_int_eq(n, 2);

        (void)chan_send(&a.down, 'G');
        ck_assert_int_eq(wait_exit(pid), 0);
        chan_close(&a.up);
        chan_close(&a.down);
        zcbus_disconnect(bus);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* A broker kept off the CPU past a connection's HELLO deadline, with the
 * HELLO waiting in the socket, serves it: the deadline is for clients that
 * say nothing, not for a broker that was late to listen. */
START_TEST(test_a_hello_that_came_in_time_is_served_after_the_broker_was_stopped) {
        char conf[256];
        struct broker b;
        uint8_t buf[256];
        struct proto_msg m;
        int c1 = -1, c2 = -1;

        write_conf(conf, sizeof(conf), "hello_timeout_ms = 100\n");
        ck_assert_int_eq(start_with_conf(&b, conf), 0);
        ck_assert_int_eq(sock_connect(b.sock, &c1), 0);
        /* A later connection's round trip: the broker has accepted c1. */
        ck_assert_int_eq(raw_hello(b.sock, &c2), 0);
        ck_assert_int_eq(kill(b.pid, SIGSTOP), 0);
        int n = proto_enc_hello(buf, sizeof(buf), 1);
        ck_assert_int_eq(sock_send(c1, buf, (size_t)n, NULL, 0), 0);
        usleep(300 * 1000);
        ck_assert_int_eq(kill(b.pid, SIGCONT), 0);
        ssize_t got = raw_recv(c1, buf, sizeof(buf), NULL, 0, NULL);
        ck_assert_msg(got > 0, "the broker closed a connection whose HELLO came in time");
        ck_assert_int_eq(proto_decode(buf, (size_t)got, &m), 0);
        ck_assert_uint_eq(m.hdr.type, PROTO_HELLO_REPLY);
        (void)close(c1);
        (void)close(c2);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

/* One raw PEERS page after a cursor: its entries' serials, and total. */
static int raw_peers_page(int fd, uint64_t after, uint64_t *serials, uint32_t *total) {
        static uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n = proto_enc_peers(buf, sizeof(buf), 5, after, PROTO_PEERS_MAX);

        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(sock_send(fd, buf, (size_t)n, NULL, 0), 0);
        ssize_t got = raw_recv(fd, buf, sizeof(buf), NULL, 0, NULL);
        ck_assert_int_gt(got, 0);
        ck_assert_int_eq(proto_decode(buf, (size_t)got, &m), 0);
        ck_assert_uint_eq(m.hdr.type, PROTO_PEERS_REPLY);
        for (uint32_t i = 0; i < m.u.peers_reply.count; i++)
                serials[i] = m.peer_entries[i].serial;
        *total = m.u.peers_reply.total;
        return (int)m.u.peers_reply.count;
}

START_TEST(test_sessions_that_end_between_pages_hide_no_other) {
        enum { MANY = 80 };
        struct broker b;
        zcbus *bus[MANY];
        uint64_t s1[PROTO_PEERS_MAX], s2[PROTO_PEERS_MAX];
        uint32_t total;
        int fd;

        ck_assert_int_eq(broker_start(&b, NULL), 0);
        ck_assert_int_eq(raw_hello(b.sock, &fd), 0); /* the asker: serial 1 */
        for (int i = 0; i < MANY; i++)
                ck_assert_int_eq(zcbus_connect(b.sock, &bus[i]), 0);
        zcbus_peer *all = calloc(MANY + 8, sizeof(*all));
        unsigned t = 0;
        ck_assert_int_eq(zcbus_list_peers(bus[0], all, MANY + 8, &t), MANY + 1);
        ck_assert_uint_eq(t, MANY + 1);
        for (int i = 1; i <= MANY; i++)
                ck_assert_uint_gt(all[i].serial, all[i - 1].serial);
        free(all);

        /* A first page, then 8 of its sessions end, then the next page
         * from the cursor: everyone after it is there. */
        ck_assert_int_eq(raw_peers_page(fd, 0, s1, &total), PROTO_PEERS_MAX);
        ck_assert_uint_eq(total, MANY + 1);
        for (int i = 0; i < 8; i++)
                zcbus_disconnect(bus[10 + i]);
        /* (the broker sees them go in its own time: wait for the total) */
        for (int tries = 0; tries < 5000; tries++) {
                (void)raw_peers_page(fd, s1[PROTO_PEERS_MAX - 1], s2, &total);
                if (total == MANY + 1 - 8)
                        break;
                usleep(1000);
        }
        ck_assert_uint_eq(total, MANY + 1 - 8);
        ck_assert_int_eq(raw_peers_page(fd, s1[PROTO_PEERS_MAX - 1], s2, &total), MANY + 1 - PROTO_PEERS_MAX);
        ck_assert_uint_gt(s2[0], s1[PROTO_PEERS_MAX - 1]);
        (void)close(fd);
        for (int i = 0; i < MANY; i++)
                if (i < 10 || i >= 18)
                        zcbus_disconnect(bus[i]);
        broker_stop(&b);
        broker_destroy(&b);
}
END_TEST

static Suite *broker_suite(void) {
        Suite *s = suite_create("broker");
        TCase *tc;

        tc = tcase_create("floods");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_connection_floods_leave_the_brokers_fds_and_memory_flat);
        tcase_add_test(tc, test_one_uids_connection_flood_does_not_displace_another_uids_clients);
        suite_add_tcase(s, tc);

        tc = tcase_create("stall");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_stopped_subscriber_is_evicted_by_the_stall_policy);
        tcase_add_test(tc, test_a_producers_unfinished_loan_gets_no_subscriber_evicted);
        tcase_add_test(tc, test_a_subscriber_behind_an_idle_topic_is_not_evicted);
        tcase_add_test(tc, test_an_evicted_subscribers_release_of_a_held_message_fails_with_estale);
        tcase_add_test(tc, test_a_forged_free_entry_holds_producers_back_one_look_at_most);
        suite_add_tcase(s, tc);

        tc = tcase_create("repair");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_dead_producer_with_scribbled_claims_costs_the_broker_bounded_cpu);
        tcase_add_test(tc, test_a_repair_that_cannot_finish_is_given_up_and_logged);
        tcase_add_test(tc, test_a_repair_waiting_for_a_subscriber_outlasts_the_timeout_and_completes);
        suite_add_tcase(s, tc);

        tc = tcase_create("limits");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_silent_connections_time_out_and_do_not_lock_out_real_clients);
        tcase_add_test(tc, test_one_uid_at_its_quota_does_not_stop_another);
        tcase_add_test(tc, test_a_hello_that_came_in_time_is_served_after_the_broker_was_stopped);
        suite_add_tcase(s, tc);

        tc = tcase_create("access");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_topic_rules_allow_and_deny_publish_subscribe_and_create_per_uid);
        tcase_add_test(tc, test_sighup_reloads_the_rules_and_keeps_them_on_a_bad_file);
        tcase_add_test(tc, test_a_bad_rule_line_stops_the_broker_with_file_and_line);
        tcase_add_test(tc, test_sessions_say_who_they_are_and_see_only_what_their_uid_may);
        tcase_add_test(tc, test_sessions_that_end_between_pages_hide_no_other);
        suite_add_tcase(s, tc);
        return s;
}

HARNESS_MAIN(broker_suite, true)
