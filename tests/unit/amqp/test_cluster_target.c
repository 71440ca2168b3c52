/* tests/unit/amqp/test_cluster_target.c: the metadata group's target over real servers (no
 * listener, no node): applying one command sequence to two fresh servers gives the same results
 * and the same replicated definitions; the index of the last command applied is saved in the
 * definitions blob and read back at start, with the replicated state (transient objects too);
 * importing a state keeps a queue whose definition matches (with its messages), creates what is
 * missing and deletes what is extra; exclusive queues of other nodes' connections come with the
 * state as copies owned by no connection here, with their bindings, while this node's own are
 * left alone; classic queues a state declares know that their home is elsewhere; policies and
 * limits come with a snapshot and replace the node's; the members'
 * names are learnt from qq.node_down and carried by snapshots, and malformed ones are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "access.h"
#include "cluster_queues.h"
#include "cluster_target.h"
#include "introspect.h"
#include "event_loop.h"
#include "message.h"
#include "queue.h"
#include "server.h"
#include "spec.h"
#include "table.h"
#include "vhost.h"

static struct proto_bytes bytes_of(const char *text)
{
    return (struct proto_bytes){(const uint8_t *)text, (uint32_t)strlen(text)};
}

struct broker {
    struct event_loop *loop;
    struct server *server;
};

static void start(struct broker *b, const char *data_dir)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    cfg.listen = false;
    cfg.data_dir = data_dir;
    cfg.management_port = cfg.prometheus_port = 0;
    b->loop = loop_create();
    assert_non_null(b->loop);
    b->server = server_create(b->loop, &cfg);
    assert_non_null(b->server);
}

static void stop(struct broker *b)
{
    server_destroy(b->server);
    loop_destroy(b->loop);
}

/* A command's args: pairs of (key, value); a value starting with '!' is a bool ("!1", "!0"),
 * "{}" an empty table, anything else a string. */
static void args_of(struct table_buf *t, va_list ap)
{
    const char *key;
    while ((key = va_arg(ap, const char *))) {
        const char *value = va_arg(ap, const char *);
        if (value[0] == '!') {
            assert_int_equal(table_buf_put_bool(t, key, value[1] == '1'), 0);
        } else if (strcmp(value, "{}") == 0) {
            struct table_value v = {.type = TABLE_TABLE};
            assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
        } else {
            assert_int_equal(table_buf_put_string(t, key, bytes_of(value)), 0);
        }
    }
}

/* Applies op at index with the args given as key, value ..., NULL; returns the status. */
static int apply(struct broker *b, uint64_t index, const char *op, ...)
{
    struct table_buf args = {0};
    va_list ap;
    va_start(ap, op);
    args_of(&args, ap);
    va_end(ap);
    struct meta_command cmd = {.op = bytes_of(op), .args = {args.data, (uint32_t)args.len}, .session = 1,
                               .request = index};
    struct meta_result r;
    cluster_target_apply(b->server, index, &cmd, false, &r);
    table_buf_free(&args);
    return r.status;
}

/* access.set with the access database of `from`, applied to `to` at index. */
static int apply_access_of(struct broker *from, struct broker *to, uint64_t index)
{
    struct table_buf state = {0}, args = {0};
    assert_int_equal(access_export(introspect_access(from->server), &state), 0);
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){state.data, (uint32_t)state.len};
    assert_int_equal(table_buf_put_string(&args, "vhost", bytes_of("/")), 0);
    assert_int_equal(table_buf_put_field(&args, "state", 5, &v), 0);
    struct meta_command cmd = {.op = bytes_of("access.set"), .args = {args.data, (uint32_t)args.len}, .session = 1,
                               .request = index};
    struct meta_result r;
    cluster_target_apply(to->server, index, &cmd, false, &r);
    table_buf_free(&args);
    table_buf_free(&state);
    return r.status;
}

static struct table_buf export_of(struct broker *b)
{
    struct table_buf out = {0};
    assert_int_equal(cluster_target_export(b->server, &out), 0);
    return out;
}

static struct vhost *root(struct broker *b)
{
    struct vhost *v = server_open_vhost(b->server, bytes_of("/"));
    assert_non_null(v);
    server_close_vhost(b->server, v);
    return v;
}

