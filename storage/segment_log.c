/* storage/segment_log.c: the on-disk format of Warren's message log, and the helpers that
 * encode, validate and create it. All integers are little-endian.
 *
 * Directory: one file per segment, named by a 20-digit decimal id, "00000000000000000001.seg",
 * ids only ever increase. Segments are replayed in id order; the newest is the active one, the
 * only one ever appended to. (The definitions blob lives beside them: definitions.c; and each
 * sealed segment's summary, NNNNNNNNNNNNNNNNNNNN.sum, which recovery may read instead of it:
 * segment_summary.h.)
 *
 * Segment header (SEG_HEADER_SIZE = 40 bytes):
 *     0  magic        8   "WRNSEG\r\n"
 *     8  version      4   1
 *    12  reserved     4   0
 *    16  segment id   8   equal to the id in the file name
 *    24  max msg id   8   highest message id the writer had seen when it created the segment
 *    32  crc32c       4   CRC32C of bytes 0..32
 *    36  reserved     4   0
 *
 * Records follow the header back to back, unaligned:
 *     0  length       4   bytes of type + payload (1 .. REC_MAX_LENGTH)
 *     4  crc32c       4   CRC32C of the length field followed by type + payload
 *     8  type         1   1 MESSAGE, 2 ENQUEUE, 3 DELIVER, 4 ACK, 5 QUEUE_DELETED, 6 PURGE
 *     9  payload      length - 1
 * Payloads:
 *     MESSAGE                  msg id (8), opaque data (the rest)
 *     ENQUEUE, DELIVER, ACK    msg id (8), queue name length (4), queue name
 *     QUEUE_DELETED            queue name length (4), queue name
 *     PURGE                    msg id (8), queue name length (4), queue name: every entry of
 *                              the queue whose message id is greater than msg id leaves
 * A MESSAGE record always precedes (in log order) the records that name its id. The same id may
 * have several MESSAGE records: compaction copies a live message forward, with an ENQUEUE (and a
 * DELIVER) per queue holding it, then deletes the segment of the first copy (index.h).
 *
 * Writing: a batch of records is written with pwrite at the end of the active segment, then
 * fdatasync'ed. A failed write or sync truncates the segment back to its size before the batch.
 * A batch never spans two segments; a new segment is created (header written and synced, the
 * directory fsynced) before a batch when the active one has reached the configured size.
 *
 * Recovery (recovery.c) checks every record's length, type, layout and CRC:
 *   - an invalid record with no valid record after it in the newest segment is a torn tail
 *     (a crash during a write): the file is truncated at the record's offset and logged;
 *   - any other invalid record is logged with its file and offset, and replay resumes at the
 *     next offset where a valid record starts (rec_resync). A complete, valid record embedded
 *     in message data could in principle be taken for a real one after such a corruption; the
 *     CRC makes it otherwise a 2^-32 event per candidate offset;
 *   - a segment whose header is damaged is logged and its records are still read; a newest
 *     segment too short to hold a header (a crash while creating it) gets a fresh header;
 *   - a segment in which corruption was found is never deleted (kept for inspection), nor are
 *     the segments that depend on it (retirement rule: index.h);
 *   - copies of live messages whose first copies still exist, with only their repeated ENQUEUE
 *     and DELIVER records after them, at the end of the newest segment are a compaction that a
 *     crash interrupted: they are cut off like a torn tail. Found anywhere else, they keep the
 *     segment of the first copies from being deleted.
 * Records that name a message id recovery does not know (its MESSAGE record was lost, or was in
 * a batch that failed) change nothing.
 */
#include "segment_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "store_fs.h"

static const uint8_t seg_magic[8] = {'W', 'R', 'N', 'S', 'E', 'G', '\r', '\n'};
#define SEG_VERSION 1

uint32_t rec_length(const uint8_t *p) { return le_get32(p); }

void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint64_t id, uint64_t max_msg_id)
{
    memset(out, 0, SEG_HEADER_SIZE);
    memcpy(out, seg_magic, 8);
    le_put32(out + 8, SEG_VERSION);
    le_put64(out + 16, id);
    le_put64(out + 24, max_msg_id);
    le_put32(out + 32, crc32c(out, 32));
}

int seg_header_decode(const uint8_t *p, size_t avail, uint64_t *id, uint64_t *max_msg_id)
{
    if (avail < SEG_HEADER_SIZE || memcmp(p, seg_magic, 8) != 0 || le_get32(p + 8) != SEG_VERSION ||
        le_get32(p + 32) != crc32c(p, 32))
        return -EBADMSG;
    *id = le_get64(p + 16);
    *max_msg_id = le_get64(p + 24);
    return 0;
}

