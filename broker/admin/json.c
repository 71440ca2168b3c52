/* broker/admin/json.c: JSON writer and bounded parser for the admin socket (see json.h). The
 * parser is recursive descent with an explicit depth limit, and takes its values from one
 * array sized by the input, so garbage can cost time proportional to its length, never more. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writer ------------------------------------------------------------------------------ */

void json_out_free(struct json_out *out)
{
    free(out->data);
    memset(out, 0, sizeof *out);
}

static void put(struct json_out *out, const char *s, size_t n)
{
    if (out->failed)
        return;
    if (out->cap - out->len < n) {
        size_t cap = out->cap ? out->cap : 256;
        while (cap - out->len < n)
            cap *= 2;
        char *data = realloc(out->data, cap);
        if (!data) {
            out->failed = true;
            return;
        }
        out->data = data;
        out->cap = cap;
    }
    memcpy(out->data + out->len, s, n);
    out->len += n;
}

void json_raw(struct json_out *out, const char *s, size_t n)
{
    put(out, s, n);
}

/* Before any value: the separator its position needs. */
static void value_start(struct json_out *out)
{
    if (out->after_key)
        out->after_key = false;
    else if (out->need_comma)
        put(out, ",", 1);
}

static void value_end(struct json_out *out)
{
    out->need_comma = true;
}

void json_begin_object(struct json_out *out)
{
    value_start(out);
    put(out, "{", 1);
    out->need_comma = false;
}

void json_end_object(struct json_out *out)
{
    put(out, "}", 1);
    value_end(out);
}

void json_begin_array(struct json_out *out)
{
    value_start(out);
    put(out, "[", 1);
    out->need_comma = false;
}

