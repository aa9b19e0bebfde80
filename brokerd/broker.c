/* SPDX-License-Identifier: MIT */
/*
 * broker.c: the control plane of zcbusd. It owns the listening socket and
 * its file, the list of sessions, and the meaning of every request: it
 * decodes what a session received, asks the registry (reg.c) for topics
 * and entries, records in the session (peer.c) what it now holds, and
 * replies.
 *
 * Everything runs on one libev loop in one thread, so no state is shared
 * between threads and the receive/send buffers can be shared by all
 * sessions. A connection is pending until it says HELLO: pending ones
 * live in their own bounded pool (max_unauthenticated, oldest dropped
 * first) with a deadline (hello_timeout_ms), so silent connections can
 * neither lock real clients out of max_sessions nor stay for ever. At
 * HELLO a connection becomes a session if max_sessions and its uid's
 * uid_max_sessions allow; each OPEN is checked against the session's and
 * the uid's entry quotas here, and against the rules and topic quotas in
 * the registry. A client that breaks the protocol gets one PROTO_ERROR and is
 * disconnected; a client whose request is refused (conflict, limits) gets
 * a PROTO_ERROR and keeps its session. Replies never block: clients wait
 * for them synchronously, so a full socket means a broken client.
 *
 * The socket file is the one name zcbusd leaves on disk. We replace it
 * only when it is a stale socket nobody answers on, and remove it at exit
 * only if it is still the one we bound (same device and inode). A socket
 * a service manager passed us (activate.c) is its own: we never touch its
 * file.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "macro.h"
#include "peer.h"
#include "proto.h"
#include "reg.h"

struct broker {
        struct ev_loop *loop;
        const struct conf *conf;
        struct reg *reg;
        int fd;
        ev_io accept_io;
        ev_timer accept_pause;
        ev_timer hello_timer; /* the oldest pending connection's HELLO deadline */
        char path[CONF_SOCKET_MAX];
        dev_t dev;
        ino_t ino;
        bool bound;
        struct peer *peers, *peers_tail; /* sessions (HELLO said), oldest first */
        uint64_t serials;                 /* sessions so far: the last one's serial */
        uint32_t npeers;
        struct peer *pending, *pending_tail; /* connections before HELLO, oldest first */
        uint32_t npending;
        bool full_logged;  /* "max_sessions reached" said once per episode */
        bool pause_logged; /* "out of descriptors" said once per episode */
        bool pending_logged; /* "pre-HELLO pool full" said once per episode */
        broker_changed_fn changed;
        void *changed_data;
        uint32_t told_topics, told_sessions; /* as last told to changed */
        _Alignas(8) uint8_t rbuf[PROTO_MSG_MAX]; /* decoded bodies point into it */
        _Alignas(8) uint8_t sbuf[PROTO_MSG_MAX];
        struct proto_list_entry lbuf[PROTO_LIST_MAX];
        struct proto_stat_entry stbuf[PROTO_STAT_MAX];
        struct proto_peer_entry pebuf[PROTO_PEERS_MAX];
};

static const char *role_name(uint32_t role) {
        return role == PROTO_ROLE_PUB ? "producer" : "subscriber";
}

/* --- replies --------------------------------------------------------------- */

static int send_msg(struct broker *b, struct peer *p, int len, const int *fds, unsigned nfds) {
        int r;

        if (len < 0) /* an encoder refused: our bug, not the client's */
                return len;
        r = peer_send(p, b->sbuf, (size_t)len, fds, nfds);
        if (r == -EAGAIN) {
                log_notice("session %s (pid %d): socket full, the client does not read its replies; disconnecting",
                           p->id_str, (int)p->pid);
                return -ENOBUFS;
        }
        return r;
}

