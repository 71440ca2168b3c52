/* broker/model/vhost.c: exchanges, queues and bindings of one virtual host, and RabbitMQ's
 * rules (and exact error texts) for declaring, deleting and binding them. */
#include "vhost.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arguments.h"
#include "message.h"
#include "queue.h"
#include "random.h"
#include "spec.h"
#include "table.h"
#include "vhost_internal.h"

#define BYTES_FMT "%.*s"
#define BYTES_ARG(b) (int)(b).len, (const char *)(b).ptr

static bool has_prefix(struct proto_bytes b, const char *prefix)
{
    size_t n = strlen(prefix);
    return b.len >= n && memcmp(b.ptr, prefix, n) == 0;
}


struct exchange *vhost_find_exchange(struct vhost *vhost, struct proto_bytes name)
{
    struct exchange *x;
    HASH_FIND(hh, vhost->exchanges, name.ptr ? (const void *)name.ptr : "", name.len, x);
    return x;
}

struct queue *vhost_find_queue(struct vhost *vhost, struct proto_bytes name)
{
    struct queue_slot *slot;
    HASH_FIND(hh, vhost->queues, name.ptr ? (const void *)name.ptr : "", name.len, slot);
    return slot ? slot->queue : NULL;
}

static struct exchange *exchange_new(struct vhost *vhost, struct proto_bytes name, enum router_kind kind,
                                     bool durable, bool auto_delete, bool internal, struct proto_bytes args)
{
    if (name.len > NAME_MAX_LEN)
        return NULL; /* callers check names (names.h); x->name has room for no more */
    struct exchange *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->router = router_create(kind);
    if (!x->router || (args.len && !(x->arguments = malloc(args.len)))) {
        router_destroy(x->router);
        free(x);
        return NULL;
    }
    memcpy(x->name, name.ptr ? (const void *)name.ptr : "", name.len);
    x->name_len = (uint8_t)name.len;
    x->kind = kind;
    x->durable = durable;
    x->auto_delete = auto_delete;
    x->internal = internal;
    if (args.len)
        memcpy(x->arguments, args.ptr, args.len);
    x->arguments_len = args.len;
    struct table_value v;
    struct proto_bytes own_args = {x->arguments, x->arguments_len};
    if (table_find(own_args, "alternate-exchange", &v) == 1 && v.type == TABLE_LONGSTR) {
        x->alternate = v.v.bytes;
        x->alternate_argument = true;
    }
    HASH_ADD(hh, vhost->exchanges, name, x->name_len, x);
    if (vhost->policies)
        vhost_exchange_apply_policies(vhost, x);
    return x;
}

static void exchange_free(struct exchange *x)
{
    router_destroy(x->router);
    free(x->arguments);
    free(x->alternate_policy);
    free(x);
}

/* Removes every binding to destination from every exchange, deleting auto-delete exchanges
 * that lose their last binding. */
static void unbind_everywhere(struct vhost *vhost, void *destination)
{
    struct exchange *x, *tmp;
    HASH_ITER(hh, vhost->exchanges, x, tmp) {
        if (router_unbind_destination(x->router, destination) > 0 && x->auto_delete &&
            router_binding_count(x->router) == 0 && !x->builtin) {
            HASH_DEL(vhost->exchanges, x);
            unbind_everywhere(vhost, destination_of_exchange(x));
            exchange_free(x);
            /* The table may have changed under the iterator: start again. */
            unbind_everywhere(vhost, destination);
            return;
        }
    }
}

/* May the model delete queue on its own (vhost_hooks.self_delete)? */
static bool may_self_delete(struct vhost *vhost, struct queue *queue)
{
    return !vhost->hooks.self_delete || vhost->hooks.self_delete(vhost->hooks.ctx, queue);
}

static void queue_unused(void *ctx, struct queue *queue)
{
    struct vhost *vhost = ctx;
    if (queue_settings(queue)->auto_delete && may_self_delete(vhost, queue))
        vhost_queue_remove(vhost, queue);
}

