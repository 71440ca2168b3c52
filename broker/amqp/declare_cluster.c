/* broker/amqp/declare_cluster.c: the cluster path of the exchange and queue methods
 * (channel_internal.h, declare_cluster_method): check locally, propose to the metadata group,
 * wait, answer. The command's vocabulary is cluster_target.h's.
 *
 * What is checked here, before proposing: permissions, and the model's own rules against this
 * node's copy (syntax, reserved names, types, arguments, equivalence), so that what would be
 * refused costs no log entry. The copy may lag by commands in flight, so the apply on every node
 * decides again, with the same rules; the client gets that decision. What stays local, as
 * without a cluster: exclusive queues (they live and die with their connection, as in RabbitMQ)
 * with their bindings and deletion, and queue.purge.
 *
 * Passive declares read this node's copy, but only after a read barrier: a "sync" command
 * proposed and applied here, so the copy holds every command committed before the passive
 * declare arrived. A client told declare-ok (or delete-ok) by one node and asking another next
 * always sees that change, as with RabbitMQ's cluster-wide definitions. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channel_internal.h"
#include "cluster_queues.h"
#include "cluster_target.h"
#include "connection.h"
#include "log.h"
#include "queue.h"
#include "server.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"

/* A proposal waiting for its result; its connection handles no frame meanwhile. */
struct cluster_call {
    struct connection *conn;
    struct cluster_node *node;
    uint64_t handle;
    uint32_t method_id;
    uint16_t channel;
    bool no_wait;
    bool barrier;   /* a passive declare of call->name, answered here once "sync" is applied */
    bool depth_asked; /* a queue.declare's counts were asked of the queue's home (classic) */
    bool queues_handle; /* handle is cluster_queues' (a call to a classic queue's home) */
    bool counted;     /* a queue.delete of a queue homed elsewhere: count is its home's */
    bool if_unused, if_empty;
    uint32_t count;
    struct meta_result applied; /* then, the command's result, answered with once they come */
    uint8_t name_len;
    char name[256]; /* queue.declare: the queue, named here when server-named */
};

static int put_string(struct table_buf *t, const char *key, struct proto_bytes value)
{
    return table_buf_put_string(t, key, value);
}

/* A classic queue's home, recorded with its declare (cluster_classic.h): this node. */
static int put_home(struct table_buf *t, const struct channel *ch)
{
    struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
    return put_string(t, "home", proto_bytes_of(cluster_queues_node_name(cq)));
}

static int put_table(struct table_buf *t, const char *key, struct proto_bytes value)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = value;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* The -ok a successful command earns. 0, or -1 with err. */
static int send_ok(struct channel *ch, const struct cluster_call *call, const struct meta_result *result,
                   struct reply_error *err)
{
    struct spec_method ok = {0};
    switch (call->method_id) {
    case SPEC_QUEUE_DECLARE: {
        /* RabbitMQ's shortcut (an empty name means this queue) holds once the declare is done. */
        struct channel_names *names = channel_names(ch);
        if (names) {
            memcpy(names->last_queue, call->name, call->name_len);
            ch->last_queue_len = call->name_len;
        }
        if (call->no_wait)
            return 0;
        /* The counts are this node's copy's: a classic queue's own, a quorum queue's as the
         * cluster's log has made them here. */
        struct proto_bytes name = {(const uint8_t *)call->name, call->name_len};
        struct queue *q = vhost_queue_find(ch->vhost, name);
        struct queue_depth depth = {0};
        if (q)
            server_queue_depth(connection_server(ch->conn), ch->vhost, q, &depth);
        ok.id = SPEC_QUEUE_DECLARE_OK;
        ok.args.queue_declare_ok.queue = name;
        ok.args.queue_declare_ok.message_count = (uint32_t)depth.ready;
        ok.args.queue_declare_ok.consumer_count = (uint32_t)depth.consumers;
        break;
    }
    case SPEC_QUEUE_PURGE:
        if (call->no_wait)
            return 0;
        ok.id = SPEC_QUEUE_PURGE_OK;
        ok.args.queue_purge_ok.message_count = (uint32_t)strtoul(result->text, NULL, 10);
        break;
    case SPEC_QUEUE_DELETE:
        if (call->no_wait)
            return 0;
        ok.id = SPEC_QUEUE_DELETE_OK;
        ok.args.queue_delete_ok.message_count =
            call->counted ? call->count : (uint32_t)strtoul(result->text, NULL, 10);
        break;
    default: {
        static const uint32_t answers[][2] = {
            {SPEC_EXCHANGE_DECLARE, SPEC_EXCHANGE_DECLARE_OK}, {SPEC_EXCHANGE_DELETE, SPEC_EXCHANGE_DELETE_OK},
            {SPEC_EXCHANGE_BIND, SPEC_EXCHANGE_BIND_OK},       {SPEC_EXCHANGE_UNBIND, SPEC_EXCHANGE_UNBIND_OK},
            {SPEC_QUEUE_BIND, SPEC_QUEUE_BIND_OK},             {SPEC_QUEUE_UNBIND, SPEC_QUEUE_UNBIND_OK},
        };
        if (call->no_wait)
            return 0;
        for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
            if (answers[i][0] == call->method_id)
                ok.id = answers[i][1];
        break;
    }
    }
    return channel_send(ch, &ok) == 0 ? 0 : reply_fail(err, SPEC_INTERNAL_ERROR, call->method_id, "out of memory");
}

