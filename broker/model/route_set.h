/* broker/model/route_set.h: the set of destinations one publish routes to. Insertion order is
 * kept (delivery order is deterministic) and duplicates are refused in O(1): a linear scan
 * while the set is small, an open-addressing hash of the same pointers above that. */
#ifndef WARREN_ROUTE_SET_H
#define WARREN_ROUTE_SET_H

#include <stdbool.h>
#include <stddef.h>

/* Up to this many items, lookups scan `items`; past it the hash index is used. */
#define ROUTE_SET_LINEAR_MAX 8

/* Zero-initialised is an empty, valid set. Callers read items[0..count) and never write
 * the fields; the rest is private. */
struct route_set {
    void **items;       /* destinations, in the order they were first added */
    size_t count;
    size_t capacity;    /* of items */
    void **slots;       /* hash index over items, populated only while count > LINEAR_MAX */
    size_t slot_count;  /* a power of two, or 0 */
};

/* Adds destination (non-NULL). Returns 1 when added, 0 when already present, -ENOMEM
 * (the set is unchanged), or -EINVAL for NULL. */
int route_set_add(struct route_set *set, void *destination);

/* True when destination is in the set. */
bool route_set_contains(const struct route_set *set, const void *destination);

/* Empties the set but keeps its memory, so reusing one set for every publish allocates
 * nothing in steady state. Costs O(count). */
void route_set_clear(struct route_set *set);

/* Releases the set's memory and leaves it empty (zero-initialised) again. */
void route_set_free(struct route_set *set);

#endif
