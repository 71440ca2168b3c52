/* storage/index_messages.c: the index's messages. The broker gives ids in increasing order, so
 * almost every message joins the ordered run of the newest segment: a 16-byte slot in an array
 * sorted by id, found by a binary search over the segments (by lo) then within the run. A message
 * that does not fit that order (an id at or below one already ordered, a log written by hand, a
 * duplicate id coming back after its first copy died, an offset or id span past 32 bits) goes
 * to the loose table, a hash by id. Dead ordered slots stay, marked, until their segment is
 * compacted (when they are the majority) or dropped. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_private.h"

#define SLOTS_MIN 64        /* first allocation of a run */
#define COMPACT_MIN_DEAD 16 /* fewer dead slots are not worth a pass */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The position of the segment whose ordered run would hold id: the last with lo <= id (lo never
 * decreases along the segments), or SIZE_MAX. */
static size_t run_index(const struct index *idx, uint64_t id)
{
    if (idx->nsegs == 0 || idx->segs[0]->lo > id)
        return SIZE_MAX;
    if (id >= idx->segs[idx->nsegs - 1]->lo)
        return idx->nsegs - 1;
    size_t lo = 0, hi = idx->nsegs - 1; /* answer in [lo, hi): segs[hi]->lo > id */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->segs[mid]->lo <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The slot of id in seg's run (dead or not), or NULL. */
static struct msg_slot *slot_of(const struct segment *seg, uint64_t id)
{
    if (seg->nslots == 0 || id < seg->base || id - seg->base > UINT32_MAX)
        return NULL;
    uint32_t delta = (uint32_t)(id - seg->base);
    if (delta > seg->slots[seg->nslots - 1].delta)
        return NULL; /* past the run's end: a new message, the usual case while storing or replaying */
    /* deltas strictly increase, so slot i has delta >= i: the answer is below delta + 1, and
     * is exactly there while no slot has been compacted away and no id skipped */
    size_t hi = (size_t)delta + 1 < seg->nslots ? (size_t)delta + 1 : seg->nslots;
    if (seg->slots[hi - 1].delta == delta)
        return &seg->slots[hi - 1];
    size_t lo = 0;
    hi--;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->slots[mid].delta < delta)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < seg->nslots && seg->slots[lo].delta == delta ? &seg->slots[lo] : NULL;
}

static struct loose_message *loose_find(const struct index *idx, uint64_t id)
{
    if (idx->nloose == 0)
        return NULL;
    for (size_t i = mix64(id) & idx->loose_mask;; i = (i + 1) & idx->loose_mask) {
        struct loose_message *m = &idx->loose[i];
        if (!m->seg)
            return NULL;
        if (m->id == id)
            return m;
    }
}

/* Finds id in the run of segs[at] (at < nsegs, or SIZE_MAX: none), else in the loose table. */
static bool find_in(const struct index *idx, size_t at, uint64_t id, struct msg_ref *out)
{
    struct segment *seg = at < idx->nsegs ? idx->segs[at] : NULL;
    struct msg_slot *slot = seg ? slot_of(seg, id) : NULL;
    if (slot && !(slot->len & MSG_DEAD)) {
        *out = (struct msg_ref){seg, slot, NULL};
        return true;
    }
    struct loose_message *m = loose_find(idx, id);
    if (m) {
        *out = (struct msg_ref){m->seg, NULL, m};
        return true;
    }
    return false;
}

bool index_msg_find(const struct index *idx, uint64_t id, struct msg_ref *out)
{
    return find_in(idx, run_index(idx, id), id, out);
}

bool index_msg_find_near(const struct index *idx, uint64_t id, size_t *hint, struct msg_ref *out)
{
    size_t at = *hint;
    if (at < idx->nsegs && idx->segs[at]->lo <= id) {
        while (at + 1 < idx->nsegs && idx->segs[at + 1]->lo <= id)
            at++;
    } else {
        at = run_index(idx, id);
    }
    *hint = at;
    return find_in(idx, at, id, out);
}

