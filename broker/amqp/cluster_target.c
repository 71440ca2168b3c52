/* broker/amqp/cluster_target.c: applying the metadata group's committed commands to the
 * server's model (the vocabulary is in cluster_target.h); the replicated state's export and
 * import are in cluster_state.c. Runs on the loop's thread, from the cluster node's callbacks. */
#include "cluster_target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "channel_internal.h"
#include "cluster_queues.h"
#include "log.h"
#include "names.h"
#include "persistence.h"
#include "policy.h"
#include "random.h"
#include "server_internal.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"

static int malformed(struct reply_error *err, struct proto_bytes op)
{
    return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "cluster: malformed command '%.*s'", (int)op.len, (const char *)op.ptr);
}

/* vhost.add / vhost.delete: the access database holds the names; server_vhosts_sync brings the
 * vhost entries in line (closing the connections of a deleted one). Adding one that exists
 * succeeds and changes nothing. */
static int apply_vhost(struct server *server, bool add, const char *name, struct reply_error *err)
{
    int rc = add ? access_add_vhost(server->access, name) : access_delete_vhost(server->access, name);
    if (rc == -ENOENT)
        return reply_fail(err, SPEC_NOT_FOUND, 0, "no vhost '%s'", name);
    if (rc == -EINVAL)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, 0, "invalid vhost name '%s'", name);
    if (rc != 0 && rc != -EEXIST)
        return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "out of memory");
    server_vhosts_sync(server);
    return 0;
}

static int apply_exchange(struct actor *who, struct vhost *vhost, struct proto_bytes op, struct cluster_fields *f,
                          struct reply_error *err)
{
    if (proto_bytes_is(op, "exchange.declare")) {
        struct exchange_declare d = {
            .name = cluster_get_string(f, "name"), .type = cluster_get_string(f, "type"), .arguments = cluster_get_table(f, "arguments"),
            .durable = cluster_get_bool(f, "durable"), .auto_delete = cluster_get_bool(f, "auto_delete"),
            .internal = cluster_get_bool(f, "internal"),
        };
        return f->bad ? malformed(err, op) : declare_exchange_as(who, vhost, &d, err);
    }
    if (proto_bytes_is(op, "exchange.delete")) {
        struct proto_bytes name = cluster_get_string(f, "name");
        bool if_unused = cluster_get_bool(f, "if_unused");
        return f->bad ? malformed(err, op) : delete_exchange_as(who, vhost, name, if_unused, err);
    }
    bool unbind = proto_bytes_is(op, "exchange.unbind");
    struct proto_bytes destination = cluster_get_string(f, "destination"), source = cluster_get_string(f, "source");
    struct proto_bytes key = cluster_get_string(f, "routing_key"), arguments = cluster_get_table(f, "arguments");
    if (f->bad)
        return malformed(err, op);
    return bind_as(who, vhost, true, destination, source, key, arguments, NULL, unbind, err);
}

