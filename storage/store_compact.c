/* storage/store_compact.c: compaction of sparse segments on the I/O thread (rule and crash
 * safety: index.h, Compaction). The live messages of an old segment that depends on nothing are
 * copied, with their entries, to the end of the log in one synced batch; the index moves them to
 * their copies; retirement then deletes the emptied segment, and the segments that depended only
 * on it. Runs when the thread is idle after a batch, a bounded amount at a time. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_fs.h"
#include "store_private.h"

#define COMPACT_MIN_BUDGET (1u << 20) /* data bytes a run may move, at least */

/* The oldest segment worth compacting: not active, not pinned, depending on nothing (so it goes
 * as soon as it is empty), with live messages whose data is at most a quarter of its size. */
static struct segment *candidate(struct store *store)
{
    for (size_t i = 0; i < store->idx.nsegs; i++) {
        struct segment *s = store->idx.segs[i];
        if (s->id != store->active_id && !s->pinned && s->ndeps == 0 && s->live > 0 && s->live_bytes * 4 <= s->size)
            return s;
    }
    return NULL;
}

struct copy_ctx {
    struct rec_buf *buf;
    uint64_t msg_id;
    int rc;
};

static void copy_entry(void *arg, const uint8_t *queue, uint32_t queue_len, bool delivered)
{
    struct copy_ctx *c = arg;
    if (c->rc == 0)
        c->rc = rec_append(c->buf, REC_ENQUEUE, c->msg_id, queue, queue_len, NULL, 0);
    if (c->rc == 0 && delivered)
        c->rc = rec_append(c->buf, REC_DELIVER, c->msg_id, queue, queue_len, NULL, 0);
}

/* Reads message m's record from fd into the read buffer and checks it. Returns its
 * data, or NULL when it does not read back intact (*nomem: no buffer could hold it). */
static const uint8_t *read_message(struct store *store, int fd, const struct index_message *m, bool *nomem)
{
    size_t need = REC_HEADER_SIZE + 1 + 8 + (size_t)m->len;
    if (store->compact_read_cap < need) {
        uint8_t *grown = realloc(store->compact_read, need);
        if (!grown) {
            *nomem = true;
            return NULL;
        }
        store->compact_read = grown;
        store->compact_read_cap = need;
    }
    if (fs_pread_upto(store->io, fd, store->compact_read, need, (off_t)m->offset) != need)
        return NULL;
    struct rec r;
    if (rec_parse(store->compact_read, need, true, &r) != need || r.type != REC_MESSAGE || r.msg_id != m->msg_id ||
        r.data_len != m->len)
        return NULL;
    return r.data;
}

/* Appends the copies of seg's live messages to store->compact_buf, their new offsets (relative to
 * the buffer) into offsets. Returns 0, -EBADMSG when a record does not read back intact (seg is
 * then pinned), or another -errno. */
static int copy_segment(struct store *store, struct segment *seg, const struct index_message *msgs, size_t n,
                        uint64_t *offsets)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), store->dir, seg->id);
    int fd = fs_open(store->io, path, O_RDONLY | O_CLOEXEC, 0);
    int rc = 0;
    if (fd < 0) {
        storage_logf(&store->logger, STORE_LOG_ERROR, "cannot open %s to compact it: %s; the segment is kept",
                     path, strerror(-fd));
        rc = -EBADMSG;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool nomem = false;
        const uint8_t *data = read_message(store, fd, &msgs[i], &nomem);
        if (!data) {
            rc = nomem ? -ENOMEM : -EBADMSG;
            if (!nomem)
                storage_logf(&store->logger, STORE_LOG_ERROR,
                             "%s: message %llu at offset %llu does not read back intact; the segment is kept "
                             "for inspection", path, (unsigned long long)msgs[i].msg_id,
                             (unsigned long long)msgs[i].offset);
            break;
        }
        offsets[i] = store->compact_buf.len;
        rc = rec_append(&store->compact_buf, REC_MESSAGE, msgs[i].msg_id, NULL, 0, data, msgs[i].len);
        struct copy_ctx ctx = {&store->compact_buf, msgs[i].msg_id, rc};
        size_t queues = index_message_queues(&store->idx, msgs[i].msg_id, copy_entry, &ctx);
        rc = ctx.rc;
        if (rc == 0 && queues != msgs[i].refs) { /* the index contradicts itself: leave seg alone */
            storage_logf(&store->logger, STORE_LOG_ERROR, "%s: message %llu is in %zu queues, counted in %u; "
                         "the segment is kept", path, (unsigned long long)msgs[i].msg_id, queues, msgs[i].refs);
            rc = -EBADMSG;
        }
    }
    if (fd >= 0)
        fs_close(store->io, fd);
    if (rc == -EBADMSG) {
        pthread_mutex_lock(&store->idx_lock);
        seg->pinned = true;
        pthread_mutex_unlock(&store->idx_lock);
        store_forget_summary(store, seg->id);
    }
    return rc;
}

/* Writes and syncs the compaction batch at the end of the active segment, like a caller's batch
 * (the active segment has room: see store_compact). On failure cuts the segment back and returns
 * -errno. *base: where the batch starts. */
