/* broker/cluster/qq_fsm.c: a quorum queue's state machine (rules: qq_fsm.h).
 *
 * Snapshot layout (a field table, read back as untrusted like any entry):
 *     "version"        uint8    1
 *     "seq"            uint64   entries applied so far (ages sessions)
 *     "next_id"        uint64   >= 1
 *     "next_new"       uint64   1 .. next_id; every id from it to next_id - 1 is a message
 *     "next_consumer"  uint64   >= 1
 *     "delivery_limit" int64    -1: none
 *     "sessions"       array    the exactly-once record (sessions.c)
 *     "messages"       array    of tables {"id" uint64, "count" uint32, "content" bytes}, ids ascending
 *     "returned"       array    of uint64: the returned ready messages, ascending
 *     "consumers"      array    of tables {"serial" uint64, "node" longstr, "channel" uint16, "tag"
 *                               longstr, "prefetch" uint32, "checked" array of uint64 ascending},
 *                               in service order
 * Restore refuses a snapshot unless every message below next_new is either returned or checked
 * out by exactly one consumer, every id named exists, no consumer is named twice, no delivery
 * count is past the limit, and no ready message waits while a consumer has room.
 *
 * Memory. apply cannot fail on one member and succeed on another without the members parting
 * ways, so running out of memory while applying a committed entry aborts the process (it comes
 * back through a snapshot and the log). */
#include "qq_fsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qq_message {
    uint64_t id;
    uint64_t owner;          /* the serial of the consumer holding it; 0: ready */
    uint32_t delivery_count; /* times returned */
    uint32_t len;
    uint8_t content[];
};

struct qq_consumer {
    uint64_t serial;
    struct qq_consumer_key key;
    uint32_t prefetch;       /* 0: unlimited */
    uint64_t *checked;       /* ids, ascending */
    size_t nchecked, cap;
};

struct qq_pending {
    uint64_t session, request;
    qq_done_fn done;
    void *arg;
    struct qq_pending *next;
};

#define CLAIMED_READY UINT64_MAX /* restore: a message named by "returned" */

static _Noreturn void out_of_memory(void)
{
    fprintf(stderr, "qq_fsm: out of memory while applying a committed entry\n");
    abort();
}

static void *grow(void *p, size_t n, size_t size)
{
    void *grown = realloc(p, n * size);
    if (!grown)
        out_of_memory();
    return grown;
}

/* ---- sets of ids: ascending arrays ---- */

/* The first index whose id is >= id. */
static size_t ids_lower(const uint64_t *v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void ids_insert(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
    size_t at = ids_lower(*v, *n, id);
    if (at < *n && (*v)[at] == id)
        return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = grow(*v, *cap, sizeof(**v));
    }
    memmove(&(*v)[at + 1], &(*v)[at], (*n - at) * sizeof(**v));
    (*v)[at] = id;
    (*n)++;
}

/* Removes id; false when it was not there. */
static bool ids_remove(uint64_t *v, size_t *n, uint64_t id)
{
    size_t at = ids_lower(v, *n, id);
    if (at == *n || v[at] != id)
        return false;
    memmove(&v[at], &v[at + 1], (*n - at - 1) * sizeof(*v));
    (*n)--;
    return true;
}

/* ---- messages, by id ---- */

/* The message id, or NULL; *at gets its index in s->messages. */
static struct qq_message *message_find(const struct qq_state *s, uint64_t id, size_t *at)
{
    size_t lo = s->head, hi = s->head + s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->messages[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->head + s->count || s->messages[lo]->id != id)
        return NULL;
    if (at)
        *at = lo;
    return s->messages[lo];
}

/* Appends m, whose id is above every other. */
static void message_append(struct qq_state *s, struct qq_message *m)
{
    if (s->head + s->count == s->cap) {
        if (s->head > 0 && s->head >= s->cap / 2) { /* acks from the front leave room there */
            memmove(s->messages, &s->messages[s->head], s->count * sizeof(*s->messages));
            s->head = 0;
        } else {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->messages = grow(s->messages, s->cap, sizeof(*s->messages));
        }
    }
    s->messages[s->head + s->count++] = m;
}

