/* broker/net/outq.h: a connection's output queue: an ordered ring of slices handed to writev.
 * A slice either borrows caller memory (a ref slice, given back through its release callback
 * once written or dropped) or points into a copy chunk. Copies append into the current chunk
 * and extend the last slice while it is contiguous, so queueing small frames allocates nothing;
 * chunks come from and go back to a pool shared by the connections of one loop.
 *
 * Used by netconn.c only; public so that it can be embedded and unit tested. */
#ifndef WARREN_OUTQ_H
#define WARREN_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Bytes of payload in a pooled copy chunk (the allocation, header included, is 16 KiB). */
#define OUTQ_CHUNK_SIZE (16384 - 32)
/* Chunks kept on a pool's free list (4 MiB), enough for a few hundred connections writing in
 * the same pass without malloc; chunks beyond it are freed. */
#define OUTQ_POOL_MAX 256

struct outq_chunk;

struct outq_slice {
    const uint8_t *ptr;
    size_t len;
    void (*release)(void *owner); /* NULL for a copy slice */
    void *owner;                  /* copy slice: its struct outq_chunk */
};

/* Free copy chunks and slice rings shared by the queues of one loop (an empty queue gives its
 * ring back, so an idle connection holds neither). Zero is a valid empty pool. */
struct free_ring;
struct outq_pool {
    struct outq_chunk *free;
    size_t count;
    struct free_ring *free_rings; /* rings of the first size, at most OUTQ_POOL_MAX */
    size_t ring_count;
};

/* Zero (plus a pool pointer, see outq_init) is a valid empty queue. */
struct outq {
    struct outq_slice *ring; /* cap slots, cap a power of two; NULL while empty */
    uint32_t head;
    uint32_t count;
    uint32_t cap;
    struct outq_chunk *tail; /* chunk that copies append to; NULL when none is referenced */
    size_t bytes;            /* queued and not yet written */
    size_t reserved;         /* length of the last outq_reserve, for outq_commit */
    struct outq_pool *pool;
};

/* Makes q an empty queue taking its copy chunks from pool (which must outlive q). */
void outq_init(struct outq *q, struct outq_pool *pool);
/* Releases every slice (running release callbacks, in queue order) and frees the ring; q is
 * empty and reusable afterwards. */
void outq_clear(struct outq *q);
/* Frees the chunks and rings held by pool. */
void outq_pool_drain(struct outq_pool *pool);

/* Appends a copy of data. Returns 0 or -ENOMEM (a prefix of data may then be queued). */
int outq_write(struct outq *q, const void *data, size_t len);
/* Appends len contiguous bytes and returns where to write them (valid until the next call on
 * q), or NULL on allocation failure. */
uint8_t *outq_reserve(struct outq *q, size_t len);
/* Trims the bytes of the last outq_reserve to `used` (<= its length); call before any other
 * append. */
void outq_commit(struct outq *q, size_t used);
/* Appends data by reference; release(owner) runs once when it was written or dropped.
 * Returns 0 or -ENOMEM (release has then run). len 0 releases at once. */
int outq_write_ref(struct outq *q, const void *data, size_t len, void (*release)(void *owner),
                   void *owner);

/* Fills up to max iovecs with the oldest queued bytes; returns how many were filled. */
int outq_iov(const struct outq *q, struct iovec *iov, int max);
/* Drops the first n bytes (n <= q->bytes) after a write, releasing the slices fully written. */
void outq_advance(struct outq *q, size_t n);

#endif
