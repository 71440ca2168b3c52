/* broker/amqp/auth.h: SASL PLAIN and AMQPLAIN responses, and the credential check. */
#ifndef WARREN_AUTH_H
#define WARREN_AUTH_H

#include <stdbool.h>

#include "proto.h"

struct access;
struct server_config;

/* The mechanisms offered in connection.start, space-separated; EXTERNAL (the user named by a
 * verified TLS client certificate) only on connections that have one, as RabbitMQ's
 * rabbitmq_auth_mechanism_ssl offers it only when the peer sent a certificate. */
#define AUTH_MECHANISMS "PLAIN AMQPLAIN"
#define AUTH_MECHANISMS_EXTERNAL "PLAIN AMQPLAIN EXTERNAL"

/* Extracts user and password from a start-ok response for mechanism ("PLAIN": authzid NUL user
 * NUL password; "AMQPLAIN": a table with LOGIN and PASSWORD). Views borrow from response.
 * Returns 0, -1 for a malformed response, -2 for an unsupported mechanism. */
int auth_parse_response(struct proto_bytes mechanism, struct proto_bytes response,
                        struct proto_bytes *user, struct proto_bytes *password);

/* Checks credentials against the user database. The configured default user (guest) is
 * refused from a non-loopback peer unless configured otherwise, as RabbitMQ's loopback_users
 * does. Returns true when the login is allowed. */
bool auth_check(const struct access *access, const struct server_config *cfg, struct proto_bytes user,
                struct proto_bytes password, bool peer_is_loopback);

/* SASL EXTERNAL: identity (from the transport, NULL when the peer showed no verified
 * certificate) must name an existing user; no password is checked. The loopback rule of
 * auth_check applies. Returns true when the login is allowed. */
bool auth_check_external(const struct access *access, const struct server_config *cfg, const char *identity,
                         bool peer_is_loopback);

#endif
