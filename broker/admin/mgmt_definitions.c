/* broker/admin/mgmt_definitions.c: /api/definitions and /api/definitions/VHOST, RabbitMQ's
 * definitions format (what `rabbitmqctl export_definitions` writes). Neither direction touches
 * the model: an export is a set of GETs of the API's lists reshaped to the format, an import is
 * a sequence of the API's own PUT/POST calls (mgmt_run), so its validation and effects are
 * exactly the API's. What Warren cannot hold is found before anything changes and reported
 * (docs/management.md, "Definitions"). This file: the routes, the calls, and the export; the
 * import is mgmt_definitions_import.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mgmt.h"
#include "mgmt_definitions.h"
#include "mgmt_internal.h"


/* ---- calling the API ---------------------------------------------------------------------- */

void path_lit(struct path *p, const char *lit)
{
    size_t n = strlen(lit);
    if (p->len + n >= sizeof p->s) {
        p->overflow = true;
        return;
    }
    memcpy(p->s + p->len, lit, n + 1);
    p->len += n;
}

/* Appends "/" and the name (len bytes, any bytes) percent-encoded. */
void path_seg(struct path *p, const char *name, size_t len)
{
    path_lit(p, "/");
    int n = p->overflow ? -1 : mgmt_path_encode(name, len, p->s + p->len, sizeof p->s - p->len);
    if (n < 0)
        p->overflow = true;
    else
        p->len += (size_t)n;
}

void path_json(struct path *p, const json_t *name)
{
    path_seg(p, json_string_value(name), json_string_length(name));
}

/* Runs one API call as the operator; returns the status and the reply (caller owns it). */
unsigned definitions_api(struct mgmt_call *call, const char *method, const struct path *p, json_t *body, json_t **reply)
{
    *reply = NULL;
    if (p->overflow)
        return 414;
    return mgmt_run(call->mgmt, method, p->s, body, reply);
}

/* GET of a list; a resource this build does not serve (404) is an empty list. NULL on failure. */
json_t *definitions_api_list(struct mgmt_call *call, const struct path *p)
{
    json_t *reply;
    unsigned status = definitions_api(call, "GET", p, NULL, &reply);
    if (status == 404) {
        json_decref(reply);
        return json_array();
    }
    if (status != 200 || !json_is_array(reply)) {
        log_warning("management: definitions: GET %s answered %u", p->s, status);
        json_decref(reply);
        return NULL;
    }
    return reply;
}

bool definitions_api_exists(struct mgmt_call *call, const struct path *p)
{
    json_t *reply;
    unsigned status = definitions_api(call, "GET", p, NULL, &reply);
    json_decref(reply);
    return status == 200;
}

/* ---- export ------------------------------------------------------------------------------- */

/* A copy of item with only the listed keys (those it has), minus "vhost" when strip_vhost. */
json_t *definitions_pick(const json_t *item, const char *const *keys, bool strip_vhost)
{
    json_t *o = json_object();
    for (; *keys; keys++) {
        json_t *v = json_object_get(item, *keys);
        if (v && !(strip_vhost && strcmp(*keys, "vhost") == 0))
            json_object_set(o, *keys, v);
    }
    return o;
}

bool definitions_has_prefix(const json_t *s, const char *prefix)
{
    return json_is_string(s) && strncmp(json_string_value(s), prefix, strlen(prefix)) == 0;
}

/* The list at /api/<what>[/<vhost>], NULL on failure. */
static json_t *list_of(struct mgmt_call *call, const char *what, const char *vhost)
{
    struct path p = {0};
    path_lit(&p, "/api/");
    path_lit(&p, what);
    if (vhost)
        path_seg(&p, vhost, strlen(vhost));
    return definitions_api_list(call, &p);
}

static const char *const user_keys[] = {"name", "password_hash", "hashing_algorithm", "tags", "limits", NULL};
static const char *const permission_keys[] = {"user", "vhost", "configure", "write", "read", NULL};
static const char *const topic_permission_keys[] = {"user", "vhost", "exchange", "write", "read", NULL};
static const char *const policy_keys[] = {"vhost", "name", "pattern", "apply-to", "definition", "priority", NULL};
static const char *const queue_keys[] = {"name", "vhost", "type", "durable", "auto_delete", "arguments", NULL};
static const char *const exchange_keys[] = {"name",        "vhost",    "type",      "durable",
                                            "auto_delete", "internal", "arguments", NULL};
static const char *const binding_keys[] = {"source",      "vhost",       "destination", "destination_type",
                                           "routing_key", "arguments",   NULL};

/* Appends each item of list (taken) that keep() accepts, cut to keys. */
static void add_items(json_t *out, json_t *list, const char *const *keys, bool strip_vhost,
                      bool (*keep)(const json_t *item, void *arg), void *arg)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
        if (!keep || keep(item, arg))
            json_array_append_new(out, definitions_pick(item, keys, strip_vhost));
    json_decref(list);
}

