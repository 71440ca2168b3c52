/* broker/admin/mgmt_definitions_import.c: POST /api/definitions (and /api/definitions/VHOST):
 * the whole file is checked first (shape, types, sizes, references, and what Warren lacks,
 * which is reported), changing nothing; then it is applied as a sequence of the API's own calls
 * in RabbitMQ 3.10's order, so its validation and effects are exactly the API's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mgmt.h"
#include "mgmt_definitions.h"
#include "mgmt_internal.h"

#define MAX_NAME 255          /* AMQP short strings; also keeps every path well inside mgmt_run's */
#define MAX_ITEMS 1000000     /* objects in one import, all categories together */
#define MAX_VALUE_DEPTH 32    /* nesting of arguments, definitions and parameter values */
#define HASH_ALGORITHM "rabbit_password_hashing_sha256"

/* ---- import: the plan --------------------------------------------------------------------- */

struct import {
    struct mgmt_call *call;
    const char *vhost; /* definitions/VHOST: every object goes there; NULL: the whole broker */
    json_t *vhost_json; /* the same as a JSON string */
    const struct category *category; /* the one being checked, for report() */
    bool skip_unsupported;
    json_t *report;    /* what is not imported: [{category, item, reason}] */
    json_t *skip;      /* items not imported at all, keyed by their address */
    json_t *exchanges; /* "vhost\0name" of the file's exchanges, queues, vhosts, users */
    json_t *queues;
    json_t *vhosts;
    json_t *users;
    json_t *skipped_users; /* users, exchanges and queues not imported at all, by "vhost\0name" */
    json_t *skipped_exchanges;
    json_t *skipped_queues;
    json_t *exchange_types; /* the names the API knows */
    size_t items;
    char error[768];
};

enum kind { NAME, STRING, BOOL, INTEGER, OBJECT, TABLE, TAGS, ANY, VHOST };

struct field {
    const char *key;
    enum kind kind;
    bool required;
};

struct category {
    const char *name;   /* the key in the file */
    const char *what;   /* one item, for messages */
    bool per_vhost;     /* imported by definitions/VHOST */
    const struct field *fields;
    const char *const *id_keys; /* what names an item in a report */
    int (*check)(struct import *imp, json_t *item); /* 0, or -1 with imp->error: malformed */
    int (*apply)(struct import *imp, json_t *item);
};

