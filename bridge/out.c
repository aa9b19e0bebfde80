/* SPDX-License-Identifier: MIT */
/*
 * out.c: local topics going out to NATS.
 *
 * The main loop's scan reads the broker's topic list every scan_ms and
 * starts one route per topic that matches an "out" pattern. The topic's
 * own policy decides how it travels:
 *
 *  - latest: a reader thread subscribes (latest, no history), copies each
 *    message into a NATS message, releases the slot, and publishes on
 *    core NATS. The producer never waits for the bridge (the topic is
 *    latest); a bridge that falls a ring behind is lapped, and what it
 *    missed is counted as dropped, as is a publish libnats refuses (its
 *    reconnect buffer full).
 *
 *  - reliable: the reader subscribes with the ring's whole history and
 *    copies messages into a bounded queue (buffer messages, buffer_bytes
 *    bytes), releasing each slot at once, so the topic is held back only
 *    while that queue is full. A sender thread publishes the queue to
 *    JetStream in order, one at a time (a publish is retried, with the
 *    same Nats-Msg-Id, until JetStream acknowledges it: the retry cannot
 *    store a message twice, and nothing overtakes a message that is being
 *    retried). Each acknowledgement moves the topic's position in the
 *    state file. After a restart, the reader skips what the position says
 *    is stored and resumes from the ring's history; sequences the ring no
 *    longer holds are counted as gaps and logged. If the queue stays full
 *    (JetStream unreachable) the producer waits, and after the broker's
 *    stall timeout evicts the bridge like any stalled subscriber: the
 *    bridge says so, counts it, and subscribes again with history.
 *
 * Either way, a message the bridge itself published on the topic (it came
 * in from NATS) is not sent back out (echo.h), and a message larger
 * than the server's max_payload is not sent but counted (oversize) and
 * logged once per topic; under reliable the reader queues a marker for
 * such a message, so that the position moves past it in order.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "bridge.h"
#include "json.h"
#include "util.h"

static bool bus_back(struct bridge *b, int err);

#define RECV_TIMEOUT_MS 200

struct qitem {
        struct qitem *next;
        uint64_t seq;
        size_t len;
        bool skip; /* not to be sent (an echo, too big): only moves the position */
        unsigned char data[];
};

struct out_topic {
        struct out_topic *next;
        struct bridge *b;
        zcbus_topic_entry ent;
        char topic_id_str[37];
        char subject[SUBJ_MAX];
        char stream[STREAM_NAME_MAX];
        bool reliable;
        struct state_slot *pos;
        _Atomic(struct echo *) echo; /* the topic's echo window, if it comes in too */

        pthread_t reader, sender;
        bool has_sender;
        atomic_bool done; /* the reader has ended */

        pthread_mutex_t qlock;
        pthread_cond_t qcond;
        struct qitem *qhead, **qtail;
        unsigned qn;
        uint64_t qbytes;

        _Atomic uint64_t forwarded, dropped, oversize;
        bool oversize_said;
};

static bool stopping(const struct out_topic *t) {
        return atomic_load_explicit(&t->b->stopping, memory_order_relaxed);
}

/* A message of t with sequence seq, and its origin header. */
static natsStatus make_msg(struct out_topic *t, uint64_t seq, const void *data, size_t len, natsMsg **ret) {
        struct bridge *b = t->b;
        char origin[160];
        natsMsg *m = NULL;
        natsStatus s;

        s = natsMsg_Create(&m, t->subject, NULL, data, (int)len);
        (void)snprintf(origin, sizeof(origin), "%s %s %" PRIu64 " %s", b->bus_id_str, t->topic_id_str, seq,
                       b->session_str);
        if (s == NATS_OK)
                s = natsMsgHeader_Set(m, HDR_ORIGIN, origin);
        if (s != NATS_OK) {
                natsMsg_Destroy(m);
                return s;
        }
        *ret = m;
        return NATS_OK;
}

