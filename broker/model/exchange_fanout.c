/* broker/model/exchange_fanout.c: the fanout exchange. Every destination bound, whatever the
 * key, each once; router.c already keeps the destinations, so there is no index. */
#include "router_type.h"

static int fanout_bind(void **index, struct router_binding *binding)
{
    (void)index;
    (void)binding;
    return 0;
}

static void fanout_unbind(void **index, struct router_binding *binding)
{
    (void)index;
    (void)binding;
}

static int fanout_route(const struct router *router, void *index, struct proto_bytes routing_key,
                        struct proto_bytes headers, struct route_set *out)
{
    (void)index;
    (void)routing_key;
    (void)headers;
    return router_add_all_destinations(router, out);
}

static void fanout_destroy(void *index)
{
    (void)index;
}

const struct router_type router_type_fanout = {
    .name = "fanout",
    .bind = fanout_bind,
    .unbind = fanout_unbind,
    .route = fanout_route,
    .destroy = fanout_destroy,
};
