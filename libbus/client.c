/* SPDX-License-Identifier: MIT */
/*
 * client.c: the public API. A connection is a SOCK_SEQPACKET socket to the
 * broker, used only to open and close topics (synchronous request/reply);
 * everything after opening runs on the mapped segments through the ring
 * modules (ring_pub, ring_sub). This file checks the caller's arguments,
 * owns the handles and talks to the broker; it encodes no ring rule.
 *
 * Handles keep the connection alive: after zcbus_disconnect() the socket
 * and the struct live until the last handle is closed, so open topics keep
 * flowing, and they keep flowing after the broker died. Each handle keeps
 * the descriptors of its segments, so that zcbus_reconnect() can hand them
 * to a restarted broker, which re-learns the topic from them (ADOPT).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdwait.h"
#include "futex.h"
#include "macro.h"
#include "proto.h"
#include "ring_pub.h"
#include "ring_sub.h"
#include "seg.h"
#include "sock.h"
#include "wait.h"
#include "zcbus.h"

#define CLIENT_REPLY_TIMEOUT_MS 10000

struct zcbus_pub;
struct zcbus_sub;

/* What a handle hands back to a restarted broker. */
struct held_fds {
        int fd[PROTO_FDS_MAX]; /* the ring, then tables */
        unsigned n;
};

struct zcbus {
        int fd;
        char path[108];             /* the broker's socket, for reconnecting */
        struct zcbus_pub *pubs;     /* open handles, for reconnecting */
        struct zcbus_sub *subs;
        unsigned refs; /* open handles */
        bool closed;   /* zcbus_disconnect() was called */
        uint32_t next_req;
        uint8_t session_id[16];
        char last_error[PROTO_ERRMSG_MAX + 1];
        /* Reply buffer: 8-aligned for the list entries it may hold. */
        uint64_t buf[PROTO_MSG_MAX / 8];
};

struct zcbus_pub {
        zcbus *bus;
        struct zcbus_pub *prev, *next; /* the bus's handles */
        struct fdwait_watch fdw;       /* watched for room (zcbus_pub_fd) */
        struct fdwait_sink sink;
        char topic[ZCBUS_TOPIC_MAX + 1];
        struct held_fds fds;
        struct seg_map map;
        struct ring_pub rp;
        uint32_t index;
        bool loaned;
        uint64_t loan_seq;
        size_t loan_len;
        uint32_t loan_n; /* sequences loaned from loan_seq */
};

struct zcbus_sub {
        zcbus *bus;
        struct zcbus_sub *prev, *next;
        struct fdwait_watch fdw;   /* watched for a descriptor (fdw.rs set) */
        struct fdwait_sink sink;   /* its own descriptor (zcbus_sub_fd) */
        zcbus_waitset *ws;         /* or the wait set it is in */
        char topic[ZCBUS_TOPIC_MAX + 1];
        struct held_fds fds;
        uint32_t max_holds;
        struct seg_map map;
        struct ring_sub rs;
        uint32_t index;
        uint64_t *held;
};

/* Free the connection once the application let go of it and no handle
 * uses it. The socket stays open until then: the broker takes a hang-up
 * as "this peer is gone" and would free the handles' entries. */
static void bus_maybe_free(zcbus *bus) {
        if (!bus || !bus->closed || bus->refs > 0)
                return;
        if (bus->fd >= 0)
                (void)close(bus->fd);
        free(bus);
}

/* A connection still being made: no handle knows it yet. */
static void bus_freep(zcbus **bus) {
        if (!*bus)
                return;
        (*bus)->closed = true;
        bus_maybe_free(*bus);
}

static void bus_unref(zcbus *bus) {
        if (!bus)
                return;
        bus->refs--;
        bus_maybe_free(bus);
}

/* Send a request (with send_n descriptors) and wait for the reply with the
 * same id, CLIENT_REPLY_TIMEOUT_MS in all (stale replies do not extend
 * it). fds (if any) received with it go to fds[0..*nfds). */
static int rpc_fds(zcbus *bus, int len, const int *send_fds, unsigned send_n, struct proto_msg *ret, int *fds,
                   unsigned max_fds, unsigned *nfds) {
        uint32_t id;
        int r;

        if (len < 0)
                return len;
        if (bus->fd < 0)
                return -ENOTCONN;
        id = proto_peek_req_id(bus->buf, (size_t)len);
        r = sock_send(bus->fd, bus->buf, (size_t)len, send_fds, send_n);
        if (r < 0)
                return r == -EAGAIN ? -ENOBUFS : r;
        uint64_t deadline = now_ns() + (uint64_t)CLIENT_REPLY_TIMEOUT_MS * 1000000u;
        for (;;) {
                struct pollfd pfd = {.fd = bus->fd, .events = POLLIN};
                unsigned got = 0;
                uint64_t now = now_ns();
                ssize_t n;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&pfd, 1, (int)((deadline - now + 999999u) / 1000000u));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negerrno();
                if (r == 0)
                        return -ETIMEDOUT;
                n = sock_recv(bus->fd, bus->buf, sizeof(bus->buf), fds, max_fds, &got);
                if (n == -EAGAIN)
                        continue;
                if (n == 0)
                        return -ECONNRESET;
                if (n < 0)
                        return (int)n;
                r = proto_decode(bus->buf, (size_t)n, ret);
                if (r < 0 || ret->hdr.req_id != id) {
                        for (unsigned i = 0; i < got; i++)
                                (void)close(fds[i]);
                        if (r < 0)
                                return r;
                        continue; /* a stale reply: not ours */
                }
                if (nfds)
                        *nfds = got;
                else
                        for (unsigned i = 0; i < got; i++)
                                (void)close(fds[i]);
                if (ret->hdr.type == PROTO_ERROR) {
                        snprintf(bus->last_error, sizeof(bus->last_error), "%s", ret->errmsg);
                        for (unsigned i = 0; i < got && nfds; i++)
                                (void)close(fds[i]);
                        if (nfds)
                                *nfds = 0;
                        return ret->u.error.err;
                }
                bus->last_error[0] = 0;
                return 0;
        }
}

