/* storage/recovery.c: replays the log at open (format and torn-tail policy: segment_log.c).
 * Each segment is mapped and walked once, checking every record's CRC and applying it to the
 * index, and unmapped at once unless the caller wants message data; then live messages are
 * reported in log order straight from the mappings (no copy), then each queue's entries or
 * summary. No system call per record; a progress line every 2 s. */
#include "recovery.h"
#include "store_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct mapped {
    uint64_t id;
    const uint8_t *data;
    size_t size;
};

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment ids in dir, ascending, into a malloc'ed array. Returns the count or -errno. */
static long list_segments(const char *dir, uint64_t **out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (!seg_parse_name(de->d_name, &id))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *grown = realloc(ids, cap * sizeof(*ids));
            if (!grown) {
                free(ids);
                closedir(d);
                return -ENOMEM;
            }
            ids = grown;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n > 1)
        qsort(ids, n, sizeof(*ids), id_cmp);
    *out = ids;
    return (long)n;
}

static int map_segment(const char *dir, uint64_t id, struct mapped *m)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    m->id = id;
    m->size = (size_t)st.st_size;
    m->data = NULL;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        madvise(p, m->size, MADV_SEQUENTIAL);
        m->data = p;
    }
    close(fd);
    return 0;
}

/* A run of records that repeat what the index holds, starting with a copy of a live message:
 * a compaction batch whose source segments still exist. */
#define COPY_SOURCES 16
struct copies {
    size_t from;                  /* offset of the run's first record; 0: no run */
    uint64_t msg_id;              /* the message of the run's last MESSAGE record */
    uint64_t sources[COPY_SOURCES]; /* segments holding the first copies */
    size_t nsources;
};

/* The run ends in the middle of the log: its copies must never come to life, so their sources
 * are never deleted (this process; the next recovery finds the same run). */
static void pin_sources(struct index *idx, struct copies *c, const struct storage_logger *logger, const char *path)
{
    for (size_t i = 0; i < c->nsources; i++) {
        struct segment *source = index_segment(idx, c->sources[i]);
        if (source)
            source->pinned = true;
        storage_logf(logger, STORE_LOG_WARNING, "%s: copies of messages of segment %llu at offset %zu while that "
                     "segment still exists; it is kept", path, (unsigned long long)c->sources[i], c->from);
    }
    c->from = 0;
    c->nsources = 0;
}

/* Follows the copies run with record r at off (before r is applied). */
static void track_copies(struct index *idx, struct segment *seg, const struct rec *r, size_t off, struct copies *c,
                         const struct storage_logger *logger, const char *path)
{
    uint64_t source = 0;
    bool repeats = index_record_repeats(idx, seg, r, &source);
    if (repeats && r->type == REC_MESSAGE) {
        if (c->from == 0)
            c->from = off;
        c->msg_id = r->msg_id;
        for (size_t i = 0; i < c->nsources; i++)
            if (c->sources[i] == source)
                return;
        if (c->nsources < COPY_SOURCES) {
            c->sources[c->nsources++] = source;
            return;
        }
        struct segment *s = index_segment(idx, source); /* too many to remember: keep it now */
        if (s)
            s->pinned = true;
        return;
    }
    if (c->from != 0 && !(repeats && r->msg_id == c->msg_id))
        pin_sources(idx, c, logger, path);
}

/* The newest segment's valid data ends at end; a copies run reaching it is a compaction that a
 * crash interrupted before its source was deleted: cut it off with the tail. Returns where the
 * segment's valid data ends. */
static long cut_copies(struct segment *seg, const struct copies *c, size_t end, const struct storage_logger *logger,
                       const char *path)
{
    if (c->from != 0) {
        storage_logf(logger, STORE_LOG_WARNING, "%s: interrupted compaction at offset %zu (%zu bytes) cut off",
                     path, c->from, end - c->from);
        end = c->from;
    }
    seg->size = end;
    return (long)end;
}

/* Walks one mapped segment into the index. Returns the length of valid data (where a torn tail
 * of the newest segment starts), or -ENOMEM. */
static long replay_segment(const char *dir, const struct mapped *m, bool newest, struct index *idx,
                           const struct storage_logger *logger, struct recovery_result *out)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, m->id);
    if (m->size < SEG_HEADER_SIZE) {
        if (!newest)
            storage_logf(logger, STORE_LOG_ERROR, "%s: %zu bytes, too short for a segment header; ignored",
                         path, m->size);
        return 0;
    }
    uint64_t header_id, header_max;
    bool damaged = false;
    if (seg_header_decode(m->data, m->size, &header_id, &header_max) < 0) {
        storage_logf(logger, STORE_LOG_ERROR, "%s: bad segment header; reading its records anyway", path);
        damaged = true;
        out->corrupt++;
    } else {
        if (header_id != m->id)
            storage_logf(logger, STORE_LOG_WARNING, "%s: header names segment %llu", path,
                         (unsigned long long)header_id);
        if (header_max > out->max_msg_id)
            out->max_msg_id = header_max;
    }
    struct segment *seg = index_add_segment(idx, m->id, m->size);
    if (!seg)
        return -ENOMEM;
    seg->pinned = damaged;
    struct copies copies = {0};
    size_t off = SEG_HEADER_SIZE;
    while (off < m->size) {
        struct rec r;
        size_t n = rec_parse(m->data + off, m->size - off, true, &r);
        if (n > 0) {
            if (r.type == REC_MESSAGE || copies.from != 0)
                track_copies(idx, seg, &r, off, &copies, logger, path);
            if (index_apply(idx, seg, &r, off) < 0)
                return -ENOMEM;
            out->records++;
            off += n;
            continue;
        }
        out->corrupt++;
        size_t next = rec_resync(m->data, m->size, off);
        if (next == m->size && newest) {
            storage_logf(logger, STORE_LOG_WARNING, "%s: torn tail at offset %zu (%zu bytes) truncated",
                         path, off, m->size - off);
            return cut_copies(seg, &copies, off, logger, path);
        }
        if (copies.from != 0)
            pin_sources(idx, &copies, logger, path);
        storage_logf(logger, STORE_LOG_ERROR, "%s: corrupt record at offset %zu; skipped %zu bytes; "
                     "the segment is kept for inspection", path, off, next - off);
        seg->pinned = true;
        off = next;
    }
    if (newest)
        return cut_copies(seg, &copies, m->size, logger, path);
    if (copies.from != 0)
        pin_sources(idx, &copies, logger, path);
    return (long)m->size;
}

