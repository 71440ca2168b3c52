/* relay: the broker's hot path reduced to one producer socket, one consumer socket and an
 * output buffer, so that the cost of the system calls around it can be measured per back end.
 * Shared by relay.c (setup, output buffer, counters) and one file per back end. */
#ifndef IO_LEVER_RELAY_H
#define IO_LEVER_RELAY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Flow control as in broker/net/netconn_output.c: reading pauses above the high-water mark
 * and resumes below the low one. The capacity leaves room for what arrives while pausing. */
#define RELAY_OUT_CAPACITY (8u * 1024 * 1024)
#define RELAY_OUT_HIGH_WATER (1024u * 1024)
#define RELAY_OUT_LOW_WATER (256u * 1024)
/* The wait never outlasts the broker's nearest timer; 1 s stands in for it. */
#define RELAY_WAIT_MS 1000

struct relay {
    int producer; /* nonblocking, TCP_NODELAY */
    int consumer;
    uint8_t *out; /* RELAY_OUT_CAPACITY bytes; [out_start, out_end) waits to be sent */
    size_t out_start;
    size_t out_end;
    uint64_t passes; /* one per wait */
    uint64_t pauses; /* times reading paused on the high-water mark */
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* Bytes queued for the consumer. */
static inline size_t relay_pending(const struct relay *relay)
{
    return relay->out_end - relay->out_start;
}

/* Copies len received bytes into the output buffer, as the broker frames a delivery into the
 * consumer's output queue. may_move says no send is in flight, so queued bytes may be moved
 * to the front. Exits the program if the buffer is full (flow control failed). */
void relay_take(struct relay *relay, const void *data, size_t len, bool may_move);

/* Marks len queued bytes as sent. */
void relay_sent(struct relay *relay, size_t len);

/* Prints msg and errno's text (or -status's when status < 0), then exits with status 1. */
void relay_die(const char *msg, int status) __attribute__((noreturn));

/* The back ends: each runs until the producer has closed and every byte has been sent, and
 * returns 0, or exits through relay_die. */
int relay_run_epoll(struct relay *relay);
/* setup_flags are IORING_SETUP_* flags (0, or SINGLE_ISSUER|DEFER_TASKRUN); wait_sends: each
 * wait also counts the completion of the send submitted with it (see relay_uring.c). */
int relay_run_uring(struct relay *relay, unsigned setup_flags, bool wait_sends);

#endif
