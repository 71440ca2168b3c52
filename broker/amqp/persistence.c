/* broker/amqp/persistence.c: the glue between the model's durability events and the store
 * (storage/store.h). See persistence.h for the contract. */
#include "persistence.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_loop.h"
#include "log.h"
#include "message.h"
#include "names.h"
#include "queue.h"
#include "store.h"
#include "table.h"

/* A queue's name in the store: "<vhost>\0<queue>", both names at most NAME_MAX_LEN bytes. */
#define KEY_MAX (NAME_MAX_LEN + 1 + NAME_MAX_LEN)
#define BAD_KEYS_LOGGED 20 /* recovered keys that fail the name rules, logged one by one */

/* A queue's stored entries as recovery reported them, until the definitions are imported. */
struct recovered_queue {
    struct recovered_queue *next;
    uint64_t entries, bytes;
    uint32_t len;
    uint8_t key[]; /* "<vhost>\0<queue>" */
};

struct persistence {
    struct event_loop *loop;
    struct store *store;
    struct persistence_hooks hooks;
    uint8_t key[KEY_MAX]; /* of the record being written */
    uint64_t next_id;     /* message ids: above every id in the log, growing in log order */
    uint64_t recovered_max_id; /* ids up to this were written before the restart */
    uint64_t last_batch;  /* the batch holding the newest record that needs durability */
    uint64_t record_batch; /* the batch holding the newest record of any kind (deliveries too) */
    uint64_t writes, lost; /* records that need durability queued, and not queued (ENOMEM) */
    uint64_t durable_batch;
    bool definitions_dirty;
    uint64_t definitions_retry_ms; /* after a failed save (a full disk): not before this */
    int definitions_error;         /* of the last failed save, 0 after a success: logged once */
    uint8_t *scratch;
    size_t scratch_cap;
    /* Batches that failed, from the store's last report; kept only while on_durable runs, which
     * settles every confirm of a batch up to the durable one (so none can ask later). */
    struct failed_range {
        uint64_t first, last;
    } *failed;
    size_t failed_count, failed_cap;
    bool failed_all;      /* no memory to list one: treat every settled batch as failed */
    int last_error;       /* of the latest failed batch, 0 once one succeeded: logged once */
    /* Queues whose tail is not all readable yet: woken when a batch becomes durable. */
    struct queue **waiting;
    size_t waiting_count, waiting_cap;
    struct recovered_queue *recovered; /* start-up only */
};

static void wake_waiting(struct persistence *p);

struct persistence_mark persistence_mark(const struct persistence *p)
{
    return p ? (struct persistence_mark){p->writes, p->lost} : (struct persistence_mark){0, 0};
}

uint64_t persistence_wait_batch(const struct persistence *p, struct persistence_mark before, bool *lost)
{
    *lost = p && p->lost != before.lost;
    return p && p->writes != before.writes ? p->last_batch : 0;
}

uint64_t persistence_durable_batch(const struct persistence *p) { return p ? p->durable_batch : 0; }
uint64_t persistence_record_batch(const struct persistence *p) { return p ? p->record_batch : 0; }
bool persistence_disk_alarm(const struct persistence *p) { return p && store_disk_alarm(p->store); }

bool persistence_backlogged(const struct persistence *p, uint64_t bound)
{
    return p && bound > 0 && store_pending_bytes(p->store) > bound;
}

void persistence_store_stats(const struct persistence *p, struct store_stats *out)
{
    if (p)
        store_get_stats(p->store, out);
}

bool persistence_batch_failed(const struct persistence *p, uint64_t batch)
{
    if (p && p->failed_all)
        return true;
    for (size_t i = 0; p && i < p->failed_count; i++)
        if (batch >= p->failed[i].first && batch <= p->failed[i].last)
            return true;
    return false;
}

static void note_batch(struct persistence *p, uint64_t batch)
{
    if (batch == 0) {
        if (p->lost++ == 0)
            log_error("durable store: out of memory while recording a message; its publish is nacked");
        return;
    }
    p->last_batch = batch;
    p->record_batch = batch;
    p->writes++;
}

static uint64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static bool write_message(struct persistence *p, struct message *msg)
{
    msg->published_ms = wall_ms(); /* a message is first stored as it is routed */
    size_t need = message_serialize(msg, NULL, 0);
    if (need > p->scratch_cap) {
        uint8_t *bigger = realloc(p->scratch, need);
        if (!bigger)
            return false;
        p->scratch = bigger;
        p->scratch_cap = need;
    }
    message_serialize(msg, p->scratch, p->scratch_cap);
    uint64_t batch = store_put_message(p->store, p->next_id, p->scratch, need);
    note_batch(p, batch);
    if (batch == 0)
        return false;
    msg->id = p->next_id++;
    msg->stored = true;
    return true;
}

