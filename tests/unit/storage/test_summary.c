/* tests/unit/storage/test_summary.c: segment summaries (segment_summary.h). A start that replays
 * sealed segments from their summaries recovers exactly what a start reading every segment does,
 * on a log with fan-out, deliveries, acks, a purge, a deleted queue and compactions; a summary
 * that fails any check (every header byte, body bytes, its length, records that do not tile the
 * segment though their CRCs are right) is ignored with a warning and the segment read instead;
 * stale summaries are deleted at start; damage in a summarized segment found when a queue reads
 * it back deletes the summary, so that the next start reads the segment and reports it. */
#include "helpers.h"

#include "segment_log.h"
#include "segment_summary.h"

#define SEGMENT_BYTES (64u * 1024)
#define BODY 1000

static bool is_summary(const char *name)
{
    uint64_t id;
    return summary_parse_name(name, &id);
}

static void copy_tree(const char *from, const char *to, bool summaries)
{
    copy_files(from, to, summaries ? NULL : is_summary);
}

static int count_summaries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    uint64_t id;
    while ((de = readdir(d)) != NULL)
        n += summary_parse_name(de->d_name, &id);
    closedir(d);
    return n;
}

static void body_of(uint8_t *out, uint64_t id)
{
    for (size_t i = 0; i < BODY; i++)
        out[i] = (uint8_t)(id * 31 + i);
}

/* A log of many segments: queues "a" and "b" (every ninth message in both), deliveries, acks
 * of most of "a" in later batches (so old segments go and compaction moves the rest), a purge of
 * "b" past some id, a queue "gone" deleted, and a queue that stays whole. */
static void build_log(const char *dir)
{
    struct store_options opts = {.dir = dir, .segment_bytes = SEGMENT_BYTES, .disk_free_limit = 1, .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    uint8_t body[BODY];
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 3000; id++) {
        body_of(body, id);
        assert_true(store_put_message(store, id, body, sizeof(body)) > 0);
        batch = put_ack(store, id, "none"); /* names no entry: changes nothing */
        batch = store_put_enqueue(store, (const uint8_t *)"a", 1, id);
        if (id % 9 == 0)
            batch = store_put_enqueue(store, (const uint8_t *)"b", 1, id);
        if (id % 13 == 0)
            batch = store_put_enqueue(store, (const uint8_t *)"gone", 4, id);
        if (id % 50 == 0)
            batch = store_put_enqueue(store, (const uint8_t *)"whole", 5, id);
        if (id % 5 == 0)
            batch = put_deliver(store, id, "a");
        if (id > 40 && id % 97 != 0)
            batch = put_ack(store, id - 40, "a");
        if (id % 20 == 0)
            wait_batch(store, batch);
    }
    batch = store_put_purge(store, (const uint8_t *)"b", 1, 2400);
    batch = store_put_queue_deleted(store, (const uint8_t *)"gone", 4);
    wait_batch(store, batch);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_true(stats.compactions > 0);
    store_close(store);
    assert_true(count_summaries(dir) > 3);
}

static void assert_same(const struct seen *x, const struct seen *y)
{
    assert_int_equal(x->nentries, y->nentries);
    for (size_t i = 0; i < x->nentries; i++) {
        assert_string_equal(x->entries[i].queue, y->entries[i].queue);
        assert_int_equal(x->entries[i].id, y->entries[i].id);
        assert_int_equal(x->entries[i].delivered, y->entries[i].delivered);
    }
    assert_int_equal(x->nmessages, y->nmessages);
    for (size_t i = 0; i < x->nmessages; i++) {
        const struct seen_message *m = seen_find(y, x->messages[i].id);
        assert_non_null(m);
        assert_int_equal(m->len, x->messages[i].len);
        assert_memory_equal(m->data, x->messages[i].data, m->len);
    }
}

/* Opens dir, collects what it recovers and how many segments came from summaries. */
static uint64_t recover(const char *dir, struct seen *seen)
{
    struct store *store = open_store(dir, SEGMENT_BYTES, seen);
    struct store_stats stats;
    store_get_stats(store, &stats);
    store_close(store);
    return stats.segments_summarized;
}

