/* tests/unit/cluster/test_meta_fsm.c: the metadata state machine (broker/cluster/meta_fsm.h)
 * replicated by libraft's in-memory fixture: no sockets, no disks, deterministic time. Each node
 * drives a small model (a sorted map of names to values, and counters that show a command
 * applied twice), and after every scenario every live node's model must be byte for byte the
 * same, each command applied once, in log order: commands from any node, refusals (406, 404)
 * alike everywhere, a request retried after its leader died, a leader cut off in a minority
 * whose uncommitted entries are truncated, a node that catches up from a snapshot (sessions
 * included), a member added at run time, malformed entries, batches of commands in one entry,
 * and the session window's edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_fsm.h"
#include "raft_cluster.h"

/* ---- the model each node drives ---- */

#define MODEL_MAX 512

struct model {
    char keys[MODEL_MAX][32];
    char values[MODEL_MAX][32];
    int64_t counters[MODEL_MAX]; /* "add": not idempotent, so a double application shows */
    size_t n;
    unsigned imports;
};

static size_t model_find(const struct model *m, const char *key, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->keys[mid], key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool arg_string(struct proto_bytes args, const char *name, char *out, size_t cap)
{
    struct table_value v;
    if (table_find(args, name, &v) != 1 || v.type != TABLE_LONGSTR || v.v.bytes.len >= cap)
        return false;
    memcpy(out, v.v.bytes.ptr, v.v.bytes.len);
    out[v.v.bytes.len] = '\0';
    return true;
}

static void model_apply(void *ctx, const struct meta_command *cmd, struct meta_result *out)
{
    struct model *m = ctx;
    char op[16] = "", key[32], value[32];
    if (cmd->op.len < sizeof(op))
        memcpy(op, cmd->op.ptr, cmd->op.len);
    if (!arg_string(cmd->args, "key", key, sizeof(key))) {
        out->status = 400;
        return;
    }
    bool found;
    size_t at = model_find(m, key, &found);
    if (strcmp(op, "put") == 0 || strcmp(op, "add") == 0) {
        if (!found) {
            assert_true(m->n < MODEL_MAX);
            memmove(&m->keys[at + 1], &m->keys[at], (m->n - at) * sizeof(m->keys[0]));
            memmove(&m->values[at + 1], &m->values[at], (m->n - at) * sizeof(m->values[0]));
            memmove(&m->counters[at + 1], &m->counters[at], (m->n - at) * sizeof(m->counters[0]));
            m->n++;
            snprintf(m->keys[at], sizeof(m->keys[at]), "%s", key);
            m->values[at][0] = '\0';
            m->counters[at] = 0;
        }
        if (strcmp(op, "add") == 0) {
            m->counters[at]++;
            return;
        }
        if (!arg_string(cmd->args, "value", value, sizeof(value))) {
            out->status = 400;
            return;
        }
        if (found && m->values[at][0] && strcmp(m->values[at], value) != 0) { /* an inequivalent redeclare */
            out->status = 406;
            snprintf(out->text, sizeof(out->text), "PRECONDITION_FAILED - inequivalent value for '%s'", key);
            return;
        }
        snprintf(m->values[at], sizeof(m->values[at]), "%s", value);
        return;
    }
    if (strcmp(op, "del") == 0) {
        if (!found) {
            out->status = 404;
            snprintf(out->text, sizeof(out->text), "NOT_FOUND - no '%s'", key);
            return;
        }
        memmove(&m->keys[at], &m->keys[at + 1], (m->n - at - 1) * sizeof(m->keys[0]));
        memmove(&m->values[at], &m->values[at + 1], (m->n - at - 1) * sizeof(m->values[0]));
        memmove(&m->counters[at], &m->counters[at + 1], (m->n - at - 1) * sizeof(m->counters[0]));
        m->n--;
        return;
    }
    out->status = 540;
}

static int model_export(void *ctx, struct table_buf *out)
{
    struct model *m = ctx;
    for (size_t i = 0; i < m->n; i++) {
        struct table_buf e = {0};
        struct table_value v = {.type = TABLE_INT64};
        v.v.i64 = m->counters[i];
        int rc = table_buf_put_string(&e, "value", (struct proto_bytes){(const uint8_t *)m->values[i],
                                                                         (uint32_t)strlen(m->values[i])});
        rc |= table_buf_put_field(&e, "count", 5, &v);
        v = (struct table_value){.type = TABLE_TABLE};
        v.v.bytes = (struct proto_bytes){e.data, (uint32_t)e.len};
        rc |= table_buf_put_field(out, m->keys[i], strlen(m->keys[i]), &v);
        table_buf_free(&e);
        if (rc)
            return -1;
    }
    return 0;
}

static int model_import(void *ctx, struct proto_bytes state)
{
    struct model *m = ctx, fresh = {0};
    struct table_iter it;
    struct proto_bytes key;
    struct table_value v;
    table_iter_init(&it, state);
    int more;
    while ((more = table_next(&it, &key, &v)) == 1) {
        struct table_value value, count;
        if (v.type != TABLE_TABLE || key.len >= 32 || fresh.n == MODEL_MAX ||
            table_find(v.v.bytes, "value", &value) != 1 || value.type != TABLE_LONGSTR || value.v.bytes.len >= 32 ||
            table_find(v.v.bytes, "count", &count) != 1 || count.type != TABLE_INT64)
            return -1;
        memcpy(fresh.keys[fresh.n], key.ptr, key.len);
        memcpy(fresh.values[fresh.n], value.v.bytes.ptr, value.v.bytes.len);
        fresh.counters[fresh.n++] = count.v.i64;
    }
    if (more != 0)
        return -1;
    fresh.imports = m->imports + 1;
    *m = fresh;
    return 0;
}

/* ---- a cluster of nodes ---- */

#define NODES_MAX 5

struct node {
    struct model model;
    struct meta_fsm fsm;
};

struct cluster {
    struct raft_fixture f;
    struct node nodes[NODES_MAX];
    unsigned n;
};

static void node_init(struct node *node)
{
    memset(node, 0, sizeof(*node));
    struct meta_target target = {model_apply, model_export, model_import, &node->model};
    assert_int_equal(meta_fsm_init(&node->fsm, &target), 0);
}

static struct cluster *cluster_start(unsigned n, unsigned snapshot_threshold)
{
    struct cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    struct raft_fsm *fsms[NODES_MAX];
    for (unsigned i = 0; i < n; i++) {
        node_init(&c->nodes[i]);
        fsms[i] = &c->nodes[i].fsm.raft;
    }
    c->n = n;
    raft_cluster_start(&c->f, fsms, n, snapshot_threshold);
    return c;
}

static void cluster_stop(struct cluster *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++)
        meta_fsm_close(&c->nodes[i].fsm);
    free(c);
}