static bool too_big(struct out_topic *t, size_t len) {
        struct bridge *b = t->b;

        if (len + HDR_ROOM <= (size_t)b->max_payload)
                return false;
        atomic_fetch_add_explicit(&t->oversize, 1, memory_order_relaxed);
        STAT_ADD(b, oversize, 1);
        if (!t->oversize_said)
                log_msg("topic '%s': a %zu-byte message is larger than the NATS server's max_payload (%d bytes, "
                        "%d kept for headers): not sent (counted as oversize; said once per topic)",
                        t->ent.name, len, b->max_payload, HDR_ROOM);
        t->oversize_said = true;
        return true;
}

static int open_sub(struct out_topic *t, zcbus_sub **ret) {
        struct bridge *b = t->b;
        zcbus_sub_opts so = {
                .size = sizeof(so),
                .history = t->reliable ? t->ent.slot_count : 0,
                .max_holds = 1,
                .slot_count = t->ent.slot_count,
                .slot_size = t->ent.slot_size,
                .policy = t->ent.policy,
        };
        int r;

        (void)pthread_mutex_lock(&b->bus_lock);
        r = zcbus_sub_open(b->bus, t->ent.name, &so, ret);
        if (r < 0)
                log_msg("cannot subscribe to local topic '%s': %s %s", t->ent.name, zcbus_strerror(r),
                        zcbus_last_error(b->bus));
        (void)pthread_mutex_unlock(&b->bus_lock);
        return r;
}

static void close_sub(struct out_topic *t, zcbus_sub *sub) {
        (void)pthread_mutex_lock(&t->b->bus_lock);
        zcbus_sub_close(sub);
        (void)pthread_mutex_unlock(&t->b->bus_lock);
}

static void forward_latest(struct out_topic *t, zcbus_sub *sub, zcbus_msg *m) {
        struct bridge *b = t->b;
        natsMsg *nm = NULL;
        natsStatus s;

        s = make_msg(t, m->seq, m->data, m->len, &nm);
        (void)zcbus_sub_release(sub, m);
        if (s == NATS_OK)
                s = natsConnection_PublishMsg(b->nc, nm);
        natsMsg_Destroy(nm);
        if (s == NATS_OK) {
                atomic_fetch_add_explicit(&t->forwarded, 1, memory_order_relaxed);
                STAT_ADD(b, forwarded, 1);
        } else {
                atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
                STAT_ADD(b, dropped, 1);
        }
}

/* Queue a copy of m for the sender, waiting while the queue is full.
 * The message stays held while it waits (a hold gates producers no more
 * than the unread message would), so that a receive with no room for
 * another hold probes for an eviction without taking anything: -ENOBUFS
 * while the subscription lives, -ESTALE once the broker evicted it.
 * Returns 0 (queued and released), -ESTALE (evicted: the copy is
 * dropped, as the message may have been overwritten while it was being
 * copied), or -ECANCELED (the bridge stops). skip: queue a marker that
 * only moves the position past m (an echo, a message too big). */
static int enqueue(struct out_topic *t, zcbus_sub *sub, zcbus_msg *m, bool skip) {
        const struct bconf *c = t->b->conf;
        struct qitem *it = malloc(sizeof(*it) + (skip ? 0 : m->len));
        int r = 0;

        if (!it)
                return -ENOMEM;
        it->next = NULL;
        it->seq = m->seq;
        it->skip = skip;
        it->len = skip ? 0 : m->len;
        memcpy(it->data, m->data, it->len);
        (void)pthread_mutex_lock(&t->qlock);
        while ((t->qn >= c->buffer || (t->qn > 0 && t->qbytes + it->len > c->buffer_bytes)) && !stopping(t)) {
                struct timespec ts;
                zcbus_msg probe;

                (void)clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                (void)pthread_cond_timedwait(&t->qcond, &t->qlock, &ts);
                (void)pthread_mutex_unlock(&t->qlock);
                r = zcbus_sub_recv(sub, &probe, 0); /* max_holds is 1: takes nothing */
                (void)pthread_mutex_lock(&t->qlock);
                if (r == -ESTALE)
                        break;
                r = 0;
        }
        if (r == 0 && stopping(t))
                r = -ECANCELED;
        (void)pthread_mutex_unlock(&t->qlock);
        if (zcbus_sub_release(sub, m) == -ESTALE)
                r = -ESTALE;
        if (r < 0) {
                free(it);
                return r;
        }
        (void)pthread_mutex_lock(&t->qlock);
        *t->qtail = it;
        t->qtail = &it->next;
        t->qn++;
        t->qbytes += it->len;
        (void)pthread_cond_broadcast(&t->qcond);
        (void)pthread_mutex_unlock(&t->qlock);
        return 0;
}

