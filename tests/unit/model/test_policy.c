/* tests/unit/model/test_policy.c: policies, operator policies and vhost limits (policy.c,
 * policy_merge.c, vhost_policy.c): RabbitMQ's validation texts, which policy applies (pattern,
 * apply-to, priority, ties), how policy, operator policy and declare arguments combine, the
 * settings a live queue runs with when a policy comes and goes, max-queues, and the durable
 * round trip of policies and limits, including blobs a stranger could leave. Every test frees
 * all it made (run under -DWARREN_SANITIZE=ON). */
#include "helpers.h"

#include "message.h"
#include "policy.h"
#include "queue.h"
#include "spec.h"
#include "vhost.h"

static uint64_t clock_ms = 1000;

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

static int changes;

static void definitions_changed(void *ctx)
{
    (void)ctx;
    changes++;
}

static struct vhost *new_vhost(void)
{
    struct vhost_hooks hooks = {.now_ms = now_ms, .definitions_changed = definitions_changed};
    struct vhost *vhost = vhost_create("/", &hooks);
    assert_non_null(vhost);
    return vhost;
}

static struct table_value long_value(int64_t n)
{
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = n;
    return v;
}

/* Sets a policy whose definition holds one integer key, or one string key when text != NULL. */
static int set_policy(struct vhost *vhost, enum policy_kind kind, const char *name, const char *pattern,
                      const char *apply_to, int64_t priority, const char *key, int64_t n, const char *text)
{
    struct table_buf def = {0};
    if (text)
        put_longstr(&def, key, text);
    else
        put_value(&def, key, long_value(n));
    struct policy_spec spec = {name, pattern, apply_to, priority, table_of(&def)};
    char error[POLICY_ERROR_MAX];
    int rc = vhost_policy_set(vhost, kind, &spec, error, sizeof error);
    table_buf_free(&def);
    return rc;
}

static struct queue *declare(struct vhost *vhost, const char *name, struct proto_bytes args)
{
    struct queue_declare d = {.name = bytes_of(name), .arguments = args, .durable = true};
    struct queue *q = NULL;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), 0);
    return q;
}

static void publish(struct queue *q)
{
    struct spec_content_header h = {.class_id = 60, .body_size = 4};
    uint8_t header[64];
    long n = spec_content_header_encode(&h, header, sizeof(header));
    assert_true(n > 0);
    struct message *msg = message_create(bytes_of(""), queue_name(q), (struct proto_bytes){header, (uint32_t)n}, 4);
    assert_non_null(msg);
    memcpy(msg->body, "body", 4);
    assert_int_equal(queue_publish(q, msg, clock_ms), 0);
    queue_dispatch(q, clock_ms);
    message_release(msg);
}

/* ---- validation ---- */

static void validate(enum policy_kind kind, struct table_buf *def, int expected, const char *text)
{
    char error[POLICY_ERROR_MAX] = "";
    assert_int_equal(policy_validate_definition(kind, table_of(def), error, sizeof error), expected);
    if (text)
        assert_string_equal(error, text);
    table_buf_free(def);
}

