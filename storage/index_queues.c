/* storage/index_queues.c: the index's queues, by name, each with its entries as an array of
 * message ids in increasing order (4 bytes and 2 mark bits an entry: 32-bit offsets from the
 * queue's base; 8 bytes in a "wide" queue, whose ids span 2^32 or more), so an entry is found by
 * binary search. The broker's ids grow along each queue, so an enqueue is an append; an id below
 * the queue's greatest (a relocated message coming back after a restart, a log written by hand)
 * is inserted at its place, shifting the shorter side. Consumption from the head just moves
 * head; a removal in the middle leaves a tombstone; the array is compacted (and shrunk) when the
 * consumed prefix and tombstones make up half of it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_private.h"

#define QUEUE_MIN 16 /* first allocation of a queue's arrays */

uint64_t index_name_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: queue names are short */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

struct queue *index_queue_find(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash)
{
    for (struct queue *q = idx->buckets[hash & idx->buckets_mask]; q; q = q->hnext)
        if (q->hash == hash && q->len == len && memcmp(q->name, name, len) == 0)
            return q;
    return NULL;
}

struct queue *index_queue_create(struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash)
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

void index_queue_destroy(struct index *idx, struct queue *q)
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
    free(q->ids); /* or offsets: the same pointer */
    free(q->marks);
    free(q->name);
    free(q);
}

