/* SPDX-License-Identifier: MIT */
/*
 * harness.c: a real zcbusd per test and real peer processes, without
 * sleeping and without leaving anything behind.
 *
 * Startup: the broker gets the write end of a pipe as --ready-fd and writes
 * "READY\n" once its socket listens; we block on the read end. If it dies
 * instead, the pipe reaches EOF and we report its log. Nothing polls and
 * nothing sleeps.
 *
 * Lifetime: every forked process sets PR_SET_PDEATHSIG(SIGKILL) and checks
 * that its parent did not die before that took effect, so when a test
 * child exits or is killed by Check's timeout, its broker and peers die
 * with it. All broker directories live under one base directory that
 * main() creates and removes (harness_init/harness_cleanup), so even a
 * test that fails half-way leaves no socket or log in /tmp.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define BROKER_ARGS_MAX 32

static char base_dir[64];

void harness_init(void) {
        const char *d = getenv("ZCBUSD");

        if (!d || !*d) {
                fprintf(stderr, "ZCBUSD is not set: skipping integration tests\n");
                exit(EXIT_SKIP);
        }
        if (access(d, X_OK) < 0) {
                fprintf(stderr, "ZCBUSD=%s is not executable: %s\n", d, strerror(errno));
                exit(EXIT_FAILURE);
        }
        require_memfd_sealing();
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > 24)
                tmp = "/tmp";
        snprintf(base_dir, sizeof(base_dir), "%s/zcbus-test-XXXXXX", tmp);
        if (!mkdtemp(base_dir)) {
                fprintf(stderr, "mkdtemp %s: %s\n", base_dir, strerror(errno));
                exit(EXIT_FAILURE);
        }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st;
        (void)flag;
        (void)ftw;
        (void)remove(path);
        return 0;
}

void harness_cleanup(void) {
        if (base_dir[0])
                (void)nftw(base_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        base_dir[0] = '\0';
}

void harness_mkdtemp(char *buf, size_t len) {
        ck_assert_msg(base_dir[0], "harness_init() was not called");
        ck_assert_msg((size_t)snprintf(buf, len, "%s/d-XXXXXX", base_dir) < len, "path too long");
        ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

void peer_fail(const char *file, int line, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "peer %d: %s:%d: %s\n", (int)getpid(), file, line, msg);
}

/* In a freshly forked child: die with the parent. */
static void die_with_parent(pid_t parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(126);
        /* The parent may have died before prctl took effect. */
        if (getppid() != parent)
                _exit(126);
}

pid_t spawn(int (*fn)(void *), void *arg) {
        pid_t parent = getpid();
        pid_t pid = fork();

        ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                die_with_parent(parent);
                _exit(fn(arg));
        }
        return pid;
}

int wait_exit(pid_t pid) {
        int st;

        for (;;) {
                pid_t r = waitpid(pid, &st, 0);
                if (r == pid)
                        break;
                ck_assert_msg(r < 0 && errno == EINTR, "waitpid %d: %s", (int)pid, strerror(errno));
        }
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
        return 255;
}

