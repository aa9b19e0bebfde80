/* SPDX-License-Identifier: MIT */
/*
 * plot.c: the latency percentile plot of `zcbus lat --plot` (plot.h): a
 * gnuplot script written down a pipe to a gnuplot child, whose own
 * chatter goes to stderr because stdout may be carrying JSON. Latency is
 * in nanoseconds, as in lat's table; each curve's key says its sample
 * count, and a corner the host and the date.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "macro.h"
#include "plot.h"
#include "procs.h"

bool bench_have_gnuplot(void) {
        const char *path = getenv("PATH");
        char dir[PATH_MAX];

        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        while (*path) {
                const char *colon = strchr(path, ':');
                size_t len = colon ? (size_t)(colon - path) : strlen(path);
                if (len > 0 && len + sizeof("/gnuplot") <= sizeof(dir)) {
                        memcpy(dir, path, len);
                        memcpy(dir + len, "/gnuplot", sizeof("/gnuplot"));
                        if (access(dir, X_OK) == 0)
                                return true;
                }
                if (!colon)
                        break;
                path = colon + 1;
        }
        return false;
}

/* A gnuplot single-quoted string: only ' itself needs escaping ('') . */
static void gp_str(FILE *f, const char *s) {
        (void)fputc('\'', f);
        for (; *s; s++) {
                if (*s == '\'')
                        (void)fputc('\'', f);
                if ((unsigned char)*s >= 0x20)
                        (void)fputc(*s, f);
        }
        (void)fputc('\'', f);
}

/* "host NAME, YYYY-MM-DD HH:MM TZ" for the plot's corner. */
static void plot_stamp(char *buf, size_t len) {
        char host[256] = "?", when[64] = "?";
        time_t now = time(NULL);
        struct tm tm;

        if (gethostname(host, sizeof(host)) < 0)
                (void)snprintf(host, sizeof(host), "?");
        host[sizeof(host) - 1] = '\0';
        if (localtime_r(&now, &tm))
                (void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", &tm);
        (void)snprintf(buf, len, "host %s, %s", host, when);
}

static void gp_script(FILE *f, const char *png, const char *title, const struct bench_series *s, unsigned n) {
        char stamp[384];

        plot_stamp(stamp, sizeof(stamp));
        (void)fputs("if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
                    "{ set terminal pngcairo size 1000,600 noenhanced font ',10' } "
                    "else { set terminal png size 1000,600 noenhanced }\n",
                    f);
        (void)fputs("set output ", f);
        gp_str(f, png);
        (void)fputs("\nset title ", f);
        gp_str(f, title);
        (void)fputs("\nset logscale x\nset logscale y\nset grid xtics ytics mytics\n"
                    "set xlabel 'percentile'\nset ylabel 'round trip (ns)'\nset format y '%g'\n"
                    "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
                    "'99.999%%' 100000, '99.9999%%' 1000000)\n"
                    "set key top left\n",
                    f);
        /* Where and when, as the table beside it says (docs/benchmarks.md). */
        (void)fputs("set label 1 ", f);
        gp_str(f, stamp);
        (void)fputs(" at screen 0.99, 0.015 right\nplot ", f);
        for (unsigned i = 0; i < n; i++) {
                char key[160];

                (void)snprintf(key, sizeof(key), "%s (%" PRIu64 " samples)", s[i].title, s[i].h->count);
                (void)fprintf(f, "%s'-' using 1:2 with lines lw 2 title ", i ? ", " : "");
                gp_str(f, key);
        }
        (void)fputc('\n', f);
        for (unsigned i = 0; i < n; i++) {
                const struct hist *h = s[i].h;
                double top = h->count > 1 ? (double)h->count : 2.0;
                /* x = 1/(1-p): 20 points per decade up to one sample's
                 * resolution, then the maximum. */
                for (unsigned k = 0;; k++) {
                        double x = pow(10.0, k / 20.0);
                        if (x >= top)
                                break;
                        (void)fprintf(f, "%.6g %.0f\n", x, (double)hist_percentile(h, 100.0 * (1.0 - 1.0 / x)));
                }
                (void)fprintf(f, "%.6g %.0f\ne\n", top, (double)h->max);
        }
}

int bench_plot(const char *cmd, const char *png, const char *title, const struct bench_series *s, unsigned n) {
        struct bench_pipe p = {-1, -1};
        void (*old)(int);
        pid_t pid;
        FILE *f;
        int r, st;

        if (n == 0)
                return 0;
        if ((r = bench_pipe_open(&p)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        (void)fflush(NULL);
        pid = fork();
        if (pid < 0) {
                r = negerrno();
                cli_err(cmd, "cannot fork gnuplot: %s", strerror(-r));
                bench_pipe_close(&p);
                return r;
        }
        if (pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* Our stdout may be JSON: gnuplot's chatter goes to stderr. */
                if (dup2(p.rd, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                (void)close(p.wr);
                (void)execlp("gnuplot", "gnuplot", (char *)NULL);
                (void)fprintf(stderr, "zcbus %s: cannot run gnuplot: %s\n", cmd, strerror(errno));
                _exit(127);
        }
        bench_fd_close(&p.rd);
        f = fdopen(p.wr, "w");
        if (!f) {
                r = negerrno();
                bench_pipe_close(&p);
                (void)kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                cli_err(cmd, "cannot talk to gnuplot: %s", strerror(-r));
                return r;
        }
        p.wr = -1; /* the FILE owns it */
        old = signal(SIGPIPE, SIG_IGN);
        gp_script(f, png, title, s, n);
        r = fclose(f) == 0 ? 0 : negerrno();
        (void)signal(SIGPIPE, old);
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR) {
                        st = -1;
                        break;
                }
        if (st != 0 || r < 0) {
                if (!(WIFEXITED(st) && WEXITSTATUS(st) == 127))
                        cli_err(cmd, "gnuplot failed to draw '%s'", png);
                return r < 0 ? r : -EIO;
        }
        return 0;
}