static void test_validation_texts(void **state)
{
    (void)state;
    struct table_buf def = {0};
    put_longstr(&def, "foo", "bar");
    validate(POLICY_USER, &def, -1, "Validation failed\n\n[{<<\"foo\">>,<<\"bar\">>}] are not recognised policy settings\n");

    put_value(&def, "message-ttl", long_value(-1));
    validate(POLICY_USER, &def, -1, "Validation failed\n\n-1 is not a valid message TTL\n");

    put_value(&def, "expires", long_value(0));
    validate(POLICY_USER, &def, -1, "Validation failed\n\n0 is not a valid queue expiry\n");

    put_longstr(&def, "max-length", "10");
    validate(POLICY_USER, &def, -1, "Validation failed\n\n<<\"10\">> is not a valid maximum length\n");

    put_longstr(&def, "overflow", "drop-tail");
    validate(POLICY_USER, &def, -1, "Validation failed\n\n<<\"drop-tail\">> is not a valid overflow value\n");

    validate(POLICY_USER, &def, -1, "Validation failed\n\nno policy provided\n");

    /* A bad known key is reported before the unknown ones. */
    put_longstr(&def, "foo", "bar");
    put_value(&def, "max-length", long_value(-5));
    validate(POLICY_USER, &def, -1, "Validation failed\n\n-5 is not a valid maximum length\n");

    put_longstr(&def, "dead-letter-exchange", "dlx");
    put_value(&def, "max-length", long_value(5));
    put_longstr(&def, "alternate-exchange", "ae");
    put_longstr(&def, "queue-mode", "lazy");
    validate(POLICY_USER, &def, 0, NULL);

    /* Operator policies take limits only. */
    put_value(&def, "max-length", long_value(5));
    put_longstr(&def, "dead-letter-exchange", "dlx");
    validate(POLICY_OPERATOR, &def, -1,
             "Validation failed\n\n[{<<\"dead-letter-exchange\">>,<<\"dlx\">>}] are not recognised policy settings\n");
    put_value(&def, "max-length", long_value(5));
    put_value(&def, "delivery-limit", long_value(3));
    put_value(&def, "max-in-memory-length", long_value(3));
    validate(POLICY_OPERATOR, &def, 0, NULL);

    put_value(&def, "max-length", long_value(5));
    put_value(&def, "max-length", long_value(6));
    validate(POLICY_USER, &def, -1, "Validation failed\n\n[<<\"max-length\">>] duplicate keys not allowed\n");
}

static void test_bad_pattern_and_apply_to(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    assert_int_equal(set_policy(vhost, POLICY_USER, "p", "(", NULL, 0, "max-length", 1, NULL), -1);
    assert_int_equal(set_policy(vhost, POLICY_USER, "p", ".*", "connections", 0, "max-length", 1, NULL), -1);
    assert_int_equal(set_policy(vhost, POLICY_USER, "", ".*", NULL, 0, "max-length", 1, NULL), -1);
    assert_int_equal(set_policy(vhost, POLICY_USER, "p", ".*", "classic_queues", 0, "max-length", 1, NULL), 0);
    assert_int_equal(vhost_policy_clear(vhost, POLICY_USER, "p"), 0);
    assert_int_equal(vhost_policy_clear(vhost, POLICY_USER, "p"), -ENOENT);
    vhost_destroy(vhost);
}

/* policy_spec_check judges a spec as vhost_policy_set does and stores nothing (a cluster node
 * checks a management change with it before it proposes it). */
static void test_check_stores_nothing(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct table_buf def = {0};
    put_value(&def, "max-length", long_value(-1));
    char error[POLICY_ERROR_MAX];
    struct policy_spec spec = {"p", ".*", NULL, 0, table_of(&def)};
    assert_int_equal(policy_spec_check(POLICY_USER, &spec, error, sizeof error), -1);
    assert_non_null(strstr(error, "Validation failed"));
    table_buf_free(&def);
    put_value(&def, "max-length", long_value(5));
    spec.definition = table_of(&def);
    spec.pattern = "(";
    assert_int_equal(policy_spec_check(POLICY_USER, &spec, error, sizeof error), -1);
    spec.pattern = "^q";
    assert_int_equal(policy_spec_check(POLICY_USER, &spec, error, sizeof error), 0);
    assert_false(vhost_policy_exists(vhost, POLICY_USER, "p"));
    struct queue *q = declare(vhost, "q1", no_bytes());
    assert_int_equal(queue_settings(q)->max_length, -1);
    assert_int_equal(vhost_policy_set(vhost, POLICY_USER, &spec, error, sizeof error), 0);
    assert_true(vhost_policy_exists(vhost, POLICY_USER, "p"));
    assert_false(vhost_policy_exists(vhost, POLICY_OPERATOR, "p"));
    assert_int_equal(queue_settings(q)->max_length, 5);
    table_buf_free(&def);
    vhost_destroy(vhost);
}

/* ---- matching ---- */

