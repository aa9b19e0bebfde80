/* SPDX-License-Identifier: MIT */
/*
 * cmd_perf.c: `zcbus perf`, one-way throughput from producer processes to
 * subscriber processes. It owns the command's options, its schedule of
 * rounds, the median and the output (text, JSON); opts.c parses the
 * options it shares with lat, perf.c forks and times the peers of one
 * run, the transports are in xp_*.c.
 *
 * Transports run one after another in rounds (zcbus, shm, uds, pipe, then
 * again), each round with fresh processes; the median round is reported.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli_util.h"
#include "fanout.h"
#include "json.h"
#include "macro.h"
#include "perf.h"
#include "xp.h"
#include "xp_zcbus.h"
#include "zcbus.h"

#define CMD "perf"
#define PRODUCERS_MAX PERF_PRODUCERS_MAX
#define SUBSCRIBERS_MAX 128u
#define BATCH_MAX 1024u
#define ROUNDS_MAX 99u
#define MEMSET_FROM (64u << 10) /* sizes that get a memset reference */
#define MEMSET_NS_MAX (UINT64_C(500) * 1000000u)
#define FAN_DURATION_DEFAULT (UINT64_C(500) * 1000000u)
#define RATE_MAX 100000000u

/* ------------------------------------------------------------ options */

struct perf_opts {
        struct perf_cfg cfg; /* cfg.com: the options lat has too */
};

static void usage(FILE *f) {
        (void)fprintf(f,
                "Usage: zcbus perf [OPTIONS]\n"
                "\n"
                "One-way throughput from producer processes to subscriber processes, over\n"
                "zcbus and optional baselines, in rounds (the median round is reported).\n"
                "\n"
                "Options:\n"
                "  -p, --producers N    producer processes (default 1, at most %u)\n"
                "  -c, --subscribers N  subscriber processes (default 1, at most %u)\n"
                "      --size LIST      message sizes, e.g. 64,4K,1M (default 64; 8..64M)\n"
                "  -d, --duration SECS  measuring time per size and transport (default 2)\n"
                "      --rounds N       split it into N rounds, report the median (default 3)\n"
                "      --batch N        send and receive N messages per call (default 1, at most %u)\n"
                "      --zero-copy      with --batch: loan N slots, write in place, commit them\n"
                "                       together (zcbus_pub_loan_batch), no copy\n"
                "      --fanout LIST    the fan-out curve: 1 producer, N subscribers for each N\n"
                "                       of LIST (e.g. 1,4,16,64,256; at most %u), each --wait\n"
                "                       and --policy of their lists (--wait futex,spin ...):\n"
                "                       producer CPU ns/publish, delivered rates, latency of\n"
                "                       the first and last subscriber; -d per point (0.5)\n"
                "      --rate R|auto    --fanout: at most R msgs/s (0: unpaced; default auto:\n"
                "                       %u/s, lowered to one per N x %u ns for N\n"
                "                       subscribers, so they can sleep between messages)\n"
                "      --policy P       reliable or latest (default reliable; --fanout: a list)\n"
                "      --wait MODE      spin, futex or adaptive (default adaptive; --fanout:\n"
                "                       a list)\n"
                "      --spin-us N      adaptive spin budget in microseconds (default %u)\n"
                "      --cpu A,B|none   pin producers to CPU A, subscribers to CPU B (default 0,1)\n"
                "      --slots N        ring slots (power of two; default by size, ring <= 4 MiB)\n"
                "      --baseline LIST  also measure uds,pipe,shm (or all; needs -p 1; --fanout:\n"
                "                       shm, the raw ring with a plain futex wake-all)\n"
                "      --no-bus         baselines only, no broker needed (needs --baseline)\n"
                "      --prefix NAME    topic prefix (default zcbus.perf.PID)\n"
                "      --json           print the results as JSON\n"
                "  -h, --help           show this help\n",
                PRODUCERS_MAX, SUBSCRIBERS_MAX, BATCH_MAX, FAN_SUBS_MAX, FAN_AUTO_RATE_MAX, FAN_AUTO_SUB_NS,
                BENCH_SPIN_US_DEFAULT);
}

