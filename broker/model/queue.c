/* broker/model/queue.c: a queue as RabbitMQ runs it: ready messages by priority level, FIFO
 * within a level, requeued messages back in their original place (a classic queue) or at the
 * back of the queue (a quorum queue: queue_kind); TTL and length limits applied
 * at the head; consumers served round-robin within the highest consumer priority that has
 * credit. Parsing of the declare arguments and the kinds of queue live in queue_settings.c. */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "queue_ring.h"
#include "spec.h"
#include "table.h"

_Static_assert(sizeof(struct queue_entry) <= 32, "an entry stays four words: the age stamp uses padding");

#define NO_INDEX SIZE_MAX
#define NO_SEQ UINT64_MAX

/* One priority level. Invariant: every entry in `returned` is older (lower seq) than every
 * entry in `fresh`, because a message is only ever delivered from the head, so the head of the
 * level is returned's front when it has one. That keeps publish and delivery O(1) and a
 * requeue a sorted insert into the (usually small) returned ring. A quorum queue (queue_kind)
 * orders by (re-)entry instead: a requeue appends to `fresh`, a return of a closed channel's
 * messages to `returned`, so both rings are in the order entries came, not by seq. */
struct queue_level {
    struct queue_ring returned; /* delivered before and requeued, by seq */
    struct queue_ring fresh;    /* never delivered, in publish order */
};

struct queue_consumer {
    void *consumer;
    const struct consumer_ops *ops;
    uint64_t serial;      /* order of addition */
    uint64_t turn;        /* place in its priority's round-robin: the smallest is next */
    bool blocked;         /* found without credit when its turn came: see pick_consumer */
    size_t group_end;     /* one past the last consumer of this priority */
    int32_t priority;
    uint32_t walk_mark;   /* queue_for_each_consumer's visit mark */
    bool exclusive;
    bool no_ack;
};

struct queue {
    uint32_t refs;
    bool deleted;
    bool dispatching;       /* guards queue_dispatch against re-entry */
    bool exclusive_consumer;
    bool elsewhere;         /* queue_set_elsewhere */
    struct queue_settings settings;
    struct queue_hooks hooks;
    void *owner;

    struct queue_level *levels; /* settings.max_priority + 1 */
    size_t top_level;           /* no level above it holds entries */
    uint64_t next_seq;
    size_t ready_count;     /* in memory; the tail is counted apart */
    uint64_t ready_bytes;
    uint64_t tail_count;    /* paging (queue.h): ready messages on disk only, all after those */
    uint64_t tail_bytes;    /* their stored size */
    uint64_t tail_after;    /* the tail is the stored entries with message ids above this */
    bool tail_wait;         /* the pager has no more to read until it calls queue_page_wake */
    bool publish_blocked;   /* reject_over_limit (queue_kind): publishes refused until below 80% */
    bool paging_in;
    size_t unacked_count;
    size_t fetched_count;   /* of those, handed out by queue_get (basic.get in ack mode) */
    uint64_t last_used;
    uint64_t now_ms;        /* latest loop time given to the queue: never below an entry's stamp */
    uint64_t enqueued_sum;  /* sum of the in-memory ready entries' enqueue times (loop ms) */
    struct stats_queue stats;
    struct stats_queue_series series;

    /* Sorted by priority (highest first), then order of addition. */
    struct queue_consumer *consumers;
    size_t consumer_count;
    size_t consumer_capacity;
    uint64_t next_turn;     /* the last turn given: to a consumer added, served or unblocked */
    size_t blocked_count;   /* consumers with blocked set */
    size_t active;          /* single active consumer: its index, or NO_INDEX */
    uint64_t next_serial;
    uint32_t walk_mark;

    struct proto_bytes name;
    struct proto_bytes arguments;
    uint8_t *effective;        /* queue_apply_arguments' copy (NULL when empty) */
    uint32_t effective_len;
    bool has_effective;        /* queue_apply_arguments ran: else the declare arguments rule */
    struct proto_bytes dead_letter_exchange;
    struct proto_bytes dead_letter_routing_key;
    bool has_dead_letter_routing_key;
    uint8_t storage[]; /* name, then arguments */
};

/* ---- ready messages ------------------------------------------------------------------- */

static size_t level_of(const struct queue *q, const struct message *msg)
{
    return msg->priority < q->settings.max_priority ? msg->priority : q->settings.max_priority;
}

/* The ring holding the level's head, or NULL when the level is empty. */
static struct queue_ring *level_head(struct queue_level *level)
{
    if (queue_ring_count(&level->returned))
        return &level->returned;
    return queue_ring_count(&level->fresh) ? &level->fresh : NULL;
}

static bool pageable(const struct queue *q)
{
    return q->hooks.pager && q->hooks.pager->ram_messages > 0 && q->settings.durable &&
           q->settings.max_priority == 0 && q->settings.max_length_bytes < 0;
}

/* True when a pageable queue holds what it may in memory, before a message of body bytes joins:
 * ram_messages messages, or ram_bytes of bodies (but always at least one message). */
