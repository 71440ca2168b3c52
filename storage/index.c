/* storage/index.c: index_apply, the replay of one record shared by recovery and the I/O thread
 * (rule: index.h), and reading a queue's entries back. Messages live in index_messages.c,
 * queues in index_queues.c, segments in index_segments.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_private.h"

int index_init(struct index *idx)
{
    memset(idx, 0, sizeof(*idx));
    idx->buckets = calloc(64, sizeof(*idx->buckets));
    if (!idx->buckets)
        return -ENOMEM;
    idx->buckets_mask = 63;
    return 0;
}

void index_free(struct index *idx)
{
    for (size_t i = 0; i < idx->nsegs; i++) {
        free(idx->segs[i]->deps);
        free(idx->segs[i]->slots);
        free(idx->segs[i]);
    }
    free(idx->segs);
    index_msg_free(idx);
    while (idx->first_queue)
        index_queue_destroy(idx, idx->first_queue);
    free(idx->buckets);
    memset(idx, 0, sizeof(*idx));
}

/* Records that an effective record in seg touched a message stored in message_seg. */
static void add_dependency(struct segment *seg, const struct segment *message_seg)
{
    if (message_seg == seg)
        return;
    for (size_t i = seg->ndeps; i-- > 0;) /* newest first: the likeliest match */
        if (seg->deps[i] == message_seg->id)
            return;
    if (seg->ndeps == seg->deps_cap) {
        size_t cap = seg->deps_cap ? seg->deps_cap * 2 : 4;
        uint64_t *grown = realloc(seg->deps, cap * sizeof(*grown));
        if (!grown) {
            seg->pinned = true; /* never deleted early for want of memory */
            return;
        }
        seg->deps = grown;
        seg->deps_cap = cap;
    }
    seg->deps[seg->ndeps++] = message_seg->id;
}

/* An entry of message m left a queue because of a record in seg; the message dies with its
 * last entry. */
static void unref(struct index *idx, struct segment *seg, const struct msg_ref *m)
{
    add_dependency(seg, m->seg);
    if (--*msg_refs(m) == 0)
        index_msg_kill(idx, m);
}

static void unref_id(struct index *idx, struct segment *seg, uint64_t id)
{
    struct msg_ref m;
    if (index_msg_find(idx, id, &m)) /* always: an entry keeps its message */
        unref(idx, seg, &m);
}

static void apply_queue_deleted(struct index *idx, struct segment *seg, struct queue *q)
{
    for (size_t pos = q->head; pos < q->tail; pos++)
        if (!(queue_marks(q, pos) & QMARK_REMOVED))
            unref_id(idx, seg, queue_id(q, pos));
    index_queue_destroy(idx, q);
}

static void apply_purge(struct index *idx, struct segment *seg, struct queue *q, uint64_t after_id)
{
    size_t from = queue_start_after(q, after_id); /* the purged entries are a suffix: cut it off */
    for (size_t pos = from; pos < q->tail; pos++) {
        if (queue_marks(q, pos) & QMARK_REMOVED)
            q->removed--;
        else
            unref_id(idx, seg, queue_id(q, pos));
        q->marks[pos >> 5] &= ~((uint64_t)3 << ((pos & 31) * 2));
    }
    q->tail = from;
    queue_tidy(q);
    if (queue_count(q) == 0)
        index_queue_destroy(idx, q);
}

static int apply_enqueue(struct index *idx, struct segment *seg, const struct msg_ref *m, uint64_t id,
                         const struct rec *r, uint64_t hash)
{
    struct queue *q = index_queue_find(idx, r->queue, r->queue_len, hash);
    if (q && queue_position(q, id) != SIZE_MAX)
        return 0; /* already there: ineffective */
    if (!q && !(q = index_queue_create(idx, r->queue, r->queue_len, hash)))
        return -ENOMEM;
    if (queue_add(q, id) < 0) {
        if (queue_count(q) == 0)
            index_queue_destroy(idx, q);
        return -ENOMEM;
    }
    if ((*msg_refs(m))++ == 0) {
        m->seg->unreferenced--;
        m->seg->live++;
        m->seg->live_bytes += msg_len(m);
        idx->live_messages++;
    }
    add_dependency(seg, m->seg);
    return 0;
}

