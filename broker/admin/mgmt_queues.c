/* broker/admin/mgmt_queues.c: /api/queues: listing, one queue with its consumers, declare
 * (PUT) and delete, purge (contents) and get, as RabbitMQ's API serves them; and
 * /api/aliveness-test/VHOST. Changes go through operate.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "introspect.h"
#include "json_writer.h"
#include "inner_client.h"
#include "mgmt_internal.h"
#include "operate.h"
#include "spec.h"
#include "table.h"
#include "utf8.h"
#include "vhost.h"

/* RabbitMQ's JSON for a queue, written into w. */
static void write_queue(struct jw *w, const struct introspect_queue *q)
{
    jw_object_begin(w);
    jw_key(w, "name");
    jw_string(w, (const char *)q->name.ptr, q->name.len);
    jw_key(w, "vhost");
    jw_cstring(w, q->vhost);
    jw_key(w, "durable");
    jw_bool(w, q->durable);
    jw_key(w, "auto_delete");
    jw_bool(w, q->auto_delete);
    jw_key(w, "exclusive");
    jw_bool(w, q->exclusive);
    jw_key(w, "arguments");
    mgmt_write_table(w, q->arguments);
    /* The node holding the messages (introspect.h): this one, a classic queue's home, or a
     * quorum queue's leader; a quorum queue without a cluster is a group of one, this node. */
    const char *node = q->node ? q->node : mgmt_node_name();
    jw_key(w, "node");
    jw_cstring(w, node);
    jw_key(w, "state");
    jw_cstring(w, q->down ? "down" : "running"); /* RabbitMQ's, for a queue whose node is down */
    jw_key(w, "type");
    jw_cstring(w, q->type);
    if (q->replicated) {
        /* "online": the members running, as RabbitMQ shows those whose Ra server runs; one
         * group for every quorum queue here, so a member runs the queue when its node runs. */
        const char *const groups[] = {"members", "online"};
        const char *const self[] = {mgmt_node_name()};
        const char *const *lists[] = {q->members ? q->members : self, q->members ? q->online : self};
        size_t counts[] = {q->members ? q->member_count : 1, q->members ? q->online_count : 1};
        jw_key(w, "leader");
        jw_cstring(w, node);
        for (size_t i = 0; i < 2; i++) {
            jw_key(w, groups[i]);
            jw_array_begin(w);
            for (size_t m = 0; m < counts[i]; m++)
                jw_cstring(w, lists[i][m]);
            jw_array_end(w);
        }
    }
    jw_key(w, "consumers");
    jw_integer(w, q->consumers);
    jw_key(w, "messages");
    jw_integer(w, (int64_t)(q->messages_ready + q->messages_unacknowledged));
    jw_key(w, "messages_ready");
    jw_integer(w, (int64_t)q->messages_ready);
    jw_key(w, "messages_unacknowledged");
    jw_integer(w, (int64_t)q->messages_unacknowledged);
    jw_key(w, "message_bytes");
    jw_integer(w, (int64_t)q->message_bytes_ready);
    jw_key(w, "message_bytes_ready");
    jw_integer(w, (int64_t)q->message_bytes_ready);
    jw_key(w, "policy");
    jw_cstring(w, q->policy);
    jw_key(w, "operator_policy");
    jw_cstring(w, q->operator_policy);
    jw_key(w, "effective_policy_definition");
    mgmt_write_table(w, q->effective_policy_definition);
    jw_key(w, "message_stats");
    mgmt_write_json(w, mgmt_message_stats(&q->message_stats, &q->message_rates, MGMT_STATS_QUEUE));
    /* Not in RabbitMQ: how long the messages waiting here have waited (ms; the oldest one and
     * the mean over the ready messages in memory), what users watch a queue for. */
    jw_key(w, "oldest_message_age_ms");
    jw_integer(w, (int64_t)q->head_message_age_ms);
    jw_key(w, "mean_message_age_ms");
    jw_integer(w, (int64_t)q->mean_message_age_ms);
    jw_key(w, "exclusive_consumer_tag");
    jw_null(w);
    jw_object_end(w);
}

struct queue_walk {
    struct mgmt_call *call;
    struct proto_bytes only; /* with `one`: just this queue */
    bool one;
    json_t *found;           /* with `one`: its JSON */
};

