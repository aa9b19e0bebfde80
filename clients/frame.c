/* SPDX-License-Identifier: MIT */
/*
 * frame.c: writing and reading the raw stream framing and the record file
 * format of frame.h, byte by byte in little-endian order so that a file
 * means the same on every host. Everything read is untrusted: lengths are
 * returned for the caller to bound before it allocates or reads on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"

static void put_le(unsigned char *p, uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, unsigned n) {
        uint64_t v = 0;

        for (unsigned i = 0; i < n; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

static int put(FILE *f, const void *p, size_t len) {
        if (len && fwrite(p, 1, len, f) != len)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

/* Exactly len bytes: 1, 0 if the input ended before the first, -ENODATA
 * if it ended after it, -EIO. */
static int get(FILE *f, void *p, size_t len) {
        size_t got = len ? fread(p, 1, len, f) : 0;

        if (got == len)
                return 1;
        if (ferror(f))
                return -EIO;
        return got == 0 ? 0 : -ENODATA;
}

int frame_write(FILE *f, const void *data, size_t len) {
        unsigned char h[FRAME_HDR_LEN];
        int r;

        if (len > UINT32_MAX)
                return -EMSGSIZE;
        put_le(h, len, 4);
        r = put(f, h, sizeof(h));
        return r < 0 ? r : put(f, data, len);
}

int frame_read_len(FILE *f, uint32_t *ret_len) {
        unsigned char h[FRAME_HDR_LEN];
        int r = get(f, h, sizeof(h));

        if (r <= 0)
                return r;
        *ret_len = (uint32_t)get_le(h, 4);
        return 1;
}

int frame_read_body(FILE *f, void *buf, size_t len) {
        int r = get(f, buf, len);

        if (r < 0)
                return r;
        return r == 0 && len > 0 ? -ENODATA : 0;
}

int rec_write_file_hdr(FILE *f, const struct rec_file_hdr *h) {
        unsigned char b[REC_FILE_HDR_LEN];

        memcpy(b, REC_MAGIC, 8);
        put_le(b + 8, h->version, 4);
        put_le(b + 12, REC_FILE_HDR_LEN, 4);
        put_le(b + 16, h->realtime_ns, 8);
        put_le(b + 24, h->monotonic_ns, 8);
        return put(f, b, sizeof(b));
}

int rec_read_file_hdr(FILE *f, struct rec_file_hdr *ret) {
        unsigned char b[REC_FILE_HDR_LEN];
        uint32_t hlen;
        int r = get(f, b, sizeof(b));

        if (r < 0)
                return r;
        if (r == 0)
                return -ENODATA;
        if (memcmp(b, REC_MAGIC, 8) != 0)
                return -EBADMSG;
        if (get_le(b + 8, 4) != REC_VERSION)
                return -EPROTONOSUPPORT;
        hlen = (uint32_t)get_le(b + 12, 4);
        if (hlen < REC_FILE_HDR_LEN)
                return -EBADMSG;
        /* A later minor addition: skip what this reader does not know. */
        for (uint32_t i = REC_FILE_HDR_LEN; i < hlen; i++)
                if (fgetc(f) == EOF)
                        return ferror(f) ? -EIO : -ENODATA;
        ret->version = REC_VERSION;
        ret->realtime_ns = get_le(b + 16, 8);
        ret->monotonic_ns = get_le(b + 24, 8);
        return 0;
}

int rec_write(FILE *f, const struct rec_hdr *h, const char *topic, const void *payload) {
        unsigned char b[REC_HDR_LEN];
        int r;

        put_le(b, h->len, 4);
        put_le(b + 4, h->topic_len, 2);
        put_le(b + 6, h->flags, 2);
        put_le(b + 8, h->ts_ns, 8);
        put_le(b + 16, h->seq, 8);
        put_le(b + 24, h->lost, 8);
        if ((r = put(f, b, sizeof(b))) < 0 || (r = put(f, topic, h->topic_len)) < 0)
                return r;
        return put(f, payload, h->len);
}

int rec_read_hdr(FILE *f, struct rec_hdr *ret) {
        unsigned char b[REC_HDR_LEN];
        struct rec_hdr h;
        int r = get(f, b, sizeof(b));

        if (r <= 0)
                return r;
        h.len = (uint32_t)get_le(b, 4);
        h.topic_len = (uint16_t)get_le(b + 4, 2);
        h.flags = (uint16_t)get_le(b + 6, 2);
        h.ts_ns = get_le(b + 8, 8);
        h.seq = get_le(b + 16, 8);
        h.lost = get_le(b + 24, 8);
        if (h.topic_len == 0 || h.topic_len > 255)
                return -EBADMSG;
        *ret = h;
        return 1;
}