static int fail(struct import *imp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct import *imp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(imp->error, sizeof imp->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* The item's vhost: the path's for definitions/VHOST, else its "vhost" member. */
static json_t *vhost_of(struct import *imp, json_t *item)
{
    return imp->vhost ? imp->vhost_json : json_object_get(item, "vhost");
}

/* "vhost\0name" as a key for the sets. */
static void key_set(json_t *set, const json_t *vhost, const json_t *name)
{
    char key[2 * MAX_NAME + 2];
    size_t vl = vhost ? json_string_length(vhost) : 0, nl = json_string_length(name);
    if (vl > MAX_NAME || nl > MAX_NAME)
        return;
    memcpy(key, vhost ? json_string_value(vhost) : "", vl);
    key[vl] = '\0';
    memcpy(key + vl + 1, json_string_value(name), nl);
    json_object_setn_new(set, key, vl + 1 + nl, json_true());
}

static bool key_has(const json_t *set, const json_t *vhost, const json_t *name)
{
    char key[2 * MAX_NAME + 2];
    size_t vl = vhost ? json_string_length(vhost) : 0, nl = json_string_length(name);
    if (vl > MAX_NAME || nl > MAX_NAME)
        return false;
    memcpy(key, vhost ? json_string_value(vhost) : "", vl);
    key[vl] = '\0';
    memcpy(key + vl + 1, json_string_value(name), nl);
    return json_object_getn(set, key, vl + 1 + nl) != NULL;
}

static void mark_skipped(struct import *imp, const json_t *item)
{
    char key[32];
    snprintf(key, sizeof key, "%p", (const void *)item);
    json_object_set_new(imp->skip, key, json_true());
}

static bool is_skipped(const struct import *imp, const json_t *item)
{
    char key[32];
    snprintf(key, sizeof key, "%p", (const void *)item);
    return json_object_get(imp->skip, key) != NULL;
}

/* Reports that item (or, with whole false, a part of it) is not imported. */
static void report(struct import *imp, json_t *item, bool whole, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(struct import *imp, json_t *item, bool whole, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const struct category *c = imp->category;
    json_t *id = definitions_pick(item, c->id_keys, false);
    if (imp->vhost && c->per_vhost)
        json_object_set(id, "vhost", imp->vhost_json);
    json_array_append_new(imp->report, json_pack("{s:s,s:o,s:s}", "category", c->name, "item", id, "reason", reason));
    if (whole)
        mark_skipped(imp, item);
}

static int depth_of(const json_t *v)
{
    int deepest = 0;
    const char *k;
    size_t i;
    json_t *m;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, k, m) {
            int d = depth_of(m);
            if (d > deepest)
                deepest = d;
            if (deepest > MAX_VALUE_DEPTH)
                break;
        }
    else if (json_is_array(v))
        json_array_foreach(v, i, m) {
            int d = depth_of(m);
            if (d > deepest)
                deepest = d;
            if (deepest > MAX_VALUE_DEPTH)
                break;
        }
    else
        return 0;
    return deepest + 1;
}

static const char *kind_text(enum kind k)
{
    switch (k) {
    case NAME:
    case VHOST:
        return "a string of at most 255 bytes";
    case STRING:
        return "a string";
    case BOOL:
        return "true or false";
    case INTEGER:
        return "an integer";
    case OBJECT:
        return "an object";
    case TABLE:
        return "an object (or an empty list)";
    case TAGS:
        return "a string or a list of strings";
    default:
        return "a value";
    }
}

static bool field_ok(enum kind kind, const json_t *v)
{
    switch (kind) {
    case NAME:
    case VHOST:
        return json_is_string(v) && json_string_length(v) <= MAX_NAME;
    case STRING:
        return json_is_string(v);
    case BOOL:
        return json_is_boolean(v);
    case INTEGER:
        return json_is_integer(v);
    case OBJECT:
        return json_is_object(v) && depth_of(v) <= MAX_VALUE_DEPTH;
    case TABLE:
        return (json_is_object(v) && depth_of(v) <= MAX_VALUE_DEPTH) || (json_is_array(v) && json_array_size(v) == 0);
    case TAGS: {
        if (json_is_string(v))
            return true;
        if (!json_is_array(v))
            return false;
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t)
            if (!json_is_string(t))
                return false;
        return true;
    }
    case ANY:
        return depth_of(v) <= MAX_VALUE_DEPTH;
    }
    return false;
}

/* The file's shape: each field of each item has its type. Nothing is changed before this. */
static int check_fields(struct import *imp, const struct category *c, size_t index, json_t *item)
{
    if (!json_is_object(item))
        return fail(imp, "%s[%zu] is not an object", c->name, index);
    for (const struct field *f = c->fields; f->key; f++) {
        json_t *v = json_object_get(item, f->key);
        if (f->kind == VHOST && imp->vhost)
            continue; /* definitions/VHOST puts every object in the path's vhost */
        if (!v || json_is_null(v)) {
            if (f->required)
                return fail(imp, "%s[%zu]: \"%s\" is missing", c->name, index, f->key);
            continue;
        }
        if (!field_ok(f->kind, v))
            return fail(imp, "%s[%zu]: \"%s\" must be %s%s", c->name, index, f->key, kind_text(f->kind),
                        f->kind == OBJECT || f->kind == TABLE || f->kind == ANY ? " nested at most 32 deep" : "");
    }
    return 0;
}

/* ---- import: what Warren lacks (reported before anything changes) -------------------------- */

static bool nonempty(const json_t *v)
{
    return (json_is_string(v) && json_string_length(v) > 0) || (json_is_array(v) && json_array_size(v) > 0) ||
           (json_is_object(v) && json_object_size(v) > 0) || json_is_true(v) || json_is_number(v);
}

static int check_user(struct import *imp, json_t *u)
{
    json_t *name = json_object_get(u, "name");
    key_set(imp->users, NULL, name);
    const char *algorithm = json_string_value(json_object_get(u, "hashing_algorithm"));
    if (algorithm && strcmp(algorithm, HASH_ALGORITHM) != 0 && json_object_get(u, "password_hash")) {
        key_set(imp->skipped_users, NULL, name);
        report(imp, u, true, "password hashes of %s cannot be checked by Warren, which keeps %s hashes",
               algorithm, HASH_ALGORITHM);
    }
    return 0;
}

static int check_vhost(struct import *imp, json_t *v)
{
    json_t *name = json_object_get(v, "name"), *meta = json_object_get(v, "metadata");
    key_set(imp->vhosts, NULL, name);
    json_t *description = json_object_get(v, "description");
    if (!description)
        description = json_object_get(meta, "description");
    json_t *tags = json_object_get(v, "tags");
    if (!tags)
        tags = json_object_get(meta, "tags");
    json_t *dqt = json_object_get(v, "default_queue_type");
    if (!dqt)
        dqt = json_object_get(meta, "default_queue_type");
    char parts[128] = "";
    /* RabbitMQ describes its own "/" so: not something its user wrote */
    bool stock = strcmp(json_string_value(name), "/") == 0 && json_is_string(description) &&
                 strcmp(json_string_value(description), "Default virtual host") == 0;
    if (nonempty(description) && !stock)
        strcat(parts, ", description");
    if (nonempty(tags))
        strcat(parts, ", tags");
    if (json_is_string(dqt) && strcmp(json_string_value(dqt), "classic") != 0 &&
        strcmp(json_string_value(dqt), "undefined") != 0)
        strcat(parts, ", default_queue_type");
    if (json_is_true(json_object_get(v, "tracing")))
        strcat(parts, ", tracing");
    if (parts[0])
        report(imp, v, false, "virtual host %s not supported: imported without them", parts + 2);
    return 0;
}

static int check_permission(struct import *imp, json_t *p)
{
    if (key_has(imp->skipped_users, NULL, json_object_get(p, "user")))
        report(imp, p, true, "its user is not imported");
    return 0;
}

static int check_topic_permission(struct import *imp, json_t *p)
{
    report(imp, p, true, "topic permissions are not supported by Warren");
    return 0;
}

static int check_global_parameter(struct import *imp, json_t *g)
{
    const char *name = json_string_value(json_object_get(g, "name"));
    if (strcmp(name, "cluster_name") != 0 && strncmp(name, "internal", 8) != 0)
        report(imp, g, true, "global parameter '%s' is not supported by Warren", name);
    return 0;
}

static int check_parameter(struct import *imp, json_t *p)
{
    const char *component = json_string_value(json_object_get(p, "component"));
    if (strcmp(component, "vhost-limits") == 0 || strcmp(component, "operator_policy") == 0) {
        json_t *value = json_object_get(p, "value");
        if (!json_is_object(value) && !json_is_array(value))
            return fail(imp, "parameters: the value of %s parameter '%s' must be an object", component,
                        json_string_value(json_object_get(p, "name")));
        return 0;
    }
    report(imp, p, true,
           "runtime parameters of component '%s' (a RabbitMQ plugin's: shovel, federation...) are not supported by Warren",
           component);
    return 0;
}

static bool known_exchange_type(const struct import *imp, const char *type)
{
    size_t i;
    json_t *t;
    json_array_foreach(imp->exchange_types, i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name && strcmp(name, type) == 0)
            return true;
    }
    return false;
}

