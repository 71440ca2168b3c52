/* tests/unit/storage/test_store.c: put/flush/poll round trips, what a reopen recovers
 * (messages, entry order, delivered flags, acks, deleted queues), group commit, the disk alarm,
 * the definitions blob and the CRC32C implementation. */
#include "helpers.h"

#include <pthread.h>
#include <semaphore.h>

#include "crc32c.h"

static void crc32c_matches_the_standard_vectors(void **state)
{
    (void)state;
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(crc32c(zeros, 32), 0x8A9136AAu);
    uint8_t buf[4099];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < 9; off++) /* unaligned starts and odd tails on both paths */
        assert_int_equal(crc32c(buf + off, sizeof(buf) - off - 5),
                         crc32c_software(0, buf + off, sizeof(buf) - off - 5));
    assert_int_equal(crc32c_extend(crc32c(buf, 100), buf + 100, 200), crc32c(buf, 300));
}

/* The hardware path runs three chains over blocks of 3 x 8192 and 3 x 256 bytes and joins them:
 * every length around those block edges, from every alignment, agrees with the table path. */
static void crc32c_three_chain_blocks_agree_with_the_table_path(void **state)
{
    (void)state;
    size_t cap = 2 * 3 * 8192 + 3 * 256 + 64;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < cap; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(x >> 56);
    }
    static const size_t edges[] = {0, 768, 1536, 24576, 2 * 24576, 24576 + 768};
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
        for (size_t around = 0; around < 20; around++) {
            if (edges[e] + around < 10)
                continue;
            size_t len = edges[e] + around - 10;
            for (size_t off = 0; off < 9 && off + len <= cap; off++)
                assert_int_equal(crc32c(buf + off, len), crc32c_software(0, buf + off, len));
        }
    for (size_t len = 0; len < 2100; len += 7) /* record-sized lengths, continued from a prefix */
        assert_int_equal(crc32c_extend(crc32c(buf, 13), buf + 13, len), crc32c_software(0, buf, 13 + len));
    free(buf);
}

static void batches_complete_in_order_and_signal_the_event_fd(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    assert_int_equal(store_durable_batch(store), 0);
    uint64_t b1 = put_msg(store, 1, "q", "one");
    assert_int_equal(b1, 1);
    store_flush(store);
    uint64_t b2 = put_msg(store, 2, "q", "two"); /* after a flush: the next batch */
    assert_int_equal(b2, 2);
    wait_batch(store, b2);
    assert_int_equal(store_durable_batch(store), 2);
    uint64_t first, last;
    int error;
    assert_false(store_take_failure(store, &first, &last, &error));
    store_flush(store); /* nothing pending: no new batch */
    assert_int_equal(put_ack(store, 1, "q"), 3);
    store_close(store);
    remove_tree(dir);
}

static void reopen_recovers_messages_entries_flags_and_forgets_acks(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    put_msg(store, 10, "a", "ten");
    put_msg(store, 11, "a", "eleven");
    put_msg(store, 12, "b", "twelve");
    assert_true(store_put_enqueue(store, (const uint8_t *)"c", 1, 11) > 0); /* fanout: a and c */
    put_msg(store, 13, "a", "thirteen");
    put_deliver(store, 11, "a");
    put_ack(store, 10, "a");
    put_msg(store, 14, "gone", "fourteen");
    put_msg(store, 15, "gone", "fifteen");
    assert_true(store_put_queue_deleted(store, (const uint8_t *)"gone", 4) > 0);
    uint64_t b = put_ack(store, 12, "nowhere"); /* matches no entry: ignored */
    wait_batch(store, b);
    store_close(store);

    struct seen seen = {0};
    store = open_store(dir, 0, &seen);
    assert_int_equal(store_max_message_id(store), 15);
    assert_int_equal(seen.nmessages, 3); /* 11 once although in two queues; 12; 13 */
    assert_int_equal(seen.messages[0].id, 11); /* log order */
    assert_int_equal(seen.messages[1].id, 12);
    assert_int_equal(seen.messages[2].id, 13);
    assert_memory_equal(seen.messages[0].data, "eleven", 6);
    assert_int_equal(seen.messages[2].len, 8);
    assert_int_equal(seen.nentries, 4);
    assert_string_equal(seen.entries[0].queue, "a");
    assert_int_equal(seen.entries[0].id, 11);
    assert_true(seen.entries[0].delivered);
    assert_string_equal(seen.entries[1].queue, "a");
    assert_int_equal(seen.entries[1].id, 13);
    assert_false(seen.entries[1].delivered);
    assert_string_equal(seen.entries[2].queue, "b");
    assert_string_equal(seen.entries[3].queue, "c");
    assert_int_equal(seen.entries[3].id, 11);
    assert_false(seen.entries[3].delivered);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.live_messages, 3);
    assert_int_equal(stats.corrupt_records, 0);
    assert_int_equal(stats.records_recovered, 17);
    seen_free(&seen);

    /* the reopened store appends after what it recovered */
    uint64_t b2 = put_ack(store, 11, "a");
    put_ack(store, 11, "c");
    put_msg(store, 16, "b", "sixteen");
    wait_batch(store, b2);
    store_close(store);
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 3);
    assert_int_equal(seen.messages[0].id, 12);
    assert_int_equal(seen.messages[1].id, 13);
    assert_int_equal(seen.messages[2].id, 16);
    assert_int_equal(seen.nentries, 3);
    assert_string_equal(seen.entries[0].queue, "a"); /* queues in first-enqueue order */
    assert_int_equal(seen.entries[0].id, 13);
    assert_int_equal(seen.entries[1].id, 12);
    assert_int_equal(seen.entries[2].id, 16);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void a_recreated_queue_keeps_only_its_new_entries(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    put_msg(store, 1, "q", "old");
    store_put_queue_deleted(store, (const uint8_t *)"q", 1);
    uint64_t b = put_msg(store, 2, "q", "new");
    wait_batch(store, b);
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 1);
    assert_int_equal(seen.messages[0].id, 2);
    assert_int_equal(seen.nentries, 1);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

