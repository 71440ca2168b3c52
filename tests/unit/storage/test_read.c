/* tests/unit/storage/test_read.c: reading a queue back from the segment files
 * (store_read_queue): enqueue order, data bytes, the delivered flag, after_id and max, only durable
 * batches visible, messages spread over many segments or larger than the read window, fanout;
 * PURGE (only later entries leave, a reopen agrees, purged segments are retired); recovery's
 * per-queue report; and what a corrupt message record turns into. */
#include "helpers.h"

#include <semaphore.h>
#include <stdatomic.h>

/* What store_read_queue reported, data copied out of the call. */
struct got_entry {
    uint64_t id;
    uint8_t *data; /* NULL when the store passed NULL */
    size_t len;
    bool delivered;
};
struct got {
    struct got_entry *entries;
    size_t n;
};

static void got_entry(void *ctx, uint64_t id, const uint8_t *data, size_t len, bool delivered)
{
    struct got *g = ctx;
    g->entries = realloc(g->entries, (g->n + 1) * sizeof(*g->entries));
    assert_non_null(g->entries);
    struct got_entry *e = &g->entries[g->n++];
    e->id = id;
    e->len = len;
    e->delivered = delivered;
    e->data = NULL;
    if (data) {
        e->data = malloc(len + 1);
        assert_non_null(e->data);
        memcpy(e->data, data, len);
    }
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->entries[i].data);
    free(g->entries);
    memset(g, 0, sizeof(*g));
}

/* Reads queue into a fresh *g; returns store_read_queue's result, which must match the count. */
static long read_queue(struct store *store, const char *queue, uint64_t after_id, size_t max, struct got *g)
{
    memset(g, 0, sizeof(*g));
    long rc = store_read_queue(store, (const uint8_t *)queue, strlen(queue), after_id, max, got_entry, g);
    if (rc >= 0)
        assert_int_equal((size_t)rc, g->n);
    return rc;
}

/* Message bodies: a byte pattern that differs per id and per position, so a misplaced offset or
 * a message read for another shows. */
static void fill(uint8_t *buf, size_t len, uint64_t id)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 131 + i * 7 + (i >> 9));
}

static uint64_t put_pattern(struct store *store, uint64_t id, const char *queue, size_t len)
{
    uint8_t *body = malloc(len ? len : 1);
    assert_non_null(body);
    fill(body, len, id);
    assert_true(store_put_message(store, id, body, len) > 0);
    free(body);
    return store_put_enqueue(store, (const uint8_t *)queue, strlen(queue), id);
}

static void check_pattern(const struct got_entry *e, uint64_t id, size_t len)
{
    assert_int_equal(e->id, id);
    assert_non_null(e->data);
    assert_int_equal(e->len, len);
    uint8_t *want = malloc(len ? len : 1);
    assert_non_null(want);
    fill(want, len, id);
    assert_memory_equal(e->data, want, len);
    free(want);
}

/* Body lengths used by several tests: varied, some zero. */
static size_t length_of(uint64_t id)
{
    return (size_t)((id * 2654435761u) % 3001);
}

/* Recovery's report including the per-queue callback. seen must stay first: seen_message and
 * seen_entry take the context as a struct seen. */
struct seen_queue {
    char name[64];
    uint64_t entries, bytes;
};
struct recovered {
    struct seen seen;
    struct seen_queue queues[16];
    size_t nqueues;
};

static void seen_queue(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t entries, uint64_t bytes)
{
    struct recovered *r = ctx;
    assert_true(queue_len < 64);
    assert_true(r->nqueues < 16);
    struct seen_queue *q = &r->queues[r->nqueues++];
    memcpy(q->name, queue, queue_len);
    q->name[queue_len] = '\0';
    q->entries = entries;
    q->bytes = bytes;
}

static const struct seen_queue *recovered_queue(const struct recovered *r, const char *name)
{
    for (size_t i = 0; i < r->nqueues; i++)
        if (strcmp(r->queues[i].name, name) == 0)
            return &r->queues[i];
    return NULL;
}