static int check_exchange(struct import *imp, json_t *x)
{
    const char *type = json_string_value(json_object_get(x, "type"));
    json_t *vhost = vhost_of(imp, x), *name = json_object_get(x, "name");
    if (!known_exchange_type(imp, type)) {
        key_set(imp->skipped_exchanges, vhost, name);
        report(imp, x, true, "exchange type '%s' is not supported by Warren", type);
    } else {
        key_set(imp->exchanges, vhost, name);
    }
    return 0;
}

static int check_queue(struct import *imp, json_t *q)
{
    const char *type = json_string_value(json_object_get(json_object_get(q, "arguments"), "x-queue-type"));
    if (!type)
        type = json_string_value(json_object_get(q, "type"));
    json_t *vhost = vhost_of(imp, q), *name = json_object_get(q, "name");
    if (type && strcmp(type, "classic") != 0 && strcmp(type, "quorum") != 0) {
        key_set(imp->skipped_queues, vhost, name);
        report(imp, q, true, "%s queues are not supported by Warren (classic and quorum queues only)", type);
    } else if (!definitions_has_prefix(name, "amq.")) {
        key_set(imp->queues, vhost, name);
    }
    return 0;
}

/* Is the exchange or queue in the file or already on the broker? */
static bool resolvable(struct import *imp, json_t *vhost, json_t *name, bool queue)
{
    if (key_has(queue ? imp->queues : imp->exchanges, vhost, name) || (!queue && definitions_has_prefix(name, "amq.")))
        return true;
    struct path p = {0};
    path_lit(&p, queue ? "/api/queues" : "/api/exchanges");
    path_json(&p, vhost);
    path_json(&p, name);
    return definitions_api_exists(imp->call, &p);
}

