/* A consumer thread: consumes its share of the queues with the configured prefetch and ack mode
 * and records publish-to-delivery latency from the stamp in each body. */
#include <stdio.h>

#include "consumer.h"
#include "delivery.h"
#include "perf.h"
#include "session.h"

/* Consumer c of C takes queue c % Q when C >= Q, else every queue q with q % C == c, so all
 * queues are consumed whichever count is larger. */
static int consume_share(amqp_connection_state_t conn, const struct perf_run *run, int index, char *err,
                         size_t err_len)
{
    const struct perf_config *config = run->config;
    int consumers = config->consumers;
    for (int q = 0; q < run->queue_count; q++) {
        bool mine = consumers >= run->queue_count ? q == index % run->queue_count : q % consumers == index;
        if (!mine)
            continue;
        amqp_basic_consume(conn, PERF_CHANNEL, amqp_cstring_bytes(run->queues[q]), amqp_empty_bytes, 0,
                           config->autoack, 0, amqp_empty_table);
        if (session_check(amqp_get_rpc_reply(conn), "basic.consume", err, err_len) != 0)
            return -1;
    }
    return 0;
}

amqp_connection_state_t consumer_connect(struct perf_worker *worker, const char *role)
{
    const struct perf_config *config = worker->run->config;
    char err[PERF_ERROR_MAX];
    amqp_connection_state_t conn = session_open(config, 0, err, sizeof(err));
    if (!conn) {
        perf_fail(worker, "%s %d: %s", role, worker->index, err);
        return NULL;
    }
    if (config->prefetch > 0 && !config->autoack) {
        amqp_basic_qos(conn, PERF_CHANNEL, 0, (uint16_t)config->prefetch, 0);
        if (session_check(amqp_get_rpc_reply(conn), "basic.qos", err, sizeof(err)) != 0) {
            perf_fail(worker, "%s %d: %s", role, worker->index, err);
            session_abandon(conn);
            return NULL;
        }
    }
    /* With producers, consuming starts before the measured phase (the queues are empty). With
     * none, the consumers drain a backlog: that is the measured work, so it waits for go. */
    bool draining_backlog = config->producers == 0;
    if (draining_backlog) {
        atomic_fetch_add(&worker->run->ready, 1);
        if (!perf_wait_go(worker->run)) {
            session_close(conn);
            return NULL;
        }
    }
    if (consume_share(conn, worker->run, worker->index, err, sizeof(err)) != 0) {
        perf_fail(worker, "%s %d: %s", role, worker->index, err);
        session_abandon(conn);
        return NULL;
    }
    if (!draining_backlog)
        atomic_fetch_add(&worker->run->ready, 1);
    return conn;
}

int acker_add(struct acker *acker, uint64_t delivery_tag)
{
    acker->last_tag = delivery_tag;
    if (++acker->pending < acker->batch)
        return AMQP_STATUS_OK;
    return acker_flush(acker);
}

int acker_flush(struct acker *acker)
{
    if (acker->pending == 0)
        return AMQP_STATUS_OK;
    int status = amqp_basic_ack(acker->conn, PERF_CHANNEL, acker->last_tag, acker->pending > 1);
    acker->pending = 0;
    return status;
}

void *perf_consumer_main(void *arg)
{
    struct perf_worker *worker = arg;
    struct perf_run *run = worker->run;
    const struct perf_config *config = run->config;
    char err[PERF_ERROR_MAX];
    struct delivery_reader reader = {0};
    amqp_connection_state_t conn = consumer_connect(worker, "consumer");
    if (!conn)
        goto out;
    reader.conn = conn;
    struct acker acker = {.conn = conn, .batch = config->multi_ack};
    const struct timeval timeout = {.tv_sec = 0, .tv_usec = 100000};
    while (!perf_stopping(run)) {
        enum delivery_result result = delivery_next(&reader, &timeout, err, sizeof(err));
        int status = AMQP_STATUS_OK;
        if (result == DELIVERY_ERROR) {
            perf_fail(worker, "consumer %d: %s", worker->index, err);
            break;
        }
        if (result == DELIVERY_TIMEOUT && !config->autoack)
            status = acker_flush(&acker);
        if (result == DELIVERY_MESSAGE) {
            if (reader.stamp)
                histogram_record(&worker->latency, perf_now() - reader.stamp);
            perf_count(&worker->counters.delivered, 1);
            if (!config->autoack)
                status = acker_add(&acker, reader.delivery_tag);
        }
        if (status != AMQP_STATUS_OK) {
            perf_fail(worker, "consumer %d: basic.ack: %s", worker->index, amqp_error_string2(status));
            break;
        }
    }
    if (!worker->error[0] && !config->autoack)
        acker_flush(&acker);
out:
    if (worker->error[0])
        session_abandon(conn);
    else
        session_close(conn);
    delivery_reader_free(&reader);
    atomic_store(&worker->done, true);
    return NULL;
}
