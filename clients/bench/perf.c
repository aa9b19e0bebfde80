/* SPDX-License-Identifier: MIT */
/*
 * perf.c: the throughput driver (perf.h). It owns one timed run: the
 * shared control block, the producer and subscriber peers with their
 * gates (producers open first, then subscribers, then all start at
 * once), the stop, the reaping, and the rates made of what the peers
 * wrote back; and the memset reference for large messages.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_util.h"
#include "futex.h"
#include "macro.h"
#include "perf.h"
#include "procs.h"

struct perf_peer {
        const char *cmd;
        struct perf_xp *xp;
        enum perf_role role;
        unsigned idx;
        struct perf_ctl *ctl;
        struct perf_result *res;
        struct bench_pipe *tok, *open_gate, *go_gate;
};

static int perf_peer_main(void *arg) {
        struct perf_peer *P = arg;
        int r;

        bench_fd_close(&P->tok->rd);
        bench_fd_close(&P->open_gate->wr);
        bench_fd_close(&P->go_gate->wr);
        if (P->role == PERF_SUB && bench_wait_eof(P->open_gate->rd) < 0)
                return 1;
        r = P->xp->ops->attach ? P->xp->ops->attach(P->xp->st, P->role, P->idx) : 0;
        if (r < 0) {
                cli_err(P->cmd, "%s %s %u: cannot start: %s", bench_xp_name(P->xp->kind),
                        P->role == PERF_PROD ? "producer" : "subscriber", P->idx,
                        bench_xp_why(P->xp->ops->why, P->xp->st, r));
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        if (bench_put_byte(P->tok->wr, 'R') < 0 || bench_wait_eof(P->go_gate->rd) < 0)
                return 1;
        P->res->t_start = now_ns();
        r = (P->role == PERF_PROD ? P->xp->ops->produce : P->xp->ops->consume)(P->xp->st, P->idx, P->ctl, P->res);
        if (r < 0) {
                cli_err(P->cmd, "%s %s %u: %s", bench_xp_name(P->xp->kind),
                        P->role == PERF_PROD ? "producer" : "subscriber", P->idx,
                        r == -EBADMSG ? "received a message with a wrong length or sequence number"
                                      : bench_xp_why(P->xp->ops->why, P->xp->st, r));
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        if (P->role == PERF_PROD)
                (void)faa_sc(&P->ctl->prod_done, 1);
        return bench_put_byte(P->tok->wr, 'D') < 0;
}

static void sleep_until(uint64_t t_ns) {
        struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u), .tv_nsec = (long)(t_ns % 1000000000u)};

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static double rate_of(const struct perf_result *r) {
        if (r->count == 0 || r->t_end <= r->t_start)
                return 0.0;
        return (double)r->count * 1e9 / (double)(r->t_end - r->t_start);
}

struct perf_run {
        struct perf_xp *xp; /* prepared: detach on the way out */
        struct bench_pipe tok, open_gate, go_gate;
        struct perf_peer *peers;
        struct perf_ctl *ctl;
        size_t ctl_len;
};

static void perf_run_close(struct perf_run *R) {
        if (R->xp && R->xp->ops->detach)
                R->xp->ops->detach(R->xp->st);
        bench_pipe_close(&R->tok);
        bench_pipe_close(&R->open_gate);
        bench_pipe_close(&R->go_gate);
        free(R->peers);
        bench_shared_free(R->ctl, R->ctl_len);
}