static int loose_grow(struct index *idx)
{
    size_t n = idx->loose ? (idx->loose_mask + 1) * 2 : 64;
    struct loose_message *table = calloc(n, sizeof(*table));
    if (!table)
        return -ENOMEM;
    for (size_t i = 0; idx->loose && i <= idx->loose_mask; i++) {
        struct loose_message *m = &idx->loose[i];
        if (!m->seg)
            continue;
        size_t j = mix64(m->id) & (n - 1);
        while (table[j].seg)
            j = (j + 1) & (n - 1);
        table[j] = *m;
    }
    free(idx->loose);
    idx->loose = table;
    idx->loose_mask = n - 1;
    return 0;
}

/* Removes a loose slot, shifting later members of its probe run back (no tombstones). */
static void loose_remove(struct index *idx, struct loose_message *m)
{
    size_t mask = idx->loose_mask, i = (size_t)(m - idx->loose), j = i;
    m->seg->loose--;
    for (;;) {
        j = (j + 1) & mask;
        if (!idx->loose[j].seg)
            break;
        size_t home = mix64(idx->loose[j].id) & mask;
        /* the member at j may move to i only if its home is not cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            idx->loose[i] = idx->loose[j];
            i = j;
        }
    }
    memset(&idx->loose[i], 0, sizeof(idx->loose[i]));
    idx->nloose--;
}

/* Puts a message in the loose table; the table has room (its load stays under 70%). */
static void loose_put(struct index *idx, struct segment *seg, uint64_t id, uint64_t offset, uint32_t len,
                      uint32_t refs)
{
    size_t i = mix64(id) & idx->loose_mask;
    while (idx->loose[i].seg)
        i = (i + 1) & idx->loose_mask;
    idx->loose[i] = (struct loose_message){.id = id, .seg = seg, .offset = offset, .len = len, .refs = refs};
    idx->nloose++;
    seg->loose++;
}

/* Appends to seg's ordered run when id and offset allow it. Returns 1 when added, 0 when the
 * message must go loose, -ENOMEM. */
static int run_append(struct index *idx, struct segment *seg, uint64_t id, uint64_t offset, uint32_t len)
{
    if (id < idx->next_ordered || id == UINT64_MAX || offset > UINT32_MAX ||
        idx->segs[idx->nsegs - 1] != seg)
        return 0;
    if (seg->nslots == 0)
        seg->base = id;
    if (id - seg->base > UINT32_MAX)
        return 0;
    if (seg->nslots == seg->slots_cap) {
        if (seg->slots_cap > UINT32_MAX / 2)
            return 0;
        uint32_t cap = seg->slots_cap ? seg->slots_cap * 2 : SLOTS_MIN;
        struct msg_slot *grown = realloc(seg->slots, (size_t)cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        seg->slots = grown;
        seg->slots_cap = cap;
    }
    seg->slots[seg->nslots++] = (struct msg_slot){(uint32_t)(id - seg->base), (uint32_t)offset, len, 0};
    idx->next_ordered = id + 1;
    return 1;
}

int index_msg_add(struct index *idx, struct segment *seg, uint64_t id, uint64_t offset, uint32_t len)
{
    int rc = run_append(idx, seg, id, offset, len);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (index_reserve_loose(idx, 1) < 0)
            return -ENOMEM;
        loose_put(idx, seg, id, offset, len, 0);
    }
    seg->unreferenced++;
    return 0;
}

static int message_offset_cmp(const void *a, const void *b)
{
    const struct index_message *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sets the capacity of seg's run to its count (freeing it when empty). */
static void run_fit(struct segment *seg)
{
    if (seg->nslots == seg->slots_cap)
        return;
    if (seg->nslots == 0) {
        free(seg->slots);
        seg->slots = NULL;
        seg->slots_cap = 0;
        return;
    }
    struct msg_slot *fitted = realloc(seg->slots, (size_t)seg->nslots * sizeof(*fitted));
    if (fitted) {
        seg->slots = fitted;
        seg->slots_cap = seg->nslots;
    }
}

void index_msg_trim(struct segment *seg)
{
    run_fit(seg);
}

/* Squeezes the dead slots out of seg's run; ids keep their order, so lookups are unchanged. */
static void run_compact(struct index *idx, struct segment *seg)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < seg->nslots; i++)
        if (!(seg->slots[i].len & MSG_DEAD))
            seg->slots[n++] = seg->slots[i];
    if (n > 0 && seg->slots[0].delta != 0) { /* rebase, so the first-guess lookup stays exact */
        uint32_t shift = seg->slots[0].delta;
        for (uint32_t i = 0; i < n; i++)
            seg->slots[i].delta -= shift;
        seg->base += shift;
    }
    seg->nslots = n;
    seg->dead = 0;
    if (idx->segs[idx->nsegs - 1] != seg || n == 0)
        run_fit(seg);
}

/* Takes message m out of its segment (its live count included). */
static void msg_remove(struct index *idx, const struct msg_ref *m)
{
    struct segment *seg = m->seg;
    seg->live--;
    seg->live_bytes -= msg_len(m);
    if (!m->slot) {
        loose_remove(idx, m->loose);
        return;
    }
    m->slot->len |= MSG_DEAD;
    m->slot->refs = 0;
    seg->dead++;
    if (seg->dead == seg->nslots || (seg->dead >= COMPACT_MIN_DEAD && seg->dead * 3 > seg->nslots))
        run_compact(idx, seg);
}

void index_msg_kill(struct index *idx, const struct msg_ref *m)
{
    idx->live_messages--;
    msg_remove(idx, m);
}

int index_reserve_loose(struct index *idx, size_t n)
{
    while ((idx->nloose + n) * 10 > (idx->loose ? idx->loose_mask + 1 : 0) * 7)
        if (loose_grow(idx) < 0)
            return -ENOMEM;
    return 0;
}

bool index_msg_relocate(struct index *idx, uint64_t msg_id, struct segment *seg, uint64_t offset)
{
    struct msg_ref m;
    if (!index_msg_find(idx, msg_id, &m) || *msg_refs(&m) == 0)
        return false;
    uint32_t len = msg_len(&m), refs = *msg_refs(&m);
    msg_remove(idx, &m);
    loose_put(idx, seg, msg_id, offset, len, refs); /* below next_ordered: never an ordered slot */
    seg->live++;
    seg->live_bytes += len;
    return true;
}

long index_segment_messages(const struct index *idx, const struct segment *seg, struct index_message **out)
{
    struct index_message *msgs = malloc((seg->live + 1) * sizeof(*msgs));
    if (!msgs)
        return -ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; i < seg->nslots && n < seg->live; i++) {
        const struct msg_slot *slot = &seg->slots[i];
        if (slot->refs > 0)
            msgs[n++] = (struct index_message){seg->base + slot->delta, slot->offset, slot->len & ~MSG_DEAD,
                                               slot->refs};
    }
    size_t ordered = n;
    for (size_t i = 0; seg->loose > 0 && i <= idx->loose_mask && n < seg->live; i++) {
        const struct loose_message *m = &idx->loose[i];
        if (m->seg == seg && m->refs > 0)
            msgs[n++] = (struct index_message){m->id, m->offset, m->len, m->refs};
    }
    if (n > ordered)
        qsort(msgs, n, sizeof(*msgs), message_offset_cmp);
    *out = msgs;
    return (long)n;
}

