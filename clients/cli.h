/*
 * cli.h: what the subcommands of the zcbus CLI share. main.c parses the
 * global options (-s PATH, --help, --version) and hands each subcommand
 * its own argv (argv[0] is the subcommand name) and the socket path
 * (NULL: $ZCBUS_SOCKET or the default).
 *
 * Every subcommand returns the process exit status: 0 success, 1 runtime
 * error, 2 usage error. Errors are one line on stderr: "zcbus SUB: ...".
 */
#ifndef ZCBUS_CLI_H
#define ZCBUS_CLI_H

#include "zcbus.h"

int cmd_pub(int argc, char **argv, const char *sock);
int cmd_sub(int argc, char **argv, const char *sock);
int cmd_list(int argc, char **argv, const char *sock);
int cmd_lat(int argc, char **argv, const char *sock);
int cmd_perf(int argc, char **argv, const char *sock);

/* Parse helpers: a whole non-negative number within [min, max], with an
 * optional K/M/G (x1024) suffix when allow_suffix. Return 0 or -EINVAL. */
int cli_parse_u64(const char *s, unsigned long long min, unsigned long long max, int allow_suffix,
                  unsigned long long *ret);
/* Report an error: "zcbus <cmd>: <fmt...>" on stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report a getopt_long failure (opterr 0, optstring starting with ':'):
 * opt is ':' (missing argument) or '?' (unknown option); returns 2. */
int cli_bad_option(const char *cmd, char **argv, int opt);
/* Connect to the broker at sock (NULL: the default), or report
 * "cannot connect to broker at 'PATH': ..." for cmd and return the
 * negative errno. */
int cli_connect(const char *cmd, const char *sock, zcbus **ret_bus);
/* Report "zcbus CMD: WHAT: strerror (broker's explanation)", the
 * explanation from bus (may be NULL) if it has one; returns 1. */
int cli_fail(const char *cmd, zcbus *bus, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
