/* clients/examples/c/worker.c: work queue, the consumer. Takes tasks from "task_queue" one at a
 * time (prefetch 1, so a busy worker is not handed more) and acknowledges each only after the
 * work is done, so a task whose worker dies goes to another worker. Work is simulated by
 * sleeping --delay seconds ($WORKER_DELAY, default 1) per '.' in the task.
 * usage: worker [flags] [--count N] [--timeout SECONDS] [--delay SECONDS_PER_DOT] */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

static void work(const amqp_bytes_t task, double seconds_per_dot) {
    size_t dots = 0;
    for (size_t i = 0; i < task.len; i++)
        dots += ((const char *)task.bytes)[i] == '.';
    double seconds = (double)dots * seconds_per_dot;
    struct timespec pause = {.tv_sec = (time_t)seconds,
                             .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    struct example_options options;
    example_parse(argc, argv, EXAMPLE_FLAG_COUNT | EXAMPLE_FLAG_TIMEOUT | EXAMPLE_FLAG_DELAY, "",
                  &options);
    amqp_connection_state_t connection = example_connect(&options);

    amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("task_queue"), 0,
                       1 /* durable */, 0, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring queue task_queue");
    amqp_basic_qos(connection, EXAMPLE_CHANNEL, 0, 1 /* prefetch count */, 0);
    example_check_reply(amqp_get_rpc_reply(connection), "setting prefetch");
    amqp_basic_consume(connection, EXAMPLE_CHANNEL, amqp_cstring_bytes("task_queue"),
                       amqp_empty_bytes, 0, 0 /* manual ack */, 0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "consuming from task_queue");
    printf(" [*] Waiting for messages. To exit press CTRL+C\n");

    long done = 0;
    amqp_envelope_t envelope;
    while (!example_count_reached(&options, done) &&
           example_next_delivery(connection, &options, &envelope)) {
        printf(" [x] Received '%.*s'\n", (int)envelope.message.body.len,
               (const char *)envelope.message.body.bytes);
        work(envelope.message.body, options.delay);
        printf(" [x] Done\n");
        example_check_status(
            amqp_basic_ack(connection, EXAMPLE_CHANNEL, envelope.delivery_tag, 0), "acking");
        amqp_destroy_envelope(&envelope);
        done++;
    }

    example_disconnect(connection);
    return example_exit_status(&options, done);
}
