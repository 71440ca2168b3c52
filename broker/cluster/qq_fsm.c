/* broker/cluster/qq_fsm.c: a quorum queue's state machine (rules: qq_fsm.h): the commands, the
 * assignment of ready messages, and the raft_fsm callbacks. The snapshot format and its checks
 * are in qq_snapshot.c.
 *
 * Memory. apply cannot fail on one member and succeed on another without the members parting
 * ways, so running out of memory while applying a committed entry aborts the process (it comes
 * back through a snapshot and the log). */
#include "qq_fsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qq_state.h"

struct qq_pending {
    struct session_wait link; /* first: a session_wait is its qq_pending */
    qq_done_fn done;
    void *arg;
};

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

/* ---- ready lists ---- */

static void fifo_push(struct qq_fifo *f, struct qq_ready r)
{
    if (f->head + f->count == f->cap) {
        if (f->head > 0 && f->head >= f->cap / 2) { /* what was taken from the front leaves room */
            memmove(f->v, &f->v[f->head], f->count * sizeof(*f->v));
            f->head = 0;
        } else {
            f->cap = f->cap ? f->cap * 2 : 8;
            f->v = grow(f->v, f->cap, sizeof(*f->v));
        }
    }
    f->v[f->head + f->count++] = r;
}

static struct qq_ready fifo_pop(struct qq_fifo *f)
{
    struct qq_ready r = f->v[f->head++];
    if (--f->count == 0)
        f->head = 0;
    return r;
}

static void fifo_clear(struct qq_fifo *f)
{
    f->head = f->count = 0;
}

/* ---- messages, by id ---- */

/* The message id, or NULL; *at gets its index in s->messages. */
struct qq_message *qq_message_find(const struct qq_state *s, uint64_t id, size_t *at)
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
static uint64_t memory_bytes; /* the loop's thread only, as every call here */

uint64_t qq_memory_bytes(void)
{
    return memory_bytes;
}

struct qq_message *qq_message_alloc(uint32_t len)
{
    struct qq_message *m = malloc(sizeof(*m) + len);
    if (m) {
        *m = (struct qq_message){.len = len};
        memory_bytes += len;
    }
    return m;
}

void qq_message_free(struct qq_message *m)
{
    if (m) {
        memory_bytes -= m->len;
        free(m);
    }
}

static void message_remove(struct qq_state *s, size_t at)
{
    qq_message_free(s->messages[at]);
    if (at == s->head) {
        s->head++;
    } else {
        memmove(&s->messages[at], &s->messages[at + 1], (s->head + s->count - at - 1) * sizeof(*s->messages));
    }
    if (--s->count == 0)
        s->head = 0;
}

/* ---- consumers ---- */

bool qq_key_equal(const struct qq_consumer_key *a, const struct qq_consumer_key *b)
{
    return a->channel == b->channel && strcmp(a->node, b->node) == 0 && strcmp(a->tag, b->tag) == 0;
}

static struct qq_consumer *consumer_find(const struct qq_state *s, const struct qq_consumer_key *key, size_t *at)
{
    for (size_t i = 0; i < s->nconsumers; i++)
        if (qq_key_equal(&s->consumers[i]->key, key)) {
            if (at)
                *at = i;
            return s->consumers[i];
        }
    return NULL;
}

bool qq_consumer_has_room(const struct qq_consumer *c)
{
    return !c->detached && (c->prefetch == 0 || c->nchecked < c->prefetch);
}

static void consumer_free(struct qq_consumer *c)
{
    free(c->checked);
    free(c);
}

/* A new consumer named key, attached, prefetch 0, at the back of the service order. */
static struct qq_consumer *consumer_add(struct qq_state *s, const struct qq_consumer_key *key)
{
    struct qq_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        out_of_memory();
    c->serial = s->next_consumer++;
    c->key = *key;
    if (s->nconsumers == s->consumers_cap) {
        s->consumers_cap = s->consumers_cap ? s->consumers_cap * 2 : 4;
        s->consumers = grow(s->consumers, s->consumers_cap, sizeof(*s->consumers));
    }
    s->consumers[s->nconsumers++] = c;
    return c;
}

/* Takes the consumer at index at out of the service order; the caller frees it. */
static struct qq_consumer *consumer_unlink(struct qq_state *s, size_t at)
{
    struct qq_consumer *c = s->consumers[at];
    memmove(&s->consumers[at], &s->consumers[at + 1], (s->nconsumers - at - 1) * sizeof(*s->consumers));
    s->nconsumers--;
    return c;
}

