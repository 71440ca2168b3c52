/* broker/admin/mgmt_policies.c: /api/policies, /api/operator-policies and /api/vhost-limits.
 * The rules (matching, precedence, validation texts) are the model's (broker/model/policy.h);
 * this file only turns JSON into calls to introspect.h and back. Policymakers manage policies
 * in the vhosts they may see; operator policies and limits are for administrators, as in
 * RabbitMQ. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "introspect.h"
#include "mgmt_internal.h"
#include "table.h"

struct policy_walk {
    struct mgmt_call *call;
    const char *name; /* NULL: every policy */
    json_t *items;
};

static json_t *policy_json(const struct introspect_policy *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "vhost", mgmt_string(p->vhost, strlen(p->vhost)));
    json_object_set_new(o, "name", mgmt_string(p->name, strlen(p->name)));
    json_object_set_new(o, "pattern", mgmt_string(p->pattern, strlen(p->pattern)));
    json_object_set_new(o, "apply-to", json_string(p->apply_to ? p->apply_to : "all"));
    json_object_set_new(o, "definition", mgmt_table(p->definition));
    json_object_set_new(o, "priority", json_integer(p->priority));
    return o;
}

static void add_policy(const struct introspect_policy *p, void *arg)
{
    struct policy_walk *w = arg;
    if (w->name && strcmp(w->name, p->name) != 0)
        return;
    if (!mgmt_vhost_open(w->call, p->vhost))
        return;
    json_array_append_new(w->items, policy_json(p));
}

static bool operator_route(const struct mgmt_call *call)
{
    return call->seg[0].len == strlen("operator-policies");
}

/* GET /api/policies and /api/policies/VHOST. */
static void list_policies(struct mgmt_call *call)
{
    const char *vhost = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    if (call->nseg > 1 && !vhost)
        return;
    struct policy_walk w = {call, NULL, json_array()};
    introspect_policies(call->server, vhost, operator_route(call), add_policy, &w);
    mgmt_list(call, w.items);
}

static void put_policy(struct mgmt_call *call, const char *vhost, const char *name)
{
    json_t *pattern = mgmt_body(call, "pattern"), *definition = mgmt_body(call, "definition");
    json_t *priority = mgmt_body(call, "priority"), *apply_to = mgmt_body(call, "apply-to");
    if (!json_is_string(pattern) || !json_is_object(definition)) {
        mgmt_fail(call, 400, "bad_request", "pattern (a string) and definition (an object) are mandatory");
        return;
    }
    if ((priority && !json_is_integer(priority) && !json_is_null(priority)) ||
        (apply_to && !json_is_string(apply_to) && !json_is_null(apply_to))) {
        mgmt_fail(call, 400, "bad_request", "priority must be an integer and apply-to a string");
        return;
    }
    if (strlen(json_string_value(pattern)) != json_string_length(pattern)) {
        mgmt_fail(call, 400, "bad_request", "the pattern holds a NUL byte");
        return;
    }
    struct table_buf table = {0};
    char why[1024] = "";
    if (mgmt_table_from_json(definition, &table, why, sizeof why) != 0) {
        table_buf_free(&table);
        mgmt_fail(call, 400, "bad_request", "%s", why);
        return;
    }
    bool operator = operator_route(call);
    struct policy_walk w = {call, name, json_array()};
    introspect_policies(call->server, vhost, operator, add_policy, &w);
    bool created = json_array_size(w.items) == 0;
    json_decref(w.items);
    struct introspect_policy p = {
        .vhost = vhost,
        .name = name,
        .pattern = json_string_value(pattern),
        .apply_to = json_is_string(apply_to) ? json_string_value(apply_to) : "all",
        .priority = json_is_integer(priority) ? json_integer_value(priority) : 0,
        .definition = {table.data, (uint32_t)table.len},
    };
    int rc = introspect_set_policy(call->server, operator, &p, why, sizeof why);
    table_buf_free(&table);
    if (rc == -ENOENT)
        mgmt_not_found(call);
    else if (rc == -EINVAL)
        mgmt_fail(call, 400, "bad_request", "%s", why);
    else if (rc != 0)
        mgmt_fail(call, 500, "internal_error", "%s", strerror(-rc));
    else
        mgmt_done(call, created);
}