void index_msg_drop_segment(struct index *idx, struct segment *seg)
{
    for (size_t i = 0; seg->loose > 0 && i <= idx->loose_mask;) {
        if (idx->loose[i].seg == seg)
            loose_remove(idx, &idx->loose[i]); /* a later member may have moved into i */
        else
            i++;
    }
    free(seg->slots);
    seg->slots = NULL;
    seg->nslots = seg->slots_cap = seg->dead = 0;
}

void index_msg_free(struct index *idx)
{
    free(idx->loose);
    idx->loose = NULL;
    idx->loose_mask = idx->nloose = 0;
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
    for (size_t s = 0; s < idx->nsegs; s++) { /* runs are in log order already */
        const struct segment *seg = idx->segs[s];
        for (uint32_t i = 0; i < seg->nslots; i++) {
            const struct msg_slot *slot = &seg->slots[i];
            if (slot->refs > 0)
                locs[n++] = (struct index_location){seg->id, slot->offset, seg->base + slot->delta};
        }
    }
    long ordered = n;
    for (size_t i = 0; idx->nloose > 0 && i <= idx->loose_mask; i++) {
        const struct loose_message *m = &idx->loose[i];
        if (m->seg && m->refs > 0)
            locs[n++] = (struct index_location){m->seg->id, m->offset, m->id};
    }
    if (n > ordered)
        qsort(locs, (size_t)n, sizeof(*locs), location_cmp);
    *out = locs;
    return n;
}