static void say_evicted(struct out_topic *t) {
        STAT_ADD(t->b, evicted, 1);
        log_msg("the broker evicted the bridge's subscription to '%s' (it held the topic back for longer than "
                "the topic's stall timeout: NATS did not keep up, and the bridge's queue was full); "
                "subscribing again with history",
                t->ent.name);
}

static void *reader_main(void *arg) {
        struct out_topic *t = arg;
        struct bridge *b = t->b;
        zcbus_sub *sub = NULL;
        bool first = true;

        while (!stopping(t)) {
                struct echo *e;
                zcbus_msg m;
                bool skip;
                int r;

                if (!sub) {
                        if (open_sub(t, &sub) < 0)
                                break;
                        first = true;
                }
                r = zcbus_sub_recv(sub, &m, RECV_TIMEOUT_MS);
                if (r == -ETIMEDOUT || r == -EAGAIN)
                        continue;
                if (r == -ESTALE) {
                        say_evicted(t);
                        close_sub(t, sub);
                        sub = NULL;
                        continue;
                }
                if (r < 0) {
                        STAT_ADD(b, errors, 1);
                        log_msg("receiving from local topic '%s': %s; route stops until the next scan", t->ent.name,
                                zcbus_strerror(r));
                        break;
                }
                if (m.lost) {
                        atomic_fetch_add_explicit(&t->dropped, m.lost, memory_order_relaxed);
                        STAT_ADD(b, dropped, m.lost);
                }
                if (t->reliable) {
                        uint64_t next = atomic_load_explicit(&t->pos->seq, memory_order_relaxed);

                        if (next && m.seq < next) {
                                (void)zcbus_sub_release(sub, &m); /* stored before a restart */
                                continue;
                        }
                        if (first && next && m.seq > next) {
                                STAT_ADD(b, gaps, m.seq - next);
                                log_msg("topic '%s': resuming at sequence %" PRIu64 ", %" PRIu64
                                        " after the last one JetStream stored: the ring no longer holds the %" PRIu64
                                        " between (counted as gaps)",
                                        t->ent.name, m.seq, next - 1, m.seq - next);
                        }
                }
                first = false;
                skip = false;
                e = atomic_load_explicit(&t->echo, memory_order_relaxed);
                if (e && echo_match(e, m.seq, m.data, m.len, t->reliable)) {
                        STAT_ADD(b, loops, 1);
                        skip = true;
                } else if (too_big(t, m.len)) {
                        skip = true;
                }
                if (!t->reliable) {
                        if (skip)
                                (void)zcbus_sub_release(sub, &m);
                        else
                                forward_latest(t, sub, &m);
                        continue;
                }
                r = enqueue(t, sub, &m, skip);
                if (r == -ESTALE) {
                        say_evicted(t);
                        close_sub(t, sub);
                        sub = NULL;
                } else if (r < 0) {
                        break;
                }
        }
        if (sub)
                close_sub(t, sub);
        atomic_store(&t->done, true);
        ev_async_send(b->loop, &b->wake);
        return NULL;
}

/* Everything up to seq is done with: stored, or not to be sent. Only
 * forward: after an eviction the reader reads the ring again from the
 * position, and may queue again what the queue still holds. */
static void advance(struct out_topic *t, uint64_t seq) {
        struct echo *e = atomic_load_explicit(&t->echo, memory_order_acquire);

        if (seq + 1 <= atomic_load_explicit(&t->pos->seq, memory_order_relaxed))
                return;
        atomic_store_explicit(&t->pos->seq, seq + 1, memory_order_relaxed);
        if (e)
                echo_release(e, seq + 1);
}

