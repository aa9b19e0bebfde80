/* SPDX-License-Identifier: MIT */
/*
 * zcbus.h: the public interface of libzcbus, the zero-copy shared-memory
 * message bus client.
 *
 * Conventions:
 *  - Handles (zcbus, zcbus_pub, zcbus_sub) are opaque.
 *  - Calls that return int return 0 (or a count) on success and a negative
 *    errno on failure; errno itself is never the channel. zcbus_strerror()
 *    names every code.
 *  - Timeouts are in milliseconds: 0 never waits (-EAGAIN), -1 waits forever,
 *    a positive value waits at most that long (-ETIMEDOUT).
 *  - Options come as a pointer; NULL means defaults. Each options struct
 *    starts with `size`, which the caller sets to sizeof the struct it was
 *    compiled with, so fields can be added at the end without breaking the
 *    ABI. A zero field means "the default" (the broker's, for topic fields).
 *  - Close calls accept NULL.
 *  - The hot path (loan, commit, recv, release) makes no allocation, takes
 *    no lock and makes no system call unless it has to wait (an adaptive
 *    waiter yields the CPU between spin rounds, then sleeps) or wake a
 *    sleeper.
 *
 * Threads: each handle belongs to one thread at a time, and different
 * handles may be used from different threads at once for the data path
 * (loan, commit, send, recv, release, stats). Calls that talk to the broker
 * (open, close, list) share the connection and must not run concurrently
 * on one connection.
 */
#ifndef ZCBUS_H
#define ZCBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZCBUS_VERSION_MAJOR 0
#define ZCBUS_VERSION_MINOR 1

/* Longest topic name in bytes, not counting the terminating NUL. */
#define ZCBUS_TOPIC_MAX 255

typedef struct zcbus zcbus;         /* a connection to the broker */
typedef struct zcbus_pub zcbus_pub; /* a producer on one topic */
typedef struct zcbus_sub zcbus_sub; /* a subscription to one topic */

/* A received message: a view into the shared ring, valid and unchanged
 * until zcbus_sub_release(). May grow at the end. */
typedef struct zcbus_msg {
        const void *data;      /* payload, in place in the shared ring */
        size_t len;            /* payload bytes */
        uint64_t seq;          /* position in the topic's total order */
        uint64_t timestamp_ns; /* CLOCK_MONOTONIC at commit, if the producer
                                  asked (ZCBUS_PUB_TIMESTAMP); else 0 */
        uint64_t lost;         /* sequences this subscriber missed just
                                  before this one (always 0 under RELIABLE) */
} zcbus_msg;

enum zcbus_policy {
        ZCBUS_POLICY_DEFAULT = 0,  /* RELIABLE, or what the topic has */
        ZCBUS_POLICY_RELIABLE = 1, /* nothing is lost; producers wait */
        ZCBUS_POLICY_LATEST = 2,   /* producers never wait for slow readers */
};

enum zcbus_wait_mode {
        ZCBUS_WAIT_DEFAULT = 0,  /* ADAPTIVE */
        ZCBUS_WAIT_ADAPTIVE = 1, /* spin for spin_us, then sleep on a futex */
        ZCBUS_WAIT_SPIN = 2,     /* never sleep (burns a core while waiting) */
        ZCBUS_WAIT_FUTEX = 3,    /* sleep at once */
};

typedef struct zcbus_topic_opts {
        uint32_t size;       /* sizeof(zcbus_topic_opts) */
        uint32_t slot_count; /* ring capacity in messages (power of two) */
        uint32_t slot_size;  /* largest message in bytes */
        uint32_t policy;     /* enum zcbus_policy */
        /* Local to this producer, not properties of the topic: */
        uint32_t wait_mode;  /* enum zcbus_wait_mode, for waiting for room */
        uint32_t spin_us;    /* spin budget before sleeping (ADAPTIVE) */
        uint32_t flags;      /* ZCBUS_PUB_* */
} zcbus_topic_opts;

