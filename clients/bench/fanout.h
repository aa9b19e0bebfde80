/* SPDX-License-Identifier: MIT */
/*
 * fanout.h: the fan-out driver behind `zcbus perf --fanout`: one producer
 * process and N subscriber processes on one topic, the producer paced so
 * that subscribers can fall asleep between messages. One run of it is a
 * point of the curve (transport, policy, wait mode, N); it reports the
 * producer's CPU time per publish, the delivered rates, and the
 * publish-to-receive latency of the first and the last subscriber to get
 * each message. Transports plug in behind struct fan_ops (zcbus in
 * xp_zcbus.c, the raw shm reference with a plain futex wake-all in
 * xp_shm.c).
 */
#ifndef ZCBUS_BENCH_FANOUT_H
#define ZCBUS_BENCH_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "perf.h"

#define FAN_SUBS_MAX 1000u /* BENCH_PROCS_MAX less the producer, with room */
#define FAN_COUNTS_MAX 16u
/* --rate auto: 20000 messages/s, lowered so that N subscribers sharing one
 * CPU have FAN_AUTO_SUB_NS of it per delivery (a futex wake-up, a receive,
 * a sleep) and can be asleep again before the next message. */
#define FAN_AUTO_RATE_MAX 20000u
#define FAN_AUTO_SUB_NS 4000u
/* The end marker: the producer's last message, never timed. */
#define FAN_END PERF_CTR_MASK

/* One point of the curve. */
struct fan_point {
        unsigned idx;  /* its number in the run: topics are named by it */
        unsigned subs; /* N */
        uint32_t policy, wait, spin_us;
        size_t size;
        uint32_t slots;
        uint64_t gap_ns; /* least time between two publishes; 0: unpaced */
        uint64_t duration_ns;
        const char *prefix; /* of topic names */
        const char *sock;   /* the broker's, NULL: the default */
};

/* The gap --rate gives at n subscribers (rate 0: unpaced; auto: see
 * FAN_AUTO_*). */
uint64_t bench_fan_gap(uint32_t rate, bool rate_auto, unsigned n);

/* One received message, as a transport hands it over. */
struct fan_rx {
        uint64_t ctr;   /* the producer's counter; FAN_END for the marker */
        uint64_t ts_ns; /* the producer's CLOCK_MONOTONIC at publish */
        uint64_t lost;  /* missed just before it (latest) */
        uint64_t now;   /* CLOCK_MONOTONIC as soon as it was seen */
};

struct fan_ops { /* the transport's name is bench_xp_name(kind) */
        /* Parent, before forking a point's peers. */
        int (*prepare)(void *st, const struct fan_point *p);
        /* Peer, after the fork: open its handle. The producer attaches
         * before any subscriber. */
        int (*attach)(void *st, enum perf_role role, unsigned idx);
        /* Producer: publish one message carrying ctr and its clock. */
        int (*publish)(void *st, uint64_t ctr);
        /* Subscriber idx: the next message (1), none within timeout_ms
         * (0), or a negative errno. */
        int (*receive)(void *st, unsigned idx, int timeout_ms, struct fan_rx *ret);
        /* Peer, at the end: its own counters. */
        void (*pub_counts)(void *st, uint64_t *ret_waits, uint64_t *ret_wakeups);
        void (*sub_counts)(void *st, uint64_t *ret_sleeps);
        /* Optional: parent, after forking and after the run. */
        void (*detach)(void *st);
        void (*free)(void *st);
        /* Optional: the story behind the last failure ("" if none). */
        const char *(*why)(void *st);
};

struct fan_xp {
        const struct fan_ops *ops;
        void *st;
        unsigned kind;
};

/* What one point measured. */
struct fan_outcome {
        uint64_t published;      /* timed messages (the end marker is not) */
        double cpu_ns_per_pub;   /* producer CPU time per publish */
        double cpu_bracket_ns;   /* paced: the clock reads' own cost, taken off */
        double pub_rate;         /* messages/s published */
        double sub_rate_mean;    /* messages/s delivered, per subscriber */
        double sub_rate_min;
        double sub_rate_sum;
        uint64_t delivered;      /* summed over subscribers */
        uint64_t lost, waits, wakeups, sleeps;
        uint64_t samples;        /* messages timed (received by at least one) */
        struct hist_summary first, last; /* publish to receive, ns */
};

/* Run one point of xp with producer on cpus[0], subscribers on cpus[1]. */
int bench_fan_run(const char *cmd, const int cpus[2], struct fan_xp *xp, const struct fan_point *p,
                  struct fan_outcome *ret);

int xp_fan_make(unsigned kind, struct fan_xp *ret);

#endif
