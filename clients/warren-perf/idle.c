/* --idle-connections N: open N connections (each logged in with channel 1 open), report how
 * long that took, hold them idle for --time seconds so the broker's memory per connection can be
 * measured from outside, then close them. Opening and closing use a few threads because each
 * connection costs several round trips. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "perf.h"
#include "session.h"

#define IDLE_THREADS 4

struct idle_share {
    pthread_t thread;
    const struct perf_config *config;
    amqp_connection_state_t *connections;
    int first;
    int count;
    _Atomic int opened;
    int failed;
    int lost;
    char error[PERF_ERROR_MAX];
};

static void *open_share(void *arg)
{
    struct idle_share *share = arg;
    for (int i = share->first; i < share->first + share->count; i++) {
        char err[PERF_ERROR_MAX];
        share->connections[i] = session_open(share->config, 0, err, sizeof(err));
        if (share->connections[i]) {
            atomic_fetch_add(&share->opened, 1);
        } else {
            if (share->failed++ == 0)
                snprintf(share->error, sizeof(share->error), "%s", err);
            if (share->failed >= 10) /* the broker or the fd limit said no; stop hammering */
                break;
        }
    }
    return NULL;
}

/* A connection the broker dropped while idle shows up here: its channel.close fails. */
static void *close_share(void *arg)
{
    struct idle_share *share = arg;
    for (int i = share->first; i < share->first + share->count; i++) {
        amqp_connection_state_t conn = share->connections[i];
        if (!conn)
            continue;
        amqp_rpc_reply_t reply = amqp_channel_close(conn, PERF_CHANNEL, AMQP_REPLY_SUCCESS);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL)
            amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        else
            share->lost++;
        amqp_destroy_connection(conn);
    }
    return NULL;
}

static int opened_total(struct idle_share *shares)
{
    int total = 0;
    for (int t = 0; t < IDLE_THREADS; t++)
        total += atomic_load(&shares[t].opened);
    return total;
}

static void run_threads(struct idle_share *shares, void *(*body)(void *))
{
    for (int t = 0; t < IDLE_THREADS; t++)
        pthread_create(&shares[t].thread, NULL, body, &shares[t]);
    for (int t = 0; t < IDLE_THREADS; t++)
        pthread_join(shares[t].thread, NULL);
}

int perf_idle_run(const struct perf_config *config)
{
    int wanted = config->idle_connections;
    amqp_connection_state_t *connections = calloc((size_t)wanted, sizeof(*connections));
    struct idle_share shares[IDLE_THREADS] = {0};
    if (!connections) {
        fprintf(stderr, "warren-perf: out of memory\n");
        return 1;
    }
    for (int t = 0, first = 0; t < IDLE_THREADS; t++) {
        int count = wanted / IDLE_THREADS + (t < wanted % IDLE_THREADS);
        shares[t] = (struct idle_share){.config = config, .connections = connections, .first = first, .count = count};
        first += count;
    }
    uint64_t start = perf_now();
    run_threads(shares, open_share);
    double open_seconds = (double)(perf_now() - start) / 1e9;
    int opened = opened_total(shares);
    for (int t = 0; t < IDLE_THREADS; t++)
        if (shares[t].failed)
            fprintf(stderr, "warren-perf: %d connection(s) failed, first error: %s\n", shares[t].failed,
                    shares[t].error);
    printf("idle: %d of %d connections open in %.2f s (%.0f connections/s)\n", opened, wanted, open_seconds,
           open_seconds > 0 ? opened / open_seconds : 0.0);
    printf("IDLE-READY %d\n", opened);
    fflush(stdout);

    double hold = config->time_limit > 0 ? config->time_limit : 10.0;
    for (double held = 0; held < hold; held += 1.0) {
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
        printf("idle: holding %d connections, %.0f s\n", opened, held + 1.0);
        fflush(stdout);
    }
    start = perf_now();
    run_threads(shares, close_share);
    int lost = 0;
    for (int t = 0; t < IDLE_THREADS; t++)
        lost += shares[t].lost;
    printf("idle: closed in %.2f s; %d had been dropped by the broker while idle\n",
           (double)(perf_now() - start) / 1e9, lost);
    bool complete = opened == wanted && lost == 0;
    printf("RESULT mode=idle wanted=%d opened=%d lost=%d open_s=%.3f status=%s\n", wanted, opened, lost,
           open_seconds, complete ? "ok" : "incomplete");
    free(connections);
    return complete ? 0 : 2;
}