static int rpc(zcbus *bus, int len, struct proto_msg *ret, int *fds, unsigned max_fds, unsigned *nfds) {
        return rpc_fds(bus, len, NULL, 0, ret, fds, max_fds, nfds);
}

static uint32_t next_id(zcbus *bus) {
        return ++bus->next_req;
}

_public_ int zcbus_default_socket(char *buf, size_t len) {
        const char *env = getenv("ZCBUS_SOCKET");
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        int n;

        if (!buf || len == 0)
                return -EINVAL;
        if (env && *env)
                n = snprintf(buf, len, "%s", env);
        else if (xdg && *xdg == '/')
                n = snprintf(buf, len, "%s/zcbus.sock", xdg);
        else if (geteuid() == 0)
                n = snprintf(buf, len, "/run/zcbus.sock");
        else
                n = snprintf(buf, len, "/tmp/zcbus-%u.sock", (unsigned)geteuid());
        if (n < 0 || (size_t)n >= len)
                return -ENAMETOOLONG;
        return 0;
}

/* Connect to bus->path and say HELLO: a new session. */
static int bus_hello(zcbus *bus) {
        struct proto_msg m;
        int r;

        r = sock_connect(bus->path, &bus->fd);
        if (r < 0)
                return r;
        r = rpc(bus, proto_enc_hello(bus->buf, sizeof(bus->buf), next_id(bus)), &m, NULL, 0, NULL);
        if (r == 0 && m.hdr.type != PROTO_HELLO_REPLY)
                r = -EPROTO;
        if (r < 0)
                return r;
        memcpy(bus->session_id, m.u.hello_reply.session_id, 16);
        return 0;
}

_public_ int zcbus_connect(const char *socket_path, zcbus **out) {
        _cleanup_(bus_freep) zcbus *bus = NULL;
        int r;

        if (!out)
                return -EINVAL;
        bus = calloc(1, sizeof(*bus));
        if (!bus)
                return -ENOMEM;
        bus->fd = -1;
        if (!socket_path) {
                r = zcbus_default_socket(bus->path, sizeof(bus->path));
                if (r < 0)
                        return r;
        } else if ((size_t)snprintf(bus->path, sizeof(bus->path), "%s", socket_path) >= sizeof(bus->path)) {
                return -ENAMETOOLONG;
        }
        r = bus_hello(bus);
        if (r < 0)
                return r;
        *out = TAKE_PTR(bus);
        return 0;
}

/* Hand one entry back to the broker (ADOPT), with its descriptors. */
static int adopt(zcbus *bus, const struct seg_map *map, uint32_t role, uint32_t index, uint32_t table,
                 uint32_t max_holds, const char *topic, const struct held_fds *fds) {
        struct proto_adopt a = {.role = role, .index = index, .table = table, .ntables = fds->n - 1,
                                .max_holds = max_holds};
        struct proto_msg m;

        memcpy(a.topic_id, map->g.topic_id, 16);
        memcpy(a.segment_id, map->g.segment_id, 16);
        return rpc_fds(bus, proto_enc_adopt(bus->buf, sizeof(bus->buf), next_id(bus), &a, topic), fds->fd, fds->n,
                       &m, NULL, 0, NULL);
}

/* Is the connection to the broker still up? (A broker that died hung up.) */
static bool bus_connected(const zcbus *bus) {
        struct pollfd p = {.fd = bus->fd, .events = POLLIN | POLLRDHUP};

        if (bus->fd < 0)
                return false;
        if (poll(&p, 1, 0) <= 0)
                return true;
        return !(p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL));
}

_public_ int zcbus_reconnect(zcbus *bus) {
        int r, first = 0;

        if (!bus || bus->closed)
                return -EINVAL;
        /* Hanging up on a live broker would end the session, and it would
         * free every entry the handles are using. */
        if (bus_connected(bus))
                return -EISCONN;
        closep(&bus->fd);
        bus->fd = -1; /* closep leaves the number */
        r = bus_hello(bus);
        if (r < 0) {
                closep(&bus->fd);
                bus->fd = -1;
                return r;
        }
        /* Every open handle goes back to the broker, which re-learns its
         * topic from the first (docs/design.md, Failure model). One that
         * is refused keeps working on the data path; the first refusal is
         * returned, its reason in zcbus_last_error(). */
        char why[sizeof(bus->last_error)] = "";
        for (zcbus_pub *p = bus->pubs; p; p = p->next) {
                r = adopt(bus, &p->map, PROTO_ROLE_PUB, p->index, 0, 0, p->topic, &p->fds);
                if (r < 0 && first == 0) {
                        first = r;
                        snprintf(why, sizeof(why), "%s", bus->last_error);
                }
        }
        for (zcbus_sub *s = bus->subs; s; s = s->next) {
                r = adopt(bus, &s->map, PROTO_ROLE_SUB, s->index, s->rs.table, s->max_holds, s->topic, &s->fds);
                if (r < 0 && first == 0) {
                        first = r;
                        snprintf(why, sizeof(why), "%s", bus->last_error);
                }
        }
        snprintf(bus->last_error, sizeof(bus->last_error), "%s", why);
        return first;
}

