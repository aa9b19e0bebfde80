/* SPDX-License-Identifier: MIT */
/*
 * sock.h: SOCK_SEQPACKET plumbing shared by broker and library: sending a
 * datagram with file descriptors, receiving one while refusing truncated
 * data or control messages (MSG_TRUNC / MSG_CTRUNC mean a broken or hostile
 * peer), peer credentials and the peer's pidfd where the kernel has
 * SO_PEERPIDFD.
 */
#ifndef ZCBUS_SOCK_H
#define ZCBUS_SOCK_H

#include <stddef.h>
#include <sys/types.h>

/* Send one datagram with nfds descriptors (0..PROTO_FDS_MAX). Returns 0,
 * -EAGAIN, -EPIPE, or another negative errno. Never raises SIGPIPE. */
int sock_send(int fd, const void *buf, size_t len, const int *fds, unsigned nfds);

/* Receive one datagram of at most cap bytes. Received descriptors (at most
 * max_fds) go to fds[], their count to *ret_nfds; any surplus is closed.
 * Returns the byte count, 0 on orderly hang-up, -EAGAIN, -EBADMSG for a
 * truncated datagram or control message (its fds are closed), or another
 * negative errno. */
ssize_t sock_recv(int fd, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *ret_nfds);

/* Peer credentials of a connected Unix socket. */
int sock_peer_cred(int fd, pid_t *ret_pid, uid_t *ret_uid, gid_t *ret_gid);
/* A pidfd for the peer: SO_PEERPIDFD, else pidfd_open(pid). -ENOSYS if
 * neither works. */
int sock_peer_pidfd(int fd, pid_t pid);

/* Connect a SOCK_SEQPACKET socket to path (CLOEXEC, blocking). */
int sock_connect(const char *path, int *ret_fd);

#endif
