/* broker/admin/admin_api.c: the warrenctl commands that are management API calls. Each one is
 * a translation: rabbitmqctl's arguments become a path and a JSON body, mgmt_run serves them
 * exactly as it serves HTTP (as the broker's operator, with every right), and the API's status
 * and {"error","reason"} become the admin answer's reason token, which warrenctl turns into
 * rabbitmqctl's exit status. `api METHOD PATH` (with the request body, if any) is the door
 * itself: the API's status and JSON answer, unchanged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_internal.h"
#include "mgmt.h"

#define PATH_MAX_LEN 2048

/* ---- calls --------------------------------------------------------------------------------- */

int admin_api_path(char *out, size_t cap, const char *fmt, ...)
{
    size_t used = 0;
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && f[1] == 's') {
            f++;
            const char *s = va_arg(ap, const char *);
            int n = mgmt_path_encode(s, strlen(s), out + used, cap - used);
            if (n < 0)
                goto too_long;
            used += (size_t)n;
            continue;
        }
        if (used + 2 > cap)
            goto too_long;
        out[used++] = *f;
    }
    va_end(ap);
    out[used] = '\0';
    return 0;
too_long:
    va_end(ap);
    return -1;
}

unsigned admin_api_call(const struct admin_request *req, const char *method, const char *path, json_t *body,
                        json_t **reply)
{
    *reply = NULL;
    return mgmt_run(req->mgmt, method, path, body, reply);
}

static bool success(unsigned status)
{
    return status >= 200 && status < 300;
}

/* The API's reason text for an error answer ("Object Not Found: Not Found" when both differ). */
static void reason_text(const json_t *reply, char *out, size_t cap)
{
    const char *error = json_string_value(json_object_get(reply, "error"));
    const char *reason = json_string_value(json_object_get(reply, "reason"));
    if (error && reason && strcmp(error, reason) != 0 && strcmp(error, "bad_request") != 0)
        snprintf(out, cap, "%s: %s", error, reason);
    else
        snprintf(out, cap, "%s", reason ? reason : error ? error : "no answer");
}

json_t *admin_api_failed(unsigned status, const json_t *reply)
{
    char text[400];
    reason_text(reply, text, sizeof text);
    switch (status) {
    case 400:
        return admin_error("invalid", "%s", text);
    case 404:
        return admin_error("not_found", "%s", text);
    case 405:
        return admin_error("usage", "%s", text);
    case 409:
        return admin_error("already_exists", "%s", text);
    default:
        return admin_error("internal", "HTTP %u: %s", status, text);
    }
}

/* GET path's status (the answer dropped). */
static unsigned probe(const struct admin_request *req, const char *path)
{
    json_t *reply;
    unsigned status = admin_api_call(req, "GET", path, NULL, &reply);
    json_decref(reply);
    return status;
}

bool admin_api_vhost_exists(const struct admin_request *req, const char *vhost)
{
    char path[PATH_MAX_LEN];
    /* "/api/vhosts/" would be the list of vhosts: an empty name is never one. */
    return *vhost && admin_api_path(path, sizeof path, "/api/vhosts/%s", vhost) == 0 && probe(req, path) == 200;
}

/* The user's API object (GET /api/users/NAME), or NULL when there is no such user. */
static json_t *get_user(const struct admin_request *req, const char *name)
{
    char path[PATH_MAX_LEN];
    json_t *reply = NULL;
    if (*name && admin_api_path(path, sizeof path, "/api/users/%s", name) == 0
        && admin_api_call(req, "GET", path, NULL, &reply) == 200)
        return reply;
    json_decref(reply);
    return NULL;
}

static json_t *no_such_user(const char *user)
{
    return admin_error("no_such_user", "User \"%s\" does not exist", user);
}

static json_t *no_such_vhost(const char *vhost)
{
    return admin_error("no_such_vhost", "Virtual host \"%s\" does not exist", vhost);
}

static json_t *path_too_long(void)
{
    return admin_error("invalid", "a name is too long");
}

/* Runs one change; {"ok":true} on success, else the mapped error. Takes body. */
static json_t *change(const struct admin_request *req, const char *method, const char *path, json_t *body)
{
    json_t *reply;
    unsigned status = admin_api_call(req, method, path, body, &reply);
    json_decref(body);
    json_t *answer = success(status) ? admin_ok() : admin_api_failed(status, reply);
    json_decref(reply);
    return answer;
}