/* The same sequence, refusals included, on any server. */
static void script(struct broker *b, int *statuses)
{
    int n = 0;
    statuses[n++] = apply(b, 1, "exchange.declare", "vhost", "/", "name", "x1", "type", "topic", "durable", "!1", NULL);
    statuses[n++] = apply(b, 2, "exchange.declare", "vhost", "/", "name", "x1", "type", "direct", NULL); /* 406 */
    statuses[n++] = apply(b, 3, "queue.declare", "vhost", "/", "name", "q1", "durable", "!1", NULL);
    statuses[n++] = apply(b, 4, "queue.declare", "vhost", "/", "name", "q2", NULL); /* transient */
    statuses[n++] = apply(b, 5, "queue.bind", "vhost", "/", "queue", "q1", "exchange", "x1", "routing_key", "a.*", NULL);
    statuses[n++] = apply(b, 6, "queue.bind", "vhost", "/", "queue", "q2", "exchange", "nope", NULL); /* 404 */
    statuses[n++] = apply(b, 7, "exchange.declare", "vhost", "/", "name", "x2", "type", "fanout", "auto_delete", "!1",
                          NULL);
    statuses[n++] = apply(b, 8, "exchange.bind", "vhost", "/", "destination", "x2", "source", "x1", "routing_key", "k",
                          NULL);
    statuses[n++] = apply(b, 9, "vhost.add", "vhost", "v2", NULL);
    statuses[n++] = apply(b, 10, "queue.declare", "vhost", "v2", "name", "q3", "arguments", "{}", NULL);
    statuses[n++] = apply(b, 11, "queue.delete", "vhost", "/", "name", "q2", NULL);
    statuses[n++] = apply(b, 12, "queue.declare", "vhost", "gone", "name", "q", NULL); /* 404: no vhost */
    statuses[n++] = apply(b, 13, "queue.declare", "vhost", "/", "name", "", NULL);    /* malformed */
    statuses[n++] = apply(b, 14, "queue.bind", "vhost", "/", "queue", "q1", "exchange", "x1", "routing_key", "!1",
                          NULL); /* malformed: a bool key */
}

static void test_the_same_commands_give_the_same_definitions(void **state)
{
    (void)state;
    struct broker a, b;
    start(&a, NULL);
    start(&b, NULL);
    int sa[16], sb[16];
    script(&a, sa);
    script(&b, sb);
    assert_memory_equal(sa, sb, 14 * sizeof *sa);
    int expected[] = {0, SPEC_PRECONDITION_FAILED, 0, 0, 0, SPEC_NOT_FOUND, 0, 0, 0, 0, 0, SPEC_NOT_FOUND,
                      SPEC_INTERNAL_ERROR, SPEC_INTERNAL_ERROR};
    assert_memory_equal(sa, expected, sizeof expected);
    /* Each server made its own default user (its own salt): the access database differs until
     * one access.set gives both the same, as a cluster's first change of users does. */
    struct table_buf ea = export_of(&a), eb = export_of(&b);
    assert_true(ea.len != eb.len || memcmp(ea.data, eb.data, ea.len) != 0);
    table_buf_free(&ea);
    table_buf_free(&eb);
    assert_int_equal(apply(&b, 15, "access.set", "vhost", "/", "state", "not a table", NULL), SPEC_INTERNAL_ERROR);
    assert_int_equal(apply_access_of(&a, &a, 16), 0);
    assert_int_equal(apply_access_of(&a, &b, 16), 0);
    ea = export_of(&a);
    eb = export_of(&b);
    assert_int_equal(ea.len, eb.len);
    assert_memory_equal(ea.data, eb.data, ea.len);
    assert_non_null(vhost_queue_find(root(&a), bytes_of("q1")));
    assert_null(vhost_queue_find(root(&a), bytes_of("q2")));
    assert_int_equal(server_cluster_index(a.server), 16);
    table_buf_free(&ea);
    table_buf_free(&eb);
    stop(&a);
    stop(&b);
}

