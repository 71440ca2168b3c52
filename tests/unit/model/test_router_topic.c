/* tests/unit/model/test_router_topic.c: the topic exchange against RabbitMQ's rules (the
 * empty key has no words; "*" is one word, "#" zero or more; empty words are words), a naive
 * reference matcher checked against the same table, random bindings compared with that
 * reference, many "#" without blow-up, and 100,000 bindings. */
#include "helpers.h"

#include <stdbool.h>

/* ---- The reference: split, then match word lists recursively (exponential, small inputs). */

#define MAX_WORDS 300

struct words {
    size_t count;
    const char *word[MAX_WORDS];
    size_t len[MAX_WORDS];
};

static void split(const char *key, struct words *out)
{
    out->count = 0;
    if (*key == '\0')
        return; /* RabbitMQ: the empty key is no words at all */
    for (const char *start = key;;) {
        const char *dot = strchr(start, '.');
        size_t len = dot != NULL ? (size_t)(dot - start) : strlen(start);
        assert_true(out->count < MAX_WORDS);
        out->word[out->count] = start;
        out->len[out->count] = len;
        out->count++;
        if (dot == NULL)
            return;
        start = dot + 1;
    }
}

static bool is_word(const struct words *w, size_t i, const char *text)
{
    return w->len[i] == strlen(text) && memcmp(w->word[i], text, w->len[i]) == 0;
}

static bool reference_words(const struct words *p, size_t pi, const struct words *k, size_t ki)
{
    if (pi == p->count)
        return ki == k->count;
    if (is_word(p, pi, "#"))
        return reference_words(p, pi + 1, k, ki) ||
               (ki < k->count && reference_words(p, pi, k, ki + 1));
    if (ki == k->count)
        return false;
    if (is_word(p, pi, "*") ||
        (p->len[pi] == k->len[ki] && memcmp(p->word[pi], k->word[ki], p->len[pi]) == 0))
        return reference_words(p, pi + 1, k, ki + 1);
    return false;
}

static bool reference(const char *pattern, const char *key)
{
    struct words p, k;
    split(pattern, &p);
    split(key, &k);
    return reference_words(&p, 0, &k, 0);
}

/* ---- The table: RabbitMQ's documented and observed semantics. */

struct topic_case {
    const char *pattern;
    const char *key;
    bool match;
};

static const struct topic_case cases[] = {
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b.c", "a.b.c.d", false},
    {"a.b.c", "a.B.c", false},          /* case-sensitive */
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},             /* "*" is exactly one word */
    {"a.*.c", "a.b.b.c", false},
    {"a.#.c", "a.c", true},              /* "#" may be zero words */
    {"a.#.c", "a.b.c", true},
    {"a.#.c", "a.x.y.c", true},
    {"a.#.c", "a.x.y.d", false},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"#", "", true},                     /* "#" matches everything, the empty key too */
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"#", "a..", true},
    {"*", "", false},                    /* the empty key has no word for "*" */
    {"*", "a", true},
    {"*", "a.b", false},
    {"*", ".", false},                   /* "." is two empty words */
    {"", "", true},
    {"", "a", false},
    {"", ".", false},
    {"a", "", false},
    {".", ".", true},
    {".", "", false},
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b.a", false},
    {"a.#", "ab", false},
    {"#.a", "a", true},
    {"#.a", "x.y.a", true},
    {"#.a", "a.x", false},
    {"*.a", "a", false},
    {"#.#", "", true},
    {"#.#", "a.b", true},
    {"#.*", "", false},
    {"#.*", "a", true},
    {"#.*", "a.b.c", true},
    {"*.#", "a.b.c", true},
    {"*.#", "", false},
    {"*.#.*", "a", false},
    {"*.#.*", "a.b", true},
    {"*.#.*", "a.b.c.d", true},
    {"*.*", "a.", true},                 /* empty words are words */
    {"*.*", ".", true},
    {"a..b", "a..b", true},
    {"a.*.b", "a..b", true},
    {"a..b", "a.b", false},
    {"a.b", "a..b", false},
    {".a", ".a", true},
    {"*.a", ".a", true},
    {".a", "a", false},
    {"a.", "a.", true},
    {"a.*", "a.", true},
    {"a.*", "a", false},
    {"a.#", "a.", true},
    {"a.", "a", false},
    {"#.b.#", "a.b.c", true},
    {"#.b.#", "b", true},
    {"#.b.#", "a.c", false},
    {"a.#.#.b", "a.b", true},
    {"a.#.b.#.c", "a.x.b.y.c", true},
    {"a.#.b.#.c", "a.c.b", false},
    {"a*.b", "ab.b", false},             /* wildcards only as whole words */
    {"a*.b", "a*.b", true},
    {"a.#b", "a.x.b", false},
    {"a.#b", "a.#b", true},
    {"a.*", "a.*", true},                /* in a routing key, "*" and "#" are plain words */
    {"a.b", "a.*", false},
    {"a.#", "a.#", true},
    {"a.b", "a.#", false},
    {"#.#.#.#.#.x", "a.b.c.d.e.f.g.h.i.j", false},
    {"#.#.#.#.#.x", "a.b.c.d.e.f.g.h.i.x", true},
};

