/* broker/cluster/meta_fsm.c: the metadata state machine's replication logic (rules: meta_fsm.h).
 *
 * Snapshot layout (a field table, read back as untrusted like any entry):
 *     "version"   uint8    1
 *     "seq"       uint64   entries applied so far (ages sessions)
 *     "applied"   uint64   commands applied to the target
 *     "sessions"  array    the exactly-once record (sessions.c)
 *     "state"     table    the target's export */
#include "meta_fsm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_MAX (64u << 20) /* a command larger than this is refused by the proposer */

struct meta_pending {
    struct session_wait link; /* first: a session_wait is its meta_pending */
    meta_done_fn done;
    void *arg;
};

static void result_set(struct meta_result *r, int status, const char *text)
{
    r->status = status;
    size_t n = strlen(text);
    if (n >= sizeof(r->text))
        n = sizeof(r->text) - 1;
    memcpy(r->text, text, n);
    r->text[n] = '\0';
}

/* ---- the command envelope ---- */

int meta_command_encode(struct raft_buffer *out, const char *op, uint64_t session, uint64_t request,
                        const struct table_buf *args)
{
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_UINT64};
    int rc = table_buf_put_string(&t, "op", (struct proto_bytes){(const uint8_t *)op, (uint32_t)strlen(op)});
    v.v.u64 = session;
    rc |= table_buf_put_field(&t, "session", 7, &v);
    v.v.u64 = request;
    rc |= table_buf_put_field(&t, "request", 7, &v);
    v = (struct table_value){.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){args ? args->data : NULL, args ? (uint32_t)args->len : 0};
    rc |= table_buf_put_field(&t, "args", 4, &v);
    if (rc != 0 || t.len > ENTRY_MAX) {
        table_buf_free(&t);
        return rc != 0 ? -ENOMEM : -E2BIG;
    }
    out->base = raft_malloc(t.len ? t.len : 1);
    if (!out->base) {
        table_buf_free(&t);
        return -ENOMEM;
    }
    memcpy(out->base, t.data, t.len);
    out->len = t.len;
    table_buf_free(&t);
    return 0;
}

static bool find_u64(struct proto_bytes table, const char *key, uint64_t *out)
{
    struct table_value v;
    if (table_find(table, key, &v) != 1 || v.type != TABLE_UINT64)
        return false;
    *out = v.v.u64;
    return true;
}

int meta_command_decode(const struct raft_buffer *buf, struct meta_command *out)
{
    if (!buf->base || buf->len > ENTRY_MAX)
        return -EBADMSG;
    struct proto_bytes t = {buf->base, (uint32_t)buf->len};
    struct table_value op, args;
    if (table_validate(t) != 0 || table_find(t, "op", &op) != 1 || op.type != TABLE_LONGSTR || op.v.bytes.len == 0 ||
        table_find(t, "args", &args) != 1 || args.type != TABLE_TABLE || !find_u64(t, "session", &out->session) ||
        !find_u64(t, "request", &out->request) || out->request == 0)
        return -EBADMSG;
    out->op = op.v.bytes;
    out->args = args.v.bytes;
    return 0;
}

int meta_batch_add(struct table_buf *batch, const uint8_t *command, size_t len)
{
    if (len > ENTRY_MAX)
        return -ENOMEM;
    struct table_value v = {.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){command, (uint32_t)len};
    return table_buf_put_value(batch, &v) == 0 ? 0 : -ENOMEM;
}

int meta_batch_encode(struct table_buf *out, const struct table_buf *batch)
{
    struct table_value v = {.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){batch->data, (uint32_t)batch->len};
    return table_buf_put_field(out, "batch", 5, &v) == 0 ? 0 : -ENOMEM;
}

/* ---- pending requests of this node ---- */

int meta_fsm_expect(struct meta_fsm *fsm, uint64_t session, uint64_t request, meta_done_fn done, void *arg)
{
    struct meta_pending *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->done = done;
    p->arg = arg;
    if (session_wait_add(&fsm->pending, &p->link, session, request) != 0) {
        free(p);
        return -ENOMEM;
    }
    return 0;
}

/* Unlinks and returns the pending request (session, request), or NULL. */
static struct meta_pending *pending_take(struct meta_fsm *fsm, uint64_t session, uint64_t request)
{
    return (struct meta_pending *)session_wait_take(&fsm->pending, session, request);
}

void meta_fsm_forget(struct meta_fsm *fsm, uint64_t session, uint64_t request)
{
    struct meta_pending *p = pending_take(fsm, session, request);
    if (!p)
        return;
    struct meta_result r;
    result_set(&r, -ECANCELED, "request abandoned");
    p->done(p->arg, &r);
    free(p);
}

/* ---- the raft_fsm callbacks ---- */

/* Applies one command of an entry (a lone one, or one of a batch). A command that does not
 * decode changes nothing: nobody can be waiting for a command nobody can name. */