static void add_queue(const struct introspect_queue *q, void *arg)
{
    struct queue_walk *w = arg;
    if (w->one) {
        if (!w->found && q->name.len == w->only.len && memcmp(q->name.ptr, w->only.ptr, q->name.len) == 0 &&
            mgmt_vhost_open(w->call, q->vhost)) {
            struct jw writer = {0};
            jw_item(&writer);
            write_queue(&writer, q);
            w->found = mgmt_writer_json(&writer);
        }
        return;
    }
    if (!mgmt_vhost_open(w->call, q->vhost))
        return;
    struct jw *writer = mgmt_list_item(w->call);
    if (writer) {
        write_queue(writer, q);
        mgmt_list_item_end(w->call);
    }
}

static void list_queues(struct mgmt_call *call)
{
    struct queue_walk w = {.call = call};
    const char *vhost = call->nseg > 1 ? mgmt_name(call, 1) : NULL;
    if (call->nseg > 1 && !vhost)
        return;
    mgmt_list_start(call);
    introspect_queues(call->server, vhost, add_queue, &w);
}

/* The queue's JSON, or NULL when it does not exist. */
static json_t *find_queue(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    struct queue_walk w = {.call = call, .only = name, .one = true};
    introspect_queues(call->server, vhost, add_queue, &w);
    return w.found;
}

/* consumer_details of one queue (RabbitMQ's single-queue view). */
struct consumer_walk {
    struct proto_bytes queue;
    json_t *items;
    json_t *exclusive_tag;
};

static void add_consumer(const struct introspect_consumer *c, void *arg)
{
    struct consumer_walk *w = arg;
    if (c->queue.len != w->queue.len || memcmp(c->queue.ptr, w->queue.ptr, c->queue.len) != 0)
        return;
    json_t *o = mgmt_consumer_json(c, NULL);
    json_array_append_new(w->items, o);
    if (c->exclusive)
        w->exclusive_tag = mgmt_bytes(c->tag);
}

static void get_queue(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    json_t *q = find_queue(call, vhost, name);
    if (!q) {
        mgmt_not_found(call);
        return;
    }
    struct consumer_walk w = {name, json_array(), NULL};
    introspect_consumers(call->server, vhost, add_consumer, &w);
    json_object_set_new(q, "consumer_details", w.items);
    mgmt_add_history(call, INTROSPECT_HISTORY_QUEUE, vhost, name, json_object_get(q, "message_stats"), q);
    if (w.exclusive_tag)
        json_object_set_new(q, "exclusive_consumer_tag", w.exclusive_tag);
    mgmt_reply(call, 200, q);
}

