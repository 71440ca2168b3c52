/* broker/admin/admin_lists.c: the list_* commands. Each kind of object has a table of the
 * columns it can show (rabbitmqctl's names) with the management API member each one is read
 * from, and rabbitmqctl's default selection; "args" picks columns, an unknown one is a usage
 * error. A kind with an API path is a GET of that list with the columns picked from its
 * objects; the others (queues, exchanges, bindings, connections, channels, consumers) still
 * read the broker through introspect.h, until their API routes exist: switching one is setting
 * its `api` path in kinds[] (the column keys are already the API's). Answer:
 * {"ok":true,"columns":[...],"rows":[[...]]}, every row an array of values in column order;
 * AMQP tables (arguments) are JSON objects. */
#include "admin_internal.h"

#include <string.h>

#include "access.h"
#include "introspect.h"
#include "mgmt_internal.h"

#define MAX_COLUMNS 32

/* A column: rabbitmqctl's name, and the API object's member it shows ("a.b": nested; "=text":
 * that constant). */
struct column {
    const char *name;
    const char *key;
};

struct listing {
    json_t *rows;
    const struct admin_request *req;
    int columns[MAX_COLUMNS];
    size_t ncolumns;
};

struct list_kind {
    const char *command;
    const struct column *columns;  /* every column, ended by {NULL}; index = column id */
    const char *const *defaults;   /* NULL-terminated */
    bool vhost_scoped;             /* -p VHOST applies (and must exist) */
    const char *api;               /* the API list ("%s": the vhost), or NULL: run reads the broker */
    void (*run)(struct listing *l); /* only when api is NULL */
};