static int send_error(struct broker *b, struct peer *p, uint32_t req_id, int err, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static int send_error(struct broker *b, struct peer *p, uint32_t req_id, int err, const char *fmt, ...) {
        char msg[PROTO_ERRMSG_MAX + 1];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return send_msg(b, p, proto_enc_error(b->sbuf, sizeof(b->sbuf), req_id, err, msg), NULL, 0);
}

/* --- requests -------------------------------------------------------------- */

static void pending_unlink(struct broker *b, struct peer *p);
static void peer_link(struct broker *b, struct peer *p);

/* A refusal that ends the session: one error reply, one log line. */
static int refuse(struct broker *b, struct peer *p, uint32_t req_id, int err, const char *msg) {
        log_notice("session %s (pid %d uid %u): refused: %s", p->id_str, (int)p->pid, (unsigned)p->uid, msg);
        (void)send_error(b, p, req_id, err, "%s", msg);
        return err;
}

static int on_hello(struct broker *b, struct peer *p, const struct proto_msg *m) {
        const struct conf *c = b->conf;
        struct proto_hello_reply rep = {
                .broker_version = PROTO_VERSION,
                .max_topics = c->max_topics,
        };
        char msg[PROTO_ERRMSG_MAX + 1];

        if (b->npeers >= c->max_sessions) {
                if (!b->full_logged)
                        log_warn("refusing sessions: %u open (max_sessions)", b->npeers);
                b->full_logged = true;
                (void)send_error(b, p, m->hdr.req_id, -EUSERS, "broker has its %u sessions (max_sessions)",
                                 c->max_sessions);
                return -EUSERS;
        }
        p->uid_acct = reg_account_uid(b->reg, (uint32_t)p->uid);
        p->session_acct = reg_account_new(b->reg);
        if (!p->uid_acct || !p->session_acct) {
                (void)send_error(b, p, m->hdr.req_id, -ENOMEM, "broker out of memory");
                return -ENOMEM;
        }
        if (p->uid_acct->sessions >= c->uid_max_sessions) {
                (void)snprintf(msg, sizeof(msg), "uid %u has %u sessions (uid_max_sessions %u)", (unsigned)p->uid,
                               p->uid_acct->sessions, c->uid_max_sessions);
                return refuse(b, p, m->hdr.req_id, -EDQUOT, msg);
        }
        memcpy(rep.session_id, p->id, 16);
        pending_unlink(b, p);
        p->hello = true;
        p->uid_acct->sessions++;
        p->serial = ++b->serials;
        /* The name it goes by, once: PEERS shows it without a read per
         * page, and not that of a later process given the same pid. */
        reg_read_comm((uint32_t)p->pid, p->comm);
        peer_link(b, p);
        log_debug("session %s: HELLO from pid %d uid %u gid %u", p->id_str, (int)p->pid, (unsigned)p->uid,
                  (unsigned)p->gid);
        return send_msg(b, p, proto_enc_hello_reply(b->sbuf, sizeof(b->sbuf), m->hdr.req_id, &rep), NULL, 0);
}

/* The entry quotas of a session and its uid, before it takes one more
 * (OPEN or ADOPT): 0, or the error already sent. */
static int entry_quota(struct broker *b, struct peer *p, const struct proto_msg *m, bool *refused) {
        *refused = true;
        if (p->nentries >= b->conf->session_max_entries) {
                log_notice("session %s (uid %u): %s '%s' refused: %u entries (session_max_entries)", p->id_str,
                           (unsigned)p->uid, proto_type_name(m->hdr.type), m->name, p->nentries);
                return send_error(b, p, m->hdr.req_id, -EDQUOT, "session holds %u entries (session_max_entries %u)",
                                  p->nentries, b->conf->session_max_entries);
        }
        if (p->uid_acct->entries >= b->conf->uid_max_entries) {
                log_notice("session %s (uid %u): %s '%s' refused: uid holds %u entries (uid_max_entries)",
                           p->id_str, (unsigned)p->uid, proto_type_name(m->hdr.type), m->name,
                           p->uid_acct->entries);
                return send_error(b, p, m->hdr.req_id, -EDQUOT, "uid %u holds %u entries (uid_max_entries %u)",
                                  (unsigned)p->uid, p->uid_acct->entries, b->conf->uid_max_entries);
        }
        *refused = false;
        return 0;
}

static int on_open(struct broker *b, struct peer *p, const struct proto_msg *m) {
        const struct proto_open *o = &m->u.open;
        struct proto_open_reply rep;
        struct reg_topic *t;
        char err[PROTO_ERRMSG_MAX + 1] = "";
        uint32_t index;
        uint64_t start = 0;
        int fds[PROTO_FDS_MAX];
        unsigned nfds;
        int r;

        bool refused;
        r = entry_quota(b, p, m, &refused);
        if (refused)
                return r;
        r = peer_reserve(p);
        if (r < 0) {
                log_debug("session %s: OPEN '%s' refused: %s", p->id_str, m->name, strerror(-r));
                if (r == -EMFILE)
                        return send_error(b, p, m->hdr.req_id, r, "session holds %u entries, the most allowed",
                                          PEER_ENTRIES_MAX);
                return send_error(b, p, m->hdr.req_id, r, "broker out of memory");
        }
        struct reg_owner ow = {
                .uid = (uint32_t)p->uid,
                .gid = (uint32_t)p->gid,
                .pid = (uint32_t)p->pid,
                .uid_acct = p->uid_acct,
                .session_acct = p->session_acct,
                .session_id = p->id,
        };
        r = reg_open(b->reg, o, m->name, &ow, &t, &index, &start, err, sizeof(err));
        if (r < 0) {
                /* Denials and quotas are the administrator's business:
                 * logged; other refusals only when verbose. */
                conf_log(r == -EACCES || r == -EDQUOT ? LOG_NOTICE : LOG_DEBUG,
                         "session %s (pid %d uid %u): OPEN '%s' as %s refused: %s (%s)", p->id_str, (int)p->pid,
                         (unsigned)p->uid, m->name, role_name(o->role), err, strerror(-r));
                return send_error(b, p, m->hdr.req_id, r, "%s", err);
        }
        /* Recorded before replying: if the reply fails, session cleanup
         * evicts the entry like any other. */
        peer_hold(p, t, o->role, index);
        nfds = reg_open_reply(t, o->role, index, start, &rep, fds);
        r = send_msg(b, p, proto_enc_open_reply(b->sbuf, sizeof(b->sbuf), m->hdr.req_id, &rep), fds, nfds);
        if (r < 0)
                return r;
        log_debug("session %s: opened '%s' as %s %u", p->id_str, t->name, role_name(o->role), index);
        return 0;
}

static int on_adopt(struct broker *b, struct peer *p, const struct proto_msg *m, int *fds, unsigned nfds) {
        const struct proto_adopt *a = &m->u.adopt;
        char err[PROTO_ERRMSG_MAX + 1] = "";
        struct reg_topic *t;
        bool refused;
        int r = entry_quota(b, p, m, &refused);

        if (refused)
                return r;
        r = peer_reserve(p);
        if (r < 0)
                return send_error(b, p, m->hdr.req_id, r, "session holds too many entries");
        struct reg_owner ow = {
                .uid = (uint32_t)p->uid,
                .gid = (uint32_t)p->gid,
                .pid = (uint32_t)p->pid,
                .uid_acct = p->uid_acct,
                .session_acct = p->session_acct,
                .session_id = p->id,
        };
        r = reg_adopt(b->reg, a, m->name, fds, nfds, &ow, &t, err, sizeof(err));
        if (r < 0) {
                conf_log(LOG_NOTICE, "session %s (pid %d uid %u): ADOPT of '%s' %s %u refused: %s (%s)", p->id_str,
                         (int)p->pid, (unsigned)p->uid, m->name, role_name(a->role), a->index, err, strerror(-r));
                return send_error(b, p, m->hdr.req_id, r, "%s", err);
        }
        peer_hold(p, t, a->role, a->index);
        log_debug("session %s: took back '%s' %s %u", p->id_str, t->name, role_name(a->role), a->index);
        return send_msg(b, p, proto_enc_ok(b->sbuf, sizeof(b->sbuf), m->hdr.req_id), NULL, 0);
}

static int on_close(struct broker *b, struct peer *p, const struct proto_msg *m) {
        const struct proto_close *c = &m->u.close;
        struct peer_entry e;
        int r;

        r = peer_release(p, c->topic_id, c->role, c->index, &e);
        if (r < 0) {
                log_debug("session %s: CLOSE of %s %u: not held", p->id_str, role_name(c->role), c->index);
                return send_error(b, p, m->hdr.req_id, r, "session holds no %s entry %u on that topic",
                                  role_name(c->role), c->index);
        }
        log_debug("session %s: closed '%s' %s %u", p->id_str, e.topic->name, role_name(e.role), e.index);
        return send_msg(b, p, proto_enc_ok(b->sbuf, sizeof(b->sbuf), m->hdr.req_id), NULL, 0);
}

static int on_list(struct broker *b, struct peer *p, const struct proto_msg *m) {
        uint32_t max = MIN(m->u.list.max, PROTO_LIST_MAX);
        uint32_t n = reg_list(b->reg, m->u.list.start, max, b->lbuf);

        return send_msg(b, p, proto_enc_list_reply(b->sbuf, sizeof(b->sbuf), m->hdr.req_id, reg_count(b->reg),
                                                   b->lbuf, n),
                        NULL, 0);
}

static int on_stat(struct broker *b, struct peer *p, const struct proto_msg *m) {
        char err[PROTO_ERRMSG_MAX + 1] = "";
        struct proto_stat_reply rep;
        int r = reg_stat(b->reg, m->name, (uint32_t)p->uid, (uint32_t)p->gid, m->u.stat.start,
                         MIN(m->u.stat.max, PROTO_STAT_MAX), &rep, b->stbuf, err, sizeof(err));

        if (r < 0) {
                conf_log(r == -EACCES ? LOG_NOTICE : LOG_DEBUG, "session %s (pid %d uid %u): STAT '%s' refused: %s",
                         p->id_str, (int)p->pid, (unsigned)p->uid, m->name, err);
                return send_error(b, p, m->hdr.req_id, r, "%s", err);
        }
        return send_msg(b, p, proto_enc_stat_reply(b->sbuf, sizeof(b->sbuf), m->hdr.req_id, &rep, b->stbuf), NULL,
                        0);
}

static int on_topic_rm(struct broker *b, struct peer *p, const struct proto_msg *m) {
        char err[PROTO_ERRMSG_MAX + 1] = "";
        int r = reg_topic_rm(b->reg, m->name, (uint32_t)p->uid, (uint32_t)p->gid, err, sizeof(err));

        if (r < 0) {
                conf_log(r == -EACCES ? LOG_NOTICE : LOG_DEBUG,
                         "session %s (pid %d uid %u): TOPIC_RM '%s' refused: %s", p->id_str, (int)p->pid,
                         (unsigned)p->uid, m->name, err);
                return send_error(b, p, m->hdr.req_id, r, "%s", err);
        }
        return send_msg(b, p, proto_enc_ok(b->sbuf, sizeof(b->sbuf), m->hdr.req_id), NULL, 0);
}

/* INFO: what the session says it is; kept for PEERS, never acted on.
 * One fixed-size copy per session, made at its first INFO. */
static int on_info(struct broker *b, struct peer *p, const struct proto_msg *m) {
        if (!p->info) {
                p->info = malloc(sizeof(*p->info));
                if (!p->info)
                        return send_error(b, p, m->hdr.req_id, -ENOMEM, "broker out of memory");
        }
        memset(p->info, 0, sizeof(*p->info));
        memcpy(p->info->label, m->u.info.label, sizeof(p->info->label));
        p->info->ncounters = m->u.info.count;
        if (p->info->ncounters)
                memcpy(p->info->counters, m->counters, p->info->ncounters * sizeof(p->info->counters[0]));
        return send_msg(b, p, proto_enc_ok(b->sbuf, sizeof(b->sbuf), m->hdr.req_id), NULL, 0);
}

/* May a session of uid see the session q? Its own uid's, or every one for
 * root and the broker's uid: who runs what on the bus is not everyone's
 * business (a topic's STAT shows its own peers to those who may use it). */
static bool peer_visible(uid_t uid, const struct peer *q) {
        return uid == 0 || uid == geteuid() || q->uid == uid;
}

static void peer_entry_fill(const struct peer *q, struct proto_peer_entry *e) {
        memset(e, 0, sizeof(*e));
        memcpy(e->session_id, q->id, 16);
        memcpy(e->comm, q->comm, sizeof(e->comm));
        e->pid = (uint32_t)q->pid;
        e->uid = (uint32_t)q->uid;
        e->gid = (uint32_t)q->gid;
        e->producers = q->nprod;
        e->subscribers = q->nsub;
        e->serial = q->serial;
        if (q->info) {
                memcpy(e->label, q->info->label, sizeof(e->label));
                e->ncounters = q->info->ncounters;
                memcpy(e->counters, q->info->counters, q->info->ncounters * sizeof(e->counters[0]));
        }
}

/* PEERS: the sessions this one may see, oldest first, from the first
 * whose serial is above the asker's cursor: one that ends between pages
 * hides no other. One walk of the list (at most max_sessions), no system
 * call. */
static int on_peers(struct broker *b, struct peer *p, const struct proto_msg *m) {
        uint32_t max = MIN(m->u.peers.max, PROTO_PEERS_MAX);
        uint32_t seen = 0, n = 0;

        for (const struct peer *q = b->peers; q; q = q->next) {
                if (!peer_visible(p->uid, q))
                        continue;
                if (q->serial > m->u.peers.after && n < max)
                        peer_entry_fill(q, &b->pebuf[n++]);
                seen++;
        }
        return send_msg(b, p, proto_enc_peers_reply(b->sbuf, sizeof(b->sbuf), m->hdr.req_id, seen, b->pebuf, n),
                        NULL, 0);
}

/* A violation: one error reply (best effort), then the session ends. */
static int violation(struct broker *b, struct peer *p, uint32_t req_id, int err, const char *what) {
        log_notice("session %s (pid %d): %s: %s; disconnecting", p->id_str, (int)p->pid, what, strerror(-err));
        (void)send_error(b, p, req_id, err, "%s", what);
        return err;
}

/* Tell main (the notify STATUS=) when the topic or session count moved. */
static void broker_check_changed(struct broker *b) {
        uint32_t topics = reg_count(b->reg);

        if (topics == b->told_topics && b->npeers == b->told_sessions)
                return;
        b->told_topics = topics;
        b->told_sessions = b->npeers;
        if (b->changed)
                b->changed(b, b->changed_data);
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0)
                        (void)close(fds[i]);
}

