/* tests/unit/storage/test_compact.c: compaction of sparse segments (index.h, Compaction). One
 * message that is never acked, in a busy work queue whose messages are acked a batch later,
 * used to keep every segment forever: now the segment count stays bounded and the message keeps
 * its body, delivered flag and place. Also: a fanned-out message acked from one queue comes back
 * in the other only; a crash in the middle of the compaction write, after it (the source still
 * there) and after the source's deletion all recover the same queues, and the copies left by
 * the first two never come back to life, nor do copies found in the middle of the log; a corrupt
 * record keeps its segment; a failed compaction write is cut off and the store goes on. */
#include "helpers.h"

#include <stdatomic.h>

#include "segment_log.h"

#define SEGMENT_BYTES (64 * 1024)
#define BODY_BYTES 600
#define PER_BATCH 10

/* Crash points, taken by the I/O hooks: copies of the store directory at the moment the
 * compaction batch that copies message `watched` is half written, and once it is synced. */
struct crash {
    _Atomic bool armed;        /* the next write starting with MESSAGE(watched) is a compaction */
    uint64_t watched;
    const char *dir;
    char torn[64], synced[64]; /* snapshot directories ("" when not wanted) */
    bool sync_pending;
    _Atomic int fail_compaction; /* fail that many compaction writes with ENOSPC instead */
    _Atomic int compaction_writes, failed;
    int failed_fd;
    off_t failed_offset, next_offset;
    _Atomic bool watch_next;   /* record where the next write to failed_fd goes */
};

static void copy_dir(const char *from, const char *to) { copy_files(from, to, NULL); }

/* True when buf starts with the MESSAGE record of id. */
static bool starts_with_message(const void *buf, size_t len, uint64_t id)
{
    struct rec r;
    return rec_parse(buf, len, false, &r) > 0 && r.type == REC_MESSAGE && r.msg_id == id;
}

static ssize_t crash_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct crash *c = ctx;
    if (c->watch_next && fd == c->failed_fd) {
        c->next_offset = off;
        c->watch_next = false;
    }
    if (!c->armed || !starts_with_message(buf, len, c->watched) || !fd_is_segment(fd))
        return pwrite(fd, buf, len, off);
    c->compaction_writes++;
    if (c->fail_compaction > 0) {
        c->fail_compaction--;
        c->failed++;
        c->failed_fd = fd;
        c->failed_offset = off;
        c->watch_next = true;
        ssize_t n = pwrite(fd, buf, len / 2, off); /* half of it lands, as on a full disk */
        (void)n;
        errno = ENOSPC;
        return -1;
    }
    c->armed = false;
    c->sync_pending = c->synced[0] != '\0';
    if (c->torn[0] == '\0')
        return pwrite(fd, buf, len, off);
    ssize_t n = pwrite(fd, buf, len / 2, off); /* the rest follows: seg_pwrite_all loops */
    copy_dir(c->dir, c->torn);
    return n;
}

static int crash_fdatasync(void *ctx, int fd)
{
    struct crash *c = ctx;
    int rc = fdatasync(fd);
    if (rc == 0 && c->sync_pending) {
        c->sync_pending = false;
        copy_dir(c->dir, c->synced);
    }
    return rc;
}

static struct store *open_hooked(const char *dir, struct store_io_hooks *hooks, struct crash *c, struct seen *seen)
{
    *hooks = (struct store_io_hooks){.pwrite = crash_pwrite, .fdatasync = crash_fdatasync, .ctx = c};
    struct store_options opts = {.dir = dir, .segment_bytes = SEGMENT_BYTES, .disk_free_limit = 1, .io = hooks,
                                 .log = quiet_log};
    struct store_recovery rec = {.message = seen_message, .entry = seen_entry, .ctx = seen};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, seen ? &rec : NULL, &store), 0);
    return store;
}

/* A busy work queue: `batches` batches of PER_BATCH messages in queue "work", each batch also
 * acking the previous one's. Returns the largest segment count seen after a batch. */
struct workload {
    uint64_t next_id;
    uint64_t previous[PER_BATCH];
    size_t nprevious;
};

static int run_work_queue(struct store *store, const char *dir, struct workload *w, int batches)
{
    static uint8_t body[BODY_BYTES];
    memset(body, 'w', sizeof(body));
    int most = 0;
    for (int b = 0; b < batches; b++) {
        uint64_t batch = 0;
        for (size_t i = 0; i < w->nprevious; i++)
            put_ack(store, w->previous[i], "work");
        for (size_t i = 0; i < PER_BATCH; i++) {
            uint64_t id = w->next_id++;
            assert_true(store_put_message(store, id, body, sizeof(body)) > 0);
            batch = store_put_enqueue(store, (const uint8_t *)"work", 4, id);
            w->previous[i] = id;
        }
        w->nprevious = PER_BATCH;
        wait_batch(store, batch);
        int n = count_segments(dir);
        if (n > most)
            most = n;
    }
    return most;
}

