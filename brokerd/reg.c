/* SPDX-License-Identifier: MIT */
/*
 * reg.c: the topic registry. It owns every topic the broker knows: its
 * name and uuids, its two sealed memfds (plus a read-only reopen of the
 * ring for subscribers), the broker's own read-write mapping, and which
 * producer and subscriber entries are taken. It enforces the broker's
 * limits (topics, bytes per topic, bytes in all) and reclaims idle topics,
 * oldest first, when a new one needs room.
 *
 * Entry allocation uses broker-private state arrays, never the state words
 * in the segments: clients can write those. The shared words are only
 * written here, through ring_prod_activate / ring_sub_activate and the
 * evictions. A producer eviction can need retrying (ring_prod_evict
 * returns -EAGAIN while a slot it claimed is not reusable yet); such
 * repairs belong to the topic, not to the session that let go. They run
 * in bounded steps on one timer, with exponential back-off (2 ms doubling
 * to 1 s) while a slot is not free, and are given up, the entry freed and
 * logged, after repair_timeout_ms: a hostile producer cannot keep the
 * broker busy.
 *
 * The registry also decides who may do what: the rules (conf_access) for
 * publish, subscribe and create, and the quotas of the creator's uid and
 * session (accounts) for topics and bytes; a uid's topics stay charged to
 * it until they are reclaimed, whatever session created them.
 *
 * A topic outlives its peers so that late subscribers still find history;
 * it goes at broker exit, or when reclaimed while idle (no entry held and
 * no repair pending).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "macro.h"
#include "reg.h"
#include "ring_repair.h"
#include "ring_sub.h"
#include "seg.h"
#include "zcbus.h"

#ifdef ZCBUS_TEST_HIGH_SEQ
#define REG_START_SEQ ((UINT64_C(1) << 62) + (UINT64_C(1) << 32) - 1000)
#define REG_DATA_WORD_START (UINT32_MAX - 100)
#else
#define REG_START_SEQ UINT64_C(0)
#define REG_DATA_WORD_START UINT32_C(0)
#endif

/* Producer repairs: the first retry after 2 ms, each next one twice as
 * late, up to 1 s; each step examines a bounded number of sequences, and
 * one timer callback runs a bounded number of steps' worth over all
 * topics. A repair still unfinished after repair_timeout_ms is given up. */
#define REG_REPAIR_FIRST 0.002
#define REG_REPAIR_MAX_DELAY 0.05  /* back-off while a slot is not free yet */
#define REG_REPAIR_SLOW_DELAY 1.0  /* ... once repair_timeout_ms has passed */
#define REG_REPAIR_STEP_BUDGET UINT64_C(16384)
#define REG_REPAIR_TICK_BUDGET UINT64_C(65536)
#define REG_ACCOUNT_BUCKETS 256u

struct reg {
        struct ev_loop *loop;
        const struct conf *conf;
        struct reg_topic *head, *tail;           /* creation order */
        struct reg_topic *idle_head, *idle_tail; /* oldest idle first */
        struct reg_topic **buckets;
        uint32_t nbuckets; /* power of two */
        uint32_t ntopics;
        uint64_t total_bytes;
        uint32_t nrepair; /* pending producer repairs over all topics */
        ev_timer repair;
        struct reg_topic *repair_head, *repair_tail; /* topics with repairs pending */
        ev_timer stall; /* the stall policy's look at reliable topics */
        struct reg_account *accounts[REG_ACCOUNT_BUCKETS]; /* by uid */
};

static uint32_t name_hash(const char *name) {
        uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */

        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                h = (h ^ *p) * UINT64_C(0x100000001b3);
        return (uint32_t)(h ^ (h >> 32));
}

static const char *role_name(uint32_t role) {
        return role == PROTO_ROLE_PUB ? "producer" : "subscriber";
}

/* --- accounts --------------------------------------------------------------- */

struct reg_account *reg_account_uid(struct reg *r, uint32_t uid) {
        struct reg_account **b = &r->accounts[uid % REG_ACCOUNT_BUCKETS];
        struct reg_account *a;

        for (a = *b; a; a = a->hnext)
                if (a->uid == uid) {
                        a->refs++;
                        return a;
                }
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->reg = r;
        a->refs = 1;
        a->is_uid = true;
        a->uid = uid;
        a->hnext = *b;
        *b = a;
        return a;
}

struct reg_account *reg_account_new(struct reg *r) {
        struct reg_account *a = calloc(1, sizeof(*a));

        if (!a)
                return NULL;
        a->reg = r;
        a->refs = 1;
        return a;
}

void reg_account_unref(struct reg_account *a) {
        if (!a || --a->refs > 0)
                return;
        if (a->is_uid) {
                struct reg_account **pp = &a->reg->accounts[a->uid % REG_ACCOUNT_BUCKETS];
                while (*pp && *pp != a)
                        pp = &(*pp)->hnext;
                if (*pp)
                        *pp = a->hnext;
        }
        free(a);
}

static void topic_charge(struct reg_topic *t, const struct reg_owner *ow) {
        struct reg_account *a[2] = {ow ? ow->uid_acct : NULL, ow ? ow->session_acct : NULL};

        for (int i = 0; i < 2; i++) {
                if (!a[i])
                        continue;
                a[i]->refs++;
                a[i]->topics++;
                a[i]->bytes += t->bytes;
                t->acct[i] = a[i];
        }
}

/* The digest of a topic's name that its ring's memfd name carries (a
 * SHA-1 uuid in the segment's namespace): binds segments to the name for
 * a restarted broker. */
static void name_tag(const uint8_t segment_id[16], const char *name, uint8_t tag[16]) {
        uuid_generate_sha1(tag, segment_id, name, strlen(name));
}

/* The holds a subscriber may have at once, as the broker enforces them
 * (LATEST): what it declared (0: the library's default), at most the
 * library's limit and one slot short of the ring, so that one subscriber
 * holding every slot is always over it. */
static uint32_t max_holds_of(const struct reg_topic *t, uint32_t declared) {
        uint32_t n = declared ? declared : RING_MAX_HOLDS_DEFAULT;
        n = MIN(n, RING_MAX_HOLDS_LIMIT);
        return MIN(n, t->map.g.slot_count - 1);
}

static void orphans_check(struct reg_topic *t);
static int tables_for(struct reg_topic *t, uint32_t role, uint32_t table, char *err, size_t errlen);

/* --- topic lifetime -------------------------------------------------------- */

static void topic_destroy(struct reg_topic *t) {
        if (!t)
                return;
        for (int i = 0; i < 2; i++) {
                if (!t->acct[i])
                        continue;
                t->acct[i]->topics--;
                t->acct[i]->bytes -= t->bytes;
                reg_account_unref(t->acct[i]);
        }
        seg_unmap(&t->map);
        closep(&t->ring_fd);
        closep(&t->ring_ro_fd);
        for (uint32_t i = 0; i < SEG_TABLES_MAX; i++)
                closep(&t->table_fds[i]);
        free(t->prod_state);
        free(t->sub_state);
        free(t->sub_table);
        free(t->sub_max_holds);
        free(t->prod_holder);
        free(t->sub_holder);
        free(t->repairs);
        free(t->stalls);
        free(t);
}

static void topic_destroyp(struct reg_topic **t) {
        topic_destroy(*t);
}

static void idle_remove(struct reg *r, struct reg_topic *t) {
        if (!t->idle)
                return;
        if (t->idle_prev)
                t->idle_prev->idle_next = t->idle_next;
        else
                r->idle_head = t->idle_next;
        if (t->idle_next)
                t->idle_next->idle_prev = t->idle_prev;
        else
                r->idle_tail = t->idle_prev;
        t->idle_prev = t->idle_next = NULL;
        t->idle = 0;
}

/* Keep the idle list in step with the topic's use counts. */
static void idle_update(struct reg_topic *t) {
        struct reg *r = t->reg;
        int idle = t->nprod == 0 && t->nsub == 0 && t->nrepair == 0;

        if (idle == t->idle)
                return;
        if (!idle) {
                idle_remove(r, t);
                return;
        }
        t->idle = 1;
        t->idle_next = NULL;
        t->idle_prev = r->idle_tail;
        if (r->idle_tail)
                r->idle_tail->idle_next = t;
        else
                r->idle_head = t;
        r->idle_tail = t;
}