static void test_the_index_is_saved_with_the_definitions(void **state)
{
    (void)state;
    char dir[] = "/tmp/warren-cluster-target-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct broker b;
    start(&b, dir);
    assert_int_equal(server_cluster_index(b.server), 0);
    assert_int_equal(apply(&b, 41, "queue.declare", "vhost", "/", "name", "kept", "durable", "!1", NULL), 0);
    assert_int_equal(apply(&b, 42, "queue.declare", "vhost", "/", "name", "kept", NULL), SPEC_PRECONDITION_FAILED);
    assert_int_equal(apply(&b, 43, "queue.declare", "vhost", "/", "name", "transient", NULL), 0);
    assert_int_equal(apply(&b, 44, "exchange.declare", "vhost", "/", "name", "tx", "type", "direct", NULL), 0);
    assert_int_equal(apply(&b, 45, "queue.bind", "vhost", "/", "queue", "transient", "exchange", "tx", NULL), 0);
    struct table_buf before = export_of(&b);
    loop_run_once(b.loop, 0); /* before_sleep saves the changed definitions */
    stop(&b);
    start(&b, dir);
    assert_int_equal(server_cluster_index(b.server), 45);
    struct cluster_target target;
    cluster_target_init(&target, b.server);
    assert_int_equal(target.start_index, 45);
    assert_non_null(vhost_queue_find(root(&b), bytes_of("kept")));
    /* Transient objects come back too: the node holds what the others hold at that index. */
    assert_non_null(vhost_queue_find(root(&b), bytes_of("transient")));
    struct table_buf after = export_of(&b);
    assert_int_equal(after.len, before.len);
    table_buf_free(&before);
    table_buf_free(&after);
    stop(&b);
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    assert_int_equal(system(command), 0);
}

static struct message *message(void)
{
    struct spec_content_header h = {.class_id = 60, .body_size = 5};
    uint8_t header[64];
    long n = spec_content_header_encode(&h, header, sizeof header);
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of(""), bytes_of("q1"), (struct proto_bytes){header, (uint32_t)n}, 5);
    assert_non_null(msg);
    memcpy(msg->body, "hello", 5);
    return msg;
}

static void test_import_keeps_matching_queues_and_their_messages(void **state)
{
    (void)state;
    struct broker leader, follower;
    start(&leader, NULL);
    start(&follower, NULL);
    int statuses[16];
    script(&leader, statuses);
    /* The follower has q1 already (with a message), a queue the leader lacks, an exchange of
     * another type and an exclusive queue of its own connection. */
    assert_int_equal(apply(&follower, 1, "queue.declare", "vhost", "/", "name", "q1", "durable", "!1", NULL), 0);
    assert_int_equal(apply(&follower, 2, "queue.declare", "vhost", "/", "name", "extra", NULL), 0);
    assert_int_equal(apply(&follower, 3, "exchange.declare", "vhost", "/", "name", "x1", "type", "fanout", NULL), 0);
    assert_int_equal(apply(&follower, 4, "vhost.add", "vhost", "old", NULL), 0);
    struct queue_declare exclusive = {.name = bytes_of("mine"), .exclusive = true, .owner = &follower};
    struct queue *q;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(root(&follower), &exclusive, &q, &err), 0);
    struct queue *q1 = vhost_queue_find(root(&follower), bytes_of("q1"));
    struct message *msg = message();
    assert_int_equal(queue_publish(q1, msg, 0), 0);
    message_release(msg);
    assert_int_equal(queue_ready_count(q1), 1);

    struct table_buf state_blob = export_of(&leader);
    assert_int_equal(cluster_target_import(follower.server, 99, false,
                                           (struct proto_bytes){state_blob.data, (uint32_t)state_blob.len}),
                     0);
    assert_ptr_equal(vhost_queue_find(root(&follower), bytes_of("q1")), q1);
    assert_int_equal(queue_ready_count(q1), 1);
    assert_null(vhost_queue_find(root(&follower), bytes_of("extra")));
    assert_non_null(vhost_queue_find(root(&follower), bytes_of("mine")));
    assert_int_equal(server_cluster_index(follower.server), 99);
    /* "mine" goes with its connection; the rest is the leader's state. */
    uint32_t count;
    assert_int_equal(vhost_queue_delete(root(&follower), bytes_of("mine"), &follower, false, false, &count, &err), 0);
    /* x1 was replaced by the leader's: a durable topic exchange now redeclares as such. */
    struct exchange_declare x1 = {.name = bytes_of("x1"), .type = bytes_of("topic"), .durable = true};
    assert_int_equal(vhost_exchange_declare_check(root(&follower), &x1, &err), 0);
    assert_null(server_open_vhost(follower.server, bytes_of("old")));
    struct table_buf after = export_of(&follower);
    assert_int_equal(after.len, state_blob.len);
    /* Same objects; the order of entries may differ, so compare by re-importing into a fresh
     * server and exporting again from both sides of a second import. */
    struct broker fresh;
    start(&fresh, NULL);
    assert_int_equal(cluster_target_import(fresh.server, 99, false, (struct proto_bytes){after.data, (uint32_t)after.len}), 0);
    struct table_buf again = export_of(&fresh);
    assert_int_equal(again.len, state_blob.len);
    /* A malformed state changes nothing. */
    uint8_t junk[] = {0, 0, 0, 9, 'x'};
    assert_int_equal(cluster_target_import(follower.server, 100, false, (struct proto_bytes){junk, sizeof junk}), -1);
    assert_int_equal(server_cluster_index(follower.server), 99);
    assert_ptr_equal(vhost_queue_find(root(&follower), bytes_of("q1")), q1);
    table_buf_free(&state_blob);
    table_buf_free(&after);
    table_buf_free(&again);
    stop(&fresh);
    stop(&leader);
    stop(&follower);
}

