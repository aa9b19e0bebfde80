/* SPDX-License-Identifier: MIT */
/*
 * proto.h: the control protocol between libzcbus and zcbusd, spoken over a
 * SOCK_SEQPACKET Unix socket (one datagram = one message, file descriptors
 * ride along with SCM_RIGHTS). docs/protocol.md is its prose twin.
 *
 * Every message is a fixed 16-byte header followed by a typed body in host
 * byte order (both ends are on one host). Decoding trusts nothing: the
 * datagram length, the header's length, magic, version and type, each
 * body's fixed size, every enum and every string (length-bounded, no NUL
 * inside) are checked before use, and a bad message yields -EBADMSG (or
 * -EPROTO for an unknown version) without touching anything past the
 * received bytes.
 */
#ifndef ZCBUS_PROTO_H
#define ZCBUS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC UINT32_C(0x5a434231) /* "ZCB1" */
#define PROTO_VERSION 3u
#define PROTO_MSG_MAX 65536u /* largest datagram either side sends */
#define PROTO_FDS_MAX 17u    /* most fds one message carries: a ring and 16 tables */
#define PROTO_NAME_MAX 255u  /* topic name bytes */
#define PROTO_ERRMSG_MAX 200u
#define PROTO_LIST_MAX 64u /* topics in one LIST reply */
#define PROTO_STAT_MAX 256u /* entries in one STAT reply (32 KiB) */
#define PROTO_COMM_MAX 16u  /* a process's comm, with its NUL (TASK_COMM_LEN) */
#define PROTO_LABEL_MAX 64u    /* a session's label, with its NUL */
#define PROTO_COUNTERS_MAX 16u /* counters a session reports */
#define PROTO_COUNTER_NAME_MAX 24u /* a counter's name, with its NUL */
#define PROTO_PEERS_MAX 64u    /* sessions in one PEERS reply (40 KiB) */

enum proto_type {
        PROTO_HELLO = 1,       /* c->b: start a session */
        PROTO_HELLO_REPLY = 2, /* b->c */
        PROTO_OPEN = 3,        /* c->b: open a topic as producer or subscriber */
        PROTO_OPEN_REPLY = 4,  /* b->c, with fds: the ring, then tables */
        PROTO_CLOSE = 5,       /* c->b: let go of a producer/subscriber entry */
        PROTO_OK = 6,          /* b->c: empty success */
        PROTO_ERROR = 7,       /* b->c: errno and text */
        PROTO_LIST = 8,        /* c->b: list topics from an index */
        PROTO_LIST_REPLY = 9,  /* b->c */
        PROTO_ADOPT = 10,      /* c->b, with fds: hand back an entry held
                                  since before the broker restarted */
        PROTO_STAT = 11,       /* c->b: a topic's entries from an index */
        PROTO_STAT_REPLY = 12, /* b->c */
        PROTO_TOPIC_RM = 13,   /* c->b: delete an idle topic; OK or ERROR */
        PROTO_INFO = 14,       /* c->b: the session's label and counters; OK */
        PROTO_PEERS = 15,      /* c->b: sessions from an index */
        PROTO_PEERS_REPLY = 16, /* b->c */
        PROTO_TYPE_MAX_ = 17,
};

enum proto_role {
        PROTO_ROLE_PUB = 1,
        PROTO_ROLE_SUB = 2,
};

struct proto_hdr {
        uint32_t magic;
        uint16_t version;
        uint16_t type;
        uint32_t len; /* body bytes after this header */
        uint32_t req_id;
};

struct proto_hello {
        uint32_t client_version;
        uint32_t flags; /* must be 0 */
};

struct proto_hello_reply {
        uint8_t session_id[16];
        uint32_t broker_version;
        uint32_t max_topics;
};

struct proto_open {
        uint32_t role;       /* enum proto_role */
        uint32_t policy;     /* 0 = default / whatever the topic has */
        uint32_t slot_count; /* 0 = default */
        uint32_t slot_size;  /* 0 = default */
        uint32_t flags;      /* must be 0 */
        uint32_t history;    /* subscriber: start with up to this many
                                messages still in the ring */
        uint32_t max_holds;  /* subscriber: messages it holds at most (LATEST
                                slots; more is hostile: evicted) */
        uint32_t reserved;   /* must be 0 */
        uint32_t name_len;   /* 1..PROTO_NAME_MAX bytes follow */
        /* char name[name_len], no NUL */
};