/* "1,4,16": distinct subscriber counts in 1..FAN_SUBS_MAX. */
static int parse_fanout(const char *s, struct perf_cfg *c) {
        unsigned n = 0;
        const char *p = s;

        for (;;) {
                unsigned long long v;
                char tok[16];
                size_t len = strcspn(p, ",");
                if (len == 0 || len >= sizeof(tok) || n == ARRAY_SIZE(c->fanout))
                        return -EINVAL;
                memcpy(tok, p, len);
                tok[len] = '\0';
                if (cli_parse_u64(tok, 1, FAN_SUBS_MAX, 0, &v) < 0)
                        return -EINVAL;
                for (unsigned k = 0; k < n; k++)
                        if (c->fanout[k] == v)
                                return -EINVAL;
                c->fanout[n++] = (unsigned)v;
                if (!p[len])
                        break;
                p += len + 1;
        }
        c->nfanout = n;
        return 0;
}

/* What --fanout does not go with: 2 (reported), or -1 if all is well. */
static int check_fanout(const struct perf_cfg *c, bool set_c, bool set_rounds) {
        const char *bad = c->producers != 1 ? "-p"
                          : set_c           ? "-c (the counts are --fanout's)"
                          : set_rounds      ? "--rounds (one run per point)"
                          : c->batch != 1   ? "--batch"
                          : c->com.nsizes != 1 ? "more than one --size"
                                               : NULL;

        if (bad) {
                cli_err(CMD, "--fanout does not go with %s", bad);
                return 2;
        }
        if (c->com.baselines & ~(1u << BENCH_XP_SHM)) {
                cli_err(CMD, "--fanout has one baseline: shm (the raw ring with a plain futex wake-all)");
                return 2;
        }
        if (c->com.sizes[0] < 16) {
                cli_err(CMD, "--fanout needs --size 16 or more (a counter and a clock)");
                return 2;
        }
        return -1;
}

