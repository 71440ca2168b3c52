/* broker/cluster/qq_state.h: what qq_fsm.c (the commands) and qq_snapshot.c (the snapshot
 * format) share of a quorum queue's state; not for other callers. */
#ifndef WARREN_QQ_STATE_H
#define WARREN_QQ_STATE_H

#include "qq_fsm.h"

struct qq_message {
    uint64_t id;
    uint64_t owner;          /* the serial of the consumer holding it; 0: ready */
    uint32_t delivery_count; /* times returned */
    uint32_t len;
    uint64_t expires_at;     /* on the log's clock (qq_state.now_ms): expired past it; 0: never */
    uint8_t content[];
};

struct qq_consumer {
    uint64_t serial;
    struct qq_consumer_key key;
    uint32_t prefetch;       /* 0: unlimited */
    bool detached;           /* takes no new message; removed once it holds nothing */
    uint64_t *checked;       /* ids, ascending */
    size_t nchecked, cap;
};


/* A message with room for len content bytes (not filled), counted in qq_memory_bytes; NULL when
 * out of memory. qq_message_free gives it back (NULL is ignored). */
struct qq_message *qq_message_alloc(uint32_t len);
void qq_message_free(struct qq_message *m);
/* The message id, or NULL; *at (when not NULL) gets its index in s->messages. */
struct qq_message *qq_message_find(const struct qq_state *s, uint64_t id, size_t *at);
/* True when both keys name the same consumer. */
bool qq_key_equal(const struct qq_consumer_key *a, const struct qq_consumer_key *b);
/* True when c may take one more message: attached, and prefetch 0 or not reached. */
bool qq_consumer_has_room(const struct qq_consumer *c);
/* Copies a longstr of at most QQ_NAME_MAX bytes without NULs, NUL-terminated; false otherwise. */
bool qq_name_copy(struct table_value v, char out[QQ_NAME_MAX + 1]);
/* Frees everything s holds and zeroes it. */
void qq_state_free(struct qq_state *s);
/* Fills s (zeroed) from a snapshot's table, checking it as untrusted: true, or false with s
 * partly filled (free it with qq_state_free). */
bool qq_state_decode(struct qq_state *s, struct proto_bytes t);

static inline struct proto_bytes qq_content(const struct qq_message *m)
{
    return (struct proto_bytes){m->content, m->len};
}

#endif