static void publish_reliable(struct out_topic *t, struct qitem *it) {
        struct bridge *b = t->b;
        char msgid[128];
        bool said = false;

        if (it->skip || it->seq + 1 <= atomic_load_explicit(&t->pos->seq, memory_order_relaxed)) {
                advance(t, it->seq); /* not to be sent, or stored already */
                return;
        }
        (void)snprintf(msgid, sizeof(msgid), "%s:%s:%" PRIu64, b->bus_id_str, t->topic_id_str, it->seq);
        while (!stopping(t)) {
                jsPubOptions po;
                jsPubAck *ack = NULL;
                jsErrCode jerr = 0;
                natsMsg *nm = NULL;
                natsStatus s;

                (void)jsPubOptions_Init(&po);
                po.MsgId = msgid;
                po.MaxWait = 2000;
                s = make_msg(t, it->seq, it->data, it->len, &nm);
                if (s == NATS_OK)
                        s = js_PublishMsg(&ack, b->js, nm, &po, &jerr);
                natsMsg_Destroy(nm);
                jsPubAck_Destroy(ack);
                if (s == NATS_OK) {
                        /* Position after the ack: a crash before this store
                         * re-sends the message with the same id, which
                         * JetStream drops (dup_window_ms). */
                        advance(t, it->seq);
                        atomic_fetch_add_explicit(&t->forwarded, 1, memory_order_relaxed);
                        STAT_ADD(b, forwarded, 1);
                        if (said)
                                log_msg("topic '%s': JetStream accepts messages again", t->ent.name);
                        return;
                }
                if (!said)
                        log_msg("topic '%s': JetStream publish of sequence %" PRIu64 " failed: %s (error %d); "
                                "retrying until it is stored",
                                t->ent.name, it->seq, natsStatus_GetText(s), (int)jerr);
                said = true;
                STAT_ADD(b, retries, 1);
                if (s != NATS_TIMEOUT)
                        (void)usleep(100 * 1000);
        }
}

static void *sender_main(void *arg) {
        struct out_topic *t = arg;
        struct bridge *b = t->b;

        if (link_ensure_stream(b, t->stream, t->subject, UINT64_MAX) < 0)
                return NULL;
        while (!stopping(t)) {
                struct qitem *it;

                (void)pthread_mutex_lock(&t->qlock);
                while (!t->qhead && !stopping(t) && !atomic_load(&t->done)) {
                        struct timespec ts;

                        (void)clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 100 * 1000000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        (void)pthread_cond_timedwait(&t->qcond, &t->qlock, &ts);
                }
                it = t->qhead;
                (void)pthread_mutex_unlock(&t->qlock);
                if (!it)
                        break; /* stopping, or the reader ended and the queue is empty */
                publish_reliable(t, it);
                if (stopping(t))
                        break;
                (void)pthread_mutex_lock(&t->qlock);
                t->qhead = it->next;
                if (!t->qhead)
                        t->qtail = &t->qhead;
                t->qn--;
                t->qbytes -= it->len;
                (void)pthread_cond_broadcast(&t->qcond);
                (void)pthread_mutex_unlock(&t->qlock);
                free(it);
        }
        return NULL;
}

static void topic_free(struct out_topic *t) {
        struct qitem *it, *next;

        if (!t)
                return;
        for (it = t->qhead; it; it = next) {
                next = it->next;
                free(it);
        }
        (void)pthread_mutex_destroy(&t->qlock);
        (void)pthread_cond_destroy(&t->qcond);
        free(t);
}

static void topic_join(struct out_topic *t) {
        (void)pthread_join(t->reader, NULL);
        if (t->has_sender) {
                (void)pthread_mutex_lock(&t->qlock);
                (void)pthread_cond_broadcast(&t->qcond);
                (void)pthread_mutex_unlock(&t->qlock);
                (void)pthread_join(t->sender, NULL);
        }
}

