/* SPDX-License-Identifier: MIT */
/*
 * conf.c: what zcbusd can be told and how loudly it speaks. It owns the
 * built-in defaults, the config file parser, the range of every setting,
 * and the log sink (stderr in the foreground, syslog as a daemon).
 *
 * The parser works on lines and buffers, not on a FILE, so that unit tests
 * can feed it text; conf_load_file() only reads the file and applies it to
 * a copy, so a bad file never leaves a half-applied configuration. Every
 * number is parsed strictly (digits only, an optional K/M/G suffix, range
 * checked), because a typo in a limit must stop the broker, not become 0.
 *
 * It also owns the access rules (`rule = NAME PATTERN action=who ...`)
 * and their one decision, conf_access(): the first rule whose glob matches
 * the topic decides, no match denies, and root and the broker's own uid
 * (one trust domain with the broker) are always allowed. Rules are the
 * only owned memory of a conf; a file's rules replace the old ones whole.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "macro.h"
#include "seg.h"
#include "zcbus.h"

enum conf_type {
        CONF_U32,
        CONF_U32_POW2,
        CONF_U64,
        CONF_POLICY,
        CONF_BOOL,
        CONF_SOCKET,
        CONF_MODE,  /* octal permission bits */
        CONF_GROUP, /* a gid number */
        CONF_RULE,
        CONF_STALL, /* PATTERN MS */
        CONF_PIDFILE, /* an absolute path */
};

struct conf_key {
        const char *name;
        enum conf_type type;
        size_t offset;
        uint64_t min, max;
};

#define KEY(n, t, field, lo, hi) {n, t, offsetof(struct conf, field), lo, hi}

static const struct conf_key conf_keys[] = {
        KEY("socket", CONF_SOCKET, socket, 0, 0),
        KEY("slot_count", CONF_U32_POW2, slot_count, 2, SEG_SLOT_COUNT_MAX),
        KEY("slot_size", CONF_U32, slot_size, 1, SEG_SLOT_SIZE_MAX),
        KEY("policy", CONF_POLICY, policy, 0, 0),
        KEY("max_producers", CONF_U32, max_producers, 1, SEG_PRODUCERS_MAX),
        KEY("max_subscribers", CONF_U32, max_subscribers, 1, SEG_SUBS_MAX),
        KEY("sub_uids", CONF_U32, sub_uids, 1, SEG_TABLES_MAX),
        KEY("max_topics", CONF_U32, max_topics, 1, UINT32_C(1) << 20),
        KEY("max_sessions", CONF_U32, max_sessions, 1, UINT32_C(1) << 20),
        KEY("max_segment_bytes", CONF_U64, max_segment_bytes, 4096, SEG_RING_BYTES_MAX),
        KEY("max_total_bytes", CONF_U64, max_total_bytes, 4096, UINT64_C(1) << 50),
        KEY("verbose", CONF_BOOL, verbose, 0, 1),
        KEY("socket_mode", CONF_MODE, socket_mode, 0, 0777),
        KEY("socket_group", CONF_GROUP, socket_group, 0, UINT32_MAX - 1),
        KEY("hello_timeout_ms", CONF_U32, hello_timeout_ms, 10, 60000),
        KEY("max_unauthenticated", CONF_U32, max_unauthenticated, 1, 65536),
        KEY("repair_timeout_ms", CONF_U32, repair_timeout_ms, 10, 3600000),
        KEY("uid_max_sessions", CONF_U32, uid_max_sessions, 1, UINT32_C(1) << 20),
        KEY("uid_max_topics", CONF_U32, uid_max_topics, 1, UINT32_C(1) << 20),
        KEY("uid_max_entries", CONF_U32, uid_max_entries, 1, UINT32_C(1) << 24),
        KEY("uid_max_bytes", CONF_U64, uid_max_bytes, 4096, UINT64_C(1) << 50),
        KEY("session_max_topics", CONF_U32, session_max_topics, 1, UINT32_C(1) << 20),
        KEY("session_max_entries", CONF_U32, session_max_entries, 1, 4096), /* PEER_ENTRIES_MAX */
        KEY("session_max_bytes", CONF_U64, session_max_bytes, 4096, UINT64_C(1) << 50),
        KEY("rule", CONF_RULE, rules, 0, 0),
        KEY("stall_timeout_ms", CONF_U32, stall_timeout_ms, 0, 3600000),
        KEY("stall", CONF_STALL, stalls, 0, 3600000),
        KEY("pidfile", CONF_PIDFILE, pidfile, 0, 0),
};