static void repairing_remove(struct reg *r, struct reg_topic *t) {
        if (!t->repairing)
                return;
        if (t->rprev)
                t->rprev->rnext = t->rnext;
        else
                r->repair_head = t->rnext;
        if (t->rnext)
                t->rnext->rprev = t->rprev;
        else
                r->repair_tail = t->rprev;
        t->rprev = t->rnext = NULL;
        t->repairing = false;
}

static void repairing_append(struct reg *r, struct reg_topic *t) {
        if (t->repairing)
                return;
        t->rnext = NULL;
        t->rprev = r->repair_tail;
        if (r->repair_tail)
                r->repair_tail->rnext = t;
        else
                r->repair_head = t;
        r->repair_tail = t;
        t->repairing = true;
}

static void topic_link(struct reg *r, struct reg_topic *t) {
        uint32_t b = name_hash(t->name) & (r->nbuckets - 1);

        t->reg = r;
        t->prev = r->tail;
        t->next = NULL;
        if (r->tail)
                r->tail->next = t;
        else
                r->head = t;
        r->tail = t;
        t->hnext = r->buckets[b];
        r->buckets[b] = t;
        r->ntopics++;
        r->total_bytes += t->bytes;
        idle_update(t);
}

static void topic_unlink(struct reg *r, struct reg_topic *t) {
        struct reg_topic **pp = &r->buckets[name_hash(t->name) & (r->nbuckets - 1)];

        while (*pp && *pp != t)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = t->hnext;
        if (t->prev)
                t->prev->next = t->next;
        else
                r->head = t->next;
        if (t->next)
                t->next->prev = t->prev;
        else
                r->tail = t->prev;
        idle_remove(r, t);
        repairing_remove(r, t);
        r->ntopics--;
        r->total_bytes -= t->bytes;
        r->nrepair -= t->nrepair;
}

static struct reg_topic *topic_find(const struct reg *r, const char *name) {
        for (struct reg_topic *t = r->buckets[name_hash(name) & (r->nbuckets - 1)]; t; t = t->hnext)
                if (strcmp(t->name, name) == 0)
                        return t;
        return NULL;
}

/* Make room for one more topic of `bytes` by reclaiming idle topics, oldest
 * idle first, but only if that is enough: never drop topics for nothing. */
static int make_room(struct reg *r, const char *name, uint64_t bytes, char *err, size_t errlen) {
        const struct conf *c = r->conf;
        uint64_t idle_bytes = 0;
        uint32_t nidle = 0;

        for (struct reg_topic *t = r->idle_head; t; t = t->idle_next) {
                nidle++;
                idle_bytes += t->bytes;
        }
        if (r->ntopics - nidle >= c->max_topics) {
                (void)snprintf(err, errlen, "broker has its %u topics in use (max_topics), cannot create '%s'",
                               c->max_topics, name);
                return -ENOSPC;
        }
        if (bytes > c->max_total_bytes || r->total_bytes - idle_bytes > c->max_total_bytes - bytes) {
                (void)snprintf(err, errlen,
                               "topic '%s' needs %llu bytes; topics in use hold %llu of max_total_bytes %llu",
                               name, (unsigned long long)bytes, (unsigned long long)(r->total_bytes - idle_bytes),
                               (unsigned long long)c->max_total_bytes);
                return -ENOSPC;
        }
        while (r->ntopics >= c->max_topics || r->total_bytes > c->max_total_bytes - bytes) {
                struct reg_topic *t = r->idle_head;

                log_debug("reclaiming idle topic '%s' (%llu bytes) to make room for '%s'", t->name,
                          (unsigned long long)t->bytes, name);
                topic_unlink(r, t);
                topic_destroy(t);
        }
        return 0;
}

/* Does one more topic of `bytes` fit account a's quota? If not, reclaim
 * a's own idle topics, oldest first, when that is enough. */
static int quota_room(struct reg *r, struct reg_account *a, uint32_t max_topics, uint64_t max_bytes,
                      const char *who, const char *name, uint64_t bytes, char *err, size_t errlen) {
        const char *pfx = a->is_uid ? "uid" : "session";
        uint64_t idle_bytes = 0;
        uint32_t nidle = 0;

        if (a->topics < max_topics && bytes <= max_bytes && a->bytes <= max_bytes - bytes)
                return 0;
        for (struct reg_topic *t = r->idle_head; t; t = t->idle_next)
                if (t->acct[0] == a || t->acct[1] == a) {
                        nidle++;
                        idle_bytes += t->bytes;
                }
        if (a->topics - nidle >= max_topics) {
                (void)snprintf(err, errlen, "%s has %u topics in use (%s_max_topics %u), cannot create '%s'", who,
                               a->topics - nidle, pfx, max_topics, name);
                return -EDQUOT;
        }
        if (bytes > max_bytes || a->bytes - idle_bytes > max_bytes - bytes) {
                (void)snprintf(err, errlen, "topic '%s' needs %llu bytes; %s holds %llu of %s_max_bytes %llu", name,
                               (unsigned long long)bytes, who, (unsigned long long)(a->bytes - idle_bytes), pfx,
                               (unsigned long long)max_bytes);
                return -EDQUOT;
        }
        for (struct reg_topic *t = r->idle_head, *n; t; t = n) {
                n = t->idle_next;
                if (a->topics < max_topics && a->bytes <= max_bytes - bytes)
                        break;
                if (t->acct[0] != a && t->acct[1] != a)
                        continue;
                log_debug("reclaiming idle topic '%s' of %s to make room for '%s'", t->name, who, name);
                topic_unlink(r, t);
                topic_destroy(t);
        }
        return 0;
}

/* Does a new topic of bytes fit the opener's quotas and the limits? */
static int topic_room(struct reg *r, const char *name, uint64_t bytes, const struct reg_owner *ow, char *err,
                      size_t errlen) {
        const struct conf *c = r->conf;
        int rr;

        if (ow && ow->uid_acct) {
                char who[32];
                (void)snprintf(who, sizeof(who), "uid %u", (unsigned)ow->uid);
                rr = quota_room(r, ow->uid_acct, c->uid_max_topics, c->uid_max_bytes, who, name, bytes, err,
                                errlen);
                if (rr < 0)
                        return rr;
        }
        if (ow && ow->session_acct) {
                rr = quota_room(r, ow->session_acct, c->session_max_topics, c->session_max_bytes, "this session",
                                name, bytes, err, errlen);
                if (rr < 0)
                        return rr;
        }
        return make_room(r, name, bytes, err, errlen);
}

/* A topic record with no segments yet. */
static int topic_alloc(const char *name, const uint8_t topic_id[16], const uint8_t segment_id[16], uint64_t bytes,
                       uint32_t max_producers, uint32_t max_subs, struct reg_topic **ret) {
        _cleanup_(topic_destroyp) struct reg_topic *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->ring_fd = t->ring_ro_fd = -1;
        for (uint32_t i = 0; i < SEG_TABLES_MAX; i++)
                t->table_fds[i] = -1;
        strcpy(t->name, name); /* proto_decode bounded it to PROTO_NAME_MAX */
        memcpy(t->topic_id, topic_id, 16);
        memcpy(t->segment_id, segment_id, 16);
        t->bytes = bytes;
        t->prod_state = calloc(max_producers, 1);
        t->sub_state = calloc(max_subs, 1);
        t->sub_table = calloc(max_subs, 1);
        t->sub_max_holds = calloc(max_subs, sizeof(*t->sub_max_holds));
        t->repairs = calloc(max_producers, sizeof(*t->repairs));
        t->stalls = calloc(max_subs, sizeof(*t->stalls));
        t->prod_holder = calloc(max_producers, sizeof(*t->prod_holder));
        t->sub_holder = calloc(max_subs, sizeof(*t->sub_holder));
        if (!t->prod_state || !t->sub_state || !t->sub_table || !t->sub_max_holds || !t->repairs || !t->stalls ||
            !t->prod_holder || !t->sub_holder)
                return -ENOMEM;
        *ret = TAKE_PTR(t);
        return 0;
}

/* A read-only reopening of the ring: what a subscriber maps can then
 * never be made writable (mprotect checks the description's mode). */
