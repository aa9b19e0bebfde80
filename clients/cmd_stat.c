/* SPDX-License-Identifier: MIT */
/*
 * cmd_stat.c: who holds what. `zcbus stat TOPIC` shows one topic and each
 * of its producer and subscriber entries (pid, uid, comm, session, state,
 * position, lag, holds, counters, and which subscriber gates a reliable
 * topic); `zcbus top` shows every topic (or those matching patterns)
 * again each interval, in place, with rates per second from the counters'
 * deltas; `zcbus topic rm` deletes idle topics. Every view has --json
 * (top: one object per refresh, one line each).
 *
 * Everything comes from the broker (zcbus_topic_stat): its own records of
 * sessions, uids and pids, and the counters it reads from the segments,
 * which the peers write (statistics, not facts). Rates compare an entry
 * with the same role, index and session in the previous refresh; the
 * broker sends entries in role and index order, so that is one merge.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "zcbus.h"
#include "cli.h"
#include "json.h"

/* A broker's answer is untrusted: never hold more entries than a topic
 * can have (1024 producers and 4096 subscribers), with room to spare. */
#define STAT_ENTRIES_MAX 8192u
#define STAT_PAGE 256u

enum { OPT_JSON = 0x100 };

struct snap {
        char name[ZCBUS_TOPIC_MAX + 1];
        int err; /* 0, or why it could not be seen (-EACCES) */
        zcbus_topic_stats st;
        zcbus_stat_entry *v;
        unsigned n;
};

static void snaps_free(struct snap *s, unsigned n) {
        for (unsigned i = 0; s && i < n; i++)
                free(s[i].v);
        free(s);
}

