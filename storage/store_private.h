/* storage/store_private.h: the store's state, shared by store.c (the caller's side) and
 * store_io.c (the I/O thread), and what definitions.c needs. Not part of the contract. */
#ifndef WARREN_STORE_PRIVATE_H
#define WARREN_STORE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "segment_log.h"
#include "segment_summary.h"
#include "storage_log.h"
#include "store.h"

#define BUFFER_KEEP_BYTES (16u << 20) /* a batch buffer larger than this is freed after use */

struct failure {
    uint64_t first, last;
    int error;
};

struct store {
    char *dir;
    uint64_t segment_bytes, disk_free_limit, max_msg_id;
    struct storage_logger logger;
    struct store_io_hooks io_hooks;
    const struct store_io_hooks *io;
    int event_fd;

    /* the caller's thread only */
    struct rec_buf pending;
    uint64_t pending_batch;
    bool flush_wanted;

    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    bool busy, stop;
    struct rec_buf inflight;
    uint64_t inflight_batch;
    struct failure *failures;
    size_t nfailures, failures_cap;

    /* written by the I/O thread, read anywhere */
    _Atomic uint64_t durable, segments, bytes_on_disk, live_messages, syncs, compactions, bytes_compacted;
    _Atomic bool disk_alarm;
    uint64_t records_recovered, corrupt_records, segments_summarized;

    /* the caller's thread only: store_read_queue's buffers */
    uint8_t *read_buf;
    size_t read_cap;
    struct index_entry_location *read_locs;
    size_t read_locs_cap;

    /* the I/O thread only (the opener until it starts), except that idx may be read by the
     * caller's thread under idx_lock, which the I/O thread holds whenever it changes idx */
    pthread_mutex_t idx_lock;
    pthread_t thread;
    bool thread_started;
    struct index idx;
    int active_fd;
    uint64_t active_id, active_size;
    bool roll_next, retire_disabled;
    bool compact_paused;       /* a compaction write failed: wait for the next segment */
    /* Disk full (store_io.c, Space reserve): the reserve file holds reserve_bytes while
     * reserve_held; a batch that hits ENOSPC releases it and is tried once more, and the store
     * stays short of space (the disk alarm on) until the reserve could be taken back. */
    uint64_t reserve_bytes;
    bool reserve_held;
    _Atomic bool space_short;
    int last_error;            /* of the latest failed write, 0 after a success: logged once */
    uint64_t errors_unlogged;  /* failed writes since the one logged */
    struct summary_builder summary; /* of the active segment, written when it is sealed */
    bool summary_failing;      /* the latest summary write failed (logged once) */
    struct rec_buf compact_buf; /* the compaction batch being built */
    uint8_t *compact_read;     /* one message record read back from a compacted segment */
    size_t compact_read_cap;
};

/* The store's directory (as given to store_open). */
const char *store_dir(const struct store *store);
/* The store's file operations (the test hooks, or NULL). */
const struct store_io_hooks *store_io(const struct store *store);
/* The store's logger. */
const struct storage_logger *store_logger(const struct store *store);

/* Damage was found in a sealed segment: deletes its summary, so that the next start reads the
 * segment in full, reports the damage and keeps the segment (segment_summary.h). */
void store_forget_summary(struct store *store, uint64_t segment_id);
/* The I/O thread's body (arg: the store). */
void *store_io_thread(void *arg);
/* Seals buf's records, writes them at the end of the active segment and fdatasyncs; on success
 * *base is where they start and active_size has grown past them. Returns 0 or -errno (the
 * caller logs, then calls store_cut_back). */
int store_append_synced(struct store *store, uint8_t *buf, size_t len, uint64_t *base);
/* Truncates the active segment back to active_size (after a failed write); when that fails too,
 * logs it and makes the next write roll to a new segment. */
void store_cut_back(struct store *store);
/* Creates segment active_id + 1 and makes it the active one. 0 or -errno. */
int store_roll_segment(struct store *store);
/* Deletes every deletable segment (rule: index.h). */
void store_retire_segments(struct store *store);
/* Compacts sparse segments (index.h, Compaction) while a budget of moved bytes lasts and no
 * batch is waiting (one segment at least). The I/O thread calls it after each batch, once it
 * has signalled durability. */
void store_compact(struct store *store);
/* Copies segment count, bytes and live messages from the index into the atomics. */
void store_publish_stats(struct store *store);
/* Sets the disk alarm from the free space (and takes the reserve back when there is room). */
void store_check_disk(struct store *store);
/* Creates the space reserve file when it is missing. 0 or -errno (the partial file removed). */
int store_take_reserve(struct store *store);

#endif
