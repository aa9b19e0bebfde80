/* SPDX-License-Identifier: MIT */
/*
 * cmd_lat.c: `zcbus lat`, round-trip latency between two processes. It
 * owns the command's options, its output (text, JSON, plot) and the
 * --ping/--pong ends; the options it shares with perf are in opts.c, the
 * schedule and the measuring loop in lat.c (which --ping runs too), the
 * transports in xp_*.c.
 *
 * With a --wait list, zcbus runs once per mode, each on its own topic
 * pair, interleaved with the baselines like any transport; its rows and
 * JSON entries carry the mode.
 *
 * With --pong (and --ping on the other side) the two ends run in separate
 * shells on "<prefix>.ping" / "<prefix>.pong" with one topic pair sized
 * for the largest --size; the ping side probes until the pong answers.
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
#include "futex.h"
#include "json.h"
#include "lat.h"
#include "macro.h"
#include "plot.h"
#include "procs.h"
#include "xp.h"
#include "xp_zcbus.h"
#include "zcbus.h"

#define CMD "lat"
#define PROBE_BASE (UINT64_MAX - (UINT64_C(1) << 20)) /* --ping's hello counters */
#define PROBE_WAIT_MS 100
#define PROBE_TRIES 100

/* ------------------------------------------------------------ options */

struct lat_opts {
        struct lat_cfg cfg; /* cfg.com: the options perf has too */
        bool pong, ping;
        const char *plot;
};

static void usage(FILE *f) {
        (void)fprintf(f,
                "Usage: zcbus lat [OPTIONS]\n"
                "\n"
                "Round-trip latency between this process and a peer it forks (or a\n"
                "'zcbus lat --pong' in another shell), over zcbus and optional baselines.\n"
                "\n"
                "Options:\n"
                "      --size LIST      payload sizes, e.g. 64,4K,1M (default 64; 8..64M)\n"
                "  -n, --count N        measured round trips per size and transport (default 100000)\n"
                "  -d, --duration SECS  measure for SECS per size instead of a count\n"
                "      --warmup N       unrecorded round trips first (default 10000)\n"
                "      --round N        round trips per transport per interleaved round (default 1000)\n"
                "      --round-warmup N unrecorded round trips at the start of each transport's\n"
                "                       turn in a round, with baselines (default 10)\n"
                "      --wait LIST      spin, futex, adaptive (default) or fd (poll() on\n"
                "                       zcbus_sub_fd, as an event loop does); a list such as\n"
                "                       fd,futex,spin measures zcbus once per mode, interleaved\n"
                "                       (shm waits as the first that is not fd, else futex)\n"
                "      --spin-us N      adaptive spin budget in microseconds (default %u)\n"
                "      --cpu A,B|none   pin ping to CPU A and pong to CPU B (default 0,1 with 2+ CPUs)\n"
                "      --policy P       reliable or latest (default reliable)\n"
                "      --slots N        ring slots per topic (power of two; default 16..256 by size)\n"
                "      --timestamp      zcbus producers stamp each message (ZCBUS_PUB_TIMESTAMP)\n"
                "      --baseline LIST  also measure uds,pipe,shm (or all) and print ratios\n"
                "      --no-bus         baselines only, no broker needed (needs --baseline)\n"
                "      --prefix NAME    topic prefix (default zcbus.lat.PID; zcbus.lat with --ping/--pong)\n"
                "      --pong           serve round trips for a 'zcbus lat --ping' elsewhere\n"
                "      --ping           measure against a 'zcbus lat --pong' elsewhere (no fork)\n"
                "      --json           print the results as JSON\n"
                "      --plot FILE.png  draw the latency percentile curves with gnuplot\n"
                "  -h, --help           show this help\n"
                "\n"
                "Percentiles come from a log-linear histogram (relative error <= %.2f%%).\n",
                BENCH_SPIN_US_DEFAULT, 100.0 * hist_rel_error());
}

