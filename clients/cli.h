/* SPDX-License-Identifier: MIT */
/*
 * cli.h: what the subcommands of the zcbus CLI share. main.c parses the
 * global options (-s PATH, --help, --version) and hands each subcommand
 * its own argv (argv[0] is the subcommand name) and the socket path
 * (NULL: $ZCBUS_SOCKET or the default).
 *
 * The CLI is built on the public API alone (include/zcbus.h, linked
 * against libzcbus.so): libbus's headers are not on its include path, so
 * the few helpers it needs from libbus/macro.h are restated here.
 * `zcbus lat` and `zcbus perf` are run by a separate program,
 * zcbus-bench (clients/bench/), that cmd_bench.c finds and executes.
 */
#ifndef ZCBUS_CLI_H
#define ZCBUS_CLI_H

#include <stdint.h>
#include <stdlib.h>

#include "zcbus.h"
#include "cli_util.h"

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _tp_ = (p);       \
                (p) = NULL;                     \
                _tp_;                           \
        })

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int is_pow2_u32(uint32_t x) {
        return x && !(x & (x - 1));
}

int cmd_pub(int argc, char **argv, const char *sock);
int cmd_sub(int argc, char **argv, const char *sock);
int cmd_list(int argc, char **argv, const char *sock);
/* `zcbus lat` and `zcbus perf` (argv[0] says which): run zcbus-bench. */
int cmd_bench(int argc, char **argv, const char *sock);

/* Connect to the broker at sock (NULL: the default), or report
 * "cannot connect to broker at 'PATH': ..." for cmd and return the
 * negative errno. */
int cli_connect(const char *cmd, const char *sock, zcbus **ret_bus);
/* Report "zcbus CMD: WHAT: strerror (broker's explanation)", the
 * explanation from bus (may be NULL) if it has one; returns 1. */
int cli_fail(const char *cmd, zcbus *bus, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* For _cleanup_: disconnect *p (NULL is fine). */
void cli_disconnectp(zcbus **p);

#endif
