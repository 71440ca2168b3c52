/* broker/model/queue_settings.c: queue.declare's x-arguments, checked the way RabbitMQ 3.10
 * checks them for a new classic or quorum queue: the same checks in the same order, the same
 * error texts (which quote Erlang terms: type names like `signedint`, tuples like
 * `{value_negative,-1}`, strings in double quotes); and the kinds of queue (queue_kind). */
#include "queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arguments.h"
#include "spec.h"
#include "table.h"

/* rabbit_misc:check_expiry: ten years in milliseconds. */
#define MAX_EXPIRY_MS INT64_C(315360000000)
#define MAX_PRIORITY 255

struct parse {
    struct proto_bytes name;
    struct proto_bytes arguments;
    struct reply_error *err;
};

/* Erlang's name for a field type, as RabbitMQ's table parser tags values. */
static const char *type_name(uint8_t type)
{
    switch (type) {
    case TABLE_BOOL: return "bool";
    case TABLE_INT8: return "byte";
    case TABLE_UINT8: return "unsignedbyte";
    case TABLE_INT16: return "short";
    case TABLE_UINT16: return "unsignedshort";
    case TABLE_INT32: return "signedint";
    case TABLE_UINT32: return "unsignedint";
    case TABLE_INT64: return "long";
    case TABLE_UINT64: return "long"; /* RabbitMQ reads 'L' as a signed long */
    case TABLE_FLOAT: return "float";
    case TABLE_DOUBLE: return "double";
    case TABLE_DECIMAL: return "decimal";
    case TABLE_LONGSTR: return "longstr";
    case TABLE_ARRAY: return "array";
    case TABLE_TIMESTAMP: return "timestamp";
    case TABLE_TABLE: return "table";
    case TABLE_VOID: return "void";
    case TABLE_BYTES: return "binary";
    default: return "unknown";
    }
}