/* A binding needs both ends: imported now, or already there. */
static int check_binding(struct import *imp, json_t *b)
{
    json_t *vhost = vhost_of(imp, b), *source = json_object_get(b, "source"), *dest = json_object_get(b, "destination");
    const char *type = json_string_value(json_object_get(b, "destination_type"));
    bool to_queue = strcmp(type, "queue") == 0;
    if (!to_queue && strcmp(type, "exchange") != 0)
        return fail(imp, "bindings: destination_type must be \"queue\" or \"exchange\", not \"%s\"", type);
    if (json_string_length(source) == 0)
        return 0; /* the default exchange's bindings are implicit: skipped when applied, as RabbitMQ */
    if (key_has(imp->skipped_exchanges, vhost, source))
        report(imp, b, true, "its source exchange '%s' is not imported", json_string_value(source));
    else if (key_has(to_queue ? imp->skipped_queues : imp->skipped_exchanges, vhost, dest))
        report(imp, b, true, "its destination %s '%s' is not imported", type, json_string_value(dest));
    else if (!resolvable(imp, vhost, source, false))
        report(imp, b, true, "its source exchange '%s' is neither in the definitions nor on the broker",
               json_string_value(source));
    else if (!resolvable(imp, vhost, dest, to_queue))
        report(imp, b, true,
               "its destination %s '%s' is neither in the definitions nor on the broker (RabbitMQ 3.10's "
               "export leaves internal exchanges out)",
               type, json_string_value(dest));
    return 0;
}

/* ---- import: applying (one API call per object, RabbitMQ's rules for what is skipped) ------ */

/* Runs the call; false after setting the error with the API's reason. */
static int run(struct import *imp, const char *method, const struct path *p, json_t *body, const char *what,
               const char *name)
{
    json_t *reply;
    unsigned status = definitions_api(imp->call, method, p, body, &reply);
    json_decref(body);
    if (status < 400) {
        json_decref(reply);
        return 0;
    }
    const char *reason = json_string_value(json_object_get(reply, "reason"));
    fail(imp, "%s '%s' was not imported: %s (HTTP %u from %s %s)", what, name, reason ? reason : "refused", status,
         method, p->s);
    json_decref(reply);
    return -1;
}

/* body[key] = item[key] for each key the item has. */
static json_t *copy_keys(const json_t *item, const char *const *keys)
{
    return definitions_pick(item, keys, false);
}

static const char *str(const json_t *item, const char *key)
{
    const char *s = json_string_value(json_object_get(item, key));
    return s ? s : "";
}

static int apply_user(struct import *imp, json_t *u)
{
    static const char *const keys[] = {"password_hash", "hashing_algorithm", "tags", NULL};
    struct path p = {0};
    path_lit(&p, "/api/users");
    path_json(&p, json_object_get(u, "name"));
    int rc = run(imp, "PUT", &p, copy_keys(u, keys), "user", str(u, "name"));
    /* RabbitMQ 3.10 keeps a user's limits in users[].limits: one PUT per limit, as
     * set_user_limits does (an unknown limit or a value that is not an integer fails the
     * import with the API's reason). */
    const char *limit;
    json_t *value;
    json_object_foreach(json_object_get(u, "limits"), limit, value) {
        if (rc != 0)
            break;
        p = (struct path){0};
        path_lit(&p, "/api/user-limits");
        path_json(&p, json_object_get(u, "name"));
        path_seg(&p, limit, strlen(limit));
        rc = run(imp, "PUT", &p, json_pack("{s:O}", "value", value), "user limit", limit);
    }
    return rc;
}