void conf_init(struct conf *c) {
        *c = (struct conf){
                .slot_count = 256,
                .slot_size = 4096,
                .policy = ZCBUS_POLICY_RELIABLE,
                .max_producers = 16,
                .max_subscribers = 256,
                .sub_uids = 8,
                .max_topics = 1024,
                .max_sessions = 1024,
                .max_segment_bytes = UINT64_C(1) << 30,
                .max_total_bytes = UINT64_C(8) << 30,
                .socket_mode = 0660,
                .socket_group = CONF_GROUP_UNSET,
                .hello_timeout_ms = 1000,
                .max_unauthenticated = 64,
                .repair_timeout_ms = 30000,
                .stall_timeout_ms = 10000,
                .uid_max_sessions = 256,
                .uid_max_topics = 256,
                .uid_max_entries = 4096,
                .uid_max_bytes = UINT64_C(2) << 30,
                .session_max_topics = 256,
                .session_max_entries = 4096,
                .session_max_bytes = UINT64_C(2) << 30,
                .verbose = false,
        };
}

void conf_deinit(struct conf *c) {
        free(c->rules);
        c->rules = NULL;
        c->nrules = c->rules_cap = 0;
}

int conf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        unsigned long long v;
        uint64_t mult = 1;
        char *end;

        /* strtoull would accept spaces, a sign, and wrap "-1" around. */
        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (end == s)
                return -EINVAL;
        switch (*end) {
        case '\0':
                break;
        case 'K': case 'k':
                mult = UINT64_C(1) << 10;
                end++;
                break;
        case 'M': case 'm':
                mult = UINT64_C(1) << 20;
                end++;
                break;
        case 'G': case 'g':
                mult = UINT64_C(1) << 30;
                end++;
                break;
        default:
                return -EINVAL;
        }
        if (*end != '\0')
                return -EINVAL;
        if (v > UINT64_MAX / mult)
                return -ERANGE;
        v *= mult;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

static char *trim(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                *--e = '\0';
        return s;
}

static int apply_number(struct conf *c, const struct conf_key *k, const char *value, char *err, size_t errlen) {
        uint64_t v;
        int r;

        r = conf_parse_u64(value, k->min, k->max, &v);
        if (r == -ERANGE) {
                (void)snprintf(err, errlen, "%s: '%s' is out of range (%llu..%llu)", k->name, value,
                               (unsigned long long)k->min, (unsigned long long)k->max);
                return -EINVAL;
        }
        if (r < 0) {
                (void)snprintf(err, errlen, "%s: '%s' is not a number (digits with an optional K, M or G suffix)",
                               k->name, value);
                return -EINVAL;
        }
        if (k->type == CONF_U32_POW2 && (v & (v - 1))) {
                (void)snprintf(err, errlen, "%s: %llu is not a power of two", k->name, (unsigned long long)v);
                return -EINVAL;
        }
        if (k->type == CONF_U64)
                *(uint64_t *)((uint8_t *)c + k->offset) = v;
        else
                *(uint32_t *)((uint8_t *)c + k->offset) = (uint32_t)v;
        return 0;
}

static const char *const action_names[CONF_ACT_COUNT] = {
        [CONF_ACT_PUBLISH] = "publish",
        [CONF_ACT_SUBSCRIBE] = "subscribe",
        [CONF_ACT_CREATE] = "create",
};

const char *conf_action_name(enum conf_action a) {
        return a < CONF_ACT_COUNT ? action_names[a] : "?";
}

static bool rule_name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CONF_RULE_NAME_MAX)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '_' || *s == '-' || *s == '.'))
                        return false;
        return true;
}

