/* broker/model/vhost.h: a virtual host: its exchanges, queues and bindings, and the RabbitMQ
 * rules for declaring, deleting, binding and routing. Every operation that can fail returns 0
 * or -1 with a reply_error carrying RabbitMQ's reply code and text. Knows nothing of sockets:
 * connections appear only as opaque owner pointers (for exclusive queues). */
#ifndef WARREN_VHOST_H
#define WARREN_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "proto.h"
#include "reply.h"
#include "router.h"
#include "stats.h"

struct exchange;
struct message;
struct queue;
struct route_set;
struct table_buf;
struct table_iter;
struct vhost;

/* Effects the vhost asks its owner (the AMQP layer) to carry out. */
struct vhost_hooks {
    /* A queue is about to be deleted (by queue.delete, auto-delete, exclusivity or x-expires):
     * cancel its consumers (sending basic.cancel where the client supports it). */
    void (*queue_deleting)(void *ctx, struct queue *queue);
    /* Queues received a message by dead-lettering: dispatch them. */
    void (*queue_ready)(void *ctx, struct queue *queue);
    /* A queue whose messages the model does not hold (a cluster's replicated quorum queue,
     * docs/cluster.md): true when the owner took msg for it, and queue_publish is not called.
     * NULL: every queue holds its own. */
    bool (*divert)(void *ctx, struct queue *queue, struct message *msg);
    /* The model would delete queue on its own: auto-delete once its last consumer went, or
     * x-expires. True to delete it here; false when the owner decides (a cluster: the queue's
     * definition is every node's, so its deletion goes through the log, proposed by the node
     * that can see whether it is used). NULL: always here. */
    bool (*self_delete)(void *ctx, struct queue *queue);
    /* Loop time in ms, for TTL. */
    uint64_t (*now_ms)(void *ctx);
    /* Wall-clock time in ms since the epoch, for x-death's time (RabbitMQ stamps it with
     * os:system_time). NULL: the system's real-time clock. */
    uint64_t (*wall_ms)(void *ctx);
    /* Durability (all may be NULL): a persistent message's life in a durable queue; a durable
     * queue was deleted; the set of durable exchanges, queues or bindings changed. */
    void (*persist)(void *ctx, struct queue *queue, struct message *msg, int event);
    void (*durable_queue_deleted)(void *ctx, struct queue *queue);
    void (*definitions_changed)(void *ctx);
    void *ctx;
    /* Given to every durable queue (queue.h, paging); NULL: no paging. Must outlive the vhost. */
    const struct queue_pager *pager;
};

struct exchange_declare {
    struct proto_bytes name, type, arguments;
    bool passive, durable, auto_delete, internal;
};

struct queue_declare {
    struct proto_bytes name, arguments;
    bool passive, durable, exclusive, auto_delete;
    bool server_named; /* name came from vhost_queue_generate_name: its amq. prefix is allowed */
    void *owner;       /* the declaring connection */
};

/* Length of a server-generated queue name: "amq.gen-" and a 22-character random token. */
#define VHOST_GENERATED_NAME_LEN 30

/* Creates the vhost `name` with the default exchange and the amq.* exchanges. NULL on ENOMEM. */
struct vhost *vhost_create(const char *name, const struct vhost_hooks *hooks);
/* Frees the vhost, its exchanges and its queues. */
void vhost_destroy(struct vhost *vhost);
const char *vhost_name(const struct vhost *vhost);

/* exchange.declare with RabbitMQ's rules (reserved amq. prefix 403, unknown type 503,
 * inequivalent redeclare 406, passive on a missing exchange 404). */
int vhost_exchange_declare(struct vhost *vhost, const struct exchange_declare *d, struct reply_error *err);
/* Every rule of vhost_exchange_declare against the vhost as it is, changing nothing: 0 when the
 * declare would succeed, or -1 with err (a cluster node checks before it proposes). */
int vhost_exchange_declare_check(struct vhost *vhost, const struct exchange_declare *d, struct reply_error *err);
/* exchange.delete; a missing exchange is not an error (as RabbitMQ). if_unused: 406 when it is
 * the source of bindings. */
int vhost_exchange_delete(struct vhost *vhost, struct proto_bytes name, bool if_unused, struct reply_error *err);
/* 0 when exchange.delete may name `name`; 403 for the default exchange and any amq.* name,
 * whether it exists or not (RabbitMQ checks this before permissions). */
