/* SPDX-License-Identifier: MIT */
/*
 * cmd_pubsub.c: `zcbus pub` and `zcbus sub`, the two commands that move
 * data, built only on the public API (zcbus.h).
 *
 * pub copies argument or stdin messages in with zcbus_pub_send and writes
 * synthetic --size payloads in place (loan, write, commit). Committed
 * messages live in the broker's ring, so closing the producer loses
 * nothing, even on a reliable topic nobody has read yet.
 *
 * sub prints each message in place from the ring, then releases it. It
 * waits in bounded slices (cli_recv, cli_common.c) so SIGINT/SIGTERM always
 * end it promptly and cleanly, whatever the wait mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"
#include "cli.h"
#include "frame.h"
#include "json.h"
#include "subset.h"

enum {
        OPT_SIZE = 0x100,
        OPT_FILE,
        OPT_HISTORY,
        OPT_WAIT,
        OPT_HEX,
        OPT_TS,
        OPT_JSON,
        OPT_RAW,
        OPT_RESCAN,
        OPT_READY_FD,
};

static void pub_closep(zcbus_pub **p) {
        zcbus_pub_close(*p);
}

/* ---- pub ---------------------------------------------------------------- */

static void pub_usage(void) {
        (void)printf(
                "Usage: zcbus pub [OPTIONS] TOPIC [MESSAGE...]\n"
                "\n"
                "Publish each MESSAGE argument as one message to TOPIC; without any,\n"
                "publish each line of standard input (newline stripped), or what --file,\n"
                "--raw or --null say. The topic is created with the topic options below\n"
                "if it does not exist yet. Each message is stamped with the time of its\n"
                "commit.\n"
                "\n"
                "Options:\n"
                "  -n, --count COUNT      send the whole set of messages COUNT times\n"
                "                         (with --size: send COUNT payloads; default 1)\n"
                "      --size BYTES       send synthetic payloads of exactly BYTES bytes\n"
                "                         instead of arguments or stdin: the message index\n"
                "                         in decimal, then 'x' filler (written in place)\n"
                "      --slot-size BYTES  largest message of a new topic\n"
                "      --slots N          ring capacity of a new topic (a power of two)\n"
                "      --policy POLICY    delivery policy of a new topic: reliable|latest\n"
                "  -t, --timeout MS       how long each message may wait for room\n"
                "                         (-1: forever, the default; 0: never wait)\n"
                "      --file FILE        read FILE instead of standard input ('-': stdin);\n"
                "                         alone, the whole file is one message\n"
                "      --raw              the input is binary-safe frames: a 4-byte\n"
                "                         little-endian length, then the payload (what\n"
                "                         'sub --raw' writes)\n"
                "  -0, --null             the input is records each ended by a NUL byte\n"
                "  -q, --quiet            no summary line on stderr (one is printed when\n"
                "                         stderr is a terminal)\n"
                "  -h, --help             show this help and exit\n"
                "\n"
                "BYTES accept a K, M or G suffix (x1024). Use '--' before a MESSAGE that\n"
                "starts with '-'. Exit status: 0 all sent, 1 error, 2 usage error.\n");
}

struct pub_ctx {
        zcbus *bus;
        zcbus_pub *pub;
        const char *topic;
        uint32_t slot_size;
        int timeout_ms;
        uint64_t sent;
};

/* -EMSGSIZE, said with the numbers that matter; returns 1. */
static int too_big(const struct pub_ctx *c, const char *what, uint64_t index, size_t len) {
        cli_err("pub", "%s %" PRIu64 " is %zu bytes, more than the slot size %" PRIu32 " of topic '%s'", what,
                index, len, c->slot_size, c->topic);
        return 1;
}

static int pub_error(struct pub_ctx *c, int r, size_t len) {
        if (r == -EMSGSIZE)
                return too_big(c, "message", c->sent + 1, len);
        if (r == -ETIMEDOUT) {
                cli_err("pub", "timed out after %d ms waiting for room in topic '%s'", c->timeout_ms, c->topic);
                return 1;
        }
        if (r == -EAGAIN)
                return cli_fail("pub", NULL, r, "topic '%s' is full (and --timeout is 0)", c->topic);
        return cli_fail("pub", c->bus, r, "cannot publish to topic '%s'", c->topic);
}

