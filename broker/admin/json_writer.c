/* broker/admin/json_writer.c: see json_writer.h. Invariants: level[0..depth) are the open
 * containers of the current item; a level is `emitted` once its opening bracket (with comma and
 * key) is in out, and every emitted level's ancestors are emitted; a level whose selection is
 * PART is opened lazily, when its first chosen descendant is written. No path is built: each
 * level keeps the chosen and captured paths that go on below it (bits), whose first path_len
 * bytes are its own path, so a member is matched by comparing its key with the next component
 * of those paths only. */
#include "json_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

enum { SEL_ALL, SEL_PART, SEL_NONE };

/* Room for len more bytes in t (doubling); false on ENOMEM. */
static bool reserve(struct jw_text *t, size_t len)
{
    if (t->cap - t->len >= len)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap - t->len < len) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *grown = realloc(t->data, cap);
    if (!grown)
        return false;
    t->data = grown;
    t->cap = cap;
    return true;
}

bool jw_text_append(struct jw_text *t, const char *s, size_t len)
{
    if (!reserve(t, len))
        return false;
    if (len)
        memcpy(t->data + t->len, s, len);
    t->len += len;
    return true;
}

/* Room for len more bytes in out (false, and the writer failed, when there is none); the
 * common case, kept inline, is one comparison. */
static inline bool room(struct jw *w, size_t len)
{
    struct jw_text *t = &w->out;
    if (t->cap - t->len >= len)
        return true;
    if (!w->failed && !reserve(t, len))
        w->failed = true;
    return !w->failed;
}

static inline void put(struct jw *w, const char *s, size_t len)
{
    if (room(w, len)) {
        memcpy(w->out.data + w->out.len, s, len);
        w->out.len += len;
    }
}

/* Bytes a JSON string may hold as they are: printable ASCII but '"' and '\\' (a table: the scan
 * of every key and name is the writer's hottest loop). */
static const unsigned char plain[256] = {
    [0x20 ... 0x21] = 1, /* '"' is 0x22 */
    [0x23 ... 0x5b] = 1, /* '\\' is 0x5c */
    [0x5d ... 0x7f] = 1,
};

static inline bool plain_ascii(unsigned char c)
{
    return plain[c];
}

/* A JSON string of len bytes: '"', '\\' and control characters escaped, invalid UTF-8 as U+FFFD. */
static void put_string(struct jw *w, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len && plain_ascii(u[i]))
        i++;
    if (i == len) { /* names and keys: nothing to escape */
        if (room(w, len + 2)) {
            char *o = w->out.data + w->out.len;
            o[0] = '"';
            memcpy(o + 1, s, len);
            o[len + 1] = '"';
            w->out.len += len + 2;
        }
        return;
    }
    bool valid = utf8_valid(u + i, len - i);
    put(w, "\"", 1);
    size_t run = 0; /* start of the bytes not yet written */
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || valid)) {
            i++;
            continue;
        }
        put(w, s + run, i - run);
        if (c >= 0x80) { /* only when the whole string is not valid UTF-8 */
            size_t n = utf8_sequence(u + i, len - i);
            if (n == 0) {
                put(w, "\xef\xbf\xbd", 3);
                n = 1;
            } else {
                put(w, s + i, n);
            }
            i += n;
        } else {
            char esc[8];
            const char *e = NULL;
            switch (c) {
            case '"': e = "\\\""; break;
            case '\\': e = "\\\\"; break;
            case '\b': e = "\\b"; break;
            case '\f': e = "\\f"; break;
            case '\n': e = "\\n"; break;
            case '\r': e = "\\r"; break;
            case '\t': e = "\\t"; break;
            default:
                snprintf(esc, sizeof esc, "\\u%04x", c);
                e = esc;
            }
            put(w, e, strlen(e));
            i++;
        }
        run = i;
    }
    put(w, s + run, len - run);
    put(w, "\"", 1);
}

static size_t cstrlen(const char *s)
{
    return s ? strlen(s) : 0;
}

static void parse_paths(const char *list, struct jw_path *out, size_t cap, size_t *n)
{
    *n = 0;
    const char *p = list;
    while (p && *p && *n < cap) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0 && len < 256) /* a key is a short string; longer is no column */
            out[(*n)++] = (struct jw_path){p, len};
        p = comma ? comma + 1 : NULL;
    }
}

void jw_select(struct jw *w, const char *columns)
{
    parse_paths(columns, w->columns, JW_MAX_COLUMNS, &w->ncolumns);
}

