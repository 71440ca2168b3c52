/* tests/unit/cluster/test_qq_fsm.c: a quorum queue's state machine (broker/cluster/qq_fsm.h),
 * replicated by libraft's in-memory fixture and driven directly. Every member records the effects
 * it computes (deliveries, discards); after every scenario every live member's state must be the
 * same bytes and its effects the same list: round-robin within prefetch, settling frees credit,
 * a client's returns behind the new messages and redelivered, a departed consumer's in front of
 * them, the delivery limit, cancel and node_down, purge, a leader killed mid-stream with retries
 * applied once, a member catching up from a snapshot, malformed commands, crafted snapshots
 * refused, and without Raft: the assignment rules, 64-bit channels, detach (basic.cancel) and
 * dequeue (basic.get) with its get holders, qq_fsm_apply_command and qq_fsm_import, and the
 * length limits (drop-head, reject-publish's latch, ready bytes, limits in snapshots). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qq_fsm.h"
#include "raft_cluster.h"

/* ---- a member: the state machine and the effects it computed ---- */

#define EFFECTS_MAX 1024

struct effect {
    char kind; /* 'D' deliver, 'X' discarded */
    char node[16], tag[16];
    uint64_t channel;
    bool redelivered;
    uint32_t count;
    uint64_t id;
    char reason[16];
    char content[16];
};

struct node {
    struct qq_fsm fsm;
    struct effect effects[EFFECTS_MAX];
    size_t n;
    unsigned restores;
    int (*restore)(struct raft_fsm *fsm, struct raft_buffer *buf);
};

static void copy_content(char out[16], struct proto_bytes content)
{
    assert_true(content.len < 16);
    memcpy(out, content.ptr, content.len);
}

static struct effect *effect_new(struct node *node, char kind, uint64_t id, struct proto_bytes content)
{
    assert_true(node->n < EFFECTS_MAX);
    struct effect *e = &node->effects[node->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->id = id;
    copy_content(e->content, content);
    return e;
}

static void on_deliver(void *ctx, const struct qq_consumer_key *consumer, uint64_t id, struct proto_bytes content,
                       bool redelivered, uint32_t count)
{
    struct effect *e = effect_new(ctx, 'D', id, content);
    assert_true(strlen(consumer->node) < sizeof(e->node) && strlen(consumer->tag) < sizeof(e->tag));
    memcpy(e->node, consumer->node, strlen(consumer->node));
    memcpy(e->tag, consumer->tag, strlen(consumer->tag));
    e->channel = consumer->channel;
    e->redelivered = redelivered;
    e->count = count;
}

static void on_discarded(void *ctx, uint64_t id, struct proto_bytes content, const char *reason)
{
    struct effect *e = effect_new(ctx, 'X', id, content);
    snprintf(e->reason, sizeof(e->reason), "%s", reason);
}

static int counting_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *node = (struct node *)((char *)fsm - offsetof(struct node, fsm.raft));
    int rc = node->restore(fsm, buf);
    node->restores += rc == 0;
    return rc;
}

static void node_init(struct node *node, int64_t delivery_limit)
{
    memset(node, 0, sizeof(*node));
    struct qq_effects effects = {on_deliver, on_discarded, node};
    assert_int_equal(qq_fsm_init(&node->fsm, delivery_limit, &effects), 0);
    node->restore = node->fsm.raft.restore;
    node->fsm.raft.restore = counting_restore;
}

/* ---- commands ---- */

static void put_str(struct table_buf *t, const char *key, const char *value)
{
    assert_int_equal(table_buf_put_string(t, key, proto_bytes_of(value)), 0);
}

static void put_int(struct table_buf *t, const char *key, int64_t value)
{
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = value;
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
}

static struct table_buf content_args(const char *content)
{
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_BYTES};
    v.v.bytes = proto_bytes_of(content);
    assert_int_equal(table_buf_put_field(&t, "content", 7, &v), 0);
    return t;
}

static struct table_buf consumer_args(const char *node, int64_t channel, const char *tag)
{
    struct table_buf t = {0};
    put_str(&t, "node", node);
    put_int(&t, "channel", channel);
    put_str(&t, "tag", tag);
    return t;
}

static struct table_buf checkout_args(const char *node, int64_t channel, const char *tag, int prefetch)
{
    struct table_buf t = consumer_args(node, channel, tag);
    put_int(&t, "prefetch", prefetch);
    return t;
}

/* Settle/return/discard arguments: ids end at 0. */
static struct table_buf ids_args(const char *node, int64_t channel, const char *tag, const uint64_t *ids)
{
    struct table_buf t = consumer_args(node, channel, tag), list = {0};
    struct table_value v = {.type = TABLE_UINT64};
    for (; *ids; ids++) {
        v.v.u64 = *ids;
        assert_int_equal(table_buf_put_value(&list, &v), 0);
    }
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(&t, "ids", 3, &v), 0);
    table_buf_free(&list);
    return t;
}

static struct table_buf dequeue_args(const char *node, int64_t channel, const char *tag, bool no_ack)
{
    struct table_buf t = consumer_args(node, channel, tag);
    struct table_value v = {.type = TABLE_BOOL};
    v.v.boolean = no_ack;
    assert_int_equal(table_buf_put_field(&t, "no_ack", 6, &v), 0);
    return t;
}

static struct table_buf node_args(const char *node)
{
    struct table_buf t = {0};
    put_str(&t, "node", node);
    return t;
}

#define IDS(...) ((const uint64_t[]){__VA_ARGS__, 0})

/* A request some member expects the result of. */
struct waiter {
    bool done;
    unsigned calls;
    struct qq_result result;
};

static void waiter_done(void *arg, const struct qq_result *result)
{
    struct waiter *w = arg;
    w->done = true;
    w->calls++;
    w->result = *result;
}

/* Applies a command to a member directly (no Raft); frees args; returns its result. */
static struct qq_result apply_direct(struct node *node, uint64_t session, uint64_t request, const char *op,
                                     struct table_buf args)
{
    struct raft_buffer buf;
    assert_int_equal(meta_command_encode(&buf, op, session, request, &args), 0);
    table_buf_free(&args);
    struct waiter w = {0};
    assert_int_equal(qq_fsm_expect(&node->fsm, session, request, waiter_done, &w), 0);
    void *result;
    assert_int_equal(node->fsm.raft.apply(&node->fsm.raft, &buf, &result), 0);
    raft_free(buf.base);
    assert_true(w.done);
    return w.result;
}

static void assert_delivery(const struct effect *e, const char *tag, uint64_t id, bool redelivered)
{
    assert_int_equal(e->kind, 'D');
    assert_string_equal(e->tag, tag);
    assert_int_equal(e->id, id);
    assert_int_equal(e->redelivered, redelivered);
}

/* ---- a cluster of members ---- */

#define NODES 3
#define PROPOSALS 1024

struct cluster {
    struct raft_fixture f;
    struct node nodes[NODES];
    struct proposal proposals[PROPOSALS];
    size_t nproposals;
};

static struct cluster *cluster_start(int64_t delivery_limit, unsigned snapshot_threshold)
{
    struct cluster *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    struct raft_fsm *fsms[NODES];
    for (unsigned i = 0; i < NODES; i++) {
        node_init(&c->nodes[i], delivery_limit);
        fsms[i] = &c->nodes[i].fsm.raft;
    }
    raft_cluster_start(&c->f, fsms, NODES, snapshot_threshold);
    return c;
}

static void cluster_stop(struct cluster *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < NODES; i++)
        qq_fsm_close(&c->nodes[i].fsm);
    free(c);
}

/* Proposes (session, request) op args through server `via`, member `origin` expecting the result
 * through w (may be NULL). Frees args. Returns raft_apply's status. */
static int propose(struct cluster *c, unsigned via, unsigned origin, uint64_t session, uint64_t request,
                   const char *op, struct table_buf args, struct waiter *w)
{
    struct raft_buffer buf;
    assert_int_equal(meta_command_encode(&buf, op, session, request, &args), 0);
    table_buf_free(&args);
    if (w)
        assert_int_equal(qq_fsm_expect(&c->nodes[origin].fsm, session, request, waiter_done, w), 0);
    assert_true(c->nproposals < PROPOSALS);
    return raft_cluster_propose(&c->f, via, buf, &c->proposals[c->nproposals++]);
}

/* Every live member's state is the same bytes, and it computed the same effects. */
static void assert_converged(struct cluster *c)
{
    struct table_buf first = {0};
    int have = -1;
    for (unsigned i = 0; i < NODES; i++) {
        if (!raft_fixture_alive(&c->f, i))
            continue;
        struct table_buf t = {0};
        assert_int_equal(qq_fsm_export(&c->nodes[i].fsm, &t), 0);
        if (have < 0) {
            first = t;
            have = (int)i;
            continue;
        }
        assert_int_equal(t.len, first.len);
        assert_memory_equal(t.data, first.data, t.len);
        table_buf_free(&t);
        assert_int_equal(c->nodes[i].n, c->nodes[have].n);
        assert_memory_equal(c->nodes[i].effects, c->nodes[have].effects, c->nodes[i].n * sizeof(struct effect));
    }
    table_buf_free(&first);
}

/* The client of one member: its session and next request number. */
struct client {
    struct cluster *c;
    unsigned origin;
    uint64_t session, request;
};

/* Sends op through the current leader; frees args. */
static void send_cmd(struct client *cl, const char *op, struct table_buf args, struct waiter *w)
{
    unsigned leader = raft_cluster_leader(&cl->c->f);
    assert_true(leader < NODES);
    assert_int_equal(propose(cl->c, leader, cl->origin, cl->session, ++cl->request, op, args, w), 0);
}

/* ---- scenarios over Raft ---- */

/* Two consumers, a prefetch 2 and b prefetch 3, then ten messages. */
static void two_consumers_and_ten_messages(struct client *cl, struct waiter enq[10])
{
    send_cmd(cl, "checkout", checkout_args("n0", 1, "a", 2), NULL);
    send_cmd(cl, "checkout", checkout_args("n1", 1, "b", 3), NULL);
    for (unsigned i = 0; i < 10; i++) {
        char content[8];
        snprintf(content, sizeof(content), "m%u", i + 1);
        send_cmd(cl, "enqueue", content_args(content), &enq[i]);
    }
    raft_cluster_settle(&cl->c->f);
    assert_converged(cl->c);
}

static void messages_go_round_robin_to_two_consumers_within_their_prefetch(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 1, 21, 0};
    struct waiter enq[10] = {0};
    two_consumers_and_ten_messages(&cl, enq);
    for (unsigned i = 0; i < 10; i++) {
        assert_true(enq[i].done);
        assert_int_equal(enq[i].result.status, 0);
        assert_int_equal(enq[i].result.value, i + 1); /* ids in log order */
    }
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 5);
        assert_delivery(&n->effects[0], "a", 1, false);
        assert_delivery(&n->effects[1], "b", 2, false);
        assert_delivery(&n->effects[2], "a", 3, false);
        assert_delivery(&n->effects[3], "b", 4, false);
        assert_delivery(&n->effects[4], "b", 5, false); /* a is full */
        assert_string_equal(n->effects[4].content, "m5");
        assert_int_equal(qq_fsm_messages(&n->fsm), 10);
        assert_int_equal(qq_fsm_ready(&n->fsm), 5);
    }
    cluster_stop(c);
}

static void settling_frees_credit_and_more_are_delivered(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 0, 22, 0};
    struct waiter enq[10] = {0}, s1 = {0}, s2 = {0};
    two_consumers_and_ten_messages(&cl, enq);
    send_cmd(&cl, "settle", ids_args("n0", 1, "a", IDS(1)), &s1);
    send_cmd(&cl, "settle", ids_args("n1", 1, "b", IDS(2, 4, 3)), &s2); /* 3 is a's: skipped */
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(s1.result.value, 1);
    assert_int_equal(s2.result.value, 2);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 8);
        assert_delivery(&n->effects[5], "a", 6, false);
        assert_delivery(&n->effects[6], "b", 7, false);
        assert_delivery(&n->effects[7], "b", 8, false);
        assert_int_equal(qq_fsm_messages(&n->fsm), 7);
        assert_int_equal(qq_fsm_ready(&n->fsm), 2);
    }
    cluster_stop(c);
}

