/* The readiness back end, in the broker's pattern (broker/net/event_loop.c, netconn.c,
 * netconn_output.c): level-triggered epoll; a readable producer is read until a short read,
 * EAGAIN or the read budget; output is written once per pass, at its end, with sendmsg;
 * EPOLLOUT is armed only after a short write; reading pauses above the high-water mark. */
#include "relay.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define INPUT_SIZE 65536 /* the broker's INPUT_DEFAULT_MAX */
#define READ_BUDGET (256 * 1024)

struct epoll_relay {
    struct relay *relay;
    int epfd;
    bool producer_eof;
    bool paused;        /* reading stopped by the high-water mark */
    bool write_blocked; /* a short write: wait for EPOLLOUT */
    uint32_t producer_events;
    uint32_t consumer_events;
    uint8_t input[INPUT_SIZE];
};

static void watch(struct epoll_relay *loop, int fd, uint32_t *current, uint32_t wanted)
{
    if (*current == wanted)
        return;
    struct epoll_event event = {.events = wanted, .data.fd = fd};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &event) < 0)
        relay_die("epoll_ctl", 0);
    *current = wanted;
}

static void read_producer(struct epoll_relay *loop)
{
    struct relay *relay = loop->relay;
    size_t total = 0;
    while (total < READ_BUDGET) {
        ssize_t n = recv(relay->producer, loop->input, sizeof(loop->input), 0);
        if (n > 0) {
            relay_take(relay, loop->input, (size_t)n, true);
            total += (size_t)n;
            if ((size_t)n < sizeof(loop->input))
                break; /* a short read: the socket is drained */
        } else if (n == 0) {
            /* Leave the set: a fully closed socket would report EPOLLHUP on every pass. */
            if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, relay->producer, NULL) < 0)
                relay_die("epoll_ctl", 0);
            loop->producer_events = 0;
            loop->producer_eof = true;
            break;
        } else if (errno != EINTR) {
            if (errno != EAGAIN)
                relay_die("recv", 0);
            break;
        }
    }
}

/* The end of a pass: write until the buffer is empty or the socket is full. */
static void flush(struct epoll_relay *loop)
{
    struct relay *relay = loop->relay;
    while (relay_pending(relay) && !loop->write_blocked) {
        size_t offered = relay_pending(relay);
        struct iovec iov = {.iov_base = relay->out + relay->out_start, .iov_len = offered};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = sendmsg(relay->consumer, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                relay_die("sendmsg", 0);
            loop->write_blocked = true;
            break;
        }
        relay_sent(relay, (size_t)n);
        if ((size_t)n < offered)
            loop->write_blocked = true; /* EAGAIN would follow */
    }
}

int relay_run_epoll(struct relay *relay)
{
    static struct epoll_relay loop; /* holds the 64 KiB input buffer */
    loop.relay = relay;
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop.epfd < 0)
        relay_die("epoll_create1", 0);
    loop.producer_events = loop.consumer_events = EPOLLIN;
    struct epoll_event producer = {.events = EPOLLIN, .data.fd = relay->producer};
    struct epoll_event consumer = {.events = EPOLLIN, .data.fd = relay->consumer};
    if (epoll_ctl(loop.epfd, EPOLL_CTL_ADD, relay->producer, &producer) < 0 ||
        epoll_ctl(loop.epfd, EPOLL_CTL_ADD, relay->consumer, &consumer) < 0)
        relay_die("epoll_ctl", 0);

    struct epoll_event events[16];
    while (!loop.producer_eof || relay_pending(relay)) {
        int count = epoll_wait(loop.epfd, events, 16, RELAY_WAIT_MS);
        relay->passes++;
        if (count < 0) {
            if (errno == EINTR)
                continue;
            relay_die("epoll_wait", 0);
        }
        for (int i = 0; i < count; i++) {
            if (events[i].data.fd == relay->producer) {
                read_producer(&loop);
            } else {
                if (events[i].events & EPOLLOUT)
                    loop.write_blocked = false;
                if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                    relay_die("consumer closed", -EPIPE); /* it never sends */
            }
        }
        flush(&loop);
        if (!loop.paused && relay_pending(relay) > RELAY_OUT_HIGH_WATER) {
            loop.paused = true;
            relay->pauses++;
        }
        else if (loop.paused && relay_pending(relay) < RELAY_OUT_LOW_WATER)
            loop.paused = false;
        watch(&loop, relay->producer, &loop.producer_events,
              loop.paused || loop.producer_eof ? 0 : EPOLLIN);
        watch(&loop, relay->consumer, &loop.consumer_events,
              EPOLLIN | (loop.write_blocked ? EPOLLOUT : 0));
    }
    close(loop.epfd);
    return 0;
}
