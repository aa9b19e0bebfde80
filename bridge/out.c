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
 *    core NATS, corked while the ring has more (with "batch", what it
 *    finds waiting together goes as one NATS message of records). The
 *    producer never waits for the bridge (the topic is latest); a bridge
 *    that falls a ring behind is lapped, and what it missed is counted as
 *    dropped, as is a publish libnats refuses (its reconnect buffer full)
 *    and what the reader reads while the connection does not take what
 *    it has (WRITE_AHEAD).
 *
 *  - reliable: the reader subscribes with the ring's whole history and
 *    copies messages into a bounded queue (buffer messages, buffer_bytes
 *    bytes, in flight ones included), releasing each slot at once, so the
 *    topic is held back only while that queue is full. The queue goes to
 *    JetStream in order, pipelined: up to window messages (and
 *    window_bytes of payload) are in flight at once, on the topic's own
 *    JetStream context (on link.c's publishing connection), whose ack
 *    handler (libnats's thread) marks each one acknowledged or failed and
 *    retires the acknowledged head. The reader publishes what it queues
 *    while the window has room (pump: no hand-off per message); a sender
 *    thread publishes what waited for room, retries, and takes back from
 *    libnats what got no answer (reclaim). A failed one is published
 *    again, with the same Nats-Msg-Id, until JetStream acknowledges it (a
 *    retry cannot store a message twice), before anything new is sent;
 *    but the ones after it may be stored already, so the stream can hold
 *    a message after its successors. Hence each message names its
 *    predecessor, the previous message this route sent (HDR_ORIGIN's
 *    PREV), and a receiver puts each origin's messages back in that order
 *    (in.c). The topic's position in the state file moves only over the
 *    acknowledged prefix of the window, with the last sent sequence in it
 *    (the next message's PREV after a restart). After a restart, the
 *    reader skips what the position says is stored and resumes from the
 *    ring's history (what was stored beyond the prefix is sent again and
 *    dropped by JetStream as a duplicate); sequences the ring no longer
 *    holds are counted as gaps and logged. If the queue stays full
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

#include "batch.h"
#include "bridge.h"
#include "json.h"
#include "util.h"

static bool bus_back(struct bridge *b, int err);
struct out_topic;
static void pump(struct out_topic *t, uint64_t *ret_wait_ms);

#define RECV_TIMEOUT_MS 200
/* With send_asap: a reader's publishes corked into one write while the
 * ring has more (at most this many messages and bytes). Beyond
 * WRITE_AHEAD unwritten on a connection, a reader waits for the socket,
 * up to WRITE_WAIT_MS; then (NATS not reading) a latest topic drops what
 * it reads, and a reliable one leaves its window to the sender, for
 * STUCK_MS. (libnats moves what a partial write leaves to the front of
 * its buffer: a buffer of megabytes made each write cost as much.) */
#define CORK_MAX 64
#define CORK_BYTES_MAX (64 << 10)
#define WRITE_AHEAD (256 << 10)
#define WRITE_WAIT_MS 50
#define STUCK_MS 100
/* A JetStream publish not answered within this is taken as lost. */
#define ACK_TIMEOUT_MS 2000

/* Where a queued message is, once the sender took it into its window. */
enum qstate {
        Q_INFLIGHT, /* published, its ack handler not called yet */
        Q_FAILED,   /* to be published again (retry_at) */
        Q_WITHHELD, /* test_withhold: its first publish put off */
        Q_ACKED,    /* stored */
        Q_DONE,     /* not to be sent: only moves the position */
};

struct qitem {
        struct qitem *next;
        uint64_t seq;
        uint64_t prev1; /* the predecessor it names, + 1 (0: none) */
        uint64_t retry_at; /* Q_FAILED: not before (now_ms) */
        uint64_t sent_ms;  /* Q_INFLIGHT: when */
        size_t len;
        bool skip; /* not to be sent (an echo, too big): only moves the position */
        uint8_t state;
        natsStatus err; /* Q_FAILED: why */
        int jerr;
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

        pthread_mutex_t qlock; /* the queue, the window, their items' states */
        pthread_cond_t qcond;  /* room in the queue (the reader waits) */
        pthread_cond_t scond;  /* work for the sender: a failure, the end */
        struct qitem *qhead, **qtail; /* read, not yet taken by the sender */
        unsigned qn;                  /* messages in the queue and the window */
        uint64_t qbytes;

        /* The sender's window: a ring of wcap items taken from the queue,
         * in order, their sequences strictly increasing (the sender drops
         * what it took before, which an eviction makes the reader queue
         * again), retired from the head once acknowledged or done. */
        jsCtx *js; /* the topic's own: its ack handler is on_ack(t) */
        struct qitem **win;
        unsigned wcap, whead, wn;
        unsigned inflight, nfailed, nwithheld;
        uint64_t inflight_bytes;
        uint64_t sent_hi1;   /* the highest sequence taken into the window, + 1 */
        uint64_t sent_prev1; /* the last one sent, + 1: the next one's PREV */
        uint64_t withhold_n; /* test_withhold: messages sent so far */
        bool failing;        /* said that JetStream refuses */
        bool pumping;        /* a thread is publishing (pump) */
        bool js_busy;        /* callbacks may still come: t must not be freed */
        uint64_t latest_prev1; /* latest: the last forwarded, + 1 */
        uint64_t stuck_until;  /* latest: dropping until then (now_ms), NATS not reading */
        unsigned corked;       /* the reader's publishes (and skips) not flushed yet */
        size_t corked_bytes;

        _Atomic uint64_t forwarded, dropped, oversize;
        bool oversize_said;

        /* Latest with "batch": records waiting to go as one NATS message
         * (batch.h): bn of them in bbuf, the first of sequence bseq0, the
         * last blast. */
        bool batch;
        unsigned char *bbuf;
        size_t blen, blimit; /* bbuf holds blimit */
        unsigned bn;
        uint64_t bseq0, blast;
        _Atomic uint64_t batches; /* NATS messages that carried more than one */
};

static bool stopping(const struct out_topic *t) {
        return atomic_load_explicit(&t->b->stopping, memory_order_relaxed);
}

/* v in decimal at p; returns the end. */
static char *put_dec(char *p, uint64_t v) {
        char tmp[20];
        unsigned n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                *p++ = tmp[--n];
        return p;
}

/* A message of t with sequence seq, and its origin header naming
 * predecessor prev1 - 1 (prev1 0: none); nbatch > 1: a batch of that
 * many records (batch.h). The header is put together by
 * hand: snprintf was a tenth of a sending thread's time at 64 B. */
static natsStatus make_msg(struct out_topic *t, uint64_t seq, uint64_t prev1, const void *data, size_t len,
                           unsigned nbatch, natsMsg **ret) {
        struct bridge *b = t->b;
        /* A session is always there (main.c), but the header's grammar
         * needs one: the nil uuid if not. */
        const char *session = b->session_str[0] ? b->session_str : "00000000-0000-0000-0000-000000000000";
        char origin[4 * 37 + 2 * 20 + 1], *p = origin;
        natsMsg *m = NULL;
        natsStatus s;

        p = (char *)memcpy(p, b->bus_id_str, 36) + 36;
        *p++ = ' ';
        p = (char *)memcpy(p, t->topic_id_str, 36) + 36;
        *p++ = ' ';
        p = put_dec(p, seq);
        *p++ = ' ';
        p = (char *)memcpy(p, session, 36) + 36;
        *p++ = ' ';
        if (prev1)
                p = put_dec(p, prev1 - 1);
        else
                *p++ = '-';
        *p = '\0';
        s = natsMsg_Create(&m, t->subject, NULL, data, (int)len);
        if (s == NATS_OK)
                s = natsMsgHeader_Set(m, HDR_ORIGIN, origin);
        if (s == NATS_OK && nbatch > 1) {
                char n[12];

                *put_dec(n, nbatch) = '\0';
                s = natsMsgHeader_Set(m, HDR_BATCH, n);
        }
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

/* May a latest topic publish now? With send_asap: not while the socket
 * does not take what waits (then the message is dropped). The reader
 * asks once per corked run: at most CORK_BYTES_MAX more go in. */
static bool latest_room(struct out_topic *t) {
        struct bridge *b = t->b;
        int buffered;

        if (!b->nio)
                return true;
        buffered = natsConnection_Buffered(b->nc);
        if (buffered < 0 || buffered <= WRITE_AHEAD)
                return true;
        if (now_ms() < t->stuck_until)
                return false;
        if (natsio_drain(b->nio, WRITE_AHEAD, WRITE_WAIT_MS) == 0)
                return true;
        t->stuck_until = now_ms() + STUCK_MS;
        return false;
}

/* Publish m, corked on the main connection with send_asap (the reader
 * flushes when the ring has no more, or after CORK_MAX). */
static void forward_latest(struct out_topic *t, zcbus_sub *sub, zcbus_msg *m) {
        struct bridge *b = t->b;
        uint64_t seq = m->seq;
        natsMsg *nm = NULL;
        natsStatus s;

        if (b->nio)
                natsio_cork(b->nio);
        s = make_msg(t, seq, t->latest_prev1, m->data, m->len, 1, &nm);
        (void)zcbus_sub_release(sub, m);
        if (s == NATS_OK)
                s = natsConnection_PublishMsg(b->nc, nm);
        natsMsg_Destroy(nm);
        if (s == NATS_OK) {
                t->latest_prev1 = seq + 1;
                atomic_fetch_add_explicit(&t->forwarded, 1, memory_order_relaxed);
                STAT_ADD(b, forwarded, 1);
        } else {
                atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
                STAT_ADD(b, dropped, 1);
        }
}

/* Latest with "batch": publish what waits in the batch, one record as a
 * message of its own (corked like forward_latest). */
static void send_batch(struct out_topic *t) {
        struct bridge *b = t->b;
        natsMsg *nm = NULL;
        natsStatus s;
        unsigned n = t->bn;

        if (n == 0)
                return;
        if (b->nio)
                natsio_cork(b->nio);
        if (n == 1)
                s = make_msg(t, t->bseq0, t->latest_prev1, t->bbuf + BATCH_REC, t->blen - BATCH_REC, 1, &nm);
        else
                s = make_msg(t, t->bseq0, t->latest_prev1, t->bbuf, t->blen, n, &nm);
        if (s == NATS_OK)
                s = natsConnection_PublishMsg(b->nc, nm);
        natsMsg_Destroy(nm);
        if (s == NATS_OK) {
                t->latest_prev1 = t->blast + 1;
                atomic_fetch_add_explicit(&t->forwarded, n, memory_order_relaxed);
                STAT_ADD(b, forwarded, n);
                if (n > 1)
                        atomic_fetch_add_explicit(&t->batches, 1, memory_order_relaxed);
        } else {
                atomic_fetch_add_explicit(&t->dropped, n, memory_order_relaxed);
                STAT_ADD(b, dropped, n);
        }
        t->bn = 0;
        t->blen = 0;
}

/* Latest with "batch": add m to the batch (sending what waits first if m
 * does not fit) and release it. */
static void batch_add(struct out_topic *t, zcbus_sub *sub, zcbus_msg *m) {
        if (BATCH_REC + m->len > t->blimit) { /* alone anyway: no copy into the batch */
                send_batch(t);
                forward_latest(t, sub, m);
                return;
        }
        if (t->bn && (t->bn == BATCH_MAX || t->blen + BATCH_REC + m->len > t->blimit ||
                      m->seq - t->blast > UINT32_MAX))
                send_batch(t);
        if (t->bn == 0)
                t->bseq0 = m->seq;
        t->blen += batch_put(t->bbuf + t->blen, t->bn ? (uint32_t)(m->seq - t->blast) : 0, m->data, m->len);
        t->blast = m->seq;
        t->bn++;
        (void)zcbus_sub_release(sub, m);
}

/* Out with what the reader corked or batched (reliable: its JetStream
 * publishes, on the publishing connection). */
static void route_flush(struct out_topic *t) {
        send_batch(t);
        natsio_flush(t->reliable ? t->b->pnio : t->b->nio);
        t->corked = 0;
        t->corked_bytes = 0;
}

/* One more message (len bytes) corked or batched by the reader: out they
 * go at CORK_MAX or CORK_BYTES_MAX, if the ring has not run dry first. */
static void corked_one(struct out_topic *t, size_t len) {
        t->corked++;
        t->corked_bytes += len;
        if (t->corked >= CORK_MAX || t->corked_bytes >= CORK_BYTES_MAX)
                route_flush(t);
}

/* Has the queue no room for another len bytes? Under qlock. */
static bool queue_full(const struct out_topic *t, size_t len) {
        const struct bconf *c = t->b->conf;

        return t->qn >= c->buffer || (t->qn > 0 && t->qbytes + len > c->buffer_bytes);
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
        struct qitem *it = malloc(sizeof(*it) + (skip ? 0 : m->len));
        int r = 0;

        if (!it)
                return -ENOMEM;
        it->next = NULL;
        it->seq = m->seq;
        it->skip = skip;
        it->prev1 = 0;
        it->retry_at = 0;
        it->state = Q_DONE;
        it->len = skip ? 0 : m->len;
        memcpy(it->data, m->data, it->len);
        (void)pthread_mutex_lock(&t->qlock);
        while (queue_full(t, it->len) && !stopping(t)) {
                struct timespec ts;
                zcbus_msg probe;

                /* What this thread corked goes out first: its acks make
                 * the room (flushed without qlock: on_ack takes it). */
                (void)pthread_mutex_unlock(&t->qlock);
                natsio_flush(t->b->pnio);
                (void)pthread_mutex_lock(&t->qlock);
                if (!queue_full(t, it->len) || stopping(t))
                        break;

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
        pump(t, NULL); /* on this thread: no hand-off per message */
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
                /* With publishes corked, a look without waiting: the
                 * ring has no more, so out they go. */
                r = zcbus_sub_recv(sub, &m, t->corked ? 0 : RECV_TIMEOUT_MS);
                if (r < 0 && t->corked)
                        route_flush(t);
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
                        size_t len = m.len;

                        if (skip) {
                                (void)zcbus_sub_release(sub, &m);
                                /* It counts too: a run of skipped ones must
                                 * not keep what is corked from going out. */
                                if (t->corked)
                                        corked_one(t, 0);
                        } else if (t->corked == 0 && !latest_room(t)) {
                                (void)zcbus_sub_release(sub, &m);
                                atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
                                STAT_ADD(b, dropped, 1);
                        } else {
                                if (t->batch)
                                        batch_add(t, sub, &m);
                                else
                                        forward_latest(t, sub, &m);
                                if (b->nio || t->batch)
                                        corked_one(t, len);
                        }
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
                /* What pump published stays corked while the ring has
                 * more (up to CORK_MAX, CORK_BYTES_MAX). */
                if (b->pnio)
                        corked_one(t, m.len);
        }
        if (t->corked)
                route_flush(t);
        if (sub)
                close_sub(t, sub);
        atomic_store(&t->done, true);
        ev_async_send(b->loop, &b->wake);
        return NULL;
}

/* Everything up to seq is done with: stored, or not to be sent; sent: the
 * last message that was sent, + 1, if seq is one. Only forward: after an
 * eviction the reader reads the ring again from the position. PREV before
 * the position: a kill between the two stores leaves a PREV that names a
 * message at or above the position, which is sent again first. */
static void advance(struct out_topic *t, uint64_t seq, uint64_t sent1) {
        struct echo *e = atomic_load_explicit(&t->echo, memory_order_acquire);

        if (seq + 1 <= atomic_load_explicit(&t->pos->seq, memory_order_relaxed))
                return;
        if (sent1)
                atomic_store_explicit(&t->pos->aux, sent1, memory_order_relaxed);
        atomic_store_explicit(&t->pos->seq, seq + 1, memory_order_release); /* after aux, for a reader of the file */
        if (e)
                echo_release(e, seq + 1);
}

static void retire(struct out_topic *t);

static struct qitem *win_at(const struct out_topic *t, unsigned i) {
        return t->win[(t->whead + i) % t->wcap];
}

/* The window's item of sequence seq (sequences increase along it), or
 * NULL. Under qlock. */
static struct qitem *win_find(const struct out_topic *t, uint64_t seq) {
        unsigned lo = 0, hi = t->wn;

        while (lo < hi) {
                unsigned mid = lo + (hi - lo) / 2;
                struct qitem *it = win_at(t, mid);

                if (it->seq == seq)
                        return it;
                if (it->seq < seq)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* JetStream's answer to one publish of ours, or libnats's timeout
 * (MaxWait), on the thread of the context's reply subscription. libnats
 * counts the publish as pending until this returns, which is what lets
 * the sender wait for the last of them before it frees t. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
        struct out_topic *t = closure;
        const char *id = NULL, *colon;
        struct qitem *it = NULL;
        char *end;
        uint64_t seq;

        /* Our own message: "BUS:TOPIC:SEQ" (publish_one). */
        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id && (colon = strrchr(id, ':'))) {
                errno = 0;
                seq = strtoull(colon + 1, &end, 10);
                (void)pthread_mutex_lock(&t->qlock);
                if (errno == 0 && *end == '\0')
                        it = win_find(t, seq);
                if (it && it->state == Q_INFLIGHT) {
                        t->inflight--;
                        t->inflight_bytes -= it->len;
                        if (pa) {
                                it->state = Q_ACKED;
                                retire(t);
                        } else {
                                it->state = Q_FAILED;
                                it->err = pae ? pae->Err : NATS_ERR;
                                it->jerr = pae ? (int)pae->ErrCode : 0;
                                /* A timeout is a wait already served. */
                                it->retry_at = it->err == NATS_TIMEOUT ? 0 : now_ms() + 100;
                                t->nfailed++;
                        }
                        /* The sender publishes what waits for room, or a
                         * retry, unless the reader is at it. */
                        if (!t->pumping && (t->nfailed || t->nwithheld || t->qhead))
                                (void)pthread_cond_signal(&t->scond);
                }
                (void)pthread_mutex_unlock(&t->qlock);
        }
        natsMsg_Destroy(msg); /* ours to destroy, with an AckHandler */
}

/* Retire the window's acknowledged or done head. Under qlock. */
static void retire(struct out_topic *t) {
        struct bridge *b = t->b;
        bool freed = false;

        while (t->wn > 0) {
                struct qitem *it = t->win[t->whead];

                if (it->state != Q_ACKED && it->state != Q_DONE)
                        break;
                if (it->state == Q_ACKED) {
                        /* Position after the ack: a crash before this store
                         * re-sends the message with the same id, which
                         * JetStream drops (dup_window_ms). */
                        advance(t, it->seq, it->seq + 1);
                        atomic_fetch_add_explicit(&t->forwarded, 1, memory_order_relaxed);
                        STAT_ADD(b, forwarded, 1);
                        if (t->failing && t->nfailed == 0) {
                                log_msg("topic '%s': JetStream accepts messages again", t->ent.name);
                                t->failing = false;
                        }
                } else {
                        advance(t, it->seq, 0);
                }
                t->whead = (t->whead + 1) % t->wcap;
                t->wn--;
                t->qn--;
                t->qbytes -= it->len;
                free(it);
                freed = true;
        }
        if (freed)
                (void)pthread_cond_broadcast(&t->qcond); /* the reader may wait for room */
}

/* The next item to publish, or NULL (then *wait_ms says how long until a
 * retry is due, if one is). In order: a failed one (the first: nothing new
 * goes while JetStream refuses), then the queue's head if the window has
 * room, then a withheld one (test_withhold) once nothing new can go. Under
 * qlock. */
static struct qitem *pick(struct out_topic *t, uint64_t *wait_ms) {
        const struct bconf *c = t->b->conf;

        *wait_ms = 100;
        if (!t->js)
                return NULL; /* not open yet, or closed */
        if (t->nfailed) {
                uint64_t now = now_ms();

                for (unsigned i = 0; i < t->wn; i++) {
                        struct qitem *it = win_at(t, i);

                        if (it->state != Q_FAILED)
                                continue;
                        if (it->retry_at > now) {
                                *wait_ms = it->retry_at - now;
                                return NULL;
                        }
                        t->nfailed--;
                        return it;
                }
        }
        while (t->qhead && t->wn < t->wcap &&
               (t->inflight == 0 || t->inflight_bytes + t->qhead->len <= c->window_bytes)) {
                struct qitem *it = t->qhead;

                t->qhead = it->next;
                if (!t->qhead)
                        t->qtail = &t->qhead;
                it->next = NULL;
                if (it->seq + 1 <= t->sent_hi1) {
                        /* Taken before (queued again after an eviction). */
                        t->qn--;
                        t->qbytes -= it->len;
                        free(it);
                        continue;
                }
                t->sent_hi1 = it->seq + 1;
                t->win[(t->whead + t->wn) % t->wcap] = it;
                t->wn++;
                if (it->skip) {
                        it->state = Q_DONE;
                        continue;
                }
                it->prev1 = t->sent_prev1;
                t->sent_prev1 = it->seq + 1;
                if (c->test_withhold && ++t->withhold_n % c->test_withhold == 0) {
                        it->state = Q_WITHHELD;
                        t->nwithheld++;
                        continue;
                }
                return it;
        }
        if (t->nwithheld) {
                for (unsigned i = 0; i < t->wn; i++) {
                        struct qitem *it = win_at(t, i);

                        if (it->state == Q_WITHHELD) {
                                t->nwithheld--;
                                return it;
                        }
                }
        }
        return NULL;
}

/* Publish it (Q_INFLIGHT already: its ack may come before this returns).
 * Not under qlock. */
static natsStatus publish_one(struct out_topic *t, struct qitem *it) {
        struct bridge *b = t->b;
        char msgid[128];
        jsPubOptions po;
        natsMsg *nm = NULL;
        natsStatus s;

        (void)snprintf(msgid, sizeof(msgid), "%s:%s:%" PRIu64, b->bus_id_str, t->topic_id_str, it->seq);
        (void)jsPubOptions_Init(&po);
        po.MsgId = msgid;
        /* No MaxWait: libnats would keep a timer entry per message and,
         * at its deadline, pass a message through the reply thread even
         * for the ones long answered; the sender looks for lost ones
         * itself (reclaim). */
        s = make_msg(t, it->seq, it->prev1, it->data, it->len, 1, &nm);
        if (s == NATS_OK)
                s = js_PublishMsgAsync(t->js, &nm, &po); /* takes nm on success */
        natsMsg_Destroy(nm);
        return s;
}

static void say_failed(struct out_topic *t, const struct qitem *it) {
        STAT_ADD(t->b, retries, 1);
        if (!t->failing)
                log_msg("topic '%s': JetStream publish of sequence %" PRIu64 " failed: %s (error %d); "
                        "retrying until it is stored (messages after it may be stored first: receivers put "
                        "them back in order)",
                        t->ent.name, it->seq, natsStatus_GetText(it->err), it->jerr);
        t->failing = true;
}

static void qwait(struct out_topic *t, pthread_cond_t *cond, uint64_t ms) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)(ms / 1000);
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
        }
        (void)pthread_cond_timedwait(cond, &t->qlock, &ts);
}