struct proto_open_reply {
        uint8_t topic_id[16];
        uint8_t segment_id[16];
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t policy;
        uint32_t index;  /* producer or subscriber entry index */
        uint32_t table;  /* subscriber: its table (the one fd after the
                            ring); producer: 0 */
        uint32_t ntables; /* the tables that follow the ring: a
                             subscriber's 1, a producer's every one */
        uint32_t reserved;
        uint64_t start;  /* subscriber: the sequence it starts at */
        uint64_t ring_size;
        uint64_t subs_size; /* of each table */
};

struct proto_close {
        uint8_t topic_id[16];
        uint32_t role;
        uint32_t index;
};

/* The entry and segments a client held under a broker that is gone. */
struct proto_adopt {
        uint8_t topic_id[16];
        uint8_t segment_id[16];
        uint32_t role;
        uint32_t index;
        uint32_t table;     /* subscriber: its table */
        uint32_t ntables;   /* tables among the fds: 1..PROTO_FDS_MAX - 1 */
        uint32_t max_holds; /* subscriber, as in OPEN */
        uint32_t flags;     /* must be 0 */
        uint32_t name_len;  /* 1..PROTO_NAME_MAX bytes follow */
        uint32_t reserved;  /* must be 0 */
        /* char name[name_len], no NUL */
};

struct proto_error {
        int32_t err;      /* negative errno */
        uint32_t msg_len; /* 0..PROTO_ERRMSG_MAX bytes follow */
};

struct proto_list {
        uint32_t start;
        uint32_t max; /* 1..PROTO_LIST_MAX */
};

struct proto_list_entry {
        char name[PROTO_NAME_MAX + 1]; /* NUL-terminated, NUL-padded */
        uint8_t topic_id[16];
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t policy;
        uint32_t producers;
        uint32_t subscribers;
        uint32_t reserved;
        uint64_t published;
};

struct proto_list_reply {
        uint32_t total; /* topics the broker has */
        uint32_t count; /* entries that follow */
        /* struct proto_list_entry entries[count] */
};

struct proto_stat {
        uint32_t start;    /* the first entry wanted (producers, then
                              subscribers, in index order) */
        uint32_t max;      /* 1..PROTO_STAT_MAX */
        uint32_t flags;    /* must be 0 */
        uint32_t name_len; /* 1..PROTO_NAME_MAX bytes follow */
        /* char name[name_len], no NUL */
};

/* proto_stat_reply.flags */
enum {
        PROTO_STAT_BLOCKED = 1u << 0, /* RELIABLE: producers are held back
                                         (the stall policy's last look) */
        PROTO_STAT_FLAGS_ = PROTO_STAT_BLOCKED,
};

struct proto_stat_reply {
        uint8_t topic_id[16];
        uint8_t segment_id[16];
        uint32_t policy;
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t flags; /* PROTO_STAT_* */
        uint32_t producers, subscribers;         /* entries in use */
        uint32_t max_producers, max_subscribers; /* the topic's tables */
        uint32_t sub_tables;  /* subscriber tables (uids) */
        uint32_t stall_ms;    /* RELIABLE: the stall timeout that applies */
        uint32_t total;       /* entries in use (all pages) */
        uint32_t count;       /* entries that follow, <= total, <= PROTO_STAT_MAX */
        uint64_t bytes;       /* ring and tables */
        uint64_t head;        /* next sequence to claim (untrusted: producers write it) */
        uint64_t start_seq;   /* the topic's first sequence */
        uint64_t stalled;     /* subscribers evicted by the stall policy */
        uint64_t over;        /* LATEST: evicted for holding more than they said */
        /* struct proto_stat_entry entries[count] */
};

/* proto_stat_entry.state */
enum {
        PROTO_ENTRY_LIVE = 1,    /* a session holds it */
        PROTO_ENTRY_EVICTED = 2, /* subscriber: evicted (stall or holds), still its session's */
        PROTO_ENTRY_ORPHAN = 3,  /* live in a ring re-learned after a restart, not handed back */
        PROTO_ENTRY_REPAIR = 4,  /* producer let go; its claims are being written off */
        PROTO_ENTRY_STATE_MAX_ = PROTO_ENTRY_REPAIR,
};

