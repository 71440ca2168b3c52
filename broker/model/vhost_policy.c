/* broker/model/vhost_policy.c: a vhost's policies and limits, and applying policies to its
 * queues and exchanges (see vhost.h, "policies and limits"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"
#include "table.h"
#include "vhost_internal.h"

static void definitions_changed(struct vhost *vhost)
{
    if (vhost->hooks.definitions_changed)
        vhost->hooks.definitions_changed(vhost->hooks.ctx);
}

static struct proto_bytes exchange_name(const struct exchange *x)
{
    return (struct proto_bytes){(const uint8_t *)x->name, x->name_len};
}

void vhost_exchange_apply_policies(struct vhost *vhost, struct exchange *x)
{
    x->policy = policy_store_match(vhost->policies, POLICY_USER, POLICY_TARGET_EXCHANGE, exchange_name(x));
    x->operator_policy = policy_store_match(vhost->policies, POLICY_OPERATOR, POLICY_TARGET_EXCHANGE,
                                            exchange_name(x));
    if (x->alternate_argument)
        return;
    /* Operator policies cannot name an alternate exchange: only the policy matters. */
    struct table_value v;
    free(x->alternate_policy);
    x->alternate_policy = NULL;
    x->alternate = (struct proto_bytes){NULL, 0};
    if (x->policy && table_find(policy_definition(x->policy), "alternate-exchange", &v) == 1 &&
        v.type == TABLE_LONGSTR && v.v.bytes.len > 0 && (x->alternate_policy = malloc(v.v.bytes.len)) != NULL) {
        memcpy(x->alternate_policy, v.v.bytes.ptr, v.v.bytes.len);
        x->alternate = (struct proto_bytes){x->alternate_policy, v.v.bytes.len};
    }
}

int vhost_queue_apply_policies(struct vhost *vhost, struct queue_slot *slot)
{
    struct queue *q = slot->queue;
    enum policy_target target =
        queue_settings(q)->type == QUEUE_TYPE_QUORUM ? POLICY_TARGET_QUORUM_QUEUE : POLICY_TARGET_QUEUE;
    const struct policy *policy = policy_store_match(vhost->policies, POLICY_USER, target, slot->name);
    const struct policy *op = policy_store_match(vhost->policies, POLICY_OPERATOR, target, slot->name);
    slot->policy = policy;
    slot->operator_policy = op;
    struct table_buf effective = {0}, arguments = {0};
    struct reply_error err;
    int rc = policy_effective_definition(policy, op, &effective);
    if (rc == 0)
        rc = policy_queue_arguments(queue_arguments(q), (struct proto_bytes){effective.data, (uint32_t)effective.len},
                                    target, &arguments);
    if (rc == 0)
        rc = queue_apply_arguments(q, (struct proto_bytes){arguments.data, (uint32_t)arguments.len}, &err);
    else
        snprintf(err.text, sizeof err.text, "out of memory");
    if (rc != 0) {
        char vname[NAME_QUOTE_SIZE], qname[NAME_QUOTE_SIZE];
        log_warning("vhost '%s': policies not applied to queue '%s': %s",
                    name_quote(proto_bytes_of(vhost->name), vname), name_quote(slot->name, qname), err.text);
    }
    table_buf_free(&effective);
    table_buf_free(&arguments);
    return rc ? -1 : 0;
}

/* Re-applies every policy to every object, then frees the policies nothing points at any more.
 * Applying to a queue can drop messages, whose dead-lettering routes and publishes into other
 * queues (and may dispatch): the queues are first gathered, each with a reference, and each is
 * then looked up again by name, so the walk holds no iterator across that. */
static void apply_all(struct vhost *vhost)
{
    struct exchange *x, *xtmp;
    HASH_ITER(hh, vhost->exchanges, x, xtmp) {
        vhost_exchange_apply_policies(vhost, x);
    }
    size_t count = HASH_COUNT(vhost->queues), n = 0;
    struct queue **queues = count ? calloc(count, sizeof *queues) : NULL;
    struct queue_slot *slot, *stmp;
    HASH_ITER(hh, vhost->queues, slot, stmp) {
        if (queues) {
            queue_retain(slot->queue);
            queues[n++] = slot->queue;
        } else {
            /* No room for the list: forget the pointers at least, so none dangles. */
            slot->policy = slot->operator_policy = NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct proto_bytes name = queue_name(queues[i]);
        HASH_FIND(hh, vhost->queues, name.ptr, name.len, slot);
        if (slot && slot->queue == queues[i])
            vhost_queue_apply_policies(vhost, slot);
        queue_release(queues[i]);
    }
    free(queues);
    policy_store_collect(vhost->policies);
}

int vhost_policy_set(struct vhost *vhost, enum policy_kind kind, const struct policy_spec *spec, char *error,
                     size_t cap)
{
    int rc = policy_store_set(vhost->policies, kind, spec, error, cap);
    if (rc != 0)
        return rc;
    apply_all(vhost);
    definitions_changed(vhost);
    return 0;
}

bool vhost_policy_exists(const struct vhost *vhost, enum policy_kind kind, const char *name)
{
    return policy_store_has(vhost->policies, kind, name);
}

int vhost_policy_clear(struct vhost *vhost, enum policy_kind kind, const char *name)
{
    int rc = policy_store_clear(vhost->policies, kind, name);
    if (rc != 0)
        return rc;
    apply_all(vhost);
    definitions_changed(vhost);
    return 0;
}

void vhost_for_each_policy(struct vhost *vhost, enum policy_kind kind,
                           void (*fn)(const struct policy_spec *spec, void *arg), void *arg)
{
    policy_store_for_each(vhost->policies, kind, fn, arg);
}

void vhost_queue_policies(struct vhost *vhost, struct queue *queue, const struct policy **policy,
                          const struct policy **operator_policy)
{
    struct proto_bytes name = queue_name(queue);
    struct queue_slot *slot;
    HASH_FIND(hh, vhost->queues, name.ptr ? (const void *)name.ptr : "", name.len, slot);
    *policy = slot && slot->queue == queue ? slot->policy : NULL;
    *operator_policy = slot && slot->queue == queue ? slot->operator_policy : NULL;
}

/* ---- limits ---- */

static const char *const limit_names[VHOST_LIMIT_COUNT] = {"max-connections", "max-queues"};

const char *vhost_limit_name(enum vhost_limit limit)
{
    return (unsigned)limit < VHOST_LIMIT_COUNT ? limit_names[limit] : "unknown";
}

int vhost_limit_parse(const char *name, enum vhost_limit *out)
{
    for (unsigned i = 0; i < VHOST_LIMIT_COUNT; i++) {
        if (strcmp(name, limit_names[i]) == 0) {
            *out = (enum vhost_limit)i;
            return 0;
        }
    }
    return -1;
}

int64_t vhost_limit_get(const struct vhost *vhost, enum vhost_limit limit)
{
    return (unsigned)limit < VHOST_LIMIT_COUNT ? vhost->limits[limit] : -1;
}

void vhost_limit_set(struct vhost *vhost, enum vhost_limit limit, int64_t value)
{
    if ((unsigned)limit >= VHOST_LIMIT_COUNT)
        return;
    vhost->limits[limit] = value < 0 ? -1 : value;
    definitions_changed(vhost);
}