static struct store *open_recovering(const char *dir, uint64_t segment_bytes, struct recovered *r)
{
    memset(r, 0, sizeof(*r));
    struct store_options opts = {.dir = dir, .segment_bytes = segment_bytes, .disk_free_limit = 1,
                                 .log = quiet_log};
    struct store_recovery rec = {.message = seen_message, .entry = seen_entry, .queue = seen_queue, .ctx = r};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, &rec, &store), 0);
    return store;
}

/* The ids of the entries recovery reported for queue, in order, into ids; returns the count. */
static size_t recovered_ids(const struct recovered *r, const char *queue, uint64_t *ids, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->seen.nentries; i++)
        if (strcmp(r->seen.entries[i].queue, queue) == 0) {
            assert_true(n < cap);
            ids[n++] = r->seen.entries[i].id;
        }
    return n;
}

static void reads_back_durable_entries_in_order_with_data_and_delivered_flag(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 20; id++) /* odd ids in q, even ids in other */
        batch = put_pattern(store, id, id % 2 ? "q" : "other", length_of(id));
    put_deliver(store, 3, "q");
    put_deliver(store, 11, "q");
    put_deliver(store, 4, "other");
    batch = put_deliver(store, 4, "q"); /* not in q: changes nothing */
    wait_batch(store, batch);

    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 100, &g), 10);
    for (size_t i = 0; i < g.n; i++) {
        uint64_t id = 2 * i + 1;
        check_pattern(&g.entries[i], id, length_of(id));
        assert_int_equal(g.entries[i].delivered, id == 3 || id == 11);
    }
    got_free(&g);
    assert_int_equal(read_queue(store, "other", 0, 100, &g), 10);
    for (size_t i = 0; i < g.n; i++) {
        check_pattern(&g.entries[i], 2 * i + 2, length_of(2 * i + 2));
        assert_int_equal(g.entries[i].delivered, i == 1);
    }
    got_free(&g);
    assert_int_equal(read_queue(store, "nobody", 0, 100, &g), 0);
    assert_int_equal(read_queue(store, "", 0, 100, &g), 0);
    store_close(store);
    remove_tree(dir);
}

static void an_empty_message_reads_back_as_empty_not_as_missing(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    assert_true(store_put_message(store, 1, NULL, 0) > 0);
    uint64_t batch = store_put_enqueue(store, (const uint8_t *)"q", 1, 1);
    wait_batch(store, batch);
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 1);
    assert_int_equal(g.entries[0].id, 1);
    assert_non_null(g.entries[0].data); /* NULL would tell the caller the record is damaged */
    assert_int_equal(g.entries[0].len, 0);
    got_free(&g);
    store_close(store);
    remove_tree(dir);
}

static void after_id_skips_every_entry_up_to_that_message(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    for (uint64_t id = 1; id <= 20; id++)
        put_pattern(store, id, id % 2 ? "q" : "other", length_of(id));
    put_ack(store, 1, "q");
    uint64_t batch = put_ack(store, 7, "q");
    wait_batch(store, batch);
    static const struct {
        uint64_t after_id, first;
        long count;
    } cases[] = {
        {0, 3, 8},   /* everything left: 3, 5, 9, 11, ..., 19 */
        {7, 9, 6},   /* 7 was acked: its entry is gone, later ones still follow */
        {1, 3, 8},   /* the acked head */
        {11, 13, 4}, /* one in the middle, still there */
        {12, 13, 4}, /* a message of another queue */
        {18, 19, 1},
        {19, 0, 0},  /* the last one */
        {1000, 0, 0}, /* never existed */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct got g;
        assert_int_equal(read_queue(store, "q", cases[c].after_id, 100, &g), cases[c].count);
        uint64_t id = cases[c].first;
        for (size_t i = 0; i < g.n; i++, id += 2) {
            if (id == 7)
                id += 2;
            check_pattern(&g.entries[i], id, length_of(id));
        }
        got_free(&g);
    }
    store_close(store);
    remove_tree(dir);
}