_public_ void zcbus_disconnect(zcbus *bus) {
        if (!bus)
                return;
        bus->closed = true;
        bus_maybe_free(bus);
}

_public_ int zcbus_session_id(zcbus *bus, uint8_t id[16]) {
        if (!bus || !id)
                return -EINVAL;
        memcpy(id, bus->session_id, 16);
        return 0;
}

_public_ const char *zcbus_last_error(zcbus *bus) {
        return bus ? bus->last_error : "";
}

/* Copy a caller's size-prefixed options struct into a zeroed full-size
 * one: fields the caller's version lacks read as 0 ("default"). */
static int copy_opts(void *dst, size_t dst_size, const void *src) {
        uint32_t size;

        memset(dst, 0, dst_size);
        if (!src)
                return 0;
        memcpy(&size, src, sizeof(size));
        if (size < sizeof(uint32_t))
                return -EINVAL;
        memcpy(dst, src, MIN((size_t)size, dst_size));
        return 0;
}

static int check_topic(const char *topic) {
        size_t n;

        if (!topic)
                return -EINVAL;
        n = strnlen(topic, ZCBUS_TOPIC_MAX + 1);
        if (n > ZCBUS_TOPIC_MAX)
                return -ENAMETOOLONG;
        return proto_name_valid(topic, n) ? 0 : -EINVAL;
}

static void send_close(zcbus *bus, const uint8_t topic_id[16], uint32_t role, uint32_t index) {
        struct proto_close c = {.role = role, .index = index};
        struct proto_msg m;

        if (bus->fd < 0)
                return;
        memcpy(c.topic_id, topic_id, 16);
        (void)rpc(bus, proto_enc_close(bus->buf, sizeof(bus->buf), next_id(bus), &c), &m, NULL, 0, NULL);
}

/* What the broker said of an entry, beyond its mapping. */
struct open_result {
        uint32_t index;
        uint32_t table; /* subscriber */
        uint64_t start; /* subscriber */
        struct held_fds fds;
};

static void held_fds_close(struct held_fds *h) {
        for (unsigned i = 0; i < h->n; i++)
                closep(&h->fd[i]);
        h->n = 0;
}

/* Ask the broker for a topic entry and map what it sends: the ring, then
 * a subscriber's own table or a producer's every one. */
static int open_topic(zcbus *bus, const char *topic, uint32_t role, const zcbus_topic_opts *o, uint32_t history,
                      uint32_t max_holds, struct seg_map *ret_map, struct open_result *ret) {
        struct proto_open req = {.role = role, .history = history, .max_holds = max_holds};
        struct proto_msg m;
        int fds[PROTO_FDS_MAX];
        unsigned nfds = 0;
        int r;

        if (bus->fd < 0)
                return -ENOTCONN;
        if (o) {
                req.slot_count = o->slot_count;
                req.slot_size = o->slot_size;
                req.policy = o->policy;
        }
        r = rpc(bus, proto_enc_open(bus->buf, sizeof(bus->buf), next_id(bus), &req, topic), &m, fds, PROTO_FDS_MAX,
                &nfds);
        if (r < 0)
                return r;
        const struct proto_open_reply *rep = &m.u.open_reply;
        if (m.hdr.type != PROTO_OPEN_REPLY || nfds < 2 || nfds != 1 + rep->ntables ||
            (role == PROTO_ROLE_SUB && nfds != 2)) {
                r = -EBADMSG;
        } else {
                /* A producer's tables come in index order; a subscriber's
                 * one is the reply's. */
                r = seg_map_fds(fds[0], fds + 1, role == PROTO_ROLE_PUB ? 0 : rep->table, nfds - 1,
                                role == PROTO_ROLE_PUB, ret_map);
                if (r == 0 && (ret_map->g.slot_count != rep->slot_count || ret_map->g.slot_size != rep->slot_size ||
                               ret_map->g.policy != rep->policy ||
                               memcmp(ret_map->g.topic_id, rep->topic_id, 16) != 0 ||
                               rep->index >= (role == PROTO_ROLE_PUB ? ret_map->g.max_producers
                                                                     : ret_map->g.max_subs) ||
                               (role == PROTO_ROLE_PUB ? nfds - 1 != ret_map->g.sub_tables
                                                       : !seg_has_table(ret_map, rep->table)))) {
                        seg_unmap(ret_map);
                        r = -EBADMSG;
                }
        }
        if (r < 0) {
                for (unsigned i = 0; i < nfds; i++)
                        (void)close(fds[i]);
                if (m.hdr.type == PROTO_OPEN_REPLY)
                        send_close(bus, rep->topic_id, role, rep->index);
                return r;
        }
        /* Mapped: the descriptors stay, for a restarted broker. */
        *ret = (struct open_result){.index = rep->index, .table = rep->table, .start = rep->start,
                                    .fds.n = nfds};
        memcpy(ret->fds.fd, fds, nfds * sizeof(fds[0]));
        return 0;
}

/* What every open checks first: the handles, the name, the caller's
 * options copied into a full-size struct. */
static int open_args(const zcbus *bus, const char *topic, const void *out, void *opts_dst, size_t size,
                     const void *opts) {
        int r;

        if (!bus || !out)
                return -EINVAL;
        r = check_topic(topic);
        if (r < 0)
                return r;
        return copy_opts(opts_dst, size, opts);
}

/* Handles under construction free themselves on every error path. */
static void pub_free(zcbus_pub *p) {
        if (!p)
                return;
        seg_unmap(&p->map);
        held_fds_close(&p->fds);
        free(p);
}

static void pub_freep(zcbus_pub **p) {
        pub_free(*p);
}

