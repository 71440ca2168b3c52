/* broker/model/router.c: the bookkeeping every exchange type shares. A binding is one
 * allocation holding its identity (destination, key, arguments) as one byte string, which is
 * both the key of the identity hash (idempotent bind, exact unbind) and the storage the key
 * and arguments views point into. Bindings are also listed per destination, so deleting a
 * queue removes its bindings without a scan. The type files index the same bindings. */
#include "router_type.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Identity layout: destination pointer, key length (one byte: keys are shortstrs), key,
 * arguments. The length byte keeps (key "ab", args "c...") apart from (key "a", args "bc..."). */
#define IDENTITY_HEADER (sizeof(void *) + 1)

/* Arguments past this size are rejected: uthash key lengths are `unsigned`. */
#define MAX_ARGUMENTS (UINT32_MAX / 2)

/* Identities up to this size are staged on the stack by router_unbind. */
#define UNBIND_STACK_IDENTITY 1024

/* All bindings of one destination on this router. */
struct router_destination {
    void *destination;                /* hash key */
    struct router_binding *bindings;  /* via owner_prev/owner_next */
    size_t count;
    UT_hash_handle hh;
};

struct router {
    enum router_kind kind;
    const struct router_type *type;
    void *index;                               /* the type's; NULL until its first bind */
    struct router_binding *bindings;           /* identity hash; iterates oldest first */
    struct router_destination *destinations;   /* keyed by destination pointer */
};

static const struct router_type *const types[] = {
    [ROUTER_DIRECT] = &router_type_direct,
    [ROUTER_FANOUT] = &router_type_fanout,
    [ROUTER_TOPIC] = &router_type_topic,
    [ROUTER_HEADERS] = &router_type_headers,
};

#define KIND_COUNT (sizeof(types) / sizeof(types[0]))

int router_kind_parse(const char *type, size_t len, enum router_kind *out)
{
    if (type == NULL)
        return -1;
    for (size_t kind = 0; kind < KIND_COUNT; kind++) {
        const char *name = types[kind]->name;
        if (strlen(name) == len && memcmp(name, type, len) == 0) {
            *out = (enum router_kind)kind;
            return 0;
        }
    }
    return -1;
}

const char *router_kind_name(enum router_kind kind)
{
    return (size_t)kind < KIND_COUNT ? types[kind]->name : "unknown";
}

struct router *router_create(enum router_kind kind)
{
    if ((size_t)kind >= KIND_COUNT)
        return NULL;
    struct router *router = calloc(1, sizeof(*router));
    if (router == NULL)
        return NULL;
    router->kind = kind;
    router->type = types[kind];
    return router;
}

enum router_kind router_kind(const struct router *router)
{
    return router->kind;
}

/* Single-threaded, like the rest of the model. */
static uint64_t destroyed_count;

uint64_t router_destroyed_count(void) { return destroyed_count; }

void router_destroy(struct router *router)
{
    if (router == NULL)
        return;
    destroyed_count++;
    router->type->destroy(router->index);

    struct router_binding *binding, *next_binding;
    HASH_ITER(hh, router->bindings, binding, next_binding) {
        HASH_DEL(router->bindings, binding);
        free(binding);
    }
    struct router_destination *owner, *next_owner;
    HASH_ITER(hh, router->destinations, owner, next_owner) {
        HASH_DEL(router->destinations, owner);
        free(owner);
    }
    free(router);
}

static bool identity_valid(const void *destination, const uint8_t *key, size_t key_len,
                           struct proto_bytes arguments)
{
    return destination != NULL && key_len <= ROUTER_MAX_KEY && (key_len == 0 || key != NULL) &&
           (arguments.len == 0 || arguments.ptr != NULL) && arguments.len <= MAX_ARGUMENTS;
}

static size_t identity_size(size_t key_len, struct proto_bytes arguments)
{
    return IDENTITY_HEADER + key_len + arguments.len;
}

static void identity_write(uint8_t *out, void *destination, const uint8_t *key, size_t key_len,
                           struct proto_bytes arguments)
{
    memcpy(out, &destination, sizeof(destination));
    out[sizeof(destination)] = (uint8_t)key_len;
    if (key_len > 0)
        memcpy(out + IDENTITY_HEADER, key, key_len);
    if (arguments.len > 0)
        memcpy(out + IDENTITY_HEADER + key_len, arguments.ptr, arguments.len);
}

/* Finds or creates the destination's entry. NULL on ENOMEM. */
static struct router_destination *owner_get(struct router *router, void *destination)
{
    struct router_destination *owner;
    HASH_FIND_PTR(router->destinations, &destination, owner);
    if (owner != NULL)
        return owner;
    owner = calloc(1, sizeof(*owner));
    if (owner == NULL)
        return NULL;
    owner->destination = destination;
    HASH_ADD_PTR(router->destinations, destination, owner);
    if (owner->hh.tbl == NULL) {
        free(owner);
        return NULL;
    }
    return owner;
}

static void owner_release_if_empty(struct router *router, struct router_destination *owner)
{
    if (owner->count == 0) {
        HASH_DEL(router->destinations, owner);
        free(owner);
    }
}

int router_bind(struct router *router, void *destination, const uint8_t *key, size_t key_len,
                struct proto_bytes arguments)
{
    if (!identity_valid(destination, key, key_len, arguments))
        return -EINVAL;

