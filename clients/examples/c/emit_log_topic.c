/* clients/examples/c/emit_log_topic.c: topics, the publisher. Sends one log line to the topic
 * exchange "topic_logs" under a dot-separated routing key such as "kern.critical"; queues
 * receive it when one of their binding patterns matches the key.
 * usage: emit_log_topic [flags] [ROUTING_KEY [MESSAGE...]]
 *        (default: anonymous.info Hello World!) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, 0, "[ROUTING_KEY [MESSAGE...]]", &options);
    const char *routing_key = options.argc > 0 ? options.argv[0] : "anonymous.info";
    char *message = example_join_arguments(options.argc > 1 ? options.argc - 1 : 0,
                                           options.argv + 1, "Hello World!");
    amqp_connection_state_t connection = example_connect(&options);

    amqp_exchange_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("topic_logs"),
                          amqp_cstring_bytes("topic"), 0, 0, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring exchange topic_logs");
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL,
                                            amqp_cstring_bytes("topic_logs"),
                                            amqp_cstring_bytes(routing_key), 0, 0, NULL,
                                            amqp_cstring_bytes(message)),
                         "publishing");
    printf(" [x] Sent %s:'%s'\n", routing_key, message);

    example_disconnect(connection);
    free(message);
    return 0;
}