/* Threads get no signals: the main loop takes them. */
static int spawn(pthread_t *thr, void *(*fn)(void *), void *arg) {
        sigset_t all, old;
        int r;

        (void)sigfillset(&all);
        (void)pthread_sigmask(SIG_BLOCK, &all, &old);
        r = -pthread_create(thr, NULL, fn, arg);
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        return r;
}

bool out_wants(struct bridge *b, const char *name) {
        char subj[SUBJ_MAX], pat[SUBJ_MAX];

        if (subj_from_topic(b->prefix, name, subj, sizeof(subj)) < 0)
                return false;
        for (unsigned i = 0; i < b->conf->nout; i++)
                if (subj_from_pattern(b->prefix, b->conf->out[i].pattern, pat, sizeof(pat)) == 0 &&
                    subj_match(pat, subj))
                        return true;
        return false;
}

static int topic_start(struct bridge *b, const zcbus_topic_entry *e) {
        struct out_topic *t = calloc(1, sizeof(*t));
        char key[STATE_KEY_MAX];
        int r;

        if (!t)
                return -ENOMEM;
        t->b = b;
        t->ent = *e;
        t->reliable = e->policy == ZCBUS_POLICY_RELIABLE;
        uuid_unparse_lower(e->topic_id, t->topic_id_str);
        t->qtail = &t->qhead;
        (void)pthread_mutex_init(&t->qlock, NULL);
        (void)pthread_cond_init(&t->qcond, NULL);
        r = subj_from_topic(b->prefix, e->name, t->subject, sizeof(t->subject));
        if (r < 0) {
                topic_free(t);
                return r;
        }
        subj_stream_name(t->subject, t->stream, sizeof(t->stream));
        if (t->reliable) {
                (void)snprintf(key, sizeof(key), "out:%.*s", ZCBUS_TOPIC_MAX, e->name);
                t->pos = state_slot(b->state, key);
                if (!t->pos) {
                        log_msg("topic '%s': the state file has no room for another reliable route", e->name);
                        topic_free(t);
                        return -ENOSPC;
                }
                if (memcmp(t->pos->topic_id, e->topic_id, 16) != 0) {
                        /* A new topic of that name: its sequences start afresh. */
                        atomic_store_explicit(&t->pos->seq, 0, memory_order_relaxed);
                        memcpy(t->pos->topic_id, e->topic_id, 16);
                }
        }
        /* Made here or by the inbound side, whichever comes first: the
         * one window of the topic. */
        if (in_wants(b, e->name))
                atomic_store(&t->echo, echo_find(b, e->name, e->slot_count, true));
        r = spawn(&t->reader, reader_main, t);
        if (r < 0) {
                topic_free(t);
                return r;
        }
        if (t->reliable) {
                r = spawn(&t->sender, sender_main, t);
                t->has_sender = r == 0;
        }
        log_msg("forwarding local topic '%s' (%s) to '%s'%s%s", e->name, zcbus_policy_name(e->policy), t->subject,
                t->reliable ? " via JetStream stream " : "", t->reliable ? t->stream : "");
        (void)pthread_mutex_lock(&b->lock);
        t->next = b->outs;
        b->outs = t;
        (void)pthread_mutex_unlock(&b->lock);
        return 0;
}

/* Reap routes whose reader ended (they come back at this scan if the topic
 * is still there), then start routes for new matching topics. */
void out_scan(struct bridge *b) {
        zcbus_topic_entry ents[64];
        unsigned start = 0, total = 0;

        if (b->conf->nout == 0)
                return;
        for (;;) {
                struct out_topic **pp, *dead = NULL;

                (void)pthread_mutex_lock(&b->lock);
                for (pp = &b->outs; *pp; pp = &(*pp)->next)
                        if (atomic_load(&(*pp)->done)) {
                                dead = *pp;
                                *pp = dead->next;
                                break;
                        }
                (void)pthread_mutex_unlock(&b->lock);
                if (!dead)
                        break;
                topic_join(dead);
                topic_free(dead);
        }
        do {
                int n;

                (void)pthread_mutex_lock(&b->bus_lock);
                n = zcbus_list_topics(b->bus, start, ents, ARRAY_SIZE(ents), &total);
                (void)pthread_mutex_unlock(&b->bus_lock);
                if (n < 0) {
                        static bool said;

                        if (bus_back(b, n))
                                return; /* listed again at the next scan */
                        if (!said)
                                log_msg("cannot list local topics: %s (said once)", zcbus_strerror(n));
                        said = true;
                        return;
                }
                for (int i = 0; i < n; i++) {
                        struct out_topic *t;
                        bool have = false;

                        if (!out_wants(b, ents[i].name))
                                continue;
                        (void)pthread_mutex_lock(&b->lock);
                        for (t = b->outs; t && !have; t = t->next)
                                have = strcmp(t->ent.name, ents[i].name) == 0;
                        (void)pthread_mutex_unlock(&b->lock);
                        if (!have && topic_start(b, &ents[i]) < 0)
                                STAT_ADD(b, errors, 1);
                }
                if (n == 0)
                        break;
                start += (unsigned)n;
        } while (start < total);
}

