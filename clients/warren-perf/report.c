/* Per-second lines and the final summary. */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct totals report_totals(struct perf_worker *workers, int count)
{
    struct totals t = {0};
    for (int i = 0; i < count; i++) {
        struct perf_counters *c = &workers[i].counters;
        t.published += atomic_load_explicit(&c->published, memory_order_relaxed);
        t.confirmed += atomic_load_explicit(&c->confirmed, memory_order_relaxed);
        t.nacked += atomic_load_explicit(&c->nacked, memory_order_relaxed);
        t.returned += atomic_load_explicit(&c->returned, memory_order_relaxed);
        t.delivered += atomic_load_explicit(&c->delivered, memory_order_relaxed);
    }
    return t;
}

static void merge_all(struct report *report, struct histogram_snapshot *latency, struct histogram_snapshot *confirm)
{
    memset(latency, 0, sizeof(*latency));
    memset(confirm, 0, sizeof(*confirm));
    for (int i = 0; i < report->worker_count; i++) {
        histogram_merge(latency, &report->workers[i].latency);
        histogram_merge(confirm, &report->workers[i].confirm_latency);
    }
}

int report_init(struct report *report, struct perf_worker *workers, int worker_count,
                const struct perf_config *config, uint64_t start)
{
    *report = (struct report){.workers = workers, .worker_count = worker_count, .config = config,
                              .start = start, .last_time = start};
    report->last_latency = calloc(1, sizeof(*report->last_latency));
    report->last_confirm = calloc(1, sizeof(*report->last_confirm));
    return report->last_latency && report->last_confirm ? 0 : -1;
}

static double micros(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void report_line(struct report *report, uint64_t now)
{
    struct histogram_snapshot *latency = malloc(sizeof(*latency)), *confirm = malloc(sizeof(*confirm));
    struct histogram_snapshot *interval = malloc(sizeof(*interval));
    if (!latency || !confirm || !interval)
        goto out;
    merge_all(report, latency, confirm);
    struct totals t = report_totals(report->workers, report->worker_count);
    double seconds = (double)(now - report->last_time) / 1e9;
    if (seconds <= 0)
        seconds = 1e-9;
    char line[256];
    int len = snprintf(line, sizeof(line), "%7.1f s  sent %8.0f/s", (double)(now - report->start) / 1e9,
                       (double)(t.published - report->last.published) / seconds);
    if (report->config->confirm_window)
        len += snprintf(line + len, sizeof(line) - (size_t)len, "  confirmed %8.0f/s",
                        (double)(t.confirmed - report->last.confirmed) / seconds);
    len += snprintf(line + len, sizeof(line) - (size_t)len, "  %s %8.0f/s",
                    report->config->rpc ? "replies" : "received",
                    (double)(t.delivered - report->last.delivered) / seconds);
    histogram_difference(interval, latency, report->last_latency);
    if (interval->count)
        len += snprintf(line + len, sizeof(line) - (size_t)len, "  %s p50 %.0f us p99 %.0f us",
                        report->config->rpc ? "round trip" : "latency", micros(histogram_quantile(interval, 0.5)),
                        micros(histogram_quantile(interval, 0.99)));
    histogram_difference(interval, confirm, report->last_confirm);
    if (interval->count)
        snprintf(line + len, sizeof(line) - (size_t)len, "  confirm p50 %.0f us p99 %.0f us",
                 micros(histogram_quantile(interval, 0.5)), micros(histogram_quantile(interval, 0.99)));
    puts(line);
    fflush(stdout);
    report->last = t;
    report->last_time = now;
    memcpy(report->last_latency, latency, sizeof(*latency));
    memcpy(report->last_confirm, confirm, sizeof(*confirm));
out:
    free(latency);
    free(confirm);
    free(interval);
}

static void print_quantiles(const char *label, const struct histogram_snapshot *h)
{
    if (!h->count)
        return;
    printf("%s (us): min %.1f  median %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%llu samples)\n", label,
           micros(h->min), micros(histogram_quantile(h, 0.5)), micros(histogram_quantile(h, 0.99)),
           micros(histogram_quantile(h, 0.999)), micros(h->max), (unsigned long long)h->count);
}

void report_summary(struct report *report, uint64_t elapsed_ns, double setup_seconds, const char *status)
{
    struct histogram_snapshot *latency = calloc(1, sizeof(*latency)), *confirm = calloc(1, sizeof(*confirm));
    if (!latency || !confirm) {
        free(latency);
        free(confirm);
        return;
    }
    merge_all(report, latency, confirm);
    struct totals t = report_totals(report->workers, report->worker_count);
    double seconds = (double)elapsed_ns / 1e9;
    if (seconds <= 0)
        seconds = 1e-9;
    const char *received = report->config->rpc ? "replies" : "delivered";
    printf("--- summary: %.2f s (set-up %.2f s), status %s\n", seconds, setup_seconds, status);
    printf("published %llu (%.0f msg/s)", (unsigned long long)t.published, (double)t.published / seconds);
    if (report->config->confirm_window)
        printf("  confirmed %llu (%.0f msg/s)  nacked %llu", (unsigned long long)t.confirmed,
               (double)t.confirmed / seconds, (unsigned long long)t.nacked);
    if (t.returned)
        printf("  returned %llu", (unsigned long long)t.returned);
    printf("\n%s %llu (%.0f msg/s)\n", received, (unsigned long long)t.delivered, (double)t.delivered / seconds);
    print_quantiles(report->config->rpc ? "round trip" : "latency publish->delivery", latency);
    print_quantiles("confirm latency", confirm);
    printf("backlog when publishing ended: %llu after %.2f s\n", (unsigned long long)report->backlog_at_publish_end,
           report->publish_seconds);
    printf("RESULT elapsed=%.3f setup=%.3f published=%llu confirmed=%llu nacked=%llu returned=%llu "
           "delivered=%llu pub_rate=%.1f conf_rate=%.1f del_rate=%.1f "
           "lat_min_us=%.1f lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f lat_max_us=%.1f "
           "conf_p50_us=%.1f conf_p99_us=%.1f backlog=%llu publish_s=%.3f status=%s\n",
           seconds, setup_seconds, (unsigned long long)t.published, (unsigned long long)t.confirmed,
           (unsigned long long)t.nacked, (unsigned long long)t.returned, (unsigned long long)t.delivered,
           (double)t.published / seconds, (double)t.confirmed / seconds, (double)t.delivered / seconds,
           micros(latency->min), micros(histogram_quantile(latency, 0.5)), micros(histogram_quantile(latency, 0.99)),
           micros(histogram_quantile(latency, 0.999)), micros(latency->max), micros(histogram_quantile(confirm, 0.5)),
           micros(histogram_quantile(confirm, 0.99)), (unsigned long long)report->backlog_at_publish_end,
           report->publish_seconds, status);
    fflush(stdout);
    free(latency);
    free(confirm);
}

void report_free(struct report *report)
{
    free(report->last_latency);
    free(report->last_confirm);
    report->last_latency = report->last_confirm = NULL;
}