/* "invalid arg 'KEY' for queue 'NAME' in vhost '/': DETAIL" (406). */
static int invalid(const struct parse *p, const char *key, const char *detail_fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int invalid(const struct parse *p, const char *key, const char *detail_fmt, ...)
{
    char detail[REPLY_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof(detail), detail_fmt, ap);
    va_end(ap);
    return reply_fail(p->err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE,
                      "invalid arg '%s' for queue '%.*s' in vhost '/': %s", key, (int)p->name.len,
                      (const char *)p->name.ptr, detail);
}

/* A string quoted as Erlang's ~p prints it: in double quotes, with " and \ escaped. */
static void quote_into(char *out, size_t cap, const char *fmt, struct proto_bytes text)
{
    char escaped[REPLY_TEXT_MAX + 1];
    size_t n = 0;
    for (uint32_t i = 0; i < text.len && n + 2 < sizeof(escaped); i++) {
        if (text.ptr[i] == '"' || text.ptr[i] == '\\')
            escaped[n++] = '\\';
        escaped[n++] = (char)text.ptr[i];
    }
    escaped[n] = '\0';
    /* Reply texts are shortstrs: a long value is cut, on purpose. */
    if (snprintf(out, cap, fmt, escaped) >= (int)cap)
        out[cap - 1] = '\0';
}

/* The integer types RabbitMQ accepts for numeric arguments (not timestamps). */
static bool int_value(const struct table_value *value, int64_t *out)
{
    switch (value->type) {
    case TABLE_INT8: case TABLE_UINT8: case TABLE_INT16: case TABLE_UINT16:
    case TABLE_INT32: case TABLE_UINT32: case TABLE_INT64:
        return table_value_to_int(value, out);
    case TABLE_UINT64:
        *out = (int64_t)value->v.u64; /* RabbitMQ reads 'L' as signed */
        return true;
    default:
        return false;
    }
}

static int want_int(const struct parse *p, const char *key, const struct table_value *value, int64_t *out)
{
    if (int_value(value, out))
        return 0;
    return invalid(p, key, "\"expected integer, got %s\"", type_name(value->type));
}

static int want_non_negative(const struct parse *p, const char *key, const struct table_value *value,
                             int64_t *out)
{
    if (want_int(p, key, value, out) != 0)
        return -1;
    if (*out < 0)
        return invalid(p, key, "{value_negative,%lld}", (long long)*out);
    return 0;
}

/* rabbit_misc:check_expiry. */
static int want_expiry(const struct parse *p, const char *key, int64_t value)
{
    if (value < 0)
        return invalid(p, key, "{value_negative,%lld}", (long long)value);
    if (value > MAX_EXPIRY_MS)
        return invalid(p, key, "{value_too_large,%lld}", (long long)value);
    return 0;
}

static int want_longstr(const struct parse *p, const char *key, const struct table_value *value)
{
    if (value->type == TABLE_LONGSTR)
        return 0;
    return invalid(p, key, "{unacceptable_type,%s}", type_name(value->type));
}

/* One argument's check; called only when the key is present. */
typedef int (*check_fn)(const struct parse *p, const char *key, const struct table_value *value,
                        struct queue_settings *out);

static int check_expires(const struct parse *p, const char *key, const struct table_value *value,
                         struct queue_settings *out)
{
    int64_t v;
    if (want_int(p, key, value, &v) != 0)
        return -1;
    if (v == 0)
        return invalid(p, key, "{value_zero,0}");
    if (want_expiry(p, key, v) != 0)
        return -1;
    out->expires_ms = v;
    return 0;
}

static int check_message_ttl(const struct parse *p, const char *key, const struct table_value *value,
                             struct queue_settings *out)
{
    int64_t v;
    if (want_int(p, key, value, &v) != 0 || want_expiry(p, key, v) != 0)
        return -1;
    out->message_ttl_ms = v;
    return 0;
}

static int check_dead_letter_exchange(const struct parse *p, const char *key, const struct table_value *value,
                                      struct queue_settings *out)
{
    if (want_longstr(p, key, value) != 0)
        return -1;
    out->has_dlx = true;
    return 0;
}

static int check_dead_letter_routing_key(const struct parse *p, const char *key, const struct table_value *value,
                                         struct queue_settings *out)
{
    (void)out;
    if (want_longstr(p, key, value) != 0)
        return -1;
    struct table_value dlx;
    if (table_find(p->arguments, "x-dead-letter-exchange", &dlx) != 1)
        return invalid(p, key, "routing_key_but_no_dlx_defined");
    return 0;
}

static int check_max_length(const struct parse *p, const char *key, const struct table_value *value,
                            struct queue_settings *out)
{
    return want_non_negative(p, key, value, &out->max_length);
}

static int check_max_length_bytes(const struct parse *p, const char *key, const struct table_value *value,
                                  struct queue_settings *out)
{
    return want_non_negative(p, key, value, &out->max_length_bytes);
}

static int check_max_priority(const struct parse *p, const char *key, const struct table_value *value,
                              struct queue_settings *out)
{
    int64_t v;
    if (want_non_negative(p, key, value, &v) != 0)
        return -1;
    if (v > MAX_PRIORITY)
        return invalid(p, key, "{max_value_exceeded,%lld}", (long long)v);
    out->max_priority = (uint8_t)v;
    return 0;
}

static int check_overflow(const struct parse *p, const char *key, const struct table_value *value,
                          struct queue_settings *out)
{
    if (want_longstr(p, key, value) != 0)
        return -1;
    struct proto_bytes mode = value->v.bytes;
    if (proto_bytes_is(mode, "drop-head"))
        return 0;
    /* RabbitMQ 3.10's quorum queues take reject-publish-dlx but run it as drop-head (rabbit_fifo
     * knows drop-head and reject-publish only): the head is dead-lettered, the publish confirmed. */
    if (out->type == QUEUE_TYPE_QUORUM && proto_bytes_is(mode, "reject-publish-dlx"))
        return 0;
    if (proto_bytes_is(mode, "reject-publish") || proto_bytes_is(mode, "reject-publish-dlx")) {
        out->overflow_reject = true;
        out->overflow_reject_dlx = proto_bytes_is(mode, "reject-publish-dlx");
        return 0;
    }
    return invalid(p, key, "invalid_overflow");
}

/* Accepted and ignored: every message lives in memory. */
static int check_queue_mode(const struct parse *p, const char *key, const struct table_value *value,
                            struct queue_settings *out)
{
    (void)out;
    if (want_longstr(p, key, value) != 0)
        return -1;
    if (proto_bytes_is(value->v.bytes, "default") || proto_bytes_is(value->v.bytes, "lazy"))
        return 0;
    char detail[REPLY_TEXT_MAX + 1];
    quote_into(detail, sizeof(detail), "\"unsupported queue mode '%s'\"", value->v.bytes);
    return invalid(p, key, "%s", detail);
}

/* Accepted and ignored: the storage format is Warren's own. */
static int check_queue_version(const struct parse *p, const char *key, const struct table_value *value,
                               struct queue_settings *out)
{
    (void)out;
    int64_t v;
    if (want_non_negative(p, key, value, &v) != 0)
        return -1;
    if (v != 1 && v != 2)
        return invalid(p, key, "\"unsupported queue version '%lld'\"", (long long)v);
    return 0;
}

static int check_single_active_consumer(const struct parse *p, const char *key, const struct table_value *value,
                                        struct queue_settings *out)
{
    if (value->type != TABLE_BOOL)
        return invalid(p, key, "{unacceptable_type,%s}", type_name(value->type));
    out->single_active_consumer = value->v.boolean;
    return 0;
}

/* Accepted and ignored on one node (a Raft setting): validated as RabbitMQ does. */
static int check_dead_letter_strategy(const struct parse *p, const char *key, const struct table_value *value,
                                      struct queue_settings *out)
{
    (void)out;
    if (want_longstr(p, key, value) != 0)
        return -1;
    if (proto_bytes_is(value->v.bytes, "at-most-once") || proto_bytes_is(value->v.bytes, "at-least-once"))
        return 0;
    return invalid(p, key, "invalid_dlx_strategy");
}

/* x-max-in-memory-length/-bytes: accepted and ignored (Warren pages durable queues itself). */
static int check_ignored_non_negative(const struct parse *p, const char *key, const struct table_value *value,
                                      struct queue_settings *out)
{
    (void)out;
    int64_t v;
    return want_non_negative(p, key, value, &v);
}

static int check_initial_group_size(const struct parse *p, const char *key, const struct table_value *value,
                                    struct queue_settings *out)
{
    (void)out;
    int64_t v;
    if (want_int(p, key, value, &v) != 0)
        return -1;
    if (v == 0)
        return invalid(p, key, "{value_zero,0}");
    if (v < 0)
        return invalid(p, key, "{value_negative,%lld}", (long long)v);
    return 0;
}

static int check_leader_locator(const struct parse *p, const char *key, const struct table_value *value,
                                struct queue_settings *out)
{
    (void)out;
    if (want_longstr(p, key, value) != 0)
        return -1;
    static const char *const locators[] = {"client-local", "balanced", "random", "least-leaders"};
    for (size_t i = 0; i < sizeof locators / sizeof *locators; i++)
        if (proto_bytes_is(value->v.bytes, locators[i]))
            return 0;
    return invalid(p, key, "invalid_queue_locator_arg");
}

/* RabbitMQ 3.10 does not validate x-delivery-limit: a value that is not an integer never
 * compares above a count (no limit), and a negative one is below every count (a message is
 * dropped on its first return, as with 0). */
static int check_delivery_limit(const struct parse *p, const char *key, const struct table_value *value,
                                struct queue_settings *out)
{
    (void)p;
    (void)key;
    int64_t v;
    out->has_delivery_limit = int_value(value, &v);
    out->delivery_limit = out->has_delivery_limit && v > 0 ? v : 0;
    return 0;
}

/* x-queue-type: "classic" and "quorum"; "stream", which RabbitMQ knows, is refused with the
 * text RabbitMQ uses for an unknown type. */
static int check_queue_type(const struct parse *p, const char *key, const struct table_value *value,
                            struct queue_settings *out)
{
    if (want_longstr(p, key, value) != 0)
        return -1;
    if (proto_bytes_is(value->v.bytes, "classic")) {
        out->type = QUEUE_TYPE_CLASSIC;
        return 0;
    }
    if (proto_bytes_is(value->v.bytes, "quorum")) {
        out->type = QUEUE_TYPE_QUORUM;
        return 0;
    }
    char detail[REPLY_TEXT_MAX + 1];
    quote_into(detail, sizeof(detail), "\"unsupported queue type '%s'\"", value->v.bytes);
    return invalid(p, key, "%s", detail);
}

#define CLASSIC (1u << QUEUE_TYPE_CLASSIC)
#define QUORUM (1u << QUEUE_TYPE_QUORUM)

/* Every argument of RabbitMQ 3.10's queue types, in its declare_args() order, with the types
 * that take it (rabbit_*_queue:capabilities(), queue_arguments). A declare checks those its
 * type takes, in this order, then refuses any other one listed here; arguments not listed are
 * ignored. Those of streams only (types 0) are refused everywhere. */
static const struct {
    const char *key;
    check_fn check;
    unsigned types;
} arguments_table[] = {
    {"x-expires", check_expires, CLASSIC | QUORUM},
    {"x-message-ttl", check_message_ttl, CLASSIC | QUORUM},
    {"x-dead-letter-exchange", check_dead_letter_exchange, CLASSIC | QUORUM},
    {"x-dead-letter-routing-key", check_dead_letter_routing_key, CLASSIC | QUORUM},
    {"x-dead-letter-strategy", check_dead_letter_strategy, QUORUM},
    {"x-max-length", check_max_length, CLASSIC | QUORUM},
    {"x-max-length-bytes", check_max_length_bytes, CLASSIC | QUORUM},
    {"x-max-in-memory-length", check_ignored_non_negative, QUORUM},
    {"x-max-in-memory-bytes", check_ignored_non_negative, QUORUM},
    {"x-max-priority", check_max_priority, CLASSIC},
    {"x-overflow", check_overflow, CLASSIC | QUORUM},
    {"x-queue-mode", check_queue_mode, CLASSIC},
    {"x-queue-version", check_queue_version, CLASSIC},
    {"x-single-active-consumer", check_single_active_consumer, CLASSIC | QUORUM},
    {"x-quorum-initial-group-size", check_initial_group_size, QUORUM},
    {"x-max-age", NULL, 0},
    {"x-stream-max-segment-size-bytes", NULL, 0},
    {"x-initial-cluster-size", NULL, 0},
    {"x-queue-leader-locator", check_leader_locator, QUORUM},
    {"x-delivery-limit", check_delivery_limit, QUORUM},
};

/* What each kind does differently (queue.h, struct queue_kind); every quorum-queue behaviour was
 * checked against RabbitMQ 3.10.8, and where it departs from the AMQP spec RabbitMQ is followed,
 * since the clients that declare quorum queues were written against it. */
static const struct queue_kind kinds[] = {
    [QUEUE_TYPE_CLASSIC] = {
        .name = "classic",
        .module = "rabbit_classic_queue",
        .equivalent_keys = arguments_queue_keys,
        .global_qos = true,
        .server_named = true,
        .transient_allowed = true,
        .conditional_delete = true,
        .exclusive_consumers = true,
        .single_active_get = true,
        .waiting_counted = true,
    },
    [QUEUE_TYPE_QUORUM] = {
        .name = "quorum",
        .module = "rabbit_quorum_queue",
        .equivalent_keys = arguments_quorum_queue_keys,
        .raft_group = true,
        .persists_all = true,
        .returns_to_back = true,
        .lost_returns_first = true,
        .delivery_count_header = true,
        .gets_are_consumers = true,
        .reject_over_limit = true,
        .limit_after_dispatch = true,
    },
};

const struct queue_kind *queue_kind_of(enum queue_type type)
{
    return (unsigned)type < sizeof kinds / sizeof *kinds ? &kinds[type] : &kinds[QUEUE_TYPE_CLASSIC];
}

/* The first argument (in the client's order) that belongs to other types only. */
static int check_other_type_arguments(const struct parse *p, enum queue_type type)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    table_iter_init(&it, p->arguments);
    while (table_next(&it, &key, &value) == 1) {
        for (size_t i = 0; i < sizeof(arguments_table) / sizeof(*arguments_table); i++) {
            if (proto_bytes_is(key, arguments_table[i].key) && !(arguments_table[i].types & (1u << type)))
                return reply_fail(p->err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE,
                                  "invalid arg '%s' for queue '%.*s' in vhost '/' of queue type %s",
                                  arguments_table[i].key, (int)p->name.len, (const char *)p->name.ptr,
                                  queue_kind_of(type)->module);
        }
    }
    return 0;
}

