/* SPDX-License-Identifier: MIT */
/*
 * main.c: zcbus-bridge's process life: options, the config, startup in a
 * fixed order (state, local bus, NATS, inbound routes, the first scan),
 * the readiness word, the libev loop, the stats file, and `--stats`.
 *
 * Startup is all-or-nothing: a bad option exits 2; a bad config, or a
 * bus, NATS server or stream that cannot be reached in time, exits 1 with
 * one line on stderr. "READY" is written to --ready-fd only once every
 * route is in place. SIGTERM and SIGINT stop the bridge; SIGUSR1 writes
 * the stats file at once (which is how `--stats` gets fresh figures).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uuid/uuid.h>

#include "bridge.h"
#include "json.h"
#include "util.h"

#define STARTUP_TIMEOUT_MS 30000

int log_verbose;

static void log_v(const char *fmt, va_list ap) {
        char buf[2048];
        int n = snprintf(buf, sizeof(buf), "zcbus-bridge: ");

        n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
        if (n > (int)sizeof(buf) - 2)
                n = (int)sizeof(buf) - 2;
        buf[n++] = '\n';
        (void)!write(STDERR_FILENO, buf, (size_t)n);
}

void log_msg(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_v(fmt, ap);
        va_end(ap);
}

void log_debug(const char *fmt, ...) {
        va_list ap;

        if (!log_verbose)
                return;
        va_start(ap, fmt);
        log_v(fmt, ap);
        va_end(ap);
}

struct opts {
        const char *config;
        const char *socket;
        const char *state_dir;
        int ready_fd;
        bool stats, json;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
        va_list ap;

        (void)fputs("zcbus-bridge: ", stderr);
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputs(" (see zcbus-bridge --help)\n", stderr);
        return -EINVAL;
}

static void usage(FILE *f) {
        (void)fputs("Usage: zcbus-bridge -c CONFIG [-f] [-v] [-s PATH] [--state-dir DIR] [--ready-fd N]\n"
                    "       zcbus-bridge -c CONFIG --stats [--json]\n"
                    "Bridge topics of a local zcbusd to NATS and back, as CONFIG says.\n"
                    "  -c, --config FILE  the bridge's config (see zcbus-bridge(1))\n"
                    "  -s, --socket PATH  the local broker's socket (overrides 'socket')\n"
                    "      --state-dir D  where the bus id, positions and stats live (overrides 'state_dir')\n"
                    "      --ready-fd N   write \"READY\\n\" to descriptor N once every route is up\n"
                    "  -f, --foreground   accepted for symmetry with zcbusd; the bridge never forks\n"
                    "  -v, --verbose      log more\n"
                    "      --stats        print the running bridge's counters (--json: as JSON)\n"
                    "  -h, --help         this text\n"
                    "      --version      the version\n",
                    f);
}

enum { OPT_READY_FD = 256, OPT_STATS, OPT_JSON, OPT_STATE_DIR, OPT_VERSION };

/* Returns 1 to go on, 0 to exit successfully, <0 for a usage error. */
static int parse_opts(int argc, char **argv, struct opts *o) {
        static const struct option longopts[] = {
                {"config", required_argument, NULL, 'c'},
                {"socket", required_argument, NULL, 's'},
                {"state-dir", required_argument, NULL, OPT_STATE_DIR},
                {"ready-fd", required_argument, NULL, OPT_READY_FD},
                {"foreground", no_argument, NULL, 'f'},
                {"verbose", no_argument, NULL, 'v'},
                {"stats", no_argument, NULL, OPT_STATS},
                {"json", no_argument, NULL, OPT_JSON},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, OPT_VERSION},
                {},
        };
        int c;

        *o = (struct opts){.ready_fd = -1};
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":c:s:fvh", longopts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        o->config = optarg;
                        break;
                case 's':
                        o->socket = optarg;
                        break;
                case OPT_STATE_DIR:
                        o->state_dir = optarg;
                        break;
                case OPT_READY_FD: {
                        char *end;
                        long v;

                        errno = 0;
                        v = strtol(optarg, &end, 10);
                        if (errno || *end || v < 0 || v > 1 << 20)
                                return usage_error("--ready-fd: '%s' is not a descriptor number", optarg);
                        if (fcntl((int)v, F_GETFD) < 0)
                                return usage_error("--ready-fd: %s is not an open descriptor", optarg);
                        o->ready_fd = (int)v;
                        break;
                }
                case 'f':
                        break;
                case 'v':
                        log_verbose = 1;
                        break;
                case OPT_STATS:
                        o->stats = true;
                        break;
                case OPT_JSON:
                        o->json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        (void)printf("zcbus-bridge %s (API %d.%d, libnats %s)\n", PACKAGE_VERSION, ZCBUS_VERSION_MAJOR,
                                     ZCBUS_VERSION_MINOR, nats_GetVersion());
                        return 0;
                case ':':
                        return usage_error("option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (!o->config)
                return usage_error("-c CONFIG is required");
        if (o->json && !o->stats)
                return usage_error("--json goes with --stats");
        return 1;
}