static void returned_messages_go_behind_the_new_ones_and_are_redelivered(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 2, 23, 0};
    struct waiter enq[10] = {0}, r = {0};
    two_consumers_and_ten_messages(&cl, enq); /* a: 1 3, b: 2 4 5 */
    send_cmd(&cl, "return", ids_args("n1", 1, "b", IDS(4, 2)), &r);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(r.result.value, 2);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        /* b has room for two again: 6 and 7, the returned ones being behind 10 */
        assert_int_equal(n->n, 7);
        assert_delivery(&n->effects[5], "b", 6, false);
        assert_delivery(&n->effects[6], "b", 7, false);
        assert_int_equal(qq_fsm_ready(&n->fsm), 5);
    }
    send_cmd(&cl, "settle", ids_args("n0", 1, "a", IDS(1, 3)), NULL);    /* a: 8 9 */
    send_cmd(&cl, "settle", ids_args("n1", 1, "b", IDS(5, 6, 7)), NULL); /* b: 10, then the returns */
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 12);
        assert_delivery(&n->effects[7], "a", 8, false);
        assert_delivery(&n->effects[8], "a", 9, false);
        assert_delivery(&n->effects[9], "b", 10, false);
        /* in the order the return named them, each one delivery attempt more */
        assert_delivery(&n->effects[10], "b", 4, true);
        assert_int_equal(n->effects[10].count, 1);
        assert_delivery(&n->effects[11], "b", 2, true);
        assert_int_equal(n->effects[11].count, 1);
        assert_int_equal(qq_fsm_ready(&n->fsm), 0);
    }
    cluster_stop(c);
}

/* RabbitMQ 3.10: a nack puts the message behind those never delivered; the messages of a
 * consumer that goes away go before everything. */
static void a_client_return_goes_behind_a_new_message_and_a_cancels_go_in_front(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 0, 31, 0};
    struct waiter cancelled = {0};
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 1), NULL);
    send_cmd(&cl, "checkout", checkout_args("n1", 1, "b", 1), NULL);
    for (unsigned i = 0; i < 3; i++)
        send_cmd(&cl, "enqueue", content_args("x"), NULL); /* a: 1, b: 2, 3 ready */
    send_cmd(&cl, "return", ids_args("n0", 1, "a", IDS(1)), NULL);      /* a: 3, ahead of 1 */
    send_cmd(&cl, "cancel", consumer_args("n1", 1, "b"), &cancelled);  /* 2: in front of 1 */
    send_cmd(&cl, "enqueue", content_args("y"), NULL);                  /* 4: behind 1 */
    send_cmd(&cl, "settle", ids_args("n0", 1, "a", IDS(3)), NULL);      /* a: 2 */
    send_cmd(&cl, "settle", ids_args("n0", 1, "a", IDS(2)), NULL);      /* a: 1 */
    send_cmd(&cl, "settle", ids_args("n0", 1, "a", IDS(1)), NULL);      /* a: 4 */
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(cancelled.result.value, 1);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 6);
        assert_delivery(&n->effects[0], "a", 1, false);
        assert_delivery(&n->effects[1], "b", 2, false);
        assert_delivery(&n->effects[2], "a", 3, false);
        assert_delivery(&n->effects[3], "a", 2, true);
        assert_delivery(&n->effects[4], "a", 1, true);
        assert_delivery(&n->effects[5], "a", 4, false);
        assert_int_equal(n->effects[3].count, 1);
        assert_int_equal(n->effects[4].count, 1);
        assert_int_equal(qq_fsm_messages(&n->fsm), 1);
        assert_int_equal(qq_fsm_ready(&n->fsm), 0);
    }
    cluster_stop(c);
}

static void a_message_returned_more_often_than_the_delivery_limit_is_discarded(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(2, 0);
    struct client cl = {c, 0, 24, 0};
    struct waiter d = {0};
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 1), NULL);
    send_cmd(&cl, "enqueue", content_args("poison"), NULL);
    for (unsigned i = 0; i < 3; i++) /* alone in the queue, it comes straight back to a */
        send_cmd(&cl, "return", ids_args("n0", 1, "a", IDS(1)), NULL);
    send_cmd(&cl, "enqueue", content_args("fine"), NULL);
    send_cmd(&cl, "discard", ids_args("n0", 1, "a", IDS(2)), &d);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(d.result.value, 1);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 6);
        assert_delivery(&n->effects[0], "a", 1, false);
        assert_delivery(&n->effects[1], "a", 1, true);
        assert_delivery(&n->effects[2], "a", 1, true);
        assert_int_equal(n->effects[2].count, 2);
        /* the third return: delivery count 3 > limit 2 (RabbitMQ: delivered limit + 1 times) */
        assert_int_equal(n->effects[3].kind, 'X');
        assert_int_equal(n->effects[3].id, 1);
        assert_string_equal(n->effects[3].reason, "delivery_limit");
        assert_string_equal(n->effects[3].content, "poison");
        assert_delivery(&n->effects[4], "a", 2, false);
        assert_int_equal(n->effects[5].kind, 'X');
        assert_string_equal(n->effects[5].reason, "rejected");
        assert_string_equal(n->effects[5].content, "fine");
        assert_int_equal(qq_fsm_messages(&n->fsm), 0);
    }
    cluster_stop(c);
}

static void cancel_and_node_down_return_checked_out_messages(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 1, 25, 0};
    struct waiter cancelled = {0}, down = {0};
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 2), NULL);
    send_cmd(&cl, "checkout", checkout_args("n1", 1, "b", 2), NULL);
    for (unsigned i = 0; i < 4; i++)
        send_cmd(&cl, "enqueue", content_args("x"), NULL); /* a: 1 3, b: 2 4 */
    send_cmd(&cl, "cancel", consumer_args("n0", 1, "a"), &cancelled);
    send_cmd(&cl, "node_down", node_args("n1"), &down);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(cancelled.result.value, 2);
    assert_int_equal(down.result.value, 1);
    for (unsigned i = 0; i < NODES; i++) {
        assert_int_equal(c->nodes[i].n, 4);
        assert_int_equal(qq_fsm_ready(&c->nodes[i].fsm), 4);
    }
    send_cmd(&cl, "checkout", checkout_args("n2", 1, "c", 0), NULL);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(n->n, 8);
        /* in the order they came back, each consumer's in id order: a's 1 3, then b's 2 4; each
         * returned once: delivery count 1, redelivered */
        static const uint64_t order[] = {1, 3, 2, 4};
        for (unsigned k = 0; k < 4; k++) {
            assert_delivery(&n->effects[4 + k], "c", order[k], true);
            assert_int_equal(n->effects[4 + k].count, 1);
        }
    }
    cluster_stop(c);
}

/* channel_down: every consumer of that channel of that node goes, attached, detached or a get
 * holder, its messages back to the front; another channel of the same node keeps its own. */
static void channel_down_cancels_every_key_of_one_channel(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 0, 27, 0};
    struct waiter down = {0}, bad = {0};
    send_cmd(&cl, "checkout", checkout_args("n0", 7, "a", 1), NULL);
    send_cmd(&cl, "checkout", checkout_args("n0", 8, "b", 1), NULL);
    for (unsigned i = 0; i < 3; i++)
        send_cmd(&cl, "enqueue", content_args("x"), NULL); /* a: 1, b: 2, 3 ready */
    send_cmd(&cl, "detach", consumer_args("n0", 7, "a"), NULL);       /* a keeps 1 */
    send_cmd(&cl, "dequeue", dequeue_args("n0", 7, "", false), NULL); /* the holder takes 3 */
    struct table_buf t = {0};
    put_str(&t, "node", "n0");
    put_int(&t, "channel", 7);
    send_cmd(&cl, "channel_down", t, &down);
    struct table_buf u = {0};
    put_str(&u, "node", "n0"); /* no channel: malformed */
    send_cmd(&cl, "channel_down", u, &bad);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(down.result.status, 0);
    assert_int_equal(down.result.value, 2);
    assert_int_equal(bad.result.status, QQ_MALFORMED);
    for (unsigned i = 0; i < NODES; i++) {
        assert_int_equal(qq_fsm_ready(&c->nodes[i].fsm), 2); /* 1 and 3 back; b still holds 2 */
        assert_int_equal(qq_fsm_consumers(&c->nodes[i].fsm), 1);
        assert_int_equal(qq_fsm_messages(&c->nodes[i].fsm), 3);
    }
    cluster_stop(c);
}

static void purge_removes_the_ready_messages_only(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 2, 26, 0};
    struct waiter p1 = {0}, p2 = {0}, after = {0};
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 2), NULL);
    for (unsigned i = 0; i < 5; i++)
        send_cmd(&cl, "enqueue", content_args("x"), NULL);
    send_cmd(&cl, "purge", (struct table_buf){0}, &p1);
    send_cmd(&cl, "cancel", consumer_args("n0", 1, "a"), NULL);
    send_cmd(&cl, "purge", (struct table_buf){0}, &p2);
    send_cmd(&cl, "enqueue", content_args("y"), &after);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_int_equal(p1.result.value, 3);
    assert_int_equal(p2.result.value, 2); /* a's two, returned by the cancel */
    assert_int_equal(after.result.value, 6);
    for (unsigned i = 0; i < NODES; i++) {
        assert_int_equal(qq_fsm_messages(&c->nodes[i].fsm), 1);
        assert_int_equal(qq_fsm_ready(&c->nodes[i].fsm), 1);
    }
    cluster_stop(c);
}

static void a_leader_killed_mid_stream_and_retries_apply_each_command_once(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    static struct waiter w[20];
    memset(w, 0, sizeof(w));
    assert_int_equal(propose(c, 0, 2, 27, 1, "checkout", checkout_args("n2", 1, "c", 0), NULL), 0);
    for (unsigned i = 0; i < 20; i++) {
        char content[8];
        snprintf(content, sizeof(content), "e%u", i + 1);
        assert_int_equal(propose(c, 0, 2, 27, i + 2, "enqueue", content_args(content), NULL), 0);
        if (i == 9) /* the first half is applied on a follower; the second stays on the leader */
            assert_true(
                raft_fixture_step_until_applied(&c->f, 1, raft_last_index(raft_fixture_get(&c->f, 0)), 5000));
    }
    assert_int_equal(qq_fsm_messages(&c->nodes[1].fsm), 10);
    raft_fixture_kill(&c->f, 0);
    unsigned leader = raft_cluster_new_leader(&c->f, 0);
    /* node 2 heard back about nothing: it retries every request through the new leader */
    assert_int_equal(propose(c, leader, 2, 27, 1, "checkout", checkout_args("n2", 1, "c", 0), NULL), 0);
    for (unsigned i = 0; i < 20; i++) {
        char content[8];
        snprintf(content, sizeof(content), "e%u", i + 1);
        assert_int_equal(propose(c, leader, 2, 27, i + 2, "enqueue", content_args(content), &w[i]), 0);
    }
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < 20; i++) {
        /* node 2's request completes once: by the first copy it applies (the original entry for
         * the first half, if node 2 had not applied it yet when it retried), or as a duplicate */
        assert_true(w[i].done && w[i].calls == 1);
        if (w[i].result.status == 0)
            assert_int_equal(w[i].result.value, i + 1);
        else
            assert_true(w[i].result.status == QQ_DUPLICATE && i < 10);
    }
    for (unsigned i = 1; i < NODES; i++) {
        struct node *n = &c->nodes[i];
        assert_int_equal(qq_fsm_messages(&n->fsm), 20);
        assert_int_equal(n->n, 20);
        for (unsigned k = 0; k < 20; k++) { /* each content once, ids 1..20 */
            assert_delivery(&n->effects[k], "c", k + 1, false);
            unsigned seen = 0;
            for (unsigned j = 0; j < 20; j++) {
                char content[8];
                snprintf(content, sizeof(content), "e%u", k + 1);
                seen += strcmp(n->effects[j].content, content) == 0;
            }
            assert_int_equal(seen, 1);
        }
    }
    cluster_stop(c);
}