static int ring_reopen(int fd, int flags, int *ret) {
        char path[64];

        (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        *ret = open(path, flags | O_CLOEXEC);
        return *ret < 0 ? negerrno() : 0;
}

static int topic_create(struct reg *r, const struct proto_open *o, const char *name, const struct reg_owner *ow,
                        struct reg_topic **ret, char *err, size_t errlen) {
        _cleanup_(topic_destroyp) struct reg_topic *t = NULL;
        const struct conf *c = r->conf;
        struct seg_params p = {
                .slot_count = o->slot_count ? o->slot_count : c->slot_count,
                .slot_size = o->slot_size ? o->slot_size : c->slot_size,
                .policy = o->policy ? o->policy : c->policy,
                .max_producers = c->max_producers,
                .max_subs = c->max_subscribers,
                .sub_tables = c->sub_uids,
                .start_seq = REG_START_SEQ,
                .data_word_start = REG_DATA_WORD_START,
        };
        char path[64];
        uint64_t ring_size, bytes;
        int rr;

        uuid_generate_random(p.topic_id);
        uuid_generate_random(p.segment_id);
        name_tag(p.segment_id, name, p.name_tag);

        rr = seg_params_check(&p);
        if (rr < 0) {
                (void)snprintf(err, errlen, "invalid geometry for topic '%s' (slot_count %u, slot_size %u)", name,
                               p.slot_count, p.slot_size);
                return rr;
        }
        rr = seg_ring_size(&p, &ring_size);
        if (rr == -E2BIG)
                ring_size = UINT64_MAX;
        else if (rr < 0) {
                (void)snprintf(err, errlen, "invalid geometry for topic '%s' (slot_count %u, slot_size %u)", name,
                               p.slot_count, p.slot_size);
                return rr;
        }
        bytes = ring_size == UINT64_MAX ? UINT64_MAX : seg_topic_bytes(&p, ring_size);
        if (bytes > c->max_segment_bytes) {
                (void)snprintf(err, errlen, "topic '%s' (slot_count %u x slot_size %u) exceeds max_segment_bytes %llu",
                               name, p.slot_count, p.slot_size, (unsigned long long)c->max_segment_bytes);
                return -EFBIG;
        }
        rr = topic_room(r, name, bytes, ow, err, errlen);
        if (rr < 0)
                return rr;
        rr = topic_alloc(name, p.topic_id, p.segment_id, bytes, p.max_producers, p.max_subs, &t);
        if (rr < 0)
                return rr;

        rr = seg_create(&p, &t->ring_fd, t->table_fds);
        if (rr < 0) {
                log_err("creating segments for topic '%s' (%llu bytes) failed: %s", name,
                        (unsigned long long)bytes, strerror(-rr));
                (void)snprintf(err, errlen, "broker could not create topic '%s': %s", name, strerror(-rr));
                return rr;
        }
        rr = seg_map_fds(t->ring_fd, t->table_fds, 0, p.sub_tables, 1, &t->map);
        if (rr < 0) {
                log_err("mapping new topic '%s' failed: %s", name, strerror(-rr));
                (void)snprintf(err, errlen, "broker could not map topic '%s': %s", name, strerror(-rr));
                return rr;
        }
        /* A separate open file description that can only read: what a
         * subscriber maps can then never be made writable (mprotect checks
         * the description's mode). */
        (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", t->ring_fd);
        t->ring_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (t->ring_ro_fd < 0) {
                rr = negerrno();
                log_err("reopening ring of topic '%s' read-only via '%s' failed: %s", name, path, strerror(-rr));
                (void)snprintf(err, errlen, "broker could not create topic '%s': %s", name, strerror(-rr));
                return rr;
        }

        if (conf_log_verbose()) {
                char id[37];
                uuid_unparse_lower(t->topic_id, id);
                log_debug("created topic '%s' id %s: slot_count %u, slot_size %u, policy %s, %llu bytes", name, id,
                          p.slot_count, p.slot_size, zcbus_policy_name(p.policy), (unsigned long long)bytes);
        }
        topic_charge(t, ow);
        topic_link(r, t);
        *ret = TAKE_PTR(t);
        return 0;
}

/* Does an existing topic give the opener at least what it asked for? */
static int topic_compatible(const struct reg_topic *t, const struct proto_open *o, char *err, size_t errlen) {
        const struct seg_geom *g = &t->map.g;

        if (o->slot_size > g->slot_size) {
                (void)snprintf(err, errlen, "topic '%s' has slot_size %u, asked for %u", t->name, g->slot_size,
                               o->slot_size);
                return -EEXIST;
        }
        if (o->slot_count > g->slot_count) {
                (void)snprintf(err, errlen, "topic '%s' has slot_count %u, asked for %u", t->name, g->slot_count,
                               o->slot_count);
                return -EEXIST;
        }
        if (o->policy && o->policy != g->policy) {
                (void)snprintf(err, errlen, "topic '%s' has policy %s, asked for %s", t->name,
                               zcbus_policy_name(g->policy), zcbus_policy_name(o->policy));
                return -EEXIST;
        }
        return 0;
}

/* The table of uid's subscribers in t: the one bound to uid, else the
 * next one bound to it now; -EUSERS when every table is another uid's. */
static int table_of(struct reg_topic *t, uint32_t uid, uint32_t *ret, char *err, size_t errlen) {
        for (uint32_t i = 0; i < t->ntables; i++)
                if (t->table_uid[i] == uid) {
                        *ret = i;
                        return 0;
                }
        if (t->ntables >= t->map.g.sub_tables) {
                (void)snprintf(err, errlen, "topic '%s' has subscribers of %u uids already (sub_uids)", t->name,
                               t->map.g.sub_tables);
                return -EUSERS;
        }
        /* A table stays its uid's for the topic's life: a process of the
         * old uid may keep it mapped. */
        t->table_uid[t->ntables] = uid;
        *ret = t->ntables++;
        log_debug("topic '%s': subscriber table %u for uid %u", t->name, *ret, (unsigned)uid);
        return 0;
}

static void holder_set(struct reg_topic *t, uint32_t role, uint32_t i, const struct reg_owner *ow) {
        struct reg_holder *h = role == PROTO_ROLE_PUB ? &t->prod_holder[i] : &t->sub_holder[i];

        *h = (struct reg_holder){.uid = ow->uid, .pid = ow->pid};
        if (ow->session_id)
                memcpy(h->session_id, ow->session_id, 16);
}

static int entry_alloc(struct reg_topic *t, uint32_t role, const struct reg_owner *ow, const struct proto_open *o,
                       uint32_t *ret_index, uint64_t *ret_start, char *err, size_t errlen) {
        int pub = role == PROTO_ROLE_PUB;
        uint8_t *state = pub ? t->prod_state : t->sub_state;
        uint32_t n = pub ? t->map.g.max_producers : t->map.g.max_subs;
        uint32_t table = 0;

        for (uint32_t i = 0; i < n; i++) {
                if (state[i] != REG_ENTRY_FREE)
                        continue;
                int rr = pub ? 0 : table_of(t, ow->uid, &table, err, errlen);
                if (rr == 0)
                        rr = tables_for(t, role, table, err, errlen);
                if (rr < 0)
                        return rr;
                state[i] = REG_ENTRY_HELD;
                holder_set(t, role, i, ow);
                if (!ev_is_active(&t->reg->stall))
                        ev_timer_again(t->reg->loop, &t->reg->stall);
                if (pub) {
                        t->nprod++;
                        ring_prod_activate(&t->map, i, ow->pid);
                        *ret_start = 0;
                } else {
                        t->nsub++;
                        t->stalls[i] = (struct reg_stall){0};
                        t->sub_table[i] = (uint8_t)table;
                        /* 0: the library's default (RING_MAX_HOLDS_DEFAULT). */
                        t->sub_max_holds[i] = max_holds_of(t, o->max_holds);
                        *ret_start = ring_sub_register(&t->map, i, table, ow->pid, o->history);
                }
                idle_update(t);
                *ret_index = i;
                return 0;
        }
        (void)snprintf(err, errlen, "topic '%s' has its %u %ss", t->name, n, role_name(role));
        return -EUSERS;
}

int reg_open(struct reg *r, const struct proto_open *o, const char *name, const struct reg_owner *ow,
             struct reg_topic **ret_topic, uint32_t *ret_index, uint64_t *ret_start, char *err, size_t errlen) {
        struct reg_topic *t;
        uint32_t index;
        int rr;

        /* proto_decode checked these; the registry does not rely on it. */
        if (o->role != PROTO_ROLE_PUB && o->role != PROTO_ROLE_SUB) {
                (void)snprintf(err, errlen, "role %u is neither producer nor subscriber", o->role);
                return -EINVAL;
        }
        if (o->flags) {
                (void)snprintf(err, errlen, "flags must be 0");
                return -EINVAL;
        }
        if (o->policy > ZCBUS_POLICY_LATEST) {
                (void)snprintf(err, errlen, "unknown policy %u", o->policy);
                return -EINVAL;
        }
        if (!proto_name_valid(name, strnlen(name, PROTO_NAME_MAX + 1))) {
                (void)snprintf(err, errlen, "invalid topic name");
                return -EINVAL;
        }
        if (o->slot_count && (!is_pow2_u32(o->slot_count) || o->slot_count < 2)) {
                (void)snprintf(err, errlen, "slot_count must be a power of two (>= 2), got %u", o->slot_count);
                return -EINVAL;
        }

        t = topic_find(r, name);
        rr = conf_access(r->conf, ow->uid, ow->gid, name,
                         o->role == PROTO_ROLE_PUB ? CONF_ACT_PUBLISH : CONF_ACT_SUBSCRIBE, err, errlen);
        if (rr == 0 && !t)
                rr = conf_access(r->conf, ow->uid, ow->gid, name, CONF_ACT_CREATE, err, errlen);
        if (rr < 0)
                return rr;
        if (t)
                rr = topic_compatible(t, o, err, errlen);
        else
                rr = topic_create(r, o, name, ow, &t, err, errlen);
        if (rr < 0)
                return rr;
        rr = entry_alloc(t, o->role, ow, o, &index, ret_start, err, errlen);
        if (rr < 0)
                return rr;
        *ret_topic = t;
        *ret_index = index;
        return 0;
}

unsigned reg_open_reply(const struct reg_topic *t, uint32_t role, uint32_t index, uint64_t start,
                        struct proto_open_reply *ret, int *ret_fds) {
        bool pub = role == PROTO_ROLE_PUB;
        unsigned n = 1;

        *ret = (struct proto_open_reply){
                .slot_count = t->map.g.slot_count,
                .slot_size = t->map.g.slot_size,
                .policy = t->map.g.policy,
                .index = index,
                .table = pub ? 0 : t->sub_table[index],
                .ntables = pub ? t->map.g.sub_tables : 1,
                .start = start,
                .ring_size = t->map.g.ring_size,
                .subs_size = t->map.g.subs_size,
        };
        memcpy(ret->topic_id, t->topic_id, 16);
        memcpy(ret->segment_id, t->segment_id, 16);
        ret_fds[0] = pub ? t->ring_fd : t->ring_ro_fd;
        if (pub)
                for (uint32_t i = 0; i < t->map.g.sub_tables; i++)
                        ret_fds[n++] = t->table_fds[i];
        else
                ret_fds[n++] = t->table_fds[t->sub_table[index]];
        return n;
}

/* --- releasing entries and repairing producers ----------------------------- */

static void repair_free_entry(struct reg_topic *t, uint32_t i) {
        t->prod_state[i] = REG_ENTRY_FREE;
        t->nrepair--;
        t->reg->nrepair--;
}

/* (Re)arm the repair timer to fire at `at` at the latest. */
static void repair_schedule(struct reg *r, ev_tstamp at) {
        ev_tstamp after = at - ev_now(r->loop);

        if (after < 0.)
                after = 0.;
        if (ev_is_active(&r->repair)) {
                if (ev_timer_remaining(r->loop, &r->repair) <= after)
                        return;
                ev_timer_stop(r->loop, &r->repair);
        }
        ev_timer_set(&r->repair, after, 0.);
        ev_timer_start(r->loop, &r->repair);
}

/* One step of entry i's repair, within *budget. Returns the time it
 * wants its next step at, or 0 when it is over. */
static ev_tstamp repair_one(struct reg_topic *t, uint32_t i, ev_tstamp now, uint64_t *budget) {
        struct reg_repair *rp = &t->repairs[i];
        ev_tstamp give_up = rp->started + t->reg->conf->repair_timeout_ms / 1000.;
        int rr;

        /* Past repair_timeout_ms a repair that waits only for a slot to
         * come free (a subscriber still needs the lap before: an honest
         * wait, which giving up would turn into a hole readers wait at for
         * ever) goes on once a second at O(1) a try; one that another
         * producer's claim words keep busy is given up. */
        if (now >= give_up && rp->last != -EAGAIN) {
                log_warn("topic '%s': giving up repairing producer %u after %u ms (its claim words, or another "
                         "producer's, make no sense); readers may wait at sequence %llu until a producer times out",
                         t->name, i, t->reg->conf->repair_timeout_ms, (unsigned long long)rp->st.next);
                ring_prod_forget(&t->map, i);
                repair_free_entry(t, i);
                return 0.;
        }
        if (now >= give_up && !rp->slow) {
                rp->slow = true;
                log_warn("topic '%s': repairing producer %u still waits, after %u ms, for the slot of sequence "
                         "%llu to come free (a subscriber holds the lap before); trying once a second",
                         t->name, i, t->reg->conf->repair_timeout_ms, (unsigned long long)rp->st.next);
        }
        if (rp->due > now)
                return rp->slow ? rp->due : MIN(rp->due, give_up);
        if (*budget == 0)
                return now + REG_REPAIR_FIRST; /* this tick's budget is spent */
        uint64_t b = MIN(*budget, REG_REPAIR_STEP_BUDGET), before = b;
        rr = ring_prod_repair_step(&t->map, i, &rp->st, &b);
        *budget -= before - b;
        rp->last = rr;
        if (rr == 0) {
                log_debug("topic '%s': producer %u repaired", t->name, i);
                repair_free_entry(t, i);
                return 0.;
        }
        if (rr == -EINPROGRESS)
                rp->due = now + REG_REPAIR_FIRST; /* more to look at: go on soon */
        else {
                rp->due = now + rp->delay; /* a slot is not free yet: back off */
                rp->delay = MIN(rp->delay * 2., rp->slow ? REG_REPAIR_SLOW_DELAY : REG_REPAIR_MAX_DELAY);
        }
        return rp->slow ? rp->due : MIN(rp->due, give_up);
}

static void repair_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct reg *r = w->data;
        ev_tstamp now = ev_now(loop), next = 0.;
        uint64_t budget = REG_REPAIR_TICK_BUDGET;
        uint32_t n = 0;

        for (struct reg_topic *t = r->repair_head; t; t = t->rnext)
                n++;
        /* Each topic looked at goes to the back: none is starved when the
         * tick's budget runs out. */
        for (uint32_t k = 0; k < n && r->repair_head; k++) {
                struct reg_topic *t = r->repair_head;

                for (uint32_t i = 0; i < t->map.g.max_producers && t->nrepair; i++) {
                        if (t->prod_state[i] != REG_ENTRY_REPAIR)
                                continue;
                        ev_tstamp at = repair_one(t, i, now, &budget);
                        if (at > 0. && (next == 0. || at < next))
                                next = at;
                }
                repairing_remove(r, t);
                if (t->nrepair)
                        repairing_append(r, t);
                idle_update(t);
        }
        if (r->nrepair && next > 0.)
                repair_schedule(r, next);
}

/* --- the stall policy ---------------------------------------------------- */

/* Slots of hold bitmaps the LATEST check reads per topic and look. */
#define REG_HOLDS_BUDGET (UINT64_C(1) << 20)

/* How often the stall policy looks: well inside any timeout it enforces. */
#define REG_STALL_PERIOD 0.1

/* Are the topic's producers held back right now? One started waiting
 * since the last look, or they were held back then and head has not moved
 * since. Without a producer trying, a subscriber a ring behind holds back
 * nobody. */
static bool producers_blocked(struct reg_topic *t) {
        uint64_t waits = 0, h = ring_head(&t->map);
        bool blocked;

        for (uint32_t i = 0; i < t->map.g.max_producers; i++)
                if (t->prod_state[i] == REG_ENTRY_HELD || t->prod_state[i] == REG_ENTRY_ORPHAN)
                        waits += load_rlx(&seg_prod(&t->map, i)->waits);
        /* Producer-side evidence only: a table's arms are written by its
         * subscribers. */
        blocked = t->nprod > 0 &&
                  (waits != t->stall_waits ||
                   (t->stall_blocked && h == t->stall_head));
        t->stall_waits = waits;
        t->stall_head = h;
        t->stall_blocked = blocked;
        return blocked;
}

/* Entries the broker does not hand out (FREE) or has evicted keep their
 * state and no floor, whatever a subscriber wrote there (what subscribers
 * may write is shared: docs/design.md, Threat model). */
static void stall_reassert(struct reg_topic *t) {
        bool woke = false;

        for (uint32_t i = 0; i < t->map.g.max_subs; i++) {
                if (t->sub_state[i] == REG_ENTRY_FREE)
                        woke |= ring_sub_entry_reset(&t->map, i, 0, SEG_ENTRY_FREE);
                else if (t->stalls[i].evicted)
                        woke |= ring_sub_entry_reset(&t->map, i, t->sub_table[i], SEG_ENTRY_EVICTED);
        }
        if (woke) {
                log_debug("topic '%s': a freed or evicted subscriber entry was written to; reset", t->name);
                ring_wake_room(&t->map);
        }
}

/* Evict, from each RELIABLE topic whose producers are held back, every
 * live subscriber that has held them back (the ring full from its floor,
 * the message there published) with the same floor for the topic's stall
 * timeout. Its entry stays its session's (EVICTED) until closed; its
 * next receive and release fail. The work per look is bounded by the
 * producer and subscriber tables of the topics that have either. */
/* LATEST: while producers are held back (every slot held), evict each
 * live subscriber that holds more slots than the max_holds it declared:
 * an honest one never does, so the topic's producers are never held back
 * by holds beyond what its subscribers said they would take. The count
 * reads REG_HOLDS_BUDGET bitmap slots per look at most, only while
 * producers wait, and resumes where it stopped. */
static void holds_check(struct reg_topic *t) {
        uint64_t budget = REG_HOLDS_BUDGET;
        uint32_t n = t->map.g.max_subs, looked = 0;

        if (!producers_blocked(t))
                return;
        /* A bounded count per look, resumed at the next: the entry, the
         * slot and the count so far. */
        while (budget > 0 && looked <= n) {
                uint32_t i = t->holds_entry % n;
                if ((t->sub_state[i] != REG_ENTRY_HELD && t->sub_state[i] != REG_ENTRY_ORPHAN) ||
                    t->stalls[i].evicted) {
                        t->holds_entry = (i + 1) % n;
                        t->holds_slot = t->holds_count = 0;
                        looked++;
                        continue;
                }
                uint64_t to = MIN(t->map.g.slot_count, t->holds_slot + budget);
                t->holds_count += ring_sub_count_holds(&t->map, i, t->sub_table[i], t->holds_slot, to);
                budget -= to - t->holds_slot;
                t->holds_slot = to;
                if (t->holds_count > t->sub_max_holds[i]) {
                        ring_sub_stall_evict(&t->map, i, t->sub_table[i]);
                        t->stalls[i].evicted = true;
                        t->nover++;
                        log_warn("topic '%s': subscriber %u (pid %u) held more than the %u slots it may "
                                 "(max_holds) while producers waited: evicted; its next receive fails",
                                 t->name, i, (unsigned)load_rlx(&seg_sub_state(&t->map, i)->pid),
                                 t->sub_max_holds[i]);
                } else if (to < t->map.g.slot_count) {
                        continue; /* budget spent in this entry */
                }
                t->holds_entry = (i + 1) % n;
                t->holds_slot = t->holds_count = 0;
                looked++;
        }
}

static void stall_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct reg *r = w->data;
        ev_tstamp now = ev_now(loop);
        bool watched = false;

        for (struct reg_topic *t = r->head; t; t = t->next) {
                uint32_t ms;

                if (t->nsub == 0 && t->nprod == 0)
                        continue;
                watched = true;
                if (t->norphans)
                        orphans_check(t);
                stall_reassert(t);
                if (t->map.g.policy == ZCBUS_POLICY_LATEST) {
                        holds_check(t);
                        continue;
                }
                ms = conf_stall_ms(r->conf, t->name);
                bool blocked = producers_blocked(t);
                for (uint32_t i = 0; i < t->map.g.max_subs; i++) {
                        struct reg_stall *st = &t->stalls[i];
                        uint64_t f;

                        if ((t->sub_state[i] != REG_ENTRY_HELD && t->sub_state[i] != REG_ENTRY_ORPHAN) ||
                            st->evicted)
                                continue;
                        if (ms == 0 || !blocked || !ring_sub_gating(&t->map, i, t->sub_table[i], &f)) {
                                st->since = 0.;
                                continue;
                        }
                        if (st->since == 0. || f != st->floor) {
                                st->floor = f;
                                st->since = now;
                                continue;
                        }
                        if ((now - st->since) * 1000. < ms)
                                continue;
                        ring_sub_stall_evict(&t->map, i, t->sub_table[i]);
                        st->evicted = true;
                        t->nstalled++;
                        log_warn("topic '%s': subscriber %u (pid %u) held producers back at sequence %llu for %u ms "
                                 "(stall timeout): evicted; its next receive fails",
                                 t->name, i, (unsigned)load_rlx(&seg_sub_state(&t->map, i)->pid),
                                 (unsigned long long)f, ms);
                }
        }
        if (!watched)
                ev_timer_stop(loop, w); /* restarted by the next producer or subscriber */
}