static void sub_free(zcbus_sub *s) {
        if (!s)
                return;
        seg_unmap(&s->map);
        held_fds_close(&s->fds);
        free(s->held);
        free(s);
}

static void sub_freep(zcbus_sub **s) {
        sub_free(*s);
}

_public_ int zcbus_pub_open(zcbus *bus, const char *topic, const zcbus_topic_opts *opts, zcbus_pub **out) {
        _cleanup_(pub_freep) zcbus_pub *p = NULL;
        zcbus_topic_opts o;
        struct wait_how w;
        int r;

        r = open_args(bus, topic, out, &o, sizeof(o), opts);
        if (r < 0)
                return r;
        if ((o.slot_count && !is_pow2_u32(o.slot_count)) || o.policy > ZCBUS_POLICY_LATEST ||
            o.wait_mode > ZCBUS_WAIT_FUTEX || (o.flags & ~(uint32_t)ZCBUS_PUB_TIMESTAMP))
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->sink.efd = -1;
        struct open_result res;
        r = open_topic(bus, topic, PROTO_ROLE_PUB, &o, 0, 0, &p->map, &res);
        if (r < 0)
                return r;
        p->index = res.index;
        p->fds = res.fds;
        snprintf(p->topic, sizeof(p->topic), "%s", topic);
        wait_how_init(&w, o.wait_mode, o.spin_us);
        ring_pub_init(&p->rp, &p->map, p->index, w);
        p->rp.stamp = o.flags & ZCBUS_PUB_TIMESTAMP;
        p->bus = bus;
        bus->refs++;
        LIST_PREPEND(bus->pubs, p);
        *out = TAKE_PTR(p);
        return 0;
}

/* No room (r): a producer watched for room waits again (its descriptor
 * drained). */
static void pub_no_room(zcbus_pub *pub, int r) {
        if (_unlikely_(r == -EAGAIN) && pub->fdw.pm) {
                fdwait_drain(&pub->sink);
                fdwait_rearm(&pub->fdw, 0);
        }
}

static _always_inline_ int pub_loan(zcbus_pub *pub, size_t len, void **buf, int timeout_ms) {
        uint64_t seq;
        int r;

        if (!pub || !buf)
                return -EINVAL;
        if (len > pub->map.g.slot_size)
                return -EMSGSIZE;
        if (pub->loaned)
                return -EBUSY;
        r = ring_pub_claim(&pub->rp, 1, timeout_ms, &seq);
        if (r < 0) {
                pub_no_room(pub, r);
                return r;
        }
        pub->loaned = true;
        pub->loan_seq = seq;
        pub->loan_len = len;
        pub->loan_n = 1;
        *buf = ring_pub_payload(&pub->rp, seq);
        return 0;
}

_public_ int zcbus_pub_loan_timeout(zcbus_pub *pub, size_t len, void **buf, int timeout_ms) {
        return pub_loan(pub, len, buf, timeout_ms);
}

_public_ int zcbus_pub_loan(zcbus_pub *pub, size_t len, void **buf) {
        return pub_loan(pub, len, buf, -1);
}

static _always_inline_ int pub_commit(zcbus_pub *pub, size_t len) {
        if (!pub)
                return -EINVAL;
        if (!pub->loaned)
                return -EINVAL;
        if (len > pub->loan_len)
                return -EMSGSIZE;
        ring_pub_publish(&pub->rp, pub->loan_seq, (uint32_t)len, ring_pub_now(&pub->rp));
        /* The rest of a batch loan committed as one message: written off. */
        for (uint32_t i = 1; _unlikely_(i < pub->loan_n); i++)
                ring_pub_write_off(&pub->rp, pub->loan_seq + i);
        pub->loaned = false;
        ring_pub_notify(&pub->rp);
        return 0;
}

_public_ int zcbus_pub_commit(zcbus_pub *pub, size_t len) {
        return pub_commit(pub, len);
}

_public_ int zcbus_pub_loan_batch(zcbus_pub *pub, unsigned n, void **bufs, int timeout_ms) {
        uint64_t seq;
        int r;

        if (!pub || !bufs || n == 0)
                return -EINVAL;
        if (pub->loaned)
                return -EBUSY;
        /* One claim covers consecutive sequences under RELIABLE only: a
         * LATEST producer steps over held slots one claim at a time. */
        n = pub->rp.reliable ? MIN(n, pub->map.g.slot_count) : 1;
        r = ring_pub_claim(&pub->rp, n, timeout_ms, &seq);
        if (r < 0) {
                pub_no_room(pub, r);
                return r;
        }
        for (unsigned i = 0; i < n; i++)
                bufs[i] = ring_pub_payload(&pub->rp, seq + i);
        pub->loaned = true;
        pub->loan_seq = seq;
        pub->loan_len = pub->map.g.slot_size;
        pub->loan_n = n;
        return (int)n;
}

_public_ int zcbus_pub_commit_batch(zcbus_pub *pub, const size_t *lens, unsigned k) {
        uint64_t ts;

        if (!pub || !pub->loaned || (k && !lens) || k > pub->loan_n)
                return -EINVAL;
        for (unsigned i = 0; i < k; i++)
                if (lens[i] > pub->loan_len)
                        return -EMSGSIZE;
        ts = ring_pub_now(&pub->rp);
        for (unsigned i = 0; i < k; i++)
                ring_pub_publish(&pub->rp, pub->loan_seq + i, (uint32_t)lens[i], ts);
        for (unsigned i = k; i < pub->loan_n; i++)
                ring_pub_write_off(&pub->rp, pub->loan_seq + i);
        pub->loaned = false;
        ring_pub_notify(&pub->rp);
        return 0;
}

