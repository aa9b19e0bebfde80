/* SPDX-License-Identifier: MIT */
/*
 * stress.c: a bounded, multi-process stress run of the whole data plane
 * through the public API against a real broker.
 *
 *   stress SOCKET SECONDS [PRODUCERS SUBSCRIBERS]
 *
 * Two phases of SECONDS/2 each, every peer its own process:
 *  - reliable: P producers and S subscribers; every message carries its
 *    producer and that producer's counter; every subscriber checks the
 *    total order (sequences consecutive), per-producer order with no gap
 *    and no duplicate, and every payload byte.
 *  - latest: the same producers, S subscribers of which one is slow and
 *    holds up to 8 messages, releasing them out of order; every byte of
 *    every message derives from its sequence (a torn read shows), and at
 *    the end received + lost == published for every subscriber.
 * Prints one line of figures per phase; exits 0 only if every check held.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"

#define MAXP 8
#define MAXS 16
#define MSG_MIN 24
#define MSG_MAX 512

struct hdr {
        uint32_t producer;
        uint32_t end; /* 1: the producer is done; counter = messages sent */
        uint64_t counter;
        uint64_t seq_check; /* filled by nobody: payload bytes are checked */
};

static const char *sock;

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint8_t byte_of(uint64_t key, size_t i) {
        return (uint8_t)((key * 0x9e3779b97f4a7c15ull) >> ((i % 8) * 8)) ^ (uint8_t)i;
}

static void die(const char *who, const char *what, int r) {
        fprintf(stderr, "stress %s: %s: %s\n", who, what, r ? zcbus_strerror(r) : "check failed");
        _exit(1);
}

/* Fill a message: header, then bytes derived from (producer, counter). */
static size_t fill(uint8_t *buf, uint32_t prod, uint64_t counter, uint32_t end) {
        size_t len = MSG_MIN + (size_t)((counter * 7 + prod) % (MSG_MAX - MSG_MIN));
        struct hdr h = {.producer = prod, .end = end, .counter = counter};
        memcpy(buf, &h, sizeof(h));
        uint64_t key = ((uint64_t)prod << 48) ^ counter;
        for (size_t i = sizeof(h); i < len; i++)
                buf[i] = byte_of(key, i);
        return len;
}

static int check_bytes(const uint8_t *buf, size_t len, struct hdr *h) {
        if (len < sizeof(*h))
                return -1;
        memcpy(h, buf, sizeof(*h));
        if (h->producer >= MAXP)
                return -1;
        if (len != MSG_MIN + (size_t)((h->counter * 7 + h->producer) % (MSG_MAX - MSG_MIN)))
                return -1;
        uint64_t key = ((uint64_t)h->producer << 48) ^ h->counter;
        for (size_t i = sizeof(*h); i < len; i++)
                if (buf[i] != byte_of(key, i))
                        return -1;
        return 0;
}

static void producer(const char *topic, uint32_t id, uint32_t policy, double secs, int go_fd, int out_fd) {
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = 256, .slot_size = MSG_MAX, .policy = policy};
        char c;
        int r;

        if ((r = zcbus_connect(sock, &bus)) < 0)
                die("producer", "connect", r);
        if ((r = zcbus_pub_open(bus, topic, &o, &pub)) < 0)
                die("producer", "pub_open", r);
        if (read(go_fd, &c, 1) != 1)
                die("producer", "go", 0);
        uint64_t end = mono_ns() + (uint64_t)(secs * 1e9), n = 0;
        for (;;) {
                void *buf;
                bool last = (n & 1023) == 0 && mono_ns() >= end;
                if ((r = zcbus_pub_loan(pub, MSG_MAX, &buf)) < 0)
                        die("producer", "loan", r);
                size_t len = fill(buf, id, n, last);
                if ((r = zcbus_pub_commit(pub, len)) < 0)
                        die("producer", "commit", r);
                n++;
                if (last)
                        break;
        }
        zcbus_pub_stats st = {.size = sizeof(st)};
        (void)zcbus_pub_stats_get(pub, &st);
        if (write(out_fd, &st, sizeof(st)) != (ssize_t)sizeof(st))
                die("producer", "report", 0);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        _exit(0);
}

struct sub_report {
        uint64_t received, lost, skipped, first, next, ends, slow;
};

