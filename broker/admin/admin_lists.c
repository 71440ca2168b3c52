/* broker/admin/admin_lists.c: the list_* commands. Each kind of object has a table of the
 * columns it can show (RabbitMQ's names) and rabbitmqctl's default selection; "args" picks
 * columns, an unknown one is a usage error. Answer: {"ok":true,"columns":[...],"rows":[[...]]},
 * every row an array of values in column order. AMQP tables (arguments) become JSON objects. */
#include "admin_internal.h"

#include <errno.h>
#include <string.h>

#include "access.h"
#include "introspect.h"
#include "table.h"

#define MAX_COLUMNS 32

struct listing {
    struct json_out *out;
    const struct admin_request *req;
    int columns[MAX_COLUMNS];
    size_t ncolumns;
};

struct list_kind {
    const char *command;
    const char *const *names;  /* every column, NULL-terminated; index = column id */
    const char *const *defaults; /* NULL-terminated */
    bool vhost_scoped;           /* -p VHOST applies (and must exist) */
    void (*run)(struct listing *l);
};

static void bytes(struct json_out *out, struct proto_bytes b)
{
    jw_string(out, (const char *)b.ptr, b.len);
}

/* An AMQP table (or array) as a JSON object (or array). Tables reached here were validated when
 * they entered the broker; a malformed tail is cut off rather than trusted. */
static void table_json(struct json_out *out, struct proto_bytes contents, bool array);

static void value_json(struct json_out *out, const struct table_value *v)
{
    int64_t i;
    switch (v->type) {
    case TABLE_BOOL:
        json_bool(out, v->v.boolean);
        break;
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        json_uint(out, v->v.u64);
        break;
    case TABLE_FLOAT:
        json_double(out, v->v.f32);
        break;
    case TABLE_DOUBLE:
        json_double(out, v->v.f64);
        break;
    case TABLE_DECIMAL: {
        double d = v->v.decimal.value;
        for (unsigned s = 0; s < v->v.decimal.scale; s++)
            d /= 10;
        json_double(out, d);
        break;
    }
    case TABLE_LONGSTR:
    case TABLE_BYTES:
        bytes(out, v->v.bytes);
        break;
    case TABLE_TABLE:
        table_json(out, v->v.bytes, false);
        break;
    case TABLE_ARRAY:
        table_json(out, v->v.bytes, true);
        break;
    default:
        if (table_value_to_int(v, &i))
            json_int(out, i);
        else
            jw_null(out);
    }
}

static void table_json(struct json_out *out, struct proto_bytes contents, bool array)
{
    struct table_iter it;
    struct table_value value;
    struct proto_bytes key;
    table_iter_init(&it, contents);
    if (array) {
        json_begin_array(out);
        while (array_next(&it, &value) == 1)
            value_json(out, &value);
        json_end_array(out);
        return;
    }
    json_begin_object(out);
    while (table_next(&it, &key, &value) == 1) {
        json_key(out, (const char *)key.ptr, key.len);
        value_json(out, &value);
    }
    json_end_object(out);
}

/* ---- queues ------------------------------------------------------------------------------ */

enum { Q_NAME, Q_VHOST, Q_MESSAGES, Q_READY, Q_UNACKED, Q_BYTES, Q_BYTES_READY, Q_CONSUMERS, Q_DURABLE,
       Q_AUTO_DELETE, Q_EXCLUSIVE, Q_ARGUMENTS };
static const char *const queue_columns[] = {"name", "vhost", "messages", "messages_ready",
    "messages_unacknowledged", "message_bytes", "message_bytes_ready", "consumers", "durable", "auto_delete",
    "exclusive", "arguments", NULL};
static const char *const queue_defaults[] = {"name", "messages", NULL};

static void queue_row(const struct introspect_queue *q, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case Q_NAME: bytes(l->out, q->name); break;
        case Q_VHOST: json_stringz(l->out, q->vhost); break;
        case Q_MESSAGES: json_uint(l->out, q->messages_ready + q->messages_unacknowledged); break;
        case Q_READY: json_uint(l->out, q->messages_ready); break;
        case Q_UNACKED: json_uint(l->out, q->messages_unacknowledged); break;
        /* Only the ready messages' bytes are counted by the queue. */
        case Q_BYTES:
        case Q_BYTES_READY: json_uint(l->out, q->message_bytes_ready); break;
        case Q_CONSUMERS: json_uint(l->out, q->consumers); break;
        case Q_DURABLE: json_bool(l->out, q->durable); break;
        case Q_AUTO_DELETE: json_bool(l->out, q->auto_delete); break;
        case Q_EXCLUSIVE: json_bool(l->out, q->exclusive); break;
        case Q_ARGUMENTS: table_json(l->out, q->arguments, false); break;
        }
    json_end_array(l->out);
}