/* Publish what can go now, on the calling thread (the reader's, as it
 * queues a message, or the sender's), one thread at a time: the other
 * leaves it to the one at work, which picks again after each publish.
 * Under qlock, released while it publishes. ret_wait_ms: how long until a
 * retry is due, when nothing can go. */
static void pump(struct out_topic *t, uint64_t *ret_wait_ms) {
        uint64_t wait_ms = 100;
        struct qitem *it;

        if (t->pumping) {
                if (ret_wait_ms)
                        *ret_wait_ms = 100;
                return;
        }
        t->pumping = true;
        if (t->b->pnio)
                natsio_cork(t->b->pnio); /* the caller flushes */
        while (!stopping(t)) {
                natsStatus s;

                /* No more than WRITE_AHEAD unwritten on the publishing
                 * connection (a stalled socket and reclaim's resends
                 * would grow it without end): wait for the socket, or
                 * leave the rest for the sender's next round. Before
                 * pick, which takes what it returns into the window. */
                if (t->b->pnio && natsConnection_Buffered(t->b->pnc) > WRITE_AHEAD) {
                        int r;

                        (void)pthread_mutex_unlock(&t->qlock);
                        r = natsio_drain(t->b->pnio, WRITE_AHEAD, WRITE_WAIT_MS);
                        natsio_cork(t->b->pnio);
                        (void)pthread_mutex_lock(&t->qlock);
                        if (r < 0) {
                                wait_ms = STUCK_MS;
                                break;
                        }
                }
                it = pick(t, &wait_ms);
                if (!it)
                        break;
                if (it->state == Q_FAILED)
                        say_failed(t, it);
                it->state = Q_INFLIGHT;
                it->sent_ms = now_ms();
                t->inflight++;
                t->inflight_bytes += it->len;
                (void)pthread_mutex_unlock(&t->qlock);
                s = publish_one(t, it);
                (void)pthread_mutex_lock(&t->qlock);
                if (s != NATS_OK && it->state == Q_INFLIGHT) {
                        /* Not sent: no ack will come. */
                        t->inflight--;
                        t->inflight_bytes -= it->len;
                        it->state = Q_FAILED;
                        it->err = s;
                        it->jerr = 0;
                        it->retry_at = now_ms() + 100;
                        t->nfailed++;
                }
        }
        t->pumping = false;
        if (ret_wait_ms)
                *ret_wait_ms = wait_ms;
}

