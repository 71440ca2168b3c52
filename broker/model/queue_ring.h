/* broker/model/queue_ring.h: a growable ring buffer (array deque) of queue entries, private
 * to queue.c. Entries are stored by value, so enqueueing allocates only when the ring grows;
 * capacity doubles when full and halves when three quarters empty, so every operation at the
 * ends is amortised O(1). */
#ifndef WARREN_QUEUE_RING_H
#define WARREN_QUEUE_RING_H

#include <stddef.h>

#include "queue.h"

/* Zero-initialised is an empty ring that owns no memory. */
struct queue_ring {
    struct queue_entry *slots;
    size_t head;     /* index of the first entry */
    size_t count;
    size_t capacity; /* 0 or a power of two */
};

static inline size_t queue_ring_count(const struct queue_ring *ring) { return ring->count; }

/* The entry at position i from the front (i < count); valid until the ring changes. */
static inline struct queue_entry *queue_ring_at(const struct queue_ring *ring, size_t i)
{
    return &ring->slots[(ring->head + i) & (ring->capacity - 1)];
}

/* The first entry, or NULL when empty; valid until the ring changes. */
static inline struct queue_entry *queue_ring_front(const struct queue_ring *ring)
{
    return ring->count ? &ring->slots[ring->head] : NULL;
}

/* Appends a copy of entry. Returns 0, or -ENOMEM (the ring is unchanged). */
int queue_ring_push_back(struct queue_ring *ring, const struct queue_entry *entry);

/* Inserts a copy of entry before the first entry with a greater seq, moving whichever side of
 * the ring is shorter: O(1) when entries arrive in ascending or descending seq order, O(n)
 * at worst. Returns 0, or -ENOMEM (the ring is unchanged). */
int queue_ring_insert_sorted(struct queue_ring *ring, const struct queue_entry *entry);

/* Removes the first entry (the ring must not be empty) and copies it to *out. */
void queue_ring_pop_front(struct queue_ring *ring, struct queue_entry *out);

/* Releases the ring's memory (not the messages its entries point to) and leaves it empty. */
void queue_ring_free(struct queue_ring *ring);

#endif
