/* broker/admin/mgmt.c: the management API's router: decode the path, find the resource, check
 * who is asking against RabbitMQ's tag rules, parse the body, run the handler, shape lists
 * (mgmt_list.c) and serialise the answer. Resources live in mgmt_*.c. */
#include "mgmt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "console_http.h"
#include "log.h"
#include "mgmt_internal.h"
#include "operate.h"
#include "server.h"

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
    mgmt_list_free(call->listing);
    call->status = status;
    call->reply = body;
    call->listing = NULL;
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

bool mgmt_vhost_open(const struct mgmt_call *call, const char *vhost)
{
    return (call->tags & MGMT_TAG_ADMINISTRATOR) || access_can_access_vhost(server_access(call->server), call->user, vhost);
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
    mgmt_reply(call, call->status, NULL); /* frees the answer */
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
        if (!mgmt_vhost_open(call, vhost)) {
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
        mgmt_list_finish(call);
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
    /* a list is read in pieces as the socket drains; a document is serialised */
    if (!mgmt_list_answer(call, res) && call->reply) {
        res->body = mgmt_dump(call->reply, &res->body_len);
        if (!res->body) {
            res->status = 500;
            res->body_len = 0;
        }
    }
}

/* An answer held until the cluster applied the changes its request made. It may come after
 * the management API was destroyed (a node stopping fails what it held): nothing here may reach
 * the mgmt. */
struct held_answer {
    struct http_deferred *deferred;
    struct http_response res;
};

static void held_applied(void *arg, int status, const char *text)
{
    struct held_answer *h = arg;
    if (status != 0) {
        struct mgmt_call call = {.user = ""}; /* a failure's shape only: no mgmt, no server */
        if (status > 0) {
            /* The apply refused it (an AMQP reply code, alike on every node: a binding to an
             * exchange declared nowhere, an exchange in use): answered as a refusal here is. */
            struct reply_error err = {.code = (uint16_t)status};
            snprintf(err.text, sizeof err.text, "%s", text);
            mgmt_amqp_error(&call, &err);
        } else {
            /* The cluster did not take it (no quorum within the propose timeout): nothing was
             * made, here or elsewhere, as an AMQP client on a minority node gets 541. */
            log_warning("management: a change did not reach the cluster (%d %s)", status, text);
            mgmt_fail(&call, 503, "unavailable", "cluster: the change was not made: %s", text);
        }
        http_response_discard(&h->res);
        h->res = (struct http_response){0};
        answer(&call, &h->res);
        free_call(&call);
    }
    http_answer(h->deferred, &h->res);
    free(h);
}

/* With a cluster, a request that changes something is answered once every member applied what
 * it changed (operate.h), as the AMQP methods are: a queue declared through one node's API is
 * there on every node when the answer arrives. Its answer, ready now, is held until then. */
static void answer_when_applied(struct mgmt *mgmt, struct cluster_wait *wait, const struct http_request *req,
                                struct http_response *res)
{
    struct held_answer *h = calloc(1, sizeof *h);
    if (h && (h->deferred = http_defer(req)) != NULL) {
        h->res = *res;
        *res = (struct http_response){.status = 500};
        if (!operate_wait_close(mgmt->server, wait, held_applied, h)) {
            http_answer(h->deferred, &h->res); /* nothing was proposed: it goes now */
            free(h);
        }
        return;
    }
    free(h);
    operate_wait_close(mgmt->server, wait, NULL, NULL); /* cannot hold it: answered now */
}

struct mgmt_later {
    struct http_deferred *deferred;
};

struct mgmt_later *mgmt_defer(struct mgmt_call *call)
{
    struct mgmt_later *later = call->req ? calloc(1, sizeof *later) : NULL;
    if (later && !(later->deferred = http_defer(call->req))) {
        free(later);
        later = NULL;
    }
    call->deferred = later != NULL;
    return later;
}

void mgmt_answer_later(struct mgmt_later *later, struct mgmt_call *shape)
{
    struct http_response res = {0};
    answer(shape, &res);
    free_call(shape);
    http_answer(later->deferred, &res);
    free(later);
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
        .req = req,
    };
    allow[0] = '\0';
    call.tags = authenticate(&call, req);
    bool changes = strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0 ||
                   strcmp(req->method, "DELETE") == 0;
    struct cluster_wait *wait = call.tags != 0 && changes ? operate_wait_open(mgmt->server) : NULL;
    if (call.tags != 0)
        dispatch(&call, req->method, req->path, req->body, req->body_len, allow, sizeof allow);
    else
        res->ask_credentials = !req->ajax;
    if (call.deferred) { /* the handler answers later (mgmt_answer_later): res stays as it is */
        free_call(&call);
        if (wait)
            operate_wait_close(mgmt->server, wait, NULL, NULL);
        return;
    }
    answer(&call, res);
    res->allow = allow[0] ? allow : NULL;
    free_call(&call);
    if (wait)
        answer_when_applied(mgmt, wait, req, res);
}

bool mgmt_http_admit(void *ctx, const struct http_request *req, struct http_response *res)
{
    struct mgmt *mgmt = ctx;
    struct mgmt_call call = {.mgmt = mgmt, .server = mgmt->server, .user = req->user ? req->user : ""};
    if (authenticate(&call, req) != 0) {
        free_call(&call);
        return true;
    }
    res->ask_credentials = !req->ajax;
    answer(&call, res);
    free_call(&call);
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
    *reply = NULL;
    if (call.listing) { /* a list: the admin socket's callers read documents */
        size_t len;
        char *text = mgmt_list_text(&call, &len);
        json_error_t error;
        *reply = text ? json_loadb(text, len, 0, &error) : NULL;
        free(text);
        if (!*reply)
            mgmt_fail(&call, 500, "internal_error", "list not answered");
    }
    if (!call.listing && !*reply)
        *reply = json_incref(call.reply);
    unsigned status = call.status;
    free_call(&call);
    return status;
}