_public_ int zcbus_pub_send(zcbus_pub *pub, const void *data, size_t len, int timeout_ms) {
        void *buf;
        int r;

        if (!pub || (len && !data))
                return -EINVAL;
        r = pub_loan(pub, len, &buf, timeout_ms);
        if (r < 0)
                return r;
        if (len)
                memcpy(buf, data, len);
        return pub_commit(pub, len);
}

_public_ int zcbus_pub_send_batch(zcbus_pub *pub, const zcbus_iov *msgs, unsigned n, int timeout_ms) {
        if (!pub || !msgs || n == 0)
                return -EINVAL;
        if (pub->loaned)
                return -EBUSY;
        n = MIN(n, pub->map.g.slot_count);
        for (unsigned i = 0; i < n; i++) {
                if (msgs[i].len > pub->map.g.slot_size)
                        return -EMSGSIZE;
                if (msgs[i].len && !msgs[i].data)
                        return -EINVAL;
        }
        int r = ring_pub_send_iov(&pub->rp, msgs, n, timeout_ms);
        pub_no_room(pub, r);
        return r;
}

/* Copy a full-size result into the caller's size-prefixed struct: as
 * much as its size says, which it keeps. */
static void copy_out_sized(void *dst, const void *full, size_t full_size) {
        uint32_t size;

        memcpy(&size, dst, sizeof(size));
        memcpy(dst, full, MIN((size_t)size, full_size));
        memcpy(dst, &size, sizeof(size));
}

/* Is p a caller's size-prefixed struct with at least its size field? */
static bool sized_ok(const void *p) {
        uint32_t size;

        if (!p)
                return false;
        memcpy(&size, p, sizeof(size));
        return size >= sizeof(uint32_t);
}

static int fill_info(const struct seg_map *m, zcbus_topic_info *info) {
        if (!sized_ok(info))
                return -EINVAL;
        zcbus_topic_info full = {
                .size = sizeof(full),
                .slot_count = m->g.slot_count,
                .slot_size = m->g.slot_size,
                .policy = m->g.policy,
        };
        memcpy(full.topic_id, m->g.topic_id, 16);
        memcpy(full.segment_id, m->g.segment_id, 16);
        copy_out_sized(info, &full, sizeof(full));
        return 0;
}

_public_ int zcbus_pub_info(zcbus_pub *pub, zcbus_topic_info *info) {
        return pub ? fill_info(&pub->map, info) : -EINVAL;
}

_public_ int zcbus_pub_stats_get(zcbus_pub *pub, zcbus_pub_stats *stats) {
        if (!pub || !sized_ok(stats))
                return -EINVAL;
        struct seg_prod *e = pub->rp.me;
        zcbus_pub_stats full = {
                .size = sizeof(full),
                .published = load_rlx(&e->published),
                .waits = load_rlx(&e->waits),
                .wakeups = load_rlx(&e->wakeups),
                .topic_head = ring_head(&pub->map) - pub->map.g.start_seq,
                .skipped = load_rlx(&e->skipped),
        };
        copy_out_sized(stats, &full, sizeof(full));
        return 0;
}

_public_ void zcbus_pub_close(zcbus_pub *pub) {
        if (!pub)
                return;
        if (pub->loaned)
                pub->loaned = false; /* the claim is written off by deinit */
        fdwait_remove(&pub->fdw);
        fdwait_sink_close(&pub->sink);
        ring_pub_deinit(&pub->rp);
        send_close(pub->bus, pub->map.g.topic_id, PROTO_ROLE_PUB, pub->index);
        LIST_REMOVE(pub->bus->pubs, pub);
        bus_unref(pub->bus);
        pub_free(pub);
}

_public_ int zcbus_sub_open(zcbus *bus, const char *topic, const zcbus_sub_opts *opts, zcbus_sub **out) {
        _cleanup_(sub_freep) zcbus_sub *s = NULL;
        zcbus_sub_opts o;
        struct wait_how w;
        int r;

        r = open_args(bus, topic, out, &o, sizeof(o), opts);
        if (r < 0)
                return r;
        if (o.wait_mode > ZCBUS_WAIT_FUTEX || o.max_holds > RING_MAX_HOLDS_LIMIT ||
            (o.slot_count && !is_pow2_u32(o.slot_count)) || o.policy > ZCBUS_POLICY_LATEST)
                return -EINVAL;
        zcbus_topic_opts topic_opts = {.size = sizeof(topic_opts), .slot_count = o.slot_count,
                                       .slot_size = o.slot_size, .policy = o.policy};
        if (o.max_holds == 0)
                o.max_holds = RING_MAX_HOLDS_DEFAULT;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->sink.efd = -1;
        s->held = calloc(o.max_holds, sizeof(uint64_t));
        if (!s->held)
                return -ENOMEM;
        struct open_result res;
        r = open_topic(bus, topic, PROTO_ROLE_SUB, &topic_opts, o.history, o.max_holds, &s->map, &res);
        if (r < 0)
                return r;
        s->index = res.index;
        s->fds = res.fds;
        s->max_holds = o.max_holds;
        snprintf(s->topic, sizeof(s->topic), "%s", topic);
        wait_how_init(&w, o.wait_mode, o.spin_us);
        r = ring_sub_init(&s->rs, &s->map, s->index, res.table, res.start, o.max_holds, s->held, w);
        if (r < 0) {
                send_close(bus, s->map.g.topic_id, PROTO_ROLE_SUB, s->index);
                return r;
        }
        s->bus = bus;
        bus->refs++;
        LIST_PREPEND(bus->subs, s);
        *out = TAKE_PTR(s);
        return 0;
}

