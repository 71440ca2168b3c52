/* broker/amqp/cluster_state.c: the replicated state of the metadata group (cluster_target.h):
 * exported from the server's model for a snapshot, and imported from a leader's snapshot by
 * making the model equal to it. Import keeps what already matches, so a queue whose definition
 * is unchanged keeps its messages and consumers. Exclusive queues are in the state too: those of
 * this node's connections, and their bindings, are left alone (they go with their connection);
 * every other one is a copy owned by no connection here (cluster_foreign_owner), made, kept and
 * removed as the state says, which routes publishes to its connection's node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "cluster_queues.h"
#include "cluster_target.h"
#include "log.h"
#include "names.h"
#include "persistence.h"
#include "queue.h"
#include "server_internal.h"
#include "table.h"
#include "uthash.h"
#include "vhost.h"

struct proto_bytes cluster_get_string(struct cluster_fields *f, const char *key)
{
    struct table_value v;
    int found = table_find(f->args, key, &v);
    if (found == 1 && v.type == TABLE_LONGSTR && v.v.bytes.len <= NAME_MAX_LEN)
        return v.v.bytes;
    if (found != 0)
        f->bad = true;
    return (struct proto_bytes){NULL, 0};
}

bool cluster_get_bool(struct cluster_fields *f, const char *key)
{
    struct table_value v;
    int found = table_find(f->args, key, &v);
    if (found == 1 && v.type == TABLE_BOOL)
        return v.v.boolean;
    if (found != 0)
        f->bad = true;
    return false;
}

struct proto_bytes cluster_get_table(struct cluster_fields *f, const char *key)
{
    struct table_value v;
    int found = table_find(f->args, key, &v);
    if (found == 1 && v.type == TABLE_TABLE)
        return v.v.bytes;
    if (found != 0)
        f->bad = true;
    return (struct proto_bytes){NULL, 0};
}

/* ---- export ---- */

int cluster_target_export(void *ctx, struct table_buf *out)
{
    struct server *server = ctx;
    return server_export_access(server, out) == 0 ? server_export_vhosts(server, vhost_export_replicated, out) : -1;
}

int cluster_target_snapshot(void *ctx, struct table_buf *out)
{
    struct server *server = ctx;
    if (cluster_target_export(ctx, out) != 0)
        return -1;
    return server->replicas ? cluster_queues_export(server->replicas, out) : 0;
}

/* ---- import ----
 * First every entry of the state is read and checked (nothing changes when one is malformed);
 * then, per vhost: local objects that are missing from the state or differ from it are deleted,
 * missing ones declared, missing bindings added and extra ones removed. Adding bindings before
 * removing keeps an auto-delete exchange that the state still binds; one that lost its last
 * binding in the removal is declared again, and bindings to it added again. */

/* One object the state wants, keyed by name (a binding: by all its fields, binding_key). */
struct wanted {
    UT_hash_handle hh;
    struct proto_bytes fields; /* its entry in the state (borrowed) */
    bool to_queue;             /* bindings */
    size_t key_len;
    uint8_t key[];
};

struct vhost_state {
    struct vhost_state *next;
    char name[NAME_MAX_LEN + 1];
    struct proto_bytes defs; /* the vhost's part of the state (borrowed): policies, limits */
    struct wanted *exchanges, *queues, *bindings;
};

static void free_wanted(struct wanted **set)
{
    struct wanted *w, *tmp;
    HASH_ITER(hh, *set, w, tmp) {
        HASH_DEL(*set, w);
        free(w);
    }
}

static void free_states(struct vhost_state *s)
{
    while (s) {
        struct vhost_state *next = s->next;
        free_wanted(&s->exchanges);
        free_wanted(&s->queues);
        free_wanted(&s->bindings);
        free(s);
        s = next;
    }
}

/* A binding's identity: its five fields, each length-prefixed. malloc'ed; NULL when out of
 * memory. */