static int dispatch(struct broker *b, struct peer *p, const void *buf, ssize_t n, int *fds, unsigned nfds);

/* Descriptors come with ADOPT alone; whatever the handler did not keep
 * is closed here. */
static int on_datagram(struct peer *p, const void *buf, ssize_t n, int *fds, unsigned nfds, void *userdata) {
        struct broker *b = userdata;
        int r = dispatch(b, p, buf, n, fds, nfds);

        close_fds(fds, nfds);
        broker_check_changed(b);
        return r;
}

static int dispatch(struct broker *b, struct peer *p, const void *buf, ssize_t n, int *fds, unsigned nfds) {
        struct proto_msg m;
        uint32_t req_id = n > 0 ? proto_peek_req_id(buf, (size_t)n) : 0;
        int r;

        r = n < 0 ? (int)n : proto_decode(buf, (size_t)n, &m);
        if (n < 0)
                return violation(b, p, req_id, r, "datagram too large or carrying too many descriptors");
        if (r == -EPROTO)
                return violation(b, p, req_id, r, "unsupported protocol version");
        if (r < 0)
                return violation(b, p, req_id, r, "malformed message");
        if (nfds && m.hdr.type != PROTO_ADOPT)
                return violation(b, p, req_id, -EBADMSG, "descriptors with a message that takes none");

        if (!p->hello) {
                if (m.hdr.type != PROTO_HELLO)
                        return violation(b, p, req_id, -EPROTO, "first message must be HELLO");
                return on_hello(b, p, &m);
        }
        switch (m.hdr.type) {
        case PROTO_HELLO:
                return violation(b, p, req_id, -EPROTO, "HELLO sent twice");
        case PROTO_OPEN:
                return on_open(b, p, &m);
        case PROTO_CLOSE:
                return on_close(b, p, &m);
        case PROTO_LIST:
                return on_list(b, p, &m);
        case PROTO_ADOPT:
                return on_adopt(b, p, &m, fds, nfds);
        case PROTO_STAT:
                return on_stat(b, p, &m);
        case PROTO_TOPIC_RM:
                return on_topic_rm(b, p, &m);
        case PROTO_INFO:
                return on_info(b, p, &m);
        case PROTO_PEERS:
                return on_peers(b, p, &m);
        default:
                break;
        }
        return violation(b, p, req_id, -EBADMSG, "unexpected message type");
}

