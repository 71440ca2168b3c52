/* tests/unit/model/test_dead_letter.c: dead-lettering through a vhost (vhost_route.c): RabbitMQ's
 * cycle rule from the x-death path (fully automatic cycles are dropped, cycles with a rejection
 * in them go on) and the per-round budget that bounds the work one publish can cause. Every
 * test frees all it made (run under -DWARREN_SANITIZE=ON); an alarm turns a loop that never
 * ends into a failure. */
#include "helpers.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "message.h"
#include "queue.h"
#include "spec.h"
#include "vhost.h"

static uint64_t clock_ms = 1000;

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

/* The AMQP layer's hook: a queue that received a dead letter is dispatched at once. */
static void queue_ready(void *ctx, struct queue *queue)
{
    (void)ctx;
    queue_dispatch(queue, clock_ms);
}

static struct vhost *new_vhost(void)
{
    struct vhost_hooks hooks = {.queue_ready = queue_ready, .now_ms = now_ms};
    struct vhost *vhost = vhost_create("/", &hooks);
    assert_non_null(vhost);
    alarm(20); /* a dead-letter loop that never ends fails the test instead of hanging it */
    return vhost;
}

static void free_vhost(struct vhost *vhost)
{
    alarm(0);
    vhost_destroy(vhost);
}

static void fanout(struct vhost *vhost, const char *name)
{
    struct exchange_declare d = {.name = bytes_of(name), .type = bytes_of("fanout")};
    struct reply_error err;
    assert_int_equal(vhost_exchange_declare(vhost, &d, &err), 0);
}

/* Declares `name` with a dead-letter exchange (NULL: none), x-max-length (-1: none) and
 * x-message-ttl (-1: none), and binds it to `bind_to` (NULL: no binding). */
static struct queue *declare(struct vhost *vhost, const char *name, const char *dlx, int max_length, int ttl,
                             const char *bind_to)
{
    struct table_buf args = {0};
    if (dlx)
        put_longstr(&args, "x-dead-letter-exchange", dlx);
    if (max_length >= 0)
        put_value(&args, "x-max-length", (struct table_value){.type = TABLE_INT32, .v.i32 = max_length});
    if (ttl >= 0)
        put_value(&args, "x-message-ttl", (struct table_value){.type = TABLE_INT32, .v.i32 = ttl});
    struct queue_declare d = {.name = bytes_of(name), .arguments = table_of(&args)};
    struct queue *q = NULL;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), 0);
    table_buf_free(&args);
    if (bind_to)
        assert_int_equal(vhost_queue_bind(vhost, bytes_of(name), bytes_of(bind_to), bytes_of(""), no_bytes(), NULL,
                                          false, &err),
                         0);
    return q;
}

/* Publishes a message without properties to the default exchange, routed to `queue`. */
static void publish(struct vhost *vhost, const char *queue)
{
    struct spec_content_header h = {.class_id = 60, .body_size = 4};
    uint8_t header[64];
    long n = spec_content_header_encode(&h, header, sizeof(header));
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of(""), bytes_of(queue), (struct proto_bytes){header, (uint32_t)n}, 4);
    assert_non_null(msg);
    memcpy(msg->body, "body", 4);
    struct route_set targets = {0};
    struct reply_error err;
    assert_int_equal(vhost_route(vhost, bytes_of(""), msg, &targets, &err), 0);
    assert_int_equal(targets.count, 1);
    struct queue *q = targets.items[0];
    assert_int_equal(queue_publish(q, msg, clock_ms), 0);
    queue_dispatch(q, clock_ms);
    route_set_free(&targets);
    message_release(msg);
}

/* The count of the x-death entry for (queue, reason) in msg's headers, 0 when absent. */
static int64_t death_count(const struct message *msg, const char *queue, const char *reason)
{
    struct table_value deaths, death, q, r, c;
    if (table_find(message_headers(msg), "x-death", &deaths) != 1)
        return 0;
    struct table_iter it;
    table_iter_init(&it, deaths.v.bytes);
    while (array_next(&it, &death) == 1) {
        int64_t n;
        if (table_find(death.v.bytes, "queue", &q) == 1 && proto_bytes_equal(q.v.bytes, bytes_of(queue)) &&
            table_find(death.v.bytes, "reason", &r) == 1 && proto_bytes_equal(r.v.bytes, bytes_of(reason)) &&
            table_find(death.v.bytes, "count", &c) == 1 && table_value_to_int(&c, &n))
            return n;
    }
    return 0;
}