static void test_priority_apply_to_and_ties(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct queue *q = declare(vhost, "orders.eu", no_bytes());
    const struct policy *p, *op;
    assert_int_equal(set_policy(vhost, POLICY_USER, "low", "^orders", "queues", 1, "max-length", 50, NULL), 0);
    assert_int_equal(set_policy(vhost, POLICY_USER, "high", "eu$", "all", 5, "max-length", 40, NULL), 0);
    assert_int_equal(set_policy(vhost, POLICY_USER, "xch", ".*", "exchanges", 9, "alternate-exchange", 0, "ae"), 0);
    vhost_queue_policies(vhost, q, &p, &op);
    assert_string_equal(policy_name(p), "high");
    assert_null(op);
    assert_int_equal(queue_settings(q)->max_length, 40);

    /* A tie goes to the smallest name. */
    assert_int_equal(set_policy(vhost, POLICY_USER, "aaa", "orders", "queues", 5, "max-length", 30, NULL), 0);
    vhost_queue_policies(vhost, q, &p, &op);
    assert_string_equal(policy_name(p), "aaa");
    assert_int_equal(queue_settings(q)->max_length, 30);

    /* Unanchored search, like re:run. */
    assert_int_equal(set_policy(vhost, POLICY_USER, "mid", "ders\\.e", "queues", 7, "max-length", 20, NULL), 0);
    vhost_queue_policies(vhost, q, &p, &op);
    assert_string_equal(policy_name(p), "mid");
    vhost_destroy(vhost);
}

/* ---- precedence ---- */

static void test_arguments_and_min_rules(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct table_buf args = {0};
    put_value(&args, "x-max-length", (struct table_value){.type = TABLE_INT32, .v.i32 = 10});
    put_value(&args, "x-message-ttl", (struct table_value){.type = TABLE_INT32, .v.i32 = 1000});
    put_longstr(&args, "x-dead-letter-exchange", "from-args");
    struct queue *q = declare(vhost, "q", table_of(&args));

    struct table_buf def = {0};
    put_value(&def, "max-length", long_value(5));      /* lower than the argument: wins */
    put_value(&def, "message-ttl", long_value(5000));  /* higher: the argument stays */
    put_value(&def, "expires", long_value(60000));     /* no argument: the policy's */
    put_longstr(&def, "dead-letter-exchange", "from-policy"); /* the argument wins */
    put_longstr(&def, "overflow", "reject-publish");
    struct policy_spec spec = {"p", "^q$", "queues", 0, table_of(&def)};
    char error[POLICY_ERROR_MAX];
    assert_int_equal(vhost_policy_set(vhost, POLICY_USER, &spec, error, sizeof error), 0);
    const struct queue_settings *s = queue_settings(q);
    assert_int_equal(s->max_length, 5);
    assert_int_equal(s->message_ttl_ms, 1000);
    assert_int_equal(s->expires_ms, 60000);
    assert_true(s->overflow_reject);
    struct proto_bytes dlx;
    assert_true(queue_dead_letter_exchange(q, &dlx));
    assert_true(proto_bytes_equal(dlx, bytes_of("from-args")));

    /* The operator policy can only lower: max-length 3 < 5, message-ttl 2000 > 1000. */
    assert_int_equal(set_policy(vhost, POLICY_OPERATOR, "cap", ".*", "queues", 0, "max-length", 3, NULL), 0);
    assert_int_equal(s->max_length, 3);
    struct table_buf op_def = {0};
    put_value(&op_def, "max-length", long_value(8));
    put_value(&op_def, "expires", long_value(1000));
    struct policy_spec op_spec = {"cap", ".*", "queues", 0, table_of(&op_def)};
    assert_int_equal(vhost_policy_set(vhost, POLICY_OPERATOR, &op_spec, error, sizeof error), 0);
    assert_int_equal(s->max_length, 5);
    assert_int_equal(s->expires_ms, 1000);

    /* The effective definition RabbitMQ shows: both keys sets, min for limits. */
    const struct policy *p, *op;
    vhost_queue_policies(vhost, q, &p, &op);
    struct table_buf eff = {0};
    assert_int_equal(policy_effective_definition(p, op, &eff), 0);
    struct table_value v;
    int64_t n;
    assert_int_equal(table_find(table_of(&eff), "max-length", &v), 1);
    assert_true(table_value_to_int(&v, &n));
    assert_int_equal(n, 5);
    assert_int_equal(table_find(table_of(&eff), "expires", &v), 1);
    assert_true(table_value_to_int(&v, &n));
    assert_int_equal(n, 1000);
    assert_int_equal(table_find(table_of(&eff), "dead-letter-exchange", &v), 1);
    table_buf_free(&eff);

    /* Redeclaring with the declare arguments is still equivalent. */
    struct queue_declare d = {.name = bytes_of("q"), .arguments = table_of(&args), .durable = true};
    struct queue *again;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &again, &err), 0);

    /* Cleared: back to the arguments alone. */
    assert_int_equal(vhost_policy_clear(vhost, POLICY_USER, "p"), 0);
    assert_int_equal(vhost_policy_clear(vhost, POLICY_OPERATOR, "cap"), 0);
    assert_int_equal(s->max_length, 10);
    assert_int_equal(s->expires_ms, -1);
    assert_false(s->overflow_reject);
    table_buf_free(&args);
    table_buf_free(&def);
    table_buf_free(&op_def);
    vhost_destroy(vhost);
}