/* The read barrier of a passive declare was applied here: the local copy is current, so the
 * declare runs on it now. 0, or -1 with err. */
static int answer_passive(struct channel *ch, const struct cluster_call *call, struct reply_error *err)
{
    struct spec_method m = {.id = call->method_id};
    struct proto_bytes name = {(const uint8_t *)call->name, call->name_len};
    if (call->method_id == SPEC_EXCHANGE_DECLARE) {
        m.args.exchange_declare.exchange = name;
        m.args.exchange_declare.passive = true;
        m.args.exchange_declare.no_wait = call->no_wait;
        return channel_exchange_method_here(ch, &m, err);
    }
    m.args.queue_declare.queue = name;
    m.args.queue_declare.passive = true;
    m.args.queue_declare.no_wait = call->no_wait;
    return channel_queue_method_here(ch, &m, err);
}

static void on_done(void *arg, const struct meta_result *result);
static void abandon(void *arg);

/* A classic queue's home could not do it (down, or no such queue there): RabbitMQ's 404, "home
 * node ... is down or inaccessible" or "no queue ...", answered as the model's refusal. */
static void not_found_at_home(struct cluster_call *call, const char *text)
{
    struct meta_result failed = {.status = SPEC_NOT_FOUND};
    snprintf(failed.text, sizeof failed.text, "NOT_FOUND - %.200s", text);
    on_done(call, &failed);
}

/* The home of a classic queue answered with its counts (kept for server_queue_depth), or could
 * not: the declare is answered now. */
static void depth_done(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    struct cluster_call *call = a;
    if (result->status == 0)
        on_done(call, &call->applied);
    else
        not_found_at_home(call, result->text);
}

/* A queue.declare applied here whose queue is a classic one homed on another node: its counts
 * are asked of the home first (RabbitMQ's declare-ok gives the queue's own). True when asked
 * (the connection waits on). */
static bool ask_depth(struct channel *ch, struct cluster_call *call, const struct meta_result *result)
{
    if (call->depth_asked || call->method_id != SPEC_QUEUE_DECLARE || call->no_wait ||
        (result->status != 0 && result->status != META_DUPLICATE))
        return false;
    struct proto_bytes name = {(const uint8_t *)call->name, call->name_len};
    struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
    call->depth_asked = true;
    call->queues_handle = true;
    call->applied = *result;
    call->handle = cluster_queues_fetch_depth(cq, ch->vhost, vhost_queue_find(ch->vhost, name), depth_done, call, 0);
    if (call->handle == 0)
        return false;
    connection_wait(ch->conn, abandon, call);
    return true;
}

