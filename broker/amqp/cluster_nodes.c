/* broker/amqp/cluster_nodes.c: the other members' descriptions of themselves (cluster_nodes.h). */
#include "cluster_nodes.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_node.h"
#include "introspect.h"
#include "table.h"
#include "uthash.h"

#define REPORT_MS 2000 /* how often each node describes itself to the others */
#define STALE_MS 7000  /* a member silent that long counts as stopped (three reports missed) */

struct heard {
    UT_hash_handle hh;
    char address[CLUSTER_ADDRESS_MAX];
    uint64_t at_ms;  /* when its last description arrived */
    bool lost;       /* its link broke since */
    struct introspect_node node;
};

struct cluster_nodes {
    struct server *server;
    struct heard *heard;
    uint64_t next_report_ms;
};

struct cluster_nodes *cluster_nodes_create(struct server *server)
{
    struct cluster_nodes *cn = calloc(1, sizeof *cn);
    if (cn)
        cn->server = server;
    return cn;
}

void cluster_nodes_free(struct cluster_nodes *cn)
{
    if (!cn)
        return;
    struct heard *h, *tmp;
    HASH_ITER(hh, cn->heard, h, tmp) {
        HASH_DEL(cn->heard, h);
        free(h);
    }
    free(cn);
}

/* ---- the message: one flat table, every field present ---- */

