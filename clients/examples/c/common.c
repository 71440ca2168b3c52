/* clients/examples/c/common.c: the plumbing shared by the C examples (see common.h). */
#include "common.h"

#include <amqp_tcp_socket.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define DEFAULT_URL "amqp://guest:guest@127.0.0.1:5672/"

/* How long one wait inside example_next_delivery lasts, so the deadline and signals are noticed
 * promptly (rabbitmq-c restarts its poll on EINTR). */
#define POLL_SLICE_SECONDS 0.2

static volatile sig_atomic_t interrupted;
static double started_at;
static int timed_out;

/* Kept for the life of the process: amqp_parse_url cuts the URL into the strings that
 * example_options points to. */
static char *url_storage;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_signal(int signal_number) {
    (void)signal_number;
    interrupted = 1;
}

static void catch_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESETHAND; /* a second CTRL+C kills a program stuck elsewhere */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

static void usage(FILE *out, const char *program, unsigned flags, const char *positional) {
    fprintf(out,
            "usage: %s [--url URL] [--host HOST] [--port PORT] [--user USER] [--password PASS]\n"
            "       %*s [--vhost VHOST]%s%s%s%s%s\n"
            "Connection settings default to $AMQP_URL, else " DEFAULT_URL ";\n"
            "the flags override it.\n",
            program, (int)strlen(program), "", (flags & EXAMPLE_FLAG_COUNT) ? " [--count N]" : "",
            (flags & EXAMPLE_FLAG_TIMEOUT) ? " [--timeout SECONDS]" : "",
            (flags & EXAMPLE_FLAG_DELAY) ? " [--delay SECONDS_PER_DOT]" : "",
            *positional ? " " : "", positional);
}

static void bad_usage(const char *program, unsigned flags, const char *positional,
                      const char *problem, const char *value) {
    fprintf(stderr, "%s: %s: %s\n", program, problem, value);
    usage(stderr, program, flags, positional);
    exit(1);
}

static double parse_seconds(const char *program, unsigned flags, const char *positional,
                            const char *text) {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value >= 0))
        bad_usage(program, flags, positional, "not a number of seconds", text);
    return value;
}

static long parse_whole(const char *program, unsigned flags, const char *positional,
                        const char *text, long low, long high) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < low || value > high)
        bad_usage(program, flags, positional, "out of range", text);
    return value;
}

static void apply_url(const char *program, unsigned flags, const char *positional,
                      const char *url, struct example_options *options) {
    struct amqp_connection_info parsed;
    free(url_storage);
    url_storage = strdup(url);
    if (url_storage == NULL || amqp_parse_url(url_storage, &parsed) != AMQP_STATUS_OK || parsed.ssl)
        bad_usage(program, flags, positional, "not an amqp:// URL", url);
    options->host = parsed.host;
    options->port = parsed.port;
    options->user = parsed.user;
    options->password = parsed.password;
    /* "amqp://host/" names the empty vhost in the URI spec; pika and the RabbitMQ docs read it
     * as "/", and no broker has an empty vhost, so follow them. */
    options->vhost = parsed.vhost[0] != '\0' ? parsed.vhost : "/";
}

