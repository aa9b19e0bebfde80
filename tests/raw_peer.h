/* SPDX-License-Identifier: MIT */
/*
 * raw_peer.h: a peer that speaks the control protocol itself and maps
 * what the broker hands it, so a test can then write whatever the mapping
 * lets it write (a hostile producer, a scribbling subscriber). Used in
 * processes forked by spawn(): failures go through PEER_CHECK.
 * Header-only, like harness.h's helpers.
 */
#ifndef ZCBUS_TEST_RAW_PEER_H
#define ZCBUS_TEST_RAW_PEER_H

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proto.h"
#include "seg.h"
#include "sock.h"

/* Receive one datagram (and its fds) on fd, waiting as long as it takes. */
static inline ssize_t raw_recv(int fd, void *buf, size_t len, int *fds, unsigned max_fds, unsigned *nfds) {
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                (void)poll(&p, 1, -1);
                ssize_t n = sock_recv(fd, buf, len, fds, max_fds, nfds);
                if (n != -EAGAIN)
                        return n;
        }
}

/* Connect to sock and say HELLO: a session; the socket in *ret_fd. */
static inline int raw_hello(const char *sock, int *ret_fd) {
        uint8_t buf[256];
        struct proto_msg m;
        int fd = -1, r = sock_connect(sock, &fd);
        ssize_t n;

        PEER_CHECK(r == 0, "connect: %s", strerror(-r));
        n = proto_enc_hello(buf, sizeof(buf), 1);
        PEER_CHECK(sock_send(fd, buf, (size_t)n, NULL, 0) == 0, "send HELLO");
        n = raw_recv(fd, buf, sizeof(buf), NULL, 0, NULL);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &m) == 0 && m.hdr.type == PROTO_HELLO_REPLY, "HELLO reply");
        *ret_fd = fd;
        return 0;
}

/* HELLO (when *ret_fd < 0: connects and stores the socket there), then
 * OPEN as o says, then map the ring (read-write for a producer) and every
 * table sent, unless ret_map is mapped already. The reply in *ret. */
static inline int raw_open(const char *sock, const struct proto_open *o, const char *topic, int *ret_fd,
                           struct seg_map *ret_map, struct proto_open_reply *ret) {
        static uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int fd, fds[PROTO_FDS_MAX];
        unsigned nfds = 0;
        ssize_t n;
        int r;

        if (*ret_fd < 0 && raw_hello(sock, ret_fd) != 0)
                return 1;
        fd = *ret_fd;
        n = proto_enc_open(buf, sizeof(buf), 2, o, topic);
        PEER_CHECK(sock_send(fd, buf, (size_t)n, NULL, 0) == 0, "send OPEN");
        n = raw_recv(fd, buf, sizeof(buf), fds, PROTO_FDS_MAX, &nfds);
        PEER_CHECK(n > 0 && proto_decode(buf, (size_t)n, &m) == 0, "OPEN reply");
        PEER_CHECK(m.hdr.type == PROTO_OPEN_REPLY && nfds >= 2, "OPEN refused: %s", m.errmsg);
        *ret = m.u.open_reply;
        r = ret_map->ring ? 0
                          : seg_map_fds(fds[0], &fds[1], o->role == PROTO_ROLE_PUB ? 0 : m.u.open_reply.table,
                                        nfds - 1, o->role == PROTO_ROLE_PUB, ret_map);
        for (unsigned i = 0; i < nfds; i++)
                (void)close(fds[i]);
        PEER_CHECK(r == 0, "map: %s", strerror(-r));
        PEER_CHECK(nfds - 1 == ret->ntables, "%u tables sent, the reply says %u", nfds - 1, ret->ntables);
        return 0;
}

#endif