/* Frees the message at index at. The oldest goes in O(1), as a FIFO queue's acks do. */
static void message_remove(struct qq_state *s, size_t at)
{
    free(s->messages[at]);
    if (at == s->head) {
        s->head++;
    } else {
        memmove(&s->messages[at], &s->messages[at + 1], (s->head + s->count - at - 1) * sizeof(*s->messages));
    }
    if (--s->count == 0)
        s->head = 0;
}

static struct proto_bytes content_of(const struct qq_message *m)
{
    return (struct proto_bytes){m->content, m->len};
}

/* ---- consumers ---- */

static bool key_equal(const struct qq_consumer_key *a, const struct qq_consumer_key *b)
{
    return a->channel == b->channel && strcmp(a->node, b->node) == 0 && strcmp(a->tag, b->tag) == 0;
}

static struct qq_consumer *consumer_find(const struct qq_state *s, const struct qq_consumer_key *key, size_t *at)
{
    for (size_t i = 0; i < s->nconsumers; i++)
        if (key_equal(&s->consumers[i]->key, key)) {
            if (at)
                *at = i;
            return s->consumers[i];
        }
    return NULL;
}

static bool consumer_has_room(const struct qq_consumer *c)
{
    return c->prefetch == 0 || c->nchecked < c->prefetch;
}

static void consumer_free(struct qq_consumer *c)
{
    free(c->checked);
    free(c);
}

static void state_free(struct qq_state *s)
{
    for (size_t i = s->head; i < s->head + s->count; i++)
        free(s->messages[i]);
    free(s->messages);
    for (size_t i = 0; i < s->nconsumers; i++)
        consumer_free(s->consumers[i]);
    free(s->consumers);
    free(s->returned);
    sessions_free(&s->sessions);
    memset(s, 0, sizeof(*s));
}

/* ---- what commands do ---- */

static void discard(struct qq_fsm *fsm, size_t at, const char *reason)
{
    struct qq_message *m = fsm->state.messages[at];
    if (fsm->effects.discarded)
        fsm->effects.discarded(fsm->effects.ctx, m->id, content_of(m), reason);
    message_remove(&fsm->state, at);
}

/* A message taken from its consumer goes back to ready, one delivery attempt more, or past the
 * delivery limit is discarded (RabbitMQ 3.10: dead-lettered when its count exceeds the limit). */
static void requeue(struct qq_fsm *fsm, size_t at)
{
    struct qq_state *s = &fsm->state;
    struct qq_message *m = s->messages[at];
    m->owner = 0;
    if (m->delivery_count < UINT32_MAX)
        m->delivery_count++;
    if (s->delivery_limit >= 0 && m->delivery_count > (uint64_t)s->delivery_limit) {
        discard(fsm, at, "delivery_limit");
        return;
    }
    ids_insert(&s->returned, &s->nreturned, &s->returned_cap, m->id);
}

/* Removes the consumer at index at; its messages return, in id order. Returns how many. */
static uint64_t cancel(struct qq_fsm *fsm, size_t at)
{
    struct qq_state *s = &fsm->state;
    struct qq_consumer *c = s->consumers[at];
    memmove(&s->consumers[at], &s->consumers[at + 1], (s->nconsumers - at - 1) * sizeof(*s->consumers));
    s->nconsumers--;
    for (size_t i = 0; i < c->nchecked; i++) {
        size_t m_at;
        if (message_find(s, c->checked[i], &m_at))
            requeue(fsm, m_at);
    }
    uint64_t n = c->nchecked;
    consumer_free(c);
    return n;
}

/* Gives ready messages to consumers with room until either runs out: returned messages first,
 * then new ones, each to the first consumer in service order with room, which then goes to the
 * back (round-robin). */
