/* broker/cluster/cluster_membership.c: adding and removing members at run time (contract:
 * cluster_node.h, "Membership changes"), both the asker's side and the leader's.
 *
 * The request. The asker sends, on the forwarding link, a command as meta_command_encode writes
 * it with op "member.add" or "member.remove" and args {"address": longstr}; it is never appended
 * to the log (on_forward hands it here), so its session and request are only there to make it
 * decode. The asker re-sends it every MEMBERSHIP_RESEND_MS while its wish lasts and its own
 * configuration does not show the change yet; that is also how it learns the outcome (nothing
 * flows back on the link).
 *
 * The leader. A request becomes a wish that lasts WISH_MS after the last copy of it arrived (an
 * asker that gave up is forgotten soon). Every tick, when no configuration change or leadership
 * transfer of its own is in flight, the leader takes the next step of the oldest wish
 * (cluster_member_next_step): raft_add (a spare), then raft_assign to voter (libraft sends the
 * log, or a snapshot, to the new member in rounds, and makes it a voter once a round took less
 * than an election timeout; it gives up after a round of max_catch_up_round_duration, and the
 * next tick starts over), or raft_remove, or raft_transfer first when the leader itself is to go.
 * libraft takes one configuration change at a time and none while the last one is uncommitted
 * (RAFT_CANTCHANGE): the step is simply tried again at the next tick. Only the configuration
 * entries are replicated: a new leader knows nothing of the wishes, and learns them again from
 * the askers' next requests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_node_internal.h"
#include "log.h"

#define WISH_MS (3 * MEMBERSHIP_RESEND_MS) /* a wish not asked for again lapses after this */

static const char OP_ADD[] = "member.add";
static const char OP_REMOVE[] = "member.remove";

bool membership_is_request(const struct meta_command *cmd)
{
    return cmd->op.len > 7 && memcmp(cmd->op.ptr, "member.", 7) == 0;
}

/* ---- the leader's side ---- */

static void change_done(struct raft_change *req, int status)
{
    struct cluster_node *node = req->data;
    node->membership.change_busy = false;
    if (status != 0 && !node->stopping)
        log_info("cluster: a membership change did not complete (%s); it is tried again while asked for",
                 raft_strerror(status));
    node_kick(node);
}

static void transfer_done(struct raft_transfer *req)
{
    struct cluster_node *node = req->data;
    node->membership.transfer_busy = false;
    node_kick(node);
}

void membership_on_request(struct cluster_node *node, const struct meta_command *cmd)
{
    struct membership *m = &node->membership;
    bool add = cmd->op.len == strlen(OP_ADD) && memcmp(cmd->op.ptr, OP_ADD, cmd->op.len) == 0;
    bool remove = cmd->op.len == strlen(OP_REMOVE) && memcmp(cmd->op.ptr, OP_REMOVE, cmd->op.len) == 0;
    struct table_value v;
    char address[CLUSTER_ADDRESS_MAX];
    struct sockaddr_storage sa;
    if ((!add && !remove) || table_find(cmd->args, "address", &v) != 1 || v.type != TABLE_LONGSTR ||
        v.v.bytes.len == 0 || v.v.bytes.len >= sizeof(address))
        return;
    memcpy(address, v.v.bytes.ptr, v.v.bytes.len);
    address[v.v.bytes.len] = '\0';
    if (strlen(address) != v.v.bytes.len || link_parse_address(address, &sa) < 0)
        return;
    raft_id id = cluster_member_id(address);
    uint64_t until = loop_now_ms(node->loop) + WISH_MS;
    struct member_wish *slot = NULL;
    for (unsigned i = 0; i < CLUSTER_MEMBERS_MAX; i++) {
        if (m->wishes[i].id == id) {
            slot = &m->wishes[i];
            break;
        }
        if (!slot && m->wishes[i].id == 0)
            slot = &m->wishes[i];
    }
    if (!slot)
        return; /* as many changes asked for as there can be members: this one is asked again */
    if (slot->id != id || slot->add != add)
        log_info("cluster: asked to %s %s", add ? "add" : "remove", address);
    slot->id = id;
    slot->add = add;
    slot->until_ms = until;
    snprintf(slot->address, sizeof(slot->address), "%s", address);
}

