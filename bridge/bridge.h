/* SPDX-License-Identifier: MIT */
/*
 * bridge.h: the state of one zcbus-bridge process, shared by its modules.
 *
 * Threads (docs/man/zcbus-bridge.1, THREADS, says the same for users):
 *  - the main thread runs a libev loop: signals, the periodic scan of the
 *    local topic list (which starts outbound routes), the stats file, and
 *    the ev_async by which other threads ask it to act;
 *  - each outbound topic has a reader thread blocked in zcbus_sub_recv()
 *    with a timeout (one slow topic delays no other); on a
 *    reliable one it also publishes to JetStream while the window has
 *    room, and a sender thread retries and publishes what waited (out.c);
 *  - each reliable inbound route has a ticker thread that gives up on
 *    predecessors that did not come within reorder_ms (in.c);
 *  - libnats runs a socket thread per connection (two with "out" routes:
 *    link.c) and delivers each NATS
 *    subscription's messages on that subscription's thread, where the
 *    inbound route publishes them on the local bus. (Debian's libnats
 *    3.4 ships event-loop adapters for libevent and libuv, not libev, and
 *    its message callbacks run on its own threads in any case.)
 * Calls that talk to zcbusd (open, close, list) share one connection and
 * take bus_lock; each zcbus handle is used by one thread at a time.
 */
#ifndef ZCBUS_BRIDGE_H
#define ZCBUS_BRIDGE_H

#include <ev.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "echo.h"
#include "natsio.h"
#include "state.h"
#include "subject.h"
#include "zcbus.h"

/* The header every bridged message carries, its origin, as one value of
 * five fields separated by single spaces (one header, not five: each
 * header costs libnats several allocations per message):
 *   BUS TOPIC SEQ SESSION PREV
 * BUS the identity (uuid) of the bus it was published on, TOPIC the
 * topic's uuid there, SEQ its sequence in the topic's total order
 * (decimal), SESSION the sending bridge's session on that bus (a uuid),
 * PREV the sequence of the message the sending bridge forwarded from
 * that topic before this one (decimal), or "-" if it knows of none. A
 * receiver of a reliable topic delivers a message only once its PREV
 * was delivered (in.c). The four-field form of older bridges is taken
 * as "PREV unknown". */
#define HDR_ORIGIN "Zcbus-Origin"
/* Room the bridge reserves for them when it compares with max_payload. */
#define HDR_ROOM 512

struct bstats {
        _Atomic uint64_t forwarded;  /* sent to NATS (reliable: acked by JetStream) */
        _Atomic uint64_t received;   /* from NATS, published on the local bus */
        _Atomic uint64_t dropped;    /* latest: lapped, NATS buffer full, local ring full */
        _Atomic uint64_t duplicates; /* seen before (origin, topic, seq), not delivered again */
        _Atomic uint64_t loops;      /* our own messages back from NATS, and echoes of what came in */
        _Atomic uint64_t oversize;   /* larger than NATS max_payload: not sent */
        _Atomic uint64_t reconnects; /* NATS reconnections */
        _Atomic uint64_t bus_reconnects; /* zcbusd restarts it handed its handles back to */
        _Atomic uint64_t evicted;    /* the broker evicted an outbound subscription of ours */
        _Atomic uint64_t gaps;       /* reliable: sequences not in the ring when resumed */
        _Atomic uint64_t retries;    /* JetStream publishes tried again */
        _Atomic uint64_t held;       /* reliable in: arrived before their PREV, held back (in_stats_json) */
        _Atomic uint64_t reorder_gaps; /* reliable in: a PREV given up on (timeout, or the hold buffer full) */
        _Atomic uint64_t late;       /* reliable in: arrived after their gap was given up: dropped */
        _Atomic uint64_t errors;     /* anything else that failed, each logged */
};

#define STAT_ADD(b, f, n) atomic_fetch_add_explicit(&(b)->stats.f, (uint64_t)(n), memory_order_relaxed)
#define STAT_GET(b, f) atomic_load_explicit(&(b)->stats.f, memory_order_relaxed)

struct local_pub;
struct out_topic;
struct in_route;

struct bridge {
        struct bconf *conf;
        const char *conf_path;
        const char *prefix;
        struct state *state;
        uint8_t bus_id[16];
        char bus_id_str[37];
        char session_str[37];

        zcbus *bus;
        pthread_mutex_t bus_lock; /* open, close, list on bus */

        natsConnection *nc;
        struct natsio *nio;  /* nc's driver with send_asap (natsio.h), or NULL */
        natsConnection *pnc; /* JetStream publishes of reliable out routes (link.c); NULL without out routes */
        struct natsio *pnio; /* pnc's driver with send_asap, or NULL */
        jsCtx *js;
        int max_payload;

        struct ev_loop *loop;
        ev_async wake;
        atomic_bool stopping;

        struct bstats stats;

        pthread_mutex_t lock; /* the lists below, and echo links */
        struct out_topic *outs;
        struct in_route *ins; /* conf->nin of them */
        struct local_pub *pubs;
        struct echo *echos;
        struct dedup *dedup;
};

/* link.c: NATS: the main connection nc, and pnc. */
int link_connect(struct bridge *b, int timeout_ms);
void link_close(struct bridge *b);
/* Make sure the stream of a reliable topic's subject exists; retries
 * until deadline_ms (monotonic) while JetStream is not ready. */
int link_ensure_stream(struct bridge *b, const char *stream, const char *subject, uint64_t deadline_ms);
/* The connected server's URL, or "". */
void link_server(struct bridge *b, char *buf, size_t len);

/* out.c: local topics going out. */
void out_scan(struct bridge *b);
/* Does an "out" pattern match topic name? */
bool out_wants(struct bridge *b, const char *name);
void out_stop_all(struct bridge *b);
void out_stats_json(struct bridge *b, FILE *f);

/* in.c: NATS subjects coming in. */
int in_start(struct bridge *b, char *err, size_t errlen);
void in_stop(struct bridge *b);
void in_stats_json(struct bridge *b, FILE *f);
uint64_t in_nats_dropped(struct bridge *b);
/* Does an "in" pattern match topic name? */
bool in_wants(struct bridge *b, const char *name);

#endif