void reg_release(struct reg_topic *t, uint32_t role, uint32_t index) {
        struct reg *r = t->reg;

        if (role == PROTO_ROLE_PUB) {
                if (index >= t->map.g.max_producers || t->prod_state[index] != REG_ENTRY_HELD)
                        return;
                t->nprod--;
                ring_prod_close(&t->map, index);
                struct reg_repair *rp = &t->repairs[index];
                ev_tstamp now = ev_now(r->loop);
                *rp = (struct reg_repair){.started = now, .due = now, .delay = REG_REPAIR_FIRST};
                t->prod_state[index] = REG_ENTRY_REPAIR;
                t->nrepair++;
                r->nrepair++;
                uint64_t budget = REG_REPAIR_STEP_BUDGET;
                ev_tstamp at = repair_one(t, index, now, &budget);
                if (at > 0.) {
                        log_debug("topic '%s': producer %u left claims behind; repairing", t->name, index);
                        repairing_append(r, t);
                        repair_schedule(r, at);
                }
        } else {
                if (index >= t->map.g.max_subs || t->sub_state[index] != REG_ENTRY_HELD)
                        return;
                t->nsub--;
                ring_sub_evict(&t->map, index, t->sub_table[index]);
                t->sub_state[index] = REG_ENTRY_FREE;
        }
        idle_update(t);
}

