/* broker/cluster/qq_snapshot.c: a quorum queue's state as a field table (qq_fsm_export), and
 * the same read back as untrusted (qq_state_decode).
 *
 * Layout (a field table):
 *     "version"        uint8    1
 *     "seq"            uint64   entries applied so far (ages sessions)
 *     "next_id"        uint64   >= 1
 *     "next_new"       uint64   1 .. next_id; every id from it to next_id - 1 is a message
 *     "next_consumer"  uint64   >= 1
 *     "delivery_limit" int64    -1: none
 *     "max_length"     int64    x-max-length, -1: none  } the length limits (qq_limits) and
 *     "max_bytes"      int64    x-max-length-bytes, -1  } reject-publish's latch; each absent
 *     "reject_publish" bool     x-overflow reject-publish } in snapshots written before limits
 *     "over_limit"     bool     enqueues refused (latch)  } (-1, -1, false, false: none)
 *     "single_active"  bool     x-single-active-consumer; absent in older snapshots: false
 *     "sessions"       array    the exactly-once record (sessions.c)
 *     "message_ttl"    int64    x-message-ttl ms, -1: none } absent in snapshots written before
 *     "now"            uint64   the queue's clock          } TTLs (-1, 0)
 *     "messages"       array    of tables {"id" uint64, "count" uint32, "content" bytes, "expires"
 *                               uint64 (absent: never)}, ids ascending
 *     "returned"       array    of uint64: the front of the ready messages, departed consumers'
 *                               messages, in the order they are served
 *     "requeued"       array    of tables {"id" uint64, "behind" uint64}: client returns, in the
 *                               order they are served, each behind the new ids below "behind";
 *                               absent in snapshots written before returns went to the back
 *     "consumers"      array    of tables {"serial" uint64, "node" longstr, "channel" uint64
 *                               (0 .. 2^63-1; uint16 in snapshots written before channels grew),
 *                               "tag" longstr, "prefetch" uint32, "detached" bool (absent in
 *                               older snapshots: false), "checked" array of uint64 ascending},
 *                               in service order
 * Restore refuses a snapshot unless every message below next_new is either ready (returned or
 * requeued, delivery count above 0) or checked out by exactly one consumer, every id named
 * exists, no consumer is named twice, no delivery count is past the limit, the requeued ones'
 * "behind" could have been recorded (above the id, from next_new to next_id, never decreasing),
 * no ready message waits while an attached consumer that would take it has room (with a single
 * active consumer: the active one), no detached consumer holds
 * nothing (it would have been removed), and the latch is set only with reject-publish. Being over
 * a limit is not refused: drop-head leaves the queue within them only once the next command runs
 * after limits are set, and leaves holes in the ids below next_new (as settles do). */
#include "qq_state.h"

#include <stdlib.h>
#include <string.h>

#define CLAIMED_READY UINT64_MAX /* while decoding: a message named by "returned" or "requeued" */

/* ---- writing ---- */

static int put_u64(struct table_buf *t, const char *key, uint64_t value)
{
    struct table_value v = {.type = TABLE_UINT64};
    v.v.u64 = value;
    return table_buf_put_field(t, key, strlen(key), &v);
}

/* Nested values are written in place (table_buf_begin_nested): a snapshot of a deep queue is
 * mostly message contents, copied once into the snapshot, not once per level. */
static int begin(struct table_buf *t, const char *key, uint8_t type, size_t *mark)
{
    return table_buf_begin_nested(t, key, type, mark);
}

static int put_ids(struct table_buf *t, const char *key, const uint64_t *ids, size_t n)
{
    size_t mark;
    struct table_value v = {.type = TABLE_UINT64};
    int rc = begin(t, key, TABLE_ARRAY, &mark);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        v.v.u64 = ids[i];
        rc = table_buf_put_value(t, &v);
    }
    return rc == 0 ? table_buf_end_nested(t, mark) : rc;
}

