/*
 * bench.c: the plumbing `zcbus lat` and `zcbus perf` share (see bench.h):
 * option parsing, peer processes, handshakes, the two measurement drivers
 * and the output helpers.
 *
 * Peers are real processes made with fork(). Each one asks the kernel to
 * SIGKILL it when we die (PR_SET_PDEATHSIG) and we kill and reap them on
 * every exit path, so no peer outlives a run. Start-up is synchronised
 * with tokens on pipes (one byte per peer and step; 'E' for "I failed",
 * and a closed write end as a broadcast), never with sleeps. The parent
 * reads tokens with poll() in short slices so that a peer that dies is
 * noticed at once instead of after a timeout.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "futex.h"
#include "macro.h"
#include "zcbus.h"

static const char *const xp_names[BENCH_XP_MAX_] = {"zcbus", "shm", "uds", "pipe"};

const char *bench_xp_name(unsigned kind) {
        return kind < BENCH_XP_MAX_ ? xp_names[kind] : "?";
}

/* ------------------------------------------------------------ parsing */

/* Split s on ',' into at most max tokens in buf; -EINVAL on an empty token. */
static int split_list(const char *s, char *buf, size_t buflen, char **tok, unsigned max, unsigned *ret_n) {
        unsigned n = 0;
        char *p, *save = NULL;
        size_t len;

        if (!s || !*s)
                return -EINVAL;
        len = strlen(s);
        if (len >= buflen || s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,"))
                return -EINVAL;
        memcpy(buf, s, len + 1);
        for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
                if (n == max)
                        return -EINVAL;
                tok[n++] = p;
        }
        *ret_n = n;
        return n ? 0 : -EINVAL;
}

int bench_parse_baselines(const char *s, unsigned *ret_mask) {
        char buf[64], *tok[8];
        unsigned n, mask = 0;

        if (s && strcmp(s, "all") == 0) {
                *ret_mask = (1u << BENCH_XP_SHM) | (1u << BENCH_XP_UDS) | (1u << BENCH_XP_PIPE);
                return 0;
        }
        if (s && strcmp(s, "none") == 0) {
                *ret_mask = 0;
                return 0;
        }
        if (split_list(s, buf, sizeof(buf), tok, ARRAY_SIZE(tok), &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                unsigned k;
                for (k = BENCH_XP_SHM; k < BENCH_XP_MAX_; k++)
                        if (strcmp(tok[i], xp_names[k]) == 0)
                                break;
                if (k == BENCH_XP_MAX_ || (mask & (1u << k)))
                        return -EINVAL;
                mask |= 1u << k;
        }
        *ret_mask = mask;
        return 0;
}

int bench_parse_sizes(const char *s, size_t *sizes, unsigned max, unsigned *ret_n) {
        char buf[256], *tok[BENCH_SIZES_MAX];
        unsigned n;

        if (max > BENCH_SIZES_MAX || split_list(s, buf, sizeof(buf), tok, max, &n) < 0)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                unsigned long long v;
                if (cli_parse_u64(tok[i], BENCH_SIZE_MIN, BENCH_SIZE_MAX, 1, &v) < 0)
                        return -EINVAL;
                for (unsigned k = 0; k < i; k++)
                        if (sizes[k] == v)
                                return -EINVAL;
                sizes[i] = (size_t)v;
        }
        *ret_n = n;
        return 0;
}

static const char *const wait_names[] = {
        [ZCBUS_WAIT_ADAPTIVE] = "adaptive",
        [ZCBUS_WAIT_SPIN] = "spin",
        [ZCBUS_WAIT_FUTEX] = "futex",
};

int bench_parse_wait(const char *s, uint32_t *ret_mode) {
        for (uint32_t m = ZCBUS_WAIT_ADAPTIVE; m <= ZCBUS_WAIT_FUTEX; m++)
                if (s && strcmp(s, wait_names[m]) == 0) {
                        *ret_mode = m;
                        return 0;
                }
        return -EINVAL;
}

const char *bench_wait_name(uint32_t mode) {
        return mode >= ZCBUS_WAIT_ADAPTIVE && mode <= ZCBUS_WAIT_FUTEX ? wait_names[mode] : "?";
}

int bench_parse_policy(const char *s, uint32_t *ret_policy) {
        if (s && strcmp(s, "reliable") == 0)
                *ret_policy = ZCBUS_POLICY_RELIABLE;
        else if (s && strcmp(s, "latest") == 0)
                *ret_policy = ZCBUS_POLICY_LATEST;
        else
                return -EINVAL;
        return 0;
}

int bench_parse_cpus(const char *s, int ret[2]) {
        char buf[32], *tok[2];
        unsigned n;
        cpu_set_t set;
        int cpus[2];

        if (s && strcmp(s, "none") == 0) {
                ret[0] = ret[1] = -1;
                return 0;
        }
        if (split_list(s, buf, sizeof(buf), tok, 2, &n) < 0 || n != 2)
                return -EINVAL;
        if (sched_getaffinity(0, sizeof(set), &set) < 0)
                return negerrno();
        for (unsigned i = 0; i < 2; i++) {
                unsigned long long v;
                if (cli_parse_u64(tok[i], 0, CPU_SETSIZE - 1, 0, &v) < 0)
                        return -EINVAL;
                if (!CPU_ISSET((int)v, &set))
                        return -ERANGE;
                cpus[i] = (int)v;
        }
        ret[0] = cpus[0];
        ret[1] = cpus[1];
        return 0;
}

