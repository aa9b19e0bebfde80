/*
 * cmd_lat.c: `zcbus lat`, round-trip latency between two processes. It
 * owns the command's options and output and the zcbus transport of the
 * ping-pong; the options it shares with perf (bench_common_opt()), the
 * schedule (fork, handshakes, interleaved rounds, bench_lat_run()) are in
 * bench.c and the references are in baseline.c.
 *
 * The zcbus round trip: the ping side loans a SIZE-byte slot on
 * "<prefix>.<size>.ping", writes only the 8-byte counter there (zero copy:
 * a 1 MiB round trip should cost what a 64-byte one does) and commits;
 * the pong side receives it in place, releases it and answers the same way
 * on "<prefix>.<size>.pong". Each side opens its producer first (creating
 * its topic with the right geometry), then its subscriber.
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

#include "baseline.h"
#include "bench.h"
#include "cli.h"
#include "futex.h"
#include "json.h"
#include "macro.h"
#include "zcbus.h"

#define CMD "lat"
#define PROBE_BASE (UINT64_MAX - (UINT64_C(1) << 20)) /* --ping's hello counters */
#define PROBE_WAIT_MS 100
#define PROBE_TRIES 100

/* ------------------------------------------------------ zcbus transport */

struct lat_zc {
        const struct lat_cfg *cfg;
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        size_t size;
        int timeout_ms;
        char why[320];
};

static const char *zc_why(void *st) {
        return ((struct lat_zc *)st)->why;
}

static int zc_fail(struct lat_zc *x, int r, const char *what, const char *topic) {
        const char *detail = x->bus ? zcbus_last_error(x->bus) : "";

        (void)snprintf(x->why, sizeof(x->why), "%s '%s': %s%s%s%s", what, topic, zcbus_strerror(r),
                       *detail ? " (" : "", detail, *detail ? ")" : "");
        return r;
}

static int zc_connect(struct lat_zc *x) {
        int r;

        if (x->bus)
                return 0;
        r = zcbus_connect(x->cfg->sock, &x->bus);
        if (r < 0) {
                char path[256];
                bench_broker_path(x->cfg->sock, path, sizeof(path));
                (void)snprintf(x->why, sizeof(x->why), "cannot connect to broker at '%s': %s", path,
                               zcbus_strerror(r));
        }
        return r;
}

static int zc_open_pub(struct lat_zc *x, const char *topic, size_t slot_size, zcbus_pub **ret) {
        zcbus_topic_opts o = {
                .size = sizeof(o),
                .slot_count = bench_lat_slots(slot_size, x->cfg->com.slots),
                .slot_size = (uint32_t)slot_size,
                .policy = x->cfg->com.policy,
                .wait_mode = x->cfg->com.wait,
                .spin_us = x->cfg->com.spin_us,
                .flags = x->cfg->timestamp ? ZCBUS_PUB_TIMESTAMP : 0,
        };
        int r = zcbus_pub_open(x->bus, topic, &o, ret);

        return r < 0 ? zc_fail(x, r, "cannot publish on", topic) : 0;
}

static int zc_open_sub(struct lat_zc *x, const char *topic) {
        zcbus_sub_opts o = {
                .size = sizeof(o),
                .wait_mode = x->cfg->com.wait,
                .spin_us = x->cfg->com.spin_us,
        };
        int r = zcbus_sub_open(x->bus, topic, &o, &x->sub);

        return r < 0 ? zc_fail(x, r, "cannot subscribe to", topic) : 0;
}

static void zc_topic(const struct lat_zc *x, size_t size, const char *dir, char *buf, size_t len) {
        (void)snprintf(buf, len, "%s.%zu.%s", x->cfg->com.prefix, size, dir);
}

static void zc_attach(void *st, enum bench_side side) {
        struct lat_zc *x = st;

        x->timeout_ms = -1; /* the driver's watchdog guards the ping side */
}

static int zc_begin(void *st, enum bench_side side, int step, size_t size) {
        struct lat_zc *x = st;
        char topic[ZCBUS_TOPIC_MAX + 1];
        int r;

        x->size = size;
        if (step == 0) {
                /* Our own connection, made in this process after the fork. */
                if ((r = zc_connect(x)) < 0)
                        return r;
                zc_topic(x, size, side == BENCH_PING ? "ping" : "pong", topic, sizeof(topic));
                return zc_open_pub(x, topic, size, &x->pub);
        }
        zc_topic(x, size, side == BENCH_PING ? "pong" : "ping", topic, sizeof(topic));
        return zc_open_sub(x, topic);
}

/* Send ctr in a len-byte message: loan, write the first 8 bytes, commit. */
static inline int zc_send(struct lat_zc *x, uint64_t ctr, size_t len) {
        void *buf;
        int r = zcbus_pub_loan(x->pub, len, &buf);

        if (_unlikely_(r < 0))
                return r;
        memcpy(buf, &ctr, sizeof(ctr));
        return zcbus_pub_commit(x->pub, len);
}

