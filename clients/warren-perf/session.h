/* Connections through rabbitmq-c: open one with channel 1, describe failures as text, and
 * recognise the broker's asynchronous channel.close / connection.close. One thread per session:
 * rabbitmq-c connections are not thread-safe. */
#ifndef WARREN_PERF_SESSION_H
#define WARREN_PERF_SESSION_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

#include "perf.h"

#define PERF_CHANNEL 1

/* Open a TCP connection, log in and open channel 1. frame_max 0 uses the configured one.
 * Returns the connection (the caller closes it with session_close) or NULL with err filled. */
amqp_connection_state_t session_open(const struct perf_config *config, int frame_max, char *err,
                                     size_t err_len);

/* 0 when a synchronous call succeeded; otherwise -1 with "context: reason" in err. */
int session_check(amqp_rpc_reply_t reply, const char *context, char *err, size_t err_len);

/* 0 when a library status is OK; otherwise -1 with "context: reason" in err. */
int session_check_status(int status, const char *context, char *err, size_t err_len);

/* For a method frame the worker loops do not expect: a broker close is answered with its
 * close-ok, described in err, and returns -1; anything else returns 0 (ignored). */
int session_handle_unexpected(amqp_connection_state_t conn, const amqp_frame_t *frame, char *err,
                              size_t err_len);

/* Close channel and connection politely (bounded by the broker answering) and free. */
void session_close(amqp_connection_state_t conn);

/* Free without the closing handshake, for connections already closed or broken. */
void session_abandon(amqp_connection_state_t conn);

#endif