#define CASE_COUNT (sizeof(cases) / sizeof(cases[0]))

static char destinations[100000];

static void test_reference_agrees_with_table(void **state)
{
    (void)state;
    assert_true(CASE_COUNT >= 40);
    for (size_t i = 0; i < CASE_COUNT; i++) {
        if (reference(cases[i].pattern, cases[i].key) != cases[i].match)
            fail_msg("reference: pattern \"%s\" key \"%s\" should %smatch", cases[i].pattern,
                     cases[i].key, cases[i].match ? "" : "not ");
    }
}

static void test_each_case_alone(void **state)
{
    (void)state;
    struct route_set set = {0};
    for (size_t i = 0; i < CASE_COUNT; i++) {
        struct router *router = router_create(ROUTER_TOPIC);
        assert_int_equal(bind_key(router, &destinations[0], cases[i].pattern), 0);
        route_into(router, cases[i].key, no_bytes(), &set);
        if ((set.count == 1) != cases[i].match)
            fail_msg("router: pattern \"%s\" key \"%s\" should %smatch", cases[i].pattern,
                     cases[i].key, cases[i].match ? "" : "not ");
        router_destroy(router);
    }
    route_set_free(&set);
}

/* Routes key and checks the set is exactly {i : expected[i]}, each once. */
static void assert_route_matches(const struct router *router, const char *key,
                                 const bool *expected, size_t n, struct route_set *set)
{
    route_into(router, key, no_bytes(), set);
    size_t wanted = 0;
    for (size_t i = 0; i < n; i++)
        wanted += expected[i];
    for (size_t i = 0; i < set->count; i++) {
        size_t index = (size_t)((char *)set->items[i] - destinations);
        assert_true(index < n);
        if (!expected[index])
            fail_msg("key \"%s\": destination %zu routed but not expected", key, index);
    }
    if (set->count != wanted)
        fail_msg("key \"%s\": %zu routed, %zu expected", key, set->count, wanted);
}

static void test_all_cases_in_one_router(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_TOPIC);
    struct route_set set = {0};
    bool expected[CASE_COUNT];
    for (size_t i = 0; i < CASE_COUNT; i++)
        assert_int_equal(bind_key(router, &destinations[i], cases[i].pattern), 0);
    for (size_t k = 0; k < CASE_COUNT; k++) {
        for (size_t i = 0; i < CASE_COUNT; i++)
            expected[i] = reference(cases[i].pattern, cases[k].key);
        assert_route_matches(router, cases[k].key, expected, CASE_COUNT, &set);
    }
    route_set_free(&set);
    router_destroy(router);
}

/* ---- Random bindings against the reference. */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void random_key(char *out, bool wildcards)
{
    static const char *const pattern_words[] = {"a", "b", "", "*", "#", "#"};
    static const char *const key_words[] = {"a", "b", "", "c", "*", "#"};
    size_t words = rng() % 6;
    out[0] = '\0';
    for (size_t i = 0; i < words; i++) {
        if (i > 0)
            strcat(out, ".");
        strcat(out, wildcards ? pattern_words[rng() % 6] : key_words[rng() % 6]);
    }
}

#define RANDOM_BINDINGS 400
#define RANDOM_KEYS 3000

static void test_random_bindings_match_reference(void **state)
{
    (void)state;
    static char patterns[RANDOM_BINDINGS][32];
    static char keys[RANDOM_KEYS][32];
    bool expected[RANDOM_BINDINGS];
    struct router *router = router_create(ROUTER_TOPIC);
    struct route_set set = {0};
    for (size_t i = 0; i < RANDOM_BINDINGS; i++) {
        random_key(patterns[i], true);
        assert_int_equal(bind_key(router, &destinations[i], patterns[i]), 0);
    }
    for (size_t k = 0; k < RANDOM_KEYS; k++)
        random_key(keys[k], false);

    for (int round = 0; round < 2; round++) {
        for (size_t k = 0; k < RANDOM_KEYS; k++) {
            for (size_t i = 0; i < RANDOM_BINDINGS; i++)
                expected[i] = (round == 0 || i % 2 == 1) && reference(patterns[i], keys[k]);
            assert_route_matches(router, keys[k], expected, RANDOM_BINDINGS, &set);
        }
        /* Second round: half unbound, so pruning must leave the rest of the trie intact. */
        for (size_t i = 0; round == 0 && i < RANDOM_BINDINGS; i += 2)
            assert_int_equal(unbind_key(router, &destinations[i], patterns[i]), 0);
    }
    for (size_t i = 1; i < RANDOM_BINDINGS; i += 2)
        assert_int_equal(unbind_key(router, &destinations[i], patterns[i]), 0);
    assert_int_equal(router_binding_count(router), 0);
    route_set_free(&set);
    router_destroy(router);
}