/* --- sessions -------------------------------------------------------------- */

/* Appended: the list stays in serial order, which PEERS pages by. */
static void peer_link(struct broker *b, struct peer *p) {
        p->next = NULL;
        p->prev = b->peers_tail;
        if (b->peers_tail)
                b->peers_tail->next = p;
        else
                b->peers = p;
        b->peers_tail = p;
        b->npeers++;
}

static void peer_unlink(struct broker *b, struct peer *p) {
        if (p->prev)
                p->prev->next = p->next;
        else
                b->peers = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                b->peers_tail = p->prev;
        p->prev = p->next = NULL;
        b->npeers--;
}

/* Connections before HELLO: a FIFO, oldest first, bounded by
 * max_unauthenticated, each given hello_timeout_ms. One timer serves them
 * all, armed for the oldest one's deadline. */
static void pending_arm(struct broker *b) {
        ev_tstamp after;

        ev_timer_stop(b->loop, &b->hello_timer);
        if (!b->pending)
                return;
        after = b->pending->accepted_at + b->conf->hello_timeout_ms / 1000. - ev_now(b->loop);
        ev_timer_set(&b->hello_timer, after > 0. ? after : 0., 0.);
        ev_timer_start(b->loop, &b->hello_timer);
}

static void pending_append(struct broker *b, struct peer *p) {
        p->next = NULL;
        p->prev = b->pending_tail;
        if (b->pending_tail)
                b->pending_tail->next = p;
        else
                b->pending = p;
        b->pending_tail = p;
        b->npending++;
        if (b->npending == 1)
                pending_arm(b);
}

