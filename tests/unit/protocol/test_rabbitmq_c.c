/* tests/unit/protocol/test_rabbitmq_c.c: cross-checks the codec against rabbitmq-c, an
 * independent implementation: whatever one encodes, the other decodes to the same fields and
 * re-encodes to the same bytes. Methods, field tables of every type, and basic properties. */
#include <amqp.h>
#include <amqp_framing.h>
#include <ctype.h>
#include <stdio.h>
#include "helpers.h"
#include "spec.h"
#include "table.h"

/* How a field is held on each side; the wire type is the same by construction. */
enum kind { K_U8, K_U16, K_U32, K_U64, K_BIT, K_SHORTSTR, K_LONGSTR, K_TABLE };

struct pair {
    uint8_t kind;
    uint16_t ours;   /* offsetof in struct spec_<method> */
    uint16_t theirs; /* offsetof in amqp_<method>_t */
};

struct cross_method {
    uint32_t id;
    const struct pair *pairs;
    size_t pair_count;
};

#define F(kind, method, ours, theirs) \
    {kind, offsetof(struct spec_##method, ours), offsetof(amqp_##method##_t, theirs)}
#define PAIRS(...) (const struct pair[]){__VA_ARGS__}, \
    sizeof((const struct pair[]){__VA_ARGS__}) / sizeof(struct pair)
#define M(id, ...) {id, PAIRS(__VA_ARGS__)}
#define M0(id) {id, NULL, 0}

/* Every method both sides know, with rabbitmq-c's names for the reserved fields. */
static const struct cross_method methods[] = {
    M(SPEC_CONNECTION_START, F(K_U8, connection_start, version_major, version_major),
      F(K_U8, connection_start, version_minor, version_minor),
      F(K_TABLE, connection_start, server_properties, server_properties),
      F(K_LONGSTR, connection_start, mechanisms, mechanisms),
      F(K_LONGSTR, connection_start, locales, locales)),
    M(SPEC_CONNECTION_START_OK,
      F(K_TABLE, connection_start_ok, client_properties, client_properties),
      F(K_SHORTSTR, connection_start_ok, mechanism, mechanism),
      F(K_LONGSTR, connection_start_ok, response, response),
      F(K_SHORTSTR, connection_start_ok, locale, locale)),
    M(SPEC_CONNECTION_SECURE, F(K_LONGSTR, connection_secure, challenge, challenge)),
    M(SPEC_CONNECTION_SECURE_OK, F(K_LONGSTR, connection_secure_ok, response, response)),
    M(SPEC_CONNECTION_TUNE, F(K_U16, connection_tune, channel_max, channel_max),
      F(K_U32, connection_tune, frame_max, frame_max),
      F(K_U16, connection_tune, heartbeat, heartbeat)),
    M(SPEC_CONNECTION_TUNE_OK, F(K_U16, connection_tune_ok, channel_max, channel_max),
      F(K_U32, connection_tune_ok, frame_max, frame_max),
      F(K_U16, connection_tune_ok, heartbeat, heartbeat)),
    M(SPEC_CONNECTION_OPEN, F(K_SHORTSTR, connection_open, virtual_host, virtual_host),
      F(K_SHORTSTR, connection_open, reserved_1, capabilities),
      F(K_BIT, connection_open, reserved_2, insist)),
    M(SPEC_CONNECTION_OPEN_OK, F(K_SHORTSTR, connection_open_ok, reserved_1, known_hosts)),
    M(SPEC_CONNECTION_CLOSE, F(K_U16, connection_close, reply_code, reply_code),
      F(K_SHORTSTR, connection_close, reply_text, reply_text),
      F(K_U16, connection_close, class_id, class_id),
      F(K_U16, connection_close, method_id, method_id)),
    M0(SPEC_CONNECTION_CLOSE_OK),
    M(SPEC_CONNECTION_BLOCKED, F(K_SHORTSTR, connection_blocked, reason, reason)),
    M0(SPEC_CONNECTION_UNBLOCKED),
    M(SPEC_CHANNEL_OPEN, F(K_SHORTSTR, channel_open, reserved_1, out_of_band)),
    M(SPEC_CHANNEL_OPEN_OK, F(K_LONGSTR, channel_open_ok, reserved_1, channel_id)),
    M(SPEC_CHANNEL_FLOW, F(K_BIT, channel_flow, active, active)),
    M(SPEC_CHANNEL_FLOW_OK, F(K_BIT, channel_flow_ok, active, active)),
    M(SPEC_CHANNEL_CLOSE, F(K_U16, channel_close, reply_code, reply_code),
      F(K_SHORTSTR, channel_close, reply_text, reply_text),
      F(K_U16, channel_close, class_id, class_id),
      F(K_U16, channel_close, method_id, method_id)),
    M0(SPEC_CHANNEL_CLOSE_OK),
    M(SPEC_EXCHANGE_DECLARE, F(K_U16, exchange_declare, reserved_1, ticket),
      F(K_SHORTSTR, exchange_declare, exchange, exchange),
      F(K_SHORTSTR, exchange_declare, type, type),
      F(K_BIT, exchange_declare, passive, passive),
      F(K_BIT, exchange_declare, durable, durable),
      F(K_BIT, exchange_declare, auto_delete, auto_delete),
      F(K_BIT, exchange_declare, internal, internal),
      F(K_BIT, exchange_declare, no_wait, nowait),
      F(K_TABLE, exchange_declare, arguments, arguments)),
    M0(SPEC_EXCHANGE_DECLARE_OK),
    M(SPEC_EXCHANGE_DELETE, F(K_U16, exchange_delete, reserved_1, ticket),
      F(K_SHORTSTR, exchange_delete, exchange, exchange),
      F(K_BIT, exchange_delete, if_unused, if_unused),
      F(K_BIT, exchange_delete, no_wait, nowait)),
    M0(SPEC_EXCHANGE_DELETE_OK),
    M(SPEC_EXCHANGE_BIND, F(K_U16, exchange_bind, reserved_1, ticket),
      F(K_SHORTSTR, exchange_bind, destination, destination),
      F(K_SHORTSTR, exchange_bind, source, source),
      F(K_SHORTSTR, exchange_bind, routing_key, routing_key),
      F(K_BIT, exchange_bind, no_wait, nowait),
      F(K_TABLE, exchange_bind, arguments, arguments)),
    M0(SPEC_EXCHANGE_BIND_OK),
    M(SPEC_EXCHANGE_UNBIND, F(K_U16, exchange_unbind, reserved_1, ticket),
      F(K_SHORTSTR, exchange_unbind, destination, destination),
      F(K_SHORTSTR, exchange_unbind, source, source),
      F(K_SHORTSTR, exchange_unbind, routing_key, routing_key),
      F(K_BIT, exchange_unbind, no_wait, nowait),
      F(K_TABLE, exchange_unbind, arguments, arguments)),
    M0(SPEC_EXCHANGE_UNBIND_OK),
    M(SPEC_QUEUE_DECLARE, F(K_U16, queue_declare, reserved_1, ticket),
      F(K_SHORTSTR, queue_declare, queue, queue),
      F(K_BIT, queue_declare, passive, passive),
      F(K_BIT, queue_declare, durable, durable),
      F(K_BIT, queue_declare, exclusive, exclusive),
      F(K_BIT, queue_declare, auto_delete, auto_delete),
      F(K_BIT, queue_declare, no_wait, nowait),
      F(K_TABLE, queue_declare, arguments, arguments)),
    M(SPEC_QUEUE_DECLARE_OK, F(K_SHORTSTR, queue_declare_ok, queue, queue),
      F(K_U32, queue_declare_ok, message_count, message_count),
      F(K_U32, queue_declare_ok, consumer_count, consumer_count)),
    M(SPEC_QUEUE_BIND, F(K_U16, queue_bind, reserved_1, ticket),
      F(K_SHORTSTR, queue_bind, queue, queue),
      F(K_SHORTSTR, queue_bind, exchange, exchange),
      F(K_SHORTSTR, queue_bind, routing_key, routing_key),
      F(K_BIT, queue_bind, no_wait, nowait),
      F(K_TABLE, queue_bind, arguments, arguments)),
    M0(SPEC_QUEUE_BIND_OK),
    M(SPEC_QUEUE_PURGE, F(K_U16, queue_purge, reserved_1, ticket),
      F(K_SHORTSTR, queue_purge, queue, queue),
      F(K_BIT, queue_purge, no_wait, nowait)),
    M(SPEC_QUEUE_PURGE_OK, F(K_U32, queue_purge_ok, message_count, message_count)),
    M(SPEC_QUEUE_DELETE, F(K_U16, queue_delete, reserved_1, ticket),
      F(K_SHORTSTR, queue_delete, queue, queue),
      F(K_BIT, queue_delete, if_unused, if_unused),
      F(K_BIT, queue_delete, if_empty, if_empty),
      F(K_BIT, queue_delete, no_wait, nowait)),
    M(SPEC_QUEUE_DELETE_OK, F(K_U32, queue_delete_ok, message_count, message_count)),
    M(SPEC_QUEUE_UNBIND, F(K_U16, queue_unbind, reserved_1, ticket),
      F(K_SHORTSTR, queue_unbind, queue, queue),
      F(K_SHORTSTR, queue_unbind, exchange, exchange),
      F(K_SHORTSTR, queue_unbind, routing_key, routing_key),
      F(K_TABLE, queue_unbind, arguments, arguments)),
    M0(SPEC_QUEUE_UNBIND_OK),
    M(SPEC_BASIC_QOS, F(K_U32, basic_qos, prefetch_size, prefetch_size),
      F(K_U16, basic_qos, prefetch_count, prefetch_count),
      F(K_BIT, basic_qos, global, global)),
    M0(SPEC_BASIC_QOS_OK),
    M(SPEC_BASIC_CONSUME, F(K_U16, basic_consume, reserved_1, ticket),
      F(K_SHORTSTR, basic_consume, queue, queue),
      F(K_SHORTSTR, basic_consume, consumer_tag, consumer_tag),
      F(K_BIT, basic_consume, no_local, no_local),
      F(K_BIT, basic_consume, no_ack, no_ack),
      F(K_BIT, basic_consume, exclusive, exclusive),
      F(K_BIT, basic_consume, no_wait, nowait),
      F(K_TABLE, basic_consume, arguments, arguments)),
    M(SPEC_BASIC_CONSUME_OK, F(K_SHORTSTR, basic_consume_ok, consumer_tag, consumer_tag)),
    M(SPEC_BASIC_CANCEL, F(K_SHORTSTR, basic_cancel, consumer_tag, consumer_tag),
      F(K_BIT, basic_cancel, no_wait, nowait)),
    M(SPEC_BASIC_CANCEL_OK, F(K_SHORTSTR, basic_cancel_ok, consumer_tag, consumer_tag)),
    M(SPEC_BASIC_PUBLISH, F(K_U16, basic_publish, reserved_1, ticket),
      F(K_SHORTSTR, basic_publish, exchange, exchange),
      F(K_SHORTSTR, basic_publish, routing_key, routing_key),
      F(K_BIT, basic_publish, mandatory, mandatory),
      F(K_BIT, basic_publish, immediate, immediate)),
    M(SPEC_BASIC_RETURN, F(K_U16, basic_return, reply_code, reply_code),
      F(K_SHORTSTR, basic_return, reply_text, reply_text),
      F(K_SHORTSTR, basic_return, exchange, exchange),
      F(K_SHORTSTR, basic_return, routing_key, routing_key)),
    M(SPEC_BASIC_DELIVER, F(K_SHORTSTR, basic_deliver, consumer_tag, consumer_tag),
      F(K_U64, basic_deliver, delivery_tag, delivery_tag),
      F(K_BIT, basic_deliver, redelivered, redelivered),
      F(K_SHORTSTR, basic_deliver, exchange, exchange),
      F(K_SHORTSTR, basic_deliver, routing_key, routing_key)),
    M(SPEC_BASIC_GET, F(K_U16, basic_get, reserved_1, ticket),
      F(K_SHORTSTR, basic_get, queue, queue),
      F(K_BIT, basic_get, no_ack, no_ack)),
    M(SPEC_BASIC_GET_OK, F(K_U64, basic_get_ok, delivery_tag, delivery_tag),
      F(K_BIT, basic_get_ok, redelivered, redelivered),
      F(K_SHORTSTR, basic_get_ok, exchange, exchange),
      F(K_SHORTSTR, basic_get_ok, routing_key, routing_key),
      F(K_U32, basic_get_ok, message_count, message_count)),
    M(SPEC_BASIC_GET_EMPTY, F(K_SHORTSTR, basic_get_empty, reserved_1, cluster_id)),
    M(SPEC_BASIC_ACK, F(K_U64, basic_ack, delivery_tag, delivery_tag),
      F(K_BIT, basic_ack, multiple, multiple)),
    M(SPEC_BASIC_REJECT, F(K_U64, basic_reject, delivery_tag, delivery_tag),
      F(K_BIT, basic_reject, requeue, requeue)),
    M(SPEC_BASIC_RECOVER_ASYNC, F(K_BIT, basic_recover_async, requeue, requeue)),
    M(SPEC_BASIC_RECOVER, F(K_BIT, basic_recover, requeue, requeue)),
    M0(SPEC_BASIC_RECOVER_OK),
    M(SPEC_BASIC_NACK, F(K_U64, basic_nack, delivery_tag, delivery_tag),
      F(K_BIT, basic_nack, multiple, multiple),
      F(K_BIT, basic_nack, requeue, requeue)),
    M0(SPEC_TX_SELECT),
    M0(SPEC_TX_SELECT_OK),
    M0(SPEC_TX_COMMIT),
    M0(SPEC_TX_COMMIT_OK),
    M0(SPEC_TX_ROLLBACK),
    M0(SPEC_TX_ROLLBACK_OK),
    M(SPEC_CONFIRM_SELECT, F(K_BIT, confirm_select, nowait, nowait)),
    M0(SPEC_CONFIRM_SELECT_OK),
};
#define METHOD_COUNT (sizeof(methods) / sizeof(methods[0]))

static const amqp_method_number_t rabbitmq_c_methods[] = {
    AMQP_CONNECTION_START_METHOD, AMQP_CONNECTION_START_OK_METHOD, AMQP_CONNECTION_SECURE_METHOD,
    AMQP_CONNECTION_SECURE_OK_METHOD, AMQP_CONNECTION_TUNE_METHOD, AMQP_CONNECTION_TUNE_OK_METHOD,
    AMQP_CONNECTION_OPEN_METHOD, AMQP_CONNECTION_OPEN_OK_METHOD, AMQP_CONNECTION_CLOSE_METHOD,
    AMQP_CONNECTION_CLOSE_OK_METHOD, AMQP_CONNECTION_BLOCKED_METHOD,
    AMQP_CONNECTION_UNBLOCKED_METHOD, AMQP_CHANNEL_OPEN_METHOD, AMQP_CHANNEL_OPEN_OK_METHOD,
    AMQP_CHANNEL_FLOW_METHOD, AMQP_CHANNEL_FLOW_OK_METHOD, AMQP_CHANNEL_CLOSE_METHOD,
    AMQP_CHANNEL_CLOSE_OK_METHOD, AMQP_ACCESS_REQUEST_METHOD, AMQP_ACCESS_REQUEST_OK_METHOD,
    AMQP_EXCHANGE_DECLARE_METHOD, AMQP_EXCHANGE_DECLARE_OK_METHOD, AMQP_EXCHANGE_DELETE_METHOD,
    AMQP_EXCHANGE_DELETE_OK_METHOD, AMQP_EXCHANGE_BIND_METHOD, AMQP_EXCHANGE_BIND_OK_METHOD,
    AMQP_EXCHANGE_UNBIND_METHOD, AMQP_EXCHANGE_UNBIND_OK_METHOD, AMQP_QUEUE_DECLARE_METHOD,
    AMQP_QUEUE_DECLARE_OK_METHOD, AMQP_QUEUE_BIND_METHOD, AMQP_QUEUE_BIND_OK_METHOD,
    AMQP_QUEUE_PURGE_METHOD, AMQP_QUEUE_PURGE_OK_METHOD, AMQP_QUEUE_DELETE_METHOD,
    AMQP_QUEUE_DELETE_OK_METHOD, AMQP_QUEUE_UNBIND_METHOD, AMQP_QUEUE_UNBIND_OK_METHOD,
    AMQP_BASIC_QOS_METHOD, AMQP_BASIC_QOS_OK_METHOD, AMQP_BASIC_CONSUME_METHOD,
    AMQP_BASIC_CONSUME_OK_METHOD, AMQP_BASIC_CANCEL_METHOD, AMQP_BASIC_CANCEL_OK_METHOD,
    AMQP_BASIC_PUBLISH_METHOD, AMQP_BASIC_RETURN_METHOD, AMQP_BASIC_DELIVER_METHOD,
    AMQP_BASIC_GET_METHOD, AMQP_BASIC_GET_OK_METHOD, AMQP_BASIC_GET_EMPTY_METHOD,
    AMQP_BASIC_ACK_METHOD, AMQP_BASIC_REJECT_METHOD, AMQP_BASIC_RECOVER_ASYNC_METHOD,
    AMQP_BASIC_RECOVER_METHOD, AMQP_BASIC_RECOVER_OK_METHOD, AMQP_BASIC_NACK_METHOD,
    AMQP_TX_SELECT_METHOD, AMQP_TX_SELECT_OK_METHOD, AMQP_TX_COMMIT_METHOD,
    AMQP_TX_COMMIT_OK_METHOD, AMQP_TX_ROLLBACK_METHOD, AMQP_TX_ROLLBACK_OK_METHOD,
    AMQP_CONFIRM_SELECT_METHOD, AMQP_CONFIRM_SELECT_OK_METHOD,
};

/* rabbitmq-c's side of a table with every field type, nested two levels. */
static char their_long[1000];
static amqp_field_value_t their_array_values[4];
static amqp_table_entry_t their_inner_entries[2];
static amqp_table_entry_t their_entries[20];
static amqp_table_t their_table;

static amqp_bytes_t their_bytes(const char *text, size_t len)
{
    return (amqp_bytes_t){len, (void *)(uintptr_t)text};
}

static void build_their_table(void)
{
    amqp_field_value_t v;
    int n = 0;

    memset(their_long, 'L', sizeof(their_long));
    their_array_values[0] = (amqp_field_value_t){AMQP_FIELD_KIND_U16, {.u16 = 0xABCD}};
    their_array_values[1] = (amqp_field_value_t){AMQP_FIELD_KIND_VOID, {.u8 = 0}};
    their_array_values[2] =
        (amqp_field_value_t){AMQP_FIELD_KIND_UTF8, {.bytes = their_bytes("in array", 8)}};
    their_array_values[3] = (amqp_field_value_t){AMQP_FIELD_KIND_I64, {.i64 = INT64_MIN}};
    their_inner_entries[0] = (amqp_table_entry_t){their_bytes("deep", 4),
                                                  {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}};
    v.kind = AMQP_FIELD_KIND_ARRAY;
    v.value.array = (amqp_array_t){4, their_array_values};
    their_inner_entries[1] = (amqp_table_entry_t){their_bytes("list", 4), v};

#define ENTRY(key, kind_, member, val) \
    their_entries[n++] = (amqp_table_entry_t){their_bytes(key, strlen(key)), \
                                              {kind_, {.member = val}}}
    ENTRY("bool", AMQP_FIELD_KIND_BOOLEAN, boolean, 1);
    ENTRY("i8", AMQP_FIELD_KIND_I8, i8, -100);
    ENTRY("u8", AMQP_FIELD_KIND_U8, u8, 200);
    ENTRY("i16", AMQP_FIELD_KIND_I16, i16, -30000);
    ENTRY("u16", AMQP_FIELD_KIND_U16, u16, 60000);
    ENTRY("i32", AMQP_FIELD_KIND_I32, i32, -2000000000);
    ENTRY("u32", AMQP_FIELD_KIND_U32, u32, 4000000000u);
    ENTRY("i64", AMQP_FIELD_KIND_I64, i64, -5000000000000ll);
    ENTRY("u64", AMQP_FIELD_KIND_U64, u64, 18000000000000000000ull);
    ENTRY("f32", AMQP_FIELD_KIND_F32, f32, 3.25f);
    ENTRY("f64", AMQP_FIELD_KIND_F64, f64, -2.5e-100);
    ENTRY("decimal", AMQP_FIELD_KIND_DECIMAL, decimal, ((amqp_decimal_t){4, 123456789}));
    ENTRY("utf8", AMQP_FIELD_KIND_UTF8, bytes, their_bytes(their_long, sizeof(their_long)));
    ENTRY("bytes", AMQP_FIELD_KIND_BYTES, bytes, their_bytes("\0\1\2\3", 4));
    ENTRY("timestamp", AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000000ull);
    ENTRY("void", AMQP_FIELD_KIND_VOID, u8, 0);
    ENTRY("array", AMQP_FIELD_KIND_ARRAY, array, ((amqp_array_t){4, their_array_values}));
    ENTRY("table", AMQP_FIELD_KIND_TABLE, table, ((amqp_table_t){2, their_inner_entries}));
#undef ENTRY
    their_table = (amqp_table_t){n, their_entries};
}

static void assert_value_matches(const struct table_value *ours, const amqp_field_value_t *theirs);

static void assert_table_matches(struct proto_bytes ours, const amqp_table_t *theirs)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    int i = 0;

    table_iter_init(&it, ours);
    while (table_next(&it, &key, &value) > 0) {
        assert_true(i < theirs->num_entries);
        const amqp_table_entry_t *entry = &theirs->entries[i++];
        assert_int_equal(key.len, entry->key.len);
        assert_memory_equal(key.ptr, entry->key.bytes, key.len);
        assert_value_matches(&value, &entry->value);
    }
    assert_int_equal(table_next(&it, &key, &value), 0);
    assert_int_equal(i, theirs->num_entries);
}

static void assert_array_matches(struct proto_bytes ours, const amqp_array_t *theirs)
{
    struct table_iter it;
    struct table_value value;
    int i = 0;

    table_iter_init(&it, ours);
    while (array_next(&it, &value) > 0) {
        assert_true(i < theirs->num_entries);
        assert_value_matches(&value, &theirs->entries[i++]);
    }
    assert_int_equal(array_next(&it, &value), 0);
    assert_int_equal(i, theirs->num_entries);
}

static void assert_value_matches(const struct table_value *ours, const amqp_field_value_t *theirs)
{
    assert_int_equal(ours->type, theirs->kind);
    switch (ours->type) {
    case TABLE_BOOL:
        assert_int_equal(ours->v.boolean, theirs->value.boolean != 0);
        break;
    case TABLE_INT8:
        assert_int_equal(ours->v.i8, theirs->value.i8);
        break;
    case TABLE_UINT8:
        assert_int_equal(ours->v.u8, theirs->value.u8);
        break;
    case TABLE_INT16:
        assert_int_equal(ours->v.i16, theirs->value.i16);
        break;
    case TABLE_UINT16:
        assert_int_equal(ours->v.u16, theirs->value.u16);
        break;
    case TABLE_INT32:
        assert_int_equal(ours->v.i32, theirs->value.i32);
        break;
    case TABLE_UINT32:
        assert_int_equal(ours->v.u32, theirs->value.u32);
        break;
    case TABLE_INT64:
        assert_true(ours->v.i64 == theirs->value.i64);
        break;
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        assert_true(ours->v.u64 == theirs->value.u64);
        break;
    case TABLE_FLOAT:
        assert_memory_equal(&ours->v.f32, &theirs->value.f32, sizeof(float));
        break;
    case TABLE_DOUBLE:
        assert_memory_equal(&ours->v.f64, &theirs->value.f64, sizeof(double));
        break;
    case TABLE_DECIMAL:
        assert_int_equal(ours->v.decimal.scale, theirs->value.decimal.decimals);
        assert_int_equal(ours->v.decimal.value, theirs->value.decimal.value);
        break;
    case TABLE_LONGSTR:
    case TABLE_BYTES:
        assert_int_equal(ours->v.bytes.len, theirs->value.bytes.len);
        if (ours->v.bytes.len > 0)
            assert_memory_equal(ours->v.bytes.ptr, theirs->value.bytes.bytes, ours->v.bytes.len);
        break;
    case TABLE_ARRAY:
        assert_array_matches(ours->v.bytes, &theirs->value.array);
        break;
    case TABLE_TABLE:
        assert_table_matches(ours->v.bytes, &theirs->value.table);
        break;
    case TABLE_VOID:
        break;
    default:
        fail_msg("unexpected type %c", ours->type);
    }
}

/* Our table with the same contents as their_table, built with our encoder. */
static struct table_buf our_table;

static void build_our_table(void)
{
    struct table_buf array = {0}, inner = {0};
    struct table_value v;

    for (int i = 0; i < 4; i++) {
        const amqp_field_value_t *e = &their_array_values[i];
        v = (struct table_value){.type = e->kind};
        if (e->kind == AMQP_FIELD_KIND_U16)
            v.v.u16 = e->value.u16;
        else if (e->kind == AMQP_FIELD_KIND_UTF8)
            v.v.bytes = (struct proto_bytes){e->value.bytes.bytes, (uint32_t)e->value.bytes.len};
        else if (e->kind == AMQP_FIELD_KIND_I64)
            v.v.i64 = e->value.i64;
        assert_int_equal(table_buf_put_value(&array, &v), 0);
    }
    v = (struct table_value){.type = TABLE_BOOL, .v.boolean = true};
    assert_int_equal(table_buf_put_field(&inner, "deep", 4, &v), 0);
    v = (struct table_value){.type = TABLE_ARRAY, .v.bytes = {array.data, (uint32_t)array.len}};
    assert_int_equal(table_buf_put_field(&inner, "list", 4, &v), 0);

#define PUT(key, t, member, val) \
    do { v = (struct table_value){.type = t, .v.member = val}; \
         assert_int_equal(table_buf_put_field(&our_table, key, strlen(key), &v), 0); } while (0)
    PUT("bool", TABLE_BOOL, boolean, true);
    PUT("i8", TABLE_INT8, i8, -100);
    PUT("u8", TABLE_UINT8, u8, 200);
    PUT("i16", TABLE_INT16, i16, -30000);
    PUT("u16", TABLE_UINT16, u16, 60000);
    PUT("i32", TABLE_INT32, i32, -2000000000);
    PUT("u32", TABLE_UINT32, u32, 4000000000u);
    PUT("i64", TABLE_INT64, i64, -5000000000000ll);
    PUT("u64", TABLE_UINT64, u64, 18000000000000000000ull);
    PUT("f32", TABLE_FLOAT, f32, 3.25f);
    PUT("f64", TABLE_DOUBLE, f64, -2.5e-100);
    v = (struct table_value){.type = TABLE_DECIMAL, .v.decimal = {4, 123456789}};
    assert_int_equal(table_buf_put_field(&our_table, "decimal", 7, &v), 0);
    PUT("utf8", TABLE_LONGSTR, bytes,
        ((struct proto_bytes){(const uint8_t *)their_long, sizeof(their_long)}));
    PUT("bytes", TABLE_BYTES, bytes, ((struct proto_bytes){(const uint8_t *)"\0\1\2\3", 4}));
    PUT("timestamp", TABLE_TIMESTAMP, u64, 1700000000ull);
    v = (struct table_value){.type = TABLE_VOID};
    assert_int_equal(table_buf_put_field(&our_table, "void", 4, &v), 0);
    PUT("array", TABLE_ARRAY, bytes, ((struct proto_bytes){array.data, (uint32_t)array.len}));
    PUT("table", TABLE_TABLE, bytes, ((struct proto_bytes){inner.data, (uint32_t)inner.len}));
#undef PUT
    table_buf_free(&array);
    table_buf_free(&inner);
}

static int setup(void **state)
{
    (void)state;
    build_their_table();
    build_our_table();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    table_buf_free(&our_table);
    return 0;
}

static void tables_they_encode_we_decode(void **state)
{
    (void)state;
    static uint8_t wire[8192];
    size_t offset = 0;
    assert_int_equal(amqp_encode_table((amqp_bytes_t){sizeof(wire), wire}, &their_table, &offset),
                     AMQP_STATUS_OK);
    assert_true(offset > 4);

    uint8_t *contents = exact_copy(wire + 4, offset - 4);
    struct proto_bytes table = {contents, (uint32_t)(offset - 4)};
    assert_int_equal(table_validate(table), 0);
    assert_table_matches(table, &their_table);
    /* The same values written by our encoder give the same bytes. */
    assert_int_equal(our_table.len, table.len);
    assert_memory_equal(our_table.data, contents, table.len);
    free(contents);
}

static void tables_we_encode_they_decode(void **state)
{
    (void)state;
    static uint8_t wire[8192];
    amqp_pool_t pool;
    amqp_table_t decoded;
    size_t offset = 0;

    wire[0] = (uint8_t)(our_table.len >> 24);
    wire[1] = (uint8_t)(our_table.len >> 16);
    wire[2] = (uint8_t)(our_table.len >> 8);
    wire[3] = (uint8_t)our_table.len;
    memcpy(wire + 4, our_table.data, our_table.len);
    init_amqp_pool(&pool, 4096);
    assert_int_equal(amqp_decode_table((amqp_bytes_t){4 + our_table.len, wire}, &pool, &decoded,
                                       &offset),
                     AMQP_STATUS_OK);
    assert_int_equal(offset, 4 + our_table.len);
    assert_table_matches((struct proto_bytes){our_table.data, (uint32_t)our_table.len}, &decoded);
    empty_amqp_pool(&pool);
}

/* Values for one field, varied by seed; strings live in static storage. */
static char long_text[1200];

static void fill_pair(const struct pair *p, unsigned i, unsigned seed, void *ours, void *theirs)
{
    uint8_t *o = (uint8_t *)ours + p->ours, *t = (uint8_t *)theirs + p->theirs;
    static const char *const texts[] = {"", "amq.topic", "a.b.#", "ctag-\x01\xff"};

    switch (p->kind) {
    case K_U8:
        *o = *t = (uint8_t)(0xC3 ^ seed ^ i);
        break;
    case K_U16:
        *(uint16_t *)(void *)o = *(uint16_t *)(void *)t = (uint16_t)(0xA1B2 ^ (seed << 4) ^ i);
        break;
    case K_U32:
        *(uint32_t *)(void *)o = *(uint32_t *)(void *)t = 0xF1E2D3C4u ^ (seed << 12) ^ i;
        break;
    case K_U64:
        *(uint64_t *)(void *)o = *(uint64_t *)(void *)t =
            0x8877665544332211ull ^ ((uint64_t)seed << 50) ^ i;
        break;
    case K_BIT: {
        bool bit = (seed >> (i % 8)) & 1u;
        *(bool *)o = bit;
        *(amqp_boolean_t *)(void *)t = bit;
        break;
    }
    case K_SHORTSTR:
    case K_LONGSTR: {
        const char *text = texts[(i + seed) % 4];
        size_t len = strlen(text);
        if ((i + seed) % 5 == 4) {
            text = long_text;
            len = p->kind == K_SHORTSTR ? 255 : sizeof(long_text);
        }
        *(struct proto_bytes *)(void *)o =
            (struct proto_bytes){(const uint8_t *)text, (uint32_t)len};
        *(amqp_bytes_t *)(void *)t = their_bytes(text, len);
        break;
    }
    case K_TABLE:
        if (seed % 2) {
            *(struct proto_bytes *)(void *)o =
                (struct proto_bytes){our_table.data, (uint32_t)our_table.len};
            *(amqp_table_t *)(void *)t = their_table;
        } else {
            *(struct proto_bytes *)(void *)o = (struct proto_bytes){NULL, 0};
            *(amqp_table_t *)(void *)t = amqp_empty_table;
        }
        break;
    }
}

static void assert_pair_matches(const struct pair *p, const void *ours, const void *theirs)
{
    const uint8_t *o = (const uint8_t *)ours + p->ours, *t = (const uint8_t *)theirs + p->theirs;

    switch (p->kind) {
    case K_U8:
        assert_int_equal(*o, *t);
        break;
    case K_U16:
        assert_int_equal(*(const uint16_t *)(const void *)o, *(const uint16_t *)(const void *)t);
        break;
    case K_U32:
        assert_int_equal(*(const uint32_t *)(const void *)o, *(const uint32_t *)(const void *)t);
        break;
    case K_U64:
        assert_true(*(const uint64_t *)(const void *)o == *(const uint64_t *)(const void *)t);
        break;
    case K_BIT:
        assert_int_equal(*(const bool *)o, *(const amqp_boolean_t *)(const void *)t != 0);
        break;
    case K_SHORTSTR:
    case K_LONGSTR: {
        const struct proto_bytes *b = (const struct proto_bytes *)(const void *)o;
        const amqp_bytes_t *a = (const amqp_bytes_t *)(const void *)t;
        assert_int_equal(b->len, a->len);
        if (b->len > 0)
            assert_memory_equal(b->ptr, a->bytes, b->len);
        break;
    }
    case K_TABLE:
        assert_table_matches(*(const struct proto_bytes *)(const void *)o,
                             (const amqp_table_t *)(const void *)t);
        break;
    }
}

static const unsigned seeds[] = {0x00, 0xFF, 0x2D, 0x96, 0x53};

static void every_method_they_know_is_cross_checked(void **state)
{
    (void)state;
    size_t shared = 0;
    for (size_t i = 0; i < sizeof(rabbitmq_c_methods) / sizeof(rabbitmq_c_methods[0]); i++) {
        uint32_t id = rabbitmq_c_methods[i];
        bool listed = false;
        for (size_t k = 0; k < METHOD_COUNT; k++)
            listed |= methods[k].id == id;
        /* access.request/-ok: the 0-8 ticket scheme, absent from 0-9-1 as RabbitMQ ships it. */
        assert_true(listed != (SPEC_METHOD_CLASS(id) == 30));
        assert_int_equal(spec_method_is_known(id), listed);
        if (listed) {
            /* "basic.recover-async" is theirs "AMQP_BASIC_RECOVER_ASYNC_METHOD". */
            char name[64];
            int len = snprintf(name, sizeof(name), "AMQP_%s_METHOD", spec_method_name(id));
            for (int j = 0; j < len; j++)
                name[j] = name[j] == '.' || name[j] == '-' ? '_' : (char)toupper(name[j]);
            assert_string_equal(name, amqp_method_name(id));
            shared++;
        }
    }
    assert_int_equal(shared, METHOD_COUNT);
    /* Ours beyond rabbitmq-c 0.11: connection.update-secret and its -ok. */
    assert_int_equal(spec_method_count, METHOD_COUNT + 2);
}

static void methods_they_encode_we_decode(void **state)
{
    (void)state;
    static uint8_t theirs[512], wire[8192], again[8192];
    memset(long_text, 'q', sizeof(long_text));

    for (size_t k = 0; k < METHOD_COUNT; k++) {
        const struct cross_method *c = &methods[k];
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
            struct spec_method expected = {.id = c->id}, got;
            memset(theirs, 0, sizeof(theirs));
            for (size_t f = 0; f < c->pair_count; f++)
                fill_pair(&c->pairs[f], (unsigned)f, seeds[s], &expected.args, theirs);

            wire[0] = 0;
            wire[1] = (uint8_t)SPEC_METHOD_CLASS(c->id);
            wire[2] = 0;
            wire[3] = (uint8_t)SPEC_METHOD_INDEX(c->id);
            int n = amqp_encode_method(c->id, theirs, (amqp_bytes_t){sizeof(wire) - 4, wire + 4});
            assert_true(n >= 0);

            uint8_t *copy = exact_copy(wire, 4 + (size_t)n);
            int rc = spec_method_decode(copy, 4 + (size_t)n, &got);
            if (rc != 0)
                fail_msg("%s: decode failed: %s", spec_method_name(c->id), proto_strerror(rc));
            for (size_t f = 0; f < c->pair_count; f++)
                assert_pair_matches(&c->pairs[f], &got.args, theirs);

            long m = spec_method_encode(&got, again, sizeof(again));
            assert_int_equal(m, 4 + n);
            assert_memory_equal(again, wire, (size_t)m);
            free(copy);
        }
    }
}

