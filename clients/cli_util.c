/* SPDX-License-Identifier: MIT */
/*
 * cli_util.c: what the zcbus CLI and its measurement helper zcbus-bench
 * share besides JSON (cli_util.h): one-line error reports in the CLI's
 * voice and strict number parsing. Both programs say "zcbus lat: ..." the
 * same way because both call these. Plain libc only: the CLI must not
 * see libbus.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

void cli_err(const char *cmd, const char *fmt, ...) {
        va_list ap;
        size_t n = strlen(fmt);

        (void)fflush(stdout);
        (void)fprintf(stderr, "zcbus %s: ", cmd);
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        /* Callers may or may not end fmt with a newline: the report is one
         * line either way. */
        if (n == 0 || fmt[n - 1] != '\n')
                (void)fputc('\n', stderr);
}

int cli_bad_option(const char *cmd, char **argv, int opt) {
        const char *arg = optind > 0 ? argv[optind - 1] : "?";

        if (opt == ':')
                cli_err(cmd, "option '%s' needs an argument (try 'zcbus %s --help')", arg, cmd);
        else if (optopt)
                cli_err(cmd, "unknown option '-%c' (try 'zcbus %s --help')", optopt, cmd);
        else
                cli_err(cmd, "unknown option '%s' (try 'zcbus %s --help')", arg, cmd);
        return 2;
}

int cli_parse_u64(const char *s, unsigned long long min, unsigned long long max, int allow_suffix,
                  unsigned long long *ret) {
        unsigned long long v, mult = 1;
        char *end;

        /* strtoull accepts leading blanks, '+' and '-' (negating!): only a
         * plain run of digits is a number here. */
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        if (*end != '\0') {
                if (!allow_suffix || end[1] != '\0')
                        return -EINVAL;
                switch (*end) {
                case 'k':
                case 'K':
                        mult = 1ULL << 10;
                        break;
                case 'm':
                case 'M':
                        mult = 1ULL << 20;
                        break;
                case 'g':
                case 'G':
                        mult = 1ULL << 30;
                        break;
                default:
                        return -EINVAL;
                }
                if (v > ~0ULL / mult)
                        return -EINVAL;
                v *= mult;
        }
        if (v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_flush_stdout(const char *cmd) {
        if (fflush(stdout) == EOF || ferror(stdout)) {
                if (errno == EPIPE)
                        return 0;
                cli_err(cmd, "cannot write to standard output: %s", strerror(errno));
                return 1;
        }
        return 0;
}