/* "any", "none", or a comma-separated list of uid:N and gid:N. */
static int parse_who(const char *name, const char *action, char *list, struct conf_who *ret, char *err,
                     size_t errlen) {
        struct conf_who w = {0};
        char *save = NULL;

        if (strcmp(list, "none") == 0) {
                *ret = w;
                return 0;
        }
        for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                uint64_t id = 0;
                uint8_t kind;

                if (strcmp(item, "any") == 0)
                        kind = CONF_WHO_ANY;
                else if (strncmp(item, "uid:", 4) == 0 || strncmp(item, "gid:", 4) == 0) {
                        kind = item[0] == 'u' ? CONF_WHO_UID : CONF_WHO_GID;
                        if (conf_parse_u64(item + 4, 0, UINT32_MAX - 1, &id) < 0 || strpbrk(item + 4, "KkMmGg")) {
                                (void)snprintf(err, errlen,
                                               "rule '%s': %s: '%.32s' is not a %s number (names are not looked up)",
                                               name, action, item, kind == CONF_WHO_UID ? "uid" : "gid");
                                return -EINVAL;
                        }
                } else {
                        (void)snprintf(err, errlen, "rule '%s': %s: '%.32s' is not any, none, uid:N or gid:N", name,
                                       action, item);
                        return -EINVAL;
                }
                if (w.n >= CONF_RULE_WHO_MAX) {
                        (void)snprintf(err, errlen, "rule '%s': %s: more than %u entries", name, action,
                                       CONF_RULE_WHO_MAX);
                        return -EINVAL;
                }
                w.v[w.n].kind = kind;
                w.v[w.n].id = (uint32_t)id;
                w.n++;
        }
        if (w.n == 0) {
                (void)snprintf(err, errlen, "rule '%s': %s: empty list (say none)", name, action);
                return -EINVAL;
        }
        *ret = w;
        return 0;
}

/* rule = NAME PATTERN [publish=WHO] [subscribe=WHO] [create=WHO] */
static int parse_stall(struct conf *c, const struct conf_key *k, char *value, char *err, size_t errlen) {
        char *save = NULL, *pattern = strtok_r(value, " \t", &save), *ms = strtok_r(NULL, " \t", &save);
        uint64_t v;

        if (!pattern || !ms || strtok_r(NULL, " \t", &save)) {
                (void)snprintf(err, errlen, "stall: want 'stall = PATTERN MILLISECONDS'");
                return -EINVAL;
        }
        if (strlen(pattern) > CONF_RULE_PATTERN_MAX) {
                (void)snprintf(err, errlen, "stall: pattern longer than %u bytes", CONF_RULE_PATTERN_MAX);
                return -EINVAL;
        }
        if (strpbrk(ms, "KkMmGg") || conf_parse_u64(ms, k->min, k->max, &v) < 0) {
                (void)snprintf(err, errlen, "stall: '%.64s' is not a number of milliseconds in 0..%llu", ms,
                               (unsigned long long)k->max);
                return -EINVAL;
        }
        if (c->nstalls >= CONF_STALLS_MAX) {
                (void)snprintf(err, errlen, "stall: more than %u lines", CONF_STALLS_MAX);
                return -EINVAL;
        }
        struct conf_stall *s = &c->stalls[c->nstalls++];
        strcpy(s->pattern, pattern);
        s->ms = (uint32_t)v;
        return 0;
}

uint32_t conf_stall_ms(const struct conf *c, const char *topic) {
        for (uint32_t i = 0; i < c->nstalls; i++)
                if (fnmatch(c->stalls[i].pattern, topic, 0) == 0)
                        return c->stalls[i].ms;
        return c->stall_timeout_ms;
}

