/* broker/amqp/persistence.c: the glue between the model's durability events and the store
 * (storage/store.h). See persistence.h for the contract. */
#include "persistence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "queue.h"
#include "store.h"
#include "table.h"
#include "uthash.h"

#define FAILED_RANGES_MAX 16

struct recovered_message {
    uint64_t id;
    struct message *msg;
    UT_hash_handle hh;
};

/* Store names of queues seen during recovery, interned: entries are many, queues few. */
struct recovered_key {
    uint16_t len;
    uint8_t bytes[512];
    UT_hash_handle hh;
};

struct recovered_entry {
    uint64_t msg_id;
    bool delivered;
    struct recovered_key *key;
};

struct persistence {
    struct event_loop *loop;
    struct store *store;
    struct persistence_hooks hooks;
    uint8_t key[512]; /* "<vhost>\0<queue>" of the record being written */
    uint64_t last_batch;
    uint64_t durable_batch;
    bool definitions_dirty;
    uint8_t *scratch;
    size_t scratch_cap;
    struct {
        uint64_t first, last;
    } failed[FAILED_RANGES_MAX];
    size_t failed_count;
    /* Recovery only. */
    struct recovered_message *recovered;
    struct recovered_entry *entries;
    size_t entry_count, entry_cap;
    struct recovered_key *keys;
};

uint64_t persistence_last_batch(const struct persistence *p) { return p ? p->last_batch : 0; }
uint64_t persistence_durable_batch(const struct persistence *p) { return p ? p->durable_batch : 0; }
bool persistence_disk_alarm(const struct persistence *p) { return p && store_disk_alarm(p->store); }

bool persistence_batch_failed(const struct persistence *p, uint64_t batch)
{
    for (size_t i = 0; p && i < p->failed_count; i++)
        if (batch >= p->failed[i].first && batch <= p->failed[i].last)
            return true;
    return false;
}

static void note_batch(struct persistence *p, uint64_t batch)
{
    if (batch == 0) {
        log_error("durable store: out of memory while recording a message");
        return;
    }
    p->last_batch = batch;
}

static bool write_message(struct persistence *p, struct message *msg)
{
    size_t need = message_serialize(msg, NULL, 0);
    if (need > p->scratch_cap) {
        uint8_t *bigger = realloc(p->scratch, need);
        if (!bigger)
            return false;
        p->scratch = bigger;
        p->scratch_cap = need;
    }
    message_serialize(msg, p->scratch, p->scratch_cap);
    note_batch(p, store_put_message(p->store, msg->id, p->scratch, need));
    msg->stored = true;
    return true;
}

static struct proto_bytes queue_key(struct persistence *p, const char *vhost, struct queue *queue)
{
    struct proto_bytes name = queue_name(queue);
    size_t vlen = strlen(vhost);
    memcpy(p->key, vhost, vlen);
    p->key[vlen] = 0;
    memcpy(p->key + vlen + 1, name.ptr, name.len);
    return (struct proto_bytes){p->key, (uint32_t)(vlen + 1 + name.len)};
}

void persistence_event(struct persistence *p, const char *vhost, struct queue *queue, struct message *msg,
                       int event)
{
    struct proto_bytes name = queue_key(p, vhost, queue);
    switch (event) {
    case QUEUE_EVENT_ENQUEUED:
        if (!msg->stored && !write_message(p, msg))
            return;
        note_batch(p, store_put_enqueue(p->store, name.ptr, name.len, msg->id));
        break;
    case QUEUE_EVENT_DELIVERED:
        /* Needs no sync of its own: it rides with the next batch. */
        store_put_deliver(p->store, name.ptr, name.len, msg->id);
        break;
    case QUEUE_EVENT_REMOVED:
        store_put_ack(p->store, name.ptr, name.len, msg->id);
        break;
    }
}

void persistence_queue_deleted(struct persistence *p, const char *vhost, struct queue *queue)
{
    struct proto_bytes name = queue_key(p, vhost, queue);
    note_batch(p, store_put_queue_deleted(p->store, name.ptr, name.len));
}

void persistence_definitions_changed(struct persistence *p) { p->definitions_dirty = true; }

static void save_definitions(struct persistence *p)
{
    struct table_buf blob = {0};
    if (p->hooks.export_definitions(p->hooks.ctx, &blob) != 0) {
        log_error("durable store: cannot encode definitions (out of memory)");
    } else {
        int rc = store_save_definitions(p->store, blob.data, blob.len);
        if (rc != 0)
            log_error("durable store: cannot save definitions: %s", strerror(-rc));
        else
            p->definitions_dirty = false;
    }
    table_buf_free(&blob);
}

void persistence_before_sleep(struct persistence *p)
{
    if (!p)
        return;
    /* Definitions first: a declare-ok queued this pass goes out only after its definition is
     * on disk, since output is flushed after this. */
    if (p->definitions_dirty)
        save_definitions(p);
    store_flush(p->store);
}

static void on_store_event(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    (void)mask;
    struct persistence *p = data;
    uint64_t durable = store_poll(p->store);
    uint64_t first, last;
    int error;
    bool changed = durable != p->durable_batch;
    while (store_take_failure(p->store, &first, &last, &error)) {
        log_error("durable store: batches %llu..%llu were not written: %s; their publishes are nacked",
                  (unsigned long long)first, (unsigned long long)last, strerror(error));
        if (p->failed_count == FAILED_RANGES_MAX) {
            memmove(p->failed, p->failed + 1, sizeof p->failed[0] * (FAILED_RANGES_MAX - 1));
            p->failed_count--;
        }
        p->failed[p->failed_count].first = first;
        p->failed[p->failed_count].last = last;
        p->failed_count++;
        if (last > durable)
            durable = last; /* settled, if not well */
        changed = true;
    }
    p->durable_batch = durable;
    if (changed && p->hooks.on_durable)
        p->hooks.on_durable(p->hooks.ctx);
}