void example_parse(int argc, char **argv, unsigned flags, const char *positional,
                   struct example_options *options) {
    enum { URL = 256, HOST, PORT, USER, PASSWORD, VHOST, COUNT, TIMEOUT, DELAY, HELP };
    static const struct option long_options[] = {
        {"url", required_argument, NULL, URL},
        {"host", required_argument, NULL, HOST},
        {"port", required_argument, NULL, PORT},
        {"user", required_argument, NULL, USER},
        {"password", required_argument, NULL, PASSWORD},
        {"vhost", required_argument, NULL, VHOST},
        {"count", required_argument, NULL, COUNT},
        {"timeout", required_argument, NULL, TIMEOUT},
        {"delay", required_argument, NULL, DELAY},
        {"help", no_argument, NULL, HELP},
        {NULL, 0, NULL, 0},
    };
    const char *program = argv[0];
    const char *environment_url = getenv("AMQP_URL");
    const char *delay = getenv("WORKER_DELAY");

    setvbuf(stdout, NULL, _IOLBF, 0); /* a line per event, even into a pipe */
    started_at = now_seconds();
    memset(options, 0, sizeof *options);
    apply_url(program, flags, positional,
              environment_url && *environment_url ? environment_url : DEFAULT_URL, options);
    options->delay = 1.0;
    if ((flags & EXAMPLE_FLAG_DELAY) && delay && *delay)
        options->delay = parse_seconds(program, flags, positional, delay);

    opterr = 0; /* report unknown flags ourselves, with the usage */
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case URL:
            apply_url(program, flags, positional, optarg, options);
            break;
        case HOST:
            options->host = optarg;
            break;
        case PORT:
            options->port = (int)parse_whole(program, flags, positional, optarg, 1, 65535);
            break;
        case USER:
            options->user = optarg;
            break;
        case PASSWORD:
            options->password = optarg;
            break;
        case VHOST:
            options->vhost = optarg;
            break;
        case COUNT:
            if (!(flags & EXAMPLE_FLAG_COUNT))
                bad_usage(program, flags, positional, "unknown flag", "--count");
            options->count = parse_whole(program, flags, positional, optarg, 1, 1000000000L);
            break;
        case TIMEOUT:
            if (!(flags & EXAMPLE_FLAG_TIMEOUT))
                bad_usage(program, flags, positional, "unknown flag", "--timeout");
            options->timeout = parse_seconds(program, flags, positional, optarg);
            break;
        case DELAY:
            if (!(flags & EXAMPLE_FLAG_DELAY))
                bad_usage(program, flags, positional, "unknown flag", "--delay");
            options->delay = parse_seconds(program, flags, positional, optarg);
            break;
        case HELP:
            usage(stdout, program, flags, positional);
            exit(0);
        default:
            bad_usage(program, flags, positional, "unknown flag or missing value",
                      argv[optind - 1]);
        }
    }
    options->argc = argc - optind;
    options->argv = argv + optind;
    if (flags & EXAMPLE_FLAG_TIMEOUT)
        catch_signals();
}

static void die(const char *context, const char *detail) {
    fprintf(stderr, "error: %s: %s\n", context, detail);
    exit(1);
}

/* Exits with the reply code and text of a server-sent channel.close or connection.close (which
 * share their field layout). */
static void die_closed(const char *context, amqp_method_t method) {
    const amqp_connection_close_t *close = method.decoded;
    fprintf(stderr, "error: %s: server closed the %s: %u %.*s\n", context,
            method.id == AMQP_CONNECTION_CLOSE_METHOD ? "connection" : "channel",
            close->reply_code, (int)close->reply_text.len, (const char *)close->reply_text.bytes);
    exit(1);
}

void example_check_reply(amqp_rpc_reply_t reply, const char *context) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_NONE:
        die(context, "missing RPC reply");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        die(context, amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
            reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
            die_closed(context, reply.reply);
        die(context, "unexpected server method");
        break;
    }
}

void example_check_status(int status, const char *context) {
    if (status < 0)
        die(context, amqp_error_string2(status));
}

amqp_connection_state_t example_connect(const struct example_options *options) {
    amqp_connection_state_t connection = amqp_new_connection();
    if (connection == NULL)
        die("connecting", "out of memory");
    amqp_socket_t *socket = amqp_tcp_socket_new(connection);
    if (socket == NULL)
        die("connecting", "cannot create a TCP socket");
    struct timeval connect_timeout = {.tv_sec = 10, .tv_usec = 0};
    int status = amqp_socket_open_noblock(socket, options->host, options->port, &connect_timeout);
    if (status != AMQP_STATUS_OK) {
        fprintf(stderr, "error: connecting to %s:%d: %s\n", options->host, options->port,
                amqp_error_string2(status));
        exit(1);
    }
    /* channel_max and frame_max 0: take the server's proposal; heartbeat 0: none (rabbitmq-c
     * only sends heartbeats while inside a library call, and these programs often sleep). */
    example_check_reply(amqp_login(connection, options->vhost, 0, 0, 0, AMQP_SASL_METHOD_PLAIN,
                                   options->user, options->password),
                        "logging in");
    amqp_channel_open(connection, EXAMPLE_CHANNEL);
    example_check_reply(amqp_get_rpc_reply(connection), "opening a channel");
    return connection;
}