/* apply-to quorum_queues and classic_queues pick a queue by its type ("queues" both); a quorum
 * queue resolves overflow policy first and delivery-limit to the smaller, and ignores the
 * classic-only queue-mode (RabbitMQ 3.10's rabbit_quorum_queue). */
static void test_quorum_queues(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct table_buf args = {0};
    put_longstr(&args, "x-queue-type", "quorum");
    put_longstr(&args, "x-overflow", "drop-head");
    put_value(&args, "x-delivery-limit", (struct table_value){.type = TABLE_INT32, .v.i32 = 5});
    struct queue *quorum = declare(vhost, "jobs.q", table_of(&args));
    struct queue *classic = declare(vhost, "jobs.c", no_bytes());
    const struct policy *p, *op;
    assert_int_equal(set_policy(vhost, POLICY_USER, "for-classic", "^jobs", "classic_queues", 9, "max-length", 7,
                                NULL), 0);
    vhost_queue_policies(vhost, quorum, &p, &op);
    assert_null(p);
    vhost_queue_policies(vhost, classic, &p, &op);
    assert_string_equal(policy_name(p), "for-classic");

    struct table_buf def = {0};
    put_longstr(&def, "overflow", "reject-publish");
    put_value(&def, "delivery-limit", long_value(2));
    put_longstr(&def, "queue-mode", "lazy");
    struct policy_spec spec = {"for-quorum", "^jobs", "quorum_queues", 1, table_of(&def)};
    char error[POLICY_ERROR_MAX];
    assert_int_equal(vhost_policy_set(vhost, POLICY_USER, &spec, error, sizeof error), 0);
    vhost_queue_policies(vhost, quorum, &p, &op);
    assert_string_equal(policy_name(p), "for-quorum");
    vhost_queue_policies(vhost, classic, &p, &op);
    assert_string_equal(policy_name(p), "for-classic");
    const struct queue_settings *s = queue_settings(quorum);
    assert_true(s->overflow_reject); /* the policy's, over the argument */
    assert_true(s->has_delivery_limit);
    assert_int_equal(s->delivery_limit, 2);
    struct table_value v;
    assert_int_equal(table_find(queue_effective_arguments(quorum), "x-queue-mode", &v), 0);

    /* "queues" covers both types. */
    assert_int_equal(set_policy(vhost, POLICY_USER, "all-queues", "^jobs", "queues", 20, "max-length", 4, NULL), 0);
    assert_int_equal(queue_settings(quorum)->max_length, 4);
    assert_int_equal(queue_settings(classic)->max_length, 4);
    assert_false(queue_settings(quorum)->overflow_reject); /* back to the argument: drop-head */
    assert_int_equal(queue_settings(quorum)->delivery_limit, 5);
    table_buf_free(&args);
    table_buf_free(&def);
    vhost_destroy(vhost);
}

/* ---- applied live ---- */

