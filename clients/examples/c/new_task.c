/* clients/examples/c/new_task.c: work queue, the producer. Publishes one task to the durable
 * queue "task_queue" as a persistent message (delivery mode 2), so a broker that stores
 * messages keeps it across a restart. Each '.' in the task is one unit of work for the worker.
 * usage: new_task [flags] [TASK...]   (default task: Hello World!) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, 0, "[TASK...]", &options);
    char *task = example_join_arguments(options.argc, options.argv, "Hello World!");
    amqp_connection_state_t connection = example_connect(&options);

    amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("task_queue"), 0,
                       1 /* durable */, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring queue task_queue");
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
    };
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL, amqp_empty_bytes,
                                            amqp_cstring_bytes("task_queue"), 0, 0, &properties,
                                            amqp_cstring_bytes(task)),
                         "publishing");
    printf(" [x] Sent '%s'\n", task);

    example_disconnect(connection);
    free(task);
    return 0;
}