/* Receive one message in place; its counter and length. */
static inline int zc_recv(struct lat_zc *x, uint64_t *ret_ctr, size_t *ret_len) {
        zcbus_msg m;
        int r = zcbus_sub_recv(x->sub, &m, x->timeout_ms);

        if (_unlikely_(r < 0))
                return r;
        if (_unlikely_(m.len < sizeof(uint64_t))) {
                (void)zcbus_sub_release(x->sub, &m);
                return -EBADMSG;
        }
        memcpy(ret_ctr, m.data, sizeof(*ret_ctr));
        *ret_len = m.len;
        return zcbus_sub_release(x->sub, &m);
}

static int zc_ping(void *st, uint64_t ctr) {
        struct lat_zc *x = st;
        uint64_t echo;
        size_t len;
        int r;

        if ((r = zc_send(x, ctr, x->size)) < 0 || (r = zc_recv(x, &echo, &len)) < 0)
                return r;
        return echo == ctr && len == x->size ? 0 : -EBADMSG;
}

static int zc_pong(void *st, uint64_t *ret_ctr) {
        struct lat_zc *x = st;
        size_t len;
        int r;

        if ((r = zc_recv(x, ret_ctr, &len)) < 0)
                return r;
        return zc_send(x, *ret_ctr, len);
}

static void zc_end(void *st, enum bench_side side) {
        struct lat_zc *x = st;

        zcbus_sub_close(x->sub);
        zcbus_pub_close(x->pub);
        x->sub = NULL;
        x->pub = NULL;
}

static void zc_free(void *st) {
        struct lat_zc *x = st;

        if (!x)
                return;
        zc_end(x, BENCH_PING);
        zcbus_disconnect(x->bus);
        free(x);
}

static const struct lat_ops zc_ops = {
        .attach = zc_attach,
        .begin = zc_begin,
        .ping = zc_ping,
        .pong = zc_pong,
        .end = zc_end,
        .free = zc_free,
        .why = zc_why,
};

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
                "      --wait MODE      spin, futex or adaptive (default adaptive)\n"
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
        int opt, r;

        bench_common_init(&c->com);
        c->count = 100000;
        c->warmup = 10000;
        c->round = 1000;
        c->round_warmup = 10;

        opterr = 0;
        while ((opt = getopt_long(argc, argv, ":n:d:h", longopts, NULL)) != -1) {
                r = bench_common_opt(CMD, opt, optarg, &c->com);
                if (r < 0)
                        return 2;
                if (r > 0)
                        continue;
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
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return cli_bad_option(CMD, argv, opt);
                }
        }
        if (optind < argc) {
                cli_err(CMD, "unexpected argument '%s' (try 'zcbus lat --help')", argv[optind]);
                return 2;
        }
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
        if (o->pong && (o->cfg.com.json || o->plot)) {
                cli_err(CMD, "--pong only echoes: --json and --plot belong to the measuring side");
                return 2;
        }
        if (bench_common_finish(CMD, &c->com, o->pong || o->ping) < 0)
                return 2;
        return -1;
}

/* ------------------------------------------------------------- output */

static void print_header(const struct lat_opts *o) {
        const struct lat_cfg *c = &o->cfg;
        char sizes[256];

        bench_fmt_sizes(&c->com, sizes, sizeof(sizes));
        (void)printf("zcbus lat: %s B, ", sizes);
        if (c->count)
                (void)printf("%" PRIu64 " round trips", c->count);
        else
                (void)printf("%.3g s", (double)c->duration_ns / 1e9);
        (void)printf(", wait=%s, policy=%s%s, ", bench_wait_name(c->com.wait), zcbus_policy_name(c->com.policy),
                     c->timestamp ? ", timestamps" : "");
        if (c->com.cpus[0] >= 0)
                (void)printf("cpus %d,%d", c->com.cpus[0], c->com.cpus[1]);
        else
                (void)printf("cpus not pinned");
        (void)printf(" (histogram rel. error %.1f%%)\n", 100.0 * hist_rel_error());
        (void)printf("%-9s %8s %8s %8s %8s %8s %8s %8s %8s   (ns)\n", "transport", "size", "min", "p50", "p90", "p99",
                     "p99.9", "max", "mean");
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

        print_header(o);
        for (unsigned s = 0; s < c->com.nsizes; s++) {
                struct hist_summary zs = {0};
                char size[32];

                bench_fmt_size(c->com.sizes[s], size, sizeof(size));
                for (unsigned x = 0; x < nxp; x++) {
                        struct hist_summary h;
                        hist_summarize(hists[s * nxp + x], &h);
                        if (xps[x].kind == BENCH_XP_ZCBUS)
                                zs = h;
                        if (xps[x].kind == BENCH_XP_UDS || xps[x].kind == BENCH_XP_PIPE)
                                kernel = true;
                        (void)printf("%-9s %8s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                                     " %8" PRIu64 " %8.0f\n",
                                     bench_xp_name(xps[x].kind), size, h.min, h.p50, h.p90, h.p99, h.p999, h.max,
                                     h.mean);
                }
                if (xps[0].kind != BENCH_XP_ZCBUS)
                        continue;
                for (unsigned x = 1; x < nxp; x++) {
                        struct hist_summary h;
                        char a[16], b[16];
                        hist_summarize(hists[s * nxp + x], &h);
                        (void)printf("ratio zcbus/%s %s: p50 %s  p99 %s\n", bench_xp_name(xps[x].kind), size,
                                     fmt_ratio(ratio(zs.p50, h.p50), a, sizeof(a)),
                                     fmt_ratio(ratio(zs.p99, h.p99), b, sizeof(b)));
                }
        }
        if (kernel)
                (void)printf("(uds and pipe copy the payload both ways and wait in the kernel whatever --wait says)\n");
}

