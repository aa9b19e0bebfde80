/* SPDX-License-Identifier: MIT */
/*
 * cmd_record.c: `zcbus record` and `zcbus replay`, built only on the
 * public API (zcbus.h).
 *
 * record reads topics and patterns through a subscription set (subset.c,
 * as `zcbus sub` does) and writes each message as a record of the file
 * format in frame.h: topic, timestamp, sequence, lost, payload. The
 * timestamp is the producer's commit stamp, or the recorder's receive time
 * when the producer did not stamp (a flag says which). Each record is
 * flushed as it is written, so a recording killed mid-way keeps whole
 * records.
 *
 * replay reads a recording and publishes each record again, in file
 * order, to its topic or a renamed one, at the recorded pace (scaled by
 * --speed) or as fast as it can. The pace is kept against the end of the
 * first send: record i goes out no earlier than first_send + (ts_i - ts_0)
 * / speed, first_send taken once the first record is committed, so gaps
 * never shrink below what was recorded (scaled), even if the first send
 * was slow (a replay kept off the CPU in it); sleeping is sliced
 * so a stop signal is seen. A recording is untrusted input: every length
 * is checked against the target topic's slot size before it is read.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"
#include "cli.h"
#include "frame.h"
#include "subset.h"

/* replay: distinct topics it will open; a recording asking for more is
 * refused (it is untrusted). */
#define REPLAY_TOPICS_MAX 1024u
/* replay --print: the largest payload it will read (the largest slot). */
#define REPLAY_PRINT_MAX (1u << 30)

enum {
        OPT_HISTORY = 0x100,
        OPT_RESCAN,
        OPT_READY_FD,
        OPT_SPEED,
        OPT_PREFIX,
        OPT_RENAME,
        OPT_PRINT,
};

static void fclosep(FILE **f) {
        if (*f && *f != stdin && *f != stdout)
                (void)fclose(*f);
}

/* ---- record ------------------------------------------------------------- */

static void record_usage(void) {
        (void)printf(
                "Usage: zcbus record [OPTIONS] FILE TOPIC|PATTERN...\n"
                "\n"
                "Subscribe to each TOPIC and to every topic matching each PATTERN (as\n"
                "'zcbus sub' does, new topics included) and write each message to FILE\n"
                "('-': standard output) as a record: topic, timestamp, sequence, lost\n"
                "count and payload (the format is in zcbus(1)). 'zcbus replay' publishes\n"
                "a recording again. SIGINT or SIGTERM ends the recording (status 0).\n"
                "\n"
                "Options:\n"
                "  -n, --count COUNT  stop after COUNT messages\n"
                "  -t, --timeout MS   fail if no message arrives for MS ms (-1: wait\n"
                "                     forever, the default; 0: take what is there)\n"
                "      --history K    start with up to K messages already published\n"
                "      --rescan MS    look for new topics matching a PATTERN every MS ms\n"
                "                     (default %d; 0: only at the start)\n"
                "      --ready-fd FD  once subscribed, write \"READY\\n\" to FD and close it\n"
                "  -q, --quiet        no summary line on stderr (one is printed when\n"
                "                     stderr is a terminal)\n"
                "  -h, --help         show this help and exit\n"
                "\n"
                "Exit status: 0 done, 1 error or timeout, 2 usage error.\n",
                SUBSET_RESCAN_MS_DEFAULT);
}

struct record_args {
        const char *file;
        char **names;
        unsigned nnames;
        zcbus_sub_opts opts;
        uint64_t count;
        int timeout_ms;
        int rescan_ms;
        int ready_fd;
        bool quiet;
};

/* A failed write to the recording: status 1 (reported), or 0 when it is
 * a pipe whose reader went away. */
static int write_failed(const struct record_args *a) {
        if (errno == EPIPE)
                return 0;
        cli_err("record", "cannot write to '%s': %s", a->file, strerror(errno ? errno : EIO));
        return 1;
}