static int write_copies(struct store *store, uint64_t *base)
{
    int rc = store_append_synced(store, store->compact_buf.data, store->compact_buf.len, base);
    if (rc == 0)
        return 0;
    storage_logf(&store->logger, STORE_LOG_ERROR, "compaction: writing segment %llu failed: %s; compaction "
                 "pauses until the next segment", (unsigned long long)store->active_id, strerror(-rc));
    store_cut_back(store);
    return rc;
}

/* The source could not be deleted: its copies must not stay in the log (index.h), so they are cut
 * off again and the messages moved back. */
static void undo(struct store *store, struct segment *seg, const struct index_message *msgs, size_t n, uint64_t base)
{
    pthread_mutex_lock(&store->idx_lock);
    for (size_t i = 0; i < n; i++)
        index_msg_relocate(&store->idx, msgs[i].msg_id, seg, msgs[i].offset);
    struct segment *active = index_segment(&store->idx, store->active_id);
    if (active)
        active->size = base;
    pthread_mutex_unlock(&store->idx_lock);
    store->active_size = base;
    store_cut_back(store);
}

/* Compacts one segment. Returns the data bytes moved, or -errno (compaction should stop). */
static long long compact_one(struct store *store, struct segment *seg)
{
    uint64_t seg_id = seg->id;
    struct index_message *msgs = NULL;
    long n = index_segment_messages(&store->idx, seg, &msgs);
    if (n < 0)
        return n;
    uint64_t *offsets = malloc(((size_t)n + 1) * sizeof(*offsets));
    int rc = offsets ? 0 : -ENOMEM;
    store->compact_buf.len = 0;
    if (rc == 0)
        rc = copy_segment(store, seg, msgs, (size_t)n, offsets);
    if (rc == 0) {
        pthread_mutex_lock(&store->idx_lock); /* readers look messages up meanwhile */
        rc = index_reserve_loose(&store->idx, (size_t)n);
        pthread_mutex_unlock(&store->idx_lock);
    }
    uint64_t base = 0, bytes = 0;
    if (rc == 0 && (rc = write_copies(store, &base)) < 0)
        store->compact_paused = true;
    if (rc == 0) {
        pthread_mutex_lock(&store->idx_lock);
        struct segment *active = index_segment(&store->idx, store->active_id);
        for (long i = 0; active && i < n; i++) {
            index_msg_relocate(&store->idx, msgs[i].msg_id, active, base + offsets[i]);
            bytes += msgs[i].len;
        }
        if (active)
            active->size = store->active_size;
        pthread_mutex_unlock(&store->idx_lock);
        store_retire_segments(store);
        char path[SEG_PATH_MAX];
        seg_path(path, sizeof(path), store->dir, seg_id);
        if (index_segment(&store->idx, seg_id) && access(path, F_OK) == 0) {
            storage_logf(&store->logger, STORE_LOG_ERROR, "compaction: segment %llu could not be deleted; its "
                         "copies are cut off again", (unsigned long long)seg_id);
            undo(store, index_segment(&store->idx, seg_id), msgs, (size_t)n, base);
            store->compact_paused = true;
            rc = -EIO;
        } else {
            atomic_fetch_add(&store->compactions, 1);
            atomic_fetch_add(&store->bytes_compacted, bytes);
            storage_logf(&store->logger, STORE_LOG_INFO, "compacted segment %llu: moved %ld messages, %llu bytes",
                         (unsigned long long)seg_id, n, (unsigned long long)bytes);
        }
    }
    if (store->compact_buf.cap > BUFFER_KEEP_BYTES) {
        free(store->compact_buf.data);
        store->compact_buf = (struct rec_buf){0};
    }
    free(offsets);
    free(msgs);
    if (rc == -EBADMSG)
        return 0; /* that segment is pinned now; others may still be compacted */
    return rc < 0 ? rc : (long long)bytes;
}

/* True when the caller has handed a batch over: it goes first. */
static bool batch_waiting(struct store *store)
{
    pthread_mutex_lock(&store->lock);
    bool busy = store->busy;
    pthread_mutex_unlock(&store->lock);
    return busy;
}

/* Copies go into the active segment only while it has room: compaction never rolls, or the
 * segment it filled would be the next candidate and it would feed itself; a caller's batch rolls
 * the full segment and so lets the next run go. */
static bool active_has_room(const struct store *store)
{
    return !store->roll_next && store->active_size < store->segment_bytes;
}

void store_compact(struct store *store)
{
    uint64_t budget = store->segment_bytes / 4 > COMPACT_MIN_BUDGET ? store->segment_bytes / 4 : COMPACT_MIN_BUDGET;
    uint64_t moved = 0;
    /* the first segment goes even when a batch waits, or a busy store would never compact */
    /* Short of space, copies would eat what the reserve gave back for acks. */
    for (bool first = true; !store->compact_paused && !store->retire_disabled && !atomic_load(&store->space_short) &&
                            moved < budget &&
                            active_has_room(store) && (first || !batch_waiting(store));
         first = false) {
        struct segment *seg = candidate(store);
        if (!seg)
            return;
        long long rc = compact_one(store, seg);
        if (rc < 0)
            return;
        moved += (uint64_t)rc + 1; /* a run ends even when only empty messages move */
    }
}
