/* storage/index.c: the in-memory picture of the log (see index.h for the retirement rule):
 * the message table by id, queues by name with their entries in order, and index_apply, the
 * replay of one record shared by recovery and the I/O thread. */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_CHUNK 1024
struct entry_chunk {
    struct entry_chunk *next;
    struct entry entries[ENTRY_CHUNK];
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: queue names are short */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int index_init(struct index *idx)
{
    memset(idx, 0, sizeof(*idx));
    idx->slots = calloc(1024, sizeof(*idx->slots));
    idx->buckets = calloc(64, sizeof(*idx->buckets));
    if (!idx->slots || !idx->buckets) {
        index_free(idx);
        return -ENOMEM;
    }
    idx->slots_mask = 1023;
    idx->buckets_mask = 63;
    return 0;
}

void index_free(struct index *idx)
{
    for (size_t i = 0; i < idx->nsegs; i++) {
        free(idx->segs[i]->deps);
        free(idx->segs[i]);
    }
    free(idx->segs);
    free(idx->slots);
    struct queue *q = idx->first_queue;
    while (q) {
        struct queue *next = q->next;
        free(q->name);
        free(q);
        q = next;
    }
    free(idx->buckets);
    while (idx->chunks) {
        struct entry_chunk *next = idx->chunks->next;
        free(idx->chunks);
        idx->chunks = next;
    }
    memset(idx, 0, sizeof(*idx));
}

struct message *index_message_find(const struct index *idx, uint64_t id)
{
    for (size_t i = mix64(id) & idx->slots_mask;; i = (i + 1) & idx->slots_mask) {
        struct message *m = &idx->slots[i];
        if (!m->seg)
            return NULL;
        if (m->id == id)
            return m;
    }
}

static int message_table_grow(struct index *idx)
{
    size_t n = (idx->slots_mask + 1) * 2;
    struct message *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i <= idx->slots_mask; i++) {
        struct message *m = &idx->slots[i];
        if (!m->seg)
            continue;
        size_t j = mix64(m->id) & (n - 1);
        while (slots[j].seg)
            j = (j + 1) & (n - 1);
        slots[j] = *m;
    }
    free(idx->slots);
    idx->slots = slots;
    idx->slots_mask = n - 1;
    return 0;
}

/* Removes a slot, shifting later members of its probe run back (no tombstones). */
void index_message_remove(struct index *idx, struct message *m)
{
    size_t mask = idx->slots_mask, i = (size_t)(m - idx->slots), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!idx->slots[j].seg)
            break;
        size_t home = mix64(idx->slots[j].id) & mask;
        /* the member at j may move to i only if its home is not cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            idx->slots[i] = idx->slots[j];
            i = j;
        }
    }
    memset(&idx->slots[i], 0, sizeof(idx->slots[i]));
    idx->nmessages--;
}

static struct queue *queue_find(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash)
{
    for (struct queue *q = idx->buckets[hash & idx->buckets_mask]; q; q = q->hnext)
        if (q->hash == hash && q->len == len && memcmp(q->name, name, len) == 0)
            return q;
    return NULL;
}

static struct queue *queue_create(struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash)
{
    if (idx->nqueues > idx->buckets_mask) {
        size_t n = (idx->buckets_mask + 1) * 2;
        struct queue **buckets = calloc(n, sizeof(*buckets));
        if (!buckets)
            return NULL;
        for (struct queue *q = idx->first_queue; q; q = q->next) {
            q->hnext = buckets[q->hash & (n - 1)];
            buckets[q->hash & (n - 1)] = q;
        }
        free(idx->buckets);
        idx->buckets = buckets;
        idx->buckets_mask = n - 1;
    }
    struct queue *q = calloc(1, sizeof(*q));
    if (!q || !(q->name = malloc(len ? len : 1))) {
        free(q);
        return NULL;
    }
    if (len)
        memcpy(q->name, name, len);
    q->len = len;
    q->hash = hash;
    q->hnext = idx->buckets[hash & idx->buckets_mask];
    idx->buckets[hash & idx->buckets_mask] = q;
    q->prev = idx->last_queue;
    if (q->prev)
        q->prev->next = q;
    else
        idx->first_queue = q;
    idx->last_queue = q;
    idx->nqueues++;
    return q;
}

/* Queues are forgotten when they empty, so the table holds only queues with entries. */
static void queue_destroy(struct index *idx, struct queue *q)
{
    struct queue **link = &idx->buckets[q->hash & idx->buckets_mask];
    while (*link != q)
        link = &(*link)->hnext;
    *link = q->hnext;
    if (q->prev)
        q->prev->next = q->next;
    else
        idx->first_queue = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        idx->last_queue = q->prev;
    idx->nqueues--;
    free(q->name);
    free(q);
}

static void add_dependency(struct segment *seg, const struct message *m)
{
    if (m->seg == seg)
        return;
    for (size_t i = seg->ndeps; i-- > 0;) /* newest first: the likeliest match */
        if (seg->deps[i] == m->seg->id)
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
    seg->deps[seg->ndeps++] = m->seg->id;
}

