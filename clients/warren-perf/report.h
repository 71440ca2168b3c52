/* The per-second lines and the final summary, computed from the workers' counters and
 * histograms without stopping them. */
#ifndef WARREN_PERF_REPORT_H
#define WARREN_PERF_REPORT_H

#include "perf.h"

struct totals {
    uint64_t published;
    uint64_t confirmed;
    uint64_t nacked;
    uint64_t returned;
    uint64_t delivered;
};

/* Sum the counters of count workers. */
struct totals report_totals(struct perf_worker *workers, int count);

/* Holds what the previous per-second line saw; zero it before the first line. */
struct report {
    struct perf_worker *workers;
    int worker_count;
    const struct perf_config *config;
    uint64_t start;
    uint64_t last_time;
    struct totals last;
    struct histogram_snapshot *last_latency;
    struct histogram_snapshot *last_confirm;
    /* Filled by main when publishing ends (the --drain switch, the last producer done, or the end
     * of the run): copies published but not yet delivered, and how long publishing lasted. */
    bool publish_end_recorded;
    uint64_t backlog_at_publish_end;
    double publish_seconds;
};

/* Allocate the snapshots; returns 0 or -1 (out of memory). */
int report_init(struct report *report, struct perf_worker *workers, int worker_count,
                const struct perf_config *config, uint64_t start);

/* Print one line covering the time since the previous one. */
void report_line(struct report *report, uint64_t now);

/* Print the totals, rates over elapsed_ns, latency quantiles, and one machine-readable RESULT
 * line (key=value) ending with status. */
void report_summary(struct report *report, uint64_t elapsed_ns, double setup_seconds, const char *status);

/* Free the snapshots report_init allocated. */
void report_free(struct report *report);

#endif
