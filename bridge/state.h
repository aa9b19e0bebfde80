/* SPDX-License-Identifier: MIT */
/*
 * state.h: what the bridge must remember across its own restarts, in one
 * file of the state directory (STATE_DIR/state), mapped shared:
 *  - the bus identity (a uuid made on first start, unless the config
 *    names one), the origin every message it sends out carries;
 *  - per reliable route, a position: for a local topic going out, the
 *    topic's uuid, the end of the prefix of its sequences JetStream
 *    acknowledged, and the last one of them that was sent (what the next
 *    message names as its predecessor); for a stream coming in, the last
 *    stream sequence handled with nothing before it still held back;
 *  - per reliable route coming in, for each of a few origins, the last
 *    sequence of that origin's topic delivered ("ord:" slots, in.c).
 *
 * Positions are plain stores into the shared mapping: they are in the
 * page cache the moment they are made, so a bridge killed with kill -9
 * loses none (a host crash may; the bridge does not fsync per message).
 * An flock on the file keeps a second bridge off the same directory.
 */
#ifndef ZCBUS_BRIDGE_STATE_H
#define ZCBUS_BRIDGE_STATE_H

#include <stdatomic.h>
#include <stdint.h>

#define STATE_SLOTS 512
#define STATE_KEY_MAX 320

struct state_slot {
        char key[STATE_KEY_MAX];  /* "out:TOPIC", "in:STREAM" or "ord:N:STREAM"; "" free */
        uint8_t topic_id[16];     /* out: the topic's uuid the seq is of; ord: the origin's topic */
        _Atomic uint64_t seq;     /* out: acked prefix's last seq + 1; in: stream seq; ord: last delivered + 1 */
        _Atomic uint64_t aux;     /* out: last sent seq below seq, + 1 (0: none known);
                                     ord: hash of the origin (0: slot unused); in: 0.
                                     Files of older bridges have 0 here. */
};

struct state;

/* Open (creating) DIR/state and lock it. bus_id: the config's, or NULL to
 * use (or make) the file's. */
int state_open(const char *dir, const uint8_t *bus_id, struct state **ret, char *err, size_t errlen);
void state_close(struct state *s);
void state_bus_id(const struct state *s, uint8_t id[16]);
/* The slot of key, made if new (seq 0). NULL when the table is full. */
struct state_slot *state_slot(struct state *s, const char *key);

#endif