/* proto_stat_entry.flags */
enum {
        PROTO_ENTRY_GATING = 1u << 0, /* RELIABLE subscriber: the ring is full
                                         from its floor and the message there
                                         is published: it holds producers back */
        PROTO_ENTRY_FLAGS_ = PROTO_ENTRY_GATING,
};

/* One producer or subscriber entry. Counters come from shared memory the
 * entry's owner writes: statistics, not facts. */
struct proto_stat_entry {
        uint8_t session_id[16]; /* all zero: no session holds it (orphan, repair) */
        char comm[PROTO_COMM_MAX]; /* /proc/PID/comm as the broker read it;
                                      "" if gone; NUL-terminated, NUL-padded */
        uint32_t role;  /* enum proto_role */
        uint32_t index; /* in the topic's producer or subscriber table */
        uint32_t state; /* PROTO_ENTRY_LIVE.. */
        uint32_t flags; /* PROTO_ENTRY_* */
        uint32_t pid;   /* the session's (orphans: the ring's record) */
        uint32_t uid;   /* UINT32_MAX: unknown (orphans) */
        uint32_t table; /* subscriber: its table; producer: 0 */
        uint32_t held;  /* subscriber: messages held */
        uint64_t next;  /* subscriber: next sequence to read; producer: the
                           sequence it has claimed, or UINT64_MAX */
        uint64_t floor; /* subscriber: lowest sequence it needs, or UINT64_MAX */
        uint64_t lag;   /* subscriber: head - next (0 if not behind) */
        uint64_t count; /* subscriber: received; producer: published */
        uint64_t lost;  /* subscriber: lost; producer: abandoned */
        uint64_t sleeps; /* subscriber: futex sleeps; producer: waits for room */
        uint64_t wakeups; /* producer: wake calls */
        uint64_t skipped; /* producer: LATEST slots stepped over */
};

struct proto_topic_rm {
        uint32_t flags;    /* must be 0 */
        uint32_t name_len; /* 1..PROTO_NAME_MAX bytes follow */
        /* char name[name_len], no NUL */
};

/* A counter a session reports about itself: name is 1..23 bytes of
 * [A-Za-z0-9_.-], NUL-padded. */
struct proto_counter {
        char name[PROTO_COUNTER_NAME_MAX];
        uint64_t value;
};

/* What a session says it is (a label: printable ASCII, NUL-terminated,
 * NUL-padded, may be empty) and how it is doing: replaces what it said
 * before. Counter names are distinct. */
struct proto_info {
        uint32_t flags; /* must be 0 */
        uint32_t count; /* counters that follow, 0..PROTO_COUNTERS_MAX */
        char label[PROTO_LABEL_MAX];
        /* struct proto_counter counters[count] */
};

/* Sessions in the order they said HELLO, from the first whose serial is
 * above after (0: from the first): a cursor, so that sessions that end
 * between pages hide no other. */
struct proto_peers {
        uint64_t after; /* the last serial the asker has seen, or 0 */
        uint32_t max;   /* 1..PROTO_PEERS_MAX */
        uint32_t flags; /* must be 0 */
};

/* One session, with what it said about itself (PROTO_INFO): the peer's
 * own claims, not facts, except pid, uid, gid, comm and the entry counts. */
struct proto_peer_entry {
        uint8_t session_id[16];
        char comm[PROTO_COMM_MAX];   /* /proc/PID/comm at HELLO, NUL-padded */
        char label[PROTO_LABEL_MAX]; /* as in proto_info */
        uint32_t pid, uid, gid;
        uint32_t producers, subscribers; /* entries it holds */
        uint32_t ncounters;              /* valid entries of counters[]; the rest are zero */
        uint64_t serial;                 /* 1 for the broker's first session, and up */
        struct proto_counter counters[PROTO_COUNTERS_MAX];
};

struct proto_peers_reply {
        uint32_t total; /* sessions the asker may see, on every page */
        uint32_t count; /* entries that follow, <= PROTO_PEERS_MAX, <= total */
        /* struct proto_peer_entry entries[count], serials rising */
};

