/* SPDX-License-Identifier: MIT */
/*
 * in.c: NATS subjects coming in, published on the local bus.
 *
 * Each "in" line is one NATS subscription: a latest route a core
 * subscription of PREFIX.PATTERN, a reliable route an ordered JetStream
 * consumer of its topic's stream (in order, no acks; libnats re-creates it
 * from the last stream sequence it saw when it misses heartbeats or
 * sequences, e.g. when the server holding it dies). A reliable route
 * starts from its position in the state file (the last stream sequence
 * it delivered), or from the beginning of the stream on the first start.
 *
 * What arrives is checked in this order:
 *  1. origin == this bus: our own message back (the stream of a topic we
 *     also send, or another bridge's echo). Dropped, counted as a loop.
 *  2. (origin, topic id, seq) not above the last seen of that origin and
 *     topic: a duplicate (two bridges of one bus, overlapping routes, a
 *     re-sent message). Dropped, counted. The table is in memory,
 *     DEDUP_SLOTS entries; a reliable route also has its stream position.
 *  3. Published on the local topic: latest without waiting (a full ring
 *     of held slots drops it, counted), reliable waiting for room.
 * A message without a valid origin header (a plain NATS publisher) is delivered
 * as it is.
 *
 * A reliable route also puts each origin's messages back in the order
 * they were sent: the sending bridge pipelines its JetStream publishes,
 * and one that failed and was retried is stored after its successors.
 * Each message names its predecessor (PREV, bridge.h); per origin (bus,
 * topic) the route keeps the last sequence it delivered, in the state
 * file ("ord:" slots, ORDER_CHAINS per route, the least recently used
 * one taken over by a new origin), and
 *  - a message at or below it is a duplicate (or, if it falls in the
 *    last gap given up on, late): dropped, counted;
 *  - one whose PREV is at or below it (or that names none) is delivered,
 *    and after it every held message that is now next;
 *  - any other is held, in a buffer of at most reorder messages and
 *    reorder_bytes bytes for the whole route.
 * A predecessor that does not come within reorder_ms of the first held
 * message (of its origin; each delivery restarts the wait) is given up
 * on: what the origin holds is delivered in order and each missing link
 * counted (reorder_gaps). A full buffer gives up on the origin that has
 * waited longest in the same way, so a forged PREV costs at most the
 * buffer and reorder_ms, never a stall. The route's stream position
 * stays below the first held message, so that a restart reads held ones
 * again; the per-origin sequences make what was delivered after them
 * duplicates then.
 *
 * A topic bridged both ways is also read by its outbound route: the local
 * producer records each message in the topic's echo window (echo.h)
 * before it commits it, so that the route does not send it back.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "bridge.h"
#include "json.h"
#include "util.h"

#define DEDUP_SLOTS 4096
#define SEND_TIMEOUT_MS 500
#define ORDER_CHAINS 8 /* origins whose order a reliable route keeps */
#define TICK_MS 100    /* how often reorder_ms deadlines are looked at */
#define HELD_OVERHEAD 256 /* bytes counted per held message besides its payload */

struct local_pub {
        struct local_pub *next;
        char name[ZCBUS_TOPIC_MAX + 1];
        zcbus_pub *pub;
        pthread_mutex_t lock; /* pub */
        struct echo *echo;    /* if an "out" pattern matches the topic too */
};

struct origin {
        uint8_t bus[16];
        uint8_t topic[16];
        uint64_t seq;
        uint64_t prev1; /* PREV + 1; 0: none, or not said */
};

/* A message held back until its predecessor is delivered. */
struct held {
        struct held *next;
        natsMsg *m;
        struct origin o;
        uint64_t sseq;
        size_t bytes;
};

/* One origin's order on a reliable route. */
struct chain {
        bool used;
        uint8_t topic[16];
        uint64_t hash;   /* of (bus, topic): with topic, who it is */
        uint64_t last1;  /* the last sequence delivered, + 1 */
        uint64_t gap_lo, gap_hi; /* the last gap given up on: [lo, hi) */
        uint64_t used_ms;
        uint64_t deadline;   /* while it holds: when to give up */
        struct held *held;   /* by sequence */
        unsigned nheld;
        struct state_slot *slot; /* "ord:I:STREAM", or NULL */
};

struct in_route {
        struct bridge *b;
        const struct bconf_in *cf;
        char subject[SUBJ_MAX];
        char stream[STREAM_NAME_MAX];
        natsSubscription *sub;
        struct state_slot *pos;
        _Atomic uint64_t received;
        bool size_said, batch_said;

        /* Reliable: the order of its origins, under olock (the NATS
         * callback and the ticker). */
        pthread_mutex_t olock;
        struct chain chains[ORDER_CHAINS];
        unsigned nheld;
        uint64_t held_bytes;
        uint64_t last_sseq; /* the last stream sequence handled */
        _Atomic unsigned held_now;
        _Atomic uint64_t held, gaps, late;
        bool gap_said;

        /* Its own ticker (reorder_ms): a route whose local ring is full
         * stalls its own give-ups, not another route's. */
        pthread_t ticker;
        bool ticker_on;

        /* The subscription's last callback has returned (libnats's
         * on-complete): only then may what the callback uses go. */
        pthread_mutex_t done_lock;
        pthread_cond_t done_cond;
        bool done, done_cb;
};