static void methods_we_encode_they_decode(void **state)
{
    (void)state;
    static uint8_t scratch[512], wire[8192], again[8192];
    memset(long_text, 'w', sizeof(long_text));

    for (size_t k = 0; k < METHOD_COUNT; k++) {
        const struct cross_method *c = &methods[k];
        for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
            struct spec_method sent = {.id = c->id};
            for (size_t f = 0; f < c->pair_count; f++)
                fill_pair(&c->pairs[f], (unsigned)f, seeds[s] ^ 0x5A, &sent.args, scratch);
            long n = spec_method_encode(&sent, wire, sizeof(wire));
            assert_true(n >= 4);

            amqp_pool_t pool;
            void *decoded = NULL;
            init_amqp_pool(&pool, 4096);
            int rc = amqp_decode_method(c->id, &pool, (amqp_bytes_t){(size_t)n - 4, wire + 4},
                                        &decoded);
            if (rc != AMQP_STATUS_OK)
                fail_msg("%s: rabbitmq-c refused our bytes: %d", spec_method_name(c->id), rc);
            for (size_t f = 0; f < c->pair_count; f++)
                assert_pair_matches(&c->pairs[f], &sent.args, decoded);

            int m = amqp_encode_method(c->id, decoded, (amqp_bytes_t){sizeof(again), again});
            assert_int_equal(m, n - 4);
            assert_memory_equal(again, wire + 4, (size_t)m);
            empty_amqp_pool(&pool);
        }
    }
}