static void test_lower_max_length_drops_and_dead_letters(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct exchange_declare x = {.name = bytes_of("dlx"), .type = bytes_of("fanout")};
    struct reply_error err;
    assert_int_equal(vhost_exchange_declare(vhost, &x, &err), 0);
    struct queue *dead = declare(vhost, "dead", no_bytes());
    assert_int_equal(vhost_queue_bind(vhost, bytes_of("dead"), bytes_of("dlx"), bytes_of(""), no_bytes(), NULL, false,
                                      &err),
                     0);
    struct queue *q = declare(vhost, "work", no_bytes());
    for (int i = 0; i < 5; i++)
        publish(q);
    assert_int_equal(queue_ready_count(q), 5);
    /* The dead-letter exchange comes from a policy too. */
    struct table_buf def = {0};
    put_value(&def, "max-length", long_value(2));
    put_longstr(&def, "dead-letter-exchange", "dlx");
    struct policy_spec spec = {"limit", "^work$", NULL, 0, table_of(&def)};
    char error[POLICY_ERROR_MAX];
    int before = changes;
    assert_int_equal(vhost_policy_set(vhost, POLICY_USER, &spec, error, sizeof error), 0);
    assert_true(changes > before); /* saved */
    assert_int_equal(queue_ready_count(q), 2);
    assert_int_equal(queue_ready_count(dead), 3);
    /* A new queue matching gets the policy at declare. */
    struct queue *later = declare(vhost, "work", no_bytes());
    assert_ptr_equal(later, q);
    struct queue *other = declare(vhost, "work2", no_bytes());
    assert_int_equal(queue_settings(other)->max_length, -1);
    assert_int_equal(set_policy(vhost, POLICY_USER, "limit", "^work", NULL, 0, "max-length", 1, NULL), 0);
    assert_int_equal(queue_settings(other)->max_length, 1);
    assert_int_equal(queue_ready_count(q), 1);
    table_buf_free(&def);
    vhost_destroy(vhost);
}

static void test_alternate_exchange_from_policy(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    struct reply_error err;
    struct exchange_declare ae = {.name = bytes_of("ae"), .type = bytes_of("fanout")};
    struct exchange_declare main = {.name = bytes_of("main"), .type = bytes_of("direct")};
    assert_int_equal(vhost_exchange_declare(vhost, &ae, &err), 0);
    assert_int_equal(vhost_exchange_declare(vhost, &main, &err), 0);
    struct queue *unrouted = declare(vhost, "unrouted", no_bytes());
    assert_int_equal(vhost_queue_bind(vhost, bytes_of("unrouted"), bytes_of("ae"), bytes_of(""), no_bytes(), NULL,
                                      false, &err),
                     0);
    assert_int_equal(set_policy(vhost, POLICY_USER, "ae", "^main$", "exchanges", 0, "alternate-exchange", 0, "ae"), 0);
    struct spec_content_header h = {.class_id = 60, .body_size = 0};
    uint8_t header[64];
    long n = spec_content_header_encode(&h, header, sizeof(header));
    struct message *msg = message_create(bytes_of("main"), bytes_of("nowhere"), (struct proto_bytes){header, (uint32_t)n}, 0);
    assert_non_null(msg);
    struct route_set targets = {0};
    assert_int_equal(vhost_route(vhost, bytes_of("main"), msg, &targets, &err), 0);
    assert_int_equal(targets.count, 1);
    assert_ptr_equal(targets.items[0], unrouted);
    assert_int_equal(vhost_policy_clear(vhost, POLICY_USER, "ae"), 0);
    assert_int_equal(vhost_route(vhost, bytes_of("main"), msg, &targets, &err), 0);
    assert_int_equal(targets.count, 0);
    route_set_free(&targets);
    message_release(msg);
    vhost_destroy(vhost);
}

/* ---- limits ---- */

