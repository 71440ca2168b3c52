/* load: a producer and a consumer (one thread each) for the relay. The producer sends
 * fixed-size messages, one send() per message, each carrying its send time (CLOCK_MONOTONIC);
 * unthrottled, or paced at --rate messages/s on an absolute schedule (no drift; a late
 * producer catches up; timer slack 1 ns so clock_nanosleep wakes on time). The consumer counts
 * the messages it receives inside the measured window and records their latency.
 *
 * Timeline: warm-up, then the window (stdout says "start" and "end" as it opens and closes),
 * then the producer stops, the relay drains and closes, and one result line is printed:
 *   result messages N rate R p50_us A p99_us B sent S */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 4096
#define BUCKET_NS 100                  /* latency histogram resolution */
#define BUCKETS (1000 * 1000 * 1000 / BUCKET_NS) /* up to 1 s; above: the last bucket */

struct message_header {
    uint64_t sequence;
    uint64_t sent_ns;
};

static int port;
static size_t size = 64;
static double rate; /* 0: unthrottled */
static uint64_t window_start_ns, window_end_ns, stop_ns;
static uint64_t sent;
static uint64_t received_in_window;
static uint32_t *histogram;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void die(const char *what)
{
    fprintf(stderr, "load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_as(char role)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("connect");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("TCP_NODELAY");
    if (send(fd, &role, 1, 0) != 1)
        die("send role");
    return fd;
}

static void *produce(void *arg)
{
    int fd = *(int *)arg;
    uint8_t message[MAX_SIZE] = {0};
    struct message_header header = {0};
    uint64_t begin = now_ns();
    double interval = rate > 0 ? 1e9 / rate : 0;
    for (;;) {
        uint64_t now = now_ns();
        if (rate > 0) {
            uint64_t due = begin + (uint64_t)((double)sent * interval);
            if (due > now) {
                sleep_until(due);
                now = now_ns();
            }
        }
        if (now >= stop_ns)
            break;
        header.sequence = sent;
        header.sent_ns = now;
        memcpy(message, &header, sizeof(header));
        if (send(fd, message, size, MSG_NOSIGNAL) != (ssize_t)size)
            die("send");
        sent++;
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void *consume(void *arg)
{
    int fd = *(int *)arg;
    static uint8_t buffer[65536 + MAX_SIZE];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buffer + have, sizeof(buffer) - have, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        uint64_t now = now_ns(); /* one clock read per recv: its messages arrived together */
        have += (size_t)n;
        size_t at = 0;
        bool counted = now >= window_start_ns && now < window_end_ns;
        for (; have - at >= size; at += size) {
            if (!counted)
                continue;
            struct message_header header;
            memcpy(&header, buffer + at, sizeof(header));
            uint64_t bucket = (now - header.sent_ns) / BUCKET_NS;
            histogram[bucket < BUCKETS ? bucket : BUCKETS - 1]++;
            received_in_window++;
        }
        memmove(buffer, buffer + at, have - at);
        have -= at;
    }
    return NULL;
}

static double percentile(double fraction)
{
    uint64_t rank = (uint64_t)((double)received_in_window * fraction);
    uint64_t seen = 0;
    for (uint64_t i = 0; i < BUCKETS; i++) {
        seen += histogram[i];
        if (seen > rank)
            return (double)(i * BUCKET_NS + BUCKET_NS / 2) / 1000.0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double warmup = 2, duration = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration"))
            duration = atof(argv[i + 1]);
        else
            argc = 0;
    }
    if (!port || size < sizeof(struct message_header) || size > MAX_SIZE || argc % 2 == 0) {
        fprintf(stderr, "usage: load --port N [--size 64] [--rate msg/s, 0 = unthrottled]"
                        " [--warmup s] [--duration s]\n");
        return 2;
    }
    histogram = calloc(BUCKETS, sizeof(*histogram));
    if (!histogram)
        die("calloc");
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    int consumer = connect_as('C');
    int producer = connect_as('P');
    uint64_t begin = now_ns();
    window_start_ns = begin + (uint64_t)(warmup * 1e9);
    window_end_ns = window_start_ns + (uint64_t)(duration * 1e9);
    stop_ns = window_end_ns + 300000000u;
    pthread_t threads[2];
    if (pthread_create(&threads[0], NULL, consume, &consumer) ||
        pthread_create(&threads[1], NULL, produce, &producer))
        die("pthread_create");
    sleep_until(window_start_ns);
    printf("start\n");
    fflush(stdout);
    sleep_until(window_end_ns);
    printf("end\n");
    fflush(stdout);
    pthread_join(threads[1], NULL);
    pthread_join(threads[0], NULL);
    printf("result messages %llu rate %.0f p50_us %.1f p99_us %.1f sent %llu\n",
           (unsigned long long)received_in_window, (double)received_in_window / duration,
           percentile(0.50), percentile(0.99), (unsigned long long)sent);
    return 0;
}
