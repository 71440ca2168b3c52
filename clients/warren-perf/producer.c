/* A producer thread: publishes bodies stamped with the monotonic send time, optionally at a
 * fixed rate and with a bounded window of unconfirmed publishes (publisher confirms).
 *
 * Confirm bookkeeping: publish sequence numbers start at 1 after confirm.select. The send time
 * of seq lives in slot seq % window; a slot holds its seq while unconfirmed and 0 once settled.
 * `oldest` is the lowest unsettled seq, and publishing waits while next - oldest == window, so a
 * slot is never reused before it is settled even when the broker acks out of order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "perf.h"
#include "session.h"

struct producer {
    struct perf_worker *worker;
    const struct perf_config *config;
    amqp_connection_state_t conn;
    unsigned char *body;
    amqp_basic_properties_t properties;
    uint64_t window;
    uint64_t next_seq;
    uint64_t oldest;
    uint64_t *slot_seq;
    uint64_t *slot_time;
    uint64_t skip_body; /* bytes of a basic.return's content still to discard */
    bool skip_header;
};

static void settle(struct producer *producer, uint64_t seq, uint64_t now, bool nack)
{
    uint64_t slot = seq % producer->window;
    if (producer->slot_seq[slot] != seq)
        return;
    producer->slot_seq[slot] = 0;
    if (nack) {
        perf_count(&producer->worker->counters.nacked, 1);
    } else {
        perf_count(&producer->worker->counters.confirmed, 1);
        histogram_record(&producer->worker->confirm_latency, now - producer->slot_time[slot]);
    }
}

static void handle_confirm(struct producer *producer, uint64_t tag, bool multiple, bool nack)
{
    uint64_t now = perf_now();
    if (multiple) {
        for (uint64_t seq = producer->oldest; seq <= tag && seq < producer->next_seq; seq++)
            settle(producer, seq, now, nack);
    } else {
        settle(producer, tag, now, nack);
    }
    while (producer->oldest < producer->next_seq && producer->slot_seq[producer->oldest % producer->window] == 0)
        producer->oldest++;
}

/* Handle one incoming frame if one arrives within timeout. Returns 1 when a frame was handled,
 * 0 on timeout, -1 on a fatal error (already recorded). */
