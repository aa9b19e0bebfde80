/* SPDX-License-Identifier: MIT */
/*
 * batch.c: the records of a batched NATS message (batch.h). Everything in
 * a received one is the sender's word: every length and step is checked
 * against what is left before it is used.
 */
#include "config.h"

#include <string.h>

#include "batch.h"

static void put32(unsigned char *p, uint32_t v) {
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
        p[2] = (unsigned char)(v >> 16);
        p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p) {
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t batch_put(unsigned char *dst, uint32_t step, const void *data, uint32_t len) {
        put32(dst, len);
        put32(dst + 4, step);
        if (len)
                memcpy(dst + BATCH_REC, data, len);
        return BATCH_REC + (size_t)len;
}

unsigned batch_count(const char *v) {
        unsigned n = 0;

        if (!v || *v < '1' || *v > '9') /* no sign, space or leading zero */
                return 0;
        for (; *v; v++) {
                if (*v < '0' || *v > '9' || n > BATCH_MAX)
                        return 0;
                n = n * 10 + (unsigned)(*v - '0');
        }
        return n >= 2 && n <= BATCH_MAX ? n : 0;
}

void batch_rd_init(struct batch_rd *r, const void *data, size_t len, unsigned n, uint64_t seq0) {
        r->p = data;
        r->end = r->p + len;
        r->left = n;
        r->seq = seq0;
        r->first = true;
}

int batch_next(struct batch_rd *r, const void **data, size_t *len, uint64_t *seq) {
        uint32_t n, step;

        if (r->left == 0)
                return r->p == r->end ? 0 : -1;
        if ((size_t)(r->end - r->p) < BATCH_REC)
                return -1;
        n = get32(r->p);
        step = get32(r->p + 4);
        if ((size_t)(r->end - r->p) - BATCH_REC < n)
                return -1;
        if (r->first ? step != 0 : (step == 0 || r->seq > UINT64_MAX - step))
                return -1;
        r->seq += step;
        r->first = false;
        *data = r->p + BATCH_REC;
        *len = n;
        *seq = r->seq;
        r->p += BATCH_REC + (size_t)n;
        r->left--;
        return 1;
}

bool batch_valid(const void *data, size_t len, unsigned n, uint64_t seq0) {
        struct batch_rd r;
        const void *d;
        size_t l;
        uint64_t s;
        int k;

        batch_rd_init(&r, data, len, n, seq0);
        while ((k = batch_next(&r, &d, &l, &s)) == 1)
                ;
        return k == 0;
}
