/* broker/model/message.h: a published message: immutable once assembled, reference-counted,
 * shared by every queue it was routed to (a fanout to N queues is N references, not N copies).
 * One allocation holds the struct, the encoded content header, the exchange name, the routing
 * key and, last so that it can grow while the body frames arrive, the body. */
#ifndef WARREN_MESSAGE_H
#define WARREN_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct spec_basic_properties;

#define MESSAGE_NO_EXPIRY UINT64_MAX

struct message {
    uint32_t refs;
    uint8_t delivery_mode;     /* 2 = persistent */
    uint8_t priority;          /* basic.properties priority, 0 when absent */
    bool has_expiration;       /* per-message "expiration" property was valid */
    uint64_t expiration_ms;    /* that property's value, in milliseconds */
    uint64_t body_size;        /* as announced by the content header */
    uint64_t body_capacity;    /* body bytes allocated: body_size once assembled, less before */
    uint64_t published_ms;     /* wall clock (ms since 1970) of publication, for TTL; set when
                                * first stored (which happens as it is routed), 0 before */
    uint64_t id;               /* the storage key, given when first stored (0 before): ids
                                * grow in log order and are never reused across restarts */
    bool stored;               /* written to the durable store (id and stored: the mutable part) */
    uint32_t dead_letter_round; /* set by dead-lettering when it creates the message: the vhost's
                                 * round (vhost_dead_letter_round) plus one; 0 for a publish */
    struct proto_bytes exchange;    /* name it was published to (points inside this allocation) */
    struct proto_bytes routing_key;
    struct proto_bytes header;      /* encoded content header payload: class id .. properties */
    struct proto_bytes sender_keys; /* RabbitMQ's sender-selected distribution: the elements of
                                     * the CC then the BCC header arrays (array contents; only
                                     * longstr elements count), routing keys beyond routing_key */
    uint8_t *body;                  /* body_size bytes inside this allocation */
};

/* Allocates a message with room for body_size body bytes (filled by the caller) and copies
 * exchange, routing key and the content header payload, less a BCC header (RabbitMQ removes
 * it; its keys are kept in sender_keys for routing only). Properties
 * the broker acts on (delivery mode, priority, expiration) are decoded from header once here.
 * Returns NULL on ENOMEM or when header does not decode. refs starts at 1 (the caller's). */
struct message *message_create(struct proto_bytes exchange, struct proto_bytes routing_key,
                               struct proto_bytes header, uint64_t body_size);

/* The same for a caller that has already decoded header: props must be its properties (they
 * are read during the call only), so the header is not decoded a second time. */
struct message *message_create_decoded(struct proto_bytes exchange, struct proto_bytes routing_key,
                                       struct proto_bytes header, const struct spec_basic_properties *props,
                                       uint64_t body_size);

/* The same, with sender_keys (array contents, copied) as the message's sender-selected routing
 * keys instead of those its CC and BCC headers name: a dead letter routes with the keys its
 * original was published with, BCC ones included, which no header shows any more
 * (rabbit_dead_letter keeps the message's routing keys). A BCC header is still removed. */
struct message *message_create_with_keys(struct proto_bytes exchange, struct proto_bytes routing_key,
                                         struct proto_bytes header, const struct spec_basic_properties *props,
                                         uint64_t body_size, struct proto_bytes sender_keys);

/* Room made at once for the body of a message whose body frames are still to come: a larger
 * announced size is allocated as the bytes arrive, so that a content header alone cannot make
 * the broker reserve (and the memory alarm count) max_message_size bytes. */
#define MESSAGE_BODY_FIRST_CAPACITY 16384u

/* Like message_create_decoded for a body that will arrive in pieces: room for at most
 * MESSAGE_BODY_FIRST_CAPACITY body bytes is made now; message_append_body grows it. */
struct message *message_begin(struct proto_bytes exchange, struct proto_bytes routing_key, struct proto_bytes header,
                              const struct spec_basic_properties *props, uint64_t body_size);

/* Copies data[0..len) into the body of a message under assembly (the caller holds its only
 * reference) at offset `received`, the bytes already there; received + len must not exceed
 * body_size. Room grows geometrically (up to body_size), which may move the message: *msg is
 * updated. Returns 0, or -ENOMEM (-EINVAL past body_size) with *msg unchanged and valid. */
int message_append_body(struct message **msg, uint64_t received, const uint8_t *data, size_t len);

/* Takes another reference. */
void message_retain(struct message *msg);

/* Drops a reference; the last one frees the message. NULL is ignored. */
void message_release(struct message *msg);

/* Untyped wrappers for output queues that hold a body slice (void * owner). */
void message_retain_cb(void *msg);
void message_release_cb(void *msg);

/* 0 when the CC and BCC headers in `headers` (table contents) are absent or arrays, as
 * RabbitMQ requires; otherwise -1 with *name "CC" or "BCC" and *type the field type found. */
int message_check_sender_routes(struct proto_bytes headers, const char **name, uint8_t *type);

/* msg's content header with the header `key` (NUL-terminated) set to the long `value` (an
 * existing field of that name is replaced) and the headers sorted by name, as RabbitMQ's
 * rabbit_basic:add_header leaves them. Written to out->data[0..len) (out must be empty; the
 * caller frees it with table_buf_free). Returns 0, or -1 when the header does not decode or
 * memory runs out. */
struct table_buf;
int message_header_with_long(const struct message *msg, const char *key, int64_t value, struct table_buf *out);

/* The message's headers table contents (empty when absent). */
struct proto_bytes message_headers(const struct message *msg);

/* Serialised form for the durable store: format version (u8, 1 or 2), published_ms (u64),
 * exchange (u8 length + bytes), routing key (u8 length + bytes), content header (u32 length +
 * bytes), in version 2 only the sender-selected keys (u32 length + array contents), body (the
 * rest); integers big-endian. Version 2 is written only for a message whose keys are more than
 * its CC header shows (BCC keys, which a dead letter routes with), so stores without such
 * messages stay readable by version-1 readers. Returns the size needed; writes only when cap is large
 * enough. */
size_t message_serialize(const struct message *msg, uint8_t *out, size_t cap);

/* Rebuilds a message from message_serialize's bytes (read back from disk, or from another node:
 * untrusted) with the given id: a message of this node's store (stored), or 0 for one that is
 * not in it yet (a durable queue it enters writes it). NULL when malformed, or when its content header is not one a publish could carry
 * (not class basic, or announcing another body size than the bytes stored). */
struct message *message_deserialize(uint64_t id, const uint8_t *data, size_t len);

/* Bytes held by all live messages (for the memory alarm). */
uint64_t message_memory_bytes(void);

/* True when delivery_mode is 2. */
static inline bool message_is_persistent(const struct message *msg) { return msg->delivery_mode == 2; }

#endif