static int poll_frame(struct producer *producer, const struct timeval *timeout)
{
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(producer->conn, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if (status != AMQP_STATUS_OK) {
        perf_fail(producer->worker, "producer %d: %s", producer->worker->index, amqp_error_string2(status));
        return -1;
    }
    if (frame.frame_type == AMQP_FRAME_HEADER && producer->skip_header) {
        producer->skip_header = false;
        producer->skip_body = frame.payload.properties.body_size;
    } else if (frame.frame_type == AMQP_FRAME_BODY && producer->skip_body) {
        size_t len = frame.payload.body_fragment.len;
        producer->skip_body -= len < producer->skip_body ? len : producer->skip_body;
    } else if (frame.frame_type == AMQP_FRAME_METHOD) {
        const amqp_method_t *method = &frame.payload.method;
        if (method->id == AMQP_BASIC_ACK_METHOD && producer->window) {
            const amqp_basic_ack_t *ack = method->decoded;
            handle_confirm(producer, ack->delivery_tag, ack->multiple, false);
        } else if (method->id == AMQP_BASIC_NACK_METHOD && producer->window) {
            const amqp_basic_nack_t *nack = method->decoded;
            handle_confirm(producer, nack->delivery_tag, nack->multiple, true);
        } else if (method->id == AMQP_BASIC_RETURN_METHOD) {
            perf_count(&producer->worker->counters.returned, 1);
            producer->skip_header = true;
        } else {
            char err[PERF_ERROR_MAX];
            if (session_handle_unexpected(producer->conn, &frame, err, sizeof(err)) != 0) {
                perf_fail(producer->worker, "producer %d: %s", producer->worker->index, err);
                return -1;
            }
        }
    }
    amqp_maybe_release_buffers(producer->conn);
    return 1;
}

/* Handle every frame already received, plus what the socket holds when `check_socket`. */
static int drain_frames(struct producer *producer, bool check_socket)
{
    static const struct timeval zero = {0, 0};
    for (;;) {
        if (!check_socket && !amqp_frames_enqueued(producer->conn) && !amqp_data_in_buffer(producer->conn))
            return 0;
        int rc = poll_frame(producer, &zero);
        if (rc <= 0)
            return rc;
    }
}

/* Wait up to wait_ns for something to happen: a frame when confirms are on, else just sleep. */
static int wait_a_while(struct producer *producer, uint64_t wait_ns)
{
    if (wait_ns > 100000000ull)
        wait_ns = 100000000ull;
    if (producer->window) {
        struct timeval timeout = {.tv_sec = 0, .tv_usec = (suseconds_t)(wait_ns / 1000)};
        return poll_frame(producer, &timeout) < 0 ? -1 : 0;
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
    nanosleep(&pause, NULL);
    return 0;
}

static int publish_one(struct producer *producer, uint64_t n)
{
    struct perf_run *run = producer->worker->run;
    uint64_t now = perf_now();
    if (producer->config->size >= sizeof(now))
        memcpy(producer->body, &now, sizeof(now));
    if (producer->window) {
        uint64_t seq = producer->next_seq++;
        producer->slot_seq[seq % producer->window] = seq;
        producer->slot_time[seq % producer->window] = now;
    }
    const char *key = run->routing_keys[n % (uint64_t)run->routing_key_count];
    amqp_bytes_t body = {.len = producer->config->size, .bytes = producer->body};
    int status = amqp_basic_publish(producer->conn, PERF_CHANNEL, amqp_cstring_bytes(producer->config->exchange_name),
                                    amqp_cstring_bytes(key), 0, 0, &producer->properties, body);
    if (status != AMQP_STATUS_OK) {
        perf_fail(producer->worker, "producer %d: publish: %s", producer->worker->index, amqp_error_string2(status));
        return -1;
    }
    perf_count(&producer->worker->counters.published, 1);
    return 0;
}

static void publish_loop(struct producer *producer)
{
    const struct perf_config *config = producer->config;
    struct perf_run *run = producer->worker->run;
    uint64_t interval = config->rate > 0 ? (uint64_t)(1e9 / config->rate) : 0;
    uint64_t start = perf_now();
    uint64_t sent = 0;
    while (!perf_publishing_over(run) && (config->count == 0 || sent < config->count)) {
        if (producer->window && producer->next_seq - producer->oldest >= producer->window) {
            if (wait_a_while(producer, 100000000ull) < 0)
                return;
            continue;
        }
        if (interval) {
            uint64_t due = start + sent * interval, now = perf_now();
            if (now < due) {
                if (wait_a_while(producer, due - now) < 0)
                    return;
                continue;
            }
        }
        if (publish_one(producer, sent) < 0)
            return;
        sent++;
        /* A poll() per publish would double the syscalls; frames the library already holds are
         * free to look at, and the socket is checked every 16 publishes (every 1024 without
         * confirms, only to notice a broker closing the channel). */
        bool check_socket = (sent & (producer->window ? 15u : 1023u)) == 0;
        if (drain_frames(producer, check_socket) < 0)
            return;
    }
    while (producer->window && producer->oldest < producer->next_seq && !perf_stopping(run))
        if (wait_a_while(producer, 100000000ull) < 0)
            return;
}

void *perf_producer_main(void *arg)
{
    struct perf_worker *worker = arg;
    const struct perf_config *config = worker->run->config;
    struct producer producer = {.worker = worker, .config = config, .next_seq = 1, .oldest = 1};
    char err[PERF_ERROR_MAX];

    producer.body = calloc(1, config->size ? config->size : 1);
    producer.window = (uint64_t)config->confirm_window;
    if (producer.window) {
        producer.slot_seq = calloc(producer.window, sizeof(*producer.slot_seq));
        producer.slot_time = calloc(producer.window, sizeof(*producer.slot_time));
    }
    if (!producer.body || (producer.window && (!producer.slot_seq || !producer.slot_time))) {
        perf_fail(worker, "producer %d: out of memory", worker->index);
        goto out;
    }
    producer.properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    producer.properties.delivery_mode = config->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;

    producer.conn = session_open(config, 0, err, sizeof(err));
    if (!producer.conn) {
        perf_fail(worker, "producer %d: %s", worker->index, err);
        goto out;
    }
    if (producer.window) {
        amqp_confirm_select(producer.conn, PERF_CHANNEL);
        if (session_check(amqp_get_rpc_reply(producer.conn), "confirm.select", err, sizeof(err)) != 0) {
            perf_fail(worker, "producer %d: %s", worker->index, err);
            goto out;
        }
    }
    atomic_fetch_add(&worker->run->producers_ready, 1);
    if (perf_wait_go(worker->run))
        publish_loop(&producer);

out:
    if (worker->error[0])
        session_abandon(producer.conn);
    else
        session_close(producer.conn);
    free(producer.body);
    free(producer.slot_seq);
    free(producer.slot_time);
    atomic_store(&worker->done, true);
    return NULL;
}