/* Nothing to receive: a watched subscription goes back to waiting (its
 * own descriptor drained first; a wait set drains when all its members
 * are empty). */
static void sub_empty(zcbus_sub *sub) {
        if (!sub->fdw.rs)
                return;
        if (!sub->ws)
                fdwait_drain(&sub->sink);
        fdwait_rearm(&sub->fdw, sub->rs.next);
}

_public_ int zcbus_sub_recv(zcbus_sub *sub, zcbus_msg *msg, int timeout_ms) {
        int r;

        if (!sub || !msg)
                return -EINVAL;
        r = ring_sub_recv(&sub->rs, msg, 1, timeout_ms);
        if (_unlikely_(r == -EAGAIN))
                sub_empty(sub);
        return r < 0 ? r : 0;
}

_public_ int zcbus_sub_recv_batch(zcbus_sub *sub, zcbus_msg *msgs, unsigned n, int timeout_ms) {
        if (!sub || !msgs || n == 0)
                return -EINVAL;
        int r = ring_sub_recv(&sub->rs, msgs, n, timeout_ms);
        if (_unlikely_(r == -EAGAIN))
                sub_empty(sub);
        return r;
}

_public_ int zcbus_sub_release(zcbus_sub *sub, const zcbus_msg *msg) {
        if (!sub || !msg)
                return -EINVAL;
        return ring_sub_release(&sub->rs, &msg->seq, 1);
}

_public_ int zcbus_sub_release_batch(zcbus_sub *sub, const zcbus_msg *msgs, unsigned n) {
        if (!sub || (n && !msgs))
                return -EINVAL;
        if (n == 0)
                return 0;
        return ring_sub_release_strided(&sub->rs, &msgs[0].seq, sizeof(zcbus_msg), n);
}

_public_ int zcbus_sub_info(zcbus_sub *sub, zcbus_topic_info *info) {
        return sub ? fill_info(&sub->map, info) : -EINVAL;
}

_public_ int zcbus_sub_stats_get(zcbus_sub *sub, zcbus_sub_stats *stats) {
        if (!sub || !sized_ok(stats))
                return -EINVAL;
        zcbus_sub_stats full = {
                .size = sizeof(full),
                .held = sub->rs.nheld,
                .received = sub->rs.received,
                .lost = sub->rs.lost + sub->rs.pending_lost,
                .sleeps = sub->rs.sleeps,
                .next_seq = sub->rs.next,
                .skipped = sub->rs.skipped,
        };
        copy_out_sized(stats, &full, sizeof(full));
        return 0;
}

_public_ void zcbus_sub_close(zcbus_sub *sub) {
        if (!sub)
                return;
        if (sub->ws)
                (void)zcbus_waitset_remove(sub->ws, sub);
        fdwait_remove(&sub->fdw);
        fdwait_sink_close(&sub->sink);
        ring_sub_deinit(&sub->rs);
        send_close(sub->bus, sub->map.g.topic_id, PROTO_ROLE_SUB, sub->index);
        LIST_REMOVE(sub->bus->subs, sub);
        bus_unref(sub->bus);
        sub_free(sub);
}

static bool sub_ready_at(void *ctx, unsigned i) {
        return ring_sub_ready(&((zcbus_sub *const *)ctx)[i]->rs);
}

_public_ int zcbus_wait_any(zcbus_sub *const *subs, unsigned n, int timeout_ms) {
        struct wait_words ww[WAIT_ANY_MAX];

        if (!subs || n == 0 || n > WAIT_ANY_MAX)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                if (!subs[i])
                        return -EINVAL;
                ww[i] = ring_sub_words(&subs[i]->rs);
        }
        return wait_any(ww, n, timeout_ms, sub_ready_at, (void *)subs);
}

_public_ int zcbus_list_topics(zcbus *bus, unsigned start, zcbus_topic_entry *entries, unsigned max,
                               unsigned *total) {
        unsigned filled = 0;

        if (!bus || (max && !entries))
                return -EINVAL;
        for (;;) {
                struct proto_msg m;
                uint32_t want = (uint32_t)MIN((unsigned)PROTO_LIST_MAX, max - filled);
                int r;

                if (want == 0)
                        want = 1; /* still ask, for the total */
                r = rpc(bus, proto_enc_list(bus->buf, sizeof(bus->buf), next_id(bus), start + filled, want), &m,
                        NULL, 0, NULL);
                if (r < 0)
                        return r;
                if (m.hdr.type != PROTO_LIST_REPLY)
                        return -EBADMSG;
                if (total)
                        *total = m.u.list_reply.total;
                uint32_t c = MIN(m.u.list_reply.count, (uint32_t)(max - filled));
                for (uint32_t i = 0; i < c; i++) {
                        const struct proto_list_entry *e = &m.entries[i];
                        zcbus_topic_entry *d = &entries[filled + i];
                        memset(d, 0, sizeof(*d));
                        memcpy(d->name, e->name, sizeof(d->name));
                        d->name[ZCBUS_TOPIC_MAX] = 0;
                        memcpy(d->topic_id, e->topic_id, 16);
                        d->slot_count = e->slot_count;
                        d->slot_size = e->slot_size;
                        d->policy = e->policy;
                        d->producers = e->producers;
                        d->subscribers = e->subscribers;
                        d->published = e->published;
                }
                filled += c;
                if (c == 0 || filled >= max || start + filled >= m.u.list_reply.total)
                        return (int)filled;
        }
}

/* --- descriptors for event loops (fdwait.h) ------------------------------ */