static void a_lagging_member_catches_up_from_a_snapshot_and_agrees_on_later_effects(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(3, 8);
    struct client cl = {c, 0, 28, 0};
    raft_fixture_disconnect(&c->f, 0, 2);
    raft_fixture_disconnect(&c->f, 2, 0);
    raft_fixture_disconnect(&c->f, 1, 2);
    raft_fixture_disconnect(&c->f, 2, 1);
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 3), NULL);
    send_cmd(&cl, "checkout", checkout_args("n1", 7, "b", 2), NULL);
    for (unsigned i = 0; i < 40; i++) {
        char content[8];
        snprintf(content, sizeof(content), "l%u", i + 1);
        send_cmd(&cl, "enqueue", content_args(content), NULL);
        raft_fixture_step_n(&c->f, 3);
    }
    for (uint64_t id = 1; id <= 40; id++) {
        send_cmd(&cl, id % 3 ? "settle" : "return", ids_args("n0", 1, "a", IDS(id)), NULL);
        send_cmd(&cl, "settle", ids_args("n1", 7, "b", IDS(id)), NULL);
        raft_fixture_step_n(&c->f, 3);
    }
    assert_true(raft_fixture_step_until_applied(&c->f, 1, raft_last_index(raft_fixture_get(&c->f, 0)), 10000));
    assert_int_equal(c->nodes[2].restores, 0);
    raft_fixture_reconnect(&c->f, 0, 2);
    raft_fixture_reconnect(&c->f, 2, 0);
    raft_fixture_reconnect(&c->f, 1, 2);
    raft_fixture_reconnect(&c->f, 2, 1);
    raft_cluster_settle(&c->f);
    assert_true(c->nodes[2].restores > 0); /* it caught up through a snapshot */
    assert_true(c->nodes[2].n < c->nodes[0].n);
    /* from here on every member applies every entry from the log (no more snapshots to install)
     * and so computes every effect */
    for (unsigned i = 0; i < NODES; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 1000);
        c->nodes[i].n = 0;
    }
    assert_converged(c);
    assert_true(qq_fsm_messages(&c->nodes[2].fsm) > 0);
    struct waiter dup = {0};
    struct client late = {c, 2, 29, 0};
    send_cmd(&late, "checkout", checkout_args("n2", 1, "c", 0), NULL);
    for (unsigned i = 0; i < 5; i++)
        send_cmd(&late, "enqueue", content_args("late"), NULL);
    send_cmd(&late, "node_down", node_args("n0"), NULL);
    assert_int_equal(propose(c, raft_cluster_leader(&c->f), 2, 28, 3, "enqueue", content_args("old"), &dup), 0);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    assert_true(c->nodes[2].n > 5);
    assert_true(dup.done);
    assert_int_equal(dup.result.status, QQ_DUPLICATE); /* the sessions came with the snapshot */
    cluster_stop(c);
}

static void malformed_commands_change_nothing(void **state)
{
    (void)state;
    struct cluster *c = cluster_start(-1, 0);
    struct client cl = {c, 0, 30, 0};
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "a", 1), NULL);
    send_cmd(&cl, "enqueue", content_args("one"), NULL);
    send_cmd(&cl, "enqueue", content_args("two"), NULL);
    raft_cluster_settle(&c->f);
    size_t effects = c->nodes[0].n;
    static const char *garbage[] = {"", "\x02op", "not a table at all", "\x02op\x53\x00\x00\x00\x01x"};
    for (unsigned i = 0; i < 4; i++) {
        struct raft_buffer buf = {raft_malloc(strlen(garbage[i]) + 1), strlen(garbage[i])};
        memcpy(buf.base, garbage[i], buf.len + 1);
        assert_int_equal(raft_cluster_propose(&c->f, 0, buf, &c->proposals[c->nproposals++]), 0);
    }
    struct waiter w[12];
    memset(w, 0, sizeof(w));
    struct table_buf t = {0};
    put_str(&t, "content", "a longstr, not bytes");
    send_cmd(&cl, "enqueue", t, &w[0]);
    send_cmd(&cl, "enqueue", (struct table_buf){0}, &w[1]);
    send_cmd(&cl, "checkout", checkout_args("n0", 1, "b", 70000), &w[2]);
    send_cmd(&cl, "checkout", checkout_args("n0", -1, "b", 1), &w[3]);
    t = consumer_args("n0", 1, "a");
    put_str(&t, "ids", "1");
    send_cmd(&cl, "settle", t, &w[4]);
    t = consumer_args("n0", 1, "a");
    {
        struct table_buf list = {0};
        struct table_value v = {.type = TABLE_UINT64};
        v.v.u64 = 1;
        assert_int_equal(table_buf_put_value(&list, &v), 0);
        v = (struct table_value){.type = TABLE_LONGSTR};
        v.v.bytes = proto_bytes_of("2");
        assert_int_equal(table_buf_put_value(&list, &v), 0);
        v = (struct table_value){.type = TABLE_ARRAY};
        v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
        assert_int_equal(table_buf_put_field(&t, "ids", 3, &v), 0);
        table_buf_free(&list);
    }
    send_cmd(&cl, "settle", t, &w[5]); /* 1 is valid, "2" is not: nothing is settled */
    t = (struct table_buf){0};
    assert_int_equal(table_buf_put_string(&t, "node", (struct proto_bytes){(const uint8_t *)"n\0", 2}), 0);
    send_cmd(&cl, "node_down", t, &w[6]);
    send_cmd(&cl, "node_down", (struct table_buf){0}, &w[7]);
    send_cmd(&cl, "explode", (struct table_buf){0}, &w[8]);
    send_cmd(&cl, "cancel", consumer_args("n0", 1, "nobody"), &w[9]);
    send_cmd(&cl, "return", ids_args("n0", 2, "a", IDS(1)), &w[10]);
    send_cmd(&cl, "enqueue", content_args("three"), &w[11]);
    raft_cluster_settle(&c->f);
    assert_converged(c);
    for (unsigned i = 0; i < 9; i++)
        assert_int_equal(w[i].result.status, QQ_MALFORMED);
    assert_int_equal(w[9].result.status, QQ_NOT_FOUND);
    assert_int_equal(w[10].result.status, QQ_NOT_FOUND);
    assert_int_equal(w[11].result.status, 0);
    assert_int_equal(w[11].result.value, 3); /* no id was taken by a malformed enqueue */
    for (unsigned i = 0; i < NODES; i++) {
        assert_int_equal(c->nodes[i].n, effects);
        assert_int_equal(qq_fsm_messages(&c->nodes[i].fsm), 3);
        assert_int_equal(c->nodes[i].fsm.state.nconsumers, 1);
        assert_int_equal(qq_fsm_ready(&c->nodes[i].fsm), 2); /* a still holds 1 */
    }
    cluster_stop(c);
}

/* ---- the assignment rules, without Raft ---- */

static void the_assignment_rules_hold_without_raft(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 2, "b", 2));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "a", 0)); /* same tag, another node */
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).value, i + 1);
    /* one each, in attach order */
    assert_int_equal(n.n, 3);
    assert_delivery(&n.effects[0], "a", 1, false);
    assert_string_equal(n.effects[0].node, "n0");
    assert_delivery(&n.effects[1], "b", 2, false);
    assert_delivery(&n.effects[2], "a", 3, false);
    assert_string_equal(n.effects[2].node, "n1");
    /* then a is full; b takes one more; the unlimited one takes the rest */
    for (unsigned i = 0; i < 4; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_int_equal(n.n, 7);
    assert_int_equal(n.effects[3].channel, 2); /* 4: b */
    assert_string_equal(n.effects[4].node, "n1"); /* 5: the unlimited a, b being full */
    assert_string_equal(n.effects[5].node, "n1");
    assert_string_equal(n.effects[6].node, "n1");
    /* a duplicate changes nothing */
    struct qq_result dup = apply_direct(&n, 1, 4, "enqueue", content_args("m"));
    assert_int_equal(dup.status, QQ_DUPLICATE);
    assert_int_equal(qq_fsm_messages(&n.fsm), 7);
    /* the unlimited one returns 7 then 5: they go to the back in that order, so a message
     * enqueued after them comes after them. Lower its prefetch first so the ready order shows. */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "a", 1));
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n1", 1, "a", IDS(7, 5))).value, 2);
    assert_int_equal(n.n, 7); /* it holds 3 and 6: over its new prefetch, nothing delivered */
    apply_direct(&n, 1, ++r, "enqueue", content_args("new"));
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(1)));
    assert_int_equal(n.n, 8);
    assert_delivery(&n.effects[7], "a", 7, true); /* returned 7, then returned 5, then new 8 */
    assert_string_equal(n.effects[7].node, "n0");
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(7)));
    assert_delivery(&n.effects[8], "a", 5, true);
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(5)));
    assert_delivery(&n.effects[9], "a", 8, false);
    /* an id it does not hold is skipped; a raised prefetch delivers at once */
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(2, 99))).value, 0);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_int_equal(n.n, 10);
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 2, "b", 3));
    assert_int_equal(n.n, 11);
    assert_int_equal(n.effects[10].channel, 2);
    assert_int_equal(n.effects[10].id, 9);
    qq_fsm_close(&n.fsm);
}

/* ---- detach (basic.cancel) and dequeue (basic.get), without Raft ---- */

static struct table_buf u64_channel_args(const char *node, uint64_t channel, const char *tag, int prefetch)
{
    struct table_buf t = {0};
    put_str(&t, "node", node);
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = channel;
    assert_int_equal(table_buf_put_field(&t, "channel", 7, &v), 0);
    put_str(&t, "tag", tag);
    put_int(&t, "prefetch", prefetch);
    return t;
}

