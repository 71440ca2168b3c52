/* clients/examples/c/receive.c: hello world, the consumer. Declares the queue "hello" and prints
 * every message delivered from it (automatic acknowledgement).
 * usage: receive [flags] [--count N] [--timeout SECONDS] */
#include "common.h"

#include <stdio.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_COUNT | EXAMPLE_FLAG_TIMEOUT, "", &options);
    amqp_connection_state_t connection = example_connect(&options);

    amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("hello"), 0, 0, 0, 0,
                       amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring queue hello");
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("hello"), amqp_empty_bytes,
                       0, 1 /* no_ack */, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming from hello");
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

    example_disconnect(connection);
    return example_exit_status(&options, received);
}
