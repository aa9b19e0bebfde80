/*
 * cmd_perf.c: `zcbus perf`, one-way throughput from producer processes to
 * subscriber processes. It owns the command's options and output and the
 * zcbus transport of the measurement; bench.c parses the options it shares
 * with lat (bench_common_opt()) and forks and times the peers
 * (bench_perf_run()), baseline.c has the references.
 *
 * The zcbus producer writes each message in place (loan, memset of the
 * payload so every byte is written once, the 8-byte tag "producer index,
 * counter" at the start, commit), or with --batch N copies N messages per
 * zcbus_pub_send_batch(). Subscribers read in place: the tag (checked: in
 * order per producer, without gaps under RELIABLE) and the last 8 bytes,
 * then release (zcbus_sub_recv_batch + zcbus_sub_release_batch with
 * --batch). A subscriber's clock stops when it last ran dry, so its rate
 * does not include the time it waited for a producer that had stopped.
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

#include "baseline.h"
#include "bench.h"
#include "cli.h"
#include "futex.h"
#include "json.h"
#include "macro.h"
#include "zcbus.h"

#define CMD "perf"
#define PRODUCERS_MAX 64u  /* the tag has room for more; the check table does not */
#define SUBSCRIBERS_MAX 128u
#define BATCH_MAX 1024u
#define ROUNDS_MAX 99u
#define IDLE_WAIT_MS 100
#define MEMSET_FROM (64u << 10) /* sizes that get a memset reference */
#define MEMSET_NS_MAX (UINT64_C(500) * 1000000u)

/* ------------------------------------------------------ zcbus transport */

struct perf_zc {
        const struct perf_cfg *cfg;
        size_t size;
        char topic[ZCBUS_TOPIC_MAX + 1];
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        /* Peer-side buffers, made at attach, never in the loops. */
        uint8_t *pbuf;
        zcbus_iov *iov;
        zcbus_msg *msgs;
        char why[320];
};

static const char *pzc_why(void *st) {
        return ((struct perf_zc *)st)->why;
}

static int pzc_prepare(void *st, size_t size) {
        struct perf_zc *x = st;

        x->size = size;
        (void)snprintf(x->topic, sizeof(x->topic), "%s.%zu", x->cfg->com.prefix, size);
        return 0;
}

static int pzc_fail(struct perf_zc *x, int r, const char *what) {
        const char *detail = x->bus ? zcbus_last_error(x->bus) : "";

        (void)snprintf(x->why, sizeof(x->why), "%s '%s': %s%s%s%s", what, x->topic, zcbus_strerror(r),
                       *detail ? " (" : "", detail, *detail ? ")" : "");
        return r;
}

static int pzc_attach(void *st, enum perf_role role, unsigned idx) {
        struct perf_zc *x = st;
        const struct perf_cfg *c = x->cfg;
        unsigned batch = c->batch;
        int r;

        r = zcbus_connect(c->sock, &x->bus);
        if (r < 0) {
                char path[256];
                bench_broker_path(c->sock, path, sizeof(path));
                (void)snprintf(x->why, sizeof(x->why), "cannot connect to broker at '%s': %s", path,
                               zcbus_strerror(r));
                return r;
        }
        if (role == PERF_PROD) {
                zcbus_topic_opts o = {
                        .size = sizeof(o),
                        .slot_count = bench_perf_slots(x->size, c->com.slots),
                        .slot_size = (uint32_t)x->size,
                        .policy = c->com.policy,
                        .wait_mode = c->com.wait,
                        .spin_us = c->com.spin_us,
                };
                r = zcbus_pub_open(x->bus, x->topic, &o, &x->pub);
                if (r < 0)
                        return pzc_fail(x, r, "cannot publish on");
                if (batch > 1) {
                        /* Message i starts at pbuf + 8 i: distinct tags, one
                         * buffer of size + 8 batch bytes even for 1 MiB. */
                        x->pbuf = malloc(x->size + 8u * batch);
                        x->iov = calloc(batch, sizeof(*x->iov));
                        if (!x->pbuf || !x->iov)
                                return -ENOMEM;
                        memset(x->pbuf, 0xa5, x->size + 8u * batch);
                        for (unsigned i = 0; i < batch; i++)
                                x->iov[i] = (zcbus_iov){.data = x->pbuf + 8u * i, .len = x->size};
                }
                return 0;
        }
        {
                zcbus_sub_opts o = {
                        .size = sizeof(o),
                        .max_holds = MAX(batch, 16u),
                        .wait_mode = c->com.wait,
                        .spin_us = c->com.spin_us,
                };
                r = zcbus_sub_open(x->bus, x->topic, &o, &x->sub);
                if (r < 0)
                        return pzc_fail(x, r, "cannot subscribe to");
                x->msgs = calloc(batch, sizeof(*x->msgs));
                if (!x->msgs)
                        return -ENOMEM;
        }
        return 0;
}

static void pzc_detach(void *st) {
}