void example_disconnect(amqp_connection_state_t connection) {
    example_check_reply(amqp_channel_close(connection, EXAMPLE_CHANNEL, AMQP_REPLY_SUCCESS),
                        "closing the channel");
    example_check_reply(amqp_connection_close(connection, AMQP_REPLY_SUCCESS),
                        "closing the connection");
    example_check_status(amqp_destroy_connection(connection), "freeing the connection");
}

amqp_bytes_t example_declare_private_queue(amqp_connection_state_t connection) {
    amqp_queue_declare_ok_t *declared =
        amqp_queue_declare(connection, EXAMPLE_CHANNEL, amqp_empty_bytes, 0, 0, 1 /* exclusive */,
                           0, amqp_empty_table);
    example_check_reply(amqp_get_rpc_reply(connection), "declaring a private queue");
    /* The reply lives in the connection's buffers; keep a copy past the next call. */
    amqp_bytes_t name = amqp_bytes_malloc_dup(declared->queue);
    if (name.bytes == NULL)
        die("declaring a private queue", "out of memory");
    return name;
}

/* Handles a frame that arrived where a delivery was expected: a close or a consumer
 * cancellation ends the program; anything else (a heartbeat is never seen here) is ignored. */
static void handle_other_frame(amqp_connection_state_t connection) {
    amqp_frame_t frame;
    example_check_status(amqp_simple_wait_frame(connection, &frame), "waiting for a message");
    if (frame.frame_type != AMQP_FRAME_METHOD)
        return;
    switch (frame.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        die_closed("waiting for a message", frame.payload.method);
        break;
    case AMQP_BASIC_CANCEL_METHOD:
        die("waiting for a message", "the server cancelled the consumer");
        break;
    default:
        break;
    }
}

int example_next_delivery(amqp_connection_state_t connection,
                          const struct example_options *options, amqp_envelope_t *envelope) {
    for (;;) {
        if (interrupted)
            return 0;
        double slice = POLL_SLICE_SECONDS;
        if (options->timeout > 0) {
            double left = started_at + options->timeout - now_seconds();
            if (left <= 0) {
                timed_out = 1;
                return 0;
            }
            if (left < slice)
                slice = left;
        }
        struct timeval wait = {.tv_sec = 0, .tv_usec = (suseconds_t)(slice * 1e6)};
        amqp_maybe_release_buffers(connection);
        amqp_rpc_reply_t reply = amqp_consume_message(connection, envelope, &wait, 0);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL)
            return 1;
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            handle_other_frame(connection);
            continue;
        }
        example_check_reply(reply, "waiting for a message");
    }
}

int example_count_reached(const struct example_options *options, long handled) {
    return options->count > 0 && handled >= options->count;
}

int example_exit_status(const struct example_options *options, long handled) {
    if (timed_out && options->count > 0 && handled < options->count) {
        fprintf(stderr, " [!] Timed out after %g s with %ld of %ld messages\n", options->timeout,
                handled, options->count);
        return 1;
    }
    return 0;
}

char *example_join_arguments(int argc, char **argv, const char *fallback) {
    size_t length = 1;
    for (int i = 0; i < argc; i++)
        length += strlen(argv[i]) + 1;
    char *joined = malloc(argc > 0 ? length : strlen(fallback) + 1);
    if (joined == NULL)
        die("joining arguments", "out of memory");
    if (argc == 0)
        return strcpy(joined, fallback);
    joined[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i > 0)
            strcat(joined, " ");
        strcat(joined, argv[i]);
    }
    return joined;
}
