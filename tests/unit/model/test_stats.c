/* tests/unit/model/test_stats.c: the statistics a queue counts (RabbitMQ's message_stats
 * names, drops by reason), the age of its ready messages, and the sampler's arithmetic with
 * the clock driven by hand: rates over the latest interval, history rings that read running
 * totals back, that exist only while there is something to remember, and that start at the
 * object's first sample. */
#include "helpers.h"

#include "message.h"
#include "queue.h"
#include "spec.h"
#include "stats.h"

static struct message *make_message(const char *expiration)
{
    struct spec_content_header h = {.class_id = 60, .body_size = 1};
    if (expiration) {
        h.props.flags |= SPEC_BASIC_EXPIRATION_FLAG;
        h.props.expiration = bytes_of(expiration);
    }
    uint8_t header[128];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of("x"), bytes_of("k"), (struct proto_bytes){header, (uint32_t)n}, 1);
    assert_non_null(msg);
    msg->body[0] = 'b';
    return msg;
}

static void publish(struct queue *q, const char *expiration, uint64_t now)
{
    struct message *msg = make_message(expiration);
    queue_publish(q, msg, now);
    message_release(msg);
}

static struct queue *make_queue(int64_t max_length)
{
    struct queue_settings s = {.message_ttl_ms = -1, .expires_ms = -1, .max_length = max_length,
                               .max_length_bytes = -1};
    struct queue *q = queue_create(bytes_of("q"), &s, no_bytes(), NULL);
    assert_non_null(q);
    return q;
}

/* A consumer that always has credit and settles nothing itself. */
struct sink {
    struct queue_entry entries[8];
    size_t count;
};

static bool sink_credit(void *consumer, const struct message *msg)
{
    (void)msg;
    return ((struct sink *)consumer)->count < 8;
}

static void sink_deliver(void *consumer, struct queue *queue, const struct queue_entry *entry, bool no_ack)
{
    (void)queue;
    struct sink *s = consumer;
    if (no_ack)
        message_release(entry->msg);
    else
        s->entries[s->count] = *entry;
    s->count++;
}

static const struct consumer_ops sink_ops = {sink_credit, sink_deliver, NULL};

static void test_queue_counts_each_outcome(void **state)
{
    (void)state;
    struct queue *q = make_queue(-1);
    struct queue_entry e;
    assert_false(queue_get(q, 0, false, &e));
    for (int i = 0; i < 4; i++)
        publish(q, NULL, 0);
    assert_true(queue_get(q, 0, false, &e));
    queue_settle(q, &e, QUEUE_REQUEUE);
    assert_true(queue_get(q, 0, false, &e)); /* the same message, redelivered */
    queue_settle(q, &e, QUEUE_ACK);
    assert_true(queue_get(q, 0, true, &e));
    message_release(e.msg);
    assert_true(queue_get(q, 0, false, &e));
    queue_settle(q, &e, QUEUE_DISCARD);
    publish(q, "10", 0);
    queue_expire(q, 20); /* the no-TTL head stays, so only the head is looked at */
    struct sink acking = {0};
    struct reply_error err;
    assert_int_equal(queue_add_consumer(q, &acking, &sink_ops, 0, false, false, &err), 0);
    queue_dispatch(q, 30); /* one delivered, then the expired one dropped at the head */
    assert_int_equal(acking.count, 1);
    queue_settle(q, &acking.entries[0], QUEUE_ACK);
    queue_remove_consumer(q, &acking);
    struct sink no_ack = {0};
    assert_int_equal(queue_add_consumer(q, &no_ack, &sink_ops, 0, false, true, &err), 0);
    publish(q, NULL, 40);
    queue_dispatch(q, 40);
    assert_int_equal(no_ack.count, 1);
    queue_remove_consumer(q, &no_ack);

    const struct stats_queue *s = queue_stats(q);
    assert_int_equal(s->publish, 6);
    assert_int_equal(s->get, 3);
    assert_int_equal(s->get_no_ack, 1);
    assert_int_equal(s->get_empty, 1);
    assert_int_equal(s->redeliver, 1);
    assert_int_equal(s->ack, 2);
    assert_int_equal(s->deliver, 1);
    assert_int_equal(s->deliver_no_ack, 1);
    assert_int_equal(s->drop_rejected, 1);
    assert_int_equal(s->drop_expired, 1);
    assert_int_equal(s->drop_maxlen, 0);
    queue_delete(q);
    queue_release(q);
}