static void channels_past_16_bits_name_distinct_consumers_and_survive_a_snapshot(void **state)
{
    (void)state;
    static struct node n, copy;
    node_init(&n, -1);
    uint64_t r = 0;
    /* 70000 and 4464 are the same channel in 16 bits */
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 70000, "a", 1)).status, 0);
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 4464, "a", 1)).status, 0);
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", u64_channel_args("n0", INT64_MAX, "a", 1)).status, 0);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 3);
    for (unsigned i = 0; i < 3; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_int_equal(n.n, 3);
    assert_int_equal(n.effects[0].channel, 70000);
    assert_int_equal(n.effects[1].channel, 4464);
    assert_true(n.effects[2].channel == (uint64_t)INT64_MAX);
    /* a snapshot carries them whole */
    struct raft_buffer *bufs;
    unsigned nbufs;
    assert_int_equal(n.fsm.raft.snapshot(&n.fsm.raft, &bufs, &nbufs), 0);
    node_init(&copy, -1);
    assert_int_equal(copy.fsm.raft.restore(&copy.fsm.raft, &bufs[0]), 0);
    raft_free(bufs);
    struct table_buf a = {0}, b = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &a), 0);
    assert_int_equal(qq_fsm_export(&copy.fsm, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    table_buf_free(&a);
    table_buf_free(&b);
    assert_int_equal(apply_direct(&copy, 2, 1, "settle", ids_args("n0", 70000, "a", IDS(1))).value, 1);
    assert_int_equal(apply_direct(&copy, 2, 2, "settle", ids_args("n0", 4464, "a", IDS(2))).value, 1);
    assert_int_equal(apply_direct(&copy, 2, 3, "settle", ids_args("n0", INT64_MAX, "a", IDS(3))).value, 1);
    assert_int_equal(qq_fsm_messages(&copy.fsm), 0);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

static void a_negative_or_too_big_channel_is_malformed(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", -1, "a", 1)).status, QQ_MALFORMED);
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", INT64_MIN, "a", 1)).status,
                     QQ_MALFORMED);
    assert_int_equal(
        apply_direct(&n, 1, ++r, "checkout", u64_channel_args("n0", (uint64_t)INT64_MAX + 1, "a", 1)).status,
        QQ_MALFORMED);
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", u64_channel_args("n0", UINT64_MAX, "a", 1)).status,
                     QQ_MALFORMED);
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n0", -5, "a")).status, QQ_MALFORMED);
    assert_int_equal(apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", -5, "", false)).status, QQ_MALFORMED);
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", -1, "a", IDS(1))).status, QQ_MALFORMED);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    qq_fsm_close(&n.fsm);
}

static void a_detached_consumer_keeps_what_it_holds_takes_nothing_new_and_goes_once_empty(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 3));
    for (unsigned i = 0; i < 3; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_int_equal(n.n, 3); /* a: 1 2 3 */
    struct qq_result d = apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a"));
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 3);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 0);
    /* nothing new, though it has room once it settles */
    apply_direct(&n, 1, ++r, "enqueue", content_args("new"));
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(1))).value, 1);
    assert_int_equal(n.n, 3);
    assert_int_equal(qq_fsm_ready(&n.fsm), 1);
    /* discard and return work on it too; the last one it held removes it */
    assert_int_equal(apply_direct(&n, 1, ++r, "discard", ids_args("n0", 1, "a", IDS(2))).value, 1);
    assert_int_equal(n.effects[3].kind, 'X');
    assert_string_equal(n.effects[3].reason, "rejected");
    assert_int_equal(n.fsm.state.nconsumers, 1);
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 1, "a", IDS(3))).value, 1);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    assert_int_equal(n.n, 4);
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(3))).status, QQ_NOT_FOUND);
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a")).status, QQ_NOT_FOUND);
    /* what is left goes to the next consumer: the new 4, then the returned 3 */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "b", 0));
    assert_int_equal(n.n, 6);
    assert_delivery(&n.effects[4], "b", 4, false);
    assert_delivery(&n.effects[5], "b", 3, true);
    qq_fsm_close(&n.fsm);
}

static void detaching_a_consumer_that_holds_nothing_removes_it_at_once(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    apply_direct(&n, 1, 1, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, 2, "checkout", checkout_args("n0", 2, "b", 1));
    struct qq_result d = apply_direct(&n, 1, 3, "detach", consumer_args("n0", 1, "a"));
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 0);
    assert_int_equal(n.fsm.state.nconsumers, 1);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 1);
    assert_int_equal(apply_direct(&n, 1, 4, "cancel", consumer_args("n0", 1, "a")).status, QQ_NOT_FOUND);
    apply_direct(&n, 1, 5, "enqueue", content_args("m"));
    assert_int_equal(n.n, 1);
    assert_int_equal(n.effects[0].channel, 2);
    qq_fsm_close(&n.fsm);
}

static void checkout_attaches_a_detached_consumer_again_at_the_back(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 0));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "b", 0));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* a: 1; order b a */
    apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* b: 2; order a b */
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a")).value, 1);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* b: 3, a being detached */
    assert_delivery(&n.effects[2], "b", 3, false);
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 0)); /* order b a */
    assert_int_equal(qq_fsm_consumers(&n.fsm), 2);
    assert_int_equal(n.n, 3);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_int_equal(n.n, 5);
    assert_delivery(&n.effects[3], "b", 4, false);
    assert_delivery(&n.effects[4], "a", 5, false);
    /* it kept 1, and emptied it stays: it is attached */
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(1, 5))).value, 2);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 2);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_delivery(&n.effects[5], "b", 6, false);
    qq_fsm_close(&n.fsm);
}

static void cancel_and_node_down_return_a_detached_consumers_messages_to_the_front(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 2));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "b", 1));
    for (unsigned i = 0; i < 5; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* a: 1 3, b: 2; 4 5 ready */
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a")).value, 2);
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n1", 1, "b")).value, 1);
    struct qq_result c = apply_direct(&n, 1, ++r, "cancel", consumer_args("n0", 1, "a"));
    assert_int_equal(c.status, 0);
    assert_int_equal(c.value, 2);
    struct qq_result down = apply_direct(&n, 1, ++r, "node_down", node_args("n1"));
    assert_int_equal(down.value, 1);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    assert_int_equal(qq_fsm_ready(&n.fsm), 5);
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n2", 1, "c", 0));
    assert_int_equal(n.n, 8);
    static const uint64_t order[] = {1, 3, 2, 4, 5}; /* a's, b's, then the new ones */
    for (unsigned k = 0; k < 5; k++)
        assert_delivery(&n.effects[3 + k], "c", order[k], k < 3);
    qq_fsm_close(&n.fsm);
}

/* Returned 1 and 3 (a cancel), new 4 and 5, the client return 2 (behind 6), new 6. */
static void mixed_ready_order(struct node *n)
{
    uint64_t r = 0;
    apply_direct(n, 9, ++r, "checkout", checkout_args("n0", 1, "x", 3));
    for (unsigned i = 0; i < 5; i++) {
        char content[8];
        snprintf(content, sizeof(content), "m%u", i + 1);
        apply_direct(n, 9, ++r, "enqueue", content_args(content)); /* x: 1 2 3 */
    }
    apply_direct(n, 9, ++r, "detach", consumer_args("n0", 1, "x"));
    apply_direct(n, 9, ++r, "return", ids_args("n0", 1, "x", IDS(2)));
    apply_direct(n, 9, ++r, "enqueue", content_args("m6"));
    apply_direct(n, 9, ++r, "cancel", consumer_args("n0", 1, "x"));
    assert_int_equal(qq_fsm_ready(&n->fsm), 6);
    n->n = 0;
}

static void dequeue_takes_messages_in_the_order_consumers_are_served(void **state)
{
    (void)state;
    static struct node served, got;
    static const uint64_t order[] = {1, 3, 4, 5, 2, 6};
    node_init(&served, -1);
    mixed_ready_order(&served);
    apply_direct(&served, 1, 1, "checkout", checkout_args("n1", 1, "c", 0));
    assert_int_equal(served.n, 6);
    node_init(&got, -1);
    mixed_ready_order(&got);
    for (unsigned k = 0; k < 6; k++) {
        assert_delivery(&served.effects[k], "c", order[k], order[k] <= 3);
        struct qq_result d = apply_direct(&got, 1, k + 1, "dequeue", dequeue_args("n1", 7, "", true));
        assert_int_equal(d.status, 0);
        assert_int_equal(d.value, order[k]);
        assert_int_equal(got.n, k + 1);
        assert_delivery(&got.effects[k], "", order[k], order[k] <= 3);
        assert_int_equal(got.effects[k].count, order[k] <= 3);
        assert_int_equal(got.effects[k].channel, 7);
        assert_string_equal(got.effects[k].content, served.effects[k].content); /* valid during the call */
        assert_int_equal(qq_fsm_messages(&got.fsm), 5 - k); /* no_ack: gone at once */
    }
    assert_int_equal(got.fsm.state.nconsumers, 0); /* no_ack makes no holder */
    /* nothing ready: value 0, no effect, no holder */
    struct qq_result none = apply_direct(&got, 1, 7, "dequeue", dequeue_args("n1", 7, "", false));
    assert_int_equal(none.status, 0);
    assert_int_equal(none.value, 0);
    assert_int_equal(got.n, 6);
    assert_int_equal(got.fsm.state.nconsumers, 0);
    qq_fsm_close(&served.fsm);
    qq_fsm_close(&got.fsm);
}

static void a_dequeue_with_ack_is_held_by_a_detached_holder_until_settled(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "enqueue", content_args("m1"));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m2"));
    struct qq_result d = apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 5, "", false));
    assert_int_equal(d.status, 0);
    assert_int_equal(d.value, 1);
    assert_int_equal(n.n, 1);
    assert_delivery(&n.effects[0], "", 1, false);
    assert_int_equal(n.effects[0].channel, 5);
    assert_int_equal(n.fsm.state.nconsumers, 1); /* the holder, not a consumer */
    assert_int_equal(qq_fsm_consumers(&n.fsm), 0);
    assert_int_equal(qq_fsm_messages(&n.fsm), 2);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m3"));
    assert_int_equal(n.n, 1); /* it takes nothing by itself */
    assert_int_equal(apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 5, "", false)).value, 2);
    assert_int_equal(n.fsm.state.nconsumers, 1); /* the same holder: 1 2 */
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 5, "", IDS(1))).value, 1);
    assert_int_equal(n.fsm.state.nconsumers, 1);
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 5, "", IDS(2))).value, 1);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 5, "", IDS(2))).status, QQ_NOT_FOUND);
    /* a real consumer named by a dequeue holds the get itself, past its prefetch, and stays */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 5, "a", 1)); /* a: 3 (2 waits behind it) */
    assert_delivery(&n.effects[2], "a", 3, false);
    assert_int_equal(apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 5, "a", false)).value, 2);
    assert_delivery(&n.effects[3], "a", 2, true);
    assert_int_equal(n.fsm.state.nconsumers, 1);
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n0", 5, "a", IDS(2, 3))).value, 2);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 1);
    assert_int_equal(qq_fsm_messages(&n.fsm), 0);
    /* no_ack missing or not a bool */
    struct table_buf t = consumer_args("n0", 5, "");
    assert_int_equal(apply_direct(&n, 1, ++r, "dequeue", t).status, QQ_MALFORMED);
    t = consumer_args("n0", 5, "");
    put_int(&t, "no_ack", 1);
    assert_int_equal(apply_direct(&n, 1, ++r, "dequeue", t).status, QQ_MALFORMED);
    qq_fsm_close(&n.fsm);
}

/* ---- the ways in for the metadata log ---- */

static void apply_command_applies_without_sessions(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    struct table_buf args = content_args("twice");
    struct meta_command cmd = {proto_bytes_of("enqueue"), {args.data, (uint32_t)args.len}, 1, 1};
    struct qq_result out = {.status = 99, .value = 99};
    qq_fsm_apply_command(&n.fsm, &cmd, &out);
    assert_int_equal(out.status, 0);
    assert_int_equal(out.value, 1);
    qq_fsm_apply_command(&n.fsm, &cmd, &out); /* same session and request: applied again */
    assert_int_equal(out.status, 0);
    assert_int_equal(out.value, 2);
    table_buf_free(&args);
    assert_int_equal(qq_fsm_messages(&n.fsm), 2);
    args = checkout_args("n0", 1, "a", 0);
    cmd = (struct meta_command){proto_bytes_of("checkout"), {args.data, (uint32_t)args.len}, 0, 0};
    out = (struct qq_result){.status = 99, .value = 99};
    qq_fsm_apply_command(&n.fsm, &cmd, &out); /* assign runs after it */
    table_buf_free(&args);
    assert_int_equal(out.status, 0);
    assert_int_equal(out.value, 0);
    assert_int_equal(n.n, 2);
    assert_delivery(&n.effects[1], "a", 2, false);
    cmd = (struct meta_command){proto_bytes_of("explode"), {NULL, 0}, 0, 0};
    qq_fsm_apply_command(&n.fsm, &cmd, &out);
    assert_int_equal(out.status, QQ_MALFORMED);
    qq_fsm_close(&n.fsm);
}

/* qq_fsm_still_held tells a delivery the broker put off whether it is still due: the message
 * held by that consumer with the count the effect reported; not once returned (and handed out
 * again, counted), settled, or held by another consumer after a node_down. */