static void max_limits_each_call_and_pages_cover_the_queue(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 5000; id++)
        batch = put_pattern(store, id, "q", id % 7);
    wait_batch(store, batch);
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 0, &g), 0);
    assert_int_equal(read_queue(store, "q", 0, 1, &g), 1);
    check_pattern(&g.entries[0], 1, 1);
    got_free(&g);
    /* pages of 7, each starting after the last id of the one before */
    uint64_t after = 0, expect = 1;
    for (;;) {
        long n = read_queue(store, "q", after, 7, &g);
        assert_true(n >= 0 && n <= 7);
        for (size_t i = 0; i < g.n; i++, expect++)
            check_pattern(&g.entries[i], expect, expect % 7);
        if (n > 0)
            after = g.entries[g.n - 1].id;
        got_free(&g);
        if (n < 7)
            break;
    }
    assert_int_equal(expect, 5001);
    /* a call is bounded (the index lock is held throughout); the caller loops */
    long n = read_queue(store, "q", 0, 100000, &g);
    assert_true(n > 0 && n < 5000);
    for (size_t i = 0; i < g.n; i++)
        assert_int_equal(g.entries[i].id, i + 1);
    got_free(&g);
    store_close(store);
    remove_tree(dir);
}

/* Holds the I/O thread inside one fdatasync until the test releases it. */
struct gate {
    atomic_bool armed;
    sem_t entered, release;
};

static int gated_sync(void *ctx, int fd)
{
    struct gate *g = ctx;
    if (atomic_exchange(&g->armed, false)) {
        sem_post(&g->entered);
        while (sem_wait(&g->release) < 0 && errno == EINTR)
            ;
    }
    return fdatasync(fd);
}

static void entries_are_invisible_until_their_batch_is_durable(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct gate gate;
    atomic_init(&gate.armed, false);
    assert_int_equal(sem_init(&gate.entered, 0, 0), 0);
    assert_int_equal(sem_init(&gate.release, 0, 0), 0);
    struct store_io_hooks hooks = {.fdatasync = gated_sync, .ctx = &gate};
    struct store_options opts = {.dir = dir, .disk_free_limit = 1, .io = &hooks, .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);

    wait_batch(store, put_pattern(store, 1, "q", 10));
    uint64_t batch = put_pattern(store, 2, "q", 20);
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 1); /* appended, not flushed */
    got_free(&g);

    atomic_store(&gate.armed, true);
    store_flush(store);
    assert_int_equal(sem_wait(&gate.entered), 0); /* written, not yet synced */
    assert_true(store_durable_batch(store) < batch);
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 1);
    assert_int_equal(g.entries[0].id, 1);
    got_free(&g);
    assert_int_equal(read_queue(store, "q", 1, 10, &g), 0);
    assert_int_equal(sem_post(&gate.release), 0);

    wait_batch(store, batch);
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 2);
    check_pattern(&g.entries[0], 1, 10);
    check_pattern(&g.entries[1], 2, 20);
    got_free(&g);
    store_close(store);
    sem_destroy(&gate.entered);
    sem_destroy(&gate.release);
    remove_tree(dir);
}

static void check_whole_queue(struct store *store, const char *queue, uint64_t first, uint64_t last,
                              size_t (*length)(uint64_t), size_t page)
{
    uint64_t after = 0, expect = first;
    struct got g;
    for (;;) {
        long n = read_queue(store, queue, after, page, &g);
        assert_true(n >= 0);
        for (size_t i = 0; i < g.n; i++, expect++)
            check_pattern(&g.entries[i], expect, length(expect));
        if (n > 0)
            after = g.entries[g.n - 1].id;
        got_free(&g);
        if ((size_t)n < page)
            break;
    }
    assert_int_equal(expect, last + 1);
}