/* Holds the first fdatasync of a batch until the test lets it go. */
struct gate {
    sem_t entered, release;
    _Atomic int held;
};

static int gated_sync(void *ctx, int fd)
{
    struct gate *g = ctx;
    if (g->held-- > 0) {
        sem_post(&g->entered);
        sem_wait(&g->release);
    }
    return fdatasync(fd);
}

static void many_puts_cost_one_sync_and_puts_during_a_flush_go_next(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct gate gate = {.held = 0};
    sem_init(&gate.entered, 0, 0);
    sem_init(&gate.release, 0, 0);
    struct store_io_hooks hooks = {.fdatasync = gated_sync, .ctx = &gate};
    struct store_options opts = {.dir = dir, .disk_free_limit = 1, .io = &hooks, .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    struct store_stats before, after;
    store_get_stats(store, &before);

    /* 100 publishers, 10 messages each, one loop pass: one batch, one sync */
    uint64_t batch = 0;
    for (uint64_t i = 1; i <= 1000; i++) {
        char q[16];
        snprintf(q, sizeof(q), "q%llu", (unsigned long long)(i % 100));
        uint64_t b = put_msg(store, i, q, "body");
        assert_true(batch == 0 || b == batch);
        batch = b;
    }
    wait_batch(store, batch);
    store_get_stats(store, &after);
    assert_int_equal(after.syncs - before.syncs, 1);

    /* while a batch is being synced, new puts form the next batch, which goes when it ends */
    gate.held = 1;
    uint64_t b1 = put_msg(store, 2001, "q", "x");
    store_flush(store);
    sem_wait(&gate.entered);
    uint64_t b2 = 0;
    for (uint64_t i = 2002; i < 2100; i++)
        b2 = put_msg(store, i, "q", "y");
    assert_int_equal(b2, b1 + 1);
    store_flush(store); /* busy: remembered */
    assert_true(store_durable_batch(store) < b1);
    sem_post(&gate.release);
    wait_batch(store, b2);
    store_get_stats(store, &after);
    assert_int_equal(after.syncs - before.syncs, 3);
    store_close(store);
    sem_destroy(&gate.entered);
    sem_destroy(&gate.release);

    struct seen seen = {0};
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 1000 + 99);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void close_flushes_what_is_pending(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    put_msg(store, 7, "q", "unflushed");
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 1);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void disk_alarm_follows_the_free_space_limit(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store_options opts = {.dir = dir, .disk_free_limit = UINT64_MAX / 2};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    assert_true(store_disk_alarm(store));
    store_close(store);
    opts.disk_free_limit = 1;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    assert_false(store_disk_alarm(store));
    store_close(store);
    remove_tree(dir);
}

static void definitions_are_replaced_atomically_and_checked(void **state)
{
    (void)state;
    char dir[64], path[128], tmp[128];
    make_scratch(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/definitions", dir);
    snprintf(tmp, sizeof(tmp), "%s/definitions.tmp", dir);
    struct store *store = open_store(dir, 0, NULL);
    uint8_t *data = (uint8_t *)"x";
    size_t len = 99;
    assert_int_equal(store_load_definitions(store, &data, &len), 0);
    assert_null(data);
    assert_int_equal(len, 0);

    assert_int_equal(store_save_definitions(store, (const uint8_t *)"first version", 13), 0);
    assert_int_equal(store_save_definitions(store, (const uint8_t *)"second", 6), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(store_load_definitions(store, &data, &len), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(data, "second", 6);
    free(data);

    /* a crash between writing the temp file and the rename leaves the old blob in force */
    FILE *f = fopen(tmp, "w");
    fputs("half-written", f);
    fclose(f);
    store_close(store);
    store = open_store(dir, 0, NULL);
    assert_int_equal(store_load_definitions(store, &data, &len), 0);
    assert_memory_equal(data, "second", 6);
    free(data);

    /* one flipped bit in the data, then a cut file: both detected */
    int fd = open(path, O_RDWR);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 34), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, 34), 1);
    assert_int_equal(store_load_definitions(store, &data, &len), -EBADMSG);
    assert_null(data);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, 34), 1);
    assert_int_equal(store_load_definitions(store, &data, &len), 0);
    free(data);
    assert_int_equal(ftruncate(fd, 35), 0);
    assert_int_equal(store_load_definitions(store, &data, &len), -EBADMSG);
    assert_int_equal(ftruncate(fd, 10), 0);
    assert_int_equal(store_load_definitions(store, &data, &len), -EBADMSG);
    close(fd);

    assert_int_equal(store_save_definitions(store, NULL, 0), 0); /* empty blob is valid */
    assert_int_equal(store_load_definitions(store, &data, &len), 0);
    assert_int_equal(len, 0);
    free(data);
    store_close(store);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_matches_the_standard_vectors),
        cmocka_unit_test(crc32c_three_chain_blocks_agree_with_the_table_path),
        cmocka_unit_test(batches_complete_in_order_and_signal_the_event_fd),
        cmocka_unit_test(reopen_recovers_messages_entries_flags_and_forgets_acks),
        cmocka_unit_test(a_recreated_queue_keeps_only_its_new_entries),
        cmocka_unit_test(many_puts_cost_one_sync_and_puts_during_a_flush_go_next),
        cmocka_unit_test(close_flushes_what_is_pending),
        cmocka_unit_test(disk_alarm_follows_the_free_space_limit),
        cmocka_unit_test(definitions_are_replaced_atomically_and_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
