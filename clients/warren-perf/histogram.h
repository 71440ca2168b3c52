/* Latency histograms: log-linear buckets (64 per power of two, under 1.6% error), one writer
 * thread per histogram and any number of readers, so the per-second reporter never locks. */
#ifndef WARREN_PERF_HISTOGRAM_H
#define WARREN_PERF_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#define HISTOGRAM_SUB_BITS 6
#define HISTOGRAM_SUB_COUNT (1u << HISTOGRAM_SUB_BITS)
#define HISTOGRAM_BUCKETS ((64u - HISTOGRAM_SUB_BITS + 1u) * HISTOGRAM_SUB_COUNT)

/* Written by exactly one thread with relaxed atomics; valid when zeroed. */
struct histogram {
    _Atomic uint64_t buckets[HISTOGRAM_BUCKETS];
    _Atomic uint64_t min; /* 0 means "no sample yet"; samples of 0 are stored as 1 */
    _Atomic uint64_t max;
};

/* A plain copy that readers merge, subtract and query. */
struct histogram_snapshot {
    uint64_t buckets[HISTOGRAM_BUCKETS];
    uint64_t count;
    uint64_t min;
    uint64_t max;
};

/* Record one value (nanoseconds). Only the owning thread may call this. */
void histogram_record(struct histogram *histogram, uint64_t value);

/* Add the current contents of histogram into snapshot (which the caller zeroed or filled). */
void histogram_merge(struct histogram_snapshot *snapshot, const struct histogram *histogram);

/* out = later - earlier, bucket by bucket; min/max are taken from later (exact only for totals). */
void histogram_difference(struct histogram_snapshot *out, const struct histogram_snapshot *later,
                          const struct histogram_snapshot *earlier);

/* The value at quantile q in [0, 1]: a bucket midpoint, clamped to [min, max]; 0 when empty. */
uint64_t histogram_quantile(const struct histogram_snapshot *snapshot, double q);

#endif