static void assign(struct qq_fsm *fsm)
{
    struct qq_state *s = &fsm->state;
    while (s->nreturned > 0 || s->next_new < s->next_id) {
        size_t i = 0;
        while (i < s->nconsumers && !consumer_has_room(s->consumers[i]))
            i++;
        if (i == s->nconsumers)
            return;
        struct qq_consumer *c = s->consumers[i];
        uint64_t id;
        if (s->nreturned > 0) {
            id = s->returned[0];
            memmove(s->returned, &s->returned[1], --s->nreturned * sizeof(*s->returned));
        } else {
            id = s->next_new++;
        }
        struct qq_message *m = message_find(s, id, NULL);
        if (!m) /* cannot happen: restore and every command keep ready ids pointing at messages */
            abort();
        m->owner = c->serial;
        ids_insert(&c->checked, &c->nchecked, &c->cap, id);
        memmove(&s->consumers[i], &s->consumers[i + 1], (s->nconsumers - i - 1) * sizeof(*s->consumers));
        s->consumers[s->nconsumers - 1] = c;
        if (fsm->effects.deliver)
            fsm->effects.deliver(fsm->effects.ctx, &c->key, id, content_of(m), m->delivery_count > 0,
                                 m->delivery_count);
    }
}

/* ---- decoding a command's arguments ---- */

static bool arg_int(struct proto_bytes args, const char *name, int64_t max, int64_t *out)
{
    struct table_value v;
    return table_find(args, name, &v) == 1 && table_value_to_int(&v, out) && *out >= 0 && *out <= max;
}

/* A shortstr-sized string without NULs, copied NUL-terminated. */
static bool name_copy(struct table_value v, char out[QQ_NAME_MAX + 1])
{
    if (v.type != TABLE_LONGSTR || v.v.bytes.len > QQ_NAME_MAX || memchr(v.v.bytes.ptr, 0, v.v.bytes.len))
        return false;
    if (v.v.bytes.len)
        memcpy(out, v.v.bytes.ptr, v.v.bytes.len);
    out[v.v.bytes.len] = '\0';
    return true;
}

static bool arg_name(struct proto_bytes args, const char *name, char out[QQ_NAME_MAX + 1])
{
    struct table_value v;
    return table_find(args, name, &v) == 1 && name_copy(v, out);
}

static bool arg_consumer(struct proto_bytes args, struct qq_consumer_key *key)
{
    int64_t channel;
    memset(key, 0, sizeof(*key));
    if (!arg_name(args, "node", key->node) || !arg_name(args, "tag", key->tag) ||
        !arg_int(args, "channel", UINT16_MAX, &channel))
        return false;
    key->channel = (uint16_t)channel;
    return true;
}

/* The "ids" array, every element a non-negative integer. */
static bool arg_ids(struct proto_bytes args, struct proto_bytes *ids)
{
    struct table_value v, e;
    struct table_iter it;
    int more;
    int64_t id;
    if (table_find(args, "ids", &v) != 1 || v.type != TABLE_ARRAY)
        return false;
    table_iter_init(&it, v.v.bytes);
    while ((more = array_next(&it, &e)) == 1)
        if (!table_value_to_int(&e, &id) || id < 0)
            return false;
    *ids = v.v.bytes;
    return more == 0;
}

enum settlement { SETTLE, RETURN, DISCARD };