static void print_json(const struct lat_opts *o, const struct lat_xp *xps, unsigned nxp, struct hist **hists) {
        const struct lat_cfg *c = &o->cfg;
        bool first = true;

        (void)printf("{\"command\":\"lat\",\"wait\":\"%s\",\"policy\":\"%s\",\"spin_us\":%u,\"timestamp\":%s,",
                     bench_wait_name(c->com.wait), zcbus_policy_name(c->com.policy), c->com.spin_us,
                     c->timestamp ? "true" : "false");
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
                        hist_summarize(hists[s * nxp + x], &h);
                        (void)printf("%s{\"transport\":\"%s\",\"size\":%zu,\"count\":%" PRIu64 ",\"min_ns\":%" PRIu64
                                     ",\"p50_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
                                     ",\"p999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"mean_ns\":%.1f}",
                                     first ? "" : ",", bench_xp_name(xps[x].kind), c->com.sizes[s], h.count, h.min,
                                     h.p50, h.p90, h.p99, h.p999, h.max, h.mean);
                        first = false;
                }
        (void)printf("],\"ratios\":[");
        first = true;
        for (unsigned s = 0; s < c->com.nsizes && xps[0].kind == BENCH_XP_ZCBUS; s++) {
                struct hist_summary zs;
                hist_summarize(hists[s * nxp], &zs);
                for (unsigned x = 1; x < nxp; x++) {
                        struct hist_summary h;
                        hist_summarize(hists[s * nxp + x], &h);
                        (void)printf("%s{\"size\":%zu,\"baseline\":\"%s\",\"p50\":", first ? "" : ",", c->com.sizes[s],
                                     bench_xp_name(xps[x].kind));
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
        char title[160];

        if (!series || !titles) {
                cli_err(CMD, "out of memory");
                return -ENOMEM;
        }
        for (unsigned s = 0; s < c->com.nsizes; s++)
                for (unsigned x = 0; x < nxp; x++) {
                        char size[32], *t = titles + 64 * (s * nxp + x);
                        bench_fmt_size(c->com.sizes[s], size, sizeof(size));
                        (void)snprintf(t, 64, "%s %s B", bench_xp_name(xps[x].kind), size);
                        series[s * nxp + x] = (struct bench_series){.title = t, .h = hists[s * nxp + x]};
                }
        if (c->com.cpus[0] >= 0)
                (void)snprintf(title, sizeof(title), "zcbus lat: round trip, wait=%s, cpus %d,%d",
                               bench_wait_name(c->com.wait), c->com.cpus[0], c->com.cpus[1]);
        else
                (void)snprintf(title, sizeof(title), "zcbus lat: round trip, wait=%s", bench_wait_name(c->com.wait));
        return bench_plot(CMD, o->plot, title, series, n);
}

/* ---------------------------------------------------- --ping / --pong */

/* Both ends: make sure both topics exist with our geometry (whoever comes
 * first creates them), keep our producer, subscribe to the other. */
static int ext_open(struct lat_zc *x, const char *mine, const char *theirs) {
        zcbus_pub *tmp = NULL;
        int r;

        if ((r = zc_connect(x)) < 0 || (r = zc_open_pub(x, mine, x->cfg->com.max_size, &x->pub)) < 0 ||
            (r = zc_open_pub(x, theirs, x->cfg->com.max_size, &tmp)) < 0)
                return r;
        zcbus_pub_close(tmp);
        return zc_open_sub(x, theirs);
}

static int ext_pong(const struct lat_opts *o, struct lat_zc *x) {
        char ping[ZCBUS_TOPIC_MAX + 1], pong[ZCBUS_TOPIC_MAX + 1];
        uint64_t n = 0;
        int r;

        (void)snprintf(ping, sizeof(ping), "%s.ping", o->cfg.com.prefix);
        (void)snprintf(pong, sizeof(pong), "%s.pong", o->cfg.com.prefix);
        if ((r = bench_pin(o->cfg.com.cpus[1])) < 0) {
                cli_err(CMD, "cannot pin to CPU %d: %s", o->cfg.com.cpus[1], strerror(-r));
                return 1;
        }
        if ((r = ext_open(x, pong, ping)) < 0) {
                cli_err(CMD, "%s", x->why);
                return 1;
        }
        (void)printf("zcbus lat: echoing '%s' to '%s' (up to %zu B); start 'zcbus lat --ping' elsewhere\n", ping, pong,
                     o->cfg.com.max_size);
        (void)fflush(stdout);
        x->timeout_ms = -1;
        for (;;) {
                uint64_t ctr;
                r = zc_pong(x, &ctr);
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

/* --ping after the probe: every size in rounds, then DONE to the pong. */
static int ext_measure(const struct lat_cfg *c, struct lat_zc *x, struct hist **hists) {
        uint64_t ctr = 0;
        int r;

        for (unsigned s = 0; s < c->com.nsizes; s++) {
                struct hist *h = hists[s];
                uint64_t done = 0, start;

                x->size = c->com.sizes[s];
                for (uint64_t k = 0; k < c->warmup; k++) {
                        if (k % c->round == 0)
                                bench_watchdog_pet();
                        if ((r = zc_ping(x, ctr++)) < 0)
                                return r;
                }
                start = now_ns();
                while (c->count ? done < c->count : now_ns() - start < c->duration_ns) {
                        uint64_t n = c->count ? MIN(c->round, c->count - done) : c->round;
                        uint64_t t0;

                        bench_watchdog_pet();
                        t0 = now_ns();
                        for (uint64_t k = 0; k < n; k++) {
                                uint64_t t1;
                                if (_unlikely_((r = zc_ping(x, ctr++)) < 0))
                                        return r;
                                t1 = now_ns();
                                hist_record(h, t1 - t0);
                                t0 = t1;
                        }
                        done += n;
                }
        }
        x->size = BENCH_SIZE_MIN;
        return zc_ping(x, BENCH_MARK_DONE);
}

static int ext_ping(const struct lat_opts *o, struct lat_zc *x, struct hist **hists) {
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
        if ((r = ext_open(x, ping, pong)) < 0) {
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
                if ((r = zc_send(x, PROBE_BASE + k, BENCH_SIZE_MIN)) < 0)
                        break;
                while ((r = zc_recv(x, &echo, &len)) == 0)
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
        r = ext_measure(c, x, hists);
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

static void free_hists(struct hist **h, unsigned n) {
        if (!h)
                return;
        for (unsigned i = 0; i < n; i++)
                hist_free(h[i]);
        free(h);
}

int cmd_lat(int argc, char **argv, const char *sock) {
        struct lat_opts o = {0};
        struct lat_xp xps[BENCH_XP_MAX_] = {{0}};
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
        if (o.cfg.com.wait == ZCBUS_WAIT_SPIN && o.cfg.com.cpus[0] >= 0 && o.cfg.com.cpus[0] == o.cfg.com.cpus[1] &&
            !o.pong && !o.ping)
                cli_err(CMD, "warning: --wait spin with both sides on CPU %d: a round trip waits for the "
                             "scheduler to preempt the spinner",
                        o.cfg.com.cpus[0]);
        if (!o.cfg.com.no_bus && bench_broker_check(CMD, sock) < 0)
                return 1;

        /* Transports: zcbus first (ratios are zcbus/baseline), then the
         * baselines, all created before the fork. */
        if (!o.cfg.com.no_bus) {
                struct lat_zc *x = calloc(1, sizeof(*x));
                if (!x) {
                        cli_err(CMD, "out of memory");
                        return 1;
                }
                x->cfg = &o.cfg;
                xps[nxp++] = (struct lat_xp){.ops = &zc_ops, .st = x, .kind = BENCH_XP_ZCBUS};
        }
        if (o.pong) {
                status = ext_pong(&o, xps[0].st);
                free_xps(xps, nxp);
                return status;
        }
        for (unsigned k = BENCH_XP_SHM; k < BENCH_XP_MAX_; k++) {
                if (!(o.cfg.com.baselines & (1u << k)))
                        continue;
                r = baseline_lat_new(k, &o.cfg, &xps[nxp]);
                if (r < 0) {
                        cli_err(CMD, "cannot set up the %s baseline: %s", bench_xp_name(k), strerror(-r));
                        free_xps(xps, nxp);
                        return 1;
                }
                nxp++;
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
                r = ext_ping(&o, xps[0].st, hists);
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
