/* SPDX-License-Identifier: MIT */
/*
 * lat.c: the latency driver (lat.h). It owns the ping side's schedule and
 * watchdog, the forked pong peer's mirror of it, and the measuring loop
 * lat_measure(), which `zcbus lat --ping` runs as well, against a pong
 * started by hand.
 *
 * The schedule: for each size, both sides open their producers (begin
 * step 0), a token says the peer got there, both open their subscribers
 * (step 1), a token again; then the ping side measures and the pong
 * echoes, moving to the next transport at each NEXT mark, to the next
 * size at DONE.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "futex.h"
#include "lat.h"
#include "macro.h"
#include "procs.h"

/* ------------------------------------------------------------ watchdog */

static char watchdog_msg[128];
static size_t watchdog_len;

static void watchdog_fire(int sig) {
        /* async-signal-safe: write(2) and _exit(2) only */
        ssize_t r = write(STDERR_FILENO, watchdog_msg, watchdog_len);
        (void)r;
        _exit(1);
}

void bench_watchdog_start(const char *cmd) {
        struct sigaction sa = {.sa_handler = watchdog_fire};
        int n = snprintf(watchdog_msg, sizeof(watchdog_msg),
                         "zcbus %s: no round trip completed for %u s (is the peer alive?)\n", cmd, BENCH_WATCHDOG_S);

        watchdog_len = n < 0 ? 0 : MIN((size_t)n, sizeof(watchdog_msg) - 1);
        (void)sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGALRM, &sa, NULL);
        bench_watchdog_pet();
}

void bench_watchdog_pet(void) {
        (void)alarm(BENCH_WATCHDOG_S);
}

void bench_watchdog_stop(void) {
        (void)alarm(0);
        (void)signal(SIGALRM, SIG_DFL);
}

/* -------------------------------------------------------------- driver */

struct lat_run {
        const char *cmd;
        const struct lat_cfg *cfg;
        struct lat_xp *xps;
        unsigned nxp;
        struct bench_pipe up;   /* pong -> ping tokens */
        struct bench_pipe down; /* ping -> pong tokens */
};

static int lat_begin(const struct lat_run *L, enum bench_side side, int step, size_t size) {
        for (unsigned i = 0; i < L->nxp; i++) {
                int r = L->xps[i].ops->begin(L->xps[i].st, side, step, size);
                if (r < 0) {
                        cli_err(L->cmd, "%s%s: cannot set up %zu-byte round trips: %s",
                                side == BENCH_PONG ? "peer: " : "", bench_xp_name(L->xps[i].kind), size,
                                bench_xp_why(L->xps[i].ops->why, L->xps[i].st, r));
                        return r;
                }
        }
        return 0;
}

static void lat_end(const struct lat_run *L, enum bench_side side) {
        for (unsigned i = 0; i < L->nxp; i++)
                if (L->xps[i].ops->end)
                        L->xps[i].ops->end(L->xps[i].st, side);
}

static void lat_run_close(struct lat_run *L) {
        bench_pipe_close(&L->up);
        bench_pipe_close(&L->down);
}

static void lat_report(const struct lat_run *L, unsigned x, size_t size, int r) {
        if (r == -EBADMSG)
                cli_err(L->cmd, "%s: a %zu-byte round trip came back with the wrong counter",
                        bench_xp_name(L->xps[x].kind), size);
        else
                cli_err(L->cmd, "%s: %zu-byte round trip failed: %s", bench_xp_name(L->xps[x].kind), size,
                        bench_xp_why(L->xps[x].ops->why, L->xps[x].st, r));
}

/* The pong peer's schedule: mirror the ping side, echoing; a NEXT mark
 * moves on to the next transport, DONE ends the size. */