static int apply_vhost(struct import *imp, json_t *v)
{
    struct path p = {0};
    path_lit(&p, "/api/vhosts");
    path_json(&p, json_object_get(v, "name"));
    return run(imp, "PUT", &p, json_object(), "virtual host", str(v, "name"));
}

static int apply_permission(struct import *imp, json_t *perm)
{
    static const char *const keys[] = {"configure", "write", "read", NULL};
    struct path p = {0};
    path_lit(&p, "/api/permissions");
    path_json(&p, vhost_of(imp, perm));
    path_json(&p, json_object_get(perm, "user"));
    return run(imp, "PUT", &p, copy_keys(perm, keys), "permission of user", str(perm, "user"));
}

static int apply_topic_permission(struct import *imp, json_t *perm)
{
    static const char *const keys[] = {"exchange", "write", "read", NULL};
    struct path p = {0};
    path_lit(&p, "/api/topic-permissions");
    path_json(&p, vhost_of(imp, perm));
    path_json(&p, json_object_get(perm, "user"));
    return run(imp, "PUT", &p, copy_keys(perm, keys), "topic permission of user", str(perm, "user"));
}

static int apply_exchange(struct import *imp, json_t *x)
{
    static const char *const keys[] = {"type", "durable", "auto_delete", "internal", "arguments", NULL};
    json_t *name = json_object_get(x, "name");
    if (json_string_length(name) == 0 || definitions_has_prefix(name, "amq.")) {
        log_warning("management: definitions: exchange '%s' not imported: the default and amq.* exchanges are the broker's",
                    json_string_value(name));
        return 0;
    }
    struct path p = {0};
    path_lit(&p, "/api/exchanges");
    path_json(&p, vhost_of(imp, x));
    path_json(&p, name);
    if (definitions_api_exists(imp->call, &p))
        return 0; /* RabbitMQ keeps an existing exchange as it is */
    return run(imp, "PUT", &p, copy_keys(x, keys), "exchange", json_string_value(name));
}

static int apply_global_parameter(struct import *imp, json_t *g)
{
    const char *name = str(g, "name");
    if (strncmp(name, "internal", 8) == 0) {
        log_info("management: definitions: RabbitMQ's internal global parameter '%s' ignored", name);
        return 0;
    }
    struct path p = {0};
    path_lit(&p, "/api/cluster-name");
    return run(imp, "PUT", &p, json_pack("{s:O}", "name", json_object_get(g, "value")), "global parameter", name);
}

static int apply_policy(struct import *imp, json_t *pol)
{
    static const char *const keys[] = {"pattern", "definition", "priority", "apply-to", NULL};
    struct path p = {0};
    path_lit(&p, "/api/policies");
    path_json(&p, vhost_of(imp, pol));
    path_json(&p, json_object_get(pol, "name"));
    return run(imp, "PUT", &p, copy_keys(pol, keys), "policy", str(pol, "name"));
}

/* RabbitMQ 3.10 writes an operator policy's definition as a list of [key, value] pairs. */
static json_t *as_object(json_t *v)
{
    if (!json_is_array(v))
        return json_incref(v);
    json_t *o = json_object();
    size_t i;
    json_t *pair;
    json_array_foreach(v, i, pair)
        if (json_array_size(pair) == 2 && json_is_string(json_array_get(pair, 0)))
            json_object_set(o, json_string_value(json_array_get(pair, 0)), json_array_get(pair, 1));
    return o;
}

static int apply_parameter(struct import *imp, json_t *param)
{
    const char *component = str(param, "component");
    json_t *value = as_object(json_object_get(param, "value"));
    int rc = 0;
    struct path p = {0};
    if (strcmp(component, "vhost-limits") == 0) {
        const char *limit;
        json_t *v;
        json_object_foreach(value, limit, v) {
            p = (struct path){0};
            path_lit(&p, "/api/vhost-limits");
            path_json(&p, vhost_of(imp, param));
            path_seg(&p, limit, strlen(limit));
            if ((rc = run(imp, "PUT", &p, json_pack("{s:O}", "value", v), "vhost limit", limit)) != 0)
                break;
        }
    } else {
        static const char *const keys[] = {"pattern", "definition", "priority", "apply-to", NULL};
        json_t *body = copy_keys(value, keys);
        if (json_object_get(body, "definition"))
            json_object_set_new(body, "definition", as_object(json_object_get(body, "definition")));
        path_lit(&p, "/api/operator-policies");
        path_json(&p, vhost_of(imp, param));
        path_json(&p, json_object_get(param, "name"));
        rc = run(imp, "PUT", &p, body, "operator policy", str(param, "name"));
    }
    json_decref(value);
    return rc;
}

