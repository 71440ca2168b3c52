/* broker/model/policy_merge.c: how a policy, an operator policy and a queue's declare
 * arguments combine (rabbit_policy:merge_operator_definitions and get0, rabbit_policies:
 * merge_policy_value, rabbit_queue_type_util:args_policy_lookup as the classic queue process
 * and the quorum queue use it). Pure: table contents in, table contents out. */
#include <string.h>

#include "policy.h"
#include "table.h"

/* rabbit_misc:check_expiry: ten years in milliseconds, the longest TTL or expiry a queue takes. */
#define MAX_EXPIRY_MS INT64_C(315360000000)

static bool min_merged(struct proto_bytes key)
{
    static const char *const keys[] = {"expires", "message-ttl", "max-length", "max-length-bytes",
                                       "max-in-memory-length", "max-in-memory-bytes"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (proto_bytes_is(key, keys[i]))
            return true;
    return false;
}

static bool int_of(const struct table_value *v, int64_t *out)
{
    return v->type != TABLE_TIMESTAMP && table_value_to_int(v, out);
}

/* One key present in both: rabbit_policies:merge_policy_value. */
static const struct table_value *merge_value(struct proto_bytes key, const struct table_value *value,
                                             const struct table_value *op)
{
    int64_t a, b;
    if (!int_of(value, &a) || !int_of(op, &b))
        return op;
    if (min_merged(key))
        return a <= b ? value : op;
    if (proto_bytes_is(key, "delivery-limit")) /* negative is unlimited: the limited one wins */
        return (a < 0 || b < 0) ? (a >= b ? value : op) : (a <= b ? value : op);
    return op;
}

static int put(struct table_buf *out, struct proto_bytes key, const struct table_value *v)
{
    return table_buf_put_field(out, (const char *)key.ptr, key.len, v);
}

/* Is key among the fields of table? Fills *v when it is. */
static bool lookup(struct proto_bytes table, struct proto_bytes key, struct table_value *v)
{
    struct table_iter it;
    struct proto_bytes k;
    table_iter_init(&it, table);
    while (table_next(&it, &k, v) == 1)
        if (k.len == key.len && memcmp(k.ptr, key.ptr, key.len) == 0)
            return true;
    return false;
}

int policy_effective_definition(const struct policy *policy, const struct policy *op, struct table_buf *out)
{
    struct proto_bytes mine = policy ? policy_definition(policy) : (struct proto_bytes){NULL, 0};
    struct proto_bytes theirs = op ? policy_definition(op) : (struct proto_bytes){NULL, 0};
    struct table_iter it;
    struct proto_bytes key;
    struct table_value v, w;
    int rc = 0;
    table_iter_init(&it, mine);
    while (rc == 0 && table_next(&it, &key, &v) == 1)
        rc = put(out, key, lookup(theirs, key, &w) ? merge_value(key, &v, &w) : &v);
    table_iter_init(&it, theirs);
    while (rc == 0 && table_next(&it, &key, &w) == 1)
        if (!lookup(mine, key, &v))
            rc = put(out, key, &w);
    return rc;
}

/* How a queue resolves a policy key against its argument: not at all (a key its type ignores),
 * the smaller of both, the argument when given, or the policy when it has one. */
enum resolve { IGNORED, SMALLER, ARGUMENT_FIRST, POLICY_FIRST };

/* The keys each type resolves (the classic queue process; rabbit_quorum_queue:
 * ra_machine_config, where overflow is "policyHasPrecedence"). */
static const struct {
    const char *key, *argument;
    enum resolve classic, quorum;
} resolved[] = {
    {"expires", "x-expires", SMALLER, SMALLER},
    {"dead-letter-exchange", "x-dead-letter-exchange", ARGUMENT_FIRST, ARGUMENT_FIRST},
    {"dead-letter-routing-key", "x-dead-letter-routing-key", ARGUMENT_FIRST, ARGUMENT_FIRST},
    {"message-ttl", "x-message-ttl", SMALLER, SMALLER},
    {"max-length", "x-max-length", SMALLER, SMALLER},
    {"max-length-bytes", "x-max-length-bytes", SMALLER, SMALLER},
    {"overflow", "x-overflow", ARGUMENT_FIRST, POLICY_FIRST},
    {"queue-mode", "x-queue-mode", ARGUMENT_FIRST, IGNORED},
    {"queue-version", "x-queue-version", ARGUMENT_FIRST, IGNORED},
    {"delivery-limit", "x-delivery-limit", IGNORED, SMALLER},
};

static enum resolve resolution(size_t i, enum policy_target target)
{
    return target == POLICY_TARGET_QUORUM_QUEUE ? resolved[i].quorum : resolved[i].classic;
}

static bool is_resolved_argument(struct proto_bytes key, enum policy_target target)
{
    for (size_t i = 0; i < sizeof resolved / sizeof *resolved; i++)
        if (proto_bytes_is(key, resolved[i].argument) && resolution(i, target) != IGNORED)
            return true;
    return false;
}

int policy_queue_arguments(struct proto_bytes arguments, struct proto_bytes effective, enum policy_target target,
                           struct table_buf *out)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value v, arg, pol;
    int rc = 0;
    table_iter_init(&it, arguments);
    while (rc == 0 && table_next(&it, &key, &v) == 1)
        if (!is_resolved_argument(key, target))
            rc = put(out, key, &v);
    bool have_dlx = false;
    for (size_t i = 0; rc == 0 && i < sizeof resolved / sizeof *resolved; i++) {
        enum resolve how = resolution(i, target);
        if (how == IGNORED)
            continue;
        bool has_arg = table_find(arguments, resolved[i].argument, &arg) == 1;
        bool has_pol = table_find(effective, resolved[i].key, &pol) == 1;
        if (!has_arg && !has_pol)
            continue;
        bool from_policy = !has_arg || (has_pol && how == POLICY_FIRST);
        struct table_value chosen = from_policy ? pol : arg;
        int64_t a, p;
        bool take_min = how == SMALLER;
        if (has_arg && has_pol && take_min && int_of(&arg, &a) && int_of(&pol, &p) && p < a)
            from_policy = true, chosen = pol;
        if (from_policy && take_min && int_of(&chosen, &p)) {
            /* A policy's limit is written as a long; a TTL or expiry past ten years is cut. */
            bool expiry = strcmp(resolved[i].key, "expires") == 0 || strcmp(resolved[i].key, "message-ttl") == 0;
            chosen = (struct table_value){.type = TABLE_INT64};
            chosen.v.i64 = expiry && p > MAX_EXPIRY_MS ? MAX_EXPIRY_MS : p;
        }
        if (strcmp(resolved[i].key, "dead-letter-exchange") == 0)
            have_dlx = true;
        if (strcmp(resolved[i].key, "dead-letter-routing-key") == 0 && !have_dlx)
            continue;
        rc = table_buf_put_field(out, resolved[i].argument, strlen(resolved[i].argument), &chosen);
    }
    return rc;
}