    size_t size = identity_size(key_len, arguments);
    struct router_binding *binding = calloc(1, sizeof(*binding) + size);
    if (binding == NULL)
        return -ENOMEM;
    identity_write(binding->identity, destination, key, key_len, arguments);
    binding->identity_len = (uint32_t)size;

    struct router_binding *existing;
    HASH_FIND(hh, router->bindings, binding->identity, size, existing);
    if (existing != NULL) {
        free(binding);
        return 1;
    }

    binding->destination = destination;
    binding->key = (struct proto_bytes){binding->identity + IDENTITY_HEADER, (uint32_t)key_len};
    binding->arguments = (struct proto_bytes){binding->identity + IDENTITY_HEADER + key_len,
                                              arguments.len};

    struct router_destination *owner = owner_get(router, destination);
    if (owner == NULL) {
        free(binding);
        return -ENOMEM;
    }
    int rc = router->type->bind(&router->index, binding);
    if (rc < 0)
        goto fail;
    HASH_ADD_KEYPTR(hh, router->bindings, binding->identity, size, binding);
    if (binding->hh.tbl == NULL) {
        router->type->unbind(&router->index, binding);
        rc = -ENOMEM;
        goto fail;
    }
    binding->owner = owner;
    DL_APPEND2(owner->bindings, binding, owner_prev, owner_next);
    owner->count++;
    return 0;

fail:
    owner_release_if_empty(router, owner);
    free(binding);
    return rc;
}

static void remove_binding(struct router *router, struct router_binding *binding)
{
    struct router_destination *owner = binding->owner;
    router->type->unbind(&router->index, binding);
    HASH_DEL(router->bindings, binding);
    DL_DELETE2(owner->bindings, binding, owner_prev, owner_next);
    owner->count--;
    owner_release_if_empty(router, owner);
    free(binding);
}

/* The binding identical to (destination, key, arguments) in *out (NULL when none): 0, or
 * -ENOMEM when arguments over 1 KiB could not be staged for the lookup. */
static int find_binding(const struct router *router, void *destination, const uint8_t *key, size_t key_len,
                        struct proto_bytes arguments, struct router_binding **out)
{
    *out = NULL;
    if (!identity_valid(destination, key, key_len, arguments))
        return 0;

    uint8_t stack[UNBIND_STACK_IDENTITY];
    size_t size = identity_size(key_len, arguments);
    uint8_t *identity = size <= sizeof(stack) ? stack : malloc(size);
    if (identity == NULL)
        return -ENOMEM;
    identity_write(identity, destination, key, key_len, arguments);

    struct router_binding *binding;
    HASH_FIND(hh, router->bindings, identity, size, binding);
    if (identity != stack)
        free(identity);
    *out = binding;
    return 0;
}

int router_find(const struct router *router, void *destination, const uint8_t *key, size_t key_len,
                struct proto_bytes arguments)
{
    struct router_binding *binding;
    int rc = find_binding(router, destination, key, key_len, arguments, &binding);
    return rc < 0 ? rc : binding != NULL;
}

int router_unbind(struct router *router, void *destination, const uint8_t *key, size_t key_len,
                  struct proto_bytes arguments)
{
    struct router_binding *binding;
    int rc = find_binding(router, destination, key, key_len, arguments, &binding);
    if (rc < 0)
        return rc;
    if (binding == NULL)
        return -ENOENT;
    remove_binding(router, binding);
    return 0;
}

size_t router_unbind_destination(struct router *router, void *destination)
{
    struct router_destination *owner;
    HASH_FIND_PTR(router->destinations, &destination, owner);
    if (owner == NULL)
        return 0;
    /* The entry is freed with its last binding: count first, never touch it after. */
    size_t removed = owner->count;
    for (size_t i = 0; i < removed; i++)
        remove_binding(router, owner->bindings);
    return removed;
}

size_t router_binding_count(const struct router *router)
{
    return HASH_COUNT(router->bindings);
}

bool router_has_destination(const struct router *router, void *destination)
{
    struct router_destination *owner;
    HASH_FIND_PTR(router->destinations, &destination, owner);
    return owner != NULL;
}

void router_for_each(const struct router *router,
                     void (*fn)(void *destination, struct proto_bytes key,
                                struct proto_bytes arguments, void *arg),
                     void *arg)
{
    for (const struct router_binding *binding = router->bindings; binding != NULL;
         binding = binding->hh.next)
        fn(binding->destination, binding->key, binding->arguments, arg);
}

int router_route(const struct router *router, struct proto_bytes routing_key,
                 struct proto_bytes headers, struct route_set *out)
{
    /* The type files may hand these to memcmp or uthash, which must never see NULL. */
    static const uint8_t empty[1];
    if (routing_key.ptr == NULL)
        routing_key = (struct proto_bytes){empty, 0};
    if (headers.ptr == NULL)
        headers = (struct proto_bytes){empty, 0};
    return router->type->route(router, router->index, routing_key, headers, out);
}

int router_add_all_destinations(const struct router *router, struct route_set *out)
{
    for (const struct router_destination *owner = router->destinations; owner != NULL;
         owner = owner->hh.next) {
        if (route_set_add(out, owner->destination) < 0)
            return -ENOMEM;
    }
    return 0;
}