static bool ram_full(const struct queue *q, uint64_t body)
{
    const struct queue_pager *p = q->hooks.pager;
    return q->ready_count >= p->ram_messages ||
           (p->ram_bytes && q->ready_count > 0 && q->ready_bytes + body > p->ram_bytes);
}

/* Reads the tail back when memory holds half of what it may (all of it for a queue that is not
 * pageable but got a tail from recovery). */
static void refill(struct queue *q)
{
    if (q->tail_count == 0 || q->tail_wait || q->paging_in || q->deleted)
        return;
    uint64_t want = q->tail_count;
    if (pageable(q)) {
        const struct queue_pager *p = q->hooks.pager;
        uint32_t ram = p->ram_messages;
        if (q->ready_count > ram / 2 || (p->ram_bytes && q->ready_bytes > p->ram_bytes / 2))
            return;
        if (want > ram - q->ready_count)
            want = ram - q->ready_count;
        if (p->ram_bytes) { /* as many as fit by the tail's average stored size, one at least */
            uint64_t average = q->tail_bytes / q->tail_count;
            uint64_t fit = (p->ram_bytes - q->ready_bytes) / (average ? average : 1);
            if (want > fit)
                want = fit ? fit : 1;
        }
    }
    q->paging_in = true;
    bool complete = false;
    size_t got = q->hooks.pager->page_in(q->hooks.pager->ctx, q, q->tail_after, (size_t)want, &complete);
    q->paging_in = false;
    if (got < want && q->tail_count > 0) {
        if (complete) { /* entries that never reached the disk (a failed write): gone */
            q->tail_count = 0;
            q->tail_bytes = 0;
        } else {
            q->tail_wait = true;
        }
    }
}

/* The ring holding the next message to deliver, or NULL when nothing is ready. */
static struct queue_ring *head_ring(struct queue *q)
{
    if (q->tail_count)
        refill(q);
    if (q->ready_count == 0)
        return NULL;
    for (;;) {
        struct queue_ring *ring = level_head(&q->levels[q->top_level]);
        if (ring)
            return ring;
        q->top_level--; /* ready_count > 0 guarantees a non-empty level below */
    }
}

static const struct queue_entry *head_entry(struct queue *q)
{
    struct queue_ring *ring = head_ring(q);
    return ring ? queue_ring_front(ring) : NULL;
}

/* Loop time only moves forward; every entry's stamp is at or before q->now_ms. */
static void queue_clock(struct queue *q, uint64_t now_ms)
{
    if (now_ms > q->now_ms)
        q->now_ms = now_ms;
}

/* The full enqueue time of an entry from its 32-bit stamp, relative to q->now_ms. */
static uint64_t enqueued_at(const struct queue *q, const struct queue_entry *entry)
{
    uint64_t age = (uint32_t)((uint32_t)q->now_ms - entry->enqueued_ms);
    return age <= q->now_ms ? q->now_ms - age : 0;
}

static void account_added(struct queue *q, const struct queue_entry *entry, size_t level)
{
    q->enqueued_sum += enqueued_at(q, entry);
    q->ready_count++;
    q->ready_bytes += entry->msg->body_size;
    if (level > q->top_level)
        q->top_level = level;
}

/* rabbit_fifo's low limit: at most 80% of each limit (rounded down) ready again. */
static bool below_low_limit(const struct queue *q)
{
    const struct queue_settings *s = &q->settings;
    uint64_t ready = q->ready_count + q->tail_count;
    return (s->max_length < 0 || ready <= (uint64_t)(s->max_length / 10 * 8 + s->max_length % 10 * 8 / 10)) &&
           (s->max_length_bytes < 0 ||
            q->ready_bytes <= (uint64_t)(s->max_length_bytes / 10 * 8 + s->max_length_bytes % 10 * 8 / 10));
}

/* Takes the head entry out of the ready set; the caller now holds its reference. */
static bool take_head(struct queue *q, struct queue_entry *out)
{
    struct queue_ring *ring = head_ring(q);
    if (!ring)
        return false;
    queue_ring_pop_front(ring, out);
    q->enqueued_sum -= enqueued_at(q, out);
    q->ready_count--;
    q->ready_bytes -= out->msg->body_size;
    if (q->publish_blocked && below_low_limit(q))
        q->publish_blocked = false; /* rabbit_fifo tells its publishers "go" at once */
    return true;
}

/* Transient messages are stored only when they entered a tail; their later events follow. */
static void persist(struct queue *q, struct message *msg, enum queue_event event)
{
    if (q->hooks.persist && q->settings.durable && !q->deleted &&
        (message_is_persistent(msg) || msg->stored || queue_kind_of(q->settings.type)->persists_all))
        q->hooks.persist(q->hooks.ctx, q, msg, event);
}

/* Hands a message that leaves unacknowledged to the hook, then drops the queue's reference.
 * The entry is already out of the queue, so the hook may call back into it. */
static void drop_message(struct queue *q, struct message *msg, enum queue_drop_reason reason)
{
    if (reason == QUEUE_DROP_EXPIRED)
        q->stats.drop_expired++;
    else if (reason == QUEUE_DROP_MAXLEN)
        q->stats.drop_maxlen++;
    else /* rejected, or returned past x-delivery-limit */
        q->stats.drop_rejected++;
    persist(q, msg, QUEUE_EVENT_REMOVED);
    if (q->hooks.dropped)
        q->hooks.dropped(q->hooks.ctx, q, msg, reason);
    message_release(msg);
}