/* A request some node proposed and expects the result of. */
struct waiter {
    bool done;
    struct meta_result result;
    unsigned calls;
};

static void waiter_done(void *arg, const struct meta_result *result)
{
    struct waiter *w = arg;
    w->done = true;
    w->calls++;
    w->result = *result;
}

static struct table_buf args_of(const char *key, const char *value)
{
    struct table_buf t = {0};
    assert_int_equal(table_buf_put_string(&t, "key", (struct proto_bytes){(const uint8_t *)key, (uint32_t)strlen(key)}),
                     0);
    if (value)
        assert_int_equal(table_buf_put_string(&t, "value", (struct proto_bytes){(const uint8_t *)value,
                                                                                 (uint32_t)strlen(value)}),
                         0);
    return t;
}

/* Proposes (session, request) op key [value] through server `via` (its leader, as a forwarding node
 * would do), with node `origin` expecting the result through w. Returns raft_apply's status. */
static int propose(struct cluster *c, unsigned via, unsigned origin, uint64_t session, uint64_t request, const char *op,
                   const char *key, const char *value, struct waiter *w, struct proposal *p)
{
    struct table_buf args = args_of(key, value);
    struct raft_buffer buf;
    assert_int_equal(meta_command_encode(&buf, op, session, request, &args), 0);
    table_buf_free(&args);
    if (w)
        assert_int_equal(meta_fsm_expect(&c->nodes[origin].fsm, session, request, waiter_done, w), 0);
    return raft_cluster_propose(&c->f, via, buf, p);
}

