/* broker/admin/mgmt_json.c: the model's values as JSON and back: arbitrary bytes (AMQP names
 * need not be UTF-8) as JSON strings, and AMQP field tables as JSON objects the way RabbitMQ's
 * management API renders arguments and headers. Tables are walked with an explicit bound on
 * depth (the codec already refuses deeper tables; this keeps the C stack bounded anyway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "mgmt_internal.h"
#include "table.h"
#include "utf8.h"

#define MAX_DEPTH 64

json_t *mgmt_string(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (utf8_valid(u, len))
        return json_stringn_nocheck(s ? s : "", len);
    size_t i = 0, bad = 0;
    while (i < len) {
        size_t n = utf8_sequence(u + i, len - i);
        if (n == 0) {
            bad++;
            n = 1;
        }
        i += n;
    }
    char *fixed = malloc(len + bad * 2 + 1);
    if (!fixed)
        return NULL;
    size_t out = 0;
    for (i = 0; i < len;) {
        size_t n = utf8_sequence(u + i, len - i);
        if (n == 0) {
            memcpy(fixed + out, "\xef\xbf\xbd", 3); /* U+FFFD */
            out += 3;
            i++;
        } else {
            memcpy(fixed + out, s + i, n);
            out += n;
            i += n;
        }
    }
    json_t *v = json_stringn_nocheck(fixed, out);
    free(fixed);
    return v;
}

json_t *mgmt_bytes(struct proto_bytes b)
{
    return mgmt_string((const char *)b.ptr, b.len);
}

static json_t *table_or_array(struct proto_bytes contents, bool is_table, int depth);

static json_t *value_json(const struct table_value *v, int depth)
{
    switch (v->type) {
    case TABLE_BOOL:
        return json_boolean(v->v.boolean);
    case TABLE_INT8:
        return json_integer(v->v.i8);
    case TABLE_UINT8:
        return json_integer(v->v.u8);
    case TABLE_INT16:
        return json_integer(v->v.i16);
    case TABLE_UINT16:
        return json_integer(v->v.u16);
    case TABLE_INT32:
        return json_integer(v->v.i32);
    case TABLE_UINT32:
        return json_integer(v->v.u32);
    case TABLE_INT64:
        return json_integer(v->v.i64);
    case TABLE_UINT64:
    case TABLE_TIMESTAMP:
        return v->v.u64 > INT64_MAX ? json_real((double)v->v.u64) : json_integer((json_int_t)v->v.u64);
    case TABLE_FLOAT:
        return json_real(v->v.f32);
    case TABLE_DOUBLE:
        return json_real(v->v.f64);
    case TABLE_DECIMAL: {
        double d = v->v.decimal.value;
        for (unsigned i = 0; i < v->v.decimal.scale; i++)
            d /= 10;
        return json_real(d);
    }
    case TABLE_LONGSTR:
    case TABLE_BYTES:
        return mgmt_bytes(v->v.bytes);
    case TABLE_ARRAY:
        return table_or_array(v->v.bytes, false, depth + 1);
    case TABLE_TABLE:
        return table_or_array(v->v.bytes, true, depth + 1);
    default:
        return json_null();
    }
}

static json_t *table_or_array(struct proto_bytes contents, bool is_table, int depth)
{
    if (depth > MAX_DEPTH)
        return json_string("(nested too deep)");
    json_t *out = is_table ? json_object() : json_array();
    if (!out)
        return NULL;
    struct table_iter it;
    table_iter_init(&it, contents);
    for (;;) {
        struct proto_bytes key;
        struct table_value v;
        int rc = is_table ? table_next(&it, &key, &v) : array_next(&it, &v);
        if (rc <= 0)
            break;
        json_t *j = value_json(&v, depth);
        if (!j)
            continue;
        if (!is_table) {
            json_array_append_new(out, j);
            continue;
        }
        char name[256 * 3 + 1];
        json_t *k = mgmt_bytes(key);
        if (k && json_string_length(k) < sizeof name) {
            memcpy(name, json_string_value(k), json_string_length(k) + 1);
            json_object_set_new_nocheck(out, name, j);
        } else {
            json_decref(j);
        }
        json_decref(k);
    }
    return out;
}