/* ---- the stats file ------------------------------------------------------ */

/* url without its user:password@, in place: what is shown to others. */
static void url_redact(char *url) {
        char *start = strstr(url, "://"), *at, *end;

        start = start ? start + 3 : url;
        end = start + strcspn(start, "/?#");
        at = memchr(start, '@', (size_t)(end - start));
        if (at)
                memmove(start, at + 1, strlen(at + 1) + 1);
}

static uint64_t stats_generation;

static void write_stats(struct bridge *b) {
        char path[4096], tmp[4200], url[256];
        FILE *f;

        (void)snprintf(path, sizeof(path), "%s/stats.json", b->conf->state_dir);
        (void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "we");
        if (!f) {
                static bool said;

                if (!said)
                        log_msg("cannot write '%s': %s (said once)", tmp, strerror(errno));
                said = true;
                return;
        }
        link_server(b, url, sizeof(url));
        url_redact(url);
        (void)fprintf(f, "{\n  \"generation\": %" PRIu64 ",\n  \"pid\": %ld,\n  \"bus_id\": \"%s\",\n"
                         "  \"session\": \"%s\",\n  \"nats_server\": ",
                      ++stats_generation, (long)getpid(), b->bus_id_str, b->session_str);
        json_str(f, url);
        (void)fprintf(f, ",\n  \"nats_connected\": %s,\n  \"max_payload\": %d,\n",
                      b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED ? "true" : "false",
                      b->max_payload);
        (void)fprintf(f,
                      "  \"forwarded\": %" PRIu64 ",\n  \"received\": %" PRIu64 ",\n  \"dropped\": %" PRIu64
                      ",\n  \"duplicates\": %" PRIu64 ",\n  \"loops\": %" PRIu64 ",\n  \"oversize\": %" PRIu64
                      ",\n  \"reconnects\": %" PRIu64 ",\n  \"bus_reconnects\": %" PRIu64
                      ",\n  \"evicted\": %" PRIu64 ",\n  \"gaps\": %" PRIu64
                      ",\n  \"retries\": %" PRIu64 ",\n  \"held\": %" PRIu64 ",\n  \"reorder_gaps\": %" PRIu64
                      ",\n  \"late\": %" PRIu64 ",\n  \"errors\": %" PRIu64 ",\n",
                      STAT_GET(b, forwarded), STAT_GET(b, received), STAT_GET(b, dropped) + in_nats_dropped(b),
                      STAT_GET(b, duplicates), STAT_GET(b, loops), STAT_GET(b, oversize), STAT_GET(b, reconnects),
                      STAT_GET(b, bus_reconnects),
                      STAT_GET(b, evicted), STAT_GET(b, gaps), STAT_GET(b, retries), STAT_GET(b, held),
                      STAT_GET(b, reorder_gaps), STAT_GET(b, late), STAT_GET(b, errors));
        (void)fputs("  \"out\": ", f);
        out_stats_json(b, f);
        (void)fputs(",\n  \"in\": ", f);
        in_stats_json(b, f);
        (void)fputs("\n}\n", f);
        if (fclose(f) != 0 || rename(tmp, path) < 0)
                log_msg("cannot write '%s': %s", path, strerror(errno));
}