/* Writes queue's store name into p->key and points *out at it. The model never holds a longer
 * name (names.h); should one appear anyway, it is refused here rather than copied past the end:
 * false, logged, and the caller records nothing. */
static bool queue_key(struct persistence *p, const char *vhost, struct queue *queue, struct proto_bytes *out)
{
    struct proto_bytes name = queue_name(queue);
    size_t vlen = strlen(vhost);
    if (vlen > NAME_MAX_LEN || name.len > NAME_MAX_LEN) {
        log_error("durable store: queue name of %u bytes in a vhost name of %zu bytes is too long to store; "
                  "record dropped", name.len, vlen);
        return false;
    }
    memcpy(p->key, vhost, vlen);
    p->key[vlen] = 0;
    if (name.len)
        memcpy(p->key + vlen + 1, name.ptr, name.len);
    *out = (struct proto_bytes){p->key, (uint32_t)(vlen + 1 + name.len)};
    return true;
}

void persistence_event(struct persistence *p, const char *vhost, struct queue *queue, struct message *msg,
                       int event)
{
    struct proto_bytes name;
    if (!queue_key(p, vhost, queue, &name))
        return;
    switch (event) {
    case QUEUE_EVENT_ENQUEUED:
        if (!msg->stored && !write_message(p, msg))
            return;
        note_batch(p, store_put_enqueue(p->store, name.ptr, name.len, msg->id));
        break;
    case QUEUE_EVENT_DELIVERED: {
        /* Needs no sync of its own: it rides with the next batch (a home that sends a delivery
         * to another node waits for it: cluster_classic.c, "what waits for the store"). */
        uint64_t batch = store_put_deliver(p->store, name.ptr, name.len, msg->id);
        if (batch)
            p->record_batch = batch;
        break;
    }
    case QUEUE_EVENT_REMOVED:
        store_put_ack(p->store, name.ptr, name.len, msg->id);
        break;
    }
}

void persistence_queue_deleted(struct persistence *p, const char *vhost, struct queue *queue)
{
    struct proto_bytes name;
    if (queue_key(p, vhost, queue, &name))
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
        if (rc != 0) {
            /* Retried once a second, not every pass: a full disk would make each pass pay for
             * a failing write and a log line. */
            if (rc != p->definitions_error)
                log_error("durable store: cannot save definitions: %s; retrying every second", strerror(-rc));
            p->definitions_error = rc;
            p->definitions_retry_ms = loop_now_ms(p->loop) + 1000;
        } else {
            if (p->definitions_error)
                log_info("durable store: definitions saved again");
            p->definitions_error = 0;
            p->definitions_dirty = false;
        }
    }
    table_buf_free(&blob);
}

void persistence_before_sleep(struct persistence *p)
{
    if (!p)
        return;
    /* Definitions first: a declare-ok queued this pass goes out only after its definition is
     * on disk, since output is flushed after this. */
    if (p->definitions_dirty && loop_now_ms(p->loop) >= p->definitions_retry_ms)
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
        if (error != p->last_error) /* a full disk fails batch after batch: say it once */
            log_error("durable store: batches %llu..%llu were not written: %s; their publishes are nacked%s",
                      (unsigned long long)first, (unsigned long long)last, strerror(error),
                      error == ENOSPC ? " (publishers stay blocked until space is freed)" : "");
        p->last_error = error;
        if (p->failed_count == p->failed_cap) {
            size_t cap = p->failed_cap ? p->failed_cap * 2 : 8;
            struct failed_range *grown = realloc(p->failed, cap * sizeof *grown);
            if (grown) {
                p->failed = grown;
                p->failed_cap = cap;
            }
        }
        if (p->failed_count < p->failed_cap)
            p->failed[p->failed_count++] = (struct failed_range){first, last};
        else
            p->failed_all = true; /* nacking too much is safe, acking too much is not */
        if (last > durable)
            durable = last; /* settled, if not well */
        changed = true;
    }
    if (changed && durable > p->durable_batch && p->failed_count == 0 && !p->failed_all)
        p->last_error = 0; /* a batch went through again */
    p->durable_batch = durable;
    if (changed && p->waiting_count)
        wake_waiting(p);
    if (changed && p->hooks.on_durable)
        p->hooks.on_durable(p->hooks.ctx);
    p->failed_count = 0;
    p->failed_all = false;
}