static void test_queue_counts_length_drops(void **state)
{
    (void)state;
    struct queue *q = make_queue(2);
    for (int i = 0; i < 5; i++)
        publish(q, NULL, 0);
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(queue_stats(q)->publish, 5);
    assert_int_equal(queue_stats(q)->drop_maxlen, 3);
    queue_delete(q);
    queue_release(q);
}

static void test_message_age_oldest_and_mean(void **state)
{
    (void)state;
    struct queue *q = make_queue(-1);
    uint64_t oldest, mean;
    queue_message_age(q, 5000, &oldest, &mean);
    assert_int_equal(oldest, 0);
    assert_int_equal(mean, 0);
    publish(q, NULL, 1000);
    publish(q, NULL, 1500);
    queue_message_age(q, 3000, &oldest, &mean);
    assert_int_equal(oldest, 2000);
    assert_int_equal(mean, 1750);
    struct queue_entry e;
    assert_true(queue_get(q, 3000, false, &e));
    queue_message_age(q, 3000, &oldest, &mean);
    assert_int_equal(oldest, 1500);
    assert_int_equal(mean, 1500);
    /* A requeued message keeps its age and is the head again. */
    queue_settle(q, &e, QUEUE_REQUEUE);
    queue_message_age(q, 4000, &oldest, &mean);
    assert_int_equal(oldest, 3000);
    assert_int_equal(mean, 2750);
    queue_delete(q);
    queue_release(q);
}

static void test_message_age_across_32_bit_wrap(void **state)
{
    (void)state;
    struct queue *q = make_queue(-1);
    uint64_t base = (1ull << 32) - 1000; /* stamps keep the low 32 bits only */
    publish(q, NULL, base);
    publish(q, NULL, base + 2000);
    uint64_t oldest, mean;
    queue_message_age(q, base + 3000, &oldest, &mean);
    assert_int_equal(oldest, 3000);
    assert_int_equal(mean, 2000);
    queue_delete(q);
    queue_release(q);
}

static void test_rates_over_latest_interval(void **state)
{
    (void)state;
    struct stats_clock clock = {0};
    uint64_t counters[2] = {10, 0}, last[2] = {0}, zero_last[2] = {0};
    float rate[2];
    stats_clock_tick(&clock, 1000, 1700000000000);
    stats_rates_update(&clock, counters, last, rate, 2);
    assert_true(rate[0] == 0.0f); /* no interval yet */
    assert_int_equal(last[0], 10);
    counters[0] = 60;
    counters[1] = 5;
    stats_clock_tick(&clock, 6000, 1700000005000);
    assert_int_equal(clock.interval_ms, 5000);
    stats_rates_update(&clock, counters, last, rate, 2);
    assert_true(rate[0] == 10.0f);
    assert_true(rate[1] == 1.0f);
    /* An object born since the previous tick: everything it counted is new. */
    stats_rates_update(&clock, counters, zero_last, rate, 2);
    assert_true(rate[0] == 12.0f);
}

static void test_history_reads_totals_and_frees_at_rest(void **state)
{
    (void)state;
    struct stats_clock clock = {0};
    struct stats_history h = {0};
    uint64_t wall = 1700000000000;
    uint64_t now = 0;
    /* Two quiet ticks allocate nothing. */
    for (int i = 0; i < 2; i++) {
        stats_clock_tick(&clock, now += 5000, wall += 5000);
        uint32_t row[2] = {0, 0};
        stats_history_record(&h, &clock, row, 2);
    }
    assert_null(h.ring);
    /* Depth 7 and 3 then 4 published: column 1 is a counter whose total is now 100. */
    uint32_t rows[2][2] = {{7, 3}, {7, 4}};
    for (int i = 0; i < 2; i++) {
        stats_clock_tick(&clock, now += 5000, wall += 5000);
        stats_history_record(&h, &clock, rows[i], 2);
    }
    assert_non_null(h.ring);
    uint64_t latest[2] = {0, 100}, ts[STATS_HISTORY_LEN], values[STATS_HISTORY_LEN * 2];
    size_t n = stats_history_read(&h, &clock, 10, 1u << 1, latest, ts, values);
    assert_int_equal(n, 4);
    assert_int_equal(ts[0], 1700000005000);
    assert_int_equal(ts[3], 1700000020000);
    uint64_t want[4][2] = {{0, 93}, {0, 93}, {7, 96}, {7, 100}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(values[i * 2], want[i][0]);
        assert_int_equal(values[i * 2 + 1], want[i][1]);
    }
    /* max picks the newest. */
    assert_int_equal(stats_history_read(&h, &clock, 1, 1u << 1, latest, ts, values), 1);
    assert_int_equal(values[1], 100);
    /* A whole window at rest frees the ring; it still reads, as zeros, over the full window. */
    for (int i = 0; i < STATS_HISTORY_LEN; i++) {
        stats_clock_tick(&clock, now += 5000, wall += 5000);
        uint32_t row[2] = {0, 0};
        stats_history_record(&h, &clock, row, 2);
    }
    assert_null(h.ring);
    n = stats_history_read(&h, &clock, 1000, 1u << 1, latest, ts, values);
    assert_int_equal(n, STATS_HISTORY_LEN);
    assert_int_equal(values[1], 100);
    assert_int_equal(values[0], 0);
    assert_int_equal(ts[STATS_HISTORY_LEN - 1], wall);
    stats_history_free(&h);
}

