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
#include <time.h>
#include <unistd.h>

#include "zcbus.h"
#include "cli.h"

enum {
        OPT_SIZE = 0x100,
        OPT_HISTORY,
        OPT_WAIT,
        OPT_HEX,
        OPT_READY_FD,
};

static void pub_closep(zcbus_pub **p) {
        zcbus_pub_close(*p);
}
static void sub_closep(zcbus_sub **p) {
        zcbus_sub_close(*p);
}

/* ---- pub ---------------------------------------------------------------- */

static void pub_usage(void) {
        (void)printf(
                "Usage: zcbus pub [OPTIONS] TOPIC [MESSAGE...]\n"
                "\n"
                "Publish each MESSAGE argument as one message to TOPIC; without any,\n"
                "publish each line of standard input (newline stripped). The topic is\n"
                "created with the topic options below if it does not exist yet. Each\n"
                "message is stamped with the time of its commit.\n"
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

/* Each line of stdin is one message. With count 1 lines stream straight
 * through (stdin may never end); otherwise they are kept and repeated. */
static int pub_stdin(struct pub_ctx *c, uint64_t count) {
        _cleanup_(lines_free) struct lines kept = {};
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int r;

        while ((n = getline(&line, &cap, stdin)) >= 0) {
                size_t len = (size_t)n;

                if (len > 0 && line[len - 1] == '\n')
                        len--;
                if (count == 1) {
                        r = pub_one(c, line, len);
                        if (r)
                                return r;
                        continue;
                }
                if (len > c->slot_size)
                        return too_big(c, "line", kept.n + 1, len);
                r = lines_add(&kept, line, len);
                if (r < 0)
                        return cli_fail("pub", NULL, r, "cannot keep standard input");
                line = NULL;
                cap = 0;
        }
        if (ferror(stdin)) {
                cli_err("pub", "cannot read standard input: %s", strerror(errno));
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

int cmd_pub(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "count", required_argument, NULL, 'n' },
                { "size", required_argument, NULL, OPT_SIZE },
                CLI_TOPIC_LONGOPTS,
                { "timeout", required_argument, NULL, 't' },
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
        unsigned long long count = 1, size = 0;
        int o, r, quiet = 0, have_size = 0;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":n:t:qh", longopts, NULL)) != -1) {
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
        else
                r = pub_stdin(&c, count);
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
                "Usage: zcbus sub [OPTIONS] TOPIC\n"
                "\n"
                "Subscribe to TOPIC and write each message to standard output, followed\n"
                "by a newline. The topic is created (with the options below, else the\n"
                "broker's defaults) if it does not exist yet. A subscriber starts with\n"
                "the next message published (see --history).\n"
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
                "                       they must fit the topic)\n"
                "  -v, --verbose        prefix each message with 'seq=N len=N lost=N '\n"
                "      --hex            print payloads as hexadecimal\n"
                "      --ready-fd FD    once subscribed, write \"READY\\n\" to FD and close it\n"
                "  -h, --help           show this help and exit\n"
                "\n"
                "Exit status: 0 done (or standard output closed), 1 error or timeout,\n"
                "2 usage error, 130/143 interrupted by SIGINT/SIGTERM.\n");
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

/* Write one message; returns 0, or -errno of the failed write. */
static int print_msg(const zcbus_msg *m, int verbose, int hex) {
        int bad = 0;

        errno = 0;
        if (verbose && printf("seq=%" PRIu64 " len=%zu lost=%" PRIu64 " ", m->seq, m->len, m->lost) < 0)
                bad = 1;
        if (!bad && m->len > 0) {
                if (hex)
                        bad = write_hex(m->data, m->len) < 0;
                else
                        bad = fwrite(m->data, 1, m->len, stdout) != m->len;
        }
        if (!bad)
                bad = fputc('\n', stdout) == EOF;
        if (!bad)
                bad = fflush(stdout) == EOF;
        if (!bad)
                return 0;
        return errno > 0 ? -errno : -EIO;
}

struct sub_args {
        const char *topic;
        zcbus_sub_opts opts;
        uint64_t count; /* 0: forever */
        int timeout_ms;
        int verbose, hex;
        int ready_fd;
};

static int sub_run(const struct sub_args *a, const char *sock) {
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_(sub_closep) zcbus_sub *sub = NULL;
        int r;

        r = cli_connect("sub", sock, &bus);
        if (r < 0)
                return cli_stop_signal ? 0 : 1;
        r = zcbus_sub_open(bus, a->topic, &a->opts, &sub);
        if (r < 0)
                return cli_stop_signal ? 0 : cli_fail("sub", bus, r, "cannot subscribe to topic '%s'", a->topic);
        if (a->ready_fd >= 0)
                cli_signal_ready(a->ready_fd);

        for (uint64_t got = 0; a->count == 0 || got < a->count; got++) {
                zcbus_msg msg;

                r = cli_recv(sub, &msg, a->timeout_ms);
                if (r == -EINTR)
                        return 0; /* stop signal: caller re-raises it */
                if (r == -ETIMEDOUT && a->timeout_ms == 0)
                        return 0; /* -t 0: it took what was there */
                if (r == -ETIMEDOUT) {
                        cli_err("sub", "timed out after %d ms waiting for a message", a->timeout_ms);
                        return 1;
                }
                if (r < 0)
                        return cli_fail("sub", bus, r, "cannot receive from topic '%s'", a->topic);

                int w = print_msg(&msg, a->verbose, a->hex);
                (void)zcbus_sub_release(sub, &msg);
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
                { "ready-fd", required_argument, NULL, OPT_READY_FD },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        struct sub_args a = {
                .opts = { .size = sizeof(zcbus_sub_opts) },
                .timeout_ms = -1,
                .ready_fd = -1,
        };
        unsigned long long v;
        int o, r;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":n:t:vh", longopts, NULL)) != -1) {
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
                        a.verbose = 1;
                        break;
                case OPT_HEX:
                        a.hex = 1;
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