static void queue_persist(void *ctx, struct queue *queue, struct message *msg, enum queue_event event)
{
    struct vhost *vhost = ctx;
    if (vhost->hooks.persist)
        vhost->hooks.persist(vhost->hooks.ctx, queue, msg, (int)event);
}

static void definitions_changed(struct vhost *vhost)
{
    if (vhost->hooks.definitions_changed)
        vhost->hooks.definitions_changed(vhost->hooks.ctx);
}

struct queue *vhost_queue_find(struct vhost *vhost, struct proto_bytes name) { return vhost_find_queue(vhost, name); }
bool vhost_exchange_exists(struct vhost *vhost, struct proto_bytes name) { return vhost_find_exchange(vhost, name) != NULL; }

static void queue_dropped(void *ctx, struct queue *queue, struct message *msg, enum queue_drop_reason reason)
{
    vhost_dead_letter(ctx, queue, msg, (int)reason);
}

struct vhost *vhost_create(const char *name, const struct vhost_hooks *hooks)
{
    static const struct {
        const char *name;
        enum router_kind kind;
        bool internal;
    } builtins[] = {
        {"", ROUTER_DIRECT, false},          {"amq.direct", ROUTER_DIRECT, false},
        {"amq.fanout", ROUTER_FANOUT, false}, {"amq.topic", ROUTER_TOPIC, false},
        {"amq.headers", ROUTER_HEADERS, false}, {"amq.match", ROUTER_HEADERS, false},
        {"amq.rabbitmq.trace", ROUTER_TOPIC, true},
    };
    struct vhost *vhost = calloc(1, sizeof *vhost);
    if (!vhost)
        return NULL;
    snprintf(vhost->name, sizeof vhost->name, "%s", name);
    vhost->hooks = *hooks;
    for (size_t i = 0; i < VHOST_LIMIT_COUNT; i++)
        vhost->limits[i] = -1;
    vhost->policies = policy_store_create();
    if (!vhost->policies) {
        free(vhost);
        return NULL;
    }
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++) {
        struct proto_bytes n = {(const uint8_t *)builtins[i].name, (uint32_t)strlen(builtins[i].name)};
        struct proto_bytes none = {NULL, 0};
        struct exchange *x = exchange_new(vhost, n, builtins[i].kind, true, false, builtins[i].internal, none);
        if (!x) {
            vhost_destroy(vhost);
            return NULL;
        }
        x->builtin = true;
    }
    return vhost;
}

void vhost_destroy(struct vhost *vhost)
{
    if (!vhost)
        return;
    struct queue_slot *slot, *stmp;
    HASH_ITER(hh, vhost->queues, slot, stmp) {
        HASH_DEL(vhost->queues, slot);
        queue_delete(slot->queue);
        queue_release(slot->queue);
        free(slot);
    }
    struct exchange *x, *xtmp;
    HASH_ITER(hh, vhost->exchanges, x, xtmp) {
        HASH_DEL(vhost->exchanges, x);
        exchange_free(x);
    }
    route_set_free(&vhost->scratch);
    route_set_free(&vhost->visited);
    policy_store_destroy(vhost->policies);
    free(vhost);
}

const char *vhost_name(const struct vhost *vhost) { return vhost->name; }

/* ---- exchanges ---- */

static int inequivalent(struct reply_error *err, uint32_t method, const char *what, const char *arg,
                        struct proto_bytes name, const char *received, const char *current)
{
    return reply_fail(err, SPEC_PRECONDITION_FAILED, method,
                      "inequivalent arg '%s' for %s '" BYTES_FMT "' in vhost '/': received '%s' but current is '%s'",
                      arg, what, BYTES_ARG(name), received, current);
}

static const char *bool_text(bool b) { return b ? "true" : "false"; }

