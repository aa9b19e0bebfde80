/* SPDX-License-Identifier: MIT */
/*
 * main.c: the zcbus command-line tool's entry point. It owns the global
 * options (-s PATH, --help, --version), dispatches to one subcommand, and
 * implements the helpers the subcommands share that need the bus
 * (connecting to the broker, reporting its errors); the plain ones are in
 * cli_util.c, shared with zcbus-bench.
 *
 * Global options are parsed with "+" so they stop at the command name:
 * everything after it belongs to the subcommand, which gets its own argv
 * (argv[0] is the command name) and a fresh getopt (optind = 0).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcbus.h"
#include "cli.h"

struct command {
        const char *name;
        int (*run)(int argc, char **argv, const char *sock);
        const char *summary;
};

static const struct command commands[] = {
        { "pub", cmd_pub, "publish messages to a topic" },
        { "sub", cmd_sub, "subscribe to a topic and print its messages" },
        { "list", cmd_list, "list the broker's topics" },
        { "stat", cmd_stat, "show a topic's producers and subscribers" },
        { "top", cmd_top, "watch topics, producers and subscribers live" },
        { "topic", cmd_topic, "delete idle topics (topic rm)" },
        { "peers", cmd_peers, "show the broker's sessions and their counters" },
        { "record", cmd_record, "record topics to a file" },
        { "replay", cmd_replay, "publish a recording again" },
        { "lat", cmd_bench, "measure round-trip latency" },
        { "perf", cmd_bench, "measure throughput" },
};

int cli_connect(const char *cmd, const char *sock, zcbus **ret_bus) {
        char path[4096];
        bool nobody;
        int r;

        r = zcbus_connect(sock, ret_bus);
        if (r >= 0)
                return 0;
        /* The library's words, as for every other error, and a hint when
         * nothing listens there. */
        nobody = r == -ENOENT || r == -ECONNREFUSED;
        if (sock)
                (void)snprintf(path, sizeof(path), "%s", sock);
        else if (zcbus_default_socket(path, sizeof(path)) < 0)
                (void)snprintf(path, sizeof(path), "(default)");
        cli_err(cmd, "cannot connect to broker at '%s': %s%s", path,
                zcbus_strerror(r), nobody ? " (is zcbusd running?)" : "");
        return r;
}

void cli_disconnectp(zcbus **p) {
        zcbus_disconnect(*p);
}

int cli_fail(const char *cmd, zcbus *bus, int r, const char *fmt, ...) {
        const char *why = bus ? zcbus_last_error(bus) : NULL;
        char what[512];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (why && *why)
                cli_err(cmd, "%s: %s (%s)", what, zcbus_strerror(r), why);
        else
                cli_err(cmd, "%s: %s", what, zcbus_strerror(r));
        return 1;
}

static const struct command *find_command(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static void usage(FILE *f) {
        (void)fprintf(f,
                      "Usage: zcbus [-s PATH] [-h|--help] [--version] COMMAND [ARGS]\n"
                      "\n"
                      "Talk to a zcbus broker (zcbusd): publish, subscribe, inspect, measure.\n"
                      "\n"
                      "Options:\n"
                      "  -s, --socket PATH  broker socket (default: $ZCBUS_SOCKET, else the\n"
                      "                     built-in default path)\n"
                      "  -h, --help         show this help and exit\n"
                      "      --version      show the version and exit\n"
                      "\n"
                      "Commands:\n");
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                (void)fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].summary);
        (void)fprintf(f, "  %-6s %s\n", "help", "show the usage of a command");
        (void)fprintf(f, "\n'zcbus help COMMAND' or 'zcbus COMMAND --help' shows a command's options.\n");
}

/* Run a command with a fresh getopt state. */
static int run(const struct command *c, int argc, char **argv, const char *sock) {
        optind = 0; /* glibc: full re-initialisation, including "+" handling */
        opterr = 1;
        return c->run(argc, argv, sock);
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100 };
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { NULL, 0, NULL, 0 },
        };
        const char *sock = NULL;
        const struct command *c;
        int o;

        opterr = 0;
        while ((o = getopt_long(argc, argv, "+:s:h", longopts, NULL)) != -1) {
                switch (o) {
                case 's':
                        if (optarg[0] == '\0') {
                                (void)fprintf(stderr, "zcbus: empty socket path (try 'zcbus --help')\n");
                                return 2;
                        }
                        sock = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        (void)printf("zcbus %s (API %d.%d)\n", PACKAGE_VERSION, ZCBUS_VERSION_MAJOR,
                                     ZCBUS_VERSION_MINOR);
                        return 0;
                case ':':
                        (void)fprintf(stderr, "zcbus: option '%s' needs an argument (try 'zcbus --help')\n",
                                      argv[optind - 1]);
                        return 2;
                default:
                        if (optopt)
                                (void)fprintf(stderr, "zcbus: unknown option '-%c' (try 'zcbus --help')\n",
                                              optopt);
                        else
                                (void)fprintf(stderr, "zcbus: unknown option '%s' (try 'zcbus --help')\n",
                                              argv[optind - 1]);
                        return 2;
                }
        }

        if (optind >= argc) {
                (void)fprintf(stderr, "zcbus: missing command (try 'zcbus --help')\n");
                return 2;
        }

        if (strcmp(argv[optind], "help") == 0) {
                char help[] = "--help";
                char *hargv[3];

                if (optind + 1 >= argc) {
                        usage(stdout);
                        return 0;
                }
                if (optind + 2 < argc) {
                        (void)fprintf(stderr, "zcbus help: too many arguments (try 'zcbus --help')\n");
                        return 2;
                }
                c = find_command(argv[optind + 1]);
                if (!c) {
                        (void)fprintf(stderr, "zcbus help: unknown command '%s' (try 'zcbus --help')\n",
                                      argv[optind + 1]);
                        return 2;
                }
                hargv[0] = argv[optind + 1];
                hargv[1] = help;
                hargv[2] = NULL;
                return run(c, 2, hargv, sock);
        }

        c = find_command(argv[optind]);
        if (!c) {
                (void)fprintf(stderr, "zcbus: unknown command '%s' (try 'zcbus --help')\n", argv[optind]);
                return 2;
        }
        return run(c, argc - optind, argv + optind, sock);
}
