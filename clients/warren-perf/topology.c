/* Declares the run's exchange, queues and bindings.
 *
 * Routing: direct (and topic without --bindings) binds queue i with its own name and producers
 * cycle over the queue names, so message n goes to queue n % Q. Fanout binds every queue and
 * publishes with an empty key, so every message reaches all Q queues. Topic with --bindings N
 * binds the pattern "perf.<i>.*" to queue i % Q and publishes key "perf.<n % N>.x", so each
 * message matches exactly one of N bindings: the cost measured is finding it among N. */
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static const char *type_name(enum perf_exchange_type type)
{
    switch (type) {
    case PERF_EXCHANGE_FANOUT:
        return "fanout";
    case PERF_EXCHANGE_TOPIC:
        return "topic";
    case PERF_EXCHANGE_DIRECT:
        break;
    }
    return "direct";
}

static int declare_queue(amqp_connection_state_t conn, const struct perf_config *config, int index,
                         char name[PERF_NAME_MAX], char *err, size_t err_len)
{
    if (config->queue_name && config->queue_count == 1)
        snprintf(name, PERF_NAME_MAX, "%s", config->queue_name);
    else if (config->queue_name)
        snprintf(name, PERF_NAME_MAX, "%s.%d", config->queue_name, index + 1);
    else
        name[0] = '\0';
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, PERF_CHANNEL, amqp_cstring_bytes(name), 0,
                                                     config->durable, 0, 0, amqp_empty_table);
    if (session_check(amqp_get_rpc_reply(conn), "queue.declare", err, err_len) != 0)
        return -1;
    snprintf(name, PERF_NAME_MAX, "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
    return 0;
}

/* Many bindings are sent with no-wait and fenced by one synchronous call, so setting up 10,000
 * of them costs the broker's work rather than 10,000 client round trips. */
static int bind_topic_patterns(amqp_connection_state_t conn, struct perf_run *run, char *err, size_t err_len)
{
    const struct perf_config *config = run->config;
    for (int i = 0; i < config->bindings; i++) {
        char pattern[64];
        snprintf(pattern, sizeof(pattern), "perf.%d.*", i);
        amqp_queue_bind_t bind = {
            .queue = amqp_cstring_bytes(run->queues[i % run->queue_count]),
            .exchange = amqp_cstring_bytes(config->exchange_name),
            .routing_key = amqp_cstring_bytes(pattern),
            .nowait = 1,
            .arguments = amqp_empty_table,
        };
        int status = amqp_send_method(conn, PERF_CHANNEL, AMQP_QUEUE_BIND_METHOD, &bind);
        if (session_check_status(status, "queue.bind", err, err_len) != 0)
            return -1;
    }
    amqp_exchange_declare(conn, PERF_CHANNEL, amqp_cstring_bytes(config->exchange_name),
                          amqp_cstring_bytes("topic"), 1, config->durable, 0, 0, amqp_empty_table);
    return session_check(amqp_get_rpc_reply(conn), "bindings fence (exchange.declare passive)", err, err_len);
}

int topology_declare(amqp_connection_state_t conn, struct perf_run *run, char *err, size_t err_len)
{
    const struct perf_config *config = run->config;
    amqp_exchange_declare(conn, PERF_CHANNEL, amqp_cstring_bytes(config->exchange_name),
                          amqp_cstring_bytes(type_name(config->exchange_type)), 0, config->durable, 0, 0,
                          amqp_empty_table);
    if (session_check(amqp_get_rpc_reply(conn), "exchange.declare", err, err_len) != 0)
        return -1;

    run->queue_count = config->queue_count;
    run->queues = calloc((size_t)run->queue_count, sizeof(*run->queues));
    if (!run->queues)
        return snprintf(err, err_len, "out of memory"), -1;
    for (int i = 0; i < run->queue_count; i++)
        if (declare_queue(conn, config, i, run->queues[i], err, err_len) != 0)
            return -1;

    bool patterns = config->exchange_type == PERF_EXCHANGE_TOPIC && config->bindings > 0;
    if (patterns) {
        if (bind_topic_patterns(conn, run, err, err_len) != 0)
            return -1;
    } else {
        for (int i = 0; i < run->queue_count; i++) {
            const char *key = config->exchange_type == PERF_EXCHANGE_FANOUT ? "" : run->queues[i];
            amqp_queue_bind(conn, PERF_CHANNEL, amqp_cstring_bytes(run->queues[i]),
                            amqp_cstring_bytes(config->exchange_name), amqp_cstring_bytes(key),
                            amqp_empty_table);
            if (session_check(amqp_get_rpc_reply(conn), "queue.bind", err, err_len) != 0)
                return -1;
        }
    }

    if (config->exchange_type == PERF_EXCHANGE_FANOUT) {
        run->routing_key_count = 1;
        run->fanout_factor = run->queue_count;
    } else {
        run->routing_key_count = patterns ? config->bindings : run->queue_count;
        run->fanout_factor = 1;
    }
    run->routing_keys = calloc((size_t)run->routing_key_count, sizeof(*run->routing_keys));
    if (!run->routing_keys)
        return snprintf(err, err_len, "out of memory"), -1;
    for (int i = 0; i < run->routing_key_count; i++) {
        if (patterns)
            snprintf(run->routing_keys[i], PERF_NAME_MAX, "perf.%d.x", i);
        else if (config->exchange_type != PERF_EXCHANGE_FANOUT)
            snprintf(run->routing_keys[i], PERF_NAME_MAX, "%s", run->queues[i]);
    }
    return 0;
}

int topology_cleanup(amqp_connection_state_t conn, const struct perf_run *run, char *err, size_t err_len)
{
    if (run->config->queue_name && !run->config->delete_queues)
        return 0;
    for (int i = 0; i < run->queue_count; i++) {
        amqp_queue_delete(conn, PERF_CHANNEL, amqp_cstring_bytes(run->queues[i]), 0, 0);
        if (session_check(amqp_get_rpc_reply(conn), "queue.delete", err, err_len) != 0)
            return -1;
    }
    return 0;
}

void topology_free(struct perf_run *run)
{
    free(run->queues);
    free(run->routing_keys);
    run->queues = NULL;
    run->routing_keys = NULL;
}