void bench_default_cpus(int ret[2]) {
        cpu_set_t set;
        int n = 0;

        ret[0] = ret[1] = -1;
        if (sched_getaffinity(0, sizeof(set), &set) < 0 || CPU_COUNT(&set) < 2)
                return;
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
                if (CPU_ISSET(c, &set))
                        ret[n++] = c;
}

int bench_parse_seconds(const char *s, double min, double max, uint64_t *ret_ns) {
        unsigned dots = 0;
        char *end;
        double v;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p == '.')
                        dots++;
                else if (*p < '0' || *p > '9')
                        return -EINVAL;
        }
        if (dots > 1 || s[0] == '.')
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || !(v >= min && v <= max))
                return -EINVAL;
        *ret_ns = (uint64_t)llround(v * 1e9);
        return 0;
}

void bench_fmt_size(size_t v, char *buf, size_t len) {
        if (v >= (1u << 30) && v % (1u << 30) == 0)
                (void)snprintf(buf, len, "%zuG", v >> 30);
        else if (v >= (1u << 20) && v % (1u << 20) == 0)
                (void)snprintf(buf, len, "%zuM", v >> 20);
        else if (v >= (1u << 10) && v % (1u << 10) == 0)
                (void)snprintf(buf, len, "%zuK", v >> 10);
        else
                (void)snprintf(buf, len, "%zu", v);
}

void bench_fmt_rate(double v, char *buf, size_t len) {
        if (v >= 1e9)
                (void)snprintf(buf, len, "%.2fG", v / 1e9);
        else if (v >= 1e6)
                (void)snprintf(buf, len, "%.2fM", v / 1e6);
        else if (v >= 1e3)
                (void)snprintf(buf, len, "%.1fK", v / 1e3);
        else
                (void)snprintf(buf, len, "%.0f", v);
}

void bench_fmt_sizes(const struct bench_common *c, char *buf, size_t len) {
        char one[32];

        if (len)
                buf[0] = '\0';
        for (unsigned i = 0; i < c->nsizes; i++) {
                bench_fmt_size(c->sizes[i], one, sizeof(one));
                (void)snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", one);
        }
}

uint32_t bench_ring_slots(size_t size, uint32_t req, uint64_t ring_bytes, uint32_t lo, uint32_t hi) {
        uint32_t n = hi;

        if (req)
                return req;
        while (n > lo && (uint64_t)n * bench_slot_stride(size) > ring_bytes)
                n >>= 1;
        return n;
}

/* The shared options, with the texts both commands always had. */

void bench_common_init(struct bench_common *c) {
        c->sizes[0] = 64;
        c->nsizes = 1;
        c->wait = ZCBUS_WAIT_ADAPTIVE;
        c->spin_us = BENCH_SPIN_US_DEFAULT;
        c->policy = ZCBUS_POLICY_RELIABLE;
        bench_default_cpus(c->cpus);
}

int bench_bad_value(const char *cmd, const char *opt, const char *arg, const char *want) {
        cli_err(cmd, "invalid %s '%s': %s", opt, arg, want);
        return 2;
}

/* Report a bad value; -EINVAL for bench_common_opt's caller. */
static int bad_common(const char *cmd, const char *opt, const char *arg, const char *want) {
        (void)bench_bad_value(cmd, opt, arg, want);
        return -EINVAL;
}

int bench_common_opt(const char *cmd, int opt, const char *arg, struct bench_common *c) {
        unsigned long long v;
        int r;

        switch (opt) {
        case BENCH_OPT_SIZE:
                if (bench_parse_sizes(arg, c->sizes, BENCH_SIZES_MAX, &c->nsizes) < 0)
                        return bad_common(cmd, "--size", arg,
                                          "want a list of distinct sizes in 8..64M, e.g. 64,4K,1M (at most 16)");
                return 1;
        case BENCH_OPT_WAIT:
                if (bench_parse_wait(arg, &c->wait) < 0)
                        return bad_common(cmd, "--wait", arg, "want spin, futex or adaptive");
                return 1;
        case BENCH_OPT_SPIN:
                if (cli_parse_u64(arg, 1, 1000000, 0, &v) < 0)
                        return bad_common(cmd, "--spin-us", arg, "want microseconds in 1..1000000");
                c->spin_us = (uint32_t)v;
                return 1;
        case BENCH_OPT_CPU:
                r = bench_parse_cpus(arg, c->cpus);
                if (r == -ERANGE)
                        return bad_common(cmd, "--cpu", arg, "not CPUs this process may run on");
                if (r < 0)
                        return bad_common(cmd, "--cpu", arg, "want A,B (CPU numbers) or none");
                return 1;
        case BENCH_OPT_POLICY:
                if (bench_parse_policy(arg, &c->policy) < 0)
                        return bad_common(cmd, "--policy", arg, "want reliable or latest");
                return 1;
        case BENCH_OPT_SLOTS:
                if (cli_parse_u64(arg, 2, UINT32_C(1) << 24, 1, &v) < 0 || (v & (v - 1)))
                        return bad_common(cmd, "--slots", arg, "want a power of two in 2..16M");
                c->slots = (uint32_t)v;
                return 1;
        case BENCH_OPT_BASELINE:
                if (bench_parse_baselines(arg, &c->baselines) < 0)
                        return bad_common(cmd, "--baseline", arg, "want a list of uds,pipe,shm, or all");
                return 1;
        case BENCH_OPT_NOBUS:
                c->no_bus = true;
                return 1;
        case BENCH_OPT_PREFIX:
                if (!*arg || strlen(arg) >= sizeof(c->prefix) || strpbrk(arg, " \t\n/"))
                        return bad_common(cmd, "--prefix", arg, "want 1..127 characters, no blanks or '/'");
                (void)snprintf(c->prefix, sizeof(c->prefix), "%s", arg);
                return 1;
        case BENCH_OPT_JSON:
                c->json = true;
                return 1;
        default:
                return 0;
        }
}

