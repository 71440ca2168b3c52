/* tests/unit/model/test_access.c: users, password hashes (RabbitMQ's sha256 format), tags,
 * vhosts, permission patterns and their persistence; also the SHA-256 and base64 they use. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "access.h"
#include "base64.h"

#include <nettle/sha2.h>
#include "spec.h"
#include "table.h"

/* From RabbitMQ's password documentation: salt 908DC60A, password "test12". */
#define TEST12_HASH "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

static bool login(const struct access *a, const char *user, const char *password)
{
    return access_check_password(a, user, u8(password), strlen(password));
}

static bool can(const struct access *a, const char *user, const char *vhost, enum access_kind kind, const char *name)
{
    return access_check(a, user, vhost, kind, u8(name), strlen(name));
}

/* --- base64 ------------------------------------------------------------------------------ */

static void test_base64_rfc4648_vectors_and_strictness(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char text[16];
        uint8_t back[16];
        assert_int_equal(base64_encode(u8(plain[i]), strlen(plain[i]), text), strlen(coded[i]));
        assert_string_equal(text, coded[i]);
        assert_int_equal(base64_decode(coded[i], strlen(coded[i]), back, sizeof back), (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], strlen(plain[i]));
    }
    uint8_t out[8];
    assert_int_equal(base64_decode("Zg=", 3, out, sizeof out), -EINVAL);     /* not whole quanta */
    assert_int_equal(base64_decode("Zh==", 4, out, sizeof out), -EINVAL);    /* stray low bits */
    assert_int_equal(base64_decode("Z===", 4, out, sizeof out), -EINVAL);
    assert_int_equal(base64_decode("Zg==Zg==", 8, out, sizeof out), -EINVAL); /* padding inside */
    assert_int_equal(base64_decode("Zm9v\n", 5, out, sizeof out), -EINVAL);
    assert_int_equal(base64_decode("Zm9vYmFy", 8, out, 5), -ENOSPC);
}

/* --- Users --------------------------------------------------------------------------------- */

static void test_known_rabbitmq_hash_is_accepted(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_add_user_hashed(a, "alice", TEST12_HASH), 0);
    assert_true(login(a, "alice", "test12"));
    assert_false(login(a, "alice", "test13"));
    assert_false(login(a, "alice", "test1"));
    assert_false(login(a, "alice", ""));
    assert_false(login(a, "bob", "test12"));
    assert_int_equal(access_add_user_hashed(a, "bob", "not base64!"), -EINVAL);
    assert_int_equal(access_add_user_hashed(a, "bob", "Zm9v"), -EINVAL); /* 3 bytes, not 36 */
    assert_false(access_user_exists(a, "bob"));
    access_destroy(a);
}

struct export_view {
    char text[4096];
};

static void append(struct export_view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(struct export_view *v, const char *fmt, ...)
{
    size_t used = strlen(v->text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text + used, sizeof v->text - used, fmt, ap);
    va_end(ap);
}

/* The password_hash field of the first user in an export. */
static void first_hash(const struct access *a, char *out, size_t cap)
{
    struct table_buf buf = {0};
    assert_int_equal(access_export(a, &buf), 0);
    struct proto_bytes blob = {buf.data, (uint32_t)buf.len};
    struct table_value users, user, hash;
    assert_int_equal(table_find(blob, "users", &users), 1);
    struct table_iter it;
    table_iter_init(&it, users.v.bytes);
    assert_int_equal(array_next(&it, &user), 1);
    assert_int_equal(table_find(user.v.bytes, "password_hash", &hash), 1);
    assert_true(hash.v.bytes.len < cap);
    memcpy(out, hash.v.bytes.ptr, hash.v.bytes.len);
    out[hash.v.bytes.len] = '\0';
    table_buf_free(&buf);
}

static void test_password_hash_round_trip_in_rabbitmq_format(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_add_user(a, "carol", "s3cret"), 0);
    assert_true(login(a, "carol", "s3cret"));
    assert_false(login(a, "carol", "s3creT"));
    assert_false(login(a, "carol", "s3cret "));
    /* The exported hash is base64(salt ++ SHA-256(salt ++ password)). */
    char text[128];
    first_hash(a, text, sizeof text);
    uint8_t hash[64], expected[SHA256_DIGEST_SIZE];
    assert_int_equal(base64_decode(text, strlen(text), hash, sizeof hash), 36);
    uint8_t salted[4 + 6];
    memcpy(salted, hash, 4);
    memcpy(salted + 4, "s3cret", 6);
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, sizeof salted, salted);
    sha256_digest(&ctx, sizeof expected, expected);
    assert_memory_equal(hash + 4, expected, SHA256_DIGEST_SIZE);
    /* A new password gets a new salt. */
    char again[128];
    assert_int_equal(access_change_password(a, "carol", "s3cret"), 0);
    first_hash(a, again, sizeof again);
    assert_string_not_equal(text, again);
    assert_true(login(a, "carol", "s3cret"));
    access_destroy(a);
}

