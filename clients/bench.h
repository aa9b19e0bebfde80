/*
 * bench.h: what `zcbus lat` and `zcbus perf` share: option parsing of the
 * benchmark settings, the peer processes (fork, CPU pinning, start-up
 * handshakes over pipes, reaping on every path), the transport interfaces
 * that let one measurement run over zcbus and over each kernel/raw-IPC
 * baseline alike, the two measurement drivers themselves (interleaved
 * ping-pong rounds; timed one-way rounds), and output helpers (JSON
 * strings, the gnuplot percentile plot).
 *
 * Why one driver per measurement and transports behind a small vtable: the
 * comparison is only fair if every transport runs in the same processes,
 * with the same pinning, the same timestamps and the same schedule; the
 * transports differ only in how one message goes one way.
 */
#ifndef ZCBUS_BENCH_H
#define ZCBUS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "atomics.h"
#include "hist.h"

#define BENCH_SIZE_MIN 8u                 /* the counter in the first 8 bytes */
#define BENCH_SIZE_MAX (UINT32_C(64) << 20) /* largest message the tools send */
#define BENCH_SIZES_MAX 16u
#define BENCH_PROCS_MAX 256u
#define BENCH_SPIN_US_DEFAULT 50u
#define BENCH_PEER_TIMEOUT_MS 10000 /* a peer that says nothing this long is broken */
#define BENCH_WATCHDOG_S 10u         /* ping-pong: a round that makes no progress this long fails */

/* Counter values with a meaning of their own in a round trip. */
#define BENCH_MARK_NEXT (UINT64_MAX - 1) /* pong: echo, then go to the next transport */
#define BENCH_MARK_DONE UINT64_MAX       /* pong: echo, then this size is over */

/* Transports, in the order they are run and printed. */
enum bench_xp_kind {
        BENCH_XP_ZCBUS = 0,
        BENCH_XP_SHM = 1,
        BENCH_XP_UDS = 2,
        BENCH_XP_PIPE = 3,
        BENCH_XP_MAX_ = 4,
};
const char *bench_xp_name(unsigned kind);

/* --- option parsing (0 or -EINVAL; the caller reports) ------------------- */

/* The settings lat and perf both take, with the same option names, texts
 * and defaults. Both commands embed it in their cfg as "com". */
