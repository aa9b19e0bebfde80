/* SPDX-License-Identifier: MIT */
/*
 * main.c: zcbus-bench, the measurement lab behind `zcbus lat` and `zcbus
 * perf`. The zcbus CLI finds this program (clients/cmd_bench.c) and
 * executes it as
 *
 *     zcbus-bench [-s PATH] lat|perf [ARGS...]
 *
 * with the CLI's global -s and the subcommand's own argv, so each command
 * parses, measures, prints and exits exactly as it did inside the CLI. It
 * is a program of its own because it links libbus's internals: the shm
 * floor shares the ring's wait engine and slot layout.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f) {
        (void)fprintf(f, "Usage: zcbus-bench [-s PATH] lat|perf [ARGS...]\n"
                         "\n"
                         "The measurement lab of the zcbus CLI: run it as 'zcbus lat' and 'zcbus perf'\n"
                         "('zcbus lat --help', 'zcbus perf --help').\n");
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"socket", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *sock = NULL, *cmd;
        int o;

        opterr = 0;
        while ((o = getopt_long(argc, argv, "+:s:h", longopts, NULL)) != -1) {
                switch (o) {
                case 's':
                        sock = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        cmd = argv[optind];
        argc -= optind;
        argv += optind;
        optind = 0; /* glibc: a fresh getopt for the command */
        opterr = 1;
        if (strcmp(cmd, "lat") == 0)
                return bench_cmd_lat(argc, argv, sock);
        if (strcmp(cmd, "perf") == 0)
                return bench_cmd_perf(argc, argv, sock);
        usage(stderr);
        return 2;
}
