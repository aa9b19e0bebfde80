/* SPDX-License-Identifier: MIT */
/*
 * pidfile.c: a pid file an operator (or a PIDFile= unit) can signal the
 * right broker with, when several run on one host.
 *
 * Ownership is a lock, not the file's existence: the broker holds an
 * flock(2) on the open file for as long as it runs, so the kernel drops
 * it when the broker dies, however it dies. A second broker given the
 * same file finds the lock taken and refuses to start, naming the pid in
 * the file; a file left by a broker killed with SIGKILL is unlocked, so
 * it is stale and simply taken over, with no guessing from pids that may
 * have been reused. After taking the lock we check that the path still
 * names the file we locked (a broker that was exiting may have removed it
 * in between) and start again if not, so two brokers never both believe
 * they own one path.
 *
 * The file is emptied when taken and written once the socket listens, so
 * a pid in it always belongs to a broker that was ready. At exit it is
 * removed only if it is still the one we locked.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "macro.h"
#include "pidfile.h"

#define PIDFILE_TRIES 8 /* the path replaced under us this often: give up */

struct pidfile {
        char *path;
        int fd;
        dev_t dev;
        ino_t ino;
};

/* What the file says, for messages: its first line, or "?" */
static void read_pid(int fd, char *buf, size_t len) {
        ssize_t n = pread(fd, buf, len - 1, 0);

        if (n <= 0) {
                (void)snprintf(buf, len, "?");
                return;
        }
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (!*buf)
                (void)snprintf(buf, len, "?");
}

static void pidfile_freep(struct pidfile **p) {
        if (*p) {
                closep(&(*p)->fd);
                free((*p)->path);
                free(*p);
        }
}

int pidfile_acquire(const char *path, struct pidfile **ret) {
        _cleanup_(pidfile_freep) struct pidfile *p = NULL;
        char pid[32];
        int r;

        p = calloc(1, sizeof(*p));
        if (!p || !(p->path = strdup(path))) {
                log_err("pidfile '%s': out of memory", path);
                return -ENOMEM;
        }
        p->fd = -1;
        for (unsigned i = 0; i < PIDFILE_TRIES; i++) {
                struct stat st, now;

                closep(&p->fd);
                p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
                if (p->fd < 0) {
                        r = negerrno();
                        log_err("opening pidfile '%s' failed: %s", path, strerror(-r));
                        return r;
                }
                if (fstat(p->fd, &st) < 0) {
                        r = negerrno();
                        log_err("checking pidfile '%s' failed: %s", path, strerror(-r));
                        return r;
                }
                if (!S_ISREG(st.st_mode)) {
                        log_err("pidfile '%s' is not a regular file; refusing to use it", path);
                        return -EEXIST;
                }
                if (flock(p->fd, LOCK_EX | LOCK_NB) < 0) {
                        r = negerrno();
                        if (r != -EWOULDBLOCK) {
                                log_err("locking pidfile '%s' failed: %s", path, strerror(-r));
                                return r;
                        }
                        read_pid(p->fd, pid, sizeof(pid));
                        log_err("pidfile '%s' is held by a running broker (pid %s)", path, pid);
                        return -EBUSY;
                }
                if (stat(path, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)
                        continue; /* removed or replaced since we opened it */
                if (st.st_size > 0) {
                        read_pid(p->fd, pid, sizeof(pid));
                        log_info("taking over stale pidfile '%s' (pid %s holds it no longer)", path, pid);
                }
                if (ftruncate(p->fd, 0) < 0) {
                        r = negerrno();
                        log_err("emptying pidfile '%s' failed: %s", path, strerror(-r));
                        return r;
                }
                p->dev = st.st_dev;
                p->ino = st.st_ino;
                *ret = TAKE_PTR(p);
                return 0;
        }
        log_err("pidfile '%s' keeps being replaced; giving up", path);
        return -EAGAIN;
}

int pidfile_write(struct pidfile *p) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        ssize_t w = pwrite(p->fd, buf, (size_t)n, 0);

        if (w != n) {
                int r = w < 0 ? negerrno() : -EIO;
                log_err("writing pidfile '%s' failed: %s", p->path, strerror(-r));
                return r;
        }
        return 0;
}

void pidfile_free(struct pidfile *p) {
        struct stat st;

        if (!p)
                return;
        /* Removed while we still hold the lock: whoever opens the path
         * next makes a new file. */
        if (stat(p->path, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino) {
                if (unlink(p->path) < 0)
                        log_warn("removing pidfile '%s' failed: %s", p->path, strerror(errno));
        } else {
                log_warn("pidfile '%s' was removed or replaced by someone else; leaving it", p->path);
        }
        pidfile_freep(&p);
}
