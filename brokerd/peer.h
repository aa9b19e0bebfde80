/* SPDX-License-Identifier: MIT */
/*
 * peer.h: one client session of zcbusd. See peer.c.
 */
#ifndef ZCBUS_BROKERD_PEER_H
#define ZCBUS_BROKERD_PEER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "reg.h"

#define PEER_ENTRIES_MAX 4096u /* producer/subscriber entries one session may hold */
#define PEER_RECV_BATCH 16u    /* datagrams handled per wake-up, for fairness */

struct peer;

struct peer_ops {
        /* One datagram arrived: n > 0 bytes at buf, or n == -EBADMSG for a
         * datagram or control message that did not fit (buf is NULL),
         * with nfds descriptors, which the callee owns (closes or keeps).
         * Return 0 to go on, a negative errno to end the session. */
        int (*datagram)(struct peer *p, const void *buf, ssize_t n, int *fds, unsigned nfds, void *userdata);
        /* The session is over (hang-up, error, process exit, or datagram
         * returned an error). The callee must peer_free() it. */
        void (*gone)(struct peer *p, const char *why, void *userdata);
};

struct peer_entry {
        struct reg_topic *topic;
        uint32_t role; /* PROTO_ROLE_* */
        uint32_t index;
};

struct peer {
        struct peer *prev, *next; /* the broker's session list */
        struct ev_loop *loop;
        const struct peer_ops *ops;
        void *userdata;
        void *rbuf; /* PROTO_MSG_MAX bytes, shared by all sessions */
        int fd;
        int pidfd; /* -1 when the kernel gave us none */
        ev_io io;
        ev_io pid_io;
        pid_t pid;
        uid_t uid;
        gid_t gid;
        uint8_t id[16];
        char id_str[37];
        bool hello; /* HELLO received: on the broker's session list, else pending */
        double accepted_at; /* ev_tstamp: the HELLO deadline counts from it */
        bool hello_grace;   /* its deadline passed once with a datagram unread */
        struct reg_account *uid_acct;     /* from HELLO on: the uid's quotas */
        struct reg_account *session_acct; /* from HELLO on: this session's */
        struct peer_entry *entries;
        uint32_t nentries, cap;
        uint32_t nprod, nsub; /* of entries[], by role */
        uint64_t serial;      /* from HELLO on: the broker's count of sessions */
        char comm[PROTO_COMM_MAX]; /* /proc/PID/comm at HELLO */
        struct peer_info *info;    /* what it said about itself (INFO), if it did */
};

/* Shown, never used; allocated at the session's first INFO. */
struct peer_info {
        char label[PROTO_LABEL_MAX];
        uint32_t ncounters;
        struct proto_counter counters[PROTO_COUNTERS_MAX];
};

/* Set up a session on an accepted socket: credentials, pidfd, uuid, and
 * watchers (started). On success the session owns fd. rbuf must hold
 * PROTO_MSG_MAX bytes and outlive the session. */
int peer_new(struct ev_loop *loop, int fd, void *rbuf, const struct peer_ops *ops, void *userdata,
             struct peer **ret);
/* End a session: stop watching, evict every entry it holds if evict
 * (as CLOSE does), give back its entries to its uid's account, drop its
 * accounts, close its descriptors. Accepts NULL. */
void peer_free(struct peer *p, bool evict);

/* Send one datagram. Non-blocking: a full socket is -EAGAIN, which the
 * caller treats as a broken client. */
int peer_send(struct peer *p, const void *buf, size_t len, const int *fds, unsigned nfds);

/* Make room to record one more entry: -EMFILE at PEER_ENTRIES_MAX, or
 * -ENOMEM. After it succeeds, peer_hold cannot fail. */
int peer_reserve(struct peer *p);
/* Record an entry (counted in the uid's account too). */
void peer_hold(struct peer *p, struct reg_topic *t, uint32_t role, uint32_t index);
/* Let go of an entry this session holds (reg_release); -ENOENT if it
 * holds no such entry. */
int peer_release(struct peer *p, const uint8_t topic_id[16], uint32_t role, uint32_t index,
                 struct peer_entry *ret_entry);

#endif