static int apply_queue(struct import *imp, json_t *q)
{
    static const char *const keys[] = {"durable", "auto_delete", "arguments", NULL};
    json_t *name = json_object_get(q, "name");
    if (definitions_has_prefix(name, "amq.")) {
        log_warning("management: definitions: queue '%s' not imported: names beginning with amq. are the broker's",
                    json_string_value(name));
        return 0;
    }
    struct path p = {0};
    path_lit(&p, "/api/queues");
    path_json(&p, vhost_of(imp, q));
    path_json(&p, name);
    if (definitions_api_exists(imp->call, &p))
        return 0; /* RabbitMQ keeps an existing queue as it is */
    return run(imp, "PUT", &p, copy_keys(q, keys), "queue", json_string_value(name));
}

static int apply_binding(struct import *imp, json_t *b)
{
    static const char *const keys[] = {"routing_key", "arguments", NULL};
    json_t *source = json_object_get(b, "source");
    if (json_string_length(source) == 0) {
        log_warning("management: definitions: a binding from the default exchange not imported: those are implicit");
        return 0;
    }
    bool to_queue = strcmp(str(b, "destination_type"), "queue") == 0;
    struct path p = {0};
    path_lit(&p, "/api/bindings");
    path_json(&p, vhost_of(imp, b));
    path_lit(&p, "/e");
    path_json(&p, source);
    path_lit(&p, to_queue ? "/q" : "/e");
    path_json(&p, json_object_get(b, "destination"));
    char what[2 * MAX_NAME + 8];
    snprintf(what, sizeof what, "%s' -> '%s", str(b, "source"), str(b, "destination"));
    return run(imp, "POST", &p, copy_keys(b, keys), "binding", what);
}

/* ---- import: the categories, in RabbitMQ 3.10's order (rabbit_definitions:apply_defs) ------ */

static const struct field user_fields[] = {
    {"name", NAME, true}, {"password_hash", STRING, false}, {"hashing_algorithm", STRING, false},
    {"tags", TAGS, false}, {"limits", TABLE, false}, {NULL, 0, false}};
static const struct field vhost_fields[] = {{"name", NAME, true},         {"metadata", OBJECT, false},
                                            {"description", ANY, false},  {"tags", ANY, false},
                                            {"tracing", ANY, false},      {NULL, 0, false}};
static const struct field permission_fields[] = {{"user", NAME, true},      {"vhost", VHOST, true},
                                                 {"configure", STRING, true}, {"write", STRING, true},
                                                 {"read", STRING, true},     {NULL, 0, false}};
static const struct field topic_permission_fields[] = {{"user", NAME, true},     {"vhost", VHOST, true},
                                                       {"exchange", NAME, true}, {"write", STRING, false},
                                                       {"read", STRING, false},  {NULL, 0, false}};
static const struct field exchange_fields[] = {{"name", NAME, true},         {"vhost", VHOST, true},
                                               {"type", NAME, true},         {"durable", BOOL, false},
                                               {"auto_delete", BOOL, false}, {"internal", BOOL, false},
                                               {"arguments", TABLE, false},  {NULL, 0, false}};
static const struct field global_parameter_fields[] = {{"name", NAME, true}, {"value", ANY, false}, {NULL, 0, false}};
static const struct field policy_fields[] = {{"name", NAME, true},       {"vhost", VHOST, true},
                                             {"pattern", STRING, true},  {"definition", OBJECT, true},
                                             {"priority", INTEGER, false}, {"apply-to", STRING, false},
                                             {NULL, 0, false}};
static const struct field parameter_fields[] = {{"name", NAME, true}, {"vhost", VHOST, true}, {"component", NAME, true},
                                                {"value", ANY, true}, {NULL, 0, false}};