static void messages_spread_over_many_segments_read_back_intact(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 4096, NULL);
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 400; id++) {
        batch = put_pattern(store, id, "q", length_of(id));
        if (id % 3 == 0)
            wait_batch(store, batch);
    }
    wait_batch(store, batch);
    assert_true(count_segments(dir) >= 20);
    check_whole_queue(store, "q", 1, 400, length_of, 50);
    check_whole_queue(store, "q", 1, 400, length_of, 4096); /* one call across every segment */
    store_close(store);
    store = open_store(dir, 4096, NULL); /* offsets as recovery found them */
    check_whole_queue(store, "q", 1, 400, length_of, 33);
    store_close(store);
    remove_tree(dir);
}

/* Around and well past the 256 KiB read window, between small ones. */
static size_t big_length(uint64_t id)
{
    static const size_t sizes[] = {100, (256u << 10) - 30, 70, (256u << 10), (256u << 10) + 1, 5,
                                   (1u << 20) + 3, 0, 300000, 17, (3u << 20) + 11, 2000};
    return sizes[(id - 1) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void messages_larger_than_the_read_window_read_back_intact(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL); /* all in one segment */
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= 24; id++)
        batch = put_pattern(store, id, "q", big_length(id));
    wait_batch(store, batch);
    check_whole_queue(store, "q", 1, 24, big_length, 100);
    check_whole_queue(store, "q", 1, 24, big_length, 1);
    struct got g;
    assert_int_equal(read_queue(store, "q", 6, 2, &g), 2); /* starting at a large one */
    check_pattern(&g.entries[0], 7, big_length(7));
    check_pattern(&g.entries[1], 8, big_length(8));
    got_free(&g);
    store_close(store);
    store = open_store(dir, 0, NULL);
    check_whole_queue(store, "q", 1, 24, big_length, 5);
    store_close(store);
    remove_tree(dir);

    make_scratch(dir, sizeof(dir));
    store = open_store(dir, 64 << 10, NULL); /* each large one rolls a segment */
    for (uint64_t id = 1; id <= 24; id++)
        wait_batch(store, put_pattern(store, id, "q", big_length(id)));
    assert_true(count_segments(dir) >= 8);
    check_whole_queue(store, "q", 1, 24, big_length, 100);
    store_close(store);
    remove_tree(dir);
}

static void a_fanned_out_message_reads_back_from_each_queue(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL); /* a segment per batch */
    put_pattern(store, 1, "a", 500);
    store_put_enqueue(store, (const uint8_t *)"b", 1, 1);
    wait_batch(store, put_pattern(store, 2, "b", 600));            /* segment 1 */
    wait_batch(store, put_pattern(store, 3, "a", 700));            /* segment 2 */
    wait_batch(store, put_deliver(store, 1, "a"));                  /* segment 3 */
    struct got g;
    assert_int_equal(read_queue(store, "a", 0, 10, &g), 2);
    check_pattern(&g.entries[0], 1, 500);
    assert_true(g.entries[0].delivered);
    check_pattern(&g.entries[1], 3, 700);
    assert_false(g.entries[1].delivered);
    got_free(&g);
    assert_int_equal(read_queue(store, "b", 0, 10, &g), 2);
    check_pattern(&g.entries[0], 1, 500);
    assert_false(g.entries[0].delivered); /* delivered from a, not from b */
    check_pattern(&g.entries[1], 2, 600);
    got_free(&g);

    wait_batch(store, put_ack(store, 1, "a"));
    assert_int_equal(read_queue(store, "a", 1, 10, &g), 1); /* 1 left a but lives on in b */
    check_pattern(&g.entries[0], 3, 700);
    got_free(&g);
    assert_int_equal(read_queue(store, "b", 0, 10, &g), 2);
    check_pattern(&g.entries[0], 1, 500);
    got_free(&g);
    store_close(store);
    store = open_store(dir, 1, NULL);
    assert_int_equal(read_queue(store, "b", 0, 10, &g), 2);
    check_pattern(&g.entries[0], 1, 500);
    check_pattern(&g.entries[1], 2, 600);
    got_free(&g);
    store_close(store);
    remove_tree(dir);
}