static bool over_limit(const struct queue *q)
{
    const struct queue_settings *s = &q->settings;
    return (s->max_length >= 0 && q->ready_count + q->tail_count > (uint64_t)s->max_length) ||
           (s->max_length_bytes >= 0 && q->ready_bytes > (uint64_t)s->max_length_bytes);
}

/* x-overflow drop-head: drops head messages while over a limit, stopping at the message with
 * seq `keep` (one just published: RabbitMQ would still hand it to a waiting consumer, so it
 * is judged at the end of the next dispatch). */
static void drop_over_limit(struct queue *q, uint64_t keep)
{
    if (q->settings.overflow_reject)
        return;
    while (over_limit(q)) {
        const struct queue_entry *head = head_entry(q);
        if (!head || head->seq == keep) /* !head: the tail is not readable yet */
            return;
        struct queue_entry entry;
        take_head(q, &entry);
        drop_message(q, entry.msg, QUEUE_DROP_MAXLEN);
    }
}

/* Drops head messages whose deadline has come (deadline <= now). As in RabbitMQ, only the
 * head is examined: a later message with an earlier deadline waits for its turn. */
static void drop_expired(struct queue *q, uint64_t now_ms)
{
    const struct queue_entry *head;
    while ((head = head_entry(q)) != NULL && head->expires_at <= now_ms) {
        struct queue_entry entry;
        take_head(q, &entry);
        drop_message(q, entry.msg, QUEUE_DROP_EXPIRED);
    }
}

/* Releases every ready message without the hook and forgets the tail. Returns how many. */
static size_t release_ready(struct queue *q)
{
    size_t count = q->ready_count + (size_t)q->tail_count;
    q->tail_count = q->tail_bytes = 0;
    q->tail_wait = false;
    for (size_t i = 0; i <= q->settings.max_priority; i++) {
        struct queue_ring *rings[] = {&q->levels[i].returned, &q->levels[i].fresh};
        for (size_t r = 0; r < 2; r++) {
            for (size_t k = 0; k < queue_ring_count(rings[r]); k++)
                message_release(queue_ring_at(rings[r], k)->msg);
            queue_ring_free(rings[r]);
        }
    }
    q->ready_count = 0;
    q->ready_bytes = 0;
    q->enqueued_sum = 0;
    q->top_level = 0;
    q->publish_blocked = false;
    return count;
}

/* From now_ms, the time the message entered the queue. */
static uint64_t deadline(const struct queue *q, const struct message *msg, uint64_t now_ms)
{
    uint64_t ttl = MESSAGE_NO_EXPIRY;
    if (q->settings.message_ttl_ms >= 0)
        ttl = (uint64_t)q->settings.message_ttl_ms;
    if (msg->has_expiration && msg->expiration_ms < ttl)
        ttl = msg->expiration_ms;
    if (ttl == MESSAGE_NO_EXPIRY || ttl >= MESSAGE_NO_EXPIRY - now_ms)
        return MESSAGE_NO_EXPIRY;
    return now_ms + ttl;
}

/* ---- life cycle ----------------------------------------------------------------------- */

/* Points the dead-letter views into args, which the queue owns. */
static void find_dead_letter(struct queue *q, struct proto_bytes args)
{
    struct table_value value;
    q->settings.has_dlx = table_find(args, "x-dead-letter-exchange", &value) == 1 && value.type == TABLE_LONGSTR;
    q->dead_letter_exchange = q->settings.has_dlx ? value.v.bytes : (struct proto_bytes){NULL, 0};
    q->has_dead_letter_routing_key = table_find(args, "x-dead-letter-routing-key", &value) == 1 &&
                                     value.type == TABLE_LONGSTR;
    q->dead_letter_routing_key = q->has_dead_letter_routing_key ? value.v.bytes : (struct proto_bytes){NULL, 0};
}

struct queue *queue_create(struct proto_bytes name, const struct queue_settings *settings,
                           struct proto_bytes arguments, const struct queue_hooks *hooks)
{
    struct queue *q = calloc(1, sizeof(*q) + name.len + arguments.len);
    if (!q)
        return NULL;
    q->levels = calloc((size_t)settings->max_priority + 1, sizeof(*q->levels));
    if (!q->levels) {
        free(q);
        return NULL;
    }
    q->refs = 1;
    q->settings = *settings;
    if (hooks)
        q->hooks = *hooks;
    q->active = NO_INDEX;
    if (name.len)
        memcpy(q->storage, name.ptr, name.len);
    q->name = (struct proto_bytes){q->storage, name.len};
    if (arguments.len)
        memcpy(q->storage + name.len, arguments.ptr, arguments.len);
    q->arguments = (struct proto_bytes){q->storage + name.len, arguments.len};
    find_dead_letter(q, q->arguments);
    return q;
}

