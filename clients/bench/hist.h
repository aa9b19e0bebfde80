/* SPDX-License-Identifier: MIT */
/*
 * hist.h: a log-linear latency histogram for the measurement lab
 * (HdrHistogram-like), so that lat and perf never keep or sort samples.
 *
 * Layout: values below 2^HIST_SUB_BITS nanoseconds get one exact bucket
 * each; above that, each power-of-two range [2^k, 2^(k+1)) is split into
 * 2^HIST_SUB_BITS equal sub-buckets of width 2^(k - HIST_SUB_BITS). The
 * whole uint64_t range fits in (65 - HIST_SUB_BITS) << HIST_SUB_BITS
 * counters (7424 with 7 bits, 58 KiB), so recording is a count-leading-
 * zeros, a shift and an increment: no allocation, no branch on range.
 *
 * Error: a percentile is reported as the middle of its bucket (clamped to
 * the exact min and max), so it is within half a bucket width of a value
 * that was recorded in that bucket: a relative error of at most
 * 2^-(HIST_SUB_BITS + 1) = 0.39% with 7 bits (hist_rel_error()). min, max
 * and mean are exact.
 */
#ifndef ZCBUS_HIST_H
#define ZCBUS_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7u
#define HIST_SUB (UINT64_C(1) << HIST_SUB_BITS)
#define HIST_BUCKETS ((64u - HIST_SUB_BITS + 1u) << HIST_SUB_BITS)

struct hist {
        uint64_t count;
        uint64_t min; /* UINT64_MAX while empty */
        uint64_t max;
        uint64_t sum_hi; /* 128-bit sum of the values, for an exact mean */
        uint64_t sum_lo;
        uint64_t counts[HIST_BUCKETS];
};

/* The figures the tools report. All zero for an empty histogram. */
struct hist_summary {
        uint64_t count;
        uint64_t min, p50, p90, p99, p999, max;
        double mean;
};

/* Allocate an empty histogram (NULL on ENOMEM); hist_free accepts NULL. */
struct hist *hist_new(void);
void hist_free(struct hist *h);
void hist_reset(struct hist *h);

static inline unsigned hist_index(uint64_t v) {
        unsigned k, shift;

        if (v < HIST_SUB)
                return (unsigned)v;
        k = 63u - (unsigned)__builtin_clzll(v); /* k >= HIST_SUB_BITS */
        shift = k - HIST_SUB_BITS;
        /* (v >> shift) is in [HIST_SUB, 2 * HIST_SUB): its low bits are the
         * sub-bucket; index = (shift + 1) * HIST_SUB + sub. */
        return ((shift + 1u) << HIST_SUB_BITS) + (unsigned)((v >> shift) - HIST_SUB);
}

/* Record one value. Inline and branch-light: this runs in measuring loops. */
static inline void hist_record(struct hist *h, uint64_t v) {
        uint64_t lo = h->sum_lo + v;

        h->counts[hist_index(v)]++;
        h->count++;
        h->sum_hi += lo < v; /* carry */
        h->sum_lo = lo;
        if (v < h->min)
                h->min = v;
        if (v > h->max)
                h->max = v;
}

/* Lowest value and width of bucket i (i < HIST_BUCKETS). */
void hist_bucket_range(unsigned i, uint64_t *ret_low, uint64_t *ret_width);
/* The value at percentile pct (0..100): 0 is min, 100 is max. 0 if empty. */
uint64_t hist_percentile(const struct hist *h, double pct);
double hist_mean(const struct hist *h);
/* Add src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);
void hist_summarize(const struct hist *h, struct hist_summary *ret);
/* Largest relative error of a reported percentile (0.0039 for 7 bits). */
double hist_rel_error(void);

#endif