/* --- re-learning topics after a restart (ADOPT) ------------------------------ */

/* Which table each handed-back fd is, by its kernel-kept memfd name, or
 * -EPERM: is fds[0..n) a ring (RW or RO) and tables of the topic a names,
 * made by a broker of this uid for a topic of that name? (Names, owners
 * and modes no client can forge; what a table's header says, its
 * subscribers can.) */
static int adopt_check_fds(const struct proto_adopt *a, const char *name, const int *fds, unsigned n,
                           uint32_t *ret_index, char *err, size_t errlen) {
        uint8_t tag[16];
        char want[128];

        if (n != 1 + a->ntables || n > PROTO_FDS_MAX) {
                (void)snprintf(err, errlen, "ADOPT of '%s' came with %u descriptors, not 1 + %u", name, n,
                               a->ntables);
                return -EBADMSG;
        }
        name_tag(a->segment_id, name, tag);
        seg_memfd_name(want, sizeof(want), a->segment_id, -1, tag);
        if (seg_fd_is(fds[0], want, 0400) < 0) {
                (void)snprintf(err, errlen, "the ring handed back is not topic '%s''s", name);
                return -EPERM;
        }
        for (unsigned i = 1; i < n; i++) {
                bool ok = false;
                for (uint32_t k = 0; k < SEG_TABLES_MAX && !ok; k++) {
                        seg_memfd_name(want, sizeof(want), a->segment_id, (int)k, NULL);
                        ok = seg_fd_is(fds[i], want, 0600) == 0;
                        ret_index[i] = k;
                }
                if (!ok) {
                        (void)snprintf(err, errlen, "a table handed back is not topic '%s''s", name);
                        return -EPERM;
                }
        }
        return 0;
}

/* A writable description of the ring from any of its fds: the broker's
 * uid owns the memfd, so it may lift its mode for a moment (root needs
 * not). */
static int ring_writable_fd(int fd, int *ret) {
        int fl = fcntl(fd, F_GETFL), r;

        if (fl >= 0 && (fl & O_ACCMODE) == O_RDWR) {
                *ret = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                return *ret < 0 ? negerrno() : 0;
        }
        r = ring_reopen(fd, O_RDWR, ret);
        if (r != -EACCES)
                return r;
        if (fchmod(fd, 0600) < 0)
                return negerrno();
        r = ring_reopen(fd, O_RDWR, ret);
        (void)fchmod(fd, 0400);
        return r;
}