/* Say the same to the broker, so that `zcbus stat` and `zcbus peers` show
 * the bridge beside its entries. It forgets them when it restarts: the
 * next tick says them again. A broker that does not answer (stopped, not
 * gone) would hold the loop for the library's reply timeout each tick:
 * after a timeout, wait TELL_BACKOFF_S before trying again. */
#define TELL_BACKOFF_S 30.0
static void tell_broker(struct bridge *b) {
        static ev_tstamp quiet_until;
        char url[256], label[ZCBUS_LABEL_MAX];
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
#define F(n, f) {n, offsetof(struct bstats, f)}
                F("forwarded", forwarded), F("received", received),     F("dropped", dropped),
                F("duplicates", duplicates), F("loops", loops),         F("oversize", oversize),
                F("nats_reconnects", reconnects), F("bus_reconnects", bus_reconnects),
                F("evicted", evicted),       F("gaps", gaps),           F("retries", retries),
                F("held", held),             F("reorder_gaps", reorder_gaps), F("late", late),
                F("errors", errors),
#undef F
        };
        zcbus_counter c[ARRAY_SIZE(fields)];

        static_assert(ARRAY_SIZE(fields) <= ZCBUS_COUNTERS_MAX, "the bridge's counters fit");
        if (ev_now(b->loop) < quiet_until)
                return;
        link_server(b, url, sizeof(url));
        url_redact(url);
        /* Cut to fit (the label is for people): snprintf does it. */
        if (snprintf(label, sizeof(label), "nats bridge %s as %s", url[0] ? url : "(not connected)", b->prefix) >=
            (int)sizeof(label))
                label[sizeof(label) - 1] = 0;
        for (char *p = label; *p; p++)
                if (*p < 0x20 || *p >= 0x7f)
                        *p = '?';
        memset(c, 0, sizeof(c));
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                (void)snprintf(c[i].name, sizeof(c[i].name), "%s", fields[i].name);
                c[i].value = atomic_load_explicit((_Atomic uint64_t *)((char *)&b->stats + fields[i].off),
                                                  memory_order_relaxed);
        }
        c[2].value += in_nats_dropped(b);
        pthread_mutex_lock(&b->bus_lock);
        int r = zcbus_set_info(b->bus, label, c, ARRAY_SIZE(fields));
        pthread_mutex_unlock(&b->bus_lock);
        if (r == -ETIMEDOUT)
                quiet_until = ev_now(b->loop) + TELL_BACKOFF_S;
        if (r < 0 && r != -ENOTCONN && r != -ECONNRESET && r != -EPIPE && r != -ETIMEDOUT) {
                static bool said;
                if (!said)
                        log_msg("cannot tell the broker our counters: %s (said once)", zcbus_strerror(r));
                said = true;
        }
}

/* --stats: ask the running bridge (its pid file) for fresh figures, wait
 * for a new generation of the file, print it. */
static uint64_t read_generation(const char *path) {
        FILE *f = fopen(path, "re");
        unsigned long long g = 0;

        if (f) {
                if (fscanf(f, " { \"generation\": %llu", &g) != 1)
                        g = 0;
                (void)fclose(f);
        }
        return g;
}

