/* broker/model/policy.h: RabbitMQ's policies and operator policies of one vhost: a named
 * pattern (a POSIX extended regular expression, searched for anywhere in the name, as
 * RabbitMQ's re:run searches) with an apply-to, a priority and a definition; validation of
 * definitions with RabbitMQ's texts; which policy applies to a queue or exchange; and how a
 * policy and an operator policy combine into the effective definition.
 *
 * A definition is field-table contents (table.h) whose keys are RabbitMQ's policy keys, without
 * "x-" ("message-ttl", "max-length", "dead-letter-exchange"...): integers of any AMQP integer
 * type, strings as long strings. Knows nothing of queues or exchanges beyond their names. */
#ifndef WARREN_POLICY_H
#define WARREN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct table_buf;

/* Policies (set by users with the policymaker tag) and operator policies (which can only
 * lower limits) are two separate namespaces in the same store. */
enum policy_kind { POLICY_USER = 0, POLICY_OPERATOR = 1 };

/* What a policy is matched against: a classic queue, an exchange, a quorum queue. apply-to
 * "queues" covers both kinds of queue, "classic_queues" and "quorum_queues" one each; RabbitMQ's
 * "streams" is accepted and matches nothing. */
enum policy_target { POLICY_TARGET_QUEUE, POLICY_TARGET_EXCHANGE, POLICY_TARGET_QUORUM_QUEUE };

/* Longest policy name and pattern kept (RabbitMQ bounds neither; names are shown in texts). */
#define POLICY_NAME_MAX 255
#define POLICY_PATTERN_MAX 1024
/* Room for a validation error text, NUL included. */
#define POLICY_ERROR_MAX 512

/* A policy as set or listed. Strings are NUL-terminated; definition is table contents. */
struct policy_spec {
    const char *name;
    const char *pattern;
    const char *apply_to; /* "queues", "classic_queues", "quorum_queues", "streams", "exchanges",
                           * "all"; NULL means "all" */
    int64_t priority;     /* RabbitMQ's default is 0 */
    struct proto_bytes definition;
};

struct policy;       /* one stored policy, owned by the store */
struct policy_store; /* the policies and operator policies of one vhost */

/* An empty store; NULL on ENOMEM. */
struct policy_store *policy_store_create(void);
/* Frees the store and every policy in it (NULL is ignored). */
void policy_store_destroy(struct policy_store *store);

/* Checks a definition as RabbitMQ validates one of kind: every key known for that kind and every
 * value of the right type and range. Returns 0, or -1 with error (cap bytes) holding RabbitMQ's
 * text, e.g. "Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy
 * settings" or "Validation failed\n\n-1 is not a valid message TTL". */
int policy_validate_definition(enum policy_kind kind, struct proto_bytes definition, char *error, size_t cap);

/* Adds or replaces (same kind and name) a policy after validating all of spec (name, pattern,
 * apply-to, definition). The store copies everything. Returns 0; -1 with error filled for an
 * invalid spec; -ENOMEM. A replaced policy stays allocated until policy_store_collect, so
 * that objects still pointing at it can be moved off it first. */
int policy_store_set(struct policy_store *store, enum policy_kind kind, const struct policy_spec *spec, char *error,
                     size_t cap);
/* Validates spec as policy_store_set does, storing nothing: 0; -1 with error filled; -ENOMEM. */
int policy_spec_check(enum policy_kind kind, const struct policy_spec *spec, char *error, size_t cap);
/* True when the store holds a policy of kind called name. */
bool policy_store_has(const struct policy_store *store, enum policy_kind kind, const char *name);
/* Removes the policy of kind called name. Returns 0 or -ENOENT. As with set, the removed policy
 * is freed by policy_store_collect. */
int policy_store_clear(struct policy_store *store, enum policy_kind kind, const char *name);
/* Frees the policies replaced or removed since the last call: call once nothing points at them
 * (after every object's policies were looked up again). */
void policy_store_collect(struct policy_store *store);

/* Calls fn for each policy of kind, in name order; the spec is valid during the call only. */
void policy_store_for_each(const struct policy_store *store, enum policy_kind kind,
                           void (*fn)(const struct policy_spec *spec, void *arg), void *arg);
/* Number of policies of kind. */
size_t policy_store_count(const struct policy_store *store, enum policy_kind kind);

/* The policy of kind that applies to the queue or exchange called name, or NULL: among those
 * whose apply-to covers target and whose pattern matches, the one with the highest priority.
 * RabbitMQ breaks a tie by the order of its parameter store, which it does not specify; Warren
 * picks the smallest name (byte order), so the choice never depends on history. */
const struct policy *policy_store_match(const struct policy_store *store, enum policy_kind kind,
                                        enum policy_target target, struct proto_bytes name);

/* A stored policy's name and definition, valid until policy_store_collect frees it. */
const char *policy_name(const struct policy *policy);
struct proto_bytes policy_definition(const struct policy *policy);

/* RabbitMQ's effective_policy_definition: every key of either definition (policy and operator
 * policy, either may be NULL); a key in both takes the smaller value for expires, message-ttl,
 * max-length, max-length-bytes, max-in-memory-length, max-in-memory-bytes and delivery-limit
 * (for delivery-limit a negative value means unlimited, so the larger wins when one is
 * negative), and the operator's value for any other key. Appended to out in key order.
 * Returns 0 or a negative status (ENOMEM). */
int policy_effective_definition(const struct policy *policy, const struct policy *op, struct table_buf *out);

/* The arguments a queue of target's kind runs with: its declare arguments (table contents)
 * merged with the effective definition, as RabbitMQ's args_policy_lookup resolves each key
 * (appended to out):
 *   - expires, message-ttl, max-length, max-length-bytes (and delivery-limit for a quorum
 *     queue): the smaller of argument and policy;
 *   - dead-letter-exchange, dead-letter-routing-key, and for a classic queue overflow,
 *     queue-mode, queue-version: the declare argument when given, else the policy's;
 *   - overflow for a quorum queue: the policy's when it has one (RabbitMQ 3.10); queue-mode
 *     and queue-version are ignored there (classic-only keys);
 *   - every other argument as declared.
 * A policy TTL or expiry beyond ten years is cut to ten years (RabbitMQ's longest), and a
 * routing key without any dead-letter exchange is left out (it would mean nothing). Returns 0
 * or a negative status (ENOMEM). */
int policy_queue_arguments(struct proto_bytes arguments, struct proto_bytes effective, enum policy_target target,
                           struct table_buf *out);

#endif