/* Takes the next step of the oldest wish that needs one (outside uv_run; this node leads). */
static void leader_step(struct cluster_node *node, uint64_t now)
{
    struct membership *m = &node->membership;
    struct raft *r = &node->raft;
    if (m->change_busy || m->transfer_busy || node->stopping)
        return;
    for (unsigned i = 0; i < CLUSTER_MEMBERS_MAX; i++) {
        struct member_wish *w = &m->wishes[i];
        if (w->id == 0)
            continue;
        if (now > w->until_ms) {
            w->id = 0;
            continue;
        }
        enum member_step step = cluster_member_next_step(&r->configuration, r->id, w->id, w->add);
        int rc = 0;
        m->change.data = node;
        switch (step) {
        case MEMBER_STEP_DONE:
            continue; /* kept until it lapses: the asker learns it is done from its configuration */
        case MEMBER_STEP_REFUSE:
            log_warning("cluster: not removing %s: no voter would be left", w->address);
            w->id = 0;
            continue;
        case MEMBER_STEP_ADD:
            rc = raft_add(r, &m->change, w->id, w->address, change_done);
            break;
        case MEMBER_STEP_PROMOTE:
            rc = raft_assign(r, &m->change, w->id, RAFT_VOTER, change_done);
            break;
        case MEMBER_STEP_REMOVE:
            rc = raft_remove(r, &m->change, w->id, change_done);
            break;
        case MEMBER_STEP_TRANSFER:
            m->transfer.data = node;
            rc = raft_transfer(r, &m->transfer, 0, transfer_done);
            if (rc == 0) {
                m->transfer_busy = true;
                log_info("cluster: handing leadership over before leaving the cluster");
            }
            node_kick(node);
            return;
        }
        if (rc == 0) {
            m->change_busy = true;
            log_info("cluster: %s %s", step == MEMBER_STEP_ADD ? "adding as a spare" :
                     step == MEMBER_STEP_PROMOTE ? "catching up, then making a voter," : "removing", w->address);
        } else if (rc == RAFT_CANTCHANGE) {
            /* The last configuration is not committed yet. A leader commits entries of earlier
             * terms only with one of its own: an entry now (push_commit's barrier) gets an
             * uncommitted change of a dead leader's committed, or this would wait forever. */
            if (r->configuration_uncommitted_index != 0)
                node->push_commit = true;
        } else {
            log_warning("cluster: cannot change the membership for %s: %s", w->address, raft_errmsg(r));
            w->id = 0; /* a lasting refusal (an id taken by another address): asked again, logged again */
        }
        node_kick(node);
        return; /* one step at a time */
    }
}

/* ---- the asker's side ---- */

/* The asker's request to whoever should have it: recorded here when this node leads, else
 * forwarded to the leader, or, with none known, to `via` (a join only). A joining node keeps the
 * last leader it heard of even when that one died (a non-member never stands for election, so
 * libraft never forgets it): it asks `via`, which knows the leader of now, once that leader was
 * silent for an election timeout (node_leader_lost; its proposals then wait, leaving the one
 * forwarding link to the request). */
static void ask_send(struct cluster_node *node, uint64_t now)
{
    struct membership *m = &node->membership;
    m->ask_resend_ms = now + MEMBERSHIP_RESEND_MS;
    struct table_buf args = {0};
    struct raft_buffer command = {0};
    if (table_buf_put_string(&args, "address", proto_bytes_of(m->ask_address)) != 0 ||
        meta_command_encode(&command, m->ask_add ? OP_ADD : OP_REMOVE, node->session, 1, &args) != 0) {
        table_buf_free(&args);
        return;
    }
    table_buf_free(&args);
    raft_id leader = 0;
    const char *leader_address = NULL;
    if (raft_state(&node->raft) == RAFT_LEADER) {
        struct meta_command cmd;
        if (meta_command_decode(&command, &cmd) == 0)
            membership_on_request(node, &cmd);
    } else {
        raft_leader(&node->raft, &leader, &leader_address);
        if (m->ask_add && (leader == 0 || node_leader_lost(node))) {
            leader = cluster_member_id(m->via);
            leader_address = m->via;
        }
        if (leader != 0 && leader != node->raft.id)
            link_forward(&node->link, leader, leader_address, &command); /* dropped: sent again */
    }
    raft_free(command.base);
    node_kick(node);
}