static int show_stats(const struct bconf *c, bool json) {
        char path[4096], pidpath[4096], line[512];
        uint64_t g0, deadline;
        FILE *f;
        long pid = 0;

        (void)snprintf(path, sizeof(path), "%s/stats.json", c->state_dir);
        (void)snprintf(pidpath, sizeof(pidpath), "%s/pid", c->state_dir);
        f = fopen(pidpath, "re");
        if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
                (void)fprintf(stderr, "zcbus-bridge: no bridge runs with state directory '%s' (no pid file)\n",
                              c->state_dir);
                if (f)
                        (void)fclose(f);
                return 1;
        }
        (void)fclose(f);
        g0 = read_generation(path);
        if (kill((pid_t)pid, SIGUSR1) < 0) {
                (void)fprintf(stderr, "zcbus-bridge: the bridge of '%s' (pid %ld) does not run: %s\n", c->state_dir,
                              pid, strerror(errno));
                return 1;
        }
        deadline = now_ms() + 2000;
        while (read_generation(path) == g0 && now_ms() < deadline)
                (void)usleep(5000);
        f = fopen(path, "re");
        if (!f) {
                (void)fprintf(stderr, "zcbus-bridge: cannot read '%s': %s\n", path, strerror(errno));
                return 1;
        }
        while (fgets(line, sizeof(line), f)) {
                if (json) {
                        (void)fputs(line, stdout);
                        continue;
                }
                /* Text: the top-level "key": value lines, without quotes. */
                if (strncmp(line, "  \"", 3) == 0 && !strchr(line, '[')) {
                        char *q = strchr(line + 3, '"');

                        if (q) {
                                char *v = q + 2;
                                size_t n = strlen(v);

                                *q = '\0';
                                while (*v == ' ')
                                        v++;
                                if (n && v[strlen(v) - 1] == '\n')
                                        v[strlen(v) - 1] = '\0';
                                if (*v && v[strlen(v) - 1] == ',')
                                        v[strlen(v) - 1] = '\0';
                                (void)printf("%-16s %s\n", line + 3, v);
                        }
                }
        }
        (void)fclose(f);
        return 0;
}

/* ---- the loop ------------------------------------------------------------ */

static struct bridge *the_bridge;

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents) {
        log_msg("signal %d: stopping", w->signum);
        atomic_store(&the_bridge->stopping, true);
        ev_break(loop, EVBREAK_ALL);
}

static void on_usr1(struct ev_loop *loop, ev_signal *w, int revents) {
        write_stats(the_bridge);
}

static void on_stats_timer(struct ev_loop *loop, ev_timer *w, int revents) {
        write_stats(the_bridge);
        tell_broker(the_bridge);
}

static void on_scan(struct ev_loop *loop, ev_timer *w, int revents) {
        out_scan(the_bridge);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents) {
        /* A route ended: reap it now; the scan starts it again if its
         * topic is still there. */
        out_scan(the_bridge);
}

