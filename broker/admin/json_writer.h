/* broker/admin/json_writer.h: JSON text written as it is produced, for the management API's
 * lists. jansson (used for every other answer and for every request) has no streaming writer:
 * building a document per item and serialising it cost a 10,000-queue listing ~90 ms of the
 * event loop, most of it allocation. The writer keeps no document: values go straight into one
 * growing buffer, and two things the list shaping needs happen while writing:
 *   - a selection (RabbitMQ's ?columns=a,b.c): only the chosen dotted paths of each item are
 *     written, their parents opened lazily (an object none of whose members is chosen is left
 *     out, as when cutting a document);
 *   - captures: the scalar values found at a few dotted paths (sort keys, the name a ?name=
 *     filter tests) are noted, chosen or not.
 * Paths are relative to the item (the top-level value); arrays end a path (an array is chosen
 * whole or not at all). Strings are bytes: invalid UTF-8 is written as U+FFFD, as
 * mgmt_string does. Out of memory (or nesting past JW_MAX_DEPTH) marks the writer failed;
 * every later call is a no-op and jw_failed says so. */
#ifndef WARREN_JSON_WRITER_H
#define WARREN_JSON_WRITER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_MAX_DEPTH 72   /* the codec's table depth (64) plus the item's own levels */
#define JW_MAX_COLUMNS 32 /* a selection's paths past this many are ignored */
#define JW_MAX_CAPTURES 3

/* A growing byte buffer (zero is empty). */
struct jw_text {
    char *data;
    size_t len, cap;
};

/* The value found at a captured path. Kinds sort as jansson orders json types. */
enum jw_kind { JW_OBJECT, JW_ARRAY, JW_STRING, JW_NUMBER, JW_BOOL = 5, JW_NULL = 7, JW_ABSENT = 8 };
struct jw_captured {
    enum jw_kind kind;
    double number;     /* JW_NUMBER; JW_BOOL: 1 true, 0 false */
    size_t at, len;    /* JW_STRING: raw bytes at jw.strings.data + at, then a NUL */
};

struct jw_level {
    bool object, has_member, emitted;
    uint8_t select;            /* what of this container's content is written */
    uint8_t captures_below;    /* bits: captured paths that go on below this level */
    uint32_t columns_below;    /* bits: chosen paths that go on below this level */
    uint16_t depth_below_item; /* 0 for the item itself */
    size_t path_len;           /* the length of its dotted path */
    const char *key;           /* a lazily opened level's key (borrowed from the selection) */
    uint16_t key_len;
};

struct jw_path {
    const char *s;
    size_t len;
};

struct jw {
    struct jw_text out;      /* the JSON text */
    struct jw_text strings;  /* captured strings' bytes */
    bool failed;
    /* set up once (jw_select, jw_capture) */
    struct jw_path columns[JW_MAX_COLUMNS];
    size_t ncolumns;          /* 0: everything is written */
    struct jw_path capture_path[JW_MAX_CAPTURES];
    size_t ncaptures;
    /* the item being written */
    struct jw_captured captured[JW_MAX_CAPTURES];
    struct jw_level level[JW_MAX_DEPTH];
    size_t depth;
    const char *key;
    size_t key_len;
};

/* Chooses the dotted paths of columns ("a,b.c"; borrowed: it must outlive the writer). */
void jw_select(struct jw *w, const char *columns);
/* Notes the values at these dotted paths (borrowed; at most JW_MAX_CAPTURES; NULL entries are
 * never found) in w->captured[i] for each item. */
void jw_capture(struct jw *w, const char *const *paths, size_t n);
/* Starts an item (its captures reset to JW_ABSENT); write exactly one value next. */
void jw_item(struct jw *w);

void jw_object_begin(struct jw *w);
void jw_object_end(struct jw *w);
void jw_array_begin(struct jw *w);
void jw_array_end(struct jw *w);
/* The next member's key (inside an object; borrowed until the member's value is written). */
void jw_keyn(struct jw *w, const char *key, size_t len);
static inline void jw_key(struct jw *w, const char *key) /* inline: literals' lengths are known */
{
    jw_keyn(w, key, __builtin_strlen(key));
}
void jw_string(struct jw *w, const char *s, size_t len);
void jw_cstring(struct jw *w, const char *s); /* NULL writes null */
void jw_integer(struct jw *w, int64_t v);
void jw_real(struct jw *w, double v); /* not finite: null */
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* Writes a jansson value (borrowed; NULL writes null) through the same selection and captures. */
void jw_json(struct jw *w, const json_t *v);

/* Did anything fail (out of memory, too deep)? */
bool jw_failed(const struct jw *w);
/* Appends len raw bytes (already JSON) to t; false on ENOMEM. */
bool jw_text_append(struct jw_text *t, const char *s, size_t len);
/* Frees the writer's buffers (the writer itself is the caller's). */
void jw_free(struct jw *w);

#endif
