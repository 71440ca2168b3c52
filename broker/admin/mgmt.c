/* broker/admin/mgmt.c: the management API's router: decode the path, find the resource, check
 * who is asking against RabbitMQ's tag rules, parse the body, run the handler, shape lists
 * (sort, filter, page, columns) and serialise the answer. Resources live in mgmt_*.c. */
#include "mgmt.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "console_http.h"
#include "log.h"
#include "mgmt_internal.h"
#include "server.h"

#define MAX_PAGE_SIZE 500
#define DEFAULT_PAGE_SIZE 100

struct mgmt {
    struct server *server;
};

static const struct mgmt_route *const route_tables[] = {
    mgmt_overview_routes,
    mgmt_access_routes,
    mgmt_policy_routes,
    mgmt_queues_routes,
    mgmt_exchanges_routes,
    mgmt_bindings_routes,
    mgmt_connections_routes,
    mgmt_definitions_routes,
};

struct mgmt *mgmt_create(struct server *server)
{
    struct mgmt *mgmt = calloc(1, sizeof *mgmt);
    if (mgmt)
        mgmt->server = server;
    return mgmt;
}

void mgmt_destroy(struct mgmt *mgmt)
{
    free(mgmt);
}

/* ---- answers ------------------------------------------------------------------------------ */

void mgmt_reply(struct mgmt_call *call, unsigned status, json_t *body)
{
    json_decref(call->reply);
    call->status = status;
    call->reply = body;
    call->listing = false;
}

void mgmt_fail(struct mgmt_call *call, unsigned status, const char *error, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *body = json_object();
    json_object_set_new(body, "error", json_string(error));
    json_object_set_new(body, "reason", mgmt_string(text, strlen(text)));
    mgmt_reply(call, status, body);
}

void mgmt_not_found(struct mgmt_call *call)
{
    mgmt_fail(call, 404, "Object Not Found", "Not Found");
}

void mgmt_done(struct mgmt_call *call, bool created)
{
    mgmt_reply(call, created ? 201 : 204, NULL);
}

void mgmt_list(struct mgmt_call *call, json_t *items)
{
    mgmt_reply(call, 200, items);
    call->listing = true;
}

/* ---- requests ----------------------------------------------------------------------------- */

const char *mgmt_query(const struct mgmt_call *call, const char *key)
{
    for (size_t i = 0; i < call->nquery; i++)
        if (strcmp(call->query[i].key, key) == 0)
            return call->query[i].value;
    return NULL;
}

json_t *mgmt_body(const struct mgmt_call *call, const char *key)
{
    return json_is_object(call->body) ? json_object_get(call->body, key) : NULL;
}

const char *mgmt_name(struct mgmt_call *call, size_t i)
{
    if (i >= call->nseg)
        return NULL;
    if (strlen(call->seg[i].s) != call->seg[i].len) {
        mgmt_fail(call, 400, "bad_request", "a name in the path holds a NUL byte");
        return NULL;
    }
    return call->seg[i].s;
}

/* ---- who may see what ---------------------------------------------------------------------- */

bool mgmt_sees_all(const struct mgmt_call *call)
{
    return (call->tags & (MGMT_TAG_ADMINISTRATOR | MGMT_TAG_MONITORING)) != 0;
}

bool mgmt_vhost_visible(const struct mgmt_call *call, const char *vhost)
{
    if (mgmt_sees_all(call))
        return true;
    return access_can_access_vhost(server_access(call->server), call->user, vhost);
}

static unsigned user_tags(const struct access *a, const char *user)
{
    unsigned tags = 0;
    if (access_user_has_tag(a, user, "administrator"))
        tags |= MGMT_TAGS_ALL;
    if (access_user_has_tag(a, user, "monitoring"))
        tags |= MGMT_TAG_MONITORING | MGMT_TAG_MANAGEMENT;
    if (access_user_has_tag(a, user, "policymaker"))
        tags |= MGMT_TAG_POLICYMAKER | MGMT_TAG_MANAGEMENT;
    if (access_user_has_tag(a, user, "management"))
        tags |= MGMT_TAG_MANAGEMENT;
    return tags;
}