/* RabbitMQ leaves out exclusive queues (they cannot be restored). */
static bool keep_queue(const json_t *q, void *arg)
{
    (void)arg;
    return !json_is_true(json_object_get(q, "exclusive"));
}

/* ... and the default exchange and the amq.* ones (every broker has them). */
static bool keep_exchange(const json_t *x, void *arg)
{
    (void)arg;
    const json_t *name = json_object_get(x, "name");
    return json_string_length(name) > 0 && !definitions_has_prefix(name, "amq.");
}

/* ... and bindings from the default exchange and to queues it left out. queues: exported. */
static bool keep_binding(const json_t *b, void *queues)
{
    const json_t *source = json_object_get(b, "source"), *dest = json_object_get(b, "destination");
    if (json_string_length(source) == 0 || !json_is_string(dest))
        return false;
    if (definitions_has_prefix(json_object_get(b, "destination_type"), "exchange"))
        return json_string_length(dest) > 0;
    size_t i;
    json_t *q;
    json_array_foreach((json_t *)queues, i, q)
        if (json_equal(json_object_get(q, "name"), dest) &&
            json_equal(json_object_get(q, "vhost"), json_object_get(b, "vhost")))
            return true;
    return false;
}

/* vhost limits and operator policies, which RabbitMQ keeps as runtime parameters. */
static bool add_parameters(struct mgmt_call *call, json_t *out, const char *vhost)
{
    json_t *limits = list_of(call, "vhost-limits", vhost), *ops = list_of(call, "operator-policies", vhost);
    bool ok = limits && ops;
    size_t i;
    json_t *item;
    json_array_foreach(limits, i, item) {
        json_t *p = json_pack("{s:s,s:s,s:O}", "component", "vhost-limits", "name", "limits", "value",
                              json_object_get(item, "value"));
        if (!vhost && p)
            json_object_set(p, "vhost", json_object_get(item, "vhost"));
        if (p)
            json_array_append_new(out, p);
    }
    static const char *const op_value_keys[] = {"pattern", "definition", "priority", "apply-to", NULL};
    json_array_foreach(ops, i, item) {
        json_t *p = json_pack("{s:s,s:O,s:o}", "component", "operator_policy", "name", json_object_get(item, "name"),
                              "value", definitions_pick(item, op_value_keys, false));
        if (!vhost && p)
            json_object_set(p, "vhost", json_object_get(item, "vhost"));
        if (p)
            json_array_append_new(out, p);
    }
    json_decref(limits);
    json_decref(ops);
    return ok;
}

/* vhosts as rabbitmqctl writes them: name, limits and metadata. */
static bool add_vhosts(struct mgmt_call *call, json_t *out)
{
    json_t *vhosts = list_of(call, "vhosts", NULL);
    if (!vhosts)
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(vhosts, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_t *limits = name ? list_of(call, "vhost-limits", name) : NULL;
        json_t *value = json_object_get(json_array_get(limits, 0), "value");
        json_t *metadata = json_object_get(v, "metadata");
        json_array_append_new(out, json_pack("{s:O,s:o,s:o}", "name", json_object_get(v, "name"), "limits",
                                             value ? json_incref(value) : json_object(), "metadata",
                                             metadata ? json_incref(metadata) : json_object()));
        json_decref(limits);
    }
    json_decref(vhosts);
    return true;
}