/* GET, PUT and DELETE /api/policies/VHOST/NAME (and operator-policies). */
static void policy(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1), *name = vhost ? mgmt_name(call, 2) : NULL;
    if (!name)
        return;
    if (call->method == MGMT_PUT) {
        put_policy(call, vhost, name);
        return;
    }
    if (call->method == MGMT_DELETE) {
        if (introspect_clear_policy(call->server, vhost, operator_route(call), name) != 0)
            mgmt_not_found(call);
        else
            mgmt_done(call, false);
        return;
    }
    struct policy_walk w = {call, name, json_array()};
    introspect_policies(call->server, vhost, operator_route(call), add_policy, &w);
    if (json_array_size(w.items) == 0)
        mgmt_not_found(call);
    else
        mgmt_reply(call, 200, json_incref(json_array_get(w.items, 0)));
    json_decref(w.items);
}

/* ---- vhost limits --------------------------------------------------------------------------- */

struct limit_walk {
    struct mgmt_call *call;
    json_t *items;
};

static void add_limits(const struct introspect_vhost_limits *l, void *arg)
{
    struct limit_walk *w = arg;
    if (!mgmt_vhost_open(w->call, l->vhost))
        return;
    json_t *value = json_object();
    if (l->max_connections >= 0)
        json_object_set_new(value, "max-connections", json_integer(l->max_connections));
    if (l->max_queues >= 0)
        json_object_set_new(value, "max-queues", json_integer(l->max_queues));
    json_array_append_new(w->items, json_pack("{s:o,s:o}", "vhost", mgmt_string(l->vhost, strlen(l->vhost)),
                                              "value", value));
}

/* GET /api/vhost-limits and /api/vhost-limits/VHOST: [{"vhost": v, "value": {...}}]. */
static void list_limits(struct mgmt_call *call)
{
    const char *vhost = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    if (call->nseg > 1 && !vhost)
        return;
    struct limit_walk w = {call, json_array()};
    introspect_vhost_limits(call->server, vhost, add_limits, &w);
    mgmt_list(call, w.items);
}

/* PUT {"value": N} and DELETE /api/vhost-limits/VHOST/NAME. */
static void limit(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1), *name = vhost ? mgmt_name(call, 2) : NULL;
    if (!name)
        return;
    char why[256] = "";
    int rc;
    if (call->method == MGMT_DELETE) {
        rc = introspect_clear_vhost_limit(call->server, vhost, name);
    } else {
        json_t *value = mgmt_body(call, "value");
        if (!json_is_integer(value)) {
            mgmt_fail(call, 400, "bad_request", "value must be an integer");
            return;
        }
        rc = introspect_set_vhost_limit(call->server, vhost, name, json_integer_value(value), why, sizeof why);
    }
    if (rc == -ENOENT)
        mgmt_not_found(call);
    else if (rc == -EINVAL)
        mgmt_fail(call, 400, "bad_request", "%s", why[0] ? why : "unknown limit");
    else if (rc != 0)
        mgmt_fail(call, 500, "internal_error", "%s", strerror(-rc));
    else
        mgmt_done(call, false);
}

const struct mgmt_route mgmt_policy_routes[] = {
    /* Any management user lists the policies of its vhosts (RabbitMQ's is_authorized_vhost);
     * one policy is the policymaker's (is_authorized_policies). */
    {"policies", MGMT_GET, MGMT_USER, MGMT_POLICY, 0, list_policies},
    {"policies/*", MGMT_GET, MGMT_USER, MGMT_POLICY, 2, list_policies},
    {"policies/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_POLICY, MGMT_POLICY, 2, policy},
    {"operator-policies", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, list_policies},
    {"operator-policies/*", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 2, list_policies},
    {"operator-policies/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 2, policy},
    {"vhost-limits", MGMT_GET, MGMT_USER, MGMT_ADMIN, 0, list_limits},
    {"vhost-limits/*", MGMT_GET, MGMT_USER, MGMT_ADMIN, 2, list_limits},
    {"vhost-limits/*/*", MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 2, limit},
    {NULL, 0, 0, 0, 0, NULL},
};
