/* Log-linear latency histogram: exact below 64 ns, then 64 sub-buckets per octave. */
#include "histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t value)
{
    if (value < HISTOGRAM_SUB_COUNT)
        return (unsigned)value;
    unsigned exponent = 63u - (unsigned)__builtin_clzll(value);
    unsigned sub = (unsigned)(value >> (exponent - HISTOGRAM_SUB_BITS)) & (HISTOGRAM_SUB_COUNT - 1u);
    return (exponent - HISTOGRAM_SUB_BITS + 1u) * HISTOGRAM_SUB_COUNT + sub;
}

/* The midpoint of a bucket's value range, the inverse of bucket_of. */
static uint64_t value_of(unsigned bucket)
{
    if (bucket < HISTOGRAM_SUB_COUNT)
        return bucket;
    unsigned exponent = bucket / HISTOGRAM_SUB_COUNT + HISTOGRAM_SUB_BITS - 1u;
    uint64_t sub = bucket % HISTOGRAM_SUB_COUNT;
    unsigned shift = exponent - HISTOGRAM_SUB_BITS;
    uint64_t low = ((uint64_t)HISTOGRAM_SUB_COUNT + sub) << shift;
    return low + ((1ull << shift) >> 1);
}

void histogram_record(struct histogram *histogram, uint64_t value)
{
    /* Single writer: a load and a store are enough, and cheaper than a locked add. */
    _Atomic uint64_t *slot = &histogram->buckets[bucket_of(value)];
    atomic_store_explicit(slot, atomic_load_explicit(slot, memory_order_relaxed) + 1, memory_order_relaxed);
    uint64_t stored = value ? value : 1;
    uint64_t min = atomic_load_explicit(&histogram->min, memory_order_relaxed);
    if (min == 0 || stored < min)
        atomic_store_explicit(&histogram->min, stored, memory_order_relaxed);
    if (stored > atomic_load_explicit(&histogram->max, memory_order_relaxed))
        atomic_store_explicit(&histogram->max, stored, memory_order_relaxed);
}

void histogram_merge(struct histogram_snapshot *snapshot, const struct histogram *histogram)
{
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&histogram->buckets[i], memory_order_relaxed);
        snapshot->buckets[i] += n;
        snapshot->count += n;
    }
    uint64_t min = atomic_load_explicit(&histogram->min, memory_order_relaxed);
    uint64_t max = atomic_load_explicit(&histogram->max, memory_order_relaxed);
    if (min != 0 && (snapshot->min == 0 || min < snapshot->min))
        snapshot->min = min;
    if (max > snapshot->max)
        snapshot->max = max;
}

void histogram_difference(struct histogram_snapshot *out, const struct histogram_snapshot *later,
                          const struct histogram_snapshot *earlier)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        out->buckets[i] = later->buckets[i] - earlier->buckets[i];
        out->count += out->buckets[i];
    }
    out->min = later->min;
    out->max = later->max;
}

uint64_t histogram_quantile(const struct histogram_snapshot *snapshot, double q)
{
    if (snapshot->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)snapshot->count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > snapshot->count)
        rank = snapshot->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += snapshot->buckets[i];
        if (seen >= rank) {
            uint64_t value = value_of(i);
            if (snapshot->min && value < snapshot->min)
                value = snapshot->min;
            if (snapshot->max && value > snapshot->max)
                value = snapshot->max;
            return value;
        }
    }
    return snapshot->max;
}