static int lat_pong_sizes(struct lat_run *L) {
        int r;

        for (unsigned s = 0; s < L->cfg->com.nsizes; s++) {
                size_t size = L->cfg->com.sizes[s];
                unsigned cur = 0;
                char c;

                if ((r = lat_begin(L, BENCH_PONG, 0, size)) < 0 || (r = bench_put_byte(L->up.wr, 'R')) < 0)
                        return r;
                if ((r = bench_get_byte(L->down.rd, &c)) < 0) /* the ping side gave up */
                        return r;
                if ((r = lat_begin(L, BENCH_PONG, 1, size)) < 0 || (r = bench_put_byte(L->up.wr, 'R')) < 0)
                        return r;
                for (;;) {
                        uint64_t ctr;
                        r = L->xps[cur].ops->pong(L->xps[cur].st, &ctr);
                        if (r < 0) {
                                cli_err(L->cmd, "peer: %s: echoing %zu-byte messages failed: %s",
                                        bench_xp_name(L->xps[cur].kind), size,
                                        bench_xp_why(L->xps[cur].ops->why, L->xps[cur].st, r));
                                return r;
                        }
                        if (ctr == BENCH_MARK_NEXT)
                                cur = (cur + 1) % L->nxp;
                        else if (ctr == BENCH_MARK_DONE)
                                break;
                }
                lat_end(L, BENCH_PONG);
        }
        return 0;
}

static int lat_pong_main(void *arg) {
        struct lat_run *L = arg;
        int r;

        bench_fd_close(&L->up.rd);
        bench_fd_close(&L->down.wr);
        for (unsigned i = 0; i < L->nxp; i++)
                if (L->xps[i].ops->attach)
                        L->xps[i].ops->attach(L->xps[i].st, BENCH_PONG);
        r = lat_pong_sizes(L);
        if (r < 0)
                (void)bench_put_byte(L->up.wr, 'E');
        return r < 0;
}

/* n unrecorded round trips of xp, petting the watchdog every pet_every
 * (0: never). */
static int lat_unrecorded(const struct lat_xp *xp, uint64_t n, uint64_t pet_every, uint64_t *ctr) {
        for (uint64_t k = 0; k < n; k++) {
                int r;
                if (pet_every && k % pet_every == 0)
                        bench_watchdog_pet();
                if ((r = xp->ops->ping(xp->st, (*ctr)++)) < 0)
                        return r;
        }
        return 0;
}

/* The hot loop: n round trips of xp into h, one clock read per round trip
 * (the end of one is the start of the next), no allocation, no system
 * call of its own. */
static int lat_recorded(const struct lat_xp *xp, uint64_t n, struct hist *h, uint64_t *ctr) {
        const struct lat_ops *ops = xp->ops;
        void *st = xp->st;
        uint64_t c = *ctr, t0 = now_ns();
        int r = 0;

        for (uint64_t k = 0; k < n; k++) {
                uint64_t t1;
                r = ops->ping(st, c++);
                if (_unlikely_(r < 0))
                        break;
                t1 = now_ns();
                hist_record(h, t1 - t0);
                t0 = t1;
        }
        *ctr = c;
        return r;
}

int lat_measure(const struct lat_cfg *cfg, const struct lat_xp *xps, unsigned nxp, bool marks, uint64_t *ctr,
                struct hist **hists, unsigned *ret_failed) {
        uint64_t done = 0, start;
        int r;

        /* Warm-up, transport by transport: caches, pages, branch history. */
        for (unsigned x = 0; x < nxp; x++) {
                *ret_failed = x;
                r = lat_unrecorded(&xps[x], cfg->warmup, cfg->round, ctr);
                if (r >= 0 && marks)
                        r = xps[x].ops->ping(xps[x].st, BENCH_MARK_NEXT);
                if (r < 0)
                        return r;
        }

        /* Interleaved rounds: A B C A B C ... so that whatever the machine
         * does meanwhile hits every transport alike. */
        start = now_ns();
        for (;;) {
                uint64_t n = cfg->round;
                if (cfg->count)
                        n = MIN(n, cfg->count - done);
                for (unsigned x = 0; x < nxp; x++) {
                        *ret_failed = x;
                        bench_watchdog_pet();
                        if (nxp > 1 && (r = lat_unrecorded(&xps[x], cfg->round_warmup, 0, ctr)) < 0)
                                return r;
                        if ((r = lat_recorded(&xps[x], n, hists[x], ctr)) < 0)
                                return r;
                        if (marks && (r = xps[x].ops->ping(xps[x].st, BENCH_MARK_NEXT)) < 0)
                                return r;
                }
                done += n;
                if (cfg->count ? done >= cfg->count : now_ns() - start >= cfg->duration_ns)
                        break;
        }
        return 0;
}

