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
 * A topic bridged both ways is also read by its outbound route: the local
 * producer records each message in the topic's echo window (echo.h)
 * before it commits it, so that the route does not send it back.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "bridge.h"
#include "json.h"
#include "util.h"

#define DEDUP_SLOTS 4096
#define SEND_TIMEOUT_MS 500

struct local_pub {
        struct local_pub *next;
        char name[ZCBUS_TOPIC_MAX + 1];
        zcbus_pub *pub;
        pthread_mutex_t lock; /* pub */
        struct echo *echo;    /* if an "out" pattern matches the topic too */
};

struct in_route {
        struct bridge *b;
        const struct bconf_in *cf;
        char subject[SUBJ_MAX];
        char stream[STREAM_NAME_MAX];
        natsSubscription *sub;
        struct state_slot *pos;
        _Atomic uint64_t received;
        bool size_said;
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

struct origin {
        uint8_t bus[16];
        uint8_t topic[16];
        uint64_t seq;
};

/* Parse "BUS TOPIC SEQ SESSION" (bridge.h), strictly: anything else is
 * no origin of ours. The session is not needed to decide anything. */
static bool parse_origin(natsMsg *m, struct origin *o) {
        const char *v = NULL;
        char id[37];
        char *end;

        if (natsMsgHeader_Get(m, HDR_ORIGIN, &v) != NATS_OK || !v || strnlen(v, 74) < 74 || v[36] != ' ' ||
            v[73] != ' ')
                return false;
        memcpy(id, v, 36);
        id[36] = '\0';
        if (uuid_parse(id, o->bus) < 0)
                return false;
        memcpy(id, v + 37, 36);
        if (uuid_parse(id, o->topic) < 0)
                return false;
        if (v[74] < '0' || v[74] > '9')
                return false;
        errno = 0;
        o->seq = strtoull(v + 74, &end, 10);
        return errno == 0 && (*end == ' ' || *end == '\0');
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

/* Deliver m if it is new. Returns the stream sequence to record as
 * delivered (a reliable route's), 0 for none. */
static uint64_t handle(struct in_route *rt, natsMsg *m) {
        struct bridge *b = rt->b;
        char topic[ZCBUS_TOPIC_MAX + 1];
        struct origin o;
        uint64_t sseq = 0;
        bool have_origin;
        struct local_pub *p;

        if (rt->pos) {
                jsMsgMetaData *meta = NULL;

                if (natsMsg_GetMetaData(&meta, m) == NATS_OK && meta) {
                        sseq = meta->Sequence.Stream;
                        jsMsgMetaData_Destroy(meta);
                }
                if (sseq && sseq <= atomic_load_explicit(&rt->pos->seq, memory_order_relaxed)) {
                        STAT_ADD(b, duplicates, 1);
                        return 0;
                }
        }
        have_origin = parse_origin(m, &o);
        if (have_origin && memcmp(o.bus, b->bus_id, 16) == 0) {
                STAT_ADD(b, loops, 1);
                return sseq;
        }
        if (have_origin && dedup_seen(b, o.bus, o.topic, o.seq)) {
                STAT_ADD(b, duplicates, 1);
                return sseq;
        }
        if (subj_to_topic(b->prefix, natsMsg_GetSubject(m), topic, sizeof(topic)) < 0 || topic[0] == '\0') {
                STAT_ADD(b, errors, 1);
                log_debug("subject '%s' is not a topic name under '%s': dropped", natsMsg_GetSubject(m), b->prefix);
                return sseq;
        }
        p = get_pub(rt, topic);
        if (!p) {
                STAT_ADD(b, errors, 1);
                return sseq;
        }
        if (deliver(rt, p, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m))) {
                atomic_fetch_add_explicit(&rt->received, 1, memory_order_relaxed);
                STAT_ADD(b, received, 1);
        }
        return sseq;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
        struct in_route *rt = closure;
        uint64_t sseq = handle(rt, m);

        /* After the local commit: a kill between the two delivers this one
         * message again after the restart (zcbus-bridge(1), BUGS). */
        if (sseq)
                atomic_store_explicit(&rt->pos->seq, sseq, memory_order_relaxed);
        natsMsg_Destroy(m);
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
                r = route_start(b, rt, err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

void in_stop(struct bridge *b) {
        struct local_pub *p, *next;

        for (unsigned i = 0; b->ins && i < b->conf->nin; i++) {
                struct in_route *rt = &b->ins[i];

                if (rt->sub) {
                        /* Drain: the callback may be running; wait until it
                         * is done before the local producers go. */
                        if (natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED &&
                            natsSubscription_Drain(rt->sub) == NATS_OK)
                                (void)natsSubscription_WaitForDrainCompletion(rt->sub, 2000);
                        else
                                (void)natsSubscription_Unsubscribe(rt->sub);
                        natsSubscription_Destroy(rt->sub);
                        rt->sub = NULL;
                }
        }
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
                        (void)fprintf(f, ", \"position\": %" PRIu64,
                                      atomic_load_explicit(&rt->pos->seq, memory_order_relaxed));
                }
                (void)fprintf(f, ", \"received\": %" PRIu64 "}", atomic_load(&rt->received));
        }
        (void)fputs(b->conf->nin ? "\n  ]" : "]", f);
}
