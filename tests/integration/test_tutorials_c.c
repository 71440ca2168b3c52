/* tests/integration/test_tutorials_c.c: three RabbitMQ tutorials as a C program written with
 * rabbitmq-c would run them, each party on its own connection: hello world; a work queue
 * (durable queue, persistent tasks, prefetch 1, manual acks, a worker that vanishes without
 * acking and whose task is redelivered to the other); RPC with three clients, each with its own
 * exclusive server-named callback queue and correlation ids, served by one fib server.
 *
 * usage: test_integration_tutorials_c [HOST [PORT]]   (defaults: $WARREN_HOST or 127.0.0.1,
 * $WARREN_PORT or 5672; $WARREN_USER / $WARREN_PASSWORD / $WARREN_VHOST, default guest / guest /
 * "/"). Prints one line per test and "N passed, N failed"; exits 0 only when nothing failed. */

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1";
static int port = 5672;
static const char *user = "guest";
static const char *password = "guest";
static const char *vhost = "/";
static int failed;

/* Records one check; prints the failure with the caller's formatted detail. Returns ok. */
static int check(int ok, const char *format, ...) {
    if (!ok) {
        va_list args;
        va_start(args, format);
        failed++;
        printf("  FAIL: ");
        vprintf(format, args);
        printf("\n");
        va_end(args);
    }
    return ok;
}

/* True when the last synchronous call on conn succeeded; else a failed check naming `what`. */
static int rpc_ok(amqp_connection_state_t conn, const char *what) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD ||
         reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        amqp_channel_close_t *close = reply.reply.decoded; /* same layout for both */
        return check(0, "%s: server closed with %u %.*s", what, close->reply_code,
                     (int)close->reply_text.len, (char *)close->reply_text.bytes);
    }
    return check(0, "%s: reply type %d, library error %s", what, reply.reply_type,
                 amqp_error_string2(reply.library_error));
}

/* A logged-in connection with channel 1 open; NULL (and a failed check) otherwise. */
static amqp_connection_state_t open_connection(void) {
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (!check(socket != NULL, "amqp_tcp_socket_new") ||
        !check(amqp_socket_open(socket, host, port) == AMQP_STATUS_OK, "connect %s:%d", host,
               port)) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    amqp_rpc_reply_t login = amqp_login(conn, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                                        AMQP_SASL_METHOD_PLAIN, user, password);
    if (!check(login.reply_type == AMQP_RESPONSE_NORMAL, "amqp_login failed") ||
        amqp_channel_open(conn, 1) == NULL) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

/* Closes politely (channel, then connection) and frees conn; NULL is ignored. */
static void close_connection(amqp_connection_state_t conn) {
    if (conn == NULL)
        return;
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* Drops the socket with no close handshake, as a killed process would; frees conn. */
static void vanish(amqp_connection_state_t conn) {
    amqp_destroy_connection(conn);
}

/* Writes a queue name no earlier run used into buffer and returns buffer. */
static const char *unique_name(const char *prefix, char *buffer, size_t size) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(buffer, size, "%s-%ld-%ld-%ld", prefix, (long)getpid(), (long)now.tv_sec,
             now.tv_nsec);
    return buffer;
}

/* queue.declare; returns the (possibly server-chosen) name in `name_out`, and the ready count
 * in *message_count when not NULL. Returns 1 on success. */
static int declare(amqp_connection_state_t conn, const char *name, int passive, int durable,
                   int exclusive, char *name_out, size_t name_size, uint32_t *message_count) {
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(conn, 1, amqp_cstring_bytes(name), passive, durable, exclusive, 0,
                           amqp_empty_table);
    if (!rpc_ok(conn, "queue.declare") || ok == NULL)
        return 0;
    if (name_out != NULL)
        snprintf(name_out, name_size, "%.*s", (int)ok->queue.len, (char *)ok->queue.bytes);
    if (message_count != NULL)
        *message_count = ok->message_count;
    return 1;
}

static void delete_queue(const char *name) {
    amqp_connection_state_t conn = open_connection();
    if (conn == NULL)
        return;
    amqp_queue_delete(conn, 1, amqp_cstring_bytes(name), 0, 0);
    rpc_ok(conn, "queue.delete");
    close_connection(conn);
}

/* basic.publish through the default exchange; properties may be NULL. Returns 1 when sent. */
static int publish(amqp_connection_state_t conn, const char *queue, const char *body,
                   amqp_basic_properties_t *properties) {
    int status = amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0,
                                    properties, amqp_cstring_bytes(body));
    return check(status == AMQP_STATUS_OK, "basic.publish to %s: %s", queue,
                 amqp_error_string2(status));
}

/* basic.consume; returns 1 on consume-ok. */
static int consume(amqp_connection_state_t conn, const char *queue, int no_ack) {
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, no_ack, 0,
                       amqp_empty_table);
    return rpc_ok(conn, "basic.consume");
}

/* The next delivery within `seconds`, into *envelope (destroy it with
 * amqp_destroy_envelope); returns 1 on a delivery, 0 (without a failed check) on a timeout. */
