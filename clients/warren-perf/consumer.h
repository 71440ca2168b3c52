/* What consumers and RPC servers share: connecting with prefetch and consuming their share of
 * the queues, and acknowledging in batches. */
#ifndef WARREN_PERF_CONSUMER_H
#define WARREN_PERF_CONSUMER_H

#include <amqp.h>

#include "perf.h"

/* Connect, set prefetch and start consuming worker's share of the queues; counts the worker as
 * ready. Returns the connection, or NULL after recording the failure (role names the thread). */
amqp_connection_state_t consumer_connect(struct perf_worker *worker, const char *role);

/* Acknowledges in batches of --multi-ack with multiple=true. Valid once conn and batch are set. */
struct acker {
    amqp_connection_state_t conn;
    int batch;
    int pending;
    uint64_t last_tag;
};

/* Count a delivery and ack the batch when it is full. Returns a rabbitmq-c status. */
int acker_add(struct acker *acker, uint64_t delivery_tag);

/* Ack whatever is pending: when the queue goes quiet, a partial batch must not wait for
 * deliveries that may never come. Returns a rabbitmq-c status. */
int acker_flush(struct acker *acker);

#endif