static json_t *uint_json(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* ---- queues ------------------------------------------------------------------------------ */

enum { Q_NAME, Q_VHOST, Q_MESSAGES, Q_READY, Q_UNACKED, Q_BYTES, Q_BYTES_READY, Q_CONSUMERS, Q_DURABLE,
       Q_AUTO_DELETE, Q_EXCLUSIVE, Q_ARGUMENTS };
static const struct column queue_columns[] = {{"name", "name"}, {"vhost", "vhost"}, {"messages", "messages"},
    {"messages_ready", "messages_ready"}, {"messages_unacknowledged", "messages_unacknowledged"},
    {"message_bytes", "message_bytes"}, {"message_bytes_ready", "message_bytes_ready"},
    {"consumers", "consumers"}, {"durable", "durable"}, {"auto_delete", "auto_delete"},
    {"exclusive", "exclusive"}, {"arguments", "arguments"}, {NULL, NULL}};
static const char *const queue_defaults[] = {"name", "messages", NULL};

static void queue_row(const struct introspect_queue *q, void *arg)
{
    struct listing *l = arg;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case Q_NAME: v = mgmt_bytes(q->name); break;
        case Q_VHOST: v = mgmt_string(q->vhost, strlen(q->vhost)); break;
        case Q_MESSAGES: v = uint_json(q->messages_ready + q->messages_unacknowledged); break;
        case Q_READY: v = uint_json(q->messages_ready); break;
        case Q_UNACKED: v = uint_json(q->messages_unacknowledged); break;
        /* Only the ready messages' bytes are counted by the queue. */
        case Q_BYTES:
        case Q_BYTES_READY: v = uint_json(q->message_bytes_ready); break;
        case Q_CONSUMERS: v = uint_json(q->consumers); break;
        case Q_DURABLE: v = json_boolean(q->durable); break;
        case Q_AUTO_DELETE: v = json_boolean(q->auto_delete); break;
        case Q_EXCLUSIVE: v = json_boolean(q->exclusive); break;
        case Q_ARGUMENTS: v = mgmt_table(q->arguments); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_queues(struct listing *l)
{
    introspect_queues(l->req->server, l->req->vhost, queue_row, l);
}

/* ---- exchanges --------------------------------------------------------------------------- */

enum { X_NAME, X_VHOST, X_TYPE, X_DURABLE, X_AUTO_DELETE, X_INTERNAL, X_ARGUMENTS };
static const struct column exchange_columns[] = {{"name", "name"}, {"vhost", "vhost"}, {"type", "type"},
    {"durable", "durable"}, {"auto_delete", "auto_delete"}, {"internal", "internal"},
    {"arguments", "arguments"}, {NULL, NULL}};
static const char *const exchange_defaults[] = {"name", "type", NULL};

static void exchange_row(const struct introspect_exchange *x, void *arg)
{
    struct listing *l = arg;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case X_NAME: v = mgmt_bytes(x->name); break;
        case X_VHOST: v = mgmt_string(x->vhost, strlen(x->vhost)); break;
        case X_TYPE: v = json_string(x->type); break;
        case X_DURABLE: v = json_boolean(x->durable); break;
        case X_AUTO_DELETE: v = json_boolean(x->auto_delete); break;
        case X_INTERNAL: v = json_boolean(x->internal); break;
        case X_ARGUMENTS: v = mgmt_table(x->arguments); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_exchanges(struct listing *l)
{
    introspect_exchanges(l->req->server, l->req->vhost, exchange_row, l);
}

/* ---- bindings ---------------------------------------------------------------------------- */

enum { B_SOURCE, B_SOURCE_KIND, B_DESTINATION, B_DESTINATION_KIND, B_ROUTING_KEY, B_ARGUMENTS, B_VHOST };
static const struct column binding_columns[] = {{"source_name", "source"}, {"source_kind", "=exchange"},
    {"destination_name", "destination"}, {"destination_kind", "destination_type"},
    {"routing_key", "routing_key"}, {"arguments", "arguments"}, {"vhost", "vhost"}, {NULL, NULL}};
static const char *const binding_defaults[] = {"source_name", "source_kind", "destination_name",
    "destination_kind", "routing_key", "arguments", NULL};

static void binding_row(const struct introspect_binding *b, void *arg)
{
    struct listing *l = arg;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case B_SOURCE: v = mgmt_bytes(b->source); break;
        case B_SOURCE_KIND: v = json_string("exchange"); break;
        case B_DESTINATION: v = mgmt_bytes(b->destination); break;
        case B_DESTINATION_KIND: v = json_string(b->destination_kind); break;
        case B_ROUTING_KEY: v = mgmt_bytes(b->routing_key); break;
        case B_ARGUMENTS: v = mgmt_table(b->arguments); break;
        case B_VHOST: v = mgmt_string(b->vhost, strlen(b->vhost)); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_bindings(struct listing *l)
{
    introspect_bindings(l->req->server, l->req->vhost, binding_row, l);
}

/* ---- connections ------------------------------------------------------------------------- */

enum { C_NAME, C_PID, C_USER, C_VHOST, C_PEER_HOST, C_PEER_PORT, C_STATE, C_CHANNELS, C_FRAME_MAX,
       C_CHANNEL_MAX, C_TIMEOUT, C_PRODUCT };
static const struct column connection_columns[] = {{"name", "name"}, {"pid", "name"}, {"user", "user"},
    {"vhost", "vhost"}, {"peer_host", "peer_host"}, {"peer_port", "peer_port"}, {"state", "state"},
    {"channels", "channels"}, {"frame_max", "frame_max"}, {"channel_max", "channel_max"},
    {"timeout", "timeout"}, {"client_product", "client_properties.product"}, {NULL, NULL}};
static const char *const connection_defaults[] = {"user", "peer_host", "peer_port", "state", NULL};

static void connection_row(const struct introspect_connection *c, void *arg)
{
    struct listing *l = arg;
    bool running = c->state && strcmp(c->state, "running") == 0;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case C_NAME:
        case C_PID: v = mgmt_string(c->name, strlen(c->name)); break;
        case C_USER: v = mgmt_string(c->user, strlen(c->user)); break;
        case C_VHOST: v = mgmt_string(c->vhost, strlen(c->vhost)); break;
        case C_PEER_HOST: v = json_string(c->peer_host); break;
        case C_PEER_PORT: v = uint_json(c->peer_port); break;
        /* RabbitMQ shows a running connection held by a resource alarm as "blocked". */
        case C_STATE: v = json_string(running && c->blocked ? "blocked" : c->state); break;
        case C_CHANNELS: v = uint_json(c->channels); break;
        case C_FRAME_MAX: v = uint_json(c->frame_max); break;
        case C_CHANNEL_MAX: v = uint_json(c->channel_max); break;
        case C_TIMEOUT: v = uint_json(c->heartbeat); break;
        case C_PRODUCT: v = mgmt_string(c->client_product, strlen(c->client_product)); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_connections(struct listing *l)
{
    introspect_connections(l->req->server, connection_row, l);
}

/* ---- channels ---------------------------------------------------------------------------- */

enum { H_PID, H_NAME, H_CONNECTION, H_NUMBER, H_USER, H_VHOST, H_CONSUMERS, H_UNACKED, H_PREFETCH,
       H_GLOBAL_PREFETCH, H_CONFIRM, H_TRANSACTIONAL };
static const struct column channel_columns[] = {{"pid", "name"}, {"name", "name"},
    {"connection", "connection_details.name"}, {"number", "number"}, {"user", "user"}, {"vhost", "vhost"},
    {"consumer_count", "consumer_count"}, {"messages_unacknowledged", "messages_unacknowledged"},
    {"prefetch_count", "prefetch_count"}, {"global_prefetch_count", "global_prefetch_count"},
    {"confirm", "confirm"}, {"transactional", "transactional"}, {NULL, NULL}};
static const char *const channel_defaults[] = {"pid", "user", "consumer_count", "messages_unacknowledged",
    NULL};

static void channel_row(const struct introspect_channel *c, void *arg)
{
    struct listing *l = arg;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case H_PID:
        case H_NAME: v = mgmt_string(c->name, strlen(c->name)); break;
        case H_CONNECTION: v = mgmt_string(c->connection, strlen(c->connection)); break;
        case H_NUMBER: v = uint_json(c->number); break;
        case H_USER: v = mgmt_string(c->user, strlen(c->user)); break;
        case H_VHOST: v = mgmt_string(c->vhost, strlen(c->vhost)); break;
        case H_CONSUMERS: v = uint_json(c->consumers); break;
        case H_UNACKED: v = uint_json(c->messages_unacknowledged); break;
        case H_PREFETCH: v = uint_json(c->prefetch_count); break;
        case H_GLOBAL_PREFETCH: v = uint_json(c->global_prefetch_count); break;
        case H_CONFIRM: v = json_boolean(c->confirm); break;
        case H_TRANSACTIONAL: v = json_boolean(c->transactional); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_channels(struct listing *l)
{
    introspect_channels(l->req->server, channel_row, l);
}

/* ---- consumers --------------------------------------------------------------------------- */

enum { K_QUEUE, K_CHANNEL, K_TAG, K_ACK, K_PREFETCH, K_ACTIVE, K_ARGUMENTS, K_EXCLUSIVE, K_VHOST };
static const struct column consumer_columns[] = {{"queue_name", "queue.name"},
    {"channel_pid", "channel_details.name"}, {"consumer_tag", "consumer_tag"}, {"ack_required", "ack_required"},
    {"prefetch_count", "prefetch_count"}, {"active", "active"}, {"arguments", "arguments"},
    {"exclusive", "exclusive"}, {"vhost", "queue.vhost"}, {NULL, NULL}};
static const char *const consumer_defaults[] = {"queue_name", "channel_pid", "consumer_tag", "ack_required",
    "prefetch_count", "active", "arguments", NULL};

static void consumer_row(const struct introspect_consumer *c, void *arg)
{
    struct listing *l = arg;
    json_t *row = json_array();
    for (size_t i = 0; i < l->ncolumns; i++) {
        json_t *v = NULL;
        switch (l->columns[i]) {
        case K_QUEUE: v = mgmt_bytes(c->queue); break;
        case K_CHANNEL: v = mgmt_string(c->channel, strlen(c->channel)); break;
        case K_TAG: v = mgmt_bytes(c->tag); break;
        case K_ACK: v = json_boolean(c->ack_required); break;
        case K_PREFETCH: v = uint_json(c->prefetch_count); break;
        /* Single active consumer is not implemented: every consumer receives. */
        case K_ACTIVE: v = json_true(); break;
        /* The only consumer argument Warren keeps is its priority. */
        case K_ARGUMENTS:
            v = json_object();
            if (c->priority != 0)
                json_object_set_new(v, "x-priority", json_integer(c->priority));
            break;
        case K_EXCLUSIVE: v = json_boolean(c->exclusive); break;
        case K_VHOST: v = mgmt_string(c->vhost, strlen(c->vhost)); break;
        }
        json_array_append_new(row, v ? v : json_null());
    }
    json_array_append_new(l->rows, row);
}

static void list_consumers(struct listing *l)
{
    introspect_consumers(l->req->server, l->req->vhost, consumer_row, l);
}

/* ---- the kinds served by the API alone ------------------------------------------------------ */

/* rabbitmqctl shows tags as a list; the API's are one already. */
static const struct column user_columns[] = {{"user", "name"}, {"tags", "tags"}, {NULL, NULL}};
static const char *const user_defaults[] = {"user", "tags", NULL};
static const struct column vhost_columns[] = {{"name", "name"}, {NULL, NULL}};
static const char *const vhost_defaults[] = {"name", NULL};
static const struct column permission_columns[] = {{"user", "user"}, {"configure", "configure"},
    {"write", "write"}, {"read", "read"}, {"vhost", "vhost"}, {NULL, NULL}};
static const char *const permission_defaults[] = {"user", "configure", "write", "read", NULL};
static const struct column policy_columns[] = {{"vhost", "vhost"}, {"name", "name"}, {"pattern", "pattern"},
    {"apply-to", "apply-to"}, {"definition", "definition"}, {"priority", "priority"}, {NULL, NULL}};
static const char *const policy_defaults[] = {"vhost", "name", "pattern", "apply-to", "definition", "priority",
    NULL};
static const struct column limit_columns[] = {{"vhost", "vhost"}, {"limits", "value"}, {NULL, NULL}};
static const char *const limit_defaults[] = {"vhost", "limits", NULL};

static const struct list_kind kinds[] = {
    {"list_queues", queue_columns, queue_defaults, true, NULL, list_queues},
    {"list_exchanges", exchange_columns, exchange_defaults, true, NULL, list_exchanges},
    {"list_bindings", binding_columns, binding_defaults, true, NULL, list_bindings},
    {"list_connections", connection_columns, connection_defaults, false, NULL, list_connections},
    {"list_channels", channel_columns, channel_defaults, false, NULL, list_channels},
    {"list_consumers", consumer_columns, consumer_defaults, true, NULL, list_consumers},
    {"list_users", user_columns, user_defaults, false, "/api/users", NULL},
    {"list_vhosts", vhost_columns, vhost_defaults, false, "/api/vhosts", NULL},
    {"list_permissions", permission_columns, permission_defaults, true, "/api/vhosts/%s/permissions", NULL},
    {"list_policies", policy_columns, policy_defaults, true, "/api/policies/%s", NULL},
    {"list_operator_policies", policy_columns, policy_defaults, true, "/api/operator-policies/%s", NULL},
    /* list_vhost_limits --global; without it the command is admin_api.c's. */
    {"list_vhost_limits", limit_columns, limit_defaults, false, "/api/vhost-limits", NULL},
};

/* obj's member at a dotted path ("queue.name"), or NULL. */
static json_t *member(json_t *obj, const char *path)
{
    char part[128];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof part)
            return NULL;
        memcpy(part, path, len);
        part[len] = '\0';
        obj = json_object_get(obj, part);
        path += len + (dot ? 1 : 0);
    }
    return obj;
}

/* Fills l->rows from the kind's API list; NULL, or the error answer. */
static json_t *api_rows(const struct list_kind *kind, struct listing *l)
{
    char path[2048];
    if (admin_api_path(path, sizeof path, kind->api, l->req->vhost) != 0)
        return admin_error("invalid", "the vhost name is too long");
    json_t *reply;
    unsigned status = admin_api_call(l->req, "GET", path, NULL, &reply);
    if (status != 200 || !json_is_array(reply)) {
        json_t *fail = admin_api_failed(status == 200 ? 500 : status, reply);
        json_decref(reply);
        return fail;
    }
    size_t i;
    json_t *item;
    json_array_foreach(reply, i, item) {
        json_t *row = json_array();
        for (size_t c = 0; c < l->ncolumns; c++) {
            const char *key = kind->columns[l->columns[c]].key;
            json_t *v = key[0] == '=' ? json_string(key + 1) : json_incref(member(item, key));
            json_array_append_new(row, v ? v : json_null());
        }
        json_array_append_new(l->rows, row);
    }
    json_decref(reply);
    return NULL;
}

static int column_id(const struct column *columns, const char *name, size_t len)
{
    for (int i = 0; columns[i].name; i++)
        if (strlen(columns[i].name) == len && memcmp(columns[i].name, name, len) == 0)
            return i;
    return -1;
}

json_t *admin_list(const struct admin_request *req)
{
    const struct list_kind *kind = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].command, req->command) == 0)
            kind = &kinds[i];
    if (!kind)
        return NULL;
    struct listing l = {.req = req};
    if (req->nargs > MAX_COLUMNS)
        return admin_error("usage", "too many columns (at most %d)", MAX_COLUMNS);
    for (size_t i = 0; i < req->nargs; i++) {
        int id = column_id(kind->columns, req->args[i].s, req->args[i].len);
        if (id < 0)
            return admin_error("usage", "Info key(s) %s not supported by %s", req->args[i].s, req->command);
        l.columns[l.ncolumns++] = id;
    }
    for (size_t i = 0; req->nargs == 0 && kind->defaults[i]; i++)
        l.columns[l.ncolumns++] = column_id(kind->columns, kind->defaults[i], strlen(kind->defaults[i]));
    /* Looked up first: the API answers 404 alike for a missing vhost and a missing route. */
    if (kind->vhost_scoped && !admin_api_vhost_exists(req, req->vhost))
        return admin_error("no_such_vhost", "Virtual host \"%s\" does not exist", req->vhost);
    json_t *columns = json_array();
    for (size_t i = 0; i < l.ncolumns; i++)
        json_array_append_new(columns, json_string(kind->columns[l.columns[i]].name));
    l.rows = json_array();
    if (kind->api) {
        json_t *fail = api_rows(kind, &l);
        if (fail) {
            json_decref(columns);
            json_decref(l.rows);
            return fail;
        }
    } else {
        kind->run(&l);
    }
    return json_pack("{s:b,s:o,s:o}", "ok", 1, "columns", columns, "rows", l.rows);
}
