/* SPDX-License-Identifier: MIT */
/*
 * soak.c: a chaos soak of the failure model through the public API, against
 * a real broker it starts itself.
 *
 *   soak --broker ZCBUSD --socket PATH --seconds N [--seed S] [--stall-ms MS]
 *        [--producers P] [--victims V] [--interval MIN-MAX] [--kill all|pub|sub]
 *
 * The supervisor starts zcbusd (readiness on a pipe, --ready-fd), then, on a
 * RELIABLE and a LATEST topic each: four witness subscribers, never killed
 * (SPIN, ADAPTIVE, FUTEX holding 4 messages at a time, and FUTEX through
 * zcbus_wait_any), P producers (default 2; loan/commit, send or send_batch,
 * each waiting for room in a random mode) and V victim subscribers (default
 * 2; a random wait mode, holding 1-8 messages, through recv or recv_batch
 * and release_batch), every peer its own process. A chaos loop then kills a
 * random producer or victim with SIGKILL every MIN-MAX ms (default 5-50; a
 * seeded PRNG: the seed is printed, --seed replays the same choices, not
 * the same timing) and starts a replacement at once; a new producer gets a
 * new instance number, carried in every message, so its stream is a new
 * one. Producers of the LATEST topic yield the CPU every 32 messages, or
 * they would starve the reliable topic's peers on a small machine.
 *
 * Why it is built this way:
 *  - The supervisor knows what each producer committed: every producer
 *    stores, in memory shared with the supervisor, how many of its
 *    messages a send or commit has returned for (`committed`) and how many
 *    the call under way carries (`inflight`). Once it is killed, between
 *    `committed` and `committed + inflight` of its messages can have been
 *    published; every witness must have received exactly one such count,
 *    all witnesses the same, as a gapless prefix 0..k. A producer that
 *    ends cleanly sends an end marker, and every witness must have all of
 *    its messages.
 *  - Witnesses also check, per message: every payload byte (derived from
 *    instance and counter, so a torn or stale read shows), the sequence
 *    (exactly the previous one + 1 + lost + sequences passed as skipped),
 *    per-instance order (consecutive under RELIABLE, increasing under
 *    LATEST); a witness holding several messages re-checks them before it
 *    releases them. At the end received + lost + skipped covers every
 *    sequence up to the topic's head.
 *  - Nobody waits in vain: every receive and loan has a finite timeout;
 *    a subscriber that gets nothing for --stall-ms while producers publish
 *    (or, at the end, while sequences it has not passed remain), and a
 *    producer that finds no room for --stall-ms, fail and say so. Real
 *    stalls are permanent, so the bound is generous (load on a shared
 *    machine must not fail the run); the longest wait seen is printed.
 *  - Nothing is left behind: every peer that ends cleanly checks that it
 *    maps and holds no zcbus memfd after closing; the supervisor checks
 *    the broker's topics show no producer or subscriber once all are gone
 *    (dead ones evicted) and that a producer then sends two laps of each
 *    ring without waiting or stepping over a held slot (their holds and
 *    floors were given back too), stops the broker (exit 0, socket
 *    removed) and finds no new name in /dev/shm.
 *  - The end: the chaos stops (PH_END), producers send their end markers
 *    and report their stats, victims close; the supervisor takes the
 *    topic's head from the producers' reports (the last one read it after
 *    every claim) and lets witnesses drain up to it (PH_DRAIN).
 * Prints the seed, then one summary line per topic; exits 0 only if every
 * check held.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"

#define NTOPIC 2 /* 0: RELIABLE, 1: LATEST */
#define NWIT 4   /* witnesses per topic: SPIN, ADAPTIVE, FUTEX, zcbus_wait_any */
#define MAXPROD 6
#define MAXVIC 6
#define MAXINST 32768 /* producer instances over the whole run */
#define MAXSHM 256    /* names in /dev/shm we remember */
#define SLOTS 64
#define MSG_MAX 512
#define MAX_BATCH 4
#define WIT_HOLDS 4 /* the FUTEX witness holds this many at once */
#define MAGIC 0x5a43534bu

enum { PH_RUN, PH_END, PH_DRAIN };
enum { IS_FREE, IS_RUNNING, IS_KILLED, IS_ENDED, IS_FAILED };
enum { PM_LOAN, PM_SEND, PM_BATCH };
/* How a subscriber receives and releases. */
enum { HOW_ONE, HOW_BATCH, HOW_WAIT_ANY };
/* Child exit codes. */
enum { EX_PASS = 0, EX_CHECK = 1, EX_STALL = 3, EX_LEAK = 4 };

struct hdr {
        uint32_t magic;
        uint32_t inst; /* producer instance */
        uint32_t end;  /* 1: the last message of a clean instance */
        uint32_t topic;
        uint64_t counter; /* the instance's message number, from 0 */
};
#define MSG_MIN ((size_t)sizeof(struct hdr))

/* A producer instance, written by the producer (committed, inflight,
 * report) and by the supervisor (the rest, before the fork). */
struct inst {
        uint32_t topic, mode, wait_mode;
        uint32_t state;
        pid_t pid;
        /* Written on every message: a line of its own, away from what
         * witnesses read on every message (topic, state). */
        _Alignas(64) _Atomic uint64_t committed; /* messages a send/commit returned for */
        _Atomic uint32_t inflight;               /* messages claimed or being sent, not yet
                                                    known committed */
        /* At a clean end, from zcbus_pub_stats_get: */
        uint64_t published, head, skipped, waits;
        _Atomic uint32_t reported;
};

/* A subscriber's progress, for the supervisor's stall reports. */
struct subslot {
        _Atomic int pid;
        _Atomic uint64_t passed; /* next_seq - first */
        _Atomic uint32_t held;
        uint32_t wait_mode, holds, how;
};

struct witres {
        uint64_t received, lost, skipped, first, next, sleeps, longest_wait_ns;
        uint32_t done;
};

struct shared {
        _Atomic uint32_t phase;
        _Atomic uint64_t final_head[NTOPIC]; /* set before PH_DRAIN */
        struct subslot wit[NTOPIC][NWIT], vic[NTOPIC][MAXVIC];
        struct witres wres[NTOPIC][NWIT];
        struct inst inst[MAXINST];
        uint64_t got[NTOPIC][NWIT][MAXINST];   /* messages received per instance */
        uint64_t lastc[NTOPIC][NWIT][MAXINST]; /* last counter + 1 (LATEST) */
        uint8_t endseen[NTOPIC][NWIT][MAXINST];
};