static int pub_one(struct pub_ctx *c, const void *data, size_t len) {
        int r;

        if (len > c->slot_size)
                return pub_error(c, -EMSGSIZE, len);
        do
                r = zcbus_pub_send(c->pub, data, len, c->timeout_ms);
        while (r == -EINTR);
        if (r < 0)
                return pub_error(c, r, len);
        c->sent++;
        return 0;
}

/* Synthetic payload i: its index in decimal, then 'x' up to len bytes. */
static void fill_payload(char *buf, size_t len, uint64_t i) {
        char num[24];
        int n = snprintf(num, sizeof(num), "%" PRIu64, i);
        size_t k = MIN((size_t)n, len);

        memcpy(buf, num, k);
        memset(buf + k, 'x', len - k);
}

static int pub_synthetic(struct pub_ctx *c, size_t size, uint64_t count) {
        for (uint64_t i = 0; i < count; i++) {
                void *buf;
                int r;

                if (size > c->slot_size)
                        return pub_error(c, -EMSGSIZE, size);
                do
                        r = zcbus_pub_loan_timeout(c->pub, size, &buf, c->timeout_ms);
                while (r == -EINTR);
                if (r < 0)
                        return pub_error(c, r, size);
                fill_payload(buf, size, i);
                r = zcbus_pub_commit(c->pub, size);
                if (r < 0)
                        return pub_error(c, r, size);
                c->sent++;
        }
        return 0;
}

static int pub_args(struct pub_ctx *c, char **msgs, int n, uint64_t count) {
        /* Check every argument first: all or nothing. */
        for (int i = 0; i < n; i++) {
                size_t len = strlen(msgs[i]);

                if (len > c->slot_size)
                        return too_big(c, "message", (uint64_t)i + 1, len);
        }
        for (uint64_t k = 0; k < count; k++)
                for (int i = 0; i < n; i++) {
                        int r = pub_one(c, msgs[i], strlen(msgs[i]));
                        if (r)
                                return r;
                }
        return 0;
}

struct lines {
        char **v;
        size_t *len;
        size_t n, cap;
};

static void lines_free(struct lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        free(l->len);
}

static int lines_add(struct lines *l, char *s, size_t len) {
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                char **v = realloc(l->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                l->v = v;
                size_t *lens = realloc(l->len, cap * sizeof(*lens));
                if (!lens)
                        return -ENOMEM;
                l->len = lens;
                l->cap = cap;
        }
        l->v[l->n] = s;
        l->len[l->n] = len;
        l->n++;
        return 0;
}

/* Each record of in (a line, or with delim '\0' a NUL-terminated record;
 * the last may lack its delimiter) is one message. With count 1 records
 * stream straight through (the input may never end); otherwise they are
 * kept and repeated. */
static int pub_records(struct pub_ctx *c, FILE *in, const char *in_name, int delim, uint64_t count) {
        _cleanup_(lines_free) struct lines kept = {};
        _cleanup_free_ char *line = NULL;
        const char *what = delim == '\n' ? "line" : "record";
        size_t cap = 0;
        ssize_t n;
        int r;

        while ((n = getdelim(&line, &cap, delim, in)) >= 0) {
                size_t len = (size_t)n;

                if (len > 0 && line[len - 1] == delim)
                        len--;
                if (count == 1) {
                        if (len > c->slot_size)
                                return too_big(c, what, c->sent + 1, len);
                        r = pub_one(c, line, len);
                        if (r)
                                return r;
                        continue;
                }
                if (len > c->slot_size)
                        return too_big(c, what, kept.n + 1, len);
                r = lines_add(&kept, line, len);
                if (r < 0)
                        return cli_fail("pub", NULL, r, "cannot keep %s", in_name);
                line = NULL;
                cap = 0;
        }
        if (ferror(in)) {
                cli_err("pub", "cannot read %s: %s", in_name, strerror(errno));
                return 1;
        }
        if (count == 1)
                return 0; /* already streamed */
        for (uint64_t k = 0; k < count; k++)
                for (size_t i = 0; i < kept.n; i++) {
                        r = pub_one(c, kept.v[i], kept.len[i]);
                        if (r)
                                return r;
                }
        return 0;
}

/* Raw frames (frame.h: u32 LE length, payload) from in, each one message,
 * streamed with count 1, else kept and repeated. A frame above the slot
 * size stops before anything of it is read or sent. */