static void properties_cross_check_both_ways(void **state)
{
    (void)state;
    static uint8_t wire[8192], again[8192];
    memset(long_text, 'p', sizeof(long_text));

    for (int all = 0; all <= 1; all++) {
        amqp_basic_properties_t theirs;
        memset(&theirs, 0, sizeof(theirs));
        if (all) {
            theirs._flags = 0xFFFC; /* all 14 */
            theirs.content_type = their_bytes("application/octet-stream", 24);
            theirs.content_encoding = their_bytes("identity", 8);
            theirs.headers = their_table;
            theirs.delivery_mode = 2;
            theirs.priority = 7;
            theirs.correlation_id = their_bytes(long_text, 255);
            theirs.reply_to = their_bytes("reply", 5);
            theirs.expiration = their_bytes("1000", 4);
            theirs.message_id = their_bytes("m-1", 3);
            theirs.timestamp = 0x0102030405060708ull;
            theirs.type = their_bytes("t", 1);
            theirs.user_id = their_bytes("guest", 5);
            theirs.app_id = their_bytes("app", 3);
            theirs.cluster_id = their_bytes("", 0);
        }
        /* Header frame payload: class, weight, body size, then what rabbitmq-c encodes. */
        const uint8_t prefix[12] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00};
        memcpy(wire, prefix, sizeof(prefix));
        int n = amqp_encode_properties(60, &theirs, (amqp_bytes_t){sizeof(wire) - 12, wire + 12});
        assert_true(n >= 2);

        struct spec_content_header h;
        uint8_t *copy = exact_copy(wire, 12 + (size_t)n);
        assert_int_equal(spec_content_header_decode(copy, 12 + (size_t)n, &h), 0);
        assert_int_equal(h.body_size, 4096);
        assert_int_equal(h.props.flags, theirs._flags);
        const struct spec_basic_properties *p = &h.props;
        assert_int_equal(p->content_type.len, theirs.content_type.len);
        assert_int_equal(p->delivery_mode, theirs.delivery_mode);
        assert_int_equal(p->priority, theirs.priority);
        assert_true(p->timestamp == theirs.timestamp);
        if (all) {
            assert_table_matches(p->headers, &theirs.headers);
            assert_memory_equal(p->content_type.ptr, theirs.content_type.bytes, 24);
            assert_memory_equal(p->correlation_id.ptr, long_text, 255);
            assert_memory_equal(p->user_id.ptr, "guest", 5);
            assert_memory_equal(p->app_id.ptr, "app", 3);
            assert_int_equal(p->reserved.len, 0);
        }

        /* And back: our encoding of what we decoded is byte-identical, and rabbitmq-c reads it. */
        long m = spec_content_header_encode(&h, again, sizeof(again));
        assert_int_equal(m, 12 + n);
        assert_memory_equal(again, wire, (size_t)m);
        amqp_pool_t pool;
        amqp_basic_properties_t *decoded = NULL;
        init_amqp_pool(&pool, 4096);
        amqp_bytes_t encoded = {(size_t)m - 12, again + 12};
        assert_int_equal(amqp_decode_properties(60, &pool, encoded, (void **)&decoded),
                         AMQP_STATUS_OK);
        assert_int_equal(decoded->_flags, theirs._flags);
        assert_int_equal(decoded->message_id.len, theirs.message_id.len);
        assert_int_equal(decoded->priority, theirs.priority);
        if (all)
            assert_table_matches(p->headers, &decoded->headers);
        empty_amqp_pool(&pool);
        free(copy);
    }
}

