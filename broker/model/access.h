/* broker/model/access.h: users (password hashes and tags), virtual host names and per-vhost
 * permissions, as RabbitMQ's internal auth backend keeps them; the model behind AMQP logins,
 * the permission checks on declare/bind/consume/publish and rabbitmqctl-like commands.
 * Administrative calls return 0 or a negative errno: -EEXIST, -ENOENT (no such user or vhost),
 * -EINVAL (bad name, tag, hash or pattern), -ENOMEM, -EIO (no randomness for a salt).
 * The checks made for clients return bool, or fill a struct reply_error (access_require*). */
#ifndef WARREN_ACCESS_H
#define WARREN_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reply.h"

struct access;
struct table_buf;

/* The three permissions RabbitMQ grants per (user, vhost), each a regular expression. */
enum access_kind { ACCESS_CONFIGURE, ACCESS_WRITE, ACCESS_READ };

/* An empty registry: no user, no vhost. Returns NULL when out of memory. */
struct access *access_create(void);

/* Frees a and everything it holds; NULL is accepted. */
void access_destroy(struct access *a);

/* What a fresh broker starts with: vhost "/" and the user (RabbitMQ: guest/guest) tagged
 * administrator with ".*" ".*" ".*" on "/". Whatever already exists is kept (an existing user
 * keeps its password). Returns 0 or a negative errno. */
int access_create_defaults(struct access *a, const char *user, const char *password);

/* --- Users --------------------------------------------------------------------------------- */

/* Adds a user with no tags and no permissions. password NULL makes a user that cannot log in
 * with a password. Returns 0, -EEXIST, -EINVAL (empty name), -EIO or -ENOMEM. */
int access_add_user(struct access *a, const char *name, const char *password);

/* Adds a user whose password hash comes from elsewhere (RabbitMQ's definitions export):
 * base64 of salt(4) ++ SHA-256(salt ++ password); "" for no password. 0, -EEXIST, -EINVAL. */
int access_add_user_hashed(struct access *a, const char *name, const char *hash_base64);

/* Replaces an existing user's password hash (base64 as above, "" clears the password).
 * Returns 0, -ENOENT or -EINVAL (not a rabbit_password_hashing_sha256 hash). */
int access_set_password_hash(struct access *a, const char *name, const char *hash_base64);

/* The hashing algorithm every hash here uses (RabbitMQ's name for it). */
#define ACCESS_HASHING_ALGORITHM "rabbit_password_hashing_sha256"
/* Room for a base64 hash and its NUL. */
#define ACCESS_HASH_BASE64_MAX 64
/* Writes the user's password hash as base64 ("" when it has none) into out (cap at least
 * ACCESS_HASH_BASE64_MAX). Returns 0, -ENOENT or -EINVAL. */
int access_user_password_hash(const struct access *a, const char *name, char *out, size_t cap);

/* Removes the user and all its permissions. Returns 0 or -ENOENT. */
int access_delete_user(struct access *a, const char *name);

/* Hashes password with a new salt; NULL clears the password (RabbitMQ's clear_password).
 * Returns 0, -ENOENT or -EIO. */
int access_change_password(struct access *a, const char *name, const char *password);

/* Replaces the user's tags (e.g. "administrator", "monitoring") with tags[0..n). A tag must be
 * non-empty and hold no comma. Returns 0, -ENOENT, -EINVAL or -ENOMEM. */
int access_set_user_tags(struct access *a, const char *name, const char *const *tags, size_t n);

/* True when the user exists and carries tag. */
bool access_user_has_tag(const struct access *a, const char *name, const char *tag);

/* True when the user exists, has a password and password[0..len) is it. Takes the same time
 * whether or not the user exists, and compares digests in constant time. */
bool access_check_password(const struct access *a, const char *name, const uint8_t *password, size_t len);

/* True when a user of that name exists. */
bool access_user_exists(const struct access *a, const char *name);

/* Calls fn for each user, oldest first, with its tags comma-separated ("" for none). fn must
 * not change a. */
void access_for_each_user(const struct access *a, void (*fn)(const char *name, const char *tags_csv, void *arg),
                          void *arg);

/* RabbitMQ's per-user limits, by their names "max-connections" and "max-channels": how many
 * connections (any vhost) and channels (all its connections together) the user may hold open.
 * Absent or negative is no limit; 0 allows none. */
