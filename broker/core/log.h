/* broker/core/log.h: leveled, timestamped logging to stderr. */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR };

/* Sets the lowest level that is printed (default LOG_INFO). */
void log_set_level(enum log_level level);
/* The level set last, and its name ("info", ...) for showing the effective configuration. */
enum log_level log_get_level(void);
const char *log_level_name(enum log_level level);
/* Sends log lines to stream instead of stderr (NULL: back to stderr); the caller keeps it
 * open while it is set. Fuzzers format every line into /dev/null this way. */
void log_set_stream(FILE *stream);
/* Parses "debug", "info", "warning" or "error"; returns 0 or -1 for an unknown name. */
int log_parse_level(const char *name, enum log_level *out);
/* True when a message at level would be printed (to skip formatting costs). */
int log_enabled(enum log_level level);
/* Prints one line: "2026-11-23 03:40:01.123 [info] message". */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
