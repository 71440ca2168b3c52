/* relay: accepts one producer and one consumer on loopback TCP (each names its role with one
 * byte, 'P' or 'C'), copies what the producer sends into an output buffer and sends it to the
 * consumer, through the back end chosen with --backend. Prints "port N" once listening.
 * SIGUSR1 records the pass and byte counters (run.py sends it at the start and end of its
 * measured window); the records are printed to stderr at exit. */
#include "relay.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define SNAPSHOTS 8

static struct relay *counted;
static volatile sig_atomic_t snapshot_count;
static uint64_t snapshot_passes[SNAPSHOTS];
static uint64_t snapshot_bytes[SNAPSHOTS];

void relay_die(const char *msg, int status)
{
    fprintf(stderr, "relay: %s: %s\n", msg, strerror(status < 0 ? -status : errno));
    exit(1);
}

void relay_take(struct relay *relay, const void *data, size_t len, bool may_move)
{
    if (RELAY_OUT_CAPACITY - relay->out_end < len && may_move && relay->out_start) {
        size_t pending = relay_pending(relay);
        memmove(relay->out, relay->out + relay->out_start, pending);
        relay->out_start = 0;
        relay->out_end = pending;
    }
    if (RELAY_OUT_CAPACITY - relay->out_end < len) {
        fprintf(stderr, "relay: output buffer full (flow control did not hold)\n");
        exit(1);
    }
    memcpy(relay->out + relay->out_end, data, len);
    relay->out_end += len;
    relay->bytes_in += len;
}

void relay_sent(struct relay *relay, size_t len)
{
    relay->out_start += len;
    relay->bytes_out += len;
    if (relay->out_start == relay->out_end)
        relay->out_start = relay->out_end = 0; /* empty: start over at the front for free */
}

static void on_snapshot(int signo)
{
    (void)signo;
    if (snapshot_count < SNAPSHOTS && counted) {
        const volatile struct relay *relay = counted;
        snapshot_passes[snapshot_count] = relay->passes;
        snapshot_bytes[snapshot_count] = relay->bytes_in;
        snapshot_count++;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        relay_die("TCP_NODELAY", 0);
}

/* Accepts the two connections; returns once both roles are known. */
static void accept_pair(int listener, struct relay *relay)
{
    relay->producer = relay->consumer = -1;
    while (relay->producer < 0 || relay->consumer < 0) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            relay_die("accept", 0);
        char role = 0;
        if (recv(fd, &role, 1, MSG_WAITALL) != 1)
            relay_die("role byte", 0);
        set_nodelay(fd);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
            relay_die("O_NONBLOCK", 0);
        if (role == 'P' && relay->producer < 0)
            relay->producer = fd;
        else if (role == 'C' && relay->consumer < 0)
            relay->consumer = fd;
        else
            relay_die("unexpected role", -EPROTO);
    }
}

static int listen_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        relay_die("socket", 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0)
        relay_die("bind/listen", 0);
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        relay_die("getsockname", 0);
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static void usage(void)
{
    fprintf(stderr, "usage: relay --backend epoll|uring[-defer][-waitsend] [--port N]\n"
                    "  -defer: the ring is set up SINGLE_ISSUER|DEFER_TASKRUN\n"
                    "  -waitsend: a pass waits for its send's completion and one more\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *backend = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            backend = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else
            usage();
    }
    if (!backend)
        usage();
    struct relay relay = {0};
    relay.out = malloc(RELAY_OUT_CAPACITY);
    if (!relay.out)
        relay_die("malloc", -ENOMEM);
    counted = &relay;
    struct sigaction action = {.sa_handler = on_snapshot};
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGUSR1, &action, NULL) < 0)
        relay_die("sigaction", 0);

    int listener = listen_loopback(port);
    accept_pair(listener, &relay);
    close(listener);

    int rc;
    if (!strcmp(backend, "epoll"))
        rc = relay_run_epoll(&relay);
    else if (!strncmp(backend, "uring", 5))
        rc = relay_run_uring(&relay,
                             strstr(backend, "-defer") ? IORING_SETUP_SINGLE_ISSUER |
                                                             IORING_SETUP_DEFER_TASKRUN
                                                       : 0,
                             strstr(backend, "-waitsend") != NULL);
    else
        usage();
    close(relay.producer);
    close(relay.consumer);
    fprintf(stderr, "relay %s: passes %llu bytes %llu pauses %llu\n", backend,
            (unsigned long long)relay.passes, (unsigned long long)relay.bytes_out,
            (unsigned long long)relay.pauses);
    for (int i = 0; i < snapshot_count; i++)
        fprintf(stderr, "snapshot %d passes %llu bytes %llu\n", i,
                (unsigned long long)snapshot_passes[i], (unsigned long long)snapshot_bytes[i]);
    free(relay.out);
    return rc;
}
