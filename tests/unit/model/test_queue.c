/* tests/unit/model/test_queue.c: the classic queue: FIFO and priority order, requeue to the
 * original place (a quorum queue: to the back, delivery limit), TTL and length limits at the head, consumer round-robin, priorities,
 * single active and exclusive consumers, auto-delete, basic.get, purge, delete with
 * unsettled deliveries, the declare-argument checks with RabbitMQ 3.10's texts, and message
 * reference counts (every test frees all it made: run under -DWARREN_SANITIZE=ON). */
#include "helpers.h"

#include <stdio.h>

#include "message.h"
#include "queue.h"
#include "spec.h"

/* ---- messages ------------------------------------------------------------------------- */

struct message_spec {
    int priority;           /* -1: no priority property */
    const char *expiration; /* NULL: none */
    uint64_t body_size;
};

static struct message *make_message(struct message_spec spec)
{
    struct spec_content_header h = {.class_id = 60, .weight = 0, .body_size = spec.body_size};
    if (spec.priority >= 0) {
        h.props.flags |= SPEC_BASIC_PRIORITY_FLAG;
        h.props.priority = (uint8_t)spec.priority;
    }
    if (spec.expiration) {
        h.props.flags |= SPEC_BASIC_EXPIRATION_FLAG;
        h.props.expiration = bytes_of(spec.expiration);
    }
    uint8_t header[128];
    long n = spec_content_header_encode(&h, header, sizeof(header));
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of("x"), bytes_of("key"), (struct proto_bytes){header, (uint32_t)n},
                                         spec.body_size);
    assert_non_null(msg);
    memset(msg->body, 'b', spec.body_size);
    return msg;
}

static struct message *plain(void)
{
    return make_message((struct message_spec){.priority = -1});
}

/* Publishes a new message and drops the test's own reference: the queue holds the only one. */
static struct message *publish_new(struct queue *q, struct message_spec spec, uint64_t now)
{
    struct message *msg = make_message(spec);
    assert_int_equal(queue_publish(q, msg, now), 0);
    message_release(msg);
    return msg;
}

static struct message *publish_plain(struct queue *q, uint64_t now)
{
    return publish_new(q, (struct message_spec){.priority = -1}, now);
}

/* ---- hooks ---------------------------------------------------------------------------- */

#define MAX_RECORDED 64

struct recorder {
    size_t dropped[4];               /* by reason */
    struct message *dropped_msgs[MAX_RECORDED];
    enum queue_drop_reason dropped_reasons[MAX_RECORDED];
    size_t dropped_total;
    size_t unused;
    uint32_t refs_seen;              /* msg->refs during the last dropped call */
};

static void record_dropped(void *ctx, struct queue *queue, struct message *msg, enum queue_drop_reason reason)
{
    (void)queue;
    struct recorder *r = ctx;
    r->dropped[reason]++;
    r->refs_seen = msg->refs;
    if (r->dropped_total < MAX_RECORDED) {
        r->dropped_msgs[r->dropped_total] = msg; /* identity only: may be freed afterwards */
        r->dropped_reasons[r->dropped_total] = reason;
    }
    r->dropped_total++;
}

static void record_unused(void *ctx, struct queue *queue)
{
    (void)queue;
    struct recorder *r = ctx;
    r->unused++;
}

static struct queue_settings default_settings(void)
{
    return (struct queue_settings){
        .message_ttl_ms = -1, .expires_ms = -1, .max_length = -1, .max_length_bytes = -1,
    };
}

static struct queue *make_queue(const struct queue_settings *settings, struct recorder *r)
{
    struct queue_hooks hooks = {.dropped = record_dropped, .unused = record_unused, .ctx = r};
    struct queue *q = queue_create(bytes_of("q"), settings, no_bytes(), &hooks);
    assert_non_null(q);
    return q;
}

/* ---- a consumer ----------------------------------------------------------------------- */

#define MAX_DELIVERIES 256

struct test_consumer {
    int credit;                     /* deliveries it still accepts; < 0: unlimited */
    bool no_ack;
    size_t count;
    struct queue_entry entries[MAX_DELIVERIES];
    size_t *order;                  /* optional: appends its id to a shared log */
    size_t *order_len;
    size_t id;
    /* Misbehaviour on delivery, for the re-entrancy tests. */
    bool dispatch_again;
    bool remove_self;
    bool settle_at_once;
    uint64_t now;
};

static bool consumer_has_credit(void *consumer, const struct message *msg)
{
    (void)msg;
    struct test_consumer *c = consumer;
    return c->credit != 0;
}

static void consumer_deliver(void *consumer, struct queue *queue, const struct queue_entry *entry, bool no_ack)
{
    struct test_consumer *c = consumer;
    assert_int_equal(no_ack, c->no_ack);
    assert_true(c->count < MAX_DELIVERIES);
    c->entries[c->count++] = *entry;
    if (c->credit > 0)
        c->credit--;
    if (c->order)
        c->order[(*c->order_len)++] = c->id;
    if (c->dispatch_again)
        queue_dispatch(queue, c->now); /* must return at once */
    if (c->settle_at_once && !no_ack) {
        queue_settle(queue, entry, QUEUE_ACK);
        c->count--;
    }
    if (c->remove_self)
        queue_remove_consumer(queue, c);
}

static const struct consumer_ops consumer_ops = {consumer_has_credit, consumer_deliver, NULL};

static void add_consumer(struct queue *q, struct test_consumer *c, int32_t priority)
{
    struct reply_error err;
    assert_int_equal(queue_add_consumer(q, c, &consumer_ops, priority, false, c->no_ack, &err), 0);
}

/* Gives back everything a consumer holds: acks in ack mode, releases in no-ack mode. */
static void consumer_settle_all(struct queue *q, struct test_consumer *c, enum queue_settle_mode mode)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->no_ack)
            message_release(c->entries[i].msg);
        else
            queue_settle(q, &c->entries[i], mode);
    }
    c->count = 0;
}

/* Takes the next message with basic.get in no-ack mode and releases it; returns it (identity
 * only) and its delivery count, or NULL when empty. */
static struct message *get_and_release(struct queue *q, uint64_t now, uint32_t *delivery_count)
{
    struct queue_entry entry;
    if (!queue_get(q, now, true, &entry))
        return NULL;
    if (delivery_count)
        *delivery_count = entry.delivery_count;
    message_release(entry.msg);
    return entry.msg;
}

/* ---- order ---------------------------------------------------------------------------- */

static void test_fifo_order(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct message *sent[5];
    for (int i = 0; i < 5; i++)
        sent[i] = publish_new(q, (struct message_spec){.priority = -1, .body_size = 3}, 0);
    assert_int_equal(queue_ready_count(q), 5);
    assert_int_equal(queue_ready_bytes(q), 15);
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(get_and_release(q, 0, NULL), sent[i]);
    assert_null(get_and_release(q, 0, NULL));
    assert_int_equal(queue_ready_bytes(q), 0);
    queue_release(q);
}

