/* tests/unit/model/test_definitions.c: vhost_import_definitions against crafted blobs, as a
 * stranger could leave them in store/definitions: names too long or holding a zero byte, fields
 * of the wrong type, bindings to nowhere, truncated blobs, lengths that lie, unknown types,
 * nesting past the limit. Each bad entry is skipped, the good ones beside it are recreated,
 * and nothing is read or written out of bounds (run it under the sanitizer build). */
#include "helpers.h"

#include "queue.h"
#include "vhost.h"

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return 1000;
}

static struct vhost *new_vhost(const char *name)
{
    struct vhost_hooks hooks = {.now_ms = now_ms};
    struct vhost *vhost = vhost_create(name, &hooks);
    assert_non_null(vhost);
    return vhost;
}

/* ---- building blobs ---- */

static void put_str(struct table_buf *t, const char *key, struct proto_bytes value)
{
    assert_int_equal(table_buf_put_string(t, key, value), 0);
}

static void put_typed(struct table_buf *t, const char *key, uint8_t type, struct proto_bytes value)
{
    struct table_value v = {.type = type};
    v.v.bytes = value;
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
}

/* Appends entry to list as a table element, and frees entry. */
static void append(struct table_buf *list, struct table_buf *entry)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){entry->data, (uint32_t)entry->len};
    assert_int_equal(table_buf_put_value(list, &v), 0);
    table_buf_free(entry);
}

static struct proto_bytes of(const struct table_buf *t)
{
    return (struct proto_bytes){t->data, (uint32_t)t->len};
}

static void add_exchange(struct table_buf *list, struct proto_bytes name, const char *type)
{
    struct table_buf t = {0};
    put_str(&t, "name", name);
    put_str(&t, "type", bytes_of(type));
    assert_int_equal(table_buf_put_bool(&t, "auto_delete", false), 0);
    assert_int_equal(table_buf_put_bool(&t, "internal", false), 0);
    put_typed(&t, "arguments", TABLE_TABLE, no_bytes());
    append(list, &t);
}

static void add_queue(struct table_buf *list, struct proto_bytes name)
{
    struct table_buf t = {0};
    put_str(&t, "name", name);
    assert_int_equal(table_buf_put_bool(&t, "auto_delete", false), 0);
    put_typed(&t, "arguments", TABLE_TABLE, no_bytes());
    append(list, &t);
}

static void add_binding(struct table_buf *list, const char *source, const char *destination, const char *type,
                        struct proto_bytes key)
{
    struct table_buf t = {0};
    put_str(&t, "source", bytes_of(source));
    put_str(&t, "destination", bytes_of(destination));
    put_str(&t, "destination_type", bytes_of(type));
    put_str(&t, "routing_key", key);
    put_typed(&t, "arguments", TABLE_TABLE, no_bytes());
    append(list, &t);
}

/* {"exchanges": ..., "queues": ..., "bindings": ...} into out; frees the lists. */
static void make_blob(struct table_buf *out, struct table_buf *exchanges, struct table_buf *queues,
                      struct table_buf *bindings)
{
    put_typed(out, "exchanges", TABLE_ARRAY, of(exchanges));
    put_typed(out, "queues", TABLE_ARRAY, of(queues));
    put_typed(out, "bindings", TABLE_ARRAY, of(bindings));
    table_buf_free(exchanges);
    table_buf_free(queues);
    table_buf_free(bindings);
}

/* A name of len copies of c, in a heap buffer of exactly that size. */
static struct proto_bytes long_name(size_t len, char c)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    memset(p, c, len);
    return (struct proto_bytes){p, (uint32_t)len};
}

static bool has_exchange(struct vhost *vhost, struct proto_bytes name)
{
    struct exchange_declare d = {.name = name, .passive = true};
    struct reply_error err;
    return vhost_exchange_declare(vhost, &d, &err) == 0;
}

static bool has_queue(struct vhost *vhost, struct proto_bytes name) { return vhost_queue_find(vhost, name) != NULL; }

