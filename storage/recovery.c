/* storage/recovery.c: replays the log at open (format and torn-tail policy: segment_log.c).
 * Each segment is walked once, checking every record's CRC and applying it to the index. The
 * usual walk reads the segment with pread through one window of READ_WINDOW bytes reused for
 * every segment (it stays in the CPU's cache; mapping 64 MiB segments cost four times the CPU
 * in page-table work and TLB misses, about half of recovery's time). The first record that is
 * not valid as a whole ends the windowed walk and the segment is then mapped and walked from
 * there by the one careful path that handles corruption, torn tails and interrupted
 * compactions. A caller that wants message data (tests, tools) also gets every segment mapped
 * and kept after its walk: live messages are reported in log order straight from the mappings
 * (no copy). Then each queue's entries or summary. One pread per window, no system call per
 * record; a progress line every 2 s. */
#include "recovery.h"
#include "segment_summary.h"
#include "store_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_WINDOW (1u << 20) /* bytes read per pread; grown only for a larger record */

struct mapped {
    uint64_t id;
    const uint8_t *data;
    size_t size;
};

/* Bytes [start, start + len) of the segment being read, in buf. */
struct window {
    uint8_t *buf;
    size_t cap, start, len;
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

/* Maps m->size bytes of fd into m->data (NULL when empty). 0 or -errno. */
static int map_fd(int fd, struct mapped *m)
{
    m->data = NULL;
    if (m->size == 0)
        return 0;
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    madvise(p, m->size, MADV_SEQUENTIAL);
    m->data = p;
    return 0;
}

/* Opens segment id and fills m->id and m->size; returns the fd or -errno. */
static int open_segment(const struct store_io_hooks *io, const char *dir, uint64_t id, struct mapped *m)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, id);
    int fd = fs_open(io, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = -errno;
        fs_close(io, fd);
        return rc;
    }
    m->id = id;
    m->size = (size_t)st.st_size;
    m->data = NULL;
    return fd;
}

/* Makes w hold bytes [off, end) of the segment (end <= its size), keeping what it already holds
 * from off on. false when the file gives fewer bytes (a read error, a shorter file) or memory
 * runs out: the caller then leaves the windowed walk for the mapping. */
