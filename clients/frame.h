/* SPDX-License-Identifier: MIT */
/*
 * frame.h: the two byte formats of the CLI, written and read here only.
 *
 * The raw stream of `zcbus sub --raw` and `zcbus pub --raw`: per message
 * a 4-byte length, unsigned little-endian, then that many payload bytes;
 * nothing else, no header. Any bytes are safe, NULs included.
 *
 * The record file of `zcbus record` and `zcbus replay` (docs/man/zcbus.1,
 * "Record file format"), all integers unsigned little-endian:
 *   file header, REC_FILE_HDR_LEN (32) bytes:
 *     0  8  magic "ZCBUSREC"
 *     8  4  version (REC_VERSION, 1)
 *    12  4  header length (32 in version 1; a reader skips what it does
 *           not know up to this length)
 *    16  8  CLOCK_REALTIME at the start of the recording, ns
 *    24  8  CLOCK_MONOTONIC at the same instant, ns
 *   then per message a record header, REC_HDR_LEN (32) bytes:
 *     0  4  payload length
 *     4  2  topic name length (1..255)
 *     6  2  flags: REC_TS_PRODUCER (bit 0) if the timestamp is the
 *           producer's commit stamp, else it is the recorder's receive time
 *     8  8  timestamp, CLOCK_MONOTONIC ns
 *    16  8  the message's sequence in its topic
 *    24  8  sequences the recorder missed just before it (lost)
 *   then the topic name (no NUL), then the payload.
 */
#ifndef ZCBUS_CLI_FRAME_H
#define ZCBUS_CLI_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FRAME_HDR_LEN 4u

/* One raw frame; 0 or a negative errno. */
int frame_write(FILE *f, const void *data, size_t len);
/* The length of the next raw frame: 1, 0 at a clean end of input (no byte
 * of a next frame), -ENODATA if the input ends inside the header, -EIO on
 * a read error. */
int frame_read_len(FILE *f, uint32_t *ret_len);
/* len bytes into buf: 0, -ENODATA if the input ends first, -EIO. */
int frame_read_body(FILE *f, void *buf, size_t len);

#define REC_MAGIC "ZCBUSREC"
#define REC_VERSION 1u
#define REC_FILE_HDR_LEN 32u
#define REC_HDR_LEN 32u
#define REC_TS_PRODUCER 0x1u

struct rec_file_hdr {
        uint32_t version;
        uint64_t realtime_ns;
        uint64_t monotonic_ns;
};

struct rec_hdr {
        uint32_t len;
        uint16_t topic_len;
        uint16_t flags;
        uint64_t ts_ns;
        uint64_t seq;
        uint64_t lost;
};

int rec_write_file_hdr(FILE *f, const struct rec_file_hdr *h);
/* 0, -EBADMSG (not a record file, or a header length below 32),
 * -EPROTONOSUPPORT (another version), -ENODATA (too short), -EIO. */
int rec_read_file_hdr(FILE *f, struct rec_file_hdr *ret);
/* Header, topic (h->topic_len bytes) and payload (h->len bytes). */
int rec_write(FILE *f, const struct rec_hdr *h, const char *topic, const void *payload);
/* The next record header: 1, 0 at a clean end, -ENODATA if the file ends
 * inside it, -EBADMSG if its topic length is 0 or above 255, -EIO. */
int rec_read_hdr(FILE *f, struct rec_hdr *ret);

#endif