_public_ int zcbus_sub_fd(zcbus_sub *sub) {
        int r;

        if (!sub)
                return -EINVAL;
        if (sub->ws)
                return -EBUSY;
        if (sub->fdw.rs)
                return sub->sink.efd;
        r = fdwait_sink_init(&sub->sink);
        if (r == 0)
                r = fdwait_add(&sub->fdw, &sub->rs, &sub->sink);
        if (r < 0) {
                fdwait_sink_close(&sub->sink);
                return r;
        }
        return sub->sink.efd;
}

_public_ int zcbus_pub_fd(zcbus_pub *pub) {
        int r;

        if (!pub)
                return -EINVAL;
        if (pub->fdw.pm)
                return pub->sink.efd;
        r = fdwait_sink_init(&pub->sink);
        if (r == 0)
                r = fdwait_add_room(&pub->fdw, &pub->map, &pub->sink);
        if (r < 0) {
                fdwait_sink_close(&pub->sink);
                return r;
        }
        return pub->sink.efd;
}

struct zcbus_waitset {
        struct fdwait_sink sink;
        zcbus_sub **subs;
        unsigned n, cap, cursor;
};

_public_ int zcbus_waitset_new(zcbus_waitset **out) {
        zcbus_waitset *ws;
        int r;

        if (!out)
                return -EINVAL;
        ws = calloc(1, sizeof(*ws));
        if (!ws)
                return -ENOMEM;
        r = fdwait_sink_init(&ws->sink);
        if (r < 0) {
                free(ws);
                return r;
        }
        *out = ws;
        return 0;
}

_public_ int zcbus_waitset_add(zcbus_waitset *ws, zcbus_sub *sub) {
        int r;

        if (!ws || !sub)
                return -EINVAL;
        if (sub->ws || sub->fdw.rs)
                return -EBUSY;
        if (ws->n == ws->cap) {
                unsigned cap = ws->cap ? 2 * ws->cap : 8;
                zcbus_sub **s = realloc(ws->subs, cap * sizeof(*s));
                if (!s)
                        return -ENOMEM;
                ws->subs = s;
                ws->cap = cap;
        }
        r = fdwait_add(&sub->fdw, &sub->rs, &ws->sink);
        if (r < 0)
                return r;
        sub->ws = ws;
        ws->subs[ws->n++] = sub;
        return 0;
}

_public_ int zcbus_waitset_remove(zcbus_waitset *ws, zcbus_sub *sub) {
        if (!ws || !sub || sub->ws != ws)
                return -EINVAL;
        for (unsigned i = 0; i < ws->n; i++)
                if (ws->subs[i] == sub) {
                        ws->subs[i] = ws->subs[--ws->n];
                        break;
                }
        fdwait_remove(&sub->fdw);
        sub->ws = NULL;
        return 0;
}

_public_ int zcbus_waitset_fd(zcbus_waitset *ws) {
        return ws ? ws->sink.efd : -EINVAL;
}

_public_ int zcbus_waitset_next(zcbus_waitset *ws, zcbus_sub **out) {
        if (!ws || !out)
                return -EINVAL;
        /* Round robin from where the last call stopped, so that a busy
         * topic does not starve the others. */
        for (unsigned k = 0; k < ws->n; k++) {
                unsigned i = (ws->cursor + k) % ws->n;
                if (ring_sub_ready(&ws->subs[i]->rs)) {
                        ws->cursor = i + 1;
                        *out = ws->subs[i];
                        return 0;
                }
        }
        /* All empty: drain, then every member waits again (and signals
         * the descriptor at once if a message came in meanwhile). */
        fdwait_drain(&ws->sink);
        for (unsigned i = 0; i < ws->n; i++)
                fdwait_rearm(&ws->subs[i]->fdw, ws->subs[i]->rs.next);
        return -EAGAIN;
}

_public_ void zcbus_waitset_free(zcbus_waitset *ws) {
        if (!ws)
                return;
        while (ws->n)
                (void)zcbus_waitset_remove(ws, ws->subs[0]);
        fdwait_sink_close(&ws->sink);
        free(ws->subs);
        free(ws);
}

static void stat_entry_copy(zcbus_stat_entry *d, const struct proto_stat_entry *e) {
        memset(d, 0, sizeof(*d));
        d->role = e->role;
        d->index = e->index;
        d->state = e->state;
        d->flags = e->flags;
        d->pid = e->pid;
        d->uid = e->uid;
        d->table = e->table;
        d->held = e->held;
        memcpy(d->session_id, e->session_id, 16);
        memcpy(d->comm, e->comm, sizeof(d->comm));
        d->comm[ZCBUS_COMM_MAX - 1] = 0;
        d->next = e->next;
        d->floor = e->floor;
        d->lag = e->lag;
        d->count = e->count;
        d->lost = e->lost;
        d->sleeps = e->sleeps;
        d->wakeups = e->wakeups;
        d->skipped = e->skipped;
}