int vhost_exchange_delete_allowed(const struct vhost *vhost, struct proto_bytes name, struct reply_error *err);
/* exchange.bind / exchange.unbind: destination receives what source routes. */
int vhost_exchange_bind(struct vhost *vhost, struct proto_bytes destination, struct proto_bytes source,
                        struct proto_bytes key, struct proto_bytes arguments, bool unbind, struct reply_error *err);

/* queue.declare. On success *out is the queue (borrowed) and the counts are filled; a new name
 * for a server-named queue (empty d->name) is readable through queue_name. */
int vhost_queue_declare(struct vhost *vhost, const struct queue_declare *d, struct queue **out,
                        struct reply_error *err);
/* The same for vhost_queue_declare (d->name not empty: a server-named queue's name is generated
 * first), changing nothing, not even the queue's last use. 0 or -1 with err. */
int vhost_queue_declare_check(struct vhost *vhost, const struct queue_declare *d, struct reply_error *err);
/* Writes a fresh server-named queue name ("amq.gen-" and 128 random bits, no queue of that name
 * in vhost) and a NUL to out, for a caller that must vet the name (permissions) before declaring
 * it with server_named set. Returns 0, or -EIO when no randomness is available. */
int vhost_queue_generate_name(struct vhost *vhost, char out[VHOST_GENERATED_NAME_LEN + 1]);
/* Finds a queue usable by owner: 404 when missing, 405 when exclusive to another connection. */
int vhost_queue_lookup(struct vhost *vhost, struct proto_bytes name, void *owner, struct queue **out,
                       struct reply_error *err);
/* queue.delete's conditions for q (of vhost), judged on its consumers and ready messages: the
 * model's own (vhost_queue_delete), or, in a cluster, those of the node holding its messages. A
 * kind of queue without conditional deletes (quorum) refuses if_unused or if_empty with 540
 * NOT_IMPLEMENTED, a connection error, as RabbitMQ 3.10; else 406 "in use" or "not empty". 0,
 * or -1 with err. */
int vhost_queue_delete_check(const struct vhost *vhost, const struct queue *q, size_t consumers, size_t ready,
                             bool if_unused, bool if_empty, struct reply_error *err);
/* queue.delete; returns the number of messages deleted in *count. Missing: not an error. The
 * conditions are vhost_queue_delete_check's, on the model's counts. */
int vhost_queue_delete(struct vhost *vhost, struct proto_bytes name, void *owner, bool if_unused,
                       bool if_empty, uint32_t *count, struct reply_error *err);
/* Deletes a queue the vhost holds (auto-delete, exclusive owner gone, x-expires). */
void vhost_queue_remove(struct vhost *vhost, struct queue *queue);
/* queue.bind / queue.unbind. */
int vhost_queue_bind(struct vhost *vhost, struct proto_bytes queue, struct proto_bytes exchange,
                     struct proto_bytes key, struct proto_bytes arguments, void *owner, bool unbind,
                     struct reply_error *err);
/* Deletes every queue (the vhost itself is being deleted). */
void vhost_delete_all_queues(struct vhost *vhost);
/* A connection went away: delete its exclusive queues. */
void vhost_owner_gone(struct vhost *vhost, void *owner);

/* Resolves the queues a message published to `exchange` with its routing key and headers
 * reaches (following exchange-to-exchange bindings and alternate exchanges, each queue once).
 * 404 when the exchange is missing, 403 when it is internal. out is cleared first. */
int vhost_route(struct vhost *vhost, struct proto_bytes exchange, const struct message *msg,
                struct route_set *out, struct reply_error *err);

/* The exchange a publisher last routed through, so that repeated publishes to the same
 * exchange skip the lookup by name. Zero is empty; it is checked on every use and never
 * trusted once any exchange has been deleted since it was filled. Use one memo with one vhost. */
struct vhost_route_memo {
    void *exchange;
    uint64_t generation;
};

/* vhost_route, looking the exchange up through memo first and refilling it on a miss. */
int vhost_route_memo(struct vhost *vhost, struct vhost_route_memo *memo, struct proto_bytes exchange,
                     const struct message *msg, struct route_set *out, struct reply_error *err);

/* The checks vhost_route_memo makes on the exchange a publish names, without routing: 0, or -1
 * with 404 (no such exchange) or 403 (internal) in err. */
int vhost_publish_check(struct vhost *vhost, struct vhost_route_memo *memo, struct proto_bytes exchange,
                        struct reply_error *err);