static void list_queues(struct listing *l)
{
    introspect_queues(l->req->server, l->req->vhost, queue_row, l);
}

/* ---- exchanges --------------------------------------------------------------------------- */

enum { X_NAME, X_VHOST, X_TYPE, X_DURABLE, X_AUTO_DELETE, X_INTERNAL, X_ARGUMENTS };
static const char *const exchange_columns[] = {"name", "vhost", "type", "durable", "auto_delete", "internal",
    "arguments", NULL};
static const char *const exchange_defaults[] = {"name", "type", NULL};

static void exchange_row(const struct introspect_exchange *x, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case X_NAME: bytes(l->out, x->name); break;
        case X_VHOST: json_stringz(l->out, x->vhost); break;
        case X_TYPE: json_stringz(l->out, x->type); break;
        case X_DURABLE: json_bool(l->out, x->durable); break;
        case X_AUTO_DELETE: json_bool(l->out, x->auto_delete); break;
        case X_INTERNAL: json_bool(l->out, x->internal); break;
        case X_ARGUMENTS: table_json(l->out, x->arguments, false); break;
        }
    json_end_array(l->out);
}

static void list_exchanges(struct listing *l)
{
    introspect_exchanges(l->req->server, l->req->vhost, exchange_row, l);
}

/* ---- bindings ---------------------------------------------------------------------------- */

enum { B_SOURCE, B_SOURCE_KIND, B_DESTINATION, B_DESTINATION_KIND, B_ROUTING_KEY, B_ARGUMENTS, B_VHOST };
static const char *const binding_columns[] = {"source_name", "source_kind", "destination_name",
    "destination_kind", "routing_key", "arguments", "vhost", NULL};
static const char *const binding_defaults[] = {"source_name", "source_kind", "destination_name",
    "destination_kind", "routing_key", "arguments", NULL};

static void binding_row(const struct introspect_binding *b, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case B_SOURCE: bytes(l->out, b->source); break;
        case B_SOURCE_KIND: json_stringz(l->out, "exchange"); break;
        case B_DESTINATION: bytes(l->out, b->destination); break;
        case B_DESTINATION_KIND: json_stringz(l->out, b->destination_kind); break;
        case B_ROUTING_KEY: bytes(l->out, b->routing_key); break;
        case B_ARGUMENTS: table_json(l->out, b->arguments, false); break;
        case B_VHOST: json_stringz(l->out, b->vhost); break;
        }
    json_end_array(l->out);
}

static void list_bindings(struct listing *l)
{
    introspect_bindings(l->req->server, l->req->vhost, binding_row, l);
}

/* ---- connections ------------------------------------------------------------------------- */

enum { C_NAME, C_PID, C_USER, C_VHOST, C_PEER_HOST, C_PEER_PORT, C_STATE, C_CHANNELS, C_FRAME_MAX,
       C_CHANNEL_MAX, C_TIMEOUT, C_PRODUCT };
static const char *const connection_columns[] = {"name", "pid", "user", "vhost", "peer_host", "peer_port",
    "state", "channels", "frame_max", "channel_max", "timeout", "client_product", NULL};
static const char *const connection_defaults[] = {"user", "peer_host", "peer_port", "state", NULL};

static void connection_row(const struct introspect_connection *c, void *arg)
{
    struct listing *l = arg;
    bool running = c->state && strcmp(c->state, "running") == 0;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case C_NAME:
        case C_PID: json_stringz(l->out, c->name); break;
        case C_USER: json_stringz(l->out, c->user); break;
        case C_VHOST: json_stringz(l->out, c->vhost); break;
        case C_PEER_HOST: json_stringz(l->out, c->peer_host); break;
        case C_PEER_PORT: json_uint(l->out, c->peer_port); break;
        /* RabbitMQ shows a running connection held by a resource alarm as "blocked". */
        case C_STATE: json_stringz(l->out, running && c->blocked ? "blocked" : c->state); break;
        case C_CHANNELS: json_uint(l->out, c->channels); break;
        case C_FRAME_MAX: json_uint(l->out, c->frame_max); break;
        case C_CHANNEL_MAX: json_uint(l->out, c->channel_max); break;
        case C_TIMEOUT: json_uint(l->out, c->heartbeat); break;
        case C_PRODUCT: json_stringz(l->out, c->client_product); break;
        }
    json_end_array(l->out);
}