int bench_perf_run(const char *cmd, const struct perf_cfg *cfg, struct perf_xp *xp, size_t size,
                   uint64_t duration_ns, struct perf_outcome *ret) {
        unsigned np = cfg->producers, ns = cfg->subscribers, n = np + ns;
        _cleanup_(perf_run_close) struct perf_run R = {
                .tok = {-1, -1}, .open_gate = {-1, -1}, .go_gate = {-1, -1},
                .ctl_len = sizeof(struct perf_ctl) + (size_t)n * sizeof(struct perf_result),
        };
        _cleanup_(bench_procs_kill) struct bench_procs ps = {0};
        struct perf_outcome o = {0};
        uint64_t t_go;
        int r;

        if (np == 0 || ns == 0 || n > BENCH_PROCS_MAX)
                return -EINVAL;
        R.ctl = bench_shared_new(R.ctl_len);
        R.peers = calloc(n, sizeof(*R.peers));
        if (!R.ctl || !R.peers) {
                cli_err(cmd, "out of memory");
                return -ENOMEM;
        }
        r = xp->ops->prepare(xp->st, size);
        if (r < 0) {
                cli_err(cmd, "%s: cannot set up %zu-byte messages: %s", bench_xp_name(xp->kind), size,
                        bench_xp_why(xp->ops->why, xp->st, r));
                return r;
        }
        R.xp = xp;
        if ((r = bench_pipe_open(&R.tok)) < 0 || (r = bench_pipe_open(&R.open_gate)) < 0 ||
            (r = bench_pipe_open(&R.go_gate)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        for (unsigned i = 0; i < n; i++) {
                R.peers[i] = (struct perf_peer){
                        .cmd = cmd, .xp = xp, .ctl = R.ctl, .res = &R.ctl->res[i],
                        .role = i < np ? PERF_PROD : PERF_SUB,
                        .idx = i < np ? i : i - np,
                        .tok = &R.tok, .open_gate = &R.open_gate, .go_gate = &R.go_gate,
                };
                r = bench_spawn(&ps, cfg->com.cpus[i < np ? 0 : 1], perf_peer_main, &R.peers[i]);
                if (r < 0) {
                        cli_err(cmd, "cannot fork a peer: %s", strerror(-r));
                        return r;
                }
        }
        bench_fd_close(&R.tok.wr);
        bench_fd_close(&R.open_gate.rd);
        bench_fd_close(&R.go_gate.rd);
        if (xp->ops->detach)
                xp->ops->detach(xp->st);

        /* Producers first (they create the topic with its geometry), then
         * subscribers, then everyone at once. */
        if ((r = bench_wait_tokens(&ps, R.tok.rd, np, BENCH_PEER_TIMEOUT_MS)) < 0) {
                bench_peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        bench_fd_close(&R.open_gate.wr);
        if ((r = bench_wait_tokens(&ps, R.tok.rd, ns, BENCH_PEER_TIMEOUT_MS)) < 0) {
                bench_peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        t_go = now_ns();
        bench_fd_close(&R.go_gate.wr);
        sleep_until(t_go + duration_ns);
        store_rel(&R.ctl->stop, 1); /* pairs with the producers' load of stop */
        if ((r = bench_wait_tokens(&ps, R.tok.rd, n, BENCH_PEER_TIMEOUT_MS)) < 0) {
                bench_peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        if ((r = bench_procs_reap(&ps, cmd, BENCH_PEER_TIMEOUT_MS)) < 0)
                return r;

        o.sub_rate_min = INFINITY;
        for (unsigned i = 0; i < n; i++) {
                const struct perf_result *res = &R.ctl->res[i];
                double rate = rate_of(res);
                if (i < np) {
                        o.pub_rate += rate;
                        o.waits += res->waits;
                } else {
                        o.sub_rate_sum += rate;
                        o.sub_rate_min = MIN(o.sub_rate_min, rate);
                        o.lost += res->lost;
                }
        }
        *ret = o;
        return 0;
}

struct memset_arg {
        size_t size;
        uint64_t duration_ns;
        double *ret;
};

static int memset_main(void *arg) {
        struct memset_arg *a = arg;
        uint64_t bytes = 0, t0, t, end;
        uint8_t *buf = aligned_alloc(4096, ALIGN_UP(a->size, (size_t)4096));

        if (!buf)
                return 1;
        memset(buf, 1, a->size); /* fault it in */
        t0 = now_ns();
        end = t0 + a->duration_ns;
        do {
                memset(buf, (int)(bytes & 0x7f), a->size);
                __asm__ __volatile__("" : : "r"(buf) : "memory"); /* keep every memset */
                bytes += a->size;
        } while ((t = now_ns()) < end);
        *a->ret = (double)bytes * 1e9 / (double)(t - t0);
        free(buf);
        return 0;
}

int bench_memset_rate(const char *cmd, int cpu, size_t size, uint64_t duration_ns, double *ret_bps) {
        double *shared = bench_shared_new(sizeof(double));
        struct memset_arg a = {.size = size, .duration_ns = duration_ns, .ret = shared};
        struct bench_procs ps;
        int r;

        bench_procs_init(&ps);
        if (!shared)
                return -ENOMEM;
        r = bench_spawn(&ps, cpu, memset_main, &a);
        if (r >= 0)
                r = bench_procs_reap(&ps, cmd, (int)(duration_ns / 1000000u) + BENCH_PEER_TIMEOUT_MS);
        if (r >= 0)
                *ret_bps = *shared;
        bench_procs_kill(&ps);
        bench_shared_free(shared, sizeof(double));
        return r;
}