static int apply_queue(struct actor *who, struct vhost *vhost, struct proto_bytes op, struct cluster_fields *f,
                       struct meta_result *out, struct reply_error *err)
{
    if (proto_bytes_is(op, "queue.declare")) {
        struct queue_declare d = {
            .name = cluster_get_string(f, "name"), .arguments = cluster_get_table(f, "arguments"), .durable = cluster_get_bool(f, "durable"),
            .auto_delete = cluster_get_bool(f, "auto_delete"), .server_named = cluster_get_bool(f, "server_named"),
        };
        struct queue *q;
        /* An empty name would make the model invent one, differently on every node. */
        if (f->bad || d.name.len == 0)
            return malformed(err, op);
        if (cluster_get_bool(f, "exclusive")) {
            /* An exclusive queue of a connection on its home (cluster_classic.h): the home has it
             * already; elsewhere a copy owned by nobody here routes publishes to it. */
            if (vhost_queue_find(vhost, d.name))
                return 0;
            d.exclusive = true;
            d.owner = cluster_foreign_owner();
        }
        return declare_queue_as(who, vhost, &d, &q, err);
    }
    if (proto_bytes_is(op, "queue.delete")) {
        struct proto_bytes name = cluster_get_string(f, "name");
        uint32_t count = 0;
        if (f->bad)
            return malformed(err, op);
        struct queue *q = vhost_queue_find(vhost, name);
        /* the queue's own owner: an exclusive one goes too (its copy on another node, or the home's
         * after a restart); the trusted actor checks nothing else */
        if (delete_queue_as(who, vhost, name, q ? queue_owner(q) : NULL, false, false, &count, err) != 0)
            return -1;
        snprintf(out->text, sizeof out->text, "%u", count);
        return 0;
    }
    bool unbind = proto_bytes_is(op, "queue.unbind");
    struct proto_bytes queue = cluster_get_string(f, "queue"), exchange = cluster_get_string(f, "exchange");
    struct proto_bytes key = cluster_get_string(f, "routing_key"), arguments = cluster_get_table(f, "arguments");
    if (f->bad || queue.len == 0)
        return malformed(err, op);
    struct queue *q = vhost_queue_find(vhost, queue); /* an exclusive one's binding goes as its owner's */
    return bind_as(who, vhost, false, queue, exchange, key, arguments, q ? queue_owner(q) : NULL, unbind, err);
}

/* access.set: the access database as a whole. */
static int apply_access(struct server *server, struct cluster_fields *f, struct reply_error *err)
{
    struct proto_bytes state = cluster_get_table(f, "state");
    struct table_value origin, seq;
    if (!f->bad && table_find(f->args, "origin", &origin) == 1 && origin.type == TABLE_UINT64 &&
        table_find(f->args, "seq", &seq) == 1 && seq.type == TABLE_UINT64 && origin.v.u64 == server->access_origin &&
        seq.v.u64 < server->access_local_seq)
        return 0; /* this run's own, overtaken by a later change of its own that follows in the log */
    int rc = f->bad ? -EINVAL : access_import(server->access, state);
    if (rc == -ENOMEM)
        return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "out of memory");
    if (rc != 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "cluster: malformed access database");
    server_access_applied(server);
    cluster_queues_prune(server->replicas);
    return 0;
}

/* policy.set, policy.clear, vhost_limit.set on vhost. A refusal is the model's, the same on
 * every node (a clear of a policy the node lacks is 404). */
static int apply_policy(struct vhost *vhost, struct proto_bytes op, struct cluster_fields *f, struct reply_error *err)
{
    char kind[16] = "", name[NAME_MAX_LEN + 1] = "", pattern[4096] = "", apply_to[32] = "", limit[32] = "";
    struct proto_bytes k = cluster_get_string(f, "kind");
    struct table_value v;
    if (proto_bytes_is(op, "vhost_limit.set")) {
        struct proto_bytes l = cluster_get_string(f, "limit");
        enum vhost_limit which;
        if (f->bad || l.len >= sizeof limit || table_find(f->args, "value", &v) != 1 || v.type != TABLE_INT64)
            return malformed(err, op);
        memcpy(limit, l.ptr, l.len);
        if (vhost_limit_parse(limit, &which) != 0)
            return malformed(err, op);
        vhost_limit_set(vhost, which, v.v.i64 < 0 ? -1 : v.v.i64);
        return 0;
    }
    struct proto_bytes n = cluster_get_string(f, "name");
    if (f->bad || k.len >= sizeof kind || n.len == 0 || memchr(n.ptr, 0, n.len))
        return malformed(err, op);
    memcpy(kind, k.ptr, k.len);
    memcpy(name, n.ptr, n.len);
    enum policy_kind which = strcmp(kind, "operator") == 0 ? POLICY_OPERATOR : POLICY_USER;
    if (proto_bytes_is(op, "policy.clear")) {
        if (vhost_policy_clear(vhost, which, name) != 0)
            return reply_fail(err, SPEC_NOT_FOUND, 0, "no policy '%s'", name);
        return 0;
    }
    struct proto_bytes a = cluster_get_string(f, "apply_to"), definition = cluster_get_table(f, "definition");
    struct table_value pv; /* a pattern may be longer than a name */
    struct proto_bytes p = {0};
    if (table_find(f->args, "pattern", &pv) == 1 && pv.type == TABLE_LONGSTR)
        p = pv.v.bytes;
    else
        f->bad = true;
    if (f->bad || p.len >= sizeof pattern || a.len >= sizeof apply_to || memchr(p.ptr, 0, p.len) ||
        memchr(a.ptr, 0, a.len) || table_find(f->args, "priority", &v) != 1 || v.type != TABLE_INT64)
        return malformed(err, op);
    memcpy(pattern, p.ptr, p.len);
    memcpy(apply_to, a.ptr, a.len);
    struct policy_spec spec = {name, pattern, a.len ? apply_to : NULL, v.v.i64, definition};
    char error[256];
    int rc = vhost_policy_set(vhost, which, &spec, error, sizeof error);
    if (rc == -1)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, 0, "%s", error);
    return rc == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, 0, "out of memory");
}