static int parse_rule(struct conf *c, char *value, char *err, size_t errlen) {
        struct conf_rule rule = {0};
        bool seen[CONF_ACT_COUNT] = {0};
        char *save = NULL, *name, *pattern, *field;

        name = strtok_r(value, " \t", &save);
        pattern = strtok_r(NULL, " \t", &save);
        if (!name || !rule_name_valid(name)) {
                (void)snprintf(err, errlen, "rule: '%.64s' is not a name (1 to %u of A-Z a-z 0-9 _ - .)",
                               name ? name : "", CONF_RULE_NAME_MAX);
                return -EINVAL;
        }
        if (!pattern) {
                (void)snprintf(err, errlen, "rule '%s': missing topic pattern (rule = NAME PATTERN action=who ...)",
                               name);
                return -EINVAL;
        }
        if (strlen(pattern) > CONF_RULE_PATTERN_MAX) {
                (void)snprintf(err, errlen, "rule '%s': pattern longer than %u bytes", name, CONF_RULE_PATTERN_MAX);
                return -EINVAL;
        }
        for (uint32_t i = 0; i < c->nrules; i++)
                if (strcmp(c->rules[i].name, name) == 0) {
                        (void)snprintf(err, errlen, "rule '%s': a rule of that name exists already", name);
                        return -EINVAL;
                }
        strcpy(rule.name, name);
        strcpy(rule.pattern, pattern);
        while ((field = strtok_r(NULL, " \t", &save))) {
                char *eq = strchr(field, '=');
                unsigned a;
                int r;

                if (eq)
                        *eq = '\0';
                for (a = 0; a < CONF_ACT_COUNT; a++)
                        if (strcmp(field, action_names[a]) == 0)
                                break;
                if (!eq || a == CONF_ACT_COUNT) {
                        (void)snprintf(err, errlen, "rule '%s': '%.32s' is not publish=, subscribe= or create=", name,
                                       field);
                        return -EINVAL;
                }
                if (seen[a]) {
                        (void)snprintf(err, errlen, "rule '%s': %s= given twice", name, field);
                        return -EINVAL;
                }
                seen[a] = true;
                /* strtok_r's state points past this field: parse_who may
                 * tokenize its own copy. */
                char list[CONF_LINE_MAX + 1];
                (void)snprintf(list, sizeof(list), "%s", eq + 1);
                r = parse_who(name, field, list, &rule.who[a], err, errlen);
                if (r < 0)
                        return r;
        }
        if (c->nrules >= CONF_RULES_MAX) {
                (void)snprintf(err, errlen, "rule '%s': more than %u rules", name, CONF_RULES_MAX);
                return -EINVAL;
        }
        if (c->nrules == c->rules_cap) {
                uint32_t cap = c->rules_cap ? c->rules_cap * 2 : 8;
                struct conf_rule *v = realloc(c->rules, cap * sizeof(*v));
                if (!v) {
                        (void)snprintf(err, errlen, "rule '%s': out of memory", name);
                        return -ENOMEM;
                }
                c->rules = v;
                c->rules_cap = cap;
        }
        c->rules[c->nrules++] = rule;
        return 0;
}

static bool who_has(const struct conf_who *w, uint32_t uid, uint32_t gid) {
        for (uint32_t i = 0; i < w->n; i++)
                if (w->v[i].kind == CONF_WHO_ANY || (w->v[i].kind == CONF_WHO_UID && w->v[i].id == uid) ||
                    (w->v[i].kind == CONF_WHO_GID && w->v[i].id == gid))
                        return true;
        return false;
}

int conf_access(const struct conf *c, uint32_t uid, uint32_t gid, const char *topic, enum conf_action action,
                char *err, size_t errlen) {
        /* Root can do anything to the broker anyway, and the broker's
         * own uid can ptrace it: one trust domain. */
        if (uid == 0 || uid == (uint32_t)geteuid())
                return 0;
        for (uint32_t i = 0; i < c->nrules; i++) {
                const struct conf_rule *r = &c->rules[i];

                if (fnmatch(r->pattern, topic, 0) != 0)
                        continue;
                if (who_has(&r->who[action], uid, gid))
                        return 0;
                (void)snprintf(err, errlen, "rule '%s' does not let uid %u gid %u %s topic '%.64s'", r->name,
                               (unsigned)uid, (unsigned)gid, action_names[action], topic);
                return -EACCES;
        }
        (void)snprintf(err, errlen, "no rule matches topic '%.64s': uid %u may not %s it (default deny)", topic,
                       (unsigned)uid, action_names[action]);
        return -EACCES;
}

static int apply_mode(struct conf *c, const struct conf_key *k, const char *value, char *err, size_t errlen) {
        unsigned long v = 0;
        const char *p = value;

        for (; *p; p++) {
                if (*p < '0' || *p > '7' || p - value >= 5) {
                        (void)snprintf(err, errlen, "%s: '%.32s' is not octal permission bits (like 0660)", k->name,
                                       value);
                        return -EINVAL;
                }
                v = v * 8 + (unsigned long)(*p - '0');
        }
        if (v > k->max) {
                (void)snprintf(err, errlen, "%s: '%.32s' is out of range (0..0777)", k->name, value);
                return -EINVAL;
        }
        *(uint32_t *)((uint8_t *)c + k->offset) = (uint32_t)v;
        return 0;
}