/* The wait of call's connection is over: it handles its next frames again. Returns the channel
 * to answer on, or NULL (call freed) when the connection closed meanwhile (broker shutdown,
 * vhost deleted): it answers nothing more. */
static struct channel *call_resumed(struct cluster_call *call)
{
    struct connection *conn = call->conn;
    connection_resume(conn);
    struct channel *ch = connection_channel(conn, call->channel);
    if (!ch || !connection_is_running(conn)) {
        free(call);
        return NULL;
    }
    return ch;
}

/* The command was applied on this node (or failed to be): answer the client, then let the
 * connection handle its next frames. */
static void on_done(void *arg, const struct meta_result *result)
{
    struct cluster_call *call = arg;
    struct channel *ch = call_resumed(call);
    if (!ch)
        return;
    if (ask_depth(ch, call, result))
        return;
    struct reply_error err;
    if (call->barrier && (result->status == 0 || result->status == META_DUPLICATE)) {
        if (answer_passive(ch, call, &err) == 0) {
            free(call);
            return;
        }
    } else if (result->status == 0 || result->status == META_DUPLICATE) {
        if (send_ok(ch, call, result, &err) == 0) {
            free(call);
            return;
        }
    } else if (result->status == -ETIMEDOUT) {
        /* Not applied here in time: no leader reachable, e.g. this node is in a minority. The
         * command may still be applied later. RabbitMQ has no exact counterpart (a minority
         * node of a pause_minority cluster refuses connections; a metadata store timeout is
         * raised as internal_error); 541 is its code for an operation the broker could not
         * carry out. Raised on the channel like any method's error, it closes the connection,
         * as RabbitMQ's channel does with a hard code. */
        reply_fail(&err, SPEC_INTERNAL_ERROR, call->method_id, "cluster: no quorum");
    } else if (result->status == -ECANCELED) {
        reply_fail(&err, SPEC_INTERNAL_ERROR, call->method_id, "cluster: node stopping");
    } else if (result->status < 0 || result->status > 999) {
        reply_fail(&err, SPEC_INTERNAL_ERROR, call->method_id, "cluster: command refused as malformed");
    } else {
        /* The model's refusal, the same on every node: its code and RabbitMQ's text. */
        err.code = (uint16_t)result->status;
        err.method_id = call->method_id;
        memcpy(err.text, result->text, sizeof err.text - 1);
        err.text[sizeof err.text - 1] = '\0';
    }
    channel_raise(ch, &err);
    free(call);
}

/* The connection went away while its command was pending: the command may still be applied,
 * but nobody waits for its result. */
static void abandon(void *arg)
{
    struct cluster_call *call = arg;
    if (call->queues_handle)
        cluster_queues_forget(server_cluster_queues(connection_server(call->conn)), call->handle);
    else
        cluster_node_forget(call->node, call->handle);
    free(call);
}

/* Proposes op with args (finished) for ch's method; the connection waits from now on. */
static int propose(struct channel *ch, const char *op, struct table_buf *args, struct cluster_call *call,
                   int encoded, struct reply_error *err)
{
    struct connection *conn = ch->conn;
    call->conn = conn;
    call->node = server_cluster(connection_server(conn));
    call->channel = ch->number;
    call->handle = encoded == 0 ? cluster_node_propose(call->node, op, args, on_done, call) : 0;
    table_buf_free(args);
    if (call->handle == 0) {
        uint32_t method_id = call->method_id;
        free(call);
        return reply_fail(err, SPEC_INTERNAL_ERROR, method_id, "out of memory");
    }
    connection_wait(conn, abandon, call);
    return 0;
}

static struct cluster_call *new_call(uint32_t method_id, bool no_wait)
{
    struct cluster_call *call = calloc(1, sizeof *call);
    if (call) {
        call->method_id = method_id;
        call->no_wait = no_wait;
    }
    return call;
}

/* A passive declare of name (already expanded): proposes the read barrier; the declare itself
 * runs when it is applied (answer_passive). */