int qq_fsm_export(const struct qq_fsm *fsm, struct table_buf *out)
{
    const struct qq_state *s = &fsm->state;
    size_t list, e;
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
    v.v.i64 = s->limits.max_length;
    rc |= table_buf_put_field(out, "max_length", 10, &v);
    v.v.i64 = s->limits.max_bytes;
    rc |= table_buf_put_field(out, "max_bytes", 9, &v);
    v = (struct table_value){.type = TABLE_BOOL};
    v.v.boolean = s->limits.reject_publish;
    rc |= table_buf_put_field(out, "reject_publish", 14, &v);
    v.v.boolean = s->over_limit;
    rc |= table_buf_put_field(out, "over_limit", 10, &v);
    v.v.boolean = s->single_active;
    rc |= table_buf_put_field(out, "single_active", 13, &v);
    v = (struct table_value){.type = TABLE_INT64};
    v.v.i64 = s->message_ttl;
    rc |= table_buf_put_field(out, "message_ttl", 11, &v);
    rc |= put_u64(out, "now", s->now_ms);
    if (rc != 0 || begin(out, "sessions", TABLE_ARRAY, &list) != 0 || sessions_encode(&s->sessions, out) != 0 ||
        table_buf_end_nested(out, list) != 0)
        return -1;
    size_t bytes = 0;
    for (size_t i = s->head; i < s->head + s->count; i++)
        bytes += 40 + qq_content(s->messages[i]).len; /* each message's table, roughly */
    rc = table_buf_reserve(out, bytes) | begin(out, "messages", TABLE_ARRAY, &list);
    for (size_t i = s->head; rc == 0 && i < s->head + s->count; i++) {
        const struct qq_message *m = s->messages[i];
        rc |= begin(out, NULL, TABLE_TABLE, &e);
        rc |= put_u64(out, "id", m->id);
        v = (struct table_value){.type = TABLE_UINT32};
        v.v.u32 = m->delivery_count;
        rc |= table_buf_put_field(out, "count", 5, &v);
        v = (struct table_value){.type = TABLE_BYTES};
        v.v.bytes = qq_content(m);
        rc |= table_buf_put_field(out, "content", 7, &v);
        if (m->expires_at)
            rc |= put_u64(out, "expires", m->expires_at);
        rc |= table_buf_end_nested(out, e);
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    rc |= rc == 0 ? begin(out, "returned", TABLE_ARRAY, &list) : 0;
    for (size_t i = 0; rc == 0 && i < s->returned.count; i++) {
        v = (struct table_value){.type = TABLE_UINT64};
        v.v.u64 = s->returned.v[s->returned.head + i].id;
        rc |= table_buf_put_value(out, &v);
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    rc |= rc == 0 ? begin(out, "requeued", TABLE_ARRAY, &list) : 0;
    for (size_t i = 0; rc == 0 && i < s->requeued.count; i++) {
        const struct qq_ready *r = &s->requeued.v[s->requeued.head + i];
        rc |= begin(out, NULL, TABLE_TABLE, &e);
        rc |= put_u64(out, "id", r->id);
        rc |= put_u64(out, "behind", r->behind);
        rc |= table_buf_end_nested(out, e);
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    rc |= rc == 0 ? begin(out, "consumers", TABLE_ARRAY, &list) : 0;
    for (size_t i = 0; rc == 0 && i < s->nconsumers; i++) {
        const struct qq_consumer *c = s->consumers[i];
        rc |= begin(out, NULL, TABLE_TABLE, &e);
        rc |= put_u64(out, "serial", c->serial);
        rc |= table_buf_put_string(out, "node", proto_bytes_of(c->key.node));
        rc |= put_u64(out, "channel", c->key.channel);
        rc |= table_buf_put_string(out, "tag", proto_bytes_of(c->key.tag));
        v = (struct table_value){.type = TABLE_UINT32};
        v.v.u32 = c->prefetch;
        rc |= table_buf_put_field(out, "prefetch", 8, &v);
        v = (struct table_value){.type = TABLE_BOOL};
        v.v.boolean = c->detached;
        rc |= table_buf_put_field(out, "detached", 8, &v);
        rc |= put_ids(out, "checked", c->checked, c->nchecked);
        rc |= table_buf_end_nested(out, e);
    }
    rc |= rc == 0 ? table_buf_end_nested(out, list) : 0;
    return rc == 0 ? 0 : -1;
}


/* ---- reading: checked as if a stranger wrote it ---- */

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

static bool fifo_push(struct qq_fifo *f, struct qq_ready r)
{
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct qq_ready *grown = realloc(f->v, cap * sizeof(*grown));
        if (!grown)
            return false;
        f->v = grown;
        f->cap = cap;
    }
    f->v[f->count++] = r;
    return true;
}

/* Marks a message below next_new as claimed by owner; false when it is missing or taken. */
static bool claim(struct qq_state *s, uint64_t id, uint64_t owner)
{
    struct qq_message *m = id < s->next_new ? qq_message_find(s, id, NULL) : NULL;
    if (!m || m->owner != 0)
        return false;
    m->owner = owner;
    return true;
}

/* Claims a ready message that was delivered before; false unless it counted a delivery. */
static bool claim_ready(struct qq_state *s, uint64_t id)
{
    return claim(s, id, CLAIMED_READY) && qq_message_find(s, id, NULL)->delivery_count > 0;
}

/* "returned": uint64 ids in serving order, each a ready message delivered before. */
static bool decode_returned(struct qq_state *s, struct proto_bytes array)
{
    struct table_iter it;
    struct table_value e;
    int more;
    table_iter_init(&it, array);
    while ((more = array_next(&it, &e)) == 1)
        if (e.type != TABLE_UINT64 || !claim_ready(s, e.v.u64) ||
            !fifo_push(&s->returned, (struct qq_ready){e.v.u64, 0}))
            return false;
    return more == 0;
}

/* "requeued": {id, behind} in serving order; behind as a client return records it (next_id
 * then: at most next_id now), never decreasing along the list, and at least next_new (a
 * never-delivered message at or past it is never served ahead of the return), so above the id. */
static bool decode_requeued(struct qq_state *s, struct proto_bytes array)
{
    struct table_iter it;
    struct table_value e;
    uint64_t id, behind, last = s->next_new;
    int more;
    table_iter_init(&it, array);
    while ((more = array_next(&it, &e)) == 1) {
        if (e.type != TABLE_TABLE || !find_u64(e.v.bytes, "id", &id) || !find_u64(e.v.bytes, "behind", &behind) ||
            behind < last || behind > s->next_id || !claim_ready(s, id) ||
            !fifo_push(&s->requeued, (struct qq_ready){id, behind}))
            return false;
        last = behind;
    }
    return more == 0;
}

static bool decode_messages(struct qq_state *s, struct proto_bytes array)
{
    struct table_iter it;
    struct table_value e, count, content, expires;
    uint64_t id, last = 0, fresh = 0;
    int more;
    table_iter_init(&it, array);
    while ((more = array_next(&it, &e)) == 1) {
        if (e.type != TABLE_TABLE || !find_u64(e.v.bytes, "id", &id) || id <= last || id >= s->next_id ||
            !find_typed(e.v.bytes, "count", TABLE_UINT32, &count) ||
            !find_typed(e.v.bytes, "content", TABLE_BYTES, &content) ||
            (s->delivery_limit >= 0 && count.v.u32 > (uint64_t)s->delivery_limit) ||
            (id >= s->next_new && count.v.u32 != 0) ||
            (table_find(e.v.bytes, "expires", &expires) != 0 &&
             (!find_typed(e.v.bytes, "expires", TABLE_UINT64, &expires) || expires.v.u64 == 0)))
            return false;
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            struct qq_message **grown = realloc(s->messages, cap * sizeof(*grown));
            if (!grown)
                return false;
            s->messages = grown;
            s->cap = cap;
        }
        struct qq_message *m = qq_message_alloc(content.v.bytes.len);
        if (!m)
            return false;
        m->id = id;
        m->delivery_count = count.v.u32;
        m->expires_at = table_find(e.v.bytes, "expires", &expires) == 1 ? expires.v.u64 : 0;
        if (content.v.bytes.len)
            memcpy(m->content, content.v.bytes.ptr, content.v.bytes.len);
        s->messages[s->count++] = m;
        last = id;
        fresh += id >= s->next_new;
    }
    /* ids ascend below next_id, so this many at or above next_new means every one is there */
    return more == 0 && fresh == s->next_id - s->next_new;
}

/* "channel": uint64 up to INT64_MAX, or uint16 as older snapshots wrote it. */
static bool decode_channel(struct proto_bytes t, uint64_t *out)
{
    struct table_value v;
    if (table_find(t, "channel", &v) != 1)
        return false;
    if (v.type == TABLE_UINT16)
        *out = v.v.u16;
    else if (v.type == TABLE_UINT64 && v.v.u64 <= INT64_MAX)
        *out = v.v.u64;
    else
        return false;
    return true;
}

/* An optional bool, absent in older snapshots (false). */
static bool decode_flag(struct proto_bytes t, const char *key, bool *out)
{
    struct table_value v;
    int found = table_find(t, key, &v);
    if (found == 0)
        *out = false;
    else if (found == 1 && v.type == TABLE_BOOL)
        *out = v.v.boolean;
    else
        return false;
    return true;
}

/* An optional limit: int64 >= -1, absent in older snapshots (-1: none). */
static bool decode_limit(struct proto_bytes t, const char *key, int64_t *out)
{
    struct table_value v;
    int found = table_find(t, key, &v);
    if (found == 0)
        *out = -1;
    else if (found == 1 && v.type == TABLE_INT64 && v.v.i64 >= -1)
        *out = v.v.i64;
    else
        return false;
    return true;
}

/* The queue's clock, absent in older snapshots (0). */
static bool decode_clock(struct proto_bytes t, uint64_t *out)
{
    struct table_value v;
    int found = table_find(t, "now", &v);
    *out = found == 1 && v.type == TABLE_UINT64 ? v.v.u64 : 0;
    return found == 0 || (found == 1 && v.type == TABLE_UINT64);
}

/* The limits and the latch; the latch only with reject-publish (set_limits clears it). */
static bool decode_limits(struct qq_state *s, struct proto_bytes t)
{
    return decode_limit(t, "max_length", &s->limits.max_length) &&
           decode_limit(t, "max_bytes", &s->limits.max_bytes) &&
           decode_flag(t, "reject_publish", &s->limits.reject_publish) &&
           decode_flag(t, "over_limit", &s->over_limit) && (!s->over_limit || s->limits.reject_publish) &&
           decode_flag(t, "single_active", &s->single_active) && decode_limit(t, "message_ttl", &s->message_ttl) &&
           decode_clock(t, &s->now_ms);
}

static bool decode_consumer(struct qq_state *s, struct proto_bytes t)
{
    struct table_value node, tag, prefetch, checked;
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
        table_find(t, "node", &node) != 1 || !qq_name_copy(node, c->key.node) || table_find(t, "tag", &tag) != 1 ||
        !qq_name_copy(tag, c->key.tag) || !decode_channel(t, &c->key.channel) ||
        !find_typed(t, "prefetch", TABLE_UINT32, &prefetch) || prefetch.v.u32 > UINT16_MAX ||
        !decode_flag(t, "detached", &c->detached) || !find_typed(t, "checked", TABLE_ARRAY, &checked) ||
        !decode_ids(checked.v.bytes, &c->checked, &c->nchecked, &c->cap) ||
        (c->detached && c->nchecked == 0)) /* a member removes it once it holds nothing */
        return false;
    c->serial = serial;
    c->prefetch = prefetch.v.u32;
    for (size_t i = 0; i + 1 < s->nconsumers; i++)
        if (s->consumers[i]->serial == serial || qq_key_equal(&s->consumers[i]->key, &c->key))
            return false;
    for (size_t i = 0; i < c->nchecked; i++)
        if (!claim(s, c->checked[i], serial))
            return false;
    return true;
}