static void constants_agree(void **state)
{
    (void)state;
    assert_int_equal(SPEC_BASIC_PUBLISH, AMQP_BASIC_PUBLISH_METHOD);
    assert_int_equal(SPEC_CONNECTION_BLOCKED, AMQP_CONNECTION_BLOCKED_METHOD);
    assert_int_equal(SPEC_BASIC_CONTENT_TYPE_FLAG, AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_int_equal(SPEC_BASIC_RESERVED_FLAG, AMQP_BASIC_CLUSTER_ID_FLAG);
    assert_int_equal(SPEC_BASIC_TIMESTAMP_FLAG, AMQP_BASIC_TIMESTAMP_FLAG);
    assert_int_equal(SPEC_FRAME_MIN_SIZE, AMQP_FRAME_MIN_SIZE);
    assert_int_equal(SPEC_NO_ROUTE, AMQP_NO_ROUTE);
    assert_int_equal(SPEC_NOT_FOUND, AMQP_NOT_FOUND);
    for (uint16_t code = 200; code < 600; code++) {
        const char *theirs = amqp_constant_name(code);
        if (strcmp(theirs, "(unknown)") == 0 || code == SPEC_FRAME_END)
            continue; /* 206 is the frame-end octet, a constant but no reply code */
        assert_non_null(spec_reply_code_name(code));
        assert_string_equal(spec_reply_code_name(code), theirs + 5);
        assert_int_equal(spec_reply_code_is_hard(code), amqp_constant_is_hard_error(code) != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tables_they_encode_we_decode),
        cmocka_unit_test(tables_we_encode_they_decode),
        cmocka_unit_test(every_method_they_know_is_cross_checked),
        cmocka_unit_test(methods_they_encode_we_decode),
        cmocka_unit_test(methods_we_encode_they_decode),
        cmocka_unit_test(properties_cross_check_both_ways),
        cmocka_unit_test(constants_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