static int pub_frames(struct pub_ctx *c, FILE *in, const char *in_name, uint64_t count) {
        _cleanup_(lines_free) struct lines kept = {};
        _cleanup_free_ char *buf = NULL;
        uint64_t index = 0;
        int r;

        for (;;) {
                uint32_t len;

                r = frame_read_len(in, &len);
                if (r == 0)
                        break;
                index++;
                if (r == -ENODATA) {
                        cli_err("pub", "%s ends inside the length of frame %" PRIu64, in_name, index);
                        return 1;
                }
                if (r < 0) {
                        cli_err("pub", "cannot read %s: %s", in_name, strerror(errno ? errno : EIO));
                        return 1;
                }
                if (len > c->slot_size)
                        return too_big(c, "frame", index, len);
                buf = malloc(len ? len : 1);
                if (!buf)
                        return cli_fail("pub", NULL, -ENOMEM, "cannot read frame %" PRIu64, index);
                r = frame_read_body(in, buf, len);
                if (r == -ENODATA) {
                        cli_err("pub", "%s ends inside frame %" PRIu64 " (%" PRIu32 " bytes announced)", in_name,
                                index, len);
                        return 1;
                }
                if (r < 0) {
                        cli_err("pub", "cannot read %s: %s", in_name, strerror(errno ? errno : EIO));
                        return 1;
                }
                if (count == 1) {
                        r = pub_one(c, buf, len);
                        if (r)
                                return r;
                        free(TAKE_PTR(buf));
                        continue;
                }
                r = lines_add(&kept, buf, len);
                if (r < 0)
                        return cli_fail("pub", NULL, r, "cannot keep %s", in_name);
                buf = NULL;
        }
        if (count == 1)
                return 0;
        for (uint64_t k = 0; k < count; k++)
                for (size_t i = 0; i < kept.n; i++) {
                        r = pub_one(c, kept.v[i], kept.len[i]);
                        if (r)
                                return r;
                }
        return 0;
}

/* The whole of in as one message, sent count times. */
static int pub_whole(struct pub_ctx *c, FILE *in, const char *in_name, uint64_t count) {
        size_t max = c->slot_size, cap = MIN(max, (size_t)1 << 16) + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        struct stat st;

        if (!buf)
                return cli_fail("pub", NULL, -ENOMEM, "cannot read %s", in_name);
        /* A regular file says its size before anything is read. */
        if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
                cli_err("pub", "%s is %jd bytes, more than the slot size %" PRIu32 " of topic '%s'", in_name,
                        (intmax_t)st.st_size, c->slot_size, c->topic);
                return 1;
        }
        for (;;) {
                size_t n;

                if (len == cap) {
                        char *nb;

                        if (cap > max) {
                                cli_err("pub", "%s is more than the slot size %" PRIu32 " of topic '%s'", in_name,
                                        c->slot_size, c->topic);
                                return 1;
                        }
                        cap = MIN(cap * 2, max + 1);
                        nb = realloc(buf, cap);
                        if (!nb)
                                return cli_fail("pub", NULL, -ENOMEM, "cannot read %s", in_name);
                        buf = nb;
                }
                n = fread(buf + len, 1, cap - len, in);
                len += n;
                if (n == 0)
                        break;
        }
        if (ferror(in)) {
                cli_err("pub", "cannot read %s: %s", in_name, strerror(errno ? errno : EIO));
                return 1;
        }
        if (len > max) {
                cli_err("pub", "%s is more than the slot size %" PRIu32 " of topic '%s'", in_name, c->slot_size,
                        c->topic);
                return 1;
        }
        for (uint64_t k = 0; k < count; k++) {
                int r = pub_one(c, buf, len);
                if (r)
                        return r;
        }
        return 0;
}

static void fclosep(FILE **f) {
        if (*f && *f != stdin)
                (void)fclose(*f);
}

