/* SPDX-License-Identifier: MIT */
/*
 * conf.c: the bridge's config file. Lines are "key = value"; '#' starts a
 * comment; blank lines are skipped. "out" and "in" may repeat, one route
 * per line; every other key is set once (a repeated key is an error, so
 * that a file cannot silently say two things). Every error names the file
 * and the line, and stops the bridge: a typo in a route must never become
 * "bridge nothing" or "bridge everything".
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "conf.h"
#include "subject.h"
#include "util.h"

void bconf_init(struct bconf *c) {
        *c = (struct bconf){
                .replicas = 1,
                .buffer = 1024,
                .buffer_bytes = 64ull << 20,
                .window = 256,
                .window_bytes = 8ull << 20,
                .reorder = 4096,
                .reorder_bytes = 64ull << 20,
                .reorder_ms = 10000,
                .scan_ms = 1000,
                .stats_ms = 1000,
                .dup_window_ms = 120000,
                .max_age_s = 86400,
                .send_asap = true,
        };
}

void bconf_deinit(struct bconf *c) {
        if (!c)
                return;
        for (unsigned i = 0; i < c->nservers; i++)
                free(c->servers[i]);
        free(c->socket);
        free(c->prefix);
        free(c->state_dir);
        free(c->name);
        bconf_init(c);
}

static char *trim(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

/* A whole number with an optional K/M/G (x1024) suffix within [min, max]. */
static int parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;
        uint64_t mul = 1;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        if (*end == 'K')
                mul = 1ull << 10;
        else if (*end == 'M')
                mul = 1ull << 20;
        else if (*end == 'G')
                mul = 1ull << 30;
        if (mul != 1)
                end++;
        if (*end != '\0' || v > max / mul || v * mul < min || v * mul > max)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