static void purge_removes_only_later_entries_and_a_reopen_agrees(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    for (uint64_t id = 1; id <= 9; id++)
        put_pattern(store, id, "q", length_of(id));
    store_put_enqueue(store, (const uint8_t *)"other", 5, 6); /* 6 is in both */
    put_deliver(store, 2, "q");
    put_ack(store, 3, "q");
    assert_true(store_put_purge(store, (const uint8_t *)"q", 1, 4) > 0);
    uint64_t batch = put_pattern(store, 10, "q", length_of(10)); /* after the purge: stays */
    wait_batch(store, batch);

    static const uint64_t kept[] = {1, 2, 4, 10};
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 100, &g), 4);
    for (size_t i = 0; i < 4; i++) {
        check_pattern(&g.entries[i], kept[i], length_of(kept[i]));
        assert_int_equal(g.entries[i].delivered, kept[i] == 2);
    }
    got_free(&g);
    assert_int_equal(read_queue(store, "other", 0, 100, &g), 1);
    check_pattern(&g.entries[0], 6, length_of(6));
    got_free(&g);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.live_messages, 5); /* 1, 2, 4, 10 and 6 */
    store_close(store);

    struct recovered r;
    store = open_recovering(dir, 0, &r);
    uint64_t ids[16];
    assert_int_equal(recovered_ids(&r, "q", ids, 16), 4);
    assert_memory_equal(ids, kept, sizeof(kept));
    assert_int_equal(recovered_ids(&r, "other", ids, 16), 1);
    assert_int_equal(ids[0], 6);
    assert_int_equal(r.seen.nmessages, 5);
    for (uint64_t id = 5; id <= 9; id++)
        assert_int_equal(seen_find(&r.seen, id) != NULL, id == 6);
    for (size_t i = 0; i < r.seen.nentries; i++)
        assert_int_equal(r.seen.entries[i].delivered, r.seen.entries[i].id == 2);
    const struct seen_queue *q = recovered_queue(&r, "q");
    assert_non_null(q);
    assert_int_equal(q->entries, 4);
    assert_int_equal(q->bytes, length_of(1) + length_of(2) + length_of(4) + length_of(10));
    seen_free(&r.seen);
    assert_int_equal(read_queue(store, "q", 0, 100, &g), 4);
    for (size_t i = 0; i < 4; i++)
        check_pattern(&g.entries[i], kept[i], length_of(kept[i]));
    got_free(&g);

    /* purging everything (after_id 0) forgets the queue; a purge of nothing changes nothing */
    store_put_purge(store, (const uint8_t *)"nobody", 6, 0);
    batch = store_put_purge(store, (const uint8_t *)"q", 1, 0);
    wait_batch(store, batch);
    assert_int_equal(read_queue(store, "q", 0, 100, &g), 0);
    assert_int_equal(read_queue(store, "other", 0, 100, &g), 1);
    got_free(&g);
    store_close(store);
    store = open_recovering(dir, 0, &r);
    assert_null(recovered_queue(&r, "q"));
    assert_non_null(recovered_queue(&r, "other"));
    assert_int_equal(r.seen.nentries, 1);
    assert_int_equal(r.seen.nmessages, 1);
    seen_free(&r.seen);
    store_close(store);
    remove_tree(dir);
}

