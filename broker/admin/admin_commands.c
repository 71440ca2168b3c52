/* broker/admin/admin_commands.c: the admin request format, the dispatch, and the commands that
 * act on the broker itself rather than through the management API (status, environment, stop,
 * reload_tls, purge_queue, delete_queue, cluster_status, join_cluster, forget_cluster_node).
 *
 * A request is one JSON object on one line:
 *   {"command": "add_user", "args": ["bob", "secret"], "vhost": "/", "options": {},
 *    "body_bytes": 0}
 * "args" (strings), "vhost" (default "/"), "options" (an object of command options, e.g.
 * {"priority": "1", "apply-to": "queues"} for set_policy) and "body_bytes" (how many bytes of a
 * request body follow the newline: a JSON document for `api` and import_definitions, at most
 * ADMIN_MAX_BODY) are optional. Strings are parsed by jansson: valid UTF-8, no lone surrogate
 * escapes; "\u0000" is accepted so that a NUL byte in a name is reported as such.
 * The answer is one JSON object: {"ok": true, ...} or
 *   {"ok": false, "reason": "no_such_user", "error": "User \"bob\" does not exist"}
 * where reason is one of: bad_request, usage, unknown_command, no_such_user, no_such_vhost,
 * not_found, already_exists, invalid, internal. The list_* commands live in admin_lists.c, the
 * commands that are management API calls in admin_api.c.
 * `stop` answers {"ok":true,"pid":N} and then starts the same clean shutdown as SIGTERM;
 * `environment` answers {"ok":true,"environment":{"bind":"0.0.0.0","port":5672,...}}, the
 * effective settings under their config-file names (default_pass is never shown);
 * `reload_tls` answers {"ok":true} once the certificate, key and CA files were read again for
 * new connections (open ones keep theirs), or {"ok":false,"reason":"invalid",...} when they
 * cannot be loaded (the previous ones stay in force). */
#include "admin_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "admin.h"
#ifdef WARREN_HAVE_CLUSTER
#include "cluster_node.h"
#include "cluster_queues.h"
#endif
#include "introspect.h"
#include "log.h"
#include "mgmt.h"
#include "mgmt_internal.h"
#include "node_info.h"
#include "server.h"

json_t *admin_error(const char *reason, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* vsnprintf may cut a name inside a UTF-8 sequence: mgmt_string mends it. */
    return json_pack("{s:b,s:s,s:o}", "ok", 0, "reason", reason, "error", mgmt_string(text, strlen(text)));
}

json_t *admin_ok(void)
{
    return json_pack("{s:b}", "ok", 1);
}

json_t *admin_want_args(const struct admin_request *req, size_t min, size_t max, size_t names, const char *usage)
{
    if (req->nargs < min || req->nargs > max)
        return admin_error("usage", "usage: %s", usage);
    for (size_t i = 0; i < names && i < req->nargs; i++)
        if (strlen(req->args[i].s) != req->args[i].len)
            return admin_error("invalid", "argument %zu holds a NUL byte", i + 1);
    return NULL;
}

