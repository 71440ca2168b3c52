/* tests/unit/model/test_router_bindings.c: what every exchange type shares (type names,
 * idempotent bind, exact unbind, per-destination removal, listing, dedup), plus the direct
 * and fanout types, which have nothing else to test. */
#include "helpers.h"

static char q1, q2, q3, q4;

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"direct", "fanout", "topic", "headers"};
    for (int kind = ROUTER_DIRECT; kind <= ROUTER_HEADERS; kind++) {
        enum router_kind parsed;
        assert_string_equal(router_kind_name(kind), names[kind]);
        assert_int_equal(router_kind_parse(names[kind], strlen(names[kind]), &parsed), 0);
        assert_int_equal(parsed, kind);
        struct router *router = router_create(kind);
        assert_non_null(router);
        assert_int_equal(router_kind(router), kind);
        router_destroy(router);
    }
    enum router_kind parsed;
    assert_int_equal(router_kind_parse("Direct", 6, &parsed), -1);
    assert_int_equal(router_kind_parse("x-consistent-hash", 17, &parsed), -1);
    assert_int_equal(router_kind_parse("topicx", 5, &parsed), 0); /* only len bytes count */
    assert_int_equal(router_kind_parse("topic", 4, &parsed), -1);
    assert_int_equal(router_kind_parse("", 0, &parsed), -1);
    router_destroy(NULL);
}

static void test_direct_routes_by_exact_key(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_DIRECT);
    struct route_set set = {0};
    assert_int_equal(bind_key(router, &q1, "k"), 0);
    assert_int_equal(bind_key(router, &q2, "k"), 0);
    assert_int_equal(bind_key(router, &q3, "other"), 0);
    assert_int_equal(bind_key(router, &q4, ""), 0);

    route_into(router, "k", no_bytes(), &set);
    assert_routes(&set, 2, &q1, &q2);
    route_into(router, "other", no_bytes(), &set);
    assert_routes(&set, 1, &q3);
    route_into(router, "", no_bytes(), &set);
    assert_routes(&set, 1, &q4);
    route_into(router, "K", no_bytes(), &set);
    assert_routes(&set, 0);
    route_into(router, "k.", no_bytes(), &set);
    assert_routes(&set, 0);
    route_into(router, "#", no_bytes(), &set);
    assert_routes(&set, 0);

    /* A NULL routing key is the empty key. */
    route_set_clear(&set);
    assert_int_equal(router_route(router, no_bytes(), no_bytes(), &set), 0);
    assert_routes(&set, 1, &q4);

    route_set_free(&set);
    router_destroy(router);
}

static void test_bind_is_idempotent_on_identical_bindings(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_DIRECT);
    const uint8_t args_a[] = {1, 'a', 't', 1};
    const uint8_t args_b[] = {1, 'a', 't', 0};
    struct proto_bytes a = {args_a, sizeof(args_a)};
    struct proto_bytes b = {args_b, sizeof(args_b)};

    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1, a), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1, a), 1);
    assert_int_equal(router_binding_count(router), 1);
    /* Different arguments, key or destination: a new binding. */
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1, b), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1, no_bytes()), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"kk", 2, a), 0);
    assert_int_equal(router_bind(router, &q2, (const uint8_t *)"k", 1, a), 0);
    assert_int_equal(router_binding_count(router), 5);
    /* The key length is part of the identity: ("k", "k"+args) is not ("kk", args). */
    const uint8_t kargs[] = {'k', 1, 'a', 't', 1};
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1,
                                 (struct proto_bytes){kargs, sizeof(kargs)}), 0);
    assert_int_equal(router_binding_count(router), 6);
    router_destroy(router);
}

