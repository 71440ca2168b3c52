/* warren-perf: a throughput and latency benchmark for AMQP 0-9-1 brokers, in the spirit of
 * RabbitMQ PerfTest, on rabbitmq-c. main declares the topology, starts consumers before
 * producers (so nothing published is lost to a queue without consumers yet), watches the stop
 * conditions every 10 ms, prints a line per second and the summary. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "options.h"
#include "perf.h"
#include "report.h"
#include "session.h"
#include "topology.h"

static struct perf_run *signalled_run;

static void on_signal(int signal)
{
    (void)signal;
    if (signalled_run)
        atomic_store(&signalled_run->stop, true);
}

uint64_t perf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void perf_fail(struct perf_worker *worker, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(worker->error, sizeof(worker->error), format, args);
    va_end(args);
    atomic_store(&worker->run->failed, true);
    atomic_store(&worker->run->stop, true);
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

bool perf_wait_go(struct perf_run *run)
{
    while (!atomic_load(&run->go)) {
        if (perf_stopping(run))
            return false;
        sleep_ms(1);
    }
    return !perf_stopping(run);
}

/* The measured phase is bracketed by two lines on stdout so that a driver can read the broker's
 * CPU exactly around it, leaving connection set-up, declarations and tear-down out. With
 * --marker-wait the driver answers each marker with a line on stdin, so nothing moves between the
 * marker and its reading. */
static void measure_marker(const struct perf_config *config, const char *which)
{
    printf("measure %s\n", which);
    fflush(stdout);
    if (config->marker_wait) {
        char line[64];
        if (!fgets(line, sizeof(line), stdin))
            fprintf(stderr, "warren-perf: --marker-wait: stdin closed\n");
    }
}

/* Note the backlog the first time publishing is over: consumers that keep up leave little. */
static void record_publish_end(struct report *report, const struct perf_run *run, const struct totals *t,
                               double elapsed)
{
    if (report->publish_end_recorded)
        return;
    uint64_t expected = t->published * (uint64_t)run->fanout_factor;
    report->publish_end_recorded = true;
    report->backlog_at_publish_end = run->config->rpc || expected < t->delivered ? 0 : expected - t->delivered;
    report->publish_seconds = elapsed;
}

static bool all_done(struct perf_worker *workers, int count)
{
    for (int i = 0; i < count; i++)
        if (!atomic_load(&workers[i].done))
            return false;
    return true;
}

/* Has a --count run finished? Producers must be done (confirms included); consumers must have
 * received every copy (fanout multiplies); with no producers, consumers wait for --count. */
static bool count_reached(const struct perf_run *run, struct perf_worker *workers, const struct totals *t)
{
    const struct perf_config *config = run->config;
    if (config->count == 0)
        return false;
    if (config->producers == 0)
        return t->delivered >= config->count;
    if (!all_done(workers, config->producers))
        return false;
    if (config->rpc || config->consumers == 0)
        return true;
    return t->delivered >= (uint64_t)config->producers * config->count * (uint64_t)run->fanout_factor;
}

/* Watch the run until a stop condition; returns the status word for the summary. */
static const char *watch(struct perf_run *run, struct perf_worker *workers, int worker_count, struct report *report,
                         uint64_t start)
{
    const struct perf_config *config = run->config;
    uint64_t next_line = start + 1000000000ull, last_progress = start;
    struct totals last = {0};
    for (;;) {
        sleep_ms(10);
        uint64_t now = perf_now();
        double elapsed = (double)(now - start) / 1e9;
        struct totals t = report_totals(workers, worker_count);
        if (memcmp(&t, &last, sizeof(t)) != 0) {
            last = t;
            last_progress = now;
        }
        if (now >= next_line) {
            report_line(report, now);
            next_line += 1000000000ull;
        }
        if (config->count && config->producers > 0 && all_done(workers, config->producers))
            record_publish_end(report, run, &t, elapsed);
        const char *status = NULL;
        if (atomic_load(&run->failed))
            status = "error";
        else if (atomic_load(&run->stop))
            status = "interrupted";
        else if (count_reached(run, workers, &t))
            status = "ok";
        if (status) {
            record_publish_end(report, run, &t, elapsed);
            return status;
        }
        bool draining = atomic_load(&run->stop_publishing);
        if (draining && all_done(workers, config->producers) &&
            t.delivered >= t.published * (uint64_t)run->fanout_factor)
            return "ok";
        if (config->time_limit > 0 && elapsed >= config->time_limit && !draining) {
            record_publish_end(report, run, &t, elapsed);
            if (!config->drain || config->rpc || config->consumers == 0)
                return config->count ? "time-limit" : "ok";
            atomic_store(&run->stop_publishing, true);
            last_progress = now;
        }
        if (elapsed >= config->max_time)
            status = "max-time";
        else if ((config->count || draining) && (double)(now - last_progress) / 1e9 >= config->stall_timeout)
            status = "stalled";
        if (status) {
            record_publish_end(report, run, &t, elapsed);
            return status;
        }
    }
}