static void test_max_queues(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    declare(vhost, "a", no_bytes());
    vhost_limit_set(vhost, VHOST_LIMIT_MAX_QUEUES, 1);
    struct queue_declare d = {.name = bytes_of("b"), .durable = true};
    struct queue *q;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), -1);
    assert_int_equal(err.code, SPEC_PRECONDITION_FAILED);
    assert_string_equal(err.text, "PRECONDITION_FAILED - cannot declare queue 'b': queue limit in vhost '/' (1) is reached");
    /* Redeclaring an existing queue is not a new one. */
    d.name = bytes_of("a");
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), 0);
    vhost_limit_set(vhost, VHOST_LIMIT_MAX_QUEUES, 0);
    assert_int_equal(vhost_queue_declare(vhost, &(struct queue_declare){.name = bytes_of("c")}, &q, &err), -1);
    assert_string_equal(err.text, "PRECONDITION_FAILED - cannot declare queue 'c': queue limit in vhost '/' (0) is reached");
    vhost_limit_set(vhost, VHOST_LIMIT_MAX_QUEUES, -1);
    assert_int_equal(vhost_queue_declare(vhost, &(struct queue_declare){.name = bytes_of("c")}, &q, &err), 0);
    enum vhost_limit which;
    assert_int_equal(vhost_limit_parse("max-connections", &which), 0);
    assert_int_equal(which, VHOST_LIMIT_MAX_CONNECTIONS);
    assert_int_equal(vhost_limit_parse("max-channels", &which), -1);
    vhost_destroy(vhost);
}

/* ---- persistence ---- */

struct collected {
    char names[8][64];
    int64_t priorities[8];
    int count;
};

static void collect(const struct policy_spec *spec, void *arg)
{
    struct collected *c = arg;
    snprintf(c->names[c->count], sizeof c->names[0], "%s/%s/%s", spec->name, spec->pattern, spec->apply_to);
    c->priorities[c->count++] = spec->priority;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct vhost *vhost = new_vhost();
    assert_int_equal(set_policy(vhost, POLICY_USER, "p1", "^q", "queues", -3, "max-length", 1, NULL), 0);
    assert_int_equal(set_policy(vhost, POLICY_USER, "p2", "x", NULL, 7, "alternate-exchange", 0, "ae"), 0);
    assert_int_equal(set_policy(vhost, POLICY_OPERATOR, "o1", ".*", "all", 0, "message-ttl", 100, NULL), 0);
    vhost_limit_set(vhost, VHOST_LIMIT_MAX_CONNECTIONS, 0);
    vhost_limit_set(vhost, VHOST_LIMIT_MAX_QUEUES, 1);
    declare(vhost, "q1", no_bytes());
    struct table_buf blob = {0};
    assert_int_equal(vhost_export_definitions(vhost, &blob), 0);
    vhost_destroy(vhost);

    vhost = new_vhost();
    size_t skipped = 99;
    assert_int_equal(vhost_import_definitions(vhost, table_of(&blob), &skipped), 0);
    assert_int_equal(skipped, 0);
    struct collected c = {0};
    vhost_for_each_policy(vhost, POLICY_USER, collect, &c);
    assert_int_equal(c.count, 2);
    assert_string_equal(c.names[0], "p1/^q/queues");
    assert_int_equal(c.priorities[0], -3);
    assert_string_equal(c.names[1], "p2/x/all");
    memset(&c, 0, sizeof c);
    vhost_for_each_policy(vhost, POLICY_OPERATOR, collect, &c);
    assert_int_equal(c.count, 1);
    assert_int_equal(vhost_limit_get(vhost, VHOST_LIMIT_MAX_CONNECTIONS), 0);
    assert_int_equal(vhost_limit_get(vhost, VHOST_LIMIT_MAX_QUEUES), 1);
    struct queue *q = vhost_queue_find(vhost, bytes_of("q1"));
    assert_non_null(q); /* imported before the limit */
    assert_int_equal(queue_settings(q)->max_length, 1);
    assert_int_equal(queue_settings(q)->message_ttl_ms, 100);
    table_buf_free(&blob);
    vhost_destroy(vhost);
}

static void put_typed(struct table_buf *t, const char *key, uint8_t type, struct proto_bytes value)
{
    struct table_value v = {.type = type};
    v.v.bytes = value;
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
}

static void append_entry(struct table_buf *list, struct table_buf *entry)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = table_of(entry);
    assert_int_equal(table_buf_put_value(list, &v), 0);
    table_buf_free(entry);
}