_public_ int zcbus_topic_stat(zcbus *bus, const char *topic, zcbus_topic_stats *stat, unsigned start,
                              zcbus_stat_entry *entries, unsigned max) {
        zcbus_topic_stats full = {.size = sizeof(full)};
        unsigned filled = 0;
        int r;

        if (!bus || !sized_ok(stat) || (max && !entries))
                return -EINVAL;
        r = check_topic(topic);
        if (r < 0)
                return r;
        for (;;) {
                struct proto_msg m;
                uint32_t want = (uint32_t)MIN((unsigned)PROTO_STAT_MAX, max - filled);

                if (want == 0)
                        want = 1; /* still ask, for the topic */
                r = rpc(bus, proto_enc_stat(bus->buf, sizeof(bus->buf), next_id(bus), start + filled, want, topic),
                        &m, NULL, 0, NULL);
                if (r < 0)
                        return r;
                if (m.hdr.type != PROTO_STAT_REPLY)
                        return -EBADMSG;
                const struct proto_stat_reply *s = &m.u.stat_reply;
                /* A topic deleted and made anew between pages is another
                 * topic: what came so far is all of the first. */
                if (filled && memcmp(full.topic_id, s->topic_id, 16) != 0)
                        break;
                if (filled == 0) {
                        full.policy = s->policy;
                        full.slot_count = s->slot_count;
                        full.slot_size = s->slot_size;
                        full.flags = s->flags;
                        full.producers = s->producers;
                        full.subscribers = s->subscribers;
                        full.max_producers = s->max_producers;
                        full.max_subscribers = s->max_subscribers;
                        full.sub_tables = s->sub_tables;
                        full.stall_ms = s->stall_ms;
                        full.bytes = s->bytes;
                        full.head = s->head;
                        /* head lives in producer-writable memory. */
                        full.published = s->head >= s->start_seq ? s->head - s->start_seq : 0;
                        full.stalled = s->stalled;
                        full.over = s->over;
                        memcpy(full.topic_id, s->topic_id, 16);
                        memcpy(full.segment_id, s->segment_id, 16);
                }
                full.entries = s->total;
                uint32_t c = MIN(s->count, (uint32_t)(max - filled));
                for (uint32_t i = 0; i < c; i++)
                        stat_entry_copy(&entries[filled + i], &m.stat_entries[i]);
                filled += c;
                if (c == 0 || filled >= max || start + filled >= s->total)
                        break;
        }
        copy_out_sized(stat, &full, sizeof(full));
        return (int)filled;
}

_public_ int zcbus_set_info(zcbus *bus, const char *label, const zcbus_counter *counters, unsigned n) {
        struct proto_counter c[PROTO_COUNTERS_MAX];
        struct proto_msg m;
        int r;

        if (!bus || n > PROTO_COUNTERS_MAX || (n && !counters))
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                size_t k = strnlen(counters[i].name, sizeof(counters[i].name));
                memset(c[i].name, 0, sizeof(c[i].name));
                memcpy(c[i].name, counters[i].name, k);
                c[i].value = counters[i].value;
        }
        r = rpc(bus, proto_enc_info(bus->buf, sizeof(bus->buf), next_id(bus), label, c, n), &m, NULL, 0, NULL);
        if (r < 0)
                return r;
        return m.hdr.type == PROTO_OK ? 0 : -EBADMSG;
}

_public_ int zcbus_list_peers(zcbus *bus, zcbus_peer *peers, unsigned max, unsigned *total) {
        unsigned filled = 0;
        uint64_t after = 0;

        if (!bus || (max && !peers))
                return -EINVAL;
        for (;;) {
                struct proto_msg m;
                uint32_t want = (uint32_t)MIN((unsigned)PROTO_PEERS_MAX, max - filled);
                int r;

                if (want == 0)
                        want = 1; /* still ask, for the total */
                r = rpc(bus, proto_enc_peers(bus->buf, sizeof(bus->buf), next_id(bus), after, want), &m, NULL, 0,
                        NULL);
                if (r < 0)
                        return r;
                if (m.hdr.type != PROTO_PEERS_REPLY)
                        return -EBADMSG;
                if (total)
                        *total = m.u.peers_reply.total;
                uint32_t c = MIN(m.u.peers_reply.count, (uint32_t)(max - filled));
                /* Serials rise within a page (the decoder checked); across
                 * pages too, or the broker would have us go round. */
                if (c && m.peer_entries[0].serial <= after)
                        return -EBADMSG;
                for (uint32_t i = 0; i < c; i++) {
                        const struct proto_peer_entry *e = &m.peer_entries[i];
                        zcbus_peer *d = &peers[filled + i];
                        memset(d, 0, sizeof(*d));
                        memcpy(d->session_id, e->session_id, 16);
                        memcpy(d->comm, e->comm, sizeof(d->comm));
                        memcpy(d->label, e->label, sizeof(d->label));
                        d->pid = e->pid;
                        d->uid = e->uid;
                        d->gid = e->gid;
                        d->producers = e->producers;
                        d->subscribers = e->subscribers;
                        d->ncounters = e->ncounters;
                        d->serial = e->serial;
                        after = e->serial;
                        for (uint32_t k = 0; k < e->ncounters; k++) {
                                memcpy(d->counters[k].name, e->counters[k].name, sizeof(d->counters[k].name));
                                d->counters[k].value = e->counters[k].value;
                        }
                }
                filled += c;
                /* A short page is the end (sessions that came since are
                 * for the next call). */
                if (c < want || filled >= max)
                        return (int)filled;
        }
}

_public_ int zcbus_topic_remove(zcbus *bus, const char *topic) {
        struct proto_msg m;
        int r;

        if (!bus)
                return -EINVAL;
        r = check_topic(topic);
        if (r < 0)
                return r;
        r = rpc(bus, proto_enc_topic_rm(bus->buf, sizeof(bus->buf), next_id(bus), topic), &m, NULL, 0, NULL);
        if (r < 0)
                return r;
        return m.hdr.type == PROTO_OK ? 0 : -EBADMSG;
}

_Static_assert(ZCBUS_LABEL_MAX == PROTO_LABEL_MAX && ZCBUS_COUNTERS_MAX == PROTO_COUNTERS_MAX &&
                       ZCBUS_COUNTER_NAME_MAX == PROTO_COUNTER_NAME_MAX && ZCBUS_COMM_MAX == PROTO_COMM_MAX,
               "the public limits are the protocol's");
