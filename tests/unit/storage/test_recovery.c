/* tests/unit/storage/test_recovery.c: what recovery does with damage: a torn tail cut at every
 * byte of the last batch (the rest recovered, the file truncated, appends working after), zeroed
 * tails, a corrupt record in the middle of the newest and of an older segment (skipped, the rest
 * recovered, nothing truncated), a damaged header and a half-created newest segment. */
#include "helpers.h"

#include "recovery.h"
#include "segment_log.h"

static void copy_file(const char *from, const char *to, off_t keep)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(in >= 0 && out >= 0);
    uint8_t buf[65536];
    off_t done = 0;
    while (done < keep) {
        size_t want = (size_t)(keep - done) < sizeof(buf) ? (size_t)(keep - done) : sizeof(buf);
        ssize_t n = read(in, buf, want);
        assert_true(n > 0);
        assert_int_equal(write(out, buf, (size_t)n), n);
        done += n;
    }
    close(in);
    close(out);
}

static void write_byte(const char *path, off_t off, uint8_t value)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &value, 1, off), 1);
    close(fd);
}

static uint8_t read_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDONLY);
    uint8_t value = 0;
    assert_int_equal(pread(fd, &value, 1, off), 1);
    close(fd);
    return value;
}

/* Builds a store whose only segment holds messages 1 and 2 (one batch) then message 3 (the
 * last batch: a MESSAGE then an ENQUEUE record). Returns the size before the last batch and,
 * in *message_end, the offset where message 3's MESSAGE record ends. */
static off_t build_three(const char *dir, off_t *message_end, off_t *full)
{
    struct store *store = open_store(dir, 0, NULL);
    put_msg(store, 1, "q", "first message");
    wait_batch(store, put_msg(store, 2, "q", "second message"));
    store_close(store);
    char path[4096];
    segment_file(path, sizeof(path), dir, 1);
    off_t before = file_size(path);
    store = open_store(dir, 0, NULL);
    wait_batch(store, put_msg(store, 3, "q", "third message"));
    store_close(store);
    *full = file_size(path);
    *message_end = before + REC_HEADER_SIZE + 1 + 8 + 13;
    return before;
}

static void check_recovered(const char *dir, size_t expect_messages, off_t expect_size)
{
    struct seen seen = {0};
    struct store *store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, expect_messages);
    assert_int_equal(seen.nentries, expect_messages);
    for (size_t i = 0; i < seen.nmessages; i++)
        assert_int_equal(seen.messages[i].id, i + 1);
    char path[4096];
    segment_file(path, sizeof(path), dir, 1);
    assert_int_equal(file_size(path), expect_size);
    /* appending after a cut tail works and survives another reopen */
    wait_batch(store, put_msg(store, 100, "q", "after repair"));
    store_close(store);
    seen_free(&seen);
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, expect_messages + 1);
    assert_int_equal(seen.messages[expect_messages].id, 100);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 0);
    seen_free(&seen);
    store_close(store);
}

static void torn_tail_at_every_byte_of_the_last_batch_is_cut(void **state)
{
    (void)state;
    char dir[64], master[4096], path[4096];
    make_scratch(dir, sizeof(dir));
    off_t message_end, full;
    off_t before = build_three(dir, &message_end, &full);
    segment_file(path, sizeof(path), dir, 1);
    snprintf(master, sizeof(master), "%s/master.copy", dir);
    copy_file(path, master, full);
    for (off_t cut = before; cut <= full; cut++) {
        copy_file(master, path, cut);
        /* message 3 counts only with its enqueue; a complete MESSAGE record alone is kept */
        off_t valid = cut == full ? full : cut >= message_end ? message_end : before;
        log_lines = 0;
        check_recovered(dir, cut == full ? 3 : 2, valid);
        assert_int_equal(log_lines > 0, cut != before && cut != message_end && cut != full);
    }
    remove_tree(dir);
}