/* The oldest publish in flight has had no answer for ACK_TIMEOUT_MS (a
 * NATS server died with it, the connection broke): take every pending
 * one back from libnats, which forgets them (a late answer is ignored),
 * and publish them again. Under qlock. */
static void reclaim(struct out_topic *t) {
        natsMsgList pending = {0};
        uint64_t now = now_ms();
        struct qitem *oldest = NULL;
        unsigned n = 0;

        for (unsigned i = 0; i < t->wn && !oldest; i++)
                if (win_at(t, i)->state == Q_INFLIGHT)
                        oldest = win_at(t, i);
        if (!oldest || now < oldest->sent_ms + ACK_TIMEOUT_MS || !t->js)
                return;
        (void)pthread_mutex_unlock(&t->qlock);
        if (js_PublishAsyncGetPendingList(&pending, t->js) != NATS_OK)
                pending.Count = 0;
        (void)pthread_mutex_lock(&t->qlock);
        for (int i = 0; i < pending.Count; i++) {
                const char *id = NULL, *colon;
                struct qitem *it = NULL;
                char *end;
                uint64_t seq;

                if (natsMsgHeader_Get(pending.Msgs[i], "Nats-Msg-Id", &id) != NATS_OK || !id ||
                    !(colon = strrchr(id, ':')))
                        continue;
                errno = 0;
                seq = strtoull(colon + 1, &end, 10);
                if (errno == 0 && *end == '\0')
                        it = win_find(t, seq);
                if (it && it->state == Q_INFLIGHT) {
                        t->inflight--;
                        t->inflight_bytes -= it->len;
                        it->state = Q_FAILED;
                        it->err = NATS_TIMEOUT;
                        it->jerr = 0;
                        it->retry_at = 0;
                        t->nfailed++;
                        n++;
                }
        }
        natsMsgList_Destroy(&pending);
        log_debug("topic '%s': %u JetStream publishes unanswered for %d ms: publishing them again", t->ent.name, n,
                  ACK_TIMEOUT_MS);
}