static void subscriber(const char *topic, uint32_t id, uint32_t policy, uint32_t nprod, bool slow, int ready_fd,
                       int total_fd, int out_fd) {
        zcbus *bus;
        zcbus_sub *sub;
        zcbus_sub_opts o = {.size = sizeof(o), .max_holds = 8, .slot_count = 256, .slot_size = MSG_MAX,
                            .policy = policy};
        uint64_t next_counter[MAXP] = {0}, expect_seq = 0, total = UINT64_MAX;
        bool have_seq = false;
        uint64_t markers = 0;
        struct sub_report rep = {.slow = slow};
        zcbus_msg held[8];
        unsigned nheld = 0;
        int r;

        (void)fcntl(total_fd, F_SETFL, O_NONBLOCK);
        if ((r = zcbus_connect(sock, &bus)) < 0)
                die("subscriber", "connect", r);
        if ((r = zcbus_sub_open(bus, topic, &o, &sub)) < 0)
                die("subscriber", "sub_open", r);
        zcbus_sub_stats st0 = {.size = sizeof(st0)};
        (void)zcbus_sub_stats_get(sub, &st0);
        rep.first = st0.next_seq;
        if (write(ready_fd, "r", 1) != 1)
                die("subscriber", "ready", 0);
        for (;;) {
                zcbus_msg m;
                if (policy == ZCBUS_POLICY_LATEST && total == UINT64_MAX) {
                        /* Learn the final total when the parent sends it. */
                        uint64_t t;
                        if (read(total_fd, &t, sizeof(t)) == (ssize_t)sizeof(t))
                                total = t;
                }
                if (policy == ZCBUS_POLICY_RELIABLE && rep.ends == nprod)
                        break;
                if (policy == ZCBUS_POLICY_LATEST && total != UINT64_MAX) {
                        zcbus_sub_stats st = {.size = sizeof(st)};
                        (void)zcbus_sub_stats_get(sub, &st);
                        if (st.next_seq - rep.first >= total)
                                break;
                }
                r = zcbus_sub_recv(sub, &m, 20);
                if (r == -ETIMEDOUT || r == -EAGAIN)
                        continue;
                if (r < 0)
                        die("subscriber", "recv", r);
                struct hdr h;
                if (check_bytes(m.data, m.len, &h) < 0) {
                        fprintf(stderr, "stress subscriber %u: torn or corrupt message seq %llu\n", id,
                                (unsigned long long)m.seq);
                        _exit(1);
                }
                zcbus_sub_stats stm = {.size = sizeof(stm)};
                (void)zcbus_sub_stats_get(sub, &stm);
                if (have_seq && m.seq != expect_seq + m.lost + (stm.skipped - markers)) {
                        fprintf(stderr, "stress subscriber %u: seq %llu after %llu with lost %llu\n", id,
                                (unsigned long long)m.seq, (unsigned long long)expect_seq - 1,
                                (unsigned long long)m.lost);
                        _exit(1);
                }
                have_seq = true;
                expect_seq = m.seq + 1;
                if (policy == ZCBUS_POLICY_LATEST) {
                        /* Markers stepped over since the last message account
                         * for the rest of any gap. */
                        zcbus_sub_stats st = {.size = sizeof(st)};
                        (void)zcbus_sub_stats_get(sub, &st);
                        markers = st.skipped;
                }
                if (policy == ZCBUS_POLICY_RELIABLE) {
                        if (m.lost || h.counter != next_counter[h.producer]) {
                                fprintf(stderr, "stress subscriber %u: producer %u counter %llu, want %llu\n", id,
                                        h.producer, (unsigned long long)h.counter,
                                        (unsigned long long)next_counter[h.producer]);
                                _exit(1);
                        }
                } else if (h.counter < next_counter[h.producer]) {
                        fprintf(stderr, "stress subscriber %u: producer %u went back\n", id, h.producer);
                        _exit(1);
                }
                next_counter[h.producer] = h.counter + 1;
                rep.ends += h.end;
                if (slow) {
                        /* Hold a few, re-check them later (a torn hold shows),
                         * release in a scrambled order. */
                        held[nheld++] = m;
                        if (nheld == 8) {
                                for (volatile int k = 0; k < 20000; k++)
                                        ;
                                for (unsigned i = 0; i < nheld; i++) {
                                        unsigned j = (i * 5 + 3) % nheld;
                                        struct hdr hh;
                                        if (check_bytes(held[j].data, held[j].len, &hh) < 0) {
                                                fprintf(stderr, "stress: held message changed\n");
                                                _exit(1);
                                        }
                                }
                                for (unsigned i = 0; i < nheld; i++)
                                        if ((r = zcbus_sub_release(sub, &held[(i * 5 + 3) % nheld])) < 0)
                                                die("subscriber", "release", r);
                                nheld = 0;
                        }
                } else if ((r = zcbus_sub_release(sub, &m)) < 0) {
                        die("subscriber", "release", r);
                }
        }
        zcbus_sub_stats st = {.size = sizeof(st)};
        (void)zcbus_sub_stats_get(sub, &st);
        rep.received = st.received;
        rep.lost = st.lost;
        rep.skipped = st.skipped;
        rep.next = st.next_seq;
        if (write(out_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
                die("subscriber", "report", 0);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        _exit(0);
}

static pid_t fork_child(void) {
        pid_t pid = fork();
        if (pid == 0)
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        return pid;
}

static int phase(uint32_t policy, double secs, uint32_t np, uint32_t ns) {
        char topic[64];
        int go[2], ready[2], pout[2], sout[2], tot[MAXS][2];
        pid_t pids[MAXP + MAXS];
        unsigned npids = 0;
        uint64_t t0 = mono_ns();
        int bad = 0;

        snprintf(topic, sizeof(topic), "stress.%s.%d", zcbus_policy_name(policy), (int)getpid());
        if (pipe(go) || pipe(ready) || pipe(pout) || pipe(sout))
                return 1;
        for (uint32_t i = 0; i < ns; i++) {
                if (pipe(tot[i]))
                        return 1;
                pid_t p = fork_child();
                if (p == 0)
                        subscriber(topic, i, policy, np, policy == ZCBUS_POLICY_LATEST && i == 0, ready[1],
                                   tot[i][0], sout[1]);
                pids[npids++] = p;
        }
        for (uint32_t i = 0; i < ns; i++) {
                char c;
                if (read(ready[0], &c, 1) != 1)
                        return 1;
        }
        for (uint32_t i = 0; i < np; i++) {
                pid_t p = fork_child();
                if (p == 0)
                        producer(topic, i, policy, secs, go[0], pout[1]);
                pids[npids++] = p;
        }
        for (uint32_t i = 0; i < np; i++)
                if (write(go[1], "g", 1) != 1)
                        return 1;
        uint64_t published = 0, waits = 0, skipped = 0;
        for (uint32_t i = 0; i < np; i++) {
                zcbus_pub_stats st;
                if (read(pout[0], &st, sizeof(st)) != (ssize_t)sizeof(st)) {
                        fprintf(stderr, "stress: a producer failed\n");
                        return 1;
                }
                published += st.published;
                waits += st.waits;
                skipped += st.skipped;
        }
        /* Every sequence handed out is a message or a marker (a slot found
         * held under LATEST); subscribers run until they passed them all. */
        uint64_t sequences = published + skipped;
        for (uint32_t i = 0; i < ns; i++)
                if (write(tot[i][1], &sequences, sizeof(sequences)) != (ssize_t)sizeof(sequences))
                        return 1;
        uint64_t lost = 0, recv = 0;
        for (uint32_t i = 0; i < ns; i++) {
                struct sub_report rep;
                if (read(sout[0], &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) {
                        fprintf(stderr, "stress: a subscriber failed\n");
                        return 1;
                }
                recv += rep.received;
                lost += rep.lost;
                /* Exact accounting: each sequence was received, counted
                 * lost, or stepped over as a marker; with no markers,
                 * received + lost == published. */
                if (rep.received + rep.lost + rep.skipped != sequences ||
                    (skipped == 0 && rep.received + rep.lost != published) ||
                    (policy == ZCBUS_POLICY_RELIABLE && (rep.lost || rep.received != published))) {
                        fprintf(stderr,
                                "stress %s: subscriber received %llu + lost %llu + markers %llu, published %llu + "
                                "skipped %llu\n",
                                zcbus_policy_name(policy), (unsigned long long)rep.received,
                                (unsigned long long)rep.lost, (unsigned long long)rep.skipped,
                                (unsigned long long)published, (unsigned long long)skipped);
                        bad = 1;
                }
        }
        for (unsigned i = 0; i < npids; i++) {
                int st;
                if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        bad = 1;
        }
        printf("stress %-8s producers %u subscribers %u published %llu delivered %llu lost %llu held-slots-skipped "
               "%llu producer-waits %llu seconds %.1f: %s\n",
               zcbus_policy_name(policy), np, ns, (unsigned long long)published, (unsigned long long)recv,
               (unsigned long long)lost, (unsigned long long)skipped, (unsigned long long)waits,
               (mono_ns() - t0) / 1e9, bad ? "FAILED" : "ok");
        fflush(stdout);
        return bad;
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: stress SOCKET SECONDS [PRODUCERS SUBSCRIBERS]\n");
                return 2;
        }
        sock = argv[1];
        double secs = atof(argv[2]);
        uint32_t np = argc > 3 ? (uint32_t)atoi(argv[3]) : 3, ns = argc > 4 ? (uint32_t)atoi(argv[4]) : 4;
        if (secs <= 0 || np < 1 || np > MAXP || ns < 1 || ns > MAXS) {
                fprintf(stderr, "stress: bad arguments\n");
                return 2;
        }
        int bad = phase(ZCBUS_POLICY_RELIABLE, secs / 2, np, ns);
        bad |= phase(ZCBUS_POLICY_LATEST, secs / 2, np, ns);
        return bad;
}
