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

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
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
int cmd_stat(int argc, char **argv, const char *sock);
int cmd_top(int argc, char **argv, const char *sock);
int cmd_topic(int argc, char **argv, const char *sock);
int cmd_peers(int argc, char **argv, const char *sock);
int cmd_record(int argc, char **argv, const char *sock);
int cmd_replay(int argc, char **argv, const char *sock);
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

/* ---- cmd_list.c: what list, stat and top share ----------------------------- */

/* Every topic (fetched in pages), or a negative errno; *ret_v is malloc'd. */
int cli_list_fetch(zcbus *bus, zcbus_topic_entry **ret_v, unsigned *ret_n);
/* Keep (in place, in order) the topics matching one of the glob patterns
 * (all if there are none); returns how many are kept. */
unsigned cli_filter_topics(zcbus_topic_entry *v, unsigned n, char *const *patterns, int npatterns);
/* A name for a table: printable ASCII and UTF-8 as is; control bytes, DEL,
 * C1 controls and bytes outside valid UTF-8 as \xNN; backslash doubled.
 * out holds 4 * strlen(name) + 1. */
void cli_name_text(const char *name, char *out);
/* Display width: UTF-8 continuation bytes take no column. */
size_t cli_text_width(const char *s);

/* ---- cmd_peers.c: what peers and stat share -------------------------------- */

#include <stdbool.h>
/* Every session this uid may see, oldest first, or a negative errno;
 * *ret_v is malloc'd. */
int cli_peers_fetch(zcbus *bus, zcbus_peer **ret_v, unsigned *ret_n);
/* v[n] sorted by session id (malloc'd, NULL without memory), and the
 * session with that id in it, or NULL. */
const zcbus_peer **cli_peers_index(const zcbus_peer *v, unsigned n);
const zcbus_peer *cli_peer_find(const zcbus_peer *const *ix, unsigned n, const uint8_t session_id[16]);
/* A table row (cli_peer_header's columns) and its counters on the next
 * line, indented or not; or one JSON object. */
void cli_peer_header(void);
void cli_peer_print(const zcbus_peer *p, bool indent_counters);
void cli_peer_json(const zcbus_peer *p);

/* ---- cli_common.c: what pub, sub, record and replay share ---------------- */

/* Longest single wait before re-checking for a stop signal. */
#define CLI_WAIT_SLICE_MS 250

/* The topic-shape options, with the same names and values everywhere. */
enum {
        CLI_OPT_SLOT_SIZE = 0x200,
        CLI_OPT_SLOTS,
        CLI_OPT_POLICY,
};
#define CLI_TOPIC_LONGOPTS                                                     \
        { "slot-size", required_argument, NULL, CLI_OPT_SLOT_SIZE },           \
        { "slots", required_argument, NULL, CLI_OPT_SLOTS },                   \
        { "policy", required_argument, NULL, CLI_OPT_POLICY }

/* The stop signal (SIGINT, SIGTERM) that came, or 0; set by cli_on_stop,
 * which cli_catch_stop installs (and SIGPIPE ignored). */
extern volatile sig_atomic_t cli_stop_signal;
void cli_on_stop(int sig);
void cli_catch_stop(void);

/* "zcbus CMD: invalid OPT 'VAL' (expected WANT; try ...)"; returns 2. */
int cli_bad_value(const char *cmd, const char *opt, const char *val, const char *want);
/* A timeout in ms: -1 (forever) or 0..INT_MAX. 0 or -EINVAL. */
int cli_parse_timeout(const char *s, int *ret);
/* A name the broker would take, or a usage error report and -EINVAL. */
int cli_check_topic(const char *cmd, const char *topic);
/* --slot-size, --slots, --policy (o is CLI_OPT_*): 0 or exit status 2. */
int cli_topic_opt(const char *cmd, int o, const char *arg, uint32_t *slot_count, uint32_t *slot_size,
                  uint32_t *policy);
/* --ready-fd: an open descriptor other than 1; 0 or exit status 2. */
int cli_parse_ready_fd(const char *cmd, const char *arg, int *ret_fd);
/* Write "READY\n" to fd and close it (fd < 0: nothing). */
void cli_signal_ready(int fd);
uint64_t cli_mono_ns(void);
/* The next wait slice in ms for a timeout (0: none, -1: forever, else
 * until deadline_ns): at most CLI_WAIT_SLICE_MS, -1 once past it. */
int cli_slice_ms(int timeout_ms, uint64_t deadline_ns);
/* One message as a JSON line (`zcbus sub --json`): topic, seq, len, lost,
 * ts_ns (null if 0), ts_source if not NULL, encoding, payload. */
void cli_json_msg(FILE *f, const char *topic, const zcbus_msg *m, const char *ts_source);

#endif
