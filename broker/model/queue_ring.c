/* broker/model/queue_ring.c: the entry ring buffer behind every queue. Capacity is a power of
 * two so positions wrap with a mask. */
#include "queue_ring.h"

#include <errno.h>
#include <stdlib.h>

#define QUEUE_RING_MIN_CAPACITY 16

/* Rings at or below this capacity never shrink: a queue that drains and refills keeps its
 * memory, so the steady state allocates nothing. */
#define QUEUE_RING_KEEP_CAPACITY 512

/* Moves the entries into a new array of `capacity` slots, front at index 0. */
static int resize(struct queue_ring *ring, size_t capacity)
{
    struct queue_entry *slots = malloc(capacity * sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ring->count; i++)
        slots[i] = *queue_ring_at(ring, i);
    free(ring->slots);
    ring->slots = slots;
    ring->head = 0;
    ring->capacity = capacity;
    return 0;
}

static int reserve_one(struct queue_ring *ring)
{
    if (ring->count < ring->capacity)
        return 0;
    size_t capacity = ring->capacity ? ring->capacity * 2 : QUEUE_RING_MIN_CAPACITY;
    if (capacity > SIZE_MAX / sizeof(struct queue_entry))
        return -ENOMEM;
    return resize(ring, capacity);
}

int queue_ring_push_back(struct queue_ring *ring, const struct queue_entry *entry)
{
    if (reserve_one(ring) != 0)
        return -ENOMEM;
    ring->count++;
    *queue_ring_at(ring, ring->count - 1) = *entry;
    return 0;
}

int queue_ring_insert_sorted(struct queue_ring *ring, const struct queue_entry *entry)
{
    if (reserve_one(ring) != 0)
        return -ENOMEM;
    /* Position: the number of entries with seq <= entry->seq. */
    size_t low = 0, high = ring->count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (queue_ring_at(ring, middle)->seq <= entry->seq)
            low = middle + 1;
        else
            high = middle;
    }
    size_t position = low;
    if (position < ring->count - position) {
        /* Open the gap by moving the front part one slot towards the head. */
        ring->head = (ring->head - 1) & (ring->capacity - 1);
        for (size_t i = 0; i < position; i++)
            *queue_ring_at(ring, i) = *queue_ring_at(ring, i + 1);
    } else {
        for (size_t i = ring->count; i > position; i--)
            *queue_ring_at(ring, i) = *queue_ring_at(ring, i - 1);
    }
    ring->count++;
    *queue_ring_at(ring, position) = *entry;
    return 0;
}

void queue_ring_pop_front(struct queue_ring *ring, struct queue_entry *out)
{
    *out = ring->slots[ring->head];
    ring->head = (ring->head + 1) & (ring->capacity - 1);
    ring->count--;
    /* Shrinking at a quarter full (not half) leaves room to grow back without resizing. */
    if (ring->capacity > QUEUE_RING_KEEP_CAPACITY && ring->count <= ring->capacity / 4)
        (void)resize(ring, ring->capacity / 2); /* on ENOMEM the larger ring simply stays */
}

void queue_ring_free(struct queue_ring *ring)
{
    free(ring->slots);
    *ring = (struct queue_ring){0};
}
