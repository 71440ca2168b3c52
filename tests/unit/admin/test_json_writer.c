/* tests/unit/admin/test_json_writer.c: the management API's JSON writer: the text it writes
 * parses back to what jansson would have built (escaping, invalid UTF-8, numbers), a selection
 * keeps exactly the chosen dotted paths as cutting a document does, captures note values
 * whether chosen or not, and failures (too deep) are reported instead of writing bad JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"

/* The writer's text as a NUL-ended string (owned by the writer). */
static const char *text_of(struct jw *w)
{
    assert_false(jw_failed(w));
    assert_true(jw_text_append(&w->out, "", 1));
    w->out.len--;
    return w->out.data;
}

/* A sample item: {"name":..., "n":3, "r":1.5, "ok":true, "none":null,
 *                 "stats":{"publish":7,"publish_details":{"rate":0.0}}, "list":[1,{"a":2}]} */
static void write_item(struct jw *w, const char *name, size_t name_len)
{
    jw_item(w);
    jw_object_begin(w);
    jw_key(w, "name");
    jw_string(w, name, name_len);
    jw_key(w, "n");
    jw_integer(w, 3);
    jw_key(w, "r");
    jw_real(w, 1.5);
    jw_key(w, "ok");
    jw_bool(w, true);
    jw_key(w, "none");
    jw_null(w);
    jw_key(w, "stats");
    jw_object_begin(w);
    jw_key(w, "publish");
    jw_integer(w, 7);
    jw_key(w, "publish_details");
    jw_object_begin(w);
    jw_key(w, "rate");
    jw_real(w, 0.0);
    jw_object_end(w);
    jw_object_end(w);
    jw_key(w, "list");
    jw_array_begin(w);
    jw_integer(w, 1);
    jw_object_begin(w);
    jw_key(w, "a");
    jw_integer(w, 2);
    jw_object_end(w);
    jw_array_end(w);
    jw_object_end(w);
}

static void everything_is_written_as_json(void **state)
{
    (void)state;
    struct jw w = {0};
    write_item(&w, "q", 1);
    assert_string_equal(text_of(&w), "{\"name\":\"q\",\"n\":3,\"r\":1.5,\"ok\":true,\"none\":null,"
                                     "\"stats\":{\"publish\":7,\"publish_details\":{\"rate\":0.0}},"
                                     "\"list\":[1,{\"a\":2}]}");
    jw_free(&w);
}

static void strings_are_escaped_and_mended(void **state)
{
    (void)state;
    static const char raw[] = "a\"b\\c\n\t\x01/\xc3\xa9\xff"
                              "end";
    struct jw w = {0};
    jw_item(&w);
    jw_string(&w, raw, sizeof raw - 1);
    json_error_t error;
    json_t *back = json_loads(text_of(&w), JSON_DECODE_ANY, &error);
    assert_non_null(back);
    /* é stays, the lone 0xff byte becomes U+FFFD, everything else round-trips */
    assert_string_equal(json_string_value(back), "a\"b\\c\n\t\x01/\xc3\xa9\xef\xbf\xbd"
                                                 "end");
    json_decref(back);
    jw_free(&w);
}

static void numbers_read_back_as_written(void **state)
{
    (void)state;
    const double reals[] = {0.0, 1.0, -2.5, 1e300, 0.1, 123456789.125};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        struct jw w = {0};
        jw_item(&w);
        jw_real(&w, reals[i]);
        json_t *back = json_loads(text_of(&w), JSON_DECODE_ANY, NULL);
        assert_non_null(back);
        assert_true(json_is_real(back)); /* a real stays a real (never "1") */
        assert_true(json_real_value(back) == reals[i]);
        json_decref(back);
        jw_free(&w);
    }
    const int64_t ints[] = {0, -1, INT64_MAX, INT64_MIN, 4294967296};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        struct jw w = {0};
        jw_item(&w);
        jw_integer(&w, ints[i]);
        json_t *back = json_loads(text_of(&w), JSON_DECODE_ANY, NULL);
        assert_non_null(back);
        assert_true(json_integer_value(back) == ints[i]);
        json_decref(back);
        jw_free(&w);
    }
}

static void a_selection_keeps_the_chosen_paths(void **state)
{
    (void)state;
    struct {
        const char *columns, *expected;
    } cases[] = {
        {"name", "{\"name\":\"q\"}"},
        {"name,n", "{\"name\":\"q\",\"n\":3}"},
        {"stats.publish", "{\"stats\":{\"publish\":7}}"},
        {"stats.publish_details.rate", "{\"stats\":{\"publish_details\":{\"rate\":0.0}}}"},
        {"stats", "{\"stats\":{\"publish\":7,\"publish_details\":{\"rate\":0.0}}}"},
        {"stats.nothing", "{}"},                /* a parent with nothing chosen is left out */
        {"name.deeper", "{}"},                  /* a path through a scalar finds nothing */
        {"list", "{\"list\":[1,{\"a\":2}]}"},   /* an array is chosen whole */
        {"list.a", "{}"},                       /* or not at all */
        {"absent,none", "{\"none\":null}"},
        {",,name,", "{\"name\":\"q\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct jw w = {0};
        jw_select(&w, cases[i].columns);
        write_item(&w, "q", 1);
        assert_string_equal(text_of(&w), cases[i].expected);
        jw_free(&w);
    }
}

static void captures_note_values_chosen_or_not(void **state)
{
    (void)state;
    struct jw w = {0};
    const char *paths[] = {"stats.publish", "name", "name"}; /* a path may be captured twice */
    jw_capture(&w, paths, 3);
    jw_select(&w, "n");
    write_item(&w, "queue-1", 7);
    assert_string_equal(text_of(&w), "{\"n\":3}");
    assert_int_equal(w.captured[0].kind, JW_NUMBER);
    assert_true(w.captured[0].number == 7);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(w.captured[i].kind, JW_STRING);
        assert_int_equal(w.captured[i].len, 7);
        assert_string_equal(w.strings.data + w.captured[i].at, "queue-1");
    }
    /* the next item starts with nothing captured */
    jw_item(&w);
    jw_object_begin(&w);
    jw_object_end(&w);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w.captured[i].kind, JW_ABSENT);
    jw_free(&w);
}

static void nesting_past_the_limit_fails(void **state)
{
    (void)state;
    struct jw w = {0};
    jw_item(&w);
    for (int i = 0; i < JW_MAX_DEPTH + 5; i++)
        jw_array_begin(&w);
    assert_true(jw_failed(&w));
    jw_free(&w);
}

static void jansson_values_go_through_the_selection(void **state)
{
    (void)state;
    json_t *doc = json_pack("{s:s, s:{s:i, s:[i]}, s:b}", "name", "x", "args", "x-max-length", 5, "list", 1, "t",
                            1);
    struct jw w = {0};
    jw_select(&w, "args.x-max-length,t");
    jw_item(&w);
    jw_json(&w, doc);
    assert_string_equal(text_of(&w), "{\"args\":{\"x-max-length\":5},\"t\":true}");
    jw_free(&w);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(everything_is_written_as_json),
        cmocka_unit_test(strings_are_escaped_and_mended),
        cmocka_unit_test(numbers_read_back_as_written),
        cmocka_unit_test(a_selection_keeps_the_chosen_paths),
        cmocka_unit_test(captures_note_values_chosen_or_not),
        cmocka_unit_test(nesting_past_the_limit_fails),
        cmocka_unit_test(jansson_values_go_through_the_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