int queue_apply_arguments(struct queue *queue, struct proto_bytes effective, struct reply_error *err)
{
    struct queue_settings parsed;
    if (queue_settings_parse(queue->name, effective, &parsed, err) != 0)
        return -1;
    uint8_t *copy = effective.len ? malloc(effective.len) : NULL;
    if (effective.len && !copy)
        return reply_fail(err, SPEC_INTERNAL_ERROR, 0, "out of memory");
    if (effective.len)
        memcpy(copy, effective.ptr, effective.len);
    free(queue->effective);
    queue->effective = copy;
    queue->effective_len = effective.len;
    queue->has_effective = true;
    struct queue_settings *s = &queue->settings;
    s->message_ttl_ms = parsed.message_ttl_ms;
    s->expires_ms = parsed.expires_ms;
    s->max_length = parsed.max_length;
    s->max_length_bytes = parsed.max_length_bytes;
    s->overflow_reject = parsed.overflow_reject;
    s->overflow_reject_dlx = parsed.overflow_reject_dlx;
    s->has_delivery_limit = parsed.has_delivery_limit;
    s->delivery_limit = parsed.delivery_limit;
    find_dead_letter(queue, queue_effective_arguments(queue));
    if (!queue->deleted && over_limit(queue)) {
        queue_retain(queue);
        drop_over_limit(queue, NO_SEQ);
        queue_release(queue);
    }
    return 0;
}

struct proto_bytes queue_effective_arguments(const struct queue *queue)
{
    if (!queue->has_effective)
        return queue->arguments;
    return (struct proto_bytes){queue->effective, queue->effective_len};
}

void queue_retain(struct queue *queue) { queue->refs++; }

void queue_release(struct queue *queue)
{
    if (!queue || --queue->refs > 0)
        return;
    release_ready(queue);
    free(queue->effective);
    stats_history_free(&queue->series.history);
    free(queue->levels);
    free(queue->consumers);
    free(queue);
}

size_t queue_delete(struct queue *queue)
{
    if (queue->deleted)
        return 0;
    queue->deleted = true;
    size_t count = release_ready(queue);
    free(queue->consumers);
    queue->consumers = NULL;
    queue->consumer_count = queue->consumer_capacity = 0;
    queue->exclusive_consumer = false;
    queue->active = NO_INDEX;
    queue->blocked_count = 0;
    return count;
}

bool queue_is_deleted(const struct queue *queue) { return queue->deleted; }
struct proto_bytes queue_name(const struct queue *queue) { return queue->name; }
const struct queue_settings *queue_settings(const struct queue *queue) { return &queue->settings; }
struct proto_bytes queue_arguments(const struct queue *queue) { return queue->arguments; }

bool queue_dead_letter_exchange(const struct queue *queue, struct proto_bytes *out)
{
    if (!queue->settings.has_dlx)
        return false;
    *out = queue->dead_letter_exchange;
    return true;
}

bool queue_dead_letter_routing_key(const struct queue *queue, struct proto_bytes *out)
{
    if (!queue->has_dead_letter_routing_key)
        return false;
    *out = queue->dead_letter_routing_key;
    return true;
}

const struct queue_kind *queue_kind(const struct queue *queue) { return queue_kind_of(queue->settings.type); }

bool queue_delivery_count_header(const struct queue *queue, const struct queue_entry *entry, bool get,
                                 int64_t *count)
{
    if (!queue_kind(queue)->delivery_count_header || (!get && entry->delivery_count == 0))
        return false;
    *count = entry->delivery_count;
    return true;
}

void queue_set_owner(struct queue *queue, void *owner) { queue->owner = owner; }
void *queue_owner(const struct queue *queue) { return queue->owner; }

/* ---- publish, dispatch, get, settle --------------------------------------------------- */

/* Appends msg to the tail: written to the store, not kept. */
static int page_out(struct queue *q, struct message *msg)
{
    if (q->hooks.persist)
        q->hooks.persist(q->hooks.ctx, q, msg, QUEUE_EVENT_ENQUEUED);
    if (!msg->stored)
        return -1; /* the store could not take it (out of memory) */
    q->stats.publish++;
    if (q->tail_count++ == 0)
        q->tail_after = msg->id - 1; /* ids grow in log order: everything in memory is older */
    q->tail_bytes += message_serialize(msg, NULL, 0);
    if (over_limit(q)) {
        queue_retain(q);
        drop_over_limit(q, NO_SEQ);
        queue_release(q);
    }
    return 0;
}

