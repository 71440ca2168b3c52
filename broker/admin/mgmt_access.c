/* broker/admin/mgmt_access.c: users, virtual hosts and permissions: /api/users, /api/vhosts,
 * /api/permissions, /api/user-limits (and the per-user and per-vhost views of them). Changes go through the
 * access model and are saved and applied by introspect_access_changed, like warrenctl's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "introspect.h"
#include "log.h"
#include "mgmt_internal.h"
#include "server.h"

#define MAX_TAGS 64

static struct access *db(const struct mgmt_call *call)
{
    return server_access(call->server);
}

/* Saves and applies an access change; false after answering 500. */
static bool saved(struct mgmt_call *call)
{
    int rc = introspect_access_changed(call->server);
    if (rc == 0)
        return true;
    log_error("management: the access change could not be saved: %s", strerror(-rc));
    mgmt_fail(call, 500, "internal_error", "the change was applied but could not be saved: %s", strerror(-rc));
    return false;
}

/* ---- users -------------------------------------------------------------------------------- */

static json_t *tag_list(const char *csv)
{
    json_t *a = json_array();
    const char *p = csv;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len)
            json_array_append_new(a, mgmt_string(p, len));
        p += len + (comma ? 1 : 0);
    }
    return a;
}

struct find_tags {
    const char *user;
    json_t *tags;
};

static void find_tags(const char *name, const char *tags_csv, void *arg)
{
    struct find_tags *f = arg;
    if (strcmp(name, f->user) == 0)
        f->tags = tag_list(tags_csv);
}

json_t *mgmt_user_tags(struct server *server, const char *user)
{
    struct find_tags f = {.user = user};
    access_for_each_user(server_access(server), find_tags, &f);
    return f.tags ? f.tags : json_array();
}

/* The user's limits as RabbitMQ shows them: {"max-connections": N, ...}, only those set. */
static json_t *user_limits_json(struct server *server, const char *name)
{
    json_t *o = json_object();
    for (unsigned i = 0; i < ACCESS_USER_LIMIT_COUNT; i++) {
        int64_t v = access_user_limit(server_access(server), name, (enum access_user_limit)i);
        if (v >= 0)
            json_object_set_new(o, access_user_limit_name((enum access_user_limit)i), json_integer(v));
    }
    return o;
}

json_t *mgmt_user_json(struct server *server, const char *name, const char *tags_csv)
{
    char hash[ACCESS_HASH_BASE64_MAX] = "";
    access_user_password_hash(server_access(server), name, hash, sizeof hash);
    json_t *o = json_object();
    json_object_set_new(o, "name", mgmt_string(name, strlen(name)));
    json_object_set_new(o, "password_hash", json_string(hash));
    json_object_set_new(o, "hashing_algorithm", json_string(ACCESS_HASHING_ALGORITHM));
    json_object_set_new(o, "tags", tags_csv ? tag_list(tags_csv) : mgmt_user_tags(server, name));
    json_object_set_new(o, "limits", user_limits_json(server, name));
    return o;
}

struct user_walk {
    struct mgmt_call *call;
    json_t *items;
};

static void add_user_item(const char *name, const char *tags_csv, void *arg)
{
    struct user_walk *w = arg;
    json_array_append_new(w->items, mgmt_user_json(w->call->server, name, tags_csv));
}

static void list_users(struct mgmt_call *call)
{
    struct user_walk w = {call, json_array()};
    access_for_each_user(db(call), add_user_item, &w);
    mgmt_list(call, w.items);
}

static bool user_has_permissions(struct mgmt_call *call, const char *user);

static void add_user_without_permissions(const char *name, const char *tags_csv, void *arg)
{
    struct user_walk *w = arg;
    if (!user_has_permissions(w->call, name))
        json_array_append_new(w->items, mgmt_user_json(w->call->server, name, tags_csv));
}

static void users_without_permissions(struct mgmt_call *call)
{
    struct user_walk w = {call, json_array()};
    access_for_each_user(db(call), add_user_without_permissions, &w);
    mgmt_list(call, w.items);
}

