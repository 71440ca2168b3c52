/* broker/model/route_set.c: the destination set filled by routing. The hash index uses
 * linear probing with NULL as the empty slot, and is kept at most half full. */
#include "route_set.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_SET_MIN_ITEMS 16
#define ROUTE_SET_MIN_SLOTS 32

/* Pointers are aligned, so their low bits carry nothing: mix before masking. */
static size_t slot_of(const void *pointer, size_t slot_count)
{
    uint64_t h = (uint64_t)(uintptr_t)pointer;
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return (size_t)h & (slot_count - 1);
}

/* Returns the slot holding pointer, or the empty slot where it would go. */
static size_t probe(void *const *slots, size_t slot_count, const void *pointer)
{
    size_t mask = slot_count - 1;
    size_t i = slot_of(pointer, slot_count);
    while (slots[i] != NULL && slots[i] != pointer)
        i = (i + 1) & mask;
    return i;
}

static bool indexed(const struct route_set *set)
{
    return set->count > ROUTE_SET_LINEAR_MAX;
}

/* Indexes items[0..count) in a table with room for at least `needed` items. Invariant: the
 * slots hold exactly the items while indexed(set), and are all NULL otherwise. */
static int reindex(struct route_set *set, size_t needed)
{
    size_t slot_count = set->slot_count ? set->slot_count : ROUTE_SET_MIN_SLOTS;
    while (slot_count < needed * 2)
        slot_count *= 2;

    void **slots = set->slots;
    if (slot_count != set->slot_count) {
        slots = calloc(slot_count, sizeof(*slots));
        if (slots == NULL)
            return -ENOMEM;
        free(set->slots);
    } else if (indexed(set)) {
        return 0;
    }
    for (size_t i = 0; i < set->count; i++)
        slots[probe(slots, slot_count, set->items[i])] = set->items[i];
    set->slots = slots;
    set->slot_count = slot_count;
    return 0;
}

bool route_set_contains(const struct route_set *set, const void *destination)
{
    if (destination == NULL)
        return false;
    if (!indexed(set)) {
        for (size_t i = 0; i < set->count; i++) {
            if (set->items[i] == destination)
                return true;
        }
        return false;
    }
    return set->slots[probe(set->slots, set->slot_count, destination)] != NULL;
}

int route_set_add(struct route_set *set, void *destination)
{
    if (destination == NULL)
        return -EINVAL;
    if (route_set_contains(set, destination))
        return 0;

    if (set->count == set->capacity) {
        size_t capacity = set->capacity ? set->capacity * 2 : ROUTE_SET_MIN_ITEMS;
        void **items = realloc(set->items, capacity * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        set->items = items;
        set->capacity = capacity;
    }
    if (set->count + 1 > ROUTE_SET_LINEAR_MAX) {
        /* Crossing the threshold builds the index from the linear items; later it grows. */
        if (!indexed(set) || (set->count + 1) * 2 > set->slot_count) {
            int rc = reindex(set, set->count + 1);
            if (rc < 0)
                return rc;
        }
        set->slots[probe(set->slots, set->slot_count, destination)] = destination;
    }
    set->items[set->count++] = destination;
    return 1;
}

void route_set_clear(struct route_set *set)
{
    if (indexed(set)) {
        /* Emptying slots newest first keeps every remaining item's probe path intact, so
         * each is found where it was put: O(count) instead of zeroing the whole table. */
        for (size_t i = set->count; i-- > 0;)
            set->slots[probe(set->slots, set->slot_count, set->items[i])] = NULL;
    }
    set->count = 0;
}

void route_set_free(struct route_set *set)
{
    free(set->items);
    free(set->slots);
    memset(set, 0, sizeof(*set));
}