/* Moves the consumer at index at to the back of the service order. */
static void consumer_to_back(struct qq_state *s, size_t at)
{
    struct qq_consumer *c = consumer_unlink(s, at);
    s->consumers[s->nconsumers++] = c;
}

void qq_state_free(struct qq_state *s)
{
    for (size_t i = s->head; i < s->head + s->count; i++)
        qq_message_free(s->messages[i]);
    free(s->messages);
    for (size_t i = 0; i < s->nconsumers; i++)
        consumer_free(s->consumers[i]);
    free(s->consumers);
    free(s->returned.v);
    free(s->requeued.v);
    sessions_free(&s->sessions);
    memset(s, 0, sizeof(*s));
}

/* ---- what commands do ---- */

static void discard(struct qq_fsm *fsm, size_t at, const char *reason)
{
    struct qq_message *m = fsm->state.messages[at];
    if (fsm->effects.discarded)
        fsm->effects.discarded(fsm->effects.ctx, m->id, qq_content(m), reason);
    message_remove(&fsm->state, at);
}

/* A message taken from its consumer goes back to ready, one delivery attempt more, or past the
 * delivery limit is discarded (RabbitMQ 3.10: dead-lettered when its count exceeds the limit).
 * Its consumer gone (to_front), it goes behind the messages returned before it and ahead of
 * every other; given back by the client, it enters again at the back, behind every message
 * enqueued so far (RabbitMQ 3.10's rabbit_fifo requeues a nacked message as a new one). */
static void requeue(struct qq_fsm *fsm, size_t at, bool to_front)
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
    s->ready_bytes += m->len; /* ready again: it counts toward the limits */
    if (to_front)
        fifo_push(&s->returned, (struct qq_ready){m->id, 0});
    else
        fifo_push(&s->requeued, (struct qq_ready){m->id, s->next_id});
}

/* Removes the consumer at index at; its messages return to the front, in id order. Returns how
 * many. */
static uint64_t cancel(struct qq_fsm *fsm, size_t at)
{
    struct qq_state *s = &fsm->state;
    struct qq_consumer *c = consumer_unlink(s, at);
    for (size_t i = 0; i < c->nchecked; i++) {
        size_t m_at;
        if (qq_message_find(s, c->checked[i], &m_at))
            requeue(fsm, m_at, true);
    }
    uint64_t n = c->nchecked;
    consumer_free(c);
    return n;
}

static bool any_ready(const struct qq_state *s)
{
    return s->returned.count > 0 || s->requeued.count > 0 || s->next_new < s->next_id;
}

static uint64_t ready_count(const struct qq_state *s)
{
    return s->returned.count + s->requeued.count + (s->next_id - s->next_new);
}

/* ---- length limits (qq_limits): the ready messages and their content bytes ---- */

static bool over_limit(const struct qq_state *s)
{
    return (s->limits.max_length >= 0 && ready_count(s) > (uint64_t)s->limits.max_length) ||
           (s->limits.max_bytes >= 0 && s->ready_bytes > (uint64_t)s->limits.max_bytes);
}

/* 80% of a limit, rounded down, without overflowing: queue.c's rule, so both kinds agree. */
static uint64_t low_limit(int64_t limit)
{
    return (uint64_t)(limit / 10 * 8 + limit % 10 * 8 / 10);
}

/* rabbit_fifo's low limit: at most 80% of each limit that is set ready; reject-publish's latch
 * clears there. */
static bool below_low_limit(const struct qq_state *s)
{
    return (s->limits.max_length < 0 || ready_count(s) <= low_limit(s->limits.max_length)) &&
           (s->limits.max_bytes < 0 || s->ready_bytes <= low_limit(s->limits.max_bytes));
}

/* Where the next ready message waits. The ready order: the front of the returned list; else the
 * first client return unless a never-delivered message below its `behind` waits (ids
 * next_new .. behind - 1); else the next never-delivered one (there is one whenever a return
 * waits behind it). */
enum ready_source { FROM_RETURNED, FROM_REQUEUED, FROM_NEW };

/* The id next_ready takes next, without taking it, and (from may be NULL) where it waits; 0 when
 * none is ready. The one place the ready order is decided. */
