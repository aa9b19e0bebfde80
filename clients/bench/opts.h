/* SPDX-License-Identifier: MIT */
/*
 * opts.h: what `zcbus lat` and `zcbus perf` share before anything runs:
 * the benchmark settings both take (with the same option names, texts and
 * defaults), the parsers and formatters behind them, the transport kinds
 * and their names, and the ring geometry both give zcbus topics and the
 * shm floor alike (from libbus's slot layout, so the two cannot drift).
 */
#ifndef ZCBUS_BENCH_OPTS_H
#define ZCBUS_BENCH_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zcbus.h"

#define BENCH_SIZE_MIN 8u                   /* the counter in the first 8 bytes */
#define BENCH_SIZE_MAX (UINT32_C(64) << 20) /* largest message the tools send */
#define BENCH_SIZES_MAX 16u
#define BENCH_SPIN_US_DEFAULT 50u
/* --wait fd (lat only): not a zcbus_wait_mode but how an event loop
 * waits: poll() on zcbus_sub_fd(), then zcbus_sub_recv(..., 0) until
 * -EAGAIN. bench_zcbus_wait() says what the library is given instead. */
#define BENCH_WAIT_FD 4u
#define BENCH_WAITS_MAX 4u /* adaptive, spin, futex, fd */

/* Transports, in the order they are run and printed. */
enum bench_xp_kind {
        BENCH_XP_ZCBUS = 0,
        BENCH_XP_SHM = 1,
        BENCH_XP_UDS = 2,
        BENCH_XP_PIPE = 3,
        BENCH_XP_MAX_ = 4,
};
const char *bench_xp_name(unsigned kind);
/* A transport's failure in words: why(st) if it has a story, else
 * strerror(-r). why may be NULL. */
const char *bench_xp_why(const char *(*why)(void *st), void *st, int r);

/* --- option parsing (0 or -EINVAL; the caller reports) ------------------- */

/* The settings lat and perf both take. Both commands embed it in their
 * cfg as "com". */
struct bench_common {
        size_t sizes[BENCH_SIZES_MAX];
        unsigned nsizes;
        size_t max_size; /* the largest of sizes, set by bench_common_finish() */
        int cpus[2];     /* lat: ping, pong; perf: producers, subscribers; -1: not pinned */
        uint32_t wait;   /* enum zcbus_wait_mode: the first of --wait's list */
        uint32_t spin_us;
        uint32_t policy;    /* enum zcbus_policy: the first of --policy's list */
        /* --wait and --policy as given: a list only where the command
         * says so (wait_list_ok, policy_list_ok, before
         * bench_common_finish()). */
        uint32_t waits[BENCH_WAITS_MAX], policies[2];
        unsigned nwaits, npolicies;
        bool wait_list_ok, policy_list_ok;
        uint32_t slots;     /* 0: chosen per size */
        char prefix[128];   /* "" until --prefix or bench_common_finish() */
        unsigned baselines; /* mask of 1 << BENCH_XP_* */
        bool no_bus, json;
};

/* getopt_long codes of the shared options; a command numbers its own
 * options from BENCH_OPT_END_ on. */
enum {
        BENCH_OPT_SIZE = 0x100,
        BENCH_OPT_WAIT,
        BENCH_OPT_SPIN,
        BENCH_OPT_CPU,
        BENCH_OPT_POLICY,
        BENCH_OPT_SLOTS,
        BENCH_OPT_BASELINE,
        BENCH_OPT_NOBUS,
        BENCH_OPT_PREFIX,
        BENCH_OPT_JSON,
        BENCH_OPT_END_,
};
#define BENCH_COMMON_LONGOPTS                                                   \
        {"size", required_argument, NULL, BENCH_OPT_SIZE},                     \
        {"wait", required_argument, NULL, BENCH_OPT_WAIT},                     \
        {"spin-us", required_argument, NULL, BENCH_OPT_SPIN},                  \
        {"cpu", required_argument, NULL, BENCH_OPT_CPU},                       \
        {"policy", required_argument, NULL, BENCH_OPT_POLICY},                 \
        {"slots", required_argument, NULL, BENCH_OPT_SLOTS},                   \
        {"baseline", required_argument, NULL, BENCH_OPT_BASELINE},             \
        {"no-bus", no_argument, NULL, BENCH_OPT_NOBUS},                        \
        {"prefix", required_argument, NULL, BENCH_OPT_PREFIX},                 \
        {"json", no_argument, NULL, BENCH_OPT_JSON}

/* The defaults: 64-byte messages, adaptive wait, reliable, first two CPUs. */
void bench_common_init(struct bench_common *c);
/* Take getopt_long's opt and optarg if opt is a shared option: 1 if it
 * was, 0 if it is the command's own, -EINVAL after reporting a bad value
 * as "zcbus CMD: invalid ..." or getopt's ':' / '?' (missing argument,
 * unknown option) as cli_bad_option() does; the caller exits 2. */
