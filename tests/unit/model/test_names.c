/* tests/unit/model/test_names.c: names a client must not be able to guess: the random tokens of
 * broker/core/random.c (128 bits, URL-safe base64) and the server-named queues of a vhost
 * (amq.gen-<token>), which follow neither a counter nor an address. */
#include "helpers.h"

#include "queue.h"
#include "random.h"
#include "spec.h"
#include "vhost.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The token's 132 bits (its last character holds 2 bits and 4 zero bits) as sextets. */
static void sextets(const char *token, uint8_t out[RANDOM_TOKEN_LEN])
{
    for (size_t i = 0; i < RANDOM_TOKEN_LEN; i++) {
        const char *at = token[i] ? strchr(alphabet, token[i]) : NULL;
        if (!at)
            fail_msg("'%s' is not a URL-safe base64 token", token);
        out[i] = (uint8_t)(at - alphabet);
    }
    assert_int_equal(token[RANDOM_TOKEN_LEN], '\0');
    assert_int_equal(out[RANDOM_TOKEN_LEN - 1] & 15, 0);
}

static int differing_bits(const char *a, const char *b)
{
    uint8_t x[RANDOM_TOKEN_LEN], y[RANDOM_TOKEN_LEN];
    sextets(a, x);
    sextets(b, y);
    int n = 0;
    for (size_t i = 0; i < RANDOM_TOKEN_LEN; i++)
        n += __builtin_popcount((unsigned)(x[i] ^ y[i]));
    return n;
}

/* Two draws of 128 random bits differ in 64 +- 5.7 bits; fewer than 30 is a 6-sigma event. */
static void assert_unrelated(const char *a, const char *b)
{
    int n = differing_bits(a, b);
    if (n < 30)
        fail_msg("'%s' and '%s' differ in %d bits only", a, b, n);
}

static void test_tokens_are_128_random_bits_in_url_safe_base64(void **state)
{
    (void)state;
    char tokens[8][RANDOM_TOKEN_LEN + 1];
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(random_token(tokens[i]), 0);
        assert_int_equal(strlen(tokens[i]), RANDOM_TOKEN_LEN);
        for (size_t j = 0; j < i; j++)
            assert_unrelated(tokens[i], tokens[j]);
    }
    uint8_t a[32] = {0}, b[32] = {0};
    assert_int_equal(random_bytes(a, sizeof a), 0);
    assert_int_equal(random_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

static uint64_t zero_clock(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct vhost_hooks hooks = {.now_ms = zero_clock};

/* Declares a server-named queue in vhost and copies its name to out. */
static void declare_server_named(struct vhost *vhost, char out[64])
{
    struct queue_declare d = {.exclusive = false};
    struct queue *q;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), 0);
    struct proto_bytes name = queue_name(q);
    assert_true(name.len < 64);
    memcpy(out, name.ptr, name.len);
    out[name.len] = '\0';
}

static void test_server_named_queues_are_amq_gen_and_random(void **state)
{
    (void)state;
    struct vhost *vhost = vhost_create("/", &hooks);
    assert_non_null(vhost);
    char first[64], second[64];
    declare_server_named(vhost, first);
    declare_server_named(vhost, second);
    assert_int_equal(strncmp(first, "amq.gen-", 8), 0);
    assert_int_equal(strncmp(second, "amq.gen-", 8), 0);
    assert_int_equal(strlen(first), VHOST_GENERATED_NAME_LEN);
    assert_unrelated(first + 8, second + 8);
    vhost_destroy(vhost);
}

static void test_a_recreated_vhost_does_not_repeat_its_predecessors_names(void **state)
{
    /* Nothing of the vhost (its address, a count of names it gave) decides the name. */
    (void)state;
    char before[64], after[64];
    struct vhost *vhost = vhost_create("v", &hooks);
    assert_non_null(vhost);
    declare_server_named(vhost, before);
    vhost_destroy(vhost);
    vhost = vhost_create("v", &hooks);
    assert_non_null(vhost);
    declare_server_named(vhost, after);
    vhost_destroy(vhost);
    assert_string_not_equal(before, after);
}

static void test_only_a_generated_name_may_carry_the_reserved_prefix(void **state)
{
    (void)state;
    struct vhost *vhost = vhost_create("/", &hooks);
    assert_non_null(vhost);
    char name[VHOST_GENERATED_NAME_LEN + 1];
    assert_int_equal(vhost_queue_generate_name(vhost, name), 0);
    struct proto_bytes bytes = {(const uint8_t *)name, VHOST_GENERATED_NAME_LEN};
    struct queue_declare d = {.name = bytes};
    struct queue *q;
    struct reply_error err;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), -1);
    assert_int_equal(err.code, SPEC_ACCESS_REFUSED);
    d.server_named = true;
    assert_int_equal(vhost_queue_declare(vhost, &d, &q, &err), 0);
    assert_ptr_equal(vhost_queue_find(vhost, bytes), q);
    /* The next generated name is another one. */
    char next[VHOST_GENERATED_NAME_LEN + 1];
    assert_int_equal(vhost_queue_generate_name(vhost, next), 0);
    assert_string_not_equal(name, next);
    vhost_destroy(vhost);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_are_128_random_bits_in_url_safe_base64),
        cmocka_unit_test(test_server_named_queues_are_amq_gen_and_random),
        cmocka_unit_test(test_a_recreated_vhost_does_not_repeat_its_predecessors_names),
        cmocka_unit_test(test_only_a_generated_name_may_carry_the_reserved_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