/* zcbus_topic_opts.flags */
enum {
        /* Stamp each message with CLOCK_MONOTONIC at commit (one clock
         * read per message, or per batch on a reliable topic; about 30 ns
         * on a VM). Without it, receivers see timestamp_ns == 0. */
        ZCBUS_PUB_TIMESTAMP = 1u << 0,
};

typedef struct zcbus_sub_opts {
        uint32_t size;      /* sizeof(zcbus_sub_opts) */
        uint32_t history;   /* start with up to this many past messages */
        uint32_t max_holds; /* messages held (received, unreleased) at once */
        uint32_t wait_mode; /* enum zcbus_wait_mode, for waiting for data */
        uint32_t spin_us;   /* spin budget before sleeping (ADAPTIVE) */
        /* Topic options, as in zcbus_topic_opts: used if this open creates
         * the topic, and checked against it (-EEXIST) if it exists. */
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t policy;
} zcbus_sub_opts;

/* What a topic is, as the opener sees it. */
typedef struct zcbus_topic_info {
        uint32_t size;        /* sizeof(zcbus_topic_info), set by caller */
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t policy;
        uint8_t topic_id[16];   /* uuid of the topic */
        uint8_t segment_id[16]; /* uuid of its ring segment */
} zcbus_topic_info;

typedef struct zcbus_pub_stats {
        uint32_t size;       /* sizeof(zcbus_pub_stats), set by caller */
        uint32_t reserved;
        uint64_t published;  /* messages this producer committed */
        uint64_t waits;      /* times it had to wait for room */
        uint64_t wakeups;    /* futex wake calls it issued */
        uint64_t topic_head; /* sequences claimed on the topic so far */
        uint64_t skipped;    /* LATEST: slots found held by a reader and
                                stepped over (each cost a sequence) */
} zcbus_pub_stats;

typedef struct zcbus_sub_stats {
        uint32_t size;     /* sizeof(zcbus_sub_stats), set by caller */
        uint32_t held;     /* messages held right now */
        uint64_t received; /* messages delivered to this subscriber */
        uint64_t lost;     /* sequences it missed (LATEST only) */
        uint64_t sleeps;   /* times it slept on the futex */
        uint64_t next_seq; /* next sequence it will read */
        uint64_t skipped;  /* sequences that were no message (a producer
                              gave up on them, or a held slot was stepped
                              over) and were passed silently */
} zcbus_sub_stats;

/* A message for the copying batch call. */
typedef struct zcbus_iov {
        const void *data;
        size_t len;
} zcbus_iov;

/* Connection. NULL socket_path: $ZCBUS_SOCKET, else the default path. */
int zcbus_connect(const char *socket_path, zcbus **out);
void zcbus_disconnect(zcbus *bus);
/* After the broker died and was started again: connect to the same
 * socket (a new session) and hand every open handle of bus back to the
 * broker, which re-learns their topics from them. Returns 0, or the first
 * refusal (its reason in zcbus_last_error; that handle keeps working but
 * the broker does not know it). Not concurrently with other calls on bus
 * that talk to the broker. */
int zcbus_reconnect(zcbus *bus);
/* The path zcbus_connect(NULL) uses, written into buf. */
int zcbus_default_socket(char *buf, size_t len);
/* The session's uuid as given by the broker. */
int zcbus_session_id(zcbus *bus, uint8_t id[16]);
/* The broker's text for the last error it returned on this connection
 * (e.g. which option of an existing topic conflicted), or "". */
const char *zcbus_last_error(zcbus *bus);

/* Producer. */
int zcbus_pub_open(zcbus *bus, const char *topic, const zcbus_topic_opts *opts, zcbus_pub **out);
/* Borrow room for one message of up to len bytes in the ring; waits forever
 * for room (reliable topics). buf points into shared memory, 32-byte
 * aligned. */