/* Cuts the newest segment to `valid` bytes, rewriting its header when it had none. */
static int repair_newest(const struct store_io_hooks *io, const char *dir, uint64_t id, size_t valid,
                         uint64_t max_msg_id)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, id);
    int fd = fs_open(io, path, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int rc = fs_ftruncate(io, fd, (off_t)valid);
    if (rc == 0 && valid < SEG_HEADER_SIZE) {
        uint8_t header[SEG_HEADER_SIZE];
        seg_header_encode(header, id, max_msg_id);
        rc = fs_pwrite_all(io, fd, header, sizeof(header), 0);
    }
    if (rc == 0)
        rc = fs_fdatasync(io, fd);
    fs_close(io, fd);
    return rc;
}

static void report_messages(const struct mapped *maps, size_t nmaps, const struct store_recovery *rec,
                            const struct index_location *locs, long n)
{
    size_t m = 0;
    for (long i = 0; i < n; i++) {
        while (m < nmaps && maps[m].id != locs[i].segment_id)
            m++; /* both ascending */
        if (m == nmaps)
            return;
        struct rec r;
        if (rec_parse(maps[m].data + locs[i].offset, maps[m].size - locs[i].offset, false, &r) > 0)
            rec->message(rec->ctx, r.msg_id, r.data, r.data_len);
    }
}

int recovery_run(const struct store_io_hooks *io, const char *dir, struct index *idx, const struct store_recovery *rec,
                 const struct storage_logger *logger, struct recovery_result *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t *ids = NULL;
    long nids = list_segments(dir, &ids);
    if (nids < 0)
        return (int)nids;
    struct mapped *maps = calloc((size_t)nids + 1, sizeof(*maps));
    int rc = maps ? 0 : -ENOMEM;
    long nmaps = 0, valid = 0;
    bool keep_maps = rec && rec->message; /* report_messages reads the mappings after the replay */
    time_t last_report = time(NULL);
    if (nids > 0)
        storage_logf(logger, STORE_LOG_INFO, "replaying the log: %ld segments", nids);
    for (long i = 0; rc == 0 && i < nids; i++) {
        rc = map_segment(dir, ids[i], &maps[i]);
        if (rc < 0) {
            char path[SEG_PATH_MAX];
            seg_path(path, sizeof(path), dir, ids[i]);
            storage_logf(logger, STORE_LOG_ERROR, "%s: cannot read: %s", path, strerror(-rc));
            break;
        }
        nmaps++;
        valid = replay_segment(dir, &maps[i], i == nids - 1, idx, logger, out);
        if (valid < 0)
            rc = (int)valid;
        if (!keep_maps && maps[i].data) { /* nothing reads it again: give the pages back now */
            munmap((void *)maps[i].data, maps[i].size);
            maps[i].data = NULL;
        }
        time_t now = time(NULL);
        if (now - last_report >= 2 && i + 1 < nids) {
            storage_logf(logger, STORE_LOG_INFO, "replaying the log: %ld of %ld segments, %llu records",
                         i + 1, nids, (unsigned long long)out->records);
            last_report = now;
        }
    }
    if (rc == 0 && idx->max_msg_id > out->max_msg_id)
        out->max_msg_id = idx->max_msg_id;
    if (rc == 0 && rec && rec->message) {
        /* 24 bytes per live message: only a caller that wants every message pays for the list */
        struct index_location *locs = NULL;
        long n = index_live_locations(idx, &locs);
        if (n < 0)
            rc = (int)n;
        else
            report_messages(maps, (size_t)nmaps, rec, locs, n);
        free(locs);
    }
    if (rc == 0 && rec && rec->entry)
        index_report_entries(idx, rec);
    if (rc == 0 && rec && rec->queue)
        index_report_queues(idx, rec);
    for (long i = 0; maps && i < nmaps; i++)
        if (maps[i].data)
            munmap((void *)maps[i].data, maps[i].size);
    if (rc == 0 && nids > 0) {
        size_t newest_size = maps[nids - 1].size;
        out->active_id = ids[nids - 1];
        out->active_size = (uint64_t)valid;
        if ((size_t)valid < newest_size || newest_size < SEG_HEADER_SIZE) {
            rc = repair_newest(io, dir, out->active_id, (size_t)valid, out->max_msg_id);
            if ((size_t)valid < SEG_HEADER_SIZE)
                out->active_size = SEG_HEADER_SIZE;
            struct segment *seg = index_segment(idx, out->active_id);
            if (seg)
                seg->size = out->active_size;
            else if (rc == 0 && !index_add_segment(idx, out->active_id, out->active_size))
                rc = -ENOMEM;
        }
    }
    free(maps);
    free(ids);
    return rc;
}
