/* clients/examples/c/send.c: hello world, the producer. Declares the queue "hello" and publishes
 * one message to it through the default exchange, whose routing key is a queue name.
 * usage: send [flags] [MESSAGE...]   (default message: Hello World!) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, 0, "[MESSAGE...]", &options);
    char *message = example_join_arguments(options.argc, options.argv, "Hello World!");
    amqp_connection_state_t connection = example_connect(&options);

    /* Declaring is idempotent; whichever of send and receive runs first creates the queue. */
    amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("hello"), 0, 0, 0, 0,
                       amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring queue hello");
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL, amqp_empty_bytes,
                                            amqp_cstring_bytes("hello"), 0, 0, NULL,
                                            amqp_cstring_bytes(message)),
                         "publishing");
    printf(" [x] Sent '%s'\n", message);

    example_disconnect(connection);
    free(message);
    return 0;
}