void json_end_array(struct json_out *out)
{
    put(out, "]", 1);
    value_end(out);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there are not one
 * (bad lead byte, truncated, overlong, surrogate or above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

static void put_escaped(struct json_out *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    put(out, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        const char *escape = NULL;
        char hex[8];
        size_t step = 1;
        if (c == '"')
            escape = "\\\"";
        else if (c == '\\')
            escape = "\\\\";
        else if (c == '\n')
            escape = "\\n";
        else if (c == '\r')
            escape = "\\r";
        else if (c == '\t')
            escape = "\\t";
        else if (c < 0x20 || c == 0x7F) {
            snprintf(hex, sizeof hex, "\\u%04x", c);
            escape = hex;
        } else if (c >= 0x80) {
            step = utf8_sequence(s + i, len - i);
            if (step == 0) {
                escape = "\\ufffd";
                step = 1;
            }
        }
        if (escape) {
            put(out, str + run, i - run);
            put(out, escape, strlen(escape));
            run = i + step;
        }
        i += step;
    }
    put(out, str + run, len - run);
    put(out, "\"", 1);
}

void json_key(struct json_out *out, const char *s, size_t len)
{
    if (out->need_comma)
        put(out, ",", 1);
    put_escaped(out, s, len);
    put(out, ":", 1);
    out->after_key = true;
}

void json_keyz(struct json_out *out, const char *s)
{
    json_key(out, s, strlen(s));
}

void jw_string(struct json_out *out, const char *s, size_t len)
{
    value_start(out);
    put_escaped(out, s, len);
    value_end(out);
}

void json_stringz(struct json_out *out, const char *s)
{
    jw_string(out, s ? s : "", s ? strlen(s) : 0);
}

static void put_formatted(struct json_out *out, const char *text, int n)
{
    value_start(out);
    if (n > 0)
        put(out, text, (size_t)n);
    value_end(out);
}

void json_uint(struct json_out *out, uint64_t v)
{
    char text[24];
    put_formatted(out, text, snprintf(text, sizeof text, "%llu", (unsigned long long)v));
}

void json_int(struct json_out *out, int64_t v)
{
    char text[24];
    put_formatted(out, text, snprintf(text, sizeof text, "%lld", (long long)v));
}

void json_double(struct json_out *out, double v)
{
    if (!isfinite(v)) {
        jw_null(out);
        return;
    }
    char text[32];
    put_formatted(out, text, snprintf(text, sizeof text, "%.17g", v));
}

void json_bool(struct json_out *out, bool v)
{
    put_formatted(out, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct json_out *out)
{
    put_formatted(out, "null", 4);
}

/* ---- parser ------------------------------------------------------------------------------ */

struct parser {
    char *pos, *end;
    struct json_doc *doc;
    size_t capacity;
    const char *error;
};

static void skip_space(struct parser *p)
{
    while (p->pos < p->end && (*p->pos == ' ' || *p->pos == '\t' || *p->pos == '\n' || *p->pos == '\r'))
        p->pos++;
}

static struct json_value *new_value(struct parser *p, enum json_type type)
{
    if (p->doc->used == p->capacity) {
        p->error = "too many values";
        return NULL;
    }
    struct json_value *v = &p->doc->values[p->doc->used++];
    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at p->pos (on the opening quote) and unescapes it in place: the decoded
 * form is never longer than the escaped one, so writing never overtakes reading. A lone
 * surrogate escape decodes to U+FFFD. */
static int parse_string(struct parser *p, const char **out, size_t *out_len)
{
    char *src = ++p->pos, *dst = src;
    const char *start = dst;
    for (;;) {
        if (src >= p->end) {
            p->error = "unterminated string";
            return -1;
        }
        unsigned char c = (unsigned char)*src;
        if (c == '"')
            break;
        if (c < 0x20) {
            p->error = "control character in string";
            return -1;
        }
        if (c != '\\') {
            *dst++ = *src++;
            continue;
        }
        if (p->end - src < 2) {
            p->error = "unterminated string";
            return -1;
        }
        char e = src[1];
        src += 2;
        switch (e) {
        case '"': *dst++ = '"'; break;
        case '\\': *dst++ = '\\'; break;
        case '/': *dst++ = '/'; break;
        case 'b': *dst++ = '\b'; break;
        case 'f': *dst++ = '\f'; break;
        case 'n': *dst++ = '\n'; break;
        case 'r': *dst++ = '\r'; break;
        case 't': *dst++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (p->end - src < 4 || hex4(src, &cp) != 0) {
                p->error = "bad \\u escape";
                return -1;
            }
            src += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (p->end - src >= 6 && src[0] == '\\' && src[1] == 'u' && hex4(src + 2, &low) == 0
                    && low >= 0xDC00 && low <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    src += 6;
                } else
                    cp = 0xFFFD;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF)
                cp = 0xFFFD;
            dst += put_utf8(dst, cp);
            break;
        }
        default:
            p->error = "bad escape in string";
            return -1;
        }
    }
    p->pos = src + 1;
    *out = start;
    *out_len = (size_t)(dst - start);
    return 0;
}

static int parse_number(struct parser *p, struct json_value *v)
{
    char *s = p->pos;
    if (s < p->end && *s == '-')
        s++;
    if (s >= p->end || *s < '0' || *s > '9')
        goto bad;
    if (*s == '0')
        s++;
    else
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    if (s < p->end && *s == '.') {
        s++;
        if (s >= p->end || *s < '0' || *s > '9')
            goto bad;
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < p->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= p->end || *s < '0' || *s > '9')
            goto bad;
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    char copy[64];
    size_t n = (size_t)(s - p->pos);
    if (n >= sizeof copy) {
        p->error = "number too long";
        return -1;
    }
    memcpy(copy, p->pos, n);
    copy[n] = '\0';
    v->number = strtod(copy, NULL);
    p->pos = s;
    return 0;
bad:
    p->error = "bad number";
    return -1;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->pos) < n || memcmp(p->pos, word, n) != 0) {
        p->error = "unexpected character";
        return -1;
    }
    p->pos += n;
    return 0;
}

static struct json_value *parse_value(struct parser *p, int depth);

