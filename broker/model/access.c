/* broker/model/access.c: users, vhost names and permissions (see access.h), kept the way
 * RabbitMQ's internal auth backend keeps them.
 *
 * Password hashes are rabbit_password_hashing_sha256: salt(4 random bytes) ++
 * SHA-256(salt ++ password), 36 bytes, base64 when written down. Permission patterns are
 * compiled once, when set, and looked up through two hashes (user, then vhost) per check.
 *
 * Persisted layout: access_export appends three fields to an AMQP field table, each an array
 * of tables, with the names RabbitMQ's definitions use (all values longstr):
 *   users:       {name, password_hash (base64, "" when none), hashing_algorithm, tags ("a,b"),
 *                 limits (optional table: "max-connections" / "max-channels" -> signed 64-bit
 *                 integer, only the limits set)}
 *   vhosts:      {name}
 *   permissions: {vhost, user, configure, write, read}
 * access_import builds a complete new registry from them and swaps it in only when every
 * entry was accepted, so a damaged blob never leaves a half-loaded set of users.
 * Compatibility: the fields are found by name, so a reader skips fields it does not know and
 * treats absent optional ones as unset; "limits" was added that way (files written before it
 * load with no limits, and older brokers ignore it). A limit that is not an integer, or is
 * named but unknown, is treated like any other malformed entry (the whole blob is refused). */
#include "access.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

#include <nettle/sha2.h>
#include "random.h"
#include "spec.h"
#include "table.h"

/* Allocation failures inside uthash leave the item's hh.tbl NULL instead of calling exit(). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#define SALT_LEN 4
#define HASH_LEN (SALT_LEN + SHA256_DIGEST_SIZE)
#define VHOST_NAME_MAX 255
#define HASHING_ALGORITHM "rabbit_password_hashing_sha256"

static const char *const kind_names[] = {"configure", "write", "read"};

struct access_vhost {
    UT_hash_handle hh;
    char name[]; /* the key */
};

/* One grant's patterns: replaced as a whole, so a grant is updated without touching the hash. */
struct access_patterns {
    char *text[3];    /* as set, indexed by enum access_kind */
    regex_t regex[3]; /* "" compiled as "^$" */
};

struct access_grant {
    UT_hash_handle hh; /* in the user's grants, keyed by vhost->name */
    struct access_vhost *vhost;
    struct access_patterns *patterns;
};

struct access_user {
    UT_hash_handle hh; /* keyed by name */
    char *name;
    char *tags; /* comma-separated, never NULL */
    bool has_password;
    uint8_t hash[HASH_LEN];
    struct access_grant *grants;
    bool limited[ACCESS_USER_LIMIT_COUNT]; /* false: no limit (what calloc leaves) */
    int64_t limits[ACCESS_USER_LIMIT_COUNT];
};

struct access {
    struct access_user *users;
    struct access_vhost *vhosts;
};

