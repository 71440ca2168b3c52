/* broker/model/router.h: one exchange's bindings and the type-specific index that routes a
 * message to the destinations (queues or exchanges) bound to it. Destinations are opaque
 * pointers the router never dereferences. Not thread-safe: routing writes scratch marks
 * inside the topic index, so one router is used from one thread. */
#ifndef WARREN_ROUTER_H
#define WARREN_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "route_set.h"

/* Longest binding key accepted: a binding key travels as an AMQP shortstr. */
#define ROUTER_MAX_KEY 255

struct router;

enum router_kind { ROUTER_DIRECT, ROUTER_FANOUT, ROUTER_TOPIC, ROUTER_HEADERS };

/* Maps an exchange type name ("direct", "fanout", "topic", "headers"; case-sensitive, as in
 * RabbitMQ) to its kind. Returns 0, or -1 for an unknown name. */
int router_kind_parse(const char *type, size_t len, enum router_kind *out);

/* The type name of kind, as exchange.declare spells it (static string). */
const char *router_kind_name(enum router_kind kind);

/* Creates an empty router for kind. Returns NULL on ENOMEM (or an invalid kind). */
struct router *router_create(enum router_kind kind);

/* Frees the router and its bindings; the destinations themselves are untouched. NULL is a no-op. */
void router_destroy(struct router *router);

/* How many routers were destroyed so far in this process. An exchange lives exactly as long as
 * its router, so a pointer to one remembered with this count is still valid while the count
 * has not moved. */
uint64_t router_destroyed_count(void);

/* The kind the router was created with. */
enum router_kind router_kind(const struct router *router);

/* Adds the binding (destination, key, arguments table contents); key and arguments are copied.
 * Returns 0 when new, 1 when an identical binding (same destination, key and byte-identical
 * arguments) exists (nothing changes), -EINVAL when key is over ROUTER_MAX_KEY bytes or the
 * arguments are invalid for the type (headers: malformed table, or x-match not a longstr
 * all/any/all-with-x/any-with-x: RabbitMQ answers 406), or -ENOMEM. */
int router_bind(struct router *router, void *destination, const uint8_t *key, size_t key_len,
                struct proto_bytes arguments);

/* Removes the binding identical to (destination, key, arguments). Returns 0, -ENOENT when
 * there is none, or -ENOMEM when arguments over 1 KiB could not be staged for the lookup. */
int router_unbind(struct router *router, void *destination, const uint8_t *key, size_t key_len,
                  struct proto_bytes arguments);

/* 1 when the binding identical to (destination, key, arguments) exists, 0 when not, or
 * -ENOMEM as router_unbind. */
int router_find(const struct router *router, void *destination, const uint8_t *key, size_t key_len,
                struct proto_bytes arguments);

/* Removes every binding to destination (a queue or exchange being deleted); returns how many. */
size_t router_unbind_destination(struct router *router, void *destination);

/* Number of bindings. */
size_t router_binding_count(const struct router *router);

/* True when at least one binding targets destination. O(1). */
bool router_has_destination(const struct router *router, void *destination);

/* Calls fn for every binding, oldest first (for listing and persistence). The key and
 * arguments views are valid during the call; fn must not bind or unbind on this router. */
void router_for_each(const struct router *router,
                     void (*fn)(void *destination, struct proto_bytes key,
                                struct proto_bytes arguments, void *arg),
                     void *arg);

/* Adds to out every destination with a binding matching the routing key and, for headers
 * exchanges, the message headers table contents (may be empty; a malformed tail is ignored).
 * A destination already in out is not added again. Returns 0 or -ENOMEM (out then holds
 * part of the result). */
int router_route(const struct router *router, struct proto_bytes routing_key,
                 struct proto_bytes headers, struct route_set *out);

#endif
