/* broker/model/stats.c: the sampler's arithmetic (see stats.h): rates over the latest interval
 * and the history rings, which exist only while there is something to remember. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct stats_queue) == STATS_QUEUE_COUNTERS * sizeof(uint64_t), "counters only");
_Static_assert(sizeof(struct stats_channel) == STATS_CHANNEL_COUNTERS * sizeof(uint64_t), "counters only");
_Static_assert(sizeof(struct stats_exchange) == STATS_EXCHANGE_COUNTERS * sizeof(uint64_t), "counters only");
_Static_assert(STATS_HISTORY_LEN <= UINT16_MAX, "quiet counts up to the window");

void stats_channel_add(struct stats_channel *sum, const struct stats_channel *add)
{
    uint64_t *s = (uint64_t *)sum;
    const uint64_t *a = (const uint64_t *)add;
    for (size_t i = 0; i < STATS_CHANNEL_COUNTERS; i++)
        s[i] += a[i];
}

void stats_clock_tick(struct stats_clock *clock, uint64_t now_ms, uint64_t wall_ms)
{
    clock->interval_ms = clock->ticks ? now_ms - clock->last_ms : 0;
    clock->last_ms = now_ms;
    clock->wall_ms[clock->ticks % STATS_HISTORY_LEN] = wall_ms;
    clock->ticks++;
}

void stats_rates_update(const struct stats_clock *clock, const uint64_t *counters, uint64_t *last, float *rate,
                        size_t n)
{
    double seconds = (double)clock->interval_ms / 1000.0;
    for (size_t i = 0; i < n; i++) {
        /* A counter never goes down; should one be reset, report 0 rather than a huge rate. */
        uint64_t delta = counters[i] >= last[i] ? counters[i] - last[i] : 0;
        rate[i] = seconds > 0 ? (float)((double)delta / seconds) : 0.0f;
        last[i] = counters[i];
    }
}

void stats_history_record(struct stats_history *h, const struct stats_clock *clock, const uint32_t *values,
                          uint8_t width)
{
    if (clock->ticks == 0)
        return;
    uint64_t tick = clock->ticks - 1;
    if (!h->started) {
        h->started = 1;
        h->since_tick = (uint32_t)tick;
        h->width = width;
    }
    int zero = 1;
    for (size_t i = 0; i < width; i++)
        if (values[i]) {
            zero = 0;
            break;
        }
    if (zero) {
        if (h->quiet < STATS_HISTORY_LEN)
            h->quiet++;
        if (h->quiet >= STATS_HISTORY_LEN) {
            stats_history_free(h); /* the whole window is zeros: nothing to keep */
            return;
        }
    } else {
        h->quiet = 0;
    }
    if (!h->ring) {
        if (zero)
            return;
        /* Everything before this sample in the window was zero (or the ring would exist). */
        h->ring = calloc((size_t)STATS_HISTORY_LEN * width, sizeof *h->ring);
        if (!h->ring)
            return;
    }
    memcpy(&h->ring[(tick % STATS_HISTORY_LEN) * width], values, width * sizeof *values);
}

size_t stats_history_read(const struct stats_history *h, const struct stats_clock *clock, size_t max,
                          uint32_t counter_mask, const uint64_t *latest, uint64_t *timestamps, uint64_t *values)
{
    if (!h->started || clock->ticks == 0)
        return 0;
    uint64_t latest_tick = clock->ticks - 1;
    uint64_t have = latest_tick - h->since_tick + 1;
    size_t count = max < STATS_HISTORY_LEN ? max : STATS_HISTORY_LEN;
    if (count > have)
        count = (size_t)have;
    size_t width = h->width;
    uint64_t running[32] = {0};
    for (size_t c = 0; c < width && c < 32; c++)
        if (counter_mask & (1u << c))
            running[c] = latest[c];
    /* Newest first, so that counter deltas can be unwound into totals. */
    for (size_t k = 0; k < count; k++) {
        uint64_t tick = latest_tick - k;
        size_t slot = (size_t)(tick % STATS_HISTORY_LEN);
        size_t row = count - 1 - k;
        timestamps[row] = clock->wall_ms[slot];
        const uint32_t *sample = h->ring ? &h->ring[slot * width] : NULL;
        for (size_t c = 0; c < width; c++) {
            uint32_t v = sample ? sample[c] : 0;
            if (c < 32 && (counter_mask & (1u << c))) {
                values[row * width + c] = running[c];
                running[c] = running[c] >= v ? running[c] - v : 0;
            } else {
                values[row * width + c] = v;
            }
        }
    }
    return count;
}

void stats_history_free(struct stats_history *h)
{
    free(h->ring);
    h->ring = NULL;
}

#define QUEUE_INDEX(field) (offsetof(struct stats_queue, field) / sizeof(uint64_t))

uint64_t stats_queue_deliver_get(const uint64_t *c)
{
    return c[QUEUE_INDEX(deliver)] + c[QUEUE_INDEX(deliver_no_ack)] + c[QUEUE_INDEX(get)] + c[QUEUE_INDEX(get_no_ack)];
}

void stats_queue_sample(struct stats_queue_series *series, const struct stats_clock *clock,
                        const struct stats_queue *counters, uint64_t ready, uint64_t unacked)
{
    const uint64_t *now = (const uint64_t *)counters;
    uint32_t row[STATS_QUEUE_HISTORY_WIDTH] = {
        [STATS_QUEUE_HISTORY_READY] = stats_u32(ready),
        [STATS_QUEUE_HISTORY_UNACKED] = stats_u32(unacked),
        [STATS_QUEUE_HISTORY_PUBLISH] = stats_u32(now[QUEUE_INDEX(publish)] - series->last[QUEUE_INDEX(publish)]),
        [STATS_QUEUE_HISTORY_DELIVER_GET] = stats_u32(stats_queue_deliver_get(now) - stats_queue_deliver_get(series->last)),
    };
    stats_history_record(&series->history, clock, row, STATS_QUEUE_HISTORY_WIDTH);
    stats_rates_update(clock, now, series->last, series->rate, STATS_QUEUE_COUNTERS);
}

void stats_totals_sample(struct stats_totals_series *series, const struct stats_clock *clock,
                         const struct stats_channel *counters, uint64_t ready, uint64_t unacked)
{
    const uint64_t *now = (const uint64_t *)counters;
    uint32_t row[STATS_TOTALS_HISTORY_WIDTH];
    for (size_t i = 0; i < STATS_CHANNEL_COUNTERS; i++)
        row[i] = stats_u32(now[i] >= series->last[i] ? now[i] - series->last[i] : 0);
    row[STATS_TOTALS_HISTORY_READY] = stats_u32(ready);
    row[STATS_TOTALS_HISTORY_UNACKED] = stats_u32(unacked);
    stats_history_record(&series->history, clock, row, STATS_TOTALS_HISTORY_WIDTH);
    stats_rates_update(clock, now, series->last, series->rate, STATS_CHANNEL_COUNTERS);
}