static void test_requeue_returns_to_original_position(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct message *sent[6];
    for (int i = 0; i < 6; i++)
        sent[i] = publish_plain(q, 0);
    struct queue_entry taken[4];
    for (int i = 0; i < 4; i++) {
        assert_true(queue_get(q, 0, false, &taken[i]));
        assert_int_equal(taken[i].delivery_count, 0);
    }
    assert_int_equal(queue_unacked_count(q), 4);
    /* Back in mixed order: 2, 0, 3 (1 stays unacked). */
    queue_settle(q, &taken[2], QUEUE_REQUEUE);
    queue_settle(q, &taken[0], QUEUE_REQUEUE);
    queue_settle(q, &taken[3], QUEUE_REQUEUE);
    assert_int_equal(queue_unacked_count(q), 1);
    assert_int_equal(queue_ready_count(q), 5);
    const int expected[] = {0, 2, 3, 4, 5};
    const uint32_t redelivered[] = {1, 1, 1, 0, 0};
    for (int i = 0; i < 5; i++) {
        struct queue_entry e;
        assert_true(queue_get(q, 0, false, &e));
        assert_ptr_equal(e.msg, sent[expected[i]]);
        assert_int_equal(e.delivery_count, redelivered[i]);
        if (i == 0) {
            /* Requeued twice: the count keeps growing. */
            queue_settle(q, &e, QUEUE_REQUEUE);
            assert_true(queue_get(q, 0, false, &e));
            assert_ptr_equal(e.msg, sent[0]);
            assert_int_equal(e.delivery_count, 2);
        }
        queue_settle(q, &e, QUEUE_ACK);
    }
    /* The one still out goes back ahead of nothing: the queue is empty again. */
    queue_settle(q, &taken[1], QUEUE_REQUEUE);
    uint32_t count;
    assert_ptr_equal(get_and_release(q, 0, &count), sent[1]);
    assert_int_equal(count, 1);
    assert_int_equal(queue_unacked_count(q), 0);
    assert_int_equal(r.dropped_total, 0);
    queue_release(q);
}

/* Many requeues in ascending, descending and shuffled order keep seq order, across ring
 * growth and wrap-around. */
static void test_requeue_many_orders(void **state)
{
    (void)state;
    enum { N = 300 };
    for (int pattern = 0; pattern < 3; pattern++) {
        struct recorder r = {0};
        struct queue_settings s = default_settings();
        struct queue *q = make_queue(&s, &r);
        struct message *sent[N];
        struct queue_entry taken[N];
        for (int i = 0; i < N; i++)
            sent[i] = publish_plain(q, 0);
        for (int i = 0; i < N - 50; i++)
            assert_true(queue_get(q, 0, false, &taken[i]));
        int order[N - 50];
        for (int i = 0; i < N - 50; i++)
            order[i] = pattern == 1 ? N - 51 - i : i;
        if (pattern == 2) {
            uint32_t x = 12345;
            for (int i = N - 51; i > 0; i--) {
                x = x * 1103515245u + 12345u;
                int j = (int)(x % (uint32_t)(i + 1));
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        for (int i = 0; i < N - 50; i++)
            queue_settle(q, &taken[order[i]], QUEUE_REQUEUE);
        for (int i = 0; i < N; i++) {
            uint32_t count;
            assert_ptr_equal(get_and_release(q, 0, &count), sent[i]);
            assert_int_equal(count, i < N - 50 ? 1 : 0);
        }
        queue_release(q);
    }
}

static void test_priorities(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_priority = 5;
    struct queue *q = make_queue(&s, &r);
    struct message *p0 = publish_new(q, (struct message_spec){.priority = 0}, 0);
    struct message *none = publish_new(q, (struct message_spec){.priority = -1}, 0);
    struct message *p3a = publish_new(q, (struct message_spec){.priority = 3}, 0);
    struct message *p9 = publish_new(q, (struct message_spec){.priority = 9}, 0); /* capped to 5 */
    struct message *p3b = publish_new(q, (struct message_spec){.priority = 3}, 0);
    struct message *p5 = publish_new(q, (struct message_spec){.priority = 5}, 0);

    struct queue_entry first;
    assert_true(queue_get(q, 0, false, &first));
    assert_ptr_equal(first.msg, p9);
    /* A requeued high-priority message is again first. */
    queue_settle(q, &first, QUEUE_REQUEUE);
    struct message *expected[] = {p9, p5, p3a, p3b, p0, none};
    for (size_t i = 0; i < 6; i++)
        assert_ptr_equal(get_and_release(q, 0, NULL), expected[i]);
    assert_int_equal(queue_ready_count(q), 0);
    queue_release(q);
}

/* Without x-max-priority, the priority property is ignored. */
static void test_priority_ignored_without_max_priority(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct message *low = publish_new(q, (struct message_spec){.priority = 1}, 0);
    struct message *high = publish_new(q, (struct message_spec){.priority = 9}, 0);
    assert_ptr_equal(get_and_release(q, 0, NULL), low);
    assert_ptr_equal(get_and_release(q, 0, NULL), high);
    queue_release(q);
}

/* ---- TTL ------------------------------------------------------------------------------ */

static void test_queue_ttl(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.message_ttl_ms = 100;
    struct queue *q = make_queue(&s, &r);
    struct message *a = publish_plain(q, 1000);
    publish_plain(q, 1040);
    assert_int_equal(queue_expire(q, 1050), 1100);
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(queue_expire(q, 1100), 1140);
    assert_int_equal(queue_ready_count(q), 1);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 1);
    assert_ptr_equal(r.dropped_msgs[0], a);
    assert_int_equal(r.refs_seen, 1); /* the queue still held it during the hook */
    assert_int_equal(queue_expire(q, 5000), MESSAGE_NO_EXPIRY);
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 2);
    queue_release(q);
}

static void test_message_ttl_is_the_lower_and_expires_at_head_only(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.message_ttl_ms = 1000;
    struct queue *q = make_queue(&s, &r);
    publish_new(q, (struct message_spec){.priority = -1, .expiration = "5000"}, 0); /* queue TTL wins: 1000 */
    publish_new(q, (struct message_spec){.priority = -1, .expiration = "10"}, 0);   /* 10, but behind */
    assert_int_equal(queue_expire(q, 20), 1000);
    assert_int_equal(queue_ready_count(q), 2);
    /* Once the head goes, the one behind it is found long expired. */
    assert_int_equal(queue_expire(q, 1000), MESSAGE_NO_EXPIRY);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 2);
    queue_release(q);
}