static int set_str(char **dst, const char *v, const char *key, char *err, size_t errlen) {
        if (*dst) {
                (void)snprintf(err, errlen, "'%s' is set twice", key);
                return -EINVAL;
        }
        if (*v == '\0') {
                (void)snprintf(err, errlen, "'%s' needs a value", key);
                return -EINVAL;
        }
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static int parse_servers(struct bconf *c, char *v, char *err, size_t errlen) {
        char *save = NULL;

        if (c->nservers) {
                (void)snprintf(err, errlen, "'nats' is set twice");
                return -EINVAL;
        }
        for (char *tok = strtok_r(v, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
                if (c->nservers == BCONF_SERVERS_MAX) {
                        (void)snprintf(err, errlen, "'nats': more than %u servers", BCONF_SERVERS_MAX);
                        return -EINVAL;
                }
                if (strncmp(tok, "nats://", 7) != 0 || tok[7] == '\0') {
                        (void)snprintf(err, errlen, "'nats': '%s' is not a nats://HOST:PORT URL", tok);
                        return -EINVAL;
                }
                c->servers[c->nservers] = strdup(tok);
                if (!c->servers[c->nservers])
                        return -ENOMEM;
                c->nservers++;
        }
        if (c->nservers == 0) {
                (void)snprintf(err, errlen, "'nats' needs at least one nats://HOST:PORT URL");
                return -EINVAL;
        }
        return 0;
}

static int parse_pattern(char *dst, const char *tok, const char *key, char *err, size_t errlen) {
        char why[BCONF_PATTERN_MAX + 128];

        if (strlen(tok) >= BCONF_PATTERN_MAX) {
                (void)snprintf(err, errlen, "'%s': pattern longer than %d bytes", key, BCONF_PATTERN_MAX - 1);
                return -EINVAL;
        }
        if (subj_check_pattern(tok, why, sizeof(why)) < 0) {
                (void)snprintf(err, errlen, "'%s': %s", key, why);
                return -EINVAL;
        }
        strcpy(dst, tok);
        return 0;
}

static int parse_out(struct bconf *c, char *v, unsigned lineno, char *err, size_t errlen) {
        char *save = NULL, *tok = strtok_r(v, " \t", &save);

        if (!tok) {
                (void)snprintf(err, errlen, "'out' needs a topic pattern");
                return -EINVAL;
        }
        if (c->nout == BCONF_ROUTES_MAX) {
                (void)snprintf(err, errlen, "more than %u 'out' lines", BCONF_ROUTES_MAX);
                return -EINVAL;
        }
        if (parse_pattern(c->out[c->nout].pattern, tok, "out", err, errlen) < 0)
                return -EINVAL;
        c->out[c->nout].batch = false;
        while ((tok = strtok_r(NULL, " \t", &save))) {
                if (strcmp(tok, "batch") == 0 && !c->out[c->nout].batch) {
                        c->out[c->nout].batch = true;
                        continue;
                }
                (void)snprintf(err, errlen,
                               "'out': unexpected '%s' after the pattern (only 'batch', once: a topic's policy "
                               "decides how it goes)",
                               tok);
                return -EINVAL;
        }
        c->out[c->nout++].line = lineno;
        return 0;
}

static int parse_in(struct bconf *c, char *v, unsigned lineno, char *err, size_t errlen) {
        char *save = NULL, *tok = strtok_r(v, " \t", &save);
        struct bconf_in *in;

        if (!tok) {
                (void)snprintf(err, errlen, "'in' needs a topic pattern");
                return -EINVAL;
        }
        if (c->nin == BCONF_ROUTES_MAX) {
                (void)snprintf(err, errlen, "more than %u 'in' lines", BCONF_ROUTES_MAX);
                return -EINVAL;
        }
        in = &c->in[c->nin];
        *in = (struct bconf_in){.policy = BCONF_LATEST, .line = lineno};
        if (parse_pattern(in->pattern, tok, "in", err, errlen) < 0)
                return -EINVAL;
        while ((tok = strtok_r(NULL, " \t", &save))) {
                uint64_t n;

                if (strcmp(tok, "latest") == 0) {
                        in->policy = BCONF_LATEST;
                } else if (strcmp(tok, "reliable") == 0) {
                        in->policy = BCONF_RELIABLE;
                } else if (strncmp(tok, "slots=", 6) == 0) {
                        if (parse_num(tok + 6, 2, 1u << 24, &n) < 0 || (n & (n - 1))) {
                                (void)snprintf(err, errlen, "'in': slots must be a power of two from 2 to 16M, not '%s'",
                                               tok + 6);
                                return -EINVAL;
                        }
                        in->slot_count = (uint32_t)n;
                } else if (strncmp(tok, "slot_size=", 10) == 0) {
                        if (parse_num(tok + 10, 1, 1u << 30, &n) < 0) {
                                (void)snprintf(err, errlen, "'in': slot_size must be 1 to 1G, not '%s'", tok + 10);
                                return -EINVAL;
                        }
                        in->slot_size = (uint32_t)n;
                } else {
                        (void)snprintf(err, errlen,
                                       "'in': unknown word '%s' (expected latest, reliable, slots=N or slot_size=N)",
                                       tok);
                        return -EINVAL;
                }
        }
        if (in->policy == BCONF_RELIABLE && subj_has_wildcard(in->pattern)) {
                (void)snprintf(err, errlen,
                               "'in': a reliable route names one topic, without '*' or '>' (one stream each): '%s'",
                               in->pattern);
                return -EINVAL;
        }
        c->nin++;
        return 0;
}

struct num_key {
        const char *name;
        size_t offset;
        bool wide;
        uint64_t min, max;
        bool pow2;
};

#define NUM32(n, f, lo, hi, p2) {n, offsetof(struct bconf, f), false, lo, hi, p2}
#define NUM64(n, f, lo, hi) {n, offsetof(struct bconf, f), true, lo, hi, false}

static const struct num_key num_keys[] = { /* at most 32: bconf.num_set */
        NUM32("replicas", replicas, 1, 5, false),
        NUM32("buffer", buffer, 1, 1u << 20, false),
        NUM64("buffer_bytes", buffer_bytes, 1u << 16, 1ull << 40),
        NUM32("window", window, 1, 65536, false),
        NUM64("window_bytes", window_bytes, 1u << 16, 1ull << 32),
        NUM32("reorder", reorder, 0, 1u << 20, false),
        NUM64("reorder_bytes", reorder_bytes, 1u << 16, 1ull << 40),
        NUM32("reorder_ms", reorder_ms, 10, 3600000, false),
        NUM32("test_withhold", test_withhold, 0, 1u << 20, false),
        NUM32("scan_ms", scan_ms, 10, 3600000, false),
        NUM32("stats_ms", stats_ms, 10, 3600000, false),
        NUM32("dup_window_ms", dup_window_ms, 1000, 86400000, false),
        NUM32("max_age_s", max_age_s, 0, 365u * 86400, false),
        NUM32("slot_count", slot_count, 2, 1u << 24, true),
        NUM32("slot_size", slot_size, 1, 1u << 30, false),
};

_Static_assert(ARRAY_SIZE(num_keys) <= 32, "bconf.num_set has a bit for each number key");

int bconf_parse_line(struct bconf *c, const char *line, unsigned lineno, char *err, size_t errlen) {
        char buf[BCONF_LINE_MAX + 1], *key, *val, *eq, *hash;
        size_t n = strlen(line);

        if (n > BCONF_LINE_MAX) {
                (void)snprintf(err, errlen, "line longer than %u bytes", BCONF_LINE_MAX);
                return -EINVAL;
        }
        memcpy(buf, line, n + 1);
        hash = strchr(buf, '#');
        if (hash)
                *hash = '\0';
        key = trim(buf);
        if (*key == '\0')
                return 0;
        eq = strchr(key, '=');
        if (!eq) {
                (void)snprintf(err, errlen, "expected 'key = value', got '%s'", key);
                return -EINVAL;
        }
        *eq = '\0';
        val = trim(eq + 1);
        key = trim(key);

        if (strcmp(key, "out") == 0)
                return parse_out(c, val, lineno, err, errlen);
        if (strcmp(key, "in") == 0)
                return parse_in(c, val, lineno, err, errlen);
        if (strcmp(key, "nats") == 0)
                return parse_servers(c, val, err, errlen);
        if (strcmp(key, "socket") == 0)
                return set_str(&c->socket, val, key, err, errlen);
        if (strcmp(key, "state_dir") == 0)
                return set_str(&c->state_dir, val, key, err, errlen);
        if (strcmp(key, "name") == 0)
                return set_str(&c->name, val, key, err, errlen);
        if (strcmp(key, "prefix") == 0) {
                if (!c->prefix && !subj_prefix_ok(val)) {
                        (void)snprintf(err, errlen,
                                       "'prefix': '%s' is not dot-separated tokens of A-Z a-z 0-9 _ -", val);
                        return -EINVAL;
                }
                return set_str(&c->prefix, val, key, err, errlen);
        }
        if (strcmp(key, "send_asap") == 0) {
                if (c->send_asap_set) {
                        (void)snprintf(err, errlen, "'send_asap' is set twice");
                        return -EINVAL;
                }
                c->send_asap_set = true;
                if (strcmp(val, "yes") == 0 || strcmp(val, "true") == 0) {
                        c->send_asap = true;
                } else if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0) {
                        c->send_asap = false;
                } else {
                        (void)snprintf(err, errlen, "'send_asap': '%s' is not yes or no", val);
                        return -EINVAL;
                }
                return 0;
        }
        if (strcmp(key, "bus_id") == 0) {
                if (c->have_bus_id) {
                        (void)snprintf(err, errlen, "'bus_id' is set twice");
                        return -EINVAL;
                }
                if (uuid_parse(val, c->bus_id) < 0) {
                        (void)snprintf(err, errlen, "'bus_id': '%s' is not a uuid", val);
                        return -EINVAL;
                }
                c->have_bus_id = true;
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(num_keys); i++) {
                const struct num_key *k = &num_keys[i];
                uint64_t v;

                if (strcmp(key, k->name) != 0)
                        continue;
                if (c->num_set & (UINT32_C(1) << i)) {
                        (void)snprintf(err, errlen, "'%s' is set twice", key);
                        return -EINVAL;
                }
                if (parse_num(val, k->min, k->max, &v) < 0 || (k->pow2 && (v & (v - 1)))) {
                        (void)snprintf(err, errlen, "'%s': '%s' is not a number from %llu to %llu%s", key, val,
                                       (unsigned long long)k->min, (unsigned long long)k->max,
                                       k->pow2 ? " and a power of two" : "");
                        return -EINVAL;
                }
                if (k->wide)
                        *(uint64_t *)((char *)c + k->offset) = v;
                else
                        *(uint32_t *)((char *)c + k->offset) = (uint32_t)v;
                c->num_set |= UINT32_C(1) << i;
                return 0;
        }
        (void)snprintf(err, errlen, "unknown key '%s'", key);
        return -EINVAL;
}

int bconf_load_file(struct bconf *c, const char *path, char *err, size_t errlen) {
        FILE *f = fopen(path, "re");
        char line[BCONF_LINE_MAX + 2], why[BCONF_LINE_MAX + 256];
        unsigned lineno = 0;
        int r = 0;

        if (!f) {
                r = -errno;
                (void)snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        while (fgets(line, sizeof(line), f)) {
                size_t n = strlen(line);

                lineno++;
                if (n && line[n - 1] == '\n') {
                        line[--n] = '\0';
                } else if (!feof(f)) {
                        (void)snprintf(err, errlen, "%s:%u: line longer than %u bytes", path, lineno, BCONF_LINE_MAX);
                        r = -EINVAL;
                        break;
                }
                if (strlen(line) != n) {
                        (void)snprintf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
                        r = -EINVAL;
                        break;
                }
                r = bconf_parse_line(c, line, lineno, why, sizeof(why));
                if (r < 0) {
                        (void)snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
                        break;
                }
        }
        (void)fclose(f);
        return r;
}

int bconf_check(const struct bconf *c, const char *path, char *err, size_t errlen) {
        /* Two reliable routes for one topic would consume its stream twice. */
        for (unsigned i = 0; i < c->nin; i++)
                for (unsigned j = 0; j < i; j++)
                        if (c->in[i].policy == BCONF_RELIABLE && c->in[j].policy == BCONF_RELIABLE &&
                            strcmp(c->in[i].pattern, c->in[j].pattern) == 0) {
                                (void)snprintf(err, errlen, "%s:%u: reliable topic '%s' already comes in at line %u",
                                               path, c->in[i].line, c->in[i].pattern, c->in[j].line);
                                return -EINVAL;
                        }
        return 0;
}