static void test_add_delete_and_change_users(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_add_vhost(a, "/"), 0);
    assert_int_equal(access_add_user(a, "dave", "one"), 0);
    assert_int_equal(access_add_user(a, "dave", "two"), -EEXIST);
    assert_int_equal(access_add_user(a, "", "x"), -EINVAL);
    assert_true(login(a, "dave", "one"));
    assert_int_equal(access_change_password(a, "dave", "two"), 0);
    assert_false(login(a, "dave", "one"));
    assert_true(login(a, "dave", "two"));
    assert_int_equal(access_change_password(a, "nobody", "x"), -ENOENT);
    /* A cleared password matches nothing, not even "". */
    assert_int_equal(access_change_password(a, "dave", NULL), 0);
    assert_false(login(a, "dave", "two"));
    assert_false(login(a, "dave", ""));
    assert_int_equal(access_add_user(a, "erin", NULL), 0);
    assert_false(login(a, "erin", ""));
    /* Deleting a user takes its permissions with it. */
    assert_int_equal(access_set_permissions(a, "/", "dave", ".*", ".*", ".*", NULL, 0), 0);
    assert_int_equal(access_delete_user(a, "dave"), 0);
    assert_false(access_user_exists(a, "dave"));
    assert_int_equal(access_delete_user(a, "dave"), -ENOENT);
    assert_int_equal(access_add_user(a, "dave", "three"), 0);
    assert_false(access_can_access_vhost(a, "dave", "/"));
    assert_true(login(a, "dave", "three"));
    access_destroy(a);
}

static void list_user(const char *name, const char *tags, void *arg)
{
    append(arg, "%s[%s];", name, tags);
}

static void test_tags(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_add_user(a, "frank", "pw"), 0);
    assert_int_equal(access_add_user(a, "grace", "pw"), 0);
    const char *tags[] = {"administrator", "monitoring"};
    assert_int_equal(access_set_user_tags(a, "frank", tags, 2), 0);
    assert_true(access_user_has_tag(a, "frank", "administrator"));
    assert_true(access_user_has_tag(a, "frank", "monitoring"));
    assert_false(access_user_has_tag(a, "frank", "admin"));
    assert_false(access_user_has_tag(a, "grace", "monitoring"));
    struct export_view v = {""};
    access_for_each_user(a, list_user, &v);
    assert_string_equal(v.text, "frank[administrator,monitoring];grace[];");
    /* Setting replaces; a tag with a comma or an empty tag is refused and changes nothing. */
    assert_int_equal(access_set_user_tags(a, "frank", tags + 1, 1), 0);
    assert_false(access_user_has_tag(a, "frank", "administrator"));
    const char *bad[] = {"ok", "a,b"};
    assert_int_equal(access_set_user_tags(a, "frank", bad, 2), -EINVAL);
    const char *empty[] = {""};
    assert_int_equal(access_set_user_tags(a, "frank", empty, 1), -EINVAL);
    assert_true(access_user_has_tag(a, "frank", "monitoring"));
    assert_int_equal(access_set_user_tags(a, "frank", NULL, 0), 0);
    assert_false(access_user_has_tag(a, "frank", "monitoring"));
    assert_int_equal(access_set_user_tags(a, "nobody", tags, 1), -ENOENT);
    access_destroy(a);
}

