/* tests/unit/storage/test_crashpoints.c: every crash point and every failing call of the durable
 * store. One deterministic workload (64 KiB segments: appends, delivers, acks, segment rolls,
 * retirement, compaction of sparse segments, a purge, a queue deletion, a close and reopen, and
 * definitions updates) runs through the fault seam (faulty_fs.h). A dry run counts its M
 * mutating operations; then for every N in 1..M the workload runs again
 *   - crashing at N (kill -9: the calls from N on do nothing; a pwrite at N is torn),
 *   - crashing at N with a power loss (unsynced data and directory changes are lost too),
 *   - failing only call N (ENOSPC, EIO, or a short write then ENOSPC) and going on,
 *   - failing calls N and N + 1, so that the clean-up after a failure fails too,
 * and a plain store then reopens the directory and is compared with a model of what the workload
 * was told: an entry whose enqueue was in a durable batch and whose removal was not is there
 * exactly once, in id order, with intact data; an entry whose removal was durable never comes
 * back; nothing appears that was not put; the definitions are the last saved blob or the one
 * being saved; after a failure every batch but the failed one is durable and the failed one is
 * reported once. Each recovered store then takes one more batch and a second reopen must find the
 * same. Also: the disk alarm follows the free_bytes hook.
 * WARREN_CRASHPOINTS_STRIDE=k runs every k-th point only (for a quick look by hand). */
#include "helpers.h"

#include <stdatomic.h>
#include <time.h>

#include "faulty_fs.h"

#define SEGMENT_BYTES (64 * 1024)
#define BATCHES 60
#define REOPEN_AT 26 /* the workload closes and reopens the store before this batch */
#define MAX_IDS 1024
#define MAX_ENTRIES 1024
#define MAX_BATCHES 256
#define MAX_DEFS 16

enum { Q_WORK, Q_LONG, Q_FAN_A, Q_FAN_B, Q_PURGE, Q_DOOMED, Q_AFTER, NQUEUES };
static const char *const queue_names[NQUEUES] = {"work", "long", "fan-a", "fan-b", "purge-me", "doomed", "after"};

/* What the store said of a batch. B_PARTIAL: failed with ENOSPC, so its publishes (MESSAGE,
 * ENQUEUE) were dropped but its removals and delivers went into the space reserve: those may
 * or may not have landed (store_io.c, Space reserve). */
enum { B_UNKNOWN = 0, B_DURABLE, B_FAILED, B_PARTIAL };

/* One (queue, message) entry; batches are numbered across sessions (0: none). */
struct entry {
    int queue;
    uint64_t id;
    unsigned enq, rm, deliver;
};

struct model {
    size_t body_len[MAX_IDS]; /* 0: never put */
    unsigned put_batch[MAX_IDS];
    struct entry entries[MAX_ENTRIES];
    size_t nentries;
    uint8_t status[MAX_BATCHES];
    unsigned base;            /* global batch number = base + the session's batch number */
    unsigned last;            /* highest global batch handed over */
    unsigned failed;          /* batches reported failed */
    int defs_ok[MAX_DEFS];    /* definitions versions a reopen may find (0: none saved) */
    size_t ndefs_ok;
    int defs_next;
    uint64_t next_id;
};

struct run {
    struct ffs fs;
    struct model m;
    char root[64], dir[128], grave[128];
    struct store *store;
    uint64_t batch;           /* the session's batch the puts so far went into */
    uint64_t compactions;
};

/* The dry run's operation kinds, shared by every fault run. */
static char *trace;
static unsigned long trace_len;

/* Store log: errors counted (a reopen after a kill -9 must report none: a torn tail is a
 * warning), everything shown with WARREN_TEST_LOG. */
static _Atomic int log_errors;
static void count_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (getenv("WARREN_TEST_LOG"))
        fprintf(stderr, "store log %d: %s\n", level, msg);
    if (level == STORE_LOG_ERROR)
        log_errors++;
}