static uint64_t peek_ready(const struct qq_state *s, enum ready_source *from)
{
    enum ready_source f;
    uint64_t id;
    if (s->returned.count > 0)
        f = FROM_RETURNED, id = s->returned.v[s->returned.head].id;
    else if (s->requeued.count > 0 && s->requeued.v[s->requeued.head].behind <= s->next_new)
        f = FROM_REQUEUED, id = s->requeued.v[s->requeued.head].id;
    else if (s->next_new < s->next_id)
        f = FROM_NEW, id = s->next_new;
    else
        return 0;
    if (from)
        *from = f;
    return id;
}

/* Takes the next ready message out of the ready order and returns it (still ready: owner 0), or
 * NULL when none is. */
static struct qq_message *next_ready(struct qq_state *s)
{
    enum ready_source from;
    uint64_t id = peek_ready(s, &from);
    if (id == 0)
        return NULL;
    if (from == FROM_RETURNED)
        fifo_pop(&s->returned);
    else if (from == FROM_REQUEUED)
        fifo_pop(&s->requeued);
    else
        s->next_new++;
    struct qq_message *m = qq_message_find(s, id, NULL);
    if (!m) /* cannot happen: restore and every command keep ready ids pointing at messages */
        abort();
    s->ready_bytes -= m->len;
    if (s->over_limit && below_low_limit(s))
        s->over_limit = false; /* as queue.c's take_head: publishers may go on at once */
    return m;
}


static bool expired(const struct qq_state *s, const struct qq_message *m, bool at_deadline)
{
    return m->expires_at != 0 && (m->expires_at < s->now_ms || (at_deadline && m->expires_at == s->now_ms));
}

/* next_ready for a consumer: expired messages met at the head are discarded on the way. */
static struct qq_message *next_live(struct qq_fsm *fsm)
{
    struct qq_state *s = &fsm->state;
    struct qq_message *m;
    while ((m = next_ready(s)) != NULL && expired(s, m, false)) {
        size_t at;
        if (!qq_message_find(s, m->id, &at)) /* cannot happen: next_ready found it */
            abort();
        discard(fsm, at, "expired");
    }
    return m;
}

/* After consumers took what they could: the head's messages at or past their deadline go
 * (nobody could take them now). Returns how many. */
static uint64_t expire_head(struct qq_fsm *fsm)
{
    struct qq_state *s = &fsm->state;
    uint64_t n = 0, id;
    struct qq_message *m;
    size_t at;
    while ((id = peek_ready(s, NULL)) != 0 && (m = qq_message_find(s, id, &at)) != NULL && expired(s, m, true)) {
        next_ready(s); /* takes it out of the ready order; its index stays */
        discard(fsm, at, "expired");
        n++;
    }
    return n;
}

uint64_t qq_fsm_next_expiry(const struct qq_fsm *fsm)
{
    uint64_t id = peek_ready(&fsm->state, NULL);
    const struct qq_message *m = id ? qq_message_find(&fsm->state, id, NULL) : NULL;
    return m ? m->expires_at : 0;
}

/* Checks m (just taken by next_ready) out to c and reports the delivery. */
static void check_out(struct qq_fsm *fsm, struct qq_consumer *c, struct qq_message *m)
{
    m->owner = c->serial;
    ids_insert(&c->checked, &c->nchecked, &c->cap, m->id);
    if (fsm->effects.deliver)
        fsm->effects.deliver(fsm->effects.ctx, &c->key, m->id, qq_content(m), m->delivery_count > 0,
                             m->delivery_count);
}

/* With a single active consumer: the first attached consumer in service order, or NULL. */
static struct qq_consumer *active_consumer(const struct qq_state *s)
{
    for (size_t i = 0; i < s->nconsumers; i++)
        if (!s->consumers[i]->detached)
            return s->consumers[i];
    return NULL;
}

/* Gives ready messages to consumers with room until either runs out, each to the first consumer
 * in service order with room, which then goes to the back (round-robin), in next_ready's order.
 * With a single active consumer, only to the active one, and nobody moves. */
static void assign(struct qq_fsm *fsm)
{
    struct qq_state *s = &fsm->state;
    if (s->single_active) {
        struct qq_consumer *c = active_consumer(s);
        struct qq_message *m;
        while (c && qq_consumer_has_room(c) && (m = next_live(fsm)) != NULL)
            check_out(fsm, c, m);
        return;
    }
    while (any_ready(s)) {
        size_t i = 0;
        while (i < s->nconsumers && !qq_consumer_has_room(s->consumers[i]))
            i++;
        if (i == s->nconsumers)
            return;
        struct qq_message *m = next_live(fsm);
        if (!m)
            return;
        struct qq_consumer *c = s->consumers[i];
        consumer_to_back(s, i);
        check_out(fsm, c, m);
    }
}

