/* SPDX-License-Identifier: MIT */
/*
 * reg.h: the topic registry of zcbusd. See reg.c.
 */
#ifndef ZCBUS_BROKERD_REG_H
#define ZCBUS_BROKERD_REG_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "proto.h"
#include "ring_repair.h"
#include "seg.h"

/* Broker-side state of a producer or subscriber entry. The copy in shared
 * memory is writable by clients, so the broker allocates from this one. */
enum {
        REG_ENTRY_FREE = 0,
        REG_ENTRY_HELD = 1,   /* a session holds it */
        REG_ENTRY_REPAIR = 2, /* producer let go; ring_prod_evict must be retried */
        REG_ENTRY_ORPHAN = 3, /* live in a ring this broker re-learned after a
                                 restart, not handed back (yet): repaired
                                 when its pid is gone, handed back by ADOPT */
};

/* table_uid of a table no subscriber has handed back since a restart. */
#define REG_TABLE_UID_UNKNOWN UINT32_MAX

struct reg;

/* What topics a uid or a session has created and still exist, for the
 * quotas (uid_max_*, session_max_*). Refcounted: the holder (a session)
 * and every topic charged to it. uid accounts are found by uid in the
 * registry, so a uid's topics stay charged to it across its sessions;
 * sessions and entries are counted by the broker. */
struct reg_account {
        struct reg_account *hnext; /* uid accounts: the registry's table */
        struct reg *reg;
        uint32_t refs;
        bool is_uid;
        uint32_t uid;
        uint32_t sessions, entries; /* broker */
        uint32_t topics;            /* registry */
        uint64_t bytes;
};

/* Who is opening: for the rules (uid, gid) and the quotas (accounts). */
struct reg_owner {
        uint32_t uid, gid, pid;
        struct reg_account *uid_acct, *session_acct;
        const uint8_t *session_id; /* 16 bytes, or NULL */
};

/* Who holds (or last held) an entry, as the broker knows it: for STAT. */
struct reg_holder {
        uint8_t session_id[16]; /* zero: no session (an orphan) */
        uint32_t uid;           /* REG_UID_UNKNOWN for orphans */
        uint32_t pid;
};
#define REG_UID_UNKNOWN UINT32_MAX

/* The stall policy's view of one subscriber entry: since when it has
 * held producers back with the same floor (0: it does not). */
struct reg_stall {
        uint64_t floor;
        double since; /* ev_tstamp */
        bool evicted;
};

/* A producer repair in progress (REG_ENTRY_REPAIR). */
struct reg_repair {
        struct ring_repair st;
        double started, due, delay; /* ev_tstamp */
        int last;  /* the last step's result */
        bool slow; /* past repair_timeout_ms, waiting for a slot: once a second */
};

struct reg_topic {
        struct reg *reg;
        struct reg_topic *prev, *next;           /* all topics, creation order */
        struct reg_topic *hnext;                 /* hash chain by name */
        struct reg_topic *idle_prev, *idle_next; /* idle topics, oldest first */
        char name[PROTO_NAME_MAX + 1];
        uint8_t topic_id[16];
        uint8_t segment_id[16];
        struct seg_map map; /* read-write mapping */
        int ring_fd;        /* read-write: handed to producers */
        int ring_ro_fd;     /* read-only reopen: handed to subscribers */
        int table_fds[SEG_TABLES_MAX]; /* map.g.sub_tables of them */
        uint32_t table_uid[SEG_TABLES_MAX]; /* the uid each bound table is for */
        uint32_t ntables;   /* tables bound so far, in order */
        uint32_t norphans;  /* REG_ENTRY_ORPHAN entries (re-learned topics) */
        uint32_t norphan_prods;
        uint64_t bytes; /* ring + tables */
        uint8_t *prod_state; /* REG_ENTRY_*, map.g.max_producers entries */
        uint8_t *sub_state;  /* REG_ENTRY_*, map.g.max_subs entries */
        uint8_t *sub_table;  /* each subscriber entry's table (while held) */
        uint32_t *sub_max_holds; /* each subscriber's declared max_holds */
        struct reg_holder *prod_holder; /* map.g.max_producers entries */
        struct reg_holder *sub_holder;  /* map.g.max_subs entries */
        struct reg_repair *repairs; /* map.g.max_producers entries */
        struct reg_stall *stalls;   /* map.g.max_subs entries */
        uint64_t nstalled;          /* subscribers evicted by the stall policy */
        uint64_t nover;             /* LATEST: evicted for holding more than they said */
        uint32_t holds_entry;       /* LATEST: the count in progress (holds_check) */
        uint64_t holds_slot, holds_count;
        uint64_t stall_waits, stall_head; /* the stall policy's last look */
        bool stall_blocked;
        uint32_t nprod, nsub, nrepair;
        int idle; /* on the idle list */
        struct reg_topic *rprev, *rnext; /* topics with repairs pending */
        bool repairing;                  /* on that list */
        struct reg_account *acct[2];     /* charged: creator's uid, creator's session */
};

