/* tests/unit/cluster/raft_cluster.h: driving libraft's in-memory fixture for the cluster tests
 * (test_meta_fsm.c, test_qq_fsm.c): start a cluster of state machines, propose an entry, find
 * the leader, wait for a new one, and step until every live server has applied everything.
 * Include after cmocka.h. */
#ifndef WARREN_TEST_RAFT_CLUSTER_H
#define WARREN_TEST_RAFT_CLUSTER_H

#include <raft.h>
#include <raft/fixture.h>
#include <stdbool.h>

/* Bootstraps and starts one server per fsm (all voters), a snapshot every snapshot_threshold
 * entries (0: libraft's default), and elects server 0. */
static inline void raft_cluster_start(struct raft_fixture *f, struct raft_fsm *const *fsms, unsigned n,
                                      unsigned snapshot_threshold)
{
    assert_int_equal(raft_fixture_initialize(f), 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(raft_fixture_grow(f, fsms[i]), 0);
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(f, &conf), 0);
    raft_configuration_close(&conf);
    for (unsigned i = 0; i < n && snapshot_threshold; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(f, i), snapshot_threshold);
        raft_set_snapshot_trailing(raft_fixture_get(f, i), 2);
    }
    assert_int_equal(raft_fixture_start(f), 0);
    raft_fixture_elect(f, 0);
    for (unsigned i = 0; i < n; i++) /* elect pushed the others' timeouts out of reach: back to normal */
        raft_fixture_set_randomized_election_timeout(f, i, 1000 + i * 100);
}

/* An entry proposed with raft_apply; status is the leader's callback's, 1 until it fires. */
struct proposal {
    struct raft_apply req;
    int status;
};

static inline void proposal_done(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct proposal *p = req->data;
    p->status = status;
}

/* Proposes buf (taken over, freed when raft_apply refuses it) through server via. Returns
 * raft_apply's status. */
static inline int raft_cluster_propose(struct raft_fixture *f, unsigned via, struct raft_buffer buf,
                                       struct proposal *p)
{
    p->req.data = p;
    p->status = 1;
    int rc = raft_apply(raft_fixture_get(f, via), &p->req, &buf, 1, proposal_done);
    if (rc != 0)
        raft_free(buf.base);
    return rc;
}

/* The index of the live server in leader state with the highest term; raft_fixture_n when none. */
static inline unsigned raft_cluster_leader(struct raft_fixture *f)
{
    unsigned n = raft_fixture_n(f), leader = n;
    for (unsigned i = 0; i < n; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (raft_fixture_alive(f, i) && raft_state(r) == RAFT_LEADER &&
            (leader == n || r->current_term > raft_fixture_get(f, leader)->current_term))
            leader = i;
    }
    return leader;
}

/* A server other than *arg in leader state, seen as leader by a majority of live servers. */
static inline bool raft_cluster_other_leader(struct raft_fixture *f, void *arg)
{
    unsigned old = *(unsigned *)arg;
    for (unsigned i = 0; i < raft_fixture_n(f); i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (i == old || !raft_fixture_alive(f, i) || raft_state(r) != RAFT_LEADER)
            continue;
        unsigned agree = 0;
        for (unsigned j = 0; j < raft_fixture_n(f); j++) {
            raft_id id;
            const char *address;
            raft_leader(raft_fixture_get(f, j), &id, &address);
            agree += raft_fixture_alive(f, j) && id == r->id;
        }
        if (agree * 2 > raft_fixture_n(f))
            return true;
    }
    return false;
}

/* Steps until a leader other than server `old` holds a majority; returns its index. */
static inline unsigned raft_cluster_new_leader(struct raft_fixture *f, unsigned old)
{
    assert_true(raft_fixture_step_until(f, raft_cluster_other_leader, &old, 20000));
    unsigned leader = raft_cluster_leader(f);
    assert_true(leader < raft_fixture_n(f) && leader != old);
    return leader;
}

/* Steps until every live server has applied everything the leader has (10 s of cluster time at
 * most each). */
static inline void raft_cluster_settle(struct raft_fixture *f)
{
    raft_fixture_step_until_elapsed(f, 300); /* let a returning server hear of the new term */
    unsigned leader = raft_cluster_leader(f);
    assert_true(leader < raft_fixture_n(f));
    raft_index last = raft_last_index(raft_fixture_get(f, leader));
    for (unsigned i = 0; i < raft_fixture_n(f); i++)
        if (raft_fixture_alive(f, i))
            assert_true(raft_fixture_step_until_applied(f, i, last, 10000));
}

#endif