/* tags: "a,b" or ["a","b"] (RabbitMQ takes both). Returns the count, or -1 when malformed. */
static int parse_tags(const json_t *v, const char **tags, char *storage, size_t cap)
{
    size_t n = 0, used = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) >= cap)
            return -1;
        memcpy(storage, s, strlen(s) + 1);
        char *save = NULL;
        for (char *t = strtok_r(storage, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            size_t len = strlen(t);
            while (len && t[len - 1] == ' ')
                t[--len] = '\0';
            if (len && n < MAX_TAGS)
                tags[n++] = t;
        }
        return (int)n;
    }
    if (!json_is_array(v))
        return -1;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);
        if (!s || n == MAX_TAGS || used + strlen(s) + 1 > cap || strchr(s, ',') || !*s)
            return -1;
        memcpy(storage + used, s, strlen(s) + 1);
        tags[n++] = storage + used;
        used += strlen(s) + 1;
    }
    return (int)n;
}

static void get_user(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    if (!access_user_exists(db(call), name)) {
        mgmt_not_found(call);
        return;
    }
    mgmt_reply(call, 200, mgmt_user_json(call->server, name, NULL));
}

/* PUT /api/users/NAME {"password": ...} or {"password_hash": ..., "hashing_algorithm": ...},
 * "tags": "a,b" or [...]. Creates (201) or updates (204) the user. */
static void put_user(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    if (!json_is_object(call->body)) {
        mgmt_fail(call, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    json_t *password = mgmt_body(call, "password");
    json_t *hash = mgmt_body(call, "password_hash");
    json_t *algorithm = mgmt_body(call, "hashing_algorithm");
    const char *tags[MAX_TAGS];
    char tag_storage[4096];
    int ntags = parse_tags(mgmt_body(call, "tags"), tags, tag_storage, sizeof tag_storage);
    if (ntags < 0) {
        mgmt_fail(call, 400, "bad_request", "tags must be a comma-separated string or a list of strings");
        return;
    }
    if ((password && !json_is_string(password)) || (hash && !json_is_string(hash))) {
        mgmt_fail(call, 400, "bad_request", "password and password_hash must be strings");
        return;
    }
    if (!password && hash && algorithm && json_is_string(algorithm) &&
        strcmp(json_string_value(algorithm), ACCESS_HASHING_ALGORITHM) != 0) {
        mgmt_fail(call, 400, "bad_request", "hashing algorithm '%s' is not supported: Warren keeps %s hashes",
                  json_string_value(algorithm), ACCESS_HASHING_ALGORITHM);
        return;
    }
    if (password && strlen(json_string_value(password)) != json_string_length(password)) {
        mgmt_fail(call, 400, "bad_request", "the password holds a NUL byte");
        return;
    }
    struct access *a = db(call);
    bool created = !access_user_exists(a, name);
    int rc = 0;
    if (created) {
        if (!*name || strlen(name) > 255) {
            mgmt_fail(call, 400, "bad_request", "invalid user name");
            return;
        }
        if (password)
            rc = access_add_user(a, name, json_string_value(password));
        else
            rc = access_add_user_hashed(a, name, hash ? json_string_value(hash) : "");
    } else if (password) {
        rc = access_change_password(a, name, json_string_value(password));
    } else if (hash) {
        rc = access_set_password_hash(a, name, json_string_value(hash));
    }
    if (rc == 0)
        rc = access_set_user_tags(a, name, tags, (size_t)ntags);
    if (rc == -EINVAL) {
        mgmt_fail(call, 400, "bad_request", "invalid password_hash: not a %s hash", ACCESS_HASHING_ALGORITHM);
        return;
    }
    if (rc != 0) {
        mgmt_fail(call, 500, "internal_error", "%s", strerror(-rc));
        return;
    }
    log_info("management: %s user '%s'", created ? "added" : "updated", name);
    if (saved(call))
        mgmt_done(call, created);
}

static void delete_user(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    if (access_delete_user(db(call), name) != 0) {
        mgmt_not_found(call);
        return;
    }
    log_info("management: deleted user '%s'", name);
    if (saved(call))
        mgmt_done(call, false);
}

static void user(struct mgmt_call *call)
{
    if (call->method == MGMT_PUT)
        put_user(call);
    else if (call->method == MGMT_DELETE)
        delete_user(call);
    else
        get_user(call);
}

/* POST /api/users/bulk-delete {"users": [...]}: unknown names are skipped, as RabbitMQ does. */
static void bulk_delete_users(struct mgmt_call *call)
{
    json_t *users = mgmt_body(call, "users");
    if (!json_is_array(users)) {
        mgmt_fail(call, 400, "bad_request", "users must be a list of names");
        return;
    }
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u) {
        const char *name = json_string_value(u);
        if (name && access_delete_user(db(call), name) == 0)
            log_info("management: deleted user '%s'", name);
    }
    if (saved(call))
        mgmt_done(call, false);
}

/* ---- permissions -------------------------------------------------------------------------- */

struct permission_walk {
    const char *user;  /* NULL: every user */
    const char *vhost; /* NULL: every vhost */
    json_t *items;
    bool any;
};

static void add_permission(const char *vhost, const char *user, const char *configure, const char *write,
                           const char *read, void *arg)
{
    struct permission_walk *w = arg;
    if ((w->user && strcmp(w->user, user) != 0) || (w->vhost && strcmp(w->vhost, vhost) != 0))
        return;
    w->any = true;
    if (!w->items)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "user", mgmt_string(user, strlen(user)));
    json_object_set_new(o, "vhost", mgmt_string(vhost, strlen(vhost)));
    json_object_set_new(o, "configure", mgmt_string(configure, strlen(configure)));
    json_object_set_new(o, "write", mgmt_string(write, strlen(write)));
    json_object_set_new(o, "read", mgmt_string(read, strlen(read)));
    json_array_append_new(w->items, o);
}