static int propose_barrier(struct channel *ch, uint32_t method_id, struct proto_bytes name, bool no_wait,
                           struct reply_error *err)
{
    struct cluster_call *call = new_call(method_id, no_wait);
    if (!call)
        return reply_fail(err, SPEC_INTERNAL_ERROR, method_id, "out of memory");
    call->barrier = true;
    memcpy(call->name, name.ptr, name.len);
    call->name_len = (uint8_t)name.len;
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost)));
    return propose(ch, "sync", &args, call, rc, err);
}

static int propose_exchange_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    if (m->id == SPEC_EXCHANGE_DECLARE && m->args.exchange_declare.passive) {
        const struct spec_exchange_declare *a = &m->args.exchange_declare;
        /* A name past 255 bytes cannot be in a frame's shortstr: the decoder bounds it. */
        return propose_barrier(ch, m->id, a->exchange, a->no_wait, err);
    }
    struct actor who = channel_actor(ch);
    struct proto_bytes vhost = proto_bytes_of(vhost_name(ch->vhost));
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", vhost);
    const char *op;
    bool no_wait;
    switch (m->id) {
    case SPEC_EXCHANGE_DECLARE: {
        const struct spec_exchange_declare *a = &m->args.exchange_declare;
        struct exchange_declare d = exchange_declare_from(a); /* not passive: handled above */
        if (declare_exchange_allowed(&who, ch->vhost, &d, err) != 0 || vhost_exchange_declare_check(ch->vhost, &d, err) != 0) {
            table_buf_free(&args);
            return -1;
        }
        op = "exchange.declare";
        no_wait = a->no_wait;
        rc |= put_string(&args, "name", a->exchange) | put_string(&args, "type", a->type) |
              table_buf_put_bool(&args, "durable", a->durable) | table_buf_put_bool(&args, "auto_delete", a->auto_delete) |
              table_buf_put_bool(&args, "internal", a->internal) | put_table(&args, "arguments", a->arguments);
        break;
    }
    case SPEC_EXCHANGE_DELETE: {
        const struct spec_exchange_delete *a = &m->args.exchange_delete;
        if (delete_exchange_allowed(&who, ch->vhost, a->exchange, err) != 0) {
            table_buf_free(&args);
            return -1;
        }
        op = "exchange.delete";
        no_wait = a->no_wait;
        rc |= put_string(&args, "name", a->exchange) | table_buf_put_bool(&args, "if_unused", a->if_unused);
        break;
    }
    case SPEC_EXCHANGE_BIND:
    case SPEC_EXCHANGE_UNBIND: {
        bool unbind = m->id == SPEC_EXCHANGE_UNBIND;
        const struct spec_exchange_bind *a = &m->args.exchange_bind;
        const struct spec_exchange_unbind *u = &m->args.exchange_unbind;
        struct proto_bytes destination = unbind ? u->destination : a->destination;
        struct proto_bytes source = unbind ? u->source : a->source;
        if (bind_allowed(&who, true, destination, source, unbind, err) != 0) {
            table_buf_free(&args);
            return -1;
        }
        op = unbind ? "exchange.unbind" : "exchange.bind";
        no_wait = unbind ? u->no_wait : a->no_wait;
        rc |= put_string(&args, "destination", destination) | put_string(&args, "source", source) |
              put_string(&args, "routing_key", unbind ? u->routing_key : a->routing_key) |
              put_table(&args, "arguments", unbind ? u->arguments : a->arguments);
        break;
    }
    default:
        table_buf_free(&args);
        return 1;
    }
    struct cluster_call *call = new_call(m->id, no_wait);
    if (!call) {
        table_buf_free(&args);
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    return propose(ch, op, &args, call, rc, err);
}

/* True when name is a queue of this node that stays local: an exclusive one. */
static bool local_queue(struct channel *ch, struct proto_bytes name)
{
    struct queue *q = vhost_queue_find(ch->vhost, name);
    return q && queue_settings(q)->exclusive;
}

