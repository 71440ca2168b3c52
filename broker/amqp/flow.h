/* broker/amqp/flow.h: per-publisher flow control, Warren's simplified form of RabbitMQ's credit
 * flow. A queue is under pressure while it has consumers and holds more than flow_queue_bytes
 * of ready message bodies in memory: its consumers are not keeping up. A connection that
 * routed a message to such a queue during a read pauses reading from its socket (TCP pushes
 * back on the publisher) until the queue is below half the bound, or FLOW_PAUSE_MAX_MS passed,
 * whichever comes first; then it reads again and may pause again. Other connections, consumers
 * included, are not touched. Pausing is a change of read interest plus a timer, never a wait.
 * The memory alarm (connection.blocked) stays the last line, for queues without consumers.
 *
 * The disk is the other thing a publisher can outrun: records of persistent messages for
 * durable queues collect in the store's pending batch while the I/O thread writes and syncs the
 * one before. A connection whose publish added records while more than flow_queue_bytes waited
 * there pauses the same way, until the backlog is below half the bound (RabbitMQ's credit flow
 * reaches back from its message store to the reader likewise). The one bound serves both.
 *
 * Deadlock: a connection that also consumes from the pressured queue is not paused (it may be
 * the only thing that can drain the queue: its acks are behind the publishes in the same
 * socket). RabbitMQ blocks the whole reader then, relying on its queue to drain to other
 * consumers; Warren lets it run and leaves that publisher to the memory alarm. Heartbeats go out
 * while paused, and a pause is far shorter than any heartbeat timeout. */
#ifndef WARREN_FLOW_H
#define WARREN_FLOW_H

#include <stdbool.h>
#include <stdint.h>

struct connection;
struct netconn;
struct queue;

/* How long one pause lasts at most, how often a paused connection looks at its queue, and
 * how long the "flow" state stays shown after a pause began (RabbitMQ: 5 s). */
#define FLOW_PAUSE_MAX_MS 500
#define FLOW_CHECK_MS 10
#define FLOW_SHOWN_MS 5000

/* One connection's flow state, embedded in it; all zero is "never paused". */
struct flow {
    struct queue *queue;  /* the pressured queue seen in this read, or waited for (a reference) */
    bool disk;            /* a publish in this read found the disk backlogged, or it is waited for */
    uint64_t timer;       /* the check timer while paused */
    uint64_t paused_at;   /* loop ms the current pause began */
    uint64_t last_pause;  /* loop ms the last pause began; 0 never */
    bool paused;
};

/* True when queue is under pressure at bound bytes (0: flow control off). */
bool flow_queue_pressured(const struct queue *queue, uint64_t bound);

/* A message from conn was just routed to queue, which is under pressure: remember it (a
 * reference is taken) until the end of the read. */
void flow_note_pressure(struct flow *flow, struct queue *queue);

/* A persistent message from conn was just written to the pending batch, which holds more than
 * the bound: remember it until the end of the read. */
void flow_note_disk(struct flow *flow);

/* End of one read of conn: pauses it when the disk was noted, or a pressured queue that conn does
 * not consume from. */
void flow_after_input(struct flow *flow, struct connection *conn);

/* True while the connection should show RabbitMQ's "flow" state, at loop time now_ms. */
bool flow_shown(const struct flow *flow, uint64_t now_ms);

/* The connection is going: cancels the timer and drops the queue reference. */
void flow_release(struct flow *flow, struct netconn *net);

#endif