/* Returns -1 to go on, else the exit status. */
static int parse_opts(int argc, char **argv, struct lat_opts *o) {
        enum {
                OPT_WARMUP = BENCH_OPT_END_, OPT_ROUND, OPT_ROUND_WARMUP, OPT_PONG, OPT_PING, OPT_PLOT,
                OPT_TIMESTAMP,
        };
        static const struct option longopts[] = {
                BENCH_COMMON_LONGOPTS,
                {"count", required_argument, NULL, 'n'},
                {"duration", required_argument, NULL, 'd'},
                {"warmup", required_argument, NULL, OPT_WARMUP},
                {"round", required_argument, NULL, OPT_ROUND},
                {"round-warmup", required_argument, NULL, OPT_ROUND_WARMUP},
                {"pong", no_argument, NULL, OPT_PONG},
                {"ping", no_argument, NULL, OPT_PING},
                {"plot", required_argument, NULL, OPT_PLOT},
                {"timestamp", no_argument, NULL, OPT_TIMESTAMP},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct lat_cfg *c = &o->cfg;
        bool have_n = false, have_d = false;
        unsigned long long v;
        int opt;

        bench_common_init(&c->com);
        c->com.wait_list_ok = true;
        c->count = 100000;
        c->warmup = 10000;
        c->round = 1000;
        c->round_warmup = 10;

        while ((opt = bench_getopt(CMD, argc, argv, ":n:d:h", longopts, usage, &c->com)) >= 0) {
                switch (opt) {
                case 'n':
                        if (cli_parse_u64(optarg, 1, UINT64_C(1) << 40, 1, &v) < 0)
                                return bench_bad_value(CMD, "-n", optarg, "want a count >= 1");
                        c->count = v;
                        have_n = true;
                        break;
                case 'd':
                        if (bench_parse_seconds(optarg, 0.001, 86400, &c->duration_ns) < 0)
                                return bench_bad_value(CMD, "-d", optarg,
                                                       "want seconds in 0.001..86400, e.g. 2 or 0.5");
                        have_d = true;
                        break;
                case OPT_WARMUP:
                        if (cli_parse_u64(optarg, 0, UINT64_C(1) << 40, 1, &v) < 0)
                                return bench_bad_value(CMD, "--warmup", optarg, "want a count >= 0");
                        c->warmup = v;
                        break;
                case OPT_ROUND:
                        if (cli_parse_u64(optarg, 1, UINT64_C(1) << 40, 1, &v) < 0)
                                return bench_bad_value(CMD, "--round", optarg, "want a count >= 1");
                        c->round = v;
                        break;
                case OPT_ROUND_WARMUP:
                        if (cli_parse_u64(optarg, 0, UINT64_C(1) << 40, 1, &v) < 0)
                                return bench_bad_value(CMD, "--round-warmup", optarg, "want a count >= 0");
                        c->round_warmup = v;
                        break;
                case OPT_TIMESTAMP:
                        c->timestamp = true;
                        break;
                case OPT_PONG:
                        o->pong = true;
                        break;
                case OPT_PING:
                        o->ping = true;
                        break;
                case OPT_PLOT:
                        if (!*optarg)
                                return bench_bad_value(CMD, "--plot", optarg, "want a file name");
                        o->plot = optarg;
                        break;
                }
        }
        if (opt < -1)
                return bench_getopt_status(opt);
        if (have_n && have_d) {
                cli_err(CMD, "give either -n or -d, not both");
                return 2;
        }
        if (have_d)
                c->count = 0;
        if (o->pong && o->ping) {
                cli_err(CMD, "--ping and --pong are the two ends: give one");
                return 2;
        }
        if ((o->pong || o->ping) && (o->cfg.com.baselines || o->cfg.com.no_bus)) {
                cli_err(CMD, "--%s measures zcbus only: the baselines need the forked peer", o->pong ? "pong" : "ping");
                return 2;
        }
        if ((o->pong || o->ping) && o->cfg.com.nwaits > 1) {
                cli_err(CMD, "--%s measures one wait mode: give --wait one", o->pong ? "pong" : "ping");
                return 2;
        }
        if (o->pong && (o->cfg.com.json || o->plot)) {
                cli_err(CMD, "--pong only echoes: --json and --plot belong to the measuring side");
                return 2;
        }
        if (bench_common_finish(CMD, &c->com, o->pong || o->ping) < 0)
                return 2;
        c->shm_wait = ZCBUS_WAIT_FUTEX;
        for (unsigned i = 0; i < c->com.nwaits; i++)
                if (c->com.waits[i] != BENCH_WAIT_FD) {
                        c->shm_wait = c->com.waits[i];
                        break;
                }
        return -1;
}

/* ------------------------------------------------------------- output */

/* --wait as given: "fd,futex,spin". */
static void fmt_waits(const struct bench_common *c, char *buf, size_t len) {
        if (len)
                buf[0] = '\0';
        for (unsigned i = 0; i < c->nwaits; i++)
                (void)snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "",
                               bench_wait_name(c->waits[i]));
}