static void list_connections(struct listing *l)
{
    introspect_connections(l->req->server, connection_row, l);
}

/* ---- channels ---------------------------------------------------------------------------- */

enum { H_PID, H_NAME, H_CONNECTION, H_NUMBER, H_USER, H_VHOST, H_CONSUMERS, H_UNACKED, H_PREFETCH,
       H_GLOBAL_PREFETCH, H_CONFIRM, H_TRANSACTIONAL };
static const char *const channel_columns[] = {"pid", "name", "connection", "number", "user", "vhost",
    "consumer_count", "messages_unacknowledged", "prefetch_count", "global_prefetch_count", "confirm",
    "transactional", NULL};
static const char *const channel_defaults[] = {"pid", "user", "consumer_count", "messages_unacknowledged",
    NULL};

static void channel_row(const struct introspect_channel *c, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case H_PID:
        case H_NAME: json_stringz(l->out, c->name); break;
        case H_CONNECTION: json_stringz(l->out, c->connection); break;
        case H_NUMBER: json_uint(l->out, c->number); break;
        case H_USER: json_stringz(l->out, c->user); break;
        case H_VHOST: json_stringz(l->out, c->vhost); break;
        case H_CONSUMERS: json_uint(l->out, c->consumers); break;
        case H_UNACKED: json_uint(l->out, c->messages_unacknowledged); break;
        case H_PREFETCH: json_uint(l->out, c->prefetch_count); break;
        case H_GLOBAL_PREFETCH: json_uint(l->out, c->global_prefetch_count); break;
        case H_CONFIRM: json_bool(l->out, c->confirm); break;
        case H_TRANSACTIONAL: json_bool(l->out, c->transactional); break;
        }
    json_end_array(l->out);
}

static void list_channels(struct listing *l)
{
    introspect_channels(l->req->server, channel_row, l);
}

/* ---- consumers --------------------------------------------------------------------------- */

enum { K_QUEUE, K_CHANNEL, K_TAG, K_ACK, K_PREFETCH, K_ACTIVE, K_ARGUMENTS, K_EXCLUSIVE, K_VHOST };
static const char *const consumer_columns[] = {"queue_name", "channel_pid", "consumer_tag", "ack_required",
    "prefetch_count", "active", "arguments", "exclusive", "vhost", NULL};
static const char *const consumer_defaults[] = {"queue_name", "channel_pid", "consumer_tag", "ack_required",
    "prefetch_count", "active", "arguments", NULL};

static void consumer_row(const struct introspect_consumer *c, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        switch (l->columns[i]) {
        case K_QUEUE: bytes(l->out, c->queue); break;
        case K_CHANNEL: json_stringz(l->out, c->channel); break;
        case K_TAG: bytes(l->out, c->tag); break;
        case K_ACK: json_bool(l->out, c->ack_required); break;
        case K_PREFETCH: json_uint(l->out, c->prefetch_count); break;
        /* Single active consumer is not implemented: every consumer receives. */
        case K_ACTIVE: json_bool(l->out, true); break;
        /* The only consumer argument Warren keeps is its priority. */
        case K_ARGUMENTS:
            json_begin_object(l->out);
            if (c->priority != 0) {
                json_keyz(l->out, "x-priority");
                json_int(l->out, c->priority);
            }
            json_end_object(l->out);
            break;
        case K_EXCLUSIVE: json_bool(l->out, c->exclusive); break;
        case K_VHOST: json_stringz(l->out, c->vhost); break;
        }
    json_end_array(l->out);
}

static void list_consumers(struct listing *l)
{
    introspect_consumers(l->req->server, l->req->vhost, consumer_row, l);
}

/* ---- users, vhosts, permissions ---------------------------------------------------------- */

static const char *const user_columns[] = {"user", "tags", NULL};