int queue_settings_parse(struct proto_bytes name, struct proto_bytes arguments, struct queue_settings *out,
                         struct reply_error *err)
{
    const struct parse p = {name, arguments, err};
    out->message_ttl_ms = -1;
    out->expires_ms = -1;
    out->max_length = -1;
    out->max_length_bytes = -1;
    out->overflow_reject = false;
    out->overflow_reject_dlx = false;
    out->max_priority = 0;
    out->single_active_consumer = false;
    out->has_dlx = false;
    out->type = QUEUE_TYPE_CLASSIC;
    out->has_delivery_limit = false;
    out->delivery_limit = 0;
    if (table_validate(arguments) != 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE, "malformed arguments for queue '%.*s'",
                          (int)name.len, (const char *)name.ptr);

    struct table_value value;
    /* rabbit_channel checks the dead-letter exchange's type before anything else. */
    if (table_find(arguments, "x-dead-letter-exchange", &value) == 1 && value.type != TABLE_LONGSTR)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE,
                          "invalid type '%s' for arg 'x-dead-letter-exchange' in queue '%.*s' in vhost '/'",
                          type_name(value.type), (int)name.len, (const char *)name.ptr);
    if (table_find(arguments, "x-queue-type", &value) == 1 && check_queue_type(&p, "x-queue-type", &value, out) != 0)
        return -1;
    const unsigned mine = 1u << out->type;
    for (size_t i = 0; i < sizeof(arguments_table) / sizeof(*arguments_table); i++) {
        if ((arguments_table[i].types & mine) && table_find(arguments, arguments_table[i].key, &value) == 1 &&
            arguments_table[i].check(&p, arguments_table[i].key, &value, out) != 0)
            return -1;
    }
    return check_other_type_arguments(&p, out->type);
}

