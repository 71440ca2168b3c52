/* storage/index_segments.c: the index's segment bookkeeping (which segments exist, which can be
 * deleted under the rule in index.h, forgetting a deleted one) and recovery's report of the
 * queues' entries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_private.h"

struct segment *index_add_segment(struct index *idx, uint64_t id, uint64_t size)
{
    if (idx->nsegs == idx->segs_cap) {
        size_t cap = idx->segs_cap ? idx->segs_cap * 2 : 16;
        struct segment **grown = realloc(idx->segs, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        idx->segs = grown;
        idx->segs_cap = cap;
    }
    struct segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->id = id;
    seg->size = size;
    seg->lo = idx->next_ordered;
    if (idx->nsegs > 0)
        index_msg_trim(idx->segs[idx->nsegs - 1]); /* its run is complete */
    idx->segs[idx->nsegs++] = seg;
    return seg;
}

struct segment *index_segment(const struct index *idx, uint64_t id)
{
    size_t lo = 0, hi = idx->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (idx->segs[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < idx->nsegs && idx->segs[lo]->id == id ? idx->segs[lo] : NULL;
}

size_t index_deletable(const struct index *idx, uint64_t active_id, uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < idx->nsegs && n < cap; i++) {
        const struct segment *s = idx->segs[i];
        if (s->id != active_id && s->live == 0 && s->ndeps == 0 && !s->pinned)
            out[n++] = s->id;
    }
    return n;
}

void index_drop_segment(struct index *idx, uint64_t id)
{
    struct segment *seg = index_segment(idx, id);
    if (!seg)
        return;
    size_t pos = 0;
    while (idx->segs[pos] != seg)
        pos++;
    for (size_t i = pos + 1; i < idx->nsegs; i++) {
        struct segment *s = idx->segs[i];
        for (size_t d = 0; d < s->ndeps; d++)
            if (s->deps[d] == id) {
                s->deps[d] = s->deps[--s->ndeps];
                break;
            }
    }
    index_msg_drop_segment(idx, seg);
    memmove(&idx->segs[pos], &idx->segs[pos + 1], (idx->nsegs - pos - 1) * sizeof(*idx->segs));
    idx->nsegs--;
    free(seg->deps);
    free(seg);
}

void index_report_entries(const struct index *idx, const struct store_recovery *rec)
{
    for (const struct queue *q = idx->first_queue; q; q = q->next)
        for (size_t pos = q->head; pos < q->tail; pos++) {
            unsigned marks = queue_marks(q, pos);
            if (!(marks & QMARK_REMOVED))
                rec->entry(rec->ctx, q->name, q->len, queue_id(q, pos), (marks & QMARK_DELIVERED) != 0);
        }
}

void index_report_queues(const struct index *idx, const struct store_recovery *rec)
{
    for (const struct queue *q = idx->first_queue; q; q = q->next) {
        uint64_t bytes = 0;
        size_t hint = SIZE_MAX; /* a queue's ids increase */
        for (size_t pos = q->head; pos < q->tail; pos++) {
            struct msg_ref m;
            if (!(queue_marks(q, pos) & QMARK_REMOVED) && index_msg_find_near(idx, queue_id(q, pos), &hint, &m))
                bytes += msg_len(&m);
        }
        rec->queue(rec->ctx, q->name, q->len, queue_count(q), bytes);
    }
}
