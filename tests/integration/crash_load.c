/* tests/integration/crash_load.c: the load of the crash test (test_crash.py). Publishers in
 * confirm mode and acking consumers on one durable queue, run until the broker dies under them;
 * each thread writes what it knows to its own journal so the test can check the recovered queue.
 *
 * usage: crash_load HOST PORT QUEUE DIR PUBLISHERS CONSUMERS WINDOW SIZE ROUND DELAY_MS
 *        crash_load drain HOST PORT QUEUE FILE
 *
 * Journals in DIR (one line per event, written only after the event happened):
 *   p<N>.log   "c <id>" for every publish the broker confirmed (basic.ack; with multiple=true
 *              every id up to it); "n <id>" for a nack
 *   c<N>.log   "a <id> <ms>" for every ack, written BEFORE the ack is sent (so the set is a
 *              superset of what reached the broker), with CLOCK_MONOTONIC milliseconds
 * Consumers start DELAY_MS after the publishers, so that a backlog builds up first.
 * Message ids are "<round>.<publisher>-<sequence>", padded with spaces to SIZE bytes. A thread stops on
 * the first error (the broker died) and flushes its journal; the process exits 0 once all have.
 *
 * drain: after a restart, takes every message of QUEUE (as many as queue.declare-ok counts),
 * writes their ids to FILE one per line, acks them, then publishes one confirmed persistent
 * message to QUEUE.marker (a classic queue), so the acks are durable when it exits 0.
 *
 * Environment (both modes; unset, the queue is classic and messages persistent):
 *   CRASH_LOAD_QUEUE_TYPE     "quorum": QUEUE is declared with x-queue-type quorum (a quorum
 *                             queue must be redeclared with its type, so drain needs it too)
 *   CRASH_LOAD_DELIVERY_MODE  1: the load publishes transient messages (a quorum queue stores
 *                             every message, so those must survive once confirmed too) */

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *host, *queue, *dir;
static int port, window, size, round_, delay_ms;
static uint8_t delivery_mode = 2;
static amqp_table_t queue_arguments; /* amqp_empty_table, or x-queue-type from the environment */
static amqp_table_entry_t queue_type_entry;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects, logs in and opens channel 1. NULL when the broker is not there. */
static amqp_connection_state_t open_connection(void)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (!socket || amqp_socket_open(socket, host, port) != AMQP_STATUS_OK) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    amqp_rpc_reply_t r = amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL || !amqp_channel_open(conn, 1) ||
        amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, queue_arguments);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

static FILE *journal(const char *kind, int n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s%d.log", dir, kind, n);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    return f;
}

static void *publisher(void *arg)
{
    int n = (int)(intptr_t)arg;
    FILE *log = journal("p", n);
    amqp_connection_state_t conn = open_connection();
    if (!conn) {
        fclose(log);
        return NULL;
    }
    amqp_confirm_select(conn, 1);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto out;
    char *body = malloc((size_t)size);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = delivery_mode};
    uint64_t sent = 0, confirmed = 0; /* delivery tags: tag t carries sequence t - 1 */
    for (;;) {
        while (sent - confirmed < (uint64_t)window) {
            memset(body, ' ', (size_t)size);
            int len = snprintf(body, (size_t)size, "%d.%d-%llu", round_, n, (unsigned long long)sent);
            body[len] = ' ';
            amqp_bytes_t b = {(size_t)size, body};
            if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props, b) !=
                AMQP_STATUS_OK)
                goto done;
            sent++;
        }
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK || frame.frame_type != AMQP_FRAME_METHOD)
            goto done;
        uint64_t tag;
        int multiple;
        char kind;
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = frame.payload.method.decoded;
            tag = ack->delivery_tag, multiple = ack->multiple, kind = 'c';
        } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *nack = frame.payload.method.decoded;
            tag = nack->delivery_tag, multiple = nack->multiple, kind = 'n';
        } else {
            goto done;
        }
        for (uint64_t t = multiple ? confirmed + 1 : tag; t <= tag; t++)
            fprintf(log, "%c %d.%d-%llu\n", kind, round_, n, (unsigned long long)(t - 1));
        if (tag > confirmed)
            confirmed = tag;
        amqp_maybe_release_buffers(conn);
    }
done:
    free(body);
out:
    fclose(log);
    amqp_destroy_connection(conn);
    return NULL;
}

static void *consumer(void *arg)
{
    int n = (int)(intptr_t)arg;
    FILE *log = journal("c", n);
    struct timespec delay = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000};
    nanosleep(&delay, NULL);
    amqp_connection_state_t conn = open_connection();
    if (!conn) {
        fclose(log);
        return NULL;
    }
    amqp_basic_qos(conn, 1, 0, (uint16_t)window, 0);
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto out;
    for (;;) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, NULL, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            break;
        const char *p = env.message.body.bytes;
        size_t len = 0;
        while (len < env.message.body.len && p[len] != ' ')
            len++;
        fprintf(log, "a %.*s %lld\n", (int)len, p, now_ms());
        fflush(log); /* the ack may be durable the moment it is sent */
        int rc = amqp_basic_ack(conn, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
        if (rc != AMQP_STATUS_OK)
            break;
    }