/* An exclusive queue lives with its connection, on this node (its home), as without a cluster;
 * its declare and bindings are made here, then proposed, and answered once every member applied
 * them, as any declare: their copies (owned by no connection of theirs: cluster_foreign_owner)
 * route publishes to it when the -ok returns (cluster_classic.h). Its deletion is told by the
 * home when it goes (cluster_queues_deleting). 0, or -1 with err. */
static int exclusive_here(struct channel *ch, const struct spec_method *m, struct proto_bytes name,
                          struct reply_error *err)
{
    struct cluster_call *call;
    struct table_buf args = {0};
    int enc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) |
              table_buf_put_bool(&args, "exclusive", true);
    if (m->id == SPEC_QUEUE_DECLARE) {
        const struct spec_queue_declare *a = &m->args.queue_declare;
        bool existed = name.len && vhost_queue_find(ch->vhost, name);
        struct queue *q;
        if (channel_queue_declare_here(ch, a, &q, err) != 0) {
            table_buf_free(&args);
            return -1;
        }
        call = new_call(m->id, a->no_wait);
        if (!call) {
            table_buf_free(&args);
            return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
        }
        struct proto_bytes declared = queue_name(q);
        memcpy(call->name, declared.ptr, declared.len);
        call->name_len = (uint8_t)declared.len;
        if (existed) { /* a redeclare: the others know it already */
            table_buf_free(&args);
            struct meta_result done = {0};
            int rc = send_ok(ch, call, &done, err);
            free(call);
            return rc;
        }
        enc |= put_string(&args, "name", declared) | table_buf_put_bool(&args, "durable", a->durable) |
               table_buf_put_bool(&args, "auto_delete", a->auto_delete) | put_table(&args, "arguments", a->arguments) |
               table_buf_put_bool(&args, "server_named", a->queue.len == 0) | put_home(&args, ch);
        return propose(ch, "queue.declare", &args, call, enc, err);
    }
    bool unbind = m->id == SPEC_QUEUE_UNBIND;
    const struct spec_queue_bind *a = &m->args.queue_bind;
    const struct spec_queue_unbind *u = &m->args.queue_unbind;
    struct proto_bytes exchange = unbind ? u->exchange : a->exchange, key = unbind ? u->routing_key : a->routing_key;
    struct proto_bytes arguments = unbind ? u->arguments : a->arguments;
    struct actor who = channel_actor(ch);
    if (bind_as(&who, ch->vhost, false, name, exchange, key, arguments, ch->conn, unbind, err) != 0) {
        table_buf_free(&args);
        return -1; /* e.g. another node's exclusive queue here: 405 RESOURCE_LOCKED */
    }
    call = new_call(m->id, unbind ? false : a->no_wait);
    if (!call) {
        table_buf_free(&args);
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    enc |= put_string(&args, "queue", name) | put_string(&args, "exchange", exchange) |
           put_string(&args, "routing_key", key) | put_table(&args, "arguments", arguments);
    return propose(ch, unbind ? "queue.unbind" : "queue.bind", &args, call, enc, err);
}

static int propose_queue_declare(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    const struct spec_queue_declare *a = &m->args.queue_declare;
    if (a->passive) {
        struct proto_bytes name = a->queue;
        if (channel_expand_queue_name(ch, &name, m->id, err) != 0)
            return -1;
        return local_queue(ch, name) ? 1 : propose_barrier(ch, m->id, name, a->no_wait, err);
    }
    if (a->exclusive)
        return exclusive_here(ch, m, a->queue, err);
    struct queue_declare d = queue_declare_from(a, ch->conn); /* neither passive nor exclusive here */
    struct cluster_call *call = new_call(m->id, a->no_wait);
    if (!call)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    if (a->queue.len == 0) {
        /* Named here, so every node creates the same queue (RabbitMQ names it first too, if its
         * type allows, and checks configure on that name). */
        if (queue_settings_check_name(a->arguments, true, err) != 0) {
            free(call);
            return -1;
        }
        if (vhost_queue_generate_name(ch->vhost, call->name) != 0) {
            free(call);
            return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "no randomness for a queue name");
        }
        d.name = (struct proto_bytes){(const uint8_t *)call->name, VHOST_GENERATED_NAME_LEN};
        d.server_named = true;
    } else {
        memcpy(call->name, a->queue.ptr, a->queue.len);
    }
    call->name_len = (uint8_t)d.name.len;
    struct actor who = channel_actor(ch);
    if (!channel_names(ch)) {
        free(call);
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    }
    if (declare_queue_allowed(&who, ch->vhost, &d, err) != 0 || vhost_queue_declare_check(ch->vhost, &d, err) != 0) {
        free(call);
        return -1;
    }
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) | put_string(&args, "name", d.name) |
             table_buf_put_bool(&args, "durable", d.durable) | table_buf_put_bool(&args, "auto_delete", d.auto_delete) |
             put_table(&args, "arguments", d.arguments) | table_buf_put_bool(&args, "server_named", d.server_named) |
             put_home(&args, ch);
    return propose(ch, "queue.declare", &args, call, rc, err);
}