static int apply_command(struct server *server, const struct meta_command *cmd, struct meta_result *out,
                         struct reply_error *err)
{
    struct cluster_fields f = {.args = cmd->args};
    if (table_validate(cmd->args) != 0)
        return malformed(err, cmd->op);
    if (proto_bytes_is(cmd->op, "access.set"))
        return apply_access(server, &f, err);
    struct proto_bytes vname = cluster_get_string(&f, "vhost");
    char name[NAME_MAX_LEN + 1];
    if (f.bad || vname.len == 0 || memchr(vname.ptr, 0, vname.len))
        return malformed(err, cmd->op);
    memcpy(name, vname.ptr, vname.len);
    name[vname.len] = '\0';
    bool add = proto_bytes_is(cmd->op, "vhost.add");
    if (add || proto_bytes_is(cmd->op, "vhost.delete"))
        return apply_vhost(server, add, name, err);
    struct vhost_entry *e = server_vhost_entry(server, name, vname.len);
    if (!e)
        return reply_fail(err, SPEC_NOT_FOUND, 0, "no vhost '%s'", name);
    /* The trusted actor (no user) passes every permission check: the proposing node checked
     * them for its client before proposing. */
    struct actor who = {server->access, NULL, e->name};
    if (proto_bytes_is(cmd->op, "exchange.declare") || proto_bytes_is(cmd->op, "exchange.delete") ||
        proto_bytes_is(cmd->op, "exchange.bind") || proto_bytes_is(cmd->op, "exchange.unbind"))
        return apply_exchange(&who, e->vhost, cmd->op, &f, err);
    if (proto_bytes_is(cmd->op, "queue.declare") || proto_bytes_is(cmd->op, "queue.delete") ||
        proto_bytes_is(cmd->op, "queue.bind") || proto_bytes_is(cmd->op, "queue.unbind"))
        return apply_queue(&who, e->vhost, cmd->op, &f, out, err);
    if (proto_bytes_is(cmd->op, "policy.set") || proto_bytes_is(cmd->op, "policy.clear") ||
        proto_bytes_is(cmd->op, "vhost_limit.set"))
        return apply_policy(e->vhost, cmd->op, &f, err);
    return reply_fail(err, SPEC_NOT_IMPLEMENTED, 0, "cluster: unknown operation '%.*s'", (int)cmd->op.len,
                      (const char *)cmd->op.ptr);
}

/* What a queue.declare, queue.delete or vhost.delete means for the replicated quorum queues,
 * applied or replayed (their state is not saved with the model: cluster_node.h). A declare
 * counts when the model holds a quorum queue of that name afterwards; when replaying, that is
 * the model as saved, later than the entry, which can only differ from the model of the time for
 * a declare refused then and made good later, with no command for the queue in between. */