int cmd_pub(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "count", required_argument, NULL, 'n' },
                { "size", required_argument, NULL, OPT_SIZE },
                CLI_TOPIC_LONGOPTS,
                { "timeout", required_argument, NULL, 't' },
                { "file", required_argument, NULL, OPT_FILE },
                { "raw", no_argument, NULL, OPT_RAW },
                { "null", no_argument, NULL, '0' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        /* A shell tool: stamp every message, so that subscribers can tell
         * its age (timestamp_ns). */
        zcbus_topic_opts topts = { .size = sizeof(topts), .flags = ZCBUS_PUB_TIMESTAMP };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_(pub_closep) zcbus_pub *pub = NULL;
        zcbus_topic_info info = { .size = sizeof(info) };
        struct pub_ctx c = { .timeout_ms = -1 };
        _cleanup_(fclosep) FILE *in = NULL;
        unsigned long long count = 1, size = 0;
        const char *file = NULL, *in_name = "standard input";
        int o, r, quiet = 0, have_size = 0, raw = 0, nul = 0;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":n:t:0qh", longopts, NULL)) != -1) {
                switch (o) {
                case 'n':
                        if (cli_parse_u64(optarg, 1, UINT64_MAX, 0, &count) < 0)
                                return cli_bad_value("pub", "count", optarg, "a whole number >= 1");
                        break;
                case OPT_SIZE:
                        if (cli_parse_u64(optarg, 0, UINT32_MAX, 1, &size) < 0)
                                return cli_bad_value("pub", "size", optarg, "0 to 4294967295 bytes, K/M/G allowed");
                        have_size = 1;
                        break;
                case CLI_OPT_SLOT_SIZE:
                case CLI_OPT_SLOTS:
                case CLI_OPT_POLICY:
                        r = cli_topic_opt("pub", o, optarg, &topts.slot_count, &topts.slot_size, &topts.policy);
                        if (r)
                                return r;
                        break;
                case 't':
                        if (cli_parse_timeout(optarg, &c.timeout_ms) < 0)
                                return cli_bad_value("pub", "timeout", optarg, "-1 or 0 to 2147483647 ms");
                        break;
                case OPT_FILE:
                        file = optarg;
                        break;
                case OPT_RAW:
                        raw = 1;
                        break;
                case '0':
                        nul = 1;
                        break;
                case 'q':
                        quiet = 1;
                        break;
                case 'h':
                        pub_usage();
                        return 0;
                default:
                        return cli_bad_option("pub", argv, o);
                }
        }
        if (optind >= argc) {
                cli_err("pub", "missing TOPIC (try 'zcbus pub --help')");
                return 2;
        }
        c.topic = argv[optind++];
        if (cli_check_topic("pub", c.topic) < 0)
                return 2;
        if (have_size && optind < argc) {
                cli_err("pub", "--size and MESSAGE arguments exclude each other (try 'zcbus pub --help')");
                return 2;
        }
        if (raw && nul) {
                cli_err("pub", "--raw and --null exclude each other (try 'zcbus pub --help')");
                return 2;
        }
        if ((file || raw || nul) && (have_size || optind < argc)) {
                cli_err("pub", "%s and %s exclude each other (try 'zcbus pub --help')",
                        file ? "--file" : raw ? "--raw" : "--null", have_size ? "--size" : "MESSAGE arguments");
                return 2;
        }
        if (file && strcmp(file, "-") != 0) {
                /* Before connecting: a missing file creates no topic. */
                in = fopen(file, "re");
                if (!in) {
                        cli_err("pub", "cannot open '%s': %s", file, strerror(errno));
                        return 1;
                }
                in_name = file;
        } else
                in = stdin;

        r = cli_connect("pub", sock, &bus);
        if (r < 0)
                return 1;
        r = zcbus_pub_open(bus, c.topic, &topts, &pub);
        if (r < 0)
                return cli_fail("pub", bus, r, "cannot publish to topic '%s'", c.topic);
        r = zcbus_pub_info(pub, &info);
        if (r < 0)
                return cli_fail("pub", bus, r, "cannot query topic '%s'", c.topic);
        c.bus = bus;
        c.pub = pub;
        c.slot_size = info.slot_size;

        if (have_size)
                r = pub_synthetic(&c, (size_t)size, count);
        else if (optind < argc)
                r = pub_args(&c, argv + optind, argc - optind, count);
        else if (raw)
                r = pub_frames(&c, in, in_name, count);
        else if (nul)
                r = pub_records(&c, in, in_name, '\0', count);
        else if (file)
                r = pub_whole(&c, in, in_name, count);
        else
                r = pub_records(&c, in, in_name, '\n', count);
        if (r)
                return r;

        if (!quiet && isatty(STDERR_FILENO))
                (void)fprintf(stderr, "zcbus pub: published %" PRIu64 " message%s to '%s' (%s)\n", c.sent,
                              c.sent == 1 ? "" : "s", c.topic, zcbus_policy_name(info.policy));
        /* Committed messages stay in the broker's ring: closing (cleanup)
         * loses nothing, reliable or not. */
        return 0;
}

