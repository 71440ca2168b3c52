/* Connection set-up and error text for every warren-perf thread. */
#include "session.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void describe_close(const amqp_method_t *method, char *err, size_t err_len, const char *context)
{
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *closing = method->decoded;
        snprintf(err, err_len, "%s: connection closed by broker: %u %.*s", context, closing->reply_code,
                 (int)closing->reply_text.len, (const char *)closing->reply_text.bytes);
    } else if (method->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *closing = method->decoded;
        snprintf(err, err_len, "%s: channel closed by broker: %u %.*s", context, closing->reply_code,
                 (int)closing->reply_text.len, (const char *)closing->reply_text.bytes);
    } else {
        snprintf(err, err_len, "%s: unexpected method 0x%08x", context, method->id);
    }
}

int session_check(amqp_rpc_reply_t reply, const char *context, char *err, size_t err_len)
{
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        snprintf(err, err_len, "%s: no reply", context);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, err_len, "%s: %s", context, amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        describe_close(&reply.reply, err, err_len, context);
        break;
    }
    return -1;
}

int session_check_status(int status, const char *context, char *err, size_t err_len)
{
    if (status == AMQP_STATUS_OK)
        return 0;
    snprintf(err, err_len, "%s: %s", context, amqp_error_string2(status));
    return -1;
}

int session_handle_unexpected(amqp_connection_state_t conn, const amqp_frame_t *frame, char *err,
                              size_t err_len)
{
    if (frame->frame_type != AMQP_FRAME_METHOD)
        return 0;
    const amqp_method_t *method = &frame->payload.method;
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        describe_close(method, err, err_len, "async");
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    if (method->id == AMQP_CHANNEL_CLOSE_METHOD) {
        describe_close(method, err, err_len, "async");
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(conn, frame->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return -1;
    }
    return 0;
}

amqp_connection_state_t session_open(const struct perf_config *config, int frame_max, char *err,
                                     size_t err_len)
{
    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    amqp_socket_t *socket = config->tls ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!socket) {
        snprintf(err, err_len, "cannot create socket");
        amqp_destroy_connection(conn);
        return NULL;
    }
    if (config->tls) {
        bool verify = config->cacert != NULL;
        /* rabbitmq-c matches the host against DNS names only: an address (127.0.0.1) is
         * verified through the certificate chain alone. */
        unsigned char addr[sizeof(struct in6_addr)];
        bool numeric = inet_pton(AF_INET, config->host, addr) == 1 || inet_pton(AF_INET6, config->host, addr) == 1;
        amqp_ssl_socket_set_verify_peer(socket, verify);
        amqp_ssl_socket_set_verify_hostname(socket, verify && !numeric);
        if (verify && amqp_ssl_socket_set_cacert(socket, config->cacert) != AMQP_STATUS_OK) {
            snprintf(err, err_len, "cannot read CA certificates from %s", config->cacert);
            amqp_destroy_connection(conn);
            return NULL;
        }
    }
    struct timeval timeout = {.tv_sec = 30};
    int status = amqp_socket_open_noblock(socket, config->host, config->port, &timeout);
    if (status != AMQP_STATUS_OK) {
        snprintf(err, err_len, "connect %s:%d: %s", config->host, config->port, amqp_error_string2(status));
        amqp_destroy_connection(conn);
        return NULL;
    }
    amqp_rpc_reply_t reply = amqp_login(conn, config->vhost, 0, frame_max ? frame_max : config->frame_max,
                                        config->heartbeat, AMQP_SASL_METHOD_PLAIN, config->user,
                                        config->password);
    if (session_check(reply, "login", err, err_len) != 0) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    amqp_channel_open(conn, PERF_CHANNEL);
    if (session_check(amqp_get_rpc_reply(conn), "channel.open", err, err_len) != 0) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

void session_close(amqp_connection_state_t conn)
{
    if (!conn)
        return;
    amqp_channel_close(conn, PERF_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

void session_abandon(amqp_connection_state_t conn)
{
    if (conn)
        amqp_destroy_connection(conn);
}
