/* tests/unit/storage/bench_recovery.c: how fast store_open recovers a large log. Writes N
 * (default 1,000,000) 1 KiB persistent messages, each enqueued into a queue, acks every other
 * one, closes, then times a reopen. Usage: bench_recovery [N] [dir]; N 0 only times the reopen
 * of an existing dir (kept when given). Not a test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

struct counts {
    uint64_t messages, entries, bytes;
};

static void on_message(void *ctx, uint64_t id, const uint8_t *data, size_t len)
{
    struct counts *c = ctx;
    (void)id;
    c->messages++;
    c->bytes += len + data[len - 1]; /* touch the body, as a caller copying it would */
}

static void on_entry(void *ctx, const uint8_t *queue, size_t queue_len, uint64_t id, bool delivered)
{
    (void)queue;
    (void)queue_len;
    (void)id;
    (void)delivered;
    ((struct counts *)ctx)->entries++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drain(struct store *store, uint64_t batch)
{
    store_flush(store);
    while (store_poll(store) < batch)
        usleep(200);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    char dir[256];
    if (argc > 2)
        snprintf(dir, sizeof(dir), "%s", argv[2]);
    else
        snprintf(dir, sizeof(dir), "/tmp/warren-bench-recovery-%d", (int)getpid());
    struct store_options opts = {.dir = dir, .disk_free_limit = 1};
    struct store *store;
    if (store_open(&opts, NULL, &store) != 0) {
        fprintf(stderr, "cannot open %s\n", dir);
        return 1;
    }
    if (n == 0)
        goto reopen;
    uint8_t body[1024];
    memset(body, 'm', sizeof(body));
    const uint8_t *queue = (const uint8_t *)"bench.queue";
    double t0 = now();
    uint64_t batch = 0;
    for (uint64_t id = 1; id <= n; id++) {
        store_put_message(store, id, body, sizeof(body));
        batch = store_put_enqueue(store, queue, 11, id);
        if (id % 2 == 0)
            store_put_ack(store, queue, 11, id);
        if (id % 1000 == 0) /* a loop pass: the store groups whatever is pending */
            store_flush(store);
        if (id % 100000 == 0)
            store_poll(store);
    }
    drain(store, batch);
    struct store_stats stats;
    store_get_stats(store, &stats);
    double t1 = now();
    printf("wrote %llu messages (half acked) in %.2f s: %llu syncs, %llu segments, %.1f MiB on disk\n",
           (unsigned long long)n, t1 - t0, (unsigned long long)stats.syncs,
           (unsigned long long)stats.segments, (double)stats.bytes_on_disk / (1 << 20));
    store_close(store);

reopen:;
    struct counts counts = {0};
    struct store_recovery rec = {.message = on_message, .entry = on_entry, .ctx = &counts};
    double t2 = now();
    if (store_open(&opts, &rec, &store) != 0) {
        fprintf(stderr, "cannot reopen %s\n", dir);
        return 1;
    }
    double t3 = now();
    store_get_stats(store, &stats);
    if (n == 0)
        n = counts.messages;
    printf("recovered %llu records, %llu live messages, %llu entries in %.3f s: %.0f messages/s "
           "(records/s %.0f)\n",
           (unsigned long long)stats.records_recovered, (unsigned long long)counts.messages,
           (unsigned long long)counts.entries, t3 - t2, (double)n / (t3 - t2),
           (double)stats.records_recovered / (t3 - t2));
    store_close(store);
    if (argc <= 2) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
