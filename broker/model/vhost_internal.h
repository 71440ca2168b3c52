/* broker/model/vhost_internal.h: the vhost's tables, shared by vhost.c (declarations and
 * bindings) and vhost_route.c (routing and dead-lettering). Not for other layers. */
#ifndef WARREN_VHOST_INTERNAL_H
#define WARREN_VHOST_INTERNAL_H

#include "names.h"
#include "route_set.h"
#include "stats.h"
#include "uthash.h"
#include "vhost.h"

struct exchange {
    char name[NAME_MAX_LEN + 1];
    uint8_t name_len;
    enum router_kind kind;
    bool durable, auto_delete, internal;
    bool builtin; /* the default exchange and amq.*: cannot be deleted */
    uint8_t *arguments;
    uint32_t arguments_len;
    struct proto_bytes alternate; /* in force: the argument (inside arguments), else the policy's */
    bool alternate_argument;      /* alternate-exchange was declared: policies do not change it */
    uint8_t *alternate_policy;    /* the policy's alternate-exchange, owned (NULL: none) */
    const struct policy *policy, *operator_policy; /* applied (vhost_policy.c) */
    struct router *router;
    struct stats_exchange stats;
    struct stats_exchange_series series;
    UT_hash_handle hh;
};

struct queue_slot {
    struct queue *queue;
    struct proto_bytes name; /* points into the queue */
    const struct policy *policy, *operator_policy; /* applied (vhost_policy.c) */
    UT_hash_handle hh;
};

struct vhost {
    char name[NAME_MAX_LEN + 1];
    struct vhost_hooks hooks;
    struct exchange *exchanges;
    struct queue_slot *queues;
    struct route_set scratch;   /* reused by routing: allocation-free in steady state */
    struct route_set visited;   /* exchanges seen while following e2e bindings */
    int dead_letter_depth;      /* nesting of dead-lettering through the hooks (stack bound) */
    uint32_t dead_letter_round; /* see vhost_dead_letter_round; wraps below UINT32_MAX */
    uint64_t dead_letter_hops;  /* budgeted hops spent this round */
    uint64_t dead_letter_refused; /* dead letters dropped this round for the budget or depth */
    bool dead_letter_cycle_reported; /* the first cycle is logged, later ones are not */
    struct policy_store *policies;
    int64_t limits[VHOST_LIMIT_COUNT]; /* -1: none */
    struct vhost_churn churn;
};

/* Tagged destinations in a router: exchanges have the low bit set, queues do not. */
static inline void *destination_of_exchange(struct exchange *x) { return (void *)((uintptr_t)x | 1u); }
static inline bool destination_is_exchange(const void *d) { return ((uintptr_t)d & 1u) != 0; }
static inline struct exchange *destination_exchange(void *d) { return (struct exchange *)((uintptr_t)d & ~(uintptr_t)1); }

struct exchange *vhost_find_exchange(struct vhost *vhost, struct proto_bytes name);
struct queue *vhost_find_queue(struct vhost *vhost, struct proto_bytes name);

/* vhost_policy.c: looks up and applies the policies of one exchange, or of one queue (slot);
 * used at declare and by every policy change. Returns 0 or -1 (the queue keeps its settings). */
void vhost_exchange_apply_policies(struct vhost *vhost, struct exchange *x);
int vhost_queue_apply_policies(struct vhost *vhost, struct queue_slot *slot);

/* queue_hooks.dropped is vhost_dead_letter (vhost.h). */

#endif
