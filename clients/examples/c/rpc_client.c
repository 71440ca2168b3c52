/* clients/examples/c/rpc_client.c: RPC, a client. Declares its own exclusive callback queue,
 * sends "N" to "rpc_queue" with reply_to naming that queue and a random correlation_id, and
 * prints the reply carrying the same correlation_id (replies to earlier requests are skipped).
 * usage: rpc_client [flags] [--timeout SECONDS] [N]   (default N: 30) */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A fresh correlation id: 32 random hex digits. */
static void new_correlation_id(char id[33]) {
    unsigned char random_bytes[16];
    if (getrandom(random_bytes, sizeof random_bytes, 0) != (ssize_t)sizeof random_bytes) {
        perror("getrandom");
        exit(1);
    }
    for (size_t i = 0; i < sizeof random_bytes; i++)
        snprintf(id + 2 * i, 3, "%02x", random_bytes[i]);
}

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_TIMEOUT, "[N]", &options);
    const char *n = options.argc > 0 ? options.argv[0] : "30";
    amqp_connection_state_t connection = example_connect(&options);

    amqp_bytes_t callback_queue = example_declare_private_queue(connection);
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, callback_queue, amqp_empty_bytes, 0,
                       1 /* no_ack */, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming from the callback queue");

    char correlation_id[33];
    new_correlation_id(correlation_id);
    amqp_basic_properties_t request = {
        ._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG,
        .reply_to = callback_queue,
        .correlation_id = amqp_cstring_bytes(correlation_id),
    };
    printf(" [x] Requesting fib(%s)\n", n);
    example_check_status(amqp_basic_publish(connection, EXAMPLE_CHANNEL, amqp_empty_bytes,
                                            amqp_cstring_bytes("rpc_queue"), 0, 0, &request,
                                            amqp_cstring_bytes(n)),
                         "publishing the request");

    int answered = 0;
    amqp_envelope_t envelope;
    while (!answered && example_next_delivery(connection, &options, &envelope)) {
        const amqp_basic_properties_t *reply = &envelope.message.properties;
        if ((reply->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) &&
            reply->correlation_id.len == strlen(correlation_id) &&
            memcmp(reply->correlation_id.bytes, correlation_id, reply->correlation_id.len) == 0) {
            printf(" [.] Got %.*s\n", (int)envelope.message.body.len,
                   (const char *)envelope.message.body.bytes);
            answered = 1;
        }
        amqp_destroy_envelope(&envelope);
    }

    amqp_bytes_free(callback_queue);
    example_disconnect(connection);
    if (!answered)
        fprintf(stderr, " [!] No reply to fib(%s)\n", n);
    return answered ? 0 : 1;
}