void jw_capture(struct jw *w, const char *const *paths, size_t n)
{
    w->ncaptures = n < JW_MAX_CAPTURES ? n : JW_MAX_CAPTURES;
    for (size_t i = 0; i < w->ncaptures; i++)
        w->capture_path[i] = (struct jw_path){paths[i], cstrlen(paths[i])};
}

void jw_item(struct jw *w)
{
    w->depth = 0;
    w->key = NULL;
    w->key_len = 0;
    for (size_t i = 0; i < JW_MAX_CAPTURES; i++)
        w->captured[i] = (struct jw_captured){.kind = JW_ABSENT};
}

/* How path c goes on from the member `key` whose dotted path starts at c->s + start (the
 * parent's path, already matched, is before it): 0 not at all, 1 it ends there, 2 it goes on
 * below it. */
static int follows(const struct jw_path *c, size_t start, const char *key, size_t key_len)
{
    size_t end = start + key_len;
    if (c->len < end || (key_len && c->s[start] != key[0]) || memcmp(c->s + start, key, key_len) != 0)
        return 0;
    if (c->len == end)
        return 1;
    return c->s[end] == '.' ? 2 : 0;
}

/* Where the value about to be written sits, as the level it would push: its selection, the
 * chosen and captured paths that go on below it, and in *captures those that end at it. */
static struct jw_level locate(struct jw *w, bool object, unsigned *captures)
{
    struct jw_level at = {.object = object};
    *captures = 0;
    if (w->depth == 0) { /* the item: every path starts here */
        at.select = w->ncolumns ? SEL_PART : SEL_ALL;
        at.columns_below = w->ncolumns ? (uint32_t)((1ull << w->ncolumns) - 1) : 0;
        at.captures_below = (uint8_t)((1u << w->ncaptures) - 1);
        return at;
    }
    const struct jw_level *p = &w->level[w->depth - 1];
    at.select = p->select == SEL_PART ? SEL_NONE : p->select;
    if (!p->object) /* a path does not go through an array */
        return at;
    at.path_len = p->path_len + (p->depth_below_item ? 1 : 0) + w->key_len;
    at.depth_below_item = (uint16_t)(p->depth_below_item + 1);
    size_t start = p->path_len + (p->depth_below_item ? 1 : 0);
    for (unsigned m = p->captures_below, i = 0; m; m >>= 1, i++) {
        if (!(m & 1))
            continue;
        int f = follows(&w->capture_path[i], start, w->key, w->key_len);
        if (f == 1)
            *captures |= 1u << i;
        else if (f == 2)
            at.captures_below |= (uint8_t)(1u << i);
    }
    if (p->select != SEL_PART)
        return at;
    for (uint32_t m = p->columns_below, i = 0; m; m >>= 1, i++) {
        if (!(m & 1))
            continue;
        int f = follows(&w->columns[i], start, w->key, w->key_len);
        if (f == 1) {
            at.select = SEL_ALL;
            at.columns_below = 0;
            return at;
        }
        if (f == 2) {
            at.select = SEL_PART;
            at.columns_below |= 1u << i;
            /* a lazily opened level's key: the same bytes as this chosen path's */
            at.key = w->columns[i].s + start;
            at.key_len = (uint16_t)w->key_len;
        }
    }
    return at;
}

/* Notes a value in the captures of mask. */
static void note(struct jw *w, unsigned mask, struct jw_captured value)
{
    for (size_t i = 0; mask; i++, mask >>= 1)
        if (mask & 1)
            w->captured[i] = value;
}

/* The comma and key before a value in the innermost open level (none for the item itself). */
static void separator(struct jw *w, size_t depth, const char *key, size_t key_len)
{
    if (depth == 0)
        return;
    struct jw_level *p = &w->level[depth - 1];
    if (p->has_member)
        put(w, ",", 1);
    p->has_member = true;
    if (p->object) {
        put_string(w, key ? key : "", key_len);
        put(w, ":", 1);
    }
}

/* Opens every level not opened yet (lazily chosen ones). */
static void open_pending(struct jw *w)
{
    for (size_t d = 0; d < w->depth; d++) {
        struct jw_level *l = &w->level[d];
        if (l->emitted)
            continue;
        separator(w, d, l->key, l->key_len);
        put(w, l->object ? "{" : "[", 1);
        l->emitted = true;
    }
}

/* Positions a scalar: true when it is to be written (comma and key are out); *mask is the
 * captures it fills. */
static bool place_scalar(struct jw *w, unsigned *mask)
{
    *mask = 0;
    if (w->failed)
        return false;
    struct jw_level at = locate(w, false, mask);
    if (at.select != SEL_ALL)
        return false;
    open_pending(w);
    separator(w, w->depth, w->key, w->key_len);
    return true;
}

