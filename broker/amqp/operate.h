/* broker/amqp/operate.h: changes to the running broker asked for from outside AMQP (the
 * management API): declare and delete queues and exchanges, bind, purge, publish, get, close a
 * connection. Each goes through the same checked functions as the AMQP method it stands for
 * (declare.c, publish.c, consume.c), so permissions and RabbitMQ's rules (equivalence,
 * reserved amq.* names, exclusive queues, if-unused/if-empty) are the ones clients meet.
 *
 * Every call acts for `user` in `vhost` as a channel of that user would; user NULL acts as the
 * broker's operator, whom no permission check refuses. Failures return -1 with err holding
 * RabbitMQ's reply code and text: 404 (no such vhost, queue or exchange), 403 (permissions,
 * reserved names), 405 (another connection's exclusive queue), 406 (not equivalent, not
 * empty, in use), 503/530 (bad type, not allowed). */
#ifndef WARREN_OPERATE_H
#define WARREN_OPERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"

struct server;
struct exchange_declare;
struct queue_declare;
struct spec_basic_properties;

/* The management API answers a change once every member applied it, as the AMQP methods are
 * answered: around a request, operate_wait_open(server) starts counting what is proposed (NULL:
 * no cluster, nothing to wait for), and operate_wait_close stops; true when done(arg, status,
 * text) follows once they are all answered (status 0: applied everywhere; else the first
 * failure, -ETIMEDOUT when no quorum answered), false when there was nothing to wait for or
 * done is NULL (cluster_target.h, cluster_wait_*). */
struct cluster_wait;
typedef void (*operate_wait_fn)(void *arg, int status, const char *text);
struct cluster_wait *operate_wait_open(struct server *server);
bool operate_wait_close(struct server *server, struct cluster_wait *w, operate_wait_fn done, void *arg);

/* With a cluster, the declares, deletes and bindings below are checked here (permissions, and
 * the model's rules against this node's copy, as the AMQP methods' cluster path does:
 * declare_cluster.c) and proposed to the metadata group as the command the AMQP method proposes
 * (cluster_target.h), without being made here first: the command's apply makes them, on this
 * node as on every other, in log order. What depends on earlier changes of the same request (a
 * binding's ends, an exchange's if-unused) is judged by the apply; the answer waits for it
 * through the open operate_wait (above) and carries its refusal; without one (warrenctl), the
 * change is made here first. A change the cluster does not take (no quorum) so leaves no trace
 * on this node either. Policies and vhost limits (introspect_policy.c) follow the same rule:
 * validated here, made by their apply. operate_replicate proposes op with args and
 * "vhost"; args are freed either way; rc: nonzero when building them failed. Without a
 * cluster: only the freeing. */
struct table_buf;
void operate_replicate(struct server *server, const char *op, const char *vhost, struct table_buf *args, int rc);

/* True when the changes below go through the cluster's log first: a cluster is configured and
 * the request's answer waits for it (an operate_wait is open: the management API over HTTP).
 * Without a wait (warrenctl, whose commands answer once their own node changed), they are made
 * here, then proposed. */
bool operate_through_log(const struct server *server);

/* queue.declare of d (owner is ignored: such queues belong to no connection). *created tells
 * whether the queue is new. */
int operate_declare_queue(struct server *server, const char *user, const char *vhost, const struct queue_declare *d,
                          bool *created, struct reply_error *err);
/* queue.delete; a missing queue is 404 here (RabbitMQ's API looks the queue up first). */
int operate_delete_queue(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                         bool if_unused, bool if_empty, struct reply_error *err);
/* queue.purge; *purged (may be NULL) is the number of messages removed. */
int operate_purge_queue(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                        uint32_t *purged, struct reply_error *err);

/* exchange.declare of d; *created tells whether the exchange is new. */
int operate_declare_exchange(struct server *server, const char *user, const char *vhost,
                             const struct exchange_declare *d, bool *created, struct reply_error *err);
/* exchange.delete; a missing exchange is 404. */
int operate_delete_exchange(struct server *server, const char *user, const char *vhost, struct proto_bytes name,
                            bool if_unused, struct reply_error *err);

/* queue.bind / exchange.bind (to_exchange) of destination to source, or their unbind. */
int operate_bind(struct server *server, const char *user, const char *vhost, bool to_exchange,
                 struct proto_bytes destination, struct proto_bytes source, struct proto_bytes key,
                 struct proto_bytes arguments, bool unbind, struct reply_error *err);

/* basic.publish of body with props (read during the call only) to exchange with key, after
 * the checks a publish passes (write permission, user_id, CC/BCC, expiration, size). *routed:
 * some queue took it (RabbitMQ's mandatory publish was not returned). */
int operate_publish(struct server *server, const char *user, const char *vhost, struct proto_bytes exchange,
                    struct proto_bytes key, const struct spec_basic_properties *props, const uint8_t *body,
                    size_t body_len, bool *routed, struct reply_error *err);

/* Closes the connection called name (connection_name) with 320 CONNECTION_FORCED and reason.
 * Returns 0, or -ENOENT when there is no such connection. */
int operate_close_connection(struct server *server, const char *name, const char *reason);

#endif