/* Arrays and objects: elements separated by ',', object members by "key": value. */
static int parse_container(struct parser *p, struct json_value *v, int depth)
{
    char close = v->type == JSON_OBJECT ? '}' : ']';
    struct json_value **link = &v->child;
    p->pos++;
    skip_space(p);
    if (p->pos < p->end && *p->pos == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_space(p);
        if (v->type == JSON_OBJECT) {
            if (p->pos >= p->end || *p->pos != '"') {
                p->error = "expected a member name";
                return -1;
            }
            if (parse_string(p, &key, &key_len) != 0)
                return -1;
            skip_space(p);
            if (p->pos >= p->end || *p->pos != ':') {
                p->error = "expected ':'";
                return -1;
            }
            p->pos++;
        }
        struct json_value *child = parse_value(p, depth + 1);
        if (!child)
            return -1;
        child->key = key;
        child->key_len = key_len;
        *link = child;
        link = &child->next;
        v->count++;
        skip_space(p);
        if (p->pos < p->end && *p->pos == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->end && *p->pos == close) {
            p->pos++;
            return 0;
        }
        p->error = v->type == JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'";
        return -1;
    }
}

static struct json_value *parse_value(struct parser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        p->error = "nested too deeply";
        return NULL;
    }
    skip_space(p);
    if (p->pos >= p->end) {
        p->error = "unexpected end of input";
        return NULL;
    }
    struct json_value *v;
    switch (*p->pos) {
    case '{':
    case '[':
        v = new_value(p, *p->pos == '{' ? JSON_OBJECT : JSON_ARRAY);
        if (!v || parse_container(p, v, depth) != 0)
            return NULL;
        return v;
    case '"':
        v = new_value(p, JSON_STRING);
        if (!v || parse_string(p, &v->str, &v->str_len) != 0)
            return NULL;
        return v;
    case 't':
        v = new_value(p, JSON_TRUE);
        return v && literal(p, "true") == 0 ? v : NULL;
    case 'f':
        v = new_value(p, JSON_FALSE);
        return v && literal(p, "false") == 0 ? v : NULL;
    case 'n':
        v = new_value(p, JSON_NULL);
        return v && literal(p, "null") == 0 ? v : NULL;
    default:
        v = new_value(p, JSON_NUMBER);
        return v && parse_number(p, v) == 0 ? v : NULL;
    }
}

int json_parse(struct json_doc *doc, const char *text, size_t len, const char **error)
{
    memset(doc, 0, sizeof *doc);
    /* Every value takes at least one byte of input, so len + 1 values always suffice. */
    size_t capacity = len + 1 < JSON_MAX_VALUES ? len + 1 : JSON_MAX_VALUES;
    doc->text = malloc(len ? len : 1);
    doc->values = calloc(capacity, sizeof *doc->values);
    if (!doc->text || !doc->values) {
        json_doc_free(doc);
        *error = "out of memory";
        return -1;
    }
    memcpy(doc->text, text, len);
    struct parser p = {.pos = doc->text, .end = doc->text + len, .doc = doc, .capacity = capacity};
    doc->root = parse_value(&p, 0);
    if (doc->root) {
        skip_space(&p);
        if (p.pos != p.end) {
            p.error = "trailing characters after the value";
            doc->root = NULL;
        }
    }
    if (!doc->root) {
        *error = p.error ? p.error : "bad JSON";
        json_doc_free(doc);
        return -1;
    }
    return 0;
}

void json_doc_free(struct json_doc *doc)
{
    free(doc->text);
    free(doc->values);
    memset(doc, 0, sizeof *doc);
}

const struct json_value *json_member(const struct json_value *object, const char *name)
{
    if (!object || object->type != JSON_OBJECT)
        return NULL;
    size_t n = strlen(name);
    const struct json_value *found = NULL;
    for (const struct json_value *m = object->child; m; m = m->next)
        if (m->key_len == n && memcmp(m->key, name, n) == 0)
            found = m;
    return found;
}