/* Checks a queue.delete's conditions against q's counts, then proposes it. 0, or -1 with err
 * (call freed either way on failure). */
static int propose_delete_of(struct channel *ch, struct cluster_call *call, struct queue *q, struct reply_error *err)
{
    struct proto_bytes name = {(const uint8_t *)call->name, call->name_len};
    struct queue_depth depth = {0};
    if (q)
        server_queue_depth(connection_server(ch->conn), ch->vhost, q, &depth);
    if (q && vhost_queue_delete_check(ch->vhost, q, depth.consumers, depth.ready, call->if_unused, call->if_empty,
                                      err) != 0) {
        free(call);
        return -1;
    }
    call->count = (uint32_t)depth.ready;
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) | put_string(&args, "name", name);
    return propose(ch, "queue.delete", &args, call, rc, err);
}

/* The home of a classic queue answered with its counts (or could not: the last ones it gave
 * stand): the delete is checked against them and proposed. */
static void delete_counted(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b, (void)result;
    struct cluster_call *call = a;
    struct channel *ch = call_resumed(call);
    if (!ch)
        return;
    call->queues_handle = false;
    struct proto_bytes name = {(const uint8_t *)call->name, call->name_len};
    struct reply_error err;
    if (propose_delete_of(ch, call, vhost_queue_find(ch->vhost, name), &err) != 0)
        channel_raise(ch, &err);
}

static int propose_queue_delete(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    const struct spec_queue_delete *a = &m->args.queue_delete;
    struct proto_bytes name = a->queue;
    if (channel_expand_queue_name(ch, &name, m->id, err) != 0)
        return -1;
    if (local_queue(ch, name))
        return 1;
    struct actor who = channel_actor(ch);
    if (actor_check(&who, ACCESS_CONFIGURE, "queue", name, m->id, err) != 0)
        return -1;
    struct cluster_call *call = new_call(m->id, a->no_wait);
    if (!call)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    memcpy(call->name, name.ptr, name.len);
    call->name_len = (uint8_t)name.len;
    call->if_unused = a->if_unused;
    call->if_empty = a->if_empty;
    /* Decided on this node's copy: a quorum queue's counts as the cluster's log has made them
     * here; a classic queue homed on another node is counted by its home first, so that
     * delete-ok carries its messages (RabbitMQ's) and if-unused / if-empty judge its state. */
    struct queue *q = vhost_queue_find(ch->vhost, name);
    if (q && queue_elsewhere(q)) {
        struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
        call->conn = ch->conn;
        call->node = server_cluster(connection_server(ch->conn));
        call->channel = ch->number;
        call->counted = true;
        call->queues_handle = true;
        call->handle = cluster_queues_fetch_depth(cq, ch->vhost, q, delete_counted, call, 0);
        if (call->handle) {
            connection_wait(ch->conn, abandon, call);
            return 0;
        }
        call->queues_handle = false;
    }
    return propose_delete_of(ch, call, q, err);
}

