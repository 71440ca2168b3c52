/* --rpc: clients (the --producers) send a request with reply-to and wait for its answer before
 * sending the next; servers (the --consumers) answer each request through the default exchange.
 * The round trip is measured from the stamp the server echoes back in the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "delivery.h"
#include "perf.h"
#include "session.h"

static const struct timeval poll_interval = {.tv_sec = 0, .tv_usec = 100000};

/* Declare an exclusive reply queue and consume from it without acks. The name is chosen here,
 * not by the broker: some brokers (garagemq) do not generate queue names. */
static int open_reply_queue(amqp_connection_state_t conn, int index, char name[PERF_NAME_MAX], char *err,
                            size_t err_len)
{
    snprintf(name, PERF_NAME_MAX, "warren-perf.reply.%ld.%d", (long)getpid(), index);
    amqp_queue_declare(conn, PERF_CHANNEL, amqp_cstring_bytes(name), 0, 0, 1, 1, amqp_empty_table);
    if (session_check(amqp_get_rpc_reply(conn), "reply queue.declare", err, err_len) != 0)
        return -1;
    amqp_basic_consume(conn, PERF_CHANNEL, amqp_cstring_bytes(name), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    return session_check(amqp_get_rpc_reply(conn), "reply basic.consume", err, err_len);
}

/* Wait for the reply to the request just sent. Returns 1 when it came, 0 when stopping, -1 on error. */
static int await_reply(struct perf_worker *worker, struct delivery_reader *reader)
{
    char err[PERF_ERROR_MAX];
    while (!perf_stopping(worker->run)) {
        enum delivery_result result = delivery_next(reader, &poll_interval, err, sizeof(err));
        if (result == DELIVERY_ERROR) {
            perf_fail(worker, "rpc client %d: %s", worker->index, err);
            return -1;
        }
        if (result == DELIVERY_MESSAGE) {
            if (reader->stamp)
                histogram_record(&worker->latency, perf_now() - reader->stamp);
            perf_count(&worker->counters.delivered, 1);
            return 1;
        }
    }
    return 0;
}

static void client_loop(struct perf_worker *worker, amqp_connection_state_t conn, const char *reply_queue)
{
    struct perf_run *run = worker->run;
    const struct perf_config *config = run->config;
    struct delivery_reader reader = {.conn = conn};
    unsigned char *body = calloc(1, config->size ? config->size : 1);
    if (!body) {
        perf_fail(worker, "rpc client %d: out of memory", worker->index);
        return;
    }
    uint64_t interval = config->rate > 0 ? (uint64_t)(1e9 / config->rate) : 0;
    uint64_t start = perf_now();
    for (uint64_t n = 0; !perf_publishing_over(run) && (config->count == 0 || n < config->count); n++) {
        if (interval) {
            uint64_t due = start + n * interval, now;
            while ((now = perf_now()) < due && !perf_publishing_over(run)) {
                uint64_t wait = due - now < 100000000ull ? due - now : 100000000ull;
                nanosleep(&(struct timespec){.tv_nsec = (long)wait}, NULL);
            }
        }
        char correlation[32];
        snprintf(correlation, sizeof(correlation), "%llu", (unsigned long long)n);
        amqp_basic_properties_t properties = {
            ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG,
            .delivery_mode = config->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT,
            .reply_to = amqp_cstring_bytes(reply_queue),
            .correlation_id = amqp_cstring_bytes(correlation),
        };
        uint64_t now = perf_now();
        if (config->size >= sizeof(now))
            memcpy(body, &now, sizeof(now));
        const char *key = run->routing_keys[n % (uint64_t)run->routing_key_count];
        int status = amqp_basic_publish(conn, PERF_CHANNEL, amqp_cstring_bytes(config->exchange_name),
                                        amqp_cstring_bytes(key), 0, 0, &properties,
                                        (amqp_bytes_t){.len = config->size, .bytes = body});
        if (status != AMQP_STATUS_OK) {
            perf_fail(worker, "rpc client %d: publish: %s", worker->index, amqp_error_string2(status));
            break;
        }
        perf_count(&worker->counters.published, 1);
        if (await_reply(worker, &reader) <= 0)
            break;
    }
    free(body);
    delivery_reader_free(&reader);
}

void *perf_rpc_client_main(void *arg)
{
    struct perf_worker *worker = arg;
    char err[PERF_ERROR_MAX];
    char reply_queue[PERF_NAME_MAX];
    amqp_connection_state_t conn = session_open(worker->run->config, 0, err, sizeof(err));
    if (!conn)
        perf_fail(worker, "rpc client %d: %s", worker->index, err);
    else if (open_reply_queue(conn, worker->index, reply_queue, err, sizeof(err)) != 0)
        perf_fail(worker, "rpc client %d: %s", worker->index, err);
    else {
        atomic_fetch_add(&worker->run->producers_ready, 1);
        if (perf_wait_go(worker->run))
            client_loop(worker, conn, reply_queue);
    }
    if (worker->error[0])
        session_abandon(conn);
    else
        session_close(conn);
    atomic_store(&worker->done, true);
    return NULL;
}

/* Answer one request: same body, same correlation id, to the reply-to queue. */
static int answer(amqp_connection_state_t conn, const struct delivery_reader *request)
{
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_CORRELATION_ID_FLAG,
        .correlation_id = amqp_cstring_bytes(request->correlation_id),
    };
    return amqp_basic_publish(conn, PERF_CHANNEL, amqp_empty_bytes, amqp_cstring_bytes(request->reply_to), 0, 0,
                              &properties, (amqp_bytes_t){.len = request->body_size, .bytes = request->body});
}

void *perf_rpc_server_main(void *arg)
{
    struct perf_worker *worker = arg;
    struct perf_run *run = worker->run;
    const struct perf_config *config = run->config;
    char err[PERF_ERROR_MAX];
    amqp_connection_state_t conn = consumer_connect(worker, "rpc server");
    struct delivery_reader reader = {.conn = conn, .keep_content = true};
    /* One request is outstanding per client, so a batch would only wait for the idle flush. */
    struct acker acker = {.conn = conn, .batch = 1};
    while (conn && !perf_stopping(run)) {
        enum delivery_result result = delivery_next(&reader, &poll_interval, err, sizeof(err));
        int status = AMQP_STATUS_OK;
        if (result == DELIVERY_ERROR) {
            perf_fail(worker, "rpc server %d: %s", worker->index, err);
            break;
        }
        if (result == DELIVERY_TIMEOUT && !config->autoack)
            status = acker_flush(&acker);
        if (result == DELIVERY_MESSAGE && reader.reply_to[0]) {
            status = answer(conn, &reader);
            if (status == AMQP_STATUS_OK && !config->autoack)
                status = acker_add(&acker, reader.delivery_tag);
        }
        if (status != AMQP_STATUS_OK) {
            perf_fail(worker, "rpc server %d: %s", worker->index, amqp_error_string2(status));
            break;
        }
    }
    if (worker->error[0])
        session_abandon(conn);
    else
        session_close(conn);
    delivery_reader_free(&reader);
    atomic_store(&worker->done, true);
    return NULL;
}
