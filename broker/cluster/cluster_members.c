/* broker/cluster/cluster_members.c: member ids, the peers list, and a leader's next membership
 * step (contract: cluster_members.h). */
#include "cluster_members.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cluster_link.h"

uint64_t cluster_member_id(const char *address)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64-bit offset basis and prime */
    for (const unsigned char *p = (const unsigned char *)address; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h &= 0x7fffffffffffffffull;
    return h ? h : 1;
}

int cluster_members_parse(const char *peers, char out[][CLUSTER_ADDRESS_MAX], size_t *n, char *err, size_t errlen)
{
    *n = 0;
    const char *s = peers ? peers : "";
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *a = s;
        s = end ? end + 1 : s + len;
        while (len > 0 && (*a == ' ' || *a == '\t'))
            a++, len--;
        while (len > 0 && (a[len - 1] == ' ' || a[len - 1] == '\t'))
            len--;
        if (len == 0)
            continue;
        char address[CLUSTER_ADDRESS_MAX];
        struct sockaddr_storage sa;
        if (len >= CLUSTER_ADDRESS_MAX) {
            snprintf(err, errlen, "cluster peer address too long");
            return -1;
        }
        memcpy(address, a, len);
        address[len] = '\0';
        if (link_parse_address(address, &sa) < 0) {
            snprintf(err, errlen, "cluster peer '%s' is not a host:port (an IPv4 address, [IPv6] or a DNS name)",
                     address);
            return -1;
        }
        bool seen = false;
        for (size_t i = 0; i < *n && !seen; i++) {
            seen = strcmp(out[i], address) == 0;
            if (!seen && cluster_member_id(out[i]) == cluster_member_id(address)) {
                snprintf(err, errlen, "cluster peers '%s' and '%s' have the same id: write one of them otherwise",
                         out[i], address);
                return -1;
            }
        }
        if (seen)
            continue;
        if (*n == CLUSTER_MEMBERS_MAX) {
            snprintf(err, errlen, "more than %d cluster peers", CLUSTER_MEMBERS_MAX);
            return -1;
        }
        memcpy(out[*n], address, len + 1);
        (*n)++;
    }
    return 0;
}

const char *cluster_member_role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    case RAFT_SPARE:
        return "spare";
    default:
        return "unknown";
    }
}

int cluster_member_role(const struct raft_configuration *c, raft_id id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return c->servers[i].role;
    return -1;
}

enum member_step cluster_member_next_step(const struct raft_configuration *c, raft_id self, raft_id id, bool add)
{
    int role = cluster_member_role(c, id);
    if (add) {
        if (role < 0)
            return MEMBER_STEP_ADD;
        return role == RAFT_VOTER ? MEMBER_STEP_DONE : MEMBER_STEP_PROMOTE;
    }
    if (role < 0)
        return MEMBER_STEP_DONE;
    unsigned other_voters = 0;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id != id && c->servers[i].role == RAFT_VOTER)
            other_voters++;
    if (other_voters == 0)
        return MEMBER_STEP_REFUSE;
    return id == self ? MEMBER_STEP_TRANSFER : MEMBER_STEP_REMOVE;
}