static void still_held_follows_the_checkout_the_effect_reported(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    struct qq_consumer_key a = {"n1", "a", 1}, b = {"n2", "b", 2};
    struct proto_bytes content = {0};
    uint64_t r = 0;
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "a", 0)).status, 0);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m1")).status, 0);
    assert_int_equal(n.n, 1);
    assert_delivery(&n.effects[0], "a", 1, false);
    assert_true(qq_fsm_still_held(&n.fsm, &a, 1, 0, &content));
    assert_int_equal(content.len, 2);
    assert_memory_equal(content.ptr, "m1", 2);
    assert_false(qq_fsm_still_held(&n.fsm, &b, 1, 0, &content)); /* another consumer */
    assert_false(qq_fsm_still_held(&n.fsm, &a, 2, 0, &content)); /* no such message */
    uint64_t ids[] = {1, 0};
    /* back, and to "a" again: count 1 */
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n1", 1, "a", ids)).status, 0);
    assert_int_equal(n.n, 2);
    assert_false(qq_fsm_still_held(&n.fsm, &a, 1, 0, &content)); /* the first copy is not due */
    assert_true(qq_fsm_still_held(&n.fsm, &a, 1, 1, &content));
    assert_int_equal(apply_direct(&n, 1, ++r, "checkout", checkout_args("n2", 2, "b", 0)).status, 0);
    /* "a" goes; "b" gets it, count 2 */
    assert_int_equal(apply_direct(&n, 1, ++r, "node_down", node_args("n1")).status, 0);
    assert_false(qq_fsm_still_held(&n.fsm, &a, 1, 1, &content));
    assert_true(qq_fsm_still_held(&n.fsm, &b, 1, 2, &content));
    assert_int_equal(apply_direct(&n, 1, ++r, "settle", ids_args("n2", 2, "b", ids)).status, 0);
    assert_false(qq_fsm_still_held(&n.fsm, &b, 1, 2, &content));
    qq_fsm_close(&n.fsm);
}

/* qq_memory_bytes follows the contents held: up by each enqueue, down by each settle, back to
 * where it was when the state is closed (the broker's memory alarm counts it). */
static void memory_bytes_follow_the_contents_held(void **state)
{
    (void)state;
    static struct node n;
    uint64_t before = qq_memory_bytes();
    node_init(&n, -1);
    struct table_buf args = content_args("0123456789");
    struct meta_command cmd = {proto_bytes_of("enqueue"), {args.data, (uint32_t)args.len}, 0, 0};
    struct qq_result out;
    for (unsigned i = 0; i < 3; i++)
        qq_fsm_apply_command(&n.fsm, &cmd, &out);
    table_buf_free(&args);
    assert_int_equal(qq_memory_bytes(), before + 30);
    args = checkout_args("n0", 1, "a", 0);
    cmd = (struct meta_command){proto_bytes_of("checkout"), {args.data, (uint32_t)args.len}, 0, 0};
    qq_fsm_apply_command(&n.fsm, &cmd, &out);
    table_buf_free(&args);
    static const uint64_t ids[] = {1, 0};
    args = ids_args("n0", 1, "a", ids);
    cmd = (struct meta_command){proto_bytes_of("settle"), {args.data, (uint32_t)args.len}, 0, 0};
    qq_fsm_apply_command(&n.fsm, &cmd, &out);
    table_buf_free(&args);
    assert_int_equal(out.value, 1);
    assert_int_equal(qq_memory_bytes(), before + 20);
    qq_fsm_close(&n.fsm);
    assert_int_equal(qq_memory_bytes(), before);
}

static void import_takes_an_export_and_refuses_garbage_leaving_the_state(void **state)
{
    (void)state;
    static struct node n, source;
    node_init(&n, -1);
    apply_direct(&n, 1, 1, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, 2, "enqueue", content_args("kept"));
    apply_direct(&n, 1, 3, "enqueue", content_args("kept"));
    struct table_buf before = {0}, after = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &before), 0);
    static const char garbage[] = "not a table at all";
    assert_int_equal(qq_fsm_import(&n.fsm, proto_bytes_of(garbage)), -1);
    assert_int_equal(qq_fsm_import(&n.fsm, (struct proto_bytes){before.data, (uint32_t)before.len - 3}), -1);
    assert_int_equal(qq_fsm_import(&n.fsm, (struct proto_bytes){NULL, 0}), -1);
    assert_int_equal(qq_fsm_export(&n.fsm, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, after.len);
    table_buf_free(&after);
    table_buf_free(&before);
    /* a good one replaces the state, its delivery limit with it; a pending request stays */
    node_init(&source, 1);
    apply_direct(&source, 2, 1, "checkout", checkout_args("n1", 1, "b", 1));
    apply_direct(&source, 2, 2, "enqueue", content_args("s"));
    assert_int_equal(qq_fsm_export(&source.fsm, &before), 0);
    struct waiter w = {0};
    assert_int_equal(qq_fsm_expect(&n.fsm, 3, 1, waiter_done, &w), 0);
    assert_int_equal(qq_fsm_import(&n.fsm, (struct proto_bytes){before.data, (uint32_t)before.len}), 0);
    assert_false(w.done);
    assert_int_equal(qq_fsm_export(&n.fsm, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, after.len);
    table_buf_free(&after);
    table_buf_free(&before);
    assert_int_equal(qq_fsm_messages(&n.fsm), 1);
    n.n = 0;
    assert_int_equal(apply_direct(&n, 3, 1, "return", ids_args("n1", 1, "b", IDS(1))).value, 1);
    assert_int_equal(apply_direct(&n, 3, 2, "return", ids_args("n1", 1, "b", IDS(1))).value, 1);
    assert_int_equal(n.n, 2); /* redelivered once, then past the limit of 1 */
    assert_int_equal(n.effects[1].kind, 'X');
    assert_string_equal(n.effects[1].reason, "delivery_limit");
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&source.fsm);
}

/* ---- single active consumer ---- */

static void a_single_active_consumer_takes_everything_in_order_and_the_next_waits(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    qq_fsm_set_single_active(&n.fsm, true);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 2));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "b", 5));
    assert_int_equal(qq_fsm_consumers(&n.fsm), 1); /* the active one only, as RabbitMQ 3.10 counts */
    for (unsigned i = 0; i < 4; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    /* a takes 1 and 2 (its prefetch); b, with room, waits; 3 and 4 stay ready */
    assert_int_equal(n.n, 2);
    assert_delivery(&n.effects[0], "a", 1, false);
    assert_delivery(&n.effects[1], "a", 2, false);
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(1)));
    assert_int_equal(n.n, 3);
    assert_delivery(&n.effects[2], "a", 3, false);
    /* a goes (its channel closed): what it held comes back first, to b, which is active now */
    assert_int_equal(apply_direct(&n, 1, ++r, "channel_down", consumer_args("n0", 1, "")).value, 1);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 1);
    assert_int_equal(n.n, 6);
    static const uint64_t order[] = {2, 3, 4};
    for (unsigned k = 0; k < 3; k++)
        assert_delivery(&n.effects[3 + k], "b", order[k], k < 2);
    /* a new consumer waits behind b, even with b full and messages ready */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n2", 1, "c", 0));
    for (unsigned i = 0; i < 4; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* 5 6 to b (room 2), 7 8 wait */
    assert_int_equal(n.n, 8);
    assert_delivery(&n.effects[7], "b", 6, false);
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    /* basic.cancel of b: it keeps what it holds; c is active at once and takes what waits */
    assert_int_equal(apply_direct(&n, 1, ++r, "detach", consumer_args("n1", 1, "b")).value, 5);
    assert_int_equal(n.n, 10);
    assert_delivery(&n.effects[8], "c", 7, false);
    assert_delivery(&n.effects[9], "c", 8, false);
    qq_fsm_close(&n.fsm);
}

static void single_active_survives_a_snapshot_and_a_crafted_one_is_checked_against_it(void **state)
{
    (void)state;
    static struct node n, copy;
    node_init(&n, -1);
    qq_fsm_set_single_active(&n.fsm, true);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "b", 0));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* waits: a is full, b is not active */
    struct table_buf t = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &t), 0);
    node_init(&copy, -1); /* single_active off until the snapshot says otherwise */
    assert_int_equal(qq_fsm_import(&copy.fsm, (struct proto_bytes){t.data, (uint32_t)t.len}), 0);
    assert_true(copy.fsm.state.single_active);
    apply_direct(&copy, 2, 1, "enqueue", content_args("m"));
    assert_int_equal(copy.n, 0); /* still only a's, and a is full */
    /* the same bytes without the flag describe a state no member could reach: b has room and a
     * message waits; it is refused */
    struct table_value v;
    assert_int_equal(table_find((struct proto_bytes){t.data, (uint32_t)t.len}, "single_active", &v), 1);
    uint8_t *flag = memmem(t.data, t.len, "\x0dsingle_activet\x01", 16);
    assert_non_null(flag);
    flag[15] = 0;
    assert_int_equal(qq_fsm_import(&copy.fsm, (struct proto_bytes){t.data, (uint32_t)t.len}), -1);
    table_buf_free(&t);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

/* ---- time: the queue's own clock, from the commands ---- */

/* An enqueue stamped with now (ms), and a per-message ttl when ttl >= 0. */
static struct table_buf enqueue_at(const char *content, uint64_t now, int64_t ttl)
{
    struct table_buf t = content_args(content);
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = now;
    assert_int_equal(table_buf_put_field(&t, "now", 3, &v), 0);
    if (ttl >= 0)
        put_int(&t, "ttl", ttl);
    return t;
}

static struct table_buf tick_at(uint64_t now)
{
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = now;
    assert_int_equal(table_buf_put_field(&t, "now", 3, &v), 0);
    return t;
}

static void messages_expire_at_the_head_on_the_queues_clock(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    qq_fsm_set_message_ttl(&n.fsm, 100);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("a", 1000, -1));  /* 1100 */
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("b", 1050, 10));  /* the smaller: 1060 */
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("c", 1060, 500)); /* the queue's: 1160 */
    assert_int_equal(qq_fsm_next_expiry(&n.fsm), 1100); /* the head's, not b's earlier one */
    assert_int_equal(apply_direct(&n, 1, ++r, "tick", tick_at(1099)).value, 0);
    assert_int_equal(n.n, 0); /* b is past its deadline, but behind a: only the head expires */
    assert_int_equal(apply_direct(&n, 1, ++r, "tick", tick_at(1100)).value, 2); /* a at it, then b */
    assert_int_equal(n.n, 2);
    assert_string_equal(n.effects[0].content, "a");
    assert_string_equal(n.effects[0].reason, "expired");
    assert_string_equal(n.effects[1].content, "b");
    assert_int_equal(qq_fsm_ready(&n.fsm), 1);
    assert_int_equal(qq_fsm_next_expiry(&n.fsm), 1160);
    /* the clock never goes back: a late stamp does not revive anything */
    assert_int_equal(apply_direct(&n, 1, ++r, "tick", tick_at(5)).value, 0);
    assert_int_equal(n.fsm.state.now_ms, 1100);
    /* a consumer that can take it at its deadline gets it; past it, it is discarded instead */
    apply_direct(&n, 1, ++r, "tick", tick_at(1160));
    assert_int_equal(n.n, 3); /* c expired: at its deadline with nobody to take it */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("d", 2000, 0)); /* deadline now: delivered */
    assert_int_equal(n.n, 4);
    assert_int_equal(n.effects[3].kind, 'D');
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("e", 2000, 5)); /* waits: a is full */
    apply_direct(&n, 1, ++r, "enqueue", enqueue_at("f", 2000, 50));
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(4)));
    assert_int_equal(n.n, 5); /* e delivered (the settle carries no clock: still 2000) */
    assert_int_equal(n.effects[4].kind, 'D');
    assert_string_equal(n.effects[4].content, "e");
    apply_direct(&n, 1, ++r, "tick", tick_at(2010)); /* f waits, not due */
    struct table_buf t = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &t), 0);
    apply_direct(&n, 1, ++r, "settle", ids_args("n0", 1, "a", IDS(5)));
    assert_int_equal(n.n, 6);
    assert_string_equal(n.effects[5].content, "f");
    assert_int_equal(n.effects[5].kind, 'D');
    /* the snapshot keeps the clock, the ttl and each deadline */
    static struct node copy;
    node_init(&copy, -1);
    assert_int_equal(qq_fsm_import(&copy.fsm, (struct proto_bytes){t.data, (uint32_t)t.len}), 0);
    table_buf_free(&t);
    assert_int_equal(copy.fsm.state.now_ms, 2010);
    assert_int_equal(copy.fsm.state.message_ttl, 100);
    assert_int_equal(qq_fsm_next_expiry(&copy.fsm), 2050);
    assert_int_equal(apply_direct(&copy, 2, 1, "tick", tick_at(2051)).value, 1); /* f, ready there */
    assert_string_equal(copy.effects[0].content, "f");
    apply_direct(&copy, 2, 2, "cancel", consumer_args("n0", 1, "a")); /* e back to ready, past it */
    assert_int_equal(copy.n, 2);
    assert_string_equal(copy.effects[1].content, "e");
    assert_string_equal(copy.effects[1].reason, "expired");
    /* a clock of the wrong type is malformed */
    struct table_buf bad = content_args("x");
    put_str(&bad, "now", "soon");
    assert_int_equal(apply_direct(&copy, 2, 3, "enqueue", bad).status, QQ_MALFORMED);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

