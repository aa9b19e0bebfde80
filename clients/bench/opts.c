/* SPDX-License-Identifier: MIT */
/*
 * opts.c: the settings `zcbus lat` and `zcbus perf` share (opts.h): the
 * option parser with the texts both commands always had, the small
 * parsers and formatters behind it, the transport names, and the ring
 * geometry both give zcbus topics and the shm floor alike.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "layout.h"
#include "macro.h"
#include "opts.h"
#include "zcbus.h"

static const char *const xp_names[BENCH_XP_MAX_] = {"zcbus", "shm", "uds", "pipe"};

const char *bench_xp_name(unsigned kind) {
        return kind < BENCH_XP_MAX_ ? xp_names[kind] : "?";
}

/* What went wrong in a transport: its own story if it has one. */
const char *bench_xp_why(const char *(*why)(void *st), void *st, int r) {
        const char *w = why ? why(st) : NULL;

        return w && *w ? w : strerror(-r);
}

/* ------------------------------------------------------------ parsing */

/* Split s on ',' into at most max tokens in buf; -EINVAL on an empty token. */
static int split_list(const char *s, char *buf, size_t buflen, char **tok, unsigned max, unsigned *ret_n) {
        unsigned n = 0;
        char *p, *save = NULL;
        size_t len;

        if (!s || !*s)
                return -EINVAL;
        len = strlen(s);
        if (len >= buflen || s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,"))
                return -EINVAL;
        memcpy(buf, s, len + 1);
        for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
                if (n == max)
                        return -EINVAL;
                tok[n++] = p;
        }
        *ret_n = n;
        return n ? 0 : -EINVAL;
}

int bench_parse_baselines(const char *s, unsigned *ret_mask) {
        char buf[64], *tok[8];
        unsigned n, mask = 0;

        if (s && strcmp(s, "all") == 0) {
                *ret_mask = (1u << BENCH_XP_SHM) | (1u << BENCH_XP_UDS) | (1u << BENCH_XP_PIPE);
                return 0;
        }
        if (s && strcmp(s, "none") == 0) {
                *ret_mask = 0;
                return 0;
        }
        if (split_list(s, buf, sizeof(buf), tok, ARRAY_SIZE(tok), &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                unsigned k;
                for (k = BENCH_XP_SHM; k < BENCH_XP_MAX_; k++)
                        if (strcmp(tok[i], xp_names[k]) == 0)
                                break;
                if (k == BENCH_XP_MAX_ || (mask & (1u << k)))
                        return -EINVAL;
                mask |= 1u << k;
        }
        *ret_mask = mask;
        return 0;
}

int bench_parse_sizes(const char *s, size_t *sizes, unsigned max, unsigned *ret_n) {
        char buf[256], *tok[BENCH_SIZES_MAX];
        unsigned n;

        if (max > BENCH_SIZES_MAX || split_list(s, buf, sizeof(buf), tok, max, &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                unsigned long long v;
                if (cli_parse_u64(tok[i], BENCH_SIZE_MIN, BENCH_SIZE_MAX, 1, &v) < 0)
                        return -EINVAL;
                for (unsigned k = 0; k < i; k++)
                        if (sizes[k] == v)
                                return -EINVAL;
                sizes[i] = (size_t)v;
        }
        *ret_n = n;
        return 0;
}

static const char *const wait_names[] = {
        [ZCBUS_WAIT_ADAPTIVE] = "adaptive",
        [ZCBUS_WAIT_SPIN] = "spin",
        [ZCBUS_WAIT_FUTEX] = "futex",
        [BENCH_WAIT_FD] = "fd",
};

int bench_parse_wait(const char *s, uint32_t *ret_mode) {
        for (uint32_t m = ZCBUS_WAIT_ADAPTIVE; m <= BENCH_WAIT_FD; m++)
                if (s && strcmp(s, wait_names[m]) == 0) {
                        *ret_mode = m;
                        return 0;
                }
        return -EINVAL;
}

int bench_parse_waits(const char *s, uint32_t ret[BENCH_WAITS_MAX], unsigned *ret_n) {
        char buf[64], *tok[BENCH_WAITS_MAX];
        uint32_t m[BENCH_WAITS_MAX];
        unsigned n;

        if (split_list(s, buf, sizeof(buf), tok, ARRAY_SIZE(tok), &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                if (bench_parse_wait(tok[i], &m[i]) < 0)
                        return -EINVAL;
                for (unsigned k = 0; k < i; k++)
                        if (m[k] == m[i])
                                return -EINVAL;
        }
        memcpy(ret, m, n * sizeof(*m));
        *ret_n = n;
        return 0;
}

const char *bench_wait_name(uint32_t mode) {
        return mode >= ZCBUS_WAIT_ADAPTIVE && mode <= BENCH_WAIT_FD ? wait_names[mode] : "?";
}

int bench_parse_policy(const char *s, uint32_t *ret_policy) {
        if (s && strcmp(s, "reliable") == 0)
                *ret_policy = ZCBUS_POLICY_RELIABLE;
        else if (s && strcmp(s, "latest") == 0)
                *ret_policy = ZCBUS_POLICY_LATEST;
        else
                return -EINVAL;
        return 0;
}

int bench_parse_policies(const char *s, uint32_t ret[2], unsigned *ret_n) {
        char buf[32], *tok[2];
        uint32_t p[2];
        unsigned n;

        if (split_list(s, buf, sizeof(buf), tok, ARRAY_SIZE(tok), &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++)
                if (bench_parse_policy(tok[i], &p[i]) < 0 || (i && p[0] == p[i]))
                        return -EINVAL;
        memcpy(ret, p, n * sizeof(*p));
        *ret_n = n;
        return 0;
}

int bench_parse_cpus(const char *s, int ret[2]) {
        char buf[32], *tok[2];
        unsigned n;
        cpu_set_t set;
        int cpus[2];

        if (s && strcmp(s, "none") == 0) {
                ret[0] = ret[1] = -1;
                return 0;
        }
        if (split_list(s, buf, sizeof(buf), tok, 2, &n) < 0 || n != 2)
                return -EINVAL;
        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return negerrno();
        for (unsigned i = 0; i < 2; i++) {
                unsigned long long v;
                if (cli_parse_u64(tok[i], 0, CPU_SETSIZE - 1, 0, &v) < 0)
                        return -EINVAL;
                if (!CPU_ISSET((int)v, &set))
                        return -ERANGE;
                cpus[i] = (int)v;
        }
        ret[0] = cpus[0];
        ret[1] = cpus[1];
        return 0;
}

void bench_default_cpus(int ret[2]) {
        cpu_set_t set;
        int n = 0;

        ret[0] = ret[1] = -1;
        if (sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) < 2)
                return;
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
                if (CPU_ISSET(c, &set))
                        ret[n++] = c;
}

int bench_parse_seconds(const char *s, double min, double max, uint64_t *ret_ns) {
        unsigned dots = 0;
        char *end;
        double v;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p == '.')
                        dots++;
                else if (*p < '0' || *p > '9')
                        return -EINVAL;
        }
        if (dots > 1 || s[0] == '.')
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || !(v >= min && v <= max))
                return -EINVAL;
        *ret_ns = (uint64_t)llround(v * 1e9);
        return 0;
}