static int sender_open(struct out_topic *t) {
        struct bridge *b = t->b;
        jsCtx *js = NULL;
        jsOptions jo;
        natsStatus s;

        t->wcap = b->conf->window;
        t->win = calloc(t->wcap, sizeof(*t->win));
        if (!t->win)
                return -ENOMEM;
        (void)jsOptions_Init(&jo);
        jo.Wait = 2000;
        /* The window is ours; libnats's own limit (which would block the
         * publish for the ack handler) stays off. */
        jo.PublishAsync.MaxPending = 0;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = t;
        s = natsConnection_JetStream(&js, b->pnc ? b->pnc : b->nc, &jo);
        if (s != NATS_OK) {
                log_msg("topic '%s': NATS JetStream context: %s", t->ent.name, natsStatus_GetText(s));
                return -ENOMEM;
        }
        (void)pthread_mutex_lock(&t->qlock);
        /* Resume where the acknowledged prefix ends. */
        t->sent_hi1 = atomic_load_explicit(&t->pos->seq, memory_order_relaxed);
        t->sent_prev1 = atomic_load_explicit(&t->pos->aux, memory_order_relaxed);
        if (t->sent_prev1 > t->sent_hi1)
                t->sent_prev1 = 0; /* not from us (a file of another topic): none */
        t->js = js; /* from now on pick() gives work */
        (void)pthread_mutex_unlock(&t->qlock);
        return 0;
}