/* ---- users --------------------------------------------------------------------------------- */

static json_t *cmd_add_user(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 2, 2, 2, "add_user USER PASSWORD");
    if (usage)
        return usage;
    const char *user = req->args[0].s;
    char path[PATH_MAX_LEN];
    if (!*user || admin_api_path(path, sizeof path, "/api/users/%s", user) != 0)
        return admin_error("invalid", "invalid user name \"%s\"", user);
    json_t *existing = get_user(req, user);
    if (existing) {
        json_decref(existing);
        return admin_error("already_exists", "User \"%s\" already exists", user);
    }
    return change(req, "PUT", path, json_pack("{s:s%,s:s}", "password", req->args[1].s, req->args[1].len, "tags", ""));
}

/* delete_user USER / delete_vhost NAME: DELETE the object at path_format; a missing one is
 * missing(name)'s error. */
static json_t *delete_named(struct admin_request *req, const char *usage_text, const char *path_format,
                            json_t *(*missing)(const char *name))
{
    json_t *usage = admin_want_args(req, 1, 1, 1, usage_text);
    if (usage)
        return usage;
    const char *name = req->args[0].s;
    char path[PATH_MAX_LEN];
    if (!*name || admin_api_path(path, sizeof path, path_format, name) != 0)
        return missing(name);
    json_t *reply;
    unsigned status = admin_api_call(req, "DELETE", path, NULL, &reply);
    json_t *answer = success(status) ? admin_ok() : status == 404 ? missing(name) : admin_api_failed(status, reply);
    json_decref(reply);
    return answer;
}

static json_t *cmd_delete_user(struct admin_request *req)
{
    return delete_named(req, "delete_user USER", "/api/users/%s", no_such_user);
}

/* change_password and set_user_tags: PUT the user back with one part changed, the other kept
 * (a PUT sets both the password and the tags). */
static json_t *update_user(struct admin_request *req, bool password)
{
    json_t *usage = password ? admin_want_args(req, 2, 2, 2, "change_password USER PASSWORD")
                             : admin_want_args(req, 1, ADMIN_MAX_ARGS, ADMIN_MAX_ARGS, "set_user_tags USER [TAG ...]");
    if (usage)
        return usage;
    const char *user = req->args[0].s;
    char path[PATH_MAX_LEN];
    json_t *existing = get_user(req, user);
    if (!existing || admin_api_path(path, sizeof path, "/api/users/%s", user) != 0) {
        json_decref(existing);
        return no_such_user(user);
    }
    json_t *body;
    if (password) {
        body = json_pack("{s:s%,s:O}", "password", req->args[1].s, req->args[1].len, "tags",
                         json_object_get(existing, "tags"));
    } else {
        json_t *tags = json_array();
        for (size_t i = 1; i < req->nargs; i++) {
            if (!*req->args[i].s || strchr(req->args[i].s, ',')) {
                json_decref(tags);
                json_decref(existing);
                return admin_error("invalid", "a tag must be non-empty and hold no comma");
            }
            json_array_append_new(tags, json_string(req->args[i].s));
        }
        body = json_pack("{s:O,s:O,s:o}", "password_hash", json_object_get(existing, "password_hash"),
                         "hashing_algorithm", json_object_get(existing, "hashing_algorithm"), "tags", tags);
    }
    json_decref(existing);
    return change(req, "PUT", path, body);
}

static json_t *cmd_change_password(struct admin_request *req)
{
    return update_user(req, true);
}

static json_t *cmd_set_user_tags(struct admin_request *req)
{
    return update_user(req, false);
}

/* ---- permissions and vhosts ------------------------------------------------------------------ */

/* set_permissions USER CONF WRITE READ and clear_permissions USER, on the request's vhost. The
 * API answers 404 for a missing user and a missing vhost alike: each is looked up first. */