/* Acks what the work queue still holds. */
static void drain_work_queue(struct store *store, struct workload *w)
{
    uint64_t batch = 0;
    for (size_t i = 0; i < w->nprevious; i++)
        batch = put_ack(store, w->previous[i], "work");
    w->nprevious = 0;
    if (batch)
        wait_batch(store, batch);
}

/* The ids of queue's entries in recovery's report, with their delivered flags. */
static size_t entries_of(const struct seen *seen, const char *queue, uint64_t *ids, bool *delivered, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < seen->nentries; i++)
        if (strcmp(seen->entries[i].queue, queue) == 0) {
            assert_true(n < cap);
            ids[n] = seen->entries[i].id;
            delivered[n++] = seen->entries[i].delivered;
        }
    return n;
}

static void assert_body(const struct seen *seen, uint64_t id, const char *body)
{
    const struct seen_message *m = seen_find(seen, id);
    assert_non_null(m);
    assert_int_equal(m->len, strlen(body));
    assert_memory_equal(m->data, body, m->len);
}

static void chain_of_segments_stays_bounded(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, SEGMENT_BYTES, NULL);
    put_msg(store, 1, "A", "the one nobody consumes");
    wait_batch(store, put_deliver(store, 1, "A")); /* delivered once, never acked */
    struct workload w = {.next_id = 2};
    int most = run_work_queue(store, dir, &w, 250);
    uint64_t later = w.next_id++;
    put_msg(store, later, "A", "published later");
    int more = run_work_queue(store, dir, &w, 750);
    if (more > most)
        most = more;
    fprintf(stderr, "chain: %llu messages, at most %d segments, %d at the end\n",
            (unsigned long long)w.next_id - 1, most, count_segments(dir));
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_true(stats.compactions > 0);
    assert_true(stats.bytes_compacted > 0);
    assert_true(count_segments(dir) <= 6);
    assert_true(most <= 6);
    assert_true(w.next_id > 10000); /* about 150 segments' worth went through */
    drain_work_queue(store, &w);
    store_close(store);

    struct seen seen = {0};
    store = open_store(dir, SEGMENT_BYTES, &seen);
    uint64_t ids[8];
    bool delivered[8];
    assert_int_equal(entries_of(&seen, "A", ids, delivered, 8), 2);
    assert_int_equal(ids[0], 1); /* still first */
    assert_true(delivered[0]);
    assert_int_equal(ids[1], later);
    assert_false(delivered[1]);
    assert_body(&seen, 1, "the one nobody consumes");
    assert_body(&seen, later, "published later");
    assert_int_equal(seen.nentries, 2);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void a_fanned_out_message_acked_from_one_queue_comes_back_in_the_other(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, SEGMENT_BYTES, NULL);
    put_msg(store, 1, "A", "fanned out");
    store_put_enqueue(store, (const uint8_t *)"B", 1, 1);
    put_deliver(store, 1, "B");
    wait_batch(store, put_deliver(store, 1, "A"));
    struct workload w = {.next_id = 2};
    run_work_queue(store, dir, &w, 5);
    wait_batch(store, put_ack(store, 1, "B")); /* before any compaction */
    run_work_queue(store, dir, &w, 300);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_true(stats.compactions > 0);
    assert_true(count_segments(dir) <= 6);
    drain_work_queue(store, &w);
    store_close(store);

    struct seen seen = {0};
    store = open_store(dir, SEGMENT_BYTES, &seen);
    assert_int_equal(seen.nentries, 1);
    assert_string_equal(seen.entries[0].queue, "A");
    assert_int_equal(seen.entries[0].id, 1);
    assert_true(seen.entries[0].delivered);
    assert_body(&seen, 1, "fanned out");
    seen_free(&seen);
    wait_batch(store, put_ack(store, 1, "A"));
    store_close(store);
    store = open_store(dir, SEGMENT_BYTES, &seen);
    assert_int_equal(seen.nentries, 0);
    assert_int_equal(seen.nmessages, 0);
    store_close(store);
    remove_tree(dir);
}

/* Queue A as recovered from dir: ids 1, 3, 5 with bodies, 1 and 5 delivered. torn: the log ends
 * with a torn record (counted as corrupt). */