/* Imports blob into a fresh vhost; returns it, with the status and the skipped count. */
static struct vhost *import(struct proto_bytes blob, int *rc, size_t *skipped)
{
    struct vhost *vhost = new_vhost("/");
    *rc = vhost_import_definitions(vhost, blob, skipped);
    return vhost;
}

/* ---- well-formed definitions ---- */

static void export_then_import_recreates_everything(void **state)
{
    (void)state;
    struct vhost *a = new_vhost("/");
    struct reply_error err;
    struct exchange_declare x = {.name = bytes_of("logs"), .type = bytes_of("topic"), .durable = true};
    assert_int_equal(vhost_exchange_declare(a, &x, &err), 0);
    struct queue *q;
    struct queue_declare qd = {.name = bytes_of("jobs"), .durable = true};
    assert_int_equal(vhost_queue_declare(a, &qd, &q, &err), 0);
    assert_int_equal(vhost_queue_bind(a, bytes_of("jobs"), bytes_of("logs"), bytes_of("a.#"), no_bytes(), NULL,
                                      false, &err), 0);
    struct table_buf blob = {0};
    assert_int_equal(vhost_export_definitions(a, &blob), 0);

    int rc;
    size_t skipped = 99;
    struct vhost *b = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 0);
    assert_true(has_exchange(b, bytes_of("logs")));
    assert_true(has_queue(b, bytes_of("jobs")));
    struct table_buf again = {0};
    assert_int_equal(vhost_export_definitions(b, &again), 0);
    assert_int_equal(again.len, blob.len);
    table_buf_free(&again);
    table_buf_free(&blob);
    vhost_destroy(a);
    vhost_destroy(b);
}

/* ---- bad names ---- */

static void overlong_exchange_name_is_skipped(void **state)
{
    (void)state;
    struct proto_bytes huge = long_name(1000, 'x');
    struct proto_bytes just_too_long = long_name(256, 'y');
    struct proto_bytes longest = long_name(255, 'z');
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0};
    add_exchange(&exchanges, huge, "direct");
    add_exchange(&exchanges, just_too_long, "fanout");
    add_exchange(&exchanges, longest, "fanout");
    add_exchange(&exchanges, bytes_of("good"), "direct");
    make_blob(&blob, &exchanges, &queues, &bindings);

    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 2);
    assert_true(has_exchange(vhost, bytes_of("good")));
    assert_true(has_exchange(vhost, longest));
    struct proto_bytes prefix255 = {huge.ptr, 255};
    assert_false(has_exchange(vhost, prefix255)); /* not recreated under a cut name either */
    vhost_destroy(vhost);
    table_buf_free(&blob);
    free((void *)huge.ptr);
    free((void *)just_too_long.ptr);
    free((void *)longest.ptr);
}

static void overlong_queue_name_is_skipped(void **state)
{
    (void)state;
    struct proto_bytes huge = long_name(700, 'q');
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0};
    add_queue(&queues, huge);
    add_queue(&queues, bytes_of("good"));
    add_binding(&bindings, "amq.direct", "good", "queue", bytes_of("k"));
    make_blob(&blob, &exchanges, &queues, &bindings);

    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 1);
    assert_false(has_queue(vhost, huge));
    assert_true(has_queue(vhost, bytes_of("good")));
    vhost_destroy(vhost);
    table_buf_free(&blob);
    free((void *)huge.ptr);
}

static void names_with_a_zero_byte_or_empty_are_skipped(void **state)
{
    (void)state;
    struct proto_bytes zero = {(const uint8_t *)"a\0b", 3};
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0};
    add_exchange(&exchanges, zero, "direct");
    add_exchange(&exchanges, bytes_of(""), "direct");
    add_queue(&queues, zero);
    add_queue(&queues, bytes_of(""));
    make_blob(&blob, &exchanges, &queues, &bindings);

    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 4);
    assert_false(has_exchange(vhost, zero));
    assert_false(has_queue(vhost, zero));
    vhost_destroy(vhost);
    table_buf_free(&blob);
}

/* ---- fields of the wrong type ---- */