/* Mark every entry the ring says is live as an orphan: nobody holds it
 * until its client hands it back, and it is repaired once its pid is gone. */
static void adopt_orphans(struct reg_topic *t) {
        const struct seg_map *m = &t->map;

        for (uint32_t i = 0; i < m->g.max_producers; i++)
                if (load_acq(&seg_prod(m, i)->state) == SEG_ENTRY_ACTIVE) {
                        t->prod_state[i] = REG_ENTRY_ORPHAN;
                        t->prod_holder[i] = (struct reg_holder){.uid = REG_UID_UNKNOWN};
                        t->nprod++;
                        t->norphans++;
                        t->norphan_prods++;
                }
        for (uint32_t i = 0; i < m->g.max_subs; i++) {
                uint32_t w = load_acq(&seg_sub_state(m, i)->state), st = w & 0xff, table = w >> 8;
                if ((st != SEG_ENTRY_ACTIVE && st != SEG_ENTRY_EVICTED) || table >= m->g.sub_tables)
                        continue;
                t->sub_state[i] = REG_ENTRY_ORPHAN;
                t->sub_holder[i] = (struct reg_holder){.uid = REG_UID_UNKNOWN};
                t->sub_table[i] = (uint8_t)table;
                t->sub_max_holds[i] = RING_MAX_HOLDS_DEFAULT;
                t->stalls[i] = (struct reg_stall){.evicted = st == SEG_ENTRY_EVICTED};
                t->nsub++;
                t->norphans++;
                /* A table an entry lives in was bound, whatever the ring's
                 * count (producers write it) says. */
                if (t->ntables <= table)
                        t->ntables = table + 1;
        }
}

/* A topic this broker does not know, from a client's descriptors (the
 * ring, and the first table, fds[1], which is table index[1]). */
static int topic_adopt(struct reg *r, const struct proto_adopt *a, const char *name, int *fds,
                       const uint32_t *index, const struct reg_owner *ow, struct reg_topic **ret, char *err,
                       size_t errlen) {
        _cleanup_(topic_destroyp) struct reg_topic *t = NULL;
        _cleanup_close_ int rw = -1;
        struct seg_map m;
        uint64_t bytes;
        int rr;

        rr = ring_writable_fd(fds[0], &rw);
        if (rr == 0)
                rr = seg_map_fds(rw, fds + 1, index[1], 1, 1, &m);
        if (rr == 0 && memcmp(m.g.segment_id, a->segment_id, 16) != 0) {
                seg_unmap(&m);
                rr = -EBADMSG;
        }
        if (rr < 0) {
                (void)snprintf(err, errlen, "the segments of topic '%s' handed back do not map: %s", name,
                               strerror(-rr));
                return rr;
        }
        struct seg_params p = {.max_subs = m.g.max_subs, .slot_count = m.g.slot_count, .policy = m.g.policy,
                               .sub_tables = m.g.sub_tables};
        bytes = seg_topic_bytes(&p, m.g.ring_size);
        if (bytes > r->conf->max_segment_bytes) {
                (void)snprintf(err, errlen, "topic '%s' (%llu bytes) exceeds max_segment_bytes %llu", name,
                               (unsigned long long)bytes, (unsigned long long)r->conf->max_segment_bytes);
                rr = -EFBIG;
        }
        if (rr == 0)
                rr = topic_room(r, name, bytes, ow, err, errlen);
        if (rr == 0)
                rr = topic_alloc(name, m.g.topic_id, m.g.segment_id, bytes, m.g.max_producers, m.g.max_subs, &t);
        if (rr < 0) {
                seg_unmap(&m);
                return rr;
        }
        t->map = m;
        t->ring_fd = TAKE_FD(rw);
        t->table_fds[index[1]] = fds[1];
        fds[1] = -1;
        rr = ring_reopen(t->ring_fd, O_RDONLY, &t->ring_ro_fd);
        if (rr < 0) {
                (void)snprintf(err, errlen, "broker could not reopen topic '%s': %s", name, strerror(-rr));
                return rr;
        }
        for (uint32_t k = 0; k < SEG_TABLES_MAX; k++)
                t->table_uid[k] = REG_TABLE_UID_UNKNOWN;
        t->ntables = seg_tables_bound(&t->map);
        adopt_orphans(t);
        log_info("re-learned topic '%s' (slot_count %u, slot_size %u, policy %s) from pid %u after a restart: "
                 "%u entries live in it",
                 name, m.g.slot_count, m.g.slot_size, zcbus_policy_name(m.g.policy), (unsigned)ow->pid,
                 t->norphans);
        topic_charge(t, ow);
        topic_link(r, t);
        if (!ev_is_active(&r->stall))
                ev_timer_again(r->loop, &r->stall);
        *ret = TAKE_PTR(t);
        return 0;
}

/* Keep the tables handed back that t lacks, each at the index its name
 * gives (the fds kept set to -1). */
static void adopt_tables(struct reg_topic *t, int *fds, unsigned n, const uint32_t *index) {
        for (unsigned i = 1; i < n; i++) {
                uint32_t k = index[i];
                if (fds[i] < 0 || t->table_fds[k] >= 0 || seg_map_table(&t->map, fds[i], k) < 0)
                        continue;
                t->table_fds[k] = fds[i];
                fds[i] = -1;
        }
}

/* Is fd the memfd this broker has as table k of t? */
static bool same_table(const struct reg_topic *t, uint32_t k, const struct stat *st) {
        struct stat mine;
        return t->table_fds[k] >= 0 && fstat(t->table_fds[k], &mine) == 0 && mine.st_ino == st->st_ino &&
               mine.st_dev == st->st_dev;
}

int reg_adopt(struct reg *r, const struct proto_adopt *a, const char *name, int *fds, unsigned nfds,
              const struct reg_owner *ow, struct reg_topic **ret_topic, char *err, size_t errlen) {
        bool pub = a->role == PROTO_ROLE_PUB;
        uint32_t index[PROTO_FDS_MAX] = {0};
        struct stat own = {0};
        struct reg_topic *t;
        int rr;

        if (a->role != PROTO_ROLE_PUB && a->role != PROTO_ROLE_SUB) {
                (void)snprintf(err, errlen, "role %u is neither producer nor subscriber", a->role);
                return -EINVAL;
        }
        rr = adopt_check_fds(a, name, fds, nfds, index, err, errlen);
        if (rr < 0)
                return rr;
        /* A subscriber's own table, as handed back (before the registry
         * may take the fd). */
        bool has_own = false;
        for (unsigned k = 1; k < nfds && !pub; k++)
                if (index[k] == a->table && fstat(fds[k], &own) == 0)
                        has_own = true;
        rr = conf_access(r->conf, ow->uid, ow->gid, name, pub ? CONF_ACT_PUBLISH : CONF_ACT_SUBSCRIBE, err, errlen);
        if (rr < 0)
                return rr;
        t = topic_find(r, name);
        if (t && memcmp(t->segment_id, a->segment_id, 16) != 0) {
                (void)snprintf(err, errlen, "topic '%s' was made anew since the restart; its old segments cannot "
                                            "come back", name);
                return -EEXIST;
        }
        if (!t) {
                rr = conf_access(r->conf, ow->uid, ow->gid, name, CONF_ACT_CREATE, err, errlen);
                if (rr == 0)
                        rr = topic_adopt(r, a, name, fds, index, ow, &t, err, errlen);
                if (rr < 0)
                        return rr;
        }
        adopt_tables(t, fds, nfds, index);

        /* Only an orphan, and only by the process the old broker gave it
         * to (reconnecting is that process's business). */
        uint32_t i = a->index;
        uint8_t *state = pub ? t->prod_state : t->sub_state;
        if (i >= (pub ? t->map.g.max_producers : t->map.g.max_subs) || state[i] != REG_ENTRY_ORPHAN) {
                (void)snprintf(err, errlen, "topic '%s' has no %s entry %u left to hand back", name,
                               role_name(a->role), i);
                return -ENOENT;
        }
        uint32_t pid = load_rlx(pub ? &seg_prod(&t->map, i)->pid : &seg_sub_state(&t->map, i)->pid);
        if (pid != ow->pid) {
                (void)snprintf(err, errlen, "%s %u of topic '%s' was pid %u's, not %u's", role_name(a->role), i,
                               name, (unsigned)pid, (unsigned)ow->pid);
                return -EPERM;
        }
        if (pub) {
                t->norphan_prods--;
        } else {
                uint32_t w = load_acq(&seg_sub_state(&t->map, i)->state);
                if ((w >> 8) != a->table || t->sub_table[i] != a->table || !has_own ||
                    !same_table(t, a->table, &own)) {
                        (void)snprintf(err, errlen, "subscriber %u of topic '%s' is not live in the table handed "
                                                    "back", i, name);
                        return -ENOENT;
                }
                uint32_t *u = &t->table_uid[a->table];
                if (*u != REG_TABLE_UID_UNKNOWN && *u != ow->uid) {
                        (void)snprintf(err, errlen, "table %u of topic '%s' is another uid's", a->table, name);
                        return -EACCES;
                }
                *u = ow->uid;
                t->sub_max_holds[i] = max_holds_of(t, a->max_holds);
        }
        t->norphans--;
        state[i] = REG_ENTRY_HELD;
        holder_set(t, a->role, i, ow);
        idle_update(t);
        *ret_topic = t;
        return 0;
}

