/* SPDX-License-Identifier: MIT */
/*
 * xp_sock.h: the kernel references zcbus is measured against, behind the
 * lab's transport interfaces (lat.h, perf.h):
 *
 *  uds   a Unix socket pair, SOCK_SEQPACKET: each message is copied into
 *        the kernel and out again; the kernel does the waiting.
 *  pipe  a pipe each way: the same copies through a byte stream.
 */
#ifndef ZCBUS_BENCH_XP_SOCK_H
#define ZCBUS_BENCH_XP_SOCK_H

#include "lat.h"
#include "perf.h"

/* kind: BENCH_XP_UDS or BENCH_XP_PIPE. Buffers are sized for
 * cfg->max_size. Returns 0 or a negative errno (nothing reported yet:
 * the caller says which baseline failed). */
int xp_sock_lat_new(unsigned kind, const struct lat_cfg *cfg, struct lat_xp *ret);
/* Only one producer: -EOPNOTSUPP for cfg->producers > 1. */
int xp_sock_perf_new(unsigned kind, const struct perf_cfg *cfg, struct perf_xp *ret);

#endif