int queue_publish(struct queue *queue, struct message *msg, uint64_t now_ms)
{
    if (queue->deleted)
        return 0;
    queue_clock(queue, now_ms);
    const struct queue_settings *s = &queue->settings;
    bool refuse;
    if (!s->overflow_reject)
        refuse = false;
    else if (queue_kind(queue)->reject_over_limit) /* a policy may have changed the limits */
        refuse = queue->publish_blocked = queue->publish_blocked && !below_low_limit(queue);
    else
        refuse = (s->max_length >= 0 && queue->ready_count + queue->tail_count + 1 > (uint64_t)s->max_length) ||
                 (s->max_length_bytes >= 0 && queue->ready_bytes + msg->body_size > (uint64_t)s->max_length_bytes);
    if (refuse) {
        if (s->overflow_reject_dlx && queue->hooks.dropped) {
            queue_retain(queue);
            queue->hooks.dropped(queue->hooks.ctx, queue, msg, QUEUE_DROP_MAXLEN);
            queue_release(queue);
        }
        queue->stats.drop_maxlen++;
        return -1;
    }
    if (queue->hooks.pager &&
        (queue->tail_count > 0 || (pageable(queue) && ram_full(queue, msg->body_size)))) {
        int rc = page_out(queue, msg);
        if (rc == 0 && s->overflow_reject && queue_kind(queue)->reject_over_limit && over_limit(queue))
            queue->publish_blocked = true;
        return rc;
    }
    struct queue_entry entry = {
        .msg = msg,
        .seq = queue->next_seq++,
        .expires_at = deadline(queue, msg, now_ms),
        .delivery_count = 0,
        .enqueued_ms = (uint32_t)now_ms,
    };
    size_t level = level_of(queue, msg);
    if (queue_ring_push_back(&queue->levels[level].fresh, &entry) != 0)
        return -1;
    queue->stats.publish++;
    message_retain(msg);
    account_added(queue, &entry, level);
    persist(queue, msg, QUEUE_EVENT_ENQUEUED);
    if (over_limit(queue)) {
        if (s->overflow_reject && queue_kind(queue)->reject_over_limit)
            queue->publish_blocked = true;
        queue_retain(queue);
        drop_over_limit(queue, entry.seq);
        queue_release(queue);
    }
    return 0;
}

/* Consumers are served as RabbitMQ's rabbit_queue_consumers serves them: a round-robin queue
 * per priority where a consumer added, or just served, goes to the back (its turn is the
 * largest), and one found without credit when its turn came is set aside (blocked) until it
 * has credit again, when it too goes to the back. */
static void give_turn(struct queue *q, struct queue_consumer *c)
{
    if (c->blocked) {
        c->blocked = false;
        q->blocked_count--;
    }
    c->turn = ++q->next_turn;
}

/* Blocked consumers that have credit again go to the back, in array order. Called as each
 * dispatch starts: one follows every ack, so the order of the acks is the order here. */
static void unblock_consumers(struct queue *q)
{
    for (size_t i = 0; i < q->consumer_count && q->blocked_count > 0; i++) {
        struct queue_consumer *c = &q->consumers[i];
        if (c->blocked && c->ops->has_credit(c->consumer, NULL))
            give_turn(q, c);
    }
}

/* Index of the consumer that should take msg next, or NO_INDEX: within the highest priority
 * group that has a consumer with credit, the one with the smallest turn; those without credit
 * whose turn came before it are blocked. O(group size). */
static size_t pick_consumer(struct queue *q, const struct message *msg)
{
    if (q->settings.single_active_consumer) {
        if (q->active == NO_INDEX)
            return NO_INDEX;
        const struct queue_consumer *c = &q->consumers[q->active];
        return c->ops->has_credit(c->consumer, msg) ? q->active : NO_INDEX;
    }
    for (size_t start = 0, end; start < q->consumer_count; start = end) {
        end = q->consumers[start].group_end;
        size_t best = NO_INDEX;
        for (size_t i = start; i < end; i++) {
            const struct queue_consumer *c = &q->consumers[i];
            if (!c->blocked && (best == NO_INDEX || c->turn < q->consumers[best].turn) &&
                c->ops->has_credit(c->consumer, msg))
                best = i;
        }
        for (size_t i = start; i < end; i++) {
            struct queue_consumer *c = &q->consumers[i];
            if (!c->blocked && i != best && (best == NO_INDEX || c->turn < q->consumers[best].turn) &&
                !c->ops->has_credit(c->consumer, msg)) {
                c->blocked = true;
                q->blocked_count++;
            }
        }
        if (best != NO_INDEX)
            return best;
    }
    return NO_INDEX;
}

void queue_dispatch(struct queue *queue, uint64_t now_ms)
{
    if (queue->dispatching || queue->deleted)
        return;
    queue->dispatching = true;
    queue_clock(queue, now_ms);
    queue_retain(queue);
    /* Credit comes back between dispatches (acks, flow, room to write), never during one. */
    unblock_consumers(queue);
    while (!queue->deleted) {
        const struct queue_entry *head = head_entry(queue);
        if (!head)
            break;
        /* A fresh message whose deadline is exactly now may still go to a consumer that can
         * take it at once (x-message-ttl 0); anything else at or past its deadline is dead. */
        if (head->expires_at < now_ms || (head->expires_at == now_ms && head->delivery_count > 0)) {
            struct queue_entry entry;
            take_head(queue, &entry);
            drop_message(queue, entry.msg, QUEUE_DROP_EXPIRED);
            continue;
        }
        size_t index = pick_consumer(queue, head->msg);
        if (index == NO_INDEX)
            break;
        struct queue_consumer target = queue->consumers[index];
        struct queue_entry entry;
        take_head(queue, &entry);
        give_turn(queue, &queue->consumers[index]);
        if (!target.no_ack)
            queue->unacked_count++;
        if (target.no_ack)
            queue->stats.deliver_no_ack++;
        else
            queue->stats.deliver++;
        if (entry.delivery_count > 0)
            queue->stats.redeliver++;
        persist(queue, entry.msg, target.no_ack ? QUEUE_EVENT_REMOVED : QUEUE_EVENT_DELIVERED);
        target.ops->deliver(target.consumer, queue, &entry, target.no_ack);
    }
    if (!queue->deleted) {
        /* What no consumer could take now: TTL 0 messages expire, x-max-length 0 drops. */
        drop_expired(queue, now_ms);
        drop_over_limit(queue, NO_SEQ);
        /* Requeues can take a queue over its limits (limit_after_dispatch): with reject-publish,
         * rabbit_fifo then refuses publishes as if one had taken it over. */
        if (queue->settings.overflow_reject && queue_kind(queue)->reject_over_limit && over_limit(queue))
            queue->publish_blocked = true;
    }
    queue->dispatching = false;
    queue_release(queue);
}