static uint8_t *binding_key(struct proto_bytes source, bool to_queue, struct proto_bytes destination,
                            struct proto_bytes key, struct proto_bytes arguments, size_t *len)
{
    struct proto_bytes parts[] = {source, destination, key, arguments};
    *len = 1;
    for (size_t i = 0; i < 4; i++)
        *len += 4 + parts[i].len;
    uint8_t *out = malloc(*len), *at = out;
    if (!out)
        return NULL;
    *at++ = to_queue;
    for (size_t i = 0; i < 4; i++) {
        memcpy(at, &parts[i].len, 4);
        at += 4;
        if (parts[i].len)
            memcpy(at, parts[i].ptr, parts[i].len);
        at += parts[i].len;
    }
    return out;
}

static int add_wanted(struct wanted **set, const uint8_t *key, size_t len, struct proto_bytes fields, bool to_queue)
{
    struct wanted *w;
    HASH_FIND(hh, *set, key, len, w);
    if (w)
        return 0; /* named twice: the first one counts */
    w = malloc(sizeof *w + len);
    if (!w)
        return -1;
    w->fields = fields;
    w->to_queue = to_queue;
    w->key_len = len;
    if (len)
        memcpy(w->key, key, len);
    HASH_ADD(hh, *set, key, len, w);
    return 0;
}

/* Reads one list of a vhost's definitions into set. kind: 'x' exchanges, 'q' queues, 'b'
 * bindings. -1 when malformed or out of memory. */
static int read_list(struct proto_bytes defs, const char *list, char kind, struct wanted **set)
{
    struct table_value v, item;
    int found = table_find(defs, list, &v);
    if (found == 0)
        return 0;
    if (found != 1 || v.type != TABLE_ARRAY)
        return -1;
    struct table_iter it;
    table_iter_init(&it, v.v.bytes);
    while (array_next(&it, &item) == 1) {
        if (item.type != TABLE_TABLE)
            return -1;
        struct cluster_fields f = {.args = item.v.bytes};
        const char *why;
        if (kind != 'b') {
            struct proto_bytes name = cluster_get_string(&f, "name");
            cluster_get_bool(&f, "durable");
            cluster_get_bool(&f, "exclusive");
            cluster_get_bool(&f, "auto_delete");
            cluster_get_bool(&f, "internal");
            cluster_get_table(&f, "arguments");
            if (kind == 'x' && cluster_get_string(&f, "type").len == 0)
                f.bad = true;
            if (f.bad || name_check(name, false, &why) != 0 || add_wanted(set, name.ptr, name.len, f.args, false))
                return -1;
            continue;
        }
        struct proto_bytes source = cluster_get_string(&f, "source"), destination = cluster_get_string(&f, "destination");
        struct proto_bytes type = cluster_get_string(&f, "destination_type");
        struct proto_bytes key = cluster_get_string(&f, "routing_key"), arguments = cluster_get_table(&f, "arguments");
        bool to_queue = proto_bytes_is(type, "queue");
        size_t len;
        if (f.bad || (!to_queue && !proto_bytes_is(type, "exchange")) || name_check(source, false, &why) != 0 ||
            name_check(destination, false, &why) != 0)
            return -1;
        uint8_t *k = binding_key(source, to_queue, destination, key, arguments, &len);
        int rc = k ? add_wanted(set, k, len, f.args, to_queue) : -1;
        free(k);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Reads the whole state; NULL after logging why when it is malformed (or out of memory). */
static struct vhost_state *read_state(struct proto_bytes state, bool *ok)
{
    struct vhost_state *head = NULL;
    struct table_value v;
    *ok = false;
    if (table_validate(state) != 0 || table_find(state, "vhosts", &v) != 1 || v.type != TABLE_ARRAY)
        return NULL;
    struct table_iter it;
    table_iter_init(&it, v.v.bytes);
    struct proto_bytes name, defs;
    const char *why;
    int more;
    while ((more = vhost_definitions_next(&it, &name, &defs, &why)) != 0) {
        struct vhost_state *s = more > 0 && !memchr(name.ptr, 0, name.len) ? calloc(1, sizeof *s) : NULL;
        if (!s) {
            free_states(head);
            return NULL;
        }
        s->next = head;
        head = s;
        memcpy(s->name, name.ptr, name.len);
        s->defs = defs;
        if (read_list(defs, "exchanges", 'x', &s->exchanges) != 0 || read_list(defs, "queues", 'q', &s->queues) != 0 ||
            read_list(defs, "bindings", 'b', &s->bindings) != 0) {
            free_states(head);
            return NULL;
        }
    }
    *ok = true;
    return head;
}

/* Names collected during a walk of the model, acted on after it (deleting inside the walk would
 * change what is being walked). */
struct doomed {
    struct vhost_state *state;
    struct vhost *vhost;
    uint8_t **keys;
    size_t *lens;
    bool *to_queue;
    size_t count, cap;
    bool failed;
};

static void doom(struct doomed *d, const uint8_t *key, size_t len, bool to_queue, bool copy)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        uint8_t **keys = realloc(d->keys, cap * sizeof *keys);
        size_t *lens = keys ? realloc(d->lens, cap * sizeof *lens) : NULL;
        bool *tq = lens ? realloc(d->to_queue, cap * sizeof *tq) : NULL;
        if (keys)
            d->keys = keys;
        if (lens)
            d->lens = lens;
        if (!tq) {
            d->failed = true;
            if (!copy)
                free((void *)key);
            return;
        }
        d->to_queue = tq;
        d->cap = cap;
    }
    uint8_t *k = copy ? malloc(len ? len : 1) : (uint8_t *)key;
    if (!k) {
        d->failed = true;
        return;
    }
    if (copy && len)
        memcpy(k, key, len);
    d->keys[d->count] = k;
    d->lens[d->count] = len;
    d->to_queue[d->count++] = to_queue;
}