static int record_run(const struct record_args *a, const char *sock, FILE *out, uint64_t *ret_n) {
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_(subset_freep) struct subset *set = NULL;
        struct timespec rt;
        struct rec_file_hdr fh = { .version = REC_VERSION };
        int r;

        if (cli_connect("record", sock, &bus) < 0)
                return 1;
        r = subset_new("record", bus, &a->opts, a->names, a->nnames, a->rescan_ms, &set);
        if (r < 0)
                return 1; /* reported */
        (void)clock_gettime(CLOCK_REALTIME, &rt);
        fh.monotonic_ns = cli_mono_ns();
        fh.realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
        if (rec_write_file_hdr(out, &fh) < 0 || fflush(out) == EOF)
                return write_failed(a);
        cli_signal_ready(a->ready_fd);

        for (*ret_n = 0; a->count == 0 || *ret_n < a->count;) {
                const char *topic;
                zcbus_msg m;
                struct rec_hdr h;

                r = subset_recv(set, &m, &topic, a->timeout_ms);
                if (r == -EINTR)
                        return 0; /* a stop signal: the normal end */
                if (r == -ETIMEDOUT && a->timeout_ms == 0)
                        return 0;
                if (r == -ETIMEDOUT) {
                        cli_err("record", "timed out after %d ms waiting for a message", a->timeout_ms);
                        return 1;
                }
                if (r < 0)
                        return 1; /* reported */
                h = (struct rec_hdr){
                        .len = (uint32_t)m.len,
                        .topic_len = (uint16_t)strlen(topic),
                        .flags = m.timestamp_ns ? REC_TS_PRODUCER : 0,
                        .ts_ns = m.timestamp_ns ? m.timestamp_ns : cli_mono_ns(),
                        .seq = m.seq,
                        .lost = m.lost,
                };
                r = rec_write(out, &h, topic, m.data);
                (void)subset_release(set, &m);
                if (r < 0 || fflush(out) == EOF)
                        return write_failed(a);
                (*ret_n)++;
        }
        return 0;
}

int cmd_record(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "count", required_argument, NULL, 'n' },
                { "timeout", required_argument, NULL, 't' },
                { "history", required_argument, NULL, OPT_HISTORY },
                { "rescan", required_argument, NULL, OPT_RESCAN },
                { "ready-fd", required_argument, NULL, OPT_READY_FD },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        struct record_args a = {
                .opts = { .size = sizeof(zcbus_sub_opts) },
                .timeout_ms = -1,
                .rescan_ms = SUBSET_RESCAN_MS_DEFAULT,
                .ready_fd = -1,
        };
        _cleanup_(fclosep) FILE *out = NULL;
        unsigned long long v;
        uint64_t n = 0;
        int o, r;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":n:t:qh", longopts, NULL)) != -1) {
                switch (o) {
                case 'n':
                        if (cli_parse_u64(optarg, 1, UINT64_MAX, 0, &v) < 0)
                                return cli_bad_value("record", "count", optarg, "a whole number >= 1");
                        a.count = v;
                        break;
                case 't':
                        if (cli_parse_timeout(optarg, &a.timeout_ms) < 0)
                                return cli_bad_value("record", "timeout", optarg, "-1 or 0 to 2147483647 ms");
                        break;
                case OPT_HISTORY:
                        if (cli_parse_u64(optarg, 0, UINT32_MAX, 0, &v) < 0)
                                return cli_bad_value("record", "history", optarg, "0 to 4294967295 messages");
                        a.opts.history = (uint32_t)v;
                        break;
                case OPT_RESCAN:
                        if (cli_parse_u64(optarg, 0, 3600000, 0, &v) < 0)
                                return cli_bad_value("record", "rescan interval", optarg, "0 to 3600000 ms");
                        a.rescan_ms = (int)v;
                        break;
                case OPT_READY_FD:
                        r = cli_parse_ready_fd("record", optarg, &a.ready_fd);
                        if (r)
                                return r;
                        break;
                case 'q':
                        a.quiet = true;
                        break;
                case 'h':
                        record_usage();
                        return 0;
                default:
                        return cli_bad_option("record", argv, o);
                }
        }
        if (argc - optind < 2) {
                cli_err("record", "missing %s (try 'zcbus record --help')", optind < argc ? "TOPIC" : "FILE");
                return 2;
        }
        a.file = argv[optind++];
        a.names = argv + optind;
        a.nnames = (unsigned)MIN(argc - optind, (int)SUBSET_MAX + 1);
        if (argc - optind > (int)SUBSET_MAX) {
                cli_err("record", "too many topics: at most %u (try 'zcbus record --help')", SUBSET_MAX);
                return 2;
        }
        for (unsigned i = 0; i < a.nnames; i++)
                if (cli_check_topic("record", a.names[i]) < 0)
                        return 2;
        if (strcmp(a.file, "-") == 0) {
                if (isatty(STDOUT_FILENO)) {
                        cli_err("record", "standard output is a terminal: give a FILE or redirect it");
                        return 2;
                }
                out = stdout;
        } else {
                out = fopen(a.file, "we");
                if (!out) {
                        cli_err("record", "cannot create '%s': %s", a.file, strerror(errno));
                        return 1;
                }
        }

        cli_catch_stop();
        r = record_run(&a, sock, out, &n);
        if (out != stdout) {
                FILE *f = TAKE_PTR(out);

                if (fclose(f) == EOF && r == 0) {
                        cli_err("record", "cannot write to '%s': %s", a.file, strerror(errno));
                        r = 1;
                }
        }
        if (r == 0 && !a.quiet && isatty(STDERR_FILENO))
                (void)fprintf(stderr, "zcbus record: %" PRIu64 " message%s recorded to '%s'\n", n,
                              n == 1 ? "" : "s", a.file);
        return r;
}

