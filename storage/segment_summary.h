/* storage/segment_summary.h: a sealed segment's summary, so that recovery need not read message
 * bodies. A segment's records are fixed once a newer segment exists (only the newest is ever
 * appended to or cut), so when the I/O thread rolls to a new segment it writes beside the old one
 * a file holding the same records in the same order with every MESSAGE record's body left out
 * (its length kept). Recovery walks that instead of the segment, applying each record exactly as
 * the segment walk would, with the offset the record has in the segment; for 1 KiB messages it
 * reads about 1/20 of the bytes. The log stays the only truth:
 *   - a summary is built only from records that were synced and applied to the index, and is
 *     abandoned (never written) as soon as the segment is cut back to anything but a size the
 *     summary knows, or grows beyond SUMMARY_MAX_FRACTION of the segment (small messages: the
 *     summary would save little);
 *   - it names its segment id and the segment's size; recovery uses it only for a segment that is
 *     not the newest and whose size matches, only when its header and body CRCs match and every
 *     record parses and the records tile the segment exactly; otherwise it walks the segment;
 *   - recovery deletes the newest segment's summary (that segment is appended to again) and
 *     summaries whose segment is gone; retirement deletes a segment's summary with it.
 * What it gives up: an old segment's records are no longer CRC-checked at start-up when its
 * summary is used. A damaged message record is found when its queue reads it back (reported as
 * missing, store_read_queue) instead of at start; the message is lost either way.
 *
 * File NNNNNNNNNNNNNNNNNNNN.sum (the segment's id), little-endian:
 *     0  magic          8   "WRNSUM\r\n"
 *     8  version        4   1
 *    12  reserved       4   0
 *    16  segment id     8
 *    24  segment size   8   bytes of the segment its records cover (its whole file)
 *    32  max msg id     8   the segment header's
 *    40  body length    8
 *    48  body crc32c    4
 *    52  header crc32c  4   of bytes 0..52
 * Body: records in the segment's framing (segment_log.c); a MESSAGE record's payload is its
 * message id (8) and the length of the data it has in the segment (4) instead of the data. */
#ifndef WARREN_SEGMENT_SUMMARY_H
#define WARREN_SEGMENT_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segment_log.h"
#include "store.h"

#define SUMMARY_HEADER_SIZE 56
#define SUMMARY_MAX_FRACTION 4 /* a summary larger than segment_bytes / this is abandoned */

/* The summary of the active segment, built as its batches are written (I/O thread). */
struct summary_builder {
    struct rec_buf body;
    uint64_t segment_id, max_msg_id;
    uint64_t covered;              /* segment bytes its records cover, header included */
    uint64_t last_base, last_len;  /* covered and body length before the latest append */
    uint64_t cap;                  /* body bytes allowed */
    bool valid;
};

/* Starts the summary of segment id, created with max_msg_id in its header and size bytes long.
 * valid: false for a segment whose earlier records the builder never saw (the newest segment at
 * a restart); it then never gets a summary. */
void summary_start(struct summary_builder *b, uint64_t id, uint64_t max_msg_id, uint64_t size, bool valid,
                   uint64_t segment_bytes);
/* The sealed records buf[0, len) were synced at offset base of the segment. */
void summary_add(struct summary_builder *b, const uint8_t *buf, size_t len, uint64_t base);
/* The segment was cut back to size bytes (ok), or a cut failed and its size is unknown (!ok). */
void summary_cut(struct summary_builder *b, uint64_t size, bool ok);
/* Writes the summary of a sealed segment (when still valid) as dir/ID.sum: a temporary file,
 * fdatasync, rename, directory fsync, so that a power loss leaves it whole or absent (a summary
 * torn some other way fails its checks and recovery reads the segment). Returns 0 or -errno; the
 * builder is emptied either way. */
int summary_write(const struct store_io_hooks *io, const char *dir, struct summary_builder *b);
void summary_free(struct summary_builder *b);

/* Formats dir/NNNNNNNNNNNNNNNNNNNN.sum into out. */
static inline void summary_path(char *out, size_t cap, const char *dir, uint64_t id)
{
    seg_file_path(out, cap, dir, id, ".sum");
}
/* Parses a summary file name; returns true and *id when it is one. */
static inline bool summary_parse_name(const char *name, uint64_t *id)
{
    return seg_file_id(name, ".sum", id);
}

/* A summary read back for recovery. */
struct summary {
    uint8_t *body;
    size_t len;
    uint64_t max_msg_id;
};
/* Reads and checks dir/ID.sum against a segment of size bytes: framing, CRCs, every record
 * parsed, the records tiling [SEG_HEADER_SIZE, size) exactly. Returns 0 (out filled; free with
 * summary_release), -ENOENT when there is none, or -EBADMSG (logged by the caller) / -errno. */
int summary_read(const struct store_io_hooks *io, const char *dir, uint64_t id, uint64_t size, struct summary *out);
/* The record at *pos of a checked summary as the segment holds it: r (a MESSAGE's data NULL, its
 * data_len the length in the segment). Advances *pos; returns the record's size in the segment
 * (the next one is that far on), or 0 at the end. */
size_t summary_next(const struct summary *s, size_t *pos, struct rec *r);
void summary_release(struct summary *s);

#endif
