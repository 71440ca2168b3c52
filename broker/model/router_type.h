/* broker/model/router_type.h: the interface between router.c, which owns the bindings
 * (identity, copies, per-destination lists), and the one file per exchange type that keeps
 * a routing index over them. Private to broker/model/. */
#ifndef WARREN_ROUTER_TYPE_H
#define WARREN_ROUTER_TYPE_H

/* Allocation failures inside uthash become recoverable errors (the item's hh.tbl is left
 * NULL) instead of exit(): every file of the router includes uthash through this header. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

#include "router.h"

struct router_destination;

/* One binding. router.c allocates and frees it; the type reads destination, key and
 * arguments, and owns type_data and the type_prev/type_next link while it is bound. */
struct router_binding {
    void *destination;
    struct proto_bytes key;
    struct proto_bytes arguments;
    void *type_data;
    struct router_binding *type_prev, *type_next;

    /* router.c only. */
    struct router_destination *owner;
    struct router_binding *owner_prev, *owner_next;
    UT_hash_handle hh;         /* identity index, keyed by identity[] */
    uint32_t identity_len;
    uint8_t identity[];        /* destination pointer, key length (u32), key, arguments */
};

/* An exchange type. `index` points at the router's slot for the type's index (NULL until the
 * type sets it). Bindings reach bind/unbind fully initialised except for the type fields. */
struct router_type {
    const char *name;
    /* Indexes binding. Returns 0, -EINVAL (arguments invalid for the type) or -ENOMEM; on
     * failure nothing of binding is left in the index. */
    int (*bind)(void **index, struct router_binding *binding);
    /* Removes binding from the index and frees its type_data. */
    void (*unbind)(void **index, struct router_binding *binding);
    /* Adds matching destinations to out. index may be NULL (no bindings yet). */
    int (*route)(const struct router *router, void *index, struct proto_bytes routing_key,
                 struct proto_bytes headers, struct route_set *out);
    /* Frees the index and every binding's type_data; router.c frees the bindings after. */
    void (*destroy)(void *index);
};

extern const struct router_type router_type_direct;
extern const struct router_type router_type_fanout;
extern const struct router_type router_type_topic;
extern const struct router_type router_type_headers;

/* Adds every destination of router to out, each once (what a fanout does). 0 or -ENOMEM. */
int router_add_all_destinations(const struct router *router, struct route_set *out);

/* Appends binding to a type's intrusive list (head may be NULL). */
static inline void router_binding_list_append(struct router_binding **head,
                                              struct router_binding *binding)
{
    DL_APPEND2(*head, binding, type_prev, type_next);
}

/* Removes binding from a type's intrusive list. */
static inline void router_binding_list_remove(struct router_binding **head,
                                              struct router_binding *binding)
{
    DL_DELETE2(*head, binding, type_prev, type_next);
}

#endif