static void assert_recovers_queue_a(const char *dir, bool torn)
{
    struct seen seen = {0};
    struct store *store = open_store(dir, SEGMENT_BYTES, &seen);
    uint64_t ids[8];
    bool delivered[8];
    assert_int_equal(entries_of(&seen, "A", ids, delivered, 8), 3);
    uint64_t want[3] = {1, 3, 5};
    bool want_delivered[3] = {true, false, true};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ids[i], want[i]);
        assert_int_equal(delivered[i], want_delivered[i]);
        char body[32];
        snprintf(body, sizeof(body), "kept %llu", (unsigned long long)want[i]);
        assert_body(&seen, want[i], body);
    }
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, torn ? 1 : 0);
    seen_free(&seen);
    store_close(store);
}

/* Messages [from, from + n) of 1500 bytes into queue, acked in the same batch when ack, and waits
 * for the batch. */
static void put_filler(struct store *store, uint64_t from, int n, const char *queue, bool ack)
{
    static uint8_t body[1500];
    memset(body, 'f', sizeof(body));
    uint64_t batch = 0;
    for (uint64_t id = from; id < from + (uint64_t)n; id++) {
        assert_true(store_put_message(store, id, body, sizeof(body)) > 0);
        batch = store_put_enqueue(store, (const uint8_t *)queue, strlen(queue), id);
        if (ack)
            put_ack(store, id, queue);
    }
    wait_batch(store, batch);
}

/* After recovery from a crash point, the worst case for a copy the crash left behind: the rest
 * of its segment filled with messages that stay (so that segment outlives the ones after it),
 * the queues' messages moved on to the next segment by a compaction and acked there, that
 * segment deleted. Then no copy may come back to life. */
static void assert_no_resurrection(const char *dir)
{
    struct seen seen = {0};
    struct store *store = open_store(dir, SEGMENT_BYTES, &seen);
    for (size_t i = 0; i < seen.nentries; i++) /* the work queue as the crash left it */
        if (strcmp(seen.entries[i].queue, "work") == 0)
            put_ack(store, seen.entries[i].id, "work");
    seen_free(&seen);
    put_filler(store, 2000000, 42, "keep", false); /* the newest segment is full: no compaction */
    put_filler(store, 3000000, 1, "self", true);   /* a new segment; then A moves into it */
    put_ack(store, 1, "A");
    put_ack(store, 3, "A");
    wait_batch(store, put_ack(store, 5, "A"));
    put_filler(store, 3000001, 42, "self", true); /* fills that segment */
    put_filler(store, 4000000, 1, "self", true);  /* the next one: the filled one goes */
    store_close(store);
    store = open_store(dir, SEGMENT_BYTES, &seen);
    assert_int_equal(seen.nentries, 42); /* "keep" only */
    for (size_t i = 0; i < seen.nentries; i++)
        assert_string_equal(seen.entries[i].queue, "keep");
    seen_free(&seen);
    store_close(store);
}

/* Appends a self-contained batch (a message, its enqueue and ack) to dir's newest segment, as a
 * store that went on writing after its compaction would have. */
static void append_record_to_newest(const char *dir)
{
    uint64_t newest = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (seg_parse_name(de->d_name, &id) && id > newest)
            newest = id;
    }
    closedir(d);
    struct rec_buf buf = {0};
    assert_int_equal(rec_append(&buf, REC_MESSAGE, 5000000, NULL, 0, (const uint8_t *)"x", 1), 0);
    assert_int_equal(rec_append(&buf, REC_ENQUEUE, 5000000, (const uint8_t *)"self", 4, NULL, 0), 0);
    assert_int_equal(rec_append(&buf, REC_ACK, 5000000, (const uint8_t *)"self", 4, NULL, 0), 0);
    rec_seal_all(buf.data, buf.len);
    char path[4096];
    segment_file(path, sizeof(path), dir, newest);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf.data, buf.len), (ssize_t)buf.len);
    close(fd);
    free(buf.data);
}

