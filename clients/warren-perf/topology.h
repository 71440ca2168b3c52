/* The exchange, queues and bindings a run uses, declared on a set-up connection before any
 * worker starts, and the routing keys producers cycle through. */
#ifndef WARREN_PERF_TOPOLOGY_H
#define WARREN_PERF_TOPOLOGY_H

#include <amqp.h>

#include "perf.h"

/* Declare everything on conn and fill run->queues, run->routing_keys and run->fanout_factor
 * (arrays the caller frees with topology_free). Returns 0, or -1 with err filled. */
int topology_declare(amqp_connection_state_t conn, struct perf_run *run, char *err, size_t err_len);

/* Delete the queues when they were server-named or --delete-queues was given. */
int topology_cleanup(amqp_connection_state_t conn, const struct perf_run *run, char *err, size_t err_len);

/* Free the arrays topology_declare allocated; run stays valid (empty). */
void topology_free(struct perf_run *run);

#endif
