/* broker/amqp/introspect_policy.c: the operator actions on policies, operator policies and vhost
 * limits behind the admin interface (see introspect.h). The rules live in the model
 * (broker/model/policy.h, vhost.h); this file finds the vhost, logs each change once and leaves
 * saving to the vhost's definitions_changed hook. With a cluster and an answer that waits for it
 * (operate_through_log), a change is only checked here and proposed: its apply makes it on every
 * node, this one included, so a change the cluster does not take is made nowhere. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "introspect.h"
#include "log.h"
#include "operate.h"
#include "policy.h"
#include "queue.h"
#include "server_internal.h"
#include "table.h"
#include "vhost.h"

static struct vhost_entry *find_vhost(struct server *server, const char *name)
{
    return name ? server_vhost_entry(server, name, strlen(name)) : NULL;
}

static const char *kind_text(bool operator_policy) { return operator_policy ? "operator policy" : "policy"; }

static int put_int(struct table_buf *t, const char *key, int64_t value)
{
    struct table_value v = {.type = TABLE_INT64};
    v.v.i64 = value;
    return table_buf_put_field(t, key, strlen(key), &v);
}

int introspect_set_policy(struct server *server, bool operator_policy, const struct introspect_policy *p,
                          char *error, size_t cap)
{
    struct vhost_entry *e = find_vhost(server, p->vhost);
    if (!e)
        return -ENOENT;
    struct policy_spec spec = {p->name, p->pattern, p->apply_to, p->priority, p->definition};
    enum policy_kind kind = operator_policy ? POLICY_OPERATOR : POLICY_USER;
    bool through_log = operate_through_log(server);
    int rc = through_log ? policy_spec_check(kind, &spec, error, cap) : vhost_policy_set(e->vhost, kind, &spec, error, cap);
    if (rc == -1)
        return -EINVAL;
    if (rc != 0)
        return rc;
    log_info("%s %s '%s' matching %s names in virtual host '%s' using pattern '%s'",
             through_log ? "Proposing to set" : "Successfully set", kind_text(operator_policy), p->name,
             p->apply_to ? p->apply_to : "all", e->name, p->pattern);
    struct table_buf args = {0};
    struct table_value d = {.type = TABLE_TABLE};
    d.v.bytes = p->definition;
    int built = table_buf_put_string(&args, "kind", proto_bytes_of(operator_policy ? "operator" : "policy")) |
                table_buf_put_string(&args, "name", proto_bytes_of(p->name)) |
                table_buf_put_string(&args, "pattern", proto_bytes_of(p->pattern)) |
                (p->apply_to ? table_buf_put_string(&args, "apply_to", proto_bytes_of(p->apply_to)) : 0) |
                put_int(&args, "priority", p->priority) | table_buf_put_field(&args, "definition", 10, &d);
    operate_replicate(server, "policy.set", e->name, &args, built);
    return 0;
}

int introspect_clear_policy(struct server *server, const char *vhost, bool operator_policy, const char *name)
{
    struct vhost_entry *e = find_vhost(server, vhost);
    if (!e || !name)
        return -ENOENT;
    enum policy_kind kind = operator_policy ? POLICY_OPERATOR : POLICY_USER;
    int rc = operate_through_log(server) ? (vhost_policy_exists(e->vhost, kind, name) ? 0 : -ENOENT)
                                         : vhost_policy_clear(e->vhost, kind, name);
    if (rc == 0) {
        log_info("Cleared %s '%s' in virtual host '%s'", kind_text(operator_policy), name, e->name);
        struct table_buf args = {0};
        int built = table_buf_put_string(&args, "kind", proto_bytes_of(operator_policy ? "operator" : "policy")) |
                    table_buf_put_string(&args, "name", proto_bytes_of(name));
        operate_replicate(server, "policy.clear", e->name, &args, built);
    }
    return rc;
}

struct each_policy {
    void (*fn)(const struct introspect_policy *p, void *arg);
    void *arg;
    const char *vhost;
};

static void visit_policy(const struct policy_spec *spec, void *arg)
{
    struct each_policy *e = arg;
    struct introspect_policy out = {e->vhost, spec->name, spec->pattern, spec->apply_to, spec->priority,
                                    spec->definition};
    e->fn(&out, e->arg);
}

void introspect_policies(struct server *server, const char *vhost, bool operator_policy,
                         void (*fn)(const struct introspect_policy *p, void *arg), void *arg)
{
    struct vhost_entry *v, *tmp;
    HASH_ITER(hh, server->vhosts, v, tmp) {
        if (v->deleted || (vhost && strcmp(vhost, v->name) != 0))
            continue;
        struct each_policy e = {fn, arg, v->name};
        vhost_for_each_policy(v->vhost, operator_policy ? POLICY_OPERATOR : POLICY_USER, visit_policy, &e);
    }
}

int introspect_set_vhost_limit(struct server *server, const char *vhost, const char *limit, int64_t value,
                               char *error, size_t cap)
{
    struct vhost_entry *e = find_vhost(server, vhost);
    if (!e)
        return -ENOENT;
    enum vhost_limit which;
    if (!limit || vhost_limit_parse(limit, &which) != 0) {
        if (cap)
            snprintf(error, cap, "Validation failed\n\n%s is not a recognised vhost limit\n", limit ? limit : "(null)");
        return -EINVAL;
    }
    if (!operate_through_log(server))
        vhost_limit_set(e->vhost, which, value);
    log_info("Successfully set vhost limit %s to %lld in virtual host '%s'", limit, (long long)value, e->name);
    struct table_buf args = {0};
    int built = table_buf_put_string(&args, "limit", proto_bytes_of(limit)) | put_int(&args, "value", value);
    operate_replicate(server, "vhost_limit.set", e->name, &args, built);
    return 0;
}

int introspect_clear_vhost_limit(struct server *server, const char *vhost, const char *limit)
{
    struct vhost_entry *e = find_vhost(server, vhost);
    if (!e)
        return -ENOENT;
    enum vhost_limit which;
    if (limit && vhost_limit_parse(limit, &which) != 0)
        return -EINVAL;
    for (int i = 0; i < VHOST_LIMIT_COUNT; i++) {
        if (!limit || (enum vhost_limit)i == which) {
            if (!operate_through_log(server))
                vhost_limit_set(e->vhost, (enum vhost_limit)i, -1);
            struct table_buf args = {0};
            int built = table_buf_put_string(&args, "limit", proto_bytes_of(vhost_limit_name((enum vhost_limit)i))) |
                        put_int(&args, "value", -1);
            operate_replicate(server, "vhost_limit.set", e->name, &args, built);
        }
    }
    log_info("Cleared vhost limit%s%s in virtual host '%s'", limit ? " " : "s", limit ? limit : "", e->name);
    return 0;
}

void introspect_vhost_limits(struct server *server, const char *vhost,
                             void (*fn)(const struct introspect_vhost_limits *l, void *arg), void *arg)
{
    struct vhost_entry *v, *tmp;
    HASH_ITER(hh, server->vhosts, v, tmp) {
        if (v->deleted || (vhost && strcmp(vhost, v->name) != 0))
            continue;
        struct introspect_vhost_limits out = {
            .vhost = v->name,
            .max_connections = vhost_limit_get(v->vhost, VHOST_LIMIT_MAX_CONNECTIONS),
            .max_queues = vhost_limit_get(v->vhost, VHOST_LIMIT_MAX_QUEUES),
        };
        if (out.max_connections >= 0 || out.max_queues >= 0)
            fn(&out, arg);
    }
}