out:
    fclose(log);
    amqp_destroy_connection(conn);
    return NULL;
}

static int drain(const char *path)
{
    FILE *out = fopen(path, "w");
    amqp_connection_state_t conn = out ? open_connection() : NULL;
    if (!conn)
        return 1;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0,
                                                     amqp_empty_table);
    if (!ok)
        return 1;
    uint32_t count = ok->message_count;
    amqp_basic_qos(conn, 1, 0, 2000, 0);
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        return 1;
    for (uint32_t i = 0; i < count; i++) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        struct timeval timeout = {30, 0};
        if (amqp_consume_message(conn, &env, &timeout, 0).reply_type != AMQP_RESPONSE_NORMAL) {
            fprintf(stderr, "drain: %u of %u messages, then nothing\n", i, count);
            return 1;
        }
        const char *p = env.message.body.bytes;
        size_t len = 0;
        while (len < env.message.body.len && p[len] != ' ')
            len++;
        fprintf(out, "%.*s %d\n", (int)len, p, env.redelivered);
        if ((i + 1) % 500 == 0 || i + 1 == count)
            amqp_basic_ack(conn, 1, env.delivery_tag, 1);
        amqp_destroy_envelope(&env);
    }
    fclose(out);
    /* Acks and publishes of one channel are written in order: once this confirm arrives, every
     * ack above is durable too. */
    char marker[512];
    snprintf(marker, sizeof marker, "%s.marker", queue);
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(marker), 0, 1, 0, 0, amqp_empty_table);
    amqp_queue_purge(conn, 1, amqp_cstring_bytes(marker));
    amqp_confirm_select(conn, 1);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 2};
    if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(marker), 0, 0, &props,
                           amqp_cstring_bytes("marker")) != AMQP_STATUS_OK)
        return 1;
    for (;;) {
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK)
            return 1;
        if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD)
            break;
    }
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}

/* Reads CRASH_LOAD_QUEUE_TYPE and CRASH_LOAD_DELIVERY_MODE (see the top of this file). Returns 0,
 * or 2 after saying what is wrong with them. */
static int read_environment(void)
{
    queue_arguments = amqp_empty_table;
    const char *type = getenv("CRASH_LOAD_QUEUE_TYPE");
    if (type && *type && strcmp(type, "classic") != 0) {
        if (strcmp(type, "quorum") != 0) {
            fprintf(stderr, "CRASH_LOAD_QUEUE_TYPE: classic or quorum, not %s\n", type);
            return 2;
        }
        queue_type_entry.key = amqp_cstring_bytes("x-queue-type");
        queue_type_entry.value.kind = AMQP_FIELD_KIND_UTF8;
        queue_type_entry.value.value.bytes = amqp_cstring_bytes(type);
        queue_arguments = (amqp_table_t){1, &queue_type_entry};
    }
    const char *mode = getenv("CRASH_LOAD_DELIVERY_MODE");
    if (mode && *mode) {
        if (strcmp(mode, "1") != 0 && strcmp(mode, "2") != 0) {
            fprintf(stderr, "CRASH_LOAD_DELIVERY_MODE: 1 or 2, not %s\n", mode);
            return 2;
        }
        delivery_mode = (uint8_t)(mode[0] - '0');
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (read_environment() != 0)
        return 2;
    if (argc == 6 && strcmp(argv[1], "drain") == 0) {
        host = argv[2], port = atoi(argv[3]), queue = argv[4];
        return drain(argv[5]);
    }
    if (argc != 11) {
        fprintf(stderr, "usage: crash_load HOST PORT QUEUE DIR PUBLISHERS CONSUMERS WINDOW SIZE ROUND DELAY_MS\n");
        return 2;
    }
    host = argv[1], port = atoi(argv[2]), queue = argv[3], dir = argv[4];
    int publishers = atoi(argv[5]), consumers = atoi(argv[6]);
    window = atoi(argv[7]), size = atoi(argv[8]), round_ = atoi(argv[9]);
    delay_ms = atoi(argv[10]);
    if (size < 32)
        size = 32;
    pthread_t threads[64];
    int n = 0;
    for (int i = 0; i < publishers && n < 64; i++)
        pthread_create(&threads[n++], NULL, publisher, (void *)(intptr_t)i);
    for (int i = 0; i < consumers && n < 64; i++)
        pthread_create(&threads[n++], NULL, consumer, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