static void change_done(struct raft_change *req, int status)
{
    *(int *)req->data = status;
}

/* Every live node's model, exported, is the same bytes; returns node 0's entry count. */
static size_t assert_converged(struct cluster *c)
{
    struct table_buf first = {0};
    bool have = false;
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i))
            continue;
        struct table_buf t = {0};
        assert_int_equal(model_export(&c->nodes[i].model, &t), 0);
        if (!have) {
            first = t;
            have = true;
            continue;
        }
        assert_int_equal(t.len, first.len);
        assert_memory_equal(t.data, first.data, t.len);
        table_buf_free(&t);
    }
    table_buf_free(&first);
    return c->nodes[0].model.n;
}

static int64_t counter(const struct node *node, const char *key)
{
    bool found;
    size_t at = model_find(&node->model, key, &found);
    return found ? node->model.counters[at] : -1;
}

/* ---- scenarios ---- */

static void commands_from_any_node_apply_once_in_order_everywhere(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    static struct waiter w[300];
    static struct proposal p[300];
    memset(w, 0, sizeof(w));
    for (unsigned i = 0; i < 300; i++) {
        char key[32], value[32];
        snprintf(key, sizeof(key), "k%u", i % 40);
        snprintf(value, sizeof(value), "v%u", (i / 40) % 2); /* the second round redeclares differently */
        const char *op = i % 7 == 6 ? "del" : "put";
        unsigned origin = i % 3; /* the node whose client asked: it forwards to the leader */
        assert_int_equal(propose(c, 0, origin, 100 + origin, i + 1, op, key, op[0] == 'p' ? value : NULL, &w[i], &p[i]), 0);
        if (i % 25 == 0)
            raft_fixture_step_n(&c->f, 5);
    }
    raft_cluster_settle(&c->f);
    size_t entries = assert_converged(c);
    assert_true(entries > 10);
    unsigned refused = 0;
    for (unsigned i = 0; i < 300; i++) {
        assert_true(w[i].done);
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(p[i].status, 0);
        assert_true(w[i].result.status == 0 || w[i].result.status == 406 || w[i].result.status == 404);
        refused += w[i].result.status != 0;
    }
    assert_true(refused > 10); /* refusals happen, and happened alike on every node (converged) */
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(c->nodes[i].fsm.applied, 300);
    cluster_stop(c);
}

static void a_repeated_request_is_applied_once(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    struct waiter w1 = {0}, w2 = {0};
    struct proposal p1, p2;
    assert_int_equal(propose(c, 0, 1, 7, 1, "add", "n", NULL, &w1, &p1), 0);
    assert_int_equal(propose(c, 0, 1, 7, 1, "add", "n", NULL, &w2, &p2), 0); /* the same request again */
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(counter(&c->nodes[i], "n"), 1);
    /* two waiters under one (session, request): the first application completes one, the repeat
     * (a duplicate) the other */
    assert_true(w1.done && w2.done);
    assert_true((w1.result.status == 0 && w2.result.status == META_DUPLICATE) ||
                (w2.result.status == 0 && w1.result.status == META_DUPLICATE));
    cluster_stop(c);
}