static json_t *permissions_of(struct mgmt_call *call, const char *user, const char *vhost)
{
    struct permission_walk w = {.user = user, .vhost = vhost, .items = json_array()};
    access_for_each_permission(db(call), add_permission, &w);
    return w.items;
}

static bool user_has_permissions(struct mgmt_call *call, const char *user)
{
    struct permission_walk w = {.user = user};
    access_for_each_permission(db(call), add_permission, &w);
    return w.any;
}

static void list_permissions(struct mgmt_call *call)
{
    mgmt_list(call, permissions_of(call, NULL, NULL));
}

static void user_permissions(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    if (!access_user_exists(db(call), name)) {
        mgmt_not_found(call);
        return;
    }
    mgmt_list(call, permissions_of(call, name, NULL));
}

static void vhost_permissions(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (vhost)
        mgmt_list(call, permissions_of(call, NULL, vhost));
}

/* GET, PUT {"configure","write","read"} and DELETE /api/permissions/VHOST/USER. */
static void permission(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1), *user = vhost ? mgmt_name(call, 2) : NULL;
    if (!user)
        return;
    struct access *a = db(call);
    if (!access_user_exists(a, user)) {
        mgmt_not_found(call);
        return;
    }
    if (call->method == MGMT_GET) {
        json_t *items = permissions_of(call, user, vhost);
        if (json_array_size(items) == 0)
            mgmt_not_found(call);
        else
            mgmt_reply(call, 200, json_incref(json_array_get(items, 0)));
        json_decref(items);
        return;
    }
    if (call->method == MGMT_DELETE) {
        if (access_clear_permissions(a, vhost, user) != 0) {
            mgmt_not_found(call);
            return;
        }
        log_info("management: cleared the permissions of user '%s' in vhost '%s'", user, vhost);
        if (saved(call))
            mgmt_done(call, false);
        return;
    }
    const char *kinds[3] = {"configure", "write", "read"}, *values[3];
    for (int i = 0; i < 3; i++) {
        values[i] = json_string_value(mgmt_body(call, kinds[i]));
        if (!values[i]) {
            mgmt_fail(call, 400, "bad_request", "%s is mandatory and must be a string", kinds[i]);
            return;
        }
    }
    json_t *existing = permissions_of(call, user, vhost);
    bool created = json_array_size(existing) == 0;
    json_decref(existing);
    char why[256] = "";
    int rc = access_set_permissions(a, vhost, user, values[0], values[1], values[2], why, sizeof why);
    if (rc != 0) {
        mgmt_fail(call, 400, "bad_request", "%s", why[0] ? why : strerror(-rc));
        return;
    }
    log_info("management: set the permissions of user '%s' in vhost '%s'", user, vhost);
    if (saved(call))
        mgmt_done(call, created);
}