static void apply_settlement(struct qq_fsm *fsm, struct proto_bytes args, enum settlement how, struct qq_result *r)
{
    struct qq_consumer_key key;
    struct proto_bytes ids;
    if (!arg_consumer(args, &key) || !arg_ids(args, &ids)) {
        r->status = QQ_MALFORMED;
        return;
    }
    struct qq_consumer *c = consumer_find(&fsm->state, &key, NULL);
    if (!c) {
        r->status = QQ_NOT_FOUND;
        return;
    }
    struct table_iter it;
    struct table_value e;
    table_iter_init(&it, ids);
    while (array_next(&it, &e) == 1) { /* checked by arg_ids */
        int64_t id;
        size_t at;
        table_value_to_int(&e, &id);
        if (!ids_remove(c->checked, &c->nchecked, (uint64_t)id) || !message_find(&fsm->state, (uint64_t)id, &at))
            continue; /* not this consumer's: skipped, as rabbit_fifo ignores unknown ids */
        r->value++;
        if (how == SETTLE)
            message_remove(&fsm->state, at);
        else if (how == RETURN)
            requeue(fsm, at);
        else
            discard(fsm, at, "rejected");
    }
}

static void apply_command(struct qq_fsm *fsm, const struct meta_command *cmd, struct qq_result *r)
{
    struct qq_state *s = &fsm->state;
    struct qq_consumer_key key;
    if (proto_bytes_is(cmd->op, "enqueue")) {
        struct table_value v;
        if (table_find(cmd->args, "content", &v) != 1 || v.type != TABLE_BYTES) {
            r->status = QQ_MALFORMED;
            return;
        }
        struct qq_message *m = malloc(sizeof(*m) + v.v.bytes.len);
        if (!m)
            out_of_memory();
        *m = (struct qq_message){.id = s->next_id++, .len = v.v.bytes.len};
        if (v.v.bytes.len)
            memcpy(m->content, v.v.bytes.ptr, v.v.bytes.len);
        message_append(s, m);
        r->value = m->id;
    } else if (proto_bytes_is(cmd->op, "checkout")) {
        int64_t prefetch;
        if (!arg_consumer(cmd->args, &key) || !arg_int(cmd->args, "prefetch", UINT16_MAX, &prefetch)) {
            r->status = QQ_MALFORMED;
            return;
        }
        struct qq_consumer *c = consumer_find(s, &key, NULL);
        if (!c) {
            c = calloc(1, sizeof(*c));
            if (!c)
                out_of_memory();
            c->serial = s->next_consumer++;
            c->key = key;
            if (s->nconsumers == s->consumers_cap) {
                s->consumers_cap = s->consumers_cap ? s->consumers_cap * 2 : 4;
                s->consumers = grow(s->consumers, s->consumers_cap, sizeof(*s->consumers));
            }
            s->consumers[s->nconsumers++] = c; /* joins at the back of the service order */
        }
        c->prefetch = (uint32_t)prefetch;
    } else if (proto_bytes_is(cmd->op, "cancel")) {
        size_t at;
        if (!arg_consumer(cmd->args, &key)) {
            r->status = QQ_MALFORMED;
            return;
        }
        if (!consumer_find(s, &key, &at)) {
            r->status = QQ_NOT_FOUND;
            return;
        }
        r->value = cancel(fsm, at);
    } else if (proto_bytes_is(cmd->op, "settle")) {
        apply_settlement(fsm, cmd->args, SETTLE, r);
    } else if (proto_bytes_is(cmd->op, "return")) {
        apply_settlement(fsm, cmd->args, RETURN, r);
    } else if (proto_bytes_is(cmd->op, "discard")) {
        apply_settlement(fsm, cmd->args, DISCARD, r);
    } else if (proto_bytes_is(cmd->op, "purge")) {
        size_t kept = s->head;
        for (size_t i = s->head; i < s->head + s->count; i++) {
            if (s->messages[i]->owner == 0) {
                free(s->messages[i]);
                r->value++;
            } else {
                s->messages[kept++] = s->messages[i];
            }
        }
        s->count = kept - s->head;
        if (s->count == 0)
            s->head = 0;
        s->nreturned = 0;
        s->next_new = s->next_id;
    } else if (proto_bytes_is(cmd->op, "node_down")) {
        char node[QQ_NAME_MAX + 1];
        if (!arg_name(cmd->args, "node", node)) {
            r->status = QQ_MALFORMED;
            return;
        }
        for (size_t i = 0; i < s->nconsumers;) {
            if (strcmp(s->consumers[i]->key.node, node) == 0) {
                cancel(fsm, i);
                r->value++;
            } else {
                i++;
            }
        }
    } else {
        r->status = QQ_MALFORMED;
    }
}

