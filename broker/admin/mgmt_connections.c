/* broker/admin/mgmt_connections.c: /api/connections, /api/channels and /api/consumers (and
 * their per-vhost and per-connection views), as RabbitMQ's API shows them. Management users
 * see only their own connections and channels; closing a connection sends 320
 * CONNECTION_FORCED with the X-Reason header's text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "introspect.h"
#include "mgmt_internal.h"
#include "operate.h"

/* May the caller see what `user` opened? */
static bool owns(const struct mgmt_call *call, const char *user)
{
    return mgmt_sees_all(call) || strcmp(call->user, user) == 0;
}

/* "a:1 -> b:2": the local end's host and port. */
static void local_end(const char *name, char *host, size_t cap, int *port)
{
    const char *arrow = strstr(name, " -> ");
    const char *local = arrow ? arrow + 4 : "";
    const char *colon = strrchr(local, ':');
    size_t n = colon ? (size_t)(colon - local) : strlen(local);
    snprintf(host, cap, "%.*s", (int)n, local);
    *port = colon ? atoi(colon + 1) : 0;
}

static json_t *connection_json(const struct introspect_connection *c)
{
    char host[128];
    int port;
    local_end(c->name, host, sizeof host, &port);
    json_t *o = json_object();
    json_object_set_new(o, "name", mgmt_string(c->name, strlen(c->name)));
    json_object_set_new(o, "node", json_string(mgmt_node_name()));
    json_object_set_new(o, "type", json_string(c->direct ? "direct" : "network"));
    json_object_set_new(o, "user", mgmt_string(c->user, strlen(c->user)));
    json_object_set_new(o, "user_who_performed_action", mgmt_string(c->user, strlen(c->user)));
    json_object_set_new(o, "vhost", mgmt_string(c->vhost, strlen(c->vhost)));
    json_object_set_new(o, "state", json_string(c->blocked ? "blocked" : c->state));
    json_object_set_new(o, "channels", json_integer(c->channels));
    json_object_set_new(o, "peer_host", json_string(c->peer_host));
    json_object_set_new(o, "peer_port", json_integer(c->peer_port));
    json_object_set_new(o, "host", json_string(host));
    json_object_set_new(o, "port", json_integer(port));
    json_object_set_new(o, "protocol", json_string(c->direct ? "Direct 0-9-1" : c->protocol ? c->protocol : "AMQP 0-9-1"));
    json_object_set_new(o, "auth_mechanism", json_string(c->auth_mechanism ? c->auth_mechanism : ""));
    json_object_set_new(o, "client_properties", mgmt_table(c->client_properties));
    json_object_set_new(o, "frame_max", json_integer(c->frame_max));
    json_object_set_new(o, "channel_max", json_integer(c->channel_max));
    json_object_set_new(o, "timeout", json_integer(c->heartbeat));
    json_object_set_new(o, "connected_at", json_integer((json_int_t)c->connected_at));
    json_object_set_new(o, "ssl", json_boolean(c->ssl));
    json_object_set_new(o, "ssl_protocol", c->ssl ? json_string(c->tls.protocol) : json_null());
    json_object_set_new(o, "ssl_key_exchange", c->ssl ? json_string(c->tls.key_exchange) : json_null());
    json_object_set_new(o, "ssl_cipher", c->ssl ? json_string(c->tls.cipher) : json_null());
    json_object_set_new(o, "ssl_hash", c->ssl ? json_string(c->tls.hash) : json_null());
    bool cert = c->ssl && c->tls.peer_subject[0];
    json_object_set_new(o, "peer_cert_subject", cert ? mgmt_string(c->tls.peer_subject, strlen(c->tls.peer_subject)) : json_null());
    json_object_set_new(o, "peer_cert_issuer", cert ? mgmt_string(c->tls.peer_issuer, strlen(c->tls.peer_issuer)) : json_null());
    json_object_set_new(o, "peer_cert_validity", json_null());
    json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->recv_oct));
    json_object_set_new(o, "recv_oct_details", json_pack("{s:f}", "rate", c->recv_oct_rate));
    json_object_set_new(o, "send_oct", json_integer((json_int_t)c->send_oct));
    json_object_set_new(o, "send_oct_details", json_pack("{s:f}", "rate", c->send_oct_rate));
    json_object_set_new(o, "recv_cnt", json_integer((json_int_t)c->recv_cnt));
    json_object_set_new(o, "send_cnt", json_integer((json_int_t)c->send_cnt));
    json_object_set_new(o, "message_stats", mgmt_message_stats(&c->message_stats, &c->message_rates,
                                                               MGMT_STATS_CHANNEL));
    return o;
}