static void segments_emptied_by_a_purge_are_retired(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL); /* a segment per batch */
    uint64_t id = 1;
    for (int seg = 1; seg <= 4; seg++) {
        uint64_t batch = 0;
        for (int i = 0; i < 3; i++, id++)
            batch = put_pattern(store, id, "q", 1000);
        wait_batch(store, batch); /* segment seg holds ids 3*seg-2 .. 3*seg */
    }
    assert_int_equal(count_segments(dir), 4);
    wait_batch(store, store_put_purge(store, (const uint8_t *)"q", 1, 4)); /* segment 5 */
    assert_true(segment_exists(dir, 1)); /* 1..3 stay */
    assert_true(segment_exists(dir, 2)); /* 4 stays */
    assert_false(segment_exists(dir, 3));
    assert_false(segment_exists(dir, 4));
    assert_true(segment_exists(dir, 5)); /* the active one */
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.segments, 3);
    assert_int_equal(stats.live_messages, 4);
    store_close(store);

    struct recovered r;
    store = open_recovering(dir, 1, &r);
    assert_int_equal(r.seen.nentries, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(r.seen.entries[i].id, i + 1);
    assert_int_equal(r.nqueues, 1);
    assert_int_equal(r.queues[0].entries, 4);
    assert_int_equal(r.queues[0].bytes, 4000);
    seen_free(&r.seen);
    assert_int_equal(count_segments(dir), 3);

    /* the purge's segment 5 depends on 2 (it removed 5 and 6 from there); acking 1..4 frees all */
    put_ack(store, 1, "q");
    put_ack(store, 2, "q");
    put_ack(store, 3, "q");
    wait_batch(store, put_ack(store, 4, "q"));
    assert_int_equal(count_segments(dir), 1);
    store_get_stats(store, &stats);
    assert_int_equal(stats.segments, 1);
    assert_int_equal(stats.live_messages, 0);
    store_close(store);
    store = open_recovering(dir, 1, &r);
    assert_int_equal(r.seen.nentries, 0);
    assert_int_equal(r.nqueues, 0);
    seen_free(&r.seen);
    store_close(store);
    remove_tree(dir);
}

/* The resurrection case for PURGE (index.h): the purge's segment holds the only record that
 * message 2 left; deleting it while 2's segment is still there would bring 2 back at a reopen. */
static void a_purge_keeps_its_segment_while_a_purged_message_segment_exists(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL);
    put_msg(store, 1, "q", "kept");
    wait_batch(store, put_msg(store, 2, "q", "purged"));                     /* segment 1 */
    wait_batch(store, store_put_purge(store, (const uint8_t *)"q", 1, 1));  /* segment 2 */
    wait_batch(store, put_msg(store, 3, "q", "later"));                      /* segment 3 */
    assert_true(segment_exists(dir, 1));
    assert_true(segment_exists(dir, 2));
    store_close(store);
    struct recovered r;
    store = open_recovering(dir, 1, &r);
    uint64_t ids[8];
    assert_int_equal(recovered_ids(&r, "q", ids, 8), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_null(seen_find(&r.seen, 2));
    seen_free(&r.seen);
    wait_batch(store, put_ack(store, 1, "q"));                               /* segment 4 */
    assert_false(segment_exists(dir, 1));
    assert_false(segment_exists(dir, 2));
    assert_true(segment_exists(dir, 3));
    store_close(store);
    store = open_recovering(dir, 1, &r);
    assert_int_equal(recovered_ids(&r, "q", ids, 8), 1);
    assert_int_equal(ids[0], 3);
    seen_free(&r.seen);
    store_close(store);
    remove_tree(dir);
}