/* exchange.declare's rules, changing nothing: 1 when nothing is to be created (passive, or an
 * equivalent exchange exists), 0 when a new exchange of *kind is to be created, -1 with err. */
static int exchange_declare_rules(struct vhost *vhost, const struct exchange_declare *d, enum router_kind *kind,
                                  struct reply_error *err)
{
    const uint32_t m = SPEC_EXCHANGE_DECLARE;
    if (d->name.len == 0)
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "operation not permitted on the default exchange");
    struct exchange *x = vhost_find_exchange(vhost, d->name);
    if (d->passive) {
        if (!x)
            return reply_fail(err, SPEC_NOT_FOUND, m, "no exchange '" BYTES_FMT "' in vhost '%s'",
                              BYTES_ARG(d->name), vhost->name);
        return 1;
    }
    if (router_kind_parse((const char *)d->type.ptr, d->type.len, kind) != 0)
        return reply_fail(err, SPEC_COMMAND_INVALID, m, "%s exchange type '" BYTES_FMT "'",
                          has_prefix(d->type, "x-") ? "unknown" : "invalid", BYTES_ARG(d->type));
    if (x) {
        if (x->kind != *kind)
            return inequivalent(err, m, "exchange", "type", d->name, router_kind_name(*kind),
                                router_kind_name(x->kind));
        if (x->durable != d->durable)
            return inequivalent(err, m, "exchange", "durable", d->name, bool_text(d->durable),
                                bool_text(x->durable));
        if (x->auto_delete != d->auto_delete)
            return inequivalent(err, m, "exchange", "auto_delete", d->name, bool_text(d->auto_delete),
                                bool_text(x->auto_delete));
        if (x->internal != d->internal)
            return inequivalent(err, m, "exchange", "internal", d->name, bool_text(d->internal),
                                bool_text(x->internal));
        struct proto_bytes current = {x->arguments, x->arguments_len};
        if (arguments_equivalent(current, d->arguments, arguments_exchange_keys, "exchange", d->name, m, err) != 0)
            return -1;
        return 1;
    }
    if (has_prefix(d->name, "amq."))
        return reply_fail(err, SPEC_ACCESS_REFUSED, m,
                          "exchange name '" BYTES_FMT "' contains reserved prefix 'amq.*'", BYTES_ARG(d->name));
    const char *why;
    if (name_check(d->name, false, &why) != 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "invalid exchange name: %s", why);
    struct table_value v;
    if (table_find(d->arguments, "alternate-exchange", &v) == 1 && v.type != TABLE_LONGSTR)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m,
                          "invalid arg 'alternate-exchange' for exchange '" BYTES_FMT "' in vhost '%s'",
                          BYTES_ARG(d->name), vhost->name);
    return 0;
}

int vhost_exchange_declare_check(struct vhost *vhost, const struct exchange_declare *d, struct reply_error *err)
{
    enum router_kind kind;
    return exchange_declare_rules(vhost, d, &kind, err) < 0 ? -1 : 0;
}

int vhost_exchange_declare(struct vhost *vhost, const struct exchange_declare *d, struct reply_error *err)
{
    enum router_kind kind;
    int rc = exchange_declare_rules(vhost, d, &kind, err);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (!exchange_new(vhost, d->name, kind, d->durable, d->auto_delete, d->internal, d->arguments))
        return reply_fail(err, SPEC_INTERNAL_ERROR, SPEC_EXCHANGE_DECLARE, "out of memory");
    if (d->durable)
        definitions_changed(vhost);
    return 0;
}

int vhost_exchange_delete_allowed(const struct vhost *vhost, struct proto_bytes name, struct reply_error *err)
{
    const uint32_t m = SPEC_EXCHANGE_DELETE;
    if (name.len == 0)
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "operation not permitted on the default exchange");
    /* RabbitMQ refuses by name, not by what exists: amq.anything, missing or not, is 403
     * (deleting any other missing exchange succeeds). */
    if (has_prefix(name, "amq."))
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "deletion of system exchange '" BYTES_FMT "' in vhost '%s' not allowed",
                          BYTES_ARG(name), vhost->name);
    return 0;
}