int conf_parse_line(struct conf *c, const char *line, char *err, size_t errlen) {
        char buf[CONF_LINE_MAX + 2];
        char *s, *eq, *key, *value;
        size_t n;

        n = strnlen(line, sizeof(buf));
        if (n > CONF_LINE_MAX) {
                (void)snprintf(err, errlen, "line too long (more than %u bytes)", CONF_LINE_MAX);
                return -EINVAL;
        }
        memcpy(buf, line, n + 1);
        s = trim(buf);
        if (*s == '\0' || *s == '#')
                return 0;
        eq = strchr(s, '=');
        if (!eq) {
                (void)snprintf(err, errlen, "expected 'key = value', got '%.64s'", s);
                return -EINVAL;
        }
        *eq = '\0';
        key = trim(s);
        value = trim(eq + 1);
        if (*key == '\0') {
                (void)snprintf(err, errlen, "missing key before '='");
                return -EINVAL;
        }

        for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++) {
                const struct conf_key *k = &conf_keys[i];

                if (strcmp(k->name, key) != 0)
                        continue;
                if (*value == '\0') {
                        (void)snprintf(err, errlen, "%s: missing value", k->name);
                        return -EINVAL;
                }
                switch (k->type) {
                case CONF_SOCKET:
                        if (strlen(value) >= sizeof(c->socket)) {
                                (void)snprintf(err, errlen, "socket: path is longer than %zu bytes",
                                               sizeof(c->socket) - 1);
                                return -EINVAL;
                        }
                        strcpy(c->socket, value);
                        return 0;
                case CONF_POLICY:
                        if (strcmp(value, "reliable") == 0)
                                c->policy = ZCBUS_POLICY_RELIABLE;
                        else if (strcmp(value, "latest") == 0)
                                c->policy = ZCBUS_POLICY_LATEST;
                        else {
                                (void)snprintf(err, errlen, "policy: '%.64s' is neither 'reliable' nor 'latest'",
                                               value);
                                return -EINVAL;
                        }
                        return 0;
                case CONF_BOOL:
                        if (strcmp(value, "0") == 0)
                                c->verbose = false;
                        else if (strcmp(value, "1") == 0)
                                c->verbose = true;
                        else {
                                (void)snprintf(err, errlen, "%s: '%.64s' is neither 0 nor 1", k->name, value);
                                return -EINVAL;
                        }
                        return 0;
                case CONF_MODE:
                        return apply_mode(c, k, value, err, errlen);
                case CONF_RULE:
                        return parse_rule(c, value, err, errlen);
                case CONF_STALL:
                        return parse_stall(c, k, value, err, errlen);
                case CONF_PIDFILE:
                        if (value[0] != '/') {
                                (void)snprintf(err, errlen, "pidfile: '%.64s' is not an absolute path", value);
                                return -EINVAL;
                        }
                        if (strlen(value) >= sizeof(c->pidfile)) {
                                (void)snprintf(err, errlen, "pidfile: path is longer than %zu bytes",
                                               sizeof(c->pidfile) - 1);
                                return -EINVAL;
                        }
                        strcpy(c->pidfile, value);
                        return 0;
                case CONF_GROUP:
                        if (strpbrk(value, "KkMmGg")) {
                                (void)snprintf(err, errlen, "%s: '%.64s' is not a gid number", k->name, value);
                                return -EINVAL;
                        }
                        return apply_number(c, k, value, err, errlen);
                default:
                        return apply_number(c, k, value, err, errlen);
                }
        }
        (void)snprintf(err, errlen, "unknown key '%.64s'", key);
        return -EINVAL;
}