static json_t *permissions(struct admin_request *req, bool set)
{
    json_t *usage = set ? admin_want_args(req, 4, 4, 4, "set_permissions [-p VHOST] USER CONF WRITE READ")
                        : admin_want_args(req, 1, 1, 1, "clear_permissions [-p VHOST] USER");
    if (usage)
        return usage;
    const char *user = req->args[0].s;
    json_t *existing = get_user(req, user);
    if (!existing)
        return no_such_user(user);
    json_decref(existing);
    if (!admin_api_vhost_exists(req, req->vhost))
        return no_such_vhost(req->vhost);
    char path[PATH_MAX_LEN];
    if (admin_api_path(path, sizeof path, "/api/permissions/%s/%s", req->vhost, user) != 0)
        return path_too_long();
    if (set)
        return change(req, "PUT", path,
                      json_pack("{s:s,s:s,s:s}", "configure", req->args[1].s, "write", req->args[2].s, "read",
                                req->args[3].s));
    json_t *reply;
    unsigned status = admin_api_call(req, "DELETE", path, NULL, &reply);
    /* RabbitMQ treats clearing an absent grant as done. */
    json_t *answer = success(status) || status == 404 ? admin_ok() : admin_api_failed(status, reply);
    json_decref(reply);
    return answer;
}

static json_t *cmd_set_permissions(struct admin_request *req)
{
    return permissions(req, true);
}

static json_t *cmd_clear_permissions(struct admin_request *req)
{
    return permissions(req, false);
}

static json_t *cmd_add_vhost(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 1, 1, 1, "add_vhost NAME");
    if (usage)
        return usage;
    const char *name = req->args[0].s;
    char path[PATH_MAX_LEN];
    if (!*name || strlen(name) > 255 || admin_api_path(path, sizeof path, "/api/vhosts/%s", name) != 0)
        return admin_error("invalid", "invalid virtual host name \"%s\" (1 to 255 bytes)", name);
    if (admin_api_vhost_exists(req, name))
        return admin_error("already_exists", "Virtual host \"%s\" already exists", name);
    return change(req, "PUT", path, NULL);
}

static json_t *cmd_delete_vhost(struct admin_request *req)
{
    return delete_named(req, "delete_vhost NAME", "/api/vhosts/%s", no_such_vhost);
}

/* ---- policies and vhost limits ---------------------------------------------------------------- */

/* An option of the request as a string ("options": {"priority": "5"}), or NULL. */
static const char *option(const struct admin_request *req, const char *name)
{
    return json_string_value(json_object_get(req->options, name));
}

/* set_policy / set_operator_policy [-p VHOST] [--priority N] [--apply-to A] NAME PATTERN
 * DEFINITION -> PUT /api/{kind}/VHOST/NAME {"pattern","definition","priority","apply-to"}. */
static json_t *set_policy(struct admin_request *req, const char *kind, const char *usage_text)
{
    json_t *usage = admin_want_args(req, 3, 3, 3, usage_text);
    if (usage)
        return usage;
    const char *name = req->args[0].s, *priority_text = option(req, "priority");
    const char *apply_to = option(req, "apply-to");
    json_int_t priority = 0;
    if (priority_text) {
        char *end;
        long long v = strtoll(priority_text, &end, 10);
        if (!*priority_text || *end || v < -2147483648LL || v > 2147483647LL)
            return admin_error("invalid", "the priority must be an integer, not \"%s\"", priority_text);
        priority = (json_int_t)v;
    }
    json_error_t error;
    json_t *definition = json_loads(req->args[2].s, 0, &error);
    if (!json_is_object(definition)) {
        json_decref(definition);
        return admin_error("invalid", "the definition must be a JSON object: %s", definition ? "" : error.text);
    }
    if (!*name) {
        json_decref(definition);
        return admin_error("invalid", "a policy needs a name");
    }
    if (!admin_api_vhost_exists(req, req->vhost)) {
        json_decref(definition);
        return no_such_vhost(req->vhost);
    }
    char path[PATH_MAX_LEN], format[64];
    snprintf(format, sizeof format, "/api/%s/%%s/%%s", kind);
    if (admin_api_path(path, sizeof path, format, req->vhost, name) != 0) {
        json_decref(definition);
        return path_too_long();
    }
    return change(req, "PUT", path,
                  json_pack("{s:s,s:o,s:I,s:s}", "pattern", req->args[1].s, "definition", definition, "priority",
                            priority, "apply-to", apply_to ? apply_to : "all"));
}