/* basic.get then reject without requeue; returns the x-death count for (queue, rejected) of
 * the message taken. */
static int64_t get_and_reject(struct queue *q, const char *name)
{
    struct queue_entry entry;
    assert_true(queue_get(q, clock_ms, false, &entry));
    int64_t count = death_count(entry.msg, name, "rejected");
    queue_settle(q, &entry, QUEUE_DISCARD);
    return count;
}

/* ---- fully automatic cycles are dropped ------------------------------------------------ */

static void test_max_length_zero_self_cycle_drops(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "dlx");
    struct queue *q = declare(vhost, "q", "dlx", 0, -1, "dlx");
    publish(vhost, "q");
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(vhost_dead_letter_round(vhost), 0); /* dropped by the cycle rule, not the budget */
    free_vhost(vhost);
}

static void test_two_queue_max_length_cycle_drops(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "to-a");
    fanout(vhost, "to-b");
    struct queue *a = declare(vhost, "a", "to-b", 0, -1, "to-a");
    struct queue *b = declare(vhost, "b", "to-a", 0, -1, "to-b");
    publish(vhost, "a");
    assert_int_equal(queue_ready_count(a) + queue_ready_count(b), 0);
    assert_int_equal(vhost_dead_letter_round(vhost), 0);
    free_vhost(vhost);
}

static void test_expired_self_cycle_drops_after_one_round(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "dlx");
    struct queue *q = declare(vhost, "q", "dlx", -1, 10, "dlx");
    publish(vhost, "q");
    assert_int_equal(queue_ready_count(q), 1);
    clock_ms += 10;
    vhost_tick(vhost, clock_ms); /* expires, dead-lettered towards q itself: dropped */
    assert_int_equal(queue_ready_count(q), 0);
    free_vhost(vhost);
}

static void test_ttl_zero_self_cycle_drops(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "dlx");
    struct queue *q = declare(vhost, "q", "dlx", -1, 0, "dlx");
    publish(vhost, "q");
    assert_int_equal(queue_ready_count(q), 0);
    assert_int_equal(vhost_dead_letter_round(vhost), 0);
    free_vhost(vhost);
}

/* A rejection older than the target's own entry does not save the message: the cycle is the
 * part of the path in front of it. r's consumer rejects into a, whose maxlen drop would send it
 * back into a. */
static void test_rejection_behind_the_cycle_does_not_count(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "to-a");
    struct queue *r = declare(vhost, "r", "to-a", -1, -1, NULL);
    struct queue *a = declare(vhost, "a", "to-a", 0, -1, "to-a");
    publish(vhost, "r");
    assert_int_equal(get_and_reject(r, "r"), 0);
    assert_int_equal(queue_ready_count(r) + queue_ready_count(a), 0);
    assert_int_equal(vhost_dead_letter_round(vhost), 0);
    free_vhost(vhost);
}

/* ---- cycles with a client in them go on --------------------------------------------------- */

static void test_rejected_self_cycle_goes_on(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "dlx");
    struct queue *q = declare(vhost, "q", "dlx", -1, -1, "dlx");
    publish(vhost, "q");
    for (int64_t round = 0; round < 5; round++) {
        assert_int_equal(queue_ready_count(q), 1);
        assert_int_equal(get_and_reject(q, "q"), round);
    }
    assert_int_equal(queue_ready_count(q), 1);
    free_vhost(vhost);
}

/* The retry pattern: rejected into a TTL queue that dead-letters back. Each way round the
 * path holds a rejection, so the message keeps coming back. */
static void test_retry_through_ttl_queue_goes_on(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "to-work");
    fanout(vhost, "to-wait");
    struct queue *work = declare(vhost, "work", "to-wait", -1, -1, "to-work");
    struct queue *wait = declare(vhost, "wait", "to-work", -1, 10, "to-wait");
    publish(vhost, "work");
    for (int64_t round = 0; round < 4; round++) {
        assert_int_equal(get_and_reject(work, "work"), round);
        assert_int_equal(queue_ready_count(wait), 1);
        clock_ms += 10;
        vhost_tick(vhost, clock_ms);
        assert_int_equal(queue_ready_count(wait), 0);
        assert_int_equal(queue_ready_count(work), 1);
    }
    free_vhost(vhost);
}