int vhost_exchange_delete(struct vhost *vhost, struct proto_bytes name, bool if_unused, struct reply_error *err)
{
    const uint32_t m = SPEC_EXCHANGE_DELETE;
    if (vhost_exchange_delete_allowed(vhost, name, err) != 0)
        return -1;
    struct exchange *x = vhost_find_exchange(vhost, name);
    if (!x)
        return 0;
    if (x->builtin) /* all built-in names start with amq.; kept should one ever not */
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "deletion of system exchange '" BYTES_FMT "' in vhost '%s' not allowed",
                          BYTES_ARG(name), vhost->name);
    if (if_unused && router_binding_count(x->router) > 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "exchange '" BYTES_FMT "' in vhost '%s' in use",
                          BYTES_ARG(name), vhost->name);
    HASH_DEL(vhost->exchanges, x);
    unbind_everywhere(vhost, destination_of_exchange(x));
    if (x->durable)
        definitions_changed(vhost);
    exchange_free(x);
    return 0;
}

static int binding_change(struct vhost *vhost, struct exchange *source, void *destination, struct proto_bytes key,
                          struct proto_bytes args, bool unbind, uint32_t m, struct reply_error *err)
{
    if (source->durable)
        definitions_changed(vhost);
    if (unbind) {
        /* Only removing a binding makes an auto-delete exchange go: unbinding one that does
         * not exist changes nothing in RabbitMQ (its remove answers ok before touching it). */
        if (router_unbind(source->router, destination, key.ptr, key.len, args) == 0 && source->auto_delete &&
            router_binding_count(source->router) == 0)
            return 1; /* the caller deletes the exchange */
        return 0;
    }
    int rc = router_bind(source->router, destination, key.ptr, key.len, args);
    if (rc == -EINVAL)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "invalid binding arguments for exchange '%s'",
                          source->name);
    if (rc < 0)
        return reply_fail(err, SPEC_INTERNAL_ERROR, m, "out of memory");
    return 0;
}

static int find_exchange_for_binding(struct vhost *vhost, struct proto_bytes name, uint32_t m,
                                     struct exchange **out, struct reply_error *err)
{
    if (name.len == 0)
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "operation not permitted on the default exchange");
    *out = vhost_find_exchange(vhost, name);
    if (!*out)
        return reply_fail(err, SPEC_NOT_FOUND, m, "no exchange '" BYTES_FMT "' in vhost '%s'", BYTES_ARG(name),
                          vhost->name);
    return 0;
}

static void delete_if_auto(struct vhost *vhost, struct exchange *x, int rc)
{
    if (rc == 1 && !x->builtin) {
        HASH_DEL(vhost->exchanges, x);
        unbind_everywhere(vhost, destination_of_exchange(x));
        exchange_free(x);
    }
}

int vhost_exchange_bind(struct vhost *vhost, struct proto_bytes destination, struct proto_bytes source,
                        struct proto_bytes key, struct proto_bytes arguments, bool unbind, struct reply_error *err)
{
    const uint32_t m = unbind ? SPEC_EXCHANGE_UNBIND : SPEC_EXCHANGE_BIND;
    struct exchange *src = NULL, *dst = NULL;
    /* RabbitMQ refuses the default exchange on either side before it looks anything up. */
    if (destination.len == 0 || source.len == 0)
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "operation not permitted on the default exchange");
    if (unbind &&
        (!vhost_find_exchange(vhost, destination) || !vhost_find_exchange(vhost, source)))
        return 0; /* RabbitMQ 3.10: unbinding what does not exist succeeds */
    if (find_exchange_for_binding(vhost, destination, m, &dst, err) ||
        find_exchange_for_binding(vhost, source, m, &src, err))
        return -1;
    int rc = binding_change(vhost, src, destination_of_exchange(dst), key, arguments, unbind, m, err);
    if (rc < 0)
        return rc;
    delete_if_auto(vhost, src, rc);
    return 0;
}

