/* tests/unit/storage/test_retire.c: segment rolling and retirement: dead segments are really
 * deleted, and no deletion ever changes what a reopen recovers; in particular a segment holding
 * the ACK (or QUEUE_DELETED, or DELIVER) for a message of an older, still-present segment must
 * stay, or that message would come back. Ends with a randomised comparison against a model.
 * segment_bytes 1 puts every batch in a segment of its own. */
#include "helpers.h"

static void dead_segments_are_deleted(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 4096, NULL);
    char body[300];
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 400; id++) {
        batch = put_msg(store, id, "q", body);
        if (id > 1)
            put_ack(store, id - 1, "q"); /* the previous message, often in an older segment */
        if (id % 3 == 0)
            wait_batch(store, batch);
    }
    batch = put_ack(store, 400, "q");
    wait_batch(store, batch);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.live_messages, 0);
    assert_true(stats.segments <= 2);
    assert_int_equal(count_segments(dir), stats.segments);
    assert_false(segment_exists(dir, 1));
    assert_false(segment_exists(dir, 5));
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 4096, &seen);
    assert_int_equal(seen.nmessages, 0);
    assert_int_equal(seen.nentries, 0);
    assert_int_equal(store_max_message_id(store), 400); /* from the active segment's header */
    store_close(store);
    remove_tree(dir);
}

static void cross_segment_ack_keeps_its_segment_until_the_message_segment_goes(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL);
    put_msg(store, 1, "q", "long lived");
    wait_batch(store, put_msg(store, 2, "q", "acked later"));   /* segment 1 */
    wait_batch(store, put_ack(store, 2, "q"));                  /* segment 2: depends on 1 */
    put_msg(store, 3, "q", "acked at once");
    wait_batch(store, put_ack(store, 3, "q"));                  /* segment 3: self-contained */
    wait_batch(store, put_msg(store, 4, "q", "four"));          /* segment 4 */
    assert_true(segment_exists(dir, 1));
    assert_true(segment_exists(dir, 2)); /* deleting it would resurrect message 2 */
    assert_false(segment_exists(dir, 3));
    assert_true(segment_exists(dir, 4));
    store_close(store);

    struct seen seen = {0};
    store = open_store(dir, 1, &seen);
    assert_int_equal(seen.nmessages, 2);
    assert_non_null(seen_find(&seen, 1));
    assert_null(seen_find(&seen, 2));
    assert_non_null(seen_find(&seen, 4));
    seen_free(&seen);
    wait_batch(store, put_ack(store, 1, "q"));                  /* segment 5 */
    assert_false(segment_exists(dir, 1));
    assert_false(segment_exists(dir, 2));
    assert_true(segment_exists(dir, 4));
    assert_true(segment_exists(dir, 5));
    wait_batch(store, put_ack(store, 4, "q"));                  /* segment 6 */
    assert_false(segment_exists(dir, 4));
    assert_false(segment_exists(dir, 5));
    assert_int_equal(count_segments(dir), 1);
    store_close(store);
    store = open_store(dir, 1, &seen);
    assert_int_equal(seen.nmessages, 0);
    store_close(store);
    remove_tree(dir);
}

static void queue_delete_and_deliver_records_keep_their_segments(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL);
    put_msg(store, 1, "keep", "one");
    put_msg(store, 2, "doomed", "two");
    wait_batch(store, put_msg(store, 3, "keep", "three"));             /* segment 1 */
    wait_batch(store, store_put_queue_deleted(store, (const uint8_t *)"doomed", 6)); /* 2 */
    wait_batch(store, put_deliver(store, 3, "keep"));                   /* segment 3 */
    put_msg(store, 5, "other", "five");
    wait_batch(store, put_ack(store, 5, "other"));                      /* segment 4 */
    wait_batch(store, put_msg(store, 6, "keep", "six"));                /* segment 5 */
    assert_true(segment_exists(dir, 2));
    assert_true(segment_exists(dir, 3));
    assert_false(segment_exists(dir, 4));
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 1, &seen);
    assert_int_equal(seen.nmessages, 3);
    assert_null(seen_find(&seen, 2));
    assert_int_equal(seen.nentries, 3);
    assert_int_equal(seen.entries[0].id, 1);
    assert_false(seen.entries[0].delivered);
    assert_int_equal(seen.entries[1].id, 3);
    assert_true(seen.entries[1].delivered);
    assert_int_equal(seen.entries[2].id, 6);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void a_fanned_out_message_lives_until_its_last_queue_acks(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL);
    put_msg(store, 1, "a", "both");
    wait_batch(store, store_put_enqueue(store, (const uint8_t *)"b", 1, 1)); /* segment 1 */
    wait_batch(store, put_ack(store, 1, "a"));                               /* segment 2 */
    wait_batch(store, put_msg(store, 2, "a", "filler"));                     /* segment 3 */
    assert_true(segment_exists(dir, 1));
    assert_true(segment_exists(dir, 2));
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 1, &seen);
    assert_int_equal(seen.nmessages, 2);
    assert_int_equal(seen.nentries, 2);
    for (size_t i = 0; i < 2; i++) /* queue order across queues is unspecified */
        assert_int_equal(seen.entries[i].id, strcmp(seen.entries[i].queue, "a") == 0 ? 2 : 1);
    seen_free(&seen);
    wait_batch(store, put_ack(store, 1, "b"));
    assert_false(segment_exists(dir, 1));
    assert_false(segment_exists(dir, 2));
    store_close(store);
    remove_tree(dir);
}

