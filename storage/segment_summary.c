/* storage/segment_summary.c: writing and reading segment summaries (format and rules:
 * segment_summary.h). */
#include "segment_summary.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "store_fs.h"

static const uint8_t summary_magic[8] = {'W', 'R', 'N', 'S', 'U', 'M', '\r', '\n'};
#define SUMMARY_VERSION 1
#define SKELETON_DATA 4 /* a MESSAGE record's data in a summary: the length it has in the segment */

static void drop_body(struct summary_builder *b)
{
    free(b->body.data);
    b->body = (struct rec_buf){0};
}

void summary_start(struct summary_builder *b, uint64_t id, uint64_t max_msg_id, uint64_t size, bool valid,
                   uint64_t segment_bytes)
{
    b->body.len = 0;
    b->segment_id = id;
    b->max_msg_id = max_msg_id;
    b->covered = b->last_base = size;
    b->last_len = 0;
    b->cap = segment_bytes / SUMMARY_MAX_FRACTION;
    b->valid = valid && size == SEG_HEADER_SIZE;
}

static void abandon(struct summary_builder *b)
{
    b->valid = false;
    drop_body(b);
}

void summary_add(struct summary_builder *b, const uint8_t *buf, size_t len, uint64_t base)
{
    if (!b->valid)
        return;
    if (base != b->covered) { /* bytes the summary never saw */
        abandon(b);
        return;
    }
    b->last_base = b->covered;
    b->last_len = b->body.len;
    size_t off = 0, n;
    struct rec r;
    while (off < len && (n = rec_parse(buf + off, len - off, false, &r)) > 0) {
        int rc;
        if (r.type == REC_MESSAGE) {
            uint8_t length[SKELETON_DATA];
            le_put32(length, (uint32_t)r.data_len);
            rc = rec_append(&b->body, REC_MESSAGE, r.msg_id, NULL, 0, length, sizeof(length));
        } else {
            rc = rec_append(&b->body, r.type, r.msg_id, r.queue, r.queue_len, NULL, 0);
        }
        if (rc < 0 || b->body.len > b->cap) {
            abandon(b);
            return;
        }
        off += n;
    }
    if (off != len) { /* cannot happen for records this store encoded; never guess */
        abandon(b);
        return;
    }
    b->covered = base + len;
}

void summary_cut(struct summary_builder *b, uint64_t size, bool ok)
{
    if (!b->valid || (ok && size == b->covered))
        return;
    if (ok && size == b->last_base) { /* the latest append was taken back */
        b->covered = b->last_base;
        b->body.len = b->last_len;
        return;
    }
    abandon(b);
}

int summary_write(const struct store_io_hooks *io, const char *dir, struct summary_builder *b)
{
    if (!b->valid) {
        drop_body(b);
        return 0;
    }
    rec_seal_all(b->body.data, b->body.len);
    uint8_t header[SUMMARY_HEADER_SIZE] = {0};
    memcpy(header, summary_magic, 8);
    le_put32(header + 8, SUMMARY_VERSION);
    le_put64(header + 16, b->segment_id);
    le_put64(header + 24, b->covered);
    le_put64(header + 32, b->max_msg_id);
    le_put64(header + 40, b->body.len);
    le_put32(header + 48, crc32c(b->body.data, b->body.len));
    le_put32(header + 52, crc32c(header, 52));
    char path[SEG_PATH_MAX], tmp[SEG_PATH_MAX + 8];
    summary_path(path, sizeof(path), dir, b->segment_id);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = fs_open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? fd : fs_pwrite_all(io, fd, header, sizeof(header), 0);
    if (rc == 0 && b->body.len)
        rc = fs_pwrite_all(io, fd, b->body.data, b->body.len, SUMMARY_HEADER_SIZE);
    if (rc == 0)
        rc = fs_fdatasync(io, fd);
    if (fd >= 0)
        fs_close(io, fd);
    if (rc == 0)
        rc = fs_rename(io, tmp, path);
    if (rc < 0 && fd >= 0)
        fs_unlink(io, tmp);
    if (rc == 0) /* a power loss keeps it: the restart after one is when it saves the most */
        rc = fs_fsync_dir(io, dir);
    b->valid = false;
    drop_body(b);
    return rc;
}

void summary_free(struct summary_builder *b) { drop_body(b); }

/* The total size in the segment of a summary record of n bytes parsed as r. */
static uint64_t segment_size_of(const struct rec *r, size_t n)
{
    return r->type == REC_MESSAGE ? n - SKELETON_DATA + le_get32(r->data) : n;
}

int summary_read(const struct store_io_hooks *io, const char *dir, uint64_t id, uint64_t size, struct summary *out)
{
    memset(out, 0, sizeof(*out));
    char path[SEG_PATH_MAX];
    summary_path(path, sizeof(path), dir, id);
    int fd = fs_open(io, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    uint8_t header[SUMMARY_HEADER_SIZE];
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (fs_pread_upto(io, fd, header, sizeof(header), 0) != sizeof(header) ||
                    memcmp(header, summary_magic, 8) != 0 || le_get32(header + 8) != SUMMARY_VERSION ||
                    le_get32(header + 52) != crc32c(header, 52) || le_get64(header + 16) != id ||
                    le_get64(header + 24) != size || le_get64(header + 40) != (uint64_t)st.st_size - SUMMARY_HEADER_SIZE ||
                    le_get64(header + 40) > size))
        rc = -EBADMSG; /* a summary never outgrows its segment */
    size_t len = rc == 0 ? (size_t)le_get64(header + 40) : 0;
    uint8_t *body = rc == 0 ? malloc(len ? len : 1) : NULL;
    if (rc == 0 && !body)
        rc = -ENOMEM;
    if (rc == 0 && (fs_pread_upto(io, fd, body, len, SUMMARY_HEADER_SIZE) != len ||
                    le_get32(header + 48) != crc32c(body, len)))
        rc = -EBADMSG;
    fs_close(io, fd);
    /* Every record parses and they tile the segment exactly: checked before anything is applied. */
    uint64_t offset = SEG_HEADER_SIZE;
    for (size_t pos = 0, n; rc == 0 && pos < len; pos += n) {
        struct rec r;
        n = rec_parse(body + pos, len - pos, false, &r);
        if (n == 0 || (r.type == REC_MESSAGE && r.data_len != SKELETON_DATA)) {
            rc = -EBADMSG;
            break;
        }
        uint64_t in_segment = segment_size_of(&r, n);
        if (in_segment - REC_HEADER_SIZE > REC_MAX_LENGTH || in_segment > size - offset)
            rc = -EBADMSG;
        else
            offset += in_segment;
    }
    if (rc == 0 && offset != size)
        rc = -EBADMSG;
    if (rc < 0) {
        free(body);
        return rc;
    }
    out->body = body;
    out->len = len;
    out->max_msg_id = le_get64(header + 32);
    return 0;
}

size_t summary_next(const struct summary *s, size_t *pos, struct rec *r)
{
    if (*pos >= s->len)
        return 0;
    size_t n = rec_parse(s->body + *pos, s->len - *pos, false, r); /* checked by summary_read */
    size_t in_segment = (size_t)segment_size_of(r, n);
    if (r->type == REC_MESSAGE) {
        r->data_len = le_get32(r->data);
        r->data = NULL;
    }
    *pos += n;
    return in_segment;
}

void summary_release(struct summary *s)
{
    free(s->body);
    memset(s, 0, sizeof(*s));
}