static const struct field queue_fields[] = {{"name", NAME, true},         {"vhost", VHOST, true},
                                            {"durable", BOOL, false},     {"auto_delete", BOOL, false},
                                            {"arguments", TABLE, false},  {"type", STRING, false},
                                            {NULL, 0, false}};
static const struct field binding_fields[] = {{"source", NAME, true},           {"vhost", VHOST, true},
                                              {"destination", NAME, true},      {"destination_type", NAME, true},
                                              {"routing_key", NAME, false},     {"arguments", TABLE, false},
                                              {NULL, 0, false}};

static const char *const name_id[] = {"name", NULL};
static const char *const vhost_name_id[] = {"vhost", "name", NULL};
static const char *const permission_id[] = {"vhost", "user", NULL};
static const char *const topic_permission_id[] = {"vhost", "user", "exchange", NULL};
static const char *const parameter_id[] = {"vhost", "component", "name", NULL};
static const char *const binding_id[] = {"vhost", "source", "destination", "destination_type", "routing_key", NULL};

static const struct category categories[] = {
    {"users", "user", false, user_fields, name_id, check_user, apply_user},
    {"vhosts", "virtual host", false, vhost_fields, name_id, check_vhost, apply_vhost},
    {"permissions", "permission", false, permission_fields, permission_id, check_permission, apply_permission},
    {"topic_permissions", "topic permission", false, topic_permission_fields, topic_permission_id,
     check_topic_permission, apply_topic_permission},
    {"exchanges", "exchange", true, exchange_fields, vhost_name_id, check_exchange, apply_exchange},
    {"global_parameters", "global parameter", false, global_parameter_fields, name_id, check_global_parameter,
     apply_global_parameter},
    {"policies", "policy", true, policy_fields, vhost_name_id, NULL, apply_policy},
    {"parameters", "parameter", true, parameter_fields, parameter_id, check_parameter, apply_parameter},
    {"queues", "queue", true, queue_fields, vhost_name_id, check_queue, apply_queue},
    {"bindings", "binding", true, binding_fields, binding_id, check_binding, apply_binding},
};
#define NCATEGORIES (sizeof categories / sizeof categories[0])

/* Every object's vhost and every permission's user must be in the file or on the broker. */
static int check_references(struct import *imp, const struct category *c, size_t index, json_t *item)
{
    if (imp->vhost)
        return 0;
    json_t *vhost = json_object_get(item, "vhost");
    if (vhost && !key_has(imp->vhosts, NULL, vhost)) {
        struct path p = {0};
        path_lit(&p, "/api/vhosts");
        path_json(&p, vhost);
        if (!definitions_api_exists(imp->call, &p))
            return fail(imp, "%s[%zu]: virtual host '%s' is neither in the definitions nor on the broker", c->name,
                        index, json_string_value(vhost));
        key_set(imp->vhosts, NULL, vhost);
    }
    json_t *user = strstr(c->name, "permissions") ? json_object_get(item, "user") : NULL;
    if (user && !key_has(imp->users, NULL, user)) {
        struct path p = {0};
        path_lit(&p, "/api/users");
        path_json(&p, user);
        if (!definitions_api_exists(imp->call, &p))
            return fail(imp, "%s[%zu]: user '%s' is neither in the definitions nor on the broker", c->name, index,
                        json_string_value(user));
        key_set(imp->users, NULL, user);
    }
    return 0;
}

/* The first pass: shape, references and what Warren lacks. Changes nothing. */
static int plan(struct import *imp, json_t *defs)
{
    for (size_t ci = 0; ci < NCATEGORIES; ci++) {
        const struct category *c = &categories[ci];
        json_t *list = json_object_get(defs, c->name);
        if (!list || json_is_null(list) || (imp->vhost && !c->per_vhost))
            continue;
        if (!json_is_array(list))
            return fail(imp, "\"%s\" must be a list", c->name);
        imp->items += json_array_size(list);
        if (imp->items > MAX_ITEMS)
            return fail(imp, "more than %d objects in one import", MAX_ITEMS);
        imp->category = c;
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) {
            if (check_fields(imp, c, i, item) != 0 || check_references(imp, c, i, item) != 0)
                return -1;
            if (c->check && c->check(imp, item) != 0)
                return -1;
        }
    }
    return 0;
}

