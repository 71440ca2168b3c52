/* broker/core/log.c: stderr logger with wall-clock timestamps. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static FILE *log_stream; /* NULL: stderr */
static const char *const level_names[] = {"debug", "info", "warning", "error"};

void log_set_level(enum log_level level) { min_level = level; }

enum log_level log_get_level(void) { return min_level; }

const char *log_level_name(enum log_level level) { return level_names[level]; }

void log_set_stream(FILE *stream) { log_stream = stream; }

int log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(name, "warn") == 0) {
        *out = LOG_WARNING;
        return 0;
    }
    return -1;
}

int log_enabled(enum log_level level) { return level >= min_level; }

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    /* One fprintf per line so concurrent writers (tests piping stderr) never interleave. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(log_stream ? log_stream : stderr, "%s.%03ld [%s] %s\n", stamp, (long)(tv.tv_usec / 1000),
            level_names[level], line);
}