/* PUT {"durable", "auto_delete", "arguments"}: 201 new, 204 equivalent, 400 not. */
static void put_queue(struct mgmt_call *call, const char *vhost, struct proto_bytes name)
{
    if (call->body && !json_is_object(call->body)) {
        mgmt_fail(call, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    if (name.len > 255 || name.len == 0) {
        mgmt_fail(call, 400, "bad_request", "queue name must be 1 to 255 bytes");
        return;
    }
    struct queue_declare d = {.name = name};
    if (mgmt_json_bool(call, "durable", false, &d.durable) != 0 ||
        mgmt_json_bool(call, "auto_delete", false, &d.auto_delete) != 0)
        return;
    struct table_buf args = {0};
    if (mgmt_arguments(call, mgmt_body(call, "arguments"), &args) != 0)
        return;
    d.arguments = (struct proto_bytes){args.data, (uint32_t)args.len};
    struct reply_error err;
    bool created;
    if (operate_declare_queue(call->server, mgmt_actor(call), vhost, &d, &created, &err) != 0)
        mgmt_amqp_error(call, &err);
    else
        mgmt_done(call, created);
    table_buf_free(&args);
}

static bool query_true(const struct mgmt_call *call, const char *key)
{
    const char *v = mgmt_query(call, key);
    return v && strcmp(v, "true") == 0;
}

static void queue(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    struct proto_bytes name = mgmt_segment_bytes(call, 2);
    if (call->method == MGMT_PUT) {
        put_queue(call, vhost, name);
        return;
    }
    if (call->method == MGMT_GET) {
        get_queue(call, vhost, name);
        return;
    }
    struct reply_error err;
    if (operate_delete_queue(call->server, mgmt_actor(call), vhost, name, query_true(call, "if-unused"),
                             query_true(call, "if-empty"), &err) != 0) {
        if (err.code == SPEC_NOT_FOUND)
            mgmt_not_found(call);
        else
            mgmt_amqp_error(call, &err);
        return;
    }
    mgmt_done(call, false);
}

/* DELETE queues/VHOST/NAME/contents: purge. */
static void contents(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    struct reply_error err;
    if (operate_purge_queue(call->server, mgmt_actor(call), vhost, mgmt_segment_bytes(call, 2), NULL, &err) != 0) {
        if (err.code == SPEC_NOT_FOUND)
            mgmt_not_found(call);
        else
            mgmt_amqp_error(call, &err);
        return;
    }
    mgmt_done(call, false);
}

/* ---- get ---------------------------------------------------------------------------------- */

struct get_walk {
    json_t *items;
    bool base64;
    long truncate; /* -1: none */
};

static void add_message(const struct inner_message *m, void *arg)
{
    struct get_walk *w = arg;
    struct spec_content_header h;
    memset(&h, 0, sizeof h);
    spec_content_header_decode(m->header.ptr, m->header.len, &h);
    size_t len = (size_t)m->body_size;
    if (w->truncate >= 0 && (size_t)w->truncate < len)
        len = (size_t)w->truncate;
    json_t *o = json_object();
    json_object_set_new(o, "payload_bytes", json_integer((json_int_t)m->body_size));
    json_object_set_new(o, "redelivered", json_boolean(m->redelivered));
    json_object_set_new(o, "exchange", mgmt_bytes(m->exchange));
    json_object_set_new(o, "routing_key", mgmt_bytes(m->routing_key));
    json_object_set_new(o, "message_count", json_integer((json_int_t)m->message_count));
    /* RabbitMQ writes no properties as an empty Erlang list, [] (rabbitmqadmin get then shows
     * no properties column) */
    json_t *props = mgmt_properties(&h.props);
    if (json_object_size(props) == 0) {
        json_decref(props);
        props = json_array();
    }
    json_object_set_new(o, "properties", props);
    /* RabbitMQ's is_utf8 test decides whether "auto" shows the payload as a string. */
    if (!w->base64 && utf8_valid(m->body, len)) {
        json_object_set_new(o, "payload", json_stringn(len ? (const char *)m->body : "", len));
        json_object_set_new(o, "payload_encoding", json_string("string"));
    } else {
        char *text = malloc(BASE64_ENCODED_LEN(len) + 1);
        if (text) {
            base64_encode(m->body, len, text);
            json_object_set_new(o, "payload", json_string(text));
            free(text);
        }
        json_object_set_new(o, "payload_encoding", json_string("base64"));
    }
    json_array_append_new(w->items, o);
}

/* A get or aliveness test run by the broker's own client (inner_client.h) for the caller. */
struct later_run {
    struct mgmt_later *later;
    bool base64, aliveness;
    long truncate;
};

static void answer_run(void *arg, const struct inner_result *r)
{
    struct later_run *run = arg;
    struct mgmt_call call = {.user = ""};
    struct reply_error err = {.code = r->status > 0 ? (uint16_t)r->status : 0};
    if (r->status > 0)
        snprintf(err.text, sizeof err.text, "%s", r->text);
    if (!run->aliveness && err.code == SPEC_NOT_FOUND)
        mgmt_not_found(&call); /* RabbitMQ's API looks the queue up first */
    else if (err.code == SPEC_ACCESS_REFUSED || err.code == SPEC_NOT_ALLOWED)
        mgmt_amqp_error(&call, &err); /* 401, as when the API checks it itself */
    else if (run->aliveness && r->status != 0)
        mgmt_reply(&call, 503, json_pack("{s:s,s:s}", "status", "failed", "reason", r->text));
    else if (r->status < 0 || r->status == SPEC_INTERNAL_ERROR) /* no answer, or no quorum */
        mgmt_fail(&call, 503, "unavailable", "%s", r->text);
    else if (r->status > 0)
        mgmt_amqp_error(&call, &err);
    else if (run->aliveness && !(r->count == 1 && r->messages[0].body_size == 12 &&
                                 memcmp(r->messages[0].body, "test_message", 12) == 0))
        mgmt_reply(&call, 503, json_pack("{s:s,s:s}", "status", "failed", "reason", "the test message did not come back"));
    else if (run->aliveness)
        mgmt_reply(&call, 200, json_pack("{s:s}", "status", "ok"));
    else {
        struct get_walk w = {json_array(), run->base64, run->truncate};
        for (size_t i = 0; i < r->count; i++)
            add_message(&r->messages[i], &w);
        mgmt_reply(&call, 200, w.items);
    }
    mgmt_answer_later(run->later, &call);
    free(run);
}

static void run_later(struct mgmt_call *call, const struct inner_request *r, bool base64, long truncate,
                      bool aliveness)
{
    if (!r->user) { /* the admin socket's operator is no user a connection could log in as */
        mgmt_fail(call, 400, "bad_request", "this request acts as a user: use the HTTP API");
        return;
    }
    struct later_run *run = calloc(1, sizeof *run);
    if (!run || !(run->later = mgmt_defer(call))) {
        free(run);
        mgmt_fail(call, 503, "unavailable", "cannot wait for the broker's answer");
        return;
    }
    *run = (struct later_run){run->later, base64, aliveness, truncate};
    int rc = inner_client_run(call->server, r, answer_run, run);
    if (rc != 0) {
        struct inner_result failed = {rc, "the broker's own connection could not be opened", NULL, 0};
        answer_run(run, &failed);
    }
}

static bool body_integer(json_t *v, long *out)
{
    if (json_is_integer(v)) {
        *out = (long)json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        char *end;
        *out = strtol(json_string_value(v), &end, 10);
        return *json_string_value(v) && *end == '\0';
    }
    return false;
}

/* POST queues/VHOST/NAME/get {"count", "ackmode", "encoding", "truncate"}. */
static void get_messages(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    static const char *const modes[] = {"ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
                                        "reject_requeue_false"};
    const char *ackmode = json_string_value(mgmt_body(call, "ackmode"));
    const char *encoding = json_string_value(mgmt_body(call, "encoding"));
    long count, truncate = -1;
    if (!ackmode || !encoding || !mgmt_body(call, "count")) {
        mgmt_fail(call, 400, "bad_request", "ackmode, count and encoding are mandatory");
        return;
    }
    if (!body_integer(mgmt_body(call, "count"), &count) || count < 0) {
        mgmt_fail(call, 400, "bad_request", "count must be a non-negative integer");
        return;
    }
    json_t *t = mgmt_body(call, "truncate");
    if (t && !json_is_null(t) && (!body_integer(t, &truncate) || truncate < 0)) {
        mgmt_fail(call, 400, "bad_request", "truncate must be a non-negative integer");
        return;
    }
    int mode = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(ackmode, modes[i]) == 0)
            mode = i;
    if (mode < 0) {
        mgmt_fail(call, 400, "bad_request",
                  "Invalid ackmode value: %s. Valid values are: ack_requeue_true, ack_requeue_false, "
                  "reject_requeue_true, reject_requeue_false",
                  ackmode);
        return;
    }
    if (strcmp(encoding, "auto") != 0 && strcmp(encoding, "base64") != 0) {
        mgmt_fail(call, 400, "bad_request", "Unsupported encoding. Please use auto or base64.");
        return;
    }
    static const enum inner_settle settle[] = {INNER_REQUEUE, INNER_ACK, INNER_REQUEUE, INNER_REJECT};
    struct inner_request r = {.user = mgmt_actor(call), .vhost = vhost, .get_from = mgmt_name(call, 2),
                              .get_count = (size_t)count, .settle = settle[mode]};
    if (r.get_from && strlen(r.get_from) > 255) /* no AMQP name is longer: no such queue */
        mgmt_not_found(call);
    else if (r.get_from)
        run_later(call, &r, strcmp(encoding, "base64") == 0, truncate, false);
}

/* ---- aliveness ---------------------------------------------------------------------------- */

/* RabbitMQ 3.10: declare "aliveness-test" (a classic queue, on the first node that runs the
 * test in a cluster), publish to it, get it back, through the user's own channel. */
static void aliveness(struct mgmt_call *call)
{
    const char *vhost = mgmt_name(call, 1);
    if (!vhost)
        return;
    static const char qname[] = "aliveness-test", body[] = "test_message";
    struct inner_request r = {.user = mgmt_actor(call), .vhost = vhost, .declare = qname, .publish_to = qname,
                              .body = (const uint8_t *)body, .body_len = sizeof body - 1, .get_from = qname,
                              .get_count = 1, .settle = INNER_ACK};
    run_later(call, &r, false, -1, true);
}

const struct mgmt_route mgmt_queues_routes[] = {
    {"queues", MGMT_GET, MGMT_USER, MGMT_USER, 0, list_queues},
    {"queues/*", MGMT_GET, MGMT_USER, MGMT_USER, 2, list_queues},
    {"queues/*/*", MGMT_GET | MGMT_PUT | MGMT_DELETE, MGMT_USER, MGMT_USER, 2, queue},
    {"queues/*/*/contents", MGMT_DELETE, MGMT_USER, MGMT_USER, 2, contents},
    {"queues/*/*/get", MGMT_POST, MGMT_USER, MGMT_USER, 2, get_messages},
    {"aliveness-test/*", MGMT_GET, MGMT_USER, MGMT_USER, 2, aliveness},
    {NULL, 0, 0, 0, 0, NULL},
};
