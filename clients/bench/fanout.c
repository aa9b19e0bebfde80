/* SPDX-License-Identifier: MIT */
/*
 * fanout.c: one point of the fan-out curve (fanout.h). It owns the
 * point's shared block (the producer's and each subscriber's results and
 * each subscriber's receive records), the peers and their gates, the
 * producer's pacing and CPU accounting, and the figures made of what the
 * peers wrote back.
 *
 * Pacing: two publishes are at least gap_ns apart (the producer sleeps
 * with a timer slack of 1 ns and never catches up with a burst), so every
 * message finds the subscribers as the gap before it left them: asleep if
 * they had the time to drain, re-arm and sleep. Paced, the producer's CPU
 * time is read (CLOCK_THREAD_CPUTIME_ID) just before and just after each
 * publish, so the sleeps between messages are not charged to publishing;
 * what a pair of reads costs by itself (the median of 2001 empty pairs,
 * measured first in the same process) is taken off each. Unpaced, it is
 * the thread's CPU time over the whole loop divided by the messages.
 *
 * Latency: every message carries the producer's CLOCK_MONOTONIC; each
 * subscriber writes, for each counter below the point's record capacity,
 * its own receive time minus that (plus 1, so 0 means "not received")
 * into a row of the shared block that only it writes. After the run, the
 * first and the last subscriber to receive message k are the minimum and
 * maximum of column k over the subscribers that received it.
 *
 * Start-up: the producer attaches first (it creates the topic), then the
 * subscribers attach at most FAN_ATTACH_AT_ONCE at a time (the parent
 * hands out one byte on a pipe per attach, and one more per subscriber
 * that is ready) so that 256 of them never crowd the broker's pool of
 * connections that have not said HELLO yet; then all start at once. The
 * producer's last message is an end marker, after which each subscriber
 * reports and exits.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "cli_util.h"
#include "fanout.h"
#include "futex.h"
#include "macro.h"
#include "procs.h"
#include "zcbus.h"

#define FAN_ATTACH_AT_ONCE 16u
#define FAN_LAT_BYTES_MAX (UINT64_C(64) << 20) /* receive records of one point */
#define FAN_LAT_CAP_MAX (UINT64_C(1) << 20)    /* records per subscriber */
#define FAN_IDLE_MS 100                         /* a subscriber re-checks the abort this often */
#define FAN_CALIBRATE 2001u

uint64_t bench_fan_gap(uint32_t rate, bool rate_auto, unsigned n) {
        uint64_t gap;

        if (!rate_auto)
                return rate ? (1000000000u + rate - 1) / rate : 0;
        gap = 1000000000u / FAN_AUTO_RATE_MAX;
        return MAX(gap, (uint64_t)n * FAN_AUTO_SUB_NS);
}

struct fan_prod_res {
        uint64_t count, t_start, t_end;
        uint64_t cpu_ns, bracket_ns;
        uint64_t waits, wakeups;
        uint8_t pad[8];
};

struct fan_sub_res {
        uint64_t count, lost, sleeps, t_last;
        uint8_t pad[32];
};

struct fan_ctl {
        au32 abort;    /* parent: give up (a peer failed) */
        au32 reported; /* a peer said why it failed: the others stay quiet */
        uint8_t pad[56];
        struct fan_prod_res prod;
        struct fan_sub_res subs[]; /* then the receive records */
};

struct fan_peer {
        const char *cmd;
        struct fan_xp *xp;
        const struct fan_point *p;
        enum perf_role role;
        unsigned idx;
        struct fan_ctl *ctl;
        uint32_t *rec; /* subscriber: its row of cap records */
        uint64_t cap;
        struct bench_pipe *tok, *sem, *go;
};

static uint64_t thread_cpu_ns(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t_ns) {
        struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u), .tv_nsec = (long)(t_ns % 1000000000u)};

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* What a pair of CPU-clock reads costs with nothing between them. */
static uint64_t bracket_cost(void) {
        static uint64_t d[FAN_CALIBRATE];

        for (unsigned i = 0; i < FAN_CALIBRATE; i++) {
                uint64_t c0 = thread_cpu_ns();
                d[i] = thread_cpu_ns() - c0;
        }
        qsort(d, FAN_CALIBRATE, sizeof(*d), cmp_u64);
        return d[FAN_CALIBRATE / 2];
}

static const char *role_name(enum perf_role role) {
        return role == PERF_PROD ? "producer" : "subscriber";
}