static json_t *cmd_status(const struct admin_request *req)
{
    struct introspect_status s;
    memset(&s, 0, sizeof s);
    introspect_status(req->server, &s);
    json_t *status = json_object();
    json_object_set_new(status, "version", json_string(s.version ? s.version : ""));
    json_object_set_new(status, "pid", json_integer((json_int_t)s.pid));
    json_object_set_new(status, "uptime_ms", json_integer((json_int_t)s.uptime_ms));
    json_object_set_new(status, "data_dir", s.data_dir ? json_string(s.data_dir) : json_null());
    json_object_set_new(status, "listener", s.listener ? json_string(s.listener) : json_null());
    const struct {
        const char *name;
        uint64_t value;
    } counts[] = {
        {"connections", s.connections},
        {"queues", s.queues},
        {"exchanges", s.exchanges},
        {"messages_ready", s.messages_ready},
        {"messages_unacknowledged", s.messages_unacknowledged},
        {"messages_paged", s.messages_paged},
        {"store_segments", s.store_segments},
        {"store_bytes", s.store_bytes},
        {"store_live_messages", s.store_live_messages},
        {"store_syncs", s.store_syncs},
        {"store_compactions", s.store_compactions},
        {"message_memory_bytes", s.message_memory_bytes},
        {"memory_high_watermark", s.memory_high_watermark},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        json_object_set_new(status, counts[i].name, json_integer((json_int_t)counts[i].value));
    json_object_set_new(status, "memory_alarm", json_boolean(s.memory_alarm));
    json_object_set_new(status, "disk_alarm", json_boolean(s.disk_alarm));
    return json_pack("{s:b,s:o}", "ok", 1, "status", status);
}

/* stop: answered first; admin.c calls the stop handler once the answer is queued. */
static json_t *cmd_stop(struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 0, 0, "stop");
    if (usage)
        return usage;
    if (!req->context->stop)
        return admin_error("internal", "this broker cannot be stopped through the admin socket");
    log_info("admin: stop requested");
    req->stop_requested = true;
    return json_pack("{s:b,s:I}", "ok", 1, "pid", (json_int_t)getpid());
}

static json_t *string_or_empty(const char *s) { return json_string(s ? s : ""); }

/* The TLS part of `environment`: the AMQPS and HTTPS ports (0: none), the files ("" when
 * unset) and the checks. */
static void add_tls_environment(json_t *environment, const struct server *server, const struct server_config *cfg)
{
    static const char *const login_from[] = {"common_name", "subject_alternative_name", "distinguished_name"};
    const struct tls_settings *tls = &cfg->tls;
    unsigned versions = tls->versions ? tls->versions : TLS_VERSION_12 | TLS_VERSION_13;
    char version_text[32];
    snprintf(version_text, sizeof version_text, "%s%s%s", versions & TLS_VERSION_12 ? "tlsv1.2" : "",
             versions == (TLS_VERSION_12 | TLS_VERSION_13) ? "," : "", versions & TLS_VERSION_13 ? "tlsv1.3" : "");
    json_object_set_new(environment, "plain_listener", json_boolean(cfg->plain_listener));
    json_object_set_new(environment, "tls_port", json_integer(server_tls_port(server)));
    int32_t https_port = cfg->management_tls_port;
    if (https_port < 0) /* main.c's default */
        https_port = server_tls_context(server) && cfg->management_port ? 15671 : 0;
    json_object_set_new(environment, "management_tls_port", json_integer(https_port));
    json_object_set_new(environment, "tls_certfile", string_or_empty(tls->certfile));
    json_object_set_new(environment, "tls_keyfile", string_or_empty(tls->keyfile));
    json_object_set_new(environment, "tls_cacertfile", string_or_empty(tls->cacertfile));
    json_object_set_new(environment, "tls_verify_peer", json_boolean(tls->verify_peer));
    json_object_set_new(environment, "tls_fail_if_no_peer_cert", json_boolean(tls->fail_if_no_peer_cert));
    json_object_set_new(environment, "tls_versions", json_string(version_text));
    json_object_set_new(environment, "tls_ciphers", string_or_empty(tls->ciphers));
    json_object_set_new(environment, "tls_handshake_timeout", json_integer(tls->handshake_timeout_ms));
    json_object_set_new(environment, "tls_cert_login_from", json_string(login_from[tls->login_from]));
}

/* The cluster keys of `environment`: the node's name in force (the default one when unset), the
 * others as set ("" when unset). */