int index_apply(struct index *idx, struct segment *seg, const struct rec *r, uint64_t offset)
{
    if (r->type != REC_QUEUE_DELETED && r->msg_id > idx->max_msg_id)
        idx->max_msg_id = r->msg_id;
    if (r->type == REC_MESSAGE) {
        struct msg_ref m;
        if (index_msg_find(idx, r->msg_id, &m))
            return 0; /* a duplicate id: the first copy stays */
        return index_msg_add(idx, seg, r->msg_id, offset, (uint32_t)r->data_len);
    }
    uint64_t hash = index_name_hash(r->queue, r->queue_len);
    if (r->type == REC_QUEUE_DELETED || r->type == REC_PURGE) {
        struct queue *q = index_queue_find(idx, r->queue, r->queue_len, hash);
        if (q && r->type == REC_QUEUE_DELETED)
            apply_queue_deleted(idx, seg, q);
        else if (q)
            apply_purge(idx, seg, q, r->msg_id);
        return 0;
    }
    struct msg_ref m;
    if (!index_msg_find(idx, r->msg_id, &m))
        return 0; /* its message is gone (or never made it to disk): nothing to change */
    if (r->type == REC_ENQUEUE)
        return apply_enqueue(idx, seg, &m, r->msg_id, r, hash);
    struct queue *q = index_queue_find(idx, r->queue, r->queue_len, hash);
    size_t pos = q ? queue_position(q, r->msg_id) : SIZE_MAX;
    if (pos == SIZE_MAX)
        return 0;
    if (r->type == REC_DELIVER) {
        if (!(queue_marks(q, pos) & QMARK_DELIVERED)) {
            queue_set_mark(q, pos, QMARK_DELIVERED);
            add_dependency(seg, m.seg);
        }
        return 0;
    }
    queue_mark_removed(q, pos);
    queue_tidy(q);
    unref(idx, seg, &m);
    if (queue_count(q) == 0)
        index_queue_destroy(idx, q);
    return 0;
}

bool index_record_repeats(const struct index *idx, const struct segment *seg, const struct rec *r,
                          uint64_t *first_copy)
{
    struct msg_ref m;
    if ((r->type != REC_MESSAGE && r->type != REC_ENQUEUE && r->type != REC_DELIVER) ||
        !index_msg_find(idx, r->msg_id, &m) || *msg_refs(&m) == 0)
        return false;
    if (r->type == REC_MESSAGE) {
        *first_copy = m.seg->id;
        return m.seg != seg;
    }
    struct queue *q = index_queue_find(idx, r->queue, r->queue_len, index_name_hash(r->queue, r->queue_len));
    size_t pos = q ? queue_position(q, r->msg_id) : SIZE_MAX;
    return pos != SIZE_MAX && (r->type == REC_ENQUEUE || (queue_marks(q, pos) & QMARK_DELIVERED));
}

size_t index_message_queues(const struct index *idx, uint64_t msg_id,
                            void (*fn)(void *ctx, const uint8_t *queue, uint32_t queue_len, bool delivered),
                            void *ctx)
{
    size_t n = 0;
    for (const struct queue *q = idx->first_queue; q; q = q->next) {
        size_t pos = queue_position(q, msg_id);
        if (pos != SIZE_MAX) {
            fn(ctx, q->name, q->len, (queue_marks(q, pos) & QMARK_DELIVERED) != 0);
            n++;
        }
    }
    return n;
}

size_t index_queue_entries(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t after_id,
                           struct index_entry_location *out, size_t max)
{
    struct queue *q = index_queue_find(idx, name, len, index_name_hash(name, len));
    if (!q || max == 0)
        return 0;
    size_t n = 0, hint = SIZE_MAX;
    for (size_t pos = queue_start_after(q, after_id); pos < q->tail && n < max; pos++) {
        unsigned marks = queue_marks(q, pos);
        uint64_t id = queue_id(q, pos);
        struct msg_ref m;
        if ((marks & QMARK_REMOVED) || id <= after_id || !index_msg_find_near(idx, id, &hint, &m))
            continue;
        out[n++] = (struct index_entry_location){id, m.seg->id, msg_offset(&m), msg_len(&m),
                                                 (marks & QMARK_DELIVERED) != 0};
    }
    return n;
}
