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
 * Compaction (store_compact.c). One long-lived message would keep its segment S, and with it
 * every later segment that depends on S, forever. So the I/O thread copies the live messages of
 * a sparse segment S that depends on nothing (so it is deletable once empty) to the end of the
 * log, in one batch of ordinary records: per message MESSAGE(id, data), then for every queue
 * holding it ENQUEUE(queue, id) and, when the entry is marked delivered, DELIVER(queue, id).
 * Once that batch is synced, index_msg_relocate moves each message to its copy (its entries and
 * marks stay as they are); S has no live message left and the usual retirement deletes it at
 * once, before anything else is written. Why it is safe:
 *   - while S exists, recovery keeps the FIRST copy of a duplicate id (S's), and the copied
 *     ENQUEUE/DELIVER records are ineffective (the entry is there, already delivered). Such a
 *     batch, left by a crash before S's deletion was durable, can only be at the tail of the
 *     newest segment, and recovery cuts it off (recovery.c): a copy must never come to life
 *     later, when S goes, with entries that no longer hold;
 *   - once S is deleted (after the batch was synced; the unlink made durable by the directory
 *     fsync), recovery finds only the copy: its ENQUEUEs put the message back in each queue at
 *     its place (queues are kept in id order, see Memory), its DELIVERs keep redelivered. Records
 *     about it that precede the copy become ineffective, as at run time, where they only made
 *     their segments depend on S, which is gone;
 *   - records written after the relocation that touch the message depend on the new segment;
 *   - S depends on nothing, so it goes right after the relocation and the runtime picture differs
 *     from a recovery's only within that step (a crash there is the first case). When S cannot
 *     be unlinked, the copy is cut off the log again and the messages moved back. A copy found in
 *     the middle of the log (a failed directory fsync, then a crash that brought S back) pins S,
 *     so that the copy never comes to life (recovery.c).
 * Limit: a segment that depends on another is not a candidate (its deletion would have to wait,
 * and meanwhile a recovery would keep its first copies). So a segment kept by live data above
 * the threshold still keeps the later segments that acked its dead messages, and their
 * dependents; reclaiming those needs the dependency dropped, e.g. by rewriting that segment
 * without its dead messages.
 *
 * Memory. A long backlog must cost little, so the index is laid out for the broker's order of
 * things: ids are given in increasing order and a message is enqueued in the batch that stores
 * it, so messages arrive in id order. A message then takes a 16-byte slot in its segment's
 * "ordered run" (an array sorted by id, ids as 32-bit deltas from the run's base, refs counting
 * its queues; found by binary search over segments, then within the run). A queue keeps its
 * entries in id order (enqueue order for the broker), 4 bytes (a 32-bit offset from the queue's
 * base) and 2 bits each, found by binary search; a queue whose ids span 2^32 or more keeps whole
 * 8-byte ids instead ("wide", until a compaction finds the span short again). An ENQUEUE of an id
 * below the queue's greatest is inserted at its place (rare: a relocated message after a restart,
 * a log written by hand). About 22 bytes per live message in one queue, allocator slack
 * included. Anything else the log may hold (ids out of order, a duplicate id whose first copy
 * died, a relocated message, a log written by hand or resynchronised after corruption, offsets
 * past 4 GiB) goes to a hash table of "loose" messages (32 bytes each), with the same results.
 * Dead slots and removed entries are squeezed out when they make up a third of their array; the
 * whole run goes with its segment. Files: index.c (apply), index_messages.c, index_queues.c,
 * index_segments.c. */
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
    uint64_t live_bytes;      /* their data bytes (what compaction would copy) */
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

/* A queue's entries: message ids at positions [head, tail), strictly increasing (tombstones
 * included, so a position is found by binary search), with two mark bits per position
 * (removed: a tombstone; delivered). head and tail - 1 are never tombstones. An id is stored as
 * a 32-bit offset from base while the queue's ids span less than 2^32 (base is moved down or
 * up to fit, the offsets rewritten); otherwise the queue is "wide" and keeps whole ids. Read
 * and write them with queue_id / queue_set_id (index_private.h). */
struct queue {
    uint8_t *name;
    uint32_t len;
    bool wide;                /* ids holds uint64_t ids, not offsets */
    uint64_t hash;
    struct queue *hnext, *prev, *next;
    uint64_t base;            /* id = base + offsets[pos] unless wide */
    union {
        uint32_t *offsets;
        uint64_t *ids;
    };
    uint64_t *marks;          /* 2 bits per position: QMARK_REMOVED, QMARK_DELIVERED */
    size_t head, tail, cap, removed;
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
/* Calls rec->entry for every entry, queue by queue, each queue in id order. */
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
 * after_id, in id order (a binary search, then a walk). Returns the count. */
size_t index_queue_entries(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t after_id,
                           struct index_entry_location *out, size_t max);

/* Compaction (rule above; store_compact.c). */

/* A live message of a segment: where its record is and how many queues hold it. */
struct index_message {
    uint64_t msg_id, offset;
    uint32_t len, refs;
};
/* Mallocs into *out the live messages stored in seg, by offset; returns the count or -ENOMEM. */
long index_segment_messages(const struct index *idx, const struct segment *seg, struct index_message **out);
/* Calls fn for every queue holding msg_id, with whether its entry is marked delivered. Returns the
 * number of queues. A binary search per queue: queues are few. */
size_t index_message_queues(const struct index *idx, uint64_t msg_id,
                            void (*fn)(void *ctx, const uint8_t *queue, uint32_t queue_len, bool delivered),
                            void *ctx);
/* Makes room for n more loose messages, so that as many index_msg_relocate calls cannot fail.
 * Returns 0 or -ENOMEM. */
int index_reserve_loose(struct index *idx, size_t n);
/* Moves the live message msg_id to the record at offset of seg (a copy of it, in another segment):
 * its entries and marks are unchanged, the live counts of both segments follow. Needs room
 * reserved by index_reserve_loose. Returns false when there is no such live message. */
bool index_msg_relocate(struct index *idx, uint64_t msg_id, struct segment *seg, uint64_t offset);
/* True when applying r (not applied yet) would change nothing because it repeats what the index
 * holds: a MESSAGE whose id is live in a segment other than seg (*first_copy set to it), an
 * ENQUEUE of an entry that is there, a DELIVER of an entry already delivered. Recovery uses it to
 * recognise a compaction batch whose first copies still exist. */
bool index_record_repeats(const struct index *idx, const struct segment *seg, const struct rec *r,
                          uint64_t *first_copy);

#endif