/* Run after assign, as rabbit_fifo checks its limits after each checkout (queue_kind's
 * limit_after_dispatch): what consumers could take is out, so only what is left counts.
 * drop-head discards ready messages from the head while over a limit; reject-publish sets its
 * latch when a return (or limits just set) took the queue over. */
static void enforce_limits(struct qq_fsm *fsm)
{
    struct qq_state *s = &fsm->state;
    if (s->limits.reject_publish) {
        if (over_limit(s))
            s->over_limit = true;
        return;
    }
    while (over_limit(s)) {
        struct qq_message *m = next_ready(s);
        size_t at;
        if (!m || !qq_message_find(s, m->id, &at)) /* cannot happen: over a limit means one is ready */
            abort();
        discard(fsm, at, "maxlen");
    }
}

/* ---- decoding a command's arguments ---- */

static bool arg_int(struct proto_bytes args, const char *name, int64_t max, int64_t *out)
{
    struct table_value v;
    return table_find(args, name, &v) == 1 && table_value_to_int(&v, out) && *out >= 0 && *out <= max;
}

/* A shortstr-sized string without NULs, copied NUL-terminated. */
bool qq_name_copy(struct table_value v, char out[QQ_NAME_MAX + 1])
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
    return table_find(args, name, &v) == 1 && qq_name_copy(v, out);
}

static bool arg_consumer(struct proto_bytes args, struct qq_consumer_key *key)
{
    int64_t channel;
    memset(key, 0, sizeof(*key));
    if (!arg_name(args, "node", key->node) || !arg_name(args, "tag", key->tag) ||
        !arg_int(args, "channel", INT64_MAX, &channel))
        return false;
    key->channel = (uint64_t)channel;
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
    size_t c_at;
    struct qq_consumer *c = consumer_find(&fsm->state, &key, &c_at);
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
        if (!ids_remove(c->checked, &c->nchecked, (uint64_t)id) || !qq_message_find(&fsm->state, (uint64_t)id, &at))
            continue; /* not this consumer's: skipped, as rabbit_fifo ignores unknown ids */
        r->value++;
        if (how == SETTLE)
            message_remove(&fsm->state, at);
        else if (how == RETURN)
            requeue(fsm, at, false);
        else
            discard(fsm, at, "rejected");
    }
    if (c->detached && c->nchecked == 0) /* requeue and discard leave the consumers alone */
        consumer_free(consumer_unlink(&fsm->state, c_at));
}

/* "dequeue": the next ready message, in assign's order, to the consumer named. */
static void apply_dequeue(struct qq_fsm *fsm, struct proto_bytes args, struct qq_result *r)
{
    struct qq_state *s = &fsm->state;
    struct qq_consumer_key key;
    struct table_value no_ack;
    if (!arg_consumer(args, &key) || table_find(args, "no_ack", &no_ack) != 1 || no_ack.type != TABLE_BOOL) {
        r->status = QQ_MALFORMED;
        return;
    }
    struct qq_message *m = next_live(fsm);
    if (!m)
        return;
    r->value = m->id;
    if (no_ack.v.boolean) {
        size_t at;
        qq_message_find(s, m->id, &at);
        if (fsm->effects.deliver) /* before the free: the content is borrowed for the call */
            fsm->effects.deliver(fsm->effects.ctx, &key, m->id, qq_content(m), m->delivery_count > 0,
                                 m->delivery_count);
        message_remove(s, at);
        return;
    }
    struct qq_consumer *c = consumer_find(s, &key, NULL);
    if (!c) { /* a get holder of its own, as rabbit_fifo has: never served by assign */
        c = consumer_add(s, &key);
        c->detached = true;
    }
    check_out(fsm, c, m);
}

