/* tests/integration/test_rabbitmqc.c: the broker seen through rabbitmq-c, the C client most C
 * programs use: login, 1,000 channels, heartbeat negotiation, refused credentials, client-side
 * close.
 *
 * usage: test_integration_rabbitmqc [HOST [PORT]]   (defaults: $WARREN_HOST or 127.0.0.1,
 * $WARREN_PORT or 5672; $WARREN_USER / $WARREN_PASSWORD / $WARREN_VHOST, default guest / guest /
 * "/"). Prints one line per test and "N passed, N failed"; exits 0 only when nothing failed. */

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *host = "127.0.0.1";
static int port = 5672;
static const char *user = "guest";
static const char *password = "guest";
static const char *vhost = "/";
static int passed;
static int failed;

/* Records one check; prints the failure with the caller's formatted detail. */
static int check(int ok, const char *format, ...) {
    va_list args;
    va_start(args, format);
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("  FAIL: ");
        vprintf(format, args);
        printf("\n");
    }
    va_end(args);
    return ok;
}

/* A short description of an RPC reply for failure messages (static buffer). */
static const char *describe(amqp_rpc_reply_t reply) {
    static char text[256];
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "normal";
    case AMQP_RESPONSE_NONE:
        return "none (missing RPC reply)";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(text, sizeof text, "library exception: %s",
                 amqp_error_string2(reply.library_error));
        return text;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
            reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            /* connection.close and channel.close share their field layout */
            amqp_connection_close_t *close = reply.reply.decoded;
            snprintf(text, sizeof text, "server %s %u %.*s",
                     reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD ? "connection.close"
                                                                    : "channel.close",
                     close->reply_code, (int)close->reply_text.len,
                     (char *)close->reply_text.bytes);
        } else {
            snprintf(text, sizeof text, "server exception, method 0x%08x", reply.reply.id);
        }
        return text;
    }
    return "?";
}

/* Opens a socket to the broker; NULL (and a failed check) when that is impossible. */
static amqp_connection_state_t connect_socket(void) {
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (!check(socket != NULL, "amqp_tcp_socket_new")) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    int status = amqp_socket_open(socket, host, port);
    if (!check(status == AMQP_STATUS_OK, "amqp_socket_open %s:%d: %s", host, port,
               amqp_error_string2(status))) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

/* Connects and logs in with PLAIN; NULL on failure. Channel max 0 accepts the server's. */
static amqp_connection_state_t login(int heartbeat) {
    amqp_connection_state_t conn = connect_socket();
    if (conn == NULL)
        return NULL;
    amqp_rpc_reply_t reply = amqp_login(conn, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat,
                                        AMQP_SASL_METHOD_PLAIN, user, password);
    if (!check(reply.reply_type == AMQP_RESPONSE_NORMAL, "amqp_login: %s", describe(reply))) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

/* Client-side close: connection.close answered by close-ok; then frees the connection. */
static void close_and_destroy(amqp_connection_state_t conn) {
    amqp_rpc_reply_t reply = amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    check(reply.reply_type == AMQP_RESPONSE_NORMAL, "amqp_connection_close: %s", describe(reply));
    amqp_destroy_connection(conn);
}

static void test_login_gets_rabbitmq_limits_and_close_from_client(void) {
    amqp_connection_state_t conn = login(0);
    if (conn == NULL)
        return;
    check(amqp_get_channel_max(conn) == 2047, "channel_max %d, expected 2047",
          amqp_get_channel_max(conn));
    check(amqp_get_frame_max(conn) == 131072, "frame_max %d, expected 131072",
          amqp_get_frame_max(conn));
    check(amqp_get_heartbeat(conn) == 0, "heartbeat %d, expected 0", amqp_get_heartbeat(conn));
    amqp_table_t *properties = amqp_get_server_properties(conn);
    int found = 0;
    for (int i = 0; properties != NULL && i < properties->num_entries; i++)
        if (properties->entries[i].key.len == 7 &&
            memcmp(properties->entries[i].key.bytes, "product", 7) == 0)
            found = 1;
    check(found, "server properties carry a product");
    close_and_destroy(conn);
}

static void test_1000_channels_sequentially(void) {
    amqp_connection_state_t conn = login(0);
    if (conn == NULL)
        return;
    int failures = 0;
    for (amqp_channel_t channel = 1; channel <= 1000 && failures == 0; channel++) {
        if (amqp_channel_open(conn, channel) == NULL) {
            failures +=
                !check(0, "channel.open %u: %s", channel, describe(amqp_get_rpc_reply(conn)));
            break;
        }
        amqp_rpc_reply_t reply = amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS);
        failures += !check(reply.reply_type == AMQP_RESPONSE_NORMAL, "channel.close %u: %s",
                           channel, describe(reply));
    }
    close_and_destroy(conn);
}

static void test_1000_channels_open_at_once(void) {
    amqp_connection_state_t conn = login(0);
    if (conn == NULL)
        return;
    amqp_channel_t opened = 0;
    while (opened < 1000 && amqp_channel_open(conn, (amqp_channel_t)(opened + 1)) != NULL)
        opened++;
    check(opened == 1000, "opened %u of 1000 channels: %s", opened,
          describe(amqp_get_rpc_reply(conn)));
    for (amqp_channel_t channel = 1; channel <= opened; channel++) {
        amqp_rpc_reply_t reply = amqp_channel_close(conn, channel, AMQP_REPLY_SUCCESS);
        if (!check(reply.reply_type == AMQP_RESPONSE_NORMAL, "channel.close %u: %s", channel,
                   describe(reply)))
            break;
    }
    close_and_destroy(conn);
}

static void test_heartbeat_2_is_negotiated(void) {
    /* rabbitmq-c takes the lower of its request and the server's non-zero proposal (60). */
    amqp_connection_state_t conn = login(2);
    if (conn == NULL)
        return;
    check(amqp_get_heartbeat(conn) == 2, "heartbeat %d, expected 2", amqp_get_heartbeat(conn));
    close_and_destroy(conn);
}

static void test_wrong_password_is_refused_with_403(void) {
    amqp_connection_state_t conn = connect_socket();
    if (conn == NULL)
        return;
    /* rabbitmq-c announces authentication_failure_close, so the refusal is a connection.close. */
    amqp_rpc_reply_t reply = amqp_login(conn, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                                        AMQP_SASL_METHOD_PLAIN, user, "wrong-password");
    int refused =
        reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD &&
        ((amqp_connection_close_t *)reply.reply.decoded)->reply_code == AMQP_ACCESS_REFUSED;
    check(refused, "amqp_login with a wrong password: %s, expected connection.close 403",
          describe(reply));
    amqp_destroy_connection(conn);
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
        {"login_gets_rabbitmq_limits_and_close_from_client",
         test_login_gets_rabbitmq_limits_and_close_from_client},
        {"1000_channels_sequentially", test_1000_channels_sequentially},
        {"1000_channels_open_at_once", test_1000_channels_open_at_once},
        {"heartbeat_2_is_negotiated", test_heartbeat_2_is_negotiated},
        {"wrong_password_is_refused_with_403", test_wrong_password_is_refused_with_403},
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