static void test_destination_bound_twice_is_routed_once(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_DIRECT);
    struct route_set set = {0};
    const uint8_t args[] = {1, 'a', 't', 1};
    assert_int_equal(bind_key(router, &q1, "k"), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"k", 1,
                                 (struct proto_bytes){args, sizeof(args)}), 0);
    assert_int_equal(bind_key(router, &q2, "k"), 0);
    route_into(router, "k", no_bytes(), &set);
    assert_routes(&set, 2, &q1, &q2);

    /* Destinations already in the set (routed by another exchange) are not repeated. */
    route_set_clear(&set);
    assert_int_equal(route_set_add(&set, &q2), 1);
    assert_int_equal(router_route(router, bytes_of("k"), no_bytes(), &set), 0);
    assert_routes(&set, 2, &q2, &q1);
    route_set_free(&set);
    router_destroy(router);
}

static void test_unbind_removes_exactly_that_binding(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_DIRECT);
    struct route_set set = {0};
    const uint8_t args[] = {1, 'a', 't', 1};
    struct proto_bytes a = {args, sizeof(args)};
    assert_int_equal(bind_key(router, &q1, "k"), 0);
    assert_int_equal(router_bind(router, &q2, (const uint8_t *)"k", 1, a), 0);

    assert_int_equal(unbind_key(router, &q2, "k"), -ENOENT);   /* arguments differ */
    assert_int_equal(unbind_key(router, &q1, "x"), -ENOENT);
    assert_int_equal(unbind_key(router, &q3, "k"), -ENOENT);
    assert_int_equal(unbind_key(router, &q1, "k"), 0);
    assert_int_equal(unbind_key(router, &q1, "k"), -ENOENT);
    assert_false(router_has_destination(router, &q1));
    route_into(router, "k", no_bytes(), &set);
    assert_routes(&set, 1, &q2);
    assert_int_equal(router_unbind(router, &q2, (const uint8_t *)"k", 1, a), 0);
    route_into(router, "k", no_bytes(), &set);
    assert_routes(&set, 0);
    assert_int_equal(router_binding_count(router), 0);

    /* The bucket is gone and comes back. */
    assert_int_equal(bind_key(router, &q3, "k"), 0);
    route_into(router, "k", no_bytes(), &set);
    assert_routes(&set, 1, &q3);
    route_set_free(&set);
    router_destroy(router);
}

static void test_large_arguments_unbind(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_FANOUT);
    struct table_buf buf = {0};
    char name[16];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "field%d", i);
        put_longstr(&buf, name, "some value");
    }
    assert_true(buf.len > 1024);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"", 0, table_of(&buf)), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"", 0, table_of(&buf)), 1);
    assert_int_equal(unbind_key(router, &q1, ""), -ENOENT);
    assert_int_equal(router_unbind(router, &q1, (const uint8_t *)"", 0, table_of(&buf)), 0);
    assert_int_equal(router_binding_count(router), 0);
    table_buf_free(&buf);
    router_destroy(router);
}

static void test_invalid_bindings_are_refused(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_TOPIC);
    char key[ROUTER_MAX_KEY + 2];
    memset(key, 'a', sizeof(key));
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)key, ROUTER_MAX_KEY, no_bytes()), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)key, ROUTER_MAX_KEY + 1, no_bytes()),
                     -EINVAL);
    assert_int_equal(router_unbind(router, &q1, (const uint8_t *)key, ROUTER_MAX_KEY + 1,
                                   no_bytes()), -ENOENT);
    assert_int_equal(bind_key(router, NULL, "k"), -EINVAL);
    assert_int_equal(router_binding_count(router), 1);
    router_destroy(router);
}

static void test_unbind_destination_removes_all_its_bindings(void **state)
{
    (void)state;
    for (int kind = ROUTER_DIRECT; kind <= ROUTER_HEADERS; kind++) {
        struct router *router = router_create(kind);
        struct route_set set = {0};
        assert_int_equal(bind_key(router, &q1, "a"), 0);
        assert_int_equal(bind_key(router, &q2, "a"), 0);
        assert_int_equal(bind_key(router, &q1, "b"), 0);
        assert_int_equal(bind_key(router, &q1, "#"), 0);
        assert_true(router_has_destination(router, &q1));

        assert_int_equal(router_unbind_destination(router, &q1), 3);
        assert_int_equal(router_unbind_destination(router, &q1), 0);
        assert_int_equal(router_unbind_destination(router, &q3), 0);
        assert_false(router_has_destination(router, &q1));
        assert_true(router_has_destination(router, &q2));
        assert_int_equal(router_binding_count(router), 1);
        route_into(router, "a", no_bytes(), &set);
        assert_routes(&set, 1, &q2);
        route_into(router, "b", no_bytes(), &set);
        assert_int_equal(set.count, kind == ROUTER_DIRECT || kind == ROUTER_TOPIC ? 0 : 1);

        assert_int_equal(router_unbind_destination(router, &q2), 1);
        assert_int_equal(router_binding_count(router), 0);
        route_into(router, "a", no_bytes(), &set);
        assert_routes(&set, 0);
        route_set_free(&set);
        router_destroy(router);
    }
}