static struct shared *sh;
static const char *sock;
static char topics[NTOPIC][64];
static uint32_t stall_ms = 5000;
static const uint32_t policies[NTOPIC] = {ZCBUS_POLICY_RELIABLE, ZCBUS_POLICY_LATEST};
static const char *const wait_names[] = {"default", "adaptive", "spin", "futex"};
static const char *const mode_names[] = {"loan", "send", "batch"};
static const char *const how_names[] = {"recv", "recv_batch", "wait_any"};

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the chaos's only source of randomness. */
static uint64_t rng_state;
static uint64_t rnd(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}
static uint32_t rnd_in(uint32_t lo, uint32_t hi) {
        return lo + (uint32_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static uint8_t byte_of(uint64_t key, size_t i) {
        return (uint8_t)((key * 0x9e3779b97f4a7c15ull) >> ((i % 8) * 8)) ^ (uint8_t)i;
}

static size_t len_of(uint32_t inst, uint64_t counter) {
        return MSG_MIN + (size_t)((counter * 7 + (uint64_t)inst * 13) % (MSG_MAX - MSG_MIN + 1));
}

static size_t fill(uint8_t *buf, uint32_t topic, uint32_t inst, uint64_t counter, uint32_t end) {
        size_t len = len_of(inst, counter);
        struct hdr h = {.magic = MAGIC, .inst = inst, .end = end, .topic = topic, .counter = counter};
        memcpy(buf, &h, sizeof(h));
        uint64_t key = ((uint64_t)inst << 40) ^ counter;
        for (size_t i = sizeof(h); i < len; i++)
                buf[i] = byte_of(key, i);
        return len;
}

static int check_bytes(const void *data, size_t len, uint32_t topic, struct hdr *h) {
        const uint8_t *buf = data;
        if (len < sizeof(*h))
                return -1;
        memcpy(h, buf, sizeof(*h));
        if (h->magic != MAGIC || h->topic != topic || h->inst >= MAXINST || h->end > 1 ||
            len != len_of(h->inst, h->counter))
                return -1;
        uint64_t key = ((uint64_t)h->inst << 40) ^ h->counter;
        for (size_t i = sizeof(*h); i < len; i++)
                if (buf[i] != byte_of(key, i))
                        return -1;
        return 0;
}

/* Does this process still map or hold a zcbus memfd? */
static bool holds_memfd(void) {
        char line[512], target[256];
        bool found = false;
        FILE *f = fopen("/proc/self/maps", "re");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        if (strstr(line, "memfd:zcbus"))
                                found = true;
                (void)fclose(f);
        }
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                struct dirent *e;
                while ((e = readdir(d))) {
                        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
                        if (n > 0) {
                                target[n] = 0;
                                if (strstr(target, "memfd:zcbus"))
                                        found = true;
                        }
                }
                (void)closedir(d);
        }
        return found;
}

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...);
static void fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputc('\n', stderr);
}

/* ---- producer ----------------------------------------------------------- */

static void producer(uint32_t id) {
        struct inst *in = &sh->inst[id];
        uint32_t t = in->topic;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_topic_opts o = {.size = sizeof(o), .slot_count = SLOTS, .slot_size = MSG_MAX,
                              .policy = policies[t], .wait_mode = in->wait_mode};
        static uint8_t bufs[MAX_BATCH][MSG_MAX];
        uint64_t n = 0;
        int r;

        if ((r = zcbus_connect(sock, &bus)) < 0 || (r = zcbus_pub_open(bus, topics[t], &o, &pub)) < 0) {
                fail("soak producer %u (%s): open: %s", id, topics[t], zcbus_strerror(r));
                _exit(EX_CHECK);
        }
        for (uint64_t k = 0;; k++) {
                bool last = atomic_load_explicit(&sh->phase, memory_order_acquire) != PH_RUN;
                uint32_t want = last ? 1 : in->mode == PM_BATCH ? 1 + (uint32_t)(k % MAX_BATCH) : 1;
                if (last || in->mode == PM_SEND || in->mode == PM_BATCH) {
                        zcbus_iov iov[MAX_BATCH];
                        for (uint32_t i = 0; i < want; i++) {
                                iov[i].data = bufs[i];
                                iov[i].len = fill(bufs[i], t, id, n + i, last);
                        }
                        /* inflight before the call, committed then inflight
                         * after it: whenever the process dies, what it
                         * published lies in [committed, committed + inflight]. */
                        atomic_store_explicit(&in->inflight, want, memory_order_release);
                        r = want == 1 && !last && in->mode == PM_SEND
                                    ? zcbus_pub_send(pub, iov[0].data, iov[0].len, (int)stall_ms)
                                    : zcbus_pub_send_batch(pub, iov, want, (int)stall_ms);
                        if (r == 0)
                                r = 1;
                } else {
                        void *buf;
                        r = zcbus_pub_loan_timeout(pub, MSG_MAX, &buf, (int)stall_ms);
                        if (r == 0) {
                                /* A claim from here to the commit: a kill
                                 * in between leaves it abandoned. */
                                atomic_store_explicit(&in->inflight, 1, memory_order_release);
                                size_t len = fill(buf, t, id, n, 0);
                                r = zcbus_pub_commit(pub, len);
                                if (r == 0)
                                        r = 1;
                        }
                }
                if (r == -ETIMEDOUT) {
                        zcbus_pub_stats st = {.size = sizeof(st)};
                        (void)zcbus_pub_stats_get(pub, &st);
                        fail("soak producer %u (%s, %s, wait %s): STALL: no room for %u ms (published %llu, head "
                             "%llu, waits %llu)",
                             id, topics[t], mode_names[in->mode], wait_names[in->wait_mode], stall_ms,
                             (unsigned long long)st.published, (unsigned long long)st.topic_head,
                             (unsigned long long)st.waits);
                        _exit(EX_STALL);
                }
                if (r < 0) {
                        fail("soak producer %u (%s): send: %s", id, topics[t], zcbus_strerror(r));
                        _exit(EX_CHECK);
                }
                n += (uint64_t)r;
                atomic_store_explicit(&in->committed, n, memory_order_release);
                atomic_store_explicit(&in->inflight, 0, memory_order_release);
                if (last)
                        break;
                /* A LATEST producer never waits: left alone it would take
                 * every CPU from the reliable topic's peers. */
                if (policies[t] == ZCBUS_POLICY_LATEST && (k & 31) == 31)
                        (void)sched_yield();
        }
        zcbus_pub_stats st = {.size = sizeof(st)};
        (void)zcbus_pub_stats_get(pub, &st);
        in->published = st.published;
        in->head = st.topic_head;
        in->skipped = st.skipped;
        in->waits = st.waits;
        atomic_store_explicit(&in->reported, 1, memory_order_release);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        if (holds_memfd()) {
                fail("soak producer %u: still maps or holds a zcbus memfd after close", id);
                _exit(EX_LEAK);
        }
        _exit(EX_PASS);
}

/* ---- subscribers (witnesses and victims) --------------------------------- */

