/* SPDX-License-Identifier: MIT */
/*
 * sock.c: datagram I/O with descriptor passing. The one rule: whatever a
 * peer sends, the receiver ends up owning exactly the descriptors it asked
 * for and nothing else, and a datagram that did not fit is an error.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "proto.h"
#include "sock.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int sock_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_FDS_MAX)];
        } control;
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

        if (nfds > PROTO_FDS_MAX)
                return -EINVAL;
        if (nfds > 0) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        for (;;) {
                ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n >= 0)
                        return (size_t)n == len ? 0 : -EMSGSIZE;
                if (errno == EINTR)
                        continue;
                return negerrno();
        }
}

/* Take the fds a message carried: the first max_fds into fds (may be
 * NULL with max_fds 0), closing the rest. Returns how many were taken;
 * *ret_seen (may be NULL) how many came. */
static unsigned take_cmsg_fds(struct msghdr *mh, int *fds, unsigned max_fds, unsigned *ret_seen) {
        unsigned got = 0, seen = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        seen++;
                        if (got < max_fds && fds)
                                fds[got++] = f;
                        else if (f >= 0)
                                (void)close(f);
                }
        }
        if (ret_seen)
                *ret_seen = seen;
        return got;
}

ssize_t sock_recv(int fd, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *ret_nfds) {
        /* Room for more fds than we accept, so a peer sending too many is
         * seen (and its fds closed) rather than silently truncated. */
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * (PROTO_FDS_MAX + 8))];
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = cap};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
        unsigned got = 0;
        ssize_t n;

        for (;;) {
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n >= 0)
                        break;
                if (errno == EINTR)
                        continue;
                return negerrno();
        }
        if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
                (void)take_cmsg_fds(&mh, NULL, 0, NULL);
                return -EBADMSG;
        }
        unsigned seen;
        got = take_cmsg_fds(&mh, fds, max_fds, &seen);
        if (seen > got && ret_nfds) {
                /* More than the caller takes: refused, none kept. */
                for (unsigned i = 0; i < got; i++)
                        (void)close(fds[i]);
                return -EBADMSG;
        }
        if (ret_nfds)
                *ret_nfds = got;
        else
                for (unsigned i = 0; i < got; i++)
                        (void)close(fds[i]);
        return n;
}

int sock_peer_cred(int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid) {
        struct ucred uc;
        socklen_t l = sizeof(uc);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
                return negerrno();
        if (l != sizeof(uc))
                return -EIO;
        if (ret_pid)
                *ret_pid = uc.pid;
        if (ret_uid)
                *ret_uid = uc.uid;
        if (ret_gid)
                *ret_gid = uc.gid;
        return 0;
}

int sock_peer_pidfd(int fd, pid_t pid) {
        int pfd = -1;
        socklen_t l = sizeof(pfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &l) == 0 && l == sizeof(int) && pfd >= 0)
                return pfd;
#ifdef SYS_pidfd_open
        pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd >= 0)
                return pfd;
        return negerrno();
#else
        return -ENOSYS;
#endif
}

int sock_connect(const char *path, int *ret_fd) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;

        if (!path || !*path)
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negerrno();
        for (;;) {
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        break;
                if (errno == EINTR)
                        continue;
                return negerrno();
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}