static void user_row(const char *name, const char *tags_csv, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++) {
        if (l->columns[i] == 0) {
            json_stringz(l->out, name);
            continue;
        }
        json_begin_array(l->out);
        for (const char *tag = tags_csv; tag && *tag;) {
            const char *comma = strchr(tag, ',');
            size_t n = comma ? (size_t)(comma - tag) : strlen(tag);
            jw_string(l->out, tag, n);
            tag += n + (comma ? 1 : 0);
        }
        json_end_array(l->out);
    }
    json_end_array(l->out);
}

static void list_users(struct listing *l)
{
    access_for_each_user(introspect_access(l->req->server), user_row, l);
}

static const char *const vhost_columns[] = {"name", NULL};

static void vhost_row(const char *name, void *arg)
{
    struct listing *l = arg;
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        json_stringz(l->out, name);
    json_end_array(l->out);
}

static void list_vhosts(struct listing *l)
{
    access_for_each_vhost(introspect_access(l->req->server), vhost_row, l);
}

enum { P_USER, P_CONFIGURE, P_WRITE, P_READ, P_VHOST };
static const char *const permission_columns[] = {"user", "configure", "write", "read", "vhost", NULL};
static const char *const permission_defaults[] = {"user", "configure", "write", "read", NULL};

static void permission_row(const char *vhost, const char *user, const char *configure, const char *write,
                           const char *read, void *arg)
{
    struct listing *l = arg;
    if (strcmp(vhost, l->req->vhost) != 0)
        return;
    const char *values[] = {user, configure, write, read, vhost};
    json_begin_array(l->out);
    for (size_t i = 0; i < l->ncolumns; i++)
        json_stringz(l->out, values[l->columns[i]]);
    json_end_array(l->out);
}

static void list_permissions(struct listing *l)
{
    access_for_each_permission(introspect_access(l->req->server), permission_row, l);
}

static const struct list_kind kinds[] = {
    {"list_queues", queue_columns, queue_defaults, true, list_queues},
    {"list_exchanges", exchange_columns, exchange_defaults, true, list_exchanges},
    {"list_bindings", binding_columns, binding_defaults, true, list_bindings},
    {"list_connections", connection_columns, connection_defaults, false, list_connections},
    {"list_channels", channel_columns, channel_defaults, false, list_channels},
    {"list_consumers", consumer_columns, consumer_defaults, true, list_consumers},
    {"list_users", user_columns, user_columns, false, list_users},
    {"list_vhosts", vhost_columns, vhost_columns, false, list_vhosts},
    {"list_permissions", permission_columns, permission_defaults, true, list_permissions},
};

static int column_id(const char *const *names, const char *name, size_t len)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

bool admin_list(const struct admin_request *req, const char *command, struct json_out *out)
{
    const struct list_kind *kind = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].command, command) == 0)
            kind = &kinds[i];
    if (!kind)
        return false;
    struct listing l = {.out = out, .req = req};
    if (req->nargs > MAX_COLUMNS) {
        admin_error(out, "usage", "too many columns (at most %d)", MAX_COLUMNS);
        return true;
    }
    for (size_t i = 0; i < req->nargs; i++) {
        int id = column_id(kind->names, req->args[i].s, req->args[i].len);
        if (id < 0) {
            admin_error(out, "usage", "Info key(s) %s not supported by %s", req->args[i].s, command);
            return true;
        }
        l.columns[l.ncolumns++] = id;
    }
    for (size_t i = 0; req->nargs == 0 && kind->defaults[i]; i++)
        l.columns[l.ncolumns++] = column_id(kind->names, kind->defaults[i], strlen(kind->defaults[i]));
    if (kind->vhost_scoped && !access_vhost_exists(introspect_access(req->server), req->vhost)) {
        admin_error(out, "no_such_vhost", "Virtual host \"%s\" does not exist", req->vhost);
        return true;
    }
    json_begin_object(out);
    json_keyz(out, "ok");
    json_bool(out, true);
    json_keyz(out, "columns");
    json_begin_array(out);
    for (size_t i = 0; i < l.ncolumns; i++)
        json_stringz(out, kind->names[l.columns[i]]);
    json_end_array(out);
    json_keyz(out, "rows");
    json_begin_array(out);
    kind->run(&l);
    json_end_array(out);
    json_end_object(out);
    return true;
}