struct subctx {
        uint32_t t, w; /* topic; witness index or victim slot */
        bool witness;
        struct subslot *slot;
        zcbus_sub *sub;
        uint32_t holds;
        zcbus_msg held[8];
        unsigned nheld;
        uint64_t *vnext; /* victims: next counter per instance + 1 (0: unseen) */
};

static void sub_die(struct subctx *c, int code, const char *what, uint64_t seq) {
        fprintf(stderr, "soak %s %u.%u (%s, wait %s, %s, holds %u): %s at seq %llu\n",
                c->witness ? "witness" : "subscriber", c->t, c->w, topics[c->t], wait_names[c->slot->wait_mode],
                how_names[c->slot->how], c->holds, what, (unsigned long long)seq);
        _exit(code);
}

/* Re-check every held message (a held slot must not change), release them
 * in a scrambled order. */
static void release_held(struct subctx *c) {
        for (unsigned i = 0; i < c->nheld; i++) {
                struct hdr h;
                if (check_bytes(c->held[i].data, c->held[i].len, c->t, &h) < 0)
                        sub_die(c, EX_CHECK, "a held message changed under its holder", c->held[i].seq);
        }
        zcbus_msg order[8];
        for (unsigned i = 0; i < c->nheld; i++)
                /* (i*5+3) mod n is a permutation when gcd(5, n) == 1 */
                order[i] = c->held[c->nheld % 5 ? (i * 5 + 3) % c->nheld : i];
        if (c->slot->how == HOW_BATCH && c->nheld) {
                int r = zcbus_sub_release_batch(c->sub, order, c->nheld);
                if (r < 0)
                        sub_die(c, EX_CHECK, zcbus_strerror(r), order[0].seq);
        }
        for (unsigned i = 0; c->slot->how != HOW_BATCH && i < c->nheld; i++) {
                int r = zcbus_sub_release(c->sub, &order[i]);
                if (r < 0)
                        sub_die(c, EX_CHECK, zcbus_strerror(r), order[i].seq);
        }
        c->nheld = 0;
        atomic_store_explicit(&c->slot->held, 0, memory_order_relaxed);
}

static void subscriber(uint32_t t, uint32_t w, bool witness, int ready_fd) {
        struct subslot *slot = witness ? &sh->wit[t][w] : &sh->vic[t][w];
        struct subctx c = {.t = t, .w = w, .witness = witness, .slot = slot, .holds = slot->holds};
        zcbus *bus;
        zcbus_sub_opts o = {.size = sizeof(o), .max_holds = c.holds, .wait_mode = slot->wait_mode,
                            .slot_count = SLOTS, .slot_size = MSG_MAX, .policy = policies[t]};
        bool reliable = policies[t] == ZCBUS_POLICY_RELIABLE;
        int r;

        if ((r = zcbus_connect(sock, &bus)) < 0 || (r = zcbus_sub_open(bus, topics[t], &o, &c.sub)) < 0) {
                fprintf(stderr, "soak subscriber %u.%u (%s): open: %s\n", t, w, topics[t], zcbus_strerror(r));
                _exit(EX_CHECK);
        }
        if (!witness && !(c.vnext = calloc(MAXINST, sizeof(*c.vnext))))
                _exit(EX_CHECK);
        zcbus_sub_stats st = {.size = sizeof(st)};
        (void)zcbus_sub_stats_get(c.sub, &st);
        uint64_t first = st.next_seq, expect = first, skipped = st.skipped, last_next = first;
        uint64_t last_progress = mono_ns(), longest = 0;
        if (ready_fd >= 0 && write(ready_fd, "r", 1) != 1)
                _exit(EX_CHECK);
        for (;;) {
                uint32_t ph = atomic_load_explicit(&sh->phase, memory_order_acquire);
                if (!witness && ph != PH_RUN)
                        break;
                (void)zcbus_sub_stats_get(c.sub, &st);
                if (ph == PH_DRAIN &&
                    st.next_seq - first >= atomic_load_explicit(&sh->final_head[t], memory_order_relaxed))
                        break;
                uint64_t now = mono_ns();
                if (st.next_seq != last_next) {
                        if (ph != PH_END && now - last_progress > longest)
                                longest = now - last_progress;
                        last_next = st.next_seq;
                        last_progress = now;
                        atomic_store_explicit(&slot->passed, st.next_seq - first, memory_order_relaxed);
                } else if (now - last_progress > longest) {
                        longest = now - last_progress;
                }
                /* Producers publish all through PH_RUN; in PH_DRAIN the head
                 * is known and not reached. PH_END is the producers'
                 * wind-down: its end is the supervisor's to watch. */
                if (ph != PH_END && now - last_progress > (uint64_t)stall_ms * 1000000u) {
                        char what[160];
                        snprintf(what, sizeof(what), "STALL: nothing for %u ms (%s; passed %llu, head %llu)", stall_ms,
                                 ph == PH_RUN ? "producers publishing" : "draining to the head",
                                 (unsigned long long)(st.next_seq - first),
                                 (unsigned long long)atomic_load(&sh->final_head[t]));
                        sub_die(&c, EX_STALL, what, st.next_seq);
                }
                if (ph == PH_END)
                        last_progress = now;
                if (c.nheld == c.holds)
                        release_held(&c);
                zcbus_msg ms[8];
                unsigned n = 1;
                zcbus_sub_stats pre = {.size = sizeof(pre)};
                (void)zcbus_sub_stats_get(c.sub, &pre);
                if (slot->how == HOW_WAIT_ANY) {
                        zcbus_sub *one[1] = {c.sub};
                        r = zcbus_wait_any(one, 1, 100);
                        if (r >= 0)
                                r = zcbus_sub_recv(c.sub, &ms[0], 0);
                } else if (slot->how == HOW_BATCH) {
                        r = zcbus_sub_recv_batch(c.sub, ms, c.holds - c.nheld, 100);
                        n = r > 0 ? (unsigned)r : 0;
                } else {
                        r = zcbus_sub_recv(c.sub, &ms[0], 100);
                }
                if (r == -ETIMEDOUT || r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        sub_die(&c, EX_CHECK, zcbus_strerror(r), st.next_seq);
                (void)zcbus_sub_stats_get(c.sub, &st);
                /* Every sequence this call passed was delivered, counted
                 * lost or skipped; a single message is exactly where the
                 * last one, what it says it lost and the skipped put it.
                 * (A batch may step over markers after its last message.) */
                uint64_t before = expect;
                for (unsigned i = 0; i < n; i++) {
                        if (ms[i].seq < expect + ms[i].lost)
                                sub_die(&c, EX_CHECK, "sequence went back", ms[i].seq);
                        expect = ms[i].seq + 1;
                }
                uint64_t dnext = st.next_seq - pre.next_seq, dlost = st.lost - pre.lost,
                         dskip = st.skipped - pre.skipped;
                if (dnext != n + dlost + dskip || st.received - pre.received != n || expect > st.next_seq ||
                    (slot->how != HOW_BATCH && ms[0].seq != before + ms[0].lost + (st.skipped - skipped))) {
                        char what[200];
                        snprintf(what, sizeof(what),
                                 "%u messages after %llu with lost %llu (%llu in them) and %llu skipped (%llu in "
                                 "this call), the cursor moved by %llu",
                                 n, (unsigned long long)before - 1, (unsigned long long)dlost,
                                 (unsigned long long)ms[0].lost, (unsigned long long)(st.skipped - skipped),
                                 (unsigned long long)dskip, (unsigned long long)dnext);
                        sub_die(&c, EX_CHECK, what, expect - 1);
                }
                skipped = st.skipped;
                for (unsigned i = 0; i < n; i++) {
                        const zcbus_msg *m = &ms[i];
                        struct hdr h;
                        if (check_bytes(m->data, m->len, t, &h) < 0)
                                sub_die(&c, EX_CHECK, "torn or corrupt message", m->seq);
                        if (reliable && m->lost)
                                sub_die(&c, EX_CHECK, "lost a message under RELIABLE", m->seq);
                        if (sh->inst[h.inst].topic != t || sh->inst[h.inst].state == IS_FREE)
                                sub_die(&c, EX_CHECK, "a message from no producer instance of this topic", m->seq);
                        /* Witnesses saw every instance from its start; a victim
                         * joined late and starts wherever it started. */
                        bool seen = true;
                        uint64_t want;
                        if (witness) {
                                want = reliable ? sh->got[t][w][h.inst] : sh->lastc[t][w][h.inst];
                        } else {
                                seen = c.vnext[h.inst] != 0;
                                want = c.vnext[h.inst] - 1;
                        }
                        if (seen && (reliable ? h.counter != want : h.counter < want)) {
                                char what[160];
                                snprintf(what, sizeof(what), "producer %u counter %llu, want %s%llu", h.inst,
                                         (unsigned long long)h.counter, reliable ? "" : "at least ",
                                         (unsigned long long)want);
                                sub_die(&c, EX_CHECK, what, m->seq);
                        }
                        if (witness) {
                                if (reliable) {
                                        sh->got[t][w][h.inst] = h.counter + 1;
                                } else {
                                        sh->got[t][w][h.inst]++;
                                        sh->lastc[t][w][h.inst] = h.counter + 1;
                                }
                                if (h.end)
                                        sh->endseen[t][w][h.inst] = 1;
                        } else {
                                c.vnext[h.inst] = h.counter + 2; /* next counter + 1 */
                        }
                        c.held[c.nheld++] = *m;
                }
                atomic_store_explicit(&slot->held, c.nheld, memory_order_relaxed);
        }
        release_held(&c);
        (void)zcbus_sub_stats_get(c.sub, &st);
        if (witness) {
                struct witres *res = &sh->wres[t][w];
                *res = (struct witres){.received = st.received, .lost = st.lost, .skipped = st.skipped,
                                       .first = first, .next = st.next_seq, .sleeps = st.sleeps,
                                       .longest_wait_ns = longest, .done = 1};
        }
        zcbus_sub_close(c.sub);
        zcbus_disconnect(bus);
        free(c.vnext);
        if (holds_memfd()) {
                fprintf(stderr, "soak subscriber %u.%u: still maps or holds a zcbus memfd after close\n", t, w);
                _exit(EX_LEAK);
        }
        _exit(EX_PASS);
}

/* ---- supervisor ------------------------------------------------------------ */

enum { R_PROD, R_VIC };
struct peer {
        uint32_t role, t, idx; /* idx: instance (producer) or victim slot */
        pid_t pid;
        bool stopped; /* a victim we SIGSTOPped (--stop) */
};

static struct peer peers[NTOPIC * (MAXPROD + MAXVIC)];
static unsigned npeers;
static uint32_t next_inst = 1; /* 0 is never used: a zeroed header is no message */
static int bad;

struct topic_figs {
        uint64_t kills_pub, kills_pub_inflight, kills_sub, restarts, stops;
};
static struct topic_figs figs[NTOPIC];

static pid_t fork_child(void) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0)
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        return pid;
}