struct connection_walk {
    struct mgmt_call *call;
    json_t *items;
    const char *vhost; /* NULL: every vhost */
    const char *name;  /* NULL: every connection */
    bool anyone;       /* everybody's, not only what the caller may see (checked after) */
};

static void add_connection(const struct introspect_connection *c, void *arg)
{
    struct connection_walk *w = arg;
    if ((!w->anyone && !owns(w->call, c->user)) || (w->vhost && strcmp(w->vhost, c->vhost) != 0) ||
        (w->name && strcmp(w->name, c->name) != 0))
        return;
    json_array_append_new(w->items, connection_json(c));
}

static void list_connections(struct mgmt_call *call)
{
    struct connection_walk w = {call, json_array(), NULL, NULL, false};
    if (call->nseg == 3 && !(w.vhost = mgmt_name(call, 1))) { /* vhosts/VHOST/connections */
        json_decref(w.items);
        return;
    }
    introspect_connections(call->server, add_connection, &w);
    mgmt_list(call, w.items);
}

/* GET or DELETE connections/NAME. */
static void connection(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    struct connection_walk w = {call, json_array(), NULL, name, true};
    introspect_connections(call->server, add_connection, &w);
    json_t *c = json_incref(json_array_get(w.items, 0));
    json_decref(w.items);
    if (!c) {
        mgmt_not_found(call);
        return;
    }
    /* RabbitMQ's is_authorized_user: a user's own connection, or anyone's to read for a
     * monitor and to close for an administrator; 401, not 404, for another's. */
    const char *user = json_string_value(json_object_get(c, "user"));
    bool own = user && strcmp(user, call->user) == 0;
    bool allowed = own || (call->method == MGMT_GET ? mgmt_sees_all(call)
                                                     : (call->tags & MGMT_TAG_ADMINISTRATOR) != 0);
    if (!allowed) {
        json_decref(c);
        mgmt_fail(call, 401, "not_authorised", "User not authorised to access object");
        return;
    }
    if (call->method == MGMT_GET) {
        mgmt_reply(call, 200, c);
        return;
    }
    json_decref(c);
    const char *reason = call->reason && *call->reason ? call->reason : "Closed via management plugin";
    if (operate_close_connection(call->server, name, reason) != 0)
        mgmt_not_found(call);
    else
        mgmt_done(call, false);
}

/* ---- channels ----------------------------------------------------------------------------- */

struct channel_walk {
    struct mgmt_call *call;
    json_t *items;
    const char *vhost, *connection, *name;
    json_t *connections; /* name -> {peer_host, peer_port} */
};

static void note_connection(const struct introspect_connection *c, void *arg)
{
    json_t *map = arg;
    json_object_set_new(map, c->name, json_pack("{s:s,s:i}", "peer_host", c->peer_host, "peer_port", c->peer_port));
}