static int propose_queue_bind(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    bool unbind = m->id == SPEC_QUEUE_UNBIND;
    const struct spec_queue_bind *a = &m->args.queue_bind;
    const struct spec_queue_unbind *u = &m->args.queue_unbind;
    struct proto_bytes queue = unbind ? u->queue : a->queue, exchange = unbind ? u->exchange : a->exchange;
    if (channel_expand_queue_name(ch, &queue, m->id, err) != 0)
        return -1;
    if (local_queue(ch, queue))
        return exclusive_here(ch, m, queue, err);
    struct actor who = channel_actor(ch);
    if (bind_allowed(&who, false, queue, exchange, unbind, err) != 0)
        return -1;
    struct cluster_call *call = new_call(m->id, unbind ? false : a->no_wait);
    if (!call)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) | put_string(&args, "queue", queue) |
             put_string(&args, "exchange", exchange) |
             put_string(&args, "routing_key", unbind ? u->routing_key : a->routing_key) |
             put_table(&args, "arguments", unbind ? u->arguments : a->arguments);
    return propose(ch, unbind ? "queue.unbind" : "queue.bind", &args, call, rc, err);
}

static void purged_at_home(void *a, uint64_t b, const struct meta_result *result)
{
    (void)b;
    if (result->status == SPEC_NOT_FOUND)
        not_found_at_home(a, result->text);
    else
        on_done(a, result);
}

/* queue.purge of a replicated quorum queue is a command of its log, of a classic queue homed on
 * another node a call to its home; other queues purge here. */
static int propose_queue_purge(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    const struct spec_queue_purge *a = &m->args.queue_purge;
    struct proto_bytes name = a->queue;
    if (channel_expand_queue_name(ch, &name, m->id, err) != 0)
        return -1;
    struct queue *q = vhost_queue_find(ch->vhost, name);
    if (!q || !cluster_queues_replicated(server_cluster_queues(connection_server(ch->conn)), q))
        return 1;
    struct actor who = channel_actor(ch);
    if (actor_check(&who, ACCESS_READ, "queue", name, m->id, err) != 0)
        return -1;
    /* Another connection's exclusive queue (on any node: a copy here is owned by
     * cluster_foreign_owner) is 405, as on one node; its home would purge whatever it is sent. */
    struct queue *owned;
    if (vhost_queue_lookup(ch->vhost, name, ch->conn, &owned, err) != 0) {
        err->method_id = m->id;
        return -1;
    }
    struct cluster_call *call = new_call(m->id, a->no_wait);
    if (!call)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
    if (queue_elsewhere(q)) { /* a classic queue homed on another node: purged there */
        struct cluster_queues *cq = server_cluster_queues(connection_server(ch->conn));
        call->conn = ch->conn;
        call->channel = ch->number;
        call->queues_handle = true;
        call->handle = cluster_queues_purge(cq, ch->vhost, q, purged_at_home, call, 0);
        if (call->handle == 0) {
            free(call);
            return reply_fail(err, SPEC_INTERNAL_ERROR, m->id, "out of memory");
        }
        connection_wait(ch->conn, abandon, call);
        return 0;
    }
    struct table_buf args = {0};
    int rc = put_string(&args, "vhost", proto_bytes_of(vhost_name(ch->vhost))) | put_string(&args, "queue", name);
    return propose(ch, "qq.purge", &args, call, rc, err);
}

int declare_cluster_method(struct channel *ch, const struct spec_method *m, struct reply_error *err)
{
    switch (m->id) {
    case SPEC_EXCHANGE_DECLARE:
    case SPEC_EXCHANGE_DELETE:
    case SPEC_EXCHANGE_BIND:
    case SPEC_EXCHANGE_UNBIND:
        return propose_exchange_method(ch, m, err);
    case SPEC_QUEUE_DECLARE:
        return propose_queue_declare(ch, m, err);
    case SPEC_QUEUE_DELETE:
        return propose_queue_delete(ch, m, err);
    case SPEC_QUEUE_BIND:
    case SPEC_QUEUE_UNBIND:
        return propose_queue_bind(ch, m, err);
    case SPEC_QUEUE_PURGE:
        return propose_queue_purge(ch, m, err);
    default:
        return 1;
    }
}