static void add_cluster_environment(json_t *environment, const struct server *server, const struct server_config *cfg)
{
    (void)server;
    const struct cluster_settings *cs = &cfg->cluster;
    json_object_set_new(environment, "node_name", json_string(node_info_name())); /* the configured one, or the default */
    json_object_set_new(environment, "cluster_port", json_integer(cs->port));
    json_object_set_new(environment, "cluster_peers", string_or_empty(cs->peers));
    json_object_set_new(environment, "cluster_address", string_or_empty(cs->address));
    json_object_set_new(environment, "cluster_election_timeout_ms", json_integer(cs->election_timeout_ms));
    json_object_set_new(environment, "cluster_propose_timeout_ms", json_integer(cs->propose_timeout_ms));
    json_object_set_new(environment, "cluster_snapshot_log_bytes", json_integer((json_int_t)cs->snapshot_log_bytes));
    json_object_set_new(environment, "cluster_secret_file", string_or_empty(cs->secret_file));
}

/* environment: what the broker runs with, after defaults, config file and flags; the port is
 * the one bound (so port 0 shows the one picked) and memory_high_watermark the bytes in force. */
static json_t *cmd_environment(const struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 0, 0, "environment");
    if (usage)
        return usage;
    const struct server_config *cfg = server_config(req->server);
    struct introspect_status status;
    memset(&status, 0, sizeof status);
    introspect_status(req->server, &status);
    uint16_t port = server_port(req->server);
    json_t *environment = json_pack(
        "{s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:b,s:I,s:I,s:I,s:I}",
        "bind", cfg->bind_address ? cfg->bind_address : "", "port", (json_int_t)(port ? port : cfg->port),
        "data_dir", cfg->data_dir ? cfg->data_dir : "", "log_level", log_level_name(log_get_level()),
        "channel_max", (json_int_t)cfg->channel_max, "frame_max", (json_int_t)cfg->frame_max,
        "heartbeat", (json_int_t)cfg->heartbeat, "handshake_timeout", (json_int_t)cfg->handshake_timeout_ms,
        "max_message_size", (json_int_t)cfg->max_message_size,
        "default_user", cfg->default_user ? cfg->default_user : "",
        "loopback_only", (int)cfg->default_user_loopback_only,
        "memory_high_watermark", (json_int_t)status.memory_high_watermark,
        "disk_free_limit", (json_int_t)cfg->disk_free_limit, "segment_bytes", (json_int_t)cfg->segment_bytes,
        "queue_ram_messages", (json_int_t)cfg->queue_ram_messages);
    json_object_set_new(environment, "consumer_timeout", json_integer((json_int_t)cfg->consumer_timeout_ms));
    json_object_set_new(environment, "queue_ram_bytes", json_integer((json_int_t)cfg->queue_ram_bytes));
    json_object_set_new(environment, "flow_queue_bytes", json_integer((json_int_t)cfg->flow_queue_bytes));
    json_object_set_new(environment, "management_port", json_integer(cfg->management_port));
    json_object_set_new(environment, "prometheus_port", json_integer(cfg->prometheus_port));
    json_object_set_new(environment, "collect_statistics_interval", json_integer(cfg->stats_interval_ms));
    add_tls_environment(environment, req->server, cfg);
    add_cluster_environment(environment, req->server, cfg);
    return json_pack("{s:b,s:o}", "ok", 1, "environment", environment);
}

/* reload_tls: see the file comment. */
static json_t *cmd_reload_tls(const struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 0, 0, "reload_tls");
    if (usage)
        return usage;
    char err[512];
    if (server_reload_tls(req->server, err, sizeof err) != 0)
        return admin_error("invalid", "%s", err);
    if (req->context->reload_tls)
        req->context->reload_tls(req->context->reload_tls_data);
    return json_pack("{s:b}", "ok", 1);
}