/* ---- queues ---- */

static int locked(struct reply_error *err, uint32_t m, struct proto_bytes name, const char *vhost)
{
    return reply_fail(err, SPEC_RESOURCE_LOCKED, m,
                      "cannot obtain exclusive access to locked queue '" BYTES_FMT "' in vhost '%s'. It could be "
                      "originally declared on another connection or the exclusive property value does not "
                      "match that of the original declaration.",
                      BYTES_ARG(name), vhost);
}

int vhost_queue_lookup(struct vhost *vhost, struct proto_bytes name, void *owner, struct queue **out,
                       struct reply_error *err)
{
    struct queue *q = vhost_find_queue(vhost, name);
    if (!q)
        return reply_fail(err, SPEC_NOT_FOUND, 0, "no queue '" BYTES_FMT "' in vhost '%s'", BYTES_ARG(name),
                          vhost->name);
    if (queue_owner(q) && queue_owner(q) != owner)
        return locked(err, 0, name, vhost->name);
    *out = q;
    return 0;
}

int vhost_queue_generate_name(struct vhost *vhost, char out[VHOST_GENERATED_NAME_LEN + 1])
{
    /* 128 random bits, as RabbitMQ's rabbit_guid:gen_secure: a client cannot guess the name of
     * another's server-named queue. A clash is not expected, but costs only another draw. */
    memcpy(out, "amq.gen-", 8);
    do {
        if (random_token(out + 8) != 0)
            return -EIO;
    } while (vhost_find_queue(vhost, (struct proto_bytes){(const uint8_t *)out, VHOST_GENERATED_NAME_LEN}));
    return 0;
}

static int check_queue_equivalence(struct vhost *vhost, struct queue *q, const struct queue_declare *d,
                                   struct reply_error *err)
{
    const uint32_t m = SPEC_QUEUE_DECLARE;
    const struct queue_settings *s = queue_settings(q);
    struct proto_bytes name = queue_name(q);
    /* RabbitMQ's assert_equivalence checks exclusive access ("strict") before durable and
     * auto_delete: an exclusive mismatch is 405 even when durable differs too. */
    if (s->exclusive != d->exclusive)
        return locked(err, m, name, vhost->name);
    if (s->durable != d->durable)
        return inequivalent(err, m, "queue", "durable", name, bool_text(d->durable), bool_text(s->durable));
    if (s->auto_delete != d->auto_delete)
        return inequivalent(err, m, "queue", "auto_delete", name, bool_text(d->auto_delete),
                            bool_text(s->auto_delete));
    const struct queue_kind *kind = queue_kind(q);
    if (arguments_equivalent(queue_arguments(q), d->arguments, kind->equivalent_keys, "queue", name, m, err) != 0)
        return -1;
    /* x-queue-type is compared only when the redeclare gives it or the queue is not classic,
     * and "classic" then matches a classic queue declared without it (RabbitMQ 3.10: "bogus" or
     * "quorum" on a classic queue is an inequivalent arg, not an unsupported type; found by
     * tests/diff; a quorum queue redeclared without the type is inequivalent too). */
    static const char *const queue_type_key[] = {"x-queue-type", NULL};
    struct table_value requested = {0}, current;
    if (table_find(d->arguments, "x-queue-type", &requested) != 1 && s->type == QUEUE_TYPE_CLASSIC)
        return 0;
    if (table_find(queue_arguments(q), "x-queue-type", &current) != 1 && requested.type == TABLE_LONGSTR &&
        proto_bytes_is(requested.v.bytes, "classic"))
        return 0;
    return arguments_equivalent(queue_arguments(q), d->arguments, queue_type_key, "queue", name, m, err);
}