/* Topic permissions are not part of Warren's model: listed as none, refused when set. */
static void topic_permissions(struct mgmt_call *call)
{
    if (call->method == MGMT_GET) {
        mgmt_list(call, json_array());
        return;
    }
    mgmt_fail(call, 400, "bad_request", "topic permissions are not supported by Warren");
}

/* ---- vhosts ------------------------------------------------------------------------------- */

static void fill_vhost(const struct introspect_vhost *v, void *arg)
{
    json_t *o = arg;
    json_object_set_new(o, "messages", json_integer((json_int_t)(v->messages_ready + v->messages_unacknowledged)));
    json_object_set_new(o, "messages_ready", json_integer((json_int_t)v->messages_ready));
    json_object_set_new(o, "messages_unacknowledged", json_integer((json_int_t)v->messages_unacknowledged));
    json_object_set_new(o, "message_stats", mgmt_message_stats(&v->message_stats, &v->message_rates,
                                                               MGMT_STATS_CHANNEL));
}

json_t *mgmt_vhost_json(struct server *server, const char *name)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", mgmt_string(name, strlen(name)));
    json_object_set_new(o, "description", json_string(""));
    json_object_set_new(o, "tags", json_array());
    json_object_set_new(o, "metadata", json_pack("{s:s,s:[]}", "description", "", "tags"));
    json_object_set_new(o, "default_queue_type", json_string("classic"));
    json_object_set_new(o, "tracing", json_false());
    json_object_set_new(o, "cluster_state", json_pack("{s:s}", mgmt_node_name(), "running"));
    introspect_vhosts(server, name, fill_vhost, o);
    return o;
}

struct vhost_walk {
    struct mgmt_call *call;
    json_t *items;
};

static void add_vhost_item(const char *name, void *arg)
{
    struct vhost_walk *w = arg;
    if (mgmt_vhost_visible(w->call, name))
        json_array_append_new(w->items, mgmt_vhost_json(w->call->server, name));
}

static void list_vhosts(struct mgmt_call *call)
{
    struct vhost_walk w = {call, json_array()};
    access_for_each_vhost(db(call), add_vhost_item, &w);
    mgmt_list(call, w.items);
}

/* GET (visible vhosts), PUT and DELETE (administrators) /api/vhosts/NAME. */
static void vhost(struct mgmt_call *call)
{
    const char *name = mgmt_name(call, 1);
    if (!name)
        return;
    struct access *a = db(call);
    bool exists = access_vhost_exists(a, name);
    if (call->method == MGMT_PUT) {
        if (exists) {
            mgmt_done(call, false);
            return;
        }
        if (!*name || strlen(name) > 255) {
            mgmt_fail(call, 400, "bad_request", "invalid virtual host name");
            return;
        }
        int rc = access_add_vhost(a, name);
        if (rc != 0) {
            mgmt_fail(call, 500, "internal_error", "%s", strerror(-rc));
            return;
        }
        log_info("management: added vhost '%s'", name);
        /* RabbitMQ's API gives whoever creates a vhost full permissions on it (its admin socket,
         * as rabbitmqctl add_vhost, none): a script that creates a vhost, then declares into it
         * works. */
        if (*call->user && access_set_permissions(a, name, call->user, ".*", ".*", ".*", NULL, 0) == 0)
            log_info("management: set the permissions of user '%s' in vhost '%s'", call->user, name);
        if (saved(call))
            mgmt_done(call, true);
        return;
    }
    if (!exists) {
        mgmt_not_found(call);
        return;
    }
    if (call->method == MGMT_DELETE) {
        access_delete_vhost(a, name);
        log_info("management: deleted vhost '%s'", name);
        if (saved(call))
            mgmt_done(call, false);
        return;
    }
    if (!mgmt_vhost_visible(call, name)) {
        mgmt_fail(call, 401, "not_authorised", "User not authorised to access virtual host");
        return;
    }
    json_t *o = mgmt_vhost_json(call->server, name);
    mgmt_add_history(call, INTROSPECT_HISTORY_VHOST, name, (struct proto_bytes){NULL, 0},
                     json_object_get(o, "message_stats"), o);
    mgmt_reply(call, 200, o);
}