/* purge_queue NAME / delete_queue NAME: {"ok":true,"messages":N}. */
static json_t *cmd_queue_action(const struct admin_request *req, bool delete)
{
    json_t *usage = admin_want_args(req, 1, 1, 0, delete ? "delete_queue NAME" : "purge_queue NAME");
    if (usage)
        return usage;
    if (!*req->vhost || !access_vhost_exists(introspect_access(req->server), req->vhost))
        return admin_error("no_such_vhost", "Virtual host \"%s\" does not exist", req->vhost);
    const struct admin_arg *name = &req->args[0];
    uint64_t messages = 0;
    int rc = -ENOENT;
    if (name->len <= 255) {
        struct proto_bytes bytes = {(const uint8_t *)name->s, (uint32_t)name->len};
        rc = delete ? introspect_delete_queue(req->server, req->vhost, bytes, &messages)
                    : introspect_purge_queue(req->server, req->vhost, bytes, &messages);
    }
    if (rc == -ENOENT) /* RabbitMQ's wording for a missing queue (NOT_FOUND - no queue 'q' in vhost '/'). */
        return admin_error("not_found", "no queue '%.*s' in vhost '%s'", (int)(name->len > 255 ? 255 : name->len),
                           name->s, req->vhost);
    if (rc != 0)
        return admin_error("internal", "%s", strerror(-rc));
    log_info("admin: %s queue '%s' in vhost '%s' (%llu messages)", delete ? "deleted" : "purged", name->s,
             req->vhost, (unsigned long long)messages);
    return json_pack("{s:b,s:I}", "ok", 1, "messages", (json_int_t)messages);
}

/* cluster_status: {"ok":true,"cluster":{"enabled":false}} without a cluster, else the node's
 * view: {"enabled":true,"node_name","state","term","leader" (its address, null when unknown),
 * "commit_index","last_applied","applied_commands","voters" (how many members vote),
 * "members":[{"id","address","name" (its node_name, null until it sent it),"role" (voter,
 * standby, spare),"voter","leader","self"}...]}: the Raft configuration this node holds (empty on
 * a node that waits to join). */
static json_t *cmd_cluster_status(const struct admin_request *req)
{
    json_t *usage = admin_want_args(req, 0, 0, 0, "cluster_status");
    if (usage)
        return usage;
    json_t *cluster = json_object();
    struct cluster_node *node = server_cluster(req->server);
    json_object_set_new(cluster, "enabled", json_boolean(node != NULL));
#ifdef WARREN_HAVE_CLUSTER
    if (node) {
        struct cluster_status *st = calloc(1, sizeof *st);
        if (!st) {
            json_decref(cluster);
            return admin_error("internal", "out of memory");
        }
        cluster_node_status(node, st);
        json_t *members = json_array(), *leader = json_null();
        size_t voters = 0;
        for (size_t i = 0; i < st->member_count && i < CLUSTER_MEMBERS_MAX; i++) {
            const struct cluster_member *m = &st->members[i];
            const char *name = cluster_queues_member_name(server_cluster_queues(req->server), m->address);
            json_t *member = json_pack("{s:I,s:s,s:s,s:b,s:b,s:b}", "id", (json_int_t)m->id, "address", m->address,
                                       "role", m->role, "voter", m->voter, "leader", m->leader, "self", m->self);
            json_object_set_new(member, "name", name ? json_string(name) : json_null());
            json_array_append_new(members, member);
            voters += m->voter;
            if (m->leader) {
                json_decref(leader);
                leader = json_string(m->address);
            }
        }
        json_object_set_new(cluster, "node_name", json_string(st->node_name));
        json_object_set_new(cluster, "state", json_string(st->state ? st->state : "unavailable"));
        json_object_set_new(cluster, "term", json_integer((json_int_t)st->term));
        json_object_set_new(cluster, "leader", leader);
        json_object_set_new(cluster, "commit_index", json_integer((json_int_t)st->commit_index));
        json_object_set_new(cluster, "last_applied", json_integer((json_int_t)st->last_applied));
        json_object_set_new(cluster, "applied_commands", json_integer((json_int_t)st->applied_commands));
        json_object_set_new(cluster, "members", members);
        json_object_set_new(cluster, "voters", json_integer((json_int_t)voters));
        free(st);
    }
#endif
    return json_pack("{s:b,s:o}", "ok", 1, "cluster", cluster);
}

#ifdef WARREN_HAVE_CLUSTER
/* How long one join_cluster or forget_cluster_node keeps the node asking: warrenctl calls again
 * every half second while it waits, so a wish whose asker went away lapses soon. */