/* The model: per queue, its entries in order. */
#define QUEUES 4
struct model_entry {
    uint64_t id;
    bool delivered;
};
struct model {
    struct model_entry entries[QUEUES][4096];
    size_t count[QUEUES];
};
static const char *queue_names[QUEUES] = {"alpha", "beta", "gamma", "delta"};

static void model_remove(struct model *m, int q, size_t i)
{
    memmove(&m->entries[q][i], &m->entries[q][i + 1], (m->count[q] - i - 1) * sizeof(m->entries[q][0]));
    m->count[q]--;
}

static void check_against_model(const struct model *m, const struct seen *seen)
{
    size_t total = 0;
    for (int q = 0; q < QUEUES; q++) {
        size_t k = 0;
        for (size_t i = 0; i < seen->nentries; i++) {
            if (strcmp(seen->entries[i].queue, queue_names[q]) != 0)
                continue;
            assert_true(k < m->count[q]);
            assert_int_equal(seen->entries[i].id, m->entries[q][k].id);
            assert_int_equal(seen->entries[i].delivered, m->entries[q][k].delivered);
            const struct seen_message *msg = seen_find(seen, seen->entries[i].id);
            assert_non_null(msg);
            char body[32];
            snprintf(body, sizeof(body), "body-%llu", (unsigned long long)msg->id);
            assert_int_equal(msg->len, strlen(body));
            assert_memory_equal(msg->data, body, msg->len);
            k++;
        }
        assert_int_equal(k, m->count[q]);
        total += k;
    }
    assert_int_equal(seen->nentries, total);
    for (size_t i = 1; i < seen->nmessages; i++) /* each once (log order: compaction moves some) */
        for (size_t j = 0; j < i; j++)
            assert_true(seen->messages[j].id != seen->messages[i].id);
}

static void random_workload_always_recovers_the_model(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    static struct model m;
    memset(&m, 0, sizeof(m));
    srand(12345);
    struct store *store = open_store(dir, 2048, NULL);
    uint64_t next_id = 1, batch = 0;
    int reopens = 0;
    for (int step = 0; step < 20000; step++) {
        int op = rand() % 100;
        int q = rand() % QUEUES;
        if (op < 35 && m.count[q] < 4000) {
            char body[32];
            uint64_t id = next_id++;
            snprintf(body, sizeof(body), "body-%llu", (unsigned long long)id);
            batch = put_msg(store, id, queue_names[q], body);
            m.entries[q][m.count[q]++] = (struct model_entry){id, false};
            int q2 = rand() % QUEUES;
            if (q2 != q && rand() % 4 == 0 && m.count[q2] < 4000) {
                store_put_enqueue(store, (const uint8_t *)queue_names[q2], strlen(queue_names[q2]), id);
                m.entries[q2][m.count[q2]++] = (struct model_entry){id, false};
            }
        } else if (op < 50 && m.count[q] > 0) {
            size_t i = (size_t)rand() % m.count[q];
            batch = put_deliver(store, m.entries[q][i].id, queue_names[q]);
            m.entries[q][i].delivered = true;
        } else if (op < 80 && m.count[q] > 0) {
            size_t i = rand() % 3 ? 0 : (size_t)rand() % m.count[q]; /* mostly FIFO */
            batch = put_ack(store, m.entries[q][i].id, queue_names[q]);
            model_remove(&m, q, i);
        } else if (op == 80) {
            batch = store_put_queue_deleted(store, (const uint8_t *)queue_names[q], strlen(queue_names[q]));
            m.count[q] = 0;
        } else if (op < 97) {
            if (batch)
                wait_batch(store, batch);
        } else if (op < 98 || step == 19999) {
            store_close(store);
            struct seen seen = {0};
            store = open_store(dir, 2048, &seen);
            check_against_model(&m, &seen);
            seen_free(&seen);
            batch = 0;
            reopens++;
        }
    }
    assert_true(reopens > 50);
    for (int q = 0; q < QUEUES; q++)
        for (size_t i = 0; i < m.count[q]; i++)
            batch = put_ack(store, m.entries[q][i].id, queue_names[q]);
    wait_batch(store, batch);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.live_messages, 0);
    assert_true(count_segments(dir) <= 2);
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 2048, &seen);
    assert_int_equal(seen.nmessages, 0);
    store_close(store);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dead_segments_are_deleted),
        cmocka_unit_test(cross_segment_ack_keeps_its_segment_until_the_message_segment_goes),
        cmocka_unit_test(queue_delete_and_deliver_records_keep_their_segments),
        cmocka_unit_test(a_fanned_out_message_lives_until_its_last_queue_acks),
        cmocka_unit_test(random_workload_always_recovers_the_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