int zcbus_pub_loan(zcbus_pub *pub, size_t len, void **buf);
int zcbus_pub_loan_timeout(zcbus_pub *pub, size_t len, void **buf, int timeout_ms);
/* Publish the first len bytes written into the current loan. */
int zcbus_pub_commit(zcbus_pub *pub, size_t len);
/* Copy data into the ring and publish it. */
int zcbus_pub_send(zcbus_pub *pub, const void *data, size_t len, int timeout_ms);
/* Copy up to n messages into the ring with one claim and one notification.
 * Returns the number sent (>= 1), or a negative errno if none was. */
int zcbus_pub_send_batch(zcbus_pub *pub, const zcbus_iov *msgs, unsigned n, int timeout_ms);
/* Zero-copy batches: borrow up to n slots at once (reliable topics: n
 * consecutive sequences with one claim; latest topics: one), bufs[i] the
 * i-th slot's payload (slot_size bytes, 32-byte aligned), waiting per
 * timeout_ms for room. Returns how many were loaned (>= 1). Then publish
 * the first k of them with lens[i] bytes each and one notification; slots
 * loaned and not committed are written off (subscribers step over them). */
#define ZCBUS_HAVE_LOAN_BATCH 1
int zcbus_pub_loan_batch(zcbus_pub *pub, unsigned n, void **bufs, int timeout_ms);
int zcbus_pub_commit_batch(zcbus_pub *pub, const size_t *lens, unsigned k);
int zcbus_pub_info(zcbus_pub *pub, zcbus_topic_info *info);
int zcbus_pub_stats_get(zcbus_pub *pub, zcbus_pub_stats *stats);
void zcbus_pub_close(zcbus_pub *pub);

/* Subscriber. */
int zcbus_sub_open(zcbus *bus, const char *topic, const zcbus_sub_opts *opts, zcbus_sub **out);
/* Receive the next message in place. timeout_ms: 0 don't wait, -1 forever. */
int zcbus_sub_recv(zcbus_sub *sub, zcbus_msg *msg, int timeout_ms);
/* Receive up to n messages (all held until released). Returns the count. */
int zcbus_sub_recv_batch(zcbus_sub *sub, zcbus_msg *msgs, unsigned n, int timeout_ms);
int zcbus_sub_release(zcbus_sub *sub, const zcbus_msg *msg);
/* Release n messages with one update of the shared cursor. */
int zcbus_sub_release_batch(zcbus_sub *sub, const zcbus_msg *msgs, unsigned n);
int zcbus_sub_info(zcbus_sub *sub, zcbus_topic_info *info);
int zcbus_sub_stats_get(zcbus_sub *sub, zcbus_sub_stats *stats);
void zcbus_sub_close(zcbus_sub *sub);

/* Wait until one of n subscriptions has something at its cursor. Returns
 * the index of one that is ready: its next zcbus_sub_recv(…, 0) returns a
 * message, or -EAGAIN if what was there was a marker it stepped over, or
 * -ENOBUFS if it holds max_holds messages. */
int zcbus_wait_any(zcbus_sub *const *subs, unsigned n, int timeout_ms);

/* Event loops (epoll, libev, GLib, ...): a descriptor owned by the
 * subscription (closed by zcbus_sub_close) that polls readable (POLLIN,
 * level) when a message is waiting or the subscription failed. When it
 * is, call zcbus_sub_recv(sub, &m, 0) (and release as usual) until it
 * returns -EAGAIN, then poll again: no message that arrives after that
 * -EAGAIN is missed. A receive that gets a message costs no system call. */
#define ZCBUS_HAVE_FD 1
int zcbus_sub_fd(zcbus_sub *sub);
/* The same for a producer waiting for room: readable when a loan or send
 * with timeout 0 would find room; when it is, send (timeout 0) until one
 * returns -EAGAIN, then poll again. Owned by pub (closed by
 * zcbus_pub_close). */
int zcbus_pub_fd(zcbus_pub *pub);
/* One descriptor for many subscriptions: readable when one of them has a
 * message. When it is, call zcbus_waitset_next() until it returns -EAGAIN,
 * and for each subscription it gives, zcbus_sub_recv(…, 0) until -EAGAIN.
 * A subscription is in one wait set at most, and then has no own fd. */