int conf_parse(struct conf *c, const char *buf, size_t len, const char *name, char *err, size_t errlen) {
        char line[CONF_LINE_MAX + 1];
        char msg[256];
        size_t pos = 0;
        unsigned lineno = 0;

        while (pos < len) {
                const char *nl = memchr(buf + pos, '\n', len - pos);
                size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
                int r;

                lineno++;
                if (n > CONF_LINE_MAX) {
                        (void)snprintf(err, errlen, "%s:%u: line too long (more than %u bytes)", name, lineno,
                                       CONF_LINE_MAX);
                        return -EINVAL;
                }
                if (memchr(buf + pos, '\0', n)) {
                        (void)snprintf(err, errlen, "%s:%u: NUL byte in line", name, lineno);
                        return -EINVAL;
                }
                memcpy(line, buf + pos, n);
                line[n] = '\0';
                r = conf_parse_line(c, line, msg, sizeof(msg));
                if (r < 0) {
                        (void)snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
                        return r;
                }
                pos += n + (nl ? 1 : 0);
        }
        return 0;
}

static int read_file(const char *path, char **ret_buf, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negerrno();
        if (fstat(fd, &st) < 0)
                return negerrno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        buf = malloc(CONF_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, CONF_FILE_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negerrno();
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > CONF_FILE_MAX)
                        return -EFBIG;
        }
        *ret_buf = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int conf_load_file(const char *path, struct conf *c, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        struct conf tmp = *c;
        size_t len = 0;
        int r;

        r = read_file(path, &buf, &len);
        if (r < 0) {
                (void)snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        /* The rules and stall lines are the file's alone: they start empty. */
        tmp.rules = NULL;
        tmp.nrules = tmp.rules_cap = 0;
        tmp.nstalls = 0;
        r = conf_parse(&tmp, buf, len, path, err, errlen);
        if (r < 0) {
                conf_deinit(&tmp);
                return r;
        }
        conf_deinit(c);
        *c = tmp;
        return 0;
}

int conf_check(const struct conf *c, char *err, size_t errlen) {
        struct seg_params p = {
                .slot_count = c->slot_count,
                .slot_size = c->slot_size,
                .policy = c->policy,
                .max_producers = c->max_producers,
                .max_subs = c->max_subscribers,
                .sub_tables = c->sub_uids,
        };
        uint64_t ring, bytes;
        int r;

        r = seg_ring_size(&p, &ring);
        if (r < 0) {
                (void)snprintf(err, errlen, "default topic geometry (slot_count %u, slot_size %u) is %s",
                               c->slot_count, c->slot_size, r == -E2BIG ? "too large" : "invalid");
                return -EINVAL;
        }
        bytes = seg_topic_bytes(&p, ring);
        if (bytes > c->max_segment_bytes || bytes > c->max_total_bytes || bytes > c->uid_max_bytes ||
            bytes > c->session_max_bytes) {
                (void)snprintf(err, errlen,
                               "a default topic needs %llu bytes, over max_segment_bytes %llu, max_total_bytes %llu, "
                               "uid_max_bytes %llu or session_max_bytes %llu",
                               (unsigned long long)bytes, (unsigned long long)c->max_segment_bytes,
                               (unsigned long long)c->max_total_bytes, (unsigned long long)c->uid_max_bytes,
                               (unsigned long long)c->session_max_bytes);
                return -EINVAL;
        }
        return 0;
}

/* --- differences, for SIGHUP ------------------------------------------- */

static bool who_equal(const struct conf_who *a, const struct conf_who *b) {
        if (a->n != b->n)
                return false;
        for (uint32_t i = 0; i < a->n; i++)
                if (a->v[i].kind != b->v[i].kind || a->v[i].id != b->v[i].id)
                        return false;
        return true;
}

static bool rules_equal(const struct conf *a, const struct conf *b) {
        if (a->nrules != b->nrules)
                return false;
        for (uint32_t i = 0; i < a->nrules; i++) {
                const struct conf_rule *x = &a->rules[i], *y = &b->rules[i];
                if (strcmp(x->name, y->name) != 0 || strcmp(x->pattern, y->pattern) != 0)
                        return false;
                for (unsigned act = 0; act < CONF_ACT_COUNT; act++)
                        if (!who_equal(&x->who[act], &y->who[act]))
                                return false;
        }
        return true;
}

static bool stalls_equal(const struct conf *a, const struct conf *b) {
        if (a->nstalls != b->nstalls)
                return false;
        for (uint32_t i = 0; i < a->nstalls; i++)
                if (strcmp(a->stalls[i].pattern, b->stalls[i].pattern) != 0 || a->stalls[i].ms != b->stalls[i].ms)
                        return false;
        return true;
}

static void format_value(const struct conf *c, const struct conf_key *k, char *buf, size_t len) {
        const void *f = (const uint8_t *)c + k->offset;

        switch (k->type) {
        case CONF_U32:
        case CONF_U32_POW2:
                (void)snprintf(buf, len, "%u", *(const uint32_t *)f);
                break;
        case CONF_U64:
                (void)snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)f);
                break;
        case CONF_POLICY:
                (void)snprintf(buf, len, "%s", c->policy == ZCBUS_POLICY_LATEST ? "latest" : "reliable");
                break;
        case CONF_BOOL:
                (void)snprintf(buf, len, "%d", c->verbose ? 1 : 0);
                break;
        case CONF_SOCKET:
        case CONF_PIDFILE:
                if (*(const char *)f)
                        (void)snprintf(buf, len, "'%s'", (const char *)f);
                else
                        (void)snprintf(buf, len, "unset");
                break;
        case CONF_MODE:
                (void)snprintf(buf, len, "%04o", (unsigned)c->socket_mode);
                break;
        case CONF_GROUP:
                if (c->socket_group == CONF_GROUP_UNSET)
                        (void)snprintf(buf, len, "unset");
                else
                        (void)snprintf(buf, len, "%u", (unsigned)c->socket_group);
                break;
        case CONF_RULE:
                (void)snprintf(buf, len, "%u rule%s", c->nrules, c->nrules == 1 ? "" : "s");
                break;
        case CONF_STALL:
                (void)snprintf(buf, len, "%u line%s", c->nstalls, c->nstalls == 1 ? "" : "s");
                break;
        }
}

