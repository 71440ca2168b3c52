/* broker/model/stats.h: message counters (RabbitMQ's message_stats names) and the arithmetic of
 * the statistics sampler: per-second rates from the previous sample, and bounded histories.
 * Pure: no clock, no allocation except a history's ring; the caller (the AMQP layer's sampler)
 * brings the times and walks the objects.
 *
 * Why the counters cost nothing on the hot path: each is a plain uint64_t increment in a struct
 * the message already touches (the queue it enters, the channel it arrives on, the exchange it
 * is routed through); no hashing, no allocation, no atomic (the broker is single-threaded).
 * Connection, vhost and broker totals are not counted per message: they are sums of the live
 * channels plus what closed channels left behind (stats_channel_add at close), computed when
 * read or sampled.
 *
 * Memory per object (x86-64): a queue holds 11 counters (88 B) and its stats_queue_series
 * (last sample 88 B, rates 44 B, history header 16 B): 236 B. Its history ring (60 samples x
 * 4 values x 4 B = 960 B) exists only while the queue was not at rest for a whole window: it is
 * allocated at the first sample with a nonzero depth or activity and freed after
 * STATS_HISTORY_LEN samples in a row that are all zero, since an absent ring reads as zeros.
 * So an empty idle queue costs 236 B, a busy one about 1.2 KiB. A channel: 88 + 88 + 44 B; an
 * exchange: 32 + 32 + 16 B; a vhost and the broker: 3 KiB of history each. */
#ifndef WARREN_STATS_H
#define WARREN_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Samples kept in a history: 5 minutes at the default 5 s interval. */
#define STATS_HISTORY_LEN 60
/* RabbitMQ's default collect_statistics_interval. */
#define STATS_DEFAULT_INTERVAL_MS 5000

/* A queue's counters, in messages, since the queue was created. All fields are uint64_t (the
 * sampler treats the struct as an array). */
struct stats_queue {
    uint64_t publish;        /* entered the queue (routed, dead-lettered in) */
    uint64_t deliver;        /* delivered to a consumer that must acknowledge */
    uint64_t deliver_no_ack; /* delivered to a no-ack consumer */
    uint64_t get;            /* basic.get answered, acknowledgement required */
    uint64_t get_no_ack;     /* basic.get answered, no-ack */
    uint64_t get_empty;      /* basic.get on the empty queue */
    uint64_t redeliver;      /* of deliver/get, those flagged redelivered */
    uint64_t ack;            /* acknowledged */
    uint64_t drop_expired;   /* left by TTL (dead-lettered or discarded) */
    uint64_t drop_maxlen;    /* dropped from the head by x-max-length(-bytes), or refused by
                              * reject-publish */
    uint64_t drop_rejected;  /* rejected/nacked without requeue */
};
#define STATS_QUEUE_COUNTERS (sizeof(struct stats_queue) / sizeof(uint64_t))

/* A channel's counters, in messages (the same names RabbitMQ uses for channels, connections,
 * vhosts and the overview). */
struct stats_channel {
    uint64_t publish;           /* basic.publish completed (committed, under tx) */
    uint64_t confirm;           /* publisher confirms sent (basic.ack, each message counted) */
    uint64_t return_unroutable; /* mandatory and unroutable: basic.return */
    uint64_t drop_unroutable;   /* unroutable and not mandatory: dropped */
    uint64_t deliver, deliver_no_ack, get, get_no_ack, get_empty, redeliver, ack; /* as stats_queue */
};
#define STATS_CHANNEL_COUNTERS (sizeof(struct stats_channel) / sizeof(uint64_t))

/* An exchange's counters, in messages. */
struct stats_exchange {
    uint64_t publish_in;        /* published to it (by clients, or dead-lettered to it) */
    uint64_t publish_out;       /* queue deliveries it routed: one per queue reached */
    uint64_t return_unroutable; /* published to it, reached no queue, returned (mandatory) */
    uint64_t drop_unroutable;   /* published to it, reached no queue, dropped */
};
#define STATS_EXCHANGE_COUNTERS (sizeof(struct stats_exchange) / sizeof(uint64_t))

/* Adds every counter of add to sum. */
void stats_channel_add(struct stats_channel *sum, const struct stats_channel *add);

/* The sampler's clock, one per broker: every history is indexed by the same tick, so the
 * timestamps are kept once. Zero is "no sample yet". */
struct stats_clock {
    uint64_t ticks;                       /* samples taken; the latest is ticks - 1 */
    uint64_t last_ms;                     /* loop clock (monotonic) of the latest sample */
    uint64_t interval_ms;                 /* between the latest two samples (0 after the first) */
    uint64_t wall_ms[STATS_HISTORY_LEN];  /* wall clock (ms since 1970) of each tick, by slot */
};

/* Starts a new sample at loop time now_ms and wall time wall_ms: advances ticks and the
 * interval. Call once per sampler pass, before recording any object. */