/* The mode xp waits in, or -1 (uds, pipe: the kernel's). */
static int xp_wait(const struct lat_cfg *c, const struct lat_xp *xp) {
        if (xp->kind == BENCH_XP_ZCBUS)
                return (int)((const struct xp_zc_lat *)xp->st)->wait;
        return xp->kind == BENCH_XP_SHM ? (int)c->shm_wait : -1;
}

/* A transport's name in the output: with a --wait list, zcbus's carries
 * its mode ("zcbus/fd"). */
static const char *xp_label(const struct lat_cfg *c, const struct lat_xp *xp, char *buf, size_t len) {
        if (xp->kind != BENCH_XP_ZCBUS || c->com.nwaits < 2)
                return bench_xp_name(xp->kind);
        (void)snprintf(buf, len, "zcbus/%s", bench_wait_name((uint32_t)xp_wait(c, xp)));
        return buf;
}

static void print_header(const struct lat_opts *o, const struct lat_xp *xps, unsigned nxp, int width) {
        const struct lat_cfg *c = &o->cfg;
        char sizes[256], waits[64], shm[32] = "";

        bench_fmt_sizes(&c->com, sizes, sizeof(sizes));
        (void)printf("zcbus lat: %s B, ", sizes);
        if (c->count)
                (void)printf("%" PRIu64 " round trips", c->count);
        else
                (void)printf("%.3g s", (double)c->duration_ns / 1e9);
        fmt_waits(&c->com, waits, sizeof(waits));
        for (unsigned x = 0; x < nxp && c->com.nwaits > 1; x++)
                if (xps[x].kind == BENCH_XP_SHM)
                        (void)snprintf(shm, sizeof(shm), " (shm: %s)", bench_wait_name(c->shm_wait));
        (void)printf(", wait=%s%s, policy=%s%s, ", waits, shm, zcbus_policy_name(c->com.policy),
                     c->timestamp ? ", timestamps" : "");
        if (c->com.cpus[0] >= 0)
                (void)printf("cpus %d,%d", c->com.cpus[0], c->com.cpus[1]);
        else
                (void)printf("cpus not pinned");
        (void)printf(" (histogram rel. error %.1f%%)\n", 100.0 * hist_rel_error());
        (void)printf("%-*s %8s %8s %8s %8s %8s %8s %8s %8s   (ns)\n", width, "transport", "size", "min", "p50", "p90",
                     "p99", "p99.9", "max", "mean");
}

static double ratio(uint64_t a, uint64_t b) {
        return b ? (double)a / (double)b : NAN;
}

/* Two decimals, or two significant digits for small ratios (0.0063). */
static const char *fmt_ratio(double v, char *buf, size_t len) {
        (void)snprintf(buf, len, v >= 0.1 || !(v > 0) ? "%.2f" : "%.2g", v);
        return buf;
}