/* Message bodies: length and bytes follow from the id, so a reopen can check them. */
static size_t body_length(uint64_t id, int queue)
{
    return queue == Q_WORK ? 1200 + (id * 97) % 1400 : 40 + (id * 31) % 260;
}

static void body_fill(uint8_t *buf, uint64_t id, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 131 + i * 7 + (i >> 8));
}

static bool body_intact(const uint8_t *data, uint64_t id, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (data[i] != (uint8_t)(id * 131 + i * 7 + (i >> 8)))
            return false;
    return true;
}

static void defs_blob(int version, uint8_t *buf, size_t *len)
{
    char unit[32];
    int n = snprintf(unit, sizeof(unit), "definitions v%d;", version);
    *len = 0;
    for (int i = 0; i < 10 * version; i++, *len += (size_t)n)
        memcpy(buf + *len, unit, (size_t)n);
}

/* ---- the workload, through the public API, recording the model ---- */

static unsigned global(const struct run *r, uint64_t batch)
{
    return r->m.base + (unsigned)batch;
}

static void took(struct run *r, uint64_t batch)
{
    assert_true(batch > 0);
    assert_true(r->batch == 0 || r->batch == batch); /* one batch at a time */
    r->batch = batch;
    assert_true(global(r, batch) < MAX_BATCHES);
}

static struct entry *find_entry(struct model *m, int queue, uint64_t id)
{
    for (size_t i = 0; i < m->nentries; i++)
        if (m->entries[i].queue == queue && m->entries[i].id == id)
            return &m->entries[i];
    return NULL;
}

/* False when batch b is none, or failed: a record in a failed batch never happened (it was cut
 * off), so a later one counts. (After a crash nothing later is durable: no harm either way.) */
static bool happened(const struct model *m, unsigned b)
{
    return b != 0 && m->status[b] != B_FAILED && m->status[b] != B_PARTIAL;
}

static void enqueue(struct run *r, int queue, uint64_t id)
{
    const char *q = queue_names[queue];
    uint64_t b = store_put_enqueue(r->store, (const uint8_t *)q, strlen(q), id);
    took(r, b);
    assert_true(r->m.nentries < MAX_ENTRIES);
    r->m.entries[r->m.nentries++] = (struct entry){queue, id, global(r, b), 0, 0};
}

static uint64_t put(struct run *r, int queue)
{
    static uint8_t body[4096];
    uint64_t id = r->m.next_id++;
    assert_true(id < MAX_IDS);
    size_t len = body_length(id, queue);
    body_fill(body, id, len);
    uint64_t b = store_put_message(r->store, id, body, len);
    took(r, b);
    r->m.body_len[id] = len;
    r->m.put_batch[id] = global(r, b);
    enqueue(r, queue, id);
    return id;
}

static void deliver(struct run *r, int queue, uint64_t id)
{
    const char *q = queue_names[queue];
    took(r, store_put_deliver(r->store, (const uint8_t *)q, strlen(q), id));
    struct entry *e = find_entry(&r->m, queue, id);
    assert_non_null(e);
    if (e->rm == 0 && !happened(&r->m, e->deliver))
        e->deliver = global(r, r->batch);
}

static void ack(struct run *r, int queue, uint64_t id)
{
    const char *q = queue_names[queue];
    took(r, store_put_ack(r->store, (const uint8_t *)q, strlen(q), id));
    struct entry *e = find_entry(&r->m, queue, id);
    assert_non_null(e);
    if (!happened(&r->m, e->rm))
        e->rm = global(r, r->batch);
}

/* after_id 0 and deleted: the whole queue goes (QUEUE_DELETED), else a PURGE above after_id. */
static void remove_above(struct run *r, int queue, uint64_t after_id, bool deleted)
{
    const char *q = queue_names[queue];
    took(r, deleted ? store_put_queue_deleted(r->store, (const uint8_t *)q, strlen(q))
                    : store_put_purge(r->store, (const uint8_t *)q, strlen(q), after_id));
    for (size_t i = 0; i < r->m.nentries; i++) {
        struct entry *e = &r->m.entries[i];
        if (e->queue == queue && !happened(&r->m, e->rm) && e->id > after_id)
            e->rm = global(r, r->batch);
    }
}

