/* broker/admin/admin_commands.c: the admin request format and the commands that change things.
 *
 * A request is one JSON object:
 *   {"command": "add_user", "args": ["bob", "secret"], "vhost": "/", "options": {}}
 * "args" (strings) and "vhost" (default "/") are optional; "options" is accepted and ignored.
 * The answer is one JSON object: {"ok": true, ...} or
 *   {"ok": false, "reason": "no_such_user", "error": "User \"bob\" does not exist"}
 * where reason is one of: bad_request, usage, unknown_command, no_such_user, no_such_vhost,
 * not_found, already_exists, invalid, internal. The list_* commands live in admin_lists.c.
 * `stop` answers {"ok":true,"pid":N} and then starts the same clean shutdown as SIGTERM;
 * `environment` answers {"ok":true,"environment":{"bind":"0.0.0.0","port":5672,...}}, the
 * effective settings under their config-file names (default_pass is never shown). */
#include "admin_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "introspect.h"
#include "log.h"
#include "server.h"

#define MAX_ARGS 256

void admin_error(struct json_out *out, const char *reason, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_begin_object(out);
    json_keyz(out, "ok");
    json_bool(out, false);
    json_keyz(out, "reason");
    json_stringz(out, reason);
    json_keyz(out, "error");
    json_stringz(out, text);
    json_end_object(out);
}

static void ok_begin(struct json_out *out)
{
    json_begin_object(out);
    json_keyz(out, "ok");
    json_bool(out, true);
}

static void ok(struct json_out *out)
{
    ok_begin(out);
    json_end_object(out);
}

/* Checks the argument count and that the first `names` arguments (user, vhost and pattern
 * names, which become C strings) hold no NUL byte. */
static bool want_args(const struct admin_request *req, size_t min, size_t max, size_t names, const char *usage,
                      struct json_out *out)
{
    if (req->nargs < min || req->nargs > max) {
        admin_error(out, "usage", "usage: %s", usage);
        return false;
    }
    for (size_t i = 0; i < names && i < req->nargs; i++)
        if (strlen(req->args[i].s) != req->args[i].len) {
            admin_error(out, "invalid", "argument %zu holds a NUL byte", i + 1);
            return false;
        }
    return true;
}

/* After a change through access_*: save it and apply its consequences. */
static void changed(const struct admin_request *req, struct json_out *out)
{
    int rc = introspect_access_changed(req->server);
    if (rc != 0) {
        log_error("admin: the access change could not be saved: %s", strerror(-rc));
        admin_error(out, "internal", "the change was applied but could not be saved: %s", strerror(-rc));
        return;
    }
    ok(out);
}

/* Answers for the errors every access_* call may return. */
static void access_failed(struct json_out *out, int rc, const char *user, const char *vhost)
{
    if (rc == -ENOENT && user)
        admin_error(out, "no_such_user", "User \"%s\" does not exist", user);
    else if (rc == -ENOENT && vhost)
        admin_error(out, "no_such_vhost", "Virtual host \"%s\" does not exist", vhost);
    else if (rc == -EEXIST && user)
        admin_error(out, "already_exists", "User \"%s\" already exists", user);
    else if (rc == -EEXIST && vhost)
        admin_error(out, "already_exists", "Virtual host \"%s\" already exists", vhost);
    else if (rc == -EINVAL)
        admin_error(out, "invalid", "invalid argument");
    else
        admin_error(out, "internal", "%s", strerror(rc < 0 ? -rc : EIO));
}

static struct access *db(const struct admin_request *req)
{
    return introspect_access(req->server);
}

static void cmd_status(const struct admin_request *req, struct json_out *out)
{
    struct introspect_status s;
    memset(&s, 0, sizeof s);
    introspect_status(req->server, &s);
    ok_begin(out);
    json_keyz(out, "status");
    json_begin_object(out);
    json_keyz(out, "version");
    json_stringz(out, s.version);
    json_keyz(out, "pid");
    json_uint(out, s.pid);
    json_keyz(out, "uptime_ms");
    json_uint(out, s.uptime_ms);
    json_keyz(out, "data_dir");
    json_stringz(out, s.data_dir);
    json_keyz(out, "listener");
    json_stringz(out, s.listener);
    json_keyz(out, "connections");
    json_uint(out, s.connections);
    json_keyz(out, "queues");
    json_uint(out, s.queues);
    json_keyz(out, "exchanges");
    json_uint(out, s.exchanges);
    json_keyz(out, "messages_ready");
    json_uint(out, s.messages_ready);
    json_keyz(out, "messages_unacknowledged");
    json_uint(out, s.messages_unacknowledged);
    json_keyz(out, "messages_paged");
    json_uint(out, s.messages_paged);
    json_keyz(out, "store_segments");
    json_uint(out, s.store_segments);
    json_keyz(out, "store_bytes");
    json_uint(out, s.store_bytes);
    json_keyz(out, "store_live_messages");
    json_uint(out, s.store_live_messages);
    json_keyz(out, "store_syncs");
    json_uint(out, s.store_syncs);
    json_keyz(out, "store_compactions");
    json_uint(out, s.store_compactions);
    json_keyz(out, "message_memory_bytes");
    json_uint(out, s.message_memory_bytes);
    json_keyz(out, "memory_high_watermark");
    json_uint(out, s.memory_high_watermark);
    json_keyz(out, "memory_alarm");
    json_bool(out, s.memory_alarm);
    json_keyz(out, "disk_alarm");
    json_bool(out, s.disk_alarm);
    json_end_object(out);
    json_end_object(out);
}