/* --- Vhosts -------------------------------------------------------------------------------- */

static void list_vhost(const char *name, void *arg)
{
    append(arg, "%s;", name);
}

static void list_permission(const char *vhost, const char *user, const char *configure, const char *write,
                            const char *read, void *arg)
{
    append(arg, "%s %s '%s' '%s' '%s';", vhost, user, configure, write, read);
}

static void test_vhosts(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_add_vhost(a, "/"), 0);
    assert_int_equal(access_add_vhost(a, "/"), -EEXIST);
    assert_int_equal(access_add_vhost(a, "staging"), 0);
    assert_int_equal(access_add_vhost(a, ""), -EINVAL);
    char long_name[300];
    memset(long_name, 'v', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(access_add_vhost(a, long_name), -EINVAL);
    long_name[255] = '\0';
    assert_int_equal(access_add_vhost(a, long_name), 0);
    assert_int_equal(access_delete_vhost(a, long_name), 0);
    assert_true(access_vhost_exists(a, "staging"));
    assert_false(access_vhost_exists(a, "prod"));
    struct export_view v = {""};
    access_for_each_vhost(a, list_vhost, &v);
    assert_string_equal(v.text, "/;staging;");

    /* Deleting a vhost removes the permissions on it, and only those. */
    assert_int_equal(access_add_user(a, "heidi", "pw"), 0);
    assert_int_equal(access_set_permissions(a, "/", "heidi", ".*", ".*", ".*", NULL, 0), 0);
    assert_int_equal(access_set_permissions(a, "staging", "heidi", "", "", ".*", NULL, 0), 0);
    assert_int_equal(access_delete_vhost(a, "staging"), 0);
    assert_int_equal(access_delete_vhost(a, "staging"), -ENOENT);
    assert_false(access_can_access_vhost(a, "heidi", "staging"));
    assert_true(access_can_access_vhost(a, "heidi", "/"));
    assert_int_equal(access_add_vhost(a, "staging"), 0);
    assert_false(access_can_access_vhost(a, "heidi", "staging"));
    memset(&v, 0, sizeof v);
    access_for_each_permission(a, list_permission, &v);
    assert_string_equal(v.text, "/ heidi '.*' '.*' '.*';");
    access_destroy(a);
}

static void test_defaults_are_guest_on_slash(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_create_defaults(a, "guest", "guest"), 0);
    assert_true(access_vhost_exists(a, "/"));
    assert_true(login(a, "guest", "guest"));
    assert_true(access_user_has_tag(a, "guest", "administrator"));
    assert_true(access_can_access_vhost(a, "guest", "/"));
    assert_true(can(a, "guest", "/", ACCESS_CONFIGURE, "anything"));
    assert_true(can(a, "guest", "/", ACCESS_WRITE, ""));
    assert_true(can(a, "guest", "/", ACCESS_READ, "amq.gen-1"));
    /* A second call keeps what exists, including a changed password. */
    assert_int_equal(access_change_password(a, "guest", "changed"), 0);
    assert_int_equal(access_create_defaults(a, "guest", "guest"), 0);
    assert_true(login(a, "guest", "changed"));
    access_destroy(a);
}

/* --- Permissions --------------------------------------------------------------------------- */

static struct access *with_user_and_vhosts(void)
{
    struct access *a = access_create();
    assert_non_null(a);
    assert_int_equal(access_add_vhost(a, "/"), 0);
    assert_int_equal(access_add_vhost(a, "other"), 0);
    assert_int_equal(access_add_user(a, "ivan", "pw"), 0);
    return a;
}

