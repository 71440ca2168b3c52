/* broker/cluster/cluster_members.h: who the members of the metadata group are, as pure logic
 * (no socket, no loop), private to the cluster layer: a member's Raft id derived from its
 * address, the cluster_peers list read and checked, and the next step a leader takes towards a
 * requested change of membership (docs/cluster.md, "Adding and removing nodes").
 *
 * Ids. A member's Raft id is a function of its address alone ("host:port" exactly as written:
 * the 64-bit FNV-1a hash of its bytes with the top bit cleared, 1 when that is 0), so that every
 * node, a node that joins later included, derives the same id for the same address without
 * talking, and an id never depends on which other members exist. The top bit is cleared so that
 * an id fits a signed 64-bit integer (JSON, Python). Two addresses of one cluster with the same
 * id would be one member to libraft: cluster_members_parse refuses such a list, and a leader
 * refuses to add an address whose id a member already has (libraft: RAFT_DUPLICATEID). */
#ifndef WARREN_CLUSTER_MEMBERS_H
#define WARREN_CLUSTER_MEMBERS_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_MEMBERS_MAX 16
#define CLUSTER_ADDRESS_MAX 256

/* The Raft id of the member at address (see above); never 0. */
uint64_t cluster_member_id(const char *address);

/* Splits peers (comma-separated host:port, blanks around entries ignored, repeats counted once)
 * into out[0..*n), in the order given; every entry must be a host:port ("a.b.c.d:port",
 * "[v6]:port" or "name:port": cluster_link.h) and no two may share an id. 0, or -1 with the reason
 * in err. */
int cluster_members_parse(const char *peers, char out[][CLUSTER_ADDRESS_MAX], size_t *n, char *err, size_t errlen);

/* "voter", "standby", "spare" for libraft's roles, "unknown" for anything else. */
const char *cluster_member_role_name(int role);

/* What a leader does next for a change it was asked for. */
enum member_step {
    MEMBER_STEP_DONE,     /* the configuration is already as asked: nothing to do */
    MEMBER_STEP_ADD,      /* raft_add: the address joins as a spare */
    MEMBER_STEP_PROMOTE,  /* raft_assign(RAFT_VOTER): libraft catches it up, then it votes */
    MEMBER_STEP_REMOVE,   /* raft_remove */
    MEMBER_STEP_TRANSFER, /* the leader itself is to go: hand leadership over first */
    MEMBER_STEP_REFUSE,   /* removing it would leave no voter */
};

/* The step a leader (self) takes so that id becomes a voter (add true) or leaves the
 * configuration (add false), given configuration c as it stands. */
enum member_step cluster_member_next_step(const struct raft_configuration *c, raft_id self, raft_id id, bool add);

/* The role of id in c, or -1 when it is not in c. */
int cluster_member_role(const struct raft_configuration *c, raft_id id);

#endif