static void summaries_recover_what_the_segments_hold(void **state)
{
    (void)state;
    char dir[64], plain[64];
    make_scratch(dir, sizeof(dir));
    make_scratch(plain, sizeof(plain));
    build_log(dir);
    copy_tree(dir, plain, false);
    int segments = count_segments(dir);
    struct seen with = {0}, without = {0};
    assert_int_equal(recover(dir, &with), (uint64_t)segments - 1); /* all but the newest */
    assert_int_equal(recover(plain, &without), 0);
    assert_true(with.nentries > 100);
    assert_same(&with, &without);
    for (size_t i = 0; i < with.nentries; i++) { /* the bodies are the ones written */
        uint8_t body[BODY];
        body_of(body, with.entries[i].id);
        const struct seen_message *m = seen_find(&with, with.entries[i].id);
        assert_non_null(m);
        assert_int_equal(m->len, BODY);
        assert_memory_equal(m->data, body, BODY);
    }
    seen_free(&with);
    seen_free(&without);
    remove_tree(dir);
    remove_tree(plain);
}

/* The oldest summary of dir: its id and path. */
static uint64_t oldest_summary(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t oldest = UINT64_MAX, id;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (summary_parse_name(de->d_name, &id) && id < oldest)
            oldest = id;
    closedir(d);
    assert_true(oldest != UINT64_MAX);
    summary_path(path, cap, dir, oldest);
    return oldest;
}

static void flip(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

/* Recovers a copy of base damaged by damage(path of its oldest summary, arg), expecting the
 * same result as `expect` with that one segment read in full and one warning. */
static void check_ignored(const char *base, const struct seen *expect, uint64_t summarized,
                          void (*damage)(const char *path, off_t arg), off_t arg)
{
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    copy_tree(base, dir, true);
    oldest_summary(dir, path, sizeof(path));
    damage(path, arg);
    struct seen seen = {0};
    log_lines = 0;
    assert_int_equal(recover(dir, &seen), summarized - 1);
    assert_int_equal(log_lines, 1); /* "its summary does not check" */
    assert_same(&seen, expect);
    seen_free(&seen);
    remove_tree(dir);
}

static void cut_to(const char *path, off_t length) { assert_int_equal(truncate(path, length), 0); }

static void grow_by(const char *path, off_t bytes)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    uint8_t zero[64] = {0};
    assert_int_equal(write(fd, zero, (size_t)bytes), bytes);
    close(fd);
}

/* Rewrites the summary with its last record's segment length one byte off, CRCs made right. */
static void retile(const char *path, off_t delta)
{
    uint64_t id;
    const char *name = strrchr(path, '/') + 1;
    assert_true(summary_parse_name(name, &id));
    char dir[4096];
    snprintf(dir, sizeof(dir), "%.*s", (int)(name - 1 - path), path);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t header[SUMMARY_HEADER_SIZE];
    assert_int_equal(pread(fd, header, sizeof(header), 0), SUMMARY_HEADER_SIZE);
    uint64_t size, max_msg_id, len;
    memcpy(&size, header + 24, 8);
    memcpy(&max_msg_id, header + 32, 8);
    memcpy(&len, header + 40, 8);
    uint8_t *body = malloc(len);
    assert_int_equal(pread(fd, body, len, SUMMARY_HEADER_SIZE), (ssize_t)len);
    close(fd);
    /* the last MESSAGE record's length field: find it by walking */
    size_t pos = 0, last_message = SIZE_MAX;
    struct rec r;
    size_t n;
    while (pos < len && (n = rec_parse(body + pos, len - pos, false, &r)) > 0) {
        if (r.type == REC_MESSAGE)
            last_message = pos + n - 4;
        pos += n;
    }
    assert_true(last_message != SIZE_MAX);
    uint32_t data_len;
    memcpy(&data_len, body + last_message, 4);
    data_len = (uint32_t)((int64_t)data_len + delta);
    memcpy(body + last_message, &data_len, 4);
    struct summary_builder b = {0};
    summary_start(&b, id, max_msg_id, SEG_HEADER_SIZE, true, 1u << 30);
    b.body.data = body;
    b.body.len = b.body.cap = len;
    b.covered = size;
    assert_int_equal(summary_write(NULL, dir, &b), 0);
}

