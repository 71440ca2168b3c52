/* clients/examples/c/emit_log_direct.c: routing, the publisher. Sends one log line to the direct
 * exchange "direct_logs" with its severity as the routing key; only queues bound with exactly
 * that key receive it.
 * usage: emit_log_direct [flags] [SEVERITY [MESSAGE...]]   (default: info Hello World!) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, 0, "[SEVERITY [MESSAGE...]]", &options);
    const char *severity = options.argc > 0 ? options.argv[0] : "info";
    char *message = example_join_arguments(options.argc > 1 ? options.argc - 1 : 0,
                                           options.argv + 1, "Hello World!");
    amqp_connection_state_t connection = example_connect(&options);

    amqp_exchange_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("direct_logs"),
                          amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring exchange direct_logs");
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL,
                                            amqp_cstring_bytes("direct_logs"),
                                            amqp_cstring_bytes(severity), 0, 0, NULL,
                                            amqp_cstring_bytes(message)),
                         "publishing");
    printf(" [x] Sent %s:'%s'\n", severity, message);

    example_disconnect(connection);
    free(message);
    return 0;
}