static void dump_log(const struct broker *b) {
        char buf[4096];
        int fd = open(b->log, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return;
        fprintf(stderr, "--- zcbusd log (%s) ---\n", b->log);
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                (void)!write(STDERR_FILENO, buf, (size_t)n);
        fprintf(stderr, "--- end of zcbusd log ---\n");
        (void)close(fd);
}

static int broker_spawn(struct broker *b, va_list ap) {
        const char *argv[BROKER_ARGS_MAX + 8];
        char ready_arg[16];
        const char *zcbusd = getenv("ZCBUSD");
        int p[2];
        int n = 0;
        pid_t parent = getpid();

        ck_assert_msg(zcbusd != NULL, "ZCBUSD unset (harness_init not called?)");
        ck_assert_int_eq(b->pid, 0);
        /* The child moves the write end to fd 3. */
        snprintf(ready_arg, sizeof(ready_arg), "%d", 3);
        argv[n++] = zcbusd;
        argv[n++] = "-f";
        argv[n++] = "-s";
        argv[n++] = b->sock;
        argv[n++] = "--ready-fd";
        argv[n++] = ready_arg;
        for (const char *a; (a = va_arg(ap, const char *));) {
                ck_assert_msg(n < BROKER_ARGS_MAX, "too many broker arguments");
                argv[n++] = a;
        }
        argv[n] = NULL;

        ck_assert_msg(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
        pid_t pid = fork();
        ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                die_with_parent(parent);
                int logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (logfd < 0 || nullfd < 0)
                        _exit(126);
                if (dup2(nullfd, STDIN_FILENO) < 0 || dup2(logfd, STDOUT_FILENO) < 0 ||
                    dup2(logfd, STDERR_FILENO) < 0)
                        _exit(126);
                if (p[1] == 3) {
                        if (fcntl(3, F_SETFD, 0) < 0)
                                _exit(126);
                } else if (dup2(p[1], 3) < 0) { /* dup2 clears FD_CLOEXEC */
                        _exit(126);
                }
                (void)signal(SIGPIPE, SIG_DFL); /* tests may ignore it */
                /* Whatever else the test process holds is not the broker's. */
                for (int fd = 4; fd < 1024; fd++)
                        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
                execv(zcbusd, (char *const *)argv);
                _exit(127);
        }
        (void)close(p[1]);

        char buf[16];
        size_t got = 0;
        while (got < 6) {
                ssize_t r = read(p[0], buf + got, sizeof(buf) - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                got += (size_t)r;
        }
        (void)close(p[0]);
        if (got >= 6 && memcmp(buf, "READY\n", 6) == 0) {
                b->pid = pid;
                return 0;
        }
        int st = wait_exit(pid);
        fprintf(stderr, "zcbusd did not become ready (read %zu bytes, exit status %d)\n", got, st);
        dump_log(b);
        return -EIO;
}

int broker_start(struct broker *b, ...) {
        va_list ap;
        int r;

        ck_assert_msg(base_dir[0], "harness_init() was not called");
        memset(b, 0, sizeof(*b));
        snprintf(b->dir, sizeof(b->dir), "%s/b-XXXXXX", base_dir);
        ck_assert_msg(mkdtemp(b->dir) != NULL, "mkdtemp %s: %s", b->dir, strerror(errno));
        ck_assert_msg((size_t)snprintf(b->sock, sizeof(b->sock), "%s/sock", b->dir) < sizeof(b->sock),
                      "socket path too long");
        snprintf(b->log, sizeof(b->log), "%s/zcbusd.log", b->dir);
        va_start(ap, b);
        r = broker_spawn(b, ap);
        va_end(ap);
        return r;
}

int broker_restart(struct broker *b, ...) {
        va_list ap;
        int r;

        ck_assert_msg(b->dir[0], "broker_restart on a broker never started");
        va_start(ap, b);
        r = broker_spawn(b, ap);
        va_end(ap);
        return r;
}

void broker_stop(struct broker *b) {
        ck_assert_msg(b->pid > 0, "broker not running");
        ck_assert_msg(kill(b->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
        int st = wait_exit(b->pid);
        b->pid = 0;
        if (st != 0)
                dump_log(b);
        ck_assert_msg(st == 0, "zcbusd exited with status %d after SIGTERM, expected 0", st);
        struct stat sb;
        ck_assert_msg(lstat(b->sock, &sb) < 0 && errno == ENOENT,
                      "zcbusd left its socket %s behind after a clean shutdown", b->sock);
}

void broker_kill(struct broker *b) {
        ck_assert_msg(b->pid > 0, "broker not running");
        ck_assert_msg(kill(b->pid, SIGKILL) == 0, "kill: %s", strerror(errno));
        int st = wait_exit(b->pid);
        b->pid = 0;
        ck_assert_int_eq(st, 128 + SIGKILL);
}

void broker_destroy(struct broker *b) {
        if (b->pid > 0) {
                (void)kill(b->pid, SIGKILL);
                (void)wait_exit(b->pid);
                b->pid = 0;
        }
        if (b->dir[0]) {
                (void)unlink(b->sock);
                (void)unlink(b->log);
                (void)rmdir(b->dir);
        }
        memset(b, 0, sizeof(*b));
}

int fd_count(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        ck_assert_msg(d != NULL, "opendir /proc/self/fd: %s", strerror(errno));
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        (void)closedir(d);
        return n - 1; /* the directory's own descriptor */
}

int memfd_map_count(void) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[4096];
        int n = 0;

        ck_assert_msg(f != NULL, "fopen /proc/self/maps: %s", strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "memfd:zcbus"))
                        n++;
        (void)fclose(f);
        return n;
}

void leak_begin(struct leak_check *lc) {
        lc->fds = fd_count();
        lc->maps = memfd_map_count();
}

void leak_end(const struct leak_check *lc) {
        int fds = fd_count(), maps = memfd_map_count();

        ck_assert_msg(fds == lc->fds, "descriptor leak: %d open before, %d after", lc->fds, fds);
        ck_assert_msg(maps == lc->maps, "mapping leak: %d memfd:zcbus mappings before, %d after",
                      lc->maps, maps);
}

void chan_open(struct chan *c) {
        int p[2];

        ck_assert_msg(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
        c->r = p[0];
        c->w = p[1];
}

void chan_close(struct chan *c) {
        if (c->r >= 0)
                (void)close(c->r);
        if (c->w >= 0)
                (void)close(c->w);
        c->r = c->w = -1;
}

void chan_keep_write(struct chan *c) {
        if (c->r >= 0)
                (void)close(c->r);
        c->r = -1;
}

void chan_keep_read(struct chan *c) {
        if (c->w >= 0)
                (void)close(c->w);
        c->w = -1;
}

int chan_send(struct chan *c, char byte) {
        for (;;) {
                ssize_t r = write(c->w, &byte, 1);
                if (r == 1)
                        return 0;
                if (r < 0 && errno == EINTR)
                        continue;
                return r < 0 ? -errno : -EIO;
        }
}

int chan_recv(struct chan *c) {
        unsigned char byte;

        for (;;) {
                ssize_t r = read(c->r, &byte, 1);
                if (r == 1)
                        return byte;
                if (r < 0 && errno == EINTR)
                        continue;
                return -1;
        }
}

int harness_raw_connect(const char *path) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert(strlen(path) < sizeof(sa.sun_path));
        strcpy(sa.sun_path, path);
        ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
        return fd;
}
