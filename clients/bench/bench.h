/* SPDX-License-Identifier: MIT */
/*
 * bench.h: the lab's two commands, as zcbus-bench's main.c runs them.
 * Each takes its own argv (argv[0] is "lat" or "perf") and the broker
 * socket (NULL: $ZCBUS_SOCKET or the default), and returns the exit
 * status: 0 success, 1 runtime error, 2 usage error.
 */
#ifndef ZCBUS_BENCH_H
#define ZCBUS_BENCH_H

int bench_cmd_lat(int argc, char **argv, const char *sock);
int bench_cmd_perf(int argc, char **argv, const char *sock);

#endif