/* ---- paging ---- */

struct page_read {
    struct persistence *p;
    struct queue *queue;
    struct proto_bytes key;
    uint64_t now_ms, wall_ms, last_id;
};

static void page_entry(void *ctx, uint64_t msg_id, const uint8_t *data, size_t len, bool delivered)
{
    struct page_read *r = ctx;
    struct persistence *p = r->p;
    struct message *msg = data ? message_deserialize(msg_id, data, len) : NULL;
    if (data && !msg)
        log_error("durable store: message %llu does not decode; dropped", (unsigned long long)msg_id);
    if (msg && !message_is_persistent(msg) && msg_id <= p->recovered_max_id &&
        !queue_kind(r->queue)->persists_all) {
        message_release(msg); /* transient, only on disk because it was paged: not kept over a restart */
        msg = NULL;
    }
    if (!msg)
        store_put_ack(p->store, r->key.ptr, r->key.len, msg_id);
    uint64_t age = msg && r->wall_ms > msg->published_ms ? r->wall_ms - msg->published_ms : 0;
    queue_page_in(r->queue, msg_id, len, msg, delivered, r->now_ms, age);
    message_release(msg);
    r->last_id = msg_id;
}

static bool waiting_add(struct persistence *p, struct queue *queue)
{
    if (p->waiting_count == p->waiting_cap) {
        size_t cap = p->waiting_cap ? p->waiting_cap * 2 : 8;
        struct queue **grown = realloc(p->waiting, cap * sizeof *grown);
        if (!grown)
            return false;
        p->waiting = grown;
        p->waiting_cap = cap;
    }
    queue_retain(queue);
    p->waiting[p->waiting_count++] = queue;
    return true;
}

size_t persistence_page_in(struct persistence *p, const char *vhost, struct queue *queue, uint64_t after_id,
                           size_t max, bool *complete)
{
    /* Decided before reading: a batch applied to the store's index is durable only after. */
    *complete = store_durable_batch(p->store) >= p->last_batch;
    uint8_t key[sizeof p->key];
    struct proto_bytes k;
    if (!queue_key(p, vhost, queue, &k)) {
        *complete = true;
        return 0;
    }
    memcpy(key, k.ptr, k.len);
    struct page_read r = {
        .p = p,
        .queue = queue,
        .key = {key, k.len},
        .now_ms = loop_now_ms(p->loop),
        .wall_ms = wall_ms(),
        .last_id = after_id,
    };
    size_t total = 0;
    while (total < max) {
        long n = store_read_queue(p->store, key, k.len, r.last_id, max - total, page_entry, &r);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    if (total < max && !*complete && !waiting_add(p, queue))
        *complete = true; /* out of memory: better a short count than a queue never woken */
    return total;
}

void persistence_page_purge(struct persistence *p, const char *vhost, struct queue *queue, uint64_t after_id)
{
    struct proto_bytes name;
    if (queue_key(p, vhost, queue, &name))
        note_batch(p, store_put_purge(p->store, name.ptr, name.len, after_id));
}

static void wake_waiting(struct persistence *p)
{
    size_t count = p->waiting_count;
    struct queue **queues = p->waiting;
    p->waiting = NULL; /* dispatching may page in, and add queues back */
    p->waiting_count = p->waiting_cap = 0;
    uint64_t now = loop_now_ms(p->loop);
    for (size_t i = 0; i < count; i++) {
        queue_page_wake(queues[i]);
        queue_dispatch(queues[i], now);
        queue_release(queues[i]);
    }
    free(queues);
}

/* ---- recovery ---- */

static void recover_queue(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t entries, uint64_t bytes)
{
    struct persistence *p = ctx;
    struct recovered_queue *r = malloc(sizeof *r + queue_len);
    if (!r) {
        log_error("durable store: out of memory listing recovered queues");
        return;
    }
    r->entries = entries;
    r->bytes = bytes;
    r->len = (uint32_t)queue_len;
    memcpy(r->key, queue, queue_len);
    r->next = p->recovered;
    p->recovered = r;
}

/* Splits a queue's store name, as read back from a segment, into its vhost and queue names;
 * NULL when both obey names.h, else what is wrong (the record may have been written by anyone). */
static const char *split_key(const uint8_t *key, uint32_t len, struct proto_bytes *vhost, struct proto_bytes *queue)
{
    const char *why;
    const uint8_t *nul = len ? memchr(key, 0, len) : NULL;
    if (!nul)
        return "no vhost name";
    *vhost = (struct proto_bytes){key, (uint32_t)(nul - key)};
    *queue = (struct proto_bytes){nul + 1, (uint32_t)(len - vhost->len - 1)};
    if (name_check(*vhost, false, &why) != 0 || name_check(*queue, false, &why) != 0)
        return why;
    return NULL;
}

static void restore(struct persistence *p)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = store_load_definitions(p->store, &blob, &len);
    if (rc == 0 && len > UINT32_MAX)
        rc = -EFBIG; /* the store caps it lower; a table's length is 32 bits */
    if (rc != 0)
        log_error("durable store: definitions unreadable (%s); starting without them", strerror(-rc));
    else if (blob && p->hooks.import_definitions(p->hooks.ctx, (struct proto_bytes){blob, (uint32_t)len}) != 0)
        rc = -EBADMSG;
    free(blob);
    if (rc == -EBADMSG || rc == -EFBIG)
        store_set_aside_definitions(p->store);
    uint64_t restored = 0, orphans = 0, bad_keys = 0;
    while (p->recovered) {
        struct recovered_queue *r = p->recovered;
        p->recovered = r->next;
        struct proto_bytes vhost, queue;
        const char *why = split_key(r->key, r->len, &vhost, &queue);
        struct queue *q = why ? NULL : p->hooks.find_queue(p->hooks.ctx, vhost, queue);
        if (why && bad_keys++ < BAD_KEYS_LOGGED) {
            char shown[NAME_QUOTE_SIZE];
            log_warning("durable store: %llu stored entries name a queue that cannot exist ('%s', %u bytes: %s); "
                        "removed",
                        (unsigned long long)r->entries, name_quote((struct proto_bytes){r->key, r->len}, shown),
                        r->len, why);
        }
        if (q) {
            queue_page_set_tail(q, r->entries, r->bytes);
            restored += r->entries;
        } else {
            orphans += why ? 0 : r->entries; /* the bad ones were logged above */
            note_batch(p, store_put_queue_deleted(p->store, r->key, r->len));
        }
        free(r);
    }
    if (bad_keys > BAD_KEYS_LOGGED)
        log_warning("durable store: %llu more queue names in the log cannot exist; their entries removed",
                    (unsigned long long)(bad_keys - BAD_KEYS_LOGGED));
    if (orphans)
        log_warning("durable store: %llu stored entries belong to queues that no longer exist; removed",
                    (unsigned long long)orphans);
    log_info("durable store: recovered %llu messages", (unsigned long long)restored);
}