/* True when this node's configuration shows the asker's change. */
static bool ask_done(struct cluster_node *node)
{
    struct membership *m = &node->membership;
    int role = cluster_member_role(&node->raft.configuration, cluster_member_id(m->ask_address));
    return m->ask_add ? role == RAFT_VOTER : role < 0;
}

void membership_tick(struct cluster_node *node, uint64_t now)
{
    struct membership *m = &node->membership;
    if (m->asking) {
        if (ask_done(node)) {
            m->asking = false;
            log_info("cluster: %s %s", m->ask_add ? "this node is a voter now; joined through" : "removed",
                     m->ask_add ? m->via : m->ask_address);
        } else if (now > m->ask_until_ms) {
            m->asking = false; /* nobody waits for it any more */
        } else if (now >= m->ask_resend_ms) {
            ask_send(node, now);
        }
    }
    if (raft_state(&node->raft) == RAFT_LEADER)
        leader_step(node, now);
    else
        memset(m->wishes, 0, sizeof(m->wishes)); /* a leader that lost office forgets; askers ask again */
}

void membership_link_ready(struct cluster_node *node)
{
    if (node->membership.asking)
        node->membership.ask_resend_ms = 0; /* at the next tick, on the link now up */
}

/* Starts or renews the asker's wish: STARTED or PENDING. */
static int ask(struct cluster_node *node, bool add, const char *address, const char *via, unsigned renew_ms)
{
    struct membership *m = &node->membership;
    uint64_t now = loop_now_ms(node->loop);
    bool same = m->asking && m->ask_add == add && strcmp(m->ask_address, address) == 0;
    m->asking = true;
    m->ask_add = add;
    snprintf(m->ask_address, sizeof(m->ask_address), "%s", address);
    snprintf(m->via, sizeof(m->via), "%s", via ? via : "");
    m->ask_until_ms = now + renew_ms;
    if (!same) {
        log_info("cluster: asking the cluster to %s %s", add ? "add this node," : "remove", address);
        ask_send(node, now);
    }
    return same ? CLUSTER_CHANGE_PENDING : CLUSTER_CHANGE_STARTED;
}

static bool well_formed(const char *address, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    if (strlen(address) < CLUSTER_ADDRESS_MAX && link_parse_address(address, &sa) >= 0)
        return true;
    snprintf(err, errlen, "'%s' is not a host:port (the member's cluster address, as in cluster_peers)", address);
    return false;
}

int cluster_node_join(struct cluster_node *node, const char *via, unsigned renew_ms, char *err, size_t errlen)
{
    if (!well_formed(via, err, errlen))
        return -1;
    if (strcmp(via, node->address) == 0) {
        snprintf(err, errlen, "%s is this node: name a member of the cluster to join", via);
        return -1;
    }
    const struct raft_configuration *c = &node->raft.configuration;
    if (cluster_member_role(c, node->raft.id) == RAFT_VOTER) {
        if (cluster_member_role(c, cluster_member_id(via)) < 0) {
            snprintf(err, errlen, "this node is a member of a cluster that %s is not in (cluster_status shows its "
                                  "members); a node joins another cluster only with an empty data directory",
                     via);
            return -1;
        }
        if (node->membership.asking && node->membership.ask_add)
            node->membership.asking = false;
        return CLUSTER_CHANGE_DONE;
    }
    return ask(node, true, node->address, via, renew_ms);
}

int cluster_node_remove(struct cluster_node *node, const char *address, unsigned renew_ms, char *err, size_t errlen)
{
    if (!well_formed(address, err, errlen))
        return -1;
    if (strcmp(address, node->address) == 0) {
        snprintf(err, errlen, "%s is this node: run forget_cluster_node on another member (this one stopped)",
                 address);
        return -1;
    }
    const struct raft_configuration *c = &node->raft.configuration;
    if (cluster_member_role(c, node->raft.id) != RAFT_VOTER) {
        snprintf(err, errlen, "this node is not a voting member of the cluster: run it on a member that stays");
        return -1;
    }
    if (cluster_member_role(c, cluster_member_id(address)) < 0) {
        if (node->membership.asking && !node->membership.ask_add &&
            strcmp(node->membership.ask_address, address) == 0)
            node->membership.asking = false;
        return CLUSTER_CHANGE_DONE;
    }
    /* This node is a voter and stays, so at least one voter is left. */
    return ask(node, false, address, NULL, renew_ms);
}