/* ---- replay ------------------------------------------------------------- */

static void replay_usage(void) {
        (void)printf(
                "Usage: zcbus replay [OPTIONS] FILE\n"
                "\n"
                "Publish the records of a recording made by 'zcbus record' ('-': standard\n"
                "input) again, in order, each to its topic (or the renamed one), at the\n"
                "recorded pace or faster. Topics that do not exist are created with the\n"
                "topic options below. Each message is stamped anew at its commit.\n"
                "\n"
                "Options:\n"
                "      --speed S          recorded (the default: the recorded gaps), max\n"
                "                         (no waiting), or a factor (2: twice as fast)\n"
                "      --rename OLD=NEW   publish the records of topic OLD to NEW (repeatable)\n"
                "      --prefix P         publish to P followed by the recorded name (not\n"
                "                         for renamed topics)\n"
                "      --slot-size BYTES, --slots N, --policy reliable|latest\n"
                "                         the options of topics this creates\n"
                "  -t, --timeout MS       how long each message may wait for room\n"
                "                         (-1: forever, the default; 0: never wait)\n"
                "      --print            publish nothing: print the records as JSON lines\n"
                "                         (as 'sub --json', with ts_source); no broker\n"
                "  -q, --quiet            no summary line on stderr (one is printed when\n"
                "                         stderr is a terminal)\n"
                "  -h, --help             show this help and exit\n"
                "\n"
                "Exit status: 0 all replayed, 1 error, 2 usage error.\n");
}

struct rename {
        const char *from;
        size_t from_len;
        const char *to;
};

struct replay_topic {
        char name[ZCBUS_TOPIC_MAX + 1]; /* as recorded */
        char target[ZCBUS_TOPIC_MAX + 1];
        zcbus_pub *pub;
        uint32_t slot_size;
};

struct replay {
        const char *file;
        FILE *in;
        zcbus *bus;
        zcbus_topic_opts topts;
        double speed; /* 0: max */
        const char *prefix;
        struct rename *renames;
        unsigned nrenames;
        int timeout_ms;
        bool print;
        struct replay_topic *topics;
        unsigned ntopics;
        char *buf;
        size_t buf_cap;
        uint64_t index; /* of the record at hand, from 1 */
        bool started;
        uint64_t first_ts, first_send;
};

static void replay_deinit(struct replay *p) {
        for (unsigned i = 0; i < p->ntopics; i++)
                zcbus_pub_close(p->topics[i].pub);
        free(p->topics);
        free(p->buf);
        free(p->renames);
}

static int bad_file(const struct replay *p, const char *why) {
        cli_err("replay", "'%s': record %" PRIu64 ": %s", p->file, p->index, why);
        return 1;
}