int reg_new(struct ev_loop *loop, const struct conf *conf, struct reg **ret);
/* Unmaps and closes every topic; pending repairs are dropped. */
void reg_free(struct reg *r);

/* Find or create the topic o names and allocate an entry of o->role in it
 * for ow, if the rules let ow do that (-EACCES) and a new topic fits the
 * quotas of ow's accounts (-EDQUOT). On failure returns a negative errno
 * and a message for the client in err. */
/* A subscriber's entry is registered at once, with o->history: *ret_start
 * is where it starts. */
int reg_open(struct reg *r, const struct proto_open *o, const char *name, const struct reg_owner *ow,
             struct reg_topic **ret_topic, uint32_t *ret_index, uint64_t *ret_start, char *err, size_t errlen);

/* The account of uid (created on first use), with a reference taken;
 * NULL when out of memory. */
struct reg_account *reg_account_uid(struct reg *r, uint32_t uid);
/* A new account for one session, with one reference. */
struct reg_account *reg_account_new(struct reg *r);
/* Accepts NULL. */
void reg_account_unref(struct reg_account *a);
/* The reply and its fds (borrowed, not duplicated; PROTO_FDS_MAX at most)
 * for an entry: the ring, then a subscriber's table or every table.
 * Returns how many fds. */
unsigned reg_open_reply(const struct reg_topic *t, uint32_t role, uint32_t index, uint64_t start,
                        struct proto_open_reply *ret, int *ret_fds);
/* Let go of a held entry: evict it from the shared tables (a producer may
 * need its repair retried later; the registry does that on its own). */
void reg_release(struct reg_topic *t, uint32_t role, uint32_t index);

/* ADOPT after a broker restart: take the entry a's client held under the
 * old broker, re-learning its topic from the descriptors it hands back if
 * this broker does not know it (fds[0..nfds): the ring, then tables; the
 * registry keeps those it uses and sets them to -1). */
int reg_adopt(struct reg *r, const struct proto_adopt *a, const char *name, int *fds, unsigned nfds,
              const struct reg_owner *ow, struct reg_topic **ret_topic, char *err, size_t errlen);

/* STAT: topic name as uid/gid may see it (-ENOENT, -EACCES with a message
 * in err): its summary in *ret and up to max of its entries in use from
 * entry start (producers, then subscribers); ret->count says how many. */
int reg_stat(struct reg *r, const char *name, uint32_t uid, uint32_t gid, uint32_t start, uint32_t max,
             struct proto_stat_reply *ret, struct proto_stat_entry *entries, char *err, size_t errlen);
/* /proc/PID/comm, or "" when the process is gone (or pid is 0): cut at
 * PROTO_COMM_MAX - 1 bytes, NUL-padded. */
void reg_read_comm(uint32_t pid, char comm[PROTO_COMM_MAX]);
/* TOPIC_RM: delete topic name if uid/gid may create it (-EACCES) and it is
 * idle (-EBUSY, err naming who holds it); -ENOENT if unknown. */
int reg_topic_rm(struct reg *r, const char *name, uint32_t uid, uint32_t gid, char *err, size_t errlen);

uint32_t reg_count(const struct reg *r);
/* Fill up to max entries from creation index start; returns the count. */
uint32_t reg_list(const struct reg *r, uint32_t start, uint32_t max, struct proto_list_entry *entries);

#endif