static void test_ttl_zero_without_consumer_expires(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.message_ttl_ms = 0;
    struct queue *q = make_queue(&s, &r);
    publish_plain(q, 500);
    queue_dispatch(q, 500);
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 1);
    /* basic.get cannot see it either. */
    publish_plain(q, 600);
    assert_null(get_and_release(q, 600, NULL));
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 2);
    /* A consumer without credit does not save it. */
    struct test_consumer c = {.credit = 0};
    add_consumer(q, &c, 0);
    publish_plain(q, 700);
    queue_dispatch(q, 700);
    assert_int_equal(c.count, 0);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 3);
    queue_remove_consumer(q, &c);
    queue_release(q);
}

static void test_ttl_zero_with_consumer_delivers(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct test_consumer c = {.credit = 1};
    add_consumer(q, &c, 0);
    struct message *msg = publish_new(q, (struct message_spec){.priority = -1, .expiration = "0"}, 500);
    struct message *second = publish_new(q, (struct message_spec){.priority = -1, .expiration = "0"}, 500);
    queue_dispatch(q, 500);
    assert_int_equal(c.count, 1);
    assert_ptr_equal(c.entries[0].msg, msg);
    assert_ptr_equal(r.dropped_msgs[0], second); /* no credit left for it */
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 1);
    /* Requeued at the same instant, it is dead: only a fresh message gets the grace. */
    queue_settle(q, &c.entries[0], QUEUE_REQUEUE);
    c.count = 0;
    c.credit = 1;
    queue_dispatch(q, 500);
    assert_int_equal(c.count, 0);
    assert_int_equal(r.dropped[QUEUE_DROP_EXPIRED], 2);
    queue_remove_consumer(q, &c);
    queue_release(q);
}

/* ---- length limits -------------------------------------------------------------------- */

static void test_max_length_drop_head(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_length = 2;
    struct queue *q = make_queue(&s, &r);
    struct message *m[4];
    for (int i = 0; i < 4; i++)
        m[i] = publish_plain(q, 0);
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 2);
    assert_ptr_equal(r.dropped_msgs[0], m[0]);
    assert_ptr_equal(r.dropped_msgs[1], m[1]);
    /* A requeue over the limit drops from the head, as RabbitMQ's requeue_and_run does. */
    struct queue_entry e;
    assert_true(queue_get(q, 0, false, &e));
    assert_ptr_equal(e.msg, m[2]);
    publish_plain(q, 0);
    queue_settle(q, &e, QUEUE_REQUEUE);
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 3);
    assert_ptr_equal(r.dropped_msgs[2], m[2]);
    assert_ptr_equal(get_and_release(q, 0, NULL), m[3]);
    queue_release(q);
}

static void test_max_length_bytes(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_length_bytes = 10;
    struct queue *q = make_queue(&s, &r);
    struct message *a = publish_new(q, (struct message_spec){.priority = -1, .body_size = 4}, 0);
    publish_new(q, (struct message_spec){.priority = -1, .body_size = 4}, 0);
    assert_int_equal(queue_ready_bytes(q), 8);
    publish_new(q, (struct message_spec){.priority = -1, .body_size = 2}, 0);
    assert_int_equal(queue_ready_bytes(q), 10);
    assert_int_equal(r.dropped_total, 0);
    publish_new(q, (struct message_spec){.priority = -1, .body_size = 1}, 0);
    assert_int_equal(queue_ready_bytes(q), 7);
    assert_int_equal(queue_ready_count(q), 3);
    assert_ptr_equal(r.dropped_msgs[0], a);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 1);
    queue_release(q);
}

static void test_max_length_zero(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_length = 0;
    struct queue *q = make_queue(&s, &r);
    /* Nobody waiting: dropped (dead-lettered as maxlen) by the dispatch that follows. */
    publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 1);
    /* A consumer waiting for it takes it, as RabbitMQ delivers before enqueueing. */
    struct test_consumer c = {.credit = -1, .no_ack = true};
    add_consumer(q, &c, 0);
    publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 1);
    consumer_settle_all(q, &c, QUEUE_ACK);
    queue_remove_consumer(q, &c);
    queue_release(q);
}

static void test_reject_publish(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_length = 2;
    s.overflow_reject = true;
    struct queue *q = make_queue(&s, &r);
    struct message *a = publish_plain(q, 0);
    publish_plain(q, 0);
    struct message *refused = plain();
    assert_int_equal(queue_publish(q, refused, 0), -1);
    assert_int_equal(refused->refs, 1); /* not kept */
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(r.dropped_total, 0);
    /* Room again after one leaves. */
    assert_ptr_equal(get_and_release(q, 0, NULL), a);
    assert_int_equal(queue_publish(q, refused, 0), 0);
    message_release(refused);
    assert_int_equal(queue_ready_count(q), 2);
    queue_release(q);
}

static void test_reject_publish_bytes_and_dlx(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_length_bytes = 5;
    s.overflow_reject = true;
    s.overflow_reject_dlx = true;
    struct queue *q = make_queue(&s, &r);
    publish_new(q, (struct message_spec){.priority = -1, .body_size = 5}, 0);
    struct message *big = make_message((struct message_spec){.priority = -1, .body_size = 1});
    assert_int_equal(queue_publish(q, big, 0), -1);
    assert_int_equal(r.dropped[QUEUE_DROP_MAXLEN], 1);
    assert_ptr_equal(r.dropped_msgs[0], big);
    assert_int_equal(big->refs, 1);
    message_release(big);
    assert_int_equal(queue_ready_count(q), 1);
    queue_release(q);
}

/* ---- consumers ------------------------------------------------------------------------ */

