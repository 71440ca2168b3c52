/* broker/model/policy.c: the policy store of one vhost (two sorted lists, policies and operator
 * policies, each with its pattern compiled once), the validation of definitions with RabbitMQ's
 * texts (rabbit_policies:validate_policy0, rabbit_policy:validation), and matching. */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "table.h"

enum applies { APPLIES_ALL, APPLIES_QUEUES, APPLIES_CLASSIC_QUEUES, APPLIES_QUORUM_QUEUES, APPLIES_EXCHANGES,
               APPLIES_NOTHING };

struct policy {
    struct policy *next;
    char *name, *pattern, *apply_to;
    enum applies applies;
    int64_t priority;
    regex_t regex;
    struct proto_bytes definition; /* points into storage */
    uint8_t storage[];
};

struct policy_store {
    struct policy *lists[2];  /* by name */
    struct policy *garbage;   /* replaced or removed, freed by policy_store_collect */
};

/* ---- RabbitMQ's texts ------------------------------------------------------------------ */

/* Appends to out (cap, NUL-terminated, cut when full). */
static void append(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void append(char *out, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, cap - used, fmt, ap);
    va_end(ap);
}

/* A binary as Erlang's ~tp prints it: <<"text">>, with " and \ escaped. */
static void append_binary(char *out, size_t cap, struct proto_bytes b)
{
    append(out, cap, "<<\"");
    for (uint32_t i = 0; i < b.len; i++) {
        uint8_t c = b.ptr[i];
        if (c == '"' || c == '\\')
            append(out, cap, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            append(out, cap, "\\%03o", c);
        else
            append(out, cap, "%c", c);
    }
    append(out, cap, "\">>");
}

/* A field value as RabbitMQ would print the JSON term it came from. */
static void append_term(char *out, size_t cap, const struct table_value *v)
{
    int64_t i;
    switch (v->type) {
    case TABLE_LONGSTR: case TABLE_BYTES: append_binary(out, cap, v->v.bytes); return;
    case TABLE_BOOL: append(out, cap, "%s", v->v.boolean ? "true" : "false"); return;
    case TABLE_FLOAT: append(out, cap, "%g", (double)v->v.f32); return;
    case TABLE_DOUBLE: append(out, cap, "%g", v->v.f64); return;
    case TABLE_VOID: append(out, cap, "null"); return;
    case TABLE_TABLE: append(out, cap, "#{}"); return;
    case TABLE_ARRAY: append(out, cap, "[]"); return;
    default:
        if (table_value_to_int(v, &i))
            append(out, cap, "%" PRId64, i);
        else if (v->type == TABLE_UINT64)
            append(out, cap, "%" PRIu64, v->v.u64);
        else
            append(out, cap, "undefined");
    }
}

static int failed(char *error, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "Validation failed\n\n<text>\n": rabbit_runtime_parameters' wrapping of a validator error. */
static int failed(char *error, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return -1;
    snprintf(error, cap, "Validation failed\n\n");
    size_t used = strlen(error);
    va_list ap;
    va_start(ap, fmt);
    if (used + 1 < cap)
        vsnprintf(error + used, cap - used, fmt, ap);
    va_end(ap);
    append(error, cap, "\n");
    return -1;
}

/* ---- definitions ----------------------------------------------------------------------- */

enum check { INT_MIN0, INT_MIN1, ANY_INT, STRING, ENUM };

struct key_rule {
    const char *key;
    enum check check;
    const char *what;           /* "~tp is not a valid <what>" */
    const char *const *values;  /* ENUM: the accepted strings, NULL-terminated */
    bool operator_key;          /* also valid in an operator policy */
};

static const char *const overflow_values[] = {"drop-head", "reject-publish", "reject-publish-dlx", NULL};
static const char *const queue_mode_values[] = {"default", "lazy", NULL};
static const char *const strategy_values[] = {"at-most-once", "at-least-once", NULL};
static const char *const locator_values[] = {"client-local", "balanced", "random", "least-leaders", NULL};

/* rabbit_policies' validators. Those that mean nothing to Warren's queues (streams, leader
 * placement, in-memory limits) are accepted as RabbitMQ accepts them, and ignored; delivery-limit
 * applies to quorum queues (policy_queue_arguments). */
static const struct key_rule rules[] = {
    {"alternate-exchange", STRING, "alternate exchange name", NULL, false},
    {"consumer-timeout", INT_MIN0, "consumer timeout", NULL, false},
    {"dead-letter-exchange", STRING, "dead letter exchange name", NULL, false},
    {"dead-letter-routing-key", STRING, "dead letter routing key", NULL, false},
    {"dead-letter-strategy", ENUM, "dead letter strategy", strategy_values, false},
    {"message-ttl", INT_MIN0, "message TTL", NULL, true},
    {"expires", INT_MIN1, "queue expiry", NULL, true},
    {"max-length", INT_MIN0, "maximum length", NULL, true},
    {"max-length-bytes", INT_MIN0, "maximum length in bytes", NULL, true},
    {"max-in-memory-length", INT_MIN0, "maximum memory in bytes", NULL, true},
    {"max-in-memory-bytes", INT_MIN0, "maximum memory in bytes", NULL, true},
    {"queue-mode", ENUM, "queue-mode value", queue_mode_values, false},
    {"overflow", ENUM, "overflow value", overflow_values, false},
    {"delivery-limit", ANY_INT, "delivery limit", NULL, true},
    {"max-age", STRING, "max age", NULL, false},
    {"stream-max-segment-size-bytes", INT_MIN0, "segment size", NULL, false},
    {"queue-leader-locator", ENUM, "queue leader locator value", locator_values, false},
    {"initial-cluster-size", INT_MIN1, "cluster size", NULL, false},
};

/* queue-version takes integers 1 or 2 only; checked apart from the table above. */
static bool integer_of(const struct table_value *v, int64_t *out)
{
    if (v->type == TABLE_TIMESTAMP || v->type == TABLE_UINT64)
        return v->type == TABLE_UINT64 && table_value_to_int(v, out);
    return table_value_to_int(v, out);
}

static bool enum_member(const char *const *values, struct proto_bytes s)
{
    for (; *values; values++)
        if (proto_bytes_is(s, *values))
            return true;
    return false;
}

/* 0 when value suits rule, else -1 with the validator's text. */
static int check_value(const struct key_rule *rule, const struct table_value *v, char *error, size_t cap)
{
    int64_t i = 0;
    bool ok;
    switch (rule->check) {
    case INT_MIN0: ok = integer_of(v, &i) && i >= 0; break;
    case INT_MIN1: ok = integer_of(v, &i) && i >= 1; break;
    case ANY_INT: ok = integer_of(v, &i); break;
    case STRING: ok = v->type == TABLE_LONGSTR; break;
    case ENUM: ok = v->type == TABLE_LONGSTR && enum_member(rule->values, v->v.bytes); break;
    default: ok = false;
    }
    if (ok)
        return 0;
    char term[POLICY_ERROR_MAX] = "";
    append_term(term, sizeof term, v);
    return failed(error, cap, "%s is not a valid %s", term, rule->what);
}

static const struct key_rule *find_rule(struct proto_bytes key, enum policy_kind kind)
{
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        if (proto_bytes_is(key, rules[i].key) && (kind == POLICY_USER || rules[i].operator_key))
            return &rules[i];
    return NULL;
}

int policy_validate_definition(enum policy_kind kind, struct proto_bytes definition, char *error, size_t cap)
{
    if (table_validate(definition) != 0)
        return failed(error, cap, "definition must be a dictionary");
    if (definition.len == 0)
        return failed(error, cap, "no policy provided");
    struct table_iter it, dup;
    struct proto_bytes key, other;
    struct table_value v, w;
    /* Duplicates first, as rabbit_policy:validation checks the keys before any value. */
    table_iter_init(&it, definition);
    for (size_t index = 0; table_next(&it, &key, &v) == 1; index++) {
        table_iter_init(&dup, definition);
        for (size_t j = 0; j < index && table_next(&dup, &other, &w) == 1; j++) {
            if (other.len == key.len && memcmp(other.ptr, key.ptr, key.len) == 0) {
                char term[POLICY_ERROR_MAX] = "";
                append_binary(term, sizeof term, key);
                return failed(error, cap, "[%s] duplicate keys not allowed", term);
            }
        }
    }
    /* Known keys are checked before the unknown ones are reported, as validation0 does. */
    table_iter_init(&it, definition);
    while (table_next(&it, &key, &v) == 1) {
        const struct key_rule *rule = find_rule(key, kind);
        int64_t version;
        if (rule && check_value(rule, &v, error, cap) != 0)
            return -1;
        if (!rule && kind == POLICY_USER && proto_bytes_is(key, "queue-version") &&
            !(integer_of(&v, &version) && (version == 1 || version == 2))) {
            char term[POLICY_ERROR_MAX] = "";
            append_term(term, sizeof term, &v);
            return failed(error, cap, "%s is not a valid queue-version value", term);
        }
    }
    char unknown[POLICY_ERROR_MAX] = "";
    table_iter_init(&it, definition);
    while (table_next(&it, &key, &v) == 1) {
        if (find_rule(key, kind) || (kind == POLICY_USER && proto_bytes_is(key, "queue-version")))
            continue;
        append(unknown, sizeof unknown, "%s{", unknown[0] ? "," : "[");
        append_binary(unknown, sizeof unknown, key);
        append(unknown, sizeof unknown, ",");
        append_term(unknown, sizeof unknown, &v);
        append(unknown, sizeof unknown, "}");
    }
    if (unknown[0])
        return failed(error, cap, "%s] are not recognised policy settings", unknown);
    return 0;
}

/* ---- the store ------------------------------------------------------------------------- */

struct policy_store *policy_store_create(void) { return calloc(1, sizeof(struct policy_store)); }

static void policy_free(struct policy *p)
{
    if (!p)
        return;
    regfree(&p->regex);
    free(p);
}

static void free_list(struct policy *p)
{
    while (p) {
        struct policy *next = p->next;
        policy_free(p);
        p = next;
    }
}

void policy_store_destroy(struct policy_store *store)
{
    if (!store)
        return;
    free_list(store->lists[0]);
    free_list(store->lists[1]);
    free_list(store->garbage);
    free(store);
}

void policy_store_collect(struct policy_store *store)
{
    free_list(store->garbage);
    store->garbage = NULL;
}

static int parse_apply_to(const char *apply_to, enum applies *out)
{
    static const struct {
        const char *text;
        enum applies applies;
    } names[] = {
        {"all", APPLIES_ALL}, {"queues", APPLIES_QUEUES}, {"classic_queues", APPLIES_CLASSIC_QUEUES},
        {"exchanges", APPLIES_EXCHANGES}, {"quorum_queues", APPLIES_QUORUM_QUEUES}, {"streams", APPLIES_NOTHING},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(apply_to, names[i].text) == 0) {
            *out = names[i].applies;
            return 0;
        }
    }
    return -1;
}

/* Copies spec into one allocation, pattern compiled. Returns the policy, NULL with error. */
static struct policy *policy_new(enum policy_kind kind, const struct policy_spec *spec, int *status, char *error,
                                 size_t cap)
{
    *status = -1;
    const char *apply_to = spec->apply_to ? spec->apply_to : "all";
    enum applies applies;
    const char *why;
    if (!spec->name || !spec->pattern) {
        failed(error, cap, "name and pattern are mandatory");
        return NULL;
    }
    size_t name_len = strlen(spec->name), pattern_len = strlen(spec->pattern), apply_len = strlen(apply_to);
    if (name_len == 0 || name_len > POLICY_NAME_MAX ||
        name_check((struct proto_bytes){(const uint8_t *)spec->name, (uint32_t)name_len}, false, &why) != 0) {
        failed(error, cap, "policy name must be 1 to %d bytes", POLICY_NAME_MAX);
        return NULL;
    }
    if (pattern_len > POLICY_PATTERN_MAX) {
        failed(error, cap, "pattern must not exceed %d bytes", POLICY_PATTERN_MAX);
        return NULL;
    }
    if (parse_apply_to(apply_to, &applies) != 0) {
        failed(error, cap,
               "apply-to '%s' unrecognised; should be one of: 'queues', 'classic_queues',  'quorum_queues', "
               "'streams', 'exchanges', or 'all'",
               apply_to);
        return NULL;
    }
    if (policy_validate_definition(kind, spec->definition, error, cap) != 0)
        return NULL;
    struct policy *p = calloc(1, sizeof *p + name_len + pattern_len + apply_len + 3 + spec->definition.len);
    if (!p) {
        *status = -ENOMEM;
        return NULL;
    }
    int rc = regcomp(&p->regex, spec->pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char reason[200];
        regerror(rc, &p->regex, reason, sizeof reason);
        free(p);
        failed(error, cap, "pattern should be regular expression but is invalid: \"%s\"", reason);
        return NULL;
    }
    char *at = (char *)p->storage;
    p->name = memcpy(at, spec->name, name_len + 1);
    at += name_len + 1;
    p->pattern = memcpy(at, spec->pattern, pattern_len + 1);
    at += pattern_len + 1;
    p->apply_to = memcpy(at, apply_to, apply_len + 1);
    at += apply_len + 1;
    if (spec->definition.len)
        memcpy(at, spec->definition.ptr, spec->definition.len);
    p->definition = (struct proto_bytes){(const uint8_t *)at, spec->definition.len};
    p->applies = applies;
    p->priority = spec->priority;
    *status = 0;
    return p;
}

int policy_store_set(struct policy_store *store, enum policy_kind kind, const struct policy_spec *spec, char *error,
                     size_t cap)
{
    if (cap)
        error[0] = '\0';
    int status;
    struct policy *p = policy_new(kind, spec, &status, error, cap);
    if (!p)
        return status;
    struct policy **link = &store->lists[kind];
    while (*link && strcmp((*link)->name, p->name) < 0)
        link = &(*link)->next;
    if (*link && strcmp((*link)->name, p->name) == 0) {
        struct policy *old = *link;
        p->next = old->next;
        old->next = store->garbage;
        store->garbage = old;
    } else {
        p->next = *link;
    }
    *link = p;
    return 0;
}

int policy_spec_check(enum policy_kind kind, const struct policy_spec *spec, char *error, size_t cap)
{
    if (cap)
        error[0] = '\0';
    int status;
    policy_free(policy_new(kind, spec, &status, error, cap));
    return status;
}

bool policy_store_has(const struct policy_store *store, enum policy_kind kind, const char *name)
{
    for (const struct policy *p = store->lists[kind]; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return true;
    return false;
}

int policy_store_clear(struct policy_store *store, enum policy_kind kind, const char *name)
{
    for (struct policy **link = &store->lists[kind]; *link; link = &(*link)->next) {
        if (strcmp((*link)->name, name) == 0) {
            struct policy *old = *link;
            *link = old->next;
            old->next = store->garbage;
            store->garbage = old;
            return 0;
        }
    }
    return -ENOENT;
}

void policy_store_for_each(const struct policy_store *store, enum policy_kind kind,
                           void (*fn)(const struct policy_spec *spec, void *arg), void *arg)
{
    for (const struct policy *p = store->lists[kind]; p; p = p->next) {
        struct policy_spec spec = {p->name, p->pattern, p->apply_to, p->priority, p->definition};
        fn(&spec, arg);
    }
}

size_t policy_store_count(const struct policy_store *store, enum policy_kind kind)
{
    size_t n = 0;
    for (const struct policy *p = store->lists[kind]; p; p = p->next)
        n++;
    return n;
}

static bool applies_to(const struct policy *p, enum policy_target target)
{
    switch (p->applies) {
    case APPLIES_ALL: return true;
    case APPLIES_QUEUES: return target == POLICY_TARGET_QUEUE || target == POLICY_TARGET_QUORUM_QUEUE;
    case APPLIES_CLASSIC_QUEUES: return target == POLICY_TARGET_QUEUE;
    case APPLIES_QUORUM_QUEUES: return target == POLICY_TARGET_QUORUM_QUEUE;
    case APPLIES_EXCHANGES: return target == POLICY_TARGET_EXCHANGE;
    default: return false;
    }
}

const struct policy *policy_store_match(const struct policy_store *store, enum policy_kind kind,
                                        enum policy_target target, struct proto_bytes name)
{
    /* regexec wants a C string: a name holding a zero byte is matched up to it. */
    char text[NAME_MAX_LEN + 1];
    size_t len = name.len < NAME_MAX_LEN ? name.len : NAME_MAX_LEN;
    if (len)
        memcpy(text, name.ptr, len);
    text[len] = '\0';
    const struct policy *best = NULL;
    /* The list is in name order and only a strictly higher priority replaces the best, so the
     * smallest name wins a tie. */
    for (const struct policy *p = store->lists[kind]; p; p = p->next) {
        if ((best && p->priority <= best->priority) || !applies_to(p, target))
            continue;
        if (regexec(&p->regex, text, 0, NULL, 0) == 0)
            best = p;
    }
    return best;
}

const char *policy_name(const struct policy *policy) { return policy->name; }
struct proto_bytes policy_definition(const struct policy *policy) { return policy->definition; }