#define CLUSTER_CHANGE_RENEW_MS 5000

#ifdef WARREN_HAVE_CLUSTER
/* True when address is in node's configuration. */
static bool is_member(struct cluster_node *node, const char *address)
{
    struct cluster_status st;
    cluster_node_status(node, &st);
    for (size_t i = 0; i < st.member_count; i++)
        if (strcmp(st.members[i].address, address) == 0)
            return true;
    return false;
}
#endif
#endif

/* join_cluster ADDRESS (run on the node that joins; ADDRESS: any member's cluster address) and
 * forget_cluster_node ADDRESS (run on a member that stays): start or renew the change and answer
 * at once with {"ok":true,"done":bool} ("done": this node's configuration shows it). The caller
 * asks again until done (warrenctl does, up to its timeout); asking again is harmless, and a
 * change already made answers done. forget_cluster_node also has the quorum queues treat the
 * node as down (qq.node_down) when it starts the removal. Refused ("invalid"): no cluster, a bad
 * address, join naming this node or a cluster this node is not part of, forget naming this node
 * or run on a node that is not a voter. */
static json_t *cmd_cluster_change(const struct admin_request *req, bool join)
{
    json_t *usage = admin_want_args(req, 1, 1, 1, join ? "join_cluster HOST:PORT" : "forget_cluster_node HOST:PORT");
    if (usage)
        return usage;
#ifdef WARREN_HAVE_CLUSTER
    struct cluster_node *node = server_cluster(req->server);
    if (!node)
        return admin_error("invalid", "this node is not part of a cluster (cluster_port is 0; docs/cluster.md)");
    char err[512] = "";
    const char *address = req->args[0].s;
    if (!join && is_member(node, address) && strcmp(address, cluster_node_address(node)) != 0) {
        /* RabbitMQ's forget_cluster_node refuses a running node: forgetting one deletes the
         * classic queues it is the home of (cluster_classic.h) while it still serves them. */
        int running = cluster_queues_member_running(server_cluster_queues(req->server), address);
        if (running == 1)
            return admin_error("invalid", "node %s is running: stop it before forgetting it", address);
        if (running < 0) /* asked it: warrenctl asks again until done */
            return json_pack("{s:b,s:b}", "ok", 1, "done", 0);
    }
    int rc = join ? cluster_node_join(node, address, CLUSTER_CHANGE_RENEW_MS, err, sizeof err)
                  : cluster_node_remove(node, address, CLUSTER_CHANGE_RENEW_MS, err, sizeof err);
    if (rc < 0)
        return admin_error("invalid", "%s", err);
    if (!join && rc == CLUSTER_CHANGE_STARTED)
        cluster_queues_member_gone(server_cluster_queues(req->server), address);
    if (rc == CLUSTER_CHANGE_STARTED)
        log_info("admin: %s %s", join ? "joining the cluster through" : "forgetting cluster node", address);
    return json_pack("{s:b,s:b}", "ok", 1, "done", rc == CLUSTER_CHANGE_DONE);
#else
    return admin_error("invalid", "this warren was built without clustering");
#endif
}

json_t *admin_run(struct admin_request *req)
{
    const char *command = req->command;
    json_t *answer;
    if (strcmp(command, "status") == 0)
        answer = cmd_status(req);
    else if (strcmp(command, "stop") == 0)
        answer = cmd_stop(req);
    else if (strcmp(command, "environment") == 0)
        answer = cmd_environment(req);
    else if (strcmp(command, "reload_tls") == 0)
        answer = cmd_reload_tls(req);
    else if (strcmp(command, "purge_queue") == 0)
        answer = cmd_queue_action(req, false);
    else if (strcmp(command, "delete_queue") == 0)
        answer = cmd_queue_action(req, true);
    else if (strcmp(command, "cluster_status") == 0)
        answer = cmd_cluster_status(req);
    else if (strcmp(command, "join_cluster") == 0)
        answer = cmd_cluster_change(req, true);
    else if (strcmp(command, "forget_cluster_node") == 0)
        answer = cmd_cluster_change(req, false);
    else if (!(answer = admin_api_command(req)) && !(answer = admin_list(req)))
        answer = admin_error("unknown_command", "unknown command \"%s\"", command);
    return answer;
}

