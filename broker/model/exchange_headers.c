/* broker/model/exchange_headers.c: the headers exchange, matching a message's headers table
 * against each binding's arguments as RabbitMQ does.
 *
 * x-match (a longstr) picks the rule: "all" (the default when absent) needs every binding
 * argument matched, "any" at least one; "all-with-x" and "any-with-x" do the same but also
 * count arguments named "x-...", which the plain variants ignore. x-match itself is never an
 * argument to match. So "all" with nothing to match routes every message, "any" none.
 *
 * An argument matches when the headers hold the same key (its first occurrence) and either
 * the argument is void ('V': presence is enough) or the values are equal as RabbitMQ 3.10
 * finds them: it decodes both tables to Erlang terms and compares values with ==. So every
 * number compares by value across types: the integer types (b B s u I i l L), the timestamp
 * (T, an integer there) and float and double (f d), an integer 1 equalling a double 1.0; a
 * longstr equals a byte array ('x') with the same bytes (both are binaries there). A decimal
 * (a {scale, value} pair there) equals only the same decimal, a boolean only a boolean, and
 * arrays and tables compare exactly, type tags included, as their tagged Erlang terms do.
 *
 * There is no index: each route tests every binding, as RabbitMQ does. Each binding's
 * arguments are decoded once, at bind time, into views of the binding's own copy. */
#include "router_type.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* Message headers decoded per route on the stack; a longer table is read on from there. */
#define HEADERS_CACHED 32

struct headers_argument {
    struct proto_bytes key;
    struct table_value value;
};

struct headers_binding {
    bool any;
    size_t count;
    struct headers_argument arguments[];
};

/* The message headers being routed. */
struct header_cache {
    struct proto_bytes keys[HEADERS_CACHED];
    struct table_value values[HEADERS_CACHED];
    size_t count;
    bool more;                 /* fields past the cached ones, read on from rest */
    struct table_iter rest;
};

/* Reads x-match. Returns 0, or -EINVAL for a non-longstr or unknown value (RabbitMQ: 406). */
static int parse_x_match(struct proto_bytes arguments, bool *any, bool *with_x)
{
    struct table_value mode;
    int found = table_find(arguments, "x-match", &mode);
    *any = false;
    *with_x = false;
    if (found < 0)
        return -EINVAL;
    if (found == 0)
        return 0;
    if (mode.type != TABLE_LONGSTR)
        return -EINVAL;
    if (proto_bytes_is(mode.v.bytes, "all"))
        return 0;
    if (proto_bytes_is(mode.v.bytes, "any")) {
        *any = true;
        return 0;
    }
    if (proto_bytes_is(mode.v.bytes, "all-with-x")) {
        *with_x = true;
        return 0;
    }
    if (proto_bytes_is(mode.v.bytes, "any-with-x")) {
        *any = true;
        *with_x = true;
        return 0;
    }
    return -EINVAL;
}

static bool matchable(struct proto_bytes key, bool with_x)
{
    if (proto_bytes_is(key, "x-match"))
        return false;
    return with_x || key.len < 2 || key.ptr[0] != 'x' || key.ptr[1] != '-';
}

static int headers_bind(void **index, struct router_binding *binding)
{
    struct proto_bytes arguments = binding->arguments;
    bool any, with_x;
    if (table_validate(arguments) < 0 || parse_x_match(arguments, &any, &with_x) < 0)
        return -EINVAL;

    struct table_iter it;
    struct proto_bytes key;
    struct table_value value;
    size_t count = 0;
    table_iter_init(&it, arguments);
    while (table_next(&it, &key, &value) == 1)
        count += matchable(key, with_x);

    struct headers_binding *parsed = calloc(1, sizeof(*parsed) + count * sizeof(parsed->arguments[0]));
    if (parsed == NULL)
        return -ENOMEM;
    parsed->any = any;
    table_iter_init(&it, arguments);
    while (parsed->count < count && table_next(&it, &key, &value) == 1) {
        if (matchable(key, with_x))
            parsed->arguments[parsed->count++] = (struct headers_argument){key, value};
    }

    struct router_binding *bindings = *index;
    router_binding_list_append(&bindings, binding);
    *index = bindings;
    binding->type_data = parsed;
    return 0;
}

static void headers_unbind(void **index, struct router_binding *binding)
{
    struct router_binding *bindings = *index;
    router_binding_list_remove(&bindings, binding);
    *index = bindings;
    free(binding->type_data);
    binding->type_data = NULL;
}

/* A number as RabbitMQ's decoder makes it: an integer as (negative, magnitude), so every
 * width and signedness compares exactly, or a floating-point value. */
struct number {
    bool is_float;
    bool negative;
    uint64_t magnitude;
    double real;
};