/* One size on the ping side of the forked run, then DONE to the pong. */
static int lat_ping_size(const struct lat_run *L, unsigned s, struct hist **hists) {
        size_t size = L->cfg->com.sizes[s];
        uint64_t ctr = 0;
        unsigned x = 0;
        int r;

        r = lat_measure(L->cfg, L->xps, L->nxp, true, &ctr, hists + (size_t)s * L->nxp, &x);
        if (r >= 0) {
                x = 0;
                r = L->xps[0].ops->ping(L->xps[0].st, BENCH_MARK_DONE);
        }
        if (r < 0)
                lat_report(L, x, size, r);
        return r;
}

int bench_lat_run(const char *cmd, const struct lat_cfg *cfg, struct lat_xp *xps, unsigned nxp,
                  struct hist **hists) {
        _cleanup_(lat_run_close) struct lat_run L = {
                .cmd = cmd, .cfg = cfg, .xps = xps, .nxp = nxp,
                .up = {-1, -1}, .down = {-1, -1},
        };
        _cleanup_(bench_procs_kill) struct bench_procs ps = {0};
        int r;

        if (nxp == 0)
                return -EINVAL;
        r = bench_pin(cfg->com.cpus[0]);
        if (r < 0) {
                cli_err(cmd, "cannot pin to CPU %d: %s", cfg->com.cpus[0], strerror(-r));
                return r;
        }
        if ((r = bench_pipe_open(&L.up)) < 0 || (r = bench_pipe_open(&L.down)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        r = bench_spawn(&ps, cfg->com.cpus[1], lat_pong_main, &L);
        if (r < 0) {
                cli_err(cmd, "cannot fork the peer: %s", strerror(-r));
                return r;
        }
        bench_fd_close(&L.up.wr);
        bench_fd_close(&L.down.rd);
        for (unsigned i = 0; i < nxp; i++)
                if (xps[i].ops->attach)
                        xps[i].ops->attach(xps[i].st, BENCH_PING);

        for (unsigned s = 0; s < cfg->com.nsizes; s++) {
                size_t size = cfg->com.sizes[s];

                /* Step 0 (producers) on both sides, then step 1
                 * (subscribers): each side subscribes to a topic its peer
                 * has already created with the right geometry. */
                if ((r = lat_begin(&L, BENCH_PING, 0, size)) < 0)
                        return r;
                if ((r = bench_wait_tokens(&ps, L.up.rd, 1, BENCH_PEER_TIMEOUT_MS)) < 0) {
                        bench_peer_lost(cmd, "ping-pong", &ps, r);
                        return r;
                }
                if ((r = lat_begin(&L, BENCH_PING, 1, size)) < 0)
                        return r;
                if ((r = bench_put_byte(L.down.wr, 'G')) < 0 ||
                    (r = bench_wait_tokens(&ps, L.up.rd, 1, BENCH_PEER_TIMEOUT_MS)) < 0) {
                        bench_peer_lost(cmd, "ping-pong", &ps, r);
                        return r;
                }
                bench_watchdog_start(cmd);
                r = lat_ping_size(&L, s, hists);
                bench_watchdog_stop();
                if (r < 0)
                        return r;
                lat_end(&L, BENCH_PING);
        }
        bench_pipe_close(&L.down);
        return bench_procs_reap(&ps, cmd, BENCH_PEER_TIMEOUT_MS);
}