/* ---- snapshots read back as untrusted ---- */

/* A snapshot written by hand. messages: "id:count" for each; checked: one consumer's ids. */
struct crafted {
    uint64_t next_id, next_new;
    const char *messages;
    const uint64_t *returned, *checked;
    int prefetch;
    int consumers; /* 1, or 2: the same consumer twice */
    const char *requeued; /* "id:behind" for each; NULL: no "requeued" field (an older snapshot) */
    int detached; /* the first consumer's "detached": 0 absent (older), 1 true, 2 false, 3 not a bool */
    const struct table_value *channel; /* its "channel"; NULL: uint16 1 (as older snapshots have it) */
};

static void put_u64_array(struct table_buf *t, const char *key, const uint64_t *ids)
{
    struct table_buf list = {0};
    struct table_value v = {.type = TABLE_UINT64};
    for (; ids && *ids; ids++) {
        v.v.u64 = *ids;
        assert_int_equal(table_buf_put_value(&list, &v), 0);
    }
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
    table_buf_free(&list);
}

static struct raft_buffer craft(const struct crafted *s)
{
    struct table_buf t = {0}, list = {0};
    struct table_value v = {.type = TABLE_UINT8};
    v.v.u8 = 1;
    assert_int_equal(table_buf_put_field(&t, "version", 7, &v), 0);
    v = (struct table_value){.type = TABLE_UINT64};
    const char *keys[] = {"seq", "next_id", "next_new", "next_consumer"};
    uint64_t values[] = {10, s->next_id, s->next_new, 3};
    for (unsigned i = 0; i < 4; i++) {
        v.v.u64 = values[i];
        assert_int_equal(table_buf_put_field(&t, keys[i], strlen(keys[i]), &v), 0);
    }
    v = (struct table_value){.type = TABLE_INT64};
    v.v.i64 = 5;
    assert_int_equal(table_buf_put_field(&t, "delivery_limit", 14, &v), 0);
    put_u64_array(&t, "sessions", NULL);
    for (const char *p = s->messages; *p;) {
        unsigned long long id;
        unsigned count;
        int used;
        assert_int_equal(sscanf(p, "%llu:%u%n", &id, &count, &used), 2);
        p += used + (p[used] == ' ');
        struct table_buf e = {0};
        struct table_value u = {.type = TABLE_UINT64};
        u.v.u64 = id;
        assert_int_equal(table_buf_put_field(&e, "id", 2, &u), 0);
        u = (struct table_value){.type = TABLE_UINT32};
        u.v.u32 = count;
        assert_int_equal(table_buf_put_field(&e, "count", 5, &u), 0);
        u = (struct table_value){.type = TABLE_BYTES};
        u.v.bytes = proto_bytes_of("c");
        assert_int_equal(table_buf_put_field(&e, "content", 7, &u), 0);
        u = (struct table_value){.type = TABLE_TABLE};
        u.v.bytes = (struct proto_bytes){e.data, (uint32_t)e.len};
        assert_int_equal(table_buf_put_value(&list, &u), 0);
        table_buf_free(&e);
    }
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(&t, "messages", 8, &v), 0);
    table_buf_free(&list);
    put_u64_array(&t, "returned", s->returned);
    for (const char *p = s->requeued; p && *p;) {
        unsigned long long id, behind;
        int used;
        assert_int_equal(sscanf(p, "%llu:%llu%n", &id, &behind, &used), 2);
        p += used + (p[used] == ' ');
        struct table_buf e = {0};
        struct table_value u = {.type = TABLE_UINT64};
        u.v.u64 = id;
        assert_int_equal(table_buf_put_field(&e, "id", 2, &u), 0);
        u.v.u64 = behind;
        assert_int_equal(table_buf_put_field(&e, "behind", 6, &u), 0);
        u = (struct table_value){.type = TABLE_TABLE};
        u.v.bytes = (struct proto_bytes){e.data, (uint32_t)e.len};
        assert_int_equal(table_buf_put_value(&list, &u), 0);
        table_buf_free(&e);
    }
    if (s->requeued) {
        v = (struct table_value){.type = TABLE_ARRAY};
        v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
        assert_int_equal(table_buf_put_field(&t, "requeued", 8, &v), 0);
        table_buf_free(&list);
    }
    for (int i = 0; i < s->consumers; i++) {
        struct table_buf e = {0};
        struct table_value u = {.type = TABLE_UINT64};
        u.v.u64 = (uint64_t)i + 1;
        assert_int_equal(table_buf_put_field(&e, "serial", 6, &u), 0);
        put_str(&e, "node", "n0");
        u = (struct table_value){.type = TABLE_UINT16};
        u.v.u16 = 1;
        assert_int_equal(table_buf_put_field(&e, "channel", 7, i == 0 && s->channel ? s->channel : &u), 0);
        put_str(&e, "tag", "a");
        u = (struct table_value){.type = TABLE_UINT32};
        u.v.u32 = (uint32_t)s->prefetch;
        assert_int_equal(table_buf_put_field(&e, "prefetch", 8, &u), 0);
        if (i == 0 && s->detached) {
            if (s->detached == 3) {
                u = (struct table_value){.type = TABLE_UINT8};
                u.v.u8 = 1;
            } else {
                u = (struct table_value){.type = TABLE_BOOL};
                u.v.boolean = s->detached == 1;
            }
            assert_int_equal(table_buf_put_field(&e, "detached", 8, &u), 0);
        }
        put_u64_array(&e, "checked", i == 0 ? s->checked : NULL);
        u = (struct table_value){.type = TABLE_TABLE};
        u.v.bytes = (struct proto_bytes){e.data, (uint32_t)e.len};
        assert_int_equal(table_buf_put_value(&list, &u), 0);
        table_buf_free(&e);
    }
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(&t, "consumers", 9, &v), 0);
    table_buf_free(&list);
    struct raft_buffer buf = {raft_malloc(t.len), t.len};
    memcpy(buf.base, t.data, t.len);
    table_buf_free(&t);
    return buf;
}

/* Restores buf into node; on refusal frees buf (on success the state machine did). */
static int restore(struct node *node, struct raft_buffer buf)
{
    int rc = node->fsm.raft.restore(&node->fsm.raft, &buf);
    if (rc != 0)
        raft_free(buf.base);
    return rc;
}

