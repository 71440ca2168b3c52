/* broker/model/vhost_route.c: routing a message from an exchange to its queues (default
 * exchange, exchange-to-exchange bindings, alternate exchanges) and dead-lettering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "message.h"
#include "queue.h"
#include "router.h"
#include "spec.h"
#include "table.h"
#include "vhost_internal.h"

#define MAX_EXCHANGE_HOPS 64

/* Sender-selected distribution (RabbitMQ; not in the spec): the longstr elements of the CC
 * and BCC header arrays are routing keys too, for the exchange types that read keys. A
 * destination matched by several keys is in `out` once, so it gets the message once. Keys
 * longer than a shortstr are skipped: no binding key or queue name can equal one. */
static int route_sender_keys(struct vhost *vhost, const struct exchange *x, const struct message *msg,
                             struct proto_bytes headers, struct route_set *out)
{
    if (x->kind == ROUTER_FANOUT || x->kind == ROUTER_HEADERS)
        return 0;
    struct table_iter it;
    struct table_value v;
    table_iter_init(&it, msg->sender_keys);
    while (array_next(&it, &v) == 1) {
        if (v.type != TABLE_LONGSTR || v.v.bytes.len > ROUTER_MAX_KEY)
            continue;
        if (x->name_len == 0) {
            struct queue *q = vhost_find_queue(vhost, v.v.bytes);
            if (q && route_set_add(out, q) < 0)
                return -1;
        } else if (router_route(x->router, v.v.bytes, headers, out) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Routes through x into out; exchanges reached by e2e bindings are expanded breadth-first,
 * each at most once (vhost->visited), so binding cycles terminate. The message's headers are
 * decoded only when a headers exchange is on the path, whether first, reached by an e2e
 * binding or as an alternate exchange (so most publishes never decode them, and a headers
 * exchange behind a fanout still sees them, as in RabbitMQ). */
static int route_exchange(struct vhost *vhost, struct exchange *x, const struct message *msg,
                          struct route_set *out)
{
    struct proto_bytes headers = {NULL, 0};
    bool headers_decoded = false;
    if (x->name_len == 0) {
        struct queue *q = vhost_find_queue(vhost, msg->routing_key);
        if (q && route_set_add(out, q) < 0)
            return -1;
        return msg->sender_keys.len ? route_sender_keys(vhost, x, msg, headers, out) : 0;
    }
    route_set_clear(&vhost->visited);
    route_set_add(&vhost->visited, x);
    for (size_t i = 0; i < vhost->visited.count && i < MAX_EXCHANGE_HOPS; i++) {
        struct exchange *cur = vhost->visited.items[i];
        size_t before = out->count;
        route_set_clear(&vhost->scratch);
        if (cur->kind == ROUTER_HEADERS && !headers_decoded) {
            headers = message_headers(msg);
            headers_decoded = true;
        }
        if (router_route(cur->router, msg->routing_key, headers, &vhost->scratch) != 0)
            return -1;
        if (msg->sender_keys.len && route_sender_keys(vhost, cur, msg, headers, &vhost->scratch) != 0)
            return -1;
        bool routed_any = false;
        for (size_t j = 0; j < vhost->scratch.count; j++) {
            void *d = vhost->scratch.items[j];
            if (destination_is_exchange(d)) {
                route_set_add(&vhost->visited, destination_exchange(d));
                routed_any = true;
            } else if (route_set_add(out, d) < 0) {
                return -1;
            } else {
                routed_any = true;
            }
        }
        (void)before;
        if (!routed_any && cur->alternate.len) {
            struct exchange *ae = vhost_find_exchange(vhost, cur->alternate);
            if (ae && ae->name_len)
                route_set_add(&vhost->visited, ae);
        }
    }
    return 0;
}

/* The memo's exchange when it is still alive and named `name`, else a lookup by name that
 * refills the memo. */
static struct exchange *find_exchange_memo(struct vhost *vhost, struct vhost_route_memo *memo,
                                           struct proto_bytes name)
{
    uint64_t generation = router_destroyed_count();
    struct exchange *x = memo->exchange;
    if (x && memo->generation == generation && x->name_len == name.len &&
        memcmp(x->name, name.ptr, name.len) == 0)
        return x;
    x = vhost_find_exchange(vhost, name);
    memo->exchange = x;
    memo->generation = generation;
    return x;
}

int vhost_route(struct vhost *vhost, struct proto_bytes exchange, const struct message *msg,
                struct route_set *out, struct reply_error *err)
{
    struct vhost_route_memo memo = {0};
    return vhost_route_memo(vhost, &memo, exchange, msg, out, err);
}

/* The exchange a publish names, or NULL with 404 (missing) or 403 (internal) in err. */
static struct exchange *publish_exchange(struct vhost *vhost, struct vhost_route_memo *memo,
                                         struct proto_bytes exchange, struct reply_error *err)
{
    struct exchange *x = find_exchange_memo(vhost, memo, exchange);
    if (!x) {
        reply_fail(err, SPEC_NOT_FOUND, SPEC_BASIC_PUBLISH, "no exchange '%.*s' in vhost '%s'", (int)exchange.len,
                   (const char *)exchange.ptr, vhost->name);
        return NULL;
    }
    if (x->internal) {
        reply_fail(err, SPEC_ACCESS_REFUSED, SPEC_BASIC_PUBLISH, "cannot publish to internal exchange '%s' in vhost '%s'",
                   x->name, vhost->name);
        return NULL;
    }
    return x;
}

int vhost_publish_check(struct vhost *vhost, struct vhost_route_memo *memo, struct proto_bytes exchange,
                        struct reply_error *err)
{
    return publish_exchange(vhost, memo, exchange, err) ? 0 : -1;
}

int vhost_route_memo(struct vhost *vhost, struct vhost_route_memo *memo, struct proto_bytes exchange,
                     const struct message *msg, struct route_set *out, struct reply_error *err)
{
    route_set_clear(out);
    struct exchange *x = publish_exchange(vhost, memo, exchange, err);
    if (!x)
        return -1;
    if (route_exchange(vhost, x, msg, out) != 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_BASIC_PUBLISH, "out of memory while routing");
    /* Two increments on a struct routing just read (RabbitMQ counts publish_out per queue). */
    x->stats.publish_in++;
    x->stats.publish_out += out->count;
    return 0;
}

void vhost_route_unroutable(struct vhost_route_memo *memo, bool returned)
{
    struct exchange *x = memo->exchange;
    if (!x || memo->generation != router_destroyed_count())
        return;
    if (returned)
        x->stats.return_unroutable++;
    else
        x->stats.drop_unroutable++;
}

/* ---- dead-lettering ---- */

static const char *const reason_names[] = {"rejected", "expired", "maxlen", "delivery_limit"};

/* Seconds since the epoch: x-death's time is an AMQP timestamp, which clients read as a date
 * (the loop's clock is monotonic and would date every death to the boot of the machine). */
static uint64_t wall_s(const struct vhost *vhost)
{
    if (vhost->hooks.wall_ms)
        return vhost->hooks.wall_ms(vhost->hooks.ctx) / 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

/* Builds one x-death entry. count is the number of times this (queue, reason) happened;
 * a per-message expiration moves here as original-expiration. */
static void build_death(struct table_buf *entry, struct proto_bytes queue, const char *reason,
                        const struct message *msg, int64_t count, uint64_t now_s, struct proto_bytes expiration,
                        struct proto_bytes cc)
{
    struct table_value v = {.type = TABLE_INT64, .v.i64 = count};
    table_buf_put_field(entry, "count", 5, &v);
    table_buf_put_string(entry, "reason", proto_bytes_of(reason));
    table_buf_put_string(entry, "queue", queue);
    v = (struct table_value){.type = TABLE_TIMESTAMP, .v.u64 = now_s};
    table_buf_put_field(entry, "time", 4, &v);
    table_buf_put_string(entry, "exchange", msg->exchange);
    struct table_buf keys = {0};
    struct table_value k = {.type = TABLE_LONGSTR};
    k.v.bytes = msg->routing_key;
    table_buf_put_value(&keys, &k);
    /* RabbitMQ lists the CC keys after the publish's own (BCC ones are gone by now). */
    struct table_iter it;
    table_iter_init(&it, cc);
    while (array_next(&it, &k) == 1)
        if (k.type == TABLE_LONGSTR)
            table_buf_put_value(&keys, &k);
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){keys.data, (uint32_t)keys.len};
    table_buf_put_field(entry, "routing-keys", 12, &v);
    table_buf_free(&keys);
    if (expiration.ptr)
        table_buf_put_string(entry, "original-expiration", expiration);
}

/* New headers: the old ones with x-death updated as RabbitMQ does (the entry for this queue
 * and reason moves to the front with its count incremented; others keep their order) and
 * the x-first-death-* fields set on the first death. */
static int build_headers(struct proto_bytes old, struct proto_bytes queue, const char *reason,
                         const struct message *msg, uint64_t now_s, struct proto_bytes expiration,
                         bool drop_cc, struct table_buf *out)
{
    struct table_iter it;
    struct proto_bytes key;
    struct table_value v;
    struct table_value old_deaths = {0};
    struct proto_bytes cc = {0};
    if (table_find(old, "CC", &v) == 1 && v.type == TABLE_ARRAY)
        cc = v.v.bytes;
    bool first_death = true;
    table_iter_init(&it, old);
    while (table_next(&it, &key, &v) == 1) {
        if (drop_cc && proto_bytes_equal(key, proto_bytes_of("CC")))
            continue;
        if (proto_bytes_equal(key, proto_bytes_of("x-death")) && v.type == TABLE_ARRAY) {
            old_deaths = v;
            first_death = false;
            continue;
        }
        if (proto_bytes_equal(key, proto_bytes_of("x-first-death-reason")) || proto_bytes_equal(key, proto_bytes_of("x-first-death-queue")) ||
            proto_bytes_equal(key, proto_bytes_of("x-first-death-exchange")))
            first_death = false;
        table_buf_put_field(out, (const char *)key.ptr, key.len, &v);
    }
    if (first_death) {
        table_buf_put_string(out, "x-first-death-reason", proto_bytes_of(reason));
        table_buf_put_string(out, "x-first-death-queue", queue);
        table_buf_put_string(out, "x-first-death-exchange", msg->exchange);
    }
    int64_t count = 1;
    struct table_buf rest = {0};
    if (old_deaths.type == TABLE_ARRAY) {
        table_iter_init(&it, old_deaths.v.bytes);
        while (array_next(&it, &v) == 1) {
            struct table_value q, r, c;
            if (v.type == TABLE_TABLE && table_find(v.v.bytes, "queue", &q) == 1 && proto_bytes_equal(q.v.bytes, queue) &&
                table_find(v.v.bytes, "reason", &r) == 1 && proto_bytes_equal(r.v.bytes, proto_bytes_of(reason))) {
                int64_t n;
                if (table_find(v.v.bytes, "count", &c) == 1 && table_value_to_int(&c, &n))
                    count = n + 1;
                continue;
            }
            table_buf_put_value(&rest, &v);
        }
    }
    struct table_buf entry = {0}, deaths = {0};
    build_death(&entry, queue, reason, msg, count, now_s, expiration, cc);
    v = (struct table_value){.type = TABLE_TABLE};
    v.v.bytes = (struct proto_bytes){entry.data, (uint32_t)entry.len};
    table_buf_put_value(&deaths, &v);
    if (rest.len) {
        uint8_t *p = realloc(deaths.data, deaths.len + rest.len);
        if (p) {
            memcpy(p + deaths.len, rest.data, rest.len);
            deaths.data = p;
            deaths.len += rest.len;
        }
    }
    v = (struct table_value){.type = TABLE_ARRAY};
    v.v.bytes = (struct proto_bytes){deaths.data, (uint32_t)deaths.len};
    int rc = table_buf_put_field(out, "x-death", 7, &v);
    table_buf_free(&entry);
    table_buf_free(&deaths);
    table_buf_free(&rest);
    return rc;
}

/* Copy of msg, published to dlx, with new headers, the expiration property removed (RabbitMQ drops it so the
 * message does not expire again in the dead-letter queue) and a new routing key. With a
 * dead-letter routing key (new_key) RabbitMQ also removes CC, so that key alone routes it;
 * without one the dead letter routes with every key the message was published with: its
 * routing key, CC and BCC (rabbit_dead_letter reuses the message's routing keys, which still
 * hold the BCC ones its headers lost). */
static struct message *dead_letter_copy(const struct message *msg, struct proto_bytes queue, const char *reason,
                                        struct proto_bytes dlx, struct proto_bytes routing_key, bool new_key,
                                        uint64_t now_s)
{
    struct spec_content_header h;
    if (spec_content_header_decode(msg->header.ptr, msg->header.len, &h) != 0)
        return NULL;
    struct proto_bytes old = (h.props.flags & SPEC_BASIC_HEADERS_FLAG) ? h.props.headers : (struct proto_bytes){0};
    struct table_buf headers = {0};
    struct proto_bytes expiration = (h.props.flags & SPEC_BASIC_EXPIRATION_FLAG) ? h.props.expiration
                                                                                 : (struct proto_bytes){0};
    if (build_headers(old, queue, reason, msg, now_s, expiration, new_key, &headers) != 0) {
        table_buf_free(&headers);
        return NULL;
    }
    h.props.headers = (struct proto_bytes){headers.data, (uint32_t)headers.len};
    h.props.flags |= SPEC_BASIC_HEADERS_FLAG;
    h.props.flags &= (uint16_t)~SPEC_BASIC_EXPIRATION_FLAG;
    size_t cap = msg->header.len + headers.len + 64;
    uint8_t *buf = malloc(cap);
    struct message *copy = NULL;
    long n = buf ? spec_content_header_encode(&h, buf, cap) : -1;
    if (n > 0) {
        copy = message_create_with_keys(dlx, routing_key, (struct proto_bytes){buf, (uint32_t)n}, &h.props,
                                        msg->body_size, new_key ? (struct proto_bytes){0} : msg->sender_keys);
        if (copy)
            memcpy(copy->body, msg->body, msg->body_size);
    }
    free(buf);
    table_buf_free(&headers);
    return copy;
}

/* RabbitMQ's cycle rule (rabbit_dead_letter): a dead letter is not delivered to `target` when
 * target already appears in its x-death (newest death first, as build_headers leaves it) and
 * no death from the front up to and including that entry was a rejection: such a cycle runs
 * with no client in it and would never end. Entries that are not tables were put there by a
 * client, so a path through one is not "fully automatic" either. headers: the dead letter's. */
static bool dead_letter_cycle(struct proto_bytes headers, struct proto_bytes target)
{
    struct table_value deaths, death;
    if (table_find(headers, "x-death", &deaths) != 1 || deaths.type != TABLE_ARRAY)
        return false;
    bool automatic = true;
    struct table_iter it;
    table_iter_init(&it, deaths.v.bytes);
    while (array_next(&it, &death) == 1) {
        if (death.type != TABLE_TABLE) {
            automatic = false;
            continue;
        }
        struct table_value reason, queue;
        if (table_find(death.v.bytes, "reason", &reason) == 1 && reason.type == TABLE_LONGSTR &&
            proto_bytes_equal(reason.v.bytes, proto_bytes_of("rejected")))
            automatic = false;
        if (table_find(death.v.bytes, "queue", &queue) == 1 && queue.type == TABLE_LONGSTR &&
            proto_bytes_equal(queue.v.bytes, target))
            return automatic;
    }
    return false;
}

static void report_cycle(struct vhost *vhost, struct proto_bytes from, struct proto_bytes target)
{
    if (vhost->dead_letter_cycle_reported)
        return;
    vhost->dead_letter_cycle_reported = true;
    log_warning("vhost '%s': dead-letter cycle: a message dead-lettered from queue '%.*s' was dropped instead of "
                "entering queue '%.*s' again (no rejection on its x-death path); later cycles are not reported",
                vhost->name, (int)from.len, (const char *)from.ptr, (int)target.len, (const char *)target.ptr);
}

/* A dead letter the round's bounds drop; the first one of a round is logged. */
static void refuse(struct vhost *vhost, struct proto_bytes from, const char *why)
{
    if (vhost->dead_letter_refused++ == 0)
        log_warning("vhost '%s': dead letters from queue '%.*s' dropped: %s; further ones this loop pass are "
                    "dropped without a log line",
                    vhost->name, (int)from.len, (const char *)from.ptr, why);
}

uint64_t vhost_dead_letter_round(struct vhost *vhost)
{
    uint64_t refused = vhost->dead_letter_refused;
    vhost->dead_letter_round = (vhost->dead_letter_round + 1) % UINT32_MAX; /* stamps stay nonzero */
    vhost->dead_letter_hops = 0;
    vhost->dead_letter_refused = 0;
    return refused;
}

void vhost_dead_letter(void *ctx, struct queue *queue, struct message *msg, int reason)
{
    struct vhost *vhost = ctx;
    struct proto_bytes dlx, dlrk;
    if (!queue_dead_letter_exchange(queue, &dlx))
        return;
    uint32_t stamp = vhost->dead_letter_round + 1;
    bool chained = msg->dead_letter_round == stamp; /* itself a dead letter of this round */
    /* Each nesting level is a dead letter dispatched from inside another's dispatch: bounded so
     * a long chain of distinct queues cannot exhaust the stack. */
    if (vhost->dead_letter_depth >= VHOST_DEAD_LETTER_DEPTH) {
        refuse(vhost, queue_name(queue), "dead-letter chain nested too deep");
        return;
    }
    if (chained && vhost->dead_letter_hops >= VHOST_DEAD_LETTER_BUDGET) {
        refuse(vhost, queue_name(queue), "dead-letter budget of one loop pass spent");
        return;
    }
    struct exchange *x = vhost_find_exchange(vhost, dlx);
    if (!x)
        return;
    bool new_key = queue_dead_letter_routing_key(queue, &dlrk);
    struct proto_bytes key = new_key ? dlrk : msg->routing_key;
    uint64_t now = vhost->hooks.now_ms(vhost->hooks.ctx);
    struct message *copy =
        dead_letter_copy(msg, queue_name(queue), reason_names[reason], dlx, key, new_key, wall_s(vhost));
    if (!copy)
        return;
    copy->dead_letter_round = stamp;
    struct route_set targets = {0};
    struct proto_bytes headers = message_headers(copy);
    if (route_exchange(vhost, x, copy, &targets) != 0)
        targets.count = 0;
    x->stats.publish_in++;
    x->stats.publish_out += targets.count;
    /* Re-entrancy: publishing and dispatching a target may dead-letter again (nested calls of
     * this function, which reuse vhost->scratch and vhost->visited but not `targets`). The
     * targets are held by reference until the loop ends, so none can be freed under it. */
    for (size_t i = 0; i < targets.count; i++)
        queue_retain(targets.items[i]);
    vhost->dead_letter_depth++;
    for (size_t i = 0; i < targets.count; i++) {
        struct queue *target = targets.items[i];
        /* Every target of a chained dead letter costs a hop, a cycle dropped or not: the
         * budget bounds the work, not only the deliveries. */
        if (chained && vhost->dead_letter_hops++ >= VHOST_DEAD_LETTER_BUDGET) {
            refuse(vhost, queue_name(queue), "dead-letter budget of one loop pass spent");
            continue;
        }
        /* RabbitMQ never looks for cycles when the client rejected: it is in the loop. */
        if (reason != QUEUE_DROP_REJECTED && dead_letter_cycle(headers, queue_name(target))) {
            report_cycle(vhost, queue_name(queue), queue_name(target));
            continue;
        }
        if (vhost->hooks.divert && vhost->hooks.divert(vhost->hooks.ctx, target, copy))
            continue;
        if (queue_publish(target, copy, now) == 0 && vhost->hooks.queue_ready)
            vhost->hooks.queue_ready(vhost->hooks.ctx, target);
    }
    vhost->dead_letter_depth--;
    for (size_t i = 0; i < targets.count; i++)
        queue_release(targets.items[i]);
    route_set_free(&targets);
    message_release(copy);
}
