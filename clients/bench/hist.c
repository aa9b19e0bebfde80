/* SPDX-License-Identifier: MIT */
/*
 * hist.c: the log-linear latency histogram of the benchmark tools. It owns
 * bucket arithmetic, percentile lookup and merging; recording is inline in
 * hist.h because it runs inside the measuring loops. hist.h explains the
 * layout and the error bound.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

struct hist *hist_new(void) {
        struct hist *h = malloc(sizeof(*h));

        if (h)
                hist_reset(h);
        return h;
}

void hist_free(struct hist *h) {
        free(h);
}

void hist_reset(struct hist *h) {
        memset(h, 0, sizeof(*h));
        h->min = UINT64_MAX;
}

void hist_bucket_range(unsigned i, uint64_t *ret_low, uint64_t *ret_width) {
        unsigned shift;

        if (i < HIST_SUB) {
                *ret_low = i;
                *ret_width = 1;
                return;
        }
        shift = (i >> HIST_SUB_BITS) - 1u;
        *ret_low = (HIST_SUB + (i & (HIST_SUB - 1))) << shift;
        *ret_width = UINT64_C(1) << shift;
}

/* The value reported for bucket i: its middle, kept within [min, max] so
 * that the extremes of a narrow distribution are not invented. */
static uint64_t bucket_value(const struct hist *h, unsigned i) {
        uint64_t low, width, v;

        hist_bucket_range(i, &low, &width);
        v = low + (width >> 1);
        if (v < h->min)
                v = h->min;
        if (v > h->max)
                v = h->max;
        return v;
}

uint64_t hist_percentile(const struct hist *h, double pct) {
        uint64_t rank, seen = 0;

        if (h->count == 0)
                return 0;
        if (!(pct > 0.0)) /* also NaN */
                return h->min;
        if (pct >= 100.0)
                return h->max;
        /* The smallest value with at least pct% of the samples at or below it. */
        rank = (uint64_t)ceil(pct / 100.0 * (double)h->count);
        if (rank < 1)
                rank = 1;
        if (rank > h->count)
                rank = h->count;
        for (unsigned i = 0; i < HIST_BUCKETS; i++) {
                seen += h->counts[i];
                if (seen >= rank)
                        return bucket_value(h, i);
        }
        return h->max; /* not reached: the counts add up to count */
}

double hist_mean(const struct hist *h) {
        if (h->count == 0)
                return 0.0;
        return (ldexp((double)h->sum_hi, 64) + (double)h->sum_lo) / (double)h->count;
}

void hist_merge(struct hist *dst, const struct hist *src) {
        uint64_t lo = dst->sum_lo + src->sum_lo;

        for (unsigned i = 0; i < HIST_BUCKETS; i++)
                dst->counts[i] += src->counts[i];
        dst->count += src->count;
        dst->sum_hi += src->sum_hi + (lo < src->sum_lo);
        dst->sum_lo = lo;
        if (src->min < dst->min)
                dst->min = src->min;
        if (src->max > dst->max)
                dst->max = src->max;
}

void hist_summarize(const struct hist *h, struct hist_summary *ret) {
        struct hist_summary s = {0};

        if (h->count > 0) {
                s.count = h->count;
                s.min = h->min;
                s.p50 = hist_percentile(h, 50.0);
                s.p90 = hist_percentile(h, 90.0);
                s.p99 = hist_percentile(h, 99.0);
                s.p999 = hist_percentile(h, 99.9);
                s.max = h->max;
                s.mean = hist_mean(h);
        }
        *ret = s;
}

double hist_rel_error(void) {
        return ldexp(1.0, -(int)HIST_SUB_BITS - 1);
}