static void test_permission_patterns_match_as_rabbitmq(void **state)
{
    (void)state;
    struct access *a = with_user_and_vhosts();
    assert_false(access_can_access_vhost(a, "ivan", "/"));
    assert_false(can(a, "ivan", "/", ACCESS_READ, "q"));

    assert_int_equal(access_set_permissions(a, "/", "ivan", "^amq\\.gen", "foo", ".*", NULL, 0), 0);
    assert_true(access_can_access_vhost(a, "ivan", "/"));
    assert_false(access_can_access_vhost(a, "ivan", "other"));
    /* ".*" matches every name, the empty one included. */
    assert_true(can(a, "ivan", "/", ACCESS_READ, "anything"));
    assert_true(can(a, "ivan", "/", ACCESS_READ, ""));
    /* A prefix: the dot is escaped, so "amqXgen" does not match. */
    assert_true(can(a, "ivan", "/", ACCESS_CONFIGURE, "amq.gen-JzTY20BRgKO-HjmUJj0wLg"));
    assert_false(can(a, "ivan", "/", ACCESS_CONFIGURE, "amqXgen-1"));
    assert_false(can(a, "ivan", "/", ACCESS_CONFIGURE, "x.amq.gen"));
    /* Unanchored: "foo" matches anywhere. */
    assert_true(can(a, "ivan", "/", ACCESS_WRITE, "xfoox"));
    assert_true(can(a, "ivan", "/", ACCESS_WRITE, "foo"));
    assert_false(can(a, "ivan", "/", ACCESS_WRITE, "fo"));
    /* Names are bytes bounded by their length, not by a NUL. */
    assert_false(access_check(a, "ivan", "/", ACCESS_WRITE, u8("fooled"), 2));
    assert_true(access_check(a, "ivan", "/", ACCESS_WRITE, u8("xfooled"), 4));
    assert_true(access_check(a, "ivan", "/", ACCESS_READ, NULL, 0));
    /* No grant on the vhost, or no such user: nothing. */
    assert_false(can(a, "ivan", "other", ACCESS_READ, "q"));
    assert_false(can(a, "nobody", "/", ACCESS_READ, "q"));

    /* "^$" and "" (which RabbitMQ reads as "^$") refuse every non-empty name. */
    assert_int_equal(access_set_permissions(a, "/", "ivan", "^$", "", "", NULL, 0), 0);
    static const char *const names[] = {"q", "amq.gen-1", "$", "^$", " "};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_false(can(a, "ivan", "/", ACCESS_CONFIGURE, names[i]));
        assert_false(can(a, "ivan", "/", ACCESS_WRITE, names[i]));
        assert_false(can(a, "ivan", "/", ACCESS_READ, names[i]));
    }
    /* ...but, as in RabbitMQ, match the empty name (the default exchange). */
    assert_true(can(a, "ivan", "/", ACCESS_WRITE, ""));
    assert_true(access_can_access_vhost(a, "ivan", "/"));
    access_destroy(a);
}

static void test_invalid_patterns_are_rejected_and_change_nothing(void **state)
{
    (void)state;
    struct access *a = with_user_and_vhosts();
    assert_int_equal(access_set_permissions(a, "/", "ivan", "q.*", "q.*", "q.*", NULL, 0), 0);
    char why[256];
    assert_int_equal(access_set_permissions(a, "/", "ivan", ".*", "(unclosed", ".*", why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "write"));
    assert_non_null(strstr(why, "(unclosed"));
    assert_int_equal(access_set_permissions(a, "/", "ivan", "[z-a]", ".*", ".*", why, sizeof why), -EINVAL);
    assert_int_equal(access_set_permissions(a, "/", "ivan", ".*", ".*", "a{2,1}", NULL, 0), -EINVAL);
    assert_false(can(a, "ivan", "/", ACCESS_CONFIGURE, "r"));
    assert_true(can(a, "ivan", "/", ACCESS_CONFIGURE, "q1"));

    assert_int_equal(access_set_permissions(a, "/", "nobody", ".*", ".*", ".*", why, sizeof why), -ENOENT);
    assert_string_equal(why, "no such user 'nobody'");
    assert_int_equal(access_set_permissions(a, "prod", "ivan", ".*", ".*", ".*", why, sizeof why), -ENOENT);
    assert_string_equal(why, "no such vhost 'prod'");
    access_destroy(a);
}