static void a_request_retried_after_its_leader_died_is_applied_once(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    struct proposal p1, p2;
    struct waiter w = {0};
    /* the leader gets the command to a majority, then dies before anyone learns the outcome */
    assert_int_equal(propose(c, 0, 2, 9, 1, "add", "n", NULL, NULL, &p1), 0);
    raft_index index = raft_last_index(raft_fixture_get(&c->f, 0));
    assert_true(raft_fixture_step_until_applied(&c->f, 1, index, 5000) ||
                raft_last_index(raft_fixture_get(&c->f, 1)) >= index);
    raft_fixture_kill(&c->f, 0);
    unsigned leader = raft_cluster_new_leader(&c->f, 0);
    assert_true(leader == 1 || leader == 2);
    /* node 2 did not hear back: it retries the same request through the new leader */
    assert_int_equal(propose(c, leader, 2, 9, 1, "add", "n", NULL, &w, &p2), 0);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(counter(&c->nodes[1], "n"), 1);
    assert_int_equal(counter(&c->nodes[2], "n"), 1);
    assert_true(w.done);
    /* the first copy completed node 2's request (applied on node 2 before the retry's entry) */
    assert_true(w.result.status == 0 || w.result.status == META_DUPLICATE);
    cluster_stop(c);
}

static void a_leader_cut_off_in_a_minority_applies_nothing_of_what_it_alone_took(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    struct proposal p[4];
    struct waiter lost = {0}, later = {0}, retried = {0};
    assert_int_equal(propose(c, 0, 0, 5, 1, "put", "before", "x", NULL, &p[0]), 0);
    raft_cluster_settle(&c->f);
    raft_fixture_disconnect(&c->f, 0, 1);
    raft_fixture_disconnect(&c->f, 1, 0);
    raft_fixture_disconnect(&c->f, 0, 2);
    raft_fixture_disconnect(&c->f, 2, 0);
    /* the old leader takes a command it cannot commit */
    assert_int_equal(propose(c, 0, 0, 5, 2, "add", "minority", NULL, &lost, &p[1]), 0);
    unsigned leader = raft_cluster_new_leader(&c->f, 0);
    assert_true(leader == 1 || leader == 2);
    assert_int_equal(propose(c, leader, 1, 6, 1, "put", "majority", "y", &later, &p[2]), 0);
    assert_true(raft_fixture_step_until_applied(&c->f, leader, raft_last_index(raft_fixture_get(&c->f, leader)), 5000));
    assert_true(later.done);
    assert_int_equal(counter(&c->nodes[0], "minority"), -1);
    raft_fixture_reconnect(&c->f, 0, 1);
    raft_fixture_reconnect(&c->f, 1, 0);
    raft_fixture_reconnect(&c->f, 0, 2);
    raft_fixture_reconnect(&c->f, 2, 0);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    /* its entry was truncated from node 0's log: applied nowhere, node 0's client still waiting */
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(counter(&c->nodes[i], "minority"), -1);
    assert_false(lost.done);
    assert_int_not_equal(p[1].status, 0);
    /* node 0 gives up on that proposal and retries through the leader: applied once */
    meta_fsm_forget(&c->nodes[0].fsm, 5, 2);
    assert_true(lost.done && lost.result.status == -ECANCELED);
    leader = raft_cluster_leader(&c->f);
    assert_int_equal(propose(c, leader, 0, 5, 2, "add", "minority", NULL, &retried, &p[3]), 0);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(counter(&c->nodes[i], "minority"), 1);
    assert_true(retried.done && retried.result.status == 0);
    cluster_stop(c);
}