static int put_u64(struct table_buf *t, const char *key, uint64_t n)
{
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = n;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* The counters of a description, each a uint64_t of struct introspect_node: one list for both
 * directions. */
static const struct {
    const char *key;
    size_t offset;
} counters[] = {
#define COUNTER(field) {#field, offsetof(struct introspect_node, field)}
    COUNTER(os_pid), COUNTER(uptime_ms), COUNTER(processors), COUNTER(mem_used), COUNTER(mem_limit),
    COUNTER(message_memory_bytes), COUNTER(disk_free), COUNTER(disk_free_limit), COUNTER(fd_used),
    COUNTER(fd_total), COUNTER(sockets_used), COUNTER(store_segments), COUNTER(store_bytes),
#undef COUNTER
};

static int encode(const struct introspect_node *n, struct table_buf *t)
{
    int rc = table_buf_put_string(t, "name", proto_bytes_of(n->name)) |
             table_buf_put_string(t, "bind_address", proto_bytes_of(n->bind_address)) |
             table_buf_put_bool(t, "mem_alarm", n->mem_alarm) | table_buf_put_bool(t, "disk_alarm", n->disk_alarm) |
             put_u64(t, "amqp_port", n->amqp_port) | put_u64(t, "management_port", n->management_port) |
             put_u64(t, "prometheus_port", n->prometheus_port) | put_u64(t, "amqps_port", n->amqps_port) |
             put_u64(t, "https_port", n->https_port);
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        rc |= put_u64(t, counters[i].key, *(const uint64_t *)((const char *)n + counters[i].offset));
    return rc;
}

static bool get_u64(struct proto_bytes args, const char *key, uint64_t max, uint64_t *out)
{
    struct table_value v;
    if (table_find(args, key, &v) != 1 || v.type != TABLE_UINT64 || v.v.u64 > max)
        return false;
    *out = v.v.u64;
    return true;
}

static bool get_port(struct proto_bytes args, const char *key, uint16_t *out)
{
    uint64_t n;
    if (!get_u64(args, key, UINT16_MAX, &n))
        return false;
    *out = (uint16_t)n;
    return true;
}

static bool get_bool(struct proto_bytes args, const char *key, bool *out)
{
    struct table_value v;
    if (table_find(args, key, &v) != 1 || v.type != TABLE_BOOL)
        return false;
    *out = v.v.boolean;
    return true;
}

/* 0, or -1 when a field is missing or malformed (args validated by the caller). */
static int decode(struct proto_bytes args, struct introspect_node *n)
{
    memset(n, 0, sizeof *n);
    n->running = true;
    bool ok = table_find_cstring(args, "name", n->name, sizeof n->name) && n->name[0] &&
              table_find_cstring(args, "bind_address", n->bind_address, sizeof n->bind_address) &&
              get_bool(args, "mem_alarm", &n->mem_alarm) && get_bool(args, "disk_alarm", &n->disk_alarm) &&
              get_port(args, "amqp_port", &n->amqp_port) && get_port(args, "management_port", &n->management_port) &&
              get_port(args, "prometheus_port", &n->prometheus_port);
    /* The TLS listeners: absent from an older node's description (then shown as off). */
    struct table_value v;
    if (ok && table_find(args, "amqps_port", &v) == 1)
        ok = get_port(args, "amqps_port", &n->amqps_port) && get_port(args, "https_port", &n->https_port);
    for (size_t i = 0; ok && i < sizeof counters / sizeof counters[0]; i++) /* JSON integers are signed */
        ok = get_u64(args, counters[i].key, INT64_MAX, (uint64_t *)((char *)n + counters[i].offset));
    return ok ? 0 : -1;
}

/* ---- sending and hearing ---- */

/* Sends this node's description to address, or to every other member (address NULL). True
 * when something was queued. */
static bool report(struct cluster_nodes *cn, struct cluster_node *node, const char *address)
{
    struct introspect_node self;
    struct table_buf t = {0};
    introspect_node_self(cn->server, &self);
    bool sent = false;
    if (encode(&self, &t) == 0) {
        if (address) {
            sent = cluster_node_send(node, address, "node.info", &t) == 0;
        } else {
            struct cluster_status *st = calloc(1, sizeof *st);
            if (st) {
                cluster_node_status(node, st);
                for (size_t i = 0; i < st->member_count && i < CLUSTER_MEMBERS_MAX; i++)
                    if (!st->members[i].self && cluster_node_send(node, st->members[i].address, "node.info", &t) == 0)
                        sent = true;
                free(st);
            }
        }
    }
    table_buf_free(&t);
    return sent;
}

bool cluster_nodes_tick(struct cluster_nodes *cn, struct cluster_node *node, uint64_t now_ms)
{
    if (!cn || !node || now_ms < cn->next_report_ms)
        return false;
    cn->next_report_ms = now_ms + REPORT_MS;
    return report(cn, node, NULL);
}

static bool fresh(const struct heard *h, uint64_t now_ms)
{
    return h && !h->lost && now_ms - h->at_ms <= STALE_MS;
}

bool cluster_nodes_heard(struct cluster_nodes *cn, struct cluster_node *node, const char *from,
                         struct proto_bytes args, uint64_t now_ms)
{
    struct introspect_node n;
    if (!cn || strlen(from) >= CLUSTER_ADDRESS_MAX || decode(args, &n) != 0)
        return false;
    struct heard *h;
    HASH_FIND_STR(cn->heard, from, h);
    bool known = fresh(h, now_ms);
    if (!h) {
        if (HASH_COUNT(cn->heard) >= 4 * CLUSTER_MEMBERS_MAX)
            return false; /* addresses come from authenticated members only; bounded all the same */
        h = calloc(1, sizeof *h);
        if (!h)
            return false;
        strcpy(h->address, from);
        HASH_ADD_STR(cn->heard, address, h);
    }
    h->node = n;
    h->at_ms = now_ms;
    h->lost = false;
    /* A member new to this node (just started, or back): it learns of this one at once too. */
    return !known && node && report(cn, node, from);
}

void cluster_nodes_lost(struct cluster_nodes *cn, const char *from)
{
    struct heard *h = NULL;
    if (cn)
        HASH_FIND_STR(cn->heard, from, h);
    if (h)
        h->lost = true;
}

bool cluster_nodes_get(const struct cluster_nodes *cn, const char *address, uint64_t now_ms,
                       struct introspect_node *out)
{
    struct heard *h = NULL;
    if (cn)
        HASH_FIND_STR(cn->heard, address, h);
    if (!fresh(h, now_ms))
        return false;
    *out = h->node;
    out->self = false;
    /* Its uptime as of now, not as of its last word. */
    out->uptime_ms += now_ms - h->at_ms;
    return true;
}
