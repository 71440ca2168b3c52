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

static void settle(struct producer *p, uint64_t seq, uint64_t now, bool nack)
{
    uint64_t slot = seq % p->window;
    if (p->slot_seq[slot] != seq)
        return;
    p->slot_seq[slot] = 0;
    if (nack) {
        perf_count(&p->worker->counters.nacked, 1);
    } else {
        perf_count(&p->worker->counters.confirmed, 1);
        histogram_record(&p->worker->confirm_latency, now - p->slot_time[slot]);
    }
}

static void handle_confirm(struct producer *p, uint64_t tag, bool multiple, bool nack)
{
    uint64_t now = perf_now();
    if (multiple) {
        for (uint64_t seq = p->oldest; seq <= tag && seq < p->next_seq; seq++)
            settle(p, seq, now, nack);
    } else {
        settle(p, tag, now, nack);
    }
    while (p->oldest < p->next_seq && p->slot_seq[p->oldest % p->window] == 0)
        p->oldest++;
}

/* Handle one incoming frame if one arrives within timeout. Returns 1 when a frame was handled,
 * 0 on timeout, -1 on a fatal error (already recorded). */
static int poll_frame(struct producer *p, const struct timeval *timeout)
{
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(p->conn, &frame, timeout);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if (status != AMQP_STATUS_OK) {
        perf_fail(p->worker, "producer %d: %s", p->worker->index, amqp_error_string2(status));
        return -1;
    }
    if (frame.frame_type == AMQP_FRAME_HEADER && p->skip_header) {
        p->skip_header = false;
        p->skip_body = frame.payload.properties.body_size;
    } else if (frame.frame_type == AMQP_FRAME_BODY && p->skip_body) {
        size_t len = frame.payload.body_fragment.len;
        p->skip_body -= len < p->skip_body ? len : p->skip_body;
    } else if (frame.frame_type == AMQP_FRAME_METHOD) {
        const amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_ACK_METHOD && p->window) {
            const amqp_basic_ack_t *ack = m->decoded;
            handle_confirm(p, ack->delivery_tag, ack->multiple, false);
        } else if (m->id == AMQP_BASIC_NACK_METHOD && p->window) {
            const amqp_basic_nack_t *nack = m->decoded;
            handle_confirm(p, nack->delivery_tag, nack->multiple, true);
        } else if (m->id == AMQP_BASIC_RETURN_METHOD) {
            perf_count(&p->worker->counters.returned, 1);
            p->skip_header = true;
        } else {
            char err[PERF_ERROR_MAX];
            if (session_handle_unexpected(p->conn, &frame, err, sizeof(err)) != 0) {
                perf_fail(p->worker, "producer %d: %s", p->worker->index, err);
                return -1;
            }
        }
    }
    amqp_maybe_release_buffers(p->conn);
    return 1;
}

/* Handle every frame already received, plus what the socket holds when `check_socket`. */
static int drain_frames(struct producer *p, bool check_socket)
{
    static const struct timeval zero = {0, 0};
    for (;;) {
        if (!check_socket && !amqp_frames_enqueued(p->conn) && !amqp_data_in_buffer(p->conn))
            return 0;
        int rc = poll_frame(p, &zero);
        if (rc <= 0)
            return rc;
    }
}

/* Wait up to wait_ns for something to happen: a frame when confirms are on, else just sleep. */
static int wait_a_while(struct producer *p, uint64_t wait_ns)
{
    if (wait_ns > 100000000ull)
        wait_ns = 100000000ull;
    if (p->window) {
        struct timeval timeout = {.tv_sec = 0, .tv_usec = (suseconds_t)(wait_ns / 1000)};
        return poll_frame(p, &timeout) < 0 ? -1 : 0;
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
    nanosleep(&pause, NULL);
    return 0;
}

static int publish_one(struct producer *p, uint64_t n)
{
    struct perf_run *run = p->worker->run;
    uint64_t now = perf_now();
    if (p->config->size >= sizeof(now))
        memcpy(p->body, &now, sizeof(now));
    if (p->window) {
        uint64_t seq = p->next_seq++;
        p->slot_seq[seq % p->window] = seq;
        p->slot_time[seq % p->window] = now;
    }
    const char *key = run->routing_keys[n % (uint64_t)run->routing_key_count];
    amqp_bytes_t body = {.len = p->config->size, .bytes = p->body};
    int status = amqp_basic_publish(p->conn, PERF_CHANNEL, amqp_cstring_bytes(p->config->exchange_name),
                                    amqp_cstring_bytes(key), 0, 0, &p->properties, body);
    if (status != AMQP_STATUS_OK) {
        perf_fail(p->worker, "producer %d: publish: %s", p->worker->index, amqp_error_string2(status));
        return -1;
    }
    perf_count(&p->worker->counters.published, 1);
    return 0;
}

static void publish_loop(struct producer *p)
{
    const struct perf_config *config = p->config;
    struct perf_run *run = p->worker->run;
    uint64_t interval = config->rate > 0 ? (uint64_t)(1e9 / config->rate) : 0;
    uint64_t start = perf_now();
    uint64_t sent = 0;
    while (!perf_publishing_over(run) && (config->count == 0 || sent < config->count)) {
        if (p->window && p->next_seq - p->oldest >= p->window) {
            if (wait_a_while(p, 100000000ull) < 0)
                return;
            continue;
        }
        if (interval) {
            uint64_t due = start + sent * interval, now = perf_now();
            if (now < due) {
                if (wait_a_while(p, due - now) < 0)
                    return;
                continue;
            }
        }
        if (publish_one(p, sent) < 0)
            return;
        sent++;
        /* A poll() per publish would double the syscalls; frames the library already holds are
         * free to look at, and the socket is checked every 16 publishes (every 1024 without
         * confirms, only to notice a broker closing the channel). */
        bool check_socket = (sent & (p->window ? 15u : 1023u)) == 0;
        if (drain_frames(p, check_socket) < 0)
            return;
    }
    while (p->window && p->oldest < p->next_seq && !perf_stopping(run))
        if (wait_a_while(p, 100000000ull) < 0)
            return;
}

void *perf_producer_main(void *arg)
{
    struct perf_worker *worker = arg;
    const struct perf_config *config = worker->run->config;
    struct producer p = {.worker = worker, .config = config, .next_seq = 1, .oldest = 1};
    char err[PERF_ERROR_MAX];

    p.body = calloc(1, config->size ? config->size : 1);
    p.window = (uint64_t)config->confirm_window;
    if (p.window) {
        p.slot_seq = calloc(p.window, sizeof(*p.slot_seq));
        p.slot_time = calloc(p.window, sizeof(*p.slot_time));
    }
    if (!p.body || (p.window && (!p.slot_seq || !p.slot_time))) {
        perf_fail(worker, "producer %d: out of memory", worker->index);
        goto out;
    }
    p.properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.properties.delivery_mode = config->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;

    p.conn = session_open(config, 0, err, sizeof(err));
    if (!p.conn) {
        perf_fail(worker, "producer %d: %s", worker->index, err);
        goto out;
    }
    if (p.window) {
        amqp_confirm_select(p.conn, PERF_CHANNEL);
        if (session_check(amqp_get_rpc_reply(p.conn), "confirm.select", err, sizeof(err)) != 0) {
            perf_fail(worker, "producer %d: %s", worker->index, err);
            goto out;
        }
    }
    publish_loop(&p);

out:
    if (worker->error[0])
        session_abandon(p.conn);
    else
        session_close(p.conn);
    free(p.body);
    free(p.slot_seq);
    free(p.slot_time);
    atomic_store(&worker->done, true);
    return NULL;
}