/* First position in [head, tail) whose id is >= id (tail when none). */
static size_t lower_bound(const struct queue *q, uint64_t id)
{
    size_t lo = q->head, hi = q->tail;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (queue_id(q, mid) < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t queue_position(const struct queue *q, uint64_t id)
{
    if (q->head == q->tail || id > queue_id(q, q->tail - 1))
        return SIZE_MAX;
    if (queue_id(q, q->head) == id) /* the usual ack: the oldest entry (never a tombstone) */
        return q->head;
    size_t pos = lower_bound(q, id);
    return pos < q->tail && queue_id(q, pos) == id && !(queue_marks(q, pos) & QMARK_REMOVED) ? pos : SIZE_MAX;
}

size_t queue_start_after(const struct queue *q, uint64_t after_id)
{
    return after_id == UINT64_MAX ? q->tail : lower_bound(q, after_id + 1);
}

/* Bytes of one position of the id array. */
static size_t id_size(const struct queue *q)
{
    return q->wide ? sizeof(*q->ids) : sizeof(*q->offsets);
}

/* Moves n ids from position from to position to, as memmove does. */
static void move_ids(struct queue *q, size_t to, size_t from, size_t n)
{
    unsigned char *a = (unsigned char *)q->ids;
    memmove(a + to * id_size(q), a + from * id_size(q), n * id_size(q));
}

/* Rewrites the offsets of [head, tail) against a new base; every id must fit it. */
static void queue_rebase(struct queue *q, uint64_t base)
{
    for (size_t pos = q->head; pos < q->tail; pos++)
        q->offsets[pos] = (uint32_t)(q->base + q->offsets[pos] - base);
    q->base = base;
}

/* Makes sure id can be stored: an empty queue takes it as its base; otherwise rebases the
 * offsets on the lowest of id and the head's id when that brings the queue's ids within 2^32,
 * else makes the queue wide. Returns 0 or -ENOMEM. */
static int queue_fit(struct queue *q, uint64_t id)
{
    if (q->wide)
        return 0;
    if (q->head == q->tail) {
        q->base = id;
        return 0;
    }
    if (id >= q->base && id - q->base <= UINT32_MAX)
        return 0;
    uint64_t lo = queue_id(q, q->head), hi = queue_id(q, q->tail - 1);
    lo = id < lo ? id : lo;
    hi = id > hi ? id : hi;
    if (hi - lo <= UINT32_MAX) {
        queue_rebase(q, lo);
        return 0;
    }
    uint64_t *ids = malloc(q->cap * sizeof(*ids)); /* cap > 0: the queue is not empty */
    if (!ids)
        return -ENOMEM;
    for (size_t pos = q->head; pos < q->tail; pos++)
        ids[pos] = queue_id(q, pos);
    free(q->offsets);
    q->ids = ids;
    q->wide = true;
    return 0;
}

/* Goes back to offsets when a wide queue's ids span less than 2^32 again (a failed allocation
 * keeps it wide). */
static void queue_narrow(struct queue *q)
{
    if (!q->wide || q->head == q->tail || queue_id(q, q->tail - 1) - queue_id(q, q->head) > UINT32_MAX)
        return;
    uint32_t *offsets = malloc(q->cap * sizeof(*offsets));
    if (!offsets)
        return;
    uint64_t base = queue_id(q, q->head);
    for (size_t pos = q->head; pos < q->tail; pos++)
        offsets[pos] = (uint32_t)(q->ids[pos] - base);
    free(q->ids);
    q->offsets = offsets;
    q->base = base;
    q->wide = false;
}

/* Sets both arrays to hold cap positions. The marks beyond tail stay zero. */
static int queue_resize(struct queue *q, size_t cap)
{
    size_t words = (cap + 31) / 32, old_words = (q->cap + 31) / 32;
    void *ids = realloc(q->ids, cap * id_size(q));
    if (!ids)
        return -ENOMEM;
    q->ids = ids;
    uint64_t *marks = realloc(q->marks, words * sizeof(*marks));
    if (!marks) { /* whichever way, cap must not exceed either array */
        if (cap > q->cap)
            return -ENOMEM; /* ids is merely larger than needed */
        q->cap = cap;       /* marks is merely larger than needed (and zero past tail) */
        return 0;
    }
    if (words > old_words)
        memset(marks + old_words, 0, (words - old_words) * sizeof(*marks));
    q->marks = marks;
    q->cap = cap;
    return 0;
}

/* Moves the entries to positions [0, count) with their marks and gives back memory when the
 * arrays are mostly empty. */
static void queue_compact(struct queue *q)
{
    size_t n = 0, old_tail = q->tail;
    for (size_t pos = q->head; pos < old_tail; pos++) {
        unsigned marks = queue_marks(q, pos);
        if (marks & QMARK_REMOVED)
            continue;
        queue_set_id(q, n, queue_id(q, pos));
        q->marks[n >> 5] &= ~((uint64_t)3 << ((n & 31) * 2)); /* n <= pos: only n's bits change */
        queue_set_mark(q, n, marks);
        n++;
    }
    for (size_t pos = n; pos < old_tail && (pos & 31) != 0; pos++)
        q->marks[pos >> 5] &= ~((uint64_t)3 << ((pos & 31) * 2));
    size_t first_word = (n + 31) / 32, end_word = (old_tail + 31) / 32;
    if (end_word > first_word)
        memset(q->marks + first_word, 0, (end_word - first_word) * sizeof(*q->marks));
    q->head = 0;
    q->tail = n;
    q->removed = 0;
    if (q->cap > n + n / 2 + QUEUE_MIN)
        queue_resize(q, n + n / 4 + QUEUE_MIN); /* shrinking: a failure keeps the larger arrays */
    queue_narrow(q);
}

/* Sets the two mark bits of pos to marks. */
static void queue_put_marks(struct queue *q, size_t pos, unsigned marks)
{
    q->marks[pos >> 5] &= ~((uint64_t)3 << ((pos & 31) * 2));
    queue_set_mark(q, pos, marks);
}

/* Makes room for id at its sorted place (rare: see the file comment). q is not empty, id is below
 * its last id and not in it, and fits (queue_fit); the arrays have a free position past tail. */
static void queue_insert(struct queue *q, uint64_t id)
{
    size_t pos = lower_bound(q, id);
    if (queue_id(q, pos) == id) { /* a tombstone of an earlier entry: revive its position */
        queue_put_marks(q, pos, 0);
        q->removed--;
        return;
    }
    if (q->head > 0 && pos - q->head <= q->tail - pos) { /* shift [head, pos) down by one */
        q->head--;
        move_ids(q, q->head, q->head + 1, pos - 1 - q->head);
        for (size_t i = q->head; i + 1 < pos; i++)
            queue_put_marks(q, i, queue_marks(q, i + 1));
        pos--;
    } else { /* shift [pos, tail) up by one */
        move_ids(q, pos + 1, pos, q->tail - pos);
        for (size_t i = q->tail; i > pos; i--)
            queue_put_marks(q, i, queue_marks(q, i - 1));
        q->tail++;
    }
    queue_set_id(q, pos, id);
    queue_put_marks(q, pos, 0);
}

int queue_add(struct queue *q, uint64_t id)
{
    if (q->tail == q->cap) {
        if ((q->head + q->removed) * 4 >= q->cap && q->cap > 0)
            queue_compact(q);
        if (q->tail == q->cap && queue_resize(q, q->cap + q->cap / 2 + QUEUE_MIN) < 0)
            return -ENOMEM;
    }
    if (queue_fit(q, id) < 0)
        return -ENOMEM;
    if (q->tail > q->head && id < queue_id(q, q->tail - 1))
        queue_insert(q, id);
    else
        queue_set_id(q, q->tail++, id);
    return 0;
}

void queue_mark_removed(struct queue *q, size_t pos)
{
    queue_set_mark(q, pos, QMARK_REMOVED);
    q->removed++;
}

void queue_tidy(struct queue *q)
{
    while (q->head < q->tail && (queue_marks(q, q->head) & QMARK_REMOVED)) {
        q->marks[q->head >> 5] &= ~((uint64_t)3 << ((q->head & 31) * 2));
        q->head++;
        q->removed--;
    }
    while (q->tail > q->head && (queue_marks(q, q->tail - 1) & QMARK_REMOVED)) {
        q->tail--;
        q->marks[q->tail >> 5] &= ~((uint64_t)3 << ((q->tail & 31) * 2));
        q->removed--;
    }
    if (q->head == q->tail)
        q->head = q->tail = 0;
    if (q->cap > 4 * QUEUE_MIN && (q->head + q->removed) * 3 > q->cap)
        queue_compact(q);
}
