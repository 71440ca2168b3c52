/* tests/unit/cluster/test_cluster_members.c: broker/cluster/cluster_members.h without sockets:
 * ids derived from addresses alone (stable, nonzero, positive as a signed 64-bit integer, the
 * same whatever the other members), the peers list read and checked, and the step a leader takes
 * next towards an asked-for membership change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster_members.h"

static void ids_depend_on_the_address_alone(void **state)
{
    (void)state;
    /* A change of the function would make every existing cluster's ids wrong: pinned below by
     * FNV-1a's published vectors. */
    uint64_t id = cluster_member_id("127.0.0.1:25672");
    assert_int_equal(id, cluster_member_id("127.0.0.1:25672"));
    assert_true(id != 0);
    assert_true(id < (1ull << 63));
    assert_true(cluster_member_id("127.0.0.1:25673") != id);
    assert_true(cluster_member_id("[::1]:25672") != id);
    assert_true(cluster_member_id("") != 0); /* the offset basis, top bit cleared: nonzero */
    /* The empty string hashes to the FNV offset basis; with the top bit cleared: */
    assert_int_equal(cluster_member_id(""), 0xcbf29ce484222325ull & 0x7fffffffffffffffull);
    /* "a": (basis ^ 0x61) * prime, the published FNV-1a 64 test vector af63dc4c8601ec8c. */
    assert_int_equal(cluster_member_id("a"), 0xaf63dc4c8601ec8cull & 0x7fffffffffffffffull);
}

static void the_peers_list_is_read_and_checked(void **state)
{
    (void)state;
    char out[CLUSTER_MEMBERS_MAX][CLUSTER_ADDRESS_MAX];
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(cluster_members_parse(" 127.0.0.1:3 ,127.0.0.1:1,, 127.0.0.1:3,[::1]:2 ", out, &n, err,
                                           sizeof(err)), 0);
    assert_int_equal(n, 3); /* blanks trimmed, empty entries skipped, repeats counted once, order kept */
    assert_string_equal(out[0], "127.0.0.1:3");
    assert_string_equal(out[1], "127.0.0.1:1");
    assert_string_equal(out[2], "[::1]:2");
    assert_int_equal(cluster_members_parse(NULL, out, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    /* host names are members too, spelled as given */
    assert_int_equal(cluster_members_parse("127.0.0.1:1,localhost:2,node-3.example.org:25672", out, &n, err,
                                           sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[2], "node-3.example.org:25672");
    static const char *bad[] = {"-node:1", "node-:1", "a..b:1", "under_score:1", "300.1.1.1:1", "1.2.3:1",
                                "name:0",  "name:x",  "name:", ":1",            "[::1:1",      "[zz]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(cluster_members_parse(bad[i], out, &n, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not a host:port"));
    }
    char label[80];
    memset(label, 'a', 64); /* a label of 64 bytes is one too many */
    snprintf(label + 64, sizeof(label) - 64, ":1");
    assert_int_equal(cluster_members_parse(label, out, &n, err, sizeof(err)), -1);
    label[63] = ':', label[64] = '1', label[65] = '\0';
    assert_int_equal(cluster_members_parse(label, out, &n, err, sizeof(err)), 0);
    char many[1024] = "";
    for (int i = 0; i <= CLUSTER_MEMBERS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s127.0.0.1:%d", i ? "," : "", i + 1);
    assert_int_equal(cluster_members_parse(many, out, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
}

/* A configuration of (id, role) pairs. */
static void config(struct raft_configuration *c, const raft_id *ids, const int *roles, unsigned n)
{
    raft_configuration_init(c);
    for (unsigned i = 0; i < n; i++) {
        char address[32];
        snprintf(address, sizeof(address), "127.0.0.1:%u", (unsigned)ids[i]);
        assert_int_equal(raft_configuration_add(c, ids[i], address, roles[i]), 0);
    }
}

static void a_leader_adds_then_promotes_and_removes_others_before_itself(void **state)
{
    (void)state;
    struct raft_configuration c;
    const raft_id ids[] = {1, 2, 3, 4};
    const int roles[] = {RAFT_VOTER, RAFT_VOTER, RAFT_VOTER, RAFT_SPARE};
    config(&c, ids, roles, 4);
    assert_int_equal(cluster_member_role(&c, 4), RAFT_SPARE);
    assert_int_equal(cluster_member_role(&c, 9), -1);
    /* Adding: a stranger is added (a spare), a spare or standby promoted, a voter left alone. */
    assert_int_equal(cluster_member_next_step(&c, 1, 9, true), MEMBER_STEP_ADD);
    assert_int_equal(cluster_member_next_step(&c, 1, 4, true), MEMBER_STEP_PROMOTE);
    assert_int_equal(cluster_member_next_step(&c, 1, 2, true), MEMBER_STEP_DONE);
    /* Removing: a member goes, the leader hands over first, a stranger is gone already. */
    assert_int_equal(cluster_member_next_step(&c, 1, 3, false), MEMBER_STEP_REMOVE);
    assert_int_equal(cluster_member_next_step(&c, 1, 4, false), MEMBER_STEP_REMOVE);
    assert_int_equal(cluster_member_next_step(&c, 1, 1, false), MEMBER_STEP_TRANSFER);
    assert_int_equal(cluster_member_next_step(&c, 1, 9, false), MEMBER_STEP_DONE);
    raft_configuration_close(&c);

    /* The last voter is never removed (a spare beside it does not vote). */
    const raft_id alone[] = {1, 4};
    const int alone_roles[] = {RAFT_VOTER, RAFT_SPARE};
    config(&c, alone, alone_roles, 2);
    assert_int_equal(cluster_member_next_step(&c, 1, 1, false), MEMBER_STEP_REFUSE);
    assert_int_equal(cluster_member_next_step(&c, 1, 4, false), MEMBER_STEP_REMOVE);
    raft_configuration_close(&c);
    assert_string_equal(cluster_member_role_name(RAFT_VOTER), "voter");
    assert_string_equal(cluster_member_role_name(RAFT_STANDBY), "standby");
    assert_string_equal(cluster_member_role_name(RAFT_SPARE), "spare");
    assert_string_equal(cluster_member_role_name(77), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_depend_on_the_address_alone),
        cmocka_unit_test(the_peers_list_is_read_and_checked),
        cmocka_unit_test(a_leader_adds_then_promotes_and_removes_others_before_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
