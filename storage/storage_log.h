/* storage/storage_log.h: how the storage layer reports problems (through store_options.log or a
 * prefixed stderr line). */
#ifndef WARREN_STORAGE_LOG_H
#define WARREN_STORAGE_LOG_H

#include "store.h"

struct storage_logger {
    void (*log)(void *ctx, int level, const char *msg);
    void *ctx;
};

/* Formats and reports one message at level (enum store_log_level). */
void storage_logf(const struct storage_logger *logger, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