static void pending_unlink(struct broker *b, struct peer *p) {
        bool was_oldest = b->pending == p;

        if (p->prev)
                p->prev->next = p->next;
        else
                b->pending = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                b->pending_tail = p->prev;
        p->prev = p->next = NULL;
        b->npending--;
        if (was_oldest)
                pending_arm(b);
}

/* The oldest pending connection of the uid with the most pending ones,
 * counting a newcomer of uid `newcomer` too. The pool is bounded
 * (max_unauthenticated), so is this. */
static struct peer *pending_heaviest(struct broker *b, uid_t newcomer) {
        struct peer *pick = b->pending;
        uint32_t most = 0;

        for (struct peer *p = b->pending; p; p = p->next) {
                bool oldest = true; /* each uid once, at its oldest */
                for (struct peer *q = b->pending; q != p; q = q->next)
                        if (q->uid == p->uid) {
                                oldest = false;
                                break;
                        }
                if (!oldest)
                        continue;
                uint32_t n = p->uid == newcomer;
                for (struct peer *q = p; q; q = q->next)
                        n += q->uid == p->uid;
                if (n > most) {
                        most = n;
                        pick = p;
                }
        }
        return pick;
}

static void pending_drop(struct broker *b, struct peer *p, const char *why) {
        log_debug("connection %s (pid %d uid %u) dropped before HELLO: %s", p->id_str, (int)p->pid,
                  (unsigned)p->uid, why);
        pending_unlink(b, p);
        peer_free(p, false);
}

