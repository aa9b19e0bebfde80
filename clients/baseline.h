/*
 * baseline.h: the references zcbus is measured against, behind the same
 * transport interfaces as zcbus itself (bench.h):
 *
 *  uds   a Unix socket pair, SOCK_SEQPACKET: each message is copied into
 *        the kernel and out again; the kernel does the waiting.
 *  pipe  a pipe each way: the same copies through a byte stream.
 *  shm   raw shared memory (a memfd mapped by both processes) with one
 *        atomic 32-bit word each way and no bus logic at all: the floor of
 *        this machine for handing a message to another core. It waits as
 *        --wait says: spin (spin on the word), futex (sleep on it at once),
 *        adaptive (spin for the budget, then sleep, with a waiter count so
 *        that the waker makes a system call only when someone sleeps).
 *
 * All fds and mappings are made in the parent before the fork, so both
 * processes share them; attach() drops the other side's ends.
 */
#ifndef ZCBUS_BASELINE_H
#define ZCBUS_BASELINE_H

#include "bench.h"

/* kind: BENCH_XP_SHM, _UDS or _PIPE. Buffers are sized for cfg->max_size.
 * Returns 0 or a negative errno (nothing to report yet: the caller says
 * which baseline failed). */
int baseline_lat_new(unsigned kind, const struct lat_cfg *cfg, struct lat_xp *ret);
/* Only one producer: -EOPNOTSUPP for cfg->producers > 1. */
int baseline_perf_new(unsigned kind, const struct perf_cfg *cfg, struct perf_xp *ret);

#endif