/* The whole stat of topic: every entry. */
static int stat_fetch(zcbus *bus, const char *topic, zcbus_topic_stats *st, zcbus_stat_entry **ret_v,
                      unsigned *ret_n) {
        _cleanup_free_ zcbus_stat_entry *v = NULL;
        unsigned cap = STAT_PAGE, n = 0;
        int r;

        v = malloc(cap * sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (;;) {
                st->size = sizeof(*st);
                r = zcbus_topic_stat(bus, topic, st, n, v + n, cap - n);
                if (r < 0)
                        return r;
                if ((unsigned)r > cap - n)
                        return -EBADMSG;
                n += (unsigned)r;
                /* Entries may come and go between pages: stop at a short
                 * answer as well as at the total. */
                if (r == 0 || n >= st->entries || n >= STAT_ENTRIES_MAX)
                        break;
                unsigned want = MIN(st->entries, STAT_ENTRIES_MAX);
                if (want > cap) {
                        zcbus_stat_entry *nv = realloc(v, want * sizeof(*v));
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                        cap = want;
                }
        }
        *ret_v = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static bool is_pub(const zcbus_stat_entry *e) {
        return e->role == ZCBUS_ROLE_PUB;
}

static void id_text(const uint8_t id[16], char out[37]) {
        static const uint8_t zero[16];

        if (memcmp(id, zero, 16) == 0)
                (void)snprintf(out, 37, "-");
        else
                uuid_unparse_lower(id, out);
}

/* A number, or "-" when it does not apply. */
static const char *num(char *buf, size_t len, bool applies, uint64_t v) {
        if (!applies)
                return "-";
        (void)snprintf(buf, len, "%" PRIu64, v);
        return buf;
}

static const char *uid_text(char *buf, size_t len, uint32_t uid) {
        return num(buf, len, uid != ZCBUS_UID_UNKNOWN, uid);
}

static const char *comm_text(const zcbus_stat_entry *e, char *out) {
        if (!e->comm[0])
                return "-";
        cli_name_text(e->comm, out);
        return out;
}

/* The first gating subscriber, or NULL. */
static const zcbus_stat_entry *gating_entry(const zcbus_stat_entry *v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (v[i].flags & ZCBUS_ENTRY_GATING)
                        return &v[i];
        return NULL;
}

/* ---- stat ------------------------------------------------------------------ */

/* The sessions among the entries that said something about themselves
 * (zcbus_set_info), each once, in entry order: indexes into peers. */
static unsigned talking_sessions(const zcbus_stat_entry *v, unsigned n, const zcbus_peer *peers,
                                 const zcbus_peer *const *ix, unsigned npeers, const zcbus_peer **out, bool *told) {
        unsigned k = 0;

        for (unsigned i = 0; i < n; i++) {
                const zcbus_peer *p = cli_peer_find(ix, npeers, v[i].session_id);

                if (!p || told[p - peers] || (!p->label[0] && !p->ncounters))
                        continue;
                told[p - peers] = true;
                out[k++] = p;
        }
        return k;
}

static void print_stat_table(const char *name, const zcbus_topic_stats *st, const zcbus_stat_entry *v,
                             unsigned n, const zcbus_peer *const *talk, unsigned ntalk) {
        char nm[4 * ZCBUS_TOPIC_MAX + 1], id[37], seg[37];
        const zcbus_stat_entry *g = gating_entry(v, n);

        cli_name_text(name, nm);
        uuid_unparse_lower(st->topic_id, id);
        uuid_unparse_lower(st->segment_id, seg);
        (void)printf("topic %s: %s, %" PRIu32 " slots of %" PRIu32 " bytes, %" PRIu64 " bytes of memory\n", nm,
                     zcbus_policy_name(st->policy), st->slot_count, st->slot_size, st->bytes);
        (void)printf("head %" PRIu64 ", published %" PRIu64 ", producers %" PRIu32 "/%" PRIu32
                     ", subscribers %" PRIu32 "/%" PRIu32 " (%" PRIu32 " uid tables)\n",
                     st->head, st->published, st->producers, st->max_producers, st->subscribers,
                     st->max_subscribers, st->sub_tables);
        if (st->policy == ZCBUS_POLICY_RELIABLE)
                (void)printf("stall timeout %" PRIu32 " ms, %" PRIu64 " evicted for stalling, producers %s\n",
                             st->stall_ms, st->stalled, st->flags & ZCBUS_STAT_BLOCKED ? "blocked" : "not blocked");
        else
                (void)printf("%" PRIu64 " evicted for holding more than they declared\n", st->over);
        (void)printf("topic_id %s, segment_id %s\n\n", id, seg);

        (void)printf("%-4s %5s %-7s %8s %6s %-15s %10s %8s %5s %10s %8s %8s %8s %-6s %s\n", "ROLE", "INDEX",
                     "STATE", "PID", "UID", "COMM", "POSITION", "LAG", "HELD", "RECEIVED", "LOST", "SLEEPS",
                     "WAITS", "FLAGS", "SESSION");
        for (unsigned i = 0; i < n; i++) {
                const zcbus_stat_entry *e = &v[i];
                char b[8][24], comm[4 * ZCBUS_COMM_MAX + 1], sess[37];
                bool pub = is_pub(e);

                id_text(e->session_id, sess);
                (void)printf("%-4s %5" PRIu32 " %-7s %8" PRIu32 " %6s %-15s %10s %8s %5s %10s %8s %8s %8s %-6s %s\n",
                             pub ? "pub" : "sub", e->index, zcbus_entry_state_name(e->state), e->pid,
                             uid_text(b[0], sizeof(b[0]), e->uid), comm_text(e, comm),
                             num(b[1], sizeof(b[1]), true, pub ? e->count : e->next),
                             num(b[2], sizeof(b[2]), !pub, e->lag), num(b[3], sizeof(b[3]), !pub, e->held),
                             num(b[4], sizeof(b[4]), !pub, e->count), num(b[5], sizeof(b[5]), !pub, e->lost),
                             num(b[6], sizeof(b[6]), !pub, e->sleeps), num(b[7], sizeof(b[7]), pub, e->sleeps),
                             e->flags & ZCBUS_ENTRY_GATING ? "gating" : "-", sess);
        }
        if (g) {
                char comm[4 * ZCBUS_COMM_MAX + 1];
                (void)printf("\nsubscriber %" PRIu32 " (pid %" PRIu32 " %s) gates the topic: the ring is full from "
                             "its floor (sequence %" PRIu64 ") and it does not move on\n",
                             g->index, g->pid, comm_text(g, comm), g->floor);
        }
        if (ntalk) {
                (void)printf("\nwhat these sessions say about themselves:\n");
                cli_peer_header();
                for (unsigned i = 0; i < ntalk; i++)
                        cli_peer_print(talk[i], true);
        }
}

/* "key": number, or null when it does not apply. */
static void json_u64_or_null(const char *key, bool applies, uint64_t v) {
        if (applies)
                (void)printf(", \"%s\": %" PRIu64, key, v);
        else
                (void)printf(", \"%s\": null", key);
}

/* One entry's JSON object; rate < 0: none (no previous refresh). */
static void json_entry(const zcbus_stat_entry *e, double rate, bool with_rate) {
        bool pub = is_pub(e);
        char sess[37];

        id_text(e->session_id, sess);
        (void)printf("{\"role\": \"%s\", \"index\": %" PRIu32 ", \"state\": \"%s\", \"pid\": %" PRIu32,
                     pub ? "pub" : "sub", e->index, zcbus_entry_state_name(e->state), e->pid);
        json_u64_or_null("uid", e->uid != ZCBUS_UID_UNKNOWN, e->uid);
        (void)fputs(", \"comm\": ", stdout);
        if (e->comm[0])
                json_str(stdout, e->comm);
        else
                (void)fputs("null", stdout);
        if (sess[0] == '-')
                (void)fputs(", \"session\": null", stdout);
        else
                (void)printf(", \"session\": \"%s\"", sess);
        if (pub) {
                (void)printf(", \"published\": %" PRIu64, e->count);
                json_u64_or_null("claim", e->next != UINT64_MAX, e->next);
                (void)printf(", \"waits\": %" PRIu64 ", \"wakeups\": %" PRIu64 ", \"abandoned\": %" PRIu64
                             ", \"skipped\": %" PRIu64,
                             e->sleeps, e->wakeups, e->lost, e->skipped);
        } else {
                (void)printf(", \"table\": %" PRIu32, e->table);
                json_u64_or_null("next", e->next != UINT64_MAX, e->next);
                json_u64_or_null("floor", e->floor != UINT64_MAX, e->floor);
                (void)printf(", \"lag\": %" PRIu64 ", \"held\": %" PRIu32 ", \"received\": %" PRIu64
                             ", \"lost\": %" PRIu64 ", \"sleeps\": %" PRIu64,
                             e->lag, e->held, e->count, e->lost, e->sleeps);
        }
        (void)printf(", \"gating\": %s", e->flags & ZCBUS_ENTRY_GATING ? "true" : "false");
        if (with_rate) {
                (void)fputs(", \"rate\": ", stdout);
                if (rate < 0)
                        (void)fputs("null", stdout);
                else
                        json_num(stdout, rate, 'f', 1);
        }
        (void)putchar('}');
}

/* The topic's fields, without the braces. */
static void json_topic_fields(const char *name, const zcbus_topic_stats *st) {
        char id[37], seg[37];

        uuid_unparse_lower(st->topic_id, id);
        uuid_unparse_lower(st->segment_id, seg);
        (void)fputs("\"name\": ", stdout);
        json_str(stdout, name);
        (void)printf(", \"policy\": \"%s\", \"slots\": %" PRIu32 ", \"slot_size\": %" PRIu32
                     ", \"memory_bytes\": %" PRIu64 ", \"head\": %" PRIu64 ", \"published\": %" PRIu64
                     ", \"producers\": %" PRIu32 ", \"subscribers\": %" PRIu32 ", \"max_producers\": %" PRIu32
                     ", \"max_subscribers\": %" PRIu32 ", \"sub_tables\": %" PRIu32,
                     zcbus_policy_name(st->policy), st->slot_count, st->slot_size, st->bytes, st->head,
                     st->published, st->producers, st->subscribers, st->max_producers, st->max_subscribers,
                     st->sub_tables);
        json_u64_or_null("stall_ms", st->policy == ZCBUS_POLICY_RELIABLE, st->stall_ms);
        (void)printf(", \"blocked\": %s, \"stalled\": %" PRIu64 ", \"over\": %" PRIu64
                     ", \"topic_id\": \"%s\", \"segment_id\": \"%s\"",
                     st->flags & ZCBUS_STAT_BLOCKED ? "true" : "false", st->stalled, st->over, id, seg);
}

static void print_stat_json(const char *name, const zcbus_topic_stats *st, const zcbus_stat_entry *v,
                            unsigned n, const zcbus_peer *const *talk, unsigned ntalk) {
        (void)putchar('{');
        json_topic_fields(name, st);
        (void)fputs(", \"entries\": [", stdout);
        for (unsigned i = 0; i < n; i++) {
                (void)fputs(i ? ",\n  " : "\n  ", stdout);
                json_entry(&v[i], -1., false);
        }
        (void)fputs(n ? "\n], \"peers\": [" : "], \"peers\": [", stdout);
        for (unsigned i = 0; i < ntalk; i++) {
                (void)fputs(i ? ",\n  " : "\n  ", stdout);
                cli_peer_json(talk[i]);
        }
        (void)fputs(ntalk ? "\n]}\n" : "]}\n", stdout);
}

int cmd_stat(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_free_ zcbus_stat_entry *v = NULL;
        _cleanup_free_ zcbus_peer *peers = NULL;
        _cleanup_free_ const zcbus_peer **talk = NULL;
        _cleanup_free_ bool *told = NULL;
        _cleanup_free_ const zcbus_peer **ix = NULL;
        zcbus_topic_stats st = {.size = sizeof(st)};
        unsigned n = 0, npeers = 0, ntalk = 0;
        int o, r, json = 0;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (o) {
                case OPT_JSON:
                        json = 1;
                        break;
                case 'h':
                        (void)printf("Usage: zcbus stat [OPTIONS] TOPIC\n"
                                     "\n"
                                     "Show a topic as the broker sees it: policy, geometry, memory, head, and\n"
                                     "each producer and subscriber entry: pid, uid, command, session, state,\n"
                                     "position, lag, holds, counters, and the subscriber that gates a\n"
                                     "reliable topic; then what those sessions say about themselves (a\n"
                                     "bridge's label and counters: see zcbus peers).\n"
                                     "\n"
                                     "Options:\n"
                                     "      --json  print one JSON object instead of tables\n"
                                     "  -h, --help  show this help and exit\n");
                        return 0;
                default:
                        return cli_bad_option("stat", argv, o);
                }
        }
        if (optind >= argc) {
                cli_err("stat", "missing TOPIC (try 'zcbus stat --help')");
                return 2;
        }
        if (optind + 1 < argc) {
                cli_err("stat", "unexpected argument '%s' (try 'zcbus stat --help')", argv[optind + 1]);
                return 2;
        }
        if (cli_check_topic("stat", argv[optind]) < 0)
                return 2;
        if (cli_connect("stat", sock, &bus) < 0)
                return 1;
        r = stat_fetch(bus, argv[optind], &st, &v, &n);
        if (r < 0)
                return cli_fail("stat", bus, r, "cannot stat topic '%s'", argv[optind]);
        /* What the sessions say about themselves: those this uid may see
         * (a failure here only leaves that part out). */
        if (n && cli_peers_fetch(bus, &peers, &npeers) == 0 && npeers) {
                talk = calloc(npeers, sizeof(*talk));
                told = calloc(npeers, sizeof(*told));
                ix = cli_peers_index(peers, npeers);
                if (talk && told && ix)
                        ntalk = talking_sessions(v, n, peers, ix, npeers, talk, told);
        }
        if (json)
                print_stat_json(argv[optind], &st, v, n, talk, ntalk);
        else
                print_stat_table(argv[optind], &st, v, n, talk, ntalk);
        return cli_flush_stdout("stat");
}

/* ---- top ------------------------------------------------------------------- */

/* The entry of prev (sorted by role, then index) that is e, or NULL. */
static const zcbus_stat_entry *prev_entry(const struct snap *prev, unsigned *cursor, const zcbus_stat_entry *e) {
        while (prev && *cursor < prev->n) {
                const zcbus_stat_entry *p = &prev->v[*cursor];
                if (p->role > e->role || (p->role == e->role && p->index > e->index))
                        return NULL;
                (*cursor)++;
                if (p->role == e->role && p->index == e->index)
                        return memcmp(p->session_id, e->session_id, 16) == 0 ? p : NULL;
        }
        return NULL;
}

static const struct snap *prev_topic(const struct snap *prev, unsigned nprev, const struct snap *s) {
        for (unsigned i = 0; i < nprev; i++)
                if (!prev[i].err && memcmp(prev[i].st.topic_id, s->st.topic_id, 16) == 0)
                        return &prev[i];
        return NULL;
}

static double rate_of(uint64_t now, uint64_t before, double dt) {
        return now >= before && dt > 0. ? (double)(now - before) / dt : 0.;
}

static void top_json(const struct snap *s, unsigned n, const struct snap *prev, unsigned nprev, double dt,
                     double t) {
        (void)fputs("{\"time\": ", stdout);
        json_num(stdout, t, 'f', 3);
        (void)fputs(", \"interval_s\": ", stdout);
        if (prev)
                json_num(stdout, dt, 'f', 3);
        else
                (void)fputs("null", stdout);
        (void)fputs(", \"topics\": [", stdout);
        for (unsigned i = 0; i < n; i++) {
                const struct snap *p = prev ? prev_topic(prev, nprev, &s[i]) : NULL;
                unsigned cur = 0;

                (void)fputs(i ? ", {" : "{", stdout);
                if (s[i].err) {
                        (void)fputs("\"name\": ", stdout);
                        json_str(stdout, s[i].name);
                        (void)fputs(", \"error\": ", stdout);
                        json_str(stdout, zcbus_strerror(s[i].err));
                        (void)putchar('}');
                        continue;
                }
                json_topic_fields(s[i].name, &s[i].st);
                (void)fputs(", \"publish_rate\": ", stdout);
                if (p)
                        json_num(stdout, rate_of(s[i].st.published, p->st.published, dt), 'f', 1);
                else
                        (void)fputs("null", stdout);
                (void)fputs(", \"entries\": [", stdout);
                for (unsigned k = 0; k < s[i].n; k++) {
                        const zcbus_stat_entry *e = &s[i].v[k], *pe = prev_entry(p, &cur, e);
                        (void)fputs(k ? ", " : "", stdout);
                        json_entry(e, pe ? rate_of(e->count, pe->count, dt) : -1., true);
                }
                (void)fputs("]}", stdout);
        }
        (void)fputs("]}\n", stdout);
}

static void rate_text(char *buf, size_t len, bool known, double r) {
        if (known)
                (void)snprintf(buf, len, "%.1f", r);
        else
                (void)snprintf(buf, len, "-");
}

static void top_table(const struct snap *s, unsigned n, const struct snap *prev, unsigned nprev, double dt,
                      double interval) {
        time_t now = time(NULL);
        struct tm tm;
        char clock[16] = "";
        unsigned entries = 0;

        for (unsigned i = 0; i < n; i++)
                entries += s[i].n;
        if (localtime_r(&now, &tm))
                (void)strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
        (void)printf("zcbus top - %s  %u topics, %u entries, every %.1f s  (msgs/s: published, or received)\n\n",
                     clock, n, entries, interval);
        (void)printf("%-24s %5s %-8s %8s %-15s %10s %12s %8s %5s %8s %s\n", "TOPIC/ROLE", "INDEX", "STATE", "PID",
                     "COMM", "RATE/s", "POSITION", "LAG", "HELD", "LOST", "FLAGS");
        for (unsigned i = 0; i < n; i++) {
                const struct snap *p = prev ? prev_topic(prev, nprev, &s[i]) : NULL;
                char nm[4 * ZCBUS_TOPIC_MAX + 1], rate[32];
                unsigned cur = 0;

                cli_name_text(s[i].name, nm);
                if (s[i].err) {
                        (void)printf("%s%*s (%s)\n", nm, MAX(0, 24 - (int)cli_text_width(nm)), "",
                                     zcbus_strerror(s[i].err));
                        continue;
                }
                rate_text(rate, sizeof(rate), p, p ? rate_of(s[i].st.published, p->st.published, dt) : 0.);
                (void)printf("%s%*s %5s %-8s %8s %-15s %10s %12" PRIu64 " %8s %5s %8s %s\n", nm,
                             MAX(0, 24 - (int)cli_text_width(nm)), "", "-", zcbus_policy_name(s[i].st.policy), "-",
                             "-", rate, s[i].st.published, "-", "-", "-",
                             s[i].st.flags & ZCBUS_STAT_BLOCKED ? "blocked" : "");
                for (unsigned k = 0; k < s[i].n; k++) {
                        const zcbus_stat_entry *e = &s[i].v[k], *pe = prev_entry(p, &cur, e);
                        char comm[4 * ZCBUS_COMM_MAX + 1], b[3][24];
                        bool pub = is_pub(e);

                        rate_text(rate, sizeof(rate), pe, pe ? rate_of(e->count, pe->count, dt) : 0.);
                        (void)printf("  %-22s %5" PRIu32 " %-8s %8" PRIu32 " %-15s %10s %12" PRIu64
                                     " %8s %5s %8s %s\n",
                                     pub ? "pub" : "sub", e->index, zcbus_entry_state_name(e->state), e->pid,
                                     comm_text(e, comm), rate, pub ? e->count : e->next,
                                     num(b[0], sizeof(b[0]), !pub, e->lag), num(b[1], sizeof(b[1]), !pub, e->held),
                                     num(b[2], sizeof(b[2]), !pub, e->lost),
                                     e->flags & ZCBUS_ENTRY_GATING ? "gating" : "");
                }
        }
}

/* One refresh: the topics matching the patterns, each with its entries. */
static int top_fetch(zcbus *bus, char *const *patterns, int npatterns, struct snap **ret, unsigned *ret_n) {
        _cleanup_free_ zcbus_topic_entry *t = NULL;
        struct snap *s;
        unsigned n = 0, k = 0;
        int r = cli_list_fetch(bus, &t, &n);

        if (r < 0)
                return r;
        n = cli_filter_topics(t, n, patterns, npatterns);
        s = calloc(n ? n : 1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++) {
                struct snap *x = &s[k];
                memcpy(x->name, t[i].name, sizeof(x->name));
                r = stat_fetch(bus, t[i].name, &x->st, &x->v, &x->n);
                if (r == -ENOENT)
                        continue; /* gone since the list */
                if (r == -EACCES)
                        x->err = r;
                else if (r < 0) {
                        snaps_free(s, k);
                        return r;
                }
                k++;
        }
        *ret = s;
        *ret_n = k;
        return 0;
}

static double mono_s(void) {
        return (double)cli_mono_ns() / 1e9;
}

static double real_s(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep up to s seconds, in slices, until a stop signal. */
static void nap(double s) {
        double until = mono_s() + s;

        while (!cli_stop_signal) {
                double left = until - mono_s();
                if (left <= 0.)
                        return;
                left = MIN(left, CLI_WAIT_SLICE_MS / 1000.);
                struct timespec ts = {.tv_sec = (time_t)left, .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};
                (void)nanosleep(&ts, NULL);
        }
}

int cmd_top(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "delay", required_argument, NULL, 'd' },
                { "iterations", required_argument, NULL, 'n' },
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        struct snap *prev = NULL;
        unsigned nprev = 0;
        unsigned long long iterations = 0, ms = 1000;
        double prev_t = 0.;
        int o, r, json = 0, status = 0;
        bool tty;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":d:n:h", longopts, NULL)) != -1) {
                switch (o) {
                case 'd': {
                        char *end;
                        errno = 0;
                        double d = strtod(optarg, &end);
                        if (errno || end == optarg || *end || !(d >= 0.1 && d <= 3600.))
                                return cli_bad_value("top", "-d", optarg, "seconds from 0.1 to 3600");
                        ms = (unsigned long long)(d * 1000. + 0.5);
                        break;
                }
                case 'n':
                        if (cli_parse_u64(optarg, 1, UINT32_MAX, 0, &iterations) < 0)
                                return cli_bad_value("top", "-n", optarg, "a count of refreshes, at least 1");
                        break;
                case OPT_JSON:
                        json = 1;
                        break;
                case 'h':
                        (void)printf("Usage: zcbus top [OPTIONS] [PATTERN...]\n"
                                     "\n"
                                     "Show every topic (or those matching the glob PATTERNs) and its producers\n"
                                     "and subscribers, refreshed in place, with rates per second.\n"
                                     "\n"
                                     "Options:\n"
                                     "  -d, --delay SECONDS  time between refreshes (default 1, from 0.1)\n"
                                     "  -n, --iterations N   stop after N refreshes (default: until interrupted)\n"
                                     "      --json           print one JSON object per refresh, one per line\n"
                                     "  -h, --help           show this help and exit\n");
                        return 0;
                default:
                        return cli_bad_option("top", argv, o);
                }
        }
        for (int i = optind; i < argc; i++)
                if (!argv[i][0]) {
                        cli_err("top", "empty PATTERN (try 'zcbus top --help')");
                        return 2;
                }
        if (cli_connect("top", sock, &bus) < 0)
                return 1;
        cli_catch_stop();
        tty = !json && isatty(STDOUT_FILENO);
        for (unsigned long long it = 0; !cli_stop_signal && (iterations == 0 || it < iterations); it++) {
                struct snap *s = NULL;
                unsigned n = 0;
                double t;

                if (it)
                        nap((double)ms / 1000.);
                if (cli_stop_signal)
                        break;
                r = top_fetch(bus, argv + optind, argc - optind, &s, &n);
                t = mono_s();
                if (r < 0) {
                        status = cli_fail("top", bus, r, "cannot read the broker's topics");
                        break;
                }
                if (json)
                        top_json(s, n, prev, nprev, t - prev_t, real_s());
                else {
                        if (tty)
                                (void)fputs("\033[H\033[2J", stdout); /* home, clear */
                        else if (it)
                                (void)putchar('\n');
                        top_table(s, n, prev, nprev, t - prev_t, (double)ms / 1000.);
                }
                snaps_free(prev, nprev);
                prev = s;
                nprev = n;
                prev_t = t;
                status = cli_flush_stdout("top");
                if (status || ferror(stdout))
                        break;
        }
        snaps_free(prev, nprev);
        return status;
}