static void container_begin(struct jw *w, bool object)
{
    if (w->failed)
        return;
    if (w->depth >= JW_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    unsigned captures;
    struct jw_level at = locate(w, object, &captures);
    note(w, captures, (struct jw_captured){.kind = object ? JW_OBJECT : JW_ARRAY});
    if (!object && at.select == SEL_PART)
        at.select = SEL_NONE; /* a path does not go through an array */
    bool now = at.select == SEL_ALL || w->depth == 0; /* the item itself is always written */
    if (now) {
        open_pending(w);
        separator(w, w->depth, w->key, w->key_len);
        put(w, object ? "{" : "[", 1);
        at.emitted = true;
    }
    w->level[w->depth++] = at;
}

static void container_end(struct jw *w)
{
    if (w->failed || w->depth == 0)
        return;
    const struct jw_level *l = &w->level[--w->depth];
    if (l->emitted)
        put(w, l->object ? "}" : "]", 1);
}

void jw_object_begin(struct jw *w)
{
    container_begin(w, true);
}

void jw_object_end(struct jw *w)
{
    container_end(w);
}

void jw_array_begin(struct jw *w)
{
    container_begin(w, false);
}

void jw_array_end(struct jw *w)
{
    container_end(w);
}

void jw_keyn(struct jw *w, const char *key, size_t len)
{
    w->key = key;
    w->key_len = len;
}

void jw_string(struct jw *w, const char *s, size_t len)
{
    unsigned mask;
    bool write = place_scalar(w, &mask);
    if (mask) {
        note(w, mask, (struct jw_captured){.kind = JW_STRING, .at = w->strings.len, .len = len});
        /* NUL-ended, for the filters that test it as a C string */
        if (!jw_text_append(&w->strings, s, len) || !jw_text_append(&w->strings, "", 1))
            w->failed = true;
    }
    if (write)
        put_string(w, s, len);
}

void jw_cstring(struct jw *w, const char *s)
{
    if (s)
        jw_string(w, s, strlen(s));
    else
        jw_null(w);
}

void jw_integer(struct jw *w, int64_t v)
{
    unsigned mask;
    bool write = place_scalar(w, &mask);
    note(w, mask, (struct jw_captured){.kind = JW_NUMBER, .number = (double)v});
    if (!write)
        return;
    char digits[24], *p = digits + sizeof digits;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    put(w, p, (size_t)(digits + sizeof digits - p));
}

void jw_real(struct jw *w, double v)
{
    unsigned mask;
    bool write = place_scalar(w, &mask);
    if (!isfinite(v)) {
        note(w, mask, (struct jw_captured){.kind = JW_NULL});
        if (write)
            put(w, "null", 4);
        return;
    }
    note(w, mask, (struct jw_captured){.kind = JW_NUMBER, .number = v});
    if (!write)
        return;
    if (v == 0.0) { /* the common case: an idle rate */
        put(w, "0.0", 3);
        return;
    }
    char text[40];
    int n = snprintf(text, sizeof text, "%.17g", v);
    put(w, text, (size_t)n);
    if (!strpbrk(text, ".eE")) /* as jansson writes reals: always with a fraction or exponent */
        put(w, ".0", 2);
}

void jw_bool(struct jw *w, bool v)
{
    unsigned mask;
    bool write = place_scalar(w, &mask);
    note(w, mask, (struct jw_captured){.kind = JW_BOOL, .number = v});
    if (write)
        put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
    unsigned mask;
    bool write = place_scalar(w, &mask);
    note(w, mask, (struct jw_captured){.kind = JW_NULL});
    if (write)
        put(w, "null", 4);
}

void jw_json(struct jw *w, const json_t *v)
{
    if (w->failed)
        return;
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: {
        const char *k;
        json_t *member;
        jw_object_begin(w);
        json_object_foreach((json_t *)v, k, member) {
            jw_keyn(w, k, strlen(k));
            jw_json(w, member);
        }
        jw_object_end(w);
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *member;
        jw_array_begin(w);
        json_array_foreach(v, i, member)
            jw_json(w, member);
        jw_array_end(w);
        break;
    }
    case JSON_STRING:
        jw_string(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        jw_integer(w, json_integer_value(v));
        break;
    case JSON_REAL:
        jw_real(w, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        jw_bool(w, json_is_true(v));
        break;
    case JSON_NULL:
        jw_null(w);
        break;
    }
}

bool jw_failed(const struct jw *w)
{
    return w->failed;
}

void jw_free(struct jw *w)
{
    free(w->out.data);
    free(w->strings.data);
    w->out = (struct jw_text){0};
    w->strings = (struct jw_text){0};
}