static void a_crash_at_any_point_of_a_compaction_recovers_the_same_queues(void **state)
{
    (void)state;
    static struct crash c;
    memset(&c, 0, sizeof(c));
    char dir[64];
    make_scratch(dir, sizeof(dir));
    make_scratch(c.torn, sizeof(c.torn));
    make_scratch(c.synced, sizeof(c.synced));
    c.dir = dir;
    c.watched = 1;
    struct store_io_hooks hooks;
    struct store *store = open_hooked(dir, &hooks, &c, NULL);
    put_msg(store, 1, "A", "kept 1");
    put_msg(store, 2, "A", "acked 2");
    put_msg(store, 3, "A", "kept 3");
    put_msg(store, 4, "A", "acked 4");
    put_msg(store, 5, "A", "kept 5");
    put_deliver(store, 1, "A");
    wait_batch(store, put_deliver(store, 5, "A"));
    struct workload w = {.next_id = 6};
    run_work_queue(store, dir, &w, 3);
    put_ack(store, 2, "A");
    wait_batch(store, put_ack(store, 4, "A"));
    c.armed = true;
    run_work_queue(store, dir, &w, 300);
    assert_false(c.armed); /* the compaction of segment 1 happened */
    assert_false(segment_exists(dir, 1));
    drain_work_queue(store, &w);
    store_close(store);

    assert_true(segment_exists(c.torn, 1));
    assert_true(segment_exists(c.synced, 1));
    char middle[64];
    make_scratch(middle, sizeof(middle));
    copy_dir(c.synced, middle);
    append_record_to_newest(middle);
    log_lines = 0;
    assert_recovers_queue_a(c.torn, true);
    assert_int_equal(log_lines, 2); /* the torn record, then the copies before it cut off */
    assert_recovers_queue_a(c.synced, false);
    assert_int_equal(log_lines, 3); /* the copies cut off */
    assert_recovers_queue_a(dir, false);
    assert_int_equal(log_lines, 3);
    assert_no_resurrection(c.torn);
    assert_no_resurrection(c.synced);
    assert_no_resurrection(dir);

    /* copies in the middle of the log (a failed directory fsync, then a crash that brought the
     * source back): the source is kept, so they never come to life */
    log_lines = 0;
    assert_recovers_queue_a(middle, false);
    assert_int_equal(log_lines, 1); /* "copies ... while that segment still exists" */
    assert_no_resurrection(middle);
    assert_true(segment_exists(middle, 1));
    remove_tree(middle);
    remove_tree(dir);
    remove_tree(c.torn);
    remove_tree(c.synced);
}

static void a_corrupt_record_keeps_its_segment(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, SEGMENT_BYTES, NULL);
    wait_batch(store, put_msg(store, 1, "A", "about to rot"));
    segment_file(path, sizeof(path), dir, 1);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    /* segment header, record header, type, id: then the data */
    assert_int_equal(pwrite(fd, "R", 1, SEG_HEADER_SIZE + REC_HEADER_SIZE + 1 + 8), 1);
    close(fd);
    log_lines = 0;
    struct workload w = {.next_id = 2};
    run_work_queue(store, dir, &w, 150);
    assert_true(log_lines > 0); /* the bad record was reported */
    assert_true(segment_exists(dir, 1));
    wait_batch(store, put_msg(store, w.next_id++, "A", "fine"));
    drain_work_queue(store, &w);
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, SEGMENT_BYTES, &seen);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 1);
    assert_true(segment_exists(dir, 1));
    assert_int_equal(seen.nentries, 1); /* the rotten message is lost, the later one is not */
    assert_int_equal(seen.entries[0].id, w.next_id - 1);
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

static void a_failed_compaction_write_is_cut_off_and_the_store_goes_on(void **state)
{
    (void)state;
    static struct crash c;
    memset(&c, 0, sizeof(c));
    char dir[64];
    make_scratch(dir, sizeof(dir));
    c.dir = dir;
    c.watched = 1;
    c.fail_compaction = 1;
    struct store_io_hooks hooks;
    struct store *store = open_hooked(dir, &hooks, &c, NULL);
    put_msg(store, 1, "A", "kept 1");
    wait_batch(store, put_deliver(store, 1, "A"));
    c.armed = true;
    struct workload w = {.next_id = 2};
    while (c.failed == 0 && w.next_id < 100000)
        run_work_queue(store, dir, &w, 1);
    assert_int_equal(c.failed, 1);
    run_work_queue(store, dir, &w, 1);
    assert_int_equal(c.next_offset, c.failed_offset); /* cut back: the next write goes there */
    uint64_t first, last;
    int error;
    assert_false(store_take_failure(store, &first, &last, &error)); /* no caller batch failed */
    run_work_queue(store, dir, &w, 300);
    assert_false(c.armed); /* compaction went on after a roll */
    assert_true(count_segments(dir) <= 6);
    drain_work_queue(store, &w);
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, SEGMENT_BYTES, &seen);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 0);
    assert_int_equal(seen.nentries, 1);
    assert_int_equal(seen.entries[0].id, 1);
    assert_true(seen.entries[0].delivered);
    assert_body(&seen, 1, "kept 1");
    seen_free(&seen);
    store_close(store);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_of_segments_stays_bounded),
        cmocka_unit_test(a_fanned_out_message_acked_from_one_queue_comes_back_in_the_other),
        cmocka_unit_test(a_crash_at_any_point_of_a_compaction_recovers_the_same_queues),
        cmocka_unit_test(a_corrupt_record_keeps_its_segment),
        cmocka_unit_test(a_failed_compaction_write_is_cut_off_and_the_store_goes_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
