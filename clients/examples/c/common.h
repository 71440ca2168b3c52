/* clients/examples/c/common.h: what every C example shares, so each example file shows only its
 * scenario: connection settings from flags or $AMQP_URL, connecting, a bounded wait for the next
 * delivery (--count, --timeout, CTRL+C), and turning rabbitmq-c failures into a message on stderr
 * and exit status 1. */
#ifndef EXAMPLE_COMMON_H
#define EXAMPLE_COMMON_H

#include <amqp.h>

/* The one channel every example uses. */
#define EXAMPLE_CHANNEL 1

/* Flags a program takes beyond the connection ones (--url --host --port --user --password
 * --vhost); pass a mask of these to example_parse. */
enum {
    EXAMPLE_FLAG_COUNT = 1 << 0,   /* --count N: stop after N messages */
    EXAMPLE_FLAG_TIMEOUT = 1 << 1, /* --timeout S: stop S seconds after start */
    EXAMPLE_FLAG_DELAY = 1 << 2,   /* --delay S: seconds of simulated work per '.' */
};

struct example_options {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *vhost;
    long count;     /* messages to handle before stopping; 0: no limit */
    double timeout; /* seconds after start to give up; 0: never */
    double delay;   /* seconds per '.' in a task ($WORKER_DELAY, default 1) */
    int argc;       /* the positional arguments left after the flags */
    char **argv;
};

/* Fills `options` from $AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/), then from the
 * flags in argv, which override it. Flags may appear among the positional arguments. Prints
 * usage and exits on --help (0) or a bad flag (1). `positional` describes the positional
 * arguments for the usage line. Makes stdout line-buffered; when EXAMPLE_FLAG_TIMEOUT is set,
 * also makes SIGINT/SIGTERM end example_next_delivery's wait (a second one kills). */
void example_parse(int argc, char **argv, unsigned flags, const char *positional,
                   struct example_options *options);

/* Connects, logs in and opens EXAMPLE_CHANNEL; exits with a message on any failure. The caller
 * owns the returned connection and ends it with example_disconnect. */
amqp_connection_state_t example_connect(const struct example_options *options);

/* Closes the channel and the connection, then frees the connection. */
void example_disconnect(amqp_connection_state_t connection);

/* Exits with status 1 and a message naming `context` unless `reply` (of the last synchronous
 * rabbitmq-c call) is normal. */
void example_check_reply(amqp_rpc_reply_t reply, const char *context);

/* Exits with status 1 and a message naming `context` when `status` (an amqp_status_enum value
 * returned by e.g. amqp_basic_publish) is an error. */
void example_check_status(int status, const char *context);

/* Declares an exclusive queue with a server-generated name (deleted when this connection closes)
 * and returns the name; the caller frees it with amqp_bytes_free. */
amqp_bytes_t example_declare_private_queue(amqp_connection_state_t connection);

/* Waits for the next basic.deliver on the consumer(s) of EXAMPLE_CHANNEL. Returns 1 with
 * `envelope` filled (the caller frees it with amqp_destroy_envelope), or 0 when the --timeout
 * deadline has passed or SIGINT/SIGTERM arrived. Exits with a message when the server closes
 * the channel or connection or cancels the consumer. */
int example_next_delivery(amqp_connection_state_t connection,
                          const struct example_options *options, amqp_envelope_t *envelope);

/* True once `handled` has reached --count (never without --count). */
int example_count_reached(const struct example_options *options, long handled);

/* The exit status of a program that handled `handled` messages: 1, with a note on stderr, when
 * the deadline passed before --count was reached; 0 otherwise (also after CTRL+C). */
int example_exit_status(const struct example_options *options, long handled);

/* The positional arguments joined by spaces, or `fallback` when there are none; malloc'd, the
 * caller frees it. */
char *example_join_arguments(int argc, char **argv, const char *fallback);

#endif
