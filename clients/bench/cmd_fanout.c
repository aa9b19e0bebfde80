/* SPDX-License-Identifier: MIT */
/*
 * cmd_fanout.c: `zcbus perf --fanout`, the fan-out curve: what one
 * producer pays per publish, and how late the first and the last of N
 * subscribers get each message, for each N, policy and wait mode, zcbus
 * beside the raw shm ring with a plain futex wake-all (--baseline shm).
 * It owns the schedule of points (for each policy, each wait mode, each
 * N: zcbus, then shm, so that the machine's noise hits both alike) and
 * the output (text, JSON); fanout.c runs one point, cmd_perf.c parses the
 * options.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "fanout.h"
#include "json.h"
#include "macro.h"
#include "xp.h"
#include "zcbus.h"

struct fan_result {
        struct fan_point p;
        unsigned kind;
        struct fan_outcome o;
};

static void fmt_ns(double v, char *buf, size_t len) {
        if (v >= 1e6)
                (void)snprintf(buf, len, "%.2fms", v / 1e6);
        else if (v >= 1e4)
                (void)snprintf(buf, len, "%.1fus", v / 1e3);
        else
                (void)snprintf(buf, len, "%.0f", v);
}

static void print_text_head(const struct perf_cfg *c) {
        char size[32];

        bench_fmt_size(c->com.sizes[0], size, sizeof(size));
        (void)printf("zcbus perf --fanout: %s B, 1 producer -> N subscribers, %.3g s per point, rate %s, ", size,
                     (double)c->duration_ns / 1e9, c->rate_auto ? "auto" : c->rate ? "fixed" : "unpaced");
        if (c->com.cpus[0] >= 0)
                (void)printf("producer on CPU %d, subscribers on CPU %d\n", c->com.cpus[0], c->com.cpus[1]);
        else
                (void)printf("cpus not pinned\n");
        (void)printf("%-9s %-8s %-8s %5s %8s %10s %9s %9s %10s %10s %8s %9s %9s %9s %9s\n", "transport", "policy",
                     "wait", "subs", "pub/s", "cpu ns/pub", "wakes/pub", "sleeps/dl", "msgs/s/sub", "msgs/s(sum)",
                     "lost", "first p50", "first p99", "last p50", "last p99");
        (void)fflush(stdout);
}

static void print_text_row(const struct fan_result *R) {
        const struct fan_outcome *o = &R->o;
        char rate[32], a[32], b[32], f50[32], f99[32], l50[32], l99[32];

        bench_fmt_rate(o->pub_rate, rate, sizeof(rate));
        bench_fmt_rate(o->sub_rate_mean, a, sizeof(a));
        bench_fmt_rate(o->sub_rate_sum, b, sizeof(b));
        fmt_ns((double)o->first.p50, f50, sizeof(f50));
        fmt_ns((double)o->first.p99, f99, sizeof(f99));
        fmt_ns((double)o->last.p50, l50, sizeof(l50));
        fmt_ns((double)o->last.p99, l99, sizeof(l99));
        (void)printf("%-9s %-8s %-8s %5u %8s %10.0f %9.3f %9.3f %10s %10s %8" PRIu64 " %9s %9s %9s %9s\n",
                     bench_xp_name(R->kind), zcbus_policy_name(R->p.policy), bench_wait_name(R->p.wait), R->p.subs,
                     rate, o->cpu_ns_per_pub, o->published ? (double)o->wakeups / (double)o->published : 0.0,
                     o->delivered ? (double)o->sleeps / (double)o->delivered : 0.0, a, b, o->lost, f50, f99, l50,
                     l99);
        (void)fflush(stdout);
}

static void json_lat(const char *name, const struct hist_summary *h) {
        (void)printf(",\"%s\":{\"p50_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
                     ",\"p999_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"mean_ns\":",
                     name, h->p50, h->p90, h->p99, h->p999, h->max);
        json_num(stdout, h->mean, 'f', 1);
        (void)printf("}");
}

static void print_json(const struct perf_cfg *c, const struct fan_result *res, unsigned n) {
        (void)printf("{\"command\":\"perf\",\"mode\":\"fanout\",\"size\":%zu,\"producers\":1,\"subscribers\":[",
                     c->com.sizes[0]);
        for (unsigned i = 0; i < c->nfanout; i++)
                (void)printf("%s%u", i ? "," : "", c->fanout[i]);
        (void)printf("],\"rate\":");
        if (c->rate_auto)
                (void)printf("\"auto\",\"rate_auto\":{\"max\":%u,\"sub_ns_per_delivery\":%u}", FAN_AUTO_RATE_MAX,
                             FAN_AUTO_SUB_NS);
        else
                (void)printf("%u", c->rate);
        (void)printf(",\"spin_us\":%u,\"duration_s\":%.3f,\"slots\":%u,", c->com.spin_us,
                     (double)c->duration_ns / 1e9, res && n ? res[0].p.slots : 0);
        bench_json_cpus(stdout, &c->com);
        (void)printf("\"prefix\":");
        json_str(stdout, c->com.prefix);
        (void)printf(",\"hist_rel_error\":");
        json_num(stdout, hist_rel_error(), 'g', 3);
        (void)printf(",\"points\":[");
        for (unsigned i = 0; i < n; i++) {
                const struct fan_result *R = &res[i];
                const struct fan_outcome *o = &R->o;
                (void)printf("%s{\"transport\":\"%s\",\"policy\":\"%s\",\"wait\":\"%s\",\"subscribers\":%u,"
                             "\"gap_ns\":%" PRIu64 ",\"published\":%" PRIu64 ",\"cpu_ns_per_pub\":",
                             i ? "," : "", bench_xp_name(R->kind), zcbus_policy_name(R->p.policy),
                             bench_wait_name(R->p.wait), R->p.subs, R->p.gap_ns, o->published);
                json_num(stdout, o->cpu_ns_per_pub, 'f', 1);
                (void)printf(",\"cpu_bracket_ns\":");
                json_num(stdout, o->cpu_bracket_ns, 'f', 1);
                (void)printf(",\"msgs_per_s_pub\":");
                json_num(stdout, o->pub_rate, 'g', 6);
                (void)printf(",\"msgs_per_s_sub\":");
                json_num(stdout, o->sub_rate_mean, 'g', 6);
                (void)printf(",\"msgs_per_s_min_sub\":");
                json_num(stdout, o->sub_rate_min, 'g', 6);
                (void)printf(",\"msgs_per_s_sum\":");
                json_num(stdout, o->sub_rate_sum, 'g', 6);
                (void)printf(",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"waits\":%" PRIu64
                             ",\"wakeups\":%" PRIu64 ",\"sleeps\":%" PRIu64 ",\"samples\":%" PRIu64,
                             o->delivered, o->lost, o->waits, o->wakeups, o->sleeps, o->samples);
                json_lat("first", &o->first);
                json_lat("last", &o->last);
                (void)printf("}");
        }
        (void)printf("]}\n");
}

static void free_xps(struct fan_xp *xps, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (xps[i].ops)
                        xps[i].ops->free(xps[i].st);
}

int bench_perf_fanout(const char *cmd, const struct perf_cfg *c) {
        const struct bench_common *com = &c->com;
        struct fan_xp xps[2] = {{0}};
        struct fan_result *res;
        unsigned nxp = 0, n = 0, total;
        int r = 0;

        for (unsigned k = BENCH_XP_ZCBUS; k <= BENCH_XP_SHM; k++) {
                if (k == BENCH_XP_ZCBUS ? com->no_bus : !(com->baselines & (1u << k)))
                        continue;
                if ((r = xp_fan_make(k, &xps[nxp])) < 0) {
                        cli_err(cmd, "out of memory");
                        free_xps(xps, nxp);
                        return 1;
                }
                nxp++;
        }
        total = com->npolicies * com->nwaits * c->nfanout * nxp;
        res = calloc(total, sizeof(*res));
        if (!res) {
                cli_err(cmd, "out of memory");
                free_xps(xps, nxp);
                return 1;
        }
        if (!com->json)
                print_text_head(c);
        for (unsigned a = 0; r >= 0 && a < com->npolicies; a++)
                for (unsigned w = 0; r >= 0 && w < com->nwaits; w++)
                        for (unsigned f = 0; r >= 0 && f < c->nfanout; f++)
                                for (unsigned x = 0; r >= 0 && x < nxp; x++) {
                                        struct fan_result *R = &res[n];
                                        R->kind = xps[x].kind;
                                        R->p = (struct fan_point){
                                                .idx = n, .subs = c->fanout[f],
                                                .policy = com->policies[a], .wait = com->waits[w],
                                                .spin_us = com->spin_us, .size = com->sizes[0],
                                                .slots = bench_perf_slots(com->sizes[0], com->slots),
                                                .gap_ns = bench_fan_gap(c->rate, c->rate_auto, c->fanout[f]),
                                                .duration_ns = c->duration_ns,
                                                .prefix = com->prefix, .sock = c->sock,
                                        };
                                        r = bench_fan_run(cmd, com->cpus, &xps[x], &R->p, &R->o);
                                        if (r >= 0) {
                                                n++;
                                                if (!com->json)
                                                        print_text_row(R);
                                        }
                                }
        if (r >= 0 && com->json)
                print_json(c, res, n);
        free(res);
        free_xps(xps, nxp);
        return r < 0 ? 1 : 0;
}