static int apply(struct import *imp, json_t *defs)
{
    for (size_t ci = 0; ci < NCATEGORIES; ci++) {
        const struct category *c = &categories[ci];
        json_t *list = json_object_get(defs, c->name);
        if (!json_is_array(list) || (imp->vhost && !c->per_vhost))
            continue;
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
            if (!is_skipped(imp, item) && c->apply(imp, item) != 0)
                return -1;
    }
    return 0;
}

static void log_report(const json_t *report, const char *verb)
{
    size_t i;
    json_t *r;
    json_array_foreach(report, i, r) {
        char *id = json_dumps(json_object_get(r, "item"), JSON_COMPACT);
        log_warning("management: definitions: %s %s %s: %s", verb, json_string_value(json_object_get(r, "category")),
                    id ? id : "?", json_string_value(json_object_get(r, "reason")));
        free(id);
    }
}

void definitions_import(struct mgmt_call *call, const char *vhost)
{
    json_t *defs = call->body;
    if (defs == NULL) { /* an empty body: nothing to import, as RabbitMQ */
        mgmt_done(call, false);
        return;
    }
    if (!json_is_object(defs)) {
        mgmt_fail(call, 400, "bad_request", "the definitions must be a JSON object");
        return;
    }
    const char *skip = mgmt_query(call, "skip-unsupported");
    struct import imp = {
        .call = call,
        .vhost = vhost,
        .skip_unsupported = skip && strcmp(skip, "true") == 0,
        .report = json_array(),
        .skip = json_object(),
        .exchanges = json_object(),
        .queues = json_object(),
        .vhosts = json_object(),
        .users = json_object(),
        .skipped_users = json_object(),
        .skipped_exchanges = json_object(),
        .skipped_queues = json_object(),
        .vhost_json = vhost ? json_stringn_nocheck(vhost, strlen(vhost)) : NULL,
    };
    json_t *overview;
    struct path p = {0};
    path_lit(&p, "/api/overview");
    definitions_api(call, "GET", &p, NULL, &overview);
    imp.exchange_types = json_incref(json_object_get(overview, "exchange_types"));
    json_decref(overview);
    if (plan(&imp, defs) != 0) {
        mgmt_fail(call, 400, "bad_request", "%s; nothing was imported", imp.error);
    } else if (json_array_size(imp.report) > 0 && !imp.skip_unsupported) {
        log_report(imp.report, "refused because of");
        json_t *body = json_object();
        json_object_set_new(body, "error", json_string("bad_request"));
        char reason[256];
        snprintf(reason, sizeof reason,
                 "%zu item(s) in the definitions are not supported by Warren (see \"unsupported\"); nothing was "
                 "imported. Repeat with ?skip-unsupported=true to import everything else",
                 json_array_size(imp.report));
        json_object_set_new(body, "reason", json_string(reason));
        json_object_set_new(body, "unsupported", json_incref(imp.report));
        mgmt_reply(call, 400, body);
    } else {
        log_report(imp.report, "not importing");
        if (apply(&imp, defs) != 0) {
            log_warning("management: definitions import stopped: %s", imp.error);
            json_t *body = json_object();
            json_object_set_new(body, "error", json_string("bad_request"));
            char reason[1024];
            snprintf(reason, sizeof reason, "%s; the objects before it were imported, the ones after it were not",
                     imp.error);
            json_object_set_new(body, "reason", mgmt_string(reason, strlen(reason)));
            if (json_array_size(imp.report) > 0)
                json_object_set_new(body, "unsupported", json_incref(imp.report));
            mgmt_reply(call, 400, body);
        } else if (json_array_size(imp.report) > 0) {
            log_info("management: definitions imported, %zu unsupported item(s) left out", json_array_size(imp.report));
            mgmt_reply(call, 200, json_pack("{s:O}", "unsupported", imp.report));
        } else {
            log_info("management: definitions imported");
            mgmt_done(call, false);
        }
    }
    json_decref(imp.report);
    json_decref(imp.skip);
    json_decref(imp.exchanges);
    json_decref(imp.queues);
    json_decref(imp.vhosts);
    json_decref(imp.users);
    json_decref(imp.skipped_users);
    json_decref(imp.skipped_exchanges);
    json_decref(imp.skipped_queues);
    json_decref(imp.vhost_json);
    json_decref(imp.exchange_types);
}