static int fan_produce(struct fan_peer *P) {
        const struct fan_point *p = P->p;
        struct fan_prod_res *res = &P->ctl->prod;
        uint64_t count = 0, cpu = 0, t, end, next;
        int r;

        /* The default slack (50 us) would stretch every gap. */
        (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        if (p->gap_ns)
                res->bracket_ns = bracket_cost();
        if (bench_wait_eof(P->go->rd) < 0)
                return -EPIPE;
        res->t_start = t = now_ns();
        end = t + p->duration_ns;
        if (!p->gap_ns) {
                uint64_t c0 = thread_cpu_ns();
                for (; t < end; t = now_ns()) {
                        if (_unlikely_((r = P->xp->ops->publish(P->xp->st, count)) < 0))
                                return r;
                        count++;
                }
                cpu = thread_cpu_ns() - c0;
        } else {
                for (next = t; t < end; t = now_ns()) {
                        uint64_t c0, c1;
                        if (t < next) {
                                sleep_until(next);
                                t = now_ns();
                                if (t >= end)
                                        break;
                        }
                        next = t + p->gap_ns;
                        c0 = thread_cpu_ns();
                        r = P->xp->ops->publish(P->xp->st, count);
                        c1 = thread_cpu_ns();
                        if (_unlikely_(r < 0))
                                return r;
                        cpu += c1 - c0;
                        count++;
                }
        }
        res->t_end = now_ns();
        res->count = count;
        res->cpu_ns = cpu;
        P->xp->ops->pub_counts(P->xp->st, &res->waits, &res->wakeups);
        return P->xp->ops->publish(P->xp->st, FAN_END);
}

static int fan_consume(struct fan_peer *P) {
        struct fan_sub_res *res = &P->ctl->subs[P->idx];
        bool reliable = P->p->policy != ZCBUS_POLICY_LATEST;
        uint64_t expect = 0, count = 0, lost = 0;
        struct fan_rx rx;
        int r;

        if (bench_wait_eof(P->go->rd) < 0)
                return -EPIPE;
        for (;;) {
                r = P->xp->ops->receive(P->xp->st, P->idx, FAN_IDLE_MS, &rx);
                if (r == 0) {
                        if (load_acq(&P->ctl->abort))
                                return -ECANCELED;
                        continue;
                }
                if (_unlikely_(r < 0))
                        return r;
                if (rx.ctr == FAN_END)
                        break;
                if (_unlikely_(rx.ctr < expect || (reliable && rx.ctr != expect)))
                        return -EBADMSG;
                expect = rx.ctr + 1;
                if (rx.ctr < P->cap) {
                        uint64_t d = rx.now > rx.ts_ns ? rx.now - rx.ts_ns : 0;
                        P->rec[rx.ctr] = d >= UINT32_MAX ? UINT32_MAX : (uint32_t)d + 1;
                }
                res->t_last = rx.now;
                lost += rx.lost;
                count++;
        }
        res->count = count;
        res->lost = lost;
        P->xp->ops->sub_counts(P->xp->st, &res->sleeps);
        return 0;
}

/* The first failure is the story; the peers that fail after it (say, 15
 * subscribers refused as the 16th was) would only repeat it. */
static bool first_to_fail(struct fan_peer *P) {
        return atomic_exchange_explicit(&P->ctl->reported, 1, memory_order_relaxed) == 0;
}

static int fan_peer_main(void *arg) {
        struct fan_peer *P = arg;
        char c;
        int r;

        bench_fd_close(&P->tok->rd);
        bench_fd_close(&P->sem->wr);
        bench_fd_close(&P->go->wr);
        if (P->role == PERF_SUB && bench_get_byte(P->sem->rd, &c) < 0)
                return 1; /* the parent gave up */
        bench_fd_close(&P->sem->rd);
        r = P->xp->ops->attach ? P->xp->ops->attach(P->xp->st, P->role, P->idx) : 0;
        if (r < 0 && first_to_fail(P)) {
                /* Each subscriber is a session and an entry of its own. */
                bool limit = P->role == PERF_SUB && (r == -EDQUOT || r == -EUSERS || r == -ENOSPC);
                cli_err(P->cmd, "%s %s %u: cannot start: %s%s", bench_xp_name(P->xp->kind), role_name(P->role), P->idx,
                        bench_xp_why(P->xp->ops->why, P->xp->st, r),
                        limit ? " (--fanout N needs a broker whose max_subscribers is at least N and whose "
                                "uid_max_sessions and max_sessions exceed it)"
                              : "");
        }
        if (r < 0) {
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        if (bench_put_byte(P->tok->wr, 'R') < 0)
                return 1;
        r = P->role == PERF_PROD ? fan_produce(P) : fan_consume(P);
        if (r == -EPIPE || r == -ECANCELED)
                return 1; /* the parent gave up: it says why */
        if (r < 0) {
                if (first_to_fail(P))
                        cli_err(P->cmd, "%s %s %u: %s", bench_xp_name(P->xp->kind), role_name(P->role), P->idx,
                                r == -EBADMSG ? "received a message out of order"
                                              : bench_xp_why(P->xp->ops->why, P->xp->st, r));
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        return bench_put_byte(P->tok->wr, 'D') < 0;
}

struct fan_run {
        struct fan_xp *xp; /* prepared: detach on the way out */
        struct bench_pipe tok, sem, go;
        struct fan_peer *peers;
        struct fan_ctl *ctl;
        size_t ctl_len;
        struct hist *first, *last;
        uint32_t *lo, *hi;
};

static void fan_run_close(struct fan_run *R) {
        if (R->ctl)
                store_rel(&R->ctl->abort, 1);
        if (R->xp && R->xp->ops->detach)
                R->xp->ops->detach(R->xp->st);
        bench_pipe_close(&R->tok);
        bench_pipe_close(&R->sem);
        bench_pipe_close(&R->go);
        free(R->peers);
        hist_free(R->first);
        hist_free(R->last);
        free(R->lo);
        free(R->hi);
        bench_shared_free(R->ctl, R->ctl_len);
}

/* The figures of a point out of what its peers wrote. */
static void fan_figures(struct fan_run *R, const struct fan_point *p, uint64_t cap, struct fan_outcome *o) {
        const struct fan_prod_res *pr = &R->ctl->prod;
        const uint32_t *rec = (const uint32_t *)&R->ctl->subs[p->subs];
        uint64_t n = MIN(cap, pr->count), span;

        *o = (struct fan_outcome){.published = pr->count, .waits = pr->waits, .wakeups = pr->wakeups};
        if (pr->count) {
                double cpu = (double)pr->cpu_ns;
                if (p->gap_ns) {
                        o->cpu_bracket_ns = (double)pr->bracket_ns;
                        cpu -= (double)pr->bracket_ns * (double)pr->count;
                }
                o->cpu_ns_per_pub = MAX(cpu, 0.0) / (double)pr->count;
        }
        span = pr->t_end > pr->t_start ? pr->t_end - pr->t_start : 0;
        o->pub_rate = span ? (double)pr->count * 1e9 / (double)span : 0.0;
        o->sub_rate_min = INFINITY;
        for (unsigned s = 0; s < p->subs; s++) {
                const struct fan_sub_res *sr = &R->ctl->subs[s];
                uint64_t t = sr->t_last > pr->t_start ? sr->t_last - pr->t_start : 0;
                double rate = t && sr->count ? (double)sr->count * 1e9 / (double)t : 0.0;
                o->sub_rate_sum += rate;
                o->sub_rate_min = MIN(o->sub_rate_min, rate);
                o->delivered += sr->count;
                o->lost += sr->lost;
                o->sleeps += sr->sleeps;
        }
        o->sub_rate_mean = o->sub_rate_sum / p->subs;
        /* First and last per message: row by row, so each row is read once
         * in order. */
        for (uint64_t k = 0; k < n; k++) {
                R->lo[k] = UINT32_MAX;
                R->hi[k] = 0;
        }
        for (unsigned s = 0; s < p->subs; s++) {
                const uint32_t *row = rec + (size_t)s * cap;
                for (uint64_t k = 0; k < n; k++) {
                        uint32_t v = row[k];
                        if (!v)
                                continue;
                        if (v < R->lo[k])
                                R->lo[k] = v;
                        if (v > R->hi[k])
                                R->hi[k] = v;
                }
        }
        for (uint64_t k = 0; k < n; k++)
                if (R->hi[k]) {
                        hist_record(R->first, R->lo[k] - 1u);
                        hist_record(R->last, R->hi[k] - 1u);
                        o->samples++;
                }
        hist_summarize(R->first, &o->first);
        hist_summarize(R->last, &o->last);
}

int bench_fan_run(const char *cmd, const int cpus[2], struct fan_xp *xp, const struct fan_point *p,
                  struct fan_outcome *ret) {
        unsigned ns = p->subs, n = ns + 1, sem_out = 0;
        uint64_t cap = p->gap_ns ? p->duration_ns / p->gap_ns + 16 : FAN_LAT_CAP_MAX;
        _cleanup_(fan_run_close) struct fan_run R = {.tok = {-1, -1}, .sem = {-1, -1}, .go = {-1, -1}};
        _cleanup_(bench_procs_kill) struct bench_procs ps = {0};
        int timeout_ms, r;

        if (ns == 0 || ns > FAN_SUBS_MAX || n > BENCH_PROCS_MAX)
                return -EINVAL;
        cap = MIN(cap, MIN(FAN_LAT_CAP_MAX, FAN_LAT_BYTES_MAX / sizeof(uint32_t) / ns));
        R.ctl_len = sizeof(struct fan_ctl) + (size_t)ns * sizeof(struct fan_sub_res) +
                    (size_t)ns * cap * sizeof(uint32_t);
        R.ctl = bench_shared_new(R.ctl_len);
        R.peers = calloc(n, sizeof(*R.peers));
        R.first = hist_new();
        R.last = hist_new();
        R.lo = calloc(cap, sizeof(*R.lo));
        R.hi = calloc(cap, sizeof(*R.hi));
        if (!R.ctl || !R.peers || !R.first || !R.last || !R.lo || !R.hi) {
                if (!R.ctl)
                        R.ctl_len = 0;
                cli_err(cmd, "out of memory");
                return -ENOMEM;
        }
        r = xp->ops->prepare(xp->st, p);
        if (r < 0) {
                cli_err(cmd, "%s: cannot set up %u subscribers: %s", bench_xp_name(xp->kind), ns,
                        bench_xp_why(xp->ops->why, xp->st, r));
                return r;
        }
        R.xp = xp;
        if ((r = bench_pipe_open(&R.tok)) < 0 || (r = bench_pipe_open(&R.sem)) < 0 ||
            (r = bench_pipe_open(&R.go)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        for (unsigned i = 0; i < n; i++) {
                R.peers[i] = (struct fan_peer){
                        .cmd = cmd, .xp = xp, .p = p, .ctl = R.ctl, .cap = cap,
                        .role = i == 0 ? PERF_PROD : PERF_SUB,
                        .idx = i == 0 ? 0 : i - 1,
                        .tok = &R.tok, .sem = &R.sem, .go = &R.go,
                };
                if (i > 0)
                        R.peers[i].rec = (uint32_t *)&R.ctl->subs[ns] + (size_t)(i - 1) * cap;
                r = bench_spawn(&ps, cpus[i == 0 ? 0 : 1], fan_peer_main, &R.peers[i]);
                if (r < 0) {
                        cli_err(cmd, "cannot fork a peer: %s", strerror(-r));
                        return r;
                }
        }
        bench_fd_close(&R.tok.wr);
        bench_fd_close(&R.sem.rd);
        bench_fd_close(&R.go.rd);
        if (xp->ops->detach)
                xp->ops->detach(xp->st);

        /* The producer first, then the subscribers a few at a time. */
        r = bench_wait_tokens(&ps, R.tok.rd, 1, BENCH_PEER_TIMEOUT_MS);
        for (unsigned got = 0; r >= 0 && got < ns; got++) {
                while (r >= 0 && sem_out < ns && sem_out < got + FAN_ATTACH_AT_ONCE) {
                        r = bench_put_byte(R.sem.wr, 'G');
                        sem_out++;
                }
                if (r >= 0)
                        r = bench_wait_tokens(&ps, R.tok.rd, 1, BENCH_PEER_TIMEOUT_MS);
        }
        if (r < 0) {
                bench_peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        bench_fd_close(&R.go.wr);
        timeout_ms = (int)MIN(p->duration_ns / 1000000u, (uint64_t)86400000) + BENCH_PEER_TIMEOUT_MS;
        if ((r = bench_wait_tokens(&ps, R.tok.rd, n, timeout_ms)) < 0) {
                bench_peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        if ((r = bench_procs_reap(&ps, cmd, BENCH_PEER_TIMEOUT_MS)) < 0)
                return r;
        fan_figures(&R, p, cap, ret);
        return 0;
}