static void add_channel(const struct introspect_channel *c, void *arg)
{
    struct channel_walk *w = arg;
    if (!owns(w->call, c->user) || (w->vhost && strcmp(w->vhost, c->vhost) != 0) ||
        (w->connection && strcmp(w->connection, c->connection) != 0) || (w->name && strcmp(w->name, c->name) != 0))
        return;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "node", json_string(mgmt_node_name()));
    json_object_set_new(o, "number", json_integer(c->number));
    json_object_set_new(o, "user", mgmt_string(c->user, strlen(c->user)));
    json_object_set_new(o, "user_who_performed_action", mgmt_string(c->user, strlen(c->user)));
    json_object_set_new(o, "vhost", mgmt_string(c->vhost, strlen(c->vhost)));
    json_object_set_new(o, "state", json_string("running"));
    json_t *details = json_object();
    json_object_set_new(details, "name", json_string(c->connection));
    json_t *peer = json_object_get(w->connections, c->connection);
    json_object_set(details, "peer_host", peer ? json_object_get(peer, "peer_host") : json_null());
    json_object_set(details, "peer_port", peer ? json_object_get(peer, "peer_port") : json_null());
    json_object_set_new(o, "connection_details", details);
    json_object_set_new(o, "consumer_count", json_integer(c->consumers));
    json_object_set_new(o, "messages_unacknowledged", json_integer(c->messages_unacknowledged));
    json_object_set_new(o, "messages_unconfirmed", json_integer(0));
    json_object_set_new(o, "messages_uncommitted", json_integer(0));
    json_object_set_new(o, "acks_uncommitted", json_integer(0));
    json_object_set_new(o, "prefetch_count", json_integer(c->prefetch_count));
    json_object_set_new(o, "global_prefetch_count", json_integer(c->global_prefetch_count));
    json_object_set_new(o, "confirm", json_boolean(c->confirm));
    json_object_set_new(o, "transactional", json_boolean(c->transactional));
    json_object_set_new(o, "message_stats", mgmt_message_stats(&c->message_stats, &c->message_rates,
                                                               MGMT_STATS_CHANNEL));
    json_array_append_new(w->items, o);
}

static json_t *channels_where(struct mgmt_call *call, const char *vhost, const char *connection, const char *name)
{
    struct channel_walk w = {call, json_array(), vhost, connection, name, json_object()};
    introspect_connections(call->server, note_connection, w.connections);
    introspect_channels(call->server, add_channel, &w);
    json_decref(w.connections);
    return w.items;
}

static void list_channels(struct mgmt_call *call)
{
    const char *vhost = NULL;
    if (call->nseg == 3 && !(vhost = mgmt_name(call, 1)))
        return;
    mgmt_list(call, channels_where(call, vhost, NULL, NULL));
}

static void connection_channels(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    struct connection_walk w = {call, json_array(), NULL, name, true};
    introspect_connections(call->server, add_connection, &w);
    const char *user = json_string_value(json_object_get(json_array_get(w.items, 0), "user"));
    bool found = json_array_size(w.items) > 0, allowed = found && (mgmt_sees_all(call) || strcmp(user, call->user) == 0);
    json_decref(w.items);
    if (!found) {
        mgmt_not_found(call);
        return;
    }
    if (!allowed) { /* another user's: RabbitMQ's 401, as for the connection itself */
        mgmt_fail(call, 401, "not_authorised", "User not authorised to access object");
        return;
    }
    mgmt_list(call, channels_where(call, NULL, name, NULL));
}

static void channel(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    json_t *items = channels_where(call, NULL, NULL, name);
    json_t *c = json_incref(json_array_get(items, 0));
    json_decref(items);
    if (c)
        mgmt_reply(call, 200, c);
    else
        mgmt_not_found(call);
}

/* ---- consumers ---------------------------------------------------------------------------- */

struct consumer_walk {
    struct mgmt_call *call;
    json_t *items;
    json_t *channels; /* name -> channel JSON, for channel_details */
};