static void apply_command(struct qq_fsm *fsm, const struct meta_command *cmd, struct qq_result *r)
{
    struct qq_state *s = &fsm->state;
    struct qq_consumer_key key;
    struct table_value now;
    int has_now = table_find(cmd->args, "now", &now);
    if (has_now < 0 || (has_now == 1 && now.type != TABLE_UINT64)) {
        r->status = QQ_MALFORMED;
        return;
    }
    if (has_now == 1 && now.v.u64 > s->now_ms)
        s->now_ms = now.v.u64; /* the queue's clock never goes back */
    if (proto_bytes_is(cmd->op, "enqueue")) {
        struct table_value v;
        int64_t ttl = -1;
        if (table_find(cmd->args, "content", &v) != 1 || v.type != TABLE_BYTES ||
            (table_find(cmd->args, "ttl", &(struct table_value){0}) == 1 && !arg_int(cmd->args, "ttl", INT64_MAX, &ttl))) {
            r->status = QQ_MALFORMED;
            return;
        }
        if (s->message_ttl >= 0 && (ttl < 0 || s->message_ttl < ttl))
            ttl = s->message_ttl;
        if (s->limits.reject_publish) { /* queue.c's queue_publish: limits may have changed */
            s->over_limit = s->over_limit && !below_low_limit(s);
            if (s->over_limit) {
                r->status = QQ_REJECTED;
                return;
            }
        }
        struct qq_message *m = v.v.bytes.len <= UINT32_MAX ? qq_message_alloc(v.v.bytes.len) : NULL;
        if (!m)
            out_of_memory();
        m->id = s->next_id++;
        if (v.v.bytes.len)
            memcpy(m->content, v.v.bytes.ptr, v.v.bytes.len);
        if (ttl >= 0) /* 0 stays "never": a clock at 0 means no clock was ever given */
            m->expires_at = (uint64_t)ttl > UINT64_MAX - s->now_ms ? UINT64_MAX : s->now_ms + (uint64_t)ttl;
        if (ttl >= 0 && m->expires_at == 0)
            m->expires_at = 1;
        message_append(s, m);
        s->ready_bytes += m->len;
        if (s->limits.reject_publish && over_limit(s))
            s->over_limit = true; /* this one is taken; the next are refused */
        r->value = m->id;
    } else if (proto_bytes_is(cmd->op, "tick")) {
        if (has_now != 1)
            r->status = QQ_MALFORMED; /* its clock is all it carries; the expiry pass follows */
    } else if (proto_bytes_is(cmd->op, "checkout")) {
        int64_t prefetch;
        if (!arg_consumer(cmd->args, &key) || !arg_int(cmd->args, "prefetch", UINT16_MAX, &prefetch)) {
            r->status = QQ_MALFORMED;
            return;
        }
        size_t at;
        struct qq_consumer *c = consumer_find(s, &key, &at);
        if (!c) {
            c = consumer_add(s, &key); /* joins at the back of the service order */
        } else if (c->detached) {     /* attached again, as if new */
            c->detached = false;
            consumer_to_back(s, at);
        }
        c->prefetch = (uint32_t)prefetch;
    } else if (proto_bytes_is(cmd->op, "detach")) {
        size_t at;
        if (!arg_consumer(cmd->args, &key)) {
            r->status = QQ_MALFORMED;
            return;
        }
        struct qq_consumer *c = consumer_find(s, &key, &at);
        if (!c) {
            r->status = QQ_NOT_FOUND;
            return;
        }
        c->detached = true;
        r->value = c->nchecked;
        if (c->nchecked == 0)
            consumer_free(consumer_unlink(s, at));
    } else if (proto_bytes_is(cmd->op, "dequeue")) {
        apply_dequeue(fsm, cmd->args, r);
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
                qq_message_free(s->messages[i]);
                r->value++;
            } else {
                s->messages[kept++] = s->messages[i];
            }
        }
        s->count = kept - s->head;
        if (s->count == 0)
            s->head = 0;
        fifo_clear(&s->returned);
        fifo_clear(&s->requeued);
        s->next_new = s->next_id;
        s->ready_bytes = 0; /* the latch, as queue.c's, clears at the next enqueue */
    } else if (proto_bytes_is(cmd->op, "node_down") || proto_bytes_is(cmd->op, "channel_down")) {
        char node[QQ_NAME_MAX + 1];
        int64_t channel = -1;
        if (!arg_name(cmd->args, "node", node) ||
            (proto_bytes_is(cmd->op, "channel_down") && !arg_int(cmd->args, "channel", INT64_MAX, &channel))) {
            r->status = QQ_MALFORMED;
            return;
        }
        for (size_t i = 0; i < s->nconsumers;) {
            const struct qq_consumer_key *k = &s->consumers[i]->key;
            if (strcmp(k->node, node) == 0 && (channel < 0 || k->channel == (uint64_t)channel)) {
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

void qq_fsm_apply_command(struct qq_fsm *fsm, const struct meta_command *cmd, struct qq_result *out)
{
    memset(out, 0, sizeof(*out));
    apply_command(fsm, cmd, out);
    assign(fsm);
    uint64_t gone = expire_head(fsm);
    if (out->status == 0 && proto_bytes_is(cmd->op, "tick"))
        out->value = gone;
    enforce_limits(fsm);
}

void qq_fsm_set_limits(struct qq_fsm *fsm, const struct qq_limits *limits)
{
    struct qq_state *s = &fsm->state;
    s->limits = *limits;
    if (s->limits.max_length < -1) /* a snapshot holds -1 for none */
        s->limits.max_length = -1;
    if (s->limits.max_bytes < -1)
        s->limits.max_bytes = -1;
    if (!s->limits.reject_publish)
        s->over_limit = false;
}

void qq_fsm_set_single_active(struct qq_fsm *fsm, bool on)
{
    fsm->state.single_active = on;
}

void qq_fsm_set_message_ttl(struct qq_fsm *fsm, int64_t ttl_ms)
{
    fsm->state.message_ttl = ttl_ms < 0 ? -1 : ttl_ms;
}

/* ---- pending requests of this member ---- */

int qq_fsm_expect(struct qq_fsm *fsm, uint64_t session, uint64_t request, qq_done_fn done, void *arg)
{
    struct qq_pending *p = malloc(sizeof(*p));
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

static struct qq_pending *pending_take(struct qq_fsm *fsm, uint64_t session, uint64_t request)
{
    return (struct qq_pending *)session_wait_take(&fsm->pending, session, request);
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
    if (!sessions_record(&fsm->state.sessions, cmd.session, cmd.request, fsm->state.seq))
        r.status = QQ_DUPLICATE;
    else
        qq_fsm_apply_command(fsm, &cmd, &r);
    struct qq_pending *p = pending_take(fsm, cmd.session, cmd.request);
    if (p) {
        p->done(p->arg, &r);
        free(p);
    }
    return 0;
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

static int fsm_restore(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    struct qq_fsm *fsm = raft_fsm->data;
    if (buf->len > UINT32_MAX || qq_fsm_import(fsm, (struct proto_bytes){buf->base, (uint32_t)buf->len}) != 0)
        return RAFT_MALFORMED;
    raft_free(buf->base); /* the state machine owns a restored snapshot's buffer */
    return 0;
}

/* The snapshot's state wholesale, as a restore takes it: its delivery limit and sessions too. */
int qq_fsm_import(struct qq_fsm *fsm, struct proto_bytes state)
{
    struct qq_state fresh = {0};
    if (!qq_state_decode(&fresh, state)) {
        qq_state_free(&fresh);
        return -1;
    }
    qq_state_free(&fsm->state);
    fsm->state = fresh;
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
    fsm->state.limits = (struct qq_limits){.max_length = -1, .max_bytes = -1};
    fsm->state.message_ttl = -1;
    fsm->raft = (struct raft_fsm){.version = 1, .data = fsm, .apply = fsm_apply, .snapshot = fsm_snapshot,
                                  .restore = fsm_restore};
    return 0;
}

void qq_fsm_close(struct qq_fsm *fsm)
{
    while (fsm->pending)
        qq_fsm_forget(fsm, fsm->pending->session, fsm->pending->request);
    qq_state_free(&fsm->state);
}

bool qq_fsm_still_held(const struct qq_fsm *fsm, const struct qq_consumer_key *consumer, uint64_t id,
                       uint32_t delivery_count, struct proto_bytes *content)
{
    const struct qq_message *m = qq_message_find(&fsm->state, id, NULL);
    const struct qq_consumer *c = m && m->owner ? consumer_find(&fsm->state, consumer, NULL) : NULL;
    if (!c || c->serial != m->owner || m->delivery_count != delivery_count)
        return false;
    *content = qq_content(m);
    return true;
}

size_t qq_fsm_messages(const struct qq_fsm *fsm)
{
    return fsm->state.count;
}

void qq_fsm_each_consumer_node(const struct qq_fsm *fsm, void (*fn)(const char *node, void *arg), void *arg)
{
    for (size_t i = 0; i < fsm->state.nconsumers; i++)
        fn(fsm->state.consumers[i]->key.node, arg);
}

size_t qq_fsm_consumers(const struct qq_fsm *fsm)
{
    if (fsm->state.single_active)
        return active_consumer(&fsm->state) ? 1 : 0;
    size_t n = 0;
    for (size_t i = 0; i < fsm->state.nconsumers; i++)
        n += !fsm->state.consumers[i]->detached;
    return n;
}

size_t qq_fsm_ready(const struct qq_fsm *fsm)
{
    return fsm->state.returned.count + fsm->state.requeued.count + (size_t)(fsm->state.next_id - fsm->state.next_new);
}