/* Takes entry e out of its queue and its message; the message dies with its last entry. */
static void entry_remove(struct index *idx, struct segment *seg, struct message *m, struct entry *e)
{
    struct queue *q = e->queue;
    if (e->qprev)
        e->qprev->qnext = e->qnext;
    else
        q->head = e->qnext;
    if (e->qnext)
        e->qnext->qprev = e->qprev;
    else
        q->tail = e->qprev;
    struct entry **link = &m->entries;
    while (*link != e)
        link = &(*link)->mnext;
    *link = e->mnext;
    e->mnext = idx->free_entries;
    idx->free_entries = e;
    add_dependency(seg, m);
    if (--m->refs == 0) {
        m->seg->live--;
        idx->live_messages--;
        index_message_remove(idx, m);
    }
}

static struct entry *entry_alloc(struct index *idx)
{
    if (!idx->free_entries) {
        struct entry_chunk *c = malloc(sizeof(*c));
        if (!c)
            return NULL;
        c->next = idx->chunks;
        idx->chunks = c;
        for (size_t i = 0; i < ENTRY_CHUNK; i++) {
            c->entries[i].mnext = idx->free_entries;
            idx->free_entries = &c->entries[i];
        }
    }
    struct entry *e = idx->free_entries;
    idx->free_entries = e->mnext;
    return e;
}

static int apply_enqueue(struct index *idx, struct segment *seg, struct message *m, const struct rec *r)
{
    uint64_t hash = hash_bytes(r->queue, r->queue_len);
    struct queue *q = queue_find(idx, r->queue, r->queue_len, hash);
    for (struct entry *e = m->entries; q && e; e = e->mnext)
        if (e->queue == q)
            return 0; /* already there: ineffective */
    if (!q && !(q = queue_create(idx, r->queue, r->queue_len, hash)))
        return -ENOMEM;
    struct entry *e = entry_alloc(idx);
    if (!e)
        return -ENOMEM;
    *e = (struct entry){.msg_id = m->id, .queue = q, .qprev = q->tail, .mnext = m->entries};
    if (q->tail)
        q->tail->qnext = e;
    else
        q->head = e;
    q->tail = e;
    m->entries = e;
    if (m->refs++ == 0) {
        m->seg->unreferenced--;
        m->seg->live++;
        idx->live_messages++;
    }
    add_dependency(seg, m);
    return 0;
}

int index_apply(struct index *idx, struct segment *seg, const struct rec *r, uint64_t offset)
{
    if (r->type != REC_QUEUE_DELETED && r->msg_id > idx->max_msg_id)
        idx->max_msg_id = r->msg_id;
    if (r->type == REC_QUEUE_DELETED) {
        struct queue *q = queue_find(idx, r->queue, r->queue_len, hash_bytes(r->queue, r->queue_len));
        if (!q)
            return 0;
        while (q->head)
            entry_remove(idx, seg, index_message_find(idx, q->head->msg_id), q->head);
        queue_destroy(idx, q);
        return 0;
    }
    if (r->type == REC_PURGE) {
        struct queue *q = queue_find(idx, r->queue, r->queue_len, hash_bytes(r->queue, r->queue_len));
        for (struct entry *e = q ? q->head : NULL, *next; e; e = next) {
            next = e->qnext;
            if (e->msg_id > r->msg_id)
                entry_remove(idx, seg, index_message_find(idx, e->msg_id), e);
        }
        if (q && !q->head)
            queue_destroy(idx, q);
        return 0;
    }
    struct message *m = index_message_find(idx, r->msg_id);
    if (r->type == REC_MESSAGE) {
        if (m)
            return 0; /* a duplicate id: the first copy stays */
        if ((idx->nmessages + 1) * 10 > (idx->slots_mask + 1) * 7 && message_table_grow(idx) < 0)
            return -ENOMEM;
        size_t i = mix64(r->msg_id) & idx->slots_mask;
        while (idx->slots[i].seg)
            i = (i + 1) & idx->slots_mask;
        idx->slots[i] = (struct message){.id = r->msg_id, .seg = seg, .offset = offset, .len = (uint32_t)r->data_len};
        idx->nmessages++;
        seg->unreferenced++;
        return 0;
    }
    if (!m)
        return 0; /* its message is gone (or never made it to disk): nothing to change */
    if (r->type == REC_ENQUEUE)
        return apply_enqueue(idx, seg, m, r);
    struct entry *e = m->entries;
    while (e && (e->queue->len != r->queue_len || memcmp(e->queue->name, r->queue, r->queue_len) != 0))
        e = e->mnext;
    if (!e)
        return 0;
    if (r->type == REC_DELIVER) {
        if (!e->delivered) {
            e->delivered = true;
            add_dependency(seg, m);
        }
        return 0;
    }
    struct queue *q = e->queue;
    entry_remove(idx, seg, m, e);
    if (!q->head)
        queue_destroy(idx, q);
    return 0;
}


size_t index_queue_entries(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t after_id,
                           struct index_entry_location *out, size_t max)
{
    struct queue *q = queue_find(idx, name, len, hash_bytes(name, len));
    if (!q || max == 0)
        return 0;
    /* Start right after after_id's own entry when it is still there; otherwise from the head
     * (what precedes the wanted part is what the reader holds in memory: short). */
    const struct entry *e = q->head;
    const struct message *m = index_message_find(idx, after_id);
    for (const struct entry *own = m ? m->entries : NULL; own; own = own->mnext)
        if (own->queue == q) {
            e = own->qnext;
            break;
        }
    size_t n = 0;
    for (; e && n < max; e = e->qnext) {
        if (e->msg_id <= after_id)
            continue;
        const struct message *em = index_message_find(idx, e->msg_id);
        out[n++] = (struct index_entry_location){e->msg_id, em->seg->id, em->offset, em->len, e->delivered};
    }
    return n;
}