/* queue.declare's rules for a queue called name (d->name, or the one generated for it),
 * changing nothing: 1 with *existing when an existing queue answers it (passive, or an
 * equivalent redeclare), 0 with *settings parsed when a new queue is to be created, -1 with err. */
static int queue_declare_rules(struct vhost *vhost, const struct queue_declare *d, struct proto_bytes name,
                               struct queue **existing, struct queue_settings *settings, struct reply_error *err)
{
    const uint32_t m = SPEC_QUEUE_DECLARE;
    struct queue *q = d->name.len ? vhost_find_queue(vhost, d->name) : NULL;
    if (d->passive) {
        if (!q)
            return reply_fail(err, SPEC_NOT_FOUND, m, "no queue '" BYTES_FMT "' in vhost '%s'", BYTES_ARG(d->name),
                              vhost->name);
        if (queue_owner(q) && queue_owner(q) != d->owner)
            return locked(err, m, d->name, vhost->name);
        *existing = q;
        return 1;
    }
    if (has_prefix(d->name, "amq.") && !d->server_named)
        return reply_fail(err, SPEC_ACCESS_REFUSED, m, "queue name '" BYTES_FMT "' contains reserved prefix 'amq.*'",
                          BYTES_ARG(d->name));
    if (q) {
        if (queue_owner(q) && queue_owner(q) != d->owner)
            return locked(err, m, d->name, vhost->name);
        if (check_queue_equivalence(vhost, q, d, err) != 0)
            return -1;
        *existing = q;
        return 1;
    }
    const char *why;
    if (name_check(name, false, &why) != 0) /* a client's is a shortstr; a restored one may be anything */
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "invalid queue name: %s", why);
    if (queue_settings_parse(name, d->arguments, settings, err) != 0) {
        err->method_id = m;
        return -1;
    }
    /* rabbit_queue_type:check_vhost_queue_limit, after the arguments are known to be valid. */
    int64_t max_queues = vhost->limits[VHOST_LIMIT_MAX_QUEUES];
    if (max_queues >= 0 && HASH_COUNT(vhost->queues) + 1 > (uint64_t)max_queues)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m,
                          "cannot declare queue '" BYTES_FMT "': queue limit in vhost '%s' (%lld) is reached",
                          BYTES_ARG(name), vhost->name, (long long)max_queues);
    return 0;
}

int vhost_queue_declare_check(struct vhost *vhost, const struct queue_declare *d, struct reply_error *err)
{
    struct queue *q;
    struct queue_settings settings;
    return queue_declare_rules(vhost, d, d->name, &q, &settings, err) < 0 ? -1 : 0;
}

int vhost_queue_declare(struct vhost *vhost, const struct queue_declare *d, struct queue **out,
                        struct reply_error *err)
{
    const uint32_t m = SPEC_QUEUE_DECLARE;
    char generated[VHOST_GENERATED_NAME_LEN + 1];
    struct proto_bytes name = d->name;
    if (name.len == 0 && !d->passive) {
        if (vhost_queue_generate_name(vhost, generated) != 0)
            return reply_fail(err, SPEC_INTERNAL_ERROR, m, "no randomness for a queue name");
        name = (struct proto_bytes){(const uint8_t *)generated, VHOST_GENERATED_NAME_LEN};
    }
    struct queue *q;
    struct queue_settings settings;
    int rc = queue_declare_rules(vhost, d, name, &q, &settings, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        /* A passive declare is use, as in RabbitMQ (its queue answers the stat call after
         * restarting the x-expires timer); the spec does not say. */
        queue_touch(q, vhost->hooks.now_ms(vhost->hooks.ctx));
        *out = q;
        return 0;
    }
    settings.durable = d->durable;
    settings.exclusive = d->exclusive;
    settings.auto_delete = d->auto_delete;
    if (queue_settings_check_kind(name, &settings, err) != 0)
        return -1;
    struct queue_hooks hooks = {.dropped = queue_dropped,
                                .unused = queue_unused,
                                .persist = queue_persist,
                                .ctx = vhost,
                                .pager = settings.durable ? vhost->hooks.pager : NULL};
    struct queue_slot *slot = calloc(1, sizeof *slot);
    q = slot ? queue_create(name, &settings, d->arguments, &hooks) : NULL;
    if (!q) {
        free(slot);
        return reply_fail(err, SPEC_INTERNAL_ERROR, m, "out of memory");
    }
    if (d->exclusive)
        queue_set_owner(q, d->owner);
    queue_touch(q, vhost->hooks.now_ms(vhost->hooks.ctx));
    slot->queue = q;
    slot->name = queue_name(q);
    HASH_ADD_KEYPTR(hh, vhost->queues, slot->name.ptr, slot->name.len, slot);
    if (policy_store_count(vhost->policies, POLICY_USER) + policy_store_count(vhost->policies, POLICY_OPERATOR))
        vhost_queue_apply_policies(vhost, slot); /* a new queue: nothing to drop, no callback */
    vhost->churn.queue_created++;
    if (settings.durable)
        definitions_changed(vhost);
    *out = q;
    return 0;
}

