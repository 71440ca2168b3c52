/* storage/index.h: the store's in-memory picture of the log: which messages are live and where
 * they are, each queue's entries in order, and per segment what keeps it from being deleted.
 * Built by replaying records (recovery) and then kept up to date by applying each written batch
 * with the very same function, so the running picture is always what a recovery would rebuild
 * from the segments that exist. Owned by one thread at a time (the opener, then the I/O thread).
 *
 * Retirement rule. A record changes the picture only when it is "effective" (an ENQUEUE of a
 * known message not yet in that queue, an ACK or DELIVER matching an entry, a QUEUE_DELETED or
 * PURGE removing entries). Every effective record in segment T that touches a message stored in an
 * older segment S makes T depend on S. A segment is deletable when
 *   (1) it is not the active segment,
 *   (2) no message stored in it is live (in a queue), and
 *   (3) it depends on no segment that still exists.
 * A message must be enqueued before its segment stops being the active one (the broker puts a
 * message and its enqueues in one batch); one never enqueued by then is garbage.
 * Why it is safe: deleting T forgets its MESSAGE records, whose messages are all dead, so every
 * record about them anywhere becomes ineffective, as it already is at run time (their index
 * entries are dropped). T's other effective records touch only messages of T or of segments
 * already deleted, i.e. messages recovery cannot know any more. So an ACK in T for a message in
 * an older, still-present segment (the resurrection case) keeps T alive until that segment goes.
 * Deletions are made durable (directory fsync) before dependents can be deleted (store.c).
 *
 * Memory. A long backlog must cost little, so the index is laid out for the broker's order of
 * things: ids are given in increasing order and a message is enqueued in the batch that stores
 * it, so messages arrive in id order and every queue's entries are in id order. A message then
 * takes a 16-byte slot in its segment's "ordered run" (an array sorted by id, ids as 32-bit
 * deltas from the run's base, refs counting its queues; found by binary search over segments,
 * then within the run), and an entry 8 bytes and 2 bits in its queue's array (found by binary
 * search). About 25 bytes per live message in one queue, allocator slack included. Anything
 * else the log may hold (ids out of order, a duplicate id whose first copy died, a log written
 * by hand or resynchronised after corruption, offsets past 4 GiB) is handled by slower paths
 * with the same results: a hash table of "loose" messages (32 bytes each), and queues flagged
 * unsorted, searched linearly. Dead slots and removed entries are squeezed out when they make
 * up a third of their array; the whole run goes with its segment. Files: index.c (apply),
 * index_messages.c, index_queues.c, index_segments.c. */
#ifndef WARREN_STORE_INDEX_H
#define WARREN_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment_log.h"
#include "store.h"

/* One message of a segment's ordered run (see Memory above). */
struct msg_slot {
    uint32_t delta;           /* id - segment's base */
    uint32_t offset;          /* of its MESSAGE record within the segment */
    uint32_t len;             /* bytes of its data (< 2^30: REC_MAX_LENGTH), MSG_DEAD bit */
    uint32_t refs;            /* number of queues it is in */
};
#define MSG_DEAD 0x80000000u  /* in msg_slot.len: it has left its last queue */

struct segment {
    uint64_t id;
    uint64_t size;            /* bytes in the file */
    uint64_t live;            /* messages stored here that are in at least one queue */
    uint64_t unreferenced;    /* messages stored here not enqueued yet */
    bool pinned;              /* never delete: corruption found in it (kept for inspection),
                               * or a dependency could not be recorded (ENOMEM) */
    uint64_t *deps;           /* ids of older existing segments this one's records depend on */
    size_t ndeps, deps_cap;
    /* The ordered run: messages stored here with ids above every earlier ordered message. */
    uint64_t lo;              /* no ordered message of a later segment has an id below this */
    uint64_t base;            /* id of the run's first message (when it has had one) */
    struct msg_slot *slots;
    uint32_t nslots, slots_cap, dead; /* dead: slots with MSG_DEAD */
    size_t loose;             /* messages stored here that are in the loose table */
};

/* A message kept out of order (index_messages.c); seg NULL marks an empty slot. */
struct loose_message {
    uint64_t id;
    struct segment *seg;
    uint64_t offset;
    uint32_t len, refs;
};

/* A queue's entries: message ids in enqueue order at positions [head, tail) of ids, with two
 * mark bits per position (removed: a tombstone; delivered). head and tail - 1 are never
 * tombstones. sorted: ids strictly increase over [head, tail), tombstones included, so a
 * position is found by binary search; otherwise by a linear scan. */
struct queue {
    uint8_t *name;
    uint32_t len;
    uint64_t hash;
    struct queue *hnext, *prev, *next;
    uint64_t *ids;
    uint64_t *marks;          /* 2 bits per position: QMARK_REMOVED, QMARK_DELIVERED */
    size_t head, tail, cap, removed;
    uint64_t max_id;          /* no position in [head, tail) holds a greater id */
    bool sorted;
};

struct index {
    struct segment **segs;    /* existing segments, ascending id */
    size_t nsegs, segs_cap;
    uint64_t next_ordered;    /* a new message with an id >= this may join the ordered runs */
    struct loose_message *loose; /* open addressing by message id, linear probing */
    size_t loose_mask, nloose;
    struct queue **buckets;   /* queues by name, chained */
    size_t buckets_mask, nqueues;
    struct queue *first_queue, *last_queue; /* creation order, for recovery's report */
    uint64_t live_messages;
    uint64_t max_msg_id;
};

/* Initialises an empty index. Returns 0 or -ENOMEM. */
int index_init(struct index *idx);
/* Frees everything the index holds. */
void index_free(struct index *idx);

/* Appends segment `id` (greater than every existing id) with `size` bytes. NULL on ENOMEM. */
struct segment *index_add_segment(struct index *idx, uint64_t id, uint64_t size);
/* The existing segment with this id, or NULL. */
struct segment *index_segment(const struct index *idx, uint64_t id);

/* Applies one record found at `offset` of segment seg. Returns 0 or -ENOMEM (the record is
 * then partly applied; callers treat that as fatal for the store). */
int index_apply(struct index *idx, struct segment *seg, const struct rec *r, uint64_t offset);

/* Fills out with up to cap ids of deletable segments (see the rule above); returns the count. */
size_t index_deletable(const struct index *idx, uint64_t active_id, uint64_t *out, size_t cap);
/* Forgets a segment that has been unlinked: its messages and every dependency on it. */
void index_drop_segment(struct index *idx, uint64_t id);

/* Live messages with their location, for recovery's report in log order. */
struct index_location {
    uint64_t segment_id, offset, msg_id;
};
/* Mallocs the array of live messages sorted by (segment, offset) into *out; returns the count
 * or -ENOMEM. */
long index_live_locations(const struct index *idx, struct index_location **out);
/* Calls rec->entry for every entry, queue by queue, each queue in enqueue order. */
void index_report_entries(const struct index *idx, const struct store_recovery *rec);
/* Calls rec->queue once per queue with entries: their count and their messages' data bytes. */
void index_report_queues(const struct index *idx, const struct store_recovery *rec);

/* Where one entry of a queue is, for reading it back. */
struct index_entry_location {
    uint64_t msg_id, segment_id, offset;
    uint32_t len;
    bool delivered;
};
/* Fills out with up to max entries of the named queue whose message id is greater than
 * after_id, in enqueue order (from right after after_id's own entry when it is there). Returns
 * the count. A binary search then a walk on a sorted queue; a linear search on an unsorted one. */
size_t index_queue_entries(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t after_id,
                           struct index_entry_location *out, size_t max);

#endif
