/* SPDX-License-Identifier: MIT */
/*
 * xp.h: which transport a kind names. The commands make their transports
 * through here, zcbus first and then each --baseline, so that neither
 * knows the constructors of the others' transports.
 */
#ifndef ZCBUS_BENCH_XP_H
#define ZCBUS_BENCH_XP_H

#include <stddef.h>

#include "opts.h"

/* make(kind, cfg, xp): one transport of kind into *xp (a struct lat_xp or
 * struct perf_xp), for cfg (a struct lat_cfg or struct perf_cfg). */
typedef int (*bench_xp_make_fn)(unsigned kind, const void *cfg, void *xp);
int xp_lat_make(unsigned kind, const void *cfg, void *xp);
int xp_perf_make(unsigned kind, const void *cfg, void *xp);

/* Make the transports com asks for, in order: zcbus first (unless
 * --no-bus: ratios are zcbus/baseline), then each --baseline, into
 * xps[0], xps[1], ... (each xp_size bytes). On failure it is reported for
 * cmd and *ret_n says how many were made (the caller frees them). */
int bench_xps_new(const char *cmd, const struct bench_common *com, bench_xp_make_fn make, const void *cfg, void *xps,
                  size_t xp_size, unsigned *ret_n);

#endif