/* Wait for the last ack handler call, then drop the context. Every
 * publish has a MaxWait, so libnats times each out by then. */
static void sender_close(struct out_topic *t) {
        jsPubOptions po;
        jsCtx *js;

        /* The reader may be publishing: let it finish, and start no more. */
        (void)pthread_mutex_lock(&t->qlock);
        while (t->pumping)
                qwait(t, &t->scond, 10);
        js = t->js;
        t->js = NULL;
        (void)pthread_mutex_unlock(&t->qlock);
        if (!js)
                return;
        /* The loop ends with publishes in flight only when the bridge
         * stops: a moment for their acks, then the rest is left to the
         * next start, which sends them again from the position. */
        (void)jsPubOptions_Init(&po);
        po.MaxWait = 200;
        if (js_PublishAsyncComplete(js, &po) != NATS_OK) {
                natsMsgList pending = {0};

                /* Unanswered: libnats forgets them, and calls no one
                 * for them any more. */
                if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK)
                        natsMsgList_Destroy(&pending);
                po.MaxWait = 100;
                if (js_PublishAsyncComplete(js, &po) != NATS_OK) {
                        log_msg("topic '%s': a JetStream ack handler still runs at exit; keeping the route's memory",
                                t->ent.name);
                        t->js_busy = true;
                }
        }
        jsCtx_Destroy(js);
}