static bool window_fill(const struct store_io_hooks *io, int fd, struct window *w, size_t off, size_t end)
{
    if (off >= w->start && end <= w->start + w->len)
        return true;
    size_t keep = off < w->start + w->len ? w->start + w->len - off : 0;
    if (keep > 0 && off > w->start)
        memmove(w->buf, w->buf + (off - w->start), keep);
    w->start = off;
    w->len = keep;
    size_t want = end - off > READ_WINDOW ? end - off : READ_WINDOW;
    if (want > w->cap) {
        uint8_t *grown = realloc(w->buf, want);
        if (!grown)
            return false;
        w->buf = grown;
        w->cap = want;
    }
    w->len += fs_pread_upto(io, fd, w->buf + w->len, w->cap - w->len, (off_t)(w->start + w->len));
    return end <= w->start + w->len;
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

/* Applies record r found at off of seg, after following the copies run with it. 0 or -ENOMEM. */
static int apply_found(struct index *idx, struct segment *seg, const struct rec *r, size_t off, struct copies *copies,
                       const struct storage_logger *logger, const char *path, struct recovery_result *out)
{
    if (r->type == REC_MESSAGE || copies->from != 0)
        track_copies(idx, seg, r, off, copies, logger, path);
    if (index_apply(idx, seg, r, off) < 0)
        return -ENOMEM;
    out->records++;
    return 0;
}

/* Applies the records of the segment from off on, read through w, while each is valid as a whole
 * (its length within the file, its layout and CRC right). Returns where it stopped: the end of
 * the segment, or a record the mapped walk must judge (corrupt, torn, unreadable); -ENOMEM. */
static long replay_window(const struct store_io_hooks *io, int fd, struct window *w, size_t size, size_t off,
                          struct index *idx, struct segment *seg, struct copies *copies,
                          const struct storage_logger *logger, const char *path, struct recovery_result *out)
{
    while (size - off > REC_HEADER_SIZE) {
        if (!window_fill(io, fd, w, off, off + REC_HEADER_SIZE + 1))
            break;
        const uint8_t *p = w->buf + (off - w->start);
        uint32_t length = rec_length(p);
        if (length < 1 || length > REC_MAX_LENGTH || length > size - off - REC_HEADER_SIZE ||
            !window_fill(io, fd, w, off, off + REC_HEADER_SIZE + length))
            break;
        p = w->buf + (off - w->start);
        struct rec r;
        size_t n = rec_parse(p, REC_HEADER_SIZE + length, true, &r);
        if (n == 0)
            break;
        if (apply_found(idx, seg, &r, off, copies, logger, path, out) < 0)
            return -ENOMEM;
        off += n;
    }
    return (long)off;
}

/* Applies a sealed segment's records from its checked summary (segment_summary.h) instead of
 * reading the segment: the same records, in the same order, at the same offsets. 0 or -ENOMEM. */
static int replay_summary(const struct summary *sum, struct index *idx, const struct mapped *m,
                          const struct storage_logger *logger, const char *path, struct recovery_result *out)
{
    if (sum->max_msg_id > out->max_msg_id)
        out->max_msg_id = sum->max_msg_id;
    struct segment *seg = index_add_segment(idx, m->id, m->size);
    if (!seg)
        return -ENOMEM;
    struct copies copies = {0};
    size_t pos = 0, off = SEG_HEADER_SIZE, n;
    struct rec r;
    while ((n = summary_next(sum, &pos, &r)) > 0) {
        if (apply_found(idx, seg, &r, off, &copies, logger, path, out) < 0)
            return -ENOMEM;
        off += n;
    }
    if (copies.from != 0)
        pin_sources(idx, &copies, logger, path);
    out->summarized++;
    return 0;
}

/* Walks one segment into the index: through w, and from the first record the windowed walk
 * leaves (or when w cannot even read the header) mapped into m->data. Returns the length of
 * valid data (where a torn tail of the newest segment starts), -ENOMEM, or -errno when it cannot
 * be mapped. */
static long replay_segment(const struct store_io_hooks *io, const char *dir, int fd, struct mapped *m,
                           struct window *w, bool newest, struct index *idx, const struct storage_logger *logger,
                           struct recovery_result *out)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, m->id);
    if (m->size < SEG_HEADER_SIZE) {
        if (!newest)
            storage_logf(logger, STORE_LOG_ERROR, "%s: %zu bytes, too short for a segment header; ignored",
                         path, m->size);
        return 0;
    }
    if (!newest) {
        struct summary sum;
        int rc = summary_read(io, dir, m->id, m->size, &sum);
        if (rc == 0) {
            rc = replay_summary(&sum, idx, m, logger, path, out);
            summary_release(&sum);
            return rc < 0 ? rc : (long)m->size;
        }
        if (rc != -ENOENT)
            storage_logf(logger, STORE_LOG_WARNING, "%s: its summary does not check (%s); reading the segment",
                         path, strerror(-rc));
    }
    w->start = w->len = 0; /* a new file */
    if (!window_fill(io, fd, w, 0, SEG_HEADER_SIZE))
        w = NULL;
    if (!w) {
        int rc = map_fd(fd, m);
        if (rc < 0)
            return rc;
        out->mapped++;
    }
    const uint8_t *header = w ? w->buf : m->data;
    uint64_t header_id, header_max;
    bool damaged = false;
    if (seg_header_decode(header, SEG_HEADER_SIZE, &header_id, &header_max) < 0) {
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
    if (w) {
        long reached = replay_window(io, fd, w, m->size, off, idx, seg, &copies, logger, path, out);
        if (reached < 0)
            return reached;
        off = (size_t)reached;
        if (off < m->size && !m->data) { /* something to judge: the careful walk, mapped */
            int rc = map_fd(fd, m);
            if (rc < 0)
                return rc;
        }
        if (off < m->size)
            out->mapped++;
    }
    while (off < m->size) {
        struct rec r;
        size_t n = rec_parse(m->data + off, m->size - off, true, &r);
        if (n > 0) {
            if (apply_found(idx, seg, &r, off, &copies, logger, path, out) < 0)
                return -ENOMEM;
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

static int id_in(const uint64_t *ids, long n, uint64_t id)
{
    return n > 0 && bsearch(&id, ids, (size_t)n, sizeof(*ids), id_cmp) != NULL;
}

/* Deletes the summaries that must not be read again: the newest segment's (it is appended to
 * from now on), those whose segment is gone, and temporary files of summaries being written. */
static void remove_stale_summaries(const struct store_io_hooks *io, const char *dir, const uint64_t *ids, long nids)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        bool tmp = seg_file_id(de->d_name, ".sum.tmp", &id);
        if (!tmp && (!summary_parse_name(de->d_name, &id) || (id_in(ids, nids, id) && id != ids[nids - 1])))
            continue;
        char path[SEG_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        fs_unlink(io, path);
    }
    closedir(d);
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
    struct window window = {0};
    for (long i = 0; rc == 0 && i < nids; i++) {
        int fd = open_segment(io, dir, ids[i], &maps[i]);
        rc = fd < 0 ? fd : 0;
        if (rc == 0) {
            nmaps++;
            valid = replay_segment(io, dir, fd, &maps[i], &window, i == nids - 1, idx, logger, out);
            if (valid < 0)
                rc = (int)valid;
            else if (keep_maps && !maps[i].data) /* report_messages reads from it */
                rc = map_fd(fd, &maps[i]);
        }
        if (fd >= 0)
            fs_close(io, fd);
        if (rc < 0 && rc != -ENOMEM) {
            char path[SEG_PATH_MAX];
            seg_path(path, sizeof(path), dir, ids[i]);
            storage_logf(logger, STORE_LOG_ERROR, "%s: cannot read: %s", path, strerror(-rc));
            break;
        }
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
    if (rc == 0)
        remove_stale_summaries(io, dir, ids, nids);
    if (rc == 0 && nids > 0)
        storage_logf(logger, STORE_LOG_INFO, "replayed the log: %ld segments (%llu from their summaries), %llu "
                     "records", nids, (unsigned long long)out->summarized, (unsigned long long)out->records);
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
    free(window.buf);
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