static bool fs_crashed(struct ffs *f)
{
    pthread_mutex_lock(&f->lock);
    bool crashed = f->crashed;
    pthread_mutex_unlock(&f->lock);
    return crashed;
}

/* Hands the batch over, waits for its completion and records what the store said. */
static void end_batch(struct run *r)
{
    uint64_t b = r->batch;
    assert_true(b > 0);
    store_flush(r->store);
    ffs_flushed(&r->fs, b);
    while (store_poll(r->store) < b) {
        struct pollfd p = {.fd = store_event_fd(r->store), .events = POLLIN};
        assert_true(poll(&p, 1, 10000) > 0);
    }
    uint64_t first, last;
    int error;
    while (store_take_failure(r->store, &first, &last, &error)) {
        assert_true(first <= last && last <= b);
        assert_true(error > 0);
        for (uint64_t x = first; x <= last; x++) {
            assert_int_equal(r->m.status[global(r, x)], B_UNKNOWN); /* reported once */
            r->m.status[global(r, x)] = error == ENOSPC ? B_PARTIAL : B_FAILED;
            r->m.failed++;
        }
    }
    for (uint64_t x = 1; x <= b; x++)
        if (r->m.status[global(r, x)] == B_UNKNOWN)
            r->m.status[global(r, x)] = B_DURABLE;
    r->m.last = global(r, b);
    r->batch = 0;
}

static void save_definitions(struct run *r)
{
    static uint8_t blob[4096];
    size_t len;
    int version = ++r->m.defs_next;
    defs_blob(version, blob, &len);
    int rc = store_save_definitions(r->store, blob, len);
    if (rc == 0)
        r->m.ndefs_ok = 0; /* only the new blob now */
    assert_true(r->m.ndefs_ok < MAX_DEFS);
    r->m.defs_ok[r->m.ndefs_ok++] = version;
}

/* Opens the store on the faulty fs. A failure is allowed only when the fs has faulted: after a
 * crash the session is over (returns false); after failed calls it is tried again. */
static bool open_session(struct run *r)
{
    struct store_options opts = {.dir = r->dir, .segment_bytes = SEGMENT_BYTES, .disk_free_limit = 1,
                                 .log = count_log, .io = &r->fs.hooks};
    r->m.base = r->m.last;
    r->batch = 0;
    int rc = store_open(&opts, NULL, &r->store);
    for (int tries = 0; rc < 0 && r->fs.mode == FFS_FAIL && tries < 3; tries++) {
        assert_true(r->fs.fired);
        rc = store_open(&opts, NULL, &r->store);
    }
    if (rc < 0) {
        assert_true(fs_crashed(&r->fs));
        r->store = NULL;
        return false;
    }
    if (r->m.next_id <= store_max_message_id(r->store))
        r->m.next_id = store_max_message_id(r->store) + 1;
    ffs_attach(&r->fs, r->store);
    return true;
}

static void close_session(struct run *r)
{
    struct store_stats stats;
    store_get_stats(r->store, &stats);
    r->compactions += stats.compactions;
    ffs_release(&r->fs);
    store_close(r->store); /* must neither hang nor crash, whatever the fs did */
    ffs_attach(&r->fs, NULL);
    r->store = NULL;
}