static void test_permissions_replace_and_clear(void **state)
{
    (void)state;
    struct access *a = with_user_and_vhosts();
    assert_int_equal(access_set_permissions(a, "/", "ivan", "a", "b", "c", NULL, 0), 0);
    assert_int_equal(access_set_permissions(a, "other", "ivan", "", "", "", NULL, 0), 0);
    assert_int_equal(access_set_permissions(a, "/", "ivan", "x", "y", "z", NULL, 0), 0);
    assert_false(can(a, "ivan", "/", ACCESS_CONFIGURE, "a"));
    assert_true(can(a, "ivan", "/", ACCESS_CONFIGURE, "x"));
    struct export_view v = {""};
    access_for_each_permission(a, list_permission, &v);
    assert_string_equal(v.text, "/ ivan 'x' 'y' 'z';other ivan '' '' '';");
    assert_int_equal(access_clear_permissions(a, "/", "ivan"), 0);
    assert_int_equal(access_clear_permissions(a, "/", "ivan"), -ENOENT);
    assert_int_equal(access_clear_permissions(a, "/", "nobody"), -ENOENT);
    assert_false(access_can_access_vhost(a, "ivan", "/"));
    assert_true(access_can_access_vhost(a, "ivan", "other"));
    access_destroy(a);
}

static void test_refusals_read_as_rabbitmq(void **state)
{
    (void)state;
    struct access *a = with_user_and_vhosts();
    assert_int_equal(access_set_permissions(a, "/", "ivan", "^mine", ".*", ".*", NULL, 0), 0);
    struct reply_error err = {0};
    struct proto_bytes mine = {u8("mine.1"), 6}, theirs = {u8("theirs"), 6};
    assert_int_equal(access_require(a, "ivan", "/", ACCESS_CONFIGURE, "queue", mine, SPEC_QUEUE_DECLARE, &err), 0);
    assert_int_equal(access_require(a, "ivan", "/", ACCESS_CONFIGURE, "queue", theirs, SPEC_QUEUE_DECLARE, &err), -1);
    assert_int_equal(err.code, SPEC_ACCESS_REFUSED);
    assert_int_equal(err.method_id, SPEC_QUEUE_DECLARE);
    assert_string_equal(err.text,
                        "ACCESS_REFUSED - configure access to queue 'theirs' in vhost '/' refused for user 'ivan'");

    assert_int_equal(access_require_vhost(a, "ivan", "/", SPEC_CONNECTION_OPEN, &err), 0);
    assert_int_equal(access_require_vhost(a, "ivan", "other", SPEC_CONNECTION_OPEN, &err), -1);
    assert_int_equal(err.code, SPEC_NOT_ALLOWED);
    assert_string_equal(err.text, "NOT_ALLOWED - access to vhost 'other' refused for user 'ivan'");
    assert_int_equal(access_require_vhost(a, "ivan", "prod", SPEC_CONNECTION_OPEN, &err), -1);
    assert_string_equal(err.text, "NOT_ALLOWED - vhost prod not found");
    access_destroy(a);
}

/* --- Persistence --------------------------------------------------------------------------- */

static void describe(const struct access *a, struct export_view *v)
{
    memset(v, 0, sizeof *v);
    access_for_each_vhost(a, list_vhost, v);
    access_for_each_user(a, list_user, v);
    access_for_each_permission(a, list_permission, v);
}

