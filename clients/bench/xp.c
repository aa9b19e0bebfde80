/* SPDX-License-Identifier: MIT */
/*
 * xp.c: the transports by kind (xp.h): the one place that knows every
 * transport's constructor, and the order they are made and run in.
 */
#include <errno.h>
#include <string.h>

#include "cli_util.h"
#include "xp.h"
#include "xp_shm.h"
#include "xp_sock.h"
#include "xp_zcbus.h"

int xp_lat_make(unsigned kind, const void *cfg, void *xp) {
        return kind == BENCH_XP_ZCBUS ? xp_zc_lat_new(cfg, ((const struct lat_cfg *)cfg)->com.wait, xp)
               : kind == BENCH_XP_SHM ? xp_shm_lat_new(cfg, xp)
                                      : xp_sock_lat_new(kind, cfg, xp);
}

int xp_perf_make(unsigned kind, const void *cfg, void *xp) {
        return kind == BENCH_XP_ZCBUS ? xp_zc_perf_new(cfg, xp)
               : kind == BENCH_XP_SHM ? xp_shm_perf_new(cfg, xp)
                                      : xp_sock_perf_new(kind, cfg, xp);
}

int xp_fan_make(unsigned kind, struct fan_xp *ret) {
        return kind == BENCH_XP_ZCBUS ? xp_zc_fan_new(ret) : kind == BENCH_XP_SHM ? xp_shm_fan_new(ret) : -EOPNOTSUPP;
}

int bench_xps_new(const char *cmd, const struct bench_common *com, bench_xp_make_fn make, const void *cfg, void *xps,
                  size_t xp_size, unsigned *ret_n) {
        unsigned want = (com->no_bus ? 0 : 1u << BENCH_XP_ZCBUS) | com->baselines;

        *ret_n = 0;
        for (unsigned k = BENCH_XP_ZCBUS; k < BENCH_XP_MAX_; k++) {
                int r;
                if (!(want & (1u << k)))
                        continue;
                r = make(k, cfg, (char *)xps + *ret_n * xp_size);
                if (r < 0) {
                        if (k == BENCH_XP_ZCBUS)
                                cli_err(cmd, "out of memory");
                        else
                                cli_err(cmd, "cannot set up the %s baseline: %s", bench_xp_name(k), strerror(-r));
                        return r;
                }
                (*ret_n)++;
        }
        return 0;
}