/* clear_policy / clear_operator_policy [-p VHOST] NAME -> DELETE /api/{kind}/VHOST/NAME. */
static json_t *clear_policy(struct admin_request *req, const char *kind, const char *usage_text)
{
    json_t *usage = admin_want_args(req, 1, 1, 1, usage_text);
    if (usage)
        return usage;
    if (!admin_api_vhost_exists(req, req->vhost))
        return no_such_vhost(req->vhost);
    char path[PATH_MAX_LEN], format[64];
    snprintf(format, sizeof format, "/api/%s/%%s/%%s", kind);
    if (!*req->args[0].s)
        return admin_error("not_found", "no policy named \"\"");
    if (admin_api_path(path, sizeof path, format, req->vhost, req->args[0].s) != 0)
        return path_too_long();
    return change(req, "DELETE", path, NULL);
}

static json_t *cmd_set_policy(struct admin_request *req)
{
    return set_policy(req, "policies",
                      "set_policy [-p VHOST] [--priority N] [--apply-to queues|exchanges|all] NAME PATTERN DEFINITION");
}

static json_t *cmd_clear_policy(struct admin_request *req)
{
    return clear_policy(req, "policies", "clear_policy [-p VHOST] NAME");
}

static json_t *cmd_set_operator_policy(struct admin_request *req)
{
    return set_policy(req, "operator-policies",
                      "set_operator_policy [-p VHOST] [--priority N] [--apply-to queues|exchanges|all] NAME PATTERN "
                      "DEFINITION");
}

static json_t *cmd_clear_operator_policy(struct admin_request *req)
{
    return clear_policy(req, "operator-policies", "clear_operator_policy [-p VHOST] NAME");
}

/* The limits of one vhost or user as the API holds them: GET format (one %s: the owner) answers
 * [{"vhost"|"user": ..., "value": {"max-connections": N, ...}}] (empty when none). The owner
 * must exist (the caller checks). NULL after setting *fail. */
static json_t *limits_of(const struct admin_request *req, const char *format, const char *owner, json_t **fail)
{
    char path[PATH_MAX_LEN];
    if (admin_api_path(path, sizeof path, format, owner) != 0) {
        *fail = path_too_long();
        return NULL;
    }
    json_t *reply;
    unsigned status = admin_api_call(req, "GET", path, NULL, &reply);
    if (status != 200 || !json_is_array(reply)) {
        *fail = admin_api_failed(status == 200 ? 500 : status, reply);
        json_decref(reply);
        return NULL;
    }
    json_t *value = json_object_get(json_array_get(reply, 0), "value");
    json_t *limits = json_is_object(value) ? json_incref(value) : json_object();
    json_decref(reply);
    return limits;
}

/* One API call per limit named in limits: PUT {"value": V} (put) or DELETE on format (two %s:
 * the owner, then the limit's name), stopping at the first failure. {"ok":true} or that
 * failure's answer. The vhost and user limit commands are this loop over different paths. */
static json_t *limit_calls(const struct admin_request *req, const char *format, const char *owner, json_t *limits,
                           bool put)
{
    const char *name;
    json_t *value;
    json_object_foreach(limits, name, value) {
        char path[PATH_MAX_LEN];
        if (!*name)
            return admin_error("invalid", "a limit needs a name");
        if (admin_api_path(path, sizeof path, format, owner, name) != 0)
            return path_too_long();
        json_t *result = change(req, put ? "PUT" : "DELETE", path, put ? json_pack("{s:O}", "value", value) : NULL);
        if (!json_is_true(json_object_get(result, "ok")))
            return result;
        json_decref(result);
    }
    return admin_ok();
}

/* The DEFINITION argument of set_vhost_limits and set_user_limits: a JSON object, or NULL after
 * setting *fail. */
static json_t *limits_argument(const char *text, json_t **fail)
{
    json_error_t error;
    json_t *definition = json_loads(text, 0, &error);
    if (json_is_object(definition))
        return definition;
    json_decref(definition);
    *fail = admin_error("invalid", "the definition must be a JSON object: %s", definition ? "" : error.text);
    return NULL;
}

static const char VHOST_LIMITS[] = "/api/vhost-limits/%s", VHOST_LIMIT[] = "/api/vhost-limits/%s/%s";
static const char USER_LIMITS[] = "/api/user-limits/%s", USER_LIMIT[] = "/api/user-limits/%s/%s";

