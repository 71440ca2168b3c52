/* tests/unit/amqp/test_cluster_nodes.c: the other members' descriptions of themselves
 * (cluster_nodes.h), as /api/nodes shows them: a description is taken whole or not at all (a
 * missing field, a field of the wrong type, a name too long or a number out of range drops it),
 * a member is running while its last word is fresh and its link unbroken, and its uptime is
 * counted on from that word. No node: nothing is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cluster_nodes.h"
#include "introspect.h"
#include "table.h"

#define A "10.0.0.1:25672"

static int put_u64(struct table_buf *t, const char *key, uint64_t n)
{
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = n;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* A description with every field, one of them replaced (skip: left out; NULL: none). */
static struct table_buf description(const char *name, const char *skip, const char *bad)
{
    static const char *const numbers[] = {"os_pid", "uptime_ms", "processors", "mem_used", "mem_limit",
                                          "message_memory_bytes", "disk_free", "disk_free_limit", "fd_used",
                                          "fd_total", "sockets_used", "store_segments", "store_bytes",
                                          "amqp_port", "management_port", "prometheus_port"};
    struct table_buf t = {0};
    int rc = table_buf_put_string(&t, "name", proto_bytes_of(name)) |
             table_buf_put_string(&t, "bind_address", proto_bytes_of("::")) |
             table_buf_put_bool(&t, "mem_alarm", true) | table_buf_put_bool(&t, "disk_alarm", false);
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (skip && strcmp(skip, numbers[i]) == 0)
            continue;
        if (bad && strcmp(bad, numbers[i]) == 0)
            rc |= table_buf_put_string(&t, numbers[i], proto_bytes_of("lots"));
        else
            rc |= put_u64(&t, numbers[i], strcmp(numbers[i], "amqp_port") == 0 ? 5672 : 1000 + i);
    }
    assert_int_equal(rc, 0);
    return t;
}

static bool hear(struct cluster_nodes *cn, struct table_buf t, uint64_t now)
{
    bool answered = cluster_nodes_heard(cn, NULL, A, (struct proto_bytes){t.data, (uint32_t)t.len}, now);
    table_buf_free(&t);
    return answered;
}

static void test_a_description_is_taken_whole_and_ages(void **state)
{
    (void)state;
    struct cluster_nodes *cn = cluster_nodes_create(NULL);
    assert_non_null(cn);
    struct introspect_node n;
    assert_false(cluster_nodes_get(cn, A, 0, &n)); /* never heard */
    assert_false(hear(cn, description("n1", NULL, NULL), 1000)); /* no node: no answer */
    assert_true(cluster_nodes_get(cn, A, 1500, &n));
    assert_string_equal(n.name, "n1");
    assert_true(n.running);
    assert_false(n.self);
    assert_true(n.mem_alarm);
    assert_int_equal(n.amqp_port, 5672);
    assert_int_equal(n.os_pid, 1000);
    assert_int_equal(n.uptime_ms, 1001 + 500); /* counted on from its word */
    /* Silent past STALE_MS (7 s): stopped; heard again: running. */
    assert_false(cluster_nodes_get(cn, A, 1000 + 7001, &n));
    hear(cn, description("n1", NULL, NULL), 9000);
    assert_true(cluster_nodes_get(cn, A, 9000, &n));
    /* Its link broke: stopped at once, until it speaks again. */
    cluster_nodes_lost(cn, A);
    assert_false(cluster_nodes_get(cn, A, 9001, &n));
    hear(cn, description("n1", NULL, NULL), 9100);
    assert_true(cluster_nodes_get(cn, A, 9100, &n));
    cluster_nodes_free(cn);
}

static void test_a_malformed_description_is_dropped(void **state)
{
    (void)state;
    struct cluster_nodes *cn = cluster_nodes_create(NULL);
    struct introspect_node n;
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    hear(cn, description("n1", "mem_used", NULL), 10);
    assert_false(cluster_nodes_get(cn, A, 10, &n));
    hear(cn, description("n1", NULL, "fd_used"), 10);
    assert_false(cluster_nodes_get(cn, A, 10, &n));
    hear(cn, description(long_name, NULL, NULL), 10);
    assert_false(cluster_nodes_get(cn, A, 10, &n));
    hear(cn, description("", NULL, NULL), 10);
    assert_false(cluster_nodes_get(cn, A, 10, &n));
    /* A port out of range. */
    struct table_buf t = description("n1", "amqp_port", NULL);
    assert_int_equal(put_u64(&t, "amqp_port", 70000), 0);
    hear(cn, t, 10);
    assert_false(cluster_nodes_get(cn, A, 10, &n));
    /* A good one after them is taken; a bad one after it leaves it as it was. */
    hear(cn, description("n1", NULL, NULL), 20);
    hear(cn, description("n1", "os_pid", NULL), 30);
    assert_true(cluster_nodes_get(cn, A, 30, &n));
    assert_int_equal(n.os_pid, 1000);
    cluster_nodes_free(cn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_description_is_taken_whole_and_ages),
        cmocka_unit_test(test_a_malformed_description_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