/* Counts what the last vhost_route_memo with memo did with a message that reached no queue: it
 * was returned to the publisher (mandatory) or dropped. Counted on the exchange it was
 * published to; call right after that routing (nothing may delete exchanges in between). */
void vhost_route_unroutable(struct vhost_route_memo *memo, bool returned);

/* Dead-lettering is bounded per round; the owner makes each loop pass one round. A dead letter
 * of a message that was itself dead-lettered in the same round (a chain: x-max-length 0 or TTL 0
 * queues feeding each other) costs a hop per queue it is routed to (delivered or not): past
 * VHOST_DEAD_LETTER_BUDGET hops in a round such dead letters are dropped, as are those nested
 * deeper than VHOST_DEAD_LETTER_DEPTH, with one log line per round. Dead letters of messages
 * from clients or from earlier rounds are not budgeted: their number is bounded by the input.
 * Ends the round; returns how many dead letters it dropped that way. */
#define VHOST_DEAD_LETTER_BUDGET 100000
#define VHOST_DEAD_LETTER_DEPTH 8
uint64_t vhost_dead_letter_round(struct vhost *vhost);
/* Dead-letters msg as it leaves queue for reason (enum queue_drop_reason), exactly as a queue's
 * own drop does (x-death, cycles, the budget): for a queue whose messages the model does not
 * hold (a cluster's replicated quorum queue). The caller keeps its reference on msg. */
void vhost_dead_letter(void *ctx, struct queue *queue, struct message *msg, int reason);

/* Expires messages (TTL) and unused queues (x-expires, unless hooks.self_delete declines: then
 * it asks again a second later) at loop time now_ms; returns the next time this should run
 * (UINT64_MAX: nothing pending). */
uint64_t vhost_tick(struct vhost *vhost, uint64_t now_ms);

/* Encodes the durable exchanges, queues and bindings as one field table (contents) appended to
 * out. Returns 0 or -ENOMEM. */
int vhost_export_definitions(struct vhost *vhost, struct table_buf *out);
/* Encodes what a cluster replicates of the vhost (docs/cluster.md): every exchange but the
 * built-in ones, every queue (each with a "durable" field, and exclusive ones with "exclusive":
 * true, as the definitions' layout otherwise), the bindings between them, the policies of both
 * kinds and the limits. Appended to out; 0 or -ENOMEM. */
int vhost_export_replicated(struct vhost *vhost, struct table_buf *out);
/* Makes the vhost's policies and limits those of blob (a vhost's part of what
 * vhost_export_replicated wrote, untrusted): policies it lacks are cleared, its own set (a bad
 * one skipped with a log line and counted in *skipped), limits it leaves out unset. A list or the
 * limits table absent from blob leaves that part alone. 0, or -1 for a malformed blob. */
int vhost_replace_policies_and_limits(struct vhost *vhost, struct proto_bytes blob, size_t *skipped);
/* Recreates what vhost_export_definitions wrote (at start-up, before any connection). Entries
 * that fail are skipped and counted in *skipped. Returns 0, or -1 for a malformed blob. */
int vhost_import_definitions(struct vhost *vhost, struct proto_bytes blob, size_t *skipped);
/* Next entry of the server's list of vhosts in the definitions file, each {"name": a vhost
 * name, "definitions": what vhost_import_definitions takes}; it (table_iter_init'ed on the
 * list) must come from a table that passed table_validate. Returns 1 with name (valid,
 * names.h) and definitions filled, 0 at the end, or -1 for an entry to skip: *why says what is
 * wrong, and name is filled when it was a string at all (else empty). */
int vhost_definitions_next(struct table_iter *it, struct proto_bytes *name, struct proto_bytes *definitions,
                           const char **why);
/* Finds a queue by name (NULL when missing). */
struct queue *vhost_queue_find(struct vhost *vhost, struct proto_bytes name);
/* True when an exchange of that name exists ("" is the default exchange, which always does). */
bool vhost_exchange_exists(struct vhost *vhost, struct proto_bytes name);

