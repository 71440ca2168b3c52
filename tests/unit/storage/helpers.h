/* tests/unit/storage/helpers.h: scratch directories, a recovery collector and "flush and wait"
 * for the store's unit tests. */
#ifndef WARREN_TEST_STORAGE_HELPERS_H
#define WARREN_TEST_STORAGE_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

/* A fresh empty directory under /tmp (static buffer per call site is the caller's). */
static inline void make_scratch(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/warren-store-test-XXXXXX");
    assert_non_null(mkdtemp(out));
}

static inline void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Number of *.seg files in dir. */
static inline int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".seg") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static inline void segment_file(char *out, size_t cap, const char *dir, uint64_t id)
{
    snprintf(out, cap, "%s/%020llu.seg", dir, (unsigned long long)id);
}

static inline bool segment_exists(const char *dir, uint64_t id)
{
    char path[4096];
    segment_file(path, sizeof(path), dir, id);
    return access(path, F_OK) == 0;
}

/* Copies every file of directory from into directory to, but those leave_out(name) picks
 * (leave_out NULL: all). */
static inline void copy_files(const char *from, const char *to, bool (*leave_out)(const char *name))
{
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || (leave_out && leave_out(de->d_name)))
            continue;
        char src[4096], dst[4096];
        snprintf(src, sizeof(src), "%s/%s", from, de->d_name);
        snprintf(dst, sizeof(dst), "%s/%s", to, de->d_name);
        int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(in >= 0 && out >= 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            assert_int_equal(write(out, buf, (size_t)n), n);
        close(in);
        close(out);
    }
    closedir(d);
}

/* True when fd is open on a segment file (not, say, a segment summary being written). */
static inline bool fd_is_segment(int fd)
{
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 4)
        return false;
    target[n] = '\0';
    return strcmp(target + n - 4, ".seg") == 0;
}

static inline off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Silences the store's log lines in tests that provoke them on purpose (unless WARREN_TEST_LOG
 * is set); counts the problems reported (warnings and errors, not progress lines). */
static int log_lines;
static inline void quiet_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (getenv("WARREN_TEST_LOG")) /* to see them while debugging a test */
        fprintf(stderr, "store log %d: %s\n", level, msg);
    if (level <= STORE_LOG_WARNING)
        log_lines++;
}

/* What recovery reported. */
struct seen_message {
    uint64_t id;
    uint8_t *data;
    size_t len;
};
struct seen_entry {
    char queue[64];
    uint64_t id;
    bool delivered;
};
struct seen {
    struct seen_message *messages;
    size_t nmessages;
    struct seen_entry *entries;
    size_t nentries;
};

static inline void seen_message(void *ctx, uint64_t id, const uint8_t *data, size_t len)
{
    struct seen *s = ctx;
    s->messages = realloc(s->messages, (s->nmessages + 1) * sizeof(*s->messages));
    assert_non_null(s->messages);
    struct seen_message *m = &s->messages[s->nmessages++];
    m->id = id;
    m->len = len;
    m->data = malloc(len + 1);
    memcpy(m->data, data, len);
}

static inline void seen_entry(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t id, bool delivered)
{
    struct seen *s = ctx;
    assert_true(queue_len < 64);
    s->entries = realloc(s->entries, (s->nentries + 1) * sizeof(*s->entries));
    assert_non_null(s->entries);
    struct seen_entry *e = &s->entries[s->nentries++];
    memcpy(e->queue, queue, queue_len);
    e->queue[queue_len] = '\0';
    e->id = id;
    e->delivered = delivered;
}

static inline void seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->nmessages; i++)
        free(s->messages[i].data);
    free(s->messages);
    free(s->entries);
    memset(s, 0, sizeof(*s));
}

static inline const struct seen_message *seen_find(const struct seen *s, uint64_t id)
{
    for (size_t i = 0; i < s->nmessages; i++)
        if (s->messages[i].id == id)
            return &s->messages[i];
    return NULL;
}

/* Opens dir with the given segment size and optional collector; asserts success. */
static inline struct store *open_store(const char *dir, uint64_t segment_bytes, struct seen *seen)
{
    struct store_options opts = {.dir = dir, .segment_bytes = segment_bytes, .disk_free_limit = 1,
                                 .log = quiet_log};
    struct store_recovery rec = {.message = seen_message, .entry = seen_entry, .ctx = seen};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, seen ? &rec : NULL, &store), 0);
    assert_non_null(store);
    return store;
}

/* Flushes and waits (on the event fd) until batch `batch` has completed. */
static inline void wait_batch(struct store *store, uint64_t batch)
{
    store_flush(store);
    while (store_poll(store) < batch) {
        struct pollfd p = {.fd = store_event_fd(store), .events = POLLIN};
        assert_true(poll(&p, 1, 10000) >= 0);
    }
}

static inline uint64_t put_msg(struct store *store, uint64_t id, const char *queue, const char *body)
{
    assert_true(store_put_message(store, id, (const uint8_t *)body, strlen(body)) > 0);
    return store_put_enqueue(store, (const uint8_t *)queue, strlen(queue), id);
}

static inline uint64_t put_ack(struct store *store, uint64_t id, const char *queue)
{
    return store_put_ack(store, (const uint8_t *)queue, strlen(queue), id);
}

static inline uint64_t put_deliver(struct store *store, uint64_t id, const char *queue)
{
    return store_put_deliver(store, (const uint8_t *)queue, strlen(queue), id);
}

#endif