typedef struct zcbus_waitset zcbus_waitset;
int zcbus_waitset_new(zcbus_waitset **out);
int zcbus_waitset_add(zcbus_waitset *ws, zcbus_sub *sub);
int zcbus_waitset_remove(zcbus_waitset *ws, zcbus_sub *sub);
int zcbus_waitset_fd(zcbus_waitset *ws);
int zcbus_waitset_next(zcbus_waitset *ws, zcbus_sub **out);
/* Removes every subscription still in it. Accepts NULL. */
void zcbus_waitset_free(zcbus_waitset *ws);

/* Topics known to the broker. */
typedef struct zcbus_topic_entry {
        char name[ZCBUS_TOPIC_MAX + 1];
        uint8_t topic_id[16];
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t policy;
        uint32_t producers;
        uint32_t subscribers;
        uint64_t published;
} zcbus_topic_entry;
/* Fills up to max entries starting at index start; returns how many it
 * filled, and the total through *total if not NULL. */
int zcbus_list_topics(zcbus *bus, unsigned start, zcbus_topic_entry *entries, unsigned max,
                      unsigned *total);

/* One topic as the broker sees it (zcbus_topic_stat fills it). Counters the
 * broker reads from shared memory are the peers' own statistics. */
#define ZCBUS_HAVE_TOPIC_STAT 1
typedef struct zcbus_topic_stats {
        uint32_t size;            /* sizeof(zcbus_topic_stats), set by caller */
        uint32_t policy;
        uint32_t slot_count;
        uint32_t slot_size;
        uint32_t flags;           /* ZCBUS_STAT_* */
        uint32_t producers;       /* entries in use */
        uint32_t subscribers;
        uint32_t max_producers;   /* the topic's tables */
        uint32_t max_subscribers;
        uint32_t sub_tables;      /* subscriber uids it has room for */
        uint32_t stall_ms;        /* RELIABLE: the stall timeout that applies */
        uint32_t entries;         /* entries in use, producers then subscribers */
        uint64_t bytes;           /* memory: the ring and its tables */
        uint64_t head;            /* next sequence to claim */
        uint64_t published;       /* sequences claimed since creation */
        uint64_t stalled;         /* subscribers evicted by the stall policy */
        uint64_t over;            /* LATEST: evicted for holding too much */
        uint8_t topic_id[16];
        uint8_t segment_id[16];
} zcbus_topic_stats;

/* zcbus_topic_stats.flags */
enum {
        ZCBUS_STAT_BLOCKED = 1u << 0, /* RELIABLE: producers are held back */
};

enum zcbus_role {
        ZCBUS_ROLE_PUB = 1,
        ZCBUS_ROLE_SUB = 2,
};

enum zcbus_entry_state {
        ZCBUS_ENTRY_LIVE = 1,    /* a session holds it */
        ZCBUS_ENTRY_EVICTED = 2, /* subscriber evicted by the broker; still held */
        ZCBUS_ENTRY_ORPHAN = 3,  /* from before a broker restart, not handed back */
        ZCBUS_ENTRY_REPAIR = 4,  /* producer let go; its claims are written off */
};

/* zcbus_stat_entry.flags */
enum {
        /* RELIABLE subscriber: the ring is full from its floor and the
         * message there is published: it holds the producers back. */
        ZCBUS_ENTRY_GATING = 1u << 0,
};

#define ZCBUS_UID_UNKNOWN UINT32_MAX
#define ZCBUS_COMM_MAX 16