bool qq_state_decode(struct qq_state *s, struct proto_bytes t)
{
    struct table_value version, limit, sessions, messages, returned, requeued, consumers, e;
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
    if (!decode_limits(s, t))
        return false;
    int has_requeued = table_find(t, "requeued", &requeued); /* absent: none (written before) */
    if (sessions_decode(sessions.v.bytes, &s->sessions) != 0 || !decode_messages(s, messages.v.bytes) ||
        !decode_returned(s, returned.v.bytes) || has_requeued < 0 ||
        (has_requeued == 1 && (requeued.type != TABLE_ARRAY || !decode_requeued(s, requeued.v.bytes))))
        return false;
    table_iter_init(&it, consumers.v.bytes);
    while ((more = array_next(&it, &e)) == 1)
        if (e.type != TABLE_TABLE || !decode_consumer(s, e.v.bytes))
            return false;
    if (more != 0)
        return false;
    for (size_t i = 0; i < s->count; i++) { /* below next_new: ready or checked out, once */
        struct qq_message *m = s->messages[i];
        if (m->id < s->next_new && m->owner == 0)
            return false;
        if (m->owner == CLAIMED_READY)
            m->owner = 0;
        if (m->owner == 0)
            s->ready_bytes += m->len;
    }
    bool ready = s->returned.count > 0 || s->requeued.count > 0 || s->next_new < s->next_id;
    for (size_t i = 0; ready && i < s->nconsumers; i++) {
        if (qq_consumer_has_room(s->consumers[i])) /* a member would have delivered it */
            return false;
        if (s->single_active && !s->consumers[i]->detached)
            break; /* the active one is full: the others wait whatever their room */
    }
    return true;
}

