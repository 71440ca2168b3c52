/* storage/index_private.h: what the index's files share (index.c applies records,
 * index_messages.c keeps the messages, index_queues.c the queues' entries, index_segments.c the
 * segments). Not part of the contract: index.h is. */
#ifndef WARREN_STORE_INDEX_PRIVATE_H
#define WARREN_STORE_INDEX_PRIVATE_H

#include "index.h"

/* A message found in the index: an ordered slot of seg, or a loose one. Valid until the next
 * change to the messages (an add, a death, a dropped segment). */
struct msg_ref {
    struct segment *seg;
    struct msg_slot *slot;        /* NULL for a loose message */
    struct loose_message *loose;  /* NULL for an ordered one */
};

static inline uint32_t *msg_refs(const struct msg_ref *m)
{
    return m->slot ? &m->slot->refs : &m->loose->refs;
}

static inline uint32_t msg_len(const struct msg_ref *m)
{
    return m->slot ? m->slot->len & ~MSG_DEAD : m->loose->len;
}

static inline uint64_t msg_offset(const struct msg_ref *m)
{
    return m->slot ? m->slot->offset : m->loose->offset;
}

/* Finds the live or not yet enqueued message with this id; false when there is none. */
bool index_msg_find(const struct index *idx, uint64_t id, struct msg_ref *out);
/* The same, for a walk in increasing id order: *hint (start with SIZE_MAX) keeps the segment
 * where the previous id was found, so each step moves forward from there instead of searching. */
bool index_msg_find_near(const struct index *idx, uint64_t id, size_t *hint, struct msg_ref *out);
/* Adds a message stored at offset of seg, not in any queue yet; the caller has checked that
 * no message with this id exists. Returns 0 or -ENOMEM. */
int index_msg_add(struct index *idx, struct segment *seg, uint64_t id, uint64_t offset, uint32_t len);
/* Forgets a message that has left its last queue (its refs are 0). */
void index_msg_kill(struct index *idx, const struct msg_ref *m);
/* Forgets every message of seg (a segment being dropped) and frees its slots. */
void index_msg_drop_segment(struct index *idx, struct segment *seg);
/* Frees the ordered slots of seg beyond its count (it has stopped being the newest segment). */
void index_msg_trim(struct segment *seg);
/* Frees the loose table. */
void index_msg_free(struct index *idx);

#define QMARK_REMOVED 1u
#define QMARK_DELIVERED 2u

static inline unsigned queue_marks(const struct queue *q, size_t pos)
{
    return (unsigned)(q->marks[pos >> 5] >> ((pos & 31) * 2)) & 3u;
}

static inline void queue_set_mark(struct queue *q, size_t pos, unsigned mark)
{
    q->marks[pos >> 5] |= (uint64_t)mark << ((pos & 31) * 2);
}

/* The message id at pos (in [head, tail)). */
static inline uint64_t queue_id(const struct queue *q, size_t pos)
{
    return q->wide ? q->ids[pos] : q->base + q->offsets[pos];
}

/* Stores id at pos; unless the queue is wide, id must be in [base, base + 2^32): queue_add makes
 * it so for a new id, and ids already in the queue are. */
static inline void queue_set_id(struct queue *q, size_t pos, uint64_t id)
{
    if (q->wide)
        q->ids[pos] = id;
    else
        q->offsets[pos] = (uint32_t)(id - q->base);
}

/* Number of entries (positions that are not tombstones). */
static inline size_t queue_count(const struct queue *q)
{
    return q->tail - q->head - q->removed;
}

/* FNV-1a of a queue name. */
uint64_t index_name_hash(const uint8_t *name, size_t len);
/* The queue with this name (and hash), or NULL. */
struct queue *index_queue_find(const struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash);
/* Creates an empty queue. NULL on ENOMEM. */
struct queue *index_queue_create(struct index *idx, const uint8_t *name, uint32_t len, uint64_t hash);
/* Forgets a queue and its entries (queues are forgotten when they empty). */
void index_queue_destroy(struct index *idx, struct queue *q);
/* Position of the entry of message id, or SIZE_MAX when it is not in the queue. */
size_t queue_position(const struct queue *q, uint64_t id);
/* The first position whose id is greater than after_id (tail when none). */
size_t queue_start_after(const struct queue *q, uint64_t after_id);
/* Adds an entry for message id (not in the queue) at its place in id order: an append unless
 * id is below the queue's last. Returns 0 or -ENOMEM. */
int queue_add(struct queue *q, uint64_t id);
/* Makes the entry at pos a tombstone; positions stay valid until queue_tidy. */
void queue_mark_removed(struct queue *q, size_t pos);
/* Drops tombstones at both ends and compacts the queue when tombstones dominate. */
void queue_tidy(struct queue *q);

#endif