static bool allowed(unsigned tags, enum mgmt_access level)
{
    switch (level) {
    case MGMT_USER:
        return (tags & MGMT_TAG_MANAGEMENT) != 0;
    case MGMT_MONITOR:
        return (tags & (MGMT_TAG_MONITORING | MGMT_TAG_ADMINISTRATOR)) != 0;
    case MGMT_POLICY:
        return (tags & (MGMT_TAG_POLICYMAKER | MGMT_TAG_ADMINISTRATOR)) != 0;
    case MGMT_ADMIN:
        return (tags & MGMT_TAG_ADMINISTRATOR) != 0;
    }
    return false;
}

static const char *denied_reason(enum mgmt_access level)
{
    switch (level) {
    case MGMT_MONITOR:
        return "Not monitor user";
    case MGMT_POLICY:
        return "Not policymaker user";
    case MGMT_ADMIN:
        return "Not administrator user";
    default:
        return "Not management user";
    }
}

/* ---- routing ------------------------------------------------------------------------------ */

static bool pattern_matches(const char *pattern, const struct mgmt_call *call)
{
    size_t i = 0;
    const char *p = pattern;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i >= call->nseg)
            return false;
        if (!(len == 1 && p[0] == '*') && (call->seg[i].len != len || memcmp(call->seg[i].s, p, len) != 0))
            return false;
        i++;
        p += len;
        if (*p == '/')
            p++;
    }
    return i == call->nseg;
}

static void allow_header(unsigned methods, char *out, size_t cap)
{
    static const char *const names[] = {"GET, HEAD", "PUT", "POST", "DELETE"};
    size_t used = 0;
    out[0] = '\0';
    for (int b = 0; b < 4; b++)
        if (methods & (1u << b))
            used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s%s", used ? ", " : "", names[b]);
}

static const struct mgmt_route *find_route(const struct mgmt_call *call, unsigned *methods_for_path)
{
    *methods_for_path = 0;
    const struct mgmt_route *found = NULL;
    for (size_t t = 0; t < sizeof route_tables / sizeof route_tables[0]; t++)
        for (const struct mgmt_route *r = route_tables[t]; r->pattern; r++)
            if (pattern_matches(r->pattern, call)) {
                *methods_for_path |= r->methods;
                if ((r->methods & call->method) && !found)
                    found = r;
            }
    return found;
}

/* ---- lists -------------------------------------------------------------------------------- */

json_t *mgmt_dotted(json_t *obj, const char *path)
{
    char part[128];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof part)
            return NULL;
        memcpy(part, path, len);
        part[len] = '\0';
        obj = json_is_object(obj) ? json_object_get(obj, part) : NULL;
        path += len + (dot ? 1 : 0);
    }
    return obj;
}

static int compare_values(json_t *a, json_t *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b));
    if (json_is_boolean(a) && json_is_boolean(b))
        return json_is_true(a) - json_is_true(b);
    return json_typeof(a) - json_typeof(b);
}

/* An item with its sort keys looked up once (a comparison must not walk the objects). */
struct sort_item {
    json_t *item;
    json_t *key[2];
    size_t index; /* keeps the sort stable */
};

static int sort_sign;

static int compare_items(const void *pa, const void *pb)
{
    const struct sort_item *a = pa, *b = pb;
    for (int k = 0; k < 2; k++) {
        int c = compare_values(a->key[k], b->key[k]);
        if (c != 0)
            return c * sort_sign;
    }
    return (a->index > b->index) - (a->index < b->index);
}

static void sort_items(json_t *items, const char *key, bool reverse)
{
    size_t n = json_array_size(items);
    if (n < 2)
        return;
    struct sort_item *v = malloc(n * sizeof *v);
    if (!v)
        return;
    /* RabbitMQ's default order is vhost, then name. */
    const char *keys[2] = {key ? key : "vhost", key ? NULL : "name"};
    for (size_t i = 0; i < n; i++) {
        v[i].item = json_incref(json_array_get(items, i));
        for (int k = 0; k < 2; k++)
            v[i].key[k] = keys[k] ? mgmt_dotted(v[i].item, keys[k]) : NULL;
        v[i].index = i;
    }
    sort_sign = reverse ? -1 : 1;
    qsort(v, n, sizeof *v, compare_items);
    json_array_clear(items);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, v[i].item);
    free(v);
}

