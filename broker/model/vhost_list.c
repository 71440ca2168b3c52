/* broker/model/vhost_list.c: read-only walks over a vhost's exchanges and bindings, for the
 * admin views. */
#include "queue.h"
#include "vhost_internal.h"

void vhost_for_each_exchange(struct vhost *vhost, void (*fn)(const struct vhost_exchange_info *x, void *arg),
                             void *arg)
{
    struct exchange *x, *tmp;
    HASH_ITER(hh, vhost->exchanges, x, tmp) {
        struct vhost_exchange_info info = {
            .name = {(const uint8_t *)x->name, x->name_len},
            .type = router_kind_name(x->kind),
            .durable = x->durable,
            .auto_delete = x->auto_delete,
            .internal = x->internal,
            .arguments = {x->arguments, x->arguments_len},
            .policy = x->policy,
            .operator_policy = x->operator_policy,
            .stats = &x->stats,
            .series = &x->series,
        };
        fn(&info, arg);
    }
}

struct binding_walk {
    void (*fn)(const struct vhost_binding_info *b, void *arg);
    void *arg;
    struct proto_bytes source;
};

static void visit(void *destination, struct proto_bytes key, struct proto_bytes args, void *arg)
{
    struct binding_walk *w = arg;
    struct vhost_binding_info info = {.source = w->source, .routing_key = key, .arguments = args};
    if (destination_is_exchange(destination)) {
        struct exchange *x = destination_exchange(destination);
        info.to_exchange = true;
        info.destination = (struct proto_bytes){(const uint8_t *)x->name, x->name_len};
    } else {
        info.destination = queue_name(destination);
    }
    w->fn(&info, w->arg);
}

void vhost_for_each_binding(struct vhost *vhost, void (*fn)(const struct vhost_binding_info *b, void *arg),
                            void *arg)
{
    struct binding_walk w = {fn, arg, {NULL, 0}};
    struct exchange *x, *tmp;
    HASH_ITER(hh, vhost->exchanges, x, tmp) {
        w.source = (struct proto_bytes){(const uint8_t *)x->name, x->name_len};
        router_for_each(x->router, visit, &w);
    }
}

size_t vhost_exchange_count(const struct vhost *vhost) { return HASH_COUNT(vhost->exchanges); }

const struct vhost_churn *vhost_churn(const struct vhost *vhost) { return &vhost->churn; }