static int next_delivery(amqp_connection_state_t conn, amqp_envelope_t *envelope, int seconds) {
    struct timeval timeout = {seconds, 0};
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t reply = amqp_consume_message(conn, envelope, &timeout, 0);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    if (!(reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          reply.library_error == AMQP_STATUS_TIMEOUT))
        check(0, "amqp_consume_message: reply type %d, %s", reply.reply_type,
              amqp_error_string2(reply.library_error));
    return 0;
}

static int bytes_equal(amqp_bytes_t bytes, const char *text) {
    return bytes.len == strlen(text) && memcmp(bytes.bytes, text, bytes.len) == 0;
}

static int ack(amqp_connection_state_t conn, uint64_t delivery_tag) {
    return check(amqp_basic_ack(conn, 1, delivery_tag, 0) == AMQP_STATUS_OK, "basic.ack");
}

/* ------------------------------------------------------------------------------------------ */

static void test_hello_world(void) {
    char name[128];
    unique_name("hello", name, sizeof name);
    amqp_connection_state_t sender = open_connection();
    amqp_connection_state_t receiver = open_connection();
    if (sender == NULL || receiver == NULL)
        goto done;
    if (!declare(sender, name, 0, 0, 0, NULL, 0, NULL) || !publish(sender, name, "Hello World!",
                                                                   NULL))
        goto done;
    close_connection(sender);
    sender = NULL;
    if (!declare(receiver, name, 0, 0, 0, NULL, 0, NULL) || !consume(receiver, name, 1))
        goto done;
    amqp_envelope_t envelope;
    if (check(next_delivery(receiver, &envelope, 5), "no Hello World! within 5 s")) {
        check(bytes_equal(envelope.message.body, "Hello World!"), "body %.*s",
              (int)envelope.message.body.len, (char *)envelope.message.body.bytes);
        check(envelope.redelivered == 0, "redelivered flag set");
        amqp_destroy_envelope(&envelope);
    }
done:
    close_connection(sender);
    close_connection(receiver);
    delete_queue(name);
}