static void *sender_main(void *arg) {
        struct out_topic *t = arg;
        struct bridge *b = t->b;

        if (link_ensure_stream(b, t->stream, t->subject, UINT64_MAX) < 0)
                return NULL;
        if (sender_open(t) < 0) {
                STAT_ADD(b, errors, 1);
                return NULL;
        }
        (void)pthread_mutex_lock(&t->qlock);
        while (!stopping(t)) {
                uint64_t wait_ms;

                retire(t);
                reclaim(t);
                pump(t, &wait_ms); /* retries, and what waited for room */
                (void)pthread_mutex_unlock(&t->qlock);
                natsio_flush(b->pnio); /* without qlock: on_ack takes it */
                (void)pthread_mutex_lock(&t->qlock);
                if (t->wn == 0 && !t->qhead && atomic_load(&t->done))
                        break; /* the reader ended and everything is stored */
                qwait(t, &t->scond, wait_ms);
        }
        (void)pthread_mutex_unlock(&t->qlock);
        sender_close(t);
        return NULL;
}

static void topic_free(struct out_topic *t) {
        struct qitem *it, *next;

        if (!t || t->js_busy)
                return;
        for (it = t->qhead; it; it = next) {
                next = it->next;
                free(it);
        }
        for (unsigned i = 0; i < t->wn; i++)
                free(win_at(t, i));
        free(t->win);
        free(t->bbuf);
        (void)pthread_mutex_destroy(&t->qlock);
        (void)pthread_cond_destroy(&t->qcond);
        (void)pthread_cond_destroy(&t->scond);
        free(t);
}

