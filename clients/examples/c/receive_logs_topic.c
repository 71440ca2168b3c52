/* clients/examples/c/receive_logs_topic.c: topics, a subscriber. Binds its own exclusive queue
 * to "topic_logs" once per pattern on the command line, where "*" stands for exactly one word
 * and "#" for zero or more, and prints what arrives with its routing key. A message matching
 * several patterns still arrives once.
 * usage: receive_logs_topic [flags] [--count N] [--timeout SECONDS] BINDING_KEY... */
#include "common.h"

#include <stdio.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_COUNT | EXAMPLE_FLAG_TIMEOUT, "BINDING_KEY...",
                  &options);
    if (options.argc == 0) {
        fprintf(stderr, "usage: %s [flags] BINDING_KEY... (e.g. 'kern.*' '*.critical' '#')\n",
                argv[0]);
        return 1;
    }
    amqp_connection_state_t connection = example_connect(&options);

    amqp_exchange_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("topic_logs"),
                          amqp_cstring_bytes("topic"), 0, 0, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring exchange topic_logs");
    amqp_bytes_t queue = example_declare_private_queue(connection);
    for (int i = 0; i < options.argc; i++) {
        amqp_queue_bind(connection, EXAMPLE_CHANNEL, queue, amqp_cstring_bytes("topic_logs"),
                        amqp_cstring_bytes(options.argv[i]), amqp_empty_table);
        example_check_reply(amqp_get_rpc_reply(connection), "binding to topic_logs");
    }
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, queue, amqp_empty_bytes, 0, 1 /* no_ack */, 0,
                       amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming");
    printf(" [*] Waiting for messages. To exit press CTRL+C\n");

    long received = 0;
    amqp_envelope_t envelope;
    while (!example_count_reached(&options, received) &&
           example_next_delivery(connection, &options, &envelope)) {
        printf(" [x] Received %.*s:'%.*s'\n", (int)envelope.routing_key.len,
               (const char *)envelope.routing_key.bytes, (int)envelope.message.body.len,
               (const char *)envelope.message.body.bytes);
        amqp_destroy_envelope(&envelope);
        received++;
    }

    amqp_bytes_free(queue);
    example_disconnect(connection);
    return example_exit_status(&options, received);
}