static void test_work_queue_redelivers_the_task_of_a_vanished_worker(void) {
    char name[128];
    unique_name("task_queue", name, sizeof name);
    amqp_connection_state_t producer = open_connection();
    amqp_connection_state_t first = open_connection();
    amqp_connection_state_t second = open_connection();
    amqp_envelope_t envelope;
    if (producer == NULL || first == NULL || second == NULL)
        goto done;
    amqp_basic_properties_t persistent = {
        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    if (!declare(producer, name, 0, 1, 0, NULL, 0, NULL) ||
        !publish(producer, name, "task one.", &persistent) ||
        !publish(producer, name, "task two..", &persistent))
        goto done;

    /* Worker one takes task one and, with prefetch 1, nothing else. */
    amqp_basic_qos(first, 1, 0, 1, 0);
    if (!rpc_ok(first, "basic.qos") || !declare(first, name, 0, 1, 0, NULL, 0, NULL) ||
        !consume(first, name, 0))
        goto done;
    if (!check(next_delivery(first, &envelope, 5), "worker one got nothing"))
        goto done;
    check(bytes_equal(envelope.message.body, "task one."), "worker one got %.*s",
          (int)envelope.message.body.len, (char *)envelope.message.body.bytes);
    amqp_destroy_envelope(&envelope);

    /* Worker two gets task two, then task one again once worker one vanishes unacked. */
    amqp_basic_qos(second, 1, 0, 1, 0);
    if (!rpc_ok(second, "basic.qos") || !declare(second, name, 0, 1, 0, NULL, 0, NULL) ||
        !consume(second, name, 0))
        goto done;
    if (!check(next_delivery(second, &envelope, 5), "worker two got nothing"))
        goto done;
    check(bytes_equal(envelope.message.body, "task two.."), "worker two got %.*s first",
          (int)envelope.message.body.len, (char *)envelope.message.body.bytes);
    uint64_t tag = envelope.delivery_tag;
    amqp_destroy_envelope(&envelope);
    vanish(first);
    first = NULL;
    ack(second, tag);
    if (!check(next_delivery(second, &envelope, 5), "task one was not redelivered"))
        goto done;
    check(bytes_equal(envelope.message.body, "task one."), "redelivered %.*s",
          (int)envelope.message.body.len, (char *)envelope.message.body.bytes);
    check(envelope.redelivered == 1, "redelivered flag not set");
    check((envelope.message.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
              envelope.message.properties.delivery_mode == AMQP_DELIVERY_PERSISTENT,
          "delivery_mode 2 lost");
    ack(second, envelope.delivery_tag);
    amqp_destroy_envelope(&envelope);
    uint32_t ready = 99;
    if (declare(producer, name, 1, 0, 0, NULL, 0, &ready))
        check(ready == 0, "%u tasks left in the queue", ready);
done:
    if (first != NULL)
        close_connection(first);
    close_connection(second);
    close_connection(producer);
    delete_queue(name);
}

static long fib(int n) {
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

#define CLIENTS 3
#define REQUESTS 2

static void test_rpc_clients_get_only_their_own_answers(void) {
    char rpc_queue[128];
    unique_name("rpc_queue", rpc_queue, sizeof rpc_queue);
    amqp_connection_state_t server = open_connection();
    amqp_connection_state_t clients[CLIENTS] = {0};
    char callback_queues[CLIENTS][128];
    amqp_envelope_t envelope;
    if (server == NULL || !declare(server, rpc_queue, 0, 0, 0, NULL, 0, NULL))
        goto done;
    amqp_basic_qos(server, 1, 0, 1, 0);
    if (!rpc_ok(server, "basic.qos") || !consume(server, rpc_queue, 0))
        goto done;

    /* Each client: an exclusive server-named callback queue, then its requests. */
    for (int c = 0; c < CLIENTS; c++) {
        clients[c] = open_connection();
        if (clients[c] == NULL ||
            !declare(clients[c], "", 0, 0, 1, callback_queues[c], sizeof callback_queues[c],
                     NULL) ||
            !consume(clients[c], callback_queues[c], 1))
            goto done;
        check(strncmp(callback_queues[c], "amq.gen-", 8) == 0, "callback queue %s",
              callback_queues[c]);
        for (int r = 0; r < REQUESTS; r++) {
            char correlation[64], body[16];
            int n = 10 + c * REQUESTS + r;
            snprintf(correlation, sizeof correlation, "client%d-%d", c, n);
            snprintf(body, sizeof body, "%d", n);
            amqp_basic_properties_t properties = {
                ._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG,
                .reply_to = amqp_cstring_bytes(callback_queues[c]),
                .correlation_id = amqp_cstring_bytes(correlation)};
            if (!publish(clients[c], rpc_queue, body, &properties))
                goto done;
        }
    }

    /* The server answers every request to its reply_to with its correlation_id. */
    for (int served = 0; served < CLIENTS * REQUESTS; served++) {
        if (!check(next_delivery(server, &envelope, 5), "server got %d of %d requests", served,
                   CLIENTS * REQUESTS))
            goto done;
        char body[32], reply_to[128], answer[32];
        snprintf(body, sizeof body, "%.*s", (int)envelope.message.body.len,
                 (char *)envelope.message.body.bytes);
        amqp_basic_properties_t *request = &envelope.message.properties;
        snprintf(reply_to, sizeof reply_to, "%.*s", (int)request->reply_to.len,
                 (char *)request->reply_to.bytes);
        snprintf(answer, sizeof answer, "%ld", fib(atoi(body)));
        amqp_basic_properties_t properties = {._flags = AMQP_BASIC_CORRELATION_ID_FLAG,
                                              .correlation_id = request->correlation_id};
        publish(server, reply_to, answer, &properties);
        ack(server, envelope.delivery_tag);
        amqp_destroy_envelope(&envelope);
    }

    /* Each client receives exactly its answers. */
    for (int c = 0; c < CLIENTS; c++) {
        int seen = 0;
        while (next_delivery(clients[c], &envelope, seen < REQUESTS ? 5 : 0)) {
            char correlation[64], prefix[16];
            snprintf(correlation, sizeof correlation, "%.*s",
                     (int)envelope.message.properties.correlation_id.len,
                     (char *)envelope.message.properties.correlation_id.bytes);
            snprintf(prefix, sizeof prefix, "client%d-", c);
            if (check(strncmp(correlation, prefix, strlen(prefix)) == 0,
                      "client %d got the answer for %s", c, correlation)) {
                char expected[32];
                snprintf(expected, sizeof expected, "%ld", fib(atoi(correlation + strlen(prefix))));
                check(bytes_equal(envelope.message.body, expected), "%s answered %.*s, not %s",
                      correlation, (int)envelope.message.body.len,
                      (char *)envelope.message.body.bytes, expected);
            }
            seen++;
            amqp_destroy_envelope(&envelope);
        }
        check(seen == REQUESTS, "client %d got %d answers, expected %d", c, seen, REQUESTS);
    }
done:
    for (int c = 0; c < CLIENTS; c++)
        close_connection(clients[c]);
    close_connection(server);
    delete_queue(rpc_queue);
}

int main(int argc, char **argv) {
    if (getenv("WARREN_HOST"))
        host = getenv("WARREN_HOST");
    if (getenv("WARREN_PORT"))
        port = atoi(getenv("WARREN_PORT"));
    if (getenv("WARREN_USER"))
        user = getenv("WARREN_USER");
    if (getenv("WARREN_PASSWORD"))
        password = getenv("WARREN_PASSWORD");
    if (getenv("WARREN_VHOST"))
        vhost = getenv("WARREN_VHOST");
    if (argc > 1)
        host = argv[1];
    if (argc > 2)
        port = atoi(argv[2]);

    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"hello_world", test_hello_world},
        {"work_queue_redelivers_the_task_of_a_vanished_worker",
         test_work_queue_redelivers_the_task_of_a_vanished_worker},
        {"rpc_clients_get_only_their_own_answers", test_rpc_clients_get_only_their_own_answers},
    };
    int tests_passed = 0, tests_failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int failed_before = failed;
        tests[i].run();
        int ok = failed == failed_before;
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
        ok ? tests_passed++ : tests_failed++;
    }
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed == 0 ? 0 : 1;
}
