/* storage/recovery.h: store_open's replay of the segment files into an index. */
#ifndef WARREN_STORE_RECOVERY_H
#define WARREN_STORE_RECOVERY_H

#include "index.h"
#include "storage_log.h"

struct recovery_result {
    uint64_t active_id;    /* newest segment, 0 when the directory held none */
    uint64_t active_size;  /* its size after any torn tail was cut */
    uint64_t max_msg_id;
    uint64_t records, corrupt;
    uint64_t mapped;       /* segments the windowed walk left (from some record on) to the mapped one */
    uint64_t summarized;   /* segments replayed from their summary (segment_summary.h) */
};

/* Replays every segment of dir into idx (empty on entry), reports live messages and entries
 * through rec (may be NULL), truncates a torn tail of the newest segment. Returns 0 or -errno. */
int recovery_run(const struct store_io_hooks *io, const char *dir, struct index *idx, const struct store_recovery *rec,
                 const struct storage_logger *logger, struct recovery_result *out);

#endif