static void replicas_follow(struct server *server, const struct meta_command *cmd)
{
    struct cluster_fields f = {.args = cmd->args};
    if (!server->replicas || table_validate(cmd->args) != 0)
        return;
    struct proto_bytes vname = cluster_get_string(&f, "vhost");
    char vhost[NAME_MAX_LEN + 1];
    if (f.bad || vname.len == 0 || memchr(vname.ptr, 0, vname.len))
        return;
    memcpy(vhost, vname.ptr, vname.len);
    vhost[vname.len] = '\0';
    if (proto_bytes_is(cmd->op, "vhost.delete")) {
        cluster_queues_vhost_deleted(server->replicas, vhost);
        return;
    }
    if (proto_bytes_is(cmd->op, "access.set")) {
        cluster_queues_prune(server->replicas);
        return;
    }
    struct proto_bytes name = cluster_get_string(&f, "name");
    if (f.bad || name.len == 0)
        return;
    if (proto_bytes_is(cmd->op, "queue.delete")) {
        cluster_queues_deleted(server->replicas, vhost, name);
    } else if (proto_bytes_is(cmd->op, "queue.declare")) {
        struct vhost_entry *e = server_vhost_entry(server, vhost, vname.len);
        if (e)
            cluster_queues_declared(server->replicas, e->vhost, name, cluster_get_table(&f, "arguments"),
                                    cluster_get_string(&f, "home"));
    }
}

/* Every applied command moves the saved index, so the definitions are marked changed even when
 * the command changed nothing the blob holds (a transient object, a refusal): the index must
 * reach the disk with them. Re-applying a refusal after a restart that lost the index would be
 * harmless anyway, since applying is deterministic; marking it keeps replays short. The
 * quorum queues' commands (qq.*) change nothing the blob holds: their state is rebuilt from
 * the log (cluster_queues.h), so they neither move the index nor cost a write. */
void cluster_target_apply(void *ctx, uint64_t index, const struct meta_command *cmd, bool replay,
                          struct meta_result *out)
{
    struct server *server = ctx;
    struct reply_error err;
    memset(out, 0, sizeof *out);
    if (cluster_queues_apply(server->replicas, cmd, out))
        return;
    if (replay) {
        replicas_follow(server, cmd);
        return;
    }
    if (proto_bytes_is(cmd->op, "sync")) {
        /* A read barrier (declare_cluster.c): changes nothing, so nothing needs saving; a
         * restart that replays it replays a no-op. */
        server->cluster_index = index;
        return;
    }
    if (apply_command(server, cmd, out, &err) != 0) {
        out->status = err.code;
        snprintf(out->text, sizeof out->text, "%s", err.text);
        log_debug("cluster: entry %llu (%.*s) refused: %s", (unsigned long long)index, (int)cmd->op.len,
                  (const char *)cmd->op.ptr, err.text);
    }
    replicas_follow(server, cmd);
    server->cluster_index = index;
    if (server->persistence)
        persistence_definitions_changed(server->persistence);
}

/* ---- waiting for the changes one request made ---- */

struct cluster_wait {
    unsigned pending;     /* proposals not yet answered */
    bool open;            /* changes proposed now join it */
    int status;           /* the first failure's; 0: none */
    char text[sizeof(((struct meta_result *)0)->text)];
    cluster_wait_fn done; /* NULL: nobody waits (the wait is freed with its last proposal) */
    void *arg;
};

/* What a proposal's answer needs: its op for the log line, and the wait it joined. */
struct change {
    const char *op; /* a literal; NULL: the access database */
    struct cluster_wait *wait;
};

static void wait_finish(struct cluster_wait *w)
{
    if (w->done)
        w->done(w->arg, w->status, w->text);
    free(w);
}

static void change_proposed(void *arg, const struct meta_result *result)
{
    struct change *c = arg;
    bool failed = result->status != 0 && result->status != META_DUPLICATE;
    if (failed && c->op)
        log_warning("cluster: a change made here (%s) was refused or did not reach the cluster (%d %s)", c->op,
                    result->status, result->text);
    else if (failed)
        log_error("cluster: a change of users, vhosts or permissions made here did not reach the cluster (%d %s); "
                  "the next change sends the whole database again",
                  result->status, result->text);
    struct cluster_wait *w = c->wait;
    free(c);
    if (!w)
        return;
    if (failed && w->status == 0) {
        w->status = result->status;
        snprintf(w->text, sizeof w->text, "%s", result->text[0] ? result->text : "no quorum");
    }
    if (--w->pending == 0 && !w->open)
        wait_finish(w);
}