/* zcbusd went away (err): once one listens on the socket again, hand it
 * every handle of ours (zcbus_reconnect), so that it re-learns our topics
 * and a peer that opens them meets the rings we use. True when the call
 * that failed should just be tried again later. */
static bool bus_back(struct bridge *b, int err) {
        static bool down;
        int r;

        if (err != -EPIPE && err != -ECONNRESET && err != -ENOTCONN && err != -ECONNREFUSED && err != -ENOENT &&
            err != -ETIMEDOUT)
                return false;
        if (!down)
                log_msg("zcbusd went away (%s): topics keep flowing; handing our handles back once it is up",
                        zcbus_strerror(err));
        down = true;
        (void)pthread_mutex_lock(&b->bus_lock);
        r = zcbus_reconnect(b->bus);
        (void)pthread_mutex_unlock(&b->bus_lock);
        if (r == 0 || (r != -ECONNREFUSED && r != -ENOENT && r != -EISCONN)) {
                /* Back (a refusal of one handle is logged: it keeps working). */
                if (r < 0)
                        log_msg("zcbusd is back; one handle was refused: %s (%s)", zcbus_strerror(r),
                                zcbus_last_error(b->bus));
                else
                        log_msg("zcbusd is back: every handle handed back");
                STAT_ADD(b, bus_reconnects, 1);
                down = false;
        }
        return true;
}

void out_stop_all(struct bridge *b) {
        struct out_topic *t;

        (void)pthread_mutex_lock(&b->lock);
        t = b->outs;
        b->outs = NULL;
        (void)pthread_mutex_unlock(&b->lock);
        while (t) {
                struct out_topic *next = t->next;

                topic_join(t);
                topic_free(t);
                t = next;
        }
}

void out_stats_json(struct bridge *b, FILE *f) {
        bool first = true;

        (void)fputs("[", f);
        (void)pthread_mutex_lock(&b->lock);
        for (struct out_topic *t = b->outs; t; t = t->next) {
                unsigned qn;

                (void)pthread_mutex_lock(&t->qlock);
                qn = t->qn;
                (void)pthread_mutex_unlock(&t->qlock);
                (void)fprintf(f, "%s\n    {\"topic\": ", first ? "" : ",");
                json_str(f, t->ent.name);
                (void)fputs(", \"subject\": ", f);
                json_str(f, t->subject);
                (void)fprintf(f, ", \"policy\": \"%s\"", zcbus_policy_name(t->ent.policy));
                if (t->reliable) {
                        (void)fputs(", \"stream\": ", f);
                        json_str(f, t->stream);
                        (void)fprintf(f, ", \"queued\": %u, \"position\": %" PRIu64, qn,
                                      atomic_load_explicit(&t->pos->seq, memory_order_relaxed));
                }
                (void)fprintf(f, ", \"forwarded\": %" PRIu64 ", \"dropped\": %" PRIu64 ", \"oversize\": %" PRIu64 "}",
                              atomic_load(&t->forwarded), atomic_load(&t->dropped), atomic_load(&t->oversize));
                first = false;
        }
        (void)pthread_mutex_unlock(&b->lock);
        (void)fputs(first ? "]" : "\n  ]", f);
}
