/* SPDX-License-Identifier: MIT */
/*
 * plot.h: drawing latency by percentile with gnuplot, for `zcbus lat
 * --plot FILE.png`.
 */
#ifndef ZCBUS_BENCH_PLOT_H
#define ZCBUS_BENCH_PLOT_H

#include <stdbool.h>

#include "hist.h"

/* Is an executable gnuplot on $PATH? */
bool bench_have_gnuplot(void);

struct bench_series {
        const char *title;
        const struct hist *h;
};
/* Draw latency by percentile (x: 1/(1-p), log) for each series into png,
 * running gnuplot as a child. Returns 0 or a negative errno (reported). */
int bench_plot(const char *cmd, const char *png, const char *title, const struct bench_series *s, unsigned n);

#endif