static void print_text(const struct lat_opts *o, const struct lat_xp *xps, unsigned nxp, struct hist **hists) {
        const struct lat_cfg *c = &o->cfg;
        bool kernel = false;
        int width = 9;
        char label[32];

        for (unsigned x = 0; x < nxp; x++)
                width = MAX(width, (int)strlen(xp_label(c, &xps[x], label, sizeof(label))));
        print_header(o, xps, nxp, width);
        for (unsigned s = 0; s < c->com.nsizes; s++) {
                char size[32];

                bench_fmt_size(c->com.sizes[s], size, sizeof(size));
                for (unsigned x = 0; x < nxp; x++) {
                        struct hist_summary h;
                        hist_summarize(hists[s * nxp + x], &h);
                        if (xps[x].kind == BENCH_XP_UDS || xps[x].kind == BENCH_XP_PIPE)
                                kernel = true;
                        (void)printf("%-*s %8s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                                     " %8" PRIu64 " %8.0f\n",
                                     width, xp_label(c, &xps[x], label, sizeof(label)), size, h.min, h.p50, h.p90,
                                     h.p99, h.p999, h.max, h.mean);
                }
                /* zcbus/baseline for each zcbus row ("(zcbus/fd)/shm"
                 * with a --wait list) and each baseline. */
                for (unsigned z = 0; z < nxp && xps[z].kind == BENCH_XP_ZCBUS; z++) {
                        struct hist_summary zs;
                        hist_summarize(hists[s * nxp + z], &zs);
                        for (unsigned x = z + 1; x < nxp; x++) {
                                struct hist_summary h;
                                char a[16], b[16];
                                if (xps[x].kind == BENCH_XP_ZCBUS)
                                        continue;
                                hist_summarize(hists[s * nxp + x], &h);
                                (void)printf(c->com.nwaits > 1 ? "ratio (%s)/%s %s: p50 %s  p99 %s\n"
                                                               : "ratio %s/%s %s: p50 %s  p99 %s\n",
                                             xp_label(c, &xps[z], label, sizeof(label)), bench_xp_name(xps[x].kind),
                                             size, fmt_ratio(ratio(zs.p50, h.p50), a, sizeof(a)),
                                             fmt_ratio(ratio(zs.p99, h.p99), b, sizeof(b)));
                        }
                }
        }
        if (kernel)
                (void)printf("(uds and pipe copy the payload both ways and wait in the kernel whatever --wait says)\n");
}

static void print_json(const struct lat_opts *o, const struct lat_xp *xps, unsigned nxp, struct hist **hists) {
        const struct lat_cfg *c = &o->cfg;
        bool first = true, list = c->com.nwaits > 1;
        char waits[64];

        /* "wait" as given ("fd,futex,spin" with a list); with a list,
         * zcbus's and shm's results and zcbus's ratios name their mode. */
        fmt_waits(&c->com, waits, sizeof(waits));
        (void)printf("{\"command\":\"lat\",\"wait\":\"%s\",\"policy\":\"%s\",\"spin_us\":%u,\"timestamp\":%s,", waits,
                     zcbus_policy_name(c->com.policy), c->com.spin_us, c->timestamp ? "true" : "false");
        bench_json_cpus(stdout, &c->com);
        if (c->count)
                (void)printf("\"round_trips\":%" PRIu64 ",\"duration_s\":null,", c->count);
        else
                (void)printf("\"round_trips\":null,\"duration_s\":%.3f,", (double)c->duration_ns / 1e9);
        (void)printf("\"warmup\":%" PRIu64 ",\"round\":%" PRIu64 ",\"round_warmup\":%" PRIu64
                     ",\"rel_error\":%.5f,\"prefix\":",
                     c->warmup, c->round, c->round_warmup,
                     hist_rel_error());
        json_str(stdout, c->com.prefix);
        (void)printf(",\"results\":[");
        for (unsigned s = 0; s < c->com.nsizes; s++)
                for (unsigned x = 0; x < nxp; x++) {
                        struct hist_summary h;
                        int w = xp_wait(c, &xps[x]);
                        hist_summarize(hists[s * nxp + x], &h);
                        (void)printf("%s{\"transport\":\"%s\",", first ? "" : ",", bench_xp_name(xps[x].kind));
                        if (list && w >= 0)
                                (void)printf("\"wait\":\"%s\",", bench_wait_name((uint32_t)w));
                        (void)printf("\"size\":%zu,\"count\":%" PRIu64 ",\"min_ns\":%" PRIu64 ",\"p50_ns\":%" PRIu64
                                     ",\"p90_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64
                                     ",\"max_ns\":%" PRIu64 ",\"mean_ns\":%.1f}",
                                     c->com.sizes[s], h.count, h.min, h.p50, h.p90, h.p99, h.p999, h.max, h.mean);
                        first = false;
                }
        (void)printf("],\"ratios\":[");
        first = true;
        for (unsigned s = 0; s < c->com.nsizes; s++)
                for (unsigned z = 0; z < nxp && xps[z].kind == BENCH_XP_ZCBUS; z++) {
                        struct hist_summary zs;
                        hist_summarize(hists[s * nxp + z], &zs);
                        for (unsigned x = z + 1; x < nxp; x++) {
                                struct hist_summary h;
                                if (xps[x].kind == BENCH_XP_ZCBUS)
                                        continue;
                                hist_summarize(hists[s * nxp + x], &h);
                                (void)printf("%s{\"size\":%zu,", first ? "" : ",", c->com.sizes[s]);
                                if (list)
                                        (void)printf("\"wait\":\"%s\",",
                                                     bench_wait_name((uint32_t)xp_wait(c, &xps[z])));
                                (void)printf("\"baseline\":\"%s\",\"p50\":", bench_xp_name(xps[x].kind));
                                json_num(stdout, ratio(zs.p50, h.p50), 'f', 4);
                                (void)printf(",\"p99\":");
                                json_num(stdout, ratio(zs.p99, h.p99), 'f', 4);
                                (void)printf("}");
                                first = false;
                        }
                }
        (void)printf("]}\n");
}

