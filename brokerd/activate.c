/* SPDX-License-Identifier: MIT */
/*
 * activate.c: socket activation. A service manager (systemd's
 * zcbusd.socket, or anything that follows sd_listen_fds(3)) may bind and
 * listen on the broker's socket itself and pass it as descriptor 3, with
 * LISTEN_FDS=1 and LISTEN_PID set to the pid it executes. Clients can
 * then connect before the broker runs, and a broker that restarts never
 * leaves the path unbound.
 *
 * We take the descriptor only when LISTEN_PID is our own pid (the
 * variables may have leaked from a parent that was activated), and only
 * if it is what the broker would have made: a listening AF_UNIX
 * SOCK_SEQPACKET socket; anything else is a misconfigured unit, and
 * starting with it would only fail later, at every client. The socket
 * file belongs to the manager: the broker neither replaces nor removes
 * it, and its mode and group are the manager's (SocketMode=,
 * SocketGroup=), not socket_mode and socket_group.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "activate.h"
#include "conf.h"
#include "macro.h"

static void unset_listen_env(void) {
        (void)unsetenv("LISTEN_PID");
        (void)unsetenv("LISTEN_FDS");
        (void)unsetenv("LISTEN_FDNAMES");
}

static const char *type_name(int type) {
        switch (type) {
        case SOCK_STREAM:
                return "SOCK_STREAM (ListenStream=)";
        case SOCK_DGRAM:
                return "SOCK_DGRAM (ListenDatagram=)";
        case SOCK_SEQPACKET:
                return "SOCK_SEQPACKET";
        default:
                return "of another type";
        }
}

static int check_listener(int fd, char *err, size_t errlen) {
        int domain = 0, type = 0, listening = 0;
        socklen_t l = sizeof(int);
        struct stat st;

        if (fstat(fd, &st) < 0) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d: %s", fd, strerror(errno));
                return negerrno();
        }
        if (!S_ISSOCK(st.st_mode)) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d is not a socket", fd);
                return -ENOTSOCK;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0 || domain != AF_UNIX) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d is not an AF_UNIX socket", fd);
                return -EAFNOSUPPORT;
        }
        l = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_SEQPACKET) {
                (void)snprintf(err, errlen,
                               "socket activation: descriptor %d is a %s socket, not SOCK_SEQPACKET "
                               "(ListenSequentialPacket= in the .socket unit)",
                               fd, type_name(type));
                return -EPROTOTYPE;
        }
        l = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 || !listening) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d is not a listening socket", fd);
                return -EINVAL;
        }
        return 0;
}

/* The socket's address as a path, or "@name" for an abstract one. */
static int listener_path(int fd, char *buf, size_t len, char *err, size_t errlen) {
        struct sockaddr_un sa = {0};
        socklen_t l = sizeof(sa);
        size_t n;

        if (getsockname(fd, (struct sockaddr *)&sa, &l) < 0) {
                int r = negerrno();
                (void)snprintf(err, errlen, "socket activation: descriptor %d: %s", fd, strerror(-r));
                return r;
        }
        n = l > offsetof(struct sockaddr_un, sun_path) ? l - offsetof(struct sockaddr_un, sun_path) : 0;
        if (n == 0) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d is bound to no address", fd);
                return -EDESTADDRREQ;
        }
        if (sa.sun_path[0] == '\0') {
                sa.sun_path[0] = '@';
        } else {
                n = strnlen(sa.sun_path, n);
        }
        if (n >= len) {
                (void)snprintf(err, errlen, "socket activation: descriptor %d has too long an address", fd);
                return -ENAMETOOLONG;
        }
        memcpy(buf, sa.sun_path, n);
        buf[n] = '\0';
        return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        unsigned long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

int activate_listen_fd(int *ret_fd, char *ret_path, size_t pathlen, char *err, size_t errlen) {
        const char *epid = getenv("LISTEN_PID"), *efds = getenv("LISTEN_FDS");
        unsigned long pid, nfds;
        int fd = ACTIVATE_FD_START, flags, r;

        *ret_fd = -1;
        if (!epid) {
                unset_listen_env();
                return 0;
        }
        if (parse_uint(epid, INT_MAX, &pid) < 0 || (pid_t)pid != getpid()) {
                /* Not for us (or garbage): the descriptors are someone
                 * else's business. */
                unset_listen_env();
                return 0;
        }
        if (parse_uint(efds, INT_MAX - ACTIVATE_FD_START, &nfds) < 0) {
                (void)snprintf(err, errlen, "socket activation: LISTEN_FDS='%.32s' is not a number",
                               efds ? efds : "");
                unset_listen_env();
                return -EINVAL;
        }
        unset_listen_env();
        if (nfds == 0)
                return 0;
        r = check_listener(fd, err, errlen);
        if (r < 0)
                return r;
        r = listener_path(fd, ret_path, pathlen, err, errlen);
        if (r < 0)
                return r;
        flags = fcntl(fd, F_GETFL);
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = negerrno();
                (void)snprintf(err, errlen, "socket activation: descriptor %d: %s", fd, strerror(-r));
                return r;
        }
        /* We listen on one socket; more are a unit we do not understand.
         * The caller says so; we do not keep them. */
        for (unsigned long i = 1; i < nfds; i++)
                (void)close(ACTIVATE_FD_START + (int)i);
        *ret_fd = fd;
        return (int)MIN(nfds, (unsigned long)INT_MAX);
}
