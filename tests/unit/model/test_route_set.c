/* tests/unit/model/test_route_set.c: the destination set: order kept, duplicates refused on
 * both sides of the linear/hash threshold, memory reused across clears. */
#include "helpers.h"

#define MANY 10000

static char destinations[MANY];

static void test_zero_initialised_is_empty(void **state)
{
    (void)state;
    struct route_set set = {0};
    assert_int_equal(set.count, 0);
    assert_false(route_set_contains(&set, &destinations[0]));
    route_set_clear(&set);
    route_set_free(&set);
}

static void test_add_refuses_duplicates_and_null(void **state)
{
    (void)state;
    struct route_set set = {0};
    assert_int_equal(route_set_add(&set, &destinations[1]), 1);
    assert_int_equal(route_set_add(&set, &destinations[2]), 1);
    assert_int_equal(route_set_add(&set, &destinations[1]), 0);
    assert_int_equal(route_set_add(&set, NULL), -EINVAL);
    assert_int_equal(set.count, 2);
    assert_ptr_equal(set.items[0], &destinations[1]);
    assert_ptr_equal(set.items[1], &destinations[2]);
    assert_false(route_set_contains(&set, NULL));
    route_set_free(&set);
    assert_null(set.items);
    assert_int_equal(set.count, 0);
}

/* Fills past the linear threshold with duplicates interleaved; order is first insertion. */
static void fill_and_check(struct route_set *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(route_set_add(set, &destinations[i]), 1);
        assert_int_equal(route_set_add(set, &destinations[i / 2]), 0);
    }
    assert_int_equal(set->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(set->items[i], &destinations[i]);
        assert_true(route_set_contains(set, &destinations[i]));
    }
    if (n < MANY)
        assert_false(route_set_contains(set, &destinations[n]));
}

static void test_threshold_and_growth(void **state)
{
    (void)state;
    struct route_set set = {0};
    for (size_t n = 1; n <= 3 * ROUTE_SET_LINEAR_MAX; n++) {
        fill_and_check(&set, n);
        route_set_clear(&set);
    }
    fill_and_check(&set, MANY);
    route_set_free(&set);
}

static void test_clear_keeps_memory_and_forgets_items(void **state)
{
    (void)state;
    struct route_set set = {0};
    fill_and_check(&set, MANY);
    void **items = set.items;
    void **slots = set.slots;
    route_set_clear(&set);
    assert_int_equal(set.count, 0);
    for (size_t i = 0; i < MANY; i++)
        assert_false(route_set_contains(&set, &destinations[i]));
    /* A small use after a large one stays linear, then re-indexes into the kept table. */
    fill_and_check(&set, 3);
    route_set_clear(&set);
    fill_and_check(&set, 100);
    route_set_clear(&set);
    fill_and_check(&set, MANY);
    assert_ptr_equal(set.items, items);
    assert_ptr_equal(set.slots, slots);
    route_set_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_initialised_is_empty),
        cmocka_unit_test(test_add_refuses_duplicates_and_null),
        cmocka_unit_test(test_threshold_and_growth),
        cmocka_unit_test(test_clear_keeps_memory_and_forgets_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