static void fields_of_the_wrong_type_are_skipped(void **state)
{
    (void)state;
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0}, t = {0};
    /* a name that is a table */
    put_typed(&t, "name", TABLE_TABLE, no_bytes());
    put_str(&t, "type", bytes_of("direct"));
    append(&exchanges, &t);
    /* arguments that are a string, not a table: "S" would be read as a field */
    put_str(&t, "name", bytes_of("x-args"));
    put_str(&t, "type", bytes_of("direct"));
    put_str(&t, "arguments", bytes_of("\x05hello"));
    append(&exchanges, &t);
    /* a flag that is a string */
    put_str(&t, "name", bytes_of("x-flag"));
    put_str(&t, "type", bytes_of("direct"));
    put_str(&t, "auto_delete", bytes_of("yes"));
    append(&exchanges, &t);
    /* no type at all, and an unknown one */
    put_str(&t, "name", bytes_of("x-untyped"));
    append(&exchanges, &t);
    put_str(&t, "name", bytes_of("x-odd"));
    put_str(&t, "type", bytes_of("x-consistent-hash"));
    append(&exchanges, &t);
    /* an element that is not a table at all */
    struct table_value number = {.type = TABLE_INT32};
    number.v.i32 = 7;
    assert_int_equal(table_buf_put_value(&exchanges, &number), 0);
    /* queues: a name that is a number; arguments that are an array */
    struct table_value v = {.type = TABLE_INT32};
    v.v.i32 = 1;
    assert_int_equal(table_buf_put_field(&t, "name", 4, &v), 0);
    append(&queues, &t);
    put_str(&t, "name", bytes_of("q-args"));
    put_typed(&t, "arguments", TABLE_ARRAY, no_bytes());
    append(&queues, &t);
    add_queue(&queues, bytes_of("good"));
    make_blob(&blob, &exchanges, &queues, &bindings);

    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 8);
    assert_false(has_exchange(vhost, bytes_of("x-args")));
    assert_false(has_exchange(vhost, bytes_of("x-flag")));
    assert_false(has_exchange(vhost, bytes_of("x-untyped")));
    assert_false(has_queue(vhost, bytes_of("q-args")));
    assert_true(has_queue(vhost, bytes_of("good")));
    vhost_destroy(vhost);
    table_buf_free(&blob);
}

static void bad_bindings_are_skipped(void **state)
{
    (void)state;
    struct proto_bytes long_key = long_name(300, 'k');
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0}, t = {0};
    add_exchange(&exchanges, bytes_of("x"), "direct");
    add_queue(&queues, bytes_of("q"));
    add_binding(&bindings, "x", "q", "queue", long_key);        /* key over 255 bytes */
    add_binding(&bindings, "x", "q", "bogus", bytes_of("k"));    /* neither queue nor exchange */
    add_binding(&bindings, "x", "missing", "queue", bytes_of("k"));
    add_binding(&bindings, "", "q", "queue", bytes_of("k"));     /* the default exchange */
    put_str(&t, "destination", bytes_of("q"));                    /* no source */
    put_str(&t, "destination_type", bytes_of("queue"));
    append(&bindings, &t);
    add_binding(&bindings, "x", "q", "queue", bytes_of("good"));
    make_blob(&blob, &exchanges, &queues, &bindings);

    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 5);
    assert_true(has_queue(vhost, bytes_of("q")));
    vhost_destroy(vhost);
    table_buf_free(&blob);
    free((void *)long_key.ptr);
}

/* ---- malformed blobs ---- */

/* Every prefix of a good blob, in a buffer of exactly that size: never crashes, never reads
 * past the end; a cut blob is refused as a whole or (cut between fields) partly recreated. */