static int write_pid(const char *dir) {
        char path[4096], tmp[4200];
        FILE *f;

        (void)snprintf(path, sizeof(path), "%s/pid", dir);
        (void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        (void)fprintf(f, "%ld\n", (long)getpid());
        if (fclose(f) != 0 || rename(tmp, path) < 0)
                return -errno;
        return 0;
}

static int run(struct bridge *b, const struct opts *o) {
        struct bconf *c = b->conf;
        char err[1024];
        uint8_t sid[16];
        sigset_t sigs, old;
        ev_signal sterm, sint, susr1;
        ev_timer scan, stats;
        int r;

        r = state_open(c->state_dir, c->have_bus_id ? c->bus_id : NULL, &b->state, err, sizeof(err));
        if (r < 0) {
                log_msg("%s", err);
                return 1;
        }
        state_bus_id(b->state, b->bus_id);
        uuid_unparse_lower(b->bus_id, b->bus_id_str);
        r = write_pid(c->state_dir);
        if (r < 0) {
                log_msg("cannot write the pid file in '%s': %s", c->state_dir, strerror(-r));
                return 1;
        }

        r = zcbus_connect(c->socket, &b->bus);
        if (r < 0) {
                char def[256] = "";

                if (!c->socket)
                        (void)zcbus_default_socket(def, sizeof(def));
                log_msg("cannot connect to the local broker at '%s': %s (is zcbusd running?)",
                        c->socket ? c->socket : def, zcbus_strerror(r));
                return 1;
        }
        if (zcbus_session_id(b->bus, sid) == 0)
                uuid_unparse_lower(sid, b->session_str);

        /* libnats makes its threads from this one: they must not take the
         * signals the loop handles. */
        (void)sigemptyset(&sigs);
        (void)sigaddset(&sigs, SIGTERM);
        (void)sigaddset(&sigs, SIGINT);
        (void)sigaddset(&sigs, SIGUSR1);
        (void)sigaddset(&sigs, SIGHUP);
        (void)pthread_sigmask(SIG_BLOCK, &sigs, &old);

        b->loop = ev_default_loop(EVFLAG_AUTO);
        ev_async_init(&b->wake, on_wake);
        ev_async_start(b->loop, &b->wake);

        if (link_connect(b, STARTUP_TIMEOUT_MS) < 0)
                return 1;
        r = in_start(b, err, sizeof(err));
        if (r < 0) {
                log_msg("%s", err);
                return 1;
        }
        out_scan(b);
        log_msg("bus %s bridged to NATS under '%s' (%u out, %u in routes)", b->bus_id_str, b->prefix, c->nout,
                c->nin);
        write_stats(b);
        tell_broker(b);

        ev_signal_init(&sterm, on_stop, SIGTERM);
        ev_signal_init(&sint, on_stop, SIGINT);
        ev_signal_init(&susr1, on_usr1, SIGUSR1);
        ev_signal_start(b->loop, &sterm);
        ev_signal_start(b->loop, &sint);
        ev_signal_start(b->loop, &susr1);
        ev_timer_init(&scan, on_scan, c->scan_ms / 1000.0, c->scan_ms / 1000.0);
        ev_timer_init(&stats, on_stats_timer, c->stats_ms / 1000.0, c->stats_ms / 1000.0);
        ev_timer_start(b->loop, &scan);
        ev_timer_start(b->loop, &stats);
        (void)signal(SIGHUP, SIG_IGN);
        (void)signal(SIGPIPE, SIG_IGN);

        if (o->ready_fd >= 0) {
                (void)!write(o->ready_fd, "READY\n", 6);
                (void)close(o->ready_fd);
        }
        /* libev unblocks each signal it watches as it starts watching. */
        (void)pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
        ev_run(b->loop, 0);

        atomic_store(&b->stopping, true);
        out_stop_all(b);
        in_stop(b);
        write_stats(b);
        echo_free_all(b);
        return 0;
}

int main(int argc, char **argv) {
        struct opts o;
        struct bconf conf;
        struct bridge b = {.conf = &conf};
        char err[2048];
        int r;

        r = parse_opts(argc, argv, &o);
        if (r <= 0)
                return r == 0 ? 0 : 2;
        bconf_init(&conf);
        if (bconf_load_file(&conf, o.config, err, sizeof(err)) < 0 || bconf_check(&conf, o.config, err, sizeof(err)) < 0) {
                (void)fprintf(stderr, "zcbus-bridge: %s\n", err);
                bconf_deinit(&conf);
                return 1;
        }
        if (o.socket) {
                free(conf.socket);
                conf.socket = strdup(o.socket);
        }
        if (o.state_dir) {
                free(conf.state_dir);
                conf.state_dir = strdup(o.state_dir);
        }
        if (!conf.state_dir)
                conf.state_dir = strdup("/var/lib/zcbus-bridge");
        if (!conf.prefix)
                conf.prefix = strdup("zcbus");
        if (!conf.state_dir || !conf.prefix || (o.socket && !conf.socket)) {
                (void)fprintf(stderr, "zcbus-bridge: out of memory\n");
                return 1;
        }
        if (o.stats) {
                r = show_stats(&conf, o.json);
                bconf_deinit(&conf);
                return r;
        }
        if (conf.nout == 0 && conf.nin == 0)
                log_msg("%s names no 'out' or 'in' route: nothing is bridged", o.config);
        b.conf_path = o.config;
        b.prefix = conf.prefix;
        (void)pthread_mutex_init(&b.bus_lock, NULL);
        (void)pthread_mutex_init(&b.lock, NULL);
        the_bridge = &b;
        r = run(&b, &o);
        link_close(&b);
        if (b.bus)
                zcbus_disconnect(b.bus);
        state_close(b.state);
        bconf_deinit(&conf);
        nats_Close();
        return r;
}