struct dedup_ent {
        uint8_t key[32]; /* origin bus id, topic id */
        uint64_t seq;
        bool used;
};

struct dedup {
        pthread_mutex_t lock;
        unsigned n;
        struct dedup_ent e[DEDUP_SLOTS];
};

/* Was (origin, topic, seq) seen? Records it if not. */
static bool dedup_seen(struct bridge *b, const uint8_t origin[16], const uint8_t topic[16], uint64_t seq) {
        struct dedup *d = b->dedup;
        uint8_t key[32];
        uint64_t h;
        bool seen = false;

        memcpy(key, origin, 16);
        memcpy(key + 16, topic, 16);
        h = hash64(key, sizeof(key));
        (void)pthread_mutex_lock(&d->lock);
        if (d->n >= DEDUP_SLOTS * 3 / 4) {
                /* Full of origins and topics: start again (what is lost is
                 * only the memory of very old senders). */
                memset(d->e, 0, sizeof(d->e));
                d->n = 0;
                log_msg("duplicate filter: more than %u origin topics, forgetting them", DEDUP_SLOTS * 3 / 4);
        }
        for (unsigned i = 0; i < DEDUP_SLOTS; i++) {
                struct dedup_ent *e = &d->e[(h + i) % DEDUP_SLOTS];

                if (!e->used) {
                        memcpy(e->key, key, sizeof(key));
                        e->seq = seq;
                        e->used = true;
                        d->n++;
                        break;
                }
                if (memcmp(e->key, key, sizeof(key)) == 0) {
                        seen = seq <= e->seq;
                        if (!seen)
                                e->seq = seq;
                        break;
                }
        }
        (void)pthread_mutex_unlock(&d->lock);
        return seen;
}

static struct local_pub *find_pub_locked(struct bridge *b, const char *name) {
        for (struct local_pub *p = b->pubs; p; p = p->next)
                if (strcmp(p->name, name) == 0)
                        return p;
        return NULL;
}

/* The local producer of topic name, opened on first use. */
static struct local_pub *get_pub(struct in_route *rt, const char *name) {
        struct bridge *b = rt->b;
        struct local_pub *p;
        zcbus_topic_opts o = {
                .size = sizeof(o),
                .slot_count = rt->cf->slot_count ? rt->cf->slot_count : b->conf->slot_count,
                .slot_size = rt->cf->slot_size ? rt->cf->slot_size : b->conf->slot_size,
                .policy = rt->cf->policy,
        };
        int r;

        (void)pthread_mutex_lock(&b->lock);
        p = find_pub_locked(b, name);
        (void)pthread_mutex_unlock(&b->lock);
        if (p)
                return p;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        (void)snprintf(p->name, sizeof(p->name), "%s", name);
        (void)pthread_mutex_init(&p->lock, NULL);
        (void)pthread_mutex_lock(&b->bus_lock);
        r = zcbus_pub_open(b->bus, name, &o, &p->pub);
        if (r == -EEXIST) {
                /* It exists with another shape: take it as it is. */
                log_msg("local topic '%s' exists with other options (%s); publishing into it as it is", name,
                        zcbus_last_error(b->bus));
                o = (zcbus_topic_opts){.size = sizeof(o)};
                r = zcbus_pub_open(b->bus, name, &o, &p->pub);
        }
        if (r < 0)
                log_msg("cannot publish on local topic '%s': %s %s", name, zcbus_strerror(r), zcbus_last_error(b->bus));
        (void)pthread_mutex_unlock(&b->bus_lock);
        if (r < 0) {
                (void)pthread_mutex_destroy(&p->lock);
                free(p);
                return NULL;
        }
        if (out_wants(b, name)) {
                zcbus_topic_info info = {.size = sizeof(info)};

                /* Before the first publish: its window, sized by the ring. */
                (void)zcbus_pub_info(p->pub, &info);
                p->echo = echo_find(b, name, info.slot_count, true);
        }
        (void)pthread_mutex_lock(&b->lock);
        if (find_pub_locked(b, name)) {
                /* Another route opened it meanwhile: keep theirs. */
                struct local_pub *other = find_pub_locked(b, name);

                (void)pthread_mutex_unlock(&b->lock);
                (void)pthread_mutex_lock(&b->bus_lock);
                zcbus_pub_close(p->pub);
                (void)pthread_mutex_unlock(&b->bus_lock);
                (void)pthread_mutex_destroy(&p->lock);
                free(p);
                return other;
        }
        p->next = b->pubs;
        b->pubs = p;
        (void)pthread_mutex_unlock(&b->lock);
        return p;
}

/* A decimal of 1 to 20 digits at p that fits 64 bits, nothing else (no
 * sign, no space); *end after it. By hand: strtoull was a tenth of a
 * receiving thread's time at 64 B. */