static void zero_filled_tail_is_cut(void **state)
{
    (void)state;
    char dir[64], master[4096], path[4096];
    make_scratch(dir, sizeof(dir));
    off_t message_end, full;
    off_t before = build_three(dir, &message_end, &full);
    segment_file(path, sizeof(path), dir, 1);
    snprintf(master, sizeof(master), "%s/master.copy", dir);
    copy_file(path, master, full);
    for (off_t cut = before; cut < full; cut += 3) {
        copy_file(master, path, full); /* file size made it to disk, the last pages did not */
        for (off_t off = cut; off < full + 64; off++)
            write_byte(path, off, 0);
        check_recovered(dir, 2, cut >= message_end ? message_end : before);
    }
    remove_tree(dir);
}

static void corrupt_record_in_the_middle_is_skipped(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    const char *body = "a message body of some length";
    for (uint64_t id = 1; id <= 5; id++)
        put_msg(store, id, "q", body);
    wait_batch(store, 1);
    store_close(store);
    segment_file(path, sizeof(path), dir, 1);
    off_t size = file_size(path);
    /* message 3's MESSAGE record: header, then 2 x (MESSAGE + ENQUEUE) */
    off_t message = REC_HEADER_SIZE + 1 + 8 + (off_t)strlen(body), enqueue = REC_HEADER_SIZE + 1 + 8 + 4 + 1;
    off_t third = SEG_HEADER_SIZE + 2 * (message + enqueue);
    for (int field = 0; field < 3; field++) {
        off_t at = third + (field == 0 ? 0 : field == 1 ? 4 : 20); /* length, crc, body */
        uint8_t original = read_byte(path, at);
        write_byte(path, at, original ^ 0x41);
        struct seen seen = {0};
        log_lines = 0;
        store = open_store(dir, 0, &seen);
        assert_true(log_lines > 0);
        assert_int_equal(seen.nmessages, 4);
        assert_null(seen_find(&seen, 3));
        assert_non_null(seen_find(&seen, 5));
        assert_int_equal(seen.nentries, 4); /* message 3's enqueue refers to nothing now */
        struct store_stats stats;
        store_get_stats(store, &stats);
        assert_true(stats.corrupt_records >= 1);
        store_close(store);
        assert_int_equal(file_size(path), size); /* nothing truncated */
        seen_free(&seen);
        write_byte(path, at, original);
    }
    remove_tree(dir);
}

static void corrupt_record_in_an_older_segment_is_skipped(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL); /* every batch in its own segment */
    wait_batch(store, put_msg(store, 1, "q", "one"));
    put_msg(store, 2, "q", "two");
    wait_batch(store, put_msg(store, 3, "q", "three"));
    wait_batch(store, put_msg(store, 4, "q", "four"));
    store_close(store);
    segment_file(path, sizeof(path), dir, 2);
    off_t size = file_size(path);
    write_byte(path, SEG_HEADER_SIZE + 12, 0xff); /* inside message 2's record */
    write_byte(path, size - 1, read_byte(path, size - 1) ^ 1); /* message 3's enqueue: the tail */
    struct seen seen = {0};
    store = open_store(dir, 1, &seen);
    assert_int_equal(seen.nmessages, 2);
    assert_non_null(seen_find(&seen, 1));
    assert_non_null(seen_find(&seen, 4));
    store_close(store);
    assert_int_equal(file_size(path), size); /* only the newest segment is ever cut */
    seen_free(&seen);
    remove_tree(dir);
}

static void damaged_header_still_yields_its_records(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    wait_batch(store, put_msg(store, 1, "q", "one"));
    store_close(store);
    segment_file(path, sizeof(path), dir, 1);
    write_byte(path, 2, 'x');
    struct seen seen = {0};
    log_lines = 0;
    store = open_store(dir, 0, &seen);
    assert_true(log_lines > 0);
    assert_int_equal(seen.nmessages, 1);
    store_close(store);
    seen_free(&seen);
    remove_tree(dir);
}

static void half_created_newest_segment_gets_a_header(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    wait_batch(store, put_msg(store, 1, "q", "one"));
    store_close(store);
    segment_file(path, sizeof(path), dir, 2);
    int fd = open(path, O_WRONLY | O_CREAT, 0644); /* a crash right after creating segment 2 */
    assert_int_equal(write(fd, "WRN", 3), 3);
    close(fd);
    struct seen seen = {0};
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 1);
    assert_int_equal(file_size(path), SEG_HEADER_SIZE);
    wait_batch(store, put_msg(store, 2, "q", "two"));
    store_close(store);
    seen_free(&seen);
    store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, 2);
    assert_int_equal(store_max_message_id(store), 2);
    store_close(store);
    seen_free(&seen);
    remove_tree(dir);
}