/* Has the connection sent something the broker has not read yet? */
static bool unread(const struct peer *p) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

        return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static void hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct broker *b = w->data;
        ev_tstamp now = ev_now(loop), timeout = b->conf->hello_timeout_ms / 1000.;

        while (b->pending && b->pending->accepted_at + timeout <= now) {
                struct peer *p = b->pending;

                /* A broker kept off the CPU past the deadline may meet it
                 * before the HELLO that came in time: one more deadline
                 * for a connection with a datagram waiting, which this
                 * loop turn reads (anything but a HELLO ends it). */
                if (!p->hello_grace && unread(p)) {
                        p->hello_grace = true;
                        pending_unlink(b, p);
                        p->accepted_at = now;
                        pending_append(b, p);
                        continue;
                }
                pending_drop(b, p, "no HELLO in time (hello_timeout_ms)");
        }
        pending_arm(b);
}

static void on_gone(struct peer *p, const char *why, void *userdata) {
        struct broker *b = userdata;

        if (!p->hello) {
                pending_drop(b, p, why);
                return;
        }
        log_debug("session %s (pid %d) closed: %s, releasing %u entries", p->id_str, (int)p->pid, why,
                  p->nentries);
        peer_unlink(b, p);
        if (p->uid_acct && p->uid_acct->sessions)
                p->uid_acct->sessions--;
        peer_free(p, true);
        if (b->npeers < b->conf->max_sessions)
                b->full_logged = false;
        broker_check_changed(b);
}