static void say(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...)
{
    if (why == NULL || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static struct access_user *find_user(const struct access *a, const char *name)
{
    struct access_user *u = NULL;
    HASH_FIND_STR(a->users, name, u);
    return u;
}

static struct access_vhost *find_vhost(const struct access *a, const char *name)
{
    struct access_vhost *v = NULL;
    HASH_FIND_STR(a->vhosts, name, v);
    return v;
}

static struct access_grant *find_grant(const struct access_user *u, const char *vhost)
{
    struct access_grant *g = NULL;
    HASH_FIND_STR(u->grants, vhost, g);
    return g;
}

/* --- Hashing ------------------------------------------------------------------------------- */

/* out = salt ++ SHA-256(salt ++ password). */
static void hash_with_salt(const uint8_t salt[SALT_LEN], const uint8_t *password, size_t len, uint8_t out[HASH_LEN])
{
    struct sha256_ctx ctx; /* Nettle's (see broker/core/CMakeLists.txt) */
    sha256_init(&ctx);
    sha256_update(&ctx, SALT_LEN, salt);
    sha256_update(&ctx, len, password);
    memmove(out, salt, SALT_LEN); /* salt may point into out */
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out + SALT_LEN);
    explicit_bzero(&ctx, sizeof ctx); /* it held the password */
}

/* Sets or (password NULL) clears u's password. */
static int set_password(struct access_user *u, const char *password)
{
    if (password == NULL) {
        u->has_password = false;
        explicit_bzero(u->hash, sizeof u->hash);
        return 0;
    }
    uint8_t salt[SALT_LEN];
    if (random_bytes(salt, SALT_LEN) != 0)
        return -EIO;
    hash_with_salt(salt, (const uint8_t *)password, strlen(password), u->hash);
    u->has_password = true;
    return 0;
}

/* Decodes a base64 hash ("" meaning no password) into u. */
static int set_password_hash(struct access_user *u, const char *hash_base64, size_t len)
{
    if (len == 0)
        return set_password(u, NULL);
    uint8_t hash[HASH_LEN];
    if (base64_decode(hash_base64, len, hash, sizeof hash) != HASH_LEN)
        return -EINVAL;
    memcpy(u->hash, hash, HASH_LEN);
    u->has_password = true;
    return 0;
}

bool access_check_password(const struct access *a, const char *name, const uint8_t *password, size_t len)
{
    /* Unknown users and users without a password are hashed against a dummy so the time
     * taken does not tell which names exist. */
    static const uint8_t dummy[HASH_LEN];
    const struct access_user *u = find_user(a, name);
    bool known = u != NULL && u->has_password;
    const uint8_t *stored = known ? u->hash : dummy;
    uint8_t computed[HASH_LEN];
    hash_with_salt(stored, password ? password : (const uint8_t *)"", len, computed);
    uint8_t difference = 0;
    for (size_t i = SALT_LEN; i < HASH_LEN; i++)
        difference |= (uint8_t)(computed[i] ^ stored[i]);
    explicit_bzero(computed, sizeof computed);
    return known && difference == 0;
}

/* --- Users --------------------------------------------------------------------------------- */

static void patterns_free(struct access_patterns *p, int compiled)
{
    if (p == NULL)
        return;
    for (int k = 0; k < compiled; k++)
        regfree(&p->regex[k]);
    for (int k = 0; k < 3; k++)
        free(p->text[k]);
    free(p);
}

static void grant_remove(struct access_user *u, struct access_grant *g)
{
    HASH_DEL(u->grants, g);
    patterns_free(g->patterns, 3);
    free(g);
}

static void user_free(struct access_user *u)
{
    struct access_grant *g, *tmp;
    HASH_ITER(hh, u->grants, g, tmp)
        grant_remove(u, g);
    explicit_bzero(u->hash, sizeof u->hash);
    free(u->name);
    free(u->tags);
    free(u);
}

/* Creates and indexes a user with no password, tags or grants; *out is set on success. */
static int user_new(struct access *a, const char *name, struct access_user **out)
{
    if (name == NULL || name[0] == '\0')
        return -EINVAL;
    if (find_user(a, name) != NULL)
        return -EEXIST;
    struct access_user *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    u->name = strdup(name);
    u->tags = strdup("");
    if (u->name == NULL || u->tags == NULL) {
        user_free(u);
        return -ENOMEM;
    }
    HASH_ADD_KEYPTR(hh, a->users, u->name, strlen(u->name), u);
    if (u->hh.tbl == NULL) {
        user_free(u);
        return -ENOMEM;
    }
    *out = u;
    return 0;
}

static void user_delete(struct access *a, struct access_user *u)
{
    HASH_DEL(a->users, u);
    user_free(u);
}

int access_add_user(struct access *a, const char *name, const char *password)
{
    struct access_user *u;
    int rc = user_new(a, name, &u);
    if (rc != 0)
        return rc;
    rc = set_password(u, password);
    if (rc != 0)
        user_delete(a, u);
    return rc;
}

int access_add_user_hashed(struct access *a, const char *name, const char *hash_base64)
{
    uint8_t check[HASH_LEN];
    size_t len = strlen(hash_base64);
    if (len != 0 && base64_decode(hash_base64, len, check, sizeof check) != HASH_LEN)
        return -EINVAL; /* before user_new, so a bad hash adds nothing */
    struct access_user *u;
    int rc = user_new(a, name, &u);
    if (rc == 0)
        rc = set_password_hash(u, hash_base64, len);
    return rc;
}

int access_set_password_hash(struct access *a, const char *name, const char *hash_base64)
{
    struct access_user *u = find_user(a, name);
    if (u == NULL)
        return -ENOENT;
    uint8_t check[HASH_LEN];
    size_t len = strlen(hash_base64);
    if (len != 0 && base64_decode(hash_base64, len, check, sizeof check) != HASH_LEN)
        return -EINVAL;
    return set_password_hash(u, hash_base64, len);
}

int access_user_password_hash(const struct access *a, const char *name, char *out, size_t cap)
{
    const struct access_user *u = find_user(a, name);
    if (u == NULL)
        return -ENOENT;
    if (cap < ACCESS_HASH_BASE64_MAX)
        return -EINVAL;
    out[0] = '\0';
    if (u->has_password)
        base64_encode(u->hash, HASH_LEN, out);
    return 0;
}

int access_delete_user(struct access *a, const char *name)
{
    struct access_user *u = find_user(a, name);
    if (u == NULL)
        return -ENOENT;
    user_delete(a, u);
    return 0;
}

int access_change_password(struct access *a, const char *name, const char *password)
{
    struct access_user *u = find_user(a, name);
    return u == NULL ? -ENOENT : set_password(u, password);
}

int access_set_user_tags(struct access *a, const char *name, const char *const *tags, size_t n)
{
    struct access_user *u = find_user(a, name);
    if (u == NULL)
        return -ENOENT;
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (tags[i] == NULL || tags[i][0] == '\0' || strchr(tags[i], ',') != NULL)
            return -EINVAL;
        total += strlen(tags[i]) + 1;
    }
    char *csv = malloc(total);
    if (csv == NULL)
        return -ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(tags[i]);
        if (i > 0)
            csv[at++] = ',';
        memcpy(csv + at, tags[i], len);
        at += len;
    }
    csv[at] = '\0';
    free(u->tags);
    u->tags = csv;
    return 0;
}