void conf_diff(const struct conf *a, const struct conf *b,
               void (*fn)(const char *key, const char *was, const char *now, void *userdata), void *userdata) {
        for (size_t i = 0; i < ARRAY_SIZE(conf_keys); i++) {
                const struct conf_key *k = &conf_keys[i];
                char was[CONF_PIDFILE_MAX + 3], now[CONF_PIDFILE_MAX + 3];
                bool same;

                format_value(a, k, was, sizeof(was));
                format_value(b, k, now, sizeof(now));
                if (k->type == CONF_RULE)
                        same = rules_equal(a, b);
                else if (k->type == CONF_STALL)
                        same = stalls_equal(a, b);
                else
                        same = strcmp(was, now) == 0;
                if (same)
                        continue;
                if (strcmp(was, now) == 0) /* as many lines, other contents */
                        (void)snprintf(now + strlen(now), sizeof(now) - strlen(now), ", changed");
                fn(k->name, was, now, userdata);
        }
}

/* --- log sink ------------------------------------------------------------ */

static bool log_syslog;
static bool log_journal; /* stderr is the journal: "<N>" prefixes */
static bool log_verbose;
static char log_last_error[1024]; /* as large as a message: never truncated */

/* systemd sets $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects
 * stdout/stderr to; a child whose stderr was redirected since sees other
 * numbers. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int end = 0;

        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || e[end] != '\0')
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void conf_log_setup(bool use_syslog, bool verbose) {
        log_syslog = use_syslog;
        log_journal = !use_syslog && stderr_is_journal();
        log_verbose = verbose;
        if (use_syslog)
                openlog("zcbusd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void conf_log_set_verbose(bool verbose) {
        log_verbose = verbose;
}

bool conf_log_verbose(void) {
        return log_verbose;
}

void conf_log(int prio, const char *fmt, ...) {
        char msg[1024];
        va_list ap;
        int saved = errno;

        if (prio == LOG_DEBUG && !log_verbose)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (prio <= LOG_ERR)
                (void)snprintf(log_last_error, sizeof(log_last_error), "%s", msg);
        if (log_syslog)
                syslog(prio, "%s", msg);
        else if (log_journal)
                (void)fprintf(stderr, "<%d>%s\n", prio, msg); /* the journal names us */
        else
                (void)fprintf(stderr, "zcbusd: %s\n", msg);
        errno = saved;
}

const char *conf_log_last_error(void) {
        return log_last_error;
}