/* The target of a recorded name, or exit status 1 (reported). */
static int target_of(const struct replay *p, const char *name, char *out) {
        int n;

        for (unsigned i = 0; i < p->nrenames; i++)
                if (strcmp(p->renames[i].from, name) == 0) {
                        (void)snprintf(out, ZCBUS_TOPIC_MAX + 1, "%s", p->renames[i].to);
                        return 0;
                }
        n = snprintf(out, ZCBUS_TOPIC_MAX + 1, "%s%s", p->prefix ? p->prefix : "", name);
        if (n > ZCBUS_TOPIC_MAX) {
                cli_err("replay", "topic '%s%s' would be longer than %d bytes", p->prefix, name, ZCBUS_TOPIC_MAX);
                return 1;
        }
        return 0;
}

/* The producer for a recorded name, opened on first use; 0 or status 1. */
static int topic_for(struct replay *p, const char *name, struct replay_topic **ret) {
        zcbus_topic_info info = { .size = sizeof(info) };
        struct replay_topic *t;
        int r;

        for (unsigned i = 0; i < p->ntopics; i++)
                if (strcmp(p->topics[i].name, name) == 0) {
                        *ret = &p->topics[i];
                        return 0;
                }
        if (p->ntopics == REPLAY_TOPICS_MAX)
                return bad_file(p, "more distinct topics than replay takes (1024)");
        t = realloc(p->topics, (p->ntopics + 1) * sizeof(*t));
        if (!t)
                return cli_fail("replay", NULL, -ENOMEM, "cannot open topic '%s'", name);
        p->topics = t;
        t = &p->topics[p->ntopics];
        memset(t, 0, sizeof(*t));
        (void)snprintf(t->name, sizeof(t->name), "%s", name);
        if (target_of(p, name, t->target))
                return 1;
        if (!p->print) {
                if (cli_check_topic("replay", t->target) < 0)
                        return 1;
                r = zcbus_pub_open(p->bus, t->target, &p->topts, &t->pub);
                if (r < 0)
                        return cli_fail("replay", p->bus, r, "cannot publish to topic '%s'", t->target);
                r = zcbus_pub_info(t->pub, &info);
                if (r < 0) {
                        zcbus_pub_close(t->pub);
                        return cli_fail("replay", p->bus, r, "cannot query topic '%s'", t->target);
                }
                t->slot_size = info.slot_size;
        } else
                t->slot_size = REPLAY_PRINT_MAX;
        p->ntopics++;
        *ret = t;
        return 0;
}

/* Wait, in slices, until mono time `at`; -EINTR on a stop signal. */
static int sleep_until(uint64_t at) {
        for (;;) {
                uint64_t now = cli_mono_ns(), step;
                struct timespec ts;

                if (cli_stop_signal)
                        return -EINTR;
                if (now >= at)
                        return 0;
                step = MIN(at - now, (uint64_t)CLI_WAIT_SLICE_MS * 1000000u);
                ts.tv_sec = (time_t)(step / 1000000000u);
                ts.tv_nsec = (long)(step % 1000000000u);
                (void)nanosleep(&ts, NULL);
        }
}

static int send_record(struct replay *p, struct replay_topic *t, const struct rec_hdr *h) {
        int r;

        if (p->speed > 0 && p->started && h->ts_ns > p->first_ts) {
                double gap = (double)(h->ts_ns - p->first_ts) / p->speed;

                if (gap < 1e18 && sleep_until(p->first_send + (uint64_t)gap) < 0)
                        return -EINTR;
        }
        do
                r = zcbus_pub_send(t->pub, p->buf, h->len, p->timeout_ms);
        while (r == -EINTR && !cli_stop_signal);
        if (r == 0 && !p->started) {
                p->started = true;
                p->first_ts = h->ts_ns;
                p->first_send = cli_mono_ns();
        }
        if (r == -EINTR)
                return r;
        if (r == -ETIMEDOUT) {
                cli_err("replay", "timed out after %d ms waiting for room in topic '%s'", p->timeout_ms,
                        t->target);
                return 1;
        }
        if (r == -EAGAIN)
                return cli_fail("replay", NULL, r, "topic '%s' is full (and --timeout is 0)", t->target);
        if (r < 0)
                return cli_fail("replay", p->bus, r, "cannot publish to topic '%s'", t->target);
        return 0;
}