static void test_export_import_round_trip(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_create_defaults(a, "guest", "guest"), 0);
    assert_int_equal(access_add_vhost(a, "staging"), 0);
    assert_int_equal(access_add_user(a, "judy", "pw"), 0);
    assert_int_equal(access_add_user(a, "mallory", NULL), 0);
    assert_int_equal(access_add_user_hashed(a, "alice", TEST12_HASH), 0);
    const char *tags[] = {"monitoring", "policymaker"};
    assert_int_equal(access_set_user_tags(a, "judy", tags, 2), 0);
    assert_int_equal(access_set_permissions(a, "staging", "judy", "^judy\\.", "", ".*", NULL, 0), 0);

    struct table_buf buf = {0};
    assert_int_equal(access_export(a, &buf), 0);
    struct proto_bytes blob = {buf.data, (uint32_t)buf.len};
    assert_int_equal(table_validate(blob), 0);

    /* Import replaces whatever was there (here another set of defaults). */
    struct access *b = access_create();
    assert_int_equal(access_create_defaults(b, "admin", "admin"), 0);
    assert_int_equal(access_import(b, blob), 0);
    struct export_view before, after;
    describe(a, &before);
    describe(b, &after);
    assert_string_equal(before.text, after.text);
    assert_string_equal(after.text, "/;staging;"
                                    "guest[administrator];judy[monitoring,policymaker];mallory[];alice[];"
                                    "/ guest '.*' '.*' '.*';staging judy '^judy\\.' '' '.*';");
    assert_false(access_user_exists(b, "admin"));
    assert_true(login(b, "guest", "guest"));
    assert_true(login(b, "judy", "pw"));
    assert_true(login(b, "alice", "test12"));
    assert_false(login(b, "mallory", ""));
    assert_true(can(b, "judy", "staging", ACCESS_CONFIGURE, "judy.q"));
    assert_false(can(b, "judy", "staging", ACCESS_WRITE, "x"));

    /* Exported again, the bytes are the same: hashes are kept, not recomputed. */
    struct table_buf again = {0};
    assert_int_equal(access_export(b, &again), 0);
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);
    table_buf_free(&again);
    table_buf_free(&buf);
    access_destroy(a);
    access_destroy(b);
}

static void put_string(struct table_buf *t, const char *key, const char *s)
{
    struct table_value v = {.type = TABLE_LONGSTR};
    v.v.bytes = (struct proto_bytes){u8(s), (uint32_t)strlen(s)};
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
}

static void put_list(struct table_buf *t, const char *key, struct table_buf *entry)
{
    struct table_buf list = {0};
    if (entry != NULL) {
        struct table_value e = {.type = TABLE_TABLE};
        e.v.bytes = (struct proto_bytes){entry->data, (uint32_t)entry->len};
        assert_int_equal(table_buf_put_value(&list, &e), 0);
        table_buf_free(entry);
    }
    struct table_value v = {.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){list.data, (uint32_t)list.len};
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
    table_buf_free(&list);
}

/* A blob with vhost "/", one user (name, hash, algorithm) and one grant to user_in_grant. */
static struct table_buf blob_of(const char *hash, const char *algorithm, const char *user_in_grant)
{
    struct table_buf out = {0}, vhost = {0}, user = {0}, grant = {0};
    put_string(&vhost, "name", "/");
    put_list(&out, "vhosts", &vhost);
    put_string(&user, "name", "alice");
    put_string(&user, "password_hash", hash);
    put_string(&user, "hashing_algorithm", algorithm);
    put_string(&user, "tags", " administrator , ,management");
    put_list(&out, "users", &user);
    put_string(&grant, "vhost", "/");
    put_string(&grant, "user", user_in_grant);
    put_string(&grant, "configure", ".*");
    put_string(&grant, "write", ".*");
    put_string(&grant, "read", ".*");
    put_list(&out, "permissions", &grant);
    return out;
}