bool queue_get(struct queue *queue, uint64_t now_ms, bool no_ack, struct queue_entry *entry)
{
    if (queue->deleted)
        return false;
    queue->last_used = now_ms;
    queue_clock(queue, now_ms);
    queue_retain(queue);
    drop_expired(queue, now_ms);
    drop_over_limit(queue, NO_SEQ);
    bool found = take_head(queue, entry);
    /* RabbitMQ's fetch drops the expired heads behind the message too, before get-ok counts
     * what is left (a TTL-0 message behind it is not in message_count). */
    if (found)
        drop_expired(queue, now_ms);
    if (!found)
        queue->stats.get_empty++;
    else if (no_ack)
        queue->stats.get_no_ack++;
    else
        queue->stats.get++;
    if (found && entry->delivery_count > 0)
        queue->stats.redeliver++;
    if (found && !no_ack) {
        queue->unacked_count++;
        queue->fetched_count++;
    }
    if (found)
        persist(queue, entry->msg, no_ack ? QUEUE_EVENT_REMOVED : QUEUE_EVENT_DELIVERED);
    queue_release(queue);
    return found;
}

void queue_settle(struct queue *queue, const struct queue_entry *entry, enum queue_settle_mode mode)
{
    if (queue->unacked_count > 0)
        queue->unacked_count--;
    if (mode == QUEUE_ACK)
        queue->stats.ack++;
    if (queue->deleted || mode == QUEUE_ACK) {
        if (mode == QUEUE_ACK)
            persist(queue, entry->msg, QUEUE_EVENT_REMOVED);
        message_release(entry->msg);
        return;
    }
    queue_retain(queue);
    enum queue_drop_reason reason = QUEUE_DROP_REJECTED;
    if (mode == QUEUE_REQUEUE || mode == QUEUE_RETURN) {
        struct queue_entry back = *entry;
        if (back.delivery_count < UINT32_MAX)
            back.delivery_count++;
        size_t level = level_of(queue, back.msg);
        struct queue_level *at = &queue->levels[level];
        const struct queue_kind *kind = queue_kind(queue);
        bool to_back = mode == QUEUE_REQUEUE && kind->returns_to_back;
        bool to_front = mode == QUEUE_RETURN && kind->lost_returns_first;
        if (to_back || to_front) /* it enters the queue again: its age (queue_message_age) starts over */
            back.enqueued_ms = (uint32_t)queue->now_ms;
        /* rabbit_fifo counts every return (nack, reject, recover, a closed channel's messages)
         * and drops a message whose count passes the limit. */
        int rc = 0;
        if (queue->settings.has_delivery_limit && back.delivery_count > (uint64_t)queue->settings.delivery_limit)
            reason = QUEUE_DROP_DELIVERY_LIMIT;
        else if (to_back)
            rc = queue_ring_push_back(&at->fresh, &back);
        else if (to_front) /* `returned` then holds only these, in the order they came */
            rc = queue_ring_push_back(&at->returned, &back);
        else
            rc = queue_ring_insert_sorted(&at->returned, &back);
        if (reason != QUEUE_DROP_DELIVERY_LIMIT && rc == 0) {
            account_added(queue, &back, level);
            if (!kind->limit_after_dispatch)
                drop_over_limit(queue, NO_SEQ);
            queue_release(queue);
            return;
        }
    }
    drop_message(queue, entry->msg, reason);
    queue_release(queue);
}

void queue_settle_fetched(struct queue *queue, const struct queue_entry *entry, enum queue_settle_mode mode)
{
    if (queue->fetched_count > 0)
        queue->fetched_count--;
    queue_settle(queue, entry, mode);
}

static void persist_removed_ready(struct queue *q)
{
    for (size_t i = 0; i <= q->settings.max_priority; i++) {
        struct queue_ring *rings[] = {&q->levels[i].returned, &q->levels[i].fresh};
        for (size_t r = 0; r < 2; r++)
            for (size_t k = 0; k < queue_ring_count(rings[r]); k++)
                persist(q, queue_ring_at(rings[r], k)->msg, QUEUE_EVENT_REMOVED);
    }
}