static void crafted_snapshots_that_do_not_check_out_are_refused(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    apply_direct(&n, 1, 1, "enqueue", content_args("kept"));
    struct table_buf before = {0}, after = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &before), 0);
    /* 1 and 3 checked out, 2 returned, 4 and 5 new; the consumer is full */
    struct crafted good = {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL};
    struct crafted bad[] = {
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3, 9), 2, 1, NULL, 0, NULL}, /* checks out a missing message */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 2, 3), 3, 1, NULL, 0, NULL}, /* 2 both ready and checked out */
        {6, 4, "1:0 2:1 3:5 4:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},        /* new message 5 missing */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2, 4), IDS(1, 3), 2, 1, NULL, 0, NULL}, /* a new message among the returned */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1), 1, 1, NULL, 0, NULL},       /* 3 neither ready nor checked out */
        {6, 4, "1:0 2:1 3:6 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},    /* 3 past the delivery limit (5) */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 3, 1, NULL, 0, NULL},    /* room left, messages ready */
        {4, 4, "1:0 3:5", NULL, IDS(1, 3), 2, 2, NULL, 0, NULL},                   /* one consumer twice */
        {6, 4, "1:0 2:0 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},    /* returned, never counted */
        {6, 4, "1:0 3:5 2:1 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},    /* ids out of order */
        {5, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},    /* an id at next_id */
        {6, 7, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL},    /* next_new past next_id */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2, 2), IDS(1, 3), 2, 1, NULL, 0, NULL}, /* returned twice */
        /* client returns, placed among the new ones by "behind" */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, "2:6", 0, NULL},   /* both returned and requeued */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", NULL, IDS(1, 3), 2, 1, "2:6 2:6", 0, NULL}, /* requeued twice */
        {6, 4, "1:0 2:0 3:5 4:0 5:0", NULL, IDS(1, 3), 2, 1, "2:6", 0, NULL},     /* requeued, never counted */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, "4:6", 0, NULL},   /* a new message requeued */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", NULL, IDS(1, 3), 2, 1, "2:3", 0, NULL},     /* new 3 was served before it */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", NULL, IDS(1, 3), 2, 1, "2:7", 0, NULL},     /* behind past next_id */
        {6, 4, "1:1 2:1 3:5 4:0 5:0", NULL, IDS(3), 1, 1, "2:6 1:4", 0, NULL},    /* behind going down */
        {6, 4, "1:1 2:1 3:5 4:0 5:0", NULL, IDS(3), 1, 1, "2:5 1:5 9:6", 0, NULL}, /* a missing message */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(restore(&n, craft(&bad[i])), RAFT_MALFORMED);
        assert_int_equal(qq_fsm_export(&n.fsm, &after), 0); /* unchanged */
        assert_int_equal(after.len, before.len);
        assert_memory_equal(after.data, before.data, after.len);
        table_buf_free(&after);
    }
    /* truncated: every prefix of a good snapshot is refused */
    struct raft_buffer whole = craft(&good);
    for (size_t len = 0; len < whole.len; len += 7) {
        struct raft_buffer part = {raft_malloc(len + 1), len};
        memcpy(part.base, whole.base, len);
        assert_int_equal(restore(&n, part), RAFT_MALFORMED);
    }
    /* the good one is taken, and the member goes on from it */
    assert_int_equal(restore(&n, whole), 0);
    assert_int_equal(qq_fsm_messages(&n.fsm), 5);
    assert_int_equal(qq_fsm_ready(&n.fsm), 3);
    n.n = 0;
    assert_int_equal(apply_direct(&n, 2, 1, "settle", ids_args("n0", 1, "a", IDS(3))).value, 1);
    assert_delivery(&n.effects[0], "a", 2, true);
    /* a client return goes behind the new 4 and 5; 4 takes its place */
    assert_int_equal(apply_direct(&n, 2, 2, "return", ids_args("n0", 1, "a", IDS(1))).value, 1);
    assert_delivery(&n.effects[1], "a", 4, false);
    assert_int_equal(apply_direct(&n, 2, 3, "enqueue", content_args("x")).value, 6);
    assert_int_equal(n.n, 2); /* the snapshot below holds a requeued message */
    /* and a snapshot it writes reads back as the same state */
    struct raft_buffer *bufs;
    unsigned nbufs;
    assert_int_equal(n.fsm.raft.snapshot(&n.fsm.raft, &bufs, &nbufs), 0);
    static struct node copy;
    node_init(&copy, -1);
    assert_int_equal(restore(&copy, bufs[0]), 0);
    raft_free(bufs);
    table_buf_free(&before);
    assert_int_equal(qq_fsm_export(&n.fsm, &before), 0);
    assert_int_equal(qq_fsm_export(&copy.fsm, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, after.len);
    table_buf_free(&before);
    table_buf_free(&after);
    /* unordered front and back lists are taken, and served in their order: the front (3), new 5
     * (below 4's behind), 4, new 6 (below 2's behind), 2 */
    struct crafted lists = {7, 5, "1:0 2:1 3:2 4:1 5:0 6:0", IDS(3), IDS(1), 1, 1, "4:6 2:7", 0, NULL};
    assert_int_equal(restore(&n, craft(&lists)), 0);
    assert_int_equal(qq_fsm_ready(&n.fsm), 5);
    n.n = 0;
    static const uint64_t order[] = {1, 3, 5, 4, 6, 2};
    for (unsigned i = 0; i + 1 < 6; i++) {
        assert_int_equal(apply_direct(&n, 3, i + 1, "settle", ids_args("n0", 1, "a", (uint64_t[]){order[i], 0})).value,
                         1);
        assert_int_equal(n.n, i + 1);
        assert_int_equal(n.effects[i].id, order[i + 1]);
    }
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

static void detached_consumers_and_get_holders_survive_a_snapshot(void **state)
{
    (void)state;
    static struct node n, copy;
    node_init(&n, -1);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 2));
    for (unsigned i = 0; i < 4; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m")); /* a: 1 2 */
    apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a"));
    apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 2, "", false)); /* the holder: 3 */
    struct raft_buffer *bufs;
    unsigned nbufs;
    assert_int_equal(n.fsm.raft.snapshot(&n.fsm.raft, &bufs, &nbufs), 0);
    node_init(&copy, -1);
    assert_int_equal(copy.fsm.raft.restore(&copy.fsm.raft, &bufs[0]), 0);
    raft_free(bufs);
    struct table_buf a = {0}, b = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &a), 0);
    assert_int_equal(qq_fsm_export(&copy.fsm, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    table_buf_free(&a);
    table_buf_free(&b);
    /* both still detached in the copy: nothing new to them, and gone once empty */
    assert_int_equal(qq_fsm_consumers(&copy.fsm), 0);
    assert_int_equal(copy.fsm.state.nconsumers, 2);
    assert_int_equal(apply_direct(&copy, 2, 1, "settle", ids_args("n0", 1, "a", IDS(1, 2))).value, 2);
    assert_int_equal(apply_direct(&copy, 2, 2, "settle", ids_args("n0", 2, "", IDS(3))).value, 1);
    assert_int_equal(copy.n, 0);
    assert_int_equal(copy.fsm.state.nconsumers, 0);
    assert_int_equal(qq_fsm_ready(&copy.fsm), 1);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

static void crafted_channels_and_detached_flags_are_checked(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    struct table_value big = {.type = TABLE_UINT64}, too_big = {.type = TABLE_UINT64};
    struct table_value negative = {.type = TABLE_INT64}, text = {.type = TABLE_LONGSTR};
    big.v.u64 = INT64_MAX;
    too_big.v.u64 = (uint64_t)INT64_MAX + 1;
    negative.v.i64 = -1;
    text.v.bytes = proto_bytes_of("1");
    /* the consumer holds 1 and 3 and has room for one more while 4 and 5 wait: only a detached
     * one may */
    struct crafted bad[] = {
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, &too_big},  /* past INT64_MAX */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, &negative}, /* not a uint64 */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, &text},     /* not a number */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 3, NULL},      /* detached not a bool */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 3, 1, NULL, 2, NULL},      /* attached, with room */
        {6, 1, "1:0 2:0 3:0 4:0 5:0", NULL, NULL, 3, 1, NULL, 1, NULL},            /* detached, holds nothing */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(restore(&n, craft(&bad[i])), RAFT_MALFORMED);
    struct crafted good[] = {
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, &big},  /* INT64_MAX */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 3, 1, NULL, 1, NULL},  /* detached: no room */
        {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 2, NULL},  /* attached, full */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(restore(&n, craft(&good[i])), 0);
    /* the last one taken: detached, prefetch 3, holding 1 3, so settling gives it nothing */
    assert_int_equal(restore(&n, craft(&good[1])), 0);
    assert_int_equal(qq_fsm_consumers(&n.fsm), 0);
    n.n = 0;
    assert_int_equal(apply_direct(&n, 2, 1, "settle", ids_args("n0", 1, "a", IDS(1, 3))).value, 2);
    assert_int_equal(n.n, 0);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    qq_fsm_close(&n.fsm);
}

/* ---- length limits (qq_limits) ---- */

static void set_limits(struct node *n, int64_t max_length, int64_t max_bytes, bool reject_publish)
{
    struct qq_limits limits = {max_length, max_bytes, reject_publish};
    qq_fsm_set_limits(&n->fsm, &limits);
}

static void assert_discard(const struct effect *e, uint64_t id, const char *content, const char *reason)
{
    assert_int_equal(e->kind, 'X');
    assert_int_equal(e->id, id);
    assert_string_equal(e->content, content);
    assert_string_equal(e->reason, reason);
}

static void drop_head_by_count_discards_from_the_head_in_serving_order(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, 2, -1, false);
    uint64_t r = 0;
    const char *contents[] = {"m1", "m2", "m3", "m4"};
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args(contents[i])).value, i + 1);
    assert_int_equal(n.n, 2);
    assert_discard(&n.effects[0], 1, "m1", "maxlen");
    assert_discard(&n.effects[1], 2, "m2", "maxlen");
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    assert_int_equal(n.fsm.state.ready_bytes, 4);
    /* a consumer takes 3 and 4; two new wait; its cancel puts 3 and 4 in front: they go first */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 2));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m5"));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m6"));
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    n.n = 0;
    assert_int_equal(apply_direct(&n, 1, ++r, "cancel", consumer_args("n0", 1, "a")).value, 2);
    assert_int_equal(n.n, 2);
    assert_discard(&n.effects[0], 3, "m3", "maxlen");
    assert_discard(&n.effects[1], 4, "m4", "maxlen");
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    assert_int_equal(qq_fsm_messages(&n.fsm), 2);
    /* what drop-head leaves is a state a snapshot carries */
    static struct node copy;
    node_init(&copy, -1);
    struct table_buf a = {0}, b = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &a), 0);
    assert_int_equal(qq_fsm_import(&copy.fsm, (struct proto_bytes){a.data, (uint32_t)a.len}), 0);
    assert_int_equal(qq_fsm_export(&copy.fsm, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    table_buf_free(&a);
    table_buf_free(&b);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

static void drop_head_by_bytes_discards_until_the_content_fits(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, -1, 5, false);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "enqueue", content_args("aaa"));
    apply_direct(&n, 1, ++r, "enqueue", content_args("bb")); /* 5: at the limit, kept */
    assert_int_equal(n.n, 0);
    apply_direct(&n, 1, ++r, "enqueue", content_args("c")); /* 6: 1 goes */
    assert_int_equal(n.n, 1);
    assert_discard(&n.effects[0], 1, "aaa", "maxlen");
    assert_int_equal(n.fsm.state.ready_bytes, 3);
    apply_direct(&n, 1, ++r, "enqueue", content_args("dddd")); /* 7: 2 goes, 5 left */
    assert_int_equal(n.n, 2);
    assert_discard(&n.effects[1], 2, "bb", "maxlen");
    assert_int_equal(n.fsm.state.ready_bytes, 5);
    assert_int_equal(qq_fsm_ready(&n.fsm), 2);
    /* a message bigger than the limit goes too, after every one before it */
    apply_direct(&n, 1, ++r, "enqueue", content_args("eeeeee"));
    assert_int_equal(n.n, 5);
    assert_discard(&n.effects[2], 3, "c", "maxlen");
    assert_discard(&n.effects[3], 4, "dddd", "maxlen");
    assert_discard(&n.effects[4], 5, "eeeeee", "maxlen");
    assert_int_equal(n.fsm.state.ready_bytes, 0);
    assert_int_equal(qq_fsm_messages(&n.fsm), 0);
    qq_fsm_close(&n.fsm);
}

static void drop_head_waits_until_consumers_took_what_they_could(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, 0, -1, false);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, ++r, "enqueue", content_args("m1")); /* a has room: delivered, not dropped */
    assert_int_equal(n.n, 1);
    assert_delivery(&n.effects[0], "a", 1, false);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m2")); /* a is full: dropped */
    assert_int_equal(n.n, 2);
    assert_discard(&n.effects[1], 2, "m2", "maxlen");
    assert_int_equal(qq_fsm_messages(&n.fsm), 1);
    /* max_length 1: 3 waits; a returns 1, which goes behind 3; a takes 3, so 1 is within the limit */
    set_limits(&n, 1, -1, false);
    apply_direct(&n, 1, ++r, "enqueue", content_args("m3"));
    assert_int_equal(n.n, 2);
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 1, "a", IDS(1))).value, 1);
    assert_int_equal(n.n, 3);
    assert_delivery(&n.effects[2], "a", 3, false);
    assert_int_equal(qq_fsm_ready(&n.fsm), 1);
    assert_int_equal(qq_fsm_messages(&n.fsm), 2);
    assert_int_equal(n.fsm.state.ready_bytes, 2);
    qq_fsm_close(&n.fsm);
}

static void reject_publish_takes_the_one_over_then_refuses_until_back_at_80_percent(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, 10, -1, true);
    uint64_t r = 0;
    for (unsigned i = 0; i < 11; i++) /* the 11th takes it over, and is taken */
        assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).status, 0);
    assert_int_equal(n.n, 0); /* nothing dropped */
    assert_true(n.fsm.state.over_limit);
    struct table_buf before = {0}, after = {0};
    assert_int_equal(qq_fsm_export(&n.fsm, &before), 0);
    struct table_buf args = content_args("m");
    struct meta_command cmd = {proto_bytes_of("enqueue"), {args.data, (uint32_t)args.len}, 9, 1};
    struct qq_result refused;
    qq_fsm_apply_command(&n.fsm, &cmd, &refused); /* no session, no seq: the state must not move */
    table_buf_free(&args);
    assert_int_equal(refused.status, QQ_REJECTED);
    assert_int_equal(refused.value, 0);
    assert_int_equal(qq_fsm_messages(&n.fsm), 11);
    assert_int_equal(qq_fsm_export(&n.fsm, &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, after.len);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).status, QQ_REJECTED);
    table_buf_free(&before);
    table_buf_free(&after);
    /* 9 ready: still over 80% of 10 */
    apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 1, "", true));
    apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 1, "", true));
    assert_int_equal(qq_fsm_ready(&n.fsm), 9);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).status, QQ_REJECTED);
    /* 8 ready: 80%, taken again (a checked-out message does not count) */
    apply_direct(&n, 1, ++r, "dequeue", dequeue_args("n0", 1, "", false));
    assert_false(n.fsm.state.over_limit);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).value, 12);
    /* a return takes it over again: the next enqueue is refused */
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).value, 13);
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 1, "", IDS(3))).value, 1);
    assert_int_equal(qq_fsm_ready(&n.fsm), 11);
    assert_true(n.fsm.state.over_limit);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).status, QQ_REJECTED);
    /* purge: the next enqueue finds the queue empty and is taken */
    assert_int_equal(apply_direct(&n, 1, ++r, "purge", (struct table_buf){0}).value, 11);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("m")).status, 0);
    qq_fsm_close(&n.fsm);
}