static const struct peer_ops broker_peer_ops = {
        .datagram = on_datagram,
        .gone = on_gone,
};

static void accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct broker *b = w->data;

        ev_io_start(loop, &b->accept_io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
        struct broker *b = w->data;

        for (unsigned i = 0; i < BROKER_ACCEPT_BATCH; i++) {
                _cleanup_close_ int fd = -1;
                struct peer *p;
                int r;

                fd = accept4(b->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        switch (errno) {
                        case EAGAIN:
                                b->pause_logged = false;
                                return;
                        case EINTR:
                        case ECONNABORTED:
                        case EPROTO:
                        case EPERM:
                                continue;
                        default:
                                /* Out of descriptors or memory: the socket
                                 * stays readable, so stop watching it for a
                                 * while instead of spinning. */
                                if (!b->pause_logged)
                                        log_warn("accepting connections on '%s' failed: %s; pausing", b->path,
                                                 strerror(errno));
                                b->pause_logged = true;
                                ev_io_stop(loop, &b->accept_io);
                                ev_timer_set(&b->accept_pause, BROKER_ACCEPT_PAUSE, 0.);
                                ev_timer_start(loop, &b->accept_pause);
                                return;
                        }
                }
                r = peer_new(loop, fd, b->rbuf, &broker_peer_ops, b, &p);
                if (r < 0) {
                        log_warn("setting up a session failed: %s", strerror(-r));
                        continue;
                }
                fd = -1; /* the session owns it now */
                /* Connections that have not said HELLO do not count
                 * against max_sessions: they wait in their own pool, and
                 * when it is full the oldest of the uid that has the most
                 * there goes, so one uid's flood displaces its own. */
                if (b->npending >= b->conf->max_unauthenticated) {
                        if (!b->pending_logged)
                                log_warn("%u connections have not said HELLO (max_unauthenticated): dropping the "
                                         "oldest of the uid with the most",
                                         b->npending);
                        b->pending_logged = true;
                        while (b->npending >= b->conf->max_unauthenticated && b->pending)
                                pending_drop(b, pending_heaviest(b, p->uid), "pre-HELLO pool full (max_unauthenticated)");
                } else if (b->npending < b->conf->max_unauthenticated / 2)
                        b->pending_logged = false;
                p->accepted_at = ev_now(loop);
                pending_append(b, p);
                log_debug("session %s opened: pid %d uid %u gid %u%s", p->id_str, (int)p->pid, (unsigned)p->uid,
                          (unsigned)p->gid, p->pidfd < 0 ? " (no pidfd)" : "");
        }
}

/* --- listening socket ------------------------------------------------------ */

/* Is someone answering on path? 1 live, 0 stale (nobody listens), <0 error. */
static int socket_live(const char *path, const struct sockaddr_un *sa) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return negerrno();
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
                return 1;
        switch (errno) {
        case EAGAIN:      /* backlog full: very much alive */
        case EINPROGRESS:
                return 1;
        case ECONNREFUSED:
                return 0;
        default:
                return negerrno();
        }
}

static int broker_listen(struct broker *b, const char *path) {
        const struct conf *c = b->conf;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -1;
        struct stat st;
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                log_err("socket path '%s' is longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        strcpy(b->path, path);

        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode)) {
                        log_err("'%s' exists and is not a socket; refusing to replace it", path);
                        return -EEXIST;
                }
                r = socket_live(path, &sa);
                if (r > 0) {
                        log_err("a broker is already listening on '%s'", path);
                        return -EADDRINUSE;
                }
                if (r < 0) {
                        log_err("probing existing socket '%s' failed: %s", path, strerror(-r));
                        return r;
                }
                log_info("removing stale socket '%s'", path);
                if (unlink(path) < 0 && errno != ENOENT) {
                        r = negerrno();
                        log_err("removing stale socket '%s' failed: %s", path, strerror(-r));
                        return r;
                }
        } else if (errno != ENOENT) {
                r = negerrno();
                log_err("checking socket path '%s' failed: %s", path, strerror(-r));
                return r;
        }

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                r = negerrno();
                log_err("creating socket failed: %s", strerror(-r));
                return r;
        }
        old = umask(~c->socket_mode & 0777); /* socket file mode: socket_mode */
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? negerrno() : 0;
        (void)umask(old);
        if (r < 0) {
                log_err("binding '%s' failed: %s", path, strerror(-r));
                return r;
        }
        if (c->socket_group != CONF_GROUP_UNSET && chown(path, (uid_t)-1, (gid_t)c->socket_group) < 0) {
                r = negerrno();
                log_err("giving socket '%s' to group %u failed: %s", path, (unsigned)c->socket_group, strerror(-r));
                (void)unlink(path);
                return r;
        }
        if (stat(path, &st) < 0) {
                r = negerrno();
                log_err("checking bound socket '%s' failed: %s", path, strerror(-r));
                (void)unlink(path);
                return r;
        }
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        b->bound = true;
        if (listen(fd, SOMAXCONN) < 0) {
                r = negerrno();
                log_err("listening on '%s' failed: %s", path, strerror(-r));
                return r; /* broker_free() removes the file */
        }
        b->fd = TAKE_FD(fd);
        return 0;
}