void bench_fmt_size(size_t v, char *buf, size_t len) {
        if (v >= (1u << 30) && v % (1u << 30) == 0)
                (void)snprintf(buf, len, "%zuG", v >> 30);
        else if (v >= (1u << 20) && v % (1u << 20) == 0)
                (void)snprintf(buf, len, "%zuM", v >> 20);
        else if (v >= (1u << 10) && v % (1u << 10) == 0)
                (void)snprintf(buf, len, "%zuK", v >> 10);
        else
                (void)snprintf(buf, len, "%zu", v);
}

void bench_fmt_rate(double v, char *buf, size_t len) {
        if (v >= 1e9)
                (void)snprintf(buf, len, "%.2fG", v / 1e9);
        else if (v >= 1e6)
                (void)snprintf(buf, len, "%.2fM", v / 1e6);
        else if (v >= 1e3)
                (void)snprintf(buf, len, "%.1fK", v / 1e3);
        else
                (void)snprintf(buf, len, "%.0f", v);
}

void bench_fmt_sizes(const struct bench_common *c, char *buf, size_t len) {
        char one[32];

        if (len)
                buf[0] = '\0';
        for (unsigned i = 0; i < c->nsizes; i++) {
                bench_fmt_size(c->sizes[i], one, sizeof(one));
                (void)snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", one);
        }
}

uint32_t bench_ring_slots(size_t size, uint32_t req, uint64_t ring_bytes, uint32_t lo, uint32_t hi) {
        uint32_t n = hi;

        if (req)
                return req;
        while (n > lo && (uint64_t)n * seg_slot_stride((uint32_t)size) > ring_bytes)
                n >>= 1;
        return n;
}

/* The shared options, with the texts both commands always had. */

void bench_common_init(struct bench_common *c) {
        c->sizes[0] = 64;
        c->nsizes = 1;
        c->wait = c->waits[0] = ZCBUS_WAIT_ADAPTIVE;
        c->nwaits = 1;
        c->spin_us = BENCH_SPIN_US_DEFAULT;
        c->policy = c->policies[0] = ZCBUS_POLICY_RELIABLE;
        c->npolicies = 1;
        bench_default_cpus(c->cpus);
}

int bench_bad_value(const char *cmd, const char *opt, const char *arg, const char *want) {
        cli_err(cmd, "invalid %s '%s': %s", opt, arg, want);
        return 2;
}

/* Report a bad value; -EINVAL for bench_common_opt's caller. */
static int bad_common(const char *cmd, const char *opt, const char *arg, const char *want) {
        (void)bench_bad_value(cmd, opt, arg, want);
        return -EINVAL;
}

