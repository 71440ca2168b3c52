/* tests/fuzz/fuzz_definitions.c: drives the definitions decoder the way start-up does
 * (broker/amqp/server_vhosts.c server_import_definitions) over a blob read from a stranger's
 * store/definitions: validate the table, import users and permissions, then each vhost entry's
 * exchanges, queues and bindings into a fresh vhost.
 *
 * Input: the blob (a field table's contents, as stored after the file header).
 * Invariants: nothing crashes or reads out of bounds; what a vhost holds after the import is
 * what Warren itself writes, so exporting it and importing that into another vhost skips
 * nothing and exports to the same length. */
#include "fuzz_common.h"
#include "access.h"
#include "log.h"
#include "vhost.h"

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return 1000;
}

static struct vhost *new_vhost(const char *name)
{
    struct vhost_hooks hooks = {.now_ms = now_ms};
    struct vhost *vhost = vhost_create(name, &hooks);
    FUZZ_CHECK(vhost != NULL);
    return vhost;
}

/* Imports one vhost's definitions, then checks that the result survives a round trip. */
static void import_vhost(const char *name, struct proto_bytes definitions)
{
    struct vhost *first = new_vhost(name);
    size_t skipped;
    if (vhost_import_definitions(first, definitions, &skipped) == 0) {
        struct table_buf exported = {0}, again = {0};
        FUZZ_CHECK(vhost_export_definitions(first, &exported) == 0);
        struct vhost *second = new_vhost(name);
        FUZZ_CHECK(vhost_import_definitions(second, (struct proto_bytes){exported.data, (uint32_t)exported.len},
                                            &skipped) == 0);
        FUZZ_CHECK(skipped == 0);
        FUZZ_CHECK(vhost_export_definitions(second, &again) == 0);
        FUZZ_CHECK(again.len == exported.len);
        table_buf_free(&exported);
        table_buf_free(&again);
        vhost_destroy(second);
    }
    vhost_destroy(first);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR); /* a skipped entry is a warning: one per input would drown the run */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = fuzz_exact_copy(data, size);
    struct proto_bytes blob = {copy, (uint32_t)size};
    struct table_value v;
    if (size > UINT32_MAX || table_validate(blob) != 0) {
        free(copy);
        return 0;
    }
    if (table_find(blob, "access", &v) == 1 && v.type == TABLE_TABLE) {
        struct access *access = access_create();
        FUZZ_CHECK(access != NULL);
        (void)access_import(access, v.v.bytes);
        access_destroy(access);
    }
    if (table_find(blob, "vhosts", &v) == 1 && v.type == TABLE_ARRAY) {
        struct table_iter it;
        struct proto_bytes name, definitions;
        const char *why;
        int more;
        table_iter_init(&it, v.v.bytes);
        while ((more = vhost_definitions_next(&it, &name, &definitions, &why)) != 0) {
            if (more < 0) {
                FUZZ_CHECK(why != NULL);
                continue;
            }
            char vname[256];
            FUZZ_CHECK(name.len >= 1 && name.len <= 255 && memchr(name.ptr, 0, name.len) == NULL);
            memcpy(vname, name.ptr, name.len);
            vname[name.len] = '\0';
            import_vhost(vname, definitions);
        }
    }
    free(copy);
    return 0;
}