static int plot(const struct lat_opts *o, const struct lat_xp *xps, unsigned nxp, struct hist **hists) {
        const struct lat_cfg *c = &o->cfg;
        unsigned n = c->com.nsizes * nxp;
        _cleanup_free_ struct bench_series *series = calloc(n, sizeof(*series));
        _cleanup_free_ char *titles = calloc(n, 64);
        char title[160], waits[64];

        if (!series || !titles) {
                cli_err(CMD, "out of memory");
                return -ENOMEM;
        }
        for (unsigned s = 0; s < c->com.nsizes; s++)
                for (unsigned x = 0; x < nxp; x++) {
                        char size[24], label[24], *t = titles + 64 * (s * nxp + x);
                        bench_fmt_size(c->com.sizes[s], size, sizeof(size));
                        (void)snprintf(t, 64, "%s %s B", xp_label(c, &xps[x], label, sizeof(label)), size);
                        series[s * nxp + x] = (struct bench_series){.title = t, .h = hists[s * nxp + x]};
                }
        fmt_waits(&c->com, waits, sizeof(waits));
        if (c->com.cpus[0] >= 0)
                (void)snprintf(title, sizeof(title), "zcbus lat: round trip, wait=%s, cpus %d,%d", waits,
                               c->com.cpus[0], c->com.cpus[1]);
        else
                (void)snprintf(title, sizeof(title), "zcbus lat: round trip, wait=%s", waits);
        return bench_plot(CMD, o->plot, title, series, n);
}

/* ---------------------------------------------------- --ping / --pong */

static int ext_pong(const struct lat_opts *o, const struct lat_xp *xp) {
        struct xp_zc_lat *x = xp->st;
        char ping[ZCBUS_TOPIC_MAX + 1], pong[ZCBUS_TOPIC_MAX + 1];
        uint64_t n = 0;
        int r;

        (void)snprintf(ping, sizeof(ping), "%s.ping", o->cfg.com.prefix);
        (void)snprintf(pong, sizeof(pong), "%s.pong", o->cfg.com.prefix);
        if ((r = bench_pin(o->cfg.com.cpus[1])) < 0) {
                cli_err(CMD, "cannot pin to CPU %d: %s", o->cfg.com.cpus[1], strerror(-r));
                return 1;
        }
        if ((r = xp_zc_lat_ext_open(x, pong, ping)) < 0) {
                cli_err(CMD, "%s", x->why);
                return 1;
        }
        (void)printf("zcbus lat: echoing '%s' to '%s' (up to %zu B); start 'zcbus lat --ping' elsewhere\n", ping, pong,
                     o->cfg.com.max_size);
        (void)fflush(stdout);
        x->timeout_ms = -1;
        for (;;) {
                uint64_t ctr;
                r = xp->ops->pong(x, &ctr);
                if (r < 0) {
                        cli_err(CMD, "echoing failed: %s", x->why[0] ? x->why : zcbus_strerror(r));
                        return 1;
                }
                if (ctr == BENCH_MARK_DONE)
                        break;
                n++;
        }
        (void)printf("zcbus lat: done, %" PRIu64 " messages echoed\n", n);
        return 0;
}