/* Applies qq.node_down for node to cq, with its name when name is not NULL. */
static void node_down(struct cluster_queues *cq, const char *node, const char *name)
{
    struct table_buf args = {0};
    assert_int_equal(table_buf_put_string(&args, "vhost", bytes_of("/")), 0);
    assert_int_equal(table_buf_put_string(&args, "node", bytes_of(node)), 0);
    if (name)
        assert_int_equal(table_buf_put_string(&args, "name", bytes_of(name)), 0);
    struct meta_command cmd = {bytes_of("qq.node_down"), {args.data, (uint32_t)args.len}, 0, 0};
    struct meta_result out;
    assert_true(cluster_queues_apply(cq, &cmd, &out));
    assert_int_equal(out.status, 0);
    table_buf_free(&args);
}

/* The members' names ride in qq.node_down and in snapshots; a snapshot whose names are
 * malformed is refused whole (a stranger's data directory, or a member's bad state). */
static void test_member_names_are_learnt_from_the_log_and_carried_by_snapshots(void **state)
{
    (void)state;
    struct broker a, b;
    start(&a, NULL);
    start(&b, NULL);
    struct cluster_queues *qa = cluster_queues_create(a.server), *qb = cluster_queues_create(b.server);
    assert_non_null(qa);
    assert_non_null(qb);
    node_down(qa, "10.0.0.1:25672", "rabbit@one");
    node_down(qa, "10.0.0.2:25672", NULL); /* the leader's node_down of a silent member: no name */
    node_down(qa, "10.0.0.2:25672", "rabbit@two");
    node_down(qa, "10.0.0.2:25672", NULL); /* and a name once known stays */
    assert_string_equal(cluster_queues_member_name(qa, "10.0.0.1:25672"), "rabbit@one");
    assert_string_equal(cluster_queues_member_name(qa, "10.0.0.2:25672"), "rabbit@two");
    assert_null(cluster_queues_member_name(qa, "10.0.0.3:25672"));

    struct table_buf snap = {0};
    assert_int_equal(cluster_queues_export(qa, &snap), 0);
    assert_int_equal(cluster_queues_import(qb, (struct proto_bytes){snap.data, (uint32_t)snap.len}), 0);
    assert_string_equal(cluster_queues_member_name(qb, "10.0.0.2:25672"), "rabbit@two");

    /* A state whose names are not {address, name} tables: refused, the names kept. */
    struct table_buf bad = {0}, entry = {0};
    size_t list;
    assert_int_equal(table_buf_begin_nested(&bad, "quorum_queues", TABLE_ARRAY, &list), 0);
    assert_int_equal(table_buf_end_nested(&bad, list), 0);
    assert_int_equal(table_buf_begin_nested(&bad, "node_names", TABLE_ARRAY, &list), 0);
    assert_int_equal(table_buf_put_string(&entry, "address", bytes_of("10.0.0.9:1")), 0); /* no name */
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){entry.data, (uint32_t)entry.len};
    assert_int_equal(table_buf_put_value(&bad, &v), 0);
    assert_int_equal(table_buf_end_nested(&bad, list), 0);
    assert_int_equal(cluster_queues_import(qb, (struct proto_bytes){bad.data, (uint32_t)bad.len}), -1);
    assert_string_equal(cluster_queues_member_name(qb, "10.0.0.1:25672"), "rabbit@one");
    assert_null(cluster_queues_member_name(qb, "10.0.0.9:1"));

    table_buf_free(&snap);
    table_buf_free(&bad);
    table_buf_free(&entry);
    cluster_queues_free(qa);
    cluster_queues_free(qb);
    stop(&a);
    stop(&b);
}

