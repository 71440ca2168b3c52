/* storage/index_segments.c: the index's segment bookkeeping (which segments exist, which can be
 * deleted under the rule in index.h, forgetting a deleted one) and recovery's report of live
 * messages and entries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

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
    for (size_t i = 0; seg->unreferenced > 0 && i <= idx->slots_mask;) {
        if (idx->slots[i].seg == seg) {
            index_message_remove(idx, &idx->slots[i]); /* a later member may have moved into i */
            seg->unreferenced--;
        } else {
            i++;
        }
    }
    memmove(&idx->segs[pos], &idx->segs[pos + 1], (idx->nsegs - pos - 1) * sizeof(*idx->segs));
    idx->nsegs--;
    free(seg->deps);
    free(seg);
}

static int location_cmp(const void *a, const void *b)
{
    const struct index_location *x = a, *y = b;
    if (x->segment_id != y->segment_id)
        return x->segment_id < y->segment_id ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

long index_live_locations(const struct index *idx, struct index_location **out)
{
    struct index_location *locs = malloc((idx->live_messages + 1) * sizeof(*locs));
    if (!locs)
        return -ENOMEM;
    long n = 0;
    for (size_t i = 0; i <= idx->slots_mask; i++) {
        const struct message *m = &idx->slots[i];
        if (m->seg && m->refs > 0)
            locs[n++] = (struct index_location){m->seg->id, m->offset, m->id};
    }
    qsort(locs, (size_t)n, sizeof(*locs), location_cmp);
    *out = locs;
    return n;
}

void index_report_entries(const struct index *idx, const struct store_recovery *rec)
{
    for (const struct queue *q = idx->first_queue; q; q = q->next)
        for (const struct entry *e = q->head; e; e = e->qnext)
            rec->entry(rec->ctx, q->name, q->len, e->msg_id, e->delivered);
}

void index_report_queues(const struct index *idx, const struct store_recovery *rec)
{
    for (const struct queue *q = idx->first_queue; q; q = q->next) {
        uint64_t count = 0, bytes = 0;
        for (const struct entry *e = q->head; e; e = e->qnext) {
            count++;
            bytes += index_message_find(idx, e->msg_id)->len;
        }
        rec->queue(rec->ctx, q->name, q->len, count, bytes);
    }
}