int bench_common_finish(const char *cmd, struct bench_common *c, bool shared) {
        if (c->no_bus && !c->baselines) {
                cli_err(cmd, "--no-bus needs --baseline (there would be nothing to measure)");
                return -EINVAL;
        }
        for (unsigned i = 0; i < c->nsizes; i++)
                c->max_size = MAX(c->max_size, c->sizes[i]);
        /* --prefix refuses "": an empty prefix means it was not given. */
        if (!c->prefix[0]) {
                if (shared)
                        (void)snprintf(c->prefix, sizeof(c->prefix), "zcbus.%s", cmd);
                else
                        (void)snprintf(c->prefix, sizeof(c->prefix), "zcbus.%s.%ld", cmd, (long)getpid());
        }
        return 0;
}

/* ---------------------------------------------------------- processes */

void bench_procs_init(struct bench_procs *ps) {
        memset(ps, 0, sizeof(*ps));
}

int bench_pin(int cpu) {
        cpu_set_t set;

        if (cpu < 0)
                return 0;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(0, sizeof(set), &set) < 0 ? negerrno() : 0;
}

int bench_spawn(struct bench_procs *ps, int cpu, int (*fn)(void *arg), void *arg) {
        pid_t parent = getpid(), pid;

        if (ps->n >= BENCH_PROCS_MAX)
                return -EUSERS;
        /* Nothing buffered may be written twice, by us and by the copy. */
        (void)fflush(NULL);
        pid = fork();
        if (pid < 0)
                return negerrno();
        if (pid == 0) {
                int r;
                /* Die with the parent; if it died already, we missed it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(1);
                (void)signal(SIGINT, SIG_DFL);
                (void)signal(SIGTERM, SIG_DFL);
                r = bench_pin(cpu);
                if (r < 0) {
                        (void)fprintf(stderr, "zcbus: cannot pin a peer to CPU %d: %s\n", cpu, strerror(-r));
                        _exit(1);
                }
                r = fn(arg);
                (void)fflush(NULL);
                _exit(r);
        }
        ps->pid[ps->n] = pid;
        ps->status[ps->n] = 0;
        ps->n++;
        return 0;
}

void bench_procs_kill(struct bench_procs *ps) {
        for (unsigned i = 0; i < ps->n; i++) {
                if (ps->pid[i] <= 0)
                        continue;
                (void)kill(ps->pid[i], SIGKILL);
                while (waitpid(ps->pid[i], &ps->status[i], 0) < 0 && errno == EINTR)
                        ;
                ps->pid[i] = 0;
        }
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
        return (int)syscall(SYS_pidfd_open, pid, 0);
#else
        errno = ENOSYS;
        return -1;
#endif
}

/* Reap peer i if it has exited (waiting at most timeout_ms; -1 forever).
 * Returns 1 if reaped, 0 if still running. */
static int reap_one(struct bench_procs *ps, unsigned i, int timeout_ms) {
        pid_t r;

        if (ps->pid[i] <= 0)
                return 1;
        if (timeout_ms != 0) {
                int fd = pidfd_open_(ps->pid[i]);
                if (fd >= 0) {
                        struct pollfd p = {.fd = fd, .events = POLLIN};
                        int pr;
                        while ((pr = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                                ;
                        (void)close(fd);
                        if (pr == 0)
                                return 0;
                }
                /* else: no pidfd; fall through to a blocking wait */
        }
        do
                r = waitpid(ps->pid[i], &ps->status[i], timeout_ms == 0 ? WNOHANG : 0);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return 0;
        ps->pid[i] = 0;
        return 1;
}

/* Was peer i's end a failure? Says so unless the peer did (exit 1). */
static bool failed(const char *cmd, const struct bench_procs *ps, unsigned i) {
        int st = ps->status[i];

        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return false;
        if (WIFEXITED(st) && WEXITSTATUS(st) != 1)
                cli_err(cmd, "a peer process exited with status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                cli_err(cmd, "a peer process was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        return true;
}

int bench_procs_reap(struct bench_procs *ps, const char *cmd, int timeout_ms) {
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
        bool bad = false;

        for (unsigned i = 0; i < ps->n; i++) {
                uint64_t t = now_ns();
                int left = t >= deadline ? 0 : (int)((deadline - t) / 1000000u) + 1;
                if (ps->pid[i] <= 0)
                        continue;
                if (!reap_one(ps, i, left)) {
                        cli_err(cmd, "a peer process did not finish within %d ms; killing it", timeout_ms);
                        bench_procs_kill(ps);
                        return -ECHILD;
                }
                if (failed(cmd, ps, i))
                        bad = true;
        }
        return bad ? -ECHILD : 0;
}

/* -------------------------------------------------------------- pipes */

int bench_pipe_open(struct bench_pipe *p) {
        int fds[2];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return negerrno();
        p->rd = fds[0];
        p->wr = fds[1];
        return 0;
}

void bench_fd_close(int *fd) {
        if (*fd >= 0)
                (void)close(*fd);
        *fd = -1;
}

void bench_pipe_close(struct bench_pipe *p) {
        bench_fd_close(&p->rd);
        bench_fd_close(&p->wr);
}

int bench_put_byte(int fd, char c) {
        ssize_t r;

        do
                r = write(fd, &c, 1);
        while (r < 0 && errno == EINTR);
        return r == 1 ? 0 : r < 0 ? negerrno() : -EIO;
}

int bench_get_byte(int fd, char *ret) {
        ssize_t r;

        do
                r = read(fd, ret, 1);
        while (r < 0 && errno == EINTR);
        return r == 1 ? 0 : r == 0 ? -EPIPE : negerrno();
}

int bench_wait_eof(int fd) {
        char buf[16];

        for (;;) {
                ssize_t r = read(fd, buf, sizeof(buf));
                if (r == 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return negerrno();
        }
}

int bench_wait_tokens(struct bench_procs *ps, int fd, unsigned n, int timeout_ms) {
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
        unsigned got = 0;

        while (got < n) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                char buf[64];
                ssize_t r;
                int pr = poll(&p, 1, 50);

                if (pr < 0 && errno != EINTR)
                        return negerrno();
                if (pr > 0) {
                        r = read(fd, buf, MIN(sizeof(buf), (size_t)(n - got)));
                        if (r == 0)
                                return -ECHILD; /* every peer is gone */
                        if (r < 0) {
                                if (errno == EINTR || errno == EAGAIN)
                                        continue;
                                return negerrno();
                        }
                        if (memchr(buf, 'E', (size_t)r))
                                return -ECHILD;
                        got += (unsigned)r;
                        continue;
                }
                /* Quiet for a moment: has a peer died on us? */
                for (unsigned i = 0; i < ps->n; i++)
                        if (ps->pid[i] > 0 && reap_one(ps, i, 0)) {
                                int st = ps->status[i];
                                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                                        return -ECHILD;
                        }
                if (now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
        return 0;
}

/* ------------------------------------------------------- shared memory */

void *bench_shared_new(size_t len) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t len) {
        if (p)
                (void)munmap(p, len);
}

/* ------------------------------------------------------------- broker */

void bench_broker_path(const char *sock, char *buf, size_t len) {
        if (sock)
                (void)snprintf(buf, len, "%s", sock);
        else if (zcbus_default_socket(buf, len) < 0)
                (void)snprintf(buf, len, "(default)");
}

int bench_broker_check(const char *cmd, const char *sock) {
        char path[256];
        zcbus *bus = NULL;
        int r = zcbus_connect(sock, &bus);

        if (r >= 0) {
                zcbus_disconnect(bus);
                return 0;
        }
        bench_broker_path(sock, path, sizeof(path));
        if (r == -ENOENT || r == -ECONNREFUSED)
                cli_err(cmd, "cannot connect to broker at '%s' (start zcbusd)", path);
        else
                cli_err(cmd, "cannot connect to broker at '%s' (start zcbusd): %s", path, zcbus_strerror(r));
        return r;
}

/* ------------------------------------------------------ latency driver */

static char watchdog_msg[128];
static size_t watchdog_len;

static void watchdog_fire(int sig) {
        /* async-signal-safe: write(2) and _exit(2) only */
        ssize_t r = write(STDERR_FILENO, watchdog_msg, watchdog_len);
        (void)r;
        _exit(1);
}

void bench_watchdog_start(const char *cmd) {
        struct sigaction sa = {.sa_handler = watchdog_fire};
        int n = snprintf(watchdog_msg, sizeof(watchdog_msg),
                         "zcbus %s: no round trip completed for %u s (is the peer alive?)\n", cmd, BENCH_WATCHDOG_S);

        watchdog_len = n < 0 ? 0 : MIN((size_t)n, sizeof(watchdog_msg) - 1);
        (void)sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGALRM, &sa, NULL);
        bench_watchdog_pet();
}

void bench_watchdog_pet(void) {
        (void)alarm(BENCH_WATCHDOG_S);
}

void bench_watchdog_stop(void) {
        (void)alarm(0);
        (void)signal(SIGALRM, SIG_DFL);
}

/* What went wrong in a transport: its own story if it has one. */
static const char *xp_why(const char *(*why)(void *st), void *st, int r) {
        const char *w = why ? why(st) : NULL;

        return w && *w ? w : strerror(-r);
}

struct lat_run {
        const char *cmd;
        const struct lat_cfg *cfg;
        struct lat_xp *xps;
        unsigned nxp;
        struct bench_pipe up;   /* pong -> ping tokens */
        struct bench_pipe down; /* ping -> pong tokens */
};

static int lat_begin(const struct lat_run *L, enum bench_side side, int step, size_t size) {
        for (unsigned i = 0; i < L->nxp; i++) {
                int r = L->xps[i].ops->begin(L->xps[i].st, side, step, size);
                if (r < 0) {
                        cli_err(L->cmd, "%s%s: cannot set up %zu-byte round trips: %s",
                                side == BENCH_PONG ? "peer: " : "", bench_xp_name(L->xps[i].kind), size,
                                xp_why(L->xps[i].ops->why, L->xps[i].st, r));
                        return r;
                }
        }
        return 0;
}

static void lat_end(const struct lat_run *L, enum bench_side side) {
        for (unsigned i = 0; i < L->nxp; i++)
                L->xps[i].ops->end(L->xps[i].st, side);
}

static void lat_run_close(struct lat_run *L) {
        bench_pipe_close(&L->up);
        bench_pipe_close(&L->down);
}

static void lat_report(const struct lat_run *L, unsigned x, size_t size, int r) {
        if (r == -EBADMSG)
                cli_err(L->cmd, "%s: a %zu-byte round trip came back with the wrong counter",
                        bench_xp_name(L->xps[x].kind), size);
        else
                cli_err(L->cmd, "%s: %zu-byte round trip failed: %s", bench_xp_name(L->xps[x].kind), size,
                        xp_why(L->xps[x].ops->why, L->xps[x].st, r));
}

/* The pong peer's schedule: mirror the ping side, echoing; a NEXT mark
 * moves on to the next transport, DONE ends the size. */
static int lat_pong_sizes(struct lat_run *L) {
        int r;

        for (unsigned s = 0; s < L->cfg->com.nsizes; s++) {
                size_t size = L->cfg->com.sizes[s];
                unsigned cur = 0;
                char c;

                if ((r = lat_begin(L, BENCH_PONG, 0, size)) < 0 || (r = bench_put_byte(L->up.wr, 'R')) < 0)
                        return r;
                if ((r = bench_get_byte(L->down.rd, &c)) < 0) /* the ping side gave up */
                        return r;
                if ((r = lat_begin(L, BENCH_PONG, 1, size)) < 0 || (r = bench_put_byte(L->up.wr, 'R')) < 0)
                        return r;
                for (;;) {
                        uint64_t ctr;
                        r = L->xps[cur].ops->pong(L->xps[cur].st, &ctr);
                        if (r < 0) {
                                cli_err(L->cmd, "peer: %s: echoing %zu-byte messages failed: %s",
                                        bench_xp_name(L->xps[cur].kind), size,
                                        xp_why(L->xps[cur].ops->why, L->xps[cur].st, r));
                                return r;
                        }
                        if (ctr == BENCH_MARK_NEXT)
                                cur = (cur + 1) % L->nxp;
                        else if (ctr == BENCH_MARK_DONE)
                                break;
                }
                lat_end(L, BENCH_PONG);
        }
        return 0;
}

static int lat_pong_main(void *arg) {
        struct lat_run *L = arg;
        int r;

        bench_fd_close(&L->up.rd);
        bench_fd_close(&L->down.wr);
        for (unsigned i = 0; i < L->nxp; i++)
                L->xps[i].ops->attach(L->xps[i].st, BENCH_PONG);
        r = lat_pong_sizes(L);
        if (r < 0)
                (void)bench_put_byte(L->up.wr, 'E');
        return r < 0;
}

static int lat_ping(const struct lat_run *L, unsigned x, uint64_t ctr, size_t size) {
        int r = L->xps[x].ops->ping(L->xps[x].st, ctr);

        if (r < 0)
                lat_report(L, x, size, r);
        return r;
}

/* One size, on the ping side, after both sides are set up. */
static int lat_measure(const struct lat_run *L, unsigned s, struct hist **hists) {
        const struct lat_cfg *cfg = L->cfg;
        size_t size = cfg->com.sizes[s];
        uint64_t ctr = 0, done = 0, start;
        int r;

        /* Warm-up, transport by transport: caches, pages, branch history. */
        for (unsigned x = 0; x < L->nxp; x++) {
                for (uint64_t k = 0; k < cfg->warmup; k++) {
                        if (k % cfg->round == 0)
                                bench_watchdog_pet();
                        if ((r = lat_ping(L, x, ctr++, size)) < 0)
                                return r;
                }
                if ((r = lat_ping(L, x, BENCH_MARK_NEXT, size)) < 0)
                        return r;
        }

        /* Interleaved rounds: A B C A B C ... so that whatever the machine
         * does meanwhile hits every transport alike. */
        start = now_ns();
        for (;;) {
                uint64_t n = cfg->round;
                if (cfg->count)
                        n = MIN(n, cfg->count - done);
                for (unsigned x = 0; x < L->nxp; x++) {
                        const struct lat_ops *ops = L->xps[x].ops;
                        struct hist *h = hists[s * L->nxp + x];
                        void *st = L->xps[x].st;
                        uint64_t t0;

                        bench_watchdog_pet();
                        if (L->nxp > 1)
                                for (uint64_t k = 0; k < cfg->round_warmup; k++)
                                        if ((r = ops->ping(st, ctr++)) < 0) {
                                                lat_report(L, x, size, r);
                                                return r;
                                        }
                        t0 = now_ns();

                        /* The hot loop: one clock read per round trip (the
                         * end of one is the start of the next), no
                         * allocation, no system call of its own. */
                        for (uint64_t k = 0; k < n; k++) {
                                uint64_t t1;
                                r = ops->ping(st, ctr++);
                                if (_unlikely_(r < 0)) {
                                        lat_report(L, x, size, r);
                                        return r;
                                }
                                t1 = now_ns();
                                hist_record(h, t1 - t0);
                                t0 = t1;
                        }
                        if ((r = lat_ping(L, x, BENCH_MARK_NEXT, size)) < 0)
                                return r;
                }
                done += n;
                if (cfg->count ? done >= cfg->count : now_ns() - start >= cfg->duration_ns)
                        break;
        }
        return lat_ping(L, 0, BENCH_MARK_DONE, size);
}

/* A peer went missing while we waited for its token: say what we know. */
static void peer_lost(const char *cmd, const char *what, struct bench_procs *ps, int r) {
        if (r == -ETIMEDOUT) {
                cli_err(cmd, "%s: the peers did not answer within %d ms", what, BENCH_PEER_TIMEOUT_MS);
                return;
        }
        /* Reap what has ended so its status (or its own report) is known;
         * kill the rest, whose deaths are ours, not theirs. */
        for (unsigned i = 0; i < ps->n; i++)
                if (ps->pid[i] > 0 && reap_one(ps, i, 0))
                        (void)failed(cmd, ps, i);
        bench_procs_kill(ps);
        if (r != -ECHILD)
                cli_err(cmd, "%s: lost a peer: %s", what, strerror(-r));
}

int bench_lat_run(const char *cmd, const struct lat_cfg *cfg, struct lat_xp *xps, unsigned nxp,
                  struct hist **hists) {
        _cleanup_(lat_run_close) struct lat_run L = {
                .cmd = cmd, .cfg = cfg, .xps = xps, .nxp = nxp,
                .up = {-1, -1}, .down = {-1, -1},
        };
        _cleanup_(bench_procs_kill) struct bench_procs ps = {0};
        int r;

        if (nxp == 0)
                return -EINVAL;
        r = bench_pin(cfg->com.cpus[0]);
        if (r < 0) {
                cli_err(cmd, "cannot pin to CPU %d: %s", cfg->com.cpus[0], strerror(-r));
                return r;
        }
        if ((r = bench_pipe_open(&L.up)) < 0 || (r = bench_pipe_open(&L.down)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        r = bench_spawn(&ps, cfg->com.cpus[1], lat_pong_main, &L);
        if (r < 0) {
                cli_err(cmd, "cannot fork the peer: %s", strerror(-r));
                return r;
        }
        bench_fd_close(&L.up.wr);
        bench_fd_close(&L.down.rd);
        for (unsigned i = 0; i < nxp; i++)
                xps[i].ops->attach(xps[i].st, BENCH_PING);

        for (unsigned s = 0; s < cfg->com.nsizes; s++) {
                size_t size = cfg->com.sizes[s];

                /* Step 0 (producers) on both sides, then step 1
                 * (subscribers): each side subscribes to a topic its peer
                 * has already created with the right geometry. */
                if ((r = lat_begin(&L, BENCH_PING, 0, size)) < 0)
                        return r;
                if ((r = bench_wait_tokens(&ps, L.up.rd, 1, BENCH_PEER_TIMEOUT_MS)) < 0) {
                        peer_lost(cmd, "ping-pong", &ps, r);
                        return r;
                }
                if ((r = lat_begin(&L, BENCH_PING, 1, size)) < 0)
                        return r;
                if ((r = bench_put_byte(L.down.wr, 'G')) < 0 ||
                    (r = bench_wait_tokens(&ps, L.up.rd, 1, BENCH_PEER_TIMEOUT_MS)) < 0) {
                        peer_lost(cmd, "ping-pong", &ps, r);
                        return r;
                }
                bench_watchdog_start(cmd);
                r = lat_measure(&L, s, hists);
                bench_watchdog_stop();
                if (r < 0)
                        return r;
                lat_end(&L, BENCH_PING);
        }
        bench_pipe_close(&L.down);
        return bench_procs_reap(&ps, cmd, BENCH_PEER_TIMEOUT_MS);
}

/* --------------------------------------------------- throughput driver */

struct perf_peer {
        const char *cmd;
        struct perf_xp *xp;
        enum perf_role role;
        unsigned idx;
        struct perf_ctl *ctl;
        struct perf_result *res;
        struct bench_pipe *tok, *open_gate, *go_gate;
};

static int perf_peer_main(void *arg) {
        struct perf_peer *P = arg;
        int r;

        bench_fd_close(&P->tok->rd);
        bench_fd_close(&P->open_gate->wr);
        bench_fd_close(&P->go_gate->wr);
        if (P->role == PERF_SUB && bench_wait_eof(P->open_gate->rd) < 0)
                return 1;
        r = P->xp->ops->attach(P->xp->st, P->role, P->idx);
        if (r < 0) {
                cli_err(P->cmd, "%s %s %u: cannot start: %s", bench_xp_name(P->xp->kind),
                        P->role == PERF_PROD ? "producer" : "subscriber", P->idx,
                        xp_why(P->xp->ops->why, P->xp->st, r));
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        if (bench_put_byte(P->tok->wr, 'R') < 0 || bench_wait_eof(P->go_gate->rd) < 0)
                return 1;
        P->res->t_start = now_ns();
        r = P->xp->ops->run(P->xp->st, P->role, P->idx, P->ctl, P->res);
        if (r < 0) {
                cli_err(P->cmd, "%s %s %u: %s", bench_xp_name(P->xp->kind),
                        P->role == PERF_PROD ? "producer" : "subscriber", P->idx,
                        r == -EBADMSG ? "received a message with a wrong length or sequence number"
                                      : xp_why(P->xp->ops->why, P->xp->st, r));
                (void)bench_put_byte(P->tok->wr, 'E');
                return 1;
        }
        if (P->role == PERF_PROD)
                (void)faa_sc(&P->ctl->prod_done, 1);
        return bench_put_byte(P->tok->wr, 'D') < 0;
}

static void sleep_until(uint64_t t_ns) {
        struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u), .tv_nsec = (long)(t_ns % 1000000000u)};

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static double rate_of(const struct perf_result *r) {
        if (r->count == 0 || r->t_end <= r->t_start)
                return 0.0;
        return (double)r->count * 1e9 / (double)(r->t_end - r->t_start);
}

struct perf_run {
        struct perf_xp *xp; /* prepared: detach on the way out */
        struct bench_pipe tok, open_gate, go_gate;
        struct perf_peer *peers;
        struct perf_ctl *ctl;
        size_t ctl_len;
};

static void perf_run_close(struct perf_run *R) {
        if (R->xp)
                R->xp->ops->detach(R->xp->st);
        bench_pipe_close(&R->tok);
        bench_pipe_close(&R->open_gate);
        bench_pipe_close(&R->go_gate);
        free(R->peers);
        bench_shared_free(R->ctl, R->ctl_len);
}

int bench_perf_run(const char *cmd, const struct perf_cfg *cfg, struct perf_xp *xp, size_t size,
                   uint64_t duration_ns, struct perf_outcome *ret) {
        unsigned np = cfg->producers, ns = cfg->subscribers, n = np + ns;
        _cleanup_(perf_run_close) struct perf_run R = {
                .tok = {-1, -1}, .open_gate = {-1, -1}, .go_gate = {-1, -1},
                .ctl_len = sizeof(struct perf_ctl) + (size_t)n * sizeof(struct perf_result),
        };
        _cleanup_(bench_procs_kill) struct bench_procs ps = {0};
        struct perf_outcome o = {0};
        uint64_t t_go;
        int r;

        if (np == 0 || ns == 0 || n > BENCH_PROCS_MAX)
                return -EINVAL;
        R.ctl = bench_shared_new(R.ctl_len);
        R.peers = calloc(n, sizeof(*R.peers));
        if (!R.ctl || !R.peers) {
                cli_err(cmd, "out of memory");
                return -ENOMEM;
        }
        r = xp->ops->prepare(xp->st, size);
        if (r < 0) {
                cli_err(cmd, "%s: cannot set up %zu-byte messages: %s", bench_xp_name(xp->kind), size,
                        xp_why(xp->ops->why, xp->st, r));
                return r;
        }
        R.xp = xp;
        if ((r = bench_pipe_open(&R.tok)) < 0 || (r = bench_pipe_open(&R.open_gate)) < 0 ||
            (r = bench_pipe_open(&R.go_gate)) < 0) {
                cli_err(cmd, "cannot create a pipe: %s", strerror(-r));
                return r;
        }
        for (unsigned i = 0; i < n; i++) {
                R.peers[i] = (struct perf_peer){
                        .cmd = cmd, .xp = xp, .ctl = R.ctl, .res = &R.ctl->res[i],
                        .role = i < np ? PERF_PROD : PERF_SUB,
                        .idx = i < np ? i : i - np,
                        .tok = &R.tok, .open_gate = &R.open_gate, .go_gate = &R.go_gate,
                };
                r = bench_spawn(&ps, cfg->com.cpus[i < np ? 0 : 1], perf_peer_main, &R.peers[i]);
                if (r < 0) {
                        cli_err(cmd, "cannot fork a peer: %s", strerror(-r));
                        return r;
                }
        }
        bench_fd_close(&R.tok.wr);
        bench_fd_close(&R.open_gate.rd);
        bench_fd_close(&R.go_gate.rd);
        xp->ops->detach(xp->st);

        /* Producers first (they create the topic with its geometry), then
         * subscribers, then everyone at once. */
        if ((r = bench_wait_tokens(&ps, R.tok.rd, np, BENCH_PEER_TIMEOUT_MS)) < 0) {
                peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        bench_fd_close(&R.open_gate.wr);
        if ((r = bench_wait_tokens(&ps, R.tok.rd, ns, BENCH_PEER_TIMEOUT_MS)) < 0) {
                peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        t_go = now_ns();
        bench_fd_close(&R.go_gate.wr);
        sleep_until(t_go + duration_ns);
        store_rel(&R.ctl->stop, 1); /* pairs with the producers' load of stop */
        if ((r = bench_wait_tokens(&ps, R.tok.rd, n, BENCH_PEER_TIMEOUT_MS)) < 0) {
                peer_lost(cmd, bench_xp_name(xp->kind), &ps, r);
                return r;
        }
        if ((r = bench_procs_reap(&ps, cmd, BENCH_PEER_TIMEOUT_MS)) < 0)
                return r;

        o.sub_rate_min = INFINITY;
        for (unsigned i = 0; i < n; i++) {
                const struct perf_result *res = &R.ctl->res[i];
                double rate = rate_of(res);
                if (i < np) {
                        o.pub_rate += rate;
                        o.waits += res->waits;
                } else {
                        o.sub_rate_sum += rate;
                        o.sub_rate_min = MIN(o.sub_rate_min, rate);
                        o.lost += res->lost;
                }
        }
        *ret = o;
        return 0;
}

struct memset_arg {
        size_t size;
        uint64_t duration_ns;
        double *ret;
};

static int memset_main(void *arg) {
        struct memset_arg *a = arg;
        uint64_t bytes = 0, t0, t, end;
        uint8_t *buf = aligned_alloc(4096, ALIGN_UP(a->size, (size_t)4096));

        if (!buf)
                return 1;
        memset(buf, 1, a->size); /* fault it in */
        t0 = now_ns();
        end = t0 + a->duration_ns;
        do {
                memset(buf, (int)(bytes & 0x7f), a->size);
                __asm__ __volatile__("" : : "r"(buf) : "memory"); /* keep every memset */
                bytes += a->size;
        } while ((t = now_ns()) < end);
        *a->ret = (double)bytes * 1e9 / (double)(t - t0);
        free(buf);
        return 0;
}

int bench_memset_rate(const char *cmd, int cpu, size_t size, uint64_t duration_ns, double *ret_bps) {
        double *shared = bench_shared_new(sizeof(double));
        struct memset_arg a = {.size = size, .duration_ns = duration_ns, .ret = shared};
        struct bench_procs ps;
        int r;

        bench_procs_init(&ps);
        if (!shared)
                return -ENOMEM;
        r = bench_spawn(&ps, cpu, memset_main, &a);
        if (r >= 0)
                r = bench_procs_reap(&ps, cmd, (int)(duration_ns / 1000000u) + BENCH_PEER_TIMEOUT_MS);
        if (r >= 0)
                *ret_bps = *shared;
        bench_procs_kill(&ps);
        bench_shared_free(shared, sizeof(double));
        return r;
}

/* ------------------------------------------------------------- output */

void bench_json_cpus(FILE *f, const struct bench_common *c) {
        if (c->cpus[0] >= 0)
                (void)fprintf(f, "\"cpus\":[%d,%d],", c->cpus[0], c->cpus[1]);
        else
                (void)fprintf(f, "\"cpus\":null,");
}

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

static void gp_script(FILE *f, const char *png, const char *title, const struct bench_series *s, unsigned n) {
        (void)fputs("if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
                    "{ set terminal pngcairo size 1000,600 noenhanced font ',10' } "
                    "else { set terminal png size 1000,600 noenhanced }\n",
                    f);
        (void)fputs("set output ", f);
        gp_str(f, png);
        (void)fputs("\nset title ", f);
        gp_str(f, title);
        (void)fputs("\nset logscale x\nset logscale y\nset grid xtics ytics mytics\n"
                    "set xlabel 'percentile'\nset ylabel 'latency (us)'\nset format y '%g'\n"
                    "set xtics ('0%%' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
                    "'99.999%%' 100000, '99.9999%%' 1000000)\n"
                    "set key top left\nplot ",
                    f);
        for (unsigned i = 0; i < n; i++) {
                (void)fprintf(f, "%s'-' using 1:2 with lines lw 2 title ", i ? ", " : "");
                gp_str(f, s[i].title);
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
                        (void)fprintf(f, "%.6g %.3f\n", x, (double)hist_percentile(h, 100.0 * (1.0 - 1.0 / x)) / 1e3);
                }
                (void)fprintf(f, "%.6g %.3f\ne\n", top, (double)h->max / 1e3);
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