static int start_producer(uint32_t t, pid_t *ret_pid, uint32_t *ret_id) {
        if (next_inst >= MAXINST) {
                fail("soak: out of producer instances (%u)", MAXINST);
                return -1;
        }
        uint32_t id = next_inst++;
        struct inst *in = &sh->inst[id];
        in->topic = t;
        in->mode = rnd_in(PM_LOAN, PM_BATCH);
        in->wait_mode = rnd_in(ZCBUS_WAIT_ADAPTIVE, ZCBUS_WAIT_FUTEX);
        in->state = IS_RUNNING;
        pid_t p = fork_child();
        if (p < 0)
                return -1;
        if (p == 0)
                producer(id);
        in->pid = p;
        *ret_pid = p;
        *ret_id = id;
        return 0;
}

static int start_victim(uint32_t t, uint32_t slot, pid_t *ret_pid) {
        struct subslot *s = &sh->vic[t][slot];
        s->wait_mode = rnd_in(ZCBUS_WAIT_ADAPTIVE, ZCBUS_WAIT_FUTEX);
        s->holds = rnd_in(1, 8);
        s->how = s->holds > 1 && rnd() % 2 ? HOW_BATCH : HOW_ONE;
        atomic_store(&s->passed, 0);
        atomic_store(&s->held, 0);
        pid_t p = fork_child();
        if (p < 0)
                return -1;
        if (p == 0)
                subscriber(t, slot, false, -1);
        atomic_store(&s->pid, p);
        *ret_pid = p;
        return 0;
}

static const char *status_text(int st, char *buf, size_t len) {
        if (WIFEXITED(st))
                snprintf(buf, len, "exit %d%s", WEXITSTATUS(st),
                         WEXITSTATUS(st) == EX_STALL  ? " (stall)"
                         : WEXITSTATUS(st) == EX_LEAK ? " (memfd left)"
                                                     : "");
        else if (WIFSIGNALED(st))
                snprintf(buf, len, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
                snprintf(buf, len, "status %#x", st);
        return buf;
}

/* Reap pid within timeout_ms (its pidfd becomes readable when it ends);
 * -ETIMEDOUT if it has not ended by then. */
static int wait_child(pid_t pid, int timeout_ms, int *ret_status) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int n;
                while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
                        ;
                close(fd);
                if (n == 0)
                        return -ETIMEDOUT;
        } /* else a kernel without pidfd_open: wait unbounded */
        int st;
        if (waitpid(pid, &st, 0) != pid)
                return -errno;
        *ret_status = st;
        return 0;
}