/* Listing (for warrenctl and tests). Views are valid during the callback only. */
struct vhost_exchange_info {
    struct proto_bytes name;
    const char *type;
    bool durable, auto_delete, internal;
    struct proto_bytes arguments;
    const struct policy *policy, *operator_policy; /* applied (policy.h), NULL when none */
    const struct stats_exchange *stats;   /* its message counters (stats.h) */
    struct stats_exchange_series *series; /* the sampler's state for it */
};
struct vhost_binding_info {
    struct proto_bytes source;
    bool to_exchange; /* destination is an exchange, else a queue */
    struct proto_bytes destination, routing_key, arguments;
};
void vhost_for_each_exchange(struct vhost *vhost, void (*fn)(const struct vhost_exchange_info *x, void *arg),
                             void *arg);
/* Every explicit binding of every exchange (not the default exchange's implicit ones). */
void vhost_for_each_binding(struct vhost *vhost, void (*fn)(const struct vhost_binding_info *b, void *arg),
                            void *arg);
size_t vhost_exchange_count(const struct vhost *vhost);
void vhost_for_each_queue(struct vhost *vhost, void (*fn)(struct queue *queue, void *arg), void *arg);
/* The same walk with the policy and operator policy applied to each queue (NULL when none;
 * valid during the call). */
void vhost_for_each_queue_with_policies(struct vhost *vhost,
                                        void (*fn)(struct queue *queue, const struct policy *policy,
                                                   const struct policy *operator_policy, void *arg),
                                        void *arg);
size_t vhost_queue_count(const struct vhost *vhost);

/* ---- policies and limits (vhost_policy.c) ----
 * Policies are applied live: setting or clearing one recomputes, for every queue and exchange of
 * the vhost, which policy and operator policy apply (policy_store_match) and what follows from
 * them: a queue's settings in force (queue_apply_arguments with policy_queue_arguments, so a
 * lowered max-length drops or dead-letters at once), an exchange's alternate exchange (the
 * "alternate-exchange" argument when declared, else the policy's). New queues and exchanges
 * get theirs at declare. Each change calls hooks.definitions_changed (they are durable). */

/* Adds or replaces a policy of kind after validating it (policy_store_set), then applies it.
 * Returns 0; -1 with error (cap bytes) holding RabbitMQ's validation text; -ENOMEM. */
int vhost_policy_set(struct vhost *vhost, enum policy_kind kind, const struct policy_spec *spec, char *error,
                     size_t cap);
/* True when vhost has a policy of kind called name. */
bool vhost_policy_exists(const struct vhost *vhost, enum policy_kind kind, const char *name);
/* Removes the policy of kind called name and applies the change. Returns 0 or -ENOENT. */
int vhost_policy_clear(struct vhost *vhost, enum policy_kind kind, const char *name);
/* Calls fn for each policy of kind, in name order; spec is valid during the call only. */
void vhost_for_each_policy(struct vhost *vhost, enum policy_kind kind,
                           void (*fn)(const struct policy_spec *spec, void *arg), void *arg);
/* The policy and operator policy applied to queue (a queue of this vhost; NULL when none). Valid
 * until the next policy change. A walk over all queues gets them from
 * vhost_for_each_queue_with_policies without a lookup per queue. */
void vhost_queue_policies(struct vhost *vhost, struct queue *queue, const struct policy **policy,
                          const struct policy **operator_policy);

/* Per-vhost limits (RabbitMQ's vhost-limits). A negative value means no limit; 0 allows none. */
enum vhost_limit { VHOST_LIMIT_MAX_CONNECTIONS, VHOST_LIMIT_MAX_QUEUES };
#define VHOST_LIMIT_COUNT 2
/* RabbitMQ's name of a limit ("max-connections", "max-queues"), a static string. */
const char *vhost_limit_name(enum vhost_limit limit);
/* The limit called name: 0 and *out, or -1 for an unknown name. */
int vhost_limit_parse(const char *name, enum vhost_limit *out);
/* The limit's value, -1 when unlimited. */
int64_t vhost_limit_get(const struct vhost *vhost, enum vhost_limit limit);
/* Sets a limit (negative: clears it), then calls hooks.definitions_changed. Objects already over
 * the new limit stay, as in RabbitMQ: the limit only refuses new ones. max-queues is enforced by
 * vhost_queue_declare (406 "cannot declare queue 'q': queue limit in vhost '/' (N) is reached");
 * max-connections by the AMQP layer at connection.open. */
void vhost_limit_set(struct vhost *vhost, enum vhost_limit limit, int64_t value);
/* Queues created and deleted in the vhost since it was created (RabbitMQ's churn rates). */
struct vhost_churn {
    uint64_t queue_created, queue_deleted;
};
const struct vhost_churn *vhost_churn(const struct vhost *vhost);

#endif