static void recovery_reports_each_queue_with_its_entry_count_and_bytes(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 8192, NULL);
    uint64_t bytes_a = 0, bytes_b = 0, entries_a = 0, entries_b = 0, batch = 0;
    for (uint64_t id = 1; id <= 60; id++) {
        const char *queue = id % 3 == 0 ? "b" : "a";
        batch = put_pattern(store, id, queue, length_of(id));
        if (id % 10 == 0 && queue[0] == 'a') { /* fanned out: counts in both */
            store_put_enqueue(store, (const uint8_t *)"b", 1, id);
            bytes_b += length_of(id);
            entries_b++;
        }
        if (id % 4 == 0) {
            batch = put_ack(store, id, queue);
            continue;
        }
        if (id % 5 == 0)
            put_deliver(store, id, queue);
        *(queue[0] == 'a' ? &bytes_a : &bytes_b) += length_of(id);
        (*(queue[0] == 'a' ? &entries_a : &entries_b))++;
        if (id % 7 == 0)
            wait_batch(store, batch);
    }
    put_pattern(store, 100, "doomed", 50);
    store_put_queue_deleted(store, (const uint8_t *)"doomed", 6);
    put_msg(store, 101, "empty", "");
    wait_batch(store, put_msg(store, 102, "empty", ""));
    store_close(store);

    struct recovered r;
    store = open_recovering(dir, 8192, &r);
    assert_int_equal(r.nqueues, 3);
    const struct seen_queue *a = recovered_queue(&r, "a"), *b = recovered_queue(&r, "b"),
                            *e = recovered_queue(&r, "empty");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(e);
    assert_null(recovered_queue(&r, "doomed"));
    assert_int_equal(a->entries, entries_a);
    assert_int_equal(a->bytes, bytes_a);
    assert_int_equal(b->entries, entries_b);
    assert_int_equal(b->bytes, bytes_b);
    assert_int_equal(e->entries, 2);
    assert_int_equal(e->bytes, 0);
    uint64_t ids[64];
    assert_int_equal(recovered_ids(&r, "a", ids, 64), entries_a);
    assert_int_equal(recovered_ids(&r, "b", ids, 64), entries_b);
    seen_free(&r.seen);
    /* what a caller that keeps nothing reads back matches the report */
    struct got g;
    uint64_t sum = 0;
    assert_int_equal(read_queue(store, "b", 0, 1000, &g), (long)entries_b);
    for (size_t i = 0; i < g.n; i++) {
        check_pattern(&g.entries[i], g.entries[i].id, length_of(g.entries[i].id));
        sum += g.entries[i].len;
    }
    assert_int_equal(sum, bytes_b);
    got_free(&g);
    store_close(store);

    /* the broker's way: only the per-queue callback (no message list is built), same figures */
    memset(&r, 0, sizeof(r));
    struct store_options opts = {.dir = dir, .segment_bytes = 8192, .disk_free_limit = 1, .log = quiet_log};
    struct store_recovery queues_only = {.queue = seen_queue, .ctx = &r};
    assert_int_equal(store_open(&opts, &queues_only, &store), 0);
    assert_int_equal(r.nqueues, 3);
    a = recovered_queue(&r, "a");
    b = recovered_queue(&r, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->entries, entries_a);
    assert_int_equal(a->bytes, bytes_a);
    assert_int_equal(b->entries, entries_b);
    assert_int_equal(b->bytes, bytes_b);
    assert_int_equal(read_queue(store, "a", 0, 1000, &g), (long)entries_a);
    got_free(&g);
    store_close(store);
    remove_tree(dir);
}

/* Flips one byte of the first occurrence of marker in segment `id` of dir. */
static void flip_byte_in_segment(const char *dir, uint64_t id, const char *marker)
{
    char path[4096];
    segment_file(path, sizeof(path), dir, id);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t size = file_size(path);
    uint8_t *buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    uint8_t *at = memmem(buf, (size_t)size, marker, strlen(marker));
    assert_non_null(at);
    uint8_t b = at[strlen(marker) / 2] ^ 0x20;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)(at - buf) + (off_t)strlen(marker) / 2), 1);
    close(fd);
    free(buf);
}

static void a_record_damaged_after_open_reads_back_as_null_and_is_logged(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    put_msg(store, 1, "q", "alpha-one");
    put_msg(store, 2, "q", "bravo-two");
    put_deliver(store, 2, "q");
    wait_batch(store, put_msg(store, 3, "q", "charlie-three"));
    flip_byte_in_segment(dir, 1, "bravo-two");
    int lines = log_lines;
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 3);
    assert_int_equal(g.entries[0].id, 1);
    assert_int_equal(g.entries[0].len, 9);
    assert_memory_equal(g.entries[0].data, "alpha-one", 9);
    assert_int_equal(g.entries[1].id, 2);
    assert_null(g.entries[1].data);
    assert_int_equal(g.entries[1].len, 0);
    assert_true(g.entries[1].delivered);
    assert_int_equal(g.entries[2].id, 3);
    assert_memory_equal(g.entries[2].data, "charlie-three", 13);
    got_free(&g);
    assert_true(log_lines > lines);

    /* the caller acks the damaged entry away; the rest reads on */
    wait_batch(store, put_ack(store, 2, "q"));
    lines = log_lines;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 2);
    assert_non_null(g.entries[0].data);
    assert_non_null(g.entries[1].data);
    got_free(&g);
    assert_int_equal(log_lines, lines);
    store_close(store);
    remove_tree(dir);
}

