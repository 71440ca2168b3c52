/* broker/net/netloop.c: the registry of per-loop network state (struct netloop), keyed by
 * the loop pointer. Connections and listeners point at their state directly; only the
 * before-sleep entry points and netconn_count/for_each look it up, and with one loop per
 * process the first entry matches. Single-threaded, like the loop itself. */
#include "net_private.h"

#include <stdlib.h>

static struct netloop *netloops;

struct netloop *netloop_find(const struct event_loop *loop)
{
    for (struct netloop *net = netloops; net; net = net->next)
        if (net->loop == loop)
            return net;
    return NULL;
}

struct netloop *netloop_acquire(struct event_loop *loop)
{
    struct netloop *net = netloop_find(loop);
    if (net)
        return net;
    net = calloc(1, sizeof(*net));
    if (!net)
        return NULL;
    net->loop = loop;
    link_init(&net->conns);
    link_init(&net->pending);
    link_init(&net->reap);
    net->next = netloops;
    netloops = net;
    return net;
}

void netloop_release_if_unused(struct netloop *net)
{
    if (net->conn_count || net->listener_count)
        return;
    for (struct netloop **at = &netloops; *at; at = &(*at)->next) {
        if (*at == net) {
            *at = net->next;
            break;
        }
    }
    outq_pool_drain(&net->pool);
    free(net->scratch);
    free(net);
}