static void reject_publish_by_bytes_releases_at_80_percent_of_the_bytes(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, -1, 10, true);
    uint64_t r = 0;
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("aaaaaa")).status, 0);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("bbbbb")).status, 0); /* 11: over */
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("c")).status, QQ_REJECTED);
    assert_int_equal(n.fsm.state.ready_bytes, 11);
    /* a consumer takes 1 (6 bytes): 5 left, at most 8 */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    assert_int_equal(n.fsm.state.ready_bytes, 5);
    assert_false(n.fsm.state.over_limit);
    assert_int_equal(apply_direct(&n, 1, ++r, "enqueue", content_args("ccc")).status, 0); /* 8 */
    /* its return counts again (14), then a takes 2 back: 9, within 10 */
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 1, "a", IDS(1))).value, 1);
    assert_int_equal(n.n, 2); /* a took 2 after returning 1 */
    assert_delivery(&n.effects[1], "a", 2, false);
    assert_int_equal(n.fsm.state.ready_bytes, 9); /* 3 and 1 */
    assert_false(n.fsm.state.over_limit);
    qq_fsm_close(&n.fsm);
}

static void ready_bytes_follow_returns_cancels_and_purge(void **state)
{
    (void)state;
    static struct node n;
    node_init(&n, -1);
    set_limits(&n, -1, 3, false);
    uint64_t r = 0;
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n0", 1, "a", 1));
    apply_direct(&n, 1, ++r, "enqueue", content_args("aa")); /* to a: not ready, not counted */
    apply_direct(&n, 1, ++r, "enqueue", content_args("bb"));
    assert_int_equal(n.n, 1);
    assert_int_equal(n.fsm.state.ready_bytes, 2);
    /* a stops taking; its return makes 1 ready again: 4 bytes, over 3; the head (new 2) goes */
    apply_direct(&n, 1, ++r, "detach", consumer_args("n0", 1, "a"));
    assert_int_equal(n.fsm.state.ready_bytes, 2);
    assert_int_equal(apply_direct(&n, 1, ++r, "return", ids_args("n0", 1, "a", IDS(1))).value, 1);
    assert_int_equal(n.n, 2);
    assert_discard(&n.effects[1], 2, "bb", "maxlen");
    assert_int_equal(n.fsm.state.ready_bytes, 2);
    assert_int_equal(qq_fsm_ready(&n.fsm), 1);
    assert_int_equal(n.fsm.state.nconsumers, 0);
    /* node_down's returns count again too */
    apply_direct(&n, 1, ++r, "checkout", checkout_args("n1", 1, "b", 0));
    assert_int_equal(n.fsm.state.ready_bytes, 0);
    apply_direct(&n, 1, ++r, "enqueue", content_args("cc"));
    assert_int_equal(n.fsm.state.ready_bytes, 0);
    n.n = 0; /* b's 1 and 3 come back in front: 4 bytes, over 3; 1 goes */
    assert_int_equal(apply_direct(&n, 1, ++r, "node_down", node_args("n1")).value, 1);
    assert_int_equal(n.n, 1);
    assert_discard(&n.effects[0], 1, "aa", "maxlen");
    assert_int_equal(n.fsm.state.ready_bytes, 2);
    assert_int_equal(qq_fsm_ready(&n.fsm), 1);
    /* purge: nothing ready, nothing counted */
    apply_direct(&n, 1, ++r, "purge", (struct table_buf){0});
    assert_int_equal(n.fsm.state.ready_bytes, 0);
    qq_fsm_close(&n.fsm);
}

/* A restore of crafted's snapshot with extra fields appended. */
static struct raft_buffer craft_with(const struct crafted *s, const struct table_buf *extra)
{
    struct raft_buffer old = craft(s);
    struct raft_buffer buf = {raft_malloc(old.len + extra->len), old.len + extra->len};
    memcpy(buf.base, old.base, old.len);
    memcpy((char *)buf.base + old.len, extra->data, extra->len);
    raft_free(old.base);
    return buf;
}

static void limits_and_the_latch_survive_a_snapshot_and_crafted_ones_are_checked(void **state)
{
    (void)state;
    static struct node n, copy;
    node_init(&n, -1);
    set_limits(&n, 3, 100, true);
    uint64_t r = 0;
    for (unsigned i = 0; i < 4; i++)
        apply_direct(&n, 1, ++r, "enqueue", content_args("m"));
    assert_true(n.fsm.state.over_limit);
    struct raft_buffer *bufs;
    unsigned nbufs;
    assert_int_equal(n.fsm.raft.snapshot(&n.fsm.raft, &bufs, &nbufs), 0);
    node_init(&copy, -1);
    assert_int_equal(copy.fsm.raft.restore(&copy.fsm.raft, &bufs[0]), 0);
    raft_free(bufs);
    assert_int_equal(copy.fsm.state.limits.max_length, 3);
    assert_int_equal(copy.fsm.state.limits.max_bytes, 100);
    assert_true(copy.fsm.state.limits.reject_publish);
    assert_true(copy.fsm.state.over_limit);
    assert_int_equal(copy.fsm.state.ready_bytes, 4);
    assert_int_equal(apply_direct(&copy, 2, 1, "enqueue", content_args("m")).status, QQ_REJECTED);
    /* drop-head limits too: the copy drops as the original would */
    set_limits(&n, 2, -1, false);
    assert_int_equal(n.fsm.raft.snapshot(&n.fsm.raft, &bufs, &nbufs), 0);
    assert_int_equal(copy.fsm.raft.restore(&copy.fsm.raft, &bufs[0]), 0);
    raft_free(bufs);
    assert_false(copy.fsm.state.over_limit);
    copy.n = 0;
    apply_direct(&copy, 2, 2, "enqueue", content_args("x"));
    assert_int_equal(copy.n, 3);
    assert_discard(&copy.effects[0], 1, "m", "maxlen");
    assert_discard(&copy.effects[2], 3, "m", "maxlen");

    /* an older snapshot, without the fields: no limits */
    struct crafted good = {6, 4, "1:0 2:1 3:5 4:0 5:0", IDS(2), IDS(1, 3), 2, 1, NULL, 0, NULL};
    assert_int_equal(restore(&copy, craft(&good)), 0);
    assert_int_equal(copy.fsm.state.limits.max_length, -1);
    assert_int_equal(copy.fsm.state.limits.max_bytes, -1);
    assert_false(copy.fsm.state.limits.reject_publish);
    assert_false(copy.fsm.state.over_limit);
    assert_int_equal(copy.fsm.state.ready_bytes, 3); /* 2, 4, 5: "c" each */
    copy.n = 0;
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(apply_direct(&copy, 3, i + 1, "enqueue", content_args("m")).status, 0);
    assert_int_equal(copy.n, 0);
    assert_int_equal(qq_fsm_ready(&copy.fsm), 8);

    /* crafted limits: each field checked */
    struct table_value minus_one = {.type = TABLE_INT64}, minus_two = {.type = TABLE_INT64};
    struct table_value as_u64 = {.type = TABLE_UINT64}, yes = {.type = TABLE_BOOL}, as_u8 = {.type = TABLE_UINT8};
    minus_one.v.i64 = -1;
    minus_two.v.i64 = -2;
    as_u64.v.u64 = 3;
    yes.v.boolean = true;
    as_u8.v.u8 = 1;
    struct {
        const char *key;
        const struct table_value *value;
        const char *key2; /* a second field, or NULL */
        const struct table_value *value2;
        bool taken;
    } cases[] = {
        {"max_length", &minus_two, NULL, NULL, false},
        {"max_bytes", &minus_two, NULL, NULL, false},
        {"max_length", &as_u64, NULL, NULL, false},
        {"max_bytes", &as_u64, NULL, NULL, false},
        {"reject_publish", &as_u8, NULL, NULL, false},
        {"over_limit", &as_u8, "reject_publish", &yes, false},
        {"over_limit", &yes, NULL, NULL, false}, /* a latch without reject-publish */
        {"max_length", &minus_one, "max_bytes", &minus_one, true},
        {"over_limit", &yes, "reject_publish", &yes, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct table_buf extra = {0};
        assert_int_equal(table_buf_put_field(&extra, cases[i].key, strlen(cases[i].key), cases[i].value), 0);
        if (cases[i].key2)
            assert_int_equal(table_buf_put_field(&extra, cases[i].key2, strlen(cases[i].key2), cases[i].value2), 0);
        assert_int_equal(restore(&copy, craft_with(&good, &extra)), cases[i].taken ? 0 : RAFT_MALFORMED);
        table_buf_free(&extra);
    }
    /* the last one taken: latched */
    assert_true(copy.fsm.state.over_limit);
    qq_fsm_close(&n.fsm);
    qq_fsm_close(&copy.fsm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_go_round_robin_to_two_consumers_within_their_prefetch),
        cmocka_unit_test(still_held_follows_the_checkout_the_effect_reported),
        cmocka_unit_test(settling_frees_credit_and_more_are_delivered),
        cmocka_unit_test(returned_messages_go_behind_the_new_ones_and_are_redelivered),
        cmocka_unit_test(a_client_return_goes_behind_a_new_message_and_a_cancels_go_in_front),
        cmocka_unit_test(a_message_returned_more_often_than_the_delivery_limit_is_discarded),
        cmocka_unit_test(cancel_and_node_down_return_checked_out_messages),
        cmocka_unit_test(purge_removes_the_ready_messages_only),
        cmocka_unit_test(a_leader_killed_mid_stream_and_retries_apply_each_command_once),
        cmocka_unit_test(a_lagging_member_catches_up_from_a_snapshot_and_agrees_on_later_effects),
        cmocka_unit_test(malformed_commands_change_nothing),
        cmocka_unit_test(the_assignment_rules_hold_without_raft),
        cmocka_unit_test(a_single_active_consumer_takes_everything_in_order_and_the_next_waits),
        cmocka_unit_test(single_active_survives_a_snapshot_and_a_crafted_one_is_checked_against_it),
        cmocka_unit_test(messages_expire_at_the_head_on_the_queues_clock),
        cmocka_unit_test(crafted_snapshots_that_do_not_check_out_are_refused),
        cmocka_unit_test(channels_past_16_bits_name_distinct_consumers_and_survive_a_snapshot),
        cmocka_unit_test(a_negative_or_too_big_channel_is_malformed),
        cmocka_unit_test(a_detached_consumer_keeps_what_it_holds_takes_nothing_new_and_goes_once_empty),
        cmocka_unit_test(detaching_a_consumer_that_holds_nothing_removes_it_at_once),
        cmocka_unit_test(checkout_attaches_a_detached_consumer_again_at_the_back),
        cmocka_unit_test(cancel_and_node_down_return_a_detached_consumers_messages_to_the_front),
        cmocka_unit_test(dequeue_takes_messages_in_the_order_consumers_are_served),
        cmocka_unit_test(a_dequeue_with_ack_is_held_by_a_detached_holder_until_settled),
        cmocka_unit_test(apply_command_applies_without_sessions),
        cmocka_unit_test(channel_down_cancels_every_key_of_one_channel),
        cmocka_unit_test(memory_bytes_follow_the_contents_held),
        cmocka_unit_test(import_takes_an_export_and_refuses_garbage_leaving_the_state),
        cmocka_unit_test(detached_consumers_and_get_holders_survive_a_snapshot),
        cmocka_unit_test(crafted_channels_and_detached_flags_are_checked),
        cmocka_unit_test(drop_head_by_count_discards_from_the_head_in_serving_order),
        cmocka_unit_test(drop_head_by_bytes_discards_until_the_content_fits),
        cmocka_unit_test(drop_head_waits_until_consumers_took_what_they_could),
        cmocka_unit_test(reject_publish_takes_the_one_over_then_refuses_until_back_at_80_percent),
        cmocka_unit_test(reject_publish_by_bytes_releases_at_80_percent_of_the_bytes),
        cmocka_unit_test(ready_bytes_follow_returns_cancels_and_purge),
        cmocka_unit_test(limits_and_the_latch_survive_a_snapshot_and_crafted_ones_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