static void test_fanout_routes_every_destination_once(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_FANOUT);
    struct route_set set = {0};
    route_into(router, "any", no_bytes(), &set);
    assert_routes(&set, 0);
    assert_int_equal(bind_key(router, &q1, ""), 0);
    assert_int_equal(bind_key(router, &q2, "x"), 0);
    assert_int_equal(bind_key(router, &q1, "y"), 0);
    route_into(router, "any", no_bytes(), &set);
    assert_routes(&set, 2, &q1, &q2);
    route_into(router, "", no_bytes(), &set);
    assert_routes(&set, 2, &q1, &q2);
    assert_int_equal(unbind_key(router, &q1, ""), 0);
    route_into(router, "z", no_bytes(), &set);
    assert_routes(&set, 2, &q1, &q2);
    assert_int_equal(unbind_key(router, &q1, "y"), 0);
    route_into(router, "z", no_bytes(), &set);
    assert_routes(&set, 1, &q2);
    route_set_free(&set);
    router_destroy(router);
}

struct visit_log {
    size_t count;
    void *destinations[8];
    char keys[8][8];
    uint32_t argument_lengths[8];
};

static void record(void *destination, struct proto_bytes key, struct proto_bytes arguments,
                   void *arg)
{
    struct visit_log *log = arg;
    assert_true(log->count < 8);
    log->destinations[log->count] = destination;
    assert_true(key.len < 8);
    memcpy(log->keys[log->count], key.ptr, key.len);
    log->keys[log->count][key.len] = '\0';
    log->argument_lengths[log->count] = arguments.len;
    log->count++;
}

static void test_for_each_lists_bindings_oldest_first(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_TOPIC);
    const uint8_t args[] = {1, 'a', 't', 1};
    assert_int_equal(bind_key(router, &q2, "b.*"), 0);
    assert_int_equal(router_bind(router, &q1, (const uint8_t *)"a", 1,
                                 (struct proto_bytes){args, sizeof(args)}), 0);
    assert_int_equal(bind_key(router, &q3, ""), 0);
    assert_int_equal(bind_key(router, &q4, "gone"), 0);
    assert_int_equal(unbind_key(router, &q4, "gone"), 0);

    struct visit_log log = {0};
    router_for_each(router, record, &log);
    assert_int_equal(log.count, 3);
    assert_ptr_equal(log.destinations[0], &q2);
    assert_string_equal(log.keys[0], "b.*");
    assert_int_equal(log.argument_lengths[0], 0);
    assert_ptr_equal(log.destinations[1], &q1);
    assert_string_equal(log.keys[1], "a");
    assert_int_equal(log.argument_lengths[1], sizeof(args));
    assert_ptr_equal(log.destinations[2], &q3);
    assert_string_equal(log.keys[2], "");
    router_destroy(router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_direct_routes_by_exact_key),
        cmocka_unit_test(test_bind_is_idempotent_on_identical_bindings),
        cmocka_unit_test(test_destination_bound_twice_is_routed_once),
        cmocka_unit_test(test_unbind_removes_exactly_that_binding),
        cmocka_unit_test(test_large_arguments_unbind),
        cmocka_unit_test(test_invalid_bindings_are_refused),
        cmocka_unit_test(test_unbind_destination_removes_all_its_bindings),
        cmocka_unit_test(test_fanout_routes_every_destination_once),
        cmocka_unit_test(test_for_each_lists_bindings_oldest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