/* --ping after the probe: every size through the driver's measuring loop
 * (one transport, no NEXT marks: the pong echoes one topic pair), then
 * DONE to the pong. */
static int ext_measure(const struct lat_cfg *c, const struct lat_xp *xp, struct hist **hists) {
        struct xp_zc_lat *x = xp->st;
        uint64_t ctr = 0;
        unsigned failed;
        int r;

        for (unsigned s = 0; s < c->com.nsizes; s++) {
                x->size = c->com.sizes[s];
                if ((r = lat_measure(c, xp, 1, false, &ctr, &hists[s], &failed)) < 0)
                        return r;
        }
        x->size = BENCH_SIZE_MIN;
        return xp->ops->ping(x, BENCH_MARK_DONE);
}

static int ext_ping(const struct lat_opts *o, const struct lat_xp *xp, struct hist **hists) {
        struct xp_zc_lat *x = xp->st;
        const struct lat_cfg *c = &o->cfg;
        char ping[ZCBUS_TOPIC_MAX + 1], pong[ZCBUS_TOPIC_MAX + 1];
        bool up = false;
        int r;

        (void)snprintf(ping, sizeof(ping), "%s.ping", c->com.prefix);
        (void)snprintf(pong, sizeof(pong), "%s.pong", c->com.prefix);
        if ((r = bench_pin(c->com.cpus[0])) < 0) {
                cli_err(CMD, "cannot pin to CPU %d: %s", c->com.cpus[0], strerror(-r));
                return r;
        }
        if ((r = xp_zc_lat_ext_open(x, ping, pong)) < 0) {
                cli_err(CMD, "%s", x->why);
                return r;
        }
        /* Probe until the pong answers; echoes of earlier probes that were
         * still on their way are skipped (they come back in order). */
        x->size = BENCH_SIZE_MIN;
        x->timeout_ms = PROBE_WAIT_MS;
        for (unsigned k = 0; k < PROBE_TRIES && !up; k++) {
                uint64_t echo;
                size_t len;
                if ((r = xp_zc_lat_send(x, PROBE_BASE + k, BENCH_SIZE_MIN)) < 0)
                        break;
                while ((r = xp_zc_lat_recv(x, &echo, &len)) == 0)
                        if (echo == PROBE_BASE + k) {
                                up = true;
                                break;
                        }
                if (r < 0 && r != -ETIMEDOUT)
                        break;
        }
        if (!up) {
                if (r < 0 && r != -ETIMEDOUT)
                        cli_err(CMD, "probing the pong failed: %s", zcbus_strerror(r));
                else
                        cli_err(CMD, "no answer on '%s' within %d ms: start 'zcbus lat --pong --prefix %s' first", pong,
                                PROBE_TRIES * PROBE_WAIT_MS, c->com.prefix);
                return -ETIMEDOUT;
        }
        x->timeout_ms = -1;
        bench_watchdog_start(CMD);
        r = ext_measure(c, xp, hists);
        bench_watchdog_stop();
        if (r < 0)
                cli_err(CMD, "%zu-byte round trip failed: %s", x->size,
                        r == -EBADMSG ? "the echo carried the wrong counter" : zcbus_strerror(r));
        return r;
}

/* ---------------------------------------------------------------- main */

static void free_xps(struct lat_xp *xps, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (xps[i].ops)
                        xps[i].ops->free(xps[i].st);
}

