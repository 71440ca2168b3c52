/* clients/examples/c/rpc_server.c: RPC, the server. Takes requests from the queue "rpc_queue",
 * one at a time, and answers each with fib(N) by publishing to the request's reply_to queue with
 * the request's correlation_id, then acknowledges the request. Several servers may share the
 * queue to spread the load.
 * usage: rpc_server [flags] [--count N] [--timeout SECONDS] */
#include "common.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fib(93) is the largest Fibonacci number that fits in 64 bits. */
#define FIB_MAX 93

static uint64_t fib(int n) {
    uint64_t previous = 0, current = 1;
    for (int i = 0; i < n; i++) {
        uint64_t next = previous + current;
        previous = current;
        current = next;
    }
    return previous;
}

/* Writes the answer to the request `body` into `answer`: fib(N) in decimal, or an error text
 * when the body is not a whole number from 0 to FIB_MAX. */
static void answer_request(amqp_bytes_t body, char *answer, size_t size) {
    char text[32];
    if (body.len >= sizeof text) {
        snprintf(answer, size, "error: not a number from 0 to %d", FIB_MAX);
        return;
    }
    memcpy(text, body.bytes, body.len);
    text[body.len] = '\0';
    char *end;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || n < 0 || n > FIB_MAX)
        snprintf(answer, size, "error: not a number from 0 to %d", FIB_MAX);
    else
        snprintf(answer, size, "%" PRIu64, fib((int)n));
}

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_COUNT | EXAMPLE_FLAG_TIMEOUT, "", &options);
    amqp_connection_state_t connection = example_connect(&options);

    amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("rpc_queue"), 0, 0, 0, 0,
                       amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring queue rpc_queue");
    amqp_basic_qos(connection, EXAMPLE_CHANNEL, 0, 1 /* prefetch count */, 0);
    example_check_reply(amqp_get_rpc_reply(connection), "setting prefetch");
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("rpc_queue"),
                       amqp_empty_bytes, 0, 0 /* manual ack */, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming from rpc_queue");
    printf(" [*] Waiting for RPC requests. To exit press CTRL+C\n");

    long answered = 0;
    amqp_envelope_t envelope;
    while (!example_count_reached(&options, answered) &&
           example_next_delivery(connection, &options, &envelope)) {
        const amqp_basic_properties_t *request = &envelope.message.properties;
        char answer[64];
        printf(" [.] fib(%.*s)\n", (int)envelope.message.body.len,
               (const char *)envelope.message.body.bytes);
        answer_request(envelope.message.body, answer, sizeof answer);
        if (request->_flags & AMQP_BASIC_REPLY_TO_FLAG) {
            amqp_basic_properties_t reply = {0};
            if (request->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
                reply._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
                reply.correlation_id = request->correlation_id;
            }
            /* The default exchange routes by queue name, and reply_to names the client's queue
             * (or the direct reply-to pseudo-queue, which the broker resolves). */
            example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL,
                                                    amqp_empty_bytes, request->reply_to, 0, 0,
                                                    &reply, amqp_cstring_bytes(answer)),
                                 "publishing the reply");
        } else {
            fprintf(stderr, " [!] request without reply_to, nobody to answer\n");
        }
        example_check_status(
            amqp_basic_ack(connection, EXAMPLE_CHANNEL, envelope.delivery_tag, 0), "acking");
        amqp_destroy_envelope(&envelope);
        answered++;
    }

    example_disconnect(connection);
    return example_exit_status(&options, answered);
}