/* stop: answered first; admin_execute calls the stop handler once the answer is written. */
static void cmd_stop(struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 0, 0, 0, "stop", out))
        return;
    if (!req->context->stop) {
        admin_error(out, "internal", "this broker cannot be stopped through the admin socket");
        return;
    }
    log_info("admin: stop requested");
    req->stop_requested = true;
    ok_begin(out);
    json_keyz(out, "pid");
    json_uint(out, (uint64_t)getpid());
    json_end_object(out);
}

/* environment: what the broker runs with, after defaults, config file and flags; the port is
 * the one bound (so port 0 shows the one picked) and memory_high_watermark the bytes in force. */
static void cmd_environment(const struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 0, 0, 0, "environment", out))
        return;
    const struct server_config *cfg = server_config(req->server);
    struct introspect_status status;
    memset(&status, 0, sizeof status);
    introspect_status(req->server, &status);
    uint16_t port = server_port(req->server);
    ok_begin(out);
    json_keyz(out, "environment");
    json_begin_object(out);
    json_keyz(out, "bind");
    json_stringz(out, cfg->bind_address ? cfg->bind_address : "");
    json_keyz(out, "port");
    json_uint(out, port ? port : cfg->port);
    json_keyz(out, "data_dir");
    json_stringz(out, cfg->data_dir ? cfg->data_dir : "");
    json_keyz(out, "log_level");
    json_stringz(out, log_level_name(log_get_level()));
    json_keyz(out, "channel_max");
    json_uint(out, cfg->channel_max);
    json_keyz(out, "frame_max");
    json_uint(out, cfg->frame_max);
    json_keyz(out, "heartbeat");
    json_uint(out, cfg->heartbeat);
    json_keyz(out, "handshake_timeout");
    json_uint(out, cfg->handshake_timeout_ms);
    json_keyz(out, "max_message_size");
    json_uint(out, cfg->max_message_size);
    json_keyz(out, "default_user");
    json_stringz(out, cfg->default_user ? cfg->default_user : "");
    json_keyz(out, "loopback_only");
    json_bool(out, cfg->default_user_loopback_only);
    json_keyz(out, "memory_high_watermark");
    json_uint(out, status.memory_high_watermark);
    json_keyz(out, "disk_free_limit");
    json_uint(out, cfg->disk_free_limit);
    json_keyz(out, "segment_bytes");
    json_uint(out, cfg->segment_bytes);
    json_keyz(out, "queue_ram_messages");
    json_uint(out, cfg->queue_ram_messages);
    json_end_object(out);
    json_end_object(out);
}

static bool vhost_known(const struct admin_request *req, struct json_out *out)
{
    if (strlen(req->vhost) == 0 || !access_vhost_exists(db(req), req->vhost)) {
        admin_error(out, "no_such_vhost", "Virtual host \"%s\" does not exist", req->vhost);
        return false;
    }
    return true;
}

/* purge_queue NAME / delete_queue NAME: {"ok":true,"messages":N}. */
static void cmd_queue_action(const struct admin_request *req, bool delete, struct json_out *out)
{
    if (!want_args(req, 1, 1, 0, delete ? "delete_queue NAME" : "purge_queue NAME", out) || !vhost_known(req, out))
        return;
    const struct admin_arg *name = &req->args[0];
    uint64_t messages = 0;
    int rc = -ENOENT;
    if (name->len <= 255) {
        struct proto_bytes bytes = {(const uint8_t *)name->s, (uint32_t)name->len};
        rc = delete ? introspect_delete_queue(req->server, req->vhost, bytes, &messages)
                    : introspect_purge_queue(req->server, req->vhost, bytes, &messages);
    }
    if (rc == -ENOENT) {
        /* RabbitMQ's wording for a missing queue (NOT_FOUND - no queue 'q' in vhost '/'). */
        admin_error(out, "not_found", "no queue '%.*s' in vhost '%s'", (int)(name->len > 255 ? 255 : name->len),
                    name->s, req->vhost);
        return;
    }
    if (rc != 0) {
        admin_error(out, "internal", "%s", strerror(-rc));
        return;
    }
    log_info("admin: %s queue '%s' in vhost '%s' (%llu messages)", delete ? "deleted" : "purged", name->s,
             req->vhost, (unsigned long long)messages);
    ok_begin(out);
    json_keyz(out, "messages");
    json_uint(out, messages);
    json_end_object(out);
}