static void test_round_robin_three_consumers(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    size_t order[64], order_len = 0;
    struct test_consumer c[3];
    for (size_t i = 0; i < 3; i++) {
        c[i] = (struct test_consumer){.credit = -1, .order = order, .order_len = &order_len, .id = i};
        add_consumer(q, &c[i], 0);
    }
    for (int i = 0; i < 9; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(order_len, 9);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(order[i], i % 3);
    assert_int_equal(queue_unacked_count(q), 9);
    /* The middle one runs out of credit: the others alternate and the turn moves on. */
    c[1].credit = 0;
    order_len = 0;
    for (int i = 0; i < 4; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(order_len, 4);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 0);
    assert_int_equal(order[3], 2);
    for (size_t i = 0; i < 3; i++) {
        consumer_settle_all(q, &c[i], QUEUE_ACK);
        queue_remove_consumer(q, &c[i]);
    }
    assert_int_equal(queue_unacked_count(q), 0);
    queue_release(q);
}

static void test_consumer_priority(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    size_t order[64], order_len = 0;
    struct test_consumer low = {.credit = -1, .order = order, .order_len = &order_len, .id = 0};
    struct test_consumer high_a = {.credit = 2, .order = order, .order_len = &order_len, .id = 1};
    struct test_consumer high_b = {.credit = 1, .order = order, .order_len = &order_len, .id = 2};
    add_consumer(q, &low, 0);
    add_consumer(q, &high_a, 10);
    add_consumer(q, &high_b, 10);
    for (int i = 0; i < 6; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    const size_t expected[] = {1, 2, 1, 0, 0, 0};
    assert_int_equal(order_len, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(order[i], expected[i]);
    /* Credit comes back to a high-priority consumer: it is served first again. */
    high_b.credit = 1;
    order_len = 0;
    publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(order[0], 2);
    struct test_consumer *all[] = {&low, &high_a, &high_b};
    for (size_t i = 0; i < 3; i++) {
        consumer_settle_all(q, all[i], QUEUE_ACK);
        queue_remove_consumer(q, all[i]);
    }
    queue_release(q);
}

static void test_single_active_consumer(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.single_active_consumer = true;
    struct queue *q = make_queue(&s, &r);
    struct test_consumer first = {.credit = -1}, second = {.credit = -1}, third = {.credit = -1};
    add_consumer(q, &first, 0);
    add_consumer(q, &second, 0);
    add_consumer(q, &third, 5); /* a higher priority does not take over from the active one */
    for (int i = 0; i < 3; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(first.count, 3);
    assert_int_equal(second.count + third.count, 0);
    /* The active one without credit: nobody else gets anything. */
    first.credit = 0;
    publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(second.count + third.count, 0);
    /* It goes: its unacked messages come back and the next consumer takes over (RabbitMQ picks
     * the highest priority, then the oldest). */
    consumer_settle_all(q, &first, QUEUE_REQUEUE);
    queue_remove_consumer(q, &first);
    queue_dispatch(q, 0);
    assert_int_equal(third.count, 4);
    assert_int_equal(third.entries[0].delivery_count, 1);
    assert_int_equal(second.count, 0);
    consumer_settle_all(q, &third, QUEUE_ACK);
    queue_remove_consumer(q, &third);
    publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(second.count, 1);
    /* An exclusive consume is always refused with single active consumer. */
    struct reply_error err;
    struct test_consumer other = {.credit = -1};
    assert_int_equal(queue_add_consumer(q, &other, &consumer_ops, 0, true, false, &err), -1);
    assert_int_equal(err.code, 403);
    consumer_settle_all(q, &second, QUEUE_ACK);
    queue_remove_consumer(q, &second);
    queue_release(q);
}

static void test_exclusive_consumer(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct test_consumer a = {.credit = -1}, b = {.credit = -1};
    struct reply_error err;
    add_consumer(q, &a, 0);
    assert_int_equal(queue_add_consumer(q, &b, &consumer_ops, 0, true, false, &err), -1);
    assert_int_equal(err.code, 403);
    assert_int_equal(err.method_id, SPEC_BASIC_CONSUME);
    assert_string_equal(err.text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
    queue_remove_consumer(q, &a);
    assert_int_equal(queue_add_consumer(q, &b, &consumer_ops, 0, true, false, &err), 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(queue_add_consumer(q, &a, &consumer_ops, 0, false, false, &err), -1);
    assert_string_equal(err.text, "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use");
    assert_int_equal(queue_consumer_count(q), 1);
    queue_remove_consumer(q, &b);
    add_consumer(q, &a, 0);
    queue_remove_consumer(q, &a);
    assert_int_equal(r.unused, 0); /* not auto-delete */
    queue_release(q);
}

static void test_auto_delete_hook(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.auto_delete = true;
    struct queue *q = make_queue(&s, &r);
    struct test_consumer a = {.credit = -1}, b = {.credit = -1};
    add_consumer(q, &a, 0);
    add_consumer(q, &b, 0);
    queue_remove_consumer(q, &a);
    assert_int_equal(r.unused, 0);
    queue_remove_consumer(q, &a); /* unknown now: ignored */
    assert_int_equal(r.unused, 0);
    queue_remove_consumer(q, &b);
    assert_int_equal(r.unused, 1);
    queue_release(q);
}

/* The unused hook may delete and release the queue: the model of vhost auto-delete. */
static void release_on_unused(void *ctx, struct queue *queue)
{
    int *calls = ctx;
    (*calls)++;
    queue_delete(queue);
    queue_release(queue);
}

static void test_auto_delete_hook_may_free_queue(void **state)
{
    (void)state;
    int calls = 0;
    struct queue_settings s = default_settings();
    s.auto_delete = true;
    struct queue_hooks hooks = {.unused = release_on_unused, .ctx = &calls};
    struct queue *q = queue_create(bytes_of("q"), &s, no_bytes(), &hooks);
    struct test_consumer a = {.credit = -1};
    add_consumer(q, &a, 0);
    publish_plain(q, 0);
    queue_remove_consumer(q, &a); /* frees q */
    assert_int_equal(calls, 1);
}

static void test_no_ack_consumer(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct test_consumer c = {.credit = -1, .no_ack = true};
    add_consumer(q, &c, 0);
    struct message *m = publish_plain(q, 0);
    message_retain(m); /* watch its count */
    queue_dispatch(q, 0);
    assert_int_equal(c.count, 1);
    assert_int_equal(queue_unacked_count(q), 0);
    assert_int_equal(m->refs, 2); /* ours and the consumer's (handed over by the queue) */
    consumer_settle_all(q, &c, QUEUE_ACK); /* releases in no-ack mode */
    assert_int_equal(m->refs, 1);
    message_release(m);
    queue_remove_consumer(q, &c);
    queue_release(q);
}

static void test_nested_dispatch_and_removal_during_delivery(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct test_consumer again = {.credit = -1, .dispatch_again = true, .settle_at_once = true};
    struct test_consumer leaver = {.credit = -1, .remove_self = true};
    add_consumer(q, &again, 0);
    add_consumer(q, &leaver, 0);
    for (int i = 0; i < 5; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    /* again, leaver (which then leaves), then again for the rest. */
    assert_int_equal(leaver.count, 1);
    assert_int_equal(again.count, 0); /* settled each at once */
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(queue_unacked_count(q), 1);
    consumer_settle_all(q, &leaver, QUEUE_ACK);
    queue_remove_consumer(q, &again);
    queue_release(q);
}

struct walk {
    struct queue *queue;
    size_t visits;
};

static void cancel_each(void *consumer, void *arg)
{
    struct walk *w = arg;
    w->visits++;
    queue_remove_consumer(w->queue, consumer);
}

static void test_for_each_consumer_may_remove(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.auto_delete = true;
    struct queue *q = make_queue(&s, &r);
    struct test_consumer c[4] = {{.credit = -1}, {.credit = -1}, {.credit = -1}, {.credit = -1}};
    for (int i = 0; i < 4; i++)
        add_consumer(q, &c[i], i % 2);
    struct walk w = {q, 0};
    queue_for_each_consumer(q, cancel_each, &w);
    assert_int_equal(w.visits, 4);
    assert_int_equal(queue_consumer_count(q), 0);
    assert_int_equal(r.unused, 1);
    queue_release(q);
}

/* ---- get, purge, delete, settle ------------------------------------------------------- */

static void test_get(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct queue_entry e;
    assert_false(queue_get(q, 7, true, &e));
    assert_int_equal(queue_last_used(q), 7);
    struct message *a = publish_plain(q, 0);
    struct message *b = publish_plain(q, 0);
    assert_true(queue_get(q, 8, false, &e));
    assert_ptr_equal(e.msg, a);
    assert_int_equal(queue_unacked_count(q), 1);
    assert_int_equal(queue_ready_count(q), 1);
    queue_settle(q, &e, QUEUE_ACK);
    assert_int_equal(queue_unacked_count(q), 0);
    assert_true(queue_get(q, 9, false, &e));
    assert_ptr_equal(e.msg, b);
    queue_settle(q, &e, QUEUE_DISCARD);
    assert_int_equal(r.dropped[QUEUE_DROP_REJECTED], 1);
    assert_ptr_equal(r.dropped_msgs[0], b);
    assert_int_equal(queue_unacked_count(q), 0);
    queue_touch(q, 42);
    assert_int_equal(queue_last_used(q), 42);
    queue_release(q);
}

static void test_purge(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.max_priority = 3;
    struct queue *q = make_queue(&s, &r);
    for (int i = 0; i < 5; i++)
        publish_new(q, (struct message_spec){.priority = i, .body_size = 2}, 0);
    struct queue_entry e;
    assert_true(queue_get(q, 0, false, &e));
    assert_int_equal(queue_purge(q), 4);
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(queue_ready_bytes(q), 0);
    assert_int_equal(queue_unacked_count(q), 1);
    assert_int_equal(r.dropped_total, 0); /* purged messages are not dead-lettered */
    queue_settle(q, &e, QUEUE_REQUEUE);
    assert_int_equal(queue_ready_count(q), 1);
    publish_plain(q, 0);
    assert_int_equal(queue_ready_count(q), 2);
    queue_release(q); /* frees what is still ready */
}

static void test_delete_with_unsettled_entries(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    struct test_consumer c = {.credit = 2};
    add_consumer(q, &c, 0);
    for (int i = 0; i < 5; i++)
        publish_plain(q, 0);
    queue_dispatch(q, 0);
    assert_int_equal(c.count, 2);
    struct message *watched = c.entries[1].msg;
    message_retain(watched);

    queue_retain(q); /* the channel's reference, for its unsettled entries */
    queue_remove_consumer(q, &c);
    assert_int_equal(queue_delete(q), 3);
    assert_true(queue_is_deleted(q));
    assert_int_equal(queue_delete(q), 0);
    queue_release(q); /* the vhost lets go */

    /* Publishing to the deleted queue keeps nothing. */
    struct message *late = plain();
    assert_int_equal(queue_publish(q, late, 0), 0);
    assert_int_equal(late->refs, 1);
    message_release(late);
    struct queue_entry e;
    assert_false(queue_get(q, 0, true, &e));
    queue_dispatch(q, 0);
    assert_int_equal(queue_expire(q, 0), MESSAGE_NO_EXPIRY);

    queue_settle(q, &c.entries[0], QUEUE_REQUEUE);
    queue_settle(q, &c.entries[1], QUEUE_DISCARD);
    assert_int_equal(watched->refs, 1); /* only ours: settled without the hook */
    assert_int_equal(r.dropped_total, 0);
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(queue_unacked_count(q), 0);
    message_release(watched);
    struct reply_error err;
    assert_int_equal(queue_add_consumer(q, &c, &consumer_ops, 0, false, false, &err), -1);
    assert_int_equal(err.code, 404);
    queue_release(q); /* the channel's */
}

static void test_message_references(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *a = make_queue(&s, &r);
    struct queue *b = make_queue(&s, &r);
    struct message *msg = plain();
    assert_int_equal(queue_publish(a, msg, 0), 0);
    assert_int_equal(queue_publish(b, msg, 0), 0);
    assert_int_equal(msg->refs, 3); /* fanout: references, not copies */
    struct queue_entry e;
    assert_true(queue_get(a, 0, false, &e));
    assert_int_equal(msg->refs, 3); /* handed over with the entry */
    queue_settle(a, &e, QUEUE_REQUEUE);
    assert_int_equal(msg->refs, 3);
    assert_true(queue_get(a, 0, false, &e));
    queue_settle(a, &e, QUEUE_ACK);
    assert_int_equal(msg->refs, 2);
    queue_release(b);
    assert_int_equal(msg->refs, 1);
    message_release(msg);
    queue_release(a);
}

/* A dropped hook that publishes back into the same queue (dead-lettering to itself). */
struct republisher {
    struct queue *queue;
    size_t calls;
};

static void republish(void *ctx, struct queue *queue, struct message *msg, enum queue_drop_reason reason)
{
    (void)reason;
    struct republisher *p = ctx;
    assert_ptr_equal(queue, p->queue);
    if (p->calls++ < 3)
        assert_int_equal(queue_publish(queue, msg, 10000), 0);
}

static void test_dropped_hook_may_publish_back(void **state)
{
    (void)state;
    struct republisher p = {0};
    struct queue_settings s = default_settings();
    s.message_ttl_ms = 10;
    struct queue_hooks hooks = {.dropped = republish, .ctx = &p};
    struct queue *q = queue_create(bytes_of("q"), &s, no_bytes(), &hooks);
    p.queue = q;
    publish_plain(q, 0);
    publish_plain(q, 0);
    assert_int_equal(queue_expire(q, 100), 10010);
    assert_int_equal(p.calls, 2);
    assert_int_equal(queue_ready_count(q), 2);
    queue_release(q);
}

/* Many messages through a small window exercise ring growth, wrap-around and shrinking. */
static void test_volume(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    struct queue *q = make_queue(&s, &r);
    enum { N = 20000 };
    static struct message *sent[N];
    size_t next = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N / 4; i++)
            sent[round * (N / 4) + i] = publish_plain(q, 0);
        for (int i = 0; i < N / 8; i++)
            assert_ptr_equal(get_and_release(q, 0, NULL), sent[next++]);
    }
    while (next < N)
        assert_ptr_equal(get_and_release(q, 0, NULL), sent[next++]);
    assert_int_equal(queue_ready_count(q), 0);
    queue_release(q);
}

/* ---- declare arguments ---------------------------------------------------------------- */

static struct table_value int32_value(int32_t v)
{
    struct table_value value = {.type = TABLE_INT32};
    value.v.i32 = v;
    return value;
}

static struct table_value int64_value(int64_t v)
{
    struct table_value value = {.type = TABLE_INT64};
    value.v.i64 = v;
    return value;
}

static struct table_value bool_value(bool v)
{
    struct table_value value = {.type = TABLE_BOOL};
    value.v.boolean = v;
    return value;
}

/* Parses the arguments of buf for queue "q" and checks the 406 text (NULL: must succeed). */
static void expect_parse(struct table_buf *buf, const char *text, struct queue_settings *out)
{
    struct reply_error err = {0};
    struct queue_settings settings;
    int rc = queue_settings_parse(bytes_of("q"), table_of(buf), out ? out : &settings, &err);
    if (text == NULL) {
        assert_int_equal(rc, 0);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, 406);
        assert_int_equal(err.method_id, SPEC_QUEUE_DECLARE);
        assert_string_equal(err.text, text);
    }
    table_buf_free(buf);
}

static void test_settings_defaults_and_values(void **state)
{
    (void)state;
    struct table_buf buf = {0};
    struct queue_settings s = {.durable = true, .auto_delete = true};
    expect_parse(&buf, NULL, &s);
    assert_true(s.durable); /* declare flags are left alone */
    assert_true(s.auto_delete);
    assert_int_equal(s.message_ttl_ms, -1);
    assert_int_equal(s.expires_ms, -1);
    assert_int_equal(s.max_length, -1);
    assert_int_equal(s.max_length_bytes, -1);
    assert_false(s.overflow_reject);
    assert_int_equal(s.max_priority, 0);
    assert_false(s.has_dlx);

    struct table_value u8 = {.type = TABLE_UINT8};
    u8.v.u8 = 10;
    struct table_value u64 = {.type = TABLE_UINT64};
    u64.v.u64 = 5000;
    struct table_value i16 = {.type = TABLE_INT16};
    i16.v.i16 = 0;
    put_value(&buf, "x-message-ttl", int32_value(0));
    put_value(&buf, "x-expires", u64);
    put_value(&buf, "x-max-length", i16);
    put_value(&buf, "x-max-length-bytes", int64_value(1 << 20));
    put_value(&buf, "x-max-priority", u8);
    put_longstr(&buf, "x-overflow", "reject-publish-dlx");
    put_value(&buf, "x-single-active-consumer", bool_value(true));
    put_longstr(&buf, "x-dead-letter-exchange", "");
    put_longstr(&buf, "x-dead-letter-routing-key", "dead");
    put_longstr(&buf, "x-queue-mode", "lazy");
    put_longstr(&buf, "x-queue-type", "classic");
    put_longstr(&buf, "x-queue-master-locator", "min-masters");
    put_longstr(&buf, "x-ha-policy", "all");
    put_value(&buf, "x-unknown", bool_value(false));
    put_value(&buf, "x-queue-version", int32_value(2));
    struct reply_error err;
    assert_int_equal(queue_settings_parse(bytes_of("q"), table_of(&buf), &s, &err), 0);
    assert_int_equal(s.message_ttl_ms, 0);
    assert_int_equal(s.expires_ms, 5000);
    assert_int_equal(s.max_length, 0);
    assert_int_equal(s.max_length_bytes, 1 << 20);
    assert_int_equal(s.max_priority, 10);
    assert_true(s.overflow_reject);
    assert_true(s.overflow_reject_dlx);
    assert_true(s.single_active_consumer);
    assert_true(s.has_dlx);

    /* The queue keeps the arguments and finds its dead-letter target in them. */
    struct queue *q = queue_create(bytes_of("q"), &s, table_of(&buf), NULL);
    size_t arguments_len = buf.len;
    table_buf_free(&buf); /* the queue made its own copy */
    struct proto_bytes dlx, key;
    assert_true(queue_dead_letter_exchange(q, &dlx));
    assert_int_equal(dlx.len, 0);
    assert_true(queue_dead_letter_routing_key(q, &key));
    assert_int_equal(key.len, 4);
    assert_memory_equal(key.ptr, "dead", 4);
    assert_int_equal(queue_arguments(q).len, arguments_len);
    queue_release(q);

    struct queue_settings plain_settings = default_settings();
    q = queue_create(bytes_of("plain"), &plain_settings, no_bytes(), NULL);
    assert_false(queue_dead_letter_exchange(q, &dlx));
    assert_false(queue_dead_letter_routing_key(q, &key));
    assert_int_equal(queue_name(q).len, 5);
    queue_release(q);
}

#define PREFIX "PRECONDITION_FAILED - invalid arg "

static void test_settings_errors(void **state)
{
    (void)state;
    struct table_buf buf = {0};
    struct table_value u64 = {.type = TABLE_UINT64};
    struct table_value stamp = {.type = TABLE_TIMESTAMP};
    stamp.v.u64 = 5;

    put_longstr(&buf, "x-message-ttl", "1000");
    expect_parse(&buf, PREFIX "'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"", NULL);
    put_value(&buf, "x-message-ttl", stamp);
    expect_parse(&buf, PREFIX "'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got timestamp\"", NULL);
    put_value(&buf, "x-message-ttl", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}", NULL);
    put_value(&buf, "x-message-ttl", int64_value(315360000001));
    expect_parse(&buf, PREFIX "'x-message-ttl' for queue 'q' in vhost '/': {value_too_large,315360000001}", NULL);
    u64.v.u64 = UINT64_MAX; /* RabbitMQ reads 'L' as signed: -1 */
    put_value(&buf, "x-message-ttl", u64);
    expect_parse(&buf, PREFIX "'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}", NULL);

    put_value(&buf, "x-expires", int32_value(0));
    expect_parse(&buf, PREFIX "'x-expires' for queue 'q' in vhost '/': {value_zero,0}", NULL);
    put_value(&buf, "x-expires", int32_value(-3));
    expect_parse(&buf, PREFIX "'x-expires' for queue 'q' in vhost '/': {value_negative,-3}", NULL);

    put_value(&buf, "x-max-length", int32_value(-5));
    expect_parse(&buf, PREFIX "'x-max-length' for queue 'q' in vhost '/': {value_negative,-5}", NULL);
    put_value(&buf, "x-max-length-bytes", bool_value(true));
    expect_parse(&buf, PREFIX "'x-max-length-bytes' for queue 'q' in vhost '/': \"expected integer, got bool\"", NULL);

    put_value(&buf, "x-max-priority", int32_value(256));
    expect_parse(&buf, PREFIX "'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}", NULL);
    put_value(&buf, "x-max-priority", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-max-priority' for queue 'q' in vhost '/': {value_negative,-1}", NULL);

    put_longstr(&buf, "x-overflow", "drop-tail");
    expect_parse(&buf, PREFIX "'x-overflow' for queue 'q' in vhost '/': invalid_overflow", NULL);
    put_value(&buf, "x-overflow", int32_value(1));
    expect_parse(&buf, PREFIX "'x-overflow' for queue 'q' in vhost '/': {unacceptable_type,signedint}", NULL);

    put_longstr(&buf, "x-single-active-consumer", "true");
    expect_parse(&buf, PREFIX "'x-single-active-consumer' for queue 'q' in vhost '/': {unacceptable_type,longstr}",
                 NULL);

    put_longstr(&buf, "x-dead-letter-routing-key", "k");
    expect_parse(&buf, PREFIX "'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined",
                 NULL);
    put_longstr(&buf, "x-dead-letter-exchange", "dlx");
    put_value(&buf, "x-dead-letter-routing-key", int32_value(1));
    expect_parse(&buf, PREFIX "'x-dead-letter-routing-key' for queue 'q' in vhost '/': {unacceptable_type,signedint}",
                 NULL);
    /* rabbit_channel looks at the dead-letter exchange's type before any other check. */
    put_value(&buf, "x-message-ttl", int32_value(-1));
    put_value(&buf, "x-dead-letter-exchange", int32_value(1));
    expect_parse(&buf,
                 "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in "
                 "vhost '/'",
                 NULL);

    put_longstr(&buf, "x-queue-mode", "fast");
    expect_parse(&buf, PREFIX "'x-queue-mode' for queue 'q' in vhost '/': \"unsupported queue mode 'fast'\"", NULL);
    put_value(&buf, "x-queue-version", int32_value(3));
    expect_parse(&buf, PREFIX "'x-queue-version' for queue 'q' in vhost '/': \"unsupported queue version '3'\"", NULL);

    /* The queue type is checked first; classic and quorum exist here. */
    put_value(&buf, "x-message-ttl", int32_value(-1));
    put_longstr(&buf, "x-queue-type", "stream");
    expect_parse(&buf, PREFIX "'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'stream'\"", NULL);
    put_value(&buf, "x-queue-type", int32_value(1));
    expect_parse(&buf, PREFIX "'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,signedint}", NULL);

    /* Arguments of the other queue types, after the value checks. */
    put_longstr(&buf, "x-max-age", "1D");
    put_value(&buf, "x-delivery-limit", int32_value(1));
    expect_parse(&buf, PREFIX "'x-max-age' for queue 'q' in vhost '/' of queue type rabbit_classic_queue", NULL);
    put_value(&buf, "x-delivery-limit", int32_value(1));
    put_value(&buf, "x-max-length", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}", NULL);

    /* Checks run in RabbitMQ's order, not the table's. */
    put_value(&buf, "x-max-length", int32_value(-1));
    put_value(&buf, "x-expires", int32_value(0));
    expect_parse(&buf, PREFIX "'x-expires' for queue 'q' in vhost '/': {value_zero,0}", NULL);
}

/* A quorum queue (RabbitMQ 3.10, checked against it): the arguments it takes are validated in
 * declare_args order, those of other types refused after them naming rabbit_quorum_queue, and
 * the declare's properties refused in rabbit_quorum_queue:declare's order. */
static void test_settings_quorum(void **state)
{
    (void)state;
    struct table_buf buf = {0};
    struct queue_settings s;
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-delivery-limit", int32_value(3));
    expect_parse(&buf, NULL, &s);
    assert_int_equal(s.type, QUEUE_TYPE_QUORUM);
    assert_true(s.has_delivery_limit);
    assert_int_equal(s.delivery_limit, 3);
    assert_string_equal(queue_kind_of(s.type)->name, "quorum");
    /* Not validated by RabbitMQ: a string means no limit, a negative one drops at the first return. */
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-delivery-limit", "x");
    expect_parse(&buf, NULL, &s);
    assert_false(s.has_delivery_limit);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-delivery-limit", int32_value(-1));
    expect_parse(&buf, NULL, &s);
    assert_true(s.has_delivery_limit);
    assert_int_equal(s.delivery_limit, 0);
    /* reject-publish-dlx is taken and runs as drop-head. */
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-overflow", "reject-publish-dlx");
    expect_parse(&buf, NULL, &s);
    assert_false(s.overflow_reject);
    /* Classic-only arguments, refused without looking at their value. */
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-max-priority", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue", NULL);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-queue-version", int32_value(2));
    expect_parse(&buf, PREFIX "'x-queue-version' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue", NULL);
    /* ... but after the value checks of what it takes. */
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-queue-mode", "lazy");
    put_value(&buf, "x-max-in-memory-length", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-max-in-memory-length' for queue 'q' in vhost '/': {value_negative,-1}", NULL);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-quorum-initial-group-size", int32_value(0));
    put_value(&buf, "x-single-active-consumer", int32_value(1));
    expect_parse(&buf, PREFIX "'x-single-active-consumer' for queue 'q' in vhost '/': {unacceptable_type,signedint}",
                 NULL);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-queue-leader-locator", "bogus");
    put_value(&buf, "x-quorum-initial-group-size", int32_value(0));
    expect_parse(&buf, PREFIX "'x-quorum-initial-group-size' for queue 'q' in vhost '/': {value_zero,0}", NULL);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-dead-letter-strategy", "bogus");
    put_value(&buf, "x-max-length", int32_value(-1));
    expect_parse(&buf, PREFIX "'x-dead-letter-strategy' for queue 'q' in vhost '/': invalid_dlx_strategy", NULL);
    put_longstr(&buf, "x-queue-type", "quorum");
    put_longstr(&buf, "x-queue-leader-locator", "bogus");
    expect_parse(&buf, PREFIX "'x-queue-leader-locator' for queue 'q' in vhost '/': invalid_queue_locator_arg", NULL);
    /* The quorum-only arguments stay refused on a classic queue. */
    put_value(&buf, "x-quorum-initial-group-size", int32_value(0));
    expect_parse(&buf, PREFIX "'x-quorum-initial-group-size' for queue 'q' in vhost '/' of queue type "
                              "rabbit_classic_queue", NULL);

    /* Properties: auto-delete, then exclusive, then durable. */
    struct reply_error err = {0};
    struct queue_settings q = {.type = QUEUE_TYPE_QUORUM, .durable = false, .exclusive = true, .auto_delete = true};
    assert_int_equal(queue_settings_check_kind(bytes_of("q"), &q, &err), -1);
    assert_int_equal(err.code, 406);
    assert_string_equal(err.text, "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'q' in vhost '/'");
    q.auto_delete = false;
    assert_int_equal(queue_settings_check_kind(bytes_of("q"), &q, &err), -1);
    assert_string_equal(err.text, "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'q' in vhost '/'");
    q.exclusive = false;
    assert_int_equal(queue_settings_check_kind(bytes_of("q"), &q, &err), -1);
    assert_string_equal(err.text, "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'");
    q.durable = true;
    assert_int_equal(queue_settings_check_kind(bytes_of("q"), &q, &err), 0);
    struct queue_settings classic = {.auto_delete = true, .exclusive = true};
    assert_int_equal(queue_settings_check_kind(bytes_of("q"), &classic, &err), 0);
    /* A server-named quorum queue is refused before its arguments are looked at. */
    put_longstr(&buf, "x-queue-type", "quorum");
    put_value(&buf, "x-message-ttl", int32_value(-1));
    assert_int_equal(queue_settings_check_name(table_of(&buf), true, &err), -1);
    assert_string_equal(err.text, "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue");
    assert_int_equal(queue_settings_check_name(table_of(&buf), false, &err), 0);
    table_buf_free(&buf);
    assert_int_equal(queue_settings_check_name(no_bytes(), true, &err), 0);
}

/* RabbitMQ 3.10's quorum queue: a requeued message goes to the back of the queue (not back to
 * its place), a closed channel's to the front, its count raised on every return; past
 * x-delivery-limit it is dropped with reason delivery_limit instead. */
static void test_quorum_returns_to_back_and_delivery_limit(void **state)
{
    (void)state;
    struct recorder r = {0};
    struct queue_settings s = default_settings();
    s.type = QUEUE_TYPE_QUORUM;
    s.durable = true;
    s.has_delivery_limit = true;
    s.delivery_limit = 1;
    struct queue *q = make_queue(&s, &r);
    struct message *sent[5];
    for (int i = 0; i < 5; i++)
        sent[i] = publish_plain(q, 0);
    struct queue_entry taken[4];
    for (int i = 0; i < 4; i++)
        assert_true(queue_get(q, 0, false, &taken[i]));
    queue_settle(q, &taken[2], QUEUE_REQUEUE);
    queue_settle(q, &taken[0], QUEUE_REQUEUE);
    queue_settle(q, &taken[3], QUEUE_REQUEUE);
    const int expected[] = {4, 2, 0, 3};
    const uint32_t counts[] = {0, 1, 1, 1};
    struct queue_entry again[4];
    for (int i = 0; i < 4; i++) {
        assert_true(queue_get(q, 0, false, &again[i]));
        assert_ptr_equal(again[i].msg, sent[expected[i]]);
        assert_int_equal(again[i].delivery_count, counts[i]);
    }
    int64_t header;
    assert_true(queue_delivery_count_header(q, &again[0], true, &header)); /* basic.get: always */
    assert_int_equal(header, 0);
    assert_false(queue_delivery_count_header(q, &again[0], false, &header)); /* deliver: once returned */
    assert_true(queue_delivery_count_header(q, &again[1], false, &header));
    assert_int_equal(header, 1);
    /* Second return of message 2: past the limit of 1. */
    queue_settle(q, &again[1], QUEUE_REQUEUE);
    assert_int_equal(r.dropped[QUEUE_DROP_DELIVERY_LIMIT], 1);
    assert_ptr_equal(r.dropped_msgs[0], sent[2]);
    /* 4 is returned, then 1 (out since the start): they come back in that order, counted once. */
    queue_settle(q, &again[0], QUEUE_REQUEUE);
    queue_settle(q, &taken[1], QUEUE_REQUEUE);
    uint32_t count;
    assert_ptr_equal(get_and_release(q, 0, &count), sent[4]);
    assert_int_equal(count, 1);
    assert_ptr_equal(get_and_release(q, 0, &count), sent[1]);
    assert_int_equal(count, 1);
    queue_settle(q, &again[2], QUEUE_ACK);
    queue_settle(q, &again[3], QUEUE_ACK);
    assert_null(get_and_release(q, 0, NULL));
    assert_int_equal(r.dropped_total, 1);
    queue_release(q);

    /* A closed channel's messages (QUEUE_RETURN) go to the front, in the order they come. */
    s.has_delivery_limit = false;
    q = make_queue(&s, &r);
    for (int i = 0; i < 4; i++)
        sent[i] = publish_plain(q, 0);
    for (int i = 0; i < 3; i++)
        assert_true(queue_get(q, 0, false, &taken[i]));
    queue_settle(q, &taken[2], QUEUE_RETURN);
    queue_settle(q, &taken[0], QUEUE_REQUEUE);
    queue_settle(q, &taken[1], QUEUE_RETURN);
    const int order[] = {2, 1, 3, 0};
    const uint32_t returned[] = {1, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(get_and_release(q, 0, &count), sent[order[i]]);
        assert_int_equal(count, returned[i]);
    }
    assert_null(get_and_release(q, 0, NULL));
    queue_release(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_requeue_returns_to_original_position),
        cmocka_unit_test(test_requeue_many_orders),
        cmocka_unit_test(test_quorum_returns_to_back_and_delivery_limit),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_priority_ignored_without_max_priority),
        cmocka_unit_test(test_queue_ttl),
        cmocka_unit_test(test_message_ttl_is_the_lower_and_expires_at_head_only),
        cmocka_unit_test(test_ttl_zero_without_consumer_expires),
        cmocka_unit_test(test_ttl_zero_with_consumer_delivers),
        cmocka_unit_test(test_max_length_drop_head),
        cmocka_unit_test(test_max_length_bytes),
        cmocka_unit_test(test_max_length_zero),
        cmocka_unit_test(test_reject_publish),
        cmocka_unit_test(test_reject_publish_bytes_and_dlx),
        cmocka_unit_test(test_round_robin_three_consumers),
        cmocka_unit_test(test_consumer_priority),
        cmocka_unit_test(test_single_active_consumer),
        cmocka_unit_test(test_exclusive_consumer),
        cmocka_unit_test(test_auto_delete_hook),
        cmocka_unit_test(test_auto_delete_hook_may_free_queue),
        cmocka_unit_test(test_no_ack_consumer),
        cmocka_unit_test(test_nested_dispatch_and_removal_during_delivery),
        cmocka_unit_test(test_for_each_consumer_may_remove),
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_delete_with_unsettled_entries),
        cmocka_unit_test(test_message_references),
        cmocka_unit_test(test_dropped_hook_may_publish_back),
        cmocka_unit_test(test_volume),
        cmocka_unit_test(test_settings_defaults_and_values),
        cmocka_unit_test(test_settings_quorum),
        cmocka_unit_test(test_settings_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