enum access_user_limit { ACCESS_USER_MAX_CONNECTIONS, ACCESS_USER_MAX_CHANNELS, ACCESS_USER_LIMIT_COUNT };

/* The limit's RabbitMQ name ("unknown" out of range). */
const char *access_user_limit_name(enum access_user_limit limit);

/* The limit named name into *out. Returns 0, or -EINVAL for a name RabbitMQ does not know. */
int access_user_limit_parse(const char *name, enum access_user_limit *out);

/* The user's limit, or -1 when it has none (or there is no such user). */
int64_t access_user_limit(const struct access *a, const char *user, enum access_user_limit limit);

/* Sets the user's limit; a negative value clears it. Returns 0, -ENOENT or -EINVAL (limit out
 * of range). */
int access_set_user_limit(struct access *a, const char *user, enum access_user_limit limit, int64_t value);

/* --- Virtual hosts ------------------------------------------------------------------------- */

/* Adds a vhost name (1 to 255 bytes: it travels as a shortstr). 0, -EEXIST, -EINVAL, -ENOMEM. */
int access_add_vhost(struct access *a, const char *name);

/* Removes the vhost and every permission on it. Returns 0 or -ENOENT. */
int access_delete_vhost(struct access *a, const char *name);

/* True when the vhost exists. */
bool access_vhost_exists(const struct access *a, const char *name);

/* Calls fn for each vhost, oldest first. fn must not change a. */
void access_for_each_vhost(const struct access *a, void (*fn)(const char *name, void *arg), void *arg);

/* --- Permissions --------------------------------------------------------------------------- */

/* Grants user the three POSIX extended regular expressions on vhost, replacing any earlier
 * grant. As in RabbitMQ they match anywhere in a name, and "" means "^$" (nothing but the
 * empty name). On failure nothing changes, -ENOENT/-EINVAL/-ENOMEM is returned and, when why
 * is not NULL, a one-line reason is written to it (why_len bytes at most). */
int access_set_permissions(struct access *a, const char *vhost, const char *user, const char *configure,
                           const char *write, const char *read, char *why, size_t why_len);

/* Removes user's grant on vhost. Returns 0 or -ENOENT (no such user, vhost or grant). */
int access_clear_permissions(struct access *a, const char *vhost, const char *user);

/* Calls fn for each grant, by user then by vhost, with the patterns as set. fn must not change a. */
void access_for_each_permission(const struct access *a,
                                void (*fn)(const char *vhost, const char *user, const char *configure,
                                           const char *write, const char *read, void *arg),
                                void *arg);

/* True when user has a grant (of any patterns) on vhost: what connection.open requires. */
bool access_can_access_vhost(const struct access *a, const char *user, const char *vhost);

/* True when user's kind pattern on vhost matches name[0..len) (a queue or exchange name; name
 * may be NULL when len is 0). False without a grant. Two hash lookups and one regexec. */
bool access_check(const struct access *a, const char *user, const char *vhost, enum access_kind kind,
                  const uint8_t *name, size_t len);

/* access_check, failing as RabbitMQ does: 0, or -1 with err set to "ACCESS_REFUSED - configure
 * access to queue 'q' in vhost '/' refused for user 'guest'". resource is "queue", "exchange"
 * or "topic"; method_id is the SPEC_* id of the method being refused. */
int access_require(const struct access *a, const char *user, const char *vhost, enum access_kind kind,
                   const char *resource, struct proto_bytes name, uint32_t method_id, struct reply_error *err);

/* The connection.open check: 0, or -1 with err set to "NOT_ALLOWED - vhost v not found" or
 * "NOT_ALLOWED - access to vhost 'v' refused for user 'u'". */
int access_require_vhost(const struct access *a, const char *user, const char *vhost, uint32_t method_id,
                         struct reply_error *err);

/* --- Persistence --------------------------------------------------------------------------- */

/* Appends the fields "users" (with their limits), "vhosts" and "permissions" (layout at the
 * top of access.c) to out, a table being built. Hashes are written, never passwords. Returns 0 or -ENOMEM. */
int access_export(const struct access *a, struct table_buf *out);

/* Replaces everything in a with what access_export wrote (table contents, no length prefix).
 * All or nothing: on -EINVAL (malformed or inconsistent) or -ENOMEM a is unchanged. */
int access_import(struct access *a, struct proto_bytes table_contents);

#endif