static int pzc_produce(struct perf_zc *x, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        unsigned batch = x->cfg->batch;
        size_t size = x->size;
        uint64_t count = 0;
        zcbus_pub_stats stats = {.size = sizeof(stats)};
        int r;

        if (batch == 1) {
                while (!load_rlx(&ctl->stop)) {
                        uint64_t tag = perf_tag(idx, count);
                        void *buf;
                        r = zcbus_pub_loan(x->pub, size, &buf);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "loan on");
                        memset((uint8_t *)buf + 8, 0xa5, size - 8); /* every byte written once */
                        memcpy(buf, &tag, 8);
                        r = zcbus_pub_commit(x->pub, size);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "commit on");
                        count++;
                }
        } else {
                while (!load_rlx(&ctl->stop)) {
                        for (unsigned i = 0; i < batch; i++) {
                                uint64_t tag = perf_tag(idx, count + i);
                                memcpy(x->pbuf + 8u * i, &tag, 8);
                        }
                        r = zcbus_pub_send_batch(x->pub, x->iov, batch, -1);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "batch send on");
                        count += (unsigned)r;
                }
        }
        res->t_end = now_ns();
        res->count = count;
        if (zcbus_pub_stats_get(x->pub, &stats) == 0)
                res->waits = stats.waits;
        return 0;
}

struct sub_check {
        uint64_t expect[PRODUCERS_MAX];
        unsigned producers;
        bool reliable;
        size_t size;
        uint64_t sink;
};

/* Read one message in place: tag in order, first and last 8 bytes. */
static inline int check_msg(struct sub_check *k, const zcbus_msg *m) {
        const uint8_t *p = m->data;
        uint64_t tag, last, ctr;
        unsigned prod;

        if (_unlikely_(m->len != k->size))
                return -EBADMSG;
        memcpy(&tag, p, 8);
        memcpy(&last, p + m->len - 8, 8);
        prod = (unsigned)(tag >> PERF_TAG_SHIFT);
        ctr = tag & PERF_CTR_MASK;
        if (_unlikely_(prod >= k->producers || ctr < k->expect[prod] || (k->reliable && ctr != k->expect[prod])))
                return -EBADMSG;
        k->expect[prod] = ctr + 1;
        k->sink ^= last;
        return 0;
}

static int pzc_consume(struct perf_zc *x, struct perf_ctl *ctl, struct perf_result *res) {
        const struct perf_cfg *c = x->cfg;
        unsigned batch = c->batch;
        struct sub_check k = {
                .producers = c->producers,
                .reliable = c->com.policy != ZCBUS_POLICY_LATEST,
                .size = x->size,
        };
        zcbus_sub_stats stats = {.size = sizeof(stats)};
        uint64_t count = 0, idle_count = UINT64_MAX;
        int n, r;

        for (;;) {
                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, 0) : zcbus_sub_recv_batch(x->sub, x->msgs, batch, 0);
                if (n == -EAGAIN) {
                        /* Dry: the only place a subscriber reads the clock. */
                        if (idle_count != count) {
                                res->t_end = now_ns();
                                idle_count = count;
                        }
                        if (load_acq(&ctl->prod_done) == c->producers) { /* pairs with the producers' faa */
                                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, 0)
                                               : zcbus_sub_recv_batch(x->sub, x->msgs, batch, 0);
                                if (n == -EAGAIN)
                                        break;
                        } else
                                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, IDLE_WAIT_MS)
                                               : zcbus_sub_recv_batch(x->sub, x->msgs, batch, IDLE_WAIT_MS);
                        if (n == -EAGAIN || n == -ETIMEDOUT)
                                continue;
                }
                if (_unlikely_(n < 0))
                        return pzc_fail(x, n, "receive on");
                if (batch == 1)
                        n = 1;
                for (int i = 0; i < n; i++)
                        if (_unlikely_(check_msg(&k, &x->msgs[i]) < 0))
                                return -EBADMSG;
                r = batch == 1 ? zcbus_sub_release(x->sub, x->msgs)
                               : zcbus_sub_release_batch(x->sub, x->msgs, (unsigned)n);
                if (_unlikely_(r < 0))
                        return pzc_fail(x, r, "release on");
                count += (unsigned)n;
        }
        res->count = count;
        res->sink = k.sink;
        if (zcbus_sub_stats_get(x->sub, &stats) == 0)
                res->lost = stats.lost;
        return 0;
}

static int pzc_run(void *st, enum perf_role role, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct perf_zc *x = st;

        return role == PERF_PROD ? pzc_produce(x, idx, ctl, res) : pzc_consume(x, ctl, res);
}

static void pzc_free(void *st) {
        struct perf_zc *x = st;

        if (!x)
                return;
        zcbus_sub_close(x->sub);
        zcbus_pub_close(x->pub);
        zcbus_disconnect(x->bus);
        free(x->pbuf);
        free(x->iov);
        free(x->msgs);
        free(x);
}