json_t *mgmt_table(struct proto_bytes table)
{
    return table_or_array(table, true, 0);
}

void mgmt_write_table(struct jw *w, struct proto_bytes table)
{
    if (table.len == 0) {
        jw_object_begin(w);
        jw_object_end(w);
        return;
    }
    mgmt_write_json(w, mgmt_table(table));
}

void mgmt_write_json(struct jw *w, json_t *v)
{
    jw_json(w, v);
    json_decref(v);
}

json_t *mgmt_writer_json(struct jw *w)
{
    json_t *doc = NULL;
    if (!jw_failed(w))
        doc = json_loadb(w->out.data, w->out.len, 0, NULL);
    jw_free(w);
    return doc;
}

static int put_json(struct table_buf *out, const char *key, size_t key_len, bool in_array, const json_t *v,
                    int depth, char *why, size_t why_len);

static int put_container(struct table_buf *out, const char *key, size_t key_len, bool in_array, const json_t *v,
                         int depth, char *why, size_t why_len)
{
    struct table_buf inner = {0};
    int rc = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *member;
        json_object_foreach((json_t *)v, k, member) {
            rc = put_json(&inner, k, strlen(k), false, member, depth + 1, why, why_len);
            if (rc != 0)
                break;
        }
    } else {
        size_t i;
        json_t *member;
        json_array_foreach(v, i, member) {
            rc = put_json(&inner, NULL, 0, true, member, depth + 1, why, why_len);
            if (rc != 0)
                break;
        }
    }
    if (rc == 0) {
        struct table_value tv = {.type = json_is_object(v) ? TABLE_TABLE : TABLE_ARRAY};
        tv.v.bytes = (struct proto_bytes){inner.data, (uint32_t)inner.len};
        rc = in_array ? table_buf_put_value(out, &tv) : table_buf_put_field(out, key, key_len, &tv);
        if (rc != 0)
            snprintf(why, why_len, "argument table too large or key too long");
    }
    table_buf_free(&inner);
    return rc;
}

static int put_json(struct table_buf *out, const char *key, size_t key_len, bool in_array, const json_t *v,
                    int depth, char *why, size_t why_len)
{
    if (depth > MAX_DEPTH) {
        snprintf(why, why_len, "arguments nested too deep");
        return -1;
    }
    if (!in_array && key_len > 255) {
        snprintf(why, why_len, "argument name longer than 255 bytes");
        return -1;
    }
    if (json_is_object(v) || json_is_array(v))
        return put_container(out, key, key_len, in_array, v, depth, why, why_len);
    struct table_value tv = {.type = TABLE_VOID};
    if (json_is_string(v)) {
        tv.type = TABLE_LONGSTR;
        tv.v.bytes = (struct proto_bytes){(const uint8_t *)json_string_value(v), (uint32_t)json_string_length(v)};
    } else if (json_is_integer(v)) {
        tv.type = TABLE_INT64;
        tv.v.i64 = json_integer_value(v);
    } else if (json_is_real(v)) {
        tv.type = TABLE_DOUBLE;
        tv.v.f64 = json_real_value(v);
    } else if (json_is_boolean(v)) {
        tv.type = TABLE_BOOL;
        tv.v.boolean = json_is_true(v);
    }
    int rc = in_array ? table_buf_put_value(out, &tv) : table_buf_put_field(out, key, key_len, &tv);
    if (rc != 0) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    return 0;
}

int mgmt_table_from_json(const json_t *object, struct table_buf *out, char *why, size_t why_len)
{
    if (object == NULL || json_is_null(object))
        return 0;
    if (!json_is_object(object)) {
        snprintf(why, why_len, "arguments must be a JSON object");
        return -1;
    }
    const char *k;
    json_t *member;
    json_object_foreach((json_t *)object, k, member) {
        if (put_json(out, k, strlen(k), false, member, 0, why, why_len) != 0)
            return -1;
    }
    return 0;
}

char *mgmt_dump(const json_t *doc, size_t *len)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s)
        *len = strlen(s);
    return s;
}