enum queue_type queue_settings_type(struct proto_bytes arguments)
{
    struct table_value value;
    if (table_find(arguments, "x-queue-type", &value) == 1 && value.type == TABLE_LONGSTR &&
        proto_bytes_is(value.v.bytes, "quorum"))
        return QUEUE_TYPE_QUORUM;
    return QUEUE_TYPE_CLASSIC;
}

int queue_settings_check_name(struct proto_bytes arguments, bool server_named, struct reply_error *err)
{
    const struct queue_kind *kind = queue_kind_of(queue_settings_type(arguments));
    if (server_named && !kind->server_named)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE,
                          "Cannot declare a server-named queue for type %s", kind->module);
    return 0;
}

/* rabbit_quorum_queue:declare's order: auto-delete, then exclusive, then durable. */
int queue_settings_check_kind(struct proto_bytes name, const struct queue_settings *settings, struct reply_error *err)
{
    if (queue_kind_of(settings->type)->transient_allowed)
        return 0;
    const char *property = settings->auto_delete ? "auto-delete"
                           : settings->exclusive ? "exclusive-owner"
                           : !settings->durable  ? "non-durable"
                                                 : NULL;
    if (!property)
        return 0;
    return reply_fail(err, SPEC_PRECONDITION_FAILED, SPEC_QUEUE_DECLARE,
                      "invalid property '%s' for queue '%.*s' in vhost '/'", property, (int)name.len,
                      (const char *)name.ptr);
}