/* set_vhost_limits [-p VHOST] '{"max-connections": 10, "max-queues": 5}': one PUT per limit. */
static json_t *cmd_set_vhost_limits(struct admin_request *req)
{
    json_t *answer = admin_want_args(req, 1, 1, 1, "set_vhost_limits [-p VHOST] DEFINITION");
    json_t *definition = answer ? NULL : limits_argument(req->args[0].s, &answer);
    if (!definition)
        return answer;
    answer = admin_api_vhost_exists(req, req->vhost) ? limit_calls(req, VHOST_LIMIT, req->vhost, definition, true)
                                                     : no_such_vhost(req->vhost);
    json_decref(definition);
    return answer;
}

/* clear_vhost_limits [-p VHOST]: one DELETE per limit in force. */
static json_t *cmd_clear_vhost_limits(struct admin_request *req)
{
    json_t *answer = admin_want_args(req, 0, 0, 0, "clear_vhost_limits [-p VHOST]");
    if (answer)
        return answer;
    if (!admin_api_vhost_exists(req, req->vhost))
        return no_such_vhost(req->vhost);
    json_t *limits = limits_of(req, VHOST_LIMITS, req->vhost, &answer);
    if (limits)
        answer = limit_calls(req, VHOST_LIMIT, req->vhost, limits, false);
    json_decref(limits);
    return answer;
}

/* list_vhost_limits [-p VHOST]: {"ok":true,"limits":{...}}. (--global is a list: admin_lists.c.) */
static json_t *cmd_list_vhost_limits(struct admin_request *req)
{
    if (json_is_true(json_object_get(req->options, "global")))
        return NULL;
    json_t *answer = admin_want_args(req, 0, 0, 0, "list_vhost_limits [-p VHOST] [--global]");
    if (answer)
        return answer;
    if (!admin_api_vhost_exists(req, req->vhost))
        return no_such_vhost(req->vhost);
    json_t *limits = limits_of(req, VHOST_LIMITS, req->vhost, &answer);
    return limits ? json_pack("{s:b,s:o}", "ok", 1, "limits", limits) : answer;
}

/* The user named by the first argument, when it exists; else NULL after setting *fail. */
static const char *limited_user(const struct admin_request *req, json_t **fail)
{
    json_t *user = get_user(req, req->args[0].s);
    if (!user) {
        *fail = no_such_user(req->args[0].s);
        return NULL;
    }
    json_decref(user);
    return req->args[0].s;
}

/* set_user_limits USER '{"max-connections": 10, "max-channels": 50}': one PUT per limit. */
static json_t *cmd_set_user_limits(struct admin_request *req)
{
    json_t *answer = admin_want_args(req, 2, 2, 2, "set_user_limits USER DEFINITION");
    json_t *definition = answer ? NULL : limits_argument(req->args[1].s, &answer);
    if (!definition)
        return answer;
    const char *user = limited_user(req, &answer);
    if (user)
        answer = limit_calls(req, USER_LIMIT, user, definition, true);
    json_decref(definition);
    return answer;
}

/* clear_user_limits USER NAME|all: one DELETE, or one per limit in force for "all". */
static json_t *cmd_clear_user_limits(struct admin_request *req)
{
    json_t *answer = admin_want_args(req, 2, 2, 2, "clear_user_limits USER NAME|all");
    const char *user = answer ? NULL : limited_user(req, &answer);
    if (!user)
        return answer;
    json_t *limits = strcmp(req->args[1].s, "all") == 0 ? limits_of(req, USER_LIMITS, user, &answer)
                                                        : json_pack("{s:n}", req->args[1].s);
    if (limits)
        answer = limit_calls(req, USER_LIMIT, user, limits, false);
    json_decref(limits);
    return answer;
}

/* list_user_limits USER: {"ok":true,"limits":{...}}. Without USER it is a list (admin_lists.c):
 * a "user limits" row per user with limits, as rabbitmqctl list_user_limits --global. */
static json_t *cmd_list_user_limits(struct admin_request *req)
{
    if (req->nargs == 0)
        return NULL;
    json_t *answer = admin_want_args(req, 1, 1, 1, "list_user_limits [USER]");
    const char *user = answer ? NULL : limited_user(req, &answer);
    if (!user)
        return answer;
    json_t *limits = limits_of(req, USER_LIMITS, user, &answer);
    return limits ? json_pack("{s:b,s:o}", "ok", 1, "limits", limits) : answer;
}

