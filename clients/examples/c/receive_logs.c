/* clients/examples/c/receive_logs.c: publish/subscribe, a subscriber. Binds its own exclusive,
 * server-named queue to the fanout exchange "logs", so every running subscriber gets a copy of
 * every log line published while it runs.
 * usage: receive_logs [flags] [--count N] [--timeout SECONDS] */
#include "common.h"

#include <stdio.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_COUNT | EXAMPLE_FLAG_TIMEOUT, "", &options);
    amqp_connection_state_t connection = example_connect(&options);

    amqp_exchange_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("logs"),
                          amqp_cstring_bytes("fanout"), 0, 0, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring exchange logs");
    amqp_bytes_t queue = example_declare_private_queue(connection);
    amqp_queue_bind(connection, EXAMPLE_CHANNEL, queue, amqp_cstring_bytes("logs"),
                    amqp_empty_bytes, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "binding to logs");
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, queue, amqp_empty_bytes, 0, 1 /* no_ack */, 0,
                       amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming");
    printf(" [*] Waiting for messages. To exit press CTRL+C\n");

    long received = 0;
    amqp_envelope_t envelope;
    while (!example_count_reached(&options, received) &&
           example_next_delivery(connection, &options, &envelope)) {
        printf(" [x] Received '%.*s'\n", (int)envelope.message.body.len,
               (const char *)envelope.message.body.bytes);
        amqp_destroy_envelope(&envelope);
        received++;
    }

    amqp_bytes_free(queue);
    example_disconnect(connection);
    return example_exit_status(&options, received);
}