static void a_lagging_node_catches_up_from_a_snapshot_sessions_included(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 8);
    static struct proposal p[120];
    raft_fixture_disconnect(&c->f, 0, 2);
    raft_fixture_disconnect(&c->f, 2, 0);
    raft_fixture_disconnect(&c->f, 1, 2);
    raft_fixture_disconnect(&c->f, 2, 1);
    for (unsigned i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "s%u", i % 30);
        assert_int_equal(propose(c, 0, 0, 11, i + 1, "add", key, NULL, NULL, &p[i]), 0);
        raft_fixture_step_n(&c->f, 3);
    }
    assert_true(raft_fixture_step_until_applied(&c->f, 1, raft_last_index(raft_fixture_get(&c->f, 0)), 10000));
    assert_int_equal(c->nodes[2].model.imports, 0);
    raft_fixture_reconnect(&c->f, 0, 2);
    raft_fixture_reconnect(&c->f, 2, 0);
    raft_fixture_reconnect(&c->f, 1, 2);
    raft_fixture_reconnect(&c->f, 2, 1);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_true(c->nodes[2].model.imports > 0); /* it caught up through a snapshot */
    assert_int_equal(c->nodes[2].fsm.applied, 100);
    /* the snapshot carried the sessions: an old request repeated is a duplicate on node 2 too */
    struct waiter w = {0};
    assert_int_equal(propose(c, 0, 2, 11, 50, "add", "s19", NULL, &w, &p[100]), 0);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_true(w.done);
    assert_int_equal(w.result.status, META_DUPLICATE);
    assert_int_equal(counter(&c->nodes[2], "s19"), 3); /* 19, 49, 79 */
    cluster_stop(c);
}

static void a_member_added_at_run_time_gets_the_same_model(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 16);
    static struct proposal p[60];
    for (unsigned i = 0; i < 50; i++) {
        char key[32], value[32];
        snprintf(key, sizeof(key), "m%u", i);
        snprintf(value, sizeof(value), "v%u", i);
        assert_int_equal(propose(c, 0, 0, 12, i + 1, "put", key, value, NULL, &p[i]), 0);
    }
    raft_cluster_settle(&c->f);
    node_init(&c->nodes[3]);
    assert_int_equal(raft_fixture_grow(&c->f, &c->nodes[3].fsm.raft), 0);
    assert_int_equal(raft_start(raft_fixture_get(&c->f, 3)), 0); /* an empty server, waiting to be added */
    c->n = 4;
    struct raft *leader = raft_fixture_get(&c->f, 0);
    struct raft_change add, promote;
    int added = 1, promoted = 1;
    add.data = &added;
    promote.data = &promoted;
    assert_int_equal(raft_add(leader, &add, c->f.servers[3].id, c->f.servers[3].address, change_done), 0);
    raft_fixture_step_until_elapsed(&c->f, 2000);
    assert_int_equal(added, 0);
    assert_int_equal(raft_assign(leader, &promote, c->f.servers[3].id, RAFT_VOTER, change_done), 0);
    raft_fixture_step_until_elapsed(&c->f, 5000);
    assert_int_equal(promoted, 0);
    for (unsigned i = 50; i < 60; i++) {
        char key[32];
        snprintf(key, sizeof(key), "m%u", i);
        assert_int_equal(propose(c, 0, 3, 13, i + 1, "put", key, "late", NULL, &p[i]), 0);
    }
    raft_cluster_settle(&c->f);
    assert_int_equal(assert_converged(c), 60);
    assert_int_equal(c->nodes[3].model.n, 60);
    cluster_stop(c);
}

static void malformed_entries_change_nothing_on_any_node(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    struct proposal p[8];
    struct waiter w = {0};
    static const char *garbage[] = {"", "\x02op", "not a table at all", "\x02op\x53\x00\x00\x00\x01x"};
    for (unsigned i = 0; i < 4; i++) {
        struct raft_buffer buf = {raft_malloc(strlen(garbage[i]) + 1), strlen(garbage[i])};
        memcpy(buf.base, garbage[i], buf.len + 1);
        assert_int_equal(raft_cluster_propose(&c->f, 0, buf, &p[i]), 0);
    }
    /* a well-formed table without a request id is malformed too */
    struct raft_buffer buf;
    struct table_buf args = args_of("k", "v");
    assert_int_equal(meta_command_encode(&buf, "put", 1, 0, &args), 0);
    assert_int_equal(raft_cluster_propose(&c->f, 0, buf, &p[4]), 0);
    table_buf_free(&args);
    assert_int_equal(propose(c, 0, 1, 3, 1, "put", "after", "fine", &w, &p[5]), 0);
    raft_cluster_settle(&c->f);
    assert_int_equal(assert_converged(c), 1);
    assert_true(w.done && w.result.status == 0);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(c->nodes[i].fsm.applied, 1);
    cluster_stop(c);
}

