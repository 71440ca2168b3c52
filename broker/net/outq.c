/* broker/net/outq.c: the output queue: slice ring, copy chunks and the chunk pool.
 *
 * Invariants: a copy slice lies inside one chunk; a chunk counts the slices pointing into it
 * (refs) and returns to the pool when the last one is released; q->tail, when set, has
 * refs >= 1, so an idle queue holds no chunk; and an empty queue holds no ring either. */
#include "outq.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct outq_chunk {
    struct outq_chunk *next; /* pool free list */
    size_t refs;
    size_t used;
    size_t cap;
    uint8_t data[];
};

_Static_assert(sizeof(struct outq_chunk) <= 32, "OUTQ_CHUNK_SIZE assumes a 32-byte header");

#define OUTQ_RING_FIRST 16 /* slots of a new ring, the size the pool keeps */

/* A ring on the pool's free list, linked through its own first bytes. */
struct free_ring {
    struct free_ring *next;
};

void outq_init(struct outq *q, struct outq_pool *pool)
{
    memset(q, 0, sizeof(*q));
    q->pool = pool;
}

void outq_pool_drain(struct outq_pool *pool)
{
    while (pool->free) {
        struct outq_chunk *chunk = pool->free;
        pool->free = chunk->next;
        free(chunk);
    }
    pool->count = 0;
    while (pool->free_rings) {
        struct free_ring *node = pool->free_rings;
        pool->free_rings = node->next;
        free(node);
    }
    pool->ring_count = 0;
}

static struct outq_chunk *chunk_get(struct outq *q, size_t cap)
{
    struct outq_chunk *chunk;
    if (cap <= OUTQ_CHUNK_SIZE && q->pool && q->pool->free) {
        chunk = q->pool->free;
        q->pool->free = chunk->next;
        q->pool->count--;
    } else {
        if (cap < OUTQ_CHUNK_SIZE)
            cap = OUTQ_CHUNK_SIZE;
        chunk = malloc(sizeof(*chunk) + cap);
        if (!chunk)
            return NULL;
        chunk->cap = cap;
    }
    chunk->next = NULL;
    chunk->refs = 0;
    chunk->used = 0;
    return chunk;
}

static void chunk_put(struct outq *q, struct outq_chunk *chunk)
{
    if (chunk->cap == OUTQ_CHUNK_SIZE && q->pool && q->pool->count < OUTQ_POOL_MAX) {
        chunk->next = q->pool->free;
        q->pool->free = chunk;
        q->pool->count++;
    } else {
        free(chunk);
    }
}

static void chunk_unref(struct outq *q, struct outq_chunk *chunk)
{
    if (--chunk->refs)
        return;
    if (q->tail == chunk)
        q->tail = NULL;
    chunk_put(q, chunk);
}

static void slice_release(struct outq *q, struct outq_slice *slice)
{
    if (slice->release)
        slice->release(slice->owner);
    else
        chunk_unref(q, slice->owner);
}

/* Gives an empty queue's ring back: a first-size ring to the pool, a larger one to malloc. */
static void ring_put(struct outq *q)
{
    struct outq_pool *pool = q->pool;
    if (q->ring && q->cap == OUTQ_RING_FIRST && pool && pool->ring_count < OUTQ_POOL_MAX) {
        struct free_ring *node = (struct free_ring *)q->ring;
        node->next = pool->free_rings;
        pool->free_rings = node;
        pool->ring_count++;
    } else {
        free(q->ring);
    }
    q->ring = NULL;
    q->head = q->cap = 0;
}