/* ---- the budget ----------------------------------------------------------------------------- */

/* Twelve x-max-length 0 queues dead-lettering to a fanout bound to all of them: the cycle rule
 * stops each path, but the simple paths number in the hundreds of millions. The round's
 * bounds stop it; the next round starts afresh. */
static void test_mesh_is_bounded_per_round(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "mesh");
    struct queue *queues[12];
    char name[16];
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "q%d", i);
        queues[i] = declare(vhost, name, "mesh", 0, -1, "mesh");
    }
    publish(vhost, "q0");
    for (int i = 0; i < 12; i++)
        assert_int_equal(queue_ready_count(queues[i]), 0);
    assert_true(vhost_dead_letter_round(vhost) > 0);
    assert_int_equal(vhost_dead_letter_round(vhost), 0);
    free_vhost(vhost);
}

/* A chain of distinct queues longer than the nesting bound: the dead letter stops at the bound
 * (and is counted), and the stack does not grow with the chain. */
static void test_long_chain_is_cut_at_the_depth_bound(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    enum { CHAIN = VHOST_DEAD_LETTER_DEPTH + 4 };
    struct queue *queues[CHAIN];
    char name[16], next[16], to_me[16];
    for (int i = 1; i < CHAIN; i++) {
        snprintf(to_me, sizeof(to_me), "to-c%d", i);
        fanout(vhost, to_me);
    }
    for (int i = 0; i < CHAIN; i++) {
        bool last = i + 1 == CHAIN;
        snprintf(name, sizeof(name), "c%d", i);
        snprintf(next, sizeof(next), "to-c%d", i + 1);
        snprintf(to_me, sizeof(to_me), "to-c%d", i);
        queues[i] = declare(vhost, name, last ? NULL : next, last ? -1 : 0, -1, i > 0 ? to_me : NULL);
    }
    publish(vhost, "c0");
    assert_int_equal(queue_ready_count(queues[CHAIN - 1]), 0); /* never got there */
    assert_int_equal(vhost_dead_letter_round(vhost), 1);
    free_vhost(vhost);
}

/* ---- x-death ------------------------------------------------------------------------------- */

/* x-death's time is a wall-clock timestamp (seconds since the epoch, as RabbitMQ writes it),
 * not the loop's monotonic clock that TTLs use. */
static void test_x_death_time_is_wall_clock(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    fanout(vhost, "dlx");
    struct queue *q = declare(vhost, "q", "dlx", -1, -1, NULL);
    struct queue *dead = declare(vhost, "dead", NULL, -1, -1, "dlx");
    publish(vhost, "q");
    /* The clock the broker reads: time() is the coarse clock, which can still show the last
     * second for a few milliseconds after CLOCK_REALTIME has moved on. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t before = (uint64_t)ts.tv_sec;
    get_and_reject(q, "q");
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t after = (uint64_t)ts.tv_sec;
    struct queue_entry entry;
    assert_true(queue_get(dead, clock_ms, false, &entry));
    struct table_value deaths, death, stamp;
    assert_int_equal(table_find(message_headers(entry.msg), "x-death", &deaths), 1);
    struct table_iter it;
    table_iter_init(&it, deaths.v.bytes);
    assert_int_equal(array_next(&it, &death), 1);
    assert_int_equal(table_find(death.v.bytes, "time", &stamp), 1);
    assert_int_equal(stamp.type, TABLE_TIMESTAMP);
    assert_in_range(stamp.v.u64, before, after);
    queue_settle(dead, &entry, QUEUE_DISCARD);
    free_vhost(vhost);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_length_zero_self_cycle_drops),
        cmocka_unit_test(test_x_death_time_is_wall_clock),
        cmocka_unit_test(test_two_queue_max_length_cycle_drops),
        cmocka_unit_test(test_expired_self_cycle_drops_after_one_round),
        cmocka_unit_test(test_ttl_zero_self_cycle_drops),
        cmocka_unit_test(test_rejection_behind_the_cycle_does_not_count),
        cmocka_unit_test(test_rejected_self_cycle_goes_on),
        cmocka_unit_test(test_retry_through_ttl_queue_goes_on),
        cmocka_unit_test(test_mesh_is_bounded_per_round),
        cmocka_unit_test(test_long_chain_is_cut_at_the_depth_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
