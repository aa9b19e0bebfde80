/* SPDX-License-Identifier: MIT */
/*
 * lat.h: the latency driver: ping-pong round trips between this process
 * and a peer, over any transport behind struct lat_ops (zcbus, the shm
 * floor, uds, pipe), and the one measuring loop both the forked peer and
 * `zcbus lat --ping` (a peer started by hand) use.
 *
 * Why one driver and transports behind a small vtable: the comparison is
 * only fair if every transport runs in the same processes, with the same
 * pinning, the same timestamps and the same schedule; the transports
 * differ only in how one message goes one way.
 */
#ifndef ZCBUS_BENCH_LAT_H
#define ZCBUS_BENCH_LAT_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"
#include "opts.h"

#define BENCH_WATCHDOG_S 10u /* a round that makes no progress this long fails */

/* Counter values with a meaning of their own in a round trip. */
#define BENCH_MARK_NEXT (UINT64_MAX - 1) /* pong: echo, then go to the next transport */
#define BENCH_MARK_DONE UINT64_MAX       /* pong: echo, then this size is over */

enum bench_side {
        BENCH_PING = 0, /* this process: measures */
        BENCH_PONG = 1, /* the forked peer: echoes */
};

struct lat_cfg {
        struct bench_common com; /* cpus: ping, pong */
        uint64_t count;          /* measured round trips per transport and size, or */
        uint64_t duration_ns;    /* measuring time per size (count == 0) */
        uint64_t warmup;         /* unrecorded round trips per transport and size */
        uint64_t round;          /* round trips per transport per round */
        uint64_t round_warmup;   /* unrecorded round trips at the start of each
                                    transport's turn in a round (interleaved
                                    runs only: the first ones after another
                                    transport pay for its cold caches) */
        uint32_t shm_wait;       /* the shm baseline's mode: the first of --wait's
                                    list that is not fd, else futex (it has no
                                    descriptor) */
        bool timestamp;          /* zcbus producers stamp their messages */
        const char *sock;
};

/* One transport as the latency driver sees it. All calls return 0 or a
 * negative errno. Round trips wait without a timeout (no clock reads of
 * their own): the driver arms a watchdog (alarm) for every round instead,
 * and the pong peer dies with us. For each size, both sides call
 * begin(step 0), then the driver makes sure the other side got there
 * too, then begin(step 1): zcbus opens its producers in step 0 and its
 * subscribers in step 1. */
struct lat_ops { /* the transport's name is bench_xp_name(kind) */
        /* Optional: in each process right after the fork, keep this side's
         * ends only. */
        void (*attach)(void *st, enum bench_side side);
        int (*begin)(void *st, enum bench_side side, int step, size_t size);
        /* One round trip of ctr: send, wait for the echo, check it. */
        int (*ping)(void *st, uint64_t ctr);
        /* Wait for one message and echo it; its counter in *ret_ctr. */
        int (*pong)(void *st, uint64_t *ret_ctr);
        /* Optional: the size is over. */
        void (*end)(void *st, enum bench_side side);
        void (*free)(void *st);
        /* Optional: the story behind the last failure ("" if none). */
        const char *(*why)(void *st);
};

struct lat_xp {
        const struct lat_ops *ops;
        void *st;
        unsigned kind; /* enum bench_xp_kind */
};

/* The ping side's watchdog: a SIGALRM that reports "no progress" and
 * exits 1 (the peer dies with us). start() installs it, pet() re-arms it
 * for BENCH_WATCHDOG_S (once per round: one system call per round, none
 * per round trip), stop() disarms it. */
void bench_watchdog_start(const char *cmd);
void bench_watchdog_pet(void);
void bench_watchdog_stop(void);

/* One size on the ping side, both sides set up: warm up transport by
 * transport, then interleave rounds of cfg->round round trips over the
 * transports (A B C A B C ...) until cfg->count round trips (or
 * cfg->duration_ns) per transport; hists[x] receive transport x's round-
 * trip times (ns). With marks, a NEXT mark ends each transport's turn
 * (the forked pong echoes every transport in turn). Counters continue
 * from *ctr. On failure, returns the error with the failing transport in
 * *ret_failed; nothing is reported. */
int lat_measure(const struct lat_cfg *cfg, const struct lat_xp *xps, unsigned nxp, bool marks, uint64_t *ctr,
                struct hist **hists, unsigned *ret_failed);

/* Run the whole schedule: fork the pong peer, then for each size both
 * sides' begin() steps, lat_measure(), a DONE mark. hists[size * nxp +
 * xp] receive the round-trip times (ns). On failure the peer is killed
 * and the error has been reported. */
int bench_lat_run(const char *cmd, const struct lat_cfg *cfg, struct lat_xp *xps, unsigned nxp,
                  struct hist **hists);

#endif
