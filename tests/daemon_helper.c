/* SPDX-License-Identifier: MIT */
/*
 * daemon_helper.c: the service manager's side of tests/test_daemon.sh,
 * without a service manager. Three small tools:
 *
 *   daemon_helper activate [--type stream] [--no-listen] [--fds N]
 *                          [--not-mine] PATH -- CMD [ARG...]
 *       binds and listens on PATH as systemd's ListenSequentialPacket=
 *       does, puts the socket at descriptor 3 (more descriptors after it
 *       with --fds), sets LISTEN_FDS and LISTEN_PID (our own pid, which
 *       exec keeps, or with --not-mine one that is not) and execs CMD.
 *
 *   daemon_helper notify ADDR SECONDS
 *       binds a datagram socket at ADDR (a path, or @name for the abstract
 *       namespace), prints "LISTENING", then each datagram it receives as
 *       one line, its newlines turned into ';'. It exits after SECONDS
 *       without a datagram, so a test that waits for one that never comes
 *       fails instead of hanging.
 *
 *   daemon_helper waitpid PID MILLISECONDS
 *       waits (pidfd_open, poll) for a process that is not our child, a
 *       daemon, to exit: status 0 when it has, 1 on timeout, 77 without
 *       pidfd_open.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int die(const char *what) {
        (void)fprintf(stderr, "daemon_helper: %s: %s\n", what, strerror(errno));
        return 99;
}

static int usage(void) {
        (void)fprintf(stderr, "usage: daemon_helper activate [--type stream] [--no-listen] [--fds N] [--not-mine] "
                              "PATH -- CMD...\n"
                              "       daemon_helper notify ADDR SECONDS\n"
                              "       daemon_helper waitpid PID MILLISECONDS\n");
        return 99;
}

static socklen_t make_addr(const char *s, struct sockaddr_un *sa) {
        size_t len = strlen(s);

        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (len >= sizeof(sa->sun_path))
                return 0;
        memcpy(sa->sun_path, s, len);
        if (s[0] == '@') {
                sa->sun_path[0] = '\0';
                return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        }
        return (socklen_t)sizeof(*sa);
}

static int cmd_activate(int argc, char **argv) {
        int type = SOCK_SEQPACKET, nfds = 1, i;
        bool do_listen = true, mine = true;
        struct sockaddr_un sa;
        socklen_t salen;
        char buf[32];
        int fd;

        for (i = 0; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++) {
                if (strcmp(argv[i], "--type") == 0 && i + 1 < argc && strcmp(argv[i + 1], "stream") == 0) {
                        type = SOCK_STREAM;
                        i++;
                } else if (strcmp(argv[i], "--no-listen") == 0) {
                        do_listen = false;
                } else if (strcmp(argv[i], "--not-mine") == 0) {
                        mine = false;
                } else if (strcmp(argv[i], "--fds") == 0 && i + 1 < argc) {
                        nfds = atoi(argv[++i]);
                } else {
                        return usage();
                }
        }
        if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0 || nfds < 1 || nfds > 8)
                return usage();
        salen = make_addr(argv[i], &sa);
        if (!salen)
                return usage();
        fd = socket(AF_UNIX, type, 0);
        if (fd < 0)
                return die("socket");
        if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
                return die("bind");
        if (do_listen && listen(fd, 16) < 0)
                return die("listen");
        if (fd != 3) {
                if (dup2(fd, 3) < 0)
                        return die("dup2");
                (void)close(fd);
        }
        for (int k = 1; k < nfds; k++) {
                int extra = open("/dev/null", O_RDONLY);
                if (extra < 0 || dup2(extra, 3 + k) < 0)
                        return die("extra descriptor");
                if (extra != 3 + k)
                        (void)close(extra);
        }
        (void)snprintf(buf, sizeof(buf), "%d", nfds);
        if (setenv("LISTEN_FDS", buf, 1) < 0)
                return die("setenv");
        /* exec keeps the pid: the broker will see its own. */
        (void)snprintf(buf, sizeof(buf), "%d", mine ? (int)getpid() : (int)getpid() + 100000);
        if (setenv("LISTEN_PID", buf, 1) < 0 || setenv("LISTEN_FDNAMES", "zcbusd.socket", 1) < 0)
                return die("setenv");
        execv(argv[i + 2], argv + i + 2);
        return die("exec");
}

static int cmd_notify(int argc, char **argv) {
        struct sockaddr_un sa;
        struct timeval tv = {0};
        socklen_t salen;
        char buf[4097];
        int fd;

        if (argc != 2)
                return usage();
        salen = make_addr(argv[0], &sa);
        tv.tv_sec = atoi(argv[1]);
        if (!salen || tv.tv_sec <= 0)
                return usage();
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return die("socket");
        if (bind(fd, (struct sockaddr *)&sa, salen) < 0)
                return die("bind");
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return die("SO_RCVTIMEO");
        (void)setvbuf(stdout, NULL, _IOLBF, 0);
        (void)printf("LISTENING\n");
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        if (errno == EAGAIN)
                                (void)fprintf(stderr, "daemon_helper: no datagram for %s s, exiting\n", argv[1]);
                        break;
                }
                buf[n] = '\0';
                for (ssize_t k = 0; k < n; k++)
                        if (buf[k] == '\n' || buf[k] == '\0')
                                buf[k] = ';';
                if (printf("%s\n", buf) < 0)
                        break;
        }
        if (sa.sun_path[0])
                (void)unlink(sa.sun_path);
        return 0;
}

static int cmd_waitpid(int argc, char **argv) {
#ifdef SYS_pidfd_open
        struct pollfd p = {.events = POLLIN};
        int r;

        if (argc != 2)
                return usage();
        p.fd = (int)syscall(SYS_pidfd_open, atoi(argv[0]), 0);
        if (p.fd < 0)
                return errno == ESRCH ? 0 : errno == ENOSYS ? 77 : die("pidfd_open");
        do
                r = poll(&p, 1, atoi(argv[1]));
        while (r < 0 && errno == EINTR);
        return r > 0 ? 0 : 1;
#else
        return 77;
#endif
}

int main(int argc, char **argv) {
        if (argc < 2)
                return usage();
        if (strcmp(argv[1], "activate") == 0)
                return cmd_activate(argc - 2, argv + 2);
        if (strcmp(argv[1], "notify") == 0)
                return cmd_notify(argc - 2, argv + 2);
        if (strcmp(argv[1], "waitpid") == 0)
                return cmd_waitpid(argc - 2, argv + 2);
        return usage();
}