static void get_definitions(struct mgmt_call *call, const char *vhost)
{
    json_t *reply;
    struct path p = {0};
    path_lit(&p, "/api/overview");
    definitions_api(call, "GET", &p, NULL, &reply);
    json_t *d = json_object();
    static const char *const version_keys[] = {"rabbit_version", "rabbitmq_version", "product_name", "product_version"};
    static const char *const sources[] = {"rabbitmq_version", "rabbitmq_version", "product_name", "product_version"};
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(reply, sources[i]);
        json_object_set_new(d, version_keys[i], v ? json_incref(v) : json_string(""));
    }
    json_decref(reply);
    bool ok = true, strip = vhost != NULL;
    json_t *l;
    if (!vhost) {
        json_t *users = json_array(), *vhosts = json_array(), *perms = json_array(), *topic = json_array();
        ok = (l = list_of(call, "users", NULL)) != NULL;
        add_items(users, l, user_keys, false, NULL, NULL);
        ok = ok && add_vhosts(call, vhosts);
        ok = ok && (l = list_of(call, "permissions", NULL)) != NULL;
        add_items(perms, ok ? l : NULL, permission_keys, false, NULL, NULL);
        ok = ok && (l = list_of(call, "topic-permissions", NULL)) != NULL;
        add_items(topic, ok ? l : NULL, topic_permission_keys, false, NULL, NULL);
        json_object_set_new(d, "users", users);
        json_object_set_new(d, "vhosts", vhosts);
        json_object_set_new(d, "permissions", perms);
        json_object_set_new(d, "topic_permissions", topic);
    }
    json_t *params = json_array(), *policies = json_array(), *queues = json_array(), *exchanges = json_array(),
           *bindings = json_array(), *all_queues = json_array();
    ok = ok && add_parameters(call, params, vhost);
    json_object_set_new(d, "parameters", params);
    if (!vhost) {
        json_t *globals = json_array();
        p = (struct path){0};
        path_lit(&p, "/api/cluster-name");
        if (definitions_api(call, "GET", &p, NULL, &reply) == 200 && json_is_string(json_object_get(reply, "name")))
            json_array_append_new(globals, json_pack("{s:s,s:O}", "name", "cluster_name", "value",
                                                     json_object_get(reply, "name")));
        json_decref(reply);
        json_object_set_new(d, "global_parameters", globals);
    }
    ok = ok && (l = list_of(call, "policies", vhost)) != NULL;
    add_items(policies, ok ? l : NULL, policy_keys, strip, NULL, NULL);
    json_object_set_new(d, "policies", policies);
    ok = ok && (l = list_of(call, "queues", vhost)) != NULL;
    add_items(all_queues, ok ? l : NULL, queue_keys, false, keep_queue, NULL);
    ok = ok && (l = list_of(call, "exchanges", vhost)) != NULL;
    add_items(exchanges, ok ? l : NULL, exchange_keys, strip, keep_exchange, NULL);
    ok = ok && (l = list_of(call, "bindings", vhost)) != NULL;
    add_items(bindings, ok ? l : NULL, binding_keys, strip, keep_binding, all_queues);
    add_items(queues, json_incref(all_queues), queue_keys, strip, NULL, NULL);
    json_decref(all_queues);
    json_object_set_new(d, "queues", queues);
    json_object_set_new(d, "exchanges", exchanges);
    json_object_set_new(d, "bindings", bindings);
    if (!ok) {
        json_decref(d);
        mgmt_fail(call, 500, "internal_error", "the definitions could not be gathered (see the broker's log)");
        return;
    }
    mgmt_reply(call, 200, d);
}

/* ---- routes ------------------------------------------------------------------------------- */

static void definitions(struct mgmt_call *call)
{
    if (call->method == MGMT_POST)
        definitions_import(call, NULL);
    else
        get_definitions(call, NULL);
}

/* RabbitMQ answers a missing vhost with 400 vhost_not_found on GET and 404 on POST. */
static void vhost_definitions(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    struct path p = {0};
    path_lit(&p, "/api/vhosts");
    path_seg(&p, vhost, strlen(vhost));
    if (!definitions_api_exists(call, &p)) {
        if (call->method == MGMT_POST)
            mgmt_fail(call, 404, "not_found", "vhost_not_found");
        else
            mgmt_fail(call, 400, "bad_request", "vhost_not_found");
        return;
    }
    if (call->method == MGMT_POST)
        definitions_import(call, vhost);
    else
        get_definitions(call, vhost);
}

/* GET parameters[/COMPONENT[/VHOST]]: the runtime parameters Warren has (vhost limits and
 * operator policies), as RabbitMQ's API lists them; rabbitmqadmin list parameters reads it. */
static void parameters(struct mgmt_call *call)
{
    const char *component = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    const char *vhost = call->nseg > 2 ? mgmt_name(call, 2) : NULL;
    if ((call->nseg > 1 && !component) || (call->nseg > 2 && !vhost))
        return;
    json_t *all = json_array(), *out = json_array();
    if (!add_parameters(call, all, vhost)) {
        json_decref(all);
        json_decref(out);
        mgmt_fail(call, 500, "internal_error", "out of memory");
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) {
        if (vhost)
            json_object_set_new(p, "vhost", json_string(vhost));
        if (!component || strcmp(json_string_value(json_object_get(p, "component")), component) == 0)
            json_array_append(out, p);
    }
    json_decref(all);
    mgmt_list(call, out);
}

const struct mgmt_route mgmt_definitions_routes[] = {
    {"parameters", MGMT_GET, MGMT_POLICY, MGMT_POLICY, 0, parameters},
    {"parameters/*", MGMT_GET, MGMT_POLICY, MGMT_POLICY, 0, parameters},
    {"parameters/*/*", MGMT_GET, MGMT_POLICY, MGMT_POLICY, 3, parameters},
    {"definitions", MGMT_GET | MGMT_POST, MGMT_ADMIN, MGMT_ADMIN, 0, definitions},
    {"definitions/*", MGMT_GET | MGMT_POST, MGMT_ADMIN, MGMT_ADMIN, 0, vhost_definitions},
    {NULL, 0, 0, 0, 0, NULL},
};
