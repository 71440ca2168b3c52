/* tests/unit/storage/test_index.c: the in-memory index against a plain model of the rule in
 * index.h (linear searches, no cleverness), record by record. The broker's order (increasing
 * ids, each enqueued only with its message) takes the compact paths; these tests also write
 * what a damaged or hand-written log may hold: ids in any order, duplicate ids, ids enqueued
 * again later (inserted at their place in the queue's id order), id gaps past 2^32 and offsets
 * past 4 GiB (loose messages), queues whose ids span 2^32 (their entries rebased or made wide).
 * Also relocations (compaction) and index_record_repeats.
 * Everything the index reports must match the model: live messages in log order, each queue's
 * entries, queue summaries, reads from an id, per-segment counts and dependencies, deletable
 * segments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "index_private.h"

#define QUEUES 4
#define MODEL_SEGS 4096
static const char *queue_names[QUEUES] = {"a", "bb", "ccc", "dddd"};

struct model_msg {
    uint64_t id, seg, offset;
    uint32_t len, refs;
};
struct model_entry {
    uint64_t id;
    bool delivered;
};
struct model_queue {
    struct model_entry *entries;
    size_t n, cap;
    uint64_t created; /* creation sequence; 0: does not exist */
};
struct model_seg {
    uint64_t id;
    uint64_t deps[64];
    size_t ndeps;
};
struct model {
    struct model_msg *msgs; /* known messages, any order */
    size_t nmsgs, msgs_cap;
    struct model_queue queues[QUEUES];
    uint64_t created;
    struct model_seg segs[MODEL_SEGS];
    size_t nsegs;
    uint64_t max_msg_id;
};

static struct model_msg *model_find(struct model *m, uint64_t id)
{
    for (size_t i = 0; i < m->nmsgs; i++)
        if (m->msgs[i].id == id)
            return &m->msgs[i];
    return NULL;
}

static struct model_seg *model_seg(struct model *m, uint64_t id)
{
    size_t lo = 0, hi = m->nsegs; /* ascending ids */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->segs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    assert_true(lo < m->nsegs && m->segs[lo].id == id);
    return &m->segs[lo];
}

static void model_dep(struct model *m, uint64_t seg, const struct model_msg *msg)
{
    if (msg->seg == seg)
        return;
    struct model_seg *s = model_seg(m, seg);
    for (size_t i = 0; i < s->ndeps; i++)
        if (s->deps[i] == msg->seg)
            return;
    assert_true(s->ndeps < 64);
    s->deps[s->ndeps++] = msg->seg;
}

static void model_forget(struct model *m, struct model_msg *msg)
{
    *msg = m->msgs[--m->nmsgs];
}

/* Entry i of queue q leaves because of a record in seg. */
static void model_remove(struct model *m, uint64_t seg, int q, size_t i)
{
    struct model_queue *mq = &m->queues[q];
    struct model_msg *msg = model_find(m, mq->entries[i].id);
    assert_non_null(msg);
    model_dep(m, seg, msg);
    if (--msg->refs == 0)
        model_forget(m, msg);
    memmove(&mq->entries[i], &mq->entries[i + 1], (mq->n - i - 1) * sizeof(mq->entries[0]));
    mq->n--;
}

static ssize_t model_position(const struct model_queue *mq, uint64_t id)
{
    for (size_t i = 0; i < mq->n; i++)
        if (mq->entries[i].id == id)
            return (ssize_t)i;
    return -1;
}