static void cmd_add_user(const struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 2, 2, 2, "add_user USER PASSWORD", out))
        return;
    const char *user = req->args[0].s;
    int rc = access_add_user(db(req), user, req->args[1].s);
    if (rc == -EINVAL)
        admin_error(out, "invalid", "invalid user name \"%s\"", user);
    else if (rc != 0)
        access_failed(out, rc, user, NULL);
    else {
        log_info("admin: added user '%s'", user);
        changed(req, out);
    }
}

static void cmd_delete_user(const struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 1, 1, 1, "delete_user USER", out))
        return;
    int rc = access_delete_user(db(req), req->args[0].s);
    if (rc != 0)
        access_failed(out, rc, req->args[0].s, NULL);
    else {
        log_info("admin: deleted user '%s'", req->args[0].s);
        changed(req, out);
    }
}

static void cmd_change_password(const struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 2, 2, 2, "change_password USER PASSWORD", out))
        return;
    int rc = access_change_password(db(req), req->args[0].s, req->args[1].s);
    if (rc != 0)
        access_failed(out, rc, req->args[0].s, NULL);
    else {
        log_info("admin: changed the password of user '%s'", req->args[0].s);
        changed(req, out);
    }
}

static void cmd_set_user_tags(const struct admin_request *req, struct json_out *out)
{
    if (!want_args(req, 1, MAX_ARGS, MAX_ARGS, "set_user_tags USER [TAG ...]", out))
        return;
    const char *tags[MAX_ARGS];
    for (size_t i = 1; i < req->nargs; i++)
        tags[i - 1] = req->args[i].s;
    if (!access_user_exists(db(req), req->args[0].s)) {
        access_failed(out, -ENOENT, req->args[0].s, NULL);
        return;
    }
    int rc = access_set_user_tags(db(req), req->args[0].s, tags, req->nargs - 1);
    if (rc == -EINVAL)
        admin_error(out, "invalid", "a tag must be non-empty and hold no comma");
    else if (rc != 0)
        access_failed(out, rc, req->args[0].s, NULL);
    else {
        log_info("admin: set the tags of user '%s'", req->args[0].s);
        changed(req, out);
    }
}

/* set_permissions USER CONF WRITE READ and clear_permissions USER, on the request's vhost. */
static void cmd_permissions(const struct admin_request *req, bool set, struct json_out *out)
{
    if (set ? !want_args(req, 4, 4, 4, "set_permissions [-p VHOST] USER CONF WRITE READ", out)
            : !want_args(req, 1, 1, 1, "clear_permissions [-p VHOST] USER", out))
        return;
    const char *user = req->args[0].s;
    if (!access_user_exists(db(req), user)) {
        access_failed(out, -ENOENT, user, NULL);
        return;
    }
    if (!vhost_known(req, out))
        return;
    int rc;
    char why[256] = "";
    if (set)
        rc = access_set_permissions(db(req), req->vhost, user, req->args[1].s, req->args[2].s, req->args[3].s, why,
                                    sizeof why);
    else
        rc = access_clear_permissions(db(req), req->vhost, user);
    if (rc == -ENOENT && !set) {
        /* RabbitMQ treats clearing an absent grant as done. */
        ok(out);
        return;
    }
    if (rc == -EINVAL && why[0])
        admin_error(out, "invalid", "%s", why);
    else if (rc != 0)
        access_failed(out, rc, user, NULL);
    else {
        log_info("admin: %s the permissions of user '%s' in vhost '%s'", set ? "set" : "cleared", user, req->vhost);
        changed(req, out);
    }
}

static void cmd_vhost(const struct admin_request *req, bool add, struct json_out *out)
{
    if (!want_args(req, 1, 1, 1, add ? "add_vhost NAME" : "delete_vhost NAME", out))
        return;
    const char *name = req->args[0].s;
    int rc = add ? access_add_vhost(db(req), name) : access_delete_vhost(db(req), name);
    if (rc == -EINVAL)
        admin_error(out, "invalid", "invalid virtual host name \"%s\" (1 to 255 bytes)", name);
    else if (rc != 0)
        access_failed(out, rc, NULL, name);
    else {
        log_info("admin: %s vhost '%s'", add ? "added" : "deleted", name);
        changed(req, out);
    }
}