static bool number_of(const struct table_value *value, struct number *out)
{
    int64_t n;
    *out = (struct number){0};
    switch (value->type) {
    case TABLE_INT8: n = value->v.i8; break;
    case TABLE_INT16: n = value->v.i16; break;
    case TABLE_INT32: n = value->v.i32; break;
    case TABLE_INT64: n = value->v.i64; break;
    case TABLE_UINT8: out->magnitude = value->v.u8; return true;
    case TABLE_UINT16: out->magnitude = value->v.u16; return true;
    case TABLE_UINT32: out->magnitude = value->v.u32; return true;
    case TABLE_UINT64:
    case TABLE_TIMESTAMP: out->magnitude = value->v.u64; return true;
    case TABLE_FLOAT: out->is_float = true; out->real = value->v.f32; return true;
    case TABLE_DOUBLE: out->is_float = true; out->real = value->v.f64; return true;
    default: return false;
    }
    out->negative = n < 0;
    out->magnitude = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    return true;
}

/* Erlang's == between an integer and a float: exact, true only for a float with no fraction
 * that is the same integer (no rounding of either side). */
static bool integer_equals_float(const struct number *integer, double real)
{
    if (real != real || __builtin_trunc(real) != real)
        return false; /* NaN, or a fraction */
    if (real < 0) {
        if (!integer->negative || real < -9223372036854775808.0)
            return false;
        return (uint64_t)0 - (uint64_t)(int64_t)real == integer->magnitude;
    }
    if (integer->negative && integer->magnitude != 0)
        return false;
    if (real >= 18446744073709551616.0)
        return false;
    return (uint64_t)real == integer->magnitude;
}

static bool numbers_equal(const struct number *a, const struct number *b)
{
    if (a->is_float && b->is_float)
        return a->real == b->real;
    if (a->is_float)
        return integer_equals_float(b, a->real);
    if (b->is_float)
        return integer_equals_float(a, b->real);
    return a->negative == b->negative && a->magnitude == b->magnitude;
}

static bool is_binary(uint8_t type) { return type == TABLE_LONGSTR || type == TABLE_BYTES; }

static bool values_equal(const struct table_value *a, const struct table_value *b)
{
    struct number x, y;
    if (number_of(a, &x) && number_of(b, &y))
        return numbers_equal(&x, &y);
    if (is_binary(a->type) && is_binary(b->type))
        return proto_bytes_equal(a->v.bytes, b->v.bytes);
    return table_value_equal(a, b);
}

static void cache_fill(struct header_cache *cache, struct proto_bytes headers)
{
    struct table_iter it;
    table_iter_init(&it, headers);
    cache->count = 0;
    cache->more = false;
    while (cache->count < HEADERS_CACHED) {
        if (table_next(&it, &cache->keys[cache->count], &cache->values[cache->count]) != 1)
            return;
        cache->count++;
    }
    cache->more = true;
    cache->rest = it;
}

/* The value of the first header named key, or NULL. scratch may receive it. */
static const struct table_value *cache_lookup(const struct header_cache *cache,
                                              struct proto_bytes key, struct table_value *scratch)
{
    for (size_t i = 0; i < cache->count; i++) {
        if (proto_bytes_equal(cache->keys[i], key))
            return &cache->values[i];
    }
    if (cache->more) {
        struct table_iter it = cache->rest;
        struct proto_bytes name;
        while (table_next(&it, &name, scratch) == 1) {
            if (proto_bytes_equal(name, key))
                return scratch;
        }
    }
    return NULL;
}

static bool binding_matches(const struct headers_binding *parsed, const struct header_cache *cache)
{
    for (size_t i = 0; i < parsed->count; i++) {
        const struct headers_argument *argument = &parsed->arguments[i];
        struct table_value scratch;
        const struct table_value *header = cache_lookup(cache, argument->key, &scratch);
        bool matched = header != NULL &&
                       (argument->value.type == TABLE_VOID || values_equal(&argument->value, header));
        if (matched && parsed->any)
            return true;
        if (!matched && !parsed->any)
            return false;
    }
    return !parsed->any;
}

static int headers_route(const struct router *router, void *index, struct proto_bytes routing_key,
                         struct proto_bytes headers, struct route_set *out)
{
    (void)router;
    (void)routing_key;
    struct header_cache cache;
    cache_fill(&cache, headers);
    for (struct router_binding *binding = index; binding != NULL; binding = binding->type_next) {
        if (route_set_contains(out, binding->destination))
            continue;
        if (binding_matches(binding->type_data, &cache) &&
            route_set_add(out, binding->destination) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void headers_destroy(void *index)
{
    for (struct router_binding *binding = index; binding != NULL; binding = binding->type_next)
        free(binding->type_data);
}

const struct router_type router_type_headers = {
    .name = "headers",
    .bind = headers_bind,
    .unbind = headers_unbind,
    .route = headers_route,
    .destroy = headers_destroy,
};