int bench_common_opt(const char *cmd, char **argv, int opt, const char *arg, struct bench_common *c);
/* getopt_long(argc, argv, shortopts, longopts) with the shared options
 * taken by bench_common_opt(): the next option that is the command's own,
 * -1 at the end, -2 once a bad one (or an operand) was reported (the
 * caller exits 2), -3 once -h/--help printed usage() (the caller exits 0).
 * bench_getopt_status() turns -2 and -3 into those exit statuses. */
struct option;
int bench_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
                 void (*usage)(FILE *f), struct bench_common *c);
static inline int bench_getopt_status(int opt) {
        return opt == -3 ? 0 : 2;
}
/* After getopt: 2 after reporting "unexpected argument" if any operand
 * is left, else 0. */
int bench_no_operands(const char *cmd, int argc, char **argv);
/* After parsing: --no-bus needs --baseline, --wait or --policy take a
 * list only when wait_list_ok or policy_list_ok, and --wait fd only for
 * lat (-EINVAL, reported); set
 * max_size and, without --prefix, the prefix "zcbus.CMD.PID" (or
 * "zcbus.CMD" when shared, for peers started by hand). */
int bench_common_finish(const char *cmd, struct bench_common *c, bool shared);
/* "zcbus CMD: invalid OPT 'ARG': WANT"; returns 2. */
int bench_bad_value(const char *cmd, const char *opt, const char *arg, const char *want);

/* "uds,pipe,shm" (any order, no repeats), "all" or "none": a bit mask of
 * 1 << BENCH_XP_*. */
int bench_parse_baselines(const char *s, unsigned *ret_mask);
/* "64,4K,1M": sizes within [BENCH_SIZE_MIN, BENCH_SIZE_MAX], no repeats. */
int bench_parse_sizes(const char *s, size_t *sizes, unsigned max, unsigned *ret_n);
int bench_parse_wait(const char *s, uint32_t *ret_mode);
/* "futex,adaptive,spin": distinct modes, in the order given. */
int bench_parse_waits(const char *s, uint32_t ret[BENCH_WAITS_MAX], unsigned *ret_n);
const char *bench_wait_name(uint32_t mode);
/* The zcbus_wait_mode for the library's own waits (a producer's, for
 * room) under mode: FUTEX for BENCH_WAIT_FD, else mode itself. */
static inline uint32_t bench_zcbus_wait(uint32_t mode) {
        return mode == BENCH_WAIT_FD ? ZCBUS_WAIT_FUTEX : mode;
}
int bench_parse_policy(const char *s, uint32_t *ret_policy);
/* "reliable,latest": distinct policies, in the order given. */
int bench_parse_policies(const char *s, uint32_t ret[2], unsigned *ret_n);
/* "A,B" (each a CPU this process may run on) or "none" (-1,-1). */
int bench_parse_cpus(const char *s, int ret[2]);
/* The first two CPUs we may run on, or none with fewer than two. */
void bench_default_cpus(int ret[2]);
/* A decimal number of seconds (e.g. "2", "0.5") within [min, max]. */
int bench_parse_seconds(const char *s, double min, double max, uint64_t *ret_ns);
/* "64", "4K", "1M", "1536" (exact multiples only get a suffix). */
void bench_fmt_size(size_t v, char *buf, size_t len);
/* "1.23M", "456.7K", "89" */
void bench_fmt_rate(double v, char *buf, size_t len);
/* The --size list as given back: "64,4K,1M". */
void bench_fmt_sizes(const struct bench_common *c, char *buf, size_t len);

/* Slot count for messages of size: req if not 0, else the largest power
 * of two in [lo, hi] whose ring of zcbus slots (seg_slot_stride(): a
 * 32-byte descriptor and the payload, rounded to a cache line) stays
 * within ring_bytes (lo if none). */
uint32_t bench_ring_slots(size_t size, uint32_t req, uint64_t ring_bytes, uint32_t lo, uint32_t hi);
/* The geometry lat and perf give zcbus topics and the shm reference alike:
 * lat 16..256 slots within 32 MiB; perf 4..4096 within 4 MiB: a ring that
 * stays close to the core's own caches (for 1 MiB messages, 4 slots moved
 * 50 GB/s on the reference VM where 16 slots moved 34). */
#define bench_lat_slots(size, req) bench_ring_slots((size), (req), UINT64_C(32) << 20, 16, 256)
#define bench_perf_slots(size, req) bench_ring_slots((size), (req), UINT64_C(4) << 20, 4, 4096)

/* The "cpus" member and its comma: "\"cpus\":[A,B]," or "\"cpus\":null,". */
void bench_json_cpus(FILE *f, const struct bench_common *c);

#endif
