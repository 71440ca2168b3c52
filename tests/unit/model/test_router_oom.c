/* tests/unit/model/test_router_oom.c: every allocation made while binding, for each exchange
 * type, is failed in turn. A failed bind must return -ENOMEM and leave the router exactly as
 * before (same bindings, same routes, nothing leaked); routing into a set that cannot grow
 * returns -ENOMEM. Allocation is intercepted with the linker's --wrap. */
#include "helpers.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *pointer, size_t size);

/* Allocations left before the one that fails; negative: never fail. */
static long countdown = -1;

static bool should_fail(void)
{
    if (countdown < 0)
        return false;
    return countdown-- == 0;
}

void *__wrap_malloc(size_t size)
{
    return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : __real_calloc(count, size);
}

void *__wrap_realloc(void *pointer, size_t size)
{
    return should_fail() ? NULL : __real_realloc(pointer, size);
}

static char destinations[3];

static const char *const keys[] = {"a.b", "a.*", "#", "a.#.c", "", "x", "a.b", "*.*", "a.b.c"};
#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))
#define SCRIPT (KEY_COUNT * 3)

/* Binding i of the script: key i % KEY_COUNT to destination i / KEY_COUNT, headers args. */
static int script_bind(struct router *router, size_t i, struct proto_bytes arguments)
{
    const char *key = keys[i % KEY_COUNT];
    return router_bind(router, &destinations[i / KEY_COUNT], (const uint8_t *)key, strlen(key),
                       i % 2 ? arguments : no_bytes());
}

static bool same_binding(size_t i, size_t j)
{
    return i / KEY_COUNT == j / KEY_COUNT && i % 2 == j % 2 &&
           strcmp(keys[i % KEY_COUNT], keys[j % KEY_COUNT]) == 0;
}

/* Routes every key in both routers and checks the sets are equal. */
static void assert_same_routes(struct router *a, struct router *b, struct proto_bytes headers)
{
    struct route_set sa = {0}, sb = {0};
    for (size_t k = 0; k < KEY_COUNT; k++) {
        route_set_clear(&sa);
        route_set_clear(&sb);
        assert_int_equal(router_route(a, bytes_of(keys[k]), headers, &sa), 0);
        assert_int_equal(router_route(b, bytes_of(keys[k]), headers, &sb), 0);
        assert_int_equal(sa.count, sb.count);
        for (size_t i = 0; i < sa.count; i++)
            assert_true(route_set_contains(&sb, sa.items[i]));
    }
    route_set_free(&sa);
    route_set_free(&sb);
}

static void test_failed_binds_leave_no_trace(void **state)
{
    (void)state;
    struct table_buf args = {0};
    put_longstr(&args, "x-match", "any");
    put_longstr(&args, "a", "1");
    struct table_buf headers = {0};
    put_longstr(&headers, "a", "1");

    for (int kind = ROUTER_DIRECT; kind <= ROUTER_HEADERS; kind++) {
        bool injected = true;
        long failures = 0;
        for (long n = 0; injected; n++) {
            struct router *router = router_create(kind);
            struct router *reference = router_create(kind);
            bool bound[SCRIPT];
            size_t count = 0;

            countdown = n;
            for (size_t i = 0; i < SCRIPT; i++) {
                int rc = script_bind(router, i, table_of(&args));
                assert_true(rc == 0 || rc == 1 || rc == -ENOMEM);
                bound[i] = rc == 0;
                count += bound[i];
            }
            injected = countdown < 0;
            countdown = -1;

            assert_int_equal(router_binding_count(router), count);
            for (size_t i = 0; i < SCRIPT; i++) {
                if (bound[i])
                    assert_int_equal(script_bind(reference, i, table_of(&args)), 0);
            }
            assert_same_routes(router, reference, table_of(&headers));
            /* The identity index agrees: a binding exists again exactly when it (or an
             * identical one earlier in the script) was bound. */
            for (size_t i = 0; i < SCRIPT; i++) {
                bool exists = false;
                for (size_t j = 0; j < SCRIPT; j++)
                    exists |= bound[j] && same_binding(i, j);
                assert_int_equal(script_bind(router, i, table_of(&args)), exists ? 1 : 0);
                bound[i] = true;
            }
            for (size_t d = 0; d < 3; d++)
                router_unbind_destination(router, &destinations[d]);
            assert_int_equal(router_binding_count(router), 0);
            router_destroy(router);
            router_destroy(reference);
            failures = n;
        }
        assert_true(failures > (long)SCRIPT); /* at least one allocation per binding was failed */
    }
    table_buf_free(&args);
    table_buf_free(&headers);
}

static void test_route_into_a_set_that_cannot_grow(void **state)
{
    (void)state;
    static char many[40];
    struct router *router = router_create(ROUTER_FANOUT);
    for (size_t i = 0; i < sizeof(many); i++)
        assert_int_equal(bind_key(router, &many[i], ""), 0);
    struct route_set set = {0};
    countdown = 0;
    assert_int_equal(router_route(router, bytes_of(""), no_bytes(), &set), -ENOMEM);
    countdown = 2;
    assert_int_equal(router_route(router, bytes_of(""), no_bytes(), &set), -ENOMEM);
    countdown = -1;
    route_set_clear(&set);
    assert_int_equal(router_route(router, bytes_of(""), no_bytes(), &set), 0);
    assert_int_equal(set.count, sizeof(many));
    route_set_free(&set);
    router_destroy(router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_binds_leave_no_trace),
        cmocka_unit_test(test_route_into_a_set_that_cannot_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