static void a_summary_that_does_not_check_is_ignored(void **state)
{
    (void)state;
    char base[64], path[4096];
    make_scratch(base, sizeof(base));
    build_log(base);
    struct seen expect = {0};
    char plain[64];
    make_scratch(plain, sizeof(plain));
    copy_tree(base, plain, false);
    assert_int_equal(recover(plain, &expect), 0);
    uint64_t summarized = (uint64_t)count_segments(base) - 1;
    oldest_summary(base, path, sizeof(path));
    off_t size = file_size(path);
    for (off_t at = 0; at < SUMMARY_HEADER_SIZE; at++)
        check_ignored(base, &expect, summarized, flip, at);
    for (off_t at = SUMMARY_HEADER_SIZE; at < size; at += 97)
        check_ignored(base, &expect, summarized, flip, at);
    check_ignored(base, &expect, summarized, flip, size - 1);
    check_ignored(base, &expect, summarized, cut_to, 0);
    check_ignored(base, &expect, summarized, cut_to, SUMMARY_HEADER_SIZE - 1);
    check_ignored(base, &expect, summarized, cut_to, size - 1);
    check_ignored(base, &expect, summarized, grow_by, 1);
    check_ignored(base, &expect, summarized, retile, 1);
    check_ignored(base, &expect, summarized, retile, -1);
    /* and the untouched one is used: a test that can fail */
    struct seen seen = {0};
    assert_int_equal(recover(base, &seen), summarized);
    assert_same(&seen, &expect);
    seen_free(&seen);
    seen_free(&expect);
    remove_tree(base);
    remove_tree(plain);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void stale_summaries_are_deleted_at_start(void **state)
{
    (void)state;
    char dir[64], path[4096], newest[4096], orphan[4096], tmp[4096 + 8];
    make_scratch(dir, sizeof(dir));
    build_log(dir);
    uint64_t oldest = oldest_summary(dir, path, sizeof(path));
    int segments = count_segments(dir);
    uint64_t newest_id = 0;
    for (uint64_t id = oldest; id < oldest + 100000 && newest_id == 0; id++) {
        char seg[4096];
        segment_file(seg, sizeof(seg), dir, id);
        if (exists(seg)) {
            summary_path(newest, sizeof(newest), dir, id);
            if (!exists(newest))
                newest_id = id;
        }
    }
    assert_true(newest_id > oldest);
    summary_path(newest, sizeof(newest), dir, newest_id);
    summary_path(orphan, sizeof(orphan), dir, oldest - 1 > 0 ? oldest - 1 : 999999);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(newest, O_WRONLY | O_CREAT, 0644); /* a summary of the newest segment */
    assert_true(fd >= 0);
    close(fd);
    fd = open(orphan, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    struct seen seen = {0};
    log_lines = 0;
    assert_int_equal(recover(dir, &seen), (uint64_t)segments - 1);
    assert_int_equal(log_lines, 0); /* the newest segment's summary is not even read */
    assert_false(exists(newest));
    assert_false(exists(orphan));
    assert_false(exists(tmp));
    assert_true(exists(path));
    seen_free(&seen);
    remove_tree(dir);
}

struct read_back {
    uint64_t missing, read;
};

static void note_entry(void *ctx, uint64_t msg_id, const uint8_t *data, size_t len, bool delivered)
{
    (void)msg_id;
    (void)len;
    (void)delivered;
    struct read_back *r = ctx;
    if (data)
        r->read++;
    else
        r->missing++;
}

static void damage_found_at_read_deletes_the_summary(void **state)
{
    (void)state;
    char dir[64], path[4096], seg[4096];
    make_scratch(dir, sizeof(dir));
    build_log(dir);
    uint64_t oldest = oldest_summary(dir, path, sizeof(path));
    segment_file(seg, sizeof(seg), dir, oldest);
    /* a byte of every message body in that segment: whichever of them are still live */
    int fd = open(seg, O_RDONLY);
    assert_true(fd >= 0);
    off_t size = file_size(seg);
    uint8_t *data = malloc((size_t)size);
    assert_int_equal(pread(fd, data, (size_t)size, 0), size);
    close(fd);
    struct rec rec;
    size_t n;
    for (size_t off = SEG_HEADER_SIZE;
         off < (size_t)size && (n = rec_parse(data + off, (size_t)size - off, true, &rec)) > 0; off += n)
        if (rec.type == REC_MESSAGE && rec.data_len > 10)
            flip(seg, (off_t)(rec.data - data) + 10);
    free(data);
    struct seen seen = {0};
    struct store *store = open_store(dir, SEGMENT_BYTES, NULL);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 0); /* not read at start */
    struct read_back r = {0};
    log_lines = 0;
    for (const char *q = "a\0b\0whole\0"; *q; q += strlen(q) + 1)
        assert_true(store_read_queue(store, (const uint8_t *)q, strlen(q), 0, 100000, note_entry, &r) >= 0);
    store_close(store);
    assert_true(r.missing >= 1);
    assert_true(r.read > 100);
    assert_true(log_lines >= 1);
    assert_false(exists(path)); /* the next start reads that segment */
    store = open_store(dir, SEGMENT_BYTES, &seen);
    store_get_stats(store, &stats);
    assert_true(stats.corrupt_records >= 1);
    store_close(store);
    seen_free(&seen);
    remove_tree(dir);
}

/* A random workload over many restarts: after each, a start from the summaries must recover
 * what a start reading every segment does. Five queues, fan-out, deliveries, acks in later
 * batches (so segments retire and compaction moves survivors), purges and deletions, and the
 * store closed and reopened between rounds (so some sealed segments were active at a start and
 * have no summary). */
static void random_workloads_recover_the_same_from_summaries(void **state)
{
    (void)state;
    static const char *queues[] = {"q0", "q1", "q2", "q3", "q4"};
    char dir[64];
    make_scratch(dir, sizeof(dir));
    uint64_t rng = 0x9e3779b97f4a7c15ull, next_id = 1, used = 0;
    uint64_t *live[5];
    size_t nlive[5] = {0};
    for (int q = 0; q < 5; q++)
        live[q] = calloc(20000, sizeof(uint64_t));
    uint8_t body[1200];
    for (int round = 0; round < 12; round++) {
        struct store_options opts = {.dir = dir, .segment_bytes = SEGMENT_BYTES, .disk_free_limit = 1,
                                     .log = quiet_log};
        struct store *store = NULL;
        assert_int_equal(store_open(&opts, NULL, &store), 0);
        uint64_t batch = 0;
        for (int b = 0; b < 60; b++) {
            for (int k = 0; k < 12; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                unsigned r = (unsigned)(rng >> 33);
                int q = (int)(r % 5);
                if (r % 100 < 72 && nlive[q] < 20000) { /* publish, sometimes to two queues */
                    uint64_t id = next_id++;
                    size_t len = 200 + r % 1000;
                    body_of(body, id);
                    assert_true(store_put_message(store, id, body, len) > 0);
                    batch = store_put_enqueue(store, (const uint8_t *)queues[q], 2, id);
                    live[q][nlive[q]++] = id;
                    int other = (q + 1 + (int)(r >> 8) % 4) % 5;
                    if (r % 7 == 0 && nlive[other] < 20000) {
                        batch = store_put_enqueue(store, (const uint8_t *)queues[other], 2, id);
                        live[other][nlive[other]++] = id;
                    }
                } else if (r % 100 < 96 && nlive[q] > 0) { /* deliver, then ack, an early entry */
                    size_t at = (r >> 4) % (nlive[q] < 8 ? nlive[q] : 8);
                    uint64_t id = live[q][at];
                    batch = store_put_deliver(store, (const uint8_t *)queues[q], 2, id);
                    if (r % 3 != 0) {
                        batch = store_put_ack(store, (const uint8_t *)queues[q], 2, id);
                        memmove(&live[q][at], &live[q][at + 1], (nlive[q] - at - 1) * sizeof(uint64_t));
                        nlive[q]--;
                    }
                } else if (r % 100 < 98 && nlive[q] > 0) { /* purge the newest half */
                    size_t keep = nlive[q] / 2;
                    uint64_t after = keep ? live[q][keep - 1] : 0;
                    batch = store_put_purge(store, (const uint8_t *)queues[q], 2, after);
                    nlive[q] = keep;
                } else if (r % 100 >= 99) { /* delete the queue */
                    batch = store_put_queue_deleted(store, (const uint8_t *)queues[q], 2);
                    nlive[q] = 0;
                }
            }
            if (b % 3 == 0)
                wait_batch(store, batch);
        }
        wait_batch(store, batch);
        struct store_stats stats;
        store_get_stats(store, &stats);
        used += stats.compactions;
        store_close(store);
        char plain[64];
        make_scratch(plain, sizeof(plain));
        copy_tree(dir, plain, false);
        struct seen with = {0}, without = {0};
        uint64_t summarized = recover(dir, &with);
        assert_int_equal(recover(plain, &without), 0);
        assert_same(&with, &without);
        size_t expect = 0;
        for (int q = 0; q < 5; q++)
            expect += nlive[q];
        assert_int_equal(with.nentries, expect);
        if (getenv("WARREN_TEST_LOG"))
            fprintf(stderr, "round %d: %d segments, %d summaries, %llu summarized, %zu entries\n", round,
                    count_segments(dir), count_summaries(dir), (unsigned long long)summarized, with.nentries);
        if (round > 2)
            assert_true(summarized > 0);
        seen_free(&with);
        seen_free(&without);
        remove_tree(plain);
    }
    assert_true(used > 0); /* compactions happened along the way */
    for (int q = 0; q < 5; q++)
        free(live[q]);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(summaries_recover_what_the_segments_hold),
        cmocka_unit_test(a_summary_that_does_not_check_is_ignored),
        cmocka_unit_test(stale_summaries_are_deleted_at_start),
        cmocka_unit_test(damage_found_at_read_deletes_the_summary),
        cmocka_unit_test(random_workloads_recover_the_same_from_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