json_t *mgmt_consumer_json(const struct introspect_consumer *c, json_t *channels)
{
    json_t *o = json_object();
    /* The only consumer argument Warren keeps is its priority. */
    json_object_set_new(o, "arguments", c->priority ? json_pack("{s:i}", "x-priority", (int)c->priority)
                                                    : json_object());
    json_object_set_new(o, "ack_required", json_boolean(c->ack_required));
    json_object_set_new(o, "active", json_true());
    json_object_set_new(o, "activity_status", json_string("up"));
    json_t *details = json_pack("{s:s,s:s}", "name", c->channel, "node", mgmt_node_name());
    json_t *ch = channels ? json_object_get(channels, c->channel) : NULL;
    if (ch) {
        json_t *conn = json_object_get(ch, "connection_details");
        json_object_set(details, "connection_name", json_object_get(conn, "name"));
        json_object_set(details, "number", json_object_get(ch, "number"));
        json_object_set(details, "peer_host", json_object_get(conn, "peer_host"));
        json_object_set(details, "peer_port", json_object_get(conn, "peer_port"));
        json_object_set(details, "user", json_object_get(ch, "user"));
    } else if (!channels) { /* from the channel's name: "<connection name> (<number>)" */
        const char *paren = strrchr(c->channel, '(');
        json_object_set_new(details, "connection_name",
                            mgmt_string(c->channel, paren && paren > c->channel ? (size_t)(paren - c->channel - 1) : 0));
        json_object_set_new(details, "number", json_integer(paren ? atoi(paren + 1) : 0));
    }
    json_object_set_new(o, "channel_details", details);
    json_object_set_new(o, "consumer_tag", mgmt_bytes(c->tag));
    json_object_set_new(o, "exclusive", json_boolean(c->exclusive));
    json_object_set_new(o, "prefetch_count", json_integer(c->prefetch_count));
    json_object_set_new(o, "queue", json_pack("{s:o,s:o}", "name", mgmt_bytes(c->queue), "vhost",
                                              mgmt_string(c->vhost, strlen(c->vhost))));
    return o;
}

static void add_consumer(const struct introspect_consumer *c, void *arg)
{
    struct consumer_walk *w = arg;
    if (!mgmt_sees_all(w->call)) { /* RabbitMQ's filter_user: a non-monitor sees its own only */
        const char *user = json_string_value(json_object_get(json_object_get(w->channels, c->channel), "user"));
        if (!user || strcmp(user, w->call->user) != 0)
            return;
    }
    json_array_append_new(w->items, mgmt_consumer_json(c, w->channels));
}

static void list_consumers(struct mgmt_call *call)
{
    const char *vhost = NULL;
    if (call->nseg == 2 && !(vhost = mgmt_name(call, 1)))
        return;
    struct mgmt_call all = *call;
    all.tags = MGMT_TAGS_ALL; /* channel details of every consumer the caller may see */
    json_t *channels = channels_where(&all, NULL, NULL, NULL);
    struct consumer_walk w = {call, json_array(), json_object()};
    size_t i;
    json_t *ch;
    json_array_foreach(channels, i, ch)
        json_object_set(w.channels, json_string_value(json_object_get(ch, "name")), ch);
    json_decref(channels);
    introspect_consumers(call->server, vhost, add_consumer, &w);
    json_decref(w.channels);
    mgmt_list(call, w.items);
}

const struct mgmt_route mgmt_connections_routes[] = {
    {"connections", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_connections},
    {"connections/*", MGMT_GET | MGMT_DELETE, MGMT_USER, MGMT_USER, 0, connection},
    {"connections/*/channels", MGMT_GET, MGMT_USER, MGMT_USER, 0, connection_channels},
    {"vhosts/*/connections", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_connections},
    {"channels", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_channels},
    {"channels/*", MGMT_GET, MGMT_USER, MGMT_USER, 0, channel},
    {"vhosts/*/channels", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_channels},
    {"consumers", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_consumers},
    {"consumers/*", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_consumers},
    {NULL, 0, 0, 0, 0, NULL},
};