static void apply_command(struct meta_fsm *fsm, const struct raft_buffer *buf)
{
    struct meta_command cmd;
    struct meta_result r;
    if (meta_command_decode(buf, &cmd) != 0)
        return;
    if (!sessions_record(&fsm->sessions, cmd.session, cmd.request, fsm->apply_seq)) {
        result_set(&r, META_DUPLICATE, "applied once already");
    } else {
        memset(&r, 0, sizeof(r));
        fsm->target.apply(fsm->target.ctx, &cmd, &r);
        fsm->applied++;
    }
    struct meta_pending *p = pending_take(fsm, cmd.session, cmd.request);
    if (p) {
        p->done(p->arg, &r);
        free(p);
    }
}

static int fsm_apply(struct raft_fsm *raft_fsm, const struct raft_buffer *buf, void **result)
{
    struct meta_fsm *fsm = raft_fsm->data;
    *result = NULL;
    fsm->apply_seq++;
    struct table_value batch;
    if (!buf->base || buf->len > ENTRY_MAX || table_find((struct proto_bytes){buf->base, (uint32_t)buf->len}, "batch", &batch) != 1 ||
        batch.type != TABLE_ARRAY) {
        apply_command(fsm, buf);
        return 0;
    }
    /* Validated as a whole first, so that a batch broken at its end is skipped whole, not
     * applied up to the break. */
    if (array_validate(batch.v.bytes) != 0)
        return 0;
    struct table_iter it;
    struct table_value v;
    table_iter_init(&it, batch.v.bytes);
    while (array_next(&it, &v) == 1) {
        if (v.type != TABLE_TABLE)
            continue;
        struct raft_buffer one = {.base = (void *)v.v.bytes.ptr, .len = v.v.bytes.len};
        apply_command(fsm, &one);
    }
    return 0;
}

static int fsm_snapshot(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct meta_fsm *fsm = raft_fsm->data;
    struct table_buf t = {0};
    struct table_value v = {.type = TABLE_UINT8};
    v.v.u8 = 1;
    size_t mark;
    /* About the last snapshot's size at once: a large state grows no buffer step by step. */
    int rc = table_buf_reserve(&t, fsm->snapshot_hint) | table_buf_put_field(&t, "version", 7, &v);
    v = (struct table_value){.type = TABLE_UINT64};
    v.v.u64 = fsm->apply_seq;
    rc |= table_buf_put_field(&t, "seq", 3, &v);
    v.v.u64 = fsm->applied;
    rc |= table_buf_put_field(&t, "applied", 7, &v);
    /* nested values in place: the state, mostly messages, is copied once into t */
    if (rc == 0)
        rc = table_buf_begin_nested(&t, "sessions", TABLE_ARRAY, &mark);
    if (rc == 0)
        rc = sessions_encode(&fsm->sessions, &t);
    if (rc == 0)
        rc = table_buf_end_nested(&t, mark);
    if (rc == 0)
        rc = table_buf_begin_nested(&t, "state", TABLE_TABLE, &mark);
    if (rc == 0)
        rc = fsm->target.export_state(fsm->target.ctx, &t);
    if (rc == 0)
        rc = table_buf_end_nested(&t, mark);
    fsm->snapshot_hint = t.len + t.len / 8;
    struct raft_buffer *out = rc == 0 ? raft_malloc(sizeof(*out)) : NULL;
    if (!out) {
        table_buf_free(&t);
        return RAFT_NOMEM;
    }
    /* Handed over, not copied: libraft's heap is the C library's (raft_heap_set is never
     * called), so raft_free releases what table_buf allocated. */
    out->base = t.data;
    out->len = t.len;
    *bufs = out;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    struct meta_fsm *fsm = raft_fsm->data;
    struct proto_bytes t = {buf->base, (uint32_t)buf->len};
    struct table_value version, list, state;
    uint64_t seq, applied;
    struct sessions sessions = {0};
    if (buf->len > UINT32_MAX || table_validate(t) != 0 || table_find(t, "version", &version) != 1 ||
        version.type != TABLE_UINT8 || version.v.u8 != 1 || !find_u64(t, "seq", &seq) ||
        !find_u64(t, "applied", &applied) || table_find(t, "sessions", &list) != 1 || list.type != TABLE_ARRAY ||
        table_find(t, "state", &state) != 1 || state.type != TABLE_TABLE ||
        sessions_decode(list.v.bytes, &sessions) != 0)
        return RAFT_MALFORMED;
    if (fsm->target.import_state(fsm->target.ctx, state.v.bytes) != 0) {
        sessions_free(&sessions);
        return RAFT_MALFORMED;
    }
    sessions_free(&fsm->sessions);
    fsm->sessions = sessions;
    fsm->apply_seq = seq;
    fsm->applied = applied;
    raft_free(buf->base); /* the state machine owns a restored snapshot's buffer */
    return 0;
}

int meta_fsm_init(struct meta_fsm *fsm, const struct meta_target *target)
{
    memset(fsm, 0, sizeof(*fsm));
    fsm->target = *target;
    fsm->raft = (struct raft_fsm){.version = 1, .data = fsm, .apply = fsm_apply, .snapshot = fsm_snapshot,
                                  .restore = fsm_restore};
    return 0;
}

void meta_fsm_close(struct meta_fsm *fsm)
{
    while (fsm->pending)
        meta_fsm_forget(fsm, fsm->pending->session, fsm->pending->request);
    sessions_free(&fsm->sessions);
}