/* Counts the bindings of a vhost whose destination is the queue named arg. */
struct binding_count {
    const char *queue;
    int count;
};

static void count_binding(const struct vhost_binding_info *b, void *arg)
{
    struct binding_count *c = arg;
    if (!b->to_exchange && proto_bytes_is(b->destination, c->queue))
        c->count++;
}

static int bindings_to(struct broker *b, const char *queue)
{
    struct binding_count c = {queue, 0};
    vhost_for_each_binding(root(b), count_binding, &c);
    return c.count;
}

/* The names of a vhost's policies of kind, comma-separated, in name order. */
static void collect_policy(const struct policy_spec *spec, void *arg)
{
    char *names = arg;
    if (names[0])
        strcat(names, ",");
    strcat(names, spec->name);
}

static void policies_of(struct broker *b, enum policy_kind kind, char names[256])
{
    names[0] = '\0';
    vhost_for_each_policy(root(b), kind, collect_policy, names);
}

static void set_policy(struct broker *b, enum policy_kind kind, const char *name, const char *pattern)
{
    struct table_buf definition = {0};
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = 5;
    assert_int_equal(table_buf_put_field(&definition, "max-length", 10, &v), 0);
    struct policy_spec spec = {name, pattern, NULL, 0, {definition.data, (uint32_t)definition.len}};
    char error[256];
    assert_int_equal(vhost_policy_set(root(b), kind, &spec, error, sizeof error), 0);
    table_buf_free(&definition);
}

/* A snapshot carries the policies of both kinds and the limits: an install sets the leader's,
 * clears the ones the leader no longer has, unsets the limits it has not. */
static void test_a_snapshot_carries_policies_and_limits(void **state)
{
    (void)state;
    struct broker leader, follower;
    start(&leader, NULL);
    start(&follower, NULL);
    set_policy(&leader, POLICY_USER, "cap", "^q");
    set_policy(&leader, POLICY_OPERATOR, "op-cap", "^q");
    vhost_limit_set(root(&leader), VHOST_LIMIT_MAX_CONNECTIONS, 7);
    assert_int_equal(apply(&leader, 1, "queue.declare", "vhost", "/", "name", "q1", NULL), 0);
    set_policy(&follower, POLICY_USER, "stale", "^x");
    set_policy(&follower, POLICY_USER, "cap", "^nothing");
    vhost_limit_set(root(&follower), VHOST_LIMIT_MAX_QUEUES, 10);

    struct table_buf snap = {0};
    assert_int_equal(cluster_target_snapshot(leader.server, &snap), 0);
    assert_int_equal(cluster_target_import(follower.server, 9, false, (struct proto_bytes){snap.data, (uint32_t)snap.len}), 0);
    char names[256];
    policies_of(&follower, POLICY_USER, names);
    assert_string_equal(names, "cap");
    policies_of(&follower, POLICY_OPERATOR, names);
    assert_string_equal(names, "op-cap");
    assert_int_equal(vhost_limit_get(root(&follower), VHOST_LIMIT_MAX_CONNECTIONS), 7);
    assert_int_equal(vhost_limit_get(root(&follower), VHOST_LIMIT_MAX_QUEUES), -1);
    /* The leader's "cap" (pattern ^q) replaced the follower's: q1, declared by the import, has it. */
    const struct policy *policy, *operator_policy;
    struct queue *q1 = vhost_queue_find(root(&follower), bytes_of("q1"));
    assert_non_null(q1);
    vhost_queue_policies(root(&follower), q1, &policy, &operator_policy);
    assert_non_null(policy);
    assert_non_null(operator_policy);
    /* Both sides now export the same state. */
    struct table_buf after = {0};
    assert_int_equal(cluster_target_snapshot(follower.server, &after), 0);
    assert_int_equal(after.len, snap.len);
    table_buf_free(&snap);
    table_buf_free(&after);
    stop(&leader);
    stop(&follower);
}

/* A snapshot carries the exclusive queues of every node's connections with their bindings: a
 * node that installs it routes publishes to them (copies owned by no connection of its own, so
 * refused to its clients), drops copies the state no longer has, and keeps the exclusive queues of
 * its own connections; the classic queues it declares learn their homes (their messages live
 * there, not here). */