/* Keeps only the listed (dotted) columns of each item. */
static json_t *cut_columns(json_t *item, const char *columns)
{
    json_t *out = json_object();
    const char *p = columns;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char path[256];
        if (len > 0 && len < sizeof path) {
            memcpy(path, p, len);
            path[len] = '\0';
            json_t *v = mgmt_dotted(item, path);
            if (v) { /* rebuild the nesting: "a.b" keeps {"a":{"b":v}} */
                json_t *at = out;
                char *part = path, *dot;
                while ((dot = strchr(part, '.')) != NULL) {
                    *dot = '\0';
                    json_t *next = json_object_get(at, part);
                    if (!json_is_object(next)) {
                        next = json_object();
                        json_object_set_new(at, part, next);
                    }
                    at = next;
                    part = dot + 1;
                }
                json_object_set(at, part, v);
            }
        }
        p += len + (comma ? 1 : 0);
    }
    return out;
}

static bool parse_positive(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1)
        return false;
    *out = v;
    return true;
}

/* RabbitMQ's list shaping; answers 400 for a bad page or regex. */
static void shape_list(struct mgmt_call *call)
{
    json_t *items = call->reply;
    const char *reverse = mgmt_query(call, "sort_reverse");
    sort_items(items, mgmt_query(call, "sort"), reverse && strcmp(reverse, "true") == 0);
    const char *page_arg = mgmt_query(call, "page");
    const char *columns = mgmt_query(call, "columns");
    if (page_arg) {
        long page, page_size = DEFAULT_PAGE_SIZE;
        const char *size_arg = mgmt_query(call, "page_size");
        if (!parse_positive(page_arg, &page)) {
            mgmt_fail(call, 400, "bad_request", "page must be a positive integer");
            return;
        }
        if (size_arg && (!parse_positive(size_arg, &page_size) || page_size > MAX_PAGE_SIZE)) {
            mgmt_fail(call, 400, "bad_request", "page_size must be between 1 and %d", MAX_PAGE_SIZE);
            return;
        }
        size_t total = json_array_size(items);
        json_t *filtered = json_array();
        const char *name = mgmt_query(call, "name");
        const char *use_regex = mgmt_query(call, "use_regex");
        regex_t re;
        bool regex = name && *name && use_regex && strcmp(use_regex, "true") == 0;
        if (regex && regcomp(&re, name, REG_EXTENDED | REG_NOSUB) != 0) {
            json_decref(filtered);
            mgmt_fail(call, 400, "bad_request", "invalid regex");
            return;
        }
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) {
            const char *n = json_string_value(json_object_get(item, "name"));
            if (name && *name) {
                if (!n)
                    continue;
                if (regex ? regexec(&re, n, 0, NULL, 0) != 0 : strstr(n, name) == NULL)
                    continue;
            }
            json_array_append(filtered, item);
        }
        if (regex)
            regfree(&re);
        size_t count = json_array_size(filtered);
        size_t page_count = (count + (size_t)page_size - 1) / (size_t)page_size;
        if ((size_t)page > page_count && !(page == 1 && count == 0)) {
            json_decref(filtered);
            mgmt_fail(call, 400, "bad_request", "page out of range");
            return;
        }
        json_t *page_items = json_array();
        for (size_t k = (size_t)(page - 1) * (size_t)page_size; k < count && k < (size_t)page * (size_t)page_size; k++) {
            json_t *it = json_array_get(filtered, k);
            json_array_append_new(page_items, columns ? cut_columns(it, columns) : json_incref(it));
        }
        json_decref(filtered);
        json_t *out = json_object();
        json_object_set_new(out, "filtered_count", json_integer((json_int_t)count));
        json_object_set_new(out, "item_count", json_integer((json_int_t)json_array_size(page_items)));
        json_object_set_new(out, "items", page_items);
        json_object_set_new(out, "page", json_integer(page));
        json_object_set_new(out, "page_count", json_integer((json_int_t)page_count));
        json_object_set_new(out, "page_size", json_integer(page_size));
        json_object_set_new(out, "total_count", json_integer((json_int_t)total));
        mgmt_reply(call, 200, out);
        return;
    }
    if (columns) {
        json_t *out = json_array();
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
            json_array_append_new(out, cut_columns(item, columns));
        mgmt_reply(call, 200, out);
    }
}