static void model_apply(struct model *m, uint64_t seg, const struct rec *r, uint64_t offset, int q)
{
    if (r->type != REC_QUEUE_DELETED && r->msg_id > m->max_msg_id)
        m->max_msg_id = r->msg_id;
    struct model_msg *msg = model_find(m, r->msg_id);
    struct model_queue *mq = q >= 0 ? &m->queues[q] : NULL;
    switch (r->type) {
    case REC_MESSAGE:
        if (msg)
            return;
        if (m->nmsgs == m->msgs_cap) {
            m->msgs_cap = m->msgs_cap ? m->msgs_cap * 2 : 256;
            m->msgs = realloc(m->msgs, m->msgs_cap * sizeof(*m->msgs));
            assert_non_null(m->msgs);
        }
        m->msgs[m->nmsgs++] = (struct model_msg){r->msg_id, seg, offset, (uint32_t)r->data_len, 0};
        return;
    case REC_ENQUEUE:
        if (!msg || (mq->created && model_position(mq, r->msg_id) >= 0))
            return;
        if (!mq->created)
            mq->created = ++m->created;
        if (mq->n == mq->cap) {
            mq->cap = mq->cap ? mq->cap * 2 : 64;
            mq->entries = realloc(mq->entries, mq->cap * sizeof(*mq->entries));
            assert_non_null(mq->entries);
        }
        size_t at = mq->n; /* queues are in id order: an id below the last is inserted */
        while (at > 0 && mq->entries[at - 1].id > r->msg_id)
            at--;
        memmove(&mq->entries[at + 1], &mq->entries[at], (mq->n - at) * sizeof(mq->entries[0]));
        mq->entries[at] = (struct model_entry){r->msg_id, false};
        mq->n++;
        msg->refs++;
        model_dep(m, seg, msg);
        return;
    case REC_DELIVER:
    case REC_ACK: {
        ssize_t i = msg && mq->created ? model_position(mq, r->msg_id) : -1;
        if (i < 0)
            return;
        if (r->type == REC_DELIVER) {
            if (!mq->entries[i].delivered) {
                mq->entries[i].delivered = true;
                model_dep(m, seg, msg);
            }
            return;
        }
        model_remove(m, seg, q, (size_t)i);
        break;
    }
    case REC_QUEUE_DELETED:
        while (mq->n > 0)
            model_remove(m, seg, q, 0);
        break;
    case REC_PURGE:
        for (size_t i = 0; i < mq->n;)
            if (mq->entries[i].id > r->msg_id)
                model_remove(m, seg, q, i);
            else
                i++;
        break;
    }
    if (mq->n == 0)
        mq->created = 0;
}

static void model_drop(struct model *m, uint64_t id)
{
    for (size_t i = 0; i < m->nmsgs;)
        if (m->msgs[i].seg == id) {
            assert_int_equal(m->msgs[i].refs, 0);
            model_forget(m, &m->msgs[i]);
        } else {
            i++;
        }
    size_t pos = 0;
    while (m->segs[pos].id != id)
        pos++;
    memmove(&m->segs[pos], &m->segs[pos + 1], (m->nsegs - pos - 1) * sizeof(m->segs[0]));
    m->nsegs--;
    for (size_t s = 0; s < m->nsegs; s++)
        for (size_t d = 0; d < m->segs[s].ndeps; d++)
            if (m->segs[s].deps[d] == id) {
                m->segs[s].deps[d] = m->segs[s].deps[--m->segs[s].ndeps];
                break;
            }
}

/* What the index reported through the recovery callbacks. */
struct report {
    struct {
        int q;
        uint64_t id;
        bool delivered;
    } entries[8192];
    size_t nentries;
    struct {
        int q;
        uint64_t count, bytes;
    } queues[QUEUES];
    size_t nqueues;
};

static int queue_number(const uint8_t *name, size_t len)
{
    for (int q = 0; q < QUEUES; q++)
        if (strlen(queue_names[q]) == len && memcmp(queue_names[q], name, len) == 0)
            return q;
    fail_msg("unknown queue");
    return -1;
}

static void on_entry(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t id, bool delivered)
{
    struct report *r = ctx;
    assert_true(r->nentries < 8192);
    r->entries[r->nentries].q = queue_number(queue, queue_len);
    r->entries[r->nentries].id = id;
    r->entries[r->nentries++].delivered = delivered;
}

static void on_queue(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t entries, uint64_t bytes)
{
    struct report *r = ctx;
    assert_true(r->nqueues < QUEUES);
    r->queues[r->nqueues].q = queue_number(queue, queue_len);
    r->queues[r->nqueues].count = entries;
    r->queues[r->nqueues++].bytes = bytes;
}

static void on_held(void *ctx, const uint8_t *queue, uint32_t queue_len, bool delivered)
{
    struct report *r = ctx;
    assert_true(r->nentries < QUEUES);
    r->entries[r->nentries].q = queue_number(queue, queue_len);
    r->entries[r->nentries++].delivered = delivered;
}

