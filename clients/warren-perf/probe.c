/* --probe-queue: one connection, one passive queue.declare, one line of output. A driver calls it
 * in a loop after restarting a broker to learn when the broker serves again and whether the
 * queue came back whole (clients/bench/compare, W8). */
#include <stdio.h>

#include "perf.h"
#include "session.h"

int perf_probe_run(const struct perf_config *config)
{
    char err[PERF_ERROR_MAX];
    amqp_connection_state_t conn = session_open(config, 0, err, sizeof(err));
    if (!conn) {
        fprintf(stderr, "warren-perf: probe: %s\n", err);
        return 1;
    }
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, PERF_CHANNEL, amqp_cstring_bytes(config->probe_queue),
                                                     1, 0, 0, 0, amqp_empty_table);
    if (session_check(amqp_get_rpc_reply(conn), "queue.declare passive", err, sizeof(err)) != 0) {
        fprintf(stderr, "warren-perf: probe: %s\n", err);
        session_abandon(conn);
        return 1;
    }
    printf("QUEUE name=%s messages=%u consumers=%u\n", config->probe_queue, ok->message_count, ok->consumer_count);
    session_close(conn);
    return 0;
}