bool access_user_has_tag(const struct access *a, const char *name, const char *tag)
{
    const struct access_user *u = find_user(a, name);
    if (u == NULL)
        return false;
    size_t len = strlen(tag);
    for (const char *p = u->tags; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t piece = comma ? (size_t)(comma - p) : strlen(p);
        if (piece == len && memcmp(p, tag, len) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return false;
}

bool access_user_exists(const struct access *a, const char *name)
{
    return find_user(a, name) != NULL;
}

static const char *const user_limit_names[ACCESS_USER_LIMIT_COUNT] = {"max-connections", "max-channels"};

const char *access_user_limit_name(enum access_user_limit limit)
{
    return (unsigned)limit < ACCESS_USER_LIMIT_COUNT ? user_limit_names[limit] : "unknown";
}

int access_user_limit_parse(const char *name, enum access_user_limit *out)
{
    for (unsigned i = 0; i < ACCESS_USER_LIMIT_COUNT; i++) {
        if (strcmp(name, user_limit_names[i]) == 0) {
            *out = (enum access_user_limit)i;
            return 0;
        }
    }
    return -EINVAL;
}

int64_t access_user_limit(const struct access *a, const char *user, enum access_user_limit limit)
{
    const struct access_user *u = (unsigned)limit < ACCESS_USER_LIMIT_COUNT ? find_user(a, user) : NULL;
    return u && u->limited[limit] ? u->limits[limit] : -1;
}

int access_set_user_limit(struct access *a, const char *user, enum access_user_limit limit, int64_t value)
{
    if ((unsigned)limit >= ACCESS_USER_LIMIT_COUNT)
        return -EINVAL;
    struct access_user *u = find_user(a, user);
    if (u == NULL)
        return -ENOENT;
    u->limited[limit] = value >= 0;
    u->limits[limit] = value >= 0 ? value : 0;
    return 0;
}

void access_for_each_user(const struct access *a, void (*fn)(const char *name, const char *tags_csv, void *arg),
                          void *arg)
{
    for (const struct access_user *u = a->users; u != NULL; u = u->hh.next)
        fn(u->name, u->tags, arg);
}

/* --- Virtual hosts ------------------------------------------------------------------------- */

int access_add_vhost(struct access *a, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > VHOST_NAME_MAX)
        return -EINVAL;
    if (find_vhost(a, name) != NULL)
        return -EEXIST;
    struct access_vhost *v = malloc(sizeof *v + len + 1);
    if (v == NULL)
        return -ENOMEM;
    memset(v, 0, sizeof *v);
    memcpy(v->name, name, len + 1);
    HASH_ADD_KEYPTR(hh, a->vhosts, v->name, len, v);
    if (v->hh.tbl == NULL) {
        free(v);
        return -ENOMEM;
    }
    return 0;
}

int access_delete_vhost(struct access *a, const char *name)
{
    struct access_vhost *v = find_vhost(a, name);
    if (v == NULL)
        return -ENOENT;
    for (struct access_user *u = a->users; u != NULL; u = u->hh.next) {
        struct access_grant *g = find_grant(u, name);
        if (g != NULL)
            grant_remove(u, g);
    }
    HASH_DEL(a->vhosts, v);
    free(v);
    return 0;
}

bool access_vhost_exists(const struct access *a, const char *name)
{
    return find_vhost(a, name) != NULL;
}

void access_for_each_vhost(const struct access *a, void (*fn)(const char *name, void *arg), void *arg)
{
    for (const struct access_vhost *v = a->vhosts; v != NULL; v = v->hh.next)
        fn(v->name, arg);
}

/* --- Permissions --------------------------------------------------------------------------- */

/* Copies and compiles the three patterns. On failure *out is NULL and why says which failed. */
static int patterns_compile(const char *const text[3], struct access_patterns **out, char *why, size_t why_len)
{
    *out = NULL;
    struct access_patterns *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    for (int k = 0; k < 3; k++) {
        p->text[k] = strdup(text[k] ? text[k] : "");
        if (p->text[k] == NULL) {
            patterns_free(p, k);
            return -ENOMEM;
        }
        /* RabbitMQ matches unanchored (re:run) and reads "" as "^$". */
        int rc = regcomp(&p->regex[k], p->text[k][0] ? p->text[k] : "^$", REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char message[128];
            regerror(rc, &p->regex[k], message, sizeof message);
            say(why, why_len, "invalid %s regular expression '%s': %s", kind_names[k], p->text[k], message);
            patterns_free(p, k);
            return rc == REG_ESPACE ? -ENOMEM : -EINVAL;
        }
    }
    *out = p;
    return 0;
}

int access_set_permissions(struct access *a, const char *vhost, const char *user, const char *configure,
                           const char *write, const char *read, char *why, size_t why_len)
{
    say(why, why_len, "%s", "");
    struct access_user *u = find_user(a, user);
    if (u == NULL) {
        say(why, why_len, "no such user '%s'", user);
        return -ENOENT;
    }
    struct access_vhost *v = find_vhost(a, vhost);
    if (v == NULL) {
        say(why, why_len, "no such vhost '%s'", vhost);
        return -ENOENT;
    }
    const char *text[3] = {configure, write, read};
    struct access_patterns *p;
    int rc = patterns_compile(text, &p, why, why_len);
    if (rc != 0) {
        if (rc == -ENOMEM)
            say(why, why_len, "out of memory");
        return rc;
    }
    struct access_grant *g = find_grant(u, vhost);
    if (g != NULL) {
        patterns_free(g->patterns, 3);
        g->patterns = p;
        return 0;
    }
    g = calloc(1, sizeof *g);
    if (g != NULL) {
        g->vhost = v;
        g->patterns = p;
        HASH_ADD_KEYPTR(hh, u->grants, v->name, strlen(v->name), g);
        if (g->hh.tbl != NULL)
            return 0;
        free(g);
    }
    patterns_free(p, 3);
    say(why, why_len, "out of memory");
    return -ENOMEM;
}

int access_clear_permissions(struct access *a, const char *vhost, const char *user)
{
    struct access_user *u = find_user(a, user);
    struct access_grant *g = u ? find_grant(u, vhost) : NULL;
    if (g == NULL)
        return -ENOENT;
    grant_remove(u, g);
    return 0;
}

void access_for_each_permission(const struct access *a,
                                void (*fn)(const char *vhost, const char *user, const char *configure,
                                           const char *write, const char *read, void *arg),
                                void *arg)
{
    for (const struct access_user *u = a->users; u != NULL; u = u->hh.next)
        for (const struct access_grant *g = u->grants; g != NULL; g = g->hh.next)
            fn(g->vhost->name, u->name, g->patterns->text[ACCESS_CONFIGURE], g->patterns->text[ACCESS_WRITE],
               g->patterns->text[ACCESS_READ], arg);
}

bool access_can_access_vhost(const struct access *a, const char *user, const char *vhost)
{
    const struct access_user *u = find_user(a, user);
    return u != NULL && find_grant(u, vhost) != NULL;
}

bool access_check(const struct access *a, const char *user, const char *vhost, enum access_kind kind,
                  const uint8_t *name, size_t len)
{
    if ((unsigned)kind > ACCESS_READ || len > 255) /* resource names are shortstrs */
        return false;
    const struct access_user *u = find_user(a, user);
    const struct access_grant *g = u ? find_grant(u, vhost) : NULL;
    if (g == NULL)
        return false;
    /* REG_STARTEND bounds the subject by length: names are bytes, not C strings. */
    /* The copy is NUL-terminated too: sanitizer interceptors of regexec read up to a NUL. */
    regmatch_t bounds = {.rm_so = 0, .rm_eo = (regoff_t)len};
    char subject[256];
    if (len)
        memcpy(subject, name, len);
    subject[len] = '\0';
    return regexec(&g->patterns->regex[kind], subject, 1, &bounds, REG_STARTEND) == 0;
}

int access_require(const struct access *a, const char *user, const char *vhost, enum access_kind kind,
                   const char *resource, struct proto_bytes name, uint32_t method_id, struct reply_error *err)
{
    if (access_check(a, user, vhost, kind, name.ptr, name.len))
        return 0;
    int shown = name.len > VHOST_NAME_MAX ? VHOST_NAME_MAX : (int)name.len;
    return reply_fail(err, SPEC_ACCESS_REFUSED, method_id, "%s access to %s '%.*s' in vhost '%s' refused for user '%s'",
                      (unsigned)kind <= ACCESS_READ ? kind_names[kind] : "unknown", resource, shown,
                      name.ptr ? (const char *)name.ptr : "", vhost, user);
}

int access_require_vhost(const struct access *a, const char *user, const char *vhost, uint32_t method_id,
                         struct reply_error *err)
{
    if (!access_vhost_exists(a, vhost))
        return reply_fail(err, SPEC_NOT_ALLOWED, method_id, "vhost %s not found", vhost);
    if (!access_can_access_vhost(a, user, vhost))
        return reply_fail(err, SPEC_NOT_ALLOWED, method_id, "access to vhost '%s' refused for user '%s'", vhost, user);
    return 0;
}

/* --- Lifetime and defaults ----------------------------------------------------------------- */

struct access *access_create(void)
{
    return calloc(1, sizeof(struct access));
}

/* Frees a's contents, leaving it empty. */
static void access_clear(struct access *a)
{
    struct access_user *u, *utmp;
    HASH_ITER(hh, a->users, u, utmp)
        user_delete(a, u);
    struct access_vhost *v, *vtmp;
    HASH_ITER(hh, a->vhosts, v, vtmp) {
        HASH_DEL(a->vhosts, v);
        free(v);
    }
}

void access_destroy(struct access *a)
{
    if (a == NULL)
        return;
    access_clear(a);
    free(a);
}

int access_create_defaults(struct access *a, const char *user, const char *password)
{
    int rc = access_add_vhost(a, "/");
    if (rc != 0 && rc != -EEXIST)
        return rc;
    if (access_user_exists(a, user))
        return 0;
    rc = access_add_user(a, user, password);
    if (rc != 0)
        return rc;
    static const char *const administrator[] = {"administrator"};
    rc = access_set_user_tags(a, user, administrator, 1);
    if (rc == 0)
        rc = access_set_permissions(a, "/", user, ".*", ".*", ".*", NULL, 0);
    if (rc != 0)
        access_delete_user(a, user);
    return rc;
}

/* --- Export -------------------------------------------------------------------------------- */

static int put_string(struct table_buf *t, const char *key, const char *s)
{
    struct table_value v = {.type = TABLE_LONGSTR};
    v.v.bytes = (struct proto_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
    return table_buf_put_field(t, key, strlen(key), &v);
}

static int put_buf(struct table_buf *t, const char *key, uint8_t type, const struct table_buf *value)
{
    struct table_value v = {.type = type};
    v.v.bytes = (struct proto_bytes){value->data, (uint32_t)value->len};
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* Appends entry (a finished table) to list and frees it. */
static int append_table(struct table_buf *list, struct table_buf *entry)
{
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){entry->data, (uint32_t)entry->len};
    int rc = table_buf_put_value(list, &v);
    table_buf_free(entry);
    return rc;
}

/* The user's "limits" field, written only when a limit is set (so a blob without limits is
 * byte for byte what brokers before them wrote). */
static int put_limits(struct table_buf *t, const struct access_user *u)
{
    struct table_buf limits = {0};
    int rc = 0;
    for (unsigned i = 0; i < ACCESS_USER_LIMIT_COUNT; i++) {
        if (!u->limited[i])
            continue;
        struct table_value v = {.type = TABLE_INT64, .v.i64 = u->limits[i]};
        rc |= table_buf_put_field(&limits, user_limit_names[i], strlen(user_limit_names[i]), &v);
    }
    if (rc == 0 && limits.len > 0)
        rc = put_buf(t, "limits", TABLE_TABLE, &limits);
    table_buf_free(&limits);
    return rc;
}

int access_export(const struct access *a, struct table_buf *out)
{
    struct table_buf users = {0}, vhosts = {0}, permissions = {0};
    int rc = 0;
    for (const struct access_user *u = a->users; u != NULL; u = u->hh.next) {
        char hash[BASE64_ENCODED_LEN(HASH_LEN) + 1] = "";
        if (u->has_password)
            base64_encode(u->hash, HASH_LEN, hash);
        struct table_buf t = {0};
        rc |= put_string(&t, "name", u->name);
        rc |= put_string(&t, "password_hash", hash);
        rc |= put_string(&t, "hashing_algorithm", HASHING_ALGORITHM);
        rc |= put_string(&t, "tags", u->tags);
        rc |= put_limits(&t, u);
        rc |= append_table(&users, &t);
        for (const struct access_grant *g = u->grants; g != NULL; g = g->hh.next) {
            struct table_buf p = {0};
            rc |= put_string(&p, "vhost", g->vhost->name);
            rc |= put_string(&p, "user", u->name);
            rc |= put_string(&p, "configure", g->patterns->text[ACCESS_CONFIGURE]);
            rc |= put_string(&p, "write", g->patterns->text[ACCESS_WRITE]);
            rc |= put_string(&p, "read", g->patterns->text[ACCESS_READ]);
            rc |= append_table(&permissions, &p);
        }
    }
    for (const struct access_vhost *v = a->vhosts; v != NULL; v = v->hh.next) {
        struct table_buf t = {0};
        rc |= put_string(&t, "name", v->name);
        rc |= append_table(&vhosts, &t);
    }
    rc |= put_buf(out, "users", TABLE_ARRAY, &users);
    rc |= put_buf(out, "vhosts", TABLE_ARRAY, &vhosts);
    rc |= put_buf(out, "permissions", TABLE_ARRAY, &permissions);
    table_buf_free(&users);
    table_buf_free(&vhosts);
    table_buf_free(&permissions);
    return rc ? -ENOMEM : 0;
}

/* --- Import -------------------------------------------------------------------------------- */

/* A longstr field of an entry as a new C string (the caller frees it). -EINVAL when absent,
 * not a longstr or holding a NUL byte. */
static int field_string(struct proto_bytes entry, const char *key, char **out)
{
    struct table_value v;
    *out = NULL;
    if (table_find(entry, key, &v) != 1 || v.type != TABLE_LONGSTR)
        return -EINVAL;
    if (v.v.bytes.len > 0 && memchr(v.v.bytes.ptr, '\0', v.v.bytes.len) != NULL)
        return -EINVAL;
    *out = strndup(v.v.bytes.len ? (const char *)v.v.bytes.ptr : "", v.v.bytes.len);
    return *out ? 0 : -ENOMEM;
}

/* Reads up to n longstr fields of entry into values[] (NULL for the optional ones absent). */
static int fields(struct proto_bytes entry, size_t n, const char *const keys[], const bool optional[], char *values[])
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        values[i] = NULL;
        if (rc == 0) {
            struct table_value ignored;
            if (optional[i] && table_find(entry, keys[i], &ignored) != 1)
                continue;
            rc = field_string(entry, keys[i], &values[i]);
        }
    }
    return rc;
}

