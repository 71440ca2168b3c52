/* broker/admin/admin_lists.c: the list_* commands. Each kind of object has a table of the
 * columns it can show (rabbitmqctl's names) with the management API member each one is read
 * from, and rabbitmqctl's default selection; "args" picks columns, an unknown one is a usage
 * error. Every kind is a GET of its management API list with the columns picked from its
 * objects: warrenctl and the HTTP API show the same JSON. Answer:
 * {"ok":true,"columns":[...],"rows":[[...]]}, every row an array of values in column order;
 * AMQP tables (arguments) are JSON objects. */
#include "admin_internal.h"

#include <string.h>

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
    const char *api;               /* the API list ("%s": the vhost) */
};


/* ---- queues ------------------------------------------------------------------------------ */

static const struct column queue_columns[] = {{"name", "name"}, {"vhost", "vhost"}, {"messages", "messages"},
    {"messages_ready", "messages_ready"}, {"messages_unacknowledged", "messages_unacknowledged"},
    {"message_bytes", "message_bytes"}, {"message_bytes_ready", "message_bytes_ready"},
    {"consumers", "consumers"}, {"durable", "durable"}, {"auto_delete", "auto_delete"},
    {"exclusive", "exclusive"}, {"type", "type"}, {"arguments", "arguments"}, {"policy", "policy"},
    {"operator_policy", "operator_policy"}, {"effective_policy_definition", "effective_policy_definition"},
    {"oldest_message_age_ms", "oldest_message_age_ms"}, {"mean_message_age_ms", "mean_message_age_ms"},
    {NULL, NULL}};
static const char *const queue_defaults[] = {"name", "messages", NULL};



/* ---- exchanges --------------------------------------------------------------------------- */

static const struct column exchange_columns[] = {{"name", "name"}, {"vhost", "vhost"}, {"type", "type"},
    {"durable", "durable"}, {"auto_delete", "auto_delete"}, {"internal", "internal"},
    {"arguments", "arguments"}, {NULL, NULL}};
static const char *const exchange_defaults[] = {"name", "type", NULL};



/* ---- bindings ---------------------------------------------------------------------------- */

static const struct column binding_columns[] = {{"source_name", "source"}, {"source_kind", "=exchange"},
    {"destination_name", "destination"}, {"destination_kind", "destination_type"},
    {"routing_key", "routing_key"}, {"arguments", "arguments"}, {"vhost", "vhost"}, {NULL, NULL}};
static const char *const binding_defaults[] = {"source_name", "source_kind", "destination_name",
    "destination_kind", "routing_key", "arguments", NULL};



/* ---- connections ------------------------------------------------------------------------- */

static const struct column connection_columns[] = {{"name", "name"}, {"pid", "name"}, {"user", "user"},
    {"vhost", "vhost"}, {"peer_host", "peer_host"}, {"peer_port", "peer_port"}, {"state", "state"},
    {"channels", "channels"}, {"frame_max", "frame_max"}, {"channel_max", "channel_max"},
    {"timeout", "timeout"}, {"client_product", "client_properties.product"}, {NULL, NULL}};
static const char *const connection_defaults[] = {"user", "peer_host", "peer_port", "state", NULL};



/* ---- channels ---------------------------------------------------------------------------- */

static const struct column channel_columns[] = {{"pid", "name"}, {"name", "name"},
    {"connection", "connection_details.name"}, {"number", "number"}, {"user", "user"}, {"vhost", "vhost"},
    {"consumer_count", "consumer_count"}, {"messages_unacknowledged", "messages_unacknowledged"},
    {"prefetch_count", "prefetch_count"}, {"global_prefetch_count", "global_prefetch_count"},
    {"confirm", "confirm"}, {"transactional", "transactional"}, {NULL, NULL}};
static const char *const channel_defaults[] = {"pid", "user", "consumer_count", "messages_unacknowledged",
    NULL};



/* ---- consumers --------------------------------------------------------------------------- */

static const struct column consumer_columns[] = {{"queue_name", "queue.name"},
    {"channel_pid", "channel_details.name"}, {"consumer_tag", "consumer_tag"}, {"ack_required", "ack_required"},
    {"prefetch_count", "prefetch_count"}, {"active", "active"}, {"arguments", "arguments"},
    {"exclusive", "exclusive"}, {"vhost", "queue.vhost"}, {NULL, NULL}};
static const char *const consumer_defaults[] = {"queue_name", "channel_pid", "consumer_tag", "ack_required",
    "prefetch_count", "active", "arguments", NULL};



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
static const struct column user_limit_columns[] = {{"user", "user"}, {"limits", "value"}, {NULL, NULL}};
static const char *const user_limit_defaults[] = {"user", "limits", NULL};

static const struct list_kind kinds[] = {
    {"list_queues", queue_columns, queue_defaults, true, "/api/queues/%s"},
    {"list_exchanges", exchange_columns, exchange_defaults, true, "/api/exchanges/%s"},
    {"list_bindings", binding_columns, binding_defaults, true, "/api/bindings/%s"},
    {"list_connections", connection_columns, connection_defaults, false, "/api/connections"},
    {"list_channels", channel_columns, channel_defaults, false, "/api/channels"},
    {"list_consumers", consumer_columns, consumer_defaults, true, "/api/consumers/%s"},
    {"list_users", user_columns, user_defaults, false, "/api/users"},
    {"list_vhosts", vhost_columns, vhost_defaults, false, "/api/vhosts"},
    {"list_permissions", permission_columns, permission_defaults, true, "/api/vhosts/%s/permissions"},
    {"list_policies", policy_columns, policy_defaults, true, "/api/policies/%s"},
    {"list_operator_policies", policy_columns, policy_defaults, true, "/api/operator-policies/%s"},
    /* list_vhost_limits --global; without it the command is admin_api.c's. */
    {"list_vhost_limits", limit_columns, limit_defaults, false, "/api/vhost-limits"},
    /* list_user_limits without a user; with one the command is admin_api.c's. */
    {"list_user_limits", user_limit_columns, user_limit_defaults, false, "/api/user-limits"},
};

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
            json_t *v = key[0] == '=' ? json_string(key + 1) : json_incref(mgmt_dotted(item, key));
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
    json_t *fail = api_rows(kind, &l);
    if (fail) {
        json_decref(columns);
        json_decref(l.rows);
        return fail;
    }
    return json_pack("{s:b,s:o,s:o}", "ok", 1, "columns", columns, "rows", l.rows);
}