/* Bodies for the read-window test: lengths that make records straddle the 1 MiB window edges,
 * and message 40 larger than a window. */
static size_t window_body_length(uint64_t id)
{
    return id == 40 ? (3u << 20) + 17 : 4000 + (size_t)((id * 2654435761u) % 90001);
}

static void window_body(uint8_t *buf, size_t len, uint64_t id)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 131 + i * 7 + (i >> 11));
}

/* Recovery reads segments through a 1 MiB window: records straddling its edges and one larger
 * than it come back intact; a corrupt record well past the first window is skipped as before,
 * with its neighbours kept, and a torn tail past it is still cut. */
static void records_straddling_read_windows_recover_intact_and_damage_past_one_is_handled(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    uint8_t *body = malloc(window_body_length(40));
    assert_non_null(body);
    off_t offsets[81], at = SEG_HEADER_SIZE; /* where each MESSAGE record starts */
    for (uint64_t id = 1; id <= 80; id++) {
        size_t len = window_body_length(id);
        window_body(body, len, id);
        offsets[id] = at;
        assert_true(store_put_message(store, id, body, len) > 0);
        wait_batch(store, store_put_enqueue(store, (const uint8_t *)"q", 1, id));
        at += REC_HEADER_SIZE + 1 + 8 + (off_t)len + REC_HEADER_SIZE + 1 + 8 + 4 + 1;
    }
    store_close(store);
    segment_file(path, sizeof(path), dir, 1);
    assert_int_equal(file_size(path), at); /* one segment, laid out as computed */

    for (int round = 0; round < 3; round++) {
        /* round 1: message 50's body damaged; round 2: also a torn tail in message 80's record */
        struct seen seen = {0};
        log_lines = 0;
        store = open_store(dir, 0, &seen);
        assert_int_equal(seen.nmessages, round == 0 ? 80 : round == 1 ? 79 : 78);
        assert_int_equal(log_lines > 0, round > 0);
        for (uint64_t id = 1; id <= 80; id++) {
            const struct seen_message *m = seen_find(&seen, id);
            if ((round >= 1 && id == 50) || (round == 2 && id == 80)) {
                assert_null(m);
                continue;
            }
            assert_non_null(m);
            size_t len = window_body_length(id);
            assert_int_equal(m->len, len);
            window_body(body, len, id);
            assert_memory_equal(m->data, body, len);
        }
        seen_free(&seen);
        store_close(store);
        /* the same replay on its own: the window walked every segment it could judge whole */
        struct index idx;
        struct recovery_result found;
        struct storage_logger logger = {.log = quiet_log};
        assert_int_equal(index_init(&idx), 0);
        assert_int_equal(recovery_run(NULL, dir, &idx, NULL, &logger, &found), 0);
        assert_int_equal(found.mapped, round == 0 ? 0 : 1);
        assert_int_equal(found.records, round == 0 ? 160 : round == 1 ? 159 : 157);
        index_free(&idx);
        if (round == 0) {
            off_t damaged = offsets[50] + REC_HEADER_SIZE + 1 + 8 + 100;
            assert_true(damaged > (off_t)(2u << 20));
            write_byte(path, damaged, read_byte(path, damaged) ^ 0x41);
        } else if (round == 1) {
            assert_int_equal(truncate(path, offsets[80] + 5000), 0);
        }
    }
    assert_int_equal(file_size(path), offsets[80]); /* the torn tail was cut */
    free(body);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(torn_tail_at_every_byte_of_the_last_batch_is_cut),
        cmocka_unit_test(zero_filled_tail_is_cut),
        cmocka_unit_test(corrupt_record_in_the_middle_is_skipped),
        cmocka_unit_test(corrupt_record_in_an_older_segment_is_skipped),
        cmocka_unit_test(damaged_header_still_yields_its_records),
        cmocka_unit_test(half_created_newest_segment_gets_a_header),
        cmocka_unit_test(records_straddling_read_windows_recover_intact_and_damage_past_one_is_handled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