void vhost_queue_remove(struct vhost *vhost, struct queue *queue)
{
    struct proto_bytes name = queue_name(queue);
    struct queue_slot *slot;
    HASH_FIND(hh, vhost->queues, name.ptr, name.len, slot);
    if (!slot || slot->queue != queue)
        return;
    /* Out of the table first: cancelling the consumers below may run the auto-delete hook,
     * which must then find nothing left to remove. The slot's reference moves to us. */
    HASH_DEL(vhost->queues, slot);
    free(slot);
    vhost->churn.queue_deleted++;
    if (vhost->hooks.queue_deleting)
        vhost->hooks.queue_deleting(vhost->hooks.ctx, queue);
    unbind_everywhere(vhost, queue);
    if (queue_settings(queue)->durable) {
        if (vhost->hooks.durable_queue_deleted)
            vhost->hooks.durable_queue_deleted(vhost->hooks.ctx, queue);
        definitions_changed(vhost);
    }
    queue_delete(queue);
    queue_release(queue);
}

int vhost_queue_delete_check(const struct vhost *vhost, const struct queue *q, size_t consumers, size_t ready,
                             bool if_unused, bool if_empty, struct reply_error *err)
{
    const uint32_t m = SPEC_QUEUE_DELETE;
    struct proto_bytes name = queue_name(q);
    if ((if_unused || if_empty) && !queue_kind(q)->conditional_delete) /* RabbitMQ 3.10: connection error */
        return reply_fail(err, SPEC_NOT_IMPLEMENTED, m,
                          "cannot delete queue '" BYTES_FMT "' in vhost '%s'. queue.delete operations with %s flag "
                          "set are not supported by %s queues",
                          BYTES_ARG(name), vhost->name, if_unused ? "if-unused" : "if-empty", queue_kind(q)->name);
    if (if_unused && consumers > 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "queue '" BYTES_FMT "' in vhost '%s' in use",
                          BYTES_ARG(name), vhost->name);
    if (if_empty && ready > 0)
        return reply_fail(err, SPEC_PRECONDITION_FAILED, m, "queue '" BYTES_FMT "' in vhost '%s' not empty",
                          BYTES_ARG(name), vhost->name);
    return 0;
}

int vhost_queue_delete(struct vhost *vhost, struct proto_bytes name, void *owner, bool if_unused,
                       bool if_empty, uint32_t *count, struct reply_error *err)
{
    const uint32_t m = SPEC_QUEUE_DELETE;
    *count = 0;
    struct queue *q = vhost_find_queue(vhost, name);
    if (!q)
        return 0;
    if (queue_owner(q) && queue_owner(q) != owner)
        return locked(err, m, name, vhost->name);
    if (vhost_queue_delete_check(vhost, q, queue_consumer_count(q), queue_ready_count(q), if_unused, if_empty, err) != 0)
        return -1;
    *count = (uint32_t)queue_ready_count(q);
    vhost_queue_remove(vhost, q);
    return 0;
}