/* Proposes op (freeing args) with the wait w (NULL: none), counting it. */
static void propose_into(struct server *server, struct cluster_wait *w, const char *op, const char *label,
                         struct table_buf *args)
{
    struct change *c = malloc(sizeof *c);
    if (c) {
        *c = (struct change){label, w};
        if (w)
            w->pending++; /* before: an answer never comes inside the call, but if it did */
        if (cluster_node_propose(server->cluster, op, args, change_proposed, c) != 0)
            return;
        if (w)
            w->pending--;
        free(c);
    }
    log_error("cluster: out of memory proposing %s", op);
    if (w && w->status == 0) {
        w->status = -ENOMEM;
        snprintf(w->text, sizeof w->text, "out of memory");
    }
}

static void propose_change(struct server *server, const char *op, const char *label, struct table_buf *args)
{
    propose_into(server, server->cluster_wait, op, label, args);
}

void cluster_target_propose_change(struct server *server, const char *op, struct table_buf *args)
{
    propose_change(server, op, op, args);
    table_buf_free(args);
}

struct cluster_wait *cluster_wait_hold(struct server *server)
{
    struct cluster_wait *w = server->cluster_wait;
    if (w)
        w->pending++; /* released by cluster_wait_propose_held */
    return w;
}

void cluster_wait_propose_held(struct server *server, struct cluster_wait *w, const char *op, struct table_buf *args,
                               int status, const char *text)
{
    if (op && server->cluster)
        propose_into(server, w, op, op, args);
    else if (w && w->status == 0) {
        w->status = op ? -ECANCELED : status;
        snprintf(w->text, sizeof w->text, "%s", op ? "the node stops" : text);
    }
    table_buf_free(args);
    if (w && --w->pending == 0 && !w->open)
        wait_finish(w);
}

void cluster_target_propose_access(struct server *server)
{
    struct table_buf args = {0}, state = {0};
    struct table_value v = {.type = TABLE_TABLE};
    int rc = access_export(server->access, &state);
    v.v.bytes = (struct proto_bytes){state.data, (uint32_t)state.len};
    rc |= table_buf_put_string(&args, "vhost", proto_bytes_of("/")) | table_buf_put_field(&args, "state", 5, &v);
    while (!server->access_origin)
        if (random_bytes(&server->access_origin, sizeof server->access_origin) != 0)
            server->access_origin = (uint64_t)(uintptr_t)server; /* unique enough among live runs */
    struct table_value n = {.type = TABLE_UINT64};
    n.v.u64 = server->access_origin;
    rc |= table_buf_put_field(&args, "origin", 6, &n);
    n.v.u64 = ++server->access_local_seq;
    rc |= table_buf_put_field(&args, "seq", 3, &n);
    if (rc != 0)
        log_error("cluster: out of memory proposing a change of users, vhosts or permissions");
    else
        propose_change(server, "access.set", NULL, &args);
    table_buf_free(&args);
    table_buf_free(&state);
}

struct cluster_wait *cluster_wait_open(struct server *server)
{
    if (!server->cluster || server->cluster_wait)
        return NULL;
    struct cluster_wait *w = calloc(1, sizeof *w);
    if (w)
        w->open = true;
    server->cluster_wait = w;
    return w;
}

bool cluster_wait_close(struct server *server, struct cluster_wait *w, cluster_wait_fn done, void *arg)
{
    if (!w)
        return false;
    server->cluster_wait = NULL;
    w->open = false;
    if (w->pending == 0) {
        free(w);
        return false;
    }
    w->done = done;
    w->arg = arg;
    return done != NULL;
}

void cluster_target_init(struct cluster_target *target, struct server *server)
{
    *target = (struct cluster_target){
        .start_index = server->cluster_index,
        .apply = cluster_target_apply,
        .export_state = cluster_target_snapshot,
        .import_state = cluster_target_import,
        .ctx = server,
    };
}