/* ---- Many "#": a naive backtracking walk would take C(136, 16) steps here. */

static void test_many_hashes_do_not_blow_up(void **state)
{
    (void)state;
    struct router *router = router_create(ROUTER_TOPIC);
    struct route_set set = {0};
    char pattern[128] = "";
    for (int i = 0; i < 16; i++)
        strcat(pattern, "#.");
    strcat(pattern, "z");
    assert_int_equal(bind_key(router, &destinations[0], pattern), 0);
    pattern[strlen(pattern) - 1] = '#';                     /* "#.#...#.#" */
    assert_int_equal(bind_key(router, &destinations[1], pattern), 0);
    assert_int_equal(bind_key(router, &destinations[2], "#.a.#.a.#.a.#.a.#.b"), 0);

    char key[256] = "a";
    while (strlen(key) < 240)
        strcat(key, ".a");
    route_into(router, key, no_bytes(), &set);
    assert_routes(&set, 1, &destinations[1]);
    strcat(key, ".z");
    route_into(router, key, no_bytes(), &set);
    assert_int_equal(set.count, 2);
    assert_true(route_set_contains(&set, &destinations[0]));
    assert_true(route_set_contains(&set, &destinations[1]));
    route_into(router, "", no_bytes(), &set);
    assert_routes(&set, 1, &destinations[1]);
    route_set_free(&set);
    router_destroy(router);
}

/* ---- 100,000 bindings. */

#define LARGE 100000

static void large_pattern(size_t i, char *out, size_t size)
{
    switch (i % 5) {
    case 0: snprintf(out, size, "stock.s%zu.nyse", i); break;
    case 1: snprintf(out, size, "stock.*.s%zu", i); break;
    case 2: snprintf(out, size, "s%zu.#", i % 1000); break;
    case 3: snprintf(out, size, "#.s%zu", i); break;
    default: snprintf(out, size, "s%zu.*.#.x%zu", i % 100, i % 7); break;
    }
}

static void test_hundred_thousand_bindings(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "stock.s5.nyse", "stock.s10.nyse", "stock.s11.nyse", "stock.x.s6", "stock.s6.s6",
        "stock.s6", "s17.a.b", "s17", "s999.q", "s1000.q", "x.y.s3", "s3", "s8", "a.b.c.s99998",
        "s42.q.r.x0", "s42.q.x0", "s42.x0", "s4.a.b.c.d.x4", "s2.#", "stock.#.s1", "", ".",
        "nothing", "stock", "stock.s0.nyse.s3", "s3.s3.s3", "s1.s1.x1", "s0.s3",
    };
    struct router *router = router_create(ROUTER_TOPIC);
    struct route_set set = {0};
    static bool expected[LARGE];
    static char patterns[LARGE][32];
    for (size_t i = 0; i < LARGE; i++) {
        large_pattern(i, patterns[i], sizeof(patterns[i]));
        assert_int_equal(bind_key(router, &destinations[i], patterns[i]), 0);
    }
    assert_int_equal(router_binding_count(router), LARGE);

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        size_t wanted = 0;
        for (size_t i = 0; i < LARGE; i++)
            wanted += expected[i] = reference(patterns[i], keys[k]);
        assert_route_matches(router, keys[k], expected, LARGE, &set);
        if (k == 0)
            assert_true(wanted >= 1); /* the sample is not all misses */
    }

    for (size_t i = 0; i < LARGE; i += 2)
        assert_int_equal(router_unbind_destination(router, &destinations[i]), 1);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (size_t i = 0; i < LARGE; i++)
            expected[i] = i % 2 == 1 && reference(patterns[i], keys[k]);
        assert_route_matches(router, keys[k], expected, LARGE, &set);
    }
    route_set_free(&set);
    router_destroy(router); /* with 50,000 bindings left: the sanitizer build checks leaks */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_agrees_with_table),
        cmocka_unit_test(test_each_case_alone),
        cmocka_unit_test(test_all_cases_in_one_router),
        cmocka_unit_test(test_random_bindings_match_reference),
        cmocka_unit_test(test_many_hashes_do_not_blow_up),
        cmocka_unit_test(test_hundred_thousand_bindings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
