/* SPDX-License-Identifier: MIT */
/*
 * batch.h: several messages of one latest topic in one NATS message
 * ("out = PATTERN batch", zcbus-bridge(1)).
 *
 * Such a message has the origin header of its first record (SEQ is the
 * first record's sequence, PREV the message forwarded before it) and a
 * header Zcbus-Batch: N, N from 2 to BATCH_MAX. Its payload is N records,
 * each a 4-byte little-endian length, a 4-byte little-endian step from
 * the previous record's sequence (0 for the first; at least 1 after),
 * then that many bytes; the records fill the payload exactly. A receiver
 * checks the whole message before it delivers any record of it.
 */
#ifndef ZCBUS_BRIDGE_BATCH_H
#define ZCBUS_BRIDGE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HDR_BATCH "Zcbus-Batch"
#define BATCH_REC 8 /* bytes before each record's payload */
#define BATCH_MAX 64 /* as many as a sender corks (out.c): a receiver takes no more */

/* Append a record (step from the previous one's sequence, 0 for the
 * first) at dst; returns the bytes written, BATCH_REC + len. */
size_t batch_put(unsigned char *dst, uint32_t step, const void *data, uint32_t len);

/* The count of a Zcbus-Batch header: 2 to BATCH_MAX in decimal without a
 * leading zero, nothing else. 0 if it is not one. */
unsigned batch_count(const char *v);

struct batch_rd {
        const unsigned char *p, *end;
        unsigned left;
        uint64_t seq;
        bool first;
};

/* Read n records from data, the first of sequence seq0. */
void batch_rd_init(struct batch_rd *r, const void *data, size_t len, unsigned n, uint64_t seq0);
/* 1 with the next record (its bytes point into data), 0 after the last
 * (then the payload ended with it), -1 if the payload is not n records. */
int batch_next(struct batch_rd *r, const void **data, size_t *len, uint64_t *seq);
/* Is the whole payload n well-formed records from seq0? */
bool batch_valid(const void *data, size_t len, unsigned n, uint64_t seq0);

#endif