int rec_append(struct rec_buf *buf, uint8_t type, uint64_t msg_id, const uint8_t *queue,
               size_t queue_len, const uint8_t *data, size_t data_len)
{
    size_t payload = (type == REC_QUEUE_DELETED ? 0 : 8) + (type == REC_MESSAGE ? data_len : 4 + queue_len);
    if (queue_len > REC_MAX_LENGTH || data_len > REC_MAX_LENGTH || 1 + payload > REC_MAX_LENGTH)
        return -EMSGSIZE;
    size_t need = REC_HEADER_SIZE + 1 + payload;
    if (buf->cap - buf->len < need) {
        size_t cap = buf->cap ? buf->cap : 64 * 1024;
        while (cap - buf->len < need)
            cap *= 2;
        uint8_t *grown = realloc(buf->data, cap);
        if (!grown)
            return -ENOMEM;
        buf->data = grown;
        buf->cap = cap;
    }
    uint8_t *p = buf->data + buf->len;
    le_put32(p, (uint32_t)(1 + payload));
    le_put32(p + 4, 0);
    p[8] = type;
    p += 9;
    if (type != REC_QUEUE_DELETED) {
        le_put64(p, msg_id);
        p += 8;
    }
    if (type == REC_MESSAGE) {
        if (data_len)
            memcpy(p, data, data_len);
    } else {
        le_put32(p, (uint32_t)queue_len);
        if (queue_len)
            memcpy(p + 4, queue, queue_len);
    }
    buf->len += need;
    return 0;
}

static uint32_t rec_crc(const uint8_t *p, uint32_t length)
{
    return crc32c_extend(crc32c(p, 4), p + REC_HEADER_SIZE, length);
}

void rec_seal_all(uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off + REC_HEADER_SIZE <= len) {
        uint32_t length = le_get32(buf + off);
        le_put32(buf + off + 4, rec_crc(buf + off, length));
        off += REC_HEADER_SIZE + length;
    }
}

size_t rec_parse(const uint8_t *p, size_t avail, bool check_crc, struct rec *out)
{
    if (avail < REC_HEADER_SIZE + 1)
        return 0;
    uint32_t length = le_get32(p);
    if (length < 1 || length > REC_MAX_LENGTH || length > avail - REC_HEADER_SIZE)
        return 0;
    const uint8_t *body = p + REC_HEADER_SIZE;
    uint8_t type = body[0];
    size_t rest = length - 1;
    const uint8_t *q = body + 1;
    memset(out, 0, sizeof(*out));
    out->type = type;
    switch (type) {
    case REC_MESSAGE:
        if (rest < 8)
            return 0;
        out->msg_id = le_get64(q);
        out->data = q + 8;
        out->data_len = rest - 8;
        break;
    case REC_ENQUEUE:
    case REC_DELIVER:
    case REC_ACK:
    case REC_QUEUE_DELETED:
    case REC_PURGE:
        if (type != REC_QUEUE_DELETED) {
            if (rest < 8)
                return 0;
            out->msg_id = le_get64(q);
            q += 8;
            rest -= 8;
        }
        if (rest < 4 || le_get32(q) != rest - 4)
            return 0;
        out->queue_len = le_get32(q);
        out->queue = q + 4;
        break;
    default:
        return 0;
    }
    if (check_crc && le_get32(p + 4) != rec_crc(p, length))
        return 0;
    return REC_HEADER_SIZE + (size_t)length;
}

size_t rec_resync(const uint8_t *p, size_t size, size_t from)
{
    struct rec r;
    for (size_t off = from + 1; off + REC_HEADER_SIZE < size; off++) {
        /* cheap filters first: a plausible length and a known type byte */
        uint32_t length = le_get32(p + off);
        if (length == 0 || length > size - off - REC_HEADER_SIZE)
            continue;
        uint8_t type = p[off + REC_HEADER_SIZE];
        if (type < REC_MESSAGE || type > REC_PURGE)
            continue;
        if (rec_parse(p + off, size - off, true, &r))
            return off;
    }
    return size;
}

void seg_file_path(char *out, size_t cap, const char *dir, uint64_t id, const char *suffix)
{
    snprintf(out, cap, "%s/%020llu%s", dir, (unsigned long long)id, suffix);
}

bool seg_file_id(const char *name, const char *suffix, uint64_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (strcmp(name + SEG_NAME_DIGITS, suffix) != 0)
        return false;
    *id = v;
    return true;
}

int seg_create(const struct store_io_hooks *io, const char *dir, uint64_t id, uint64_t max_msg_id)
{
    char path[SEG_PATH_MAX];
    seg_path(path, sizeof(path), dir, id);
    int fd = fs_open(io, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd == -EEXIST) /* left by an attempt whose header write and unlink both failed (below): */
        fd = fs_open(io, path, O_WRONLY | O_TRUNC | O_CLOEXEC, 0); /* no id beyond the newest is in use */
    if (fd < 0)
        return fd;
    uint8_t header[SEG_HEADER_SIZE];
    seg_header_encode(header, id, max_msg_id);
    int rc = fs_pwrite_all(io, fd, header, sizeof(header), 0);
    if (rc == 0)
        rc = fs_fdatasync(io, fd);
    if (rc == 0)
        rc = fs_fsync_dir(io, dir);
    if (rc < 0) {
        fs_close(io, fd);
        fs_unlink(io, path);
        return rc;
    }
    return fd;
}