static int location_cmp(const void *a, const void *b)
{
    const struct index_location *x = a, *y = b;
    if (x->segment_id != y->segment_id)
        return x->segment_id < y->segment_id ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The model's answer to index_queue_entries. */
static size_t model_queue_entries(struct model *m, int q, uint64_t after_id, struct index_entry_location *out,
                                  size_t max)
{
    const struct model_queue *mq = &m->queues[q];
    ssize_t own = model_position(mq, after_id);
    size_t n = 0;
    for (size_t i = own >= 0 ? (size_t)own + 1 : 0; i < mq->n && n < max; i++) {
        if (mq->entries[i].id <= after_id)
            continue;
        const struct model_msg *msg = model_find(m, mq->entries[i].id);
        out[n++] = (struct index_entry_location){msg->id, msg->seg, msg->offset, msg->len, mq->entries[i].delivered};
    }
    return n;
}

static void check(struct index *idx, struct model *m, uint64_t active_id)
{
    assert_int_equal(idx->max_msg_id, m->max_msg_id);
    uint64_t live = 0;
    for (size_t i = 0; i < m->nmsgs; i++)
        live += m->msgs[i].refs > 0;
    assert_int_equal(idx->live_messages, live);

    assert_int_equal(idx->nsegs, m->nsegs);
    static uint64_t seg_live[MODEL_SEGS], seg_unreferenced[MODEL_SEGS], seg_bytes[MODEL_SEGS];
    memset(seg_live, 0, sizeof(seg_live));
    memset(seg_unreferenced, 0, sizeof(seg_unreferenced));
    memset(seg_bytes, 0, sizeof(seg_bytes));
    for (size_t i = 0; i < m->nmsgs; i++) {
        size_t s = model_seg(m, m->msgs[i].seg) - m->segs;
        seg_live[s] += m->msgs[i].refs > 0;
        seg_unreferenced[s] += m->msgs[i].refs == 0;
        seg_bytes[s] += m->msgs[i].refs > 0 ? m->msgs[i].len : 0;
    }
    for (size_t s = 0; s < m->nsegs; s++) {
        const struct segment *seg = idx->segs[s];
        assert_int_equal(seg->id, m->segs[s].id);
        assert_int_equal(seg->live, seg_live[s]);
        assert_int_equal(seg->unreferenced, seg_unreferenced[s]);
        assert_int_equal(seg->live_bytes, seg_bytes[s]);
        assert_int_equal(seg->ndeps, m->segs[s].ndeps);
        for (size_t d = 0; d < seg->ndeps; d++) {
            bool found = false;
            for (size_t e = 0; e < m->segs[s].ndeps; e++)
                found |= m->segs[s].deps[e] == seg->deps[d];
            assert_true(found);
        }
        assert_false(seg->pinned);
    }
    static uint64_t deletable[MODEL_SEGS];
    size_t ndeletable = index_deletable(idx, active_id, deletable, MODEL_SEGS), k = 0;
    for (size_t s = 0; s < m->nsegs; s++) {
        if (m->segs[s].id != active_id && seg_live[s] == 0 && m->segs[s].ndeps == 0) {
            assert_true(k < ndeletable);
            assert_int_equal(deletable[k++], m->segs[s].id);
        }
    }
    assert_int_equal(k, ndeletable);

    struct index_location *locs;
    long n = index_live_locations(idx, &locs);
    assert_int_equal(n, live);
    struct index_location *expected = malloc((live + 1) * sizeof(*expected));
    size_t e = 0;
    for (size_t i = 0; i < m->nmsgs; i++)
        if (m->msgs[i].refs > 0)
            expected[e++] = (struct index_location){m->msgs[i].seg, m->msgs[i].offset, m->msgs[i].id};
    qsort(expected, e, sizeof(*expected), location_cmp);
    for (size_t i = 0; i < e; i++) {
        assert_int_equal(locs[i].segment_id, expected[i].segment_id);
        assert_int_equal(locs[i].offset, expected[i].offset);
        assert_int_equal(locs[i].msg_id, expected[i].msg_id);
    }
    free(locs);

    if (m->nsegs > 0) { /* one segment's live messages, as compaction lists them */
        size_t s = (size_t)rand() % m->nsegs, k = 0;
        struct index_message *msgs;
        long got = index_segment_messages(idx, idx->segs[s], &msgs);
        assert_int_equal(got, seg_live[s]);
        for (size_t i = 0; i < e; i++) {
            if (expected[i].segment_id != m->segs[s].id)
                continue;
            assert_true(k < (size_t)got);
            assert_int_equal(msgs[k].msg_id, expected[i].msg_id);
            assert_int_equal(msgs[k].offset, expected[i].offset);
            const struct model_msg *msg = model_find(m, expected[i].msg_id);
            assert_int_equal(msgs[k].len, msg->len);
            assert_int_equal(msgs[k].refs, msg->refs);
            k++;
        }
        assert_int_equal(k, got);
        free(msgs);
    }
    if (e > 0) { /* the queues holding one live message */
        static struct report held;
        held.nentries = 0;
        uint64_t id = expected[(size_t)rand() % e].msg_id;
        size_t nq = index_message_queues(idx, id, on_held, &held);
        assert_int_equal(nq, model_find(m, id)->refs);
        assert_int_equal(held.nentries, nq);
        for (size_t i = 0; i < nq; i++) {
            ssize_t pos = model_position(&m->queues[held.entries[i].q], id);
            assert_true(pos >= 0);
            assert_int_equal(held.entries[i].delivered, m->queues[held.entries[i].q].entries[pos].delivered);
        }
    }
    free(expected);

    static struct report report;
    report.nentries = report.nqueues = 0;
    struct store_recovery rec = {.entry = on_entry, .queue = on_queue, .ctx = &report};
    index_report_entries(idx, &rec);
    index_report_queues(idx, &rec);
    int order[QUEUES], nq = 0; /* the model's queues in creation order */
    for (uint64_t c = 1; c <= m->created; c++)
        for (int q = 0; q < QUEUES; q++)
            if (m->queues[q].created == c)
                order[nq++] = q;
    assert_int_equal(report.nqueues, nq);
    size_t r = 0;
    for (int i = 0; i < nq; i++) {
        const struct model_queue *mq = &m->queues[order[i]];
        uint64_t bytes = 0;
        for (size_t j = 0; j < mq->n; j++, r++) {
            assert_true(r < report.nentries);
            assert_int_equal(report.entries[r].q, order[i]);
            assert_int_equal(report.entries[r].id, mq->entries[j].id);
            assert_int_equal(report.entries[r].delivered, mq->entries[j].delivered);
            bytes += model_find(m, mq->entries[j].id)->len;
        }
        assert_int_equal(report.queues[i].q, order[i]);
        assert_int_equal(report.queues[i].count, mq->n);
        assert_int_equal(report.queues[i].bytes, bytes);
    }
    assert_int_equal(r, report.nentries);

    for (int q = 0; q < QUEUES; q++) {
        const struct model_queue *mq = &m->queues[q];
        uint64_t afters[4] = {0, mq->n ? mq->entries[(size_t)rand() % mq->n].id : 7, (uint64_t)rand() % 400,
                              UINT64_MAX};
        for (int a = 0; a < 4; a++) {
            struct index_entry_location got[16], want[16];
            size_t max = 1 + (size_t)rand() % 16;
            size_t ngot = index_queue_entries(idx, (const uint8_t *)queue_names[q], (uint32_t)strlen(queue_names[q]),
                                              afters[a], got, max);
            size_t nwant = model_queue_entries(m, q, afters[a], want, max);
            assert_int_equal(ngot, nwant);
            for (size_t i = 0; i < ngot; i++) {
                assert_int_equal(got[i].msg_id, want[i].msg_id);
                assert_int_equal(got[i].segment_id, want[i].segment_id);
                assert_int_equal(got[i].offset, want[i].offset);
                assert_int_equal(got[i].len, want[i].len);
                assert_int_equal(got[i].delivered, want[i].delivered);
            }
        }
    }
}

/* The log being written: both the index and the model see every record. */
struct run {
    struct index idx;
    struct model model;
    struct segment *seg;
    uint64_t seg_id, offset;
};

static void run_init(struct run *run)
{
    memset(run, 0, sizeof(*run));
    assert_int_equal(index_init(&run->idx), 0);
}

static void run_free(struct run *run)
{
    index_free(&run->idx);
    free(run->model.msgs);
    for (int q = 0; q < QUEUES; q++)
        free(run->model.queues[q].entries);
}

static void new_segment(struct run *run)
{
    run->seg_id += 1 + (uint64_t)(rand() % 4 == 0); /* ids need not be consecutive */
    run->seg = index_add_segment(&run->idx, run->seg_id, SEG_HEADER_SIZE);
    assert_non_null(run->seg);
    assert_true(run->model.nsegs < MODEL_SEGS);
    run->model.segs[run->model.nsegs++] = (struct model_seg){.id = run->seg_id};
    run->offset = SEG_HEADER_SIZE;
}

/* Applies one record; q is the queue for all types but MESSAGE. */
static void put(struct run *run, uint8_t type, uint64_t id, int q)
{
    struct rec r = {.type = type, .msg_id = id};
    if (type == REC_MESSAGE) {
        r.data_len = (size_t)(rand() % 2000);
    } else {
        r.queue = (const uint8_t *)queue_names[q];
        r.queue_len = (uint32_t)strlen(queue_names[q]);
    }
    if (rand() % 500 == 0)
        run->offset += 5ull << 30; /* past 4 GiB: such a message cannot take an ordered slot */
    assert_int_equal(index_apply(&run->idx, run->seg, &r, run->offset), 0);
    model_apply(&run->model, run->seg_id, &r, run->offset, type == REC_MESSAGE ? -1 : q);
    run->offset += 20 + r.queue_len + r.data_len;
}

/* Moves a live message to the current segment, as compaction does after writing its copy. */
static void relocate(struct run *run, uint64_t id)
{
    struct model_msg *msg = model_find(&run->model, id);
    assert_non_null(msg);
    assert_true(index_reserve_loose(&run->idx, 1) == 0);
    assert_true(index_msg_relocate(&run->idx, id, run->seg, run->offset));
    msg->seg = run->seg_id;
    msg->offset = run->offset;
    run->offset += 20 + msg->len;
}

static struct segment *idx_seg_of(struct run *run, uint64_t id)
{
    struct segment *seg = index_segment(&run->idx, id);
    assert_non_null(seg);
    return seg;
}

/* Drops some of the deletable segments, as the store does once they are unlinked. */
static void retire(struct run *run)
{
    uint64_t ids[64];
    size_t n = index_deletable(&run->idx, run->seg_id, ids, 64);
    for (size_t i = 0; i < n; i++)
        if (rand() % 4 != 0) {
            index_drop_segment(&run->idx, ids[i]);
            model_drop(&run->model, ids[i]);
        }
}

static int random_queue(void) { return rand() % QUEUES; }

/* A live entry of a random queue (its id, queue in *q), or 0 when the queues are empty. */
static uint64_t random_entry(struct run *run, int *q, bool fifo)
{
    for (int tries = 0; tries < 8; tries++) {
        *q = random_queue();
        const struct model_queue *mq = &run->model.queues[*q];
        if (mq->n > 0)
            return mq->entries[fifo ? 0 : (size_t)rand() % mq->n].id;
    }
    return 0;
}

/* Ids from a small range, in any order, with every kind of record, some of them ineffective. */
static void arbitrary_ids_match_the_model(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    srand(777);
    new_segment(&run);
    for (int step = 0; step < 30000; step++) {
        int op = rand() % 100, q = random_queue();
        uint64_t id = 1 + (uint64_t)(rand() % 300);
        if (op < 25)
            put(&run, REC_MESSAGE, id, -1);
        else if (op < 50)
            put(&run, REC_ENQUEUE, id, q);
        else if (op < 58) {
            if (rand() % 2)
                id = random_entry(&run, &q, false);
            put(&run, REC_DELIVER, id, q);
        } else if (op < 85) {
            if (rand() % 4)
                id = random_entry(&run, &q, rand() % 2);
            put(&run, REC_ACK, id, q);
        } else if (op < 86)
            put(&run, REC_QUEUE_DELETED, 0, q);
        else if (op < 88)
            put(&run, REC_PURGE, (uint64_t)(rand() % 300), q);
        else if (op < 92)
            new_segment(&run);
        else if (op < 93) {
            id = random_entry(&run, &q, false);
            if (id)
                relocate(&run, id);
        } else
            retire(&run);
        if (step % 7 == 0)
            check(&run.idx, &run.model, run.seg_id);
    }
    check(&run.idx, &run.model, run.seg_id);
    run_free(&run);
}

/* The broker's order with exceptions: mostly increasing ids enqueued with their message, long
 * queues consumed mostly from the head (so runs and queues get compacted), and now and then an
 * old id stored again, an old message enqueued again elsewhere, a gap past 2^32. */
static void mostly_ordered_ids_match_the_model(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    srand(4242);
    new_segment(&run);
    uint64_t next_id = 1;
    size_t live_cap = 600;
    for (int step = 0; step < 40000; step++) {
        int op = rand() % 100, q = random_queue();
        if (op < 40 && run.model.nmsgs < live_cap) {
            uint64_t id = next_id++;
            int r = rand() % 1000;
            if (r == 0) {
                next_id += 5ull << 32; /* beyond a run's 32-bit deltas */
                id = next_id++;
            }
            else if (r < 10 && next_id > 2)
                id = 1 + (uint64_t)rand() % (next_id - 1); /* an old id: duplicate or back from the dead */
            put(&run, REC_MESSAGE, id, -1);
            if (rand() % 50 != 0) /* a few never get enqueued: garbage */
                put(&run, REC_ENQUEUE, id, q);
            if (rand() % 5 == 0)
                put(&run, REC_ENQUEUE, id, random_queue()); /* fanout (or a repeated enqueue) */
        } else if (op < 42) {
            int from;
            uint64_t id = random_entry(&run, &from, false);
            if (id)
                put(&run, REC_ENQUEUE, id, q); /* late: inserted below q's last id */
        } else if (op < 50) {
            uint64_t id = random_entry(&run, &q, rand() % 2);
            if (id)
                put(&run, REC_DELIVER, id, q);
        } else if (op < 88) {
            uint64_t id = random_entry(&run, &q, rand() % 4 != 0);
            if (id)
                put(&run, REC_ACK, id, q);
        } else if (op < 89 && rand() % 4 == 0) {
            put(&run, REC_QUEUE_DELETED, 0, q);
        } else if (op < 90) {
            const struct model_queue *mq = &run.model.queues[q];
            put(&run, REC_PURGE, mq->n ? mq->entries[(size_t)rand() % mq->n].id : 0, q);
        } else if (op < 93) {
            new_segment(&run);
        } else if (op < 94) {
            uint64_t id = random_entry(&run, &q, rand() % 2);
            if (id)
                relocate(&run, id);
        } else {
            retire(&run);
        }
        if (step % 13 == 0)
            check(&run.idx, &run.model, run.seg_id);
        if (step == 20000)
            live_cap = 100; /* drain: queues and runs shrink */
    }
    check(&run.idx, &run.model, run.seg_id);
    run_free(&run);
}

/* Pins down the fallbacks one by one. */
static void duplicate_and_revived_ids(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    new_segment(&run);
    put(&run, REC_MESSAGE, 10, -1);
    put(&run, REC_ENQUEUE, 10, 0);
    put(&run, REC_MESSAGE, 10, -1); /* duplicate: the first copy stays */
    check(&run.idx, &run.model, run.seg_id);
    assert_int_equal(run.idx.segs[0]->unreferenced, 0);
    put(&run, REC_ACK, 10, 0);
    assert_int_equal(run.idx.live_messages, 0);
    put(&run, REC_ENQUEUE, 10, 0); /* dead: ineffective */
    assert_int_equal(run.idx.live_messages, 0);
    put(&run, REC_MESSAGE, 10, -1); /* the id comes back as a new message */
    put(&run, REC_ENQUEUE, 10, 1);
    put(&run, REC_MESSAGE, 5, -1); /* below the ordered ids */
    put(&run, REC_ENQUEUE, 5, 1);   /* inserted before 10 */
    put(&run, REC_ENQUEUE, 10, 1); /* already there */
    put(&run, REC_DELIVER, 5, 1);
    check(&run.idx, &run.model, run.seg_id);
    assert_int_equal(run.idx.live_messages, 2);
    put(&run, REC_PURGE, 7, 1);
    check(&run.idx, &run.model, run.seg_id);
    assert_int_equal(run.idx.live_messages, 1);
    run_free(&run);
}

/* What recovery asks of a compaction batch: which records repeat what the index holds. Then a
 * copy replayed without its first copy: the message goes back to its place in id order. */
static void copies_repeat_and_come_back_in_id_order(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    new_segment(&run);
    uint64_t first_seg = run.seg_id;
    for (uint64_t id = 1; id <= 3; id++) {
        put(&run, REC_MESSAGE, id, -1);
        put(&run, REC_ENQUEUE, id, 0);
    }
    put(&run, REC_DELIVER, 1, 0);
    new_segment(&run);
    struct rec copy = {.type = REC_MESSAGE, .msg_id = 1};
    struct rec enqueue = {.type = REC_ENQUEUE, .msg_id = 1, .queue = (const uint8_t *)"a", .queue_len = 1};
    struct rec deliver = enqueue, other = enqueue;
    deliver.type = REC_DELIVER;
    other.queue = (const uint8_t *)"bb";
    other.queue_len = 2;
    uint64_t source = 0;
    assert_true(index_record_repeats(&run.idx, run.seg, &copy, &source));
    assert_int_equal(source, first_seg);
    assert_true(index_record_repeats(&run.idx, run.seg, &enqueue, &source));
    assert_true(index_record_repeats(&run.idx, run.seg, &deliver, &source));
    assert_false(index_record_repeats(&run.idx, run.seg, &other, &source)); /* not in that queue */
    deliver.msg_id = 2;
    assert_false(index_record_repeats(&run.idx, run.seg, &deliver, &source)); /* not delivered yet */
    copy.msg_id = 4;
    assert_false(index_record_repeats(&run.idx, run.seg, &copy, &source)); /* a new message */
    copy.msg_id = 3;
    assert_false(index_record_repeats(&run.idx, idx_seg_of(&run, first_seg), &copy, &source)); /* same segment */
    relocate(&run, 1);
    check(&run.idx, &run.model, run.seg_id);
    run_free(&run);

    run_init(&run); /* the first segment is gone: only the copy and later records remain */
    new_segment(&run);
    for (uint64_t id = 2; id <= 3; id++) {
        put(&run, REC_MESSAGE, id, -1);
        put(&run, REC_ENQUEUE, id, 0);
    }
    put(&run, REC_MESSAGE, 1, -1);
    put(&run, REC_ENQUEUE, 1, 0);
    put(&run, REC_DELIVER, 1, 0);
    check(&run.idx, &run.model, run.seg_id);
    assert_int_equal(run.model.queues[0].entries[0].id, 1);
    assert_true(run.model.queues[0].entries[0].delivered);
    put(&run, REC_ACK, 1, 0); /* the head moves up */
    put(&run, REC_MESSAGE, 5, -1);
    put(&run, REC_ENQUEUE, 5, 0);
    put(&run, REC_ACK, 3, 0); /* a tombstone between 2 and 5 */
    put(&run, REC_MESSAGE, 1, -1);
    put(&run, REC_ENQUEUE, 1, 0); /* below the head: the entries before it shift down */
    check(&run.idx, &run.model, run.seg_id);
    put(&run, REC_MESSAGE, 3, -1);
    put(&run, REC_ENQUEUE, 3, 0); /* takes the tombstone's place */
    put(&run, REC_DELIVER, 3, 0);
    check(&run.idx, &run.model, run.seg_id);
    assert_int_equal(run.model.queues[0].n, 4);
    run_free(&run);
}

/* The index's queue q (its entries' layout is what the tests below pin down), or NULL. */
static const struct queue *queue_of(struct run *run, int q)
{
    const uint8_t *name = (const uint8_t *)queue_names[q];
    uint32_t len = (uint32_t)strlen(queue_names[q]);
    return index_queue_find(&run->idx, name, len, index_name_hash(name, len));
}

/* Stores message id and enqueues it on q. */
static void put_enqueued(struct run *run, uint64_t id, int q)
{
    put(run, REC_MESSAGE, id, -1);
    put(run, REC_ENQUEUE, id, q);
}

#define SPAN (1ull << 32) /* what a queue's 32-bit offsets reach */

/* A queue whose ids span 2^32 or more keeps whole ids: appending one too far above the head,
 * inserting one too far below the last. A compaction that leaves a short span goes back to
 * offsets. Results match the model throughout. */
static void ids_spanning_2_32_make_a_queue_wide(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    srand(31);
    new_segment(&run);
    for (uint64_t id = 1; id <= 100; id++)
        put_enqueued(&run, id, 0);
    put(&run, REC_DELIVER, 2, 0);
    assert_false(queue_of(&run, 0)->wide);
    put_enqueued(&run, 1 + SPAN, 0); /* one past the last offset from the head's id */
    assert_true(queue_of(&run, 0)->wide);
    put_enqueued(&run, 3 * SPAN, 0);
    put(&run, REC_DELIVER, 3 * SPAN, 0);
    check(&run.idx, &run.model, run.seg_id);

    put_enqueued(&run, 10 * SPAN, 1);
    put_enqueued(&run, 10 * SPAN + 7, 1);
    assert_false(queue_of(&run, 1)->wide);
    put(&run, REC_ENQUEUE, 50, 1); /* below the base, 10 * 2^32 away from the last */
    assert_true(queue_of(&run, 1)->wide);
    put(&run, REC_ENQUEUE, 60, 1); /* inserted between 50 and the rest */
    put(&run, REC_ENQUEUE, 40, 1);
    put(&run, REC_ACK, 60, 1);
    put(&run, REC_DELIVER, 10 * SPAN, 1);
    check(&run.idx, &run.model, run.seg_id);
    put(&run, REC_PURGE, 10 * SPAN, 1); /* the last entry goes */
    check(&run.idx, &run.model, run.seg_id);

    for (uint64_t id = 1; id <= 100; id++) /* acked from the head: compactions, and the span */
        put(&run, REC_ACK, id, 0);          /* left (1 + 2^32 .. 3 * 2^32) is still wide */
    assert_true(queue_of(&run, 0)->wide);
    check(&run.idx, &run.model, run.seg_id);
    for (uint64_t id = 3 * SPAN + 1; id <= 3 * SPAN + 200; id++)
        put_enqueued(&run, id, 0);
    put(&run, REC_ACK, 1 + SPAN, 0);
    for (uint64_t id = 3 * SPAN; id <= 3 * SPAN + 100; id++) /* the next compaction narrows */
        put(&run, REC_ACK, id, 0);
    const struct queue *q = queue_of(&run, 0);
    assert_false(q->wide);
    assert_true(q->base > 3 * SPAN);
    put_enqueued(&run, 3 * SPAN + 300, 0);
    put(&run, REC_ENQUEUE, 3 * SPAN + 50, 0); /* a dead id's message again, inserted */
    put(&run, REC_DELIVER, 3 * SPAN + 150, 0);
    check(&run.idx, &run.model, run.seg_id);
    run_free(&run);
}

/* A queue whose ids still span less than 2^32 stays with offsets: an id below the base moves the
 * base down to it, one too far above moves it up to the head's id. */
static void ids_outside_the_base_rebase_the_queue(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    srand(32);
    new_segment(&run);
    for (uint64_t id = 1000; id < 1100; id++)
        put_enqueued(&run, id, 0);
    for (uint64_t id = 1000; id < 1040; id++) /* the head moves up */
        put(&run, REC_ACK, id, 0);
    put(&run, REC_ACK, 1050, 0); /* a tombstone */
    put(&run, REC_DELIVER, 1045, 0);
    assert_int_equal(queue_of(&run, 0)->base, 1000);
    put_enqueued(&run, 5, 0); /* below the base: the entries before it shift down */
    const struct queue *q = queue_of(&run, 0);
    assert_false(q->wide);
    assert_int_equal(q->base, 5);
    put_enqueued(&run, 7, 0);
    put(&run, REC_ENQUEUE, 1050, 0); /* the tombstone revived */
    check(&run.idx, &run.model, run.seg_id);
    put_enqueued(&run, 5 + SPAN - 1, 0); /* the last offset */
    assert_false(q->wide);
    assert_int_equal(q->base, 5);
    put(&run, REC_ACK, 5, 0);
    put(&run, REC_ACK, 7, 0);
    put_enqueued(&run, 5 + SPAN, 0); /* above it: rebased on the head's id */
    assert_false(q->wide);
    assert_int_equal(q->base, 1040);
    put_enqueued(&run, 1030, 0); /* below the base again, still within 2^32 */
    assert_false(q->wide);
    assert_int_equal(q->base, 1030);
    put(&run, REC_DELIVER, 5 + SPAN, 0);
    check(&run.idx, &run.model, run.seg_id);
    put(&run, REC_PURGE, 1060, 0);
    check(&run.idx, &run.model, run.seg_id);
    run_free(&run);
}

/* Ids from clusters around 0, 2^32 and 3 * 2^32, every kind of record: queues rebase, go wide
 * and come back, and the index matches the model at every check. */
static void ids_across_2_32_match_the_model(void **state)
{
    (void)state;
    static struct run run;
    run_init(&run);
    srand(2024);
    new_segment(&run);
    static const uint64_t clusters[] = {1, SPAN - 150, 3 * SPAN};
    size_t wide_seen = 0, narrow_after_wide = 0, rebases = 0;
    bool was_wide[QUEUES] = {false}, existed[QUEUES] = {false};
    uint64_t bases[QUEUES] = {0};
    for (int step = 0; step < 60000; step++) {
        int op = rand() % 100, q = random_queue(), c = rand() % 20;
        uint64_t id = clusters[c < 14 ? 0 : c < 19 ? 1 : 2] + (uint64_t)(rand() % 300);
        if (op < 15)
            put(&run, REC_MESSAGE, id, -1);
        else if (op < 35)
            put_enqueued(&run, id, q);
        else if (op < 55)
            put(&run, REC_ENQUEUE, id, q);
        else if (op < 62) {
            if (rand() % 2)
                id = random_entry(&run, &q, false);
            put(&run, REC_DELIVER, id, q);
        } else if (op < 85) {
            if (rand() % 4)
                id = random_entry(&run, &q, rand() % 2);
            put(&run, REC_ACK, id, q);
        } else if (op < 86 && rand() % 4 == 0)
            put(&run, REC_QUEUE_DELETED, 0, q);
        else if (op < 88)
            put(&run, REC_PURGE, clusters[rand() % 3] + (uint64_t)(rand() % 300), q);
        else if (op < 92)
            new_segment(&run);
        else if (op < 93) {
            id = random_entry(&run, &q, false);
            if (id)
                relocate(&run, id);
        } else
            retire(&run);
        for (int k = 0; k < QUEUES; k++) {
            const struct queue *iq = queue_of(&run, k);
            if (!iq) {
                existed[k] = false;
                continue;
            }
            wide_seen += iq->wide && (!existed[k] || !was_wide[k]);
            narrow_after_wide += existed[k] && was_wide[k] && !iq->wide;
            rebases += existed[k] && !was_wide[k] && !iq->wide && iq->base != bases[k];
            existed[k] = true;
            was_wide[k] = iq->wide;
            bases[k] = iq->base;
        }
        if (step % 7 == 0)
            check(&run.idx, &run.model, run.seg_id);
    }
    check(&run.idx, &run.model, run.seg_id);
    assert_true(wide_seen > 10); /* the test crosses the boundary both ways, often */
    assert_true(narrow_after_wide > 10);
    assert_true(rebases > 10);
    run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duplicate_and_revived_ids),
        cmocka_unit_test(copies_repeat_and_come_back_in_id_order),
        cmocka_unit_test(arbitrary_ids_match_the_model),
        cmocka_unit_test(mostly_ordered_ids_match_the_model),
        cmocka_unit_test(ids_spanning_2_32_make_a_queue_wide),
        cmocka_unit_test(ids_outside_the_base_rebase_the_queue),
        cmocka_unit_test(ids_across_2_32_match_the_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