static void workload(struct run *r)
{
    r->m.next_id = 1;
    r->m.defs_ok[r->m.ndefs_ok++] = 0;
    if (!open_session(r))
        return;
    save_definitions(r);
    uint64_t prev[4] = {0}, long1 = 0, long2 = 0, long3 = 0, purge_mark = 0;
    uint64_t fans[16];
    int fan_at[16], nfans = 0, after_crash = 0;
    for (int i = 0; i < BATCHES; i++) {
        if (r->fs.mode != FFS_FAIL && fs_crashed(&r->fs) && ++after_crash > 2)
            break; /* a dead store: two more failing batches show it stays sane; enough */
        if (i == REOPEN_AT) {
            close_session(r);
            if (!open_session(r))
                return;
        }
        for (int k = 0; k < 4 && prev[k]; k++) { /* the work queue: acked a batch later */
            if (k % 2 == 0)
                deliver(r, Q_WORK, prev[k]);
            ack(r, Q_WORK, prev[k]);
        }
        for (int k = 0; k < 4; k++)
            prev[k] = put(r, Q_WORK);
        deliver(r, Q_WORK, prev[0]);
        if (i == 0)
            long1 = put(r, Q_LONG); /* never acked: keeps segment 1 until compaction moves it */
        if (i == 1)
            deliver(r, Q_LONG, long1);
        if (i == 5)
            long2 = put(r, Q_LONG);
        if (i == 6)
            deliver(r, Q_LONG, long2);
        if (i == 8)
            long3 = put(r, Q_LONG);
        if (i == 44)
            ack(r, Q_LONG, long3); /* after it has been moved, maybe more than once */
        if (i % 7 == 3) { /* one message in two queues */
            fans[nfans] = put(r, Q_FAN_A);
            enqueue(r, Q_FAN_B, fans[nfans]);
            fan_at[nfans++] = i;
        }
        for (int k = 0; k < nfans; k++) {
            if (i == fan_at[k] + 2)
                ack(r, Q_FAN_A, fans[k]);
            if (i == fan_at[k] + 16) {
                deliver(r, Q_FAN_B, fans[k]);
                ack(r, Q_FAN_B, fans[k]);
            }
        }
        if (i >= 3 && i <= 40) {
            uint64_t id = put(r, Q_PURGE);
            if (i == 12)
                purge_mark = id;
        }
        if (i == 22)
            remove_above(r, Q_PURGE, purge_mark, false);
        if (i == 41)
            remove_above(r, Q_PURGE, 0, false);
        if (i >= 10 && i <= 20) {
            uint64_t id = put(r, Q_DOOMED);
            if (i % 2)
                deliver(r, Q_DOOMED, id);
        }
        if (i == 30)
            remove_above(r, Q_DOOMED, 0, true);
        end_batch(r);
        if (i == 14 || i == 36)
            save_definitions(r);
    }
    close_session(r);
}

/* ---- checking a reopened store against the model ---- */

static int queue_index(const char *name)
{
    for (int q = 0; q < NQUEUES; q++)
        if (strcmp(queue_names[q], name) == 0)
            return q;
    return -1;
}

/* maybe: a batch that may or may not have reached the disk. */
static bool maybe(const struct model *m, unsigned b, bool strict)
{
    return !strict && m->status[b] != B_DURABLE;
}

static bool entry_must(const struct model *m, const struct entry *e, bool strict)
{
    (void)strict;
    return m->status[e->enq] == B_DURABLE && (e->rm == 0 || (strict && m->status[e->rm] == B_FAILED));
}

static bool entry_may(const struct model *m, const struct entry *e, bool strict)
{
    bool enq = m->status[e->enq] == B_DURABLE || maybe(m, e->enq, strict);
    return enq && (e->rm == 0 || m->status[e->rm] != B_DURABLE);
}

static void fail_run(const struct run *r, const char *what, uint64_t id)
{
    fprintf(stderr, "crashpoints: mode %d at op %lu (%c, error %d): %s (message %llu)\n", r->fs.mode, r->fs.at,
            r->fs.fault_kind ? r->fs.fault_kind : '-', r->fs.fail_error, what, (unsigned long long)id);
    for (size_t i = 0; i < r->m.nentries; i++) { /* what the model says of it */
        const struct entry *e = &r->m.entries[i];
        if (e->id == id)
            fprintf(stderr, "  entry %s: enqueued in batch %u (%d), removed in %u (%d), delivered in %u (%d)\n",
                    queue_names[e->queue], e->enq, r->m.status[e->enq], e->rm, r->m.status[e->rm], e->deliver,
                    r->m.status[e->deliver]);
    }
    for (unsigned b = 1; b <= r->m.last; b++)
        if (r->m.status[b] != B_DURABLE)
            fprintf(stderr, "  batch %u: status %d\n", b, r->m.status[b]);
    fail();
}