/* What every subscriber and producer of a topic had reached: for a stall. */
static void dump_topic(uint32_t t) {
        static bool dumped[NTOPIC];
        if (dumped[t])
                return;
        dumped[t] = true;
        fprintf(stderr, "soak %s state:\n", topics[t]);
        for (uint32_t w = 0; w < NWIT; w++)
                fprintf(stderr, "  witness %u wait %-8s %-10s holds %u: passed %llu, holding %u\n", w,
                        wait_names[sh->wit[t][w].wait_mode], how_names[sh->wit[t][w].how], sh->wit[t][w].holds,
                        (unsigned long long)atomic_load(&sh->wit[t][w].passed), atomic_load(&sh->wit[t][w].held));
        for (unsigned i = 0; i < npeers; i++) {
                struct peer *p = &peers[i];
                if (p->t != t)
                        continue;
                if (p->role == R_VIC) {
                        struct subslot *s = &sh->vic[t][p->idx];
                        fprintf(stderr, "  subscriber %u pid %d wait %-8s %-10s holds %u: passed %llu, holding %u\n",
                                p->idx, (int)p->pid, wait_names[s->wait_mode], how_names[s->how], s->holds,
                                (unsigned long long)atomic_load(&s->passed), atomic_load(&s->held));
                } else {
                        struct inst *in = &sh->inst[p->idx];
                        fprintf(stderr, "  producer %u pid %d %s wait %s: committed %llu, in flight %u\n", p->idx,
                                (int)p->pid, mode_names[in->mode], wait_names[in->wait_mode],
                                (unsigned long long)atomic_load(&in->committed), atomic_load(&in->inflight));
                }
        }
}

static void peer_failed(const struct peer *p, int st) {
        char b[64];
        if (p->role == R_PROD)
                fail("soak: producer %u of %s (pid %d) ended on its own: %s", p->idx, topics[p->t], (int)p->pid,
                     status_text(st, b, sizeof(b)));
        else
                fail("soak: subscriber %u of %s (pid %d) ended on its own: %s", p->idx, topics[p->t],
                     (int)p->pid, status_text(st, b, sizeof(b)));
        dump_topic(p->t);
        bad = 1;
}

/* Names in /dev/shm, to find new ones at the end. */
static unsigned shm_names(char names[][256], unsigned max) {
        unsigned n = 0;
        DIR *d = opendir("/dev/shm");
        if (!d)
                return 0;
        struct dirent *e;
        while ((e = readdir(d)) && n < max)
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        snprintf(names[n++], 256, "%s", e->d_name);
        (void)closedir(d);
        return n;
}

static pid_t start_broker(const char *path, const char *conf) {
        int rp[2];
        if (pipe2(rp, O_CLOEXEC) < 0)
                return -1;
        pid_t pid = fork_child();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                if (dup2(rp[1], 3) < 0)
                        _exit(127);
                if (conf)
                        execl(path, path, "-f", "-s", sock, "-c", conf, "--ready-fd", "3", (char *)NULL);
                else
                        execl(path, path, "-f", "-s", sock, "--ready-fd", "3", (char *)NULL);
                _exit(127);
        }
        close(rp[1]);
        char c;
        ssize_t n = read(rp[0], &c, 1); /* a line when ready, EOF if it died */
        close(rp[0]);
        if (n != 1) {
                fail("soak: the broker %s did not get ready", path);
                return -1;
        }
        return pid;
}

/* With every peer gone, nothing may still hold a slot or gate a producer:
 * two laps of each ring go through without a wait or a stepped-over slot
 * (a dead subscriber's holds and floor were given back). */
static void probe_rings(void) {
        zcbus *bus;
        int r = zcbus_connect(sock, &bus);
        for (uint32_t t = 0; r >= 0 && t < NTOPIC; t++) {
                zcbus_topic_opts o = {.size = sizeof(o), .policy = policies[t]};
                zcbus_pub *pub;
                uint8_t buf[MSG_MIN] = {0};
                if ((r = zcbus_pub_open(bus, topics[t], &o, &pub)) < 0)
                        break;
                for (unsigned i = 0; r >= 0 && i < 2 * SLOTS; i++)
                        r = zcbus_pub_send(pub, buf, sizeof(buf), 0);
                zcbus_pub_stats st = {.size = sizeof(st)};
                (void)zcbus_pub_stats_get(pub, &st);
                zcbus_pub_close(pub);
                if (r < 0 || st.skipped || st.waits) {
                        fail("soak %s: with nobody left, a producer's %u messages: %s, %llu waits, %llu slots "
                             "stepped over",
                             topics[t], 2 * SLOTS, r < 0 ? zcbus_strerror(r) : "sent",
                             (unsigned long long)st.waits, (unsigned long long)st.skipped);
                        bad = 1;
                }
                r = 0;
        }
        if (r < 0) {
                fail("soak: probe the rings: %s", zcbus_strerror(r));
                bad = 1;
        }
        zcbus_disconnect(bus);
}

/* Wait until the broker lists no entry on our topics (it evicts dead peers
 * when it sees their sockets hang up, which may be after they were reaped). */