static void free_fields(size_t n, char *values[])
{
    for (size_t i = 0; i < n; i++)
        free(values[i]);
}

/* Splits a comma-separated tag list (pieces trimmed of spaces, empty pieces dropped). */
static int import_tags(struct access *a, const char *name, char *csv)
{
    const char *tags[64];
    size_t n = 0;
    for (char *save = NULL, *piece = strtok_r(csv, ",", &save); piece != NULL; piece = strtok_r(NULL, ",", &save)) {
        while (*piece == ' ')
            piece++;
        for (size_t len = strlen(piece); len > 0 && piece[len - 1] == ' '; len--)
            piece[len - 1] = '\0';
        if (*piece == '\0')
            continue;
        if (n == sizeof tags / sizeof tags[0])
            return -EINVAL;
        tags[n++] = piece;
    }
    return access_set_user_tags(a, name, tags, n);
}

static int import_vhost(struct access *a, struct proto_bytes entry)
{
    static const char *const keys[] = {"name"};
    static const bool optional[] = {false};
    char *s[1];
    int rc = fields(entry, 1, keys, optional, s);
    if (rc == 0)
        rc = access_add_vhost(a, s[0]);
    free_fields(1, s);
    return rc;
}

/* The optional "limits" table of a user entry: known names with integer values only. */
static int import_limits(struct access *a, const char *user, struct proto_bytes entry)
{
    struct table_value limits, v;
    if (table_find(entry, "limits", &limits) != 1)
        return 0;
    if (limits.type != TABLE_TABLE)
        return -EINVAL;
    struct table_iter it;
    table_iter_init(&it, limits.v.bytes);
    struct proto_bytes key;
    int more;
    while ((more = table_next(&it, &key, &v)) == 1) {
        char name[32];
        enum access_user_limit which;
        if (key.len == 0 || key.len >= sizeof name)
            return -EINVAL;
        memcpy(name, key.ptr, key.len);
        name[key.len] = '\0';
        if (access_user_limit_parse(name, &which) != 0 || v.type != TABLE_INT64)
            return -EINVAL;
        access_set_user_limit(a, user, which, v.v.i64);
    }
    return more == 0 ? 0 : -EINVAL;
}