static void test_hostile_blobs(void **state)
{
    (void)state;
    struct table_buf list = {0}, entry = {0}, def = {0}, blob = {0}, limits = {0};
    /* 1: good */
    put_value(&def, "max-length", long_value(4));
    put_longstr(&entry, "name", "good");
    put_longstr(&entry, "pattern", ".*");
    put_typed(&entry, "definition", TABLE_TABLE, table_of(&def));
    append_entry(&list, &entry);
    /* 2: an unknown key in the definition */
    struct table_buf good_def = def;
    def = (struct table_buf){0};
    put_longstr(&def, "foo", "bar");
    put_longstr(&entry, "name", "unknown-key");
    put_longstr(&entry, "pattern", ".*");
    put_typed(&entry, "definition", TABLE_TABLE, table_of(&def));
    append_entry(&list, &entry);
    /* 3: priority a string, 4: name with a zero byte, 5: broken regex, 6: not a table */
    put_longstr(&entry, "name", "prio");
    put_longstr(&entry, "pattern", ".*");
    put_longstr(&entry, "priority", "high");
    append_entry(&list, &entry);
    put_typed(&entry, "name", TABLE_LONGSTR, (struct proto_bytes){(const uint8_t *)"a\0b", 3});
    put_longstr(&entry, "pattern", ".*");
    append_entry(&list, &entry);
    put_longstr(&entry, "name", "regex");
    put_longstr(&entry, "pattern", "([");
    put_typed(&entry, "definition", TABLE_TABLE, table_of(&good_def));
    append_entry(&list, &entry);
    struct table_value number = long_value(5);
    assert_int_equal(table_buf_put_value(&list, &number), 0);
    put_typed(&blob, "policies", TABLE_ARRAY, table_of(&list));
    put_longstr(&blob, "operator_policies", "not a list");
    put_value(&limits, "max-queues", long_value(3));
    put_longstr(&limits, "max-connections", "ten");
    put_value(&limits, "max-channels", long_value(3));
    put_typed(&blob, "limits", TABLE_TABLE, table_of(&limits));

    struct vhost *vhost = new_vhost();
    size_t skipped = 0;
    assert_int_equal(vhost_import_definitions(vhost, table_of(&blob), &skipped), 0);
    assert_int_equal(skipped, 5 + 1 + 2);
    struct collected c = {0};
    vhost_for_each_policy(vhost, POLICY_USER, collect, &c);
    assert_int_equal(c.count, 1);
    assert_string_equal(c.names[0], "good/.*/all");
    assert_int_equal(vhost_limit_get(vhost, VHOST_LIMIT_MAX_QUEUES), 3);
    assert_int_equal(vhost_limit_get(vhost, VHOST_LIMIT_MAX_CONNECTIONS), -1);
    vhost_destroy(vhost);

    /* An old blob, from before policies: loads with none. */
    struct table_buf old = {0};
    put_typed(&old, "exchanges", TABLE_ARRAY, no_bytes());
    put_typed(&old, "queues", TABLE_ARRAY, no_bytes());
    put_typed(&old, "bindings", TABLE_ARRAY, no_bytes());
    vhost = new_vhost();
    assert_int_equal(vhost_import_definitions(vhost, table_of(&old), &skipped), 0);
    assert_int_equal(skipped, 0);
    assert_int_equal(vhost_limit_get(vhost, VHOST_LIMIT_MAX_QUEUES), -1);
    vhost_destroy(vhost);
    table_buf_free(&old);
    table_buf_free(&good_def);
    table_buf_free(&list);
    table_buf_free(&def);
    table_buf_free(&blob);
    table_buf_free(&limits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_texts),
        cmocka_unit_test(test_bad_pattern_and_apply_to),
        cmocka_unit_test(test_check_stores_nothing),
        cmocka_unit_test(test_priority_apply_to_and_ties),
        cmocka_unit_test(test_quorum_queues),
        cmocka_unit_test(test_arguments_and_min_rules),
        cmocka_unit_test(test_lower_max_length_drops_and_dead_letters),
        cmocka_unit_test(test_alternate_exchange_from_policy),
        cmocka_unit_test(test_max_queues),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hostile_blobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