static struct store *reopen_plain(const struct run *r, struct seen *seen)
{
    struct store_options opts = {.dir = r->dir, .segment_bytes = SEGMENT_BYTES, .disk_free_limit = 1,
                                 .log = count_log};
    struct store_recovery rec = {.message = seen_message, .entry = seen_entry, .ctx = seen};
    struct store *store = NULL;
    int rc = store_open(&opts, &rec, &store);
    if (rc < 0)
        fail_run(r, "a plain reopen failed", (uint64_t)-rc);
    return store;
}

/* strict: every batch is known durable or failed-and-cut-off (a failing call, not a crash). */
static void check_against_model(const struct run *r, const struct seen *seen, struct store *store, bool strict)
{
    const struct model *m = &r->m;
    static bool found[MAX_ENTRIES];
    memset(found, 0, sizeof(found));
    uint64_t last_id[NQUEUES] = {0};
    for (size_t i = 0; i < seen->nentries; i++) {
        const struct seen_entry *s = &seen->entries[i];
        int q = queue_index(s->queue);
        if (q < 0)
            fail_run(r, "an entry in a queue never used", s->id);
        if (s->id <= last_id[q])
            fail_run(r, "entries out of id order or doubled", s->id);
        last_id[q] = s->id;
        const struct entry *e = find_entry((struct model *)m, q, s->id);
        if (!e)
            fail_run(r, "an entry never enqueued", s->id);
        if (!entry_may(m, e, strict))
            fail_run(r, "an entry whose removal was durable (or whose enqueue never was) came back", s->id);
        found[e - m->entries] = true;
        if (e->deliver && m->status[e->deliver] == B_DURABLE && !s->delivered)
            fail_run(r, "a durable deliver was lost", s->id);
        if (s->delivered && (e->deliver == 0 || (strict && m->status[e->deliver] != B_DURABLE &&
                                                  m->status[e->deliver] != B_PARTIAL)))
            fail_run(r, "delivered without a deliver", s->id);
        const struct seen_message *msg = seen_find(seen, s->id);
        if (!msg)
            fail_run(r, "an entry without its message", s->id);
    }
    for (size_t i = 0; i < m->nentries; i++)
        if (!found[i] && entry_must(m, &m->entries[i], strict))
            fail_run(r, "a durable entry is missing", m->entries[i].id);
    uint64_t max_durable = 0;
    for (uint64_t id = 1; id < m->next_id && id < MAX_IDS; id++)
        if (m->body_len[id] && m->status[m->put_batch[id]] == B_DURABLE)
            max_durable = id;
    if (store_max_message_id(store) < max_durable)
        fail_run(r, "max message id below a durable message's", max_durable);
    for (size_t i = 0; i < seen->nmessages; i++) {
        const struct seen_message *msg = &seen->messages[i];
        if (msg->id >= MAX_IDS || m->body_len[msg->id] == 0)
            fail_run(r, "a message never put", msg->id);
        if (msg->len != m->body_len[msg->id] || !body_intact(msg->data, msg->id, msg->len))
            fail_run(r, "a message's data is damaged", msg->id);
        bool referenced = false;
        for (size_t k = 0; k < seen->nentries && !referenced; k++)
            referenced = seen->entries[k].id == msg->id;
        if (!referenced)
            fail_run(r, "a message in no queue was reported", msg->id);
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (store_load_definitions(store, &data, &len) < 0)
        fail_run(r, "definitions do not load", 0);
    bool ok = false;
    for (size_t i = 0; i < m->ndefs_ok && !ok; i++) {
        static uint8_t want[4096];
        size_t want_len;
        defs_blob(m->defs_ok[i], want, &want_len);
        ok = want_len == len && (len == 0 || memcmp(want, data, len) == 0);
    }
    free(data);
    if (!ok)
        fail_run(r, "definitions are neither the old nor the new blob", m->ndefs_ok);
}

/* The reopened store goes on: one more batch, then a second reopen must find the same entries and
 * the new one (a cut-off tail must really be gone, not merely skipped). */
static void check_second_life(struct run *r, struct store *store, const struct seen *first)
{
    uint64_t id = store_max_message_id(store) + 1;
    if (id < r->m.next_id)
        id = r->m.next_id;
    assert_true(id < MAX_IDS);
    static uint8_t body[4096];
    size_t len = body_length(id, Q_AFTER);
    body_fill(body, id, len);
    store_put_message(store, id, body, len);
    uint64_t b = store_put_enqueue(store, (const uint8_t *)"after", 5, id);
    wait_batch(store, b);
    uint64_t f1, f2;
    int error;
    if (store_take_failure(store, &f1, &f2, &error))
        fail_run(r, "a batch failed after recovery", id);
    store_close(store);
    struct seen second = {0};
    store = reopen_plain(r, &second);
    if (second.nentries != first->nentries + 1)
        fail_run(r, "the second reopen found a different number of entries", second.nentries);
    for (size_t i = 0; i < first->nentries; i++) {
        bool same = false;
        for (size_t k = 0; k < second.nentries && !same; k++)
            same = strcmp(second.entries[k].queue, first->entries[i].queue) == 0 &&
                   second.entries[k].id == first->entries[i].id &&
                   second.entries[k].delivered == first->entries[i].delivered;
        if (!same)
            fail_run(r, "the second reopen lost an entry", first->entries[i].id);
    }
    const struct seen_message *msg = seen_find(&second, id);
    if (!msg || msg->len != len || !body_intact(msg->data, id, len))
        fail_run(r, "the batch after recovery did not survive", id);
    seen_free(&second);
    store_close(store);
}

/* ---- runs ---- */

struct totals {
    unsigned runs, crashed, torn, failed_batches, durable_batches, entries_checked, compactions, logged_errors;
    unsigned summarized;      /* segments the reopens replayed from their summaries */
    double seconds;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* burst: FFS_FAIL only, how many calls fail from `at` on. */
static void run_once(enum ffs_mode mode, unsigned long at, int fail_error, unsigned long burst, struct totals *t)
{
    static struct run run; /* large: not on the stack */
    struct run *r = &run;
    memset(r, 0, sizeof(*r));
    make_scratch(r->root, sizeof(r->root));
    assert_true(snprintf(r->dir, sizeof(r->dir), "%s/store", r->root) < (int)sizeof(r->dir));
    assert_true(snprintf(r->grave, sizeof(r->grave), "%s/grave", r->root) < (int)sizeof(r->grave));
    assert_int_equal(mkdir(r->grave, 0755), 0);
    ffs_init(&r->fs, mode, at, fail_error, r->grave);
    r->fs.burst = burst;
    if (mode != FFS_COUNT) {
        r->fs.expect = trace;
        r->fs.expect_len = at < trace_len ? at : trace_len; /* after a fault the calls differ */
    }
    workload(r);
    if (mode == FFS_COUNT) {
        trace_len = r->fs.ops;
        assert_true(trace_len <= FFS_MAX_OPS);
        trace = malloc(trace_len + 1);
        memcpy(trace, r->fs.kinds, trace_len);
        trace[trace_len] = '\0';
    } else {
        if (r->fs.drift)
            fail_run(r, "the run made other calls than the dry run before the fault", r->fs.drift);
        if (!r->fs.crashed && !r->fs.fired)
            fail_run(r, "the fault point was never reached", 0);
    }
    assert_int_equal(r->fs.gate_timeouts, 0);
    if (mode == FFS_POWER_LOSS)
        ffs_power_loss(&r->fs);
    /* One failing call: a failed batch is cut off for sure. When the cut fails too, its records
     * may stay (a nacked publish may come back: at least once). */
    bool strict = (mode == FFS_FAIL && burst <= 1) || mode == FFS_COUNT;
    for (unsigned b = 1; b <= r->m.last; b++) {
        if (strict && r->m.status[b] == B_UNKNOWN)
            fail_run(r, "a batch never completed", b);
        if (r->m.status[b] == B_DURABLE && b > 1 && r->m.status[b - 1] >= B_FAILED && mode != FFS_FAIL)
            fail_run(r, "a batch durable after a crash", b);
        t->durable_batches += r->m.status[b] == B_DURABLE;
    }
    if (mode == FFS_FAIL && r->m.failed > burst)
        fail_run(r, "one failing call failed more than one batch", r->m.failed);
    if (mode == FFS_COUNT && r->m.failed > 0)
        fail_run(r, "a batch failed without a fault", r->m.failed);
    t->failed_batches += r->m.failed;
    t->compactions += (unsigned)r->compactions;
    t->crashed += r->fs.crashed;
    t->torn += r->fs.crashed && r->fs.fault_kind == 'W' && mode == FFS_CRASH;

    log_errors = 0;
    struct seen seen = {0};
    struct store *store = reopen_plain(r, &seen);
    /* A torn tail is a warning; an error means a damaged record in the middle of the log. Only a
     * batch that could be neither written nor cut back leaves one. */
    if (log_errors != 0 && burst <= 1)
        fail_run(r, "the reopen reported corruption or errors", (uint64_t)log_errors);
    t->logged_errors += log_errors != 0;
    check_against_model(r, &seen, store, strict);
    t->entries_checked += (unsigned)seen.nentries;
    struct store_stats stats;
    store_get_stats(store, &stats);
    t->summarized += (unsigned)stats.segments_summarized;
    check_second_life(r, store, &seen);
    if (log_errors != 0 && burst <= 1)
        fail_run(r, "the second reopen reported errors", (uint64_t)log_errors);
    seen_free(&seen);
    ffs_destroy(&r->fs);
    remove_tree(r->dir);
    remove_tree(r->grave);
    rmdir(r->root);
    t->runs++;
}

/* WARREN_CRASHPOINTS_AT=n runs only point n of each loop (to debug one, with WARREN_TEST_LOG). */
static unsigned long first_point(void)
{
    const char *s = getenv("WARREN_CRASHPOINTS_AT");
    return s ? strtoul(s, NULL, 10) : 1;
}

static unsigned long last_point(void)
{
    return getenv("WARREN_CRASHPOINTS_AT") ? first_point() : trace_len;
}

static unsigned long stride(void)
{
    const char *s = getenv("WARREN_CRASHPOINTS_STRIDE");
    unsigned long k = s ? strtoul(s, NULL, 10) : 1;
    return k ? k : 1;
}

static int dry_run(void **state)
{
    (void)state;
    struct totals t = {0};
    run_once(FFS_COUNT, 0, 0, 0, &t);
    unsigned counts[128] = {0};
    for (unsigned long i = 0; i < trace_len; i++)
        counts[(unsigned char)trace[i]]++;
    fprintf(stderr, "crashpoints: the workload makes %lu mutating calls: %u pwrite, %u fdatasync, %u fsync, "
            "%u ftruncate, %u fallocate, %u rename, %u unlink, %u open(O_CREAT); %u batches, %u compactions\n",
            trace_len, counts['W'], counts['D'], counts['S'], counts['T'], counts['A'], counts['R'], counts['U'],
            counts['C'], t.durable_batches, t.compactions);
    /* the workload must reach every path it is meant to test */
    assert_true(counts['U'] >= 4 && counts['R'] >= 3 && counts['C'] >= 6 && t.compactions >= 4);
    struct totals again = {0};
    char *first = trace;
    unsigned long first_len = trace_len;
    run_once(FFS_COUNT, 0, 0, 0, &again);
    assert_int_equal(trace_len, first_len); /* deterministic: the same calls every time */
    assert_memory_equal(trace, first, first_len);
    free(first);
    return 0;
}

static int free_trace(void **state)
{
    (void)state;
    free(trace);
    trace = NULL;
    return 0;
}

static void report(const char *what, const struct totals *t)
{
    fprintf(stderr, "crashpoints: %s: %u runs (%u crashed, %u with a torn write), %u batches durable, %u failed, "
            "%u entries checked, %u segments replayed from summaries, %.1f s\n", what, t->runs, t->crashed, t->torn,
            t->durable_batches, t->failed_batches, t->entries_checked, t->summarized, t->seconds);
    assert_true(t->summarized > 0); /* the reopens went through segment summaries too */
}

static void kill9_at_every_call(void **state)
{
    (void)state;
    struct totals t = {0};
    double start = now();
    for (unsigned long n = first_point(); n <= last_point(); n += stride())
        run_once(FFS_CRASH, n, 0, 1, &t);
    t.seconds = now() - start;
    report("kill -9 at every call", &t);
}

static void power_loss_at_every_call(void **state)
{
    (void)state;
    struct totals t = {0};
    double start = now();
    for (unsigned long n = first_point(); n <= last_point(); n += stride())
        run_once(FFS_POWER_LOSS, n, 0, 1, &t);
    t.seconds = now() - start;
    report("power loss at every call", &t);
}

static void each_call_fails_once(void **state)
{
    (void)state;
    static const int errors[] = {ENOSPC, EIO, 0}; /* 0: a short write, then ENOSPC */
    struct totals t = {0};
    double start = now();
    for (unsigned long n = first_point(); n <= last_point(); n += stride())
        run_once(FFS_FAIL, n, errors[n % 3], 1, &t);
    t.seconds = now() - start;
    report("each call failing once", &t);
}

static void each_call_and_the_next_fail(void **state)
{
    (void)state;
    static const int errors[] = {EIO, ENOSPC, 0};
    struct totals t = {0};
    double start = now();
    for (unsigned long n = first_point(); n <= last_point(); n += stride())
        run_once(FFS_FAIL, n, errors[n % 3], 2, &t);
    t.seconds = now() - start;
    report("each call and the next failing", &t);
    fprintf(stderr, "crashpoints: %u of those runs left a damaged record in the middle of the log\n",
            t.logged_errors);
}

static void disk_alarm_follows_free_space(void **state)
{
    (void)state;
    char root[64], dir[128], grave[128];
    make_scratch(root, sizeof(root));
    snprintf(dir, sizeof(dir), "%s/store", root);
    snprintf(grave, sizeof(grave), "%s/grave", root);
    assert_int_equal(mkdir(grave, 0755), 0);
    static struct ffs f;
    ffs_init(&f, FFS_COUNT, 0, 0, grave);
    f.free_bytes = 10u << 20;
    struct store_options opts = {.dir = dir, .disk_free_limit = 1u << 20, .log = count_log, .io = &f.hooks};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    ffs_attach(&f, store);
    assert_false(store_disk_alarm(store));
    f.free_bytes = 512u << 10; /* below the limit: the check after the next batch raises it */
    wait_batch(store, put_msg(store, 1, "q", "one"));
    assert_true(store_disk_alarm(store));
    f.free_bytes = 2u << 20; /* space returns while idle: the once-a-second check clears it */
    double start = now();
    while (store_disk_alarm(store) && now() - start < 5)
        usleep(20 * 1000);
    assert_false(store_disk_alarm(store));
    f.free_bytes = 1000; /* and raises it again while idle */
    start = now();
    while (!store_disk_alarm(store) && now() - start < 5)
        usleep(20 * 1000);
    assert_true(store_disk_alarm(store));
    ffs_release(&f);
    store_close(store);
    ffs_destroy(&f);
    remove_tree(dir);
    remove_tree(grave);
    rmdir(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kill9_at_every_call),
        cmocka_unit_test(power_loss_at_every_call),
        cmocka_unit_test(each_call_fails_once),
        cmocka_unit_test(each_call_and_the_next_fail),
        cmocka_unit_test(disk_alarm_follows_free_space),
    };
    return cmocka_run_group_tests(tests, dry_run, free_trace);
}