size_t queue_purge(struct queue *queue)
{
    if (queue->deleted)
        return 0;
    persist_removed_ready(queue);
    if (queue->tail_count > 0)
        queue->hooks.pager->page_purge(queue->hooks.pager->ctx, queue, queue->tail_after);
    return release_ready(queue);
}

/* ---- paging --------------------------------------------------------------------------- */

void queue_page_set_tail(struct queue *queue, uint64_t count, uint64_t stored_bytes)
{
    if (!queue->hooks.pager)
        return;
    queue->tail_count = count;
    queue->tail_bytes = stored_bytes;
    queue->tail_after = 0;
    if (!pageable(queue))
        refill(queue); /* it all comes back into memory at once */
}

void queue_page_in(struct queue *queue, uint64_t msg_id, uint64_t stored_bytes, struct message *msg, bool delivered,
                   uint64_t now_ms, uint64_t age_ms)
{
    if (msg_id > queue->tail_after)
        queue->tail_after = msg_id;
    if (queue->tail_count > 0)
        queue->tail_count--;
    queue->tail_bytes = queue->tail_count == 0 || stored_bytes > queue->tail_bytes ? 0 : queue->tail_bytes - stored_bytes;
    if (!msg)
        return;
    queue_clock(queue, now_ms);
    uint64_t published = age_ms < now_ms ? now_ms - age_ms : 0;
    struct queue_entry entry = {
        .msg = msg,
        .seq = queue->next_seq++,
        .expires_at = deadline(queue, msg, published),
        .delivery_count = delivered ? 1 : 0,
        .enqueued_ms = (uint32_t)published,
    };
    size_t level = level_of(queue, msg);
    if (queue_ring_push_back(&queue->levels[level].fresh, &entry) != 0)
        return; /* out of memory: it stays on disk and comes back after a restart */
    message_retain(msg);
    account_added(queue, &entry, level);
}

void queue_page_wake(struct queue *queue) { queue->tail_wait = false; }
uint64_t queue_paged_count(const struct queue *queue) { return queue->tail_count; }

uint64_t queue_expire(struct queue *queue, uint64_t now_ms)
{
    if (queue->deleted)
        return MESSAGE_NO_EXPIRY;
    queue_clock(queue, now_ms);
    queue_retain(queue);
    drop_expired(queue, now_ms);
    drop_over_limit(queue, NO_SEQ);
    const struct queue_entry *head = head_entry(queue);
    uint64_t next = head ? head->expires_at : MESSAGE_NO_EXPIRY;
    queue_release(queue);
    return next;
}

/* ---- consumers ------------------------------------------------------------------------ */

/* Recomputes each consumer's group end after the array changed. O(consumers). */
static void regroup(struct queue *q)
{
    size_t end = q->consumer_count;
    for (size_t i = q->consumer_count; i-- > 0;) {
        if (i + 1 < q->consumer_count && q->consumers[i].priority != q->consumers[i + 1].priority)
            end = i + 1;
        q->consumers[i].group_end = end;
    }
}

static int exclusive_use(struct queue *q, struct reply_error *err)
{
    return reply_fail(err, SPEC_ACCESS_REFUSED, SPEC_BASIC_CONSUME, "queue '%.*s' in vhost '/' in exclusive use",
                      (int)q->name.len, (const char *)q->name.ptr);
}

int queue_add_consumer(struct queue *queue, void *consumer, const struct consumer_ops *ops,
                       int32_t priority, bool exclusive, bool no_ack, struct reply_error *err)
{
    if (queue->deleted)
        return reply_fail(err, SPEC_NOT_FOUND, SPEC_BASIC_CONSUME, "no queue '%.*s' in vhost '/'",
                          (int)queue->name.len, (const char *)queue->name.ptr);
    /* RabbitMQ 3.10's quorum queues take an exclusive consume as any other (the spec would
     * refuse it beside other consumers): followed, as clients written for RabbitMQ expect. */
    if (!queue_kind(queue)->exclusive_consumers)
        exclusive = false;
    /* RabbitMQ: with single active consumer an exclusive consume is always refused. */
    if (exclusive && queue->settings.single_active_consumer)
        return exclusive_use(queue, err);
    if (queue->exclusive_consumer || (exclusive && queue->consumer_count > 0))
        return exclusive_use(queue, err);
    if (queue->consumer_count == queue->consumer_capacity) {
        size_t capacity = queue->consumer_capacity ? queue->consumer_capacity * 2 : 4;
        struct queue_consumer *grown = realloc(queue->consumers, capacity * sizeof(*grown));
        if (!grown)
            return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_CONSUME, "out of memory");
        queue->consumers = grown;
        queue->consumer_capacity = capacity;
    }
    size_t at = queue->consumer_count;
    while (at > 0 && queue->consumers[at - 1].priority < priority)
        at--;
    memmove(&queue->consumers[at + 1], &queue->consumers[at],
            (queue->consumer_count - at) * sizeof(*queue->consumers));
    queue->consumers[at] = (struct queue_consumer){
        .consumer = consumer,
        .ops = ops,
        .serial = queue->next_serial++,
        .turn = ++queue->next_turn, /* the back of the round-robin */
        .priority = priority,
        .exclusive = exclusive,
        .no_ack = no_ack,
    };
    queue->consumer_count++;
    if (queue->active != NO_INDEX && queue->active >= at)
        queue->active++;
    if (queue->active == NO_INDEX)
        queue->active = at; /* the first consumer added is the single active one */
    queue->exclusive_consumer = queue->exclusive_consumer || exclusive;
    regroup(queue);
    return 0;
}

