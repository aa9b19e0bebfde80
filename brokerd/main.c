/* SPDX-License-Identifier: MIT */
/*
 * main.c: the zcbusd process. It owns what happens before and after the
 * broker serves: the command line, the configuration it resolves (file,
 * then options, then the socket path fallbacks), daemonizing, signals,
 * the readiness notifications, and the exit status.
 *
 * Startup is all-or-nothing and observable: a bad option exits 2, a bad
 * configuration or a failure to listen exits 1 with one line on stderr,
 * and "ready" is only ever said once the socket is listening. As a daemon
 * the parent stays until the child reports (through a pipe) that it
 * listens, or why it could not, so `zcbusd && zcbus ...` never races and
 * a failing daemon still prints its error on the caller's terminal.
 *
 * Signals go through the libev loop (ev_signal): SIGINT and SIGTERM stop
 * the loop and shut down cleanly; SIGHUP re-reads the config file and
 * applies all of it but the socket's path, mode and group and the pidfile
 * (rules, quotas, limits and topic defaults are read where they are used),
 * logging each setting that changed and whether it applies, or keeps the
 * current configuration whole if the file is bad; SIGPIPE is ignored.
 *
 * Under a service manager it also takes the listening socket the manager
 * passed (activate.c, before forking: LISTEN_PID names the process the
 * manager started), and tells the manager through $NOTIFY_SOCKET
 * (notify.c) when it is ready, reloading or stopping, and how many topics
 * and sessions it has. The pidfile (pidfile.c) is locked before the
 * socket is made and written once it listens, before any readiness is
 * announced, so whoever waited for readiness finds the pid.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "activate.h"
#include "broker.h"
#include "conf.h"
#include "macro.h"
#include "notify.h"
#include "pidfile.h"
#include "proto.h"
#include "zcbus.h"

#define EXIT_USAGE 2

struct opts {
        bool foreground;
        bool verbose;
        const char *socket;
        const char *config;
        char *config_abs; /* realpath of config, owned */
        char *pidfile; /* absolute, owned; NULL: none */
        int ready_fd; /* -1: none */
};

/* State the signal handlers need. */
struct main_ctx {
        struct conf *conf;
        const struct opts *opts;
        struct notify *notify;
        struct broker *broker;
        bool daemonized;
        bool stopping_told;
};