static int ring_make_room(struct outq *q)
{
    if (q->count < q->cap)
        return 0;
    uint32_t cap = q->cap ? q->cap * 2 : OUTQ_RING_FIRST;
    struct outq_slice *ring;
    if (cap == OUTQ_RING_FIRST && q->pool && q->pool->free_rings) {
        struct free_ring *node = q->pool->free_rings;
        q->pool->free_rings = node->next;
        q->pool->ring_count--;
        ring = (struct outq_slice *)node;
    } else {
        ring = malloc(cap * sizeof(*ring));
    }
    if (!ring)
        return -ENOMEM;
    for (uint32_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->cap = cap;
    return 0;
}

static struct outq_slice *last_slice(struct outq *q)
{
    return q->count ? &q->ring[(q->head + q->count - 1) & (q->cap - 1)] : NULL;
}

/* Accounts n bytes just claimed at the end of chunk: extends the last slice when it ends
 * there, else pushes a new slice (the ring has room: callers made it). */
static void claim(struct outq *q, struct outq_chunk *chunk, size_t n)
{
    struct outq_slice *last = last_slice(q);
    uint8_t *at = chunk->data + chunk->used;
    if (last && !last->release && last->owner == chunk && last->ptr + last->len == at) {
        last->len += n;
    } else {
        q->ring[(q->head + q->count++) & (q->cap - 1)] =
            (struct outq_slice){.ptr = at, .len = n, .release = NULL, .owner = chunk};
        chunk->refs++;
    }
    chunk->used += n;
    q->bytes += n;
}

/* Returns a chunk with at least `need` free bytes (need <= OUTQ_CHUNK_SIZE unless the caller
 * wants a dedicated large chunk) and room in the ring for one more slice, or NULL. */
static struct outq_chunk *space_for(struct outq *q, size_t need)
{
    if (ring_make_room(q) < 0)
        return NULL;
    if (q->tail && q->tail->cap - q->tail->used >= need)
        return q->tail;
    struct outq_chunk *chunk = chunk_get(q, need);
    if (chunk)
        q->tail = chunk; /* the previous tail lives on through its slices */
    return chunk;
}

int outq_write(struct outq *q, const void *data, size_t len)
{
    const uint8_t *from = data;
    while (len) {
        struct outq_chunk *tail = q->tail;
        size_t room = tail ? tail->cap - tail->used : 0;
        struct outq_chunk *chunk = space_for(q, room ? 1 : OUTQ_CHUNK_SIZE);
        if (!chunk)
            return -ENOMEM;
        size_t n = chunk->cap - chunk->used;
        if (n > len)
            n = len;
        memcpy(chunk->data + chunk->used, from, n);
        claim(q, chunk, n);
        from += n;
        len -= n;
    }
    return 0;
}

uint8_t *outq_reserve(struct outq *q, size_t len)
{
    static uint8_t nothing[1];
    q->reserved = 0;
    if (len == 0)
        return nothing; /* valid and never read: nothing is queued */
    struct outq_chunk *chunk = space_for(q, len);
    if (!chunk)
        return NULL;
    uint8_t *at = chunk->data + chunk->used;
    claim(q, chunk, len);
    q->reserved = len;
    return at;
}

void outq_commit(struct outq *q, size_t used)
{
    if (used >= q->reserved || q->count == 0) {
        q->reserved = 0;
        return;
    }
    size_t unused = q->reserved - used;
    q->reserved = 0;
    struct outq_slice *last = last_slice(q);
    struct outq_chunk *chunk = last->owner;
    last->len -= unused;
    chunk->used -= unused;
    q->bytes -= unused;
    if (last->len == 0) {
        q->count--;
        chunk_unref(q, chunk);
    }
}

int outq_write_ref(struct outq *q, const void *data, size_t len, void (*release)(void *owner),
                   void *owner)
{
    if (len == 0 || ring_make_room(q) < 0) {
        release(owner);
        return len == 0 ? 0 : -ENOMEM;
    }
    q->ring[(q->head + q->count++) & (q->cap - 1)] =
        (struct outq_slice){.ptr = data, .len = len, .release = release, .owner = owner};
    q->bytes += len;
    return 0;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++, n++) {
        const struct outq_slice *slice = &q->ring[(q->head + i) & (q->cap - 1)];
        iov[n].iov_base = (void *)slice->ptr;
        iov[n].iov_len = slice->len;
    }
    return n;
}

void outq_advance(struct outq *q, size_t n)
{
    q->reserved = 0;
    while (n) {
        struct outq_slice *slice = &q->ring[q->head];
        if (n < slice->len) {
            slice->ptr += n;
            slice->len -= n;
            q->bytes -= n;
            return;
        }
        struct outq_slice done = *slice;
        n -= done.len;
        q->bytes -= done.len;
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        slice_release(q, &done);
    }
    if (q->count == 0)
        ring_put(q); /* all written: an idle queue holds no ring */
}

void outq_clear(struct outq *q)
{
    while (q->count) {
        struct outq_slice done = q->ring[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
        q->bytes -= done.len;
        slice_release(q, &done);
    }
    ring_put(q);
    struct outq_pool *pool = q->pool;
    outq_init(q, pool);
}