int vhost_queue_bind(struct vhost *vhost, struct proto_bytes queue, struct proto_bytes exchange,
                     struct proto_bytes key, struct proto_bytes arguments, void *owner, bool unbind,
                     struct reply_error *err)
{
    const uint32_t m = unbind ? SPEC_QUEUE_UNBIND : SPEC_QUEUE_BIND;
    struct exchange *x = NULL;
    struct queue *q = NULL;
    if (unbind && exchange.len && (!vhost_find_exchange(vhost, exchange) || !vhost_find_queue(vhost, queue)))
        return 0; /* RabbitMQ 3.10: unbinding what does not exist succeeds */
    if (find_exchange_for_binding(vhost, exchange, m, &x, err) != 0)
        return -1;
    /* RabbitMQ checks exclusive access only on a binding that exists: unbinding what is not
     * bound from another connection's exclusive queue succeeds. */
    if (unbind && router_find(x->router, vhost_find_queue(vhost, queue), key.ptr, key.len, arguments) == 0)
        return 0;
    if (vhost_queue_lookup(vhost, queue, owner, &q, err) != 0) {
        err->method_id = m;
        return -1;
    }
    int rc = binding_change(vhost, x, q, key, arguments, unbind, m, err);
    if (rc < 0)
        return rc;
    delete_if_auto(vhost, x, rc);
    return 0;
}

void vhost_delete_all_queues(struct vhost *vhost)
{
    struct queue_slot *slot, *tmp;
    HASH_ITER(hh, vhost->queues, slot, tmp) {
        vhost_queue_remove(vhost, slot->queue);
    }
}

void vhost_owner_gone(struct vhost *vhost, void *owner)
{
    struct queue_slot *slot, *tmp;
    HASH_ITER(hh, vhost->queues, slot, tmp) {
        if (queue_owner(slot->queue) == owner)
            vhost_queue_remove(vhost, slot->queue);
    }
}

uint64_t vhost_tick(struct vhost *vhost, uint64_t now_ms)
{
    uint64_t next = UINT64_MAX;
    struct queue_slot *slot, *tmp;
    HASH_ITER(hh, vhost->queues, slot, tmp) {
        struct queue *q = slot->queue;
        const struct queue_settings *s = queue_settings(q);
        if (s->expires_ms > 0 && queue_consumer_count(q) == 0) {
            uint64_t deadline = queue_last_used(q) + (uint64_t)s->expires_ms;
            if (deadline <= now_ms) {
                if (may_self_delete(vhost, q)) {
                    vhost_queue_remove(vhost, q);
                    continue;
                }
                deadline = now_ms + 1000; /* the owner's to delete: asked again until it has */
            }
            if (deadline < next)
                next = deadline;
        }
        uint64_t expiry = queue_expire(q, now_ms);
        if (expiry < next)
            next = expiry;
    }
    return next;
}

void vhost_for_each_queue(struct vhost *vhost, void (*fn)(struct queue *queue, void *arg), void *arg)
{
    struct queue_slot *slot, *tmp;
    HASH_ITER(hh, vhost->queues, slot, tmp) {
        fn(slot->queue, arg);
    }
}

void vhost_for_each_queue_with_policies(struct vhost *vhost,
                                        void (*fn)(struct queue *queue, const struct policy *policy,
                                                   const struct policy *operator_policy, void *arg),
                                        void *arg)
{
    struct queue_slot *slot, *tmp;
    HASH_ITER(hh, vhost->queues, slot, tmp) {
        fn(slot->queue, slot->policy, slot->operator_policy, arg);
    }
}

size_t vhost_queue_count(const struct vhost *vhost) { return HASH_COUNT(vhost->queues); }
