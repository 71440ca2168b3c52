/* broker/amqp/flow.c: per-publisher flow control (see flow.h for the policy). The pause is the
 * net layer's NETCONN_PAUSE_FLOW read-interest bit; a FLOW_CHECK_MS timer ends it, so nothing
 * in the model has to call back into connections when a queue drains. */
#include "flow.h"

#include "connection.h"
#include "event_loop.h"
#include "log.h"
#include "netconn.h"
#include "persistence.h"
#include "queue.h"
#include "server.h"

bool flow_queue_pressured(const struct queue *queue, uint64_t bound)
{
    /* Without consumers a backlog is what the user asked for (a queue filled ahead of its
     * consumers): that is the memory alarm's business, not a reason to slow one publisher. */
    return bound > 0 && queue_memory_bytes(queue) > bound && queue_consumer_count(queue) > 0;
}

void flow_note_pressure(struct flow *flow, struct queue *queue)
{
    if (flow->queue)
        return; /* one queue to wait for is enough: the pause is short and checked again */
    queue_retain(queue);
    flow->queue = queue;
}

void flow_note_disk(struct flow *flow) { flow->disk = true; }

static void forget_queue(struct flow *flow)
{
    if (flow->queue)
        queue_release(flow->queue);
    flow->queue = NULL;
}

/* True when this read noted something to wait for: a pressured queue or the disk. */
static bool noted(const struct flow *flow) { return flow->queue || flow->disk; }

/* Drops what was noted (the queue's reference included). */
static void forget(struct flow *flow)
{
    forget_queue(flow);
    flow->disk = false;
}

static void resume(struct flow *flow, struct netconn *net)
{
    forget(flow);
    flow->paused = false;
    netconn_pause_input(net, NETCONN_PAUSE_FLOW, false);
}

/* The timer holds the connection, never the reverse: on_close cancels it (flow_release). */
static void check(struct event_loop *loop, void *data)
{
    struct connection *conn = data;
    struct flow *flow = connection_flow(conn);
    flow->timer = 0;
    uint64_t now = loop_now_ms(loop);
    struct server *server = connection_server(conn);
    uint64_t bound = server_config(server)->flow_queue_bytes;
    struct queue *q = flow->queue;
    bool drained = !q || queue_is_deleted(q) || queue_consumer_count(q) == 0 || queue_memory_bytes(q) <= bound / 2;
    if (flow->disk && persistence_backlogged(server_persistence(server), bound / 2))
        drained = false;
    if (drained || now - flow->paused_at >= FLOW_PAUSE_MAX_MS) {
        resume(flow, connection_net(conn));
        return;
    }
    flow->timer = loop_timer_add(loop, FLOW_CHECK_MS, check, conn);
}

void flow_after_input(struct flow *flow, struct connection *conn)
{
    if (!noted(flow) || flow->paused)
        return;
    struct netconn *net = connection_net(conn);
    if (flow->queue && connection_consumes_from(conn, flow->queue))
        forget_queue(flow); /* see flow.h: it may be the queue's own drain */
    if (!noted(flow) || netconn_is_closing(net)) {
        forget(flow);
        return;
    }
    struct event_loop *loop = netconn_loop(net);
    flow->timer = loop_timer_add(loop, FLOW_CHECK_MS, check, conn);
    if (!flow->timer) {
        forget(flow); /* no timer, no way to resume: do not pause */
        return;
    }
    flow->paused = true;
    flow->paused_at = flow->last_pause = loop_now_ms(loop);
    netconn_pause_input(net, NETCONN_PAUSE_FLOW, true);
    log_debug("%s: flow: paused while %s", connection_name(conn),
              flow->queue ? "a queue it publishes to drains" : "the disk catches up");
}

bool flow_shown(const struct flow *flow, uint64_t now_ms)
{
    return flow->paused || (flow->last_pause != 0 && now_ms - flow->last_pause < FLOW_SHOWN_MS);
}

void flow_release(struct flow *flow, struct netconn *net)
{
    if (flow->timer)
        loop_timer_cancel(netconn_loop(net), flow->timer);
    flow->timer = 0;
    flow->paused = false;
    forget(flow);
}