static int replay_run(struct replay *p, uint64_t *ret_n) {
        struct rec_file_hdr fh;
        int r;

        r = rec_read_file_hdr(p->in, &fh);
        if (r == -EBADMSG || r == -ENODATA) {
                cli_err("replay", "'%s' is not a zcbus recording (no %s header)", p->file, REC_MAGIC);
                return 1;
        }
        if (r == -EPROTONOSUPPORT) {
                cli_err("replay", "'%s' is a recording of another format version (this zcbus reads %u)", p->file,
                        REC_VERSION);
                return 1;
        }
        if (r < 0) {
                cli_err("replay", "cannot read '%s': %s", p->file, strerror(errno ? errno : EIO));
                return 1;
        }
        for (*ret_n = 0;; (*ret_n)++) {
                char name[ZCBUS_TOPIC_MAX + 1];
                struct replay_topic *t = NULL;
                struct rec_hdr h;
                char why[128];

                p->index = *ret_n + 1;
                r = rec_read_hdr(p->in, &h);
                if (r == 0)
                        return 0;
                if (r == -ENODATA)
                        return bad_file(p, "the file ends inside its header");
                if (r == -EBADMSG)
                        return bad_file(p, "its topic name length is not 1 to 255");
                if (r < 0) {
                        cli_err("replay", "cannot read '%s': %s", p->file, strerror(errno ? errno : EIO));
                        return 1;
                }
                if (frame_read_body(p->in, name, h.topic_len) < 0)
                        return bad_file(p, "the file ends inside its topic name");
                name[h.topic_len] = '\0';
                if (strlen(name) != h.topic_len)
                        return bad_file(p, "its topic name holds a NUL byte");
                if (topic_for(p, name, &t))
                        return 1;
                if (h.len > t->slot_size) {
                        if (p->print)
                                return bad_file(p, "its payload length is above 1 GiB");
                        cli_err("replay", "'%s': record %" PRIu64 " is %" PRIu32
                                " bytes, more than the slot size %" PRIu32 " of topic '%s'",
                                p->file, p->index, h.len, t->slot_size, t->target);
                        return 1;
                }
                if (h.len >= p->buf_cap) {
                        char *nb = realloc(p->buf, (size_t)h.len + 1);
                        if (!nb)
                                return cli_fail("replay", NULL, -ENOMEM, "cannot read record %" PRIu64, p->index);
                        p->buf = nb;
                        p->buf_cap = (size_t)h.len + 1;
                }
                if (frame_read_body(p->in, p->buf, h.len) < 0) {
                        (void)snprintf(why, sizeof(why), "the file ends inside its payload (%" PRIu32 " bytes)",
                                       h.len);
                        return bad_file(p, why);
                }
                if (p->print) {
                        zcbus_msg m = {
                                .data = p->buf,
                                .len = h.len,
                                .seq = h.seq,
                                .timestamp_ns = h.ts_ns,
                                .lost = h.lost,
                        };
                        cli_json_msg(stdout, t->target, &m, h.flags & REC_TS_PRODUCER ? "producer" : "recorder");
                        if (fflush(stdout) == EOF || ferror(stdout)) {
                                if (errno == EPIPE)
                                        return 0;
                                cli_err("replay", "cannot write to standard output: %s", strerror(errno));
                                return 1;
                        }
                        continue;
                }
                r = send_record(p, t, &h);
                if (r == -EINTR)
                        return 0; /* a stop signal: the caller dies by it */
                if (r)
                        return r;
        }
}

static int parse_speed(const char *s, double *ret) {
        char *end;
        double v;

        if (strcmp(s, "recorded") == 0) {
                *ret = 1.0;
                return 0;
        }
        if (strcmp(s, "max") == 0) {
                *ret = 0.0;
                return 0;
        }
        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || !isfinite(v) || v <= 0 || v > 1e6)
                return -EINVAL;
        *ret = v;
        return 0;
}

