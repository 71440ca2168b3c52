/* broker/admin/json.h: the little JSON the admin socket needs: a writer that always emits
 * valid JSON (any bytes in, escaped UTF-8 out) and a bounded parser for one request line. */
#ifndef WARREN_JSON_H
#define WARREN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- writer ------------------------------------------------------------------------------ */

/* A growable output buffer; zero-initialised is empty. The caller frees data (json_out_free).
 * An allocation failure sets `failed` and turns every later call into a no-op. */
struct json_out {
    char *data;
    size_t len, cap;
    bool failed;
    bool need_comma; /* a value was written at this level: the next one needs ',' */
    bool after_key;  /* a key was written: the next value follows ':' directly */
};

void json_out_free(struct json_out *out);

/* Appends n bytes verbatim (the newline that ends a document). */
void json_raw(struct json_out *out, const char *s, size_t n);

/* Containers. Calls must nest properly; the writer does not check. */
void json_begin_object(struct json_out *out);
void json_end_object(struct json_out *out);
void json_begin_array(struct json_out *out);
void json_end_array(struct json_out *out);

/* An object key; len bytes of s, escaped like json_string. */
void json_key(struct json_out *out, const char *s, size_t len);
/* json_key for a NUL-terminated key. */
void json_keyz(struct json_out *out, const char *s);

/* A string from len arbitrary bytes: '"', '\\' and control characters are escaped, valid
 * UTF-8 passes through, each byte of an invalid sequence becomes \ufffd. */
void jw_string(struct json_out *out, const char *s, size_t len);
/* json_string for a NUL-terminated string (NULL writes ""). */
void json_stringz(struct json_out *out, const char *s);
void json_uint(struct json_out *out, uint64_t v);
void json_int(struct json_out *out, int64_t v);
/* A finite double; NaN and infinities (not JSON) become null. */
void json_double(struct json_out *out, double v);
void json_bool(struct json_out *out, bool v);
void jw_null(struct json_out *out);

/* ---- parser ------------------------------------------------------------------------------ */

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* One parsed value. Strings (and keys) are unescaped into the document's own copy of the
 * text; they may contain NUL bytes, so use the lengths. Children of arrays and objects are
 * linked through `next`; an object's children carry their `key`. */
struct json_value {
    enum json_type type;
    const char *key; /* member name when the parent is an object, else NULL */
    size_t key_len;
    const char *str; /* JSON_STRING */
    size_t str_len;
    double number;   /* JSON_NUMBER */
    struct json_value *child; /* first element or member */
    struct json_value *next;  /* next sibling */
    size_t count;             /* number of elements or members */
};

/* Limits that keep hostile input bounded. */
#define JSON_MAX_DEPTH 32
#define JSON_MAX_VALUES 8192

/* A parsed document; owns the copy of the text and all values. */
struct json_doc {
    char *text;
    struct json_value *values;
    size_t used;
    struct json_value *root;
};

/* Parses exactly one JSON value from len bytes (surrounding whitespace allowed). Returns 0,
 * or -1 with a static description in *error (syntax, depth or size limits, out of memory).
 * On success the caller frees doc with json_doc_free; on failure nothing is left to free. */
int json_parse(struct json_doc *doc, const char *text, size_t len, const char **error);
void json_doc_free(struct json_doc *doc);

/* The member `name` of an object (the last one when repeated), or NULL. */
const struct json_value *json_member(const struct json_value *object, const char *name);

#endif