/* Orphans whose pid is gone are repaired like any peer that died (the
 * pid is the old broker's record, in the ring: a producer may have
 * written it, and a pid may be reused; a live orphan waits). */
static void orphans_check(struct reg_topic *t) {
        for (uint32_t i = 0; t->norphans && i < t->map.g.max_producers; i++) {
                if (t->prod_state[i] != REG_ENTRY_ORPHAN)
                        continue;
                pid_t pid = (pid_t)load_rlx(&seg_prod(&t->map, i)->pid);
                if (pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH))
                        continue;
                log_info("topic '%s': producer %u (pid %d) did not come back after the restart and is gone: "
                         "repairing", t->name, i, (int)pid);
                t->prod_state[i] = REG_ENTRY_HELD;
                t->norphans--;
                t->norphan_prods--;
                reg_release(t, PROTO_ROLE_PUB, i);
        }
        for (uint32_t i = 0; t->norphans && i < t->map.g.max_subs; i++) {
                if (t->sub_state[i] != REG_ENTRY_ORPHAN)
                        continue;
                pid_t pid = (pid_t)load_rlx(&seg_sub_state(&t->map, i)->pid);
                if (pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH))
                        continue;
                log_info("topic '%s': subscriber %u (pid %d) did not come back after the restart and is gone",
                         t->name, i, (int)pid);
                t->sub_state[i] = REG_ENTRY_HELD;
                t->norphans--;
                reg_release(t, PROTO_ROLE_SUB, i);
        }
}

/* Tables an opener needs that a re-learned topic lacks (none came back):
 * made anew, unless a live orphan could still be using the old one (a
 * producer that would not see the new one's floors and arms, a subscriber
 * in it). */
static int tables_for(struct reg_topic *t, uint32_t role, uint32_t table, char *err, size_t errlen) {
        for (uint32_t k = 0; k < t->map.g.sub_tables; k++) {
                if (t->table_fds[k] >= 0 || (role == PROTO_ROLE_SUB && k != table))
                        continue;
                bool used = t->norphan_prods > 0;
                for (uint32_t i = 0; !used && i < t->map.g.max_subs; i++)
                        used = t->sub_state[i] == REG_ENTRY_ORPHAN && t->sub_table[i] == k;
                if (used) {
                        (void)snprintf(err, errlen,
                                       "topic '%s' is being re-learned after a broker restart: its table %u comes "
                                       "back with its peers, try again",
                                       t->name, k);
                        return -EAGAIN;
                }
                int fd, rr = seg_create_table(&t->map.g, k, &fd);
                if (rr == 0) {
                        rr = seg_map_table(&t->map, fd, k);
                        if (rr < 0)
                                (void)close(fd);
                }
                if (rr < 0) {
                        (void)snprintf(err, errlen, "broker could not make table %u of topic '%s': %s", k, t->name,
                                       strerror(-rr));
                        return rr;
                }
                t->table_fds[k] = fd;
                /* A lost table's uid is unknown: no one is bound to it again. */
                if (k < t->ntables && t->table_uid[k] == REG_TABLE_UID_UNKNOWN)
                        t->table_uid[k] = REG_TABLE_UID_UNKNOWN - 1;
        }
        return 0;
}

/* --- registry -------------------------------------------------------------- */

int reg_new(struct ev_loop *loop, const struct conf *conf, struct reg **ret) {
        _cleanup_free_ struct reg *r = NULL;
        uint32_t nb = 16;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        while (nb < conf->max_topics && nb < (UINT32_C(1) << 16))
                nb <<= 1;
        r->buckets = calloc(nb, sizeof(*r->buckets));
        if (!r->buckets)
                return -ENOMEM;
        r->nbuckets = nb;
        r->loop = loop;
        r->conf = conf;
        ev_timer_init(&r->repair, repair_cb, REG_REPAIR_FIRST, 0.);
        r->repair.data = r;
        ev_timer_init(&r->stall, stall_cb, REG_STALL_PERIOD, REG_STALL_PERIOD);
        r->stall.data = r;
        *ret = TAKE_PTR(r);
        return 0;
}

void reg_free(struct reg *r) {
        if (!r)
                return;
        ev_timer_stop(r->loop, &r->stall);
        ev_timer_stop(r->loop, &r->repair);
        if (r->nrepair) { /* one last, bounded, attempt for each */
                for (struct reg_topic *t = r->repair_head; t; t = t->rnext)
                        for (uint32_t i = 0; i < t->map.g.max_producers; i++)
                                if (t->prod_state[i] == REG_ENTRY_REPAIR)
                                        t->repairs[i].due = 0.;
                repair_cb(r->loop, &r->repair, 0);
                ev_timer_stop(r->loop, &r->repair);
        }
        while (r->head) {
                struct reg_topic *t = r->head;
                if (t->nrepair)
                        log_warn("topic '%s': dropping %u unfinished producer repairs at exit", t->name,
                                 t->nrepair);
                topic_unlink(r, t);
                topic_destroy(t);
        }
        free(r->buckets);
        free(r);
}

uint32_t reg_count(const struct reg *r) {
        return r->ntopics;
}

uint32_t reg_list(const struct reg *r, uint32_t start, uint32_t max, struct proto_list_entry *entries) {
        const struct reg_topic *t = r->head;
        uint32_t n = 0;

        for (uint32_t i = 0; t && i < start; i++)
                t = t->next;
        for (; t && n < max; t = t->next, n++) {
                struct proto_list_entry *e = &entries[n];
                uint64_t head = ring_head(&t->map);

                memset(e, 0, sizeof(*e));
                strcpy(e->name, t->name);
                memcpy(e->topic_id, t->topic_id, 16);
                e->slot_count = t->map.g.slot_count;
                e->slot_size = t->map.g.slot_size;
                e->policy = t->map.g.policy;
                e->producers = t->nprod;
                e->subscribers = t->nsub;
                /* head lives in producer-writable memory: statistics only. */
                e->published = head >= t->map.g.start_seq ? head - t->map.g.start_seq : 0;
        }
        return n;
}

/* --- inspecting and deleting topics (STAT, TOPIC_RM) ------------------------ */

/* The kernel keeps comm under 16 bytes; what we keep is cut there and
 * terminated whatever it says. */
