/* SPDX-License-Identifier: MIT */
/*
 * xp_zcbus.h: zcbus itself as a transport of the lab, for the latency
 * driver (lat.h) and the throughput driver (perf.h), and the broker
 * checks both commands make first. The zcbus transport makes exactly the
 * public library calls a zcbus application would: loan, write in place,
 * commit; receive in place, release.
 */
#ifndef ZCBUS_BENCH_XP_ZCBUS_H
#define ZCBUS_BENCH_XP_ZCBUS_H

#include <stddef.h>
#include <stdint.h>

#include "fanout.h"
#include "lat.h"
#include "perf.h"
#include "zcbus.h"

/* The socket path zcbus_connect(sock) would use, for messages. */
void bench_broker_path(const char *sock, char *buf, size_t len);
/* Connect to see that a broker runs; on failure print the standard error
 * for cmd and return a negative errno. */
int bench_broker_check(const char *cmd, const char *sock);

/* The latency transport. Its state is open to `zcbus lat --ping/--pong`
 * (cmd_lat.c), which drive one topic pair by hand. */
struct xp_zc_lat {
        const struct lat_cfg *cfg;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        uint32_t wait;  /* its --wait mode (one of the list's) */
        size_t size;    /* of the next round trip */
        int timeout_ms; /* of a receive; -1: none */
        int fd;         /* --wait fd: zcbus_sub_fd(sub), else -1 */
        char why[320];
};
/* Waiting as wait (a --wait mode) says. */
int xp_zc_lat_new(const struct lat_cfg *cfg, uint32_t wait, struct lat_xp *ret);
/* --ping/--pong: make sure both topics exist with the geometry of the
 * largest --size (whoever comes first creates them), keep a producer on
 * mine, subscribe to theirs. On failure x->why says what failed. */
int xp_zc_lat_ext_open(struct xp_zc_lat *x, const char *mine, const char *theirs);
/* One message of len bytes carrying ctr; receiving one. */
int xp_zc_lat_send(struct xp_zc_lat *x, uint64_t ctr, size_t len);
int xp_zc_lat_recv(struct xp_zc_lat *x, uint64_t *ret_ctr, size_t *ret_len);

/* The throughput transport. */
int xp_zc_perf_new(const struct perf_cfg *cfg, struct perf_xp *ret);

/* The fan-out transport (fanout.h). */
int xp_zc_fan_new(struct fan_xp *ret);

#endif