/* ---- pending requests of this member ---- */

int qq_fsm_expect(struct qq_fsm *fsm, uint64_t session, uint64_t request, qq_done_fn done, void *arg)
{
    struct qq_pending *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct qq_pending){session, request, done, arg, fsm->pending};
    fsm->pending = p;
    return 0;
}

static struct qq_pending *pending_take(struct qq_fsm *fsm, uint64_t session, uint64_t request)
{
    for (struct qq_pending **pp = &fsm->pending; *pp; pp = &(*pp)->next)
        if ((*pp)->session == session && (*pp)->request == request) {
            struct qq_pending *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

void qq_fsm_forget(struct qq_fsm *fsm, uint64_t session, uint64_t request)
{
    struct qq_pending *p = pending_take(fsm, session, request);
    if (!p)
        return;
    struct qq_result r = {.status = -ECANCELED};
    p->done(p->arg, &r);
    free(p);
}

/* ---- the raft_fsm callbacks ---- */

static int fsm_apply(struct raft_fsm *raft_fsm, const struct raft_buffer *buf, void **result)
{
    struct qq_fsm *fsm = raft_fsm->data;
    *result = NULL;
    fsm->state.seq++;
    struct meta_command cmd;
    struct qq_result r = {0};
    if (meta_command_decode(buf, &cmd) != 0)
        return 0; /* nobody can be waiting for a command nobody can name */
    if (!sessions_record(&fsm->state.sessions, cmd.session, cmd.request, fsm->state.seq)) {
        r.status = QQ_DUPLICATE;
    } else {
        apply_command(fsm, &cmd, &r);
        assign(fsm);
    }
    struct qq_pending *p = pending_take(fsm, cmd.session, cmd.request);
    if (p) {
        p->done(p->arg, &r);
        free(p);
    }
    return 0;
}

static int put_u64(struct table_buf *t, const char *key, uint64_t value)
{
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = value;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* Appends a nested table or array (type F or A) holding inner's bytes. */
static int put_nested(struct table_buf *t, const char *key, uint8_t type, const struct table_buf *inner)
{
    struct table_value v = {.type = type};
    v.v.bytes = (struct proto_bytes){inner->data, (uint32_t)inner->len};
    return key ? table_buf_put_field(t, key, strlen(key), &v) : table_buf_put_value(t, &v);
}

static int put_ids(struct table_buf *t, const char *key, const uint64_t *ids, size_t n)
{
    struct table_buf list = {0};
    struct table_value v = {.type = TABLE_UINT64};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        v.v.u64 = ids[i];
        rc = table_buf_put_value(&list, &v);
    }
    if (rc == 0)
        rc = put_nested(t, key, TABLE_ARRAY, &list);
    table_buf_free(&list);
    return rc;
}

int qq_fsm_export(const struct qq_fsm *fsm, struct table_buf *out)
{
    const struct qq_state *s = &fsm->state;
    struct table_buf list = {0};
    struct table_value v = {.type = TABLE_UINT8};
    v.v.u8 = 1;
    int rc = table_buf_put_field(out, "version", 7, &v);
    rc |= put_u64(out, "seq", s->seq);
    rc |= put_u64(out, "next_id", s->next_id);
    rc |= put_u64(out, "next_new", s->next_new);
    rc |= put_u64(out, "next_consumer", s->next_consumer);
    v = (struct table_value){.type = TABLE_INT64};
    v.v.i64 = s->delivery_limit;
    rc |= table_buf_put_field(out, "delivery_limit", 14, &v);
    rc |= sessions_encode(&s->sessions, &list);
    rc |= put_nested(out, "sessions", TABLE_ARRAY, &list);
    table_buf_free(&list);
    for (size_t i = s->head; rc == 0 && i < s->head + s->count; i++) {
        const struct qq_message *m = s->messages[i];
        struct table_buf e = {0};
        rc |= put_u64(&e, "id", m->id);
        v = (struct table_value){.type = TABLE_UINT32};
        v.v.u32 = m->delivery_count;
        rc |= table_buf_put_field(&e, "count", 5, &v);
        v = (struct table_value){.type = TABLE_BYTES};
        v.v.bytes = content_of(m);
        rc |= table_buf_put_field(&e, "content", 7, &v);
        rc |= put_nested(&list, NULL, TABLE_TABLE, &e);
        table_buf_free(&e);
    }
    rc |= put_nested(out, "messages", TABLE_ARRAY, &list);
    table_buf_free(&list);
    rc |= put_ids(out, "returned", s->returned, s->nreturned);
    for (size_t i = 0; rc == 0 && i < s->nconsumers; i++) {
        const struct qq_consumer *c = s->consumers[i];
        struct table_buf e = {0};
        rc |= put_u64(&e, "serial", c->serial);
        rc |= table_buf_put_string(&e, "node", proto_bytes_of(c->key.node));
        v = (struct table_value){.type = TABLE_UINT16};
        v.v.u16 = c->key.channel;
        rc |= table_buf_put_field(&e, "channel", 7, &v);
        rc |= table_buf_put_string(&e, "tag", proto_bytes_of(c->key.tag));
        v = (struct table_value){.type = TABLE_UINT32};
        v.v.u32 = c->prefetch;
        rc |= table_buf_put_field(&e, "prefetch", 8, &v);
        rc |= put_ids(&e, "checked", c->checked, c->nchecked);
        rc |= put_nested(&list, NULL, TABLE_TABLE, &e);
        table_buf_free(&e);
    }
    rc |= put_nested(out, "consumers", TABLE_ARRAY, &list);
    table_buf_free(&list);
    return rc == 0 ? 0 : -1;
}

static int fsm_snapshot(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct qq_fsm *fsm = raft_fsm->data;
    struct table_buf t = {0};
    struct raft_buffer *out = NULL;
    if (qq_fsm_export(fsm, &t) == 0 && t.len <= UINT32_MAX)
        out = raft_malloc(sizeof(*out));
    if (out) {
        out->base = raft_malloc(t.len ? t.len : 1);
        out->len = t.len;
        if (out->base) {
            memcpy(out->base, t.data, t.len);
        } else {
            raft_free(out);
            out = NULL;
        }
    }
    table_buf_free(&t);
    if (!out)
        return RAFT_NOMEM;
    *bufs = out;
    *n_bufs = 1;
    return 0;
}

/* ---- restore: a snapshot checked as if a stranger wrote it ---- */

static bool find_typed(struct proto_bytes t, const char *key, uint8_t type, struct table_value *out)
{
    return table_find(t, key, out) == 1 && out->type == type;
}

static bool find_u64(struct proto_bytes t, const char *key, uint64_t *out)
{
    struct table_value v;
    if (!find_typed(t, key, TABLE_UINT64, &v))
        return false;
    *out = v.v.u64;
    return true;
}

/* Reads an ascending array of uint64 ids into a new array. */
static bool decode_ids(struct proto_bytes array, uint64_t **out, size_t *n, size_t *cap)
{
    struct table_iter it;
    struct table_value e;
    int more;
    table_iter_init(&it, array);
    while ((more = array_next(&it, &e)) == 1) {
        if (e.type != TABLE_UINT64 || (*n > 0 && e.v.u64 <= (*out)[*n - 1]))
            return false;
        if (*n == *cap) {
            size_t grown_cap = *cap ? *cap * 2 : 8;
            uint64_t *grown = realloc(*out, grown_cap * sizeof(*grown));
            if (!grown)
                return false;
            *out = grown;
            *cap = grown_cap;
        }
        (*out)[(*n)++] = e.v.u64;
    }
    return more == 0;
}

static bool decode_messages(struct qq_state *s, struct proto_bytes array)
{
    struct table_iter it;
    struct table_value e, count, content;
    uint64_t id, last = 0, fresh = 0;
    int more;
    table_iter_init(&it, array);
    while ((more = array_next(&it, &e)) == 1) {
        if (e.type != TABLE_TABLE || !find_u64(e.v.bytes, "id", &id) || id <= last || id >= s->next_id ||
            !find_typed(e.v.bytes, "count", TABLE_UINT32, &count) ||
            !find_typed(e.v.bytes, "content", TABLE_BYTES, &content) ||
            (s->delivery_limit >= 0 && count.v.u32 > (uint64_t)s->delivery_limit) ||
            (id >= s->next_new && count.v.u32 != 0))
            return false;
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            struct qq_message **grown = realloc(s->messages, cap * sizeof(*grown));
            if (!grown)
                return false;
            s->messages = grown;
            s->cap = cap;
        }
        struct qq_message *m = malloc(sizeof(*m) + content.v.bytes.len);
        if (!m)
            return false;
        *m = (struct qq_message){.id = id, .delivery_count = count.v.u32, .len = content.v.bytes.len};
        if (content.v.bytes.len)
            memcpy(m->content, content.v.bytes.ptr, content.v.bytes.len);
        s->messages[s->count++] = m;
        last = id;
        fresh += id >= s->next_new;
    }
    /* ids ascend below next_id, so this many at or above next_new means every one is there */
    return more == 0 && fresh == s->next_id - s->next_new;
}

/* Marks a message below next_new as claimed by owner; false when it is missing or taken. */
static bool claim(struct qq_state *s, uint64_t id, uint64_t owner)
{
    struct qq_message *m = id < s->next_new ? message_find(s, id, NULL) : NULL;
    if (!m || m->owner != 0)
        return false;
    m->owner = owner;
    return true;
}

static bool decode_consumer(struct qq_state *s, struct proto_bytes t)
{
    struct table_value node, tag, channel, prefetch, checked;
    uint64_t serial;
    struct qq_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return false;
    if (s->nconsumers == s->consumers_cap) {
        size_t cap = s->consumers_cap ? s->consumers_cap * 2 : 4;
        struct qq_consumer **grown = realloc(s->consumers, cap * sizeof(*grown));
        if (!grown) {
            free(c);
            return false;
        }
        s->consumers = grown;
        s->consumers_cap = cap;
    }
    s->consumers[s->nconsumers++] = c; /* owned by s from here: state_free frees it on failure */
    if (!find_u64(t, "serial", &serial) || serial == 0 || serial >= s->next_consumer ||
        table_find(t, "node", &node) != 1 || !name_copy(node, c->key.node) || table_find(t, "tag", &tag) != 1 ||
        !name_copy(tag, c->key.tag) || !find_typed(t, "channel", TABLE_UINT16, &channel) ||
        !find_typed(t, "prefetch", TABLE_UINT32, &prefetch) || prefetch.v.u32 > UINT16_MAX ||
        !find_typed(t, "checked", TABLE_ARRAY, &checked) ||
        !decode_ids(checked.v.bytes, &c->checked, &c->nchecked, &c->cap))
        return false;
    c->serial = serial;
    c->key.channel = channel.v.u16;
    c->prefetch = prefetch.v.u32;
    for (size_t i = 0; i + 1 < s->nconsumers; i++)
        if (s->consumers[i]->serial == serial || key_equal(&s->consumers[i]->key, &c->key))
            return false;
    for (size_t i = 0; i < c->nchecked; i++)
        if (!claim(s, c->checked[i], serial))
            return false;
    return true;
}

static bool decode_state(struct qq_state *s, struct proto_bytes t)
{
    struct table_value version, limit, sessions, messages, returned, consumers, e;
    struct table_iter it;
    int more;
    if (table_validate(t) != 0 || !find_typed(t, "version", TABLE_UINT8, &version) || version.v.u8 != 1 ||
        !find_u64(t, "seq", &s->seq) || !find_u64(t, "next_id", &s->next_id) ||
        !find_u64(t, "next_new", &s->next_new) || !find_u64(t, "next_consumer", &s->next_consumer) ||
        !find_typed(t, "delivery_limit", TABLE_INT64, &limit) || !find_typed(t, "sessions", TABLE_ARRAY, &sessions) ||
        !find_typed(t, "messages", TABLE_ARRAY, &messages) || !find_typed(t, "returned", TABLE_ARRAY, &returned) ||
        !find_typed(t, "consumers", TABLE_ARRAY, &consumers) || s->next_id == 0 || s->next_id == UINT64_MAX ||
        s->next_new == 0 || s->next_new > s->next_id || s->next_consumer == 0 || s->next_consumer == UINT64_MAX ||
        limit.v.i64 < -1)
        return false;
    s->delivery_limit = limit.v.i64;
    if (sessions_decode(sessions.v.bytes, &s->sessions) != 0 || !decode_messages(s, messages.v.bytes) ||
        !decode_ids(returned.v.bytes, &s->returned, &s->nreturned, &s->returned_cap))
        return false;
    for (size_t i = 0; i < s->nreturned; i++)
        if (!claim(s, s->returned[i], CLAIMED_READY) || message_find(s, s->returned[i], NULL)->delivery_count == 0)
            return false;
    table_iter_init(&it, consumers.v.bytes);
    while ((more = array_next(&it, &e)) == 1)
        if (e.type != TABLE_TABLE || !decode_consumer(s, e.v.bytes))
            return false;
    if (more != 0)
        return false;
    for (size_t i = 0; i < s->count; i++) { /* below next_new: returned or checked out, once */
        struct qq_message *m = s->messages[i];
        if (m->id < s->next_new && m->owner == 0)
            return false;
        if (m->owner == CLAIMED_READY)
            m->owner = 0;
    }
    bool ready = s->nreturned > 0 || s->next_new < s->next_id;
    for (size_t i = 0; ready && i < s->nconsumers; i++)
        if (consumer_has_room(s->consumers[i])) /* a member would have delivered it */
            return false;
    return true;
}

static int fsm_restore(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    struct qq_fsm *fsm = raft_fsm->data;
    struct qq_state fresh = {0};
    if (buf->len > UINT32_MAX || !decode_state(&fresh, (struct proto_bytes){buf->base, (uint32_t)buf->len})) {
        state_free(&fresh);
        return RAFT_MALFORMED;
    }
    state_free(&fsm->state);
    fsm->state = fresh;
    raft_free(buf->base); /* the state machine owns a restored snapshot's buffer */
    return 0;
}

int qq_fsm_init(struct qq_fsm *fsm, int64_t delivery_limit, const struct qq_effects *effects)
{
    memset(fsm, 0, sizeof(*fsm));
    if (delivery_limit < -1)
        return -EINVAL;
    fsm->effects = *effects;
    fsm->state.next_id = fsm->state.next_new = fsm->state.next_consumer = 1;
    fsm->state.delivery_limit = delivery_limit;
    fsm->raft = (struct raft_fsm){.version = 1, .data = fsm, .apply = fsm_apply, .snapshot = fsm_snapshot,
                                  .restore = fsm_restore};
    return 0;
}

void qq_fsm_close(struct qq_fsm *fsm)
{
    while (fsm->pending) {
        struct qq_pending *p = fsm->pending;
        qq_fsm_forget(fsm, p->session, p->request);
    }
    state_free(&fsm->state);
}

size_t qq_fsm_messages(const struct qq_fsm *fsm)
{
    return fsm->state.count;
}

size_t qq_fsm_ready(const struct qq_fsm *fsm)
{
    return fsm->state.nreturned + (size_t)(fsm->state.next_id - fsm->state.next_new);
}