static void a_large_record_damaged_after_open_reads_back_as_null(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 0, NULL);
    size_t len = (1u << 20) + 5;
    char *body = malloc(len + 1);
    assert_non_null(body);
    memset(body, 'x', len);
    memcpy(body + len - 20, "tail-marker", 11); /* past the first read window */
    body[len] = '\0';
    put_msg(store, 1, "q", "small");
    put_msg(store, 2, "q", body);
    wait_batch(store, put_msg(store, 3, "q", "after"));
    free(body);
    flip_byte_in_segment(dir, 1, "tail-marker");
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 3);
    assert_non_null(g.entries[0].data);
    assert_null(g.entries[1].data);
    assert_non_null(g.entries[2].data);
    assert_memory_equal(g.entries[2].data, "after", 5);
    got_free(&g);
    store_close(store);
    remove_tree(dir);
}

/* Recovery checks every CRC: a message record damaged while the store was closed is skipped
 * with its entries (so a read never meets it), counted and logged, and its segment is kept. */
static void a_record_damaged_while_closed_is_dropped_by_recovery(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct store *store = open_store(dir, 1, NULL);
    put_msg(store, 1, "q", "alpha-one");
    put_msg(store, 2, "q", "bravo-two");
    wait_batch(store, put_msg(store, 3, "q", "charlie-three"));  /* segment 1 */
    wait_batch(store, put_msg(store, 4, "q", "delta-four"));     /* segment 2 */
    store_close(store);
    flip_byte_in_segment(dir, 1, "bravo-two");

    int lines = log_lines;
    struct recovered r;
    store = open_recovering(dir, 1, &r);
    assert_true(log_lines > lines);
    uint64_t ids[8];
    assert_int_equal(recovered_ids(&r, "q", ids, 8), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);
    assert_int_equal(r.nqueues, 1);
    assert_int_equal(r.queues[0].entries, 3);
    assert_int_equal(r.queues[0].bytes, 9 + 13 + 10);
    seen_free(&r.seen);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 1);
    struct got g;
    assert_int_equal(read_queue(store, "q", 0, 10, &g), 3);
    assert_memory_equal(g.entries[0].data, "alpha-one", 9);
    assert_int_equal(g.entries[1].id, 3);
    assert_memory_equal(g.entries[1].data, "charlie-three", 13);
    assert_memory_equal(g.entries[2].data, "delta-four", 10);
    got_free(&g);

    /* acking everything does not delete the damaged segment: it is kept for inspection */
    put_ack(store, 1, "q");
    put_ack(store, 3, "q");
    wait_batch(store, put_ack(store, 4, "q"));
    assert_true(segment_exists(dir, 1));
    store_close(store);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_back_durable_entries_in_order_with_data_and_delivered_flag),
        cmocka_unit_test(an_empty_message_reads_back_as_empty_not_as_missing),
        cmocka_unit_test(after_id_skips_every_entry_up_to_that_message),
        cmocka_unit_test(max_limits_each_call_and_pages_cover_the_queue),
        cmocka_unit_test(entries_are_invisible_until_their_batch_is_durable),
        cmocka_unit_test(messages_spread_over_many_segments_read_back_intact),
        cmocka_unit_test(messages_larger_than_the_read_window_read_back_intact),
        cmocka_unit_test(a_fanned_out_message_reads_back_from_each_queue),
        cmocka_unit_test(purge_removes_only_later_entries_and_a_reopen_agrees),
        cmocka_unit_test(segments_emptied_by_a_purge_are_retired),
        cmocka_unit_test(a_purge_keeps_its_segment_while_a_purged_message_segment_exists),
        cmocka_unit_test(recovery_reports_each_queue_with_its_entry_count_and_bytes),
        cmocka_unit_test(a_record_damaged_after_open_reads_back_as_null_and_is_logged),
        cmocka_unit_test(a_large_record_damaged_after_open_reads_back_as_null),
        cmocka_unit_test(a_record_damaged_while_closed_is_dropped_by_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
