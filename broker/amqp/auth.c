/* broker/amqp/auth.c: SASL response parsing and the credential check. */
#include "auth.h"

#include <string.h>

#include "access.h"
#include "server.h"
#include "table.h"

static int parse_plain(struct proto_bytes r, struct proto_bytes *user, struct proto_bytes *password)
{
    const uint8_t *first = memchr(r.ptr, 0, r.len);
    if (!first)
        return -1;
    const uint8_t *user_start = first + 1;
    size_t rest = r.len - (size_t)(user_start - r.ptr);
    const uint8_t *second = memchr(user_start, 0, rest);
    if (!second)
        return -1;
    user->ptr = user_start;
    user->len = (uint32_t)(second - user_start);
    password->ptr = second + 1;
    password->len = (uint32_t)(r.len - (size_t)(password->ptr - r.ptr));
    return 0;
}

static int parse_amqplain(struct proto_bytes r, struct proto_bytes *user, struct proto_bytes *password)
{
    /* The response is a field table's contents without its length prefix. */
    struct table_value v;
    if (table_validate(r) != 0)
        return -1;
    if (table_find(r, "LOGIN", &v) != 1 || v.type != TABLE_LONGSTR)
        return -1;
    *user = v.v.bytes;
    if (table_find(r, "PASSWORD", &v) != 1 || v.type != TABLE_LONGSTR)
        return -1;
    *password = v.v.bytes;
    return 0;
}

int auth_parse_response(struct proto_bytes mechanism, struct proto_bytes response,
                        struct proto_bytes *user, struct proto_bytes *password)
{
    if (response.len == 0)
        return -1;
    if (proto_bytes_is(mechanism, "PLAIN"))
        return parse_plain(response, user, password);
    if (proto_bytes_is(mechanism, "AMQPLAIN"))
        return parse_amqplain(response, user, password);
    return -2;
}

bool auth_check(const struct access *access, const struct server_config *cfg, struct proto_bytes user,
                struct proto_bytes password, bool peer_is_loopback)
{
    char name[256];
    if (user.len >= sizeof name)
        return false;
    memcpy(name, user.ptr, user.len);
    name[user.len] = '\0';
    if (strlen(name) != user.len) /* an embedded NUL never names a user */
        return false;
    if (!access_check_password(access, name, password.ptr, password.len))
        return false;
    if (proto_bytes_is(user, cfg->default_user) && cfg->default_user_loopback_only)
        return peer_is_loopback;
    return true;
}

bool auth_check_external(const struct access *access, const struct server_config *cfg, const char *identity,
                         bool peer_is_loopback)
{
    if (!identity || !access_user_exists(access, identity))
        return false;
    if (strcmp(identity, cfg->default_user) == 0 && cfg->default_user_loopback_only)
        return peer_is_loopback;
    return true;
}
