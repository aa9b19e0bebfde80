/* SPDX-License-Identifier: MIT */
/*
 * cmd_bench.c: `zcbus lat` and `zcbus perf`. The measurement lab is a
 * program of its own, zcbus-bench (clients/bench/), because it needs
 * libbus's internals (the wait engine and slot layout it compares zcbus
 * against) while the CLI is built on the public library alone. This file
 * owns finding that helper and executing it in place of the CLI, so the
 * user's commands, options, output and exit codes stay what they are.
 *
 * The helper is looked for, in this order:
 *   1. $ZCBUS_BENCH, if set and not empty;
 *   2. zcbus-bench beside the running executable (/proc/self/exe), or in
 *      its parent directory when that is libtool's .libs/ (an uninstalled
 *      build: the real binary is build/.libs/zcbus, the helper build/);
 *   3. the configured $(pkglibexecdir)/zcbus-bench.
 * It runs as `zcbus-bench [-s SOCK] lat|perf ARGS...`: execv keeps our
 * pid (the default topic prefix "zcbus.lat.PID" names it), our stdio and
 * our environment. A missing helper is one error line and exit 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef ZCBUS_PKGLIBEXECDIR
#error "ZCBUS_PKGLIBEXECDIR must name the directory zcbus-bench is installed in"
#endif

#define BENCH_NAME "zcbus-bench"

/* dir + "/" + BENCH_NAME into buf if it is an executable file. */
static bool try_dir(const char *dir, size_t dir_len, char *buf, size_t len) {
        int n = snprintf(buf, len, "%.*s/%s", (int)dir_len, dir, BENCH_NAME);

        return n > 0 && (size_t)n < len && access(buf, X_OK) == 0;
}

/* The helper's path into buf (PATH_MAX bytes), or false. */
static bool find_helper(char *buf, size_t len) {
        const char *env = getenv("ZCBUS_BENCH");
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                (void)snprintf(buf, len, "%s", env);
                return true; /* what the user named, whatever it is: execv says */
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                char *slash;

                exe[n] = '\0';
                slash = strrchr(exe, '/');
                if (slash) {
                        size_t dir_len = (size_t)(slash - exe);

                        if (try_dir(exe, dir_len, buf, len))
                                return true;
                        /* libtool's uninstalled binaries live in DIR/.libs/. */
                        if (dir_len >= 6 && memcmp(slash - 6, "/.libs", 6) == 0 &&
                            try_dir(exe, dir_len - 6, buf, len))
                                return true;
                }
        }
        return try_dir(ZCBUS_PKGLIBEXECDIR, strlen(ZCBUS_PKGLIBEXECDIR), buf, len);
}

int cmd_bench(int argc, char **argv, const char *sock) {
        char path[PATH_MAX];
        char **args;
        int k = 0;

        if (!find_helper(path, sizeof(path))) {
                cli_err(argv[0], "cannot find the measurement helper '%s' (not beside this program nor in '%s'; "
                                 "set $ZCBUS_BENCH)",
                        BENCH_NAME, ZCBUS_PKGLIBEXECDIR);
                return 1;
        }
        /* zcbus-bench [-s SOCK] CMD ARGS... NULL */
        args = calloc((size_t)argc + 4, sizeof(*args));
        if (!args) {
                cli_err(argv[0], "out of memory");
                return 1;
        }
        args[k++] = (char *)BENCH_NAME;
        if (sock) {
                args[k++] = (char *)"-s";
                args[k++] = (char *)sock;
        }
        for (int i = 0; i < argc; i++)
                args[k++] = argv[i];
        args[k] = NULL;
        (void)fflush(NULL);
        (void)execv(path, args);
        cli_err(argv[0], "cannot run the measurement helper '%s': %s", path, strerror(errno));
        free(args);
        return 1;
}