/* A --wait list: zcbus once more per further mode, right after the first
 * (xps[0], made for waits[0]) and before the baselines, so rounds run
 * zcbus/fd zcbus/futex ... shm uds pipe. */
static int add_waits(const struct lat_cfg *c, struct lat_xp *xps, unsigned *nxp) {
        unsigned extra = c->com.nwaits - 1;

        if (c->com.no_bus || extra == 0)
                return 0;
        memmove(&xps[1 + extra], &xps[1], (*nxp - 1) * sizeof(*xps));
        memset(&xps[1], 0, extra * sizeof(*xps)); /* free_xps skips these until made */
        *nxp += extra;
        for (unsigned i = 1; i <= extra; i++)
                if (xp_zc_lat_new(c, c->com.waits[i], &xps[i]) < 0) {
                        cli_err(CMD, "out of memory");
                        return -ENOMEM;
                }
        return 0;
}

static bool any_spin(const struct bench_common *c) {
        for (unsigned i = 0; i < c->nwaits; i++)
                if (c->waits[i] == ZCBUS_WAIT_SPIN)
                        return true;
        return false;
}

static void free_hists(struct hist **h, unsigned n) {
        if (!h)
                return;
        for (unsigned i = 0; i < n; i++)
                hist_free(h[i]);
        free(h);
}

int bench_cmd_lat(int argc, char **argv, const char *sock) {
        struct lat_opts o = {0};
        struct lat_xp xps[BENCH_XP_MAX_ + BENCH_WAITS_MAX - 1] = {{0}};
        struct hist **hists = NULL;
        unsigned nxp = 0, nh = 0;
        int r, status = 1;

        r = parse_opts(argc, argv, &o);
        if (r >= 0)
                return r;
        o.cfg.sock = sock;
        (void)signal(SIGPIPE, SIG_IGN); /* a dead peer is an EPIPE, not our death */

        if (o.plot && !bench_have_gnuplot()) {
                cli_err(CMD, "--plot needs gnuplot, which is not on $PATH (Debian: apt-get install gnuplot-nox)");
                return 1;
        }
        if (any_spin(&o.cfg.com) && o.cfg.com.cpus[0] >= 0 && o.cfg.com.cpus[0] == o.cfg.com.cpus[1] &&
            !o.pong && !o.ping)
                cli_err(CMD, "warning: --wait spin with both sides on CPU %d: a round trip waits for the "
                             "scheduler to preempt the spinner",
                        o.cfg.com.cpus[0]);
        if (!o.cfg.com.no_bus && bench_broker_check(CMD, sock) < 0)
                return 1;

        /* All transports are made before the fork. */
        if (bench_xps_new(CMD, &o.cfg.com, xp_lat_make, &o.cfg, xps, sizeof(*xps), &nxp) < 0 ||
            add_waits(&o.cfg, xps, &nxp) < 0) {
                free_xps(xps, nxp);
                return 1;
        }
        if (o.pong) {
                status = ext_pong(&o, &xps[0]);
                free_xps(xps, nxp);
                return status;
        }
        nh = o.cfg.com.nsizes * nxp;
        hists = calloc(nh, sizeof(*hists));
        for (unsigned i = 0; hists && i < nh; i++)
                if (!(hists[i] = hist_new())) {
                        free_hists(hists, i);
                        hists = NULL;
                }
        if (!hists) {
                cli_err(CMD, "out of memory");
                free_xps(xps, nxp);
                return 1;
        }

        if (o.ping)
                r = ext_ping(&o, &xps[0], hists);
        else
                r = bench_lat_run(CMD, &o.cfg, xps, nxp, hists);
        if (r >= 0) {
                if (o.cfg.com.json)
                        print_json(&o, xps, nxp, hists);
                else
                        print_text(&o, xps, nxp, hists);
                (void)fflush(stdout);
                status = 0;
                if (o.plot && plot(&o, xps, nxp, hists) < 0)
                        status = 1;
        }
        free_hists(hists, nh);
        free_xps(xps, nxp);
        return status;
}