/* A producer or subscriber entry of a topic. */
typedef struct zcbus_stat_entry {
        uint32_t role;            /* enum zcbus_role */
        uint32_t index;           /* in the topic's producer or subscriber table */
        uint32_t state;           /* enum zcbus_entry_state */
        uint32_t flags;           /* ZCBUS_ENTRY_* */
        uint32_t pid;
        uint32_t uid;             /* ZCBUS_UID_UNKNOWN for orphans */
        uint32_t table;           /* subscriber: its uid's table */
        uint32_t held;            /* subscriber: messages held */
        uint8_t session_id[16];   /* all zero: no session holds it */
        char comm[ZCBUS_COMM_MAX]; /* the process's name; "" if it is gone */
        uint64_t next;            /* subscriber: next sequence; producer: the
                                     sequence it has claimed, or UINT64_MAX */
        uint64_t floor;           /* subscriber: lowest sequence it still
                                     needs, or UINT64_MAX */
        uint64_t lag;             /* subscriber: head - next */
        uint64_t count;           /* subscriber: received; producer: published */
        uint64_t lost;            /* subscriber: lost; producer: abandoned */
        uint64_t sleeps;          /* subscriber: futex sleeps; producer: waits */
        uint64_t wakeups;         /* producer: wake calls */
        uint64_t skipped;         /* producer: LATEST held slots stepped over */
        uint64_t reserved[4];     /* 0 */
} zcbus_stat_entry;

/* Fill *stat with what the broker knows of topic, and up to max entries
 * from entry start (paged over as many requests as needed); returns how
 * many it filled. Needs the right to publish or subscribe to the topic. */
int zcbus_topic_stat(zcbus *bus, const char *topic, zcbus_topic_stats *stat, unsigned start,
                     zcbus_stat_entry *entries, unsigned max);
/* Delete an idle topic (no entry in use): -EBUSY if it is not (the
 * broker's text, zcbus_last_error, says who holds it). */
int zcbus_topic_remove(zcbus *bus, const char *topic);
/* "live", "evicted", "orphan", "repair" or "unknown". */
const char *zcbus_entry_state_name(uint32_t state);

/* What a session says about itself, for operators (zcbus peers, zcbus
 * stat): a label and a few named counters. The broker shows them and never
 * acts on them. */
#define ZCBUS_HAVE_PEERS 1
#define ZCBUS_LABEL_MAX 64        /* with its NUL */
#define ZCBUS_COUNTERS_MAX 16
#define ZCBUS_COUNTER_NAME_MAX 24 /* with its NUL */
typedef struct zcbus_counter {
        char name[ZCBUS_COUNTER_NAME_MAX]; /* 1..23 of [A-Za-z0-9_.-] */
        uint64_t value;
} zcbus_counter;
/* Tell the broker this session's label (printable ASCII, at most
 * ZCBUS_LABEL_MAX - 1 bytes; NULL or "" for none) and n counters (names
 * distinct), replacing what it said before. -EINVAL for a bad label, name
 * or n. The broker shows them to sessions of the same uid, root and its
 * own uid: put nothing secret there. A broker restarted forgets them: say
 * them again after zcbus_reconnect. */
int zcbus_set_info(zcbus *bus, const char *label, const zcbus_counter *counters, unsigned n);

/* A session of the broker: who it is (the broker's records) and what it
 * said about itself (zcbus_set_info). */
typedef struct zcbus_peer {
        uint8_t session_id[16];
        char comm[ZCBUS_COMM_MAX];   /* the process's name when it said HELLO */
        char label[ZCBUS_LABEL_MAX];
        uint32_t pid, uid, gid;
        uint32_t producers, subscribers; /* entries it holds */
        uint32_t ncounters;
        uint64_t serial;                 /* 1 for the broker's first session, and up */
        zcbus_counter counters[ZCBUS_COUNTERS_MAX];
        uint64_t reserved[4];            /* 0 */
} zcbus_peer;
/* Fills up to max of peers with the sessions this one may see (its uid's;
 * every one for root and the broker's uid), oldest first; returns how many
 * it filled, and how many there are through *total if not NULL. */
int zcbus_list_peers(zcbus *bus, zcbus_peer *peers, unsigned max, unsigned *total);

const char *zcbus_strerror(int err);
const char *zcbus_policy_name(uint32_t policy);

#ifdef __cplusplus
}
#endif

#endif /* ZCBUS_H */