int mgmt_path_encode(const char *name, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                     c == '.' || c == '_' || c == '~';
        if (used + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[used++] = (char)c;
        } else {
            out[used++] = '%';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 15];
        }
    }
    if (used >= cap)
        return -1;
    out[used] = '\0';
    return (int)used;
}

/* ---- one call ----------------------------------------------------------------------------- */

static int parse_method(const char *m)
{
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return MGMT_GET;
    if (strcmp(m, "PUT") == 0)
        return MGMT_PUT;
    if (strcmp(m, "POST") == 0)
        return MGMT_POST;
    if (strcmp(m, "DELETE") == 0)
        return MGMT_DELETE;
    return 0;
}

/* Splits "/api/a/b%2Fc" into decoded segments after "api"; false when the path is not under
 * /api or has too many segments. */
static bool split_path(struct mgmt_call *call, const char *path)
{
    if (strncmp(path, "/api", 4) != 0 || (path[4] != '\0' && path[4] != '/'))
        return false;
    const char *p = path + 4;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 && !end)
            break; /* a trailing slash */
        if (call->nseg == MGMT_MAX_SEGMENTS)
            return false;
        char *s = malloc(len + 1);
        if (!s)
            return false;
        call->seg[call->nseg].len = http_percent_decode(p, len, s, false);
        call->seg[call->nseg].s = s;
        call->nseg++;
        p += len;
    }
    return *p == '\0';
}

static void free_call(struct mgmt_call *call)
{
    for (size_t i = 0; i < call->nseg; i++)
        free(call->seg[i].s);
    json_decref(call->body);
}

