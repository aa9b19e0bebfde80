/* SPDX-License-Identifier: MIT */
/*
 * peer.c: one connected client session. It owns the session's socket, who
 * the client is (SO_PEERCRED, a pidfd, a session uuid), the watchers that
 * tell us the client is gone, and the list of producer and subscriber
 * entries the session holds, so that whatever way the session ends, every
 * entry is evicted exactly once.
 *
 * One thing ends a session from outside: the socket hanging up, which
 * happens when the last process holding it is gone. The process that
 * opened the session may exit before that: a child it forked holds the
 * socket and the mappings and may go on using the session's entries, so
 * freeing them then would hand a live peer's entry to another. The pidfd
 * only tells us (and the log) that the opener went. Reading is bounded per
 * wake-up so one chatty client cannot starve others. peer.c never decides
 * what a message means: it hands each datagram to the broker
 * (struct peer_ops) and ends the session when told to.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

#include "conf.h"
#include "macro.h"
#include "peer.h"
#include "proto.h"
#include "sock.h"

static void peer_gone(struct peer *p, const char *why) {
        ev_io_stop(p->loop, &p->io);
        if (p->pidfd >= 0)
                ev_io_stop(p->loop, &p->pid_io); /* stopping a stopped watcher is fine */
        p->ops->gone(p, why, p->userdata); /* frees p */
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
        struct peer *p = w->data;
        char why[128];

        for (unsigned i = 0; i < PEER_RECV_BATCH; i++) {
                /* Descriptors come only with ADOPT; the broker closes any
                 * other message's. */
                int fds[PROTO_FDS_MAX];
                unsigned nfds = 0;
                ssize_t n = sock_recv(p->fd, p->rbuf, PROTO_MSG_MAX, fds, PROTO_FDS_MAX, &nfds);
                int r;

                if (n == -EAGAIN)
                        return;
                if (n <= 0)
                        for (unsigned k = 0; k < nfds; k++)
                                (void)close(fds[k]);
                if (n == 0) {
                        peer_gone(p, "hung up");
                        return;
                }
                if (n < 0 && n != -EBADMSG) {
                        (void)snprintf(why, sizeof(why), "receive failed: %s", strerror((int)-n));
                        peer_gone(p, why);
                        return;
                }
                r = p->ops->datagram(p, n > 0 ? p->rbuf : NULL, n, n > 0 ? fds : NULL, n > 0 ? nfds : 0,
                                     p->userdata);
                if (r < 0) {
                        (void)snprintf(why, sizeof(why), "disconnected: %s", strerror(-r));
                        peer_gone(p, why);
                        return;
                }
        }
}

static void pid_cb(struct ev_loop *loop, ev_io *w, int revents) {
        struct peer *p = w->data;

        ev_io_stop(loop, w);
        log_debug("session %s: opener pid %d exited; the session lasts while its socket is open", p->id_str,
                  (int)p->pid);
}

static void peer_freep(struct peer **p) {
        peer_free(*p, false);
}

int peer_new(struct ev_loop *loop, int fd, void *rbuf, const struct peer_ops *ops, void *userdata,
             struct peer **ret) {
        _cleanup_(peer_freep) struct peer *p = NULL;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->fd = -1;
        p->pidfd = -1;
        p->loop = loop;
        p->ops = ops;
        p->userdata = userdata;
        p->rbuf = rbuf;

        r = sock_peer_cred(fd, &p->pid, &p->uid, &p->gid);
        if (r < 0)
                return r;
        r = sock_peer_pidfd(fd, p->pid);
        if (r == -ESRCH)
                return r; /* already dead: nothing to serve */
        if (r < 0)
                log_debug("no pidfd for pid %d (%s): relying on socket hang-up", (int)p->pid, strerror(-r));
        else
                p->pidfd = r;
        uuid_generate_random(p->id);
        uuid_unparse_lower(p->id, p->id_str);

        p->fd = fd;
        ev_io_init(&p->io, io_cb, fd, EV_READ);
        p->io.data = p;
        ev_io_start(loop, &p->io);
        if (p->pidfd >= 0) {
                ev_io_init(&p->pid_io, pid_cb, p->pidfd, EV_READ);
                p->pid_io.data = p;
                ev_io_start(loop, &p->pid_io);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

void peer_free(struct peer *p, bool evict) {
        if (!p)
                return;
        if (p->fd >= 0)
                ev_io_stop(p->loop, &p->io);
        if (p->pidfd >= 0)
                ev_io_stop(p->loop, &p->pid_io);
        if (evict)
                for (uint32_t i = 0; i < p->nentries; i++)
                        reg_release(p->entries[i].topic, p->entries[i].role, p->entries[i].index);
        if (p->uid_acct)
                p->uid_acct->entries -= MIN(p->uid_acct->entries, p->nentries);
        reg_account_unref(p->uid_acct);
        reg_account_unref(p->session_acct);
        free(p->entries);
        free(p->info);
        closep(&p->pidfd);
        closep(&p->fd);
        free(p);
}

int peer_send(struct peer *p, const void *buf, size_t len, const int *fds, unsigned nfds) {
        return sock_send(p->fd, buf, len, fds, nfds);
}

int peer_reserve(struct peer *p) {
        struct peer_entry *e;
        uint32_t cap;

        if (p->nentries < p->cap)
                return 0;
        if (p->nentries >= PEER_ENTRIES_MAX)
                return -EMFILE;
        cap = p->cap ? MIN(p->cap * 2, PEER_ENTRIES_MAX) : 8;
        e = realloc(p->entries, cap * sizeof(*e));
        if (!e)
                return -ENOMEM;
        p->entries = e;
        p->cap = cap;
        return 0;
}

void peer_hold(struct peer *p, struct reg_topic *t, uint32_t role, uint32_t index) {
        p->entries[p->nentries++] = (struct peer_entry){.topic = t, .role = role, .index = index};
        if (role == PROTO_ROLE_PUB)
                p->nprod++;
        else
                p->nsub++;
        if (p->uid_acct)
                p->uid_acct->entries++;
}

int peer_release(struct peer *p, const uint8_t topic_id[16], uint32_t role, uint32_t index,
                 struct peer_entry *ret_entry) {
        for (uint32_t i = 0; i < p->nentries; i++) {
                struct peer_entry e = p->entries[i];

                if (e.role != role || e.index != index || memcmp(e.topic->topic_id, topic_id, 16) != 0)
                        continue;
                p->entries[i] = p->entries[--p->nentries];
                if (role == PROTO_ROLE_PUB)
                        p->nprod--;
                else
                        p->nsub--;
                if (p->uid_acct && p->uid_acct->entries)
                        p->uid_acct->entries--;
                reg_release(e.topic, e.role, e.index);
                if (ret_entry)
                        *ret_entry = e;
                return 0;
        }
        return -ENOENT;
}