static const struct perf_ops pzc_ops = {
        .prepare = pzc_prepare,
        .attach = pzc_attach,
        .run = pzc_run,
        .detach = pzc_detach,
        .free = pzc_free,
        .why = pzc_why,
};

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
                "      --policy P       reliable or latest (default reliable)\n"
                "      --wait MODE      spin, futex or adaptive (default adaptive)\n"
                "      --spin-us N      adaptive spin budget in microseconds (default %u)\n"
                "      --cpu A,B|none   pin producers to CPU A, subscribers to CPU B (default 0,1)\n"
                "      --slots N        ring slots (power of two; default by size, ring <= 4 MiB)\n"
                "      --baseline LIST  also measure uds,pipe,shm (or all; needs -p 1)\n"
                "      --no-bus         baselines only, no broker needed (needs --baseline)\n"
                "      --prefix NAME    topic prefix (default zcbus.perf.PID)\n"
                "      --json           print the results as JSON\n"
                "  -h, --help           show this help\n",
                PRODUCERS_MAX, SUBSCRIBERS_MAX, BATCH_MAX, BENCH_SPIN_US_DEFAULT);
}

static int parse_opts(int argc, char **argv, struct perf_opts *o) {
        enum {
                OPT_ROUNDS = BENCH_OPT_END_, OPT_BATCH,
        };
        static const struct option longopts[] = {
                BENCH_COMMON_LONGOPTS,
                {"producers", required_argument, NULL, 'p'},
                {"subscribers", required_argument, NULL, 'c'},
                {"duration", required_argument, NULL, 'd'},
                {"rounds", required_argument, NULL, OPT_ROUNDS},
                {"batch", required_argument, NULL, OPT_BATCH},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct perf_cfg *c = &o->cfg;
        unsigned long long v;
        int opt, r;

        bench_common_init(&c->com);
        c->producers = c->subscribers = 1;
        c->batch = 1;
        c->rounds = 3;
        c->duration_ns = UINT64_C(2) * 1000000000u;

        opterr = 0;
        while ((opt = getopt_long(argc, argv, ":p:c:d:h", longopts, NULL)) != -1) {
                r = bench_common_opt(CMD, opt, optarg, &c->com);
                if (r < 0)
                        return 2;
                if (r > 0)
                        continue;
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
                        break;
                case 'd':
                        if (bench_parse_seconds(optarg, 0.01, 86400, &c->duration_ns) < 0)
                                return bench_bad_value(CMD, "-d", optarg, "want seconds in 0.01..86400, e.g. 2 or 0.5");
                        break;
                case OPT_ROUNDS:
                        if (cli_parse_u64(optarg, 1, ROUNDS_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "--rounds", optarg, "want 1..99");
                        c->rounds = (unsigned)v;
                        break;
                case OPT_BATCH:
                        if (cli_parse_u64(optarg, 1, BATCH_MAX, 0, &v) < 0)
                                return bench_bad_value(CMD, "--batch", optarg, "want 1..1024 messages");
                        c->batch = (unsigned)v;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        return cli_bad_option(CMD, argv, opt);
                }
        }
        if (optind < argc) {
                cli_err(CMD, "unexpected argument '%s' (try 'zcbus perf --help')", argv[optind]);
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
        (void)printf("zcbus perf: %s B, %u producer%s -> %u subscriber%s, %u round%s of %.3g s, batch %u, "
                     "policy=%s, wait=%s, ",
                     sizes, c->producers, c->producers == 1 ? "" : "s", c->subscribers, c->subscribers == 1 ? "" : "s",
                     c->rounds, c->rounds == 1 ? "" : "s", (double)c->duration_ns / c->rounds / 1e9, c->batch,
                     zcbus_policy_name(c->com.policy), bench_wait_name(c->com.wait));
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

        (void)printf("{\"command\":\"perf\",\"producers\":%u,\"subscribers\":%u,\"batch\":%u,\"policy\":\"%s\","
                     "\"wait\":\"%s\",\"spin_us\":%u,\"duration_s\":%.3f,\"rounds\":%u,",
                     c->producers, c->subscribers, c->batch, zcbus_policy_name(c->com.policy),
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

int cmd_perf(int argc, char **argv, const char *sock) {
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

        if (!o.cfg.com.no_bus) {
                struct perf_zc *x = calloc(1, sizeof(*x));
                if (!x) {
                        cli_err(CMD, "out of memory");
                        return 1;
                }
                x->cfg = &o.cfg;
                xps[nxp++] = (struct perf_xp){.ops = &pzc_ops, .st = x, .kind = BENCH_XP_ZCBUS};
        }
        for (unsigned k = BENCH_XP_SHM; k < BENCH_XP_MAX_; k++) {
                if (!(o.cfg.com.baselines & (1u << k)))
                        continue;
                r = baseline_perf_new(k, &o.cfg, &xps[nxp]);
                if (r < 0) {
                        cli_err(CMD, "cannot set up the %s baseline: %s", bench_xp_name(k), strerror(-r));
                        free_xps(xps, nxp);
                        return 1;
                }
                nxp++;
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
