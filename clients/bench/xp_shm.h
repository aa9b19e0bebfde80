/* SPDX-License-Identifier: MIT */
/*
 * xp_shm.h: the shm floor zcbus is measured against, behind the lab's
 * transport interfaces (lat.h, perf.h): raw shared memory, one word each
 * way, zcbus's own wait engine and slot geometry, no bus logic. All
 * mappings are made in the parent before the fork, so both processes
 * share them.
 */
#ifndef ZCBUS_BENCH_XP_SHM_H
#define ZCBUS_BENCH_XP_SHM_H

#include "fanout.h"
#include "lat.h"
#include "perf.h"

/* Sized for cfg->max_size. Returns 0 or a negative errno (nothing
 * reported yet: the caller says which baseline failed). */
int xp_shm_lat_new(const struct lat_cfg *cfg, struct lat_xp *ret);
/* Only one producer: -EOPNOTSUPP for cfg->producers > 1. */
int xp_shm_perf_new(const struct perf_cfg *cfg, struct perf_xp *ret);
/* The fan-out reference: the ring with a plain futex wake-all. */
int xp_shm_fan_new(struct fan_xp *ret);

#endif