static void test_queue_sample_rates_and_history(void **state)
{
    (void)state;
    struct stats_clock clock = {0};
    struct queue *q = make_queue(-1);
    stats_clock_tick(&clock, 0, 1000);
    stats_queue_sample(queue_series(q), &clock, queue_stats(q), queue_ready_count(q), queue_unacked_count(q));
    for (int i = 0; i < 10; i++)
        publish(q, NULL, 1);
    struct queue_entry e;
    assert_true(queue_get(q, 2, false, &e));
    stats_clock_tick(&clock, 2000, 3000);
    stats_queue_sample(queue_series(q), &clock, queue_stats(q), queue_ready_count(q), queue_unacked_count(q));
    const struct stats_queue_series *series = queue_series(q);
    assert_true(series->rate[0] == 5.0f); /* publish: 10 in 2 s */
    uint64_t latest[STATS_QUEUE_HISTORY_WIDTH] = {
        [STATS_QUEUE_HISTORY_PUBLISH] = queue_stats(q)->publish,
        [STATS_QUEUE_HISTORY_DELIVER_GET] = stats_queue_deliver_get(series->last),
    };
    uint64_t ts[STATS_HISTORY_LEN], values[STATS_HISTORY_LEN * STATS_QUEUE_HISTORY_WIDTH];
    uint32_t counters = 1u << STATS_QUEUE_HISTORY_PUBLISH | 1u << STATS_QUEUE_HISTORY_DELIVER_GET;
    assert_int_equal(stats_history_read(&series->history, &clock, 60, counters, latest, ts, values), 2);
    const uint64_t *row = &values[STATS_QUEUE_HISTORY_WIDTH];
    assert_int_equal(row[STATS_QUEUE_HISTORY_READY], 9);
    assert_int_equal(row[STATS_QUEUE_HISTORY_UNACKED], 1);
    assert_int_equal(row[STATS_QUEUE_HISTORY_PUBLISH], 10);
    assert_int_equal(row[STATS_QUEUE_HISTORY_DELIVER_GET], 1);
    assert_int_equal(values[STATS_QUEUE_HISTORY_PUBLISH], 0);
    queue_settle(q, &e, QUEUE_ACK);
    queue_delete(q);
    queue_release(q); /* frees the ring too (ASan would tell) */
}

static void test_history_starts_at_first_sample(void **state)
{
    (void)state;
    struct stats_clock clock = {0};
    for (int i = 0; i < 5; i++)
        stats_clock_tick(&clock, (uint64_t)i * 5000, (uint64_t)i * 5000);
    struct stats_history h = {0};
    uint32_t row[1] = {1};
    stats_history_record(&h, &clock, row, 1);
    uint64_t latest[1] = {0}, ts[STATS_HISTORY_LEN], values[STATS_HISTORY_LEN];
    assert_int_equal(stats_history_read(&h, &clock, 60, 0, latest, ts, values), 1);
    assert_int_equal(ts[0], 20000);
    stats_history_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_counts_each_outcome),
        cmocka_unit_test(test_queue_counts_length_drops),
        cmocka_unit_test(test_message_age_oldest_and_mean),
        cmocka_unit_test(test_message_age_across_32_bit_wrap),
        cmocka_unit_test(test_rates_over_latest_interval),
        cmocka_unit_test(test_history_reads_totals_and_frees_at_rest),
        cmocka_unit_test(test_queue_sample_rates_and_history),
        cmocka_unit_test(test_history_starts_at_first_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
