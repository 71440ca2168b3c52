/* warren-perf: the run configuration and the state that benchmark threads share with the
 * reporter. Every worker (producer, consumer, RPC client or server) owns one connection. */
#ifndef WARREN_PERF_H
#define WARREN_PERF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

#define PERF_NAME_MAX 256
#define PERF_ERROR_MAX 512

enum perf_exchange_type { PERF_EXCHANGE_DIRECT, PERF_EXCHANGE_FANOUT, PERF_EXCHANGE_TOPIC };

/* Parsed once in main and read-only afterwards. */
struct perf_config {
    char host[PERF_NAME_MAX];
    int port;
    char user[PERF_NAME_MAX];
    char password[PERF_NAME_MAX];
    char vhost[PERF_NAME_MAX];
    int producers;
    int consumers;
    const char *queue_name; /* NULL: server-named queues, deleted at the end */
    int queue_count;
    enum perf_exchange_type exchange_type;
    char exchange_name[PERF_NAME_MAX];
    size_t size;
    bool persistent;
    bool durable;
    bool autoack;
    bool rpc;
    bool delete_queues;
    bool drain;         /* after --time, keep consuming until everything published arrived */
    int confirm_window; /* 0: no publisher confirms */
    int prefetch;       /* 0: unlimited */
    int multi_ack;      /* ack every N deliveries with multiple=true; 1 acks each one */
    double rate;        /* per producer, messages per second; 0 = unlimited */
    double time_limit;  /* seconds; 0 = none (then --count decides) */
    uint64_t count;     /* per producer, or total for consumers when there are no producers */
    double max_time;    /* hard bound on any run */
    double stall_timeout;
    int idle_connections;
    int bindings;
    int frame_max;
    int heartbeat;
    bool marker_wait;        /* after each "measure" marker, wait for a line on stdin */
    const char *probe_queue; /* --probe-queue: passive declare of this queue, print, exit */
    bool tls;                /* amqps:// */
    const char *cacert;      /* with tls: verify the server against these CAs; NULL: no check */
};

/* Counters written by one worker thread, read by the reporter. */
struct perf_counters {
    _Atomic uint64_t published;
    _Atomic uint64_t confirmed;
    _Atomic uint64_t nacked;
    _Atomic uint64_t returned;
    _Atomic uint64_t delivered;
};

struct perf_run;

/* One thread with one connection. */
struct perf_worker {
    pthread_t thread;
    int index;
    struct perf_run *run;
    struct perf_counters counters;
    struct histogram latency;         /* publish to delivery, or an RPC round trip */
    struct histogram confirm_latency; /* publish to basic.ack */
    _Atomic bool done;                /* finished its --count share (or failed) */
    char error[PERF_ERROR_MAX];
};

/* The topology and the shared flags; queues and routing keys are fixed before threads start. */
struct perf_run {
    const struct perf_config *config;
    char (*queues)[PERF_NAME_MAX];
    int queue_count;
    char (*routing_keys)[PERF_NAME_MAX]; /* message n is published with key n % count */
    int routing_key_count;
    int fanout_factor; /* deliveries per published message, to know when --count is complete */
    _Atomic bool stop;
    _Atomic bool stop_publishing; /* --drain: producers end, consumers go on */
    _Atomic bool failed;
    _Atomic int ready; /* consumers and RPC servers that are consuming */
    _Atomic int producers_ready; /* producers and RPC clients connected, waiting for go */
    _Atomic bool go;             /* set-up is over: the measured phase starts */
};

/* Monotonic clock in nanoseconds; the same clock stamps bodies and reads them. */
uint64_t perf_now(void);

/* Record a worker's fatal error (printed once by main) and ask every thread to stop. */
void perf_fail(struct perf_worker *worker, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Add a relaxed increment to a counter that only the calling thread writes. */
static inline void perf_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Every thread checks this one: the run is over (time, count, failure or a signal). */
static inline bool perf_stopping(const struct perf_run *run)
{
    return atomic_load_explicit(&run->stop, memory_order_relaxed);
}

/* Producers check this one: it also turns true when --drain ends the publishing phase. */
static inline bool perf_publishing_over(const struct perf_run *run)
{
    return perf_stopping(run) || atomic_load_explicit(&run->stop_publishing, memory_order_relaxed);
}

/* Called by a worker whose connection is set up (after counting itself ready): wait until main
 * starts the measured phase. Returns false when the run stopped instead. */
bool perf_wait_go(struct perf_run *run);

/* Thread entry points; each takes a struct perf_worker *. */
void *perf_producer_main(void *worker);
void *perf_consumer_main(void *worker);
void *perf_rpc_client_main(void *worker);
void *perf_rpc_server_main(void *worker);

/* --idle-connections: open, hold for the run time, close; returns the process exit status. */
int perf_idle_run(const struct perf_config *config);

/* --probe-queue: connect, declare the queue passively, print "QUEUE name=... messages=N
 * consumers=C"; returns 0, or 1 when the broker does not answer or the queue is missing. */
int perf_probe_run(const struct perf_config *config);

#endif