static void test_a_snapshot_brings_other_nodes_exclusive_queues_and_classic_homes(void **state)
{
    (void)state;
    struct broker leader, follower;
    start(&leader, NULL);
    start(&follower, NULL);
    struct cluster_queues *ql = cluster_queues_create(leader.server), *qf = cluster_queues_create(follower.server);
    assert_non_null(ql);
    assert_non_null(qf);
    server_set_cluster_queues(leader.server, ql);
    server_set_cluster_queues(follower.server, qf);
    assert_int_equal(apply(&leader, 1, "exchange.declare", "vhost", "/", "name", "fan", "type", "fanout", NULL), 0);
    assert_int_equal(apply(&leader, 2, "queue.declare", "vhost", "/", "name", "amq.gen-a", "exclusive", "!1",
                           "server_named", "!1", "home", "n1:1", NULL), 0);
    assert_int_equal(apply(&leader, 3, "queue.bind", "vhost", "/", "queue", "amq.gen-a", "exchange", "fan",
                           "routing_key", "", NULL), 0);
    assert_int_equal(apply(&leader, 4, "queue.declare", "vhost", "/", "name", "homed", "durable", "!1", "home", "n2:1",
                           NULL), 0);
    /* The follower: a copy the state no longer has, and an exclusive queue of its own connection
     * with a binding. */
    assert_int_equal(apply(&follower, 1, "queue.declare", "vhost", "/", "name", "amq.gen-gone", "exclusive", "!1",
                           "server_named", "!1", "home", "n1:1", NULL), 0);
    struct queue_declare own = {.name = bytes_of("mine"), .exclusive = true, .owner = &follower};
    struct queue *q;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(root(&follower), &own, &q, &err), 0);
    assert_int_equal(vhost_queue_bind(root(&follower), bytes_of("mine"), bytes_of("amq.fanout"), bytes_of(""),
                                      (struct proto_bytes){NULL, 0}, &follower, false, &err), 0);

    struct table_buf snap = {0};
    assert_int_equal(cluster_target_snapshot(leader.server, &snap), 0);
    assert_int_equal(cluster_target_import(follower.server, 50, false, (struct proto_bytes){snap.data, (uint32_t)snap.len}), 0);

    struct queue *copy = vhost_queue_find(root(&follower), bytes_of("amq.gen-a"));
    assert_non_null(copy);
    assert_true(queue_settings(copy)->exclusive);
    assert_ptr_equal(queue_owner(copy), cluster_foreign_owner());
    assert_int_equal(bindings_to(&follower, "amq.gen-a"), 1);
    assert_true(queue_elsewhere(copy));
    assert_int_equal(vhost_queue_lookup(root(&follower), bytes_of("amq.gen-a"), &follower, &q, &err), -1);
    assert_int_equal(err.code, SPEC_RESOURCE_LOCKED);
    assert_null(vhost_queue_find(root(&follower), bytes_of("amq.gen-gone")));
    struct queue *mine = vhost_queue_find(root(&follower), bytes_of("mine"));
    assert_non_null(mine);
    assert_ptr_equal(queue_owner(mine), &follower);
    assert_int_equal(bindings_to(&follower, "mine"), 1);
    struct queue *homed = vhost_queue_find(root(&follower), bytes_of("homed"));
    assert_non_null(homed);
    assert_true(queue_elsewhere(homed));

    /* Imported again (a second snapshot): the copy is the same queue, its binding not doubled. */
    assert_int_equal(cluster_target_import(follower.server, 60, false, (struct proto_bytes){snap.data, (uint32_t)snap.len}), 0);
    assert_ptr_equal(vhost_queue_find(root(&follower), bytes_of("amq.gen-a")), copy);
    assert_int_equal(bindings_to(&follower, "amq.gen-a"), 1);
    table_buf_free(&snap);
    stop(&leader);
    stop(&follower);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_same_commands_give_the_same_definitions),
        cmocka_unit_test(test_the_index_is_saved_with_the_definitions),
        cmocka_unit_test(test_member_names_are_learnt_from_the_log_and_carried_by_snapshots),
        cmocka_unit_test(test_import_keeps_matching_queues_and_their_messages),
        cmocka_unit_test(test_a_snapshot_brings_other_nodes_exclusive_queues_and_classic_homes),
        cmocka_unit_test(test_a_snapshot_carries_policies_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