static int import_user(struct access *a, struct proto_bytes entry)
{
    static const char *const keys[] = {"name", "password_hash", "tags", "hashing_algorithm"};
    static const bool optional[] = {false, false, true, true};
    char *s[4];
    int rc = fields(entry, 4, keys, optional, s);
    if (rc == 0 && s[3] != NULL && strcmp(s[3], HASHING_ALGORITHM) != 0)
        rc = -EINVAL; /* sha512 or md5 hashes: not verifiable here */
    if (rc == 0)
        rc = access_add_user_hashed(a, s[0], s[1]);
    if (rc == 0 && s[2] != NULL)
        rc = import_tags(a, s[0], s[2]);
    if (rc == 0)
        rc = import_limits(a, s[0], entry);
    free_fields(4, s);
    return rc;
}

static int import_permission(struct access *a, struct proto_bytes entry)
{
    static const char *const keys[] = {"vhost", "user", "configure", "write", "read"};
    static const bool optional[] = {false, false, false, false, false};
    char *s[5];
    int rc = fields(entry, 5, keys, optional, s);
    if (rc == 0)
        rc = access_set_permissions(a, s[0], s[1], s[2], s[3], s[4], NULL, 0);
    free_fields(5, s);
    return rc;
}

/* Feeds each element of the array field key (it must exist and hold only tables) to add. */
static int import_list(struct access *a, struct proto_bytes blob, const char *key,
                       int (*add)(struct access *, struct proto_bytes))
{
    struct table_value list, entry;
    if (table_find(blob, key, &list) != 1 || list.type != TABLE_ARRAY)
        return -EINVAL;
    struct table_iter it;
    table_iter_init(&it, list.v.bytes);
    int more;
    while ((more = array_next(&it, &entry)) == 1) {
        if (entry.type != TABLE_TABLE)
            return -EINVAL;
        int rc = add(a, entry.v.bytes);
        if (rc != 0)
            return rc == -ENOMEM ? rc : -EINVAL;
    }
    return more == 0 ? 0 : -EINVAL;
}

int access_import(struct access *a, struct proto_bytes table_contents)
{
    if (table_validate(table_contents) != 0)
        return -EINVAL;
    struct access fresh = {0};
    int rc = import_list(&fresh, table_contents, "vhosts", import_vhost);
    if (rc == 0)
        rc = import_list(&fresh, table_contents, "users", import_user);
    if (rc == 0)
        rc = import_list(&fresh, table_contents, "permissions", import_permission);
    if (rc == 0) {
        struct access old = *a;
        *a = fresh;
        fresh = old;
    }
    access_clear(&fresh);
    return rc;
}
