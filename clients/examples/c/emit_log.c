/* clients/examples/c/emit_log.c: publish/subscribe, the publisher. Sends one log line to the
 * fanout exchange "logs", which copies it to every bound queue and ignores the routing key.
 * usage: emit_log [flags] [MESSAGE...]   (default message: info: Hello World!) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, 0, "[MESSAGE...]", &options);
    char *message = example_join_arguments(options.argc, options.argv, "info: Hello World!");
    amqp_connection_state_t connection = example_connect(&options);

    amqp_exchange_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("logs"),
                          amqp_cstring_bytes("fanout"), 0, 0, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring exchange logs");
    /* With no subscriber bound the message is simply dropped: logs nobody reads are lost. */
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL,
                                            amqp_cstring_bytes("logs"), amqp_empty_bytes, 0, 0,
                                            NULL, amqp_cstring_bytes(message)),
                         "publishing");
    printf(" [x] Sent '%s'\n", message);

    example_disconnect(connection);
    free(message);
    return 0;
}