static void doomed_free(struct doomed *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->keys[i]);
    free(d->keys);
    free(d->lens);
    free(d->to_queue);
}

static bool builtin_exchange(struct proto_bytes name)
{
    return name.len == 0 || (name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0);
}

static bool same_table(struct proto_bytes a, struct proto_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void doom_exchange(const struct vhost_exchange_info *x, void *arg)
{
    struct doomed *d = arg;
    if (builtin_exchange(x->name))
        return;
    struct wanted *w;
    HASH_FIND(hh, d->state->exchanges, x->name.ptr, x->name.len, w);
    if (w) {
        struct cluster_fields f = {.args = w->fields};
        if (proto_bytes_is(cluster_get_string(&f, "type"), x->type) && cluster_get_bool(&f, "durable") == x->durable &&
            cluster_get_bool(&f, "auto_delete") == x->auto_delete && cluster_get_bool(&f, "internal") == x->internal &&
            same_table(cluster_get_table(&f, "arguments"), x->arguments))
            return;
    }
    doom(d, x->name.ptr, x->name.len, false, true);
}

/* An exclusive queue of a connection of this node: it and its bindings go with the connection
 * (the state has them too, unless their deletion is on its way through the log). */
static bool connection_here(const struct queue *q)
{
    return queue_settings(q)->exclusive && queue_owner(q) != cluster_foreign_owner();
}

static void doom_queue(struct queue *q, void *arg)
{
    struct doomed *d = arg;
    const struct queue_settings *s = queue_settings(q);
    struct proto_bytes name = queue_name(q);
    if (connection_here(q))
        return;
    struct wanted *w;
    HASH_FIND(hh, d->state->queues, name.ptr, name.len, w);
    if (w) {
        struct cluster_fields f = {.args = w->fields};
        if (cluster_get_bool(&f, "durable") == s->durable && cluster_get_bool(&f, "auto_delete") == s->auto_delete &&
            cluster_get_bool(&f, "exclusive") == s->exclusive &&
            same_table(cluster_get_table(&f, "arguments"), queue_arguments(q)))
            return;
    }
    doom(d, name.ptr, name.len, true, true);
}

static void doom_binding(const struct vhost_binding_info *b, void *arg)
{
    struct doomed *d = arg;
    if (!b->to_exchange) {
        struct queue *q = vhost_queue_find(d->vhost, b->destination);
        if (q && connection_here(q))
            return;
    }
    size_t len;
    uint8_t *key = binding_key(b->source, !b->to_exchange, b->destination, b->routing_key, b->arguments, &len);
    if (!key) {
        d->failed = true;
        return;
    }
    struct wanted *w;
    HASH_FIND(hh, d->state->bindings, key, len, w);
    if (w)
        free(key);
    else
        doom(d, key, len, !b->to_exchange, false);
}

static void note(const char *vhost, const char *what, const struct reply_error *err)
{
    log_warning("cluster: snapshot import in vhost '%s': %s: %s", vhost, what, err->text);
}

static void declare_exchanges(struct vhost_state *s, struct vhost *vhost)
{
    struct wanted *w, *tmp;
    HASH_ITER(hh, s->exchanges, w, tmp) {
        struct cluster_fields f = {.args = w->fields};
        struct exchange_declare d = {
            .name = cluster_get_string(&f, "name"), .type = cluster_get_string(&f, "type"),
            .arguments = cluster_get_table(&f, "arguments"), .durable = cluster_get_bool(&f, "durable"),
            .auto_delete = cluster_get_bool(&f, "auto_delete"), .internal = cluster_get_bool(&f, "internal"),
        };
        struct reply_error err;
        if (vhost_exchange_declare(vhost, &d, &err) != 0)
            note(s->name, "exchange not declared", &err);
    }
}

/* The owner a queue binding is changed as: the queue's own (an exclusive queue's copy is owned). */
static void *owner_of(struct vhost *vhost, struct proto_bytes queue)
{
    struct queue *q = vhost_queue_find(vhost, queue);
    return q ? queue_owner(q) : NULL;
}

static void add_bindings(struct vhost_state *s, struct vhost *vhost)
{
    struct wanted *w, *tmp;
    HASH_ITER(hh, s->bindings, w, tmp) {
        struct cluster_fields f = {.args = w->fields};
        struct proto_bytes source = cluster_get_string(&f, "source"), destination = cluster_get_string(&f, "destination");
        struct proto_bytes key = cluster_get_string(&f, "routing_key"), arguments = cluster_get_table(&f, "arguments");
        struct reply_error err;
        int rc = w->to_queue ? vhost_queue_bind(vhost, destination, source, key, arguments,
                                                owner_of(vhost, destination), false, &err)
                             : vhost_exchange_bind(vhost, destination, source, key, arguments, false, &err);
        if (rc != 0)
            note(s->name, "binding not added", &err);
    }
}

/* Reads back one key of binding_key. */
static struct proto_bytes key_part(const uint8_t **at)
{
    struct proto_bytes b;
    memcpy(&b.len, *at, 4);
    b.ptr = *at + 4;
    *at += 4 + b.len;
    return b;
}

static void import_vhost(struct vhost_state *s, struct vhost *vhost)
{
    struct reply_error err;
    size_t skipped;
    /* Policies first, so that the queues declared below get theirs at declare. */
    if (vhost_replace_policies_and_limits(vhost, s->defs, &skipped) == 0 && skipped)
        log_warning("cluster: snapshot import in vhost '%s': %zu policies or limits not taken (see above)", s->name,
                    skipped);
    struct doomed d = {.state = s, .vhost = vhost};
    vhost_for_each_exchange(vhost, doom_exchange, &d);
    for (size_t i = 0; i < d.count; i++)
        if (vhost_exchange_delete(vhost, (struct proto_bytes){d.keys[i], (uint32_t)d.lens[i]}, false, &err) != 0)
            note(s->name, "exchange not deleted", &err);
    doomed_free(&d);
    d = (struct doomed){.state = s, .vhost = vhost};
    vhost_for_each_queue(vhost, doom_queue, &d);
    for (size_t i = 0; i < d.count; i++) {
        uint32_t count;
        struct proto_bytes name = {d.keys[i], (uint32_t)d.lens[i]};
        if (vhost_queue_delete(vhost, name, owner_of(vhost, name), false, false, &count, &err) != 0)
            note(s->name, "queue not deleted", &err);
    }
    doomed_free(&d);
    declare_exchanges(s, vhost);
    struct wanted *w, *tmp;
    HASH_ITER(hh, s->queues, w, tmp) {
        struct cluster_fields f = {.args = w->fields};
        /* A name with the amq. prefix in the state was made by a server (server-named). */
        struct queue_declare qd = {
            .name = cluster_get_string(&f, "name"), .arguments = cluster_get_table(&f, "arguments"),
            .durable = cluster_get_bool(&f, "durable"), .auto_delete = cluster_get_bool(&f, "auto_delete"),
            .server_named = true,
        };
        struct queue *q = vhost_queue_find(vhost, qd.name);
        if (cluster_get_bool(&f, "exclusive")) {
            if (q && queue_settings(q)->exclusive)
                continue; /* this node's connection's, or its copy, kept above */
            qd.exclusive = true;
            qd.owner = cluster_foreign_owner(); /* as the apply of its declare makes it */
        }
        if (vhost_queue_declare(vhost, &qd, &q, &err) != 0)
            note(s->name, "queue not declared", &err);
    }
    add_bindings(s, vhost);
    d = (struct doomed){.state = s, .vhost = vhost};
    vhost_for_each_binding(vhost, doom_binding, &d);
    for (size_t i = 0; i < d.count; i++) {
        const uint8_t *at = d.keys[i] + 1;
        struct proto_bytes source = key_part(&at), destination = key_part(&at);
        struct proto_bytes key = key_part(&at), arguments = key_part(&at);
        int rc = d.to_queue[i] ? vhost_queue_bind(vhost, destination, source, key, arguments,
                                                  owner_of(vhost, destination), true, &err)
                               : vhost_exchange_bind(vhost, destination, source, key, arguments, true, &err);
        if (rc != 0)
            note(s->name, "binding not removed", &err);
    }
    if (d.failed)
        log_error("cluster: snapshot import in vhost '%s': out of memory; extra objects may remain", s->name);
    doomed_free(&d);
    declare_exchanges(s, vhost);
    add_bindings(s, vhost);
}

struct vhost_names {
    struct vhost_state *state;
    struct access *access;
    char **extra;
    size_t count, cap;
};

static void collect_extra_vhost(const char *name, void *arg)
{
    struct vhost_names *n = arg;
    for (struct vhost_state *s = n->state; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return;
    if (n->count == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 8;
        char **more = realloc(n->extra, cap * sizeof *more);
        if (!more)
            return;
        n->extra = more;
        n->cap = cap;
    }
    char *copy = strdup(name);
    if (copy)
        n->extra[n->count++] = copy;
}

int cluster_target_import(void *ctx, uint64_t index, bool replay, struct proto_bytes state)
{
    struct server *server = ctx;
    struct table_value qq;
    bool has_replicas = table_validate(state) == 0 && table_find(state, "quorum_queues", &qq) == 1;
    bool ok;
    struct vhost_state *states = replay ? NULL : read_state(state, &ok);
    if (!replay && !ok) {
        log_error("cluster: snapshot state malformed (or out of memory reading it); not imported");
        return -1;
    }
    /* The quorum queues' states first: checked whole, they replace the registry's or nothing
     * changes. */
    if (has_replicas && cluster_queues_import(server->replicas, state) != 0) {
        log_error("cluster: snapshot's quorum queues malformed; not imported");
        free_states(states);
        return -1;
    }
    if (replay)
        return 0;
    /* The access database first (users, vhosts, permissions), when the state has one: the
     * vhosts below are then made to agree with it. */
    struct table_value access;
    if (table_find(state, "access", &access) == 1 && access.type == TABLE_TABLE &&
        access_import(server->access, access.v.bytes) != 0)
        log_error("cluster: snapshot's access database malformed; the local one is kept");
    struct vhost_names names = {.state = states, .access = server->access};
    access_for_each_vhost(server->access, collect_extra_vhost, &names);
    for (size_t i = 0; i < names.count; i++) {
        access_delete_vhost(server->access, names.extra[i]);
        free(names.extra[i]);
    }
    free(names.extra);
    for (struct vhost_state *s = states; s; s = s->next)
        if (!access_vhost_exists(server->access, s->name) && access_add_vhost(server->access, s->name) != 0)
            log_error("cluster: snapshot import: cannot add vhost '%s'", s->name);
    server_access_applied(server); /* vhosts in line, deleted users' connections closed */
    for (struct vhost_state *s = states; s; s = s->next) {
        struct vhost_entry *e = server_vhost_entry(server, s->name, strlen(s->name));
        if (e)
            import_vhost(s, e->vhost);
    }
    cluster_queues_model_imported(server->replicas);
    free_states(states);
    server->cluster_index = index;
    if (server->persistence)
        persistence_definitions_changed(server->persistence);
    return 0;
}
