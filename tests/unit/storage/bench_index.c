/* tests/unit/storage/bench_index.c: memory and speed of the store's in-memory index. Applies
 * N MESSAGE records of 1 KiB, each with its ENQUEUE records, straight to an index (no disk),
 * rolling segments every 64 MiB of log as the store would, and prints the bytes the index holds
 * per live message (malloc's own count, so allocator slack included) and the time per applied
 * record; then acks half the messages (every other one: nothing can be retired) and reports
 * again; then acks the oldest half of a fresh index and retires segments as the store would.
 * Variants: one queue, 4 queues round-robin, fanout (each message in 4 queues).
 * Usage: bench_index [N] [variant: 1q | 4q | fanout | all]. Not a test. */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "index.h"

#define BODY 1024
#define SEGMENT_BYTES (64u << 20)
#define QUEUES 4

static const char *queue_names[QUEUES] = {"bench.queue.0", "bench.queue.1", "bench.queue.2", "bench.queue.3"};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* The log being simulated: where the next record goes, rolling segments like the store. */
struct log {
    struct index idx;
    struct segment *seg;
    uint64_t seg_id, offset;
};

static void apply(struct log *log, uint8_t type, uint64_t id, const char *queue, size_t data_len)
{
    struct rec r = {.type = type, .msg_id = id, .data_len = data_len};
    if (queue) {
        r.queue = (const uint8_t *)queue;
        r.queue_len = (uint32_t)strlen(queue);
    }
    if (log->offset >= SEGMENT_BYTES) {
        log->seg = index_add_segment(&log->idx, ++log->seg_id, SEG_HEADER_SIZE);
        log->offset = SEG_HEADER_SIZE;
    }
    if (!log->seg || index_apply(&log->idx, log->seg, &r, log->offset) < 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    log->offset += REC_HEADER_SIZE + 1 + 8 + (queue ? 4 + r.queue_len : data_len);
    log->seg->size = log->offset;
}

/* Which queues message id goes to: a bit per queue. */
static unsigned queues_of(const char *variant, uint64_t id)
{
    if (strcmp(variant, "1q") == 0)
        return 1;
    if (strcmp(variant, "4q") == 0)
        return 1u << (id % QUEUES);
    return (1u << QUEUES) - 1;
}

static void fill(struct log *log, const char *variant, uint64_t n, size_t heap0, size_t rss0)
{
    log->seg_id = 1;
    log->seg = index_add_segment(&log->idx, 1, SEG_HEADER_SIZE);
    log->offset = SEG_HEADER_SIZE;
    uint64_t records = 0;
    double t0 = now();
    for (uint64_t id = 1; id <= n; id++) {
        apply(log, REC_MESSAGE, id, NULL, BODY);
        unsigned qs = queues_of(variant, id);
        for (int q = 0; q < QUEUES; q++)
            if (qs & (1u << q)) {
                apply(log, REC_ENQUEUE, id, queue_names[q], 0);
                records++;
            }
        records++;
    }
    double t1 = now();
    size_t heap = heap_bytes() - heap0, rss = rss_bytes() - rss0;
    printf("%-6s filled: %llu live messages, %llu segments: %.1f B/message (heap), %.1f B/message (RSS), "
           "%.1f MiB; %.0f ns/record\n",
           variant, (unsigned long long)log->idx.live_messages, (unsigned long long)log->idx.nsegs,
           (double)heap / (double)n, (double)rss / (double)n, (double)heap / (1 << 20),
           (t1 - t0) * 1e9 / (double)records);
}

static void ack(struct log *log, const char *variant, uint64_t id)
{
    unsigned qs = queues_of(variant, id);
    for (int q = 0; q < QUEUES; q++)
        if (qs & (1u << q))
            apply(log, REC_ACK, id, queue_names[q], 0);
}

static void report(const struct log *log, const char *variant, const char *what, size_t heap0, size_t rss0,
                   double seconds, uint64_t records)
{
    size_t heap = heap_bytes() - heap0, rss = rss_bytes() - rss0;
    uint64_t live = log->idx.live_messages ? log->idx.live_messages : 1;
    printf("%-6s %s: %llu live, %llu segments: %.1f B/live message (heap), %.1f (RSS), %.1f MiB; "
           "%.0f ns/record\n",
           variant, what, (unsigned long long)log->idx.live_messages, (unsigned long long)log->idx.nsegs,
           (double)heap / (double)live, (double)rss / (double)live, (double)heap / (1 << 20),
           seconds * 1e9 / (double)records);
}

static uint64_t records_per_ack(const char *variant, uint64_t id)
{
    return (uint64_t)__builtin_popcount(queues_of(variant, id));
}

static void run(const char *variant, uint64_t n)
{
    size_t heap0 = heap_bytes(), rss0 = rss_bytes();
    struct log log = {0};
    if (index_init(&log.idx) < 0)
        exit(1);
    fill(&log, variant, n, heap0, rss0);

    uint64_t records = 0;
    double t0 = now();
    for (uint64_t id = 2; id <= n; id += 2) {
        ack(&log, variant, id);
        records += records_per_ack(variant, id);
    }
    report(&log, variant, "every other acked", heap0, rss0, now() - t0, records);
    index_free(&log.idx);
    malloc_trim(0);

    heap0 = heap_bytes();
    rss0 = rss_bytes();
    memset(&log, 0, sizeof(log));
    if (index_init(&log.idx) < 0)
        exit(1);
    fill(&log, variant, n, heap0, rss0);
    records = 0;
    t0 = now();
    uint64_t ids[64];
    for (uint64_t id = 1; id <= n / 2; id++) {
        ack(&log, variant, id);
        records += records_per_ack(variant, id);
        if (id % 4096 == 0) {
            size_t k;
            while ((k = index_deletable(&log.idx, log.seg_id, ids, 64)) > 0)
                for (size_t i = 0; i < k; i++)
                    index_drop_segment(&log.idx, ids[i]);
        }
    }
    report(&log, variant, "oldest half acked, retired", heap0, rss0, now() - t0, records);
    index_free(&log.idx);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    const char *which = argc > 2 ? argv[2] : "all";
    static const char *variants[] = {"1q", "4q", "fanout"};
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        if (strcmp(which, "all") != 0 && strcmp(which, variants[v]) != 0)
            continue;
        fflush(stdout);
        pid_t pid = fork(); /* a fresh heap per variant, so RSS figures do not mix */
        if (pid == 0) {
            run(variants[v], n);
            fflush(stdout);
            _exit(0);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    return 0;
}