static void dispatch(struct admin_request *req, const char *command, struct json_out *out)
{
    if (strcmp(command, "status") == 0)
        cmd_status(req, out);
    else if (strcmp(command, "stop") == 0)
        cmd_stop(req, out);
    else if (strcmp(command, "environment") == 0)
        cmd_environment(req, out);
    else if (strcmp(command, "purge_queue") == 0)
        cmd_queue_action(req, false, out);
    else if (strcmp(command, "delete_queue") == 0)
        cmd_queue_action(req, true, out);
    else if (strcmp(command, "add_user") == 0)
        cmd_add_user(req, out);
    else if (strcmp(command, "delete_user") == 0)
        cmd_delete_user(req, out);
    else if (strcmp(command, "change_password") == 0)
        cmd_change_password(req, out);
    else if (strcmp(command, "set_user_tags") == 0)
        cmd_set_user_tags(req, out);
    else if (strcmp(command, "set_permissions") == 0)
        cmd_permissions(req, true, out);
    else if (strcmp(command, "clear_permissions") == 0)
        cmd_permissions(req, false, out);
    else if (strcmp(command, "add_vhost") == 0)
        cmd_vhost(req, true, out);
    else if (strcmp(command, "delete_vhost") == 0)
        cmd_vhost(req, false, out);
    else if (!admin_list(req, command, out))
        admin_error(out, "unknown_command", "unknown command \"%s\"", command);
}

/* A NUL-terminated copy of a JSON string, or NULL when out of memory. */
static char *copy_string(const struct json_value *v)
{
    char *s = malloc(v->str_len + 1);
    if (s) {
        memcpy(s, v->str, v->str_len);
        s[v->str_len] = '\0';
    }
    return s;
}

void admin_execute(const struct admin_context *context, const char *request, size_t len, struct json_out *out)
{
    struct json_doc doc;
    const char *error;
    if (json_parse(&doc, request, len, &error) != 0) {
        admin_error(out, "bad_request", "the request is not JSON: %s", error);
        return;
    }
    const struct json_value *command = json_member(doc.root, "command");
    const struct json_value *args = json_member(doc.root, "args");
    const struct json_value *vhost = json_member(doc.root, "vhost");
    struct admin_request req = {.server = context->server, .context = context, .vhost = "/"};
    char *command_name = NULL, *vhost_name = NULL;
    if (doc.root->type != JSON_OBJECT || !command || command->type != JSON_STRING
        || memchr(command->str, '\0', command->str_len)) {
        admin_error(out, "bad_request", "the request must be an object with a string \"command\"");
        goto done;
    }
    if ((args && args->type != JSON_ARRAY && args->type != JSON_NULL)
        || (vhost && vhost->type != JSON_STRING && vhost->type != JSON_NULL)) {
        admin_error(out, "bad_request", "\"args\" must be an array and \"vhost\" a string");
        goto done;
    }
    if (vhost && vhost->type == JSON_STRING && memchr(vhost->str, '\0', vhost->str_len)) {
        admin_error(out, "invalid", "the vhost name holds a NUL byte");
        goto done;
    }
    size_t nargs = args && args->type == JSON_ARRAY ? args->count : 0;
    if (nargs > MAX_ARGS) {
        admin_error(out, "usage", "too many arguments (at most %d)", MAX_ARGS);
        goto done;
    }
    req.args = calloc(nargs ? nargs : 1, sizeof *req.args);
    command_name = copy_string(command);
    if (vhost && vhost->type == JSON_STRING)
        req.vhost = vhost_name = copy_string(vhost);
    if (!req.args || !command_name || !req.vhost) {
        admin_error(out, "internal", "out of memory");
        goto done;
    }
    const struct json_value *arg = nargs ? args->child : NULL;
    for (; arg; arg = arg->next, req.nargs++) {
        if (arg->type != JSON_STRING) {
            admin_error(out, "bad_request", "every argument must be a string");
            goto done;
        }
        req.args[req.nargs].len = arg->str_len;
        if (!(req.args[req.nargs].s = copy_string(arg))) {
            admin_error(out, "internal", "out of memory");
            goto done;
        }
    }
    dispatch(&req, command_name, out);
    if (req.stop_requested)
        context->stop(context->stop_data);
done:
    for (size_t i = 0; i < req.nargs; i++)
        free(req.args[i].s);
    free(req.args);
    free(command_name);
    free(vhost_name);
    json_doc_free(&doc);
}
