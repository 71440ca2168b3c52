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
 * Deletions are made durable (directory fsync) before dependents can be deleted (store.c). */
#ifndef WARREN_STORE_INDEX_H
#define WARREN_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment_log.h"
#include "store.h"

struct segment {
    uint64_t id;
    uint64_t size;            /* bytes in the file */
    uint64_t live;            /* messages stored here that are in at least one queue */
    uint64_t unreferenced;    /* messages stored here not enqueued yet */
    bool pinned;              /* never delete: corruption found in it (kept for inspection),
                               * or a dependency could not be recorded (ENOMEM) */
    uint64_t *deps;           /* ids of older existing segments this one's records depend on */
    size_t ndeps, deps_cap;
};

/* Internal to index.c and index_segments.c. */
struct message {              /* a slot of the message table; seg NULL marks an empty slot */
    uint64_t id;
    struct segment *seg;
    uint64_t offset;          /* of its MESSAGE record within seg */
    struct entry *entries;    /* the queues it is in, chained through mnext */
    uint32_t refs;            /* number of entries */
    uint32_t len;             /* bytes of its data (REC_MAX_LENGTH bounds it) */
};

struct entry {
    uint64_t msg_id;
    struct queue *queue;
    struct entry *qprev, *qnext; /* queue order */
    struct entry *mnext;         /* the message's other entries; the free list */
    bool delivered;
};

struct queue {
    uint8_t *name;
    uint32_t len;
    uint64_t hash;
    struct queue *hnext, *prev, *next;
    struct entry *head, *tail;
};

struct index {
    struct segment **segs;    /* existing segments, ascending id */
    size_t nsegs, segs_cap;
    struct message *slots;    /* open addressing by message id, linear probing */
    size_t slots_mask, nmessages;
    struct queue **buckets;   /* queues by name, chained */
    size_t buckets_mask, nqueues;
    struct queue *first_queue, *last_queue; /* creation order, for recovery's report */
    struct entry *free_entries;
    struct entry_chunk *chunks;
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

/* The message with this id, or NULL (internal). */
struct message *index_message_find(const struct index *idx, uint64_t id);
/* Removes a message's slot from the table (internal). */
void index_message_remove(struct index *idx, struct message *m);

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
 * after_id, in enqueue order. Returns the count. */
size_t index_queue_entries(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t after_id,
                           struct index_entry_location *out, size_t max);

#endif