static void topic_join(struct out_topic *t) {
        (void)pthread_join(t->reader, NULL);
        if (t->has_sender) {
                (void)pthread_mutex_lock(&t->qlock);
                (void)pthread_cond_broadcast(&t->qcond);
                (void)pthread_cond_broadcast(&t->scond);
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

/* The first "out" line whose pattern matches topic name, or NULL. */
static const struct bconf_out *out_match(struct bridge *b, const char *name) {
        char subj[SUBJ_MAX], pat[SUBJ_MAX];

        if (subj_from_topic(b->prefix, name, subj, sizeof(subj)) < 0)
                return NULL;
        for (unsigned i = 0; i < b->conf->nout; i++)
                if (subj_from_pattern(b->prefix, b->conf->out[i].pattern, pat, sizeof(pat)) == 0 &&
                    subj_match(pat, subj))
                        return &b->conf->out[i];
        return NULL;
}

bool out_wants(struct bridge *b, const char *name) {
        return out_match(b, name) != NULL;
}

static int topic_start(struct bridge *b, const zcbus_topic_entry *e) {
        struct out_topic *t = calloc(1, sizeof(*t));
        const struct bconf_out *oc;
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
        (void)pthread_cond_init(&t->scond, NULL);
        r = subj_from_topic(b->prefix, e->name, t->subject, sizeof(t->subject));
        if (r < 0) {
                topic_free(t);
                return r;
        }
        subj_stream_name(t->subject, t->stream, sizeof(t->stream));
        oc = out_match(b, e->name);
        if (!t->reliable && oc && oc->batch) {
                /* A batch stays within 64 KiB and max_payload; a message
                 * that does not fit with its record header goes alone. */
                t->batch = true;
                t->blimit = MIN((size_t)CORK_BYTES_MAX, (size_t)(b->max_payload > HDR_ROOM ? b->max_payload - HDR_ROOM : 0));
                t->bbuf = malloc(t->blimit ? t->blimit : 1);
                if (!t->bbuf) {
                        topic_free(t);
                        return -ENOMEM;
                }
        }
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
        log_msg("forwarding local topic '%s' (%s) to '%s'%s%s%s", e->name, zcbus_policy_name(e->policy), t->subject,
                t->reliable ? " via JetStream stream " : "", t->reliable ? t->stream : "", t->batch ? ", batched" : "");
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
                unsigned qn, wn, inflight;

                (void)pthread_mutex_lock(&t->qlock);
                qn = t->qn;
                wn = t->wn;
                inflight = t->inflight;
                (void)pthread_mutex_unlock(&t->qlock);
                (void)fprintf(f, "%s\n    {\"topic\": ", first ? "" : ",");
                json_str(f, t->ent.name);
                (void)fputs(", \"subject\": ", f);
                json_str(f, t->subject);
                (void)fprintf(f, ", \"policy\": \"%s\"", zcbus_policy_name(t->ent.policy));
                if (t->reliable) {
                        (void)fputs(", \"stream\": ", f);
                        json_str(f, t->stream);
                        (void)fprintf(f, ", \"queued\": %u, \"window\": %u, \"in_flight\": %u, \"position\": %" PRIu64, qn, wn,
                                      inflight, atomic_load_explicit(&t->pos->seq, memory_order_relaxed));
                }
                (void)fprintf(f,
                              ", \"forwarded\": %" PRIu64 ", \"dropped\": %" PRIu64 ", \"oversize\": %" PRIu64
                              ", \"batches\": %" PRIu64 "}",
                              atomic_load(&t->forwarded), atomic_load(&t->dropped), atomic_load(&t->oversize),
                              atomic_load(&t->batches));
                first = false;
        }
        (void)pthread_mutex_unlock(&b->lock);
        (void)fputs(first ? "]" : "\n  ]", f);
}
