/* broker/model/exchange_direct.c: the direct exchange. A hash from binding key to the
 * bindings carrying it, so routing is one lookup whatever the number of bindings. */
#include "router_type.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The bindings sharing one key. The key is copied here: any binding may leave first. */
struct direct_bucket {
    UT_hash_handle hh;                 /* keyed by key[0..key_len) */
    struct router_binding *bindings;   /* via type_prev/type_next */
    uint32_t key_len;
    uint8_t key[];
};

static int direct_bind(void **index, struct router_binding *binding)
{
    struct direct_bucket *buckets = *index;
    struct direct_bucket *bucket;
    HASH_FIND(hh, buckets, binding->key.ptr, binding->key.len, bucket);
    if (bucket == NULL) {
        bucket = calloc(1, sizeof(*bucket) + binding->key.len);
        if (bucket == NULL)
            return -ENOMEM;
        bucket->key_len = binding->key.len;
        memcpy(bucket->key, binding->key.ptr, binding->key.len);
        HASH_ADD_KEYPTR(hh, buckets, bucket->key, bucket->key_len, bucket);
        if (bucket->hh.tbl == NULL) {
            free(bucket);
            return -ENOMEM;
        }
        *index = buckets;
    }
    router_binding_list_append(&bucket->bindings, binding);
    binding->type_data = bucket;
    return 0;
}

static void direct_unbind(void **index, struct router_binding *binding)
{
    struct direct_bucket *bucket = binding->type_data;
    router_binding_list_remove(&bucket->bindings, binding);
    if (bucket->bindings == NULL) {
        struct direct_bucket *buckets = *index;
        HASH_DEL(buckets, bucket);
        *index = buckets;
        free(bucket);
    }
}

static int direct_route(const struct router *router, void *index, struct proto_bytes routing_key,
                        struct proto_bytes headers, struct route_set *out)
{
    (void)router;
    (void)headers;
    struct direct_bucket *buckets = index;
    struct direct_bucket *bucket;
    HASH_FIND(hh, buckets, routing_key.ptr, routing_key.len, bucket);
    if (bucket == NULL)
        return 0;
    for (struct router_binding *binding = bucket->bindings; binding != NULL;
         binding = binding->type_next) {
        if (route_set_add(out, binding->destination) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void direct_destroy(void *index)
{
    struct direct_bucket *buckets = index;
    struct direct_bucket *bucket, *next;
    HASH_ITER(hh, buckets, bucket, next) {
        HASH_DEL(buckets, bucket);
        free(bucket);
    }
}

const struct router_type router_type_direct = {
    .name = "direct",
    .bind = direct_bind,
    .unbind = direct_unbind,
    .route = direct_route,
    .destroy = direct_destroy,
};