/* ---- recovery ---- */

static void recover_message(void *ctx, uint64_t msg_id, const uint8_t *data, size_t len)
{
    struct persistence *p = ctx;
    struct recovered_message *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->msg = message_deserialize(msg_id, data, len);
    if (!r->msg) {
        log_warning("durable store: message %llu does not decode; skipped", (unsigned long long)msg_id);
        free(r);
        return;
    }
    r->id = msg_id;
    HASH_ADD(hh, p->recovered, id, sizeof r->id, r);
}

static void recover_entry(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t msg_id, bool delivered)
{
    struct persistence *p = ctx;
    struct recovered_key *key;
    if (queue_len > sizeof key->bytes)
        return;
    HASH_FIND(hh, p->keys, queue, queue_len, key);
    if (!key) {
        key = calloc(1, sizeof *key);
        if (!key)
            return;
        key->len = (uint16_t)queue_len;
        memcpy(key->bytes, queue, queue_len);
        HASH_ADD(hh, p->keys, bytes, key->len, key);
    }
    if (p->entry_count == p->entry_cap) {
        size_t cap = p->entry_cap ? p->entry_cap * 2 : 1024;
        struct recovered_entry *bigger = realloc(p->entries, cap * sizeof *bigger);
        if (!bigger)
            return;
        p->entries = bigger;
        p->entry_cap = cap;
    }
    struct recovered_entry *e = &p->entries[p->entry_count++];
    e->msg_id = msg_id;
    e->delivered = delivered;
    e->key = key;
}

static void restore(struct persistence *p)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = store_load_definitions(p->store, &blob, &len);
    if (rc != 0)
        log_error("durable store: definitions unreadable (%s); starting without them", strerror(-rc));
    else if (blob)
        p->hooks.import_definitions(p->hooks.ctx, (struct proto_bytes){blob, (uint32_t)len});
    free(blob);
    uint64_t now = loop_now_ms(p->loop);
    size_t restored = 0, orphans = 0;
    log_info("durable store: replayed the log: %u messages, %zu queue entries to restore",
             HASH_COUNT(p->recovered), p->entry_count);
    for (size_t i = 0; i < p->entry_count; i++) {
        if (i && i % 250000 == 0)
            log_info("durable store: restored %zu of %zu queue entries", i, p->entry_count);
        struct recovered_entry *e = &p->entries[i];
        struct recovered_message *r;
        HASH_FIND(hh, p->recovered, &e->msg_id, sizeof e->msg_id, r);
        const uint8_t *nul = memchr(e->key->bytes, 0, e->key->len);
        struct queue *q = NULL;
        if (nul) {
            struct proto_bytes vhost = {e->key->bytes, (uint32_t)(nul - e->key->bytes)};
            struct proto_bytes queue = {nul + 1, (uint32_t)(e->key->len - (size_t)(nul + 1 - e->key->bytes))};
            q = p->hooks.find_queue(p->hooks.ctx, vhost, queue);
        }
        if (!r || !q) {
            orphans++;
            continue;
        }
        if (queue_restore(q, r->msg, e->delivered, now) == 0)
            restored++;
    }
    struct recovered_message *r, *tmp;
    HASH_ITER(hh, p->recovered, r, tmp) {
        HASH_DEL(p->recovered, r);
        message_release(r->msg);
        free(r);
    }
    free(p->entries);
    p->entries = NULL;
    p->entry_count = p->entry_cap = 0;
    struct recovered_key *k, *ktmp;
    HASH_ITER(hh, p->keys, k, ktmp) {
        HASH_DEL(p->keys, k);
        free(k);
    }
    if (orphans)
        log_warning("durable store: %zu entries refer to missing queues or messages; dropped", orphans);
    log_info("durable store: recovered %zu messages", restored);
}

/* The store logs from its I/O thread too; log_write formats and prints each line with one
 * call, which is safe to share between the two threads. */
static void store_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    enum log_level l = level == STORE_LOG_ERROR ? LOG_ERROR : level == STORE_LOG_WARNING ? LOG_WARNING : LOG_INFO;
    log_write(l, "durable store: %s", msg);
}

struct persistence *persistence_open(struct event_loop *loop, const char *data_dir,
                                     const struct persistence_hooks *hooks)
{
    struct persistence *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    p->hooks = *hooks;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/store", data_dir);
    struct store_options opts = {.dir = dir, .log = store_log};
    struct store_recovery rec = {.message = recover_message, .entry = recover_entry, .ctx = p};
    log_info("durable store: opening %s", dir);
    int rc = store_open(&opts, &rec, &p->store);
    if (rc != 0) {
        log_error("durable store: cannot open %s: %s", dir, strerror(-rc));
        free(p->entries);
        free(p);
        return NULL;
    }
    message_reserve_ids(store_max_message_id(p->store));
    restore(p);
    if (loop_watch(loop, store_event_fd(p->store), LOOP_READABLE, on_store_event, p) != 0) {
        log_error("durable store: cannot watch its event fd");
        store_close(p->store);
        free(p);
        return NULL;
    }
    return p;
}

void persistence_close(struct persistence *p)
{
    if (!p)
        return;
    if (p->definitions_dirty)
        save_definitions(p);
    loop_unwatch(p->loop, store_event_fd(p->store));
    store_close(p->store);
    free(p->scratch);
    free(p);
}