/* ---- sub ---------------------------------------------------------------- */

static void sub_usage(void) {
        (void)printf(
                "Usage: zcbus sub [OPTIONS] TOPIC|PATTERN\n"
                "\n"
                "Subscribe to TOPIC and write each message to standard output, followed\n"
                "by a newline. The topic is created (with the options below, else the\n"
                "broker's defaults) if it does not exist yet. A subscriber starts with\n"
                "the next message published (see --history).\n"
                "\n"
                "A PATTERN (a name with *, ? or [ ], fnmatch(3) syntax; \\ quotes) subscribes\n"
                "to every topic that matches, now and as they are created (the topic list\n"
                "is read again every --rescan MS), and prefixes each line with 'topic=NAME '.\n"
                "\n"
                "Options:\n"
                "  -n, --count COUNT    exit after COUNT messages (default: run until\n"
                "                       interrupted)\n"
                "  -t, --timeout MS     fail if no message arrives for MS ms (-1: wait\n"
                "                       forever, the default)\n"
                "      --history K      start with up to K messages already published\n"
                "      --wait MODE      how to wait for data: adaptive (default), spin,\n"
                "                       futex\n"
                "      --slot-size BYTES, --slots N, --policy reliable|latest\n"
                "                       the topic's options if this creates it (else\n"
                "                       they must fit the topic; not with a PATTERN)\n"
                "      --rescan MS      with a PATTERN: look for new topics every MS ms\n"
                "                       (default %d; 0: only at the start)\n"
                "  -v, --verbose        prefix each message with 'seq=N len=N lost=N '\n"
                "      --ts             prefix each message with 'ts=SECONDS ', the producer's\n"
                "                       commit time (CLOCK_MONOTONIC), or 'ts=- ' if unstamped\n"
                "      --hex            print payloads as hexadecimal\n"
                "      --json           one JSON object per message and line: topic, seq,\n"
                "                       len, lost, ts_ns, encoding (utf-8|base64), payload\n"
                "      --raw            binary-safe: per message a 4-byte little-endian\n"
                "                       length, then the payload (what 'pub --raw' reads)\n"
                "  -0, --null           each payload followed by a NUL byte, not a newline\n"
                "      --ready-fd FD    once subscribed, write \"READY\\n\" to FD and close it\n"
                "  -h, --help           show this help and exit\n"
                "\n"
                "Exit status: 0 done (or standard output closed), 1 error or timeout,\n"
                "2 usage error, 130/143 interrupted by SIGINT/SIGTERM.\n",
                SUBSET_RESCAN_MS_DEFAULT);
}

static int write_hex(const unsigned char *p, size_t len) {
        static const char digits[] = "0123456789abcdef";
        char buf[512];
        size_t k = 0;

        for (size_t i = 0; i < len; i++) {
                buf[k++] = digits[p[i] >> 4];
                buf[k++] = digits[p[i] & 15];
                if (k == sizeof(buf)) {
                        if (fwrite(buf, 1, k, stdout) != k)
                                return -1;
                        k = 0;
                }
        }
        if (k && fwrite(buf, 1, k, stdout) != k)
                return -1;
        return 0;
}

/* How sub writes a message: exactly one of the formats. */
enum sub_format {
        FMT_TEXT, /* [prefixes] payload '\n' */
        FMT_HEX,  /* [prefixes] hex '\n' */
        FMT_JSON, /* one object '\n' */
        FMT_RAW,  /* u32 LE length, payload (frame.h) */
        FMT_NUL,  /* payload '\0' */
};

struct sub_args {
        const char *topic;
        zcbus_sub_opts opts;
        uint64_t count; /* 0: forever */
        int timeout_ms;
        int rescan_ms;
        enum sub_format fmt;
        bool verbose, ts, show_topic;
        int ready_fd;
};