/* A decoded, validated message. Strings are NUL-terminated copies. */
struct proto_msg {
        struct proto_hdr hdr;
        union {
                struct proto_hello hello;
                struct proto_hello_reply hello_reply;
                struct proto_open open;
                struct proto_open_reply open_reply;
                struct proto_close close;
                struct proto_error error;
                struct proto_list list;
                struct proto_list_reply list_reply;
                struct proto_adopt adopt;
                struct proto_stat stat;
                struct proto_stat_reply stat_reply;
                struct proto_topic_rm topic_rm;
                struct proto_info info;
                struct proto_peers peers;
                struct proto_peers_reply peers_reply;
        } u;
        char name[PROTO_NAME_MAX + 1];      /* OPEN, ADOPT, STAT, TOPIC_RM */
        char errmsg[PROTO_ERRMSG_MAX + 1];  /* ERROR */
        const struct proto_list_entry *entries; /* LIST_REPLY: points into the buffer */
        const struct proto_stat_entry *stat_entries; /* STAT_REPLY: points into the buffer */
        const struct proto_counter *counters;        /* INFO: points into the buffer */
        const struct proto_peer_entry *peer_entries; /* PEERS_REPLY: points into the buffer */
};

/* Encoders write into buf (at least PROTO_MSG_MAX bytes is always enough)
 * and return the message length, or -EINVAL / -ENAMETOOLONG / -EMSGSIZE. */
int proto_enc_hello(void *buf, size_t cap, uint32_t req_id);
int proto_enc_hello_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_hello_reply *r);
int proto_enc_open(void *buf, size_t cap, uint32_t req_id, const struct proto_open *o, const char *name);
int proto_enc_open_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_open_reply *r);
int proto_enc_close(void *buf, size_t cap, uint32_t req_id, const struct proto_close *c);
int proto_enc_adopt(void *buf, size_t cap, uint32_t req_id, const struct proto_adopt *a, const char *name);
int proto_enc_ok(void *buf, size_t cap, uint32_t req_id);
int proto_enc_error(void *buf, size_t cap, uint32_t req_id, int err, const char *msg);
int proto_enc_list(void *buf, size_t cap, uint32_t req_id, uint32_t start, uint32_t max);
int proto_enc_list_reply(void *buf, size_t cap, uint32_t req_id, uint32_t total,
                         const struct proto_list_entry *entries, uint32_t count);
int proto_enc_stat(void *buf, size_t cap, uint32_t req_id, uint32_t start, uint32_t max, const char *name);
/* r->count entries follow r. */
int proto_enc_stat_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_stat_reply *r,
                         const struct proto_stat_entry *entries);
int proto_enc_topic_rm(void *buf, size_t cap, uint32_t req_id, const char *name);
/* -EINVAL for a bad label, counter name, a repeated name, or count. */
int proto_enc_info(void *buf, size_t cap, uint32_t req_id, const char *label, const struct proto_counter *counters,
                   uint32_t count);
int proto_enc_peers(void *buf, size_t cap, uint32_t req_id, uint64_t after, uint32_t max);
int proto_enc_peers_reply(void *buf, size_t cap, uint32_t req_id, uint32_t total,
                          const struct proto_peer_entry *entries, uint32_t count);

/* Decode len bytes at buf into *ret. ret->entries (LIST_REPLY),
 * ret->stat_entries (STAT_REPLY), ret->counters (INFO) and
 * ret->peer_entries (PEERS_REPLY) point into buf. Returns 0, -EBADMSG for
 * any malformed message, -EPROTO for a version this side does not speak. */
int proto_decode(const void *buf, size_t len, struct proto_msg *ret);
/* The request id of an encoded or received message, read before (or
 * without) decoding it: 0 when buf is shorter than a header. */
uint32_t proto_peek_req_id(const void *buf, size_t len);

/* Is a topic name acceptable? 1..PROTO_NAME_MAX printable bytes, none of
 * them space, control or NUL. */
int proto_name_valid(const char *name, size_t len);

/* Is label (a NUL-terminated array of PROTO_LABEL_MAX bytes) printable
 * ASCII, NUL-padded? Is a counter name 1..23 bytes of [A-Za-z0-9_.-],
 * NUL-padded? */
int proto_label_valid(const char label[PROTO_LABEL_MAX]);
int proto_counter_name_valid(const char name[PROTO_COUNTER_NAME_MAX]);

const char *proto_type_name(uint16_t type);

#endif