/* Appends (session, request) op key [value] to batch, with node `origin` expecting its result. */
static void batch_put(struct cluster *c, struct table_buf *batch, unsigned origin, uint64_t session, uint64_t request,
                      const char *op, const char *key, const char *value, struct waiter *w)
{
    struct table_buf args = args_of(key, value);
    struct raft_buffer buf;
    assert_int_equal(meta_command_encode(&buf, op, session, request, &args), 0);
    table_buf_free(&args);
    assert_int_equal(meta_batch_add(batch, buf.base, buf.len), 0);
    raft_free(buf.base);
    if (w)
        assert_int_equal(meta_fsm_expect(&c->nodes[origin].fsm, session, request, waiter_done, w), 0);
}

static struct raft_buffer batch_entry(const struct table_buf *batch)
{
    struct table_buf t = {0};
    assert_int_equal(meta_batch_encode(&t, batch), 0);
    struct raft_buffer buf = {raft_malloc(t.len), t.len};
    memcpy(buf.base, t.data, t.len);
    table_buf_free(&t);
    return buf;
}

static void a_batch_applies_each_of_its_commands_once_in_order_with_its_own_result(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 0);
    struct waiter w[7];
    memset(w, 0, sizeof(w));
    struct table_buf batch = {0};
    batch_put(c, &batch, 1, 40, 1, "put", "k", "a", &w[0]);
    batch_put(c, &batch, 2, 41, 1, "put", "k", "b", &w[1]); /* inequivalent: 406 */
    batch_put(c, &batch, 1, 40, 2, "add", "n", NULL, &w[2]);
    batch_put(c, &batch, 1, 40, 2, "add", "n", NULL, &w[3]); /* the same request again: once */
    struct table_value junk = {.type = TABLE_LONGSTR}; /* an element that is no command */
    junk.v.bytes = proto_bytes_of("junk");
    assert_int_equal(table_buf_put_value(&batch, &junk), 0);
    struct table_buf stranger = args_of("x", "y"); /* a table that is no command */
    assert_int_equal(meta_batch_add(&batch, stranger.data, stranger.len), 0);
    table_buf_free(&stranger);
    batch_put(c, &batch, 0, 42, 1, "del", "missing", NULL, &w[4]);           /* 404 */
    batch_put(c, &batch, 0, 42, 2, "del", "k", NULL, &w[5]);                 /* after the put: found */
    struct proposal p[3];
    assert_int_equal(raft_cluster_propose(&c->f, 0, batch_entry(&batch), &p[0]), 0);
    /* a batch cut short, or with an element that is not even a table, is skipped whole, on
     * every node */
    struct raft_buffer cut = batch_entry(&batch);
    cut.len -= 5;
    assert_int_equal(raft_cluster_propose(&c->f, 0, cut, &p[1]), 0);
    struct waiter late = {0};
    batch_put(c, &batch, 0, 43, 1, "add", "never", NULL, &late);
    assert_int_equal(meta_batch_add(&batch, (const uint8_t *)"\x02op", 3), 0);
    assert_int_equal(raft_cluster_propose(&c->f, 0, batch_entry(&batch), &p[2]), 0);
    table_buf_free(&batch);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_true(w[0].done && w[0].result.status == 0);
    assert_true(w[1].done && w[1].result.status == 406);
    assert_true(w[2].done && w[3].done && w[2].calls == 1 && w[3].calls == 1);
    assert_true((w[2].result.status == 0 && w[3].result.status == META_DUPLICATE) ||
                (w[3].result.status == 0 && w[2].result.status == META_DUPLICATE));
    assert_true(w[4].done && w[4].result.status == 404);
    assert_true(w[5].done && w[5].result.status == 0);
    assert_false(late.done);
    meta_fsm_forget(&c->nodes[0].fsm, 43, 1);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(counter(&c->nodes[i], "never"), -1);
        assert_int_equal(counter(&c->nodes[i], "n"), 1);
        assert_int_equal(counter(&c->nodes[i], "k"), -1); /* put, then deleted in the same entry */
        assert_int_equal(c->nodes[i].fsm.applied, 5);   /* the repeat and the two non-commands not */
    }
    cluster_stop(c);
}