static void broker_unlink_socket(struct broker *b) {
        struct stat st;

        if (!b->bound)
                return;
        b->bound = false;
        if (stat(b->path, &st) < 0) {
                log_warn("socket '%s' is gone at exit: %s", b->path, strerror(errno));
                return;
        }
        if (st.st_dev != b->dev || st.st_ino != b->ino) {
                log_warn("socket '%s' was replaced by someone else; leaving it", b->path);
                return;
        }
        if (unlink(b->path) < 0)
                log_warn("removing socket '%s' failed: %s", b->path, strerror(errno));
}

/* --- broker ---------------------------------------------------------------- */

static void broker_freep(struct broker **b) {
        broker_free(*b);
}

int broker_new(struct ev_loop *loop, const struct conf *conf, const char *path, int listen_fd,
               struct broker **ret) {
        _cleanup_(broker_freep) struct broker *b = NULL;
        _cleanup_close_ int lfd = listen_fd;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b) {
                log_err("out of memory");
                return -ENOMEM;
        }
        b->loop = loop;
        b->conf = conf;
        b->fd = -1;
        ev_timer_init(&b->accept_pause, accept_resume_cb, BROKER_ACCEPT_PAUSE, 0.);
        b->accept_pause.data = b;
        ev_timer_init(&b->hello_timer, hello_timeout_cb, 1., 0.);
        b->hello_timer.data = b;

        r = reg_new(loop, conf, &b->reg);
        if (r < 0) {
                log_err("creating the topic registry failed: %s", strerror(-r));
                return r;
        }
        if (lfd >= 0) {
                (void)snprintf(b->path, sizeof(b->path), "%s", path);
                b->fd = TAKE_FD(lfd); /* bound stays false: not our file */
        } else {
                r = broker_listen(b, path);
                if (r < 0)
                        return r;
        }
        ev_io_init(&b->accept_io, accept_cb, b->fd, EV_READ);
        b->accept_io.data = b;
        ev_io_start(loop, &b->accept_io);
        *ret = TAKE_PTR(b);
        return 0;
}

void broker_set_changed(struct broker *b, broker_changed_fn fn, void *userdata) {
        b->changed = fn;
        b->changed_data = userdata;
}

uint32_t broker_topics(const struct broker *b) {
        return reg_count(b->reg);
}

uint32_t broker_sessions(const struct broker *b) {
        return b->npeers;
}

void broker_free(struct broker *b) {
        if (!b)
                return;
        if (b->fd >= 0)
                ev_io_stop(b->loop, &b->accept_io);
        ev_timer_stop(b->loop, &b->accept_pause);
        ev_timer_stop(b->loop, &b->hello_timer);
        closep(&b->fd);
        broker_unlink_socket(b);
        /* Sessions end without evicting their entries: their processes are
         * alive and keep using the rings without a broker (as after a
         * crash); evicting a live producer would abandon the slot it is
         * writing, evicting a live subscriber would let a reliable topic
         * overwrite what it has not read. */
        while (b->peers) {
                struct peer *p = b->peers;
                peer_unlink(b, p);
                peer_free(p, false);
        }
        while (b->pending) {
                struct peer *p = b->pending;
                b->pending = p->next;
                peer_free(p, false);
        }
        reg_free(b->reg);
        free(b);
}