struct bench_common {
        size_t sizes[BENCH_SIZES_MAX];
        unsigned nsizes;
        size_t max_size; /* the largest of sizes, set by bench_common_finish() */
        int cpus[2];     /* lat: ping, pong; perf: producers, subscribers; -1: not pinned */
        uint32_t wait;   /* enum zcbus_wait_mode */
        uint32_t spin_us;
        uint32_t policy; /* enum zcbus_policy */
        uint32_t slots;  /* 0: chosen per size */
        char prefix[128]; /* "" until --prefix or bench_common_finish() */
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
 * as "zcbus CMD: invalid ..." (the caller exits 2). */
int bench_common_opt(const char *cmd, int opt, const char *arg, struct bench_common *c);
/* After parsing: --no-bus needs --baseline (-EINVAL, reported); set
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
const char *bench_wait_name(uint32_t mode);
int bench_parse_policy(const char *s, uint32_t *ret_policy);
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

/* Ring geometry: slot payload rounded to a cache line plus a descriptor
 * line, as zcbus lays it out. */
static inline uint64_t bench_slot_stride(size_t size) {
        return 64u + (((uint64_t)size + 63u) & ~(uint64_t)63u);
}
/* Slot count for messages of size: req if not 0, else the largest power
 * of two in [lo, hi] whose ring stays within ring_bytes (lo if none). */
uint32_t bench_ring_slots(size_t size, uint32_t req, uint64_t ring_bytes, uint32_t lo, uint32_t hi);
/* The geometry lat and perf give zcbus topics and the shm reference alike:
 * lat 16..256 slots within 32 MiB; perf 4..4096 within 4 MiB: a ring that
 * stays close to the core's own caches (for 1 MiB messages, 4 slots moved
 * 50 GB/s on the reference VM where 16 slots moved 34). */
#define bench_lat_slots(size, req) bench_ring_slots((size), (req), UINT64_C(32) << 20, 16, 256)
#define bench_perf_slots(size, req) bench_ring_slots((size), (req), UINT64_C(4) << 20, 4, 4096)

/* --- processes ------------------------------------------------------------ */

struct bench_procs {
        unsigned n;
        pid_t pid[BENCH_PROCS_MAX]; /* 0 once reaped */
        int status[BENCH_PROCS_MAX];
};

void bench_procs_init(struct bench_procs *ps);
/* Fork a peer pinned to cpu (-1: not pinned) that runs fn(arg) and exits
 * with its return value. The peer dies with us (PR_SET_PDEATHSIG). */
int bench_spawn(struct bench_procs *ps, int cpu, int (*fn)(void *arg), void *arg);
/* SIGKILL and reap every peer still running. Safe to call twice. */
void bench_procs_kill(struct bench_procs *ps);
/* Reap every peer, waiting at most timeout_ms; then kill the rest.
 * Returns 0 if all exited with status 0, -ECHILD otherwise (after saying
 * which, unless it exited 1: a peer reports its own errors). */
int bench_procs_reap(struct bench_procs *ps, const char *cmd, int timeout_ms);
/* Pin the calling process; cpu < 0 is a no-op. */
int bench_pin(int cpu);

/* A pipe as two named ends. Closing an end twice is harmless. */
struct bench_pipe {
        int rd, wr;
};
int bench_pipe_open(struct bench_pipe *p);
void bench_pipe_close(struct bench_pipe *p);
void bench_fd_close(int *fd);
int bench_put_byte(int fd, char c);
/* Blocking read of one byte; -EPIPE at end of file. */
int bench_get_byte(int fd, char *ret);
/* Read n bytes from fd (peers' "ready"/"done" tokens), failing with
 * -ECHILD when a peer exits early or -ETIMEDOUT after timeout_ms. Any
 * 'E' byte is a peer reporting failure: -ECHILD. */
int bench_wait_tokens(struct bench_procs *ps, int fd, unsigned n, int timeout_ms);
/* Block until the other end is closed (a one-shot broadcast). */
int bench_wait_eof(int fd);

/* Zeroed memory shared with the peers forked after it (MAP_SHARED). */
void *bench_shared_new(size_t len);
void bench_shared_free(void *p, size_t len);

/* The socket path zcbus_connect(sock) would use, for messages. */
void bench_broker_path(const char *sock, char *buf, size_t len);
/* Connect to see that a broker runs; on failure print the standard error
 * for cmd and return a negative errno. */
int bench_broker_check(const char *cmd, const char *sock);

/* --- latency: ping-pong over transports ----------------------------------- */

enum bench_side {
        BENCH_PING = 0, /* this process: measures */
        BENCH_PONG = 1, /* the forked peer: echoes */
};

struct lat_cfg {
        struct bench_common com; /* cpus: ping, pong */
        uint64_t count;       /* measured round trips per transport and size, or */
        uint64_t duration_ns; /* measuring time per size (count == 0) */
        uint64_t warmup;      /* unrecorded round trips per transport and size */
        uint64_t round;       /* round trips per transport per round */
        uint64_t round_warmup; /* unrecorded round trips at the start of each
                                  transport's turn in a round (interleaved
                                  runs only: the first ones after another
                                  transport pay for its cold caches) */
        bool timestamp;       /* zcbus producers stamp their messages */
        const char *sock;
};

/* One transport as the latency driver sees it. All calls return 0 or a
 * negative errno. Round trips wait without a timeout (no clock reads of
 * their own): the driver arms a watchdog (alarm) for every round instead,
 * and the pong peer dies with us. For each size, both sides call begin(step 0), then the
 * driver makes sure the other side got there too, then begin(step 1):
 * zcbus opens its producers in step 0 and its subscribers in step 1. */
struct lat_ops { /* the transport's name is bench_xp_name(kind) */
        /* In each process right after the fork: keep this side's ends only. */
        void (*attach)(void *st, enum bench_side side);
        int (*begin)(void *st, enum bench_side side, int step, size_t size);
        /* One round trip of ctr: send, wait for the echo, check it. */
        int (*ping)(void *st, uint64_t ctr);
        /* Wait for one message and echo it; its counter in *ret_ctr. */
        int (*pong)(void *st, uint64_t *ret_ctr);
        void (*end)(void *st, enum bench_side side);
        void (*free)(void *st);
        /* Optional: the story behind the last failure ("" if none). */
        const char *(*why)(void *st);
};

struct lat_xp {
        const struct lat_ops *ops;
        void *st;
        unsigned kind; /* enum bench_xp_kind */
};

/* The ping side's watchdog: a SIGALRM that reports "no progress" and
 * exits 1 (the peer dies with us). start() installs it, pet() re-arms it
 * for BENCH_WATCHDOG_S (once per round: one system call per round, none
 * per round trip), stop() disarms it. */
void bench_watchdog_start(const char *cmd);
void bench_watchdog_pet(void);
void bench_watchdog_stop(void);

/* Run the whole schedule: fork the pong peer, then for each size, for each
 * transport, warm up, then interleave rounds of cfg->round round trips
 * over the transports (A B C A B C ...) until cfg->count round trips (or
 * cfg->duration_ns) per transport. hists[size * nxp + xp] receive the
 * round-trip times (ns). On failure the peer is killed and the error has
 * been reported. */
int bench_lat_run(const char *cmd, const struct lat_cfg *cfg, struct lat_xp *xps, unsigned nxp,
                  struct hist **hists);

/* --- throughput: producers -> subscribers ---------------------------------- */

struct perf_cfg {
        struct bench_common com; /* cpus: producers, subscribers */
        unsigned producers, subscribers;
        unsigned batch; /* >= 1 */
        unsigned rounds;
        uint64_t duration_ns; /* per transport and size, split over the rounds */
        const char *sock;
};

/* One process's outcome, in memory shared with the parent. */
struct perf_result {
        uint64_t count;   /* messages published / received */
        uint64_t t_start; /* CLOCK_MONOTONIC ns */
        uint64_t t_end;
        uint64_t lost;  /* subscriber, LATEST */
        uint64_t waits; /* producer, RELIABLE */
        uint64_t sink;  /* folds in the bytes a subscriber touched */
        uint64_t pad[2];
};

/* Shared by the parent and the peers of one timed run. */
struct perf_ctl {
        au32 stop;      /* parent: the time is up */
        au32 prod_done; /* producers that have stopped publishing */
        uint8_t pad[56];
        struct perf_result res[]; /* producers, then subscribers */
};

enum perf_role {
        PERF_PROD = 0,
        PERF_SUB = 1,
};

struct perf_ops { /* the transport's name is bench_xp_name(kind) */
        /* Parent, before forking a run's peers: get ready for one size. */
        int (*prepare)(void *st, size_t size);
        /* In the peer, after the fork: keep its own ends, open its handle.
         * All producers attach before any subscriber does. */
        int (*attach)(void *st, enum perf_role role, unsigned idx);
        /* Publish until ctl->stop, or receive until every producer is done
         * and nothing is left. Fill r. */
        int (*run)(void *st, enum perf_role role, unsigned idx, struct perf_ctl *ctl, struct perf_result *r);
        /* Parent, after forking a run's peers: drop the peers' ends. */
        void (*detach)(void *st);
        void (*free)(void *st);
        /* Optional: the story behind the last failure ("" if none). */
        const char *(*why)(void *st);
};

struct perf_xp {
        const struct perf_ops *ops;
        void *st;
        unsigned kind;
};

/* One timed run of xp at one size, fresh peers. */
struct perf_outcome {
        double pub_rate;     /* messages/s published, summed over producers */
        double sub_rate_sum; /* messages/s received, summed over subscribers */
        double sub_rate_min; /* slowest subscriber */
        uint64_t lost, waits;
};
int bench_perf_run(const char *cmd, const struct perf_cfg *cfg, struct perf_xp *xp, size_t size,
                   uint64_t duration_ns, struct perf_outcome *ret);
/* memset bandwidth (bytes/s) of a size-byte buffer on cpu, in a peer. */
int bench_memset_rate(const char *cmd, int cpu, size_t size, uint64_t duration_ns, double *ret_bps);

/* The payload's first 8 bytes: producer index and its own counter. */
#define PERF_TAG_SHIFT 48
#define PERF_CTR_MASK ((UINT64_C(1) << PERF_TAG_SHIFT) - 1)
static inline uint64_t perf_tag(unsigned producer, uint64_t ctr) {
        return ((uint64_t)producer << PERF_TAG_SHIFT) | (ctr & PERF_CTR_MASK);
}

/* --- output ------------------------------------------------------------- */

/* The "cpus" member and its comma: "\"cpus\":[A,B]," or "\"cpus\":null,". */
void bench_json_cpus(FILE *f, const struct bench_common *c);
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