/* ---- definitions and the raw door ------------------------------------------------------------- */

/* The request body parsed as JSON; NULL after setting *fail (none, or not JSON). */
static json_t *request_body(const struct admin_request *req, json_t **fail)
{
    json_error_t error;
    json_t *body = req->body_bytes ? json_loadb(req->body, req->body_bytes, JSON_DECODE_ANY, &error) : NULL;
    if (!body)
        *fail = req->body_bytes ? admin_error("invalid", "the body is not JSON: %s (line %d, column %d)", error.text,
                                              error.line, error.column)
                                : admin_error("usage", "this command needs a JSON body");
    return body;
}

/* export_definitions: {"ok":true,"definitions":{...}} (warrenctl writes the file). */
static json_t *cmd_export_definitions(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 1, 0, "export_definitions FILE|-");
    if (usage)
        return usage;
    json_t *reply;
    unsigned status = admin_api_call(req, "GET", "/api/definitions", NULL, &reply);
    json_t *answer = status == 200 && reply ? json_pack("{s:b,s:O}", "ok", 1, "definitions", reply)
                                            : admin_api_failed(status, reply);
    json_decref(reply);
    return answer;
}

/* import_definitions: the request body is the definitions document. */
static json_t *cmd_import_definitions(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 1, 0, "import_definitions FILE|-");
    if (usage)
        return usage;
    json_t *fail = NULL;
    json_t *body = request_body(req, &fail);
    if (!body)
        return fail;
    if (!json_is_object(body)) {
        json_decref(body);
        return admin_error("invalid", "the definitions must be a JSON object");
    }
    return change(req, "POST", "/api/definitions", body);
}

/* api METHOD PATH (the request body, if any): {"ok":true,"status":N,"body":...}, or an error
 * answer carrying the same status and body. */
static json_t *cmd_api(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 2, 2, 2, "api METHOD PATH [BODY]");
    if (usage)
        return usage;
    static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
    const char *method = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcasecmp(req->args[0].s, methods[i]) == 0)
            method = methods[i];
    if (!method)
        return admin_error("usage", "the method must be GET, PUT, POST or DELETE, not \"%s\"", req->args[0].s);
    const char *path = req->args[1].s;
    if (strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0)
        return admin_error("usage", "the path must start with /api/, not \"%s\"", path);
    if (strlen(path) >= 4096)
        return path_too_long();
    json_t *fail = NULL, *body = NULL;
    if (req->body_bytes && !(body = request_body(req, &fail)))
        return fail;
    json_t *reply;
    unsigned status = admin_api_call(req, method, path, body, &reply);
    json_decref(body);
    json_t *answer = success(status) ? admin_ok() : admin_api_failed(status, reply);
    json_object_set_new(answer, "status", json_integer(status));
    json_object_set_new(answer, "body", reply ? reply : json_null());
    return answer;
}

static const struct {
    const char *command;
    json_t *(*run)(struct admin_request *req);
} commands[] = {
    {"add_user", cmd_add_user},
    {"delete_user", cmd_delete_user},
    {"change_password", cmd_change_password},
    {"set_user_tags", cmd_set_user_tags},
    {"set_permissions", cmd_set_permissions},
    {"clear_permissions", cmd_clear_permissions},
    {"add_vhost", cmd_add_vhost},
    {"delete_vhost", cmd_delete_vhost},
    {"set_policy", cmd_set_policy},
    {"clear_policy", cmd_clear_policy},
    {"set_operator_policy", cmd_set_operator_policy},
    {"clear_operator_policy", cmd_clear_operator_policy},
    {"set_vhost_limits", cmd_set_vhost_limits},
    {"clear_vhost_limits", cmd_clear_vhost_limits},
    {"list_vhost_limits", cmd_list_vhost_limits},
    {"set_user_limits", cmd_set_user_limits},
    {"clear_user_limits", cmd_clear_user_limits},
    {"list_user_limits", cmd_list_user_limits},
    {"export_definitions", cmd_export_definitions},
    {"import_definitions", cmd_import_definitions},
    {"api", cmd_api},
};

json_t *admin_api_command(struct admin_request *req)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].command, req->command) == 0)
            return commands[i].run(req);
    return NULL;
}