/* Everything after authentication: route, authorise, parse, run, shape. */
static void dispatch(struct mgmt_call *call, const char *method, const char *path, const char *body,
                     size_t body_len, char *allow, size_t allow_cap)
{
    int m = parse_method(method);
    if (!split_path(call, path)) {
        mgmt_not_found(call);
        return;
    }
    unsigned methods;
    call->method = (enum mgmt_method)m; /* 0 for a method no route takes: 405 below */
    const struct mgmt_route *route = find_route(call, &methods);
    if (!route) {
        if (methods) {
            allow_header(methods, allow, allow_cap);
            mgmt_fail(call, 405, "Method Not Allowed", "Method Not Allowed");
        } else {
            mgmt_not_found(call);
        }
        return;
    }
    enum mgmt_access level = call->method == MGMT_GET ? route->read : route->write;
    if (!allowed(call->tags, level)) {
        mgmt_fail(call, 401, "not_authorised", "%s", denied_reason(level));
        return;
    }
    if (route->vhost_segment) {
        const char *vhost = mgmt_name(call, route->vhost_segment - 1);
        if (!vhost)
            return;
        if (!access_vhost_exists(server_access(call->server), vhost)) {
            mgmt_not_found(call);
            return;
        }
        if (!mgmt_vhost_visible(call, vhost)) {
            mgmt_fail(call, 401, "not_authorised", "User not authorised to access virtual host");
            return;
        }
    }
    if (body_len > 0 && call->method != MGMT_GET) {
        json_error_t error;
        call->body = json_loadb(body, body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
        if (!call->body) {
            mgmt_fail(call, 400, "bad_request", "not JSON: %s (line %d, column %d)", error.text, error.line,
                      error.column);
            return;
        }
    }
    call->status = 200;
    route->handler(call);
    if (call->listing)
        shape_list(call);
}

/* Basic auth against Warren's users, as the AMQP door checks them (including the default
 * user's loopback-only rule). Returns the user's tags, or 0 after answering 401 (and logging
 * the failed login, never the password). */
static unsigned authenticate(struct mgmt_call *call, const struct http_request *req)
{
    struct access *a = server_access(call->server);
    if (!req->user) {
        mgmt_fail(call, 401, "not_authorised", "Not_Authorized");
        return 0;
    }
    const struct server_config *cfg = server_config(call->server);
    bool ok = access_check_password(a, req->user, (const uint8_t *)(req->password ? req->password : ""),
                                    req->password ? strlen(req->password) : 0);
    if (ok && cfg->default_user_loopback_only && cfg->default_user && strcmp(req->user, cfg->default_user) == 0 &&
        !req->loopback) {
        log_warning("management: user '%s' refused from %s: it may log in only from localhost", req->user, req->peer);
        mgmt_fail(call, 401, "not_authorised", "User can only log in via localhost");
        return 0;
    }
    if (!ok) {
        log_warning("management: login failed for user '%s' from %s", req->user, req->peer);
        mgmt_fail(call, 401, "not_authorised", "Login failed");
        return 0;
    }
    unsigned tags = user_tags(a, req->user);
    if (tags == 0) {
        log_warning("management: user '%s' from %s has no management tag", req->user, req->peer);
        mgmt_fail(call, 401, "not_authorised", "Not management user");
    }
    return tags;
}

static void answer(struct mgmt_call *call, struct http_response *res)
{
    res->status = call->status;
    if (call->reply) {
        res->body = mgmt_dump(call->reply, &res->body_len);
        if (!res->body) {
            res->status = 500;
            res->body_len = 0;
        }
    }
}

void mgmt_http_handler(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct mgmt *mgmt = ctx;
    /* Outside /api: the web console's files, for anyone (the page logs in through the API). */
    if (!console_http_is_api(req->path)) {
        console_http_answer(req, res);
        return;
    }
    static char allow[64];
    struct mgmt_call call = {
        .mgmt = mgmt,
        .server = mgmt->server,
        .query = req->query,
        .nquery = req->nquery,
        .user = req->user ? req->user : "",
        .reason = req->reason,
    };
    allow[0] = '\0';
    call.tags = authenticate(&call, req);
    if (call.tags != 0)
        dispatch(&call, req->method, req->path, req->body, req->body_len, allow, sizeof allow);
    else
        res->ask_credentials = !req->ajax;
    answer(&call, res);
    res->allow = allow[0] ? allow : NULL;
    json_decref(call.reply);
    free_call(&call);
}

bool mgmt_http_admit(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct mgmt *mgmt = ctx;
    struct mgmt_call call = {.mgmt = mgmt, .server = mgmt->server, .user = req->user ? req->user : ""};
    if (authenticate(&call, req) != 0) {
        json_decref(call.reply);
        return true;
    }
    res->ask_credentials = !req->ajax;
    answer(&call, res);
    json_decref(call.reply);
    return false;
}

unsigned mgmt_run(struct mgmt *mgmt, const char *method, const char *path, json_t *body, json_t **reply)
{
    struct http_param params[16];
    size_t nparams = 0;
    char path_only[4096], query[4096];
    const char *q = strchr(path, '?');
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    if (path_len >= sizeof path_only)
        path_len = sizeof path_only - 1;
    memcpy(path_only, path, path_len);
    path_only[path_len] = '\0';
    query[0] = '\0';
    if (q) { /* "a=1&b=2": decoded in place into query[] */
        snprintf(query, sizeof query, "%s", q + 1);
        char *p = query;
        while (*p && nparams < sizeof params / sizeof params[0]) {
            char *amp = strchr(p, '&');
            if (amp)
                *amp = '\0';
            char *eq = strchr(p, '=');
            if (eq)
                *eq = '\0';
            http_percent_decode(p, strlen(p), p, true);
            char *value = eq ? eq + 1 : (char *)"";
            if (eq)
                http_percent_decode(value, strlen(value), value, true);
            params[nparams++] = (struct http_param){p, value};
            if (!amp)
                break;
            p = amp + 1;
        }
    }
    struct mgmt_call call = {
        .mgmt = mgmt,
        .server = mgmt->server,
        .query = params,
        .nquery = nparams,
        .user = "",
        .tags = MGMT_TAGS_ALL,
    };
    char allow[64];
    call.body = body ? json_incref(body) : NULL;
    /* dispatch parses a textual body; the admin socket hands a parsed one */
    dispatch(&call, method, path_only, NULL, 0, allow, sizeof allow);
    *reply = call.reply;
    unsigned status = call.status;
    free_call(&call);
    return status;
}