static int parse_opts(int argc, char **argv, struct perf_opts *o) {
        enum {
                OPT_ROUNDS = BENCH_OPT_END_, OPT_BATCH, OPT_FANOUT, OPT_RATE, OPT_ZERO_COPY,
        };
        static const struct option longopts[] = {
                BENCH_COMMON_LONGOPTS,
                {"producers", required_argument, NULL, 'p'},
                {"subscribers", required_argument, NULL, 'c'},
                {"duration", required_argument, NULL, 'd'},
                {"rounds", required_argument, NULL, OPT_ROUNDS},
                {"batch", required_argument, NULL, OPT_BATCH},
                {"fanout", required_argument, NULL, OPT_FANOUT},
                {"rate", required_argument, NULL, OPT_RATE},
                {"zero-copy", no_argument, NULL, OPT_ZERO_COPY},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct perf_cfg *c = &o->cfg;
        bool set_c = false, set_d = false, set_rounds = false, set_rate = false;
        unsigned long long v;
        int opt;

        bench_common_init(&c->com);
        c->producers = c->subscribers = 1;
        c->batch = 1;
        c->rounds = 3;
        c->duration_ns = UINT64_C(2) * 1000000000u;
        c->rate_auto = true;

        while ((opt = bench_getopt(CMD, argc, argv, ":p:c:d:h", longopts, usage, &c->com)) >= 0) {
                switch (opt) {
                case 'p':
                        if (cli_parse_u64(optarg, 1, PRODUCERS_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "-p", optarg, "want 1..64 producers");
                        c->producers = (unsigned)v;
                        break;
                case 'c':
                        if (cli_parse_u64(optarg, 1, SUBSCRIBERS_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "-c", optarg, "want 1..128 subscribers");
                        c->subscribers = (unsigned)v;
                        set_c = true;
                        break;
                case 'd':
                        if (bench_parse_seconds(optarg, 0.01, 86400, &c->duration_ns) < 0)
                                return bench_bad_value(CMD, "-d", optarg, "want seconds in 0.01..86400, e.g. 2 or 0.5");
                        set_d = true;
                        break;
                case OPT_ROUNDS:
                        if (cli_parse_u64(optarg, 1, ROUNDS_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "--rounds", optarg, "want 1..99");
                        c->rounds = (unsigned)v;
                        set_rounds = true;
                        break;
                case OPT_FANOUT:
                        if (parse_fanout(optarg, c) < 0)
                                return bench_bad_value(CMD, "--fanout", optarg,
                                                       "want a list of distinct subscriber counts in 1..1000, e.g. 1,4,16");
                        break;
                case OPT_RATE:
                        set_rate = true;
                        if (strcmp(optarg, "auto") == 0) {
                                c->rate_auto = true;
                                break;
                        }
                        if (cli_parse_u64(optarg, 0, RATE_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "--rate", optarg, "want messages/s in 0..100000000 or auto");
                        c->rate_auto = false;
                        c->rate = (uint32_t)v;
                        break;
                case OPT_ZERO_COPY:
                        c->zero_copy = true;
                        break;
                case OPT_BATCH:
                        if (cli_parse_u64(optarg, 1, BATCH_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "--batch", optarg, "want 1..1024 messages");
                        c->batch = (unsigned)v;
                        break;
                }
        }
        if (opt < -1)
                return bench_getopt_status(opt);
        if (c->nfanout) {
                int st = check_fanout(c, set_c, set_rounds);
                if (st >= 0)
                        return st;
                if (!set_d)
                        c->duration_ns = FAN_DURATION_DEFAULT;
                c->rounds = 1;
                c->com.wait_list_ok = c->com.policy_list_ok = true;
        } else if (set_rate) {
                cli_err(CMD, "--rate needs --fanout");
                return 2;
        }
        if (c->zero_copy && c->batch < 2) {
                cli_err(CMD, "--zero-copy needs --batch N (N >= 2)");
                return 2;
        }
        if (o->cfg.com.baselines && c->producers != 1) {
                cli_err(CMD, "--baseline needs -p 1 (the references have a single producer)");
                return 2;
        }
        if (bench_common_finish(CMD, &c->com, false) < 0)
                return 2;
        if (c->duration_ns / c->rounds < UINT64_C(10) * 1000000u) {
                cli_err(CMD, "-d is too short for %u rounds (at least 10 ms each)", c->rounds);
                return 2;
        }
        return -1;
}

/* ------------------------------------------------------------- output */

struct perf_cell {
        struct perf_outcome rounds[ROUNDS_MAX];
        unsigned median; /* index of the median round by summed rate */
};

static void pick_median(struct perf_cell *cell, unsigned n) {
        unsigned idx[ROUNDS_MAX];

        for (unsigned i = 0; i < n; i++)
                idx[i] = i;
        for (unsigned i = 1; i < n; i++) /* insertion sort: n <= 99 */
                for (unsigned j = i; j > 0 && cell->rounds[idx[j]].sub_rate_sum < cell->rounds[idx[j - 1]].sub_rate_sum;
                     j--) {
                        unsigned t = idx[j];
                        idx[j] = idx[j - 1];
                        idx[j - 1] = t;
                }
        cell->median = idx[(n - 1) / 2];
}

static double median_of(const double *v, unsigned n) {
        double s[ROUNDS_MAX];

        memcpy(s, v, n * sizeof(*v));
        for (unsigned i = 1; i < n; i++)
                for (unsigned j = i; j > 0 && s[j] < s[j - 1]; j--) {
                        double t = s[j];
                        s[j] = s[j - 1];
                        s[j - 1] = t;
                }
        return n ? s[(n - 1) / 2] : NAN;
}

struct perf_report {
        const struct perf_opts *o;
        const struct perf_xp *xps;
        unsigned nxp;
        struct perf_cell *cells; /* [size][xp] */
        double *memset_bps;      /* [size][round], NAN where not measured */
};

static const struct perf_outcome *med(const struct perf_report *R, unsigned s, unsigned x) {
        const struct perf_cell *cell = &R->cells[s * R->nxp + x];
        return &cell->rounds[cell->median];
}

static void print_text(const struct perf_report *R) {
        const struct perf_cfg *c = &R->o->cfg;
        char sizes[256], one[32];

        bench_fmt_sizes(&c->com, sizes, sizeof(sizes));
        (void)printf("zcbus perf: %s B, %u producer%s -> %u subscriber%s, %u round%s of %.3g s, batch %u%s, "
                     "policy=%s, wait=%s, ",
                     sizes, c->producers, c->producers == 1 ? "" : "s", c->subscribers, c->subscribers == 1 ? "" : "s",
                     c->rounds, c->rounds == 1 ? "" : "s", (double)c->duration_ns / c->rounds / 1e9, c->batch,
                     c->zero_copy ? " (zero-copy)" : "", zcbus_policy_name(c->com.policy), bench_wait_name(c->com.wait));
        if (c->com.cpus[0] >= 0)
                (void)printf("cpus %d,%d (median round)\n", c->com.cpus[0], c->com.cpus[1]);
        else
                (void)printf("cpus not pinned (median round)\n");
        (void)printf("%-9s %8s %12s %12s %12s %8s %10s %10s\n", "transport", "size", "msgs/s/sub", "msgs/s(sum)",
                     "pub msgs/s", "GB/s", "lost", "waits");
        for (unsigned s = 0; s < c->com.nsizes; s++) {
                size_t size = c->com.sizes[s];
                double ms = median_of(&R->memset_bps[s * c->rounds], c->rounds);
                bench_fmt_size(size, one, sizeof(one));
                for (unsigned x = 0; x < R->nxp; x++) {
                        const struct perf_outcome *m = med(R, s, x);
                        char a[32], b[32], p[32];
                        bench_fmt_rate(m->sub_rate_sum / c->subscribers, a, sizeof(a));
                        bench_fmt_rate(m->sub_rate_sum, b, sizeof(b));
                        bench_fmt_rate(m->pub_rate, p, sizeof(p));
                        (void)printf("%-9s %8s %12s %12s %12s %8.2f %10" PRIu64 " %10" PRIu64 "\n",
                                     bench_xp_name(R->xps[x].kind), one, a, b, p, m->pub_rate * (double)size / 1e9,
                                     m->lost, m->waits);
                }
                if (isfinite(ms)) {
                        char where[32] = "unpinned";
                        if (c->com.cpus[0] >= 0)
                                (void)snprintf(where, sizeof(where), "CPU %d", c->com.cpus[0]);
                        (void)printf("%-9s %8s %12s %12s %12s %8.2f   (one core, %s, %s buffer)\n", "memset", one, "",
                                     "", "", ms / 1e9, where, one);
                }
                if (R->xps[0].kind == BENCH_XP_ZCBUS) {
                        double z = med(R, s, 0)->sub_rate_sum;
                        for (unsigned x = 1; x < R->nxp; x++) {
                                double b = med(R, s, x)->sub_rate_sum;
                                (void)printf("ratio zcbus/%s %s: msgs/s %.2f\n", bench_xp_name(R->xps[x].kind), one,
                                             b > 0 ? z / b : NAN);
                        }
                        if (isfinite(ms) && ms > 0)
                                (void)printf("ratio zcbus/memset %s: GB/s %.2f\n", one,
                                             med(R, s, 0)->pub_rate * (double)size / ms);
                }
        }
}

static void print_json(const struct perf_report *R) {
        const struct perf_cfg *c = &R->o->cfg;
        bool first = true;

        (void)printf("{\"command\":\"perf\",\"producers\":%u,\"subscribers\":%u,\"batch\":%u,\"zero_copy\":%s,"
                     "\"policy\":\"%s\","
                     "\"wait\":\"%s\",\"spin_us\":%u,\"duration_s\":%.3f,\"rounds\":%u,",
                     c->producers, c->subscribers, c->batch, c->zero_copy ? "true" : "false",
                     zcbus_policy_name(c->com.policy),
                     bench_wait_name(c->com.wait), c->com.spin_us, (double)c->duration_ns / 1e9, c->rounds);
        bench_json_cpus(stdout, &c->com);
        (void)printf("\"prefix\":");
        json_str(stdout, c->com.prefix);
        (void)printf(",\"results\":[");
        for (unsigned s = 0; s < c->com.nsizes; s++) {
                double ms = median_of(&R->memset_bps[s * c->rounds], c->rounds);
                for (unsigned x = 0; x < R->nxp; x++) {
                        const struct perf_cell *cell = &R->cells[s * R->nxp + x];
                        const struct perf_outcome *m = &cell->rounds[cell->median];
                        (void)printf("%s{\"transport\":\"%s\",\"size\":%zu,\"msgs_per_s_sub\":", first ? "" : ",",
                                     bench_xp_name(R->xps[x].kind), c->com.sizes[s]);
                        json_num(stdout, m->sub_rate_sum / c->subscribers, 'g', 6);
                        (void)printf(",\"msgs_per_s_sum\":");
                        json_num(stdout, m->sub_rate_sum, 'g', 6);
                        (void)printf(",\"msgs_per_s_min_sub\":");
                        json_num(stdout, m->sub_rate_min, 'g', 6);
                        (void)printf(",\"msgs_per_s_pub\":");
                        json_num(stdout, m->pub_rate, 'g', 6);
                        (void)printf(",\"gb_per_s\":");
                        json_num(stdout, m->pub_rate * (double)c->com.sizes[s] / 1e9, 'g', 6);
                        (void)printf(",\"lost\":%" PRIu64 ",\"waits\":%" PRIu64 ",\"rounds_msgs_per_s_sum\":[", m->lost,
                                     m->waits);
                        for (unsigned k = 0; k < c->rounds; k++) {
                                (void)printf("%s", k ? "," : "");
                                json_num(stdout, cell->rounds[k].sub_rate_sum, 'g', 6);
                        }
                        (void)printf("]}");
                        first = false;
                }
                if (isfinite(ms)) {
                        (void)printf(",{\"transport\":\"memset\",\"size\":%zu,\"gb_per_s\":", c->com.sizes[s]);
                        json_num(stdout, ms / 1e9, 'g', 6);
                        (void)printf("}");
                }
        }
        (void)printf("],\"ratios\":[");
        first = true;
        for (unsigned s = 0; s < c->com.nsizes && R->xps[0].kind == BENCH_XP_ZCBUS; s++) {
                double z = med(R, s, 0)->sub_rate_sum;
                double ms = median_of(&R->memset_bps[s * c->rounds], c->rounds);
                for (unsigned x = 1; x < R->nxp; x++) {
                        double b = med(R, s, x)->sub_rate_sum;
                        (void)printf("%s{\"size\":%zu,\"baseline\":\"%s\",\"msgs\":", first ? "" : ",", c->com.sizes[s],
                                     bench_xp_name(R->xps[x].kind));
                        json_num(stdout, b > 0 ? z / b : NAN, 'g', 6);
                        (void)printf("}");
                        first = false;
                }
                if (isfinite(ms) && ms > 0) {
                        (void)printf("%s{\"size\":%zu,\"baseline\":\"memset\",\"gb_per_s\":", first ? "" : ",",
                                     c->com.sizes[s]);
                        json_num(stdout, med(R, s, 0)->pub_rate * (double)c->com.sizes[s] / ms, 'g', 6);
                        (void)printf("}");
                        first = false;
                }
        }
        (void)printf("]}\n");
}

/* ---------------------------------------------------------------- main */

static void free_xps(struct perf_xp *xps, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (xps[i].ops)
                        xps[i].ops->free(xps[i].st);
}

/* Every size: rounds of every transport in turn (plus memset). */
static int measure(struct perf_report *R, struct perf_xp *xps) {
        const struct perf_cfg *c = &R->o->cfg;
        uint64_t per_round = c->duration_ns / c->rounds;
        int r;

        for (unsigned s = 0; s < c->com.nsizes; s++) {
                size_t size = c->com.sizes[s];
                for (unsigned k = 0; k < c->rounds; k++) {
                        for (unsigned x = 0; x < R->nxp; x++) {
                                r = bench_perf_run(CMD, c, &xps[x], size, per_round,
                                                   &R->cells[s * R->nxp + x].rounds[k]);
                                if (r < 0)
                                        return r;
                        }
                        R->memset_bps[s * c->rounds + k] = NAN;
                        if (size >= MEMSET_FROM) {
                                r = bench_memset_rate(CMD, c->com.cpus[0], size, MIN(per_round, MEMSET_NS_MAX),
                                                      &R->memset_bps[s * c->rounds + k]);
                                if (r < 0)
                                        return r;
                        }
                }
                for (unsigned x = 0; x < R->nxp; x++)
                        pick_median(&R->cells[s * R->nxp + x], c->rounds);
        }
        return 0;
}

int bench_cmd_perf(int argc, char **argv, const char *sock) {
        struct perf_opts o = {0};
        struct perf_xp xps[BENCH_XP_MAX_] = {{0}};
        struct perf_report R = {.o = &o, .xps = xps};
        unsigned nxp = 0;
        int r, status = 1;

        r = parse_opts(argc, argv, &o);
        if (r >= 0)
                return r;
        o.cfg.sock = sock;
        (void)signal(SIGPIPE, SIG_IGN); /* a dead peer is an EPIPE, not our death */
        if (!o.cfg.com.no_bus && bench_broker_check(CMD, sock) < 0)
                return 1;
        if (o.cfg.nfanout)
                return bench_perf_fanout(CMD, &o.cfg);

        if (bench_xps_new(CMD, &o.cfg.com, xp_perf_make, &o.cfg, xps, sizeof(*xps), &nxp) < 0) {
                free_xps(xps, nxp);
                return 1;
        }
        R.nxp = nxp;
        R.cells = calloc((size_t)o.cfg.com.nsizes * nxp, sizeof(*R.cells));
        R.memset_bps = calloc((size_t)o.cfg.com.nsizes * o.cfg.rounds, sizeof(*R.memset_bps));
        if (!R.cells || !R.memset_bps)
                cli_err(CMD, "out of memory");
        else if (measure(&R, xps) >= 0) {
                if (o.cfg.com.json)
                        print_json(&R);
                else
                        print_text(&R);
                status = 0;
        }
        free(R.cells);
        free(R.memset_bps);
        free_xps(xps, nxp);
        return status;
}