/* ---- topic rm ---------------------------------------------------------------- */

int cmd_topic(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        int o, status = 0;

        opterr = 0;
        while ((o = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
                switch (o) {
                case 'h':
                        (void)printf("Usage: zcbus topic rm TOPIC...\n"
                                     "\n"
                                     "Delete idle topics: no producer or subscriber holds an entry in them.\n"
                                     "A topic in use is refused, naming who holds it.\n"
                                     "\n"
                                     "Options:\n"
                                     "  -h, --help  show this help and exit\n");
                        return 0;
                default:
                        return cli_bad_option("topic", argv, o);
                }
        }
        if (optind >= argc) {
                cli_err("topic", "missing action: rm (try 'zcbus topic --help')");
                return 2;
        }
        if (strcmp(argv[optind], "rm") != 0) {
                cli_err("topic", "unknown action '%s': want rm (try 'zcbus topic --help')", argv[optind]);
                return 2;
        }
        if (optind + 1 >= argc) {
                cli_err("topic", "rm: missing TOPIC (try 'zcbus topic --help')");
                return 2;
        }
        for (int i = optind + 1; i < argc; i++)
                if (cli_check_topic("topic", argv[i]) < 0)
                        return 2;
        if (cli_connect("topic", sock, &bus) < 0)
                return 1;
        for (int i = optind + 1; i < argc; i++) {
                int r = zcbus_topic_remove(bus, argv[i]);
                if (r < 0)
                        status = cli_fail("topic", bus, r, "cannot delete topic '%s'", argv[i]);
        }
        return status;
}