int cmd_replay(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "speed", required_argument, NULL, OPT_SPEED },
                { "rename", required_argument, NULL, OPT_RENAME },
                { "prefix", required_argument, NULL, OPT_PREFIX },
                CLI_TOPIC_LONGOPTS,
                { "timeout", required_argument, NULL, 't' },
                { "print", no_argument, NULL, OPT_PRINT },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(replay_deinit) struct replay p = {
                .topts = { .size = sizeof(zcbus_topic_opts), .flags = ZCBUS_PUB_TIMESTAMP },
                .speed = 1.0,
                .timeout_ms = -1,
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_(fclosep) FILE *in = NULL;
        bool quiet = false;
        uint64_t n = 0;
        int o, r;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":t:qh", longopts, NULL)) != -1) {
                switch (o) {
                case OPT_SPEED:
                        if (parse_speed(optarg, &p.speed) < 0)
                                return cli_bad_value("replay", "speed", optarg,
                                                     "recorded, max or a factor above 0, at most 1000000");
                        break;
                case OPT_RENAME: {
                        const char *eq = strchr(optarg, '=');
                        struct rename *v;

                        if (!eq || eq == optarg || !eq[1])
                                return cli_bad_value("replay", "rename", optarg, "OLD=NEW");
                        if (cli_check_topic("replay", eq + 1) < 0)
                                return 2;
                        v = realloc(p.renames, (p.nrenames + 1) * sizeof(*v));
                        if (!v)
                                return cli_fail("replay", NULL, -ENOMEM, "cannot keep --rename");
                        p.renames = v;
                        /* from is NUL-terminated in place: optarg is ours. */
                        optarg[eq - optarg] = '\0';
                        p.renames[p.nrenames++] = (struct rename){ optarg, (size_t)(eq - optarg), eq + 1 };
                        break;
                }
                case OPT_PREFIX:
                        if (cli_check_topic("replay", optarg) < 0)
                                return 2;
                        p.prefix = optarg;
                        break;
                case CLI_OPT_SLOT_SIZE:
                case CLI_OPT_SLOTS:
                case CLI_OPT_POLICY:
                        r = cli_topic_opt("replay", o, optarg, &p.topts.slot_count, &p.topts.slot_size,
                                          &p.topts.policy);
                        if (r)
                                return r;
                        break;
                case 't':
                        if (cli_parse_timeout(optarg, &p.timeout_ms) < 0)
                                return cli_bad_value("replay", "timeout", optarg, "-1 or 0 to 2147483647 ms");
                        break;
                case OPT_PRINT:
                        p.print = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        replay_usage();
                        return 0;
                default:
                        return cli_bad_option("replay", argv, o);
                }
        }
        if (optind >= argc) {
                cli_err("replay", "missing FILE (try 'zcbus replay --help')");
                return 2;
        }
        if (optind + 1 < argc) {
                cli_err("replay", "unexpected argument '%s' (try 'zcbus replay --help')", argv[optind + 1]);
                return 2;
        }
        p.file = argv[optind];
        if (strcmp(p.file, "-") == 0)
                in = stdin;
        else {
                in = fopen(p.file, "re");
                if (!in) {
                        cli_err("replay", "cannot open '%s': %s", p.file, strerror(errno));
                        return 1;
                }
        }
        p.in = in;

        if (!p.print) {
                if (cli_connect("replay", sock, &bus) < 0)
                        return 1;
                p.bus = bus;
        }
        cli_catch_stop();
        r = replay_run(&p, &n);
        if (cli_stop_signal) {
                int sig = cli_stop_signal;

                replay_deinit(&p);
                memset(&p, 0, sizeof(p));
                (void)signal(sig, SIG_DFL);
                (void)raise(sig);
                return 128 + sig;
        }
        if (r == 0 && !p.print && !quiet && isatty(STDERR_FILENO))
                (void)fprintf(stderr, "zcbus replay: %" PRIu64 " message%s replayed from '%s'\n", n,
                              n == 1 ? "" : "s", p.file);
        return r;
}