void reg_read_comm(uint32_t pid, char comm[PROTO_COMM_MAX]) {
        char path[32];
        ssize_t n;

        memset(comm, 0, PROTO_COMM_MAX);
        if (pid == 0 || pid > INT32_MAX)
                return;
        (void)snprintf(path, sizeof(path), "/proc/%u/comm", (unsigned)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return;
        n = read(fd, comm, PROTO_COMM_MAX - 1);
        if (n <= 0) {
                comm[0] = 0;
                return;
        }
        comm[n] = 0;
        comm[strcspn(comm, "\n")] = 0;
        /* Pad after the first NUL, so the entry is canonical. */
        size_t k = strlen(comm);
        memset(comm + k, 0, PROTO_COMM_MAX - k);
}

static void stat_prod(const struct reg_topic *t, uint32_t i, struct proto_stat_entry *e) {
        const struct seg_prod *p = seg_prod(&t->map, i);
        const struct reg_holder *h = &t->prod_holder[i];
        uint8_t st = t->prod_state[i];
        uint64_t claim = load_rlx(&p->claim);

        *e = (struct proto_stat_entry){
                .role = PROTO_ROLE_PUB,
                .index = i,
                .state = st == REG_ENTRY_ORPHAN ? PROTO_ENTRY_ORPHAN
                         : st == REG_ENTRY_REPAIR ? PROTO_ENTRY_REPAIR
                                                  : PROTO_ENTRY_LIVE,
                /* An orphan's pid is the old broker's record, in the ring. */
                .pid = st == REG_ENTRY_ORPHAN ? load_rlx(&p->pid) : h->pid,
                .uid = h->uid,
                .next = claim == SEG_CLAIM_NONE ? UINT64_MAX : claim & ~SEG_CLAIM_PENDING,
                .floor = UINT64_MAX,
                .count = load_rlx(&p->published),
                .lost = load_rlx(&p->abandoned),
                .sleeps = load_rlx(&p->waits),
                .wakeups = load_rlx(&p->wakeups),
                .skipped = load_rlx(&p->skipped),
        };
        memcpy(e->session_id, h->session_id, 16);
        reg_read_comm(e->pid, e->comm);
}

static void stat_sub(const struct reg_topic *t, uint32_t i, uint64_t head, struct proto_stat_entry *e) {
        const struct reg_holder *h = &t->sub_holder[i];
        uint32_t table = t->sub_table[i]; /* the broker's record */
        uint8_t st = t->sub_state[i];
        bool evicted = t->stalls[i].evicted;

        *e = (struct proto_stat_entry){
                .role = PROTO_ROLE_SUB,
                .index = i,
                .state = st == REG_ENTRY_ORPHAN ? PROTO_ENTRY_ORPHAN
                         : evicted              ? PROTO_ENTRY_EVICTED
                                                : PROTO_ENTRY_LIVE,
                .pid = st == REG_ENTRY_ORPHAN ? load_rlx(&seg_sub_state(&t->map, i)->pid) : h->pid,
                .uid = h->uid,
                .table = table,
                .next = UINT64_MAX,
                .floor = UINT64_MAX,
        };
        memcpy(e->session_id, h->session_id, 16);
        reg_read_comm(e->pid, e->comm);
        /* A re-learned topic may lack the table: no counters then. */
        if (!seg_has_table(&t->map, table))
                return;
        const struct seg_sub *s = seg_sub(&t->map, table, i);
        uint64_t next = load_rlx(&s->next), f;
        e->next = next;
        e->floor = load_rlx(&s->floor);
        e->lag = head > next ? head - next : 0;
        e->held = MIN(load_rlx(&s->held), t->map.g.slot_count);
        e->count = load_rlx(&s->received);
        e->lost = load_rlx(&s->lost);
        e->sleeps = load_rlx(&s->sleeps);
        if (t->map.g.policy == ZCBUS_POLICY_RELIABLE && !evicted && ring_sub_gating(&t->map, i, table, &f))
                e->flags |= PROTO_ENTRY_GATING;
}

int reg_stat(struct reg *r, const char *name, uint32_t uid, uint32_t gid, uint32_t start, uint32_t max,
             struct proto_stat_reply *ret, struct proto_stat_entry *entries, char *err, size_t errlen) {
        struct reg_topic *t = topic_find(r, name);
        uint64_t head;
        uint32_t k = 0, n = 0;

        if (!t) {
                (void)snprintf(err, errlen, "no topic '%s'", name);
                return -ENOENT;
        }
        /* Anyone who may use the topic may see who else does. */
        if (conf_access(r->conf, uid, gid, name, CONF_ACT_SUBSCRIBE, err, errlen) < 0 &&
            conf_access(r->conf, uid, gid, name, CONF_ACT_PUBLISH, err, errlen) < 0) {
                (void)snprintf(err, errlen, "uid %u may neither publish nor subscribe to topic '%.64s', so may not "
                               "see it", (unsigned)uid, name);
                return -EACCES;
        }
        head = ring_head(&t->map);
        *ret = (struct proto_stat_reply){
                .policy = t->map.g.policy,
                .slot_count = t->map.g.slot_count,
                .slot_size = t->map.g.slot_size,
                .flags = t->map.g.policy == ZCBUS_POLICY_RELIABLE && t->stall_blocked && t->nprod
                                 ? PROTO_STAT_BLOCKED
                                 : 0,
                .producers = t->nprod,
                .subscribers = t->nsub,
                .max_producers = t->map.g.max_producers,
                .max_subscribers = t->map.g.max_subs,
                .sub_tables = t->map.g.sub_tables,
                .stall_ms = t->map.g.policy == ZCBUS_POLICY_RELIABLE ? conf_stall_ms(r->conf, name) : 0,
                .bytes = t->bytes,
                .head = head,
                .start_seq = t->map.g.start_seq,
                .stalled = t->nstalled,
                .over = t->nover,
        };
        memcpy(ret->topic_id, t->topic_id, 16);
        memcpy(ret->segment_id, t->segment_id, 16);
        max = MIN(max, PROTO_STAT_MAX);
        for (uint32_t i = 0; i < t->map.g.max_producers; i++) {
                if (t->prod_state[i] == REG_ENTRY_FREE)
                        continue;
                if (k++ >= start && n < max)
                        stat_prod(t, i, &entries[n++]);
        }
        for (uint32_t i = 0; i < t->map.g.max_subs; i++) {
                if (t->sub_state[i] == REG_ENTRY_FREE)
                        continue;
                if (k++ >= start && n < max)
                        stat_sub(t, i, head, &entries[n++]);
        }
        ret->total = k;
        ret->count = n;
        return 0;
}

/* "producer 0 (pid 12 'zcbus'), subscriber 3 (pid 40 'cam') and 2 more" */
static void busy_text(const struct reg_topic *t, char *buf, size_t len) {
        uint32_t shown = 0, more = 0;
        size_t k = 0;

        buf[0] = 0;
        for (uint32_t role = PROTO_ROLE_PUB; role <= PROTO_ROLE_SUB; role++) {
                bool pub = role == PROTO_ROLE_PUB;
                uint32_t n = pub ? t->map.g.max_producers : t->map.g.max_subs;
                for (uint32_t i = 0; i < n; i++) {
                        uint8_t st = pub ? t->prod_state[i] : t->sub_state[i];
                        if (st == REG_ENTRY_FREE)
                                continue;
                        if (shown == 3) {
                                more++;
                                continue;
                        }
                        const struct reg_holder *h = pub ? &t->prod_holder[i] : &t->sub_holder[i];
                        uint32_t pid = st == REG_ENTRY_ORPHAN ? (pub ? load_rlx(&seg_prod(&t->map, i)->pid)
                                                                     : load_rlx(&seg_sub_state(&t->map, i)->pid))
                                                              : h->pid;
                        char comm[PROTO_COMM_MAX];
                        reg_read_comm(pid, comm);
                        int w = snprintf(buf + k, len - k, "%s%s %u (pid %u%s%s%s%s)", shown ? ", " : "",
                                         role_name(role), i, (unsigned)pid, *comm ? " '" : "", comm,
                                         *comm ? "'" : "",
                                         st == REG_ENTRY_REPAIR   ? ", being repaired"
                                         : st == REG_ENTRY_ORPHAN ? ", not back since a restart"
                                                                  : "");
                        if (w < 0 || (size_t)w >= len - k)
                                return;
                        k += (size_t)w;
                        shown++;
                }
        }
        if (more)
                (void)snprintf(buf + k, len - k, " and %u more", more);
}

int reg_topic_rm(struct reg *r, const char *name, uint32_t uid, uint32_t gid, char *err, size_t errlen) {
        struct reg_topic *t = topic_find(r, name);
        int rr;

        if (!t) {
                (void)snprintf(err, errlen, "no topic '%s'", name);
                return -ENOENT;
        }
        rr = conf_access(r->conf, uid, gid, name, CONF_ACT_CREATE, err, errlen);
        if (rr < 0)
                return rr;
        if (t->nprod || t->nsub || t->nrepair) {
                char who[PROTO_ERRMSG_MAX];
                busy_text(t, who, sizeof(who));
                (void)snprintf(err, errlen, "topic '%.64s' is in use: %s", name, who);
                return -EBUSY;
        }
        log_info("deleting idle topic '%s' (%llu bytes) at the request of uid %u", t->name,
                 (unsigned long long)t->bytes, (unsigned)uid);
        topic_unlink(r, t);
        topic_destroy(t);
        return 0;
}