static void check_broker_empty(void) {
        zcbus *bus;
        int r = zcbus_connect(sock, &bus);
        if (r < 0) {
                fail("soak: connect to list topics: %s", zcbus_strerror(r));
                bad = 1;
                return;
        }
        static zcbus_topic_entry e[16];
        uint64_t deadline = mono_ns() + (uint64_t)stall_ms * 1000000u;
        for (;;) {
                unsigned total = 0, busy = 0, found = 0;
                r = zcbus_list_topics(bus, 0, e, 16, &total);
                if (r < 0) {
                        fail("soak: list topics: %s", zcbus_strerror(r));
                        bad = 1;
                        break;
                }
                for (int i = 0; i < r; i++)
                        for (uint32_t t = 0; t < NTOPIC; t++)
                                if (!strcmp(e[i].name, topics[t])) {
                                        found++;
                                        if (e[i].producers || e[i].subscribers)
                                                busy++;
                                }
                if (found == NTOPIC && !busy)
                        break;
                if (mono_ns() > deadline) {
                        for (int i = 0; i < r; i++)
                                fail("soak: broker still lists %s with %u producers, %u subscribers", e[i].name,
                                     e[i].producers, e[i].subscribers);
                        if (found != NTOPIC)
                                fail("soak: broker lists %u of our %u topics", found, NTOPIC);
                        bad = 1;
                        break;
                }
                (void)nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        zcbus_disconnect(bus);
}

/* The end-of-run checks of one topic; prints its summary line. */
static void check_topic(uint32_t t, double secs, uint64_t seed, uint32_t np, uint32_t nv) {
        bool reliable = policies[t] == ZCBUS_POLICY_RELIABLE;
        uint64_t head = atomic_load(&sh->final_head[t]);
        uint64_t published = 0, from_killed = 0, slack = 0, pskipped = 0;
        unsigned errors = 0;
        for (uint32_t id = 1; id < next_inst; id++) {
                struct inst *in = &sh->inst[id];
                if (in->topic != t)
                        continue;
                uint64_t lo = atomic_load(&in->committed), hi = lo;
                if (in->state == IS_KILLED) {
                        hi = lo + atomic_load(&in->inflight);
                        slack += hi - lo ? hi - lo : 1; /* a claim inside loan too */
                } else if (in->state == IS_ENDED) {
                        published += in->published;
                        pskipped += in->skipped;
                        if (in->published != lo) {
                                fail("soak %s: producer %u published %llu, committed %llu", topics[t], id,
                                     (unsigned long long)in->published, (unsigned long long)lo);
                                errors++;
                        }
                } else {
                        continue; /* failed: reported already */
                }
                uint64_t g0 = sh->got[t][0][id];
                if (in->state == IS_KILLED)
                        from_killed += reliable ? g0 : lo;
                for (uint32_t w = 0; w < NWIT; w++) {
                        if (!sh->wres[t][w].done)
                                continue;
                        uint64_t g = sh->got[t][w][id];
                        bool ok = reliable ? (g >= lo && g <= hi && g == g0 &&
                                              (in->state != IS_ENDED || sh->endseen[t][w][id]))
                                           : g <= hi;
                        if (!ok && errors++ < 20)
                                fail("soak %s: witness %u (%s) got %llu of producer %u (%s, %s), which committed "
                                     "%llu with %llu in flight%s",
                                     topics[t], w, wait_names[sh->wit[t][w].wait_mode], (unsigned long long)g, id,
                                     in->state == IS_KILLED ? "killed" : "ended", mode_names[in->mode],
                                     (unsigned long long)lo, (unsigned long long)(hi - lo),
                                     in->state == IS_ENDED && !sh->endseen[t][w][id] ? ", end marker missing" : "");
                }
        }
        char deliv[96] = "", lost[96] = "", waits[96] = "";
        uint64_t skipped = 0;
        for (uint32_t w = 0; w < NWIT; w++) {
                struct witres *r = &sh->wres[t][w];
                const char *sep = w ? "/" : "";
                if (!r->done) {
                        fail("soak %s: witness %u did not finish", topics[t], w);
                        errors++;
                        continue;
                }
                uint64_t passed = r->next - r->first;
                if (r->received + r->lost + r->skipped != passed || passed != head ||
                    r->first != sh->wres[t][0].first || (reliable && r->lost)) {
                        fail("soak %s: witness %u received %llu + lost %llu + skipped %llu, passed %llu, head %llu",
                             topics[t], w, (unsigned long long)r->received, (unsigned long long)r->lost,
                             (unsigned long long)r->skipped, (unsigned long long)passed,
                             (unsigned long long)head);
                        errors++;
                }
                if (reliable && r->received != published + from_killed) {
                        fail("soak %s: witness %u received %llu, producers committed %llu", topics[t], w,
                             (unsigned long long)r->received, (unsigned long long)(published + from_killed));
                        errors++;
                }
                /* Under RELIABLE a skipped sequence is a claim a killed
                 * producer never published: at most what it had in hand. */
                if (reliable && r->skipped > slack) {
                        fail("soak %s: witness %u skipped %llu sequences, killed producers had at most %llu in "
                             "hand",
                             topics[t], w, (unsigned long long)r->skipped, (unsigned long long)slack);
                        errors++;
                }
                skipped = r->skipped > skipped ? r->skipped : skipped;
                snprintf(deliv + strlen(deliv), sizeof(deliv) - strlen(deliv), "%s%llu", sep,
                         (unsigned long long)r->received);
                snprintf(lost + strlen(lost), sizeof(lost) - strlen(lost), "%s%llu", sep,
                         (unsigned long long)r->lost);
                snprintf(waits + strlen(waits), sizeof(waits) - strlen(waits), "%s%llu", sep,
                         (unsigned long long)(r->longest_wait_ns / 1000000u));
        }
        if (errors)
                bad = 1;
        struct topic_figs *f = &figs[t];
        /* Under RELIABLE every witness got the same count from a killed
         * producer, the count it committed; under LATEST, at least what
         * its calls returned for. */
        printf("soak %-8s seed %llu seconds %.1f producers %u victims %u witnesses %u: kills producers %llu (%llu "
               "with messages in flight) subscribers %llu, stopped %llu, restarts %llu; committed %llu (%llu by killed producers); "
               "sequences %llu; delivered %s; lost %s; skipped %llu (%s %llu); longest-wait-ms %s: %s\n",
               zcbus_policy_name(policies[t]), (unsigned long long)seed, secs, np, nv, NWIT,
               (unsigned long long)f->kills_pub, (unsigned long long)f->kills_pub_inflight,
               (unsigned long long)f->kills_sub, (unsigned long long)f->stops, (unsigned long long)f->restarts,
               (unsigned long long)(published + from_killed), (unsigned long long)from_killed,
               (unsigned long long)head, deliv, lost, (unsigned long long)skipped,
               reliable ? "claims killed producers held at most" : "held slots producers stepped over",
               reliable ? (unsigned long long)slack : (unsigned long long)pskipped, waits,
               errors ? "FAILED" : "ok");
}

static void usage(void) {
        fprintf(stderr, "usage: soak --broker ZCBUSD --socket PATH --seconds N [--seed S] [--stall-ms MS]\n"
                        "            [--producers P] [--victims V] [--interval MIN-MAX] [--kill all|pub|sub]\n"
                        "            [--stop PERCENT [--evict-ms MS]]\n");
        exit(2);
}

int main(int argc, char **argv) {
        static const struct option lo[] = {
                {"broker", required_argument, NULL, 'b'},   {"socket", required_argument, NULL, 's'},
                {"seconds", required_argument, NULL, 't'},  {"seed", required_argument, NULL, 'S'},
                {"stall-ms", required_argument, NULL, 'm'}, {"producers", required_argument, NULL, 'p'},
                {"victims", required_argument, NULL, 'v'},  {"interval", required_argument, NULL, 'i'},
                {"kill", required_argument, NULL, 'k'},     {"stop", required_argument, NULL, 'x'},
                {"evict-ms", required_argument, NULL, 'e'}, {NULL, 0, NULL, 0},
        };
        const char *broker = NULL;
        double secs = 0;
        uint64_t seed = 0;
        bool have_seed = false;
        uint32_t np = 2, nv = 2, imin = 5, imax = 50;
        bool kill_pub = true, kill_sub = true;
        uint32_t stop_pct = 0, evict_ms = 1000;
        int c;
        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'b':
                        broker = optarg;
                        break;
                case 's':
                        sock = optarg;
                        break;
                case 't':
                        secs = atof(optarg);
                        break;
                case 'S':
                        seed = strtoull(optarg, NULL, 0);
                        have_seed = true;
                        break;
                case 'm':
                        stall_ms = (uint32_t)atoi(optarg);
                        break;
                case 'p':
                        np = (uint32_t)atoi(optarg);
                        break;
                case 'v':
                        nv = (uint32_t)atoi(optarg);
                        break;
                case 'i':
                        if (sscanf(optarg, "%u-%u", &imin, &imax) != 2)
                                usage();
                        break;
                case 'x':
                        stop_pct = (uint32_t)atoi(optarg);
                        break;
                case 'e':
                        evict_ms = (uint32_t)atoi(optarg);
                        break;
                case 'k':
                        kill_pub = !strcmp(optarg, "all") || !strcmp(optarg, "pub");
                        kill_sub = !strcmp(optarg, "all") || !strcmp(optarg, "sub");
                        if (!kill_pub && !kill_sub)
                                usage();
                        break;
                default:
                        usage();
                }
        }
        if (!broker || !sock || secs <= 0 || np < 1 || np > MAXPROD || nv > MAXVIC || imin < 1 || imax < imin ||
            stall_ms < 100 || optind != argc || stop_pct > 100 || evict_ms < 100 ||
            (stop_pct && stall_ms < 2 * evict_ms + 1000))
                usage();
        if (!kill_sub && !kill_pub)
                usage();
        if (!have_seed)
                seed = mono_ns() ^ ((uint64_t)getpid() << 32);
        rng_state = seed;
        printf("soak: seed %llu (replay the chaos with --seed %llu); witnesses per topic: spin, adaptive, futex "
               "holding %u, futex through zcbus_wait_any\n",
               (unsigned long long)seed, (unsigned long long)seed, WIT_HOLDS);
        fflush(stdout);
        (void)signal(SIGPIPE, SIG_IGN);

        sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (sh == MAP_FAILED) {
                perror("soak: mmap");
                return 1;
        }
        for (uint32_t t = 0; t < NTOPIC; t++)
                snprintf(topics[t], sizeof(topics[t]), "soak.%s.%d", zcbus_policy_name(policies[t]), (int)getpid());
        static char shm_before[MAXSHM][256], shm_after[MAXSHM][256];
        unsigned nshm_before = shm_names(shm_before, MAXSHM);

        /* --stop: the broker's stall policy must evict what we stop. Its
         * config file is read at start; it goes once the broker is up. */
        char conf[64] = "";
        if (stop_pct) {
                snprintf(conf, sizeof(conf), "/tmp/zcbus-soak-conf.XXXXXX");
                int cfd = mkstemp(conf);
                if (cfd < 0 || dprintf(cfd, "stall_timeout_ms = %u\n", evict_ms) < 0) {
                        perror("soak: broker config");
                        return 1;
                }
                close(cfd);
        }
        pid_t bpid = start_broker(broker, stop_pct ? conf : NULL);
        if (stop_pct)
                (void)unlink(conf);
        if (bpid < 0)
                return 1;

        /* Witnesses first, so that they see every instance from its start. */
        pid_t wpid[NTOPIC][NWIT];
        int rp[2];
        if (pipe(rp) < 0)
                return 1;
        for (uint32_t t = 0; t < NTOPIC; t++)
                for (uint32_t w = 0; w < NWIT; w++) {
                        struct subslot *s = &sh->wit[t][w];
                        s->wait_mode = w == 0 ? ZCBUS_WAIT_SPIN : w == 1 ? ZCBUS_WAIT_ADAPTIVE : ZCBUS_WAIT_FUTEX;
                        s->holds = w == 2 ? WIT_HOLDS : 1;
                        s->how = w == 3 ? HOW_WAIT_ANY : HOW_ONE;
                        wpid[t][w] = fork_child();
                        if (wpid[t][w] < 0)
                                return 1;
                        if (wpid[t][w] == 0) {
                                close(rp[0]);
                                subscriber(t, w, true, rp[1]);
                        }
                        atomic_store(&s->pid, wpid[t][w]);
                }
        close(rp[1]);
        for (unsigned i = 0; i < NTOPIC * NWIT; i++) {
                char ch;
                if (read(rp[0], &ch, 1) != 1) {
                        fail("soak: a witness failed to start");
                        return 1;
                }
        }
        close(rp[0]);

        for (uint32_t t = 0; t < NTOPIC; t++) {
                for (uint32_t i = 0; i < np; i++) {
                        struct peer *p = &peers[npeers++];
                        *p = (struct peer){.role = R_PROD, .t = t};
                        if (start_producer(t, &p->pid, &p->idx) < 0)
                                return 1;
                }
                for (uint32_t i = 0; i < nv; i++) {
                        struct peer *p = &peers[npeers++];
                        *p = (struct peer){.role = R_VIC, .t = t, .idx = i};
                        if (start_victim(t, i, &p->pid) < 0)
                                return 1;
                }
        }

        /* The chaos. */
        uint64_t t0 = mono_ns(), end = t0 + (uint64_t)(secs * 1e9);
        while (!bad && mono_ns() < end) {
                uint64_t ns = (uint64_t)rnd_in(imin, imax) * 1000000u, now = mono_ns();
                if (now + ns > end)
                        ns = end - now;
                (void)nanosleep(&(struct timespec){.tv_sec = (time_t)(ns / 1000000000u),
                                                   .tv_nsec = (long)(ns % 1000000000u)},
                                NULL);
                if (mono_ns() >= end)
                        break;
                /* Nobody may end on their own while the chaos runs. */
                int st;
                pid_t dead;
                while ((dead = waitpid(-1, &st, WNOHANG)) > 0) {
                        bool known = false;
                        for (unsigned i = 0; i < npeers; i++)
                                if (peers[i].pid == dead) {
                                        peer_failed(&peers[i], st);
                                        if (peers[i].role == R_PROD)
                                                sh->inst[peers[i].idx].state = IS_FAILED;
                                        peers[i].pid = 0;
                                        known = true;
                                }
                        if (!known) {
                                char b[64];
                                fail("soak: %s (pid %d) ended: %s", dead == bpid ? "the broker" : "a witness",
                                     (int)dead, status_text(st, b, sizeof(b)));
                                for (uint32_t t = 0; t < NTOPIC; t++)
                                        for (uint32_t w = 0; w < NWIT; w++)
                                                if (wpid[t][w] == dead) {
                                                        dump_topic(t);
                                                        wpid[t][w] = 0;
                                                }
                                if (dead == bpid)
                                        bpid = 0;
                                bad = 1;
                        }
                }
                if (bad)
                        break;
                if (stop_pct && rnd() % 100 < stop_pct) {
                        /* Stop a victim instead: a live subscriber that makes
                         * no progress, which the broker's stall policy evicts
                         * (RELIABLE; LATEST never waits for it). It stays
                         * stopped until the chaos kills it. */
                        unsigned cand = 0, pick;
                        for (unsigned i = 0; i < npeers; i++)
                                cand += peers[i].role == R_VIC && !peers[i].stopped;
                        if (cand) {
                                pick = (unsigned)(rnd() % cand);
                                for (unsigned i = 0; i < npeers; i++)
                                        if (peers[i].role == R_VIC && !peers[i].stopped && pick-- == 0) {
                                                (void)kill(peers[i].pid, SIGSTOP);
                                                peers[i].stopped = true;
                                                figs[peers[i].t].stops++;
                                                break;
                                        }
                                continue;
                        }
                }
                struct peer *p = &peers[rnd() % npeers];
                if (!kill_pub || !kill_sub) {
                        uint32_t want = kill_pub ? R_PROD : R_VIC;
                        unsigned cand = 0, pick;
                        for (unsigned i = 0; i < npeers; i++)
                                cand += peers[i].role == want;
                        if (!cand)
                                continue;
                        pick = (unsigned)(rnd() % cand);
                        for (unsigned i = 0; i < npeers; i++)
                                if (peers[i].role == want && pick-- == 0) {
                                        p = &peers[i];
                                        break;
                                }
                }
                (void)kill(p->pid, SIGKILL);
                if (waitpid(p->pid, &st, 0) != p->pid)
                        return 1;
                if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
                        peer_failed(p, st); /* it ended on its own first */
                        if (p->role == R_PROD)
                                sh->inst[p->idx].state = IS_FAILED;
                        break;
                }
                struct topic_figs *f = &figs[p->t];
                if (p->role == R_PROD) {
                        struct inst *in = &sh->inst[p->idx];
                        in->state = IS_KILLED;
                        f->kills_pub++;
                        f->kills_pub_inflight += atomic_load(&in->inflight) != 0;
                        if (start_producer(p->t, &p->pid, &p->idx) < 0)
                                return 1;
                } else {
                        f->kills_sub++;
                        p->stopped = false;
                        if (start_victim(p->t, p->idx, &p->pid) < 0)
                                return 1;
                }
                f->restarts++;
        }
        double chaos_secs = (mono_ns() - t0) / 1e9;

        /* Wind down: producers send their end markers, victims close. */
        atomic_store_explicit(&sh->phase, PH_END, memory_order_release);
        uint64_t head[NTOPIC] = {0};
        /* A stopped victim never sees the end: it dies as it would have. */
        for (unsigned i = 0; i < npeers; i++) {
                int st;
                if (!peers[i].pid || !peers[i].stopped)
                        continue;
                (void)kill(peers[i].pid, SIGKILL);
                (void)waitpid(peers[i].pid, &st, 0);
                figs[peers[i].t].kills_sub++;
                peers[i].pid = 0;
        }
        /* Every peer ends by its own timeouts: a stall fails it within
         * stall_ms. One that does not end much later is hung. */
        int grace_ms = 2 * (int)stall_ms + 10000;
        for (unsigned i = 0; i < npeers; i++) {
                struct peer *p = &peers[i];
                int st;
                if (!p->pid)
                        continue;
                if (wait_child(p->pid, grace_ms, &st) == -ETIMEDOUT) {
                        fail("soak: %s %u of %s (pid %d) has not ended %d ms into the wind-down: hung",
                             p->role == R_PROD ? "producer" : "subscriber", p->idx, topics[p->t], (int)p->pid,
                             grace_ms);
                        dump_topic(p->t);
                        (void)kill(p->pid, SIGKILL);
                        (void)waitpid(p->pid, &st, 0);
                        bad = 1;
                        if (p->role == R_PROD)
                                sh->inst[p->idx].state = IS_FAILED;
                        continue;
                }
                if (!WIFEXITED(st) || WEXITSTATUS(st) != EX_PASS) {
                        peer_failed(p, st);
                        if (p->role == R_PROD)
                                sh->inst[p->idx].state = IS_FAILED;
                        continue;
                }
                if (p->role == R_PROD) {
                        struct inst *in = &sh->inst[p->idx];
                        in->state = IS_ENDED;
                        /* The last producer to read the head read it after
                         * every claim: the max is the topic's head. */
                        if (in->head > head[p->t])
                                head[p->t] = in->head;
                }
        }
        for (uint32_t t = 0; t < NTOPIC; t++)
                atomic_store_explicit(&sh->final_head[t], head[t], memory_order_relaxed);
        atomic_store_explicit(&sh->phase, PH_DRAIN, memory_order_release);
        for (uint32_t t = 0; t < NTOPIC; t++)
                for (uint32_t w = 0; w < NWIT; w++) {
                        int st;
                        char b[64];
                        if (!wpid[t][w])
                                continue;
                        if (wait_child(wpid[t][w], grace_ms, &st) == -ETIMEDOUT) {
                                fail("soak: witness %u of %s has not ended %d ms into the drain: hung", w,
                                     topics[t], grace_ms);
                                dump_topic(t);
                                (void)kill(wpid[t][w], SIGKILL);
                                (void)waitpid(wpid[t][w], &st, 0);
                                bad = 1;
                                continue;
                        }
                        if (!WIFEXITED(st) || WEXITSTATUS(st) != EX_PASS) {
                                fail("soak: witness %u of %s ended: %s", w, topics[t], status_text(st, b, sizeof(b)));
                                dump_topic(t);
                                bad = 1;
                        }
                }

        if (bpid) {
                check_broker_empty();
                probe_rings();
                check_broker_empty();
                int st;
                (void)kill(bpid, SIGTERM);
                if (waitpid(bpid, &st, 0) != bpid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        char b[64];
                        fail("soak: the broker ended with %s", status_text(st, b, sizeof(b)));
                        bad = 1;
                }
                if (access(sock, F_OK) == 0) {
                        fail("soak: the broker left its socket %s behind", sock);
                        bad = 1;
                }
        }
        if (holds_memfd()) {
                fail("soak: the supervisor maps or holds a zcbus memfd");
                bad = 1;
        }
        unsigned nshm_after = shm_names(shm_after, MAXSHM);
        for (unsigned i = 0; i < nshm_after; i++) {
                bool old = false;
                for (unsigned j = 0; j < nshm_before && !old; j++)
                        old = !strcmp(shm_after[i], shm_before[j]);
                if (!old) {
                        fail("soak: new in /dev/shm: %s", shm_after[i]);
                        bad = 1;
                }
        }
        for (uint32_t t = 0; t < NTOPIC; t++)
                check_topic(t, chaos_secs, seed, np, nv);
        fflush(stdout);
        return bad;
}
