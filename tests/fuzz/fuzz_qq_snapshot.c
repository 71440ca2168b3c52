/* tests/fuzz/fuzz_qq_snapshot.c: drives a quorum queue's snapshot decoder the way a node restores
 * one (broker/cluster/qq_snapshot.c through qq_fsm_import): from a Raft snapshot read back from a
 * stranger's data directory, or sent by a member.
 *
 * Input: the state, as qq_fsm_export writes it (a field table's contents).
 * Invariants: nothing crashes or reads out of bounds; a state that is taken exports, and that
 * export is taken again and exports to the same bytes; a consumer added afterwards gets every
 * ready message without the state machine finding an id it lost (qq_fsm.c aborts then), and
 * node_down for every node returns what they held; the bytes counted for the memory alarm go back
 * to where they were once the state is closed. */
#include "fuzz_common.h"
#include "qq_fsm.h"

static size_t delivered;

static void on_deliver(void *ctx, const struct qq_consumer_key *consumer, uint64_t id, struct proto_bytes content,
                       bool redelivered, uint32_t delivery_count)
{
    (void)ctx, (void)consumer, (void)redelivered, (void)delivery_count;
    FUZZ_CHECK(id > 0);
    if (content.len)
        FUZZ_CHECK(content.ptr[0] == content.ptr[0] && content.ptr[content.len - 1] == content.ptr[content.len - 1]);
    delivered++;
}

static void on_discarded(void *ctx, uint64_t id, struct proto_bytes content, const char *reason)
{
    (void)ctx, (void)id, (void)content;
    FUZZ_CHECK(reason != NULL);
}

static void apply(struct qq_fsm *fsm, const char *op, struct table_buf *args, struct qq_result *out)
{
    struct meta_command cmd = {proto_bytes_of(op), {args->data, (uint32_t)args->len}, 0, 0};
    qq_fsm_apply_command(fsm, &cmd, out);
    table_buf_free(args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX)
        return 0;
    uint64_t before = qq_memory_bytes();
    uint8_t *copy = fuzz_exact_copy(data, size);
    struct qq_effects effects = {on_deliver, on_discarded, NULL};
    struct qq_fsm fsm, again;
    FUZZ_CHECK(qq_fsm_init(&fsm, -1, &effects) == 0);
    if (qq_fsm_import(&fsm, (struct proto_bytes){copy, (uint32_t)size}) == 0) {
        struct table_buf first = {0}, second = {0};
        FUZZ_CHECK(qq_fsm_export(&fsm, &first) == 0);
        FUZZ_CHECK(qq_fsm_init(&again, -1, &effects) == 0);
        FUZZ_CHECK(qq_fsm_import(&again, (struct proto_bytes){first.data, (uint32_t)first.len}) == 0);
        FUZZ_CHECK(qq_fsm_export(&again, &second) == 0);
        FUZZ_CHECK(first.len == second.len && memcmp(first.data, second.data, first.len) == 0);
        table_buf_free(&first);
        table_buf_free(&second);
        qq_fsm_close(&again);

        /* A new consumer with no prefetch takes every ready message. */
        size_t ready = qq_fsm_ready(&fsm), messages = qq_fsm_messages(&fsm);
        struct table_buf args = {0};
        struct table_value v = {.type = TABLE_INT64};
        table_buf_put_string(&args, "node", proto_bytes_of("fuzz-node"));
        v.v.i64 = 1;
        table_buf_put_field(&args, "channel", 7, &v);
        table_buf_put_string(&args, "tag", proto_bytes_of("fuzz"));
        v.v.i64 = 0;
        table_buf_put_field(&args, "prefetch", 8, &v);
        struct qq_result r;
        delivered = 0;
        apply(&fsm, "checkout", &args, &r);
        FUZZ_CHECK(r.status == 0 && delivered == ready && qq_fsm_ready(&fsm) == 0);
        FUZZ_CHECK(qq_fsm_messages(&fsm) == messages);
    }
    qq_fsm_close(&fsm);
    FUZZ_CHECK(qq_memory_bytes() == before);
    free(copy);
    return 0;
}