static void test_import_is_all_or_nothing(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_create_defaults(a, "guest", "guest"), 0);
    struct export_view before, after;
    describe(a, &before);

    struct table_buf good = blob_of(TEST12_HASH, "rabbit_password_hashing_sha256", "alice");
    struct table_buf unknown_user = blob_of(TEST12_HASH, "rabbit_password_hashing_sha256", "bob");
    struct table_buf sha512 = blob_of(TEST12_HASH, "rabbit_password_hashing_sha512", "alice");
    struct table_buf bad_hash = blob_of("kI3GCqW5", "rabbit_password_hashing_sha256", "alice");
    struct table_buf no_lists = {0};
    put_list(&no_lists, "vhosts", NULL);
    uint8_t garbage[] = {5, 'u', 's', 'e', 'r', 's', 'Z'};

    assert_int_equal(access_import(a, (struct proto_bytes){unknown_user.data, (uint32_t)unknown_user.len}), -EINVAL);
    assert_int_equal(access_import(a, (struct proto_bytes){sha512.data, (uint32_t)sha512.len}), -EINVAL);
    assert_int_equal(access_import(a, (struct proto_bytes){bad_hash.data, (uint32_t)bad_hash.len}), -EINVAL);
    assert_int_equal(access_import(a, (struct proto_bytes){no_lists.data, (uint32_t)no_lists.len}), -EINVAL);
    assert_int_equal(access_import(a, (struct proto_bytes){garbage, sizeof garbage}), -EINVAL);
    describe(a, &after);
    assert_string_equal(before.text, after.text);

    assert_int_equal(access_import(a, (struct proto_bytes){good.data, (uint32_t)good.len}), 0);
    describe(a, &after);
    assert_string_equal(after.text, "/;alice[administrator,management];/ alice '.*' '.*' '.*';");
    assert_true(login(a, "alice", "test12"));
    assert_false(access_user_exists(a, "guest"));

    table_buf_free(&good);
    table_buf_free(&unknown_user);
    table_buf_free(&sha512);
    table_buf_free(&bad_hash);
    table_buf_free(&no_lists);
    access_destroy(a);
}

/* A blob like blob_of's (alice, no grant) whose user entry carries limits, a table of fields. */
static struct table_buf blob_with_limits(struct table_buf *limits)
{
    struct table_buf out = {0}, vhost = {0}, user = {0};
    put_string(&vhost, "name", "/");
    put_list(&out, "vhosts", &vhost);
    put_string(&user, "name", "alice");
    put_string(&user, "password_hash", TEST12_HASH);
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){limits->data, (uint32_t)limits->len};
    assert_int_equal(table_buf_put_field(&user, "limits", 6, &v), 0);
    table_buf_free(limits);
    put_list(&out, "users", &user);
    put_list(&out, "permissions", NULL);
    return out;
}

static void put_limit(struct table_buf *t, const char *key, uint8_t type, int64_t value)
{
    struct table_value v = {.type = type};
    if (type == TABLE_INT64)
        v.v.i64 = value;
    else
        v.v.i32 = (int32_t)value;
    assert_int_equal(table_buf_put_field(t, key, strlen(key), &v), 0);
}