int bench_common_opt(const char *cmd, char **argv, int opt, const char *arg, struct bench_common *c) {
        unsigned long long v;
        int r;

        switch (opt) {
        case BENCH_OPT_SIZE:
                if (bench_parse_sizes(arg, c->sizes, BENCH_SIZES_MAX, &c->nsizes) < 0)
                        return bad_common(cmd, "--size", arg,
                                          "want a list of distinct sizes in 8..64M, e.g. 64,4K,1M (at most 16)");
                return 1;
        case BENCH_OPT_WAIT:
                if (bench_parse_waits(arg, c->waits, &c->nwaits) < 0)
                        return bad_common(cmd, "--wait", arg,
                                          strcmp(cmd, "lat") == 0 ? "want spin, futex, adaptive or fd"
                                                                  : "want spin, futex or adaptive");
                c->wait = c->waits[0];
                return 1;
        case BENCH_OPT_SPIN:
                if (cli_parse_u64(arg, 1, 1000000, 0, &v) < 0)
                        return bad_common(cmd, "--spin-us", arg, "want microseconds in 1..1000000");
                c->spin_us = (uint32_t)v;
                return 1;
        case BENCH_OPT_CPU:
                r = bench_parse_cpus(arg, c->cpus);
                if (r == -ERANGE)
                        return bad_common(cmd, "--cpu", arg, "not CPUs this process may run on");
                if (r < 0)
                        return bad_common(cmd, "--cpu", arg, "want A,B (CPU numbers) or none");
                return 1;
        case BENCH_OPT_POLICY:
                if (bench_parse_policies(arg, c->policies, &c->npolicies) < 0)
                        return bad_common(cmd, "--policy", arg, "want reliable or latest");
                c->policy = c->policies[0];
                return 1;
        case BENCH_OPT_SLOTS:
                if (cli_parse_u64(arg, 2, UINT32_C(1) << 24, 1, &v) < 0 || (v & (v - 1)))
                        return bad_common(cmd, "--slots", arg, "want a power of two in 2..16M");
                c->slots = (uint32_t)v;
                return 1;
        case BENCH_OPT_BASELINE:
                if (bench_parse_baselines(arg, &c->baselines) < 0)
                        return bad_common(cmd, "--baseline", arg, "want a list of uds,pipe,shm, or all");
                return 1;
        case BENCH_OPT_NOBUS:
                c->no_bus = true;
                return 1;
        case BENCH_OPT_PREFIX:
                if (!*arg || strlen(arg) >= sizeof(c->prefix) || strpbrk(arg, " \t\n/"))
                        return bad_common(cmd, "--prefix", arg, "want 1..127 characters, no blanks or '/'");
                (void)snprintf(c->prefix, sizeof(c->prefix), "%s", arg);
                return 1;
        case BENCH_OPT_JSON:
                c->json = true;
                return 1;
        case ':':
        case '?':
                (void)cli_bad_option(cmd, argv, opt);
                return -EINVAL;
        default:
                return 0;
        }
}

int bench_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts,
                 void (*usage)(FILE *f), struct bench_common *c) {
        int opt, r;

        opterr = 0;
        while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
                if (opt == 'h') {
                        usage(stdout);
                        return -3;
                }
                r = bench_common_opt(cmd, argv, opt, optarg, c);
                if (r < 0)
                        return -2;
                if (r == 0)
                        return opt;
        }
        return bench_no_operands(cmd, argc, argv) ? -2 : -1;
}

int bench_no_operands(const char *cmd, int argc, char **argv) {
        if (optind >= argc)
                return 0;
        cli_err(cmd, "unexpected argument '%s' (try 'zcbus %s --help')", argv[optind], cmd);
        return 2;
}

int bench_common_finish(const char *cmd, struct bench_common *c, bool shared) {
        if (c->no_bus && !c->baselines) {
                cli_err(cmd, "--no-bus needs --baseline (there would be nothing to measure)");
                return -EINVAL;
        }
        if ((!c->wait_list_ok && c->nwaits > 1) || (!c->policy_list_ok && c->npolicies > 1)) {
                cli_err(cmd, "--%s takes one value here (a list only with 'zcbus perf --fanout')",
                        !c->wait_list_ok && c->nwaits > 1 ? "wait" : "policy");
                return -EINVAL;
        }
        for (unsigned i = 0; i < c->nwaits; i++)
                if (c->waits[i] == BENCH_WAIT_FD && strcmp(cmd, "lat") != 0) {
                        cli_err(cmd, "--wait fd is lat's (an event loop's round trip); want spin, futex or adaptive");
                        return -EINVAL;
                }
        for (unsigned i = 0; i < c->nsizes; i++)
                c->max_size = MAX(c->max_size, c->sizes[i]);
        /* --prefix refuses "": an empty prefix means it was not given. */
        if (!c->prefix[0]) {
                if (shared)
                        (void)snprintf(c->prefix, sizeof(c->prefix), "zcbus.%s", cmd);
                else
                        (void)snprintf(c->prefix, sizeof(c->prefix), "zcbus.%s.%ld", cmd, (long)getpid());
        }
        return 0;
}

/* ------------------------------------------------------------- output */

void bench_json_cpus(FILE *f, const struct bench_common *c) {
        if (c->cpus[0] >= 0)
                (void)fprintf(f, "\"cpus\":[%d,%d],", c->cpus[0], c->cpus[1]);
        else
                (void)fprintf(f, "\"cpus\":null,");
}