/* Write one message; returns 0, or -errno of the failed write. */
static int print_msg(const struct sub_args *a, const zcbus_msg *m, const char *topic) {
        int bad = 0;

        errno = 0;
        switch (a->fmt) {
        case FMT_JSON:
                cli_json_msg(stdout, topic, m, NULL);
                break;
        case FMT_RAW:
                bad = frame_write(stdout, m->data, m->len) < 0;
                break;
        case FMT_NUL:
                bad = (m->len > 0 && fwrite(m->data, 1, m->len, stdout) != m->len) || fputc('\0', stdout) == EOF;
                break;
        default:
                if (a->show_topic && printf("topic=%s ", topic) < 0)
                        bad = 1;
                if (!bad && a->ts && m->timestamp_ns &&
                    printf("ts=%" PRIu64 ".%09" PRIu64 " ", m->timestamp_ns / 1000000000u,
                           m->timestamp_ns % 1000000000u) < 0)
                        bad = 1;
                if (!bad && a->ts && !m->timestamp_ns && fputs("ts=- ", stdout) == EOF)
                        bad = 1;
                if (!bad && a->verbose &&
                    printf("seq=%" PRIu64 " len=%zu lost=%" PRIu64 " ", m->seq, m->len, m->lost) < 0)
                        bad = 1;
                if (!bad && m->len > 0) {
                        if (a->fmt == FMT_HEX)
                                bad = write_hex(m->data, m->len) < 0;
                        else
                                bad = fwrite(m->data, 1, m->len, stdout) != m->len;
                }
                if (!bad)
                        bad = fputc('\n', stdout) == EOF;
        }
        if (!bad)
                bad = fflush(stdout) == EOF || ferror(stdout);
        if (!bad)
                return 0;
        return errno > 0 ? -errno : -EIO;
}

static int sub_run(const struct sub_args *a, const char *sock) {
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_(subset_freep) struct subset *set = NULL;
        char *names[1] = { (char *)a->topic };
        int r;

        r = cli_connect("sub", sock, &bus);
        if (r < 0)
                return cli_stop_signal ? 0 : 1;
        r = subset_new("sub", bus, &a->opts, names, 1, a->rescan_ms, &set);
        if (r < 0)
                return cli_stop_signal ? 0 : 1; /* reported */
        cli_signal_ready(a->ready_fd);

        for (uint64_t got = 0; a->count == 0 || got < a->count; got++) {
                const char *topic;
                zcbus_msg msg;

                r = subset_recv(set, &msg, &topic, a->timeout_ms);
                if (r == -EINTR)
                        return 0; /* stop signal: caller re-raises it */
                if (r == -ETIMEDOUT && a->timeout_ms == 0)
                        return 0; /* -t 0: it took what was there */
                if (r == -ETIMEDOUT) {
                        cli_err("sub", "timed out after %d ms waiting for a message", a->timeout_ms);
                        return 1;
                }
                if (r < 0)
                        return 1; /* reported */

                int w = print_msg(a, &msg, topic);
                (void)subset_release(set, &msg);
                if (w == -EPIPE)
                        return 0; /* reader went away: done, quietly */
                if (w < 0) {
                        cli_err("sub", "cannot write to standard output: %s", strerror(-w));
                        return 1;
                }
        }
        return 0;
}