static int start_workers(struct perf_worker *workers, int first, int count, void *(*body)(void *),
                         struct perf_run *run)
{
    for (int i = 0; i < count; i++) {
        struct perf_worker *worker = &workers[first + i];
        worker->index = i;
        worker->run = run;
        if (pthread_create(&worker->thread, NULL, body, worker) != 0) {
            fprintf(stderr, "warren-perf: cannot start a thread\n");
            atomic_store(&run->stop, true);
            return -1;
        }
    }
    return 0;
}

/* Wait until *counter reaches count (workers ready) or a failure, at most 60 s. */
static int wait_ready(struct perf_run *run, _Atomic int *counter, int count)
{
    for (int waited = 0; atomic_load(counter) < count; waited += 10) {
        if (atomic_load(&run->failed) || atomic_load(&run->stop) || waited > 60000)
            return -1;
        sleep_ms(10);
    }
    return 0;
}

static int print_errors(struct perf_worker *workers, int count)
{
    int errors = 0;
    for (int i = 0; i < count; i++)
        if (workers[i].error[0]) {
            fprintf(stderr, "warren-perf: %s\n", workers[i].error);
            errors++;
        }
    return errors;
}

static int run_benchmark(struct perf_run *run)
{
    const struct perf_config *config = run->config;
    char err[PERF_ERROR_MAX];
    uint64_t setup_start = perf_now();
    amqp_connection_state_t setup = session_open(config, 0, err, sizeof(err));
    if (!setup || topology_declare(setup, run, err, sizeof(err)) != 0) {
        fprintf(stderr, "warren-perf: set-up: %s\n", err);
        session_abandon(setup);
        return 1;
    }
    double setup_seconds = (double)(perf_now() - setup_start) / 1e9;
    printf("set-up: exchange %s, %d queue(s), %d binding(s) in %.2f s\n", config->exchange_name, run->queue_count,
           config->bindings ? config->bindings : run->queue_count, setup_seconds);

    int producers = config->producers, consumers = config->consumers, total = producers + consumers;
    struct perf_worker *workers = calloc((size_t)total, sizeof(*workers));
    struct report report;
    if (!workers || report_init(&report, workers, total, config, 0) != 0) {
        fprintf(stderr, "warren-perf: out of memory\n");
        return 1;
    }
    void *(*consumer_body)(void *) = config->rpc ? perf_rpc_server_main : perf_consumer_main;
    void *(*producer_body)(void *) = config->rpc ? perf_rpc_client_main : perf_producer_main;
    int started = 0;
    const char *status = "error";
    /* Every worker connects first; the clock and the measured phase start together, once all
     * are ready (with no producers, the consumers' basic.consume waits for it too). */
    if (start_workers(workers, producers, consumers, consumer_body, run) == 0) {
        started = consumers;
        if (wait_ready(run, &run->ready, consumers) == 0 &&
            start_workers(workers, 0, producers, producer_body, run) == 0) {
            started = total;
        }
        if (started == total && wait_ready(run, &run->producers_ready, producers) == 0) {
            measure_marker(config, "start");
            uint64_t start = perf_now();
            report.start = report.last_time = start;
            atomic_store(&run->go, true);
            status = watch(run, workers, total, &report, start);
            uint64_t elapsed = perf_now() - start;
            /* Publishing stops before the end marker; the workers close their connections after. */
            atomic_store(&run->stop_publishing, true);
            measure_marker(config, "end");
            atomic_store(&run->stop, true);
            for (int i = 0; i < total; i++)
                pthread_join(workers[i].thread, NULL);
            started = 0;
            report_summary(&report, elapsed, setup_seconds, status);
        }
    }
    atomic_store(&run->stop, true);
    for (int i = started == total ? 0 : producers; i < total && started; i++)
        pthread_join(workers[i].thread, NULL);
    int errors = print_errors(workers, total);
    if (topology_cleanup(setup, run, err, sizeof(err)) != 0) {
        fprintf(stderr, "warren-perf: clean-up: %s\n", err);
        errors++;
    }
    session_close(setup);
    report_free(&report);
    free(workers);
    if (errors || strcmp(status, "error") == 0)
        return 1;
    return strcmp(status, "ok") == 0 || strcmp(status, "interrupted") == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    struct perf_config config;
    int rc = options_parse(argc, argv, &config);
    if (rc != 0)
        return rc > 0 ? 0 : 64;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (config.probe_queue)
        return perf_probe_run(&config);
    if (config.idle_connections > 0)
        return perf_idle_run(&config);

    struct perf_run run = {.config = &config};
    signalled_run = &run;
    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    rc = run_benchmark(&run);
    topology_free(&run);
    return rc;
}