static bool parse_dec(const char *p, const char **end, uint64_t *ret) {
        uint64_t v = 0;
        const char *q = p;

        for (; *q >= '0' && *q <= '9'; q++) {
                unsigned d = (unsigned)(*q - '0');

                if (q - p >= 20 || v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (q == p)
                return false;
        *ret = v;
        *end = q;
        return true;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The 36 characters at p as a uuid, 8-4-4-4-12 hex digits (either case),
 * as uuid_parse reads them; what follows is the caller's. */
static bool parse_uuid(const char *p, uint8_t id[16]) {
        unsigned k = 0;

        for (unsigned i = 0; i < 36;) {
                int hi, lo;

                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (p[i] != '-')
                                return false;
                        i++;
                        continue;
                }
                hi = hexval(p[i]);
                lo = hi < 0 ? -1 : hexval(p[i + 1]);
                if (lo < 0)
                        return false;
                id[k++] = (uint8_t)(hi << 4 | lo);
                i += 2;
        }
        return true;
}

/* Parse "BUS TOPIC SEQ SESSION PREV" (bridge.h), strictly: anything else
 * is no origin of ours. "BUS TOPIC SEQ SESSION" (older bridges) has no
 * PREV; a PREV not below SEQ is refused. */
static bool parse_origin(natsMsg *m, struct origin *o) {
        const char *v = NULL, *p;
        uint8_t session[16];
        uint64_t prev;

        if (natsMsgHeader_Get(m, HDR_ORIGIN, &v) != NATS_OK || !v || strnlen(v, 74) < 74 || v[36] != ' ' ||
            v[73] != ' ')
                return false;
        if (!parse_uuid(v, o->bus) || !parse_uuid(v + 37, o->topic))
                return false;
        if (!parse_dec(v + 74, &p, &o->seq) || *p != ' ' || !parse_uuid(p + 1, session))
                return false;
        p += 37;
        o->prev1 = 0;
        if (*p == '\0')
                return true;
        if (*p != ' ')
                return false;
        p++;
        if (p[0] == '-' && p[1] == '\0')
                return true;
        if (!parse_dec(p, &p, &prev) || *p != '\0' || prev >= o->seq)
                return false;
        o->prev1 = prev + 1;
        return true;
}

/* Publish on the local topic; true if it was. */
static bool deliver(struct in_route *rt, struct local_pub *p, const void *data, size_t len) {
        struct bridge *b = rt->b;
        bool reliable = rt->cf->policy == BCONF_RELIABLE;
        int r;

        (void)pthread_mutex_lock(&p->lock);
        do {
                if (p->echo)
                        echo_push(p->echo, data, len);
                r = zcbus_pub_send(p->pub, data, len, reliable ? SEND_TIMEOUT_MS : 0);
                if (r < 0 && p->echo)
                        echo_pop_last(p->echo);
        } while (reliable && (r == -ETIMEDOUT || r == -EAGAIN) && !atomic_load(&b->stopping));
        (void)pthread_mutex_unlock(&p->lock);
        if (r >= 0)
                return true;
        if (r == -EMSGSIZE) {
                STAT_ADD(b, oversize, 1);
                if (!rt->size_said)
                        log_msg("a %zu-byte message for local topic '%s' is larger than its slot size: dropped "
                                "(counted as oversize; said once per route)",
                                len, p->name);
                rt->size_said = true;
        } else if (r == -EAGAIN || r == -ETIMEDOUT) {
                STAT_ADD(b, dropped, 1);
        } else {
                STAT_ADD(b, errors, 1);
                log_msg("publishing on local topic '%s': %s", p->name, zcbus_strerror(r));
        }
        return false;
}

/* The local topic m goes to, or NULL (counted). */
static struct local_pub *msg_pub(struct in_route *rt, natsMsg *m) {
        struct bridge *b = rt->b;
        char topic[ZCBUS_TOPIC_MAX + 1];
        struct local_pub *p;

        if (subj_to_topic(b->prefix, natsMsg_GetSubject(m), topic, sizeof(topic)) < 0 || topic[0] == '\0') {
                STAT_ADD(b, errors, 1);
                log_debug("subject '%s' is not a topic name under '%s': dropped", natsMsg_GetSubject(m), b->prefix);
                return NULL;
        }
        p = get_pub(rt, topic);
        if (!p)
                STAT_ADD(b, errors, 1);
        return p;
}

/* Publish data on p, unless another route or bridge of the same origin
 * brought it already (o: its origin, or NULL). */
static void deliver_one(struct in_route *rt, struct local_pub *p, const void *data, size_t len,
                        const struct origin *o) {
        struct bridge *b = rt->b;

        if (o && dedup_seen(b, o->bus, o->topic, o->seq)) {
                STAT_ADD(b, duplicates, 1);
                return;
        }
        if (deliver(rt, p, data, len)) {
                atomic_fetch_add_explicit(&rt->received, 1, memory_order_relaxed);
                STAT_ADD(b, received, 1);
        }
}

/* Publish m on its local topic (o: its origin, or NULL), as deliver_one. */
static void deliver_msg(struct in_route *rt, natsMsg *m, const struct origin *o) {
        struct local_pub *p = msg_pub(rt, m);

        if (p)
                deliver_one(rt, p, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), o);
}

/* A latest route's batched message of n records (batch.h), the first of
 * origin o: each record as a message of its own, in order, if the whole
 * payload is well formed; else none (counted as an error). */
static void deliver_batch(struct in_route *rt, natsMsg *m, const struct origin *o, unsigned n) {
        struct bridge *b = rt->b;
        const void *data = natsMsg_GetData(m);
        size_t len = (size_t)natsMsg_GetDataLength(m);
        struct local_pub *p;
        struct batch_rd rd;
        struct origin oi = *o;
        const void *d;
        size_t l;

        if (!batch_valid(data, len, n, o->seq)) {
                STAT_ADD(b, errors, 1);
                log_debug("subject '%s': a malformed batch of %u: dropped", natsMsg_GetSubject(m), n);
                return;
        }
        p = msg_pub(rt, m);
        if (!p)
                return;
        batch_rd_init(&rd, data, len, n, o->seq);
        while (batch_next(&rd, &d, &l, &oi.seq) == 1)
                deliver_one(rt, p, d, l, &oi);
}

/* ---- a reliable route's order (under olock) ------------------------------ */

static uint64_t origin_hash(const struct origin *o) {
        uint8_t key[32];

        memcpy(key, o->bus, 16);
        memcpy(key + 16, o->topic, 16);
        return hash64(key, sizeof(key)) | 1; /* 0 marks a free slot */
}

static void chain_set_last(struct chain *ch, uint64_t last1) {
        ch->last1 = last1;
        if (ch->slot) /* after the local commit, like the stream position */
                atomic_store_explicit(&ch->slot->seq, last1, memory_order_relaxed);
}

/* Deliver m as the next of ch. */
static void chain_deliver(struct in_route *rt, struct chain *ch, natsMsg *m, const struct origin *o) {
        deliver_msg(rt, m, o);
        chain_set_last(ch, o->seq + 1);
}

/* A message at or below what ch delivered: late (in its last gap) or a
 * duplicate. */
static void chain_drop(struct in_route *rt, struct chain *ch, uint64_t seq) {
        if (seq >= ch->gap_lo && seq < ch->gap_hi) {
                atomic_fetch_add_explicit(&rt->late, 1, memory_order_relaxed);
                STAT_ADD(rt->b, late, 1);
        } else {
                STAT_ADD(rt->b, duplicates, 1);
        }
}

static struct held *chain_pop(struct in_route *rt, struct chain *ch) {
        struct held *h = ch->held;

        ch->held = h->next;
        ch->nheld--;
        rt->nheld--;
        rt->held_bytes -= h->bytes;
        atomic_store_explicit(&rt->held_now, rt->nheld, memory_order_relaxed);
        return h;
}

static void held_free(struct held *h) {
        natsMsg_Destroy(h->m);
        free(h);
}

/* Deliver what ch holds that is next now (and drop what fell below). */
static void chain_drain(struct in_route *rt, struct chain *ch) {
        bool moved = false;

        while (ch->held) {
                struct held *h = ch->held;

                if (h->o.seq + 1 <= ch->last1) {
                        chain_drop(rt, ch, h->o.seq);
                } else if (h->o.prev1 <= ch->last1) {
                        chain_deliver(rt, ch, h->m, &h->o);
                        moved = true;
                } else {
                        break;
                }
                held_free(chain_pop(rt, ch));
        }
        if (ch->held && moved)
                ch->deadline = now_ms() + rt->b->conf->reorder_ms;
}

/* Stop waiting: deliver everything ch holds, in order, counting each
 * predecessor that is missing. */
/* Deliver in order what ch holds below sequence below, each missing
 * predecessor counted as a gap. */
static void chain_give_up_below(struct in_route *rt, struct chain *ch, uint64_t below, const char *why) {
        while (ch->held && ch->held->o.seq < below) {
                struct held *h = chain_pop(rt, ch);

                if (h->o.seq + 1 <= ch->last1) {
                        chain_drop(rt, ch, h->o.seq);
                } else {
                        if (h->o.prev1 > ch->last1) {
                                atomic_fetch_add_explicit(&rt->gaps, 1, memory_order_relaxed);
                                STAT_ADD(rt->b, reorder_gaps, 1);
                                if (!rt->gap_said)
                                        log_msg("stream %s: sequence %" PRIu64 " of an origin came without its "
                                                "predecessor %" PRIu64 " (%s): delivering what is held in order; "
                                                "counted as reorder_gaps, one arriving later as late (said once "
                                                "per route)",
                                                rt->stream, h->o.seq, h->o.prev1 - 1, why);
                                rt->gap_said = true;
                                ch->gap_lo = ch->last1;
                                ch->gap_hi = h->o.seq;
                        }
                        chain_deliver(rt, ch, h->m, &h->o);
                }
                held_free(h);
        }
}

static void chain_give_up(struct in_route *rt, struct chain *ch, const char *why) {
        chain_give_up_below(rt, ch, UINT64_MAX, why);
}

/* Every chain's: the stream position may then pass what was delivered
 * above the held ones. */
static void route_give_up_all(struct in_route *rt, const char *why) {
        for (unsigned i = 0; rt->nheld && i < ORDER_CHAINS; i++)
                if (rt->chains[i].held)
                        chain_give_up(rt, &rt->chains[i], why);
}

/* The origin's chain, made (taking over the least recently used one,
 * given up on first if it holds anything) if new. */
static struct chain *chain_get(struct in_route *rt, const struct origin *o, uint64_t now) {
        uint64_t hash = origin_hash(o);
        struct chain *ch = NULL;

        for (unsigned i = 0; i < ORDER_CHAINS; i++) {
                struct chain *c = &rt->chains[i];

                if (c->used && c->hash == hash && memcmp(c->topic, o->topic, 16) == 0) {
                        c->used_ms = now;
                        return c;
                }
                if (!ch || (ch->used && (!c->used || c->used_ms < ch->used_ms)))
                        ch = c;
        }
        /* What the chain delivered above held messages would be read
         * again after a restart, with no chain left to call it a repeat:
         * give up on every hold first, so that the position passes it. */
        if (ch->used)
                route_give_up_all(rt, "an origin's place taken by another origin");
        ch->used = true;
        ch->hash = hash;
        memcpy(ch->topic, o->topic, 16);
        ch->last1 = 0;
        ch->gap_lo = ch->gap_hi = 0;
        ch->used_ms = now;
        if (ch->slot) {
                atomic_store_explicit(&ch->slot->aux, 0, memory_order_relaxed);
                memcpy(ch->slot->topic_id, o->topic, 16);
                atomic_store_explicit(&ch->slot->seq, 0, memory_order_relaxed);
                atomic_store_explicit(&ch->slot->aux, hash, memory_order_release);
        }
        return ch;
}

/* What a held message costs: its payload, its headers (a forger's may be
 * large) and the bookkeeping. */
static size_t held_cost(natsMsg *m) {
        const char **keys = NULL;
        int nkeys = 0;
        size_t bytes = (size_t)natsMsg_GetDataLength(m) + HELD_OVERHEAD;

        if (natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK)
                return bytes;
        for (int i = 0; i < nkeys; i++) {
                const char **vals = NULL;
                int nvals = 0;

                bytes += strlen(keys[i]) + HELD_OVERHEAD / 8;
                if (natsMsgHeader_Values(m, keys[i], &vals, &nvals) == NATS_OK) {
                        for (int k = 0; k < nvals; k++)
                                bytes += strlen(vals[k]) + HELD_OVERHEAD / 8;
                        free((void *)vals);
                }
        }
        free((void *)keys);
        return bytes;
}

/* Keep m until its predecessor comes, making room first (only once it
 * must be held: a message its chain can take now is never made late by
 * the room made for it). False: m was handled (delivered or dropped)
 * instead. */
static bool chain_hold(struct in_route *rt, struct chain *ch, natsMsg *m, const struct origin *o, uint64_t sseq,
                       uint64_t now) {
        const struct bconf *c = rt->b->conf;
        size_t bytes = 0;
        struct held *h, **pp;

        for (;;) {
                if (o->seq + 1 <= ch->last1) {
                        chain_drop(rt, ch, o->seq);
                        return false;
                }
                if (o->prev1 <= ch->last1 || c->reorder == 0) {
                        if (o->prev1 > ch->last1) {
                                /* reorder = 0: no holding; a gap at once. */
                                atomic_fetch_add_explicit(&rt->gaps, 1, memory_order_relaxed);
                                STAT_ADD(rt->b, reorder_gaps, 1);
                                ch->gap_lo = ch->last1;
                                ch->gap_hi = o->seq;
                        }
                        /* Held ones of the origin before m (a sender
                         * restarted past a gap names an older PREV) come
                         * first: given up on, in order, not dropped. */
                        if (ch->held && ch->held->o.seq < o->seq)
                                chain_give_up_below(rt, ch, o->seq, "a later message names an earlier predecessor");
                        chain_deliver(rt, ch, m, o);
                        chain_drain(rt, ch);
                        return false;
                }
                if (!bytes)
                        bytes = held_cost(m);
                if (rt->nheld == 0 || (rt->nheld < c->reorder && rt->held_bytes + bytes <= c->reorder_bytes))
                        break;
                /* Room, from the chain that has waited longest (which may
                 * be this one: then look at m again). */
                struct chain *oldest = NULL;
                for (unsigned i = 0; i < ORDER_CHAINS; i++)
                        if (rt->chains[i].held && (!oldest || rt->chains[i].deadline < oldest->deadline))
                                oldest = &rt->chains[i];
                chain_give_up(rt, oldest, "the hold buffer is full");
        }
        for (pp = &ch->held; *pp && (*pp)->o.seq < o->seq; pp = &(*pp)->next)
                ;
        if (*pp && (*pp)->o.seq == o->seq) {
                STAT_ADD(rt->b, duplicates, 1); /* the first copy stays */
                return false;
        }
        h = malloc(sizeof(*h));
        if (!h) {
                chain_give_up(rt, ch, "out of memory");
                chain_deliver(rt, ch, m, o);
                return false;
        }
        *h = (struct held){.next = *pp, .m = m, .o = *o, .sseq = sseq, .bytes = bytes};
        *pp = h;
        if (ch->nheld++ == 0)
                ch->deadline = now + c->reorder_ms;
        rt->nheld++;
        rt->held_bytes += bytes;
        atomic_store_explicit(&rt->held_now, rt->nheld, memory_order_relaxed);
        atomic_fetch_add_explicit(&rt->held, 1, memory_order_relaxed);
        STAT_ADD(rt->b, held, 1);
        return true;
}

/* The stream position: below the first held message, else the last
 * handled. Only forward. */
static void route_store_pos(struct in_route *rt) {
        uint64_t pos = rt->last_sseq;

        for (unsigned i = 0; rt->nheld && i < ORDER_CHAINS; i++)
                for (struct held *h = rt->chains[i].held; h; h = h->next)
                        if (h->sseq && h->sseq - 1 < pos)
                                pos = h->sseq - 1;
        if (pos > atomic_load_explicit(&rt->pos->seq, memory_order_relaxed))
                atomic_store_explicit(&rt->pos->seq, pos, memory_order_relaxed);
}

/* Give up on the chains whose wait is over. */
static void route_tick(struct in_route *rt, uint64_t now) {
        (void)pthread_mutex_lock(&rt->olock);
        if (rt->nheld) {
                for (unsigned i = 0; i < ORDER_CHAINS; i++)
                        if (rt->chains[i].held && rt->chains[i].deadline <= now)
                                chain_give_up(rt, &rt->chains[i], "not within reorder_ms");
                route_store_pos(rt);
        }
        (void)pthread_mutex_unlock(&rt->olock);
}

/* Handle m; false if it is kept (held), true if the caller frees it. */
static bool handle(struct in_route *rt, natsMsg *m) {
        struct bridge *b = rt->b;
        struct origin o;
        uint64_t sseq = 0;
        unsigned nbatch = 0;
        bool have_origin, bad_batch = false, kept = false;

        if (rt->pos) {
                jsMsgMetaData *meta = NULL;

                if (natsMsg_GetMetaData(&meta, m) == NATS_OK && meta) {
                        sseq = meta->Sequence.Stream;
                        jsMsgMetaData_Destroy(meta);
                }
                if (sseq && sseq <= atomic_load_explicit(&rt->pos->seq, memory_order_relaxed)) {
                        STAT_ADD(b, duplicates, 1);
                        return true;
                }
        }
        have_origin = parse_origin(m, &o);
        if (have_origin) {
                const char *bv = NULL;

                if (natsMsgHeader_Get(m, HDR_BATCH, &bv) == NATS_OK && !(nbatch = batch_count(bv)))
                        bad_batch = true;
        }
        if (bad_batch) {
                /* Dropped; on a reliable route the position still passes it. */
                STAT_ADD(b, errors, 1);
                log_debug("subject '%s': a batch header that is not a count from 2 to %u: dropped",
                          natsMsg_GetSubject(m), BATCH_MAX);
        } else if (have_origin && memcmp(o.bus, b->bus_id, 16) == 0) {
                STAT_ADD(b, loops, nbatch ? nbatch : 1);
        } else if (nbatch && rt->pos) {
                /* Only latest topics are batched, and only latest routes
                 * unpack them (zcbus-bridge(1), batch). */
                STAT_ADD(b, errors, 1);
                if (!rt->batch_said)
                        log_msg("reliable route '%s': a batched message (from a latest topic sent with 'batch'): "
                                "dropped (counted as an error; said once per route)",
                                rt->subject);
                rt->batch_said = true;
        } else if (nbatch) {
                deliver_batch(rt, m, &o, nbatch);
        } else if (!have_origin) {
                /* On a reliable route, nothing may be delivered above held
                 * messages that a restart would deliver again: no origin,
                 * no chain to call it a repeat. */
                if (rt->pos) {
                        (void)pthread_mutex_lock(&rt->olock);
                        route_give_up_all(rt, "a message without an origin came");
                        (void)pthread_mutex_unlock(&rt->olock);
                }
                deliver_msg(rt, m, NULL);
        } else if (!rt->pos) {
                deliver_msg(rt, m, &o); /* latest: in arrival order */
        } else {
                uint64_t now = now_ms();
                struct chain *ch;

                (void)pthread_mutex_lock(&rt->olock);
                ch = chain_get(rt, &o, now);
                if (o.seq + 1 <= ch->last1)
                        chain_drop(rt, ch, o.seq);
                else
                        kept = chain_hold(rt, ch, m, &o, sseq, now);
                (void)pthread_mutex_unlock(&rt->olock);
        }
        if (rt->pos && sseq) {
                /* After the local commit: a kill between the two delivers
                 * this one message again after the restart
                 * (zcbus-bridge(1), BUGS). */
                (void)pthread_mutex_lock(&rt->olock);
                if (sseq > rt->last_sseq)
                        rt->last_sseq = sseq;
                route_store_pos(rt);
                (void)pthread_mutex_unlock(&rt->olock);
        }
        return !kept;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
        struct in_route *rt = closure;

        /* Stopping: what is not handled now is read again at the next
         * start (the stream position has not passed it), and the drain
         * that waits for these callbacks ends soon. */
        if (atomic_load(&rt->b->stopping)) {
                natsMsg_Destroy(m);
                return;
        }
        if (handle(rt, m))
                natsMsg_Destroy(m);
}

static void on_complete(void *closure) {
        struct in_route *rt = closure;

        (void)pthread_mutex_lock(&rt->done_lock);
        rt->done = true;
        (void)pthread_cond_broadcast(&rt->done_cond);
        (void)pthread_mutex_unlock(&rt->done_lock);
}

/* Wait for the route's last callback, up to timeout_ms: true once it is
 * over (or there was no subscription to wait for). */
static bool route_wait_done(struct in_route *rt, int timeout_ms) {
        struct timespec until;
        bool done;

        if (!rt->done_cb)
                return true;
        (void)clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        (void)pthread_mutex_lock(&rt->done_lock);
        while (!rt->done && pthread_cond_timedwait(&rt->done_cond, &rt->done_lock, &until) == 0)
                ;
        done = rt->done;
        (void)pthread_mutex_unlock(&rt->done_lock);
        return done;
}

/* A reliable route's ticker: its reorder_ms deadlines. */
static atomic_bool ticker_stop;

static void *ticker_main(void *arg) {
        struct in_route *rt = arg;

        while (!atomic_load(&ticker_stop) && !atomic_load(&rt->b->stopping)) {
                (void)usleep(TICK_MS * 1000);
                route_tick(rt, now_ms());
        }
        return NULL;
}

/* The route's origins, as the state file left them. */
static void route_order_init(struct bridge *b, struct in_route *rt) {
        static bool said;

        for (unsigned i = 0; i < ORDER_CHAINS; i++) {
                struct chain *ch = &rt->chains[i];
                char key[STATE_KEY_MAX];

                (void)snprintf(key, sizeof(key), "ord:%u:%s", i, rt->stream);
                ch->slot = state_slot(b->state, key);
                if (!ch->slot) {
                        if (!said)
                                log_msg("stream %s: the state file has no room for the order of origin %u; it is "
                                        "kept in memory only (said once)",
                                        rt->stream, i);
                        said = true;
                        continue;
                }
                ch->hash = atomic_load_explicit(&ch->slot->aux, memory_order_acquire);
                if (ch->hash) {
                        ch->used = true;
                        memcpy(ch->topic, ch->slot->topic_id, 16);
                        ch->last1 = atomic_load_explicit(&ch->slot->seq, memory_order_relaxed);
                }
        }
}

static int route_start(struct bridge *b, struct in_route *rt, char *err, size_t errlen) {
        natsStatus s;
        int r;

        r = subj_from_pattern(b->prefix, rt->cf->pattern, rt->subject, sizeof(rt->subject));
        if (r < 0) {
                (void)snprintf(err, errlen, "%s:%u: 'in' pattern '%s' is too long as a subject", b->conf_path,
                               rt->cf->line, rt->cf->pattern);
                return r;
        }
        if (rt->cf->policy == BCONF_LATEST) {
                s = natsConnection_Subscribe(&rt->sub, b->nc, rt->subject, on_msg, rt);
                if (s == NATS_OK)
                        s = natsSubscription_SetPendingLimits(rt->sub, 65536, 256 << 20);
        } else {
                char key[STATE_KEY_MAX];
                jsSubOptions so;
                jsErrCode jerr = 0;
                uint64_t last;

                subj_stream_name(rt->subject, rt->stream, sizeof(rt->stream));
                (void)snprintf(key, sizeof(key), "in:%s", rt->stream);
                rt->pos = state_slot(b->state, key);
                if (!rt->pos) {
                        (void)snprintf(err, errlen, "the state file has no room for another reliable route");
                        return -ENOSPC;
                }
                r = link_ensure_stream(b, rt->stream, rt->subject, now_ms() + 30000);
                if (r < 0) {
                        (void)snprintf(err, errlen, "cannot create the JetStream stream %s for '%s'", rt->stream,
                                       rt->subject);
                        return r;
                }
                route_order_init(b, rt);
                last = atomic_load_explicit(&rt->pos->seq, memory_order_relaxed);
                (void)jsSubOptions_Init(&so);
                so.Stream = rt->stream;
                so.Ordered = true;
                so.Config.Heartbeat = 1000000000; /* 1 s: a lost consumer is re-made within ~3 s */
                so.Config.DeliverPolicy = last ? js_DeliverByStartSequence : js_DeliverAll;
                so.Config.OptStartSeq = last ? last + 1 : 0;
                s = js_Subscribe(&rt->sub, b->js, rt->subject, on_msg, rt, NULL, &so, &jerr);
                if (s == NATS_OK)
                        s = natsSubscription_SetPendingLimits(rt->sub, -1, -1);
                if (s == NATS_OK)
                        log_msg("receiving reliable topic '%s' from stream %s at stream sequence %" PRIu64,
                                rt->cf->pattern, rt->stream, last + 1);
        }
        if (s == NATS_OK) {
                s = natsSubscription_SetOnCompleteCB(rt->sub, on_complete, rt);
                rt->done_cb = s == NATS_OK;
        }
        if (s != NATS_OK) {
                (void)snprintf(err, errlen, "%s:%u: cannot subscribe to '%s': %s", b->conf_path, rt->cf->line,
                               rt->subject, natsStatus_GetText(s));
                return -EIO;
        }
        if (rt->cf->policy == BCONF_LATEST)
                log_msg("receiving '%s' (latest)", rt->subject);
        return 0;
}

int in_start(struct bridge *b, char *err, size_t errlen) {
        b->dedup = calloc(1, sizeof(*b->dedup));
        if (!b->dedup)
                return -ENOMEM;
        (void)pthread_mutex_init(&b->dedup->lock, NULL);
        b->ins = calloc(b->conf->nin ? b->conf->nin : 1, sizeof(*b->ins));
        if (!b->ins)
                return -ENOMEM;
        for (unsigned i = 0; i < b->conf->nin; i++) {
                struct in_route *rt = &b->ins[i];
                int r;

                rt->b = b;
                rt->cf = &b->conf->in[i];
                (void)pthread_mutex_init(&rt->olock, NULL);
                (void)pthread_mutex_init(&rt->done_lock, NULL);
                (void)pthread_cond_init(&rt->done_cond, NULL);
                r = route_start(b, rt, err, errlen);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < b->conf->nin; i++) {
                struct in_route *rt = &b->ins[i];
                sigset_t all, old;

                if (!rt->pos)
                        continue;
                /* No signals: the main loop takes them. */
                (void)sigfillset(&all);
                (void)pthread_sigmask(SIG_BLOCK, &all, &old);
                rt->ticker_on = pthread_create(&rt->ticker, NULL, ticker_main, rt) == 0;
                (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
                if (!rt->ticker_on) {
                        (void)snprintf(err, errlen, "cannot start the reorder ticker thread of '%s'", rt->subject);
                        return -EAGAIN;
                }
        }
        return 0;
}

void in_stop(struct bridge *b) {
        struct local_pub *p, *next;
        bool busy = false;

        atomic_store(&ticker_stop, true);
        for (unsigned i = 0; b->ins && i < b->conf->nin; i++)
                if (b->ins[i].ticker_on) {
                        (void)pthread_join(b->ins[i].ticker, NULL);
                        b->ins[i].ticker_on = false;
                }
        for (unsigned i = 0; b->ins && i < b->conf->nin; i++) {
                struct in_route *rt = &b->ins[i];

                if (rt->sub) {
                        /* Drain, then wait until the last callback has
                         * returned (they return at once now: stopping)
                         * before anything they use goes. */
                        if (natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED &&
                            natsSubscription_Drain(rt->sub) == NATS_OK)
                                (void)natsSubscription_WaitForDrainCompletion(rt->sub, 2000);
                        else
                                (void)natsSubscription_Unsubscribe(rt->sub);
                        if (!route_wait_done(rt, 30000)) {
                                log_msg("a NATS callback of '%s' has not returned in 30 s: leaving what it uses",
                                        rt->subject);
                                busy = true;
                                continue;
                        }
                        natsSubscription_Destroy(rt->sub);
                        rt->sub = NULL;
                }
                /* What is still held is not below the stream position:
                 * read again at the next start. */
                for (unsigned j = 0; j < ORDER_CHAINS; j++)
                        while (rt->chains[j].held)
                                held_free(chain_pop(rt, &rt->chains[j]));
                (void)pthread_mutex_destroy(&rt->olock);
                (void)pthread_mutex_destroy(&rt->done_lock);
                (void)pthread_cond_destroy(&rt->done_cond);
        }
        if (busy)
                return; /* the process is ending: better a leak than a use after free */
        for (p = b->pubs; p; p = next) {
                next = p->next;
                zcbus_pub_close(p->pub);
                (void)pthread_mutex_destroy(&p->lock);
                free(p);
        }
        b->pubs = NULL;
        free(b->ins);
        b->ins = NULL;
        if (b->dedup)
                (void)pthread_mutex_destroy(&b->dedup->lock);
        free(b->dedup);
        b->dedup = NULL;
}

bool in_wants(struct bridge *b, const char *name) {
        char subj[SUBJ_MAX], pat[SUBJ_MAX];

        if (subj_from_topic(b->prefix, name, subj, sizeof(subj)) < 0)
                return false;
        for (unsigned i = 0; i < b->conf->nin; i++)
                if (subj_from_pattern(b->prefix, b->conf->in[i].pattern, pat, sizeof(pat)) == 0 &&
                    subj_match(pat, subj))
                        return true;
        return false;
}

uint64_t in_nats_dropped(struct bridge *b) {
        uint64_t sum = 0;

        for (unsigned i = 0; b->ins && i < b->conf->nin; i++) {
                int64_t d = 0;

                if (b->ins[i].sub && natsSubscription_GetDropped(b->ins[i].sub, &d) == NATS_OK && d > 0)
                        sum += (uint64_t)d;
        }
        return sum;
}

void in_stats_json(struct bridge *b, FILE *f) {
        (void)fputs("[", f);
        for (unsigned i = 0; b->ins && i < b->conf->nin; i++) {
                struct in_route *rt = &b->ins[i];

                (void)fprintf(f, "%s\n    {\"pattern\": ", i ? "," : "");
                json_str(f, rt->cf->pattern);
                (void)fputs(", \"subject\": ", f);
                json_str(f, rt->subject);
                (void)fprintf(f, ", \"policy\": \"%s\"", rt->cf->policy == BCONF_RELIABLE ? "reliable" : "latest");
                if (rt->pos) {
                        (void)fputs(", \"stream\": ", f);
                        json_str(f, rt->stream);
                        (void)fprintf(f,
                                      ", \"position\": %" PRIu64 ", \"held_now\": %u, \"held\": %" PRIu64
                                      ", \"reorder_gaps\": %" PRIu64 ", \"late\": %" PRIu64,
                                      atomic_load_explicit(&rt->pos->seq, memory_order_relaxed),
                                      atomic_load_explicit(&rt->held_now, memory_order_relaxed), atomic_load(&rt->held),
                                      atomic_load(&rt->gaps), atomic_load(&rt->late));
                }
                (void)fprintf(f, ", \"received\": %" PRIu64 "}", atomic_load(&rt->received));
        }
        (void)fputs(b->conf->nin ? "\n  ]" : "]", f);
}
