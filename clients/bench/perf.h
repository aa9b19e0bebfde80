/* SPDX-License-Identifier: MIT */
/*
 * perf.h: the throughput driver: timed one-way runs from producer
 * processes to subscriber processes over any transport behind struct
 * perf_ops (zcbus, the shm floor, uds, pipe), each run with fresh peers;
 * and a memset reference, one core filling a buffer.
 */
#ifndef ZCBUS_BENCH_PERF_H
#define ZCBUS_BENCH_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "opts.h"

#define PERF_PRODUCERS_MAX 64u /* the tag has room for more; the check table does not */

struct perf_cfg {
        struct bench_common com; /* cpus: producers, subscribers */
        unsigned producers, subscribers;
        unsigned batch; /* >= 1 */
        unsigned rounds;
        uint64_t duration_ns; /* per transport and size, split over the rounds;
                                 --fanout: per point */
        const char *sock;
        /* --fanout (nfanout > 0): the subscriber counts of the curve. */
        unsigned fanout[16], nfanout;
        uint32_t rate; /* --rate: messages/s, 0 unpaced, unless rate_auto */
        bool rate_auto;
        bool zero_copy; /* --zero-copy: --batch through loan_batch/commit_batch */
};

/* `zcbus perf --fanout` (cmd_fanout.c): the curve, printed; the exit status. */
int bench_perf_fanout(const char *cmd, const struct perf_cfg *cfg);

/* One process's outcome, in memory shared with the parent. */
struct perf_result {
        uint64_t count;   /* messages published / received */
        uint64_t t_start; /* CLOCK_MONOTONIC ns */
        uint64_t t_end;
        uint64_t lost;  /* subscriber, LATEST */
        uint64_t waits; /* producer, RELIABLE */
        uint64_t sink;  /* folds in the bytes a subscriber touched */
        uint64_t pad[2];
};

/* Shared by the parent and the peers of one timed run. */
struct perf_ctl {
        au32 stop;      /* parent: the time is up */
        au32 prod_done; /* producers that have stopped publishing */
        uint8_t pad[56];
        struct perf_result res[]; /* producers, then subscribers */
};

enum perf_role {
        PERF_PROD = 0,
        PERF_SUB = 1,
};

struct perf_ops { /* the transport's name is bench_xp_name(kind) */
        /* Parent, before forking a run's peers: get ready for one size. */
        int (*prepare)(void *st, size_t size);
        /* Optional: in the peer, after the fork, keep its own ends, open
         * its handle. All producers attach before any subscriber does. */
        int (*attach)(void *st, enum perf_role role, unsigned idx);
        /* Producer idx: publish until ctl->stop. Subscriber idx: receive
         * until every producer is done and nothing is left. Fill r. */
        int (*produce)(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *r);
        int (*consume)(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *r);
        /* Optional: parent, after forking a run's peers: drop the peers'
         * ends (and again when the run is over). */
        void (*detach)(void *st);
        void (*free)(void *st);
        /* Optional: the story behind the last failure ("" if none). */
        const char *(*why)(void *st);
};

struct perf_xp {
        const struct perf_ops *ops;
        void *st;
        unsigned kind;
};

/* One timed run of xp at one size, fresh peers. */
struct perf_outcome {
        double pub_rate;     /* messages/s published, summed over producers */
        double sub_rate_sum; /* messages/s received, summed over subscribers */
        double sub_rate_min; /* slowest subscriber */
        uint64_t lost, waits;
};
int bench_perf_run(const char *cmd, const struct perf_cfg *cfg, struct perf_xp *xp, size_t size,
                   uint64_t duration_ns, struct perf_outcome *ret);
/* memset bandwidth (bytes/s) of a size-byte buffer on cpu, in a peer. */
int bench_memset_rate(const char *cmd, int cpu, size_t size, uint64_t duration_ns, double *ret_bps);

/* The payload's first 8 bytes: producer index and its own counter. */
#define PERF_TAG_SHIFT 48
#define PERF_CTR_MASK ((UINT64_C(1) << PERF_TAG_SHIFT) - 1)
static inline uint64_t perf_tag(unsigned producer, uint64_t ctr) {
        return ((uint64_t)producer << PERF_TAG_SHIFT) | (ctr & PERF_CTR_MASK);
}

#endif