/* ---- user limits -------------------------------------------------------------------------- */

struct limits_walk {
    struct mgmt_call *call;
    const char *user; /* NULL: every user */
    json_t *items;
};

static void add_user_limits(const char *name, const char *tags_csv, void *arg)
{
    (void)tags_csv;
    struct limits_walk *w = arg;
    if (w->user && strcmp(w->user, name) != 0)
        return;
    json_t *value = user_limits_json(w->call->server, name);
    if (json_object_size(value) == 0) {
        json_decref(value);
        return;
    }
    json_array_append_new(w->items, json_pack("{s:o,s:o}", "user", mgmt_string(name, strlen(name)), "value", value));
}

/* GET /api/user-limits and /api/user-limits/USER: [{"user": u, "value": {...}}], users without
 * limits left out (as /api/vhost-limits leaves out vhosts without). */
static void list_user_limits(struct mgmt_call *call)
{
    const char *user = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    if (call->nseg > 1 && !user)
        return;
    if (user && !access_user_exists(db(call), user)) {
        mgmt_not_found(call);
        return;
    }
    struct limits_walk w = {call, user, json_array()};
    access_for_each_user(db(call), add_user_limits, &w);
    mgmt_list(call, w.items);
}

/* PUT {"value": N} and DELETE /api/user-limits/USER/NAME. A negative value clears the limit,
 * as for vhost limits. */
static void user_limit(struct mgmt_call *call)
{
    const char *user = mgmt_name(call, 1), *name = user ? mgmt_name(call, 2) : NULL;
    if (!name)
        return;
    enum access_user_limit which;
    if (access_user_limit_parse(name, &which) != 0) {
        mgmt_fail(call, 400, "bad_request", "Validation failed\n\n%s is not a recognised user limit\n", name);
        return;
    }
    json_t *value = call->method == MGMT_DELETE ? NULL : mgmt_body(call, "value");
    if (call->method != MGMT_DELETE && !json_is_integer(value)) {
        mgmt_fail(call, 400, "bad_request", "value must be an integer");
        return;
    }
    int64_t v = value ? (int64_t)json_integer_value(value) : -1;
    if (access_set_user_limit(db(call), user, which, v) != 0) {
        mgmt_not_found(call);
        return;
    }
    if (v >= 0)
        log_info("management: user '%s' limit %s set to %lld", user, name, (long long)v);
    else
        log_info("management: user '%s' limit %s cleared", user, name);
    if (saved(call))
        mgmt_done(call, false);
}

const struct mgmt_route mgmt_access_routes[] = {
    {"users", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, list_users},
    {"users/without-permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, users_without_permissions},
    {"users/bulk-delete", MGMT_POST, MGMT_ADMIN, MGMT_ADMIN, 0, bulk_delete_users},
    {"users/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 0, user},
    {"users/*/permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, user_permissions},
    {"users/*/topic-permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, topic_permissions},
    {"user-limits", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, list_user_limits},
    {"user-limits/*", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, list_user_limits},
    {"user-limits/*/*", MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 0, user_limit},
    {"permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, list_permissions},
    {"permissions/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 2, permission},
    {"topic-permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 0, topic_permissions},
    {"topic-permissions/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_ADMIN, MGMT_ADMIN, 2, topic_permissions},
    {"vhosts", MGMT_GET, MGMT_USER, MGMT_ADMIN, 0, list_vhosts},
    {"vhosts/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_USER, MGMT_ADMIN, 0, vhost},
    {"vhosts/*/permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 2, vhost_permissions},
    {"vhosts/*/topic-permissions", MGMT_GET, MGMT_ADMIN, MGMT_ADMIN, 2, topic_permissions},
    {NULL, 0, 0, 0, 0, NULL},
};
