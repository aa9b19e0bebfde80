/* SPDX-License-Identifier: MIT */
/*
 * procs.c: the peer processes of the lab (procs.h) and how it talks to
 * them before and after a measurement.
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
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_util.h"
#include "futex.h"
#include "macro.h"
#include "procs.h"

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

/* A peer went missing while we waited for its token: say what we know. */
void bench_peer_lost(const char *cmd, const char *what, struct bench_procs *ps, int r) {
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