static void test_user_limits_persist_with_the_user_and_are_checked_on_import(void **state)
{
    (void)state;
    struct access *a = access_create();
    assert_int_equal(access_create_defaults(a, "guest", "guest"), 0);
    assert_int_equal(access_user_limit(a, "guest", ACCESS_USER_MAX_CONNECTIONS), -1);
    assert_int_equal(access_set_user_limit(a, "nobody", ACCESS_USER_MAX_CHANNELS, 3), -ENOENT);
    enum access_user_limit which;
    assert_int_equal(access_user_limit_parse("max-channels", &which), 0);
    assert_int_equal(which, ACCESS_USER_MAX_CHANNELS);
    assert_int_equal(access_user_limit_parse("max-queues", &which), -EINVAL);

    /* A blob without limits is what brokers before them wrote, byte for byte. */
    struct table_buf plain = {0}, limited = {0};
    assert_int_equal(access_export(a, &plain), 0);
    assert_int_equal(access_set_user_limit(a, "guest", ACCESS_USER_MAX_CONNECTIONS, 0), 0);
    assert_int_equal(access_set_user_limit(a, "guest", ACCESS_USER_MAX_CHANNELS, 7), 0);
    assert_int_equal(access_set_user_limit(a, "guest", ACCESS_USER_MAX_CHANNELS, -1), 0);
    assert_int_equal(access_user_limit(a, "guest", ACCESS_USER_MAX_CHANNELS), -1);
    assert_int_equal(access_set_user_limit(a, "guest", ACCESS_USER_MAX_CHANNELS, 7), 0);
    assert_int_equal(access_export(a, &limited), 0);
    assert_true(limited.len > plain.len);

    struct access *b = access_create();
    assert_int_equal(access_import(b, (struct proto_bytes){limited.data, (uint32_t)limited.len}), 0);
    assert_int_equal(access_user_limit(b, "guest", ACCESS_USER_MAX_CONNECTIONS), 0);
    assert_int_equal(access_user_limit(b, "guest", ACCESS_USER_MAX_CHANNELS), 7);
    assert_int_equal(access_import(b, (struct proto_bytes){plain.data, (uint32_t)plain.len}), 0);
    assert_int_equal(access_user_limit(b, "guest", ACCESS_USER_MAX_CONNECTIONS), -1);
    assert_int_equal(access_user_limit(b, "guest", ACCESS_USER_MAX_CHANNELS), -1);

    /* Untrusted input: an unknown limit or a value that is not a 64-bit integer refuses the
     * whole blob, and nothing changes. */
    struct table_buf unknown = {0}, wrong_type = {0}, good = {0};
    put_limit(&unknown, "max-queues", TABLE_INT64, 1);
    put_limit(&wrong_type, "max-channels", TABLE_INT32, 1);
    put_limit(&good, "max-connections", TABLE_INT64, 2);
    struct table_buf blobs[3] = {blob_with_limits(&unknown), blob_with_limits(&wrong_type), blob_with_limits(&good)};
    assert_int_equal(access_import(b, (struct proto_bytes){blobs[0].data, (uint32_t)blobs[0].len}), -EINVAL);
    assert_int_equal(access_import(b, (struct proto_bytes){blobs[1].data, (uint32_t)blobs[1].len}), -EINVAL);
    assert_true(access_user_exists(b, "guest"));
    assert_int_equal(access_import(b, (struct proto_bytes){blobs[2].data, (uint32_t)blobs[2].len}), 0);
    assert_int_equal(access_user_limit(b, "alice", ACCESS_USER_MAX_CONNECTIONS), 2);
    assert_int_equal(access_user_limit(b, "alice", ACCESS_USER_MAX_CHANNELS), -1);

    for (int i = 0; i < 3; i++)
        table_buf_free(&blobs[i]);
    table_buf_free(&plain);
    table_buf_free(&limited);
    access_destroy(a);
    access_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648_vectors_and_strictness),
        cmocka_unit_test(test_known_rabbitmq_hash_is_accepted),
        cmocka_unit_test(test_password_hash_round_trip_in_rabbitmq_format),
        cmocka_unit_test(test_add_delete_and_change_users),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_vhosts),
        cmocka_unit_test(test_defaults_are_guest_on_slash),
        cmocka_unit_test(test_permission_patterns_match_as_rabbitmq),
        cmocka_unit_test(test_invalid_patterns_are_rejected_and_change_nothing),
        cmocka_unit_test(test_permissions_replace_and_clear),
        cmocka_unit_test(test_refusals_read_as_rabbitmq),
        cmocka_unit_test(test_export_import_round_trip),
        cmocka_unit_test(test_import_is_all_or_nothing),
        cmocka_unit_test(test_user_limits_persist_with_the_user_and_are_checked_on_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