static void usage(FILE *f) {
        (void)fprintf(f,
                      "Usage: zcbusd [-f] [-v] [-s PATH] [-c CONFIG] [--ready-fd N] [--pidfile PATH]\n"
                      "\n"
                      "The zcbus broker: introduces producers and subscribers of shared-memory\n"
                      "topics to each other and cleans up after them.\n"
                      "\n"
                      "  -f, --foreground  stay in the foreground and log to stderr\n"
                      "  -v, --verbose     log sessions and topic creation too\n"
                      "  -s, --socket PATH listen on PATH (else config 'socket', else\n"
                      "                    $ZCBUS_SOCKET, else the default path)\n"
                      "  -c, --config FILE read settings from FILE ('key = value' lines)\n"
                      "      --ready-fd N  write \"READY\\n\" to descriptor N once listening\n"
                      "      --pidfile PATH\n"
                      "                    write the broker's pid to PATH once listening (locked,\n"
                      "                    removed at exit)\n"
                      "  -h, --help        show this help\n"
                      "      --version     show the version\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
        va_list ap;

        (void)fputs("zcbusd: ", stderr);
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputs(" (see zcbusd --help)\n", stderr);
        return -EINVAL;
}

/* Returns 1 to go on, 0 to exit successfully (--help), <0 for a usage error. */
static int parse_args(int argc, char **argv, struct opts *o) {
        enum { OPT_READY_FD = 0x100, OPT_VERSION, OPT_PIDFILE };
        static const struct option longopts[] = {
                {"foreground", no_argument, NULL, 'f'},
                {"verbose", no_argument, NULL, 'v'},
                {"socket", required_argument, NULL, 's'},
                {"config", required_argument, NULL, 'c'},
                {"ready-fd", required_argument, NULL, OPT_READY_FD},
                {"pidfile", required_argument, NULL, OPT_PIDFILE},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, OPT_VERSION},
                {},
        };
        int c;

        *o = (struct opts){.ready_fd = -1};
        opterr = 0; /* our own one-line messages */
        while ((c = getopt_long(argc, argv, ":fvs:c:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        o->foreground = true;
                        break;
                case 'v':
                        o->verbose = true;
                        break;
                case 's':
                        if (!*optarg)
                                return usage_error("-s: empty socket path");
                        if (strlen(optarg) >= CONF_SOCKET_MAX)
                                return usage_error("-s: socket path is longer than %zu bytes", CONF_SOCKET_MAX - 1);
                        o->socket = optarg;
                        break;
                case 'c':
                        /* Absolute, so SIGHUP finds it after the daemon's
                         * chdir("/"). */
                        free(o->config_abs);
                        o->config_abs = realpath(optarg, NULL);
                        o->config = o->config_abs ? o->config_abs : optarg; /* a missing file is reported later */
                        break;
                case OPT_READY_FD: {
                        uint64_t v;
                        if (conf_parse_u64(optarg, 0, INT_MAX, &v) < 0)
                                return usage_error("--ready-fd: '%s' is not a descriptor number", optarg);
                        if (fcntl((int)v, F_GETFD) < 0)
                                return usage_error("--ready-fd: %s is not an open descriptor", optarg);
                        o->ready_fd = (int)v;
                        break;
                }
                case OPT_PIDFILE: {
                        char cwd[PATH_MAX];
                        int n;

                        if (!*optarg)
                                return usage_error("--pidfile: empty path");
                        /* Absolute, so the daemon finds it after chdir("/"). */
                        if (optarg[0] != '/' && !getcwd(cwd, sizeof(cwd)))
                                return usage_error("--pidfile: cannot make '%s' absolute: %s", optarg,
                                                   strerror(errno));
                        free(o->pidfile);
                        n = optarg[0] == '/' ? asprintf(&o->pidfile, "%s", optarg)
                                             : asprintf(&o->pidfile, "%s/%s", cwd, optarg);
                        if (n < 0) {
                                o->pidfile = NULL;
                                return usage_error("--pidfile: out of memory");
                        }
                        if ((size_t)n >= CONF_PIDFILE_MAX)
                                return usage_error("--pidfile: path is longer than %zu bytes",
                                                   (size_t)CONF_PIDFILE_MAX - 1);
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                case OPT_VERSION:
                        (void)printf("zcbusd %s (protocol %u)\n", PACKAGE_VERSION, PROTO_VERSION);
                        return 0;
                case ':':
                        return usage_error("option '%s' needs an argument", argv[optind - 1]);
                default:
                        if (optopt)
                                return usage_error("unknown option '-%c'", optopt);
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        return 1;
}

static void opts_done(struct opts *o) {
        free(o->config_abs);
        o->config_abs = NULL;
        free(o->pidfile);
        o->pidfile = NULL;
}

/* The socket path: -s, config `socket`, $ZCBUS_SOCKET, the default. */
static int resolve_socket(const struct conf *c, char *buf, size_t len) {
        const char *e = getenv("ZCBUS_SOCKET");
        int r;

        if (c->socket[0])
                e = c->socket;
        if (e && *e) {
                if (strlen(e) >= len)
                        return -ENAMETOOLONG;
                strcpy(buf, e);
                return 0;
        }
        r = zcbus_default_socket(buf, len);
        return r < 0 ? r : 0;
}

static void write_all(int fd, const char *s) {
        size_t len = strlen(s);

        while (len > 0) {
                ssize_t n = write(fd, s, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                s += n;
                len -= (size_t)n;
        }
}

/* A daemon keeps no descriptor it inherited by accident (it could hold a
 * caller's pipe open forever); only stdio, the readiness pipe, --ready-fd
 * and an activated socket survive. keep: nkeep descriptors, -1 for none. */
static void close_inherited(const int *keep, size_t nkeep) {
        unsigned next = 3; /* the lowest descriptor not dealt with yet */

        for (;;) {
                int lo = -1;

                for (size_t i = 0; i < nkeep; i++)
                        if (keep[i] >= (int)next && (lo < 0 || keep[i] < lo))
                                lo = keep[i];
                if (lo < 0)
                        break;
                if ((unsigned)lo > next)
                        (void)close_range(next, (unsigned)lo - 1, 0);
                next = (unsigned)lo + 1;
        }
        (void)close_range(next, ~0U, 0);
}

/* Fork; the parent waits for the child's word and exits with it. Returns
 * in the child only, with the write end of the readiness pipe. */
static int daemonize(int keep_fd, int listen_fd, int *ret_notify_fd) {
        _cleanup_close_ int rd = -1, wr = -1, null = -1;
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return negerrno();
        rd = p[0];
        wr = p[1];
        (void)fflush(NULL);
        pid = fork();
        if (pid < 0)
                return negerrno();
        if (pid > 0) {
                char buf[1024];
                size_t len = 0;

                (void)close(TAKE_FD(wr));
                for (;;) {
                        ssize_t n = read(rd, buf + len, sizeof(buf) - 1 - len);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                break;
                        len += (size_t)n;
                        if (len == sizeof(buf) - 1)
                                break;
                }
                buf[len] = '\0';
                if (strcmp(buf, "READY\n") == 0)
                        exit(EXIT_SUCCESS);
                buf[strcspn(buf, "\n")] = '\0';
                (void)fprintf(stderr, "zcbusd: %s\n", len ? buf : "the daemon exited during startup");
                exit(EXIT_FAILURE);
        }

        (void)close(TAKE_FD(rd));
        if (setsid() < 0 || chdir("/") < 0 || (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 ||
            dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) {
                char msg[256];
                int r = negerrno();

                /* stderr may be gone already: tell the parent instead. */
                (void)snprintf(msg, sizeof(msg), "daemonizing failed: %s", strerror(-r));
                write_all(wr, msg);
                return r;
        }
        if (null <= 2)
                (void)TAKE_FD(null); /* it is one of the stdio descriptors now */
        closep(&null);
        null = -1;
        close_inherited((const int[]){wr, keep_fd, listen_fd}, 3);
        *ret_notify_fd = TAKE_FD(wr);
        return 0;
}

/* Each topic costs the broker 2 + sub_uids descriptors (its ring twice,
 * its tables), each session up to 2 (and, for a moment, the PROTO_FDS_MAX
 * of an ADOPT). */
static void raise_nofile(const struct conf *c) {
        uint64_t need = (uint64_t)c->max_topics * (2 + c->sub_uids) + (uint64_t)c->max_sessions * 2 + 64 +
                        PROTO_FDS_MAX;
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < need) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
                (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
                log_warn("open file limit %llu is below the %llu descriptors max_topics and max_sessions may need",
                         (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* STATUS= for the service manager (what `systemctl status` shows). */
static void format_status(const struct broker *b, char *buf, size_t len) {
        uint32_t t = broker_topics(b), s = broker_sessions(b);

        (void)snprintf(buf, len, "%u topic%s, %u session%s", t, t == 1 ? "" : "s", s, s == 1 ? "" : "s");
}

static void on_changed(struct broker *b, void *userdata) {
        struct main_ctx *ctx = userdata;
        char status[NOTIFY_STATUS_MAX];

        format_status(b, status, sizeof(status));
        notify_status(ctx->notify, status);
}

static void tell_stopping(struct main_ctx *ctx) {
        if (ctx->stopping_told)
                return;
        ctx->stopping_told = true;
        (void)notify_send(ctx->notify, "STOPPING=1\nSTATUS=shutting down");
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents) {
        struct main_ctx *ctx = w->data;

        log_info("received SIG%s, shutting down", sigabbrev_np(w->signum));
        tell_stopping(ctx);
        ev_break(loop, EVBREAK_ALL);
}

/* Settings bound to things that exist once (the socket, the pidfile). */
static bool restart_only(const char *key) {
        return strcmp(key, "socket") == 0 || strcmp(key, "socket_mode") == 0 || strcmp(key, "socket_group") == 0 ||
               strcmp(key, "pidfile") == 0;
}

static void log_change(const char *key, const char *was, const char *now, void *userdata) {
        if (restart_only(key))
                log_warn("received SIGHUP: %s %s -> %s not applied: it takes a restart", key, was, now);
        else
                log_info("received SIGHUP: %s %s -> %s", key, was, now);
}

static void reload(struct main_ctx *ctx) {
        struct conf *cur = ctx->conf;
        char err[512];
        struct conf tmp;
        bool verbose;

        if (!ctx->opts->config) {
                log_info("received SIGHUP: no config file to re-read, ignoring");
                return;
        }
        conf_init(&tmp);
        if (conf_load_file(ctx->opts->config, &tmp, err, sizeof(err)) < 0) {
                log_warn("received SIGHUP: keeping the current configuration: %s", err);
                return;
        }
        /* The command line overrides the file, as at start. */
        if (ctx->opts->socket)
                strcpy(tmp.socket, ctx->opts->socket);
        if (ctx->opts->pidfile)
                strcpy(tmp.pidfile, ctx->opts->pidfile);
        if (conf_check(&tmp, err, sizeof(err)) < 0) {
                log_warn("received SIGHUP: keeping the current configuration: %s: %s", ctx->opts->config, err);
                conf_deinit(&tmp);
                return;
        }
        verbose = tmp.verbose || ctx->opts->verbose;
        tmp.verbose = verbose;
        /* The socket and the pidfile exist: their path, mode and group
         * stay until a restart. Everything else is read where it is used
         * (rules and quotas at each request, limits and topic settings
         * when a topic or session is made), so it applies from now on;
         * what clients hold already is not taken away. */
        conf_diff(cur, &tmp, log_change, NULL);
        strcpy(tmp.socket, cur->socket);
        tmp.socket_mode = cur->socket_mode;
        tmp.socket_group = cur->socket_group;
        strcpy(tmp.pidfile, cur->pidfile);
        conf_deinit(cur);
        *cur = tmp;
        conf_log_set_verbose(verbose);
        raise_nofile(cur); /* max_topics or max_sessions may have grown */
        log_info("received SIGHUP: configuration reloaded from '%s': %u rules, verbose logging %s",
                 ctx->opts->config, cur->nrules, verbose ? "on" : "off");
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents) {
        struct main_ctx *ctx = w->data;
        struct timespec ts;
        char msg[64];

        /* MONOTONIC_USEC lets a manager tell this reload from an earlier
         * one (systemd's Type=notify-reload wants it). */
        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        (void)snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                       (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
        (void)notify_send(ctx->notify, msg);
        reload(ctx);
        (void)notify_send(ctx->notify, "READY=1");
}

/* Tell everyone who waits that the broker listens: the pidfile first,
 * then --ready-fd, the daemon's parent, and the service manager. */
static void announce_ready(struct main_ctx *ctx, int *ready_fd, int *notify_fd) {
        char status[NOTIFY_STATUS_MAX], msg[64];

        if (*ready_fd >= 0) {
                write_all(*ready_fd, "READY\n");
                (void)close(TAKE_FD(*ready_fd));
        }
        if (*notify_fd >= 0) {
                write_all(*notify_fd, "READY\n");
                (void)close(TAKE_FD(*notify_fd)); /* the parent reads until EOF */
        }
        format_status(ctx->broker, status, sizeof(status));
        notify_status(ctx->notify, status);
        if (ctx->daemonized) /* the manager started our parent, which is exiting */
                (void)snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
        else
                (void)snprintf(msg, sizeof(msg), "READY=1");
        (void)notify_send(ctx->notify, msg);
}

static int run(const struct opts *o, struct conf *c, const char *path, int listen_fd, bool daemonized,
               int *notify_fd) {
        _cleanup_close_ int ready_fd = o->ready_fd, lfd = listen_fd;
        struct main_ctx ctx = {.conf = c, .opts = o, .daemonized = daemonized};
        struct pidfile *pf = NULL;
        struct broker *b = NULL;
        ev_signal sigint, sigterm, sighup;
        struct ev_loop *loop;
        int r;

        (void)signal(SIGPIPE, SIG_IGN);
        raise_nofile(c);
        loop = ev_default_loop(EVFLAG_AUTO);
        if (!loop) {
                log_err("initialising the event loop failed");
                return -ENOMEM;
        }
        r = notify_new(loop, &ctx.notify);
        if (r < 0)
                log_warn("NOTIFY_SOCKET='%s' is not usable (%s): not telling the service manager anything",
                         getenv("NOTIFY_SOCKET"), strerror(-r));
        /* Watched before listening, so an early SIGTERM still cleans up. */
        ev_signal_init(&sigint, on_stop, SIGINT);
        ev_signal_init(&sigterm, on_stop, SIGTERM);
        ev_signal_init(&sighup, on_hup, SIGHUP);
        sigint.data = sigterm.data = sighup.data = &ctx;
        ev_signal_start(loop, &sigint);
        ev_signal_start(loop, &sigterm);
        ev_signal_start(loop, &sighup);

        r = c->pidfile[0] ? pidfile_acquire(c->pidfile, &pf) : 0;
        if (r >= 0)
                r = broker_new(loop, c, path, TAKE_FD(lfd), &b);
        if (r >= 0 && pf)
                r = pidfile_write(pf);
        if (r >= 0) {
                ctx.broker = b;
                broker_set_changed(b, on_changed, &ctx);
                log_info("listening on '%s'%s (protocol %u, pid %d)", path,
                         listen_fd >= 0 ? ", the socket the service manager passed" : "", PROTO_VERSION,
                         (int)getpid());
                announce_ready(&ctx, &ready_fd, notify_fd);
                ev_run(loop, 0);
                tell_stopping(&ctx);
        } else if (ctx.notify) {
                char msg[1100];
                const char *e = conf_log_last_error();

                (void)snprintf(msg, sizeof(msg), "ERRNO=%d\nSTATUS=%s", -r, *e ? e : strerror(-r));
                (void)notify_send(ctx.notify, msg);
        }
        if (b) {
                broker_free(b);
                log_info("stopped");
        }
        pidfile_free(pf); /* after the socket: a pid in the file means a socket that may answer */
        notify_free(ctx.notify);
        ev_signal_stop(loop, &sigint);
        ev_signal_stop(loop, &sigterm);
        ev_signal_stop(loop, &sighup);
        ev_loop_destroy(loop);
        return r;
}

/* Before forking: only the process the manager started has the socket. */
static int take_activated(const struct conf *c, int ready_fd, int *ret_fd, char *path, size_t len) {
        char err[512];
        int r = activate_listen_fd(ret_fd, path, len, err, sizeof(err));

        if (r < 0) {
                log_err("%s", err);
                return r;
        }
        if (r == 0)
                return 0;
        if (ready_fd == *ret_fd) {
                log_err("--ready-fd %d is the socket the service manager passed", ready_fd);
                closep(ret_fd);
                *ret_fd = -1;
                return -EINVAL;
        }
        if (r > 1)
                log_warn("socket activation: %d sockets passed; listening on the first, closed the others", r);
        if (c->socket[0] && strcmp(c->socket, path) != 0)
                log_notice("socket activation: listening on '%s' (the service manager's), not on '%s' (-s or socket)",
                           path, c->socket);
        if (c->socket_mode != 0660 || c->socket_group != CONF_GROUP_UNSET)
                log_notice("socket activation: socket_mode and socket_group do not apply to '%s' "
                           "(the service manager's SocketMode= and SocketGroup= do)",
                           path);
        return 1;
}

int main(int argc, char **argv) {
        _cleanup_close_ int notify_fd = -1, listen_fd = -1;
        char path[CONF_SOCKET_MAX];
        char err[512];
        _cleanup_(opts_done) struct opts o = {.ready_fd = -1};
        _cleanup_(conf_deinit) struct conf c = {0};
        int r;

        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;
        /* Startup errors go to stderr, the caller's terminal (or, under a
         * service manager, the journal, with their priority). */
        conf_log_setup(false, false);

        conf_init(&c);
        if (o.config && conf_load_file(o.config, &c, err, sizeof(err)) < 0) {
                log_err("%s", err);
                return EXIT_FAILURE;
        }
        if (o.socket)
                strcpy(c.socket, o.socket); /* length checked by parse_args */
        if (o.pidfile)
                strcpy(c.pidfile, o.pidfile); /* length checked by parse_args */
        if (o.verbose)
                c.verbose = true;
        if (conf_check(&c, err, sizeof(err)) < 0) {
                log_err("%s%s%s", o.config ? o.config : "", o.config ? ": " : "", err);
                return EXIT_FAILURE;
        }
        conf_log_set_verbose(c.verbose);
        r = take_activated(&c, o.ready_fd, &listen_fd, path, sizeof(path));
        if (r < 0)
                return EXIT_FAILURE;
        if (r == 0) {
                r = resolve_socket(&c, path, sizeof(path));
                if (r < 0) {
                        log_err("cannot determine the socket path: %s", strerror(-r));
                        return EXIT_FAILURE;
                }
        }

        if (!o.foreground) {
                /* Keep --ready-fd clear of the stdio descriptors the daemon
                 * points at /dev/null. */
                if (o.ready_fd >= 0 && o.ready_fd <= 2) {
                        o.ready_fd = fcntl(o.ready_fd, F_DUPFD_CLOEXEC, 3);
                        if (o.ready_fd < 0) {
                                log_err("--ready-fd: %s", strerror(errno));
                                return EXIT_FAILURE;
                        }
                }
                r = daemonize(o.ready_fd, listen_fd, &notify_fd);
                if (r < 0) {
                        log_err("daemonizing failed: %s", strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        if (o.ready_fd >= 0)
                (void)fcntl(o.ready_fd, F_SETFD, FD_CLOEXEC);
        conf_log_setup(!o.foreground, c.verbose);

        r = run(&o, &c, path, TAKE_FD(listen_fd), !o.foreground, &notify_fd);
        if (r < 0) {
                if (notify_fd >= 0) {
                        const char *msg = conf_log_last_error();
                        write_all(notify_fd, *msg ? msg : strerror(-r));
                }
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
