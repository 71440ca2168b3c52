/* storage/segment_log.h: the on-disk format of the message log (described in segment_log.c):
 * segment headers, record encoding and validation, segment files. Pure helpers: no state. */
#ifndef WARREN_SEGMENT_LOG_H
#define WARREN_SEGMENT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

#define SEG_HEADER_SIZE 40
#define REC_HEADER_SIZE 8             /* length (4) + CRC32C (4) */
#define REC_MAX_LENGTH (1u << 30)     /* type + payload; larger messages are refused */
#define SEG_NAME_DIGITS 20
#define SEG_PATH_MAX 4096

enum rec_type {
    REC_MESSAGE = 1,
    REC_ENQUEUE = 2,
    REC_DELIVER = 3,
    REC_ACK = 4,
    REC_QUEUE_DELETED = 5,
    REC_PURGE = 6,
};

/* One decoded record; pointers borrow from the bytes that were parsed. */
struct rec {
    uint8_t type;
    uint64_t msg_id;           /* all but QUEUE_DELETED */
    const uint8_t *queue;      /* all but MESSAGE */
    uint32_t queue_len;
    const uint8_t *data;       /* MESSAGE */
    size_t data_len;
};

/* A growable byte buffer holding encoded records (a batch). Zero is an empty buffer. */
struct rec_buf {
    uint8_t *data;
    size_t len, cap;
};

/* Writes a segment header for segment `id` into out. max_msg_id is the highest message id the
 * writer had seen when it created the segment (so ids survive the deletion of old segments). */
void seg_header_encode(uint8_t out[SEG_HEADER_SIZE], uint64_t id, uint64_t max_msg_id);
/* Checks magic, version and CRC of the header at p; fills *id and *max_msg_id. Returns 0 or
 * -EBADMSG. */
int seg_header_decode(const uint8_t *p, size_t avail, uint64_t *id, uint64_t *max_msg_id);

/* Appends one record (CRC left zero: rec_seal_all fills it). Returns 0, or -ENOMEM, or
 * -EMSGSIZE when it would exceed REC_MAX_LENGTH. queue/data may be NULL when their length is 0. */
int rec_append(struct rec_buf *buf, uint8_t type, uint64_t msg_id, const uint8_t *queue,
               size_t queue_len, const uint8_t *data, size_t data_len);
/* Computes the CRC of every record in buf[0, len) (records appended by rec_append). */
void rec_seal_all(uint8_t *buf, size_t len);

/* The length field of the record header at p (REC_HEADER_SIZE bytes readable): bytes of type +
 * payload, not yet checked against anything. */
uint32_t rec_length(const uint8_t *p);
/* Validates the record at p (avail bytes readable): its length fits, its type is known, its
 * payload is well formed and, when check_crc, its CRC matches. Returns the record's total size
 * (> 0) and fills *out, or 0 when the bytes are not a valid record. */
size_t rec_parse(const uint8_t *p, size_t avail, bool check_crc, struct rec *out);
/* First offset in (from, size) where a valid record starts, or size when there is none. */
size_t rec_resync(const uint8_t *p, size_t size, size_t from);

/* Formats dir/NNNNNNNNNNNNNNNNNNNN<suffix> (a file named by a segment id) into out. */
void seg_file_path(char *out, size_t cap, const char *dir, uint64_t id, const char *suffix);
/* Parses such a name: true and *id when name is 20 digits and then exactly suffix. */
bool seg_file_id(const char *name, const char *suffix, uint64_t *id);

/* Formats dir/NNNNNNNNNNNNNNNNNNNN.seg into out. */
static inline void seg_path(char *out, size_t cap, const char *dir, uint64_t id)
{
    seg_file_path(out, cap, dir, id, ".seg");
}
/* Parses a segment file name; returns true and *id when it is one. */
static inline bool seg_parse_name(const char *name, uint64_t *id)
{
    return seg_file_id(name, ".seg", id);
}

/* Creates segment `id` (exclusive), writes and syncs its header, fsyncs the directory.
 * Returns an fd open for writing, or -errno (the half-made file is removed). */
int seg_create(const struct store_io_hooks *io, const char *dir, uint64_t id, uint64_t max_msg_id);

#endif