static void truncated_blobs_are_refused(void **state)
{
    (void)state;
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0};
    add_exchange(&exchanges, bytes_of("x"), "topic");
    add_queue(&queues, bytes_of("q"));
    add_binding(&bindings, "x", "q", "queue", bytes_of("a.*"));
    make_blob(&blob, &exchanges, &queues, &bindings);
    for (size_t cut = 0; cut < blob.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, blob.data, cut);
        int rc;
        size_t skipped;
        struct vhost *vhost = import((struct proto_bytes){copy, (uint32_t)cut}, &rc, &skipped);
        assert_true(rc == 0 || rc == -1);
        vhost_destroy(vhost);
        free(copy);
    }
    table_buf_free(&blob);
}

static void lying_lengths_unknown_types_and_deep_nesting_are_refused(void **state)
{
    (void)state;
    /* "exchanges" announced as an array of 0xfffffff0 bytes */
    static const uint8_t huge_array[] = {9, 'e', 'x', 'c', 'h', 'a', 'n', 'g', 'e', 's', 'A', 0xff, 0xff, 0xff, 0xf0, 'F'};
    /* a name whose longstr length runs past the end of its entry */
    static const uint8_t lying_string[] = {9, 'e', 'x', 'c', 'h', 'a', 'n', 'g', 'e', 's', 'A', 0, 0, 0, 16,
                                           'F', 0, 0, 0, 11, 4, 'n', 'a', 'm', 'e', 'S', 0, 0, 3, 0xe8, 'x'};
    /* an unknown field type octet */
    static const uint8_t unknown_type[] = {6, 'q', 'u', 'e', 'u', 'e', 's', 'Z', 0, 0, 0, 0};
    struct proto_bytes cases[] = {
        {huge_array, sizeof huge_array},
        {lying_string, sizeof lying_string},
        {unknown_type, sizeof unknown_type},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        size_t skipped;
        struct vhost *vhost = import(cases[i], &rc, &skipped);
        assert_int_equal(rc, -1);
        vhost_destroy(vhost);
    }

    /* More tables nested in "arguments" than PROTO_MAX_TABLE_DEPTH allows */
    struct table_buf inner = {0};
    for (int depth = 0; depth < PROTO_MAX_TABLE_DEPTH + 10; depth++) {
        struct table_buf outer = {0};
        put_typed(&outer, "a", TABLE_TABLE, of(&inner));
        table_buf_free(&inner);
        inner = outer;
    }
    struct table_buf exchanges = {0}, queues = {0}, bindings = {0}, blob = {0}, t = {0};
    put_str(&t, "name", bytes_of("deep"));
    put_typed(&t, "arguments", TABLE_TABLE, of(&inner));
    append(&queues, &t);
    table_buf_free(&inner);
    make_blob(&blob, &exchanges, &queues, &bindings);
    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, -1);
    assert_false(has_queue(vhost, bytes_of("deep")));
    vhost_destroy(vhost);
    table_buf_free(&blob);
}

/* Lists that are not arrays are reported, not followed. */
static void lists_of_the_wrong_type_are_refused(void **state)
{
    (void)state;
    struct table_buf blob = {0}, entry = {0};
    put_str(&entry, "name", bytes_of("q"));
    put_typed(&blob, "queues", TABLE_TABLE, of(&entry)); /* a table, not an array of tables */
    put_str(&blob, "exchanges", bytes_of("x"));
    table_buf_free(&entry);
    int rc;
    size_t skipped;
    struct vhost *vhost = import(of(&blob), &rc, &skipped);
    assert_int_equal(rc, 0);
    assert_int_equal(skipped, 2);
    assert_false(has_queue(vhost, bytes_of("q")));
    vhost_destroy(vhost);
    table_buf_free(&blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(export_then_import_recreates_everything),
        cmocka_unit_test(overlong_exchange_name_is_skipped),
        cmocka_unit_test(overlong_queue_name_is_skipped),
        cmocka_unit_test(names_with_a_zero_byte_or_empty_are_skipped),
        cmocka_unit_test(fields_of_the_wrong_type_are_skipped),
        cmocka_unit_test(bad_bindings_are_skipped),
        cmocka_unit_test(truncated_blobs_are_refused),
        cmocka_unit_test(lying_lengths_unknown_types_and_deep_nesting_are_refused),
        cmocka_unit_test(lists_of_the_wrong_type_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
