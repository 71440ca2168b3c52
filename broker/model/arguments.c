/* broker/model/arguments.c: argument equivalence on redeclare, as RabbitMQ checks it. */
#include "arguments.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "spec.h"
#include "table.h"

const char *const arguments_queue_keys[] = {
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-length",
    "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-max-priority", "x-overflow",
    "x-queue-mode", "x-queue-version", "x-single-active-consumer", NULL,
};

/* rabbit_quorum_queue:capabilities()'s queue_arguments, x-queue-type aside (vhost.c). */
const char *const arguments_quorum_queue_keys[] = {
    "x-expires", "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-max-length",
    "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-overflow",
    "x-single-active-consumer", "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
    "x-queue-leader-locator", NULL,
};

const char *const arguments_exchange_keys[] = {"alternate-exchange", NULL};

const char *arguments_type_name(uint8_t type)
{
    switch (type) {
    case TABLE_LONGSTR: return "longstr";
    case TABLE_INT32: return "signedint";
    case TABLE_UINT32: return "unsignedint";
    case TABLE_INT64: return "long";
    case TABLE_UINT64: return "unsignedlong";
    case TABLE_INT16: return "short";
    case TABLE_UINT16: return "unsignedshort";
    case TABLE_INT8: return "byte";
    case TABLE_UINT8: return "unsignedbyte";
    case TABLE_BOOL: return "bool";
    case TABLE_FLOAT: return "float";
    case TABLE_DOUBLE: return "double";
    case TABLE_DECIMAL: return "decimal";
    case TABLE_TIMESTAMP: return "timestamp";
    case TABLE_TABLE: return "table";
    case TABLE_ARRAY: return "array";
    case TABLE_VOID: return "void";
    case TABLE_BYTES: return "binary";
    default: return "unknown";
    }
}

static void value_text(const struct table_value *v, char *out, size_t cap)
{
    int64_t n;
    if (v->type == TABLE_LONGSTR || v->type == TABLE_BYTES)
        snprintf(out, cap, "%.*s", (int)v->v.bytes.len, (const char *)v->v.bytes.ptr);
    else if (v->type == TABLE_BOOL)
        snprintf(out, cap, "%s", v->v.boolean ? "true" : "false");
    else if (table_value_to_int(v, &n))
        snprintf(out, cap, "%" PRId64, n);
    else if (v->type == TABLE_DOUBLE)
        snprintf(out, cap, "%g", v->v.f64);
    else if (v->type == TABLE_FLOAT)
        snprintf(out, cap, "%g", (double)v->v.f32);
    else
        snprintf(out, cap, "...");
}

/* "none", "'V'" (both present) or "the value 'V' of type 'T'" (one side missing). */
static void describe(const struct table_value *v, bool found, bool both, char *out, size_t cap)
{
    char text[200];
    if (!found) {
        snprintf(out, cap, "none");
        return;
    }
    value_text(v, text, sizeof text);
    if (both)
        snprintf(out, cap, "'%s'", text);
    else
        snprintf(out, cap, "the value '%s' of type '%s'", text, arguments_type_name(v->type));
}

static bool same_value(const struct table_value *a, const struct table_value *b)
{
    int64_t x, y;
    if (table_value_to_int(a, &x) && table_value_to_int(b, &y))
        return x == y;
    return table_value_equal(a, b);
}

int arguments_equivalent(struct proto_bytes current, struct proto_bytes requested, const char *const *keys,
                         const char *what, struct proto_bytes name, uint32_t method_id, struct reply_error *err)
{
    for (; *keys; keys++) {
        struct table_value cur, req;
        bool has_cur = table_find(current, *keys, &cur) == 1;
        bool has_req = table_find(requested, *keys, &req) == 1;
        if (!has_cur && !has_req)
            continue;
        if (has_cur && has_req && same_value(&cur, &req))
            continue;
        char received[256], was[256];
        describe(&req, has_req, has_cur && has_req, received, sizeof received);
        describe(&cur, has_cur, has_cur && has_req, was, sizeof was);
        return reply_fail(err, SPEC_PRECONDITION_FAILED, method_id,
                          "inequivalent arg '%s' for %s '%.*s' in vhost '/': received %s but current is %s", *keys,
                          what, (int)name.len, (const char *)name.ptr, received, was);
    }
    return 0;
}