/* ---- the request ----------------------------------------------------------------------------- */

void admin_request_free(struct admin_request *req)
{
    for (size_t i = 0; i < req->nargs; i++)
        free(req->args[i].s);
    free(req->args);
    json_decref(req->doc);
    memset(req, 0, sizeof *req);
}

static char *copy_string(const json_t *v)
{
    size_t len = json_string_length(v);
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, json_string_value(v), len);
        s[len] = '\0';
    }
    return s;
}

json_t *admin_request_parse(struct admin_request *req, const struct admin_context *context, const char *line,
                            size_t len)
{
    memset(req, 0, sizeof *req);
    json_error_t error;
    /* jansson bounds the nesting depth (2048) and the line is at most ADMIN_MAX_REQUEST bytes. */
    json_t *doc = json_loadb(line, len, JSON_ALLOW_NUL, &error);
    if (!doc)
        return admin_error("bad_request", "the request is not JSON: %s", error.text);
    json_t *command = json_object_get(doc, "command");
    json_t *args = json_object_get(doc, "args");
    json_t *vhost = json_object_get(doc, "vhost");
    json_t *options = json_object_get(doc, "options");
    json_t *body_bytes = json_object_get(doc, "body_bytes");
    json_t *fail = NULL;
    if (!json_is_object(doc) || !json_is_string(command)
        || strlen(json_string_value(command)) != json_string_length(command))
        fail = admin_error("bad_request", "the request must be an object with a string \"command\"");
    else if ((args && !json_is_array(args) && !json_is_null(args))
             || (vhost && !json_is_string(vhost) && !json_is_null(vhost))
             || (options && !json_is_object(options) && !json_is_null(options))
             || (body_bytes && !json_is_integer(body_bytes) && !json_is_null(body_bytes)))
        fail = admin_error("bad_request", "\"args\" must be an array, \"vhost\" a string, \"options\" an object "
                                          "and \"body_bytes\" an integer");
    else if (json_is_string(vhost) && strlen(json_string_value(vhost)) != json_string_length(vhost))
        fail = admin_error("invalid", "the vhost name holds a NUL byte");
    else if (json_array_size(args) > ADMIN_MAX_ARGS)
        fail = admin_error("usage", "too many arguments (at most %d)", ADMIN_MAX_ARGS);
    else if (json_is_integer(body_bytes)
             && (json_integer_value(body_bytes) < 0 || json_integer_value(body_bytes) > ADMIN_MAX_BODY))
        fail = admin_error("bad_request", "\"body_bytes\" must be between 0 and %u", ADMIN_MAX_BODY);
    if (fail) {
        json_decref(doc);
        return fail;
    }
    req->doc = doc;
    req->server = context->server;
    req->mgmt = context->mgmt;
    req->context = context;
    req->command = json_string_value(command);
    req->vhost = json_is_string(vhost) ? json_string_value(vhost) : "/";
    req->options = json_is_object(options) ? options : NULL;
    req->body_bytes = json_is_integer(body_bytes) ? (size_t)json_integer_value(body_bytes) : 0;
    size_t nargs = json_array_size(args);
    req->args = calloc(nargs ? nargs : 1, sizeof *req->args);
    if (!req->args) {
        admin_request_free(req);
        return admin_error("internal", "out of memory");
    }
    for (size_t i = 0; i < nargs; i++) {
        json_t *arg = json_array_get(args, i);
        if (!json_is_string(arg)) {
            admin_request_free(req);
            return admin_error("bad_request", "every argument must be a string");
        }
        req->args[i].len = json_string_length(arg);
        if (!(req->args[i].s = copy_string(arg))) {
            admin_request_free(req);
            return admin_error("internal", "out of memory");
        }
        req->nargs++;
    }
    return NULL;
}