/* The store logs from its I/O thread too; log_write formats and prints each line with one
 * call, which is safe to share between the two threads. */
static void store_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    enum log_level l = level == STORE_LOG_ERROR ? LOG_ERROR : level == STORE_LOG_WARNING ? LOG_WARNING : LOG_INFO;
    log_write(l, "durable store: %s", msg);
}

int persistence_open(struct event_loop *loop, const char *data_dir, uint64_t disk_free_limit,
                     uint64_t segment_bytes, const struct persistence_hooks *hooks, struct persistence **out)
{
    *out = NULL;
    struct persistence *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->loop = loop;
    p->hooks = *hooks;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/store", data_dir);
    struct store_options opts = {.dir = dir, .disk_free_limit = disk_free_limit,
                                 .segment_bytes = segment_bytes, .log = store_log};
    struct store_recovery rec = {.queue = recover_queue, .ctx = p};
    log_info("durable store: opening %s", dir);
    int rc = store_open(&opts, &rec, &p->store);
    if (rc != 0) {
        log_error("durable store: cannot open %s: %s", dir, strerror(-rc));
        while (p->recovered) {
            struct recovered_queue *r = p->recovered;
            p->recovered = r->next;
            free(r);
        }
        free(p);
        return -1;
    }
    p->recovered_max_id = store_max_message_id(p->store);
    p->next_id = p->recovered_max_id + 1;
    *out = p;
    restore(p);
    if (loop_watch(loop, store_event_fd(p->store), LOOP_READABLE, on_store_event, p) != 0) {
        log_error("durable store: cannot watch its event fd");
        store_close(p->store);
        free(p);
        *out = NULL;
        return -1;
    }
    return 0;
}

void persistence_close(struct persistence *p)
{
    if (!p)
        return;
    if (p->definitions_dirty)
        save_definitions(p);
    loop_unwatch(p->loop, store_event_fd(p->store));
    store_close(p->store);
    for (size_t i = 0; i < p->waiting_count; i++)
        queue_release(p->waiting[i]);
    free(p->waiting);
    free(p->failed);
    free(p->scratch);
    free(p);
}
