/* SPDX-License-Identifier: MIT */
/*
 * cli_util.h: the helpers the zcbus CLI and zcbus-bench (the measurement
 * lab it runs for `zcbus lat` and `zcbus perf`) both need: error reports
 * and number parsing with the same texts. Nothing here depends on the bus.
 *
 * Every command returns the process exit status: 0 success, 1 runtime
 * error, 2 usage error. Errors are one line on stderr: "zcbus SUB: ...".
 */
#ifndef ZCBUS_CLI_UTIL_H
#define ZCBUS_CLI_UTIL_H

/* Parse helpers: a whole non-negative number within [min, max], with an
 * optional K/M/G (x1024) suffix when allow_suffix. Return 0 or -EINVAL. */
int cli_parse_u64(const char *s, unsigned long long min, unsigned long long max, int allow_suffix,
                  unsigned long long *ret);
/* Report an error: "zcbus <cmd>: <fmt...>" on stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report a getopt_long failure (opterr 0, optstring starting with ':'):
 * opt is ':' (missing argument) or '?' (unknown option); returns 2. */
int cli_bad_option(const char *cmd, char **argv, int opt);
/* Flush stdout: 0, or 1 after reporting a write error (a closed pipe is
 * not one: the reader had enough). */
int cli_flush_stdout(const char *cmd);

#endif