void stats_clock_tick(struct stats_clock *clock, uint64_t now_ms, uint64_t wall_ms);

/* Per-second rates of n counters over the clock's latest interval. last[] holds the counters
 * at the previous sample (zero for an object born since: its whole count is new), and is
 * updated; rate[] receives (counters - last) / interval. On the clock's first tick, or an
 * interval of 0, the rates are 0. */
void stats_rates_update(const struct stats_clock *clock, const uint64_t *counters, uint64_t *last, float *rate,
                        size_t n);

/* A bounded history of `width` 32-bit values per tick. Gauges (queue depth) are stored
 * saturated at UINT32_MAX; counters are stored as the increase since the previous tick (also
 * saturated), so a window in which nothing happened and nothing is held is all zeros, which
 * lets the ring be freed (ring NULL reads as zeros). Zero is a valid, empty history. */
struct stats_history {
    uint32_t *ring;      /* STATS_HISTORY_LEN * width values, by slot (tick % LEN); or NULL */
    uint32_t since_tick; /* first tick recorded (samples before it do not exist); 0 = none yet */
    uint16_t quiet;      /* consecutive all-zero samples, up to STATS_HISTORY_LEN */
    uint8_t width;
    uint8_t started;     /* since_tick is set */
};

/* Records the clock's latest tick: values[width] (width <= 255, the same at every call).
 * Allocates the ring on the first nonzero sample and frees it after a whole window of zeros;
 * on allocation failure the sample is lost (the history reads zeros). Ticks skipped since the
 * previous record (the object was not visited) read as zeros. */
void stats_history_record(struct stats_history *h, const struct stats_clock *clock, const uint32_t *values,
                          uint8_t width);

/* Oldest-first samples of the last `max` ticks (at most STATS_HISTORY_LEN) that the history
 * holds: fills timestamps (wall ms) and values (count * width, row by row) and returns count.
 * Counter columns (bit i of counter_mask set) are turned back into running totals ending at
 * latest[i] (the counter's value at the latest tick); gauge columns are copied. */
size_t stats_history_read(const struct stats_history *h, const struct stats_clock *clock, size_t max,
                          uint32_t counter_mask, const uint64_t *latest, uint64_t *timestamps, uint64_t *values);

/* Frees the ring. */
void stats_history_free(struct stats_history *h);

/* Saturating conversion for history values. */
static inline uint32_t stats_u32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* The sampled state of a queue: its previous counters, rates, and the history of
 * {ready, unacked, publish, deliver_get} (STATS_QUEUE_HISTORY_* columns). */
enum { STATS_QUEUE_HISTORY_READY, STATS_QUEUE_HISTORY_UNACKED, STATS_QUEUE_HISTORY_PUBLISH,
       STATS_QUEUE_HISTORY_DELIVER_GET, STATS_QUEUE_HISTORY_WIDTH };
struct stats_queue_series {
    uint64_t last[STATS_QUEUE_COUNTERS];
    float rate[STATS_QUEUE_COUNTERS];
    struct stats_history history;
};

/* The sampled state of a channel or connection (no history). */
struct stats_channel_series {
    uint64_t last[STATS_CHANNEL_COUNTERS];
    float rate[STATS_CHANNEL_COUNTERS];
};

/* The sampled state of an exchange (no history). */
struct stats_exchange_series {
    uint64_t last[STATS_EXCHANGE_COUNTERS];
    float rate[STATS_EXCHANGE_COUNTERS];
};

/* The sampled state of a vhost or of the whole broker: rates, and the history of every channel
 * counter (deltas) followed by ready and unacked (gauges). */
enum { STATS_TOTALS_HISTORY_READY = STATS_CHANNEL_COUNTERS, STATS_TOTALS_HISTORY_UNACKED,
       STATS_TOTALS_HISTORY_WIDTH };
struct stats_totals_series {
    uint64_t last[STATS_CHANNEL_COUNTERS];
    float rate[STATS_CHANNEL_COUNTERS];
    struct stats_history history;
};

/* One sampler step for a queue at the clock's latest tick: records the history row (depth
 * ready/unacked, and the publish and deliver_get counts since the previous tick), then the
 * rates. Call once per tick, after stats_clock_tick. */
void stats_queue_sample(struct stats_queue_series *series, const struct stats_clock *clock,
                        const struct stats_queue *counters, uint64_t ready, uint64_t unacked);

/* The same for a vhost or the broker: counters are the channel counters summed. */
void stats_totals_sample(struct stats_totals_series *series, const struct stats_clock *clock,
                         const struct stats_channel *counters, uint64_t ready, uint64_t unacked);

/* deliver + deliver_no_ack + get + get_no_ack of a queue's counters laid out as an array. */
uint64_t stats_queue_deliver_get(const uint64_t *counters);

#endif