/* ---- the session window, driving the state machine directly ---- */

static int apply_direct(struct node *node, uint64_t session, uint64_t request, const char *key)
{
    struct table_buf args = args_of(key, NULL);
    struct raft_buffer buf;
    assert_int_equal(meta_command_encode(&buf, "add", session, request, &args), 0);
    table_buf_free(&args);
    struct waiter w = {0};
    assert_int_equal(meta_fsm_expect(&node->fsm, session, request, waiter_done, &w), 0);
    void *result;
    assert_int_equal(node->fsm.raft.apply(&node->fsm.raft, &buf, &result), 0);
    raft_free(buf.base);
    assert_true(w.done);
    return w.result.status;
}

static void the_session_window_remembers_out_of_order_requests_and_evicts_the_oldest(void **state)
{
    (void)state;
    static struct node node;
    node_init(&node);
    /* out of order within the window: each once */
    uint64_t order[] = {3, 1, 2, 5, 4, 1, 3, 5, 900, 6, 900};
    int expect[] = {0, 0, 0, 0, 0, META_DUPLICATE, META_DUPLICATE, META_DUPLICATE, 0, 0, META_DUPLICATE};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        assert_int_equal(apply_direct(&node, 1, order[i], "a"), expect[i]);
    assert_int_equal(counter(&node, "a"), 7);
    /* far ahead: the floor moves up; what falls below it counts as applied */
    assert_int_equal(apply_direct(&node, 1, 900 + META_WINDOW + 10, "a"), 0);
    assert_int_equal(apply_direct(&node, 1, 7, "a"), META_DUPLICATE);
    assert_int_equal(apply_direct(&node, 1, 900 + META_WINDOW + 9, "a"), 0); /* inside the window: new */
    assert_int_equal(counter(&node, "a"), 9);
    /* META_SESSIONS more sessions: session 1, seen longest ago, is forgotten */
    for (uint64_t s = 2; s < 2 + META_SESSIONS; s++)
        assert_int_equal(apply_direct(&node, s, 1, "b"), 0);
    assert_int_equal(node.fsm.sessions.n, META_SESSIONS);
    assert_int_equal(apply_direct(&node, 2, 1, "b"), META_DUPLICATE); /* still remembered */
    assert_int_equal(apply_direct(&node, 1, 5, "a"), 0);             /* forgotten: applied again */
    meta_fsm_close(&node.fsm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commands_from_any_node_apply_once_in_order_everywhere),
        cmocka_unit_test(a_repeated_request_is_applied_once),
        cmocka_unit_test(a_request_retried_after_its_leader_died_is_applied_once),
        cmocka_unit_test(a_leader_cut_off_in_a_minority_applies_nothing_of_what_it_alone_took),
        cmocka_unit_test(a_lagging_node_catches_up_from_a_snapshot_sessions_included),
        cmocka_unit_test(a_member_added_at_run_time_gets_the_same_model),
        cmocka_unit_test(malformed_entries_change_nothing_on_any_node),
        cmocka_unit_test(a_batch_applies_each_of_its_commands_once_in_order_with_its_own_result),
        cmocka_unit_test(the_session_window_remembers_out_of_order_requests_and_evicts_the_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