void queue_remove_consumer(struct queue *queue, void *consumer)
{
    size_t at = 0;
    while (at < queue->consumer_count && queue->consumers[at].consumer != consumer)
        at++;
    if (at == queue->consumer_count)
        return;
    if (queue->consumers[at].exclusive)
        queue->exclusive_consumer = false;
    if (queue->consumers[at].blocked)
        queue->blocked_count--;
    queue->consumer_count--;
    memmove(&queue->consumers[at], &queue->consumers[at + 1],
            (queue->consumer_count - at) * sizeof(*queue->consumers));
    if (queue->active == at)
        queue->active = queue->consumer_count ? 0 : NO_INDEX; /* highest priority, oldest: RabbitMQ's pick */
    else if (queue->active != NO_INDEX && queue->active > at)
        queue->active--;
    regroup(queue);
    if (queue->consumer_count == 0 && queue->settings.auto_delete && !queue->deleted && queue->hooks.unused)
        queue->hooks.unused(queue->hooks.ctx, queue); /* may free the queue: nothing after this */
}

size_t queue_consumer_count(const struct queue *queue)
{
    const struct queue_kind *kind = queue_kind(queue);
    size_t count = queue->consumer_count;
    if (queue->settings.single_active_consumer && !kind->waiting_counted)
        count = queue->active != NO_INDEX;
    return count + (kind->gets_are_consumers ? queue->fetched_count : 0);
}

/* Calls fn(consumer, arg), or each consumer's queue_deleted when fn is NULL. */
static void walk_consumers(struct queue *queue, void (*fn)(void *consumer, void *arg), void *arg)
{
    queue_retain(queue);
    uint32_t mark = ++queue->walk_mark;
    if (mark == 0)
        mark = queue->walk_mark = 1;
    /* fn may remove consumers, shifting the array: index i is re-examined after each call
     * and visited entries are recognised by their mark. */
    size_t i = 0;
    while (i < queue->consumer_count) {
        struct queue_consumer *c = &queue->consumers[i];
        if (c->walk_mark == mark) {
            i++;
            continue;
        }
        c->walk_mark = mark;
        if (fn)
            fn(c->consumer, arg);
        else if (c->ops->queue_deleted)
            c->ops->queue_deleted(c->consumer);
    }
    queue_release(queue);
}

void queue_for_each_consumer(struct queue *queue, void (*fn)(void *consumer, void *arg), void *arg)
{
    walk_consumers(queue, fn, arg);
}

void queue_cancel_consumers(struct queue *queue)
{
    walk_consumers(queue, NULL, NULL);
}

/* ---- statistics ----------------------------------------------------------------------- */

size_t queue_ready_count(const struct queue *queue) { return queue->ready_count + (size_t)queue->tail_count; }
size_t queue_unacked_count(const struct queue *queue) { return queue->unacked_count; }
uint64_t queue_ready_bytes(const struct queue *queue) { return queue->ready_bytes + queue->tail_bytes; }
uint64_t queue_memory_bytes(const struct queue *queue) { return queue->ready_bytes; }
uint64_t queue_last_used(const struct queue *queue) { return queue->last_used; }
void queue_touch(struct queue *queue, uint64_t now_ms) { queue->last_used = now_ms; }
void queue_set_elsewhere(struct queue *queue, bool elsewhere) { queue->elsewhere = elsewhere; }
bool queue_elsewhere(const struct queue *queue) { return queue->elsewhere; }

const struct stats_queue *queue_stats(const struct queue *queue) { return &queue->stats; }
struct stats_queue_series *queue_series(struct queue *queue) { return &queue->series; }

void queue_message_age(const struct queue *queue, uint64_t now_ms, uint64_t *oldest_ms, uint64_t *mean_ms)
{
    *oldest_ms = *mean_ms = 0;
    if (queue->ready_count == 0)
        return;
    uint64_t now = now_ms > queue->now_ms ? now_ms : queue->now_ms;
    /* Each ring's front is its oldest entry: fresh rings are in the order entries entered the
     * queue (a requeue to the back is stamped anew), returned rings by seq, and an entry
     * requeued to its place keeps its first stamp. */
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i <= queue->settings.max_priority; i++) {
        const struct queue_ring *rings[] = {&queue->levels[i].returned, &queue->levels[i].fresh};
        for (size_t r = 0; r < 2; r++) {
            const struct queue_entry *front = queue_ring_front(rings[r]);
            uint64_t at = front ? enqueued_at(queue, front) : UINT64_MAX;
            if (at < oldest)
                oldest = at;
        }
    }
    *oldest_ms = oldest <= now ? now - oldest : 0;
    uint64_t mean_at = queue->enqueued_sum / queue->ready_count;
    *mean_ms = mean_at <= now ? now - mean_at : 0;
}