int cmd_sub(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "count", required_argument, NULL, 'n' },
                { "timeout", required_argument, NULL, 't' },
                { "history", required_argument, NULL, OPT_HISTORY },
                { "wait", required_argument, NULL, OPT_WAIT },
                CLI_TOPIC_LONGOPTS,
                { "verbose", no_argument, NULL, 'v' },
                { "hex", no_argument, NULL, OPT_HEX },
                { "ts", no_argument, NULL, OPT_TS },
                { "json", no_argument, NULL, OPT_JSON },
                { "raw", no_argument, NULL, OPT_RAW },
                { "null", no_argument, NULL, '0' },
                { "rescan", required_argument, NULL, OPT_RESCAN },
                { "ready-fd", required_argument, NULL, OPT_READY_FD },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        struct sub_args a = {
                .opts = { .size = sizeof(zcbus_sub_opts) },
                .timeout_ms = -1,
                .rescan_ms = SUBSET_RESCAN_MS_DEFAULT,
                .ready_fd = -1,
        };
        const char *fmt_opt = NULL; /* the format option given, if any */
        bool shape = false;
        unsigned long long v;
        int o, r;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":n:t:v0h", longopts, NULL)) != -1) {
                switch (o) {
                case 'n':
                        if (cli_parse_u64(optarg, 1, UINT64_MAX, 0, &v) < 0)
                                return cli_bad_value("sub", "count", optarg, "a whole number >= 1");
                        a.count = v;
                        break;
                case 't':
                        if (cli_parse_timeout(optarg, &a.timeout_ms) < 0)
                                return cli_bad_value("sub", "timeout", optarg, "-1 or 0 to 2147483647 ms");
                        break;
                case CLI_OPT_SLOT_SIZE:
                case CLI_OPT_SLOTS:
                case CLI_OPT_POLICY:
                        r = cli_topic_opt("sub", o, optarg, &a.opts.slot_count, &a.opts.slot_size, &a.opts.policy);
                        if (r)
                                return r;
                        shape = true;
                        break;
                case OPT_HISTORY:
                        if (cli_parse_u64(optarg, 0, UINT32_MAX, 0, &v) < 0)
                                return cli_bad_value("sub", "history", optarg, "0 to 4294967295 messages");
                        a.opts.history = (uint32_t)v;
                        break;
                case OPT_WAIT:
                        if (strcmp(optarg, "adaptive") == 0)
                                a.opts.wait_mode = ZCBUS_WAIT_ADAPTIVE;
                        else if (strcmp(optarg, "spin") == 0)
                                a.opts.wait_mode = ZCBUS_WAIT_SPIN;
                        else if (strcmp(optarg, "futex") == 0)
                                a.opts.wait_mode = ZCBUS_WAIT_FUTEX;
                        else
                                return cli_bad_value("sub", "wait mode", optarg, "adaptive, spin or futex");
                        break;
                case 'v':
                        a.verbose = true;
                        break;
                case OPT_TS:
                        a.ts = true;
                        break;
                case OPT_HEX:
                case OPT_JSON:
                case OPT_RAW:
                case '0': {
                        static const struct {
                                int opt;
                                enum sub_format fmt;
                                const char *name;
                        } fmts[] = {
                                { OPT_HEX, FMT_HEX, "--hex" },
                                { OPT_JSON, FMT_JSON, "--json" },
                                { OPT_RAW, FMT_RAW, "--raw" },
                                { '0', FMT_NUL, "--null" },
                        };
                        for (size_t k = 0; k < ARRAY_SIZE(fmts); k++) {
                                if (fmts[k].opt != o)
                                        continue;
                                if (fmt_opt && a.fmt != fmts[k].fmt) {
                                        cli_err("sub", "%s and %s exclude each other (try 'zcbus sub --help')",
                                                fmt_opt, fmts[k].name);
                                        return 2;
                                }
                                a.fmt = fmts[k].fmt;
                                fmt_opt = fmts[k].name;
                        }
                        break;
                }
                case OPT_RESCAN:
                        if (cli_parse_u64(optarg, 0, 3600000, 0, &v) < 0)
                                return cli_bad_value("sub", "rescan interval", optarg, "0 to 3600000 ms");
                        a.rescan_ms = (int)v;
                        break;
                case OPT_READY_FD:
                        r = cli_parse_ready_fd("sub", optarg, &a.ready_fd);
                        if (r)
                                return r;
                        break;
                case 'h':
                        sub_usage();
                        return 0;
                default:
                        return cli_bad_option("sub", argv, o);
                }
        }
        if (optind >= argc) {
                cli_err("sub", "missing TOPIC (try 'zcbus sub --help')");
                return 2;
        }
        if (optind + 1 < argc) {
                cli_err("sub", "unexpected argument '%s' (try 'zcbus sub --help')", argv[optind + 1]);
                return 2;
        }
        a.topic = argv[optind];
        if (cli_check_topic("sub", a.topic) < 0)
                return 2;
        if ((a.verbose || a.ts) && (a.fmt == FMT_JSON || a.fmt == FMT_RAW || a.fmt == FMT_NUL)) {
                cli_err("sub", "%s and %s exclude each other (try 'zcbus sub --help')", a.verbose ? "-v" : "--ts",
                        fmt_opt);
                return 2;
        }
        a.show_topic = subset_is_pattern(a.topic);
        if (a.show_topic && shape) {
                cli_err("sub", "--slot-size, --slots and --policy create a topic: not with a pattern (try 'zcbus "
                        "sub --help')");
                return 2;
        }

        cli_catch_stop();

        r = sub_run(&a, sock);
        if (cli_stop_signal) {
                int sig = cli_stop_signal;

                /* Everything is closed: leave the way the signal asked, so
                 * a calling shell sees the interruption. */
                (void)signal(sig, SIG_DFL);
                (void)raise(sig);
                return 128 + sig;
        }
        return r;
}
