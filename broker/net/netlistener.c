/* broker/net/netlistener.c: listening sockets: bind (IPv4/IPv6), non-blocking accept and the
 * hand-over of each accepted socket to netconn.c. */
#include "event_loop.h"
#include "log.h"
#include "net_private.h"
#include "netconn.h"
#include "tls_context.h"
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
/* Accepts per wake-up: the listener is level-triggered, so the rest waits one pass and
 * connections already open get their turn meanwhile. */
#define ACCEPT_BUDGET 256
/* Out of descriptors: stop watching the listener this long instead of spinning on it. */
#define ACCEPT_RETRY_MS 100

struct netlistener {
    struct netloop *net;
    int fd;
    uint16_t port;
    netconn_accept_fn fn;
    void *arg;
    struct tls_context *tls; /* NULL: plain TCP; else each connection starts a TLS handshake */
    uint64_t retry_timer;
    bool in_accept;       /* inside the accept loop: netlistener_close defers the free */
    bool close_requested;
    bool limit_logged;    /* "out of descriptors" was logged for the current episode */
};

static void on_listener(struct event_loop *loop, int fd, void *data, int mask);

static void listener_free(struct netlistener *listener)
{
    struct netloop *net = listener->net;
    if (listener->retry_timer)
        loop_timer_cancel(net->loop, listener->retry_timer);
    if (listener->fd >= 0) {
        loop_unwatch(net->loop, listener->fd);
        close(listener->fd);
    }
    tls_context_unref(listener->tls);
    free(listener);
    net->listener_count--;
    netloop_release_if_unused(net);
}

static void on_accept_retry(struct event_loop *loop, void *data)
{
    struct netlistener *listener = data;
    listener->retry_timer = 0;
    if (loop_watch(loop, listener->fd, LOOP_READABLE, on_listener, listener) < 0)
        listener->retry_timer = loop_timer_add(loop, ACCEPT_RETRY_MS, on_accept_retry, listener);
}

static void on_listener(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)mask;
    struct netlistener *listener = data;
    listener->in_accept = true;
    for (int i = 0; i < ACCEPT_BUDGET && !listener->close_requested; i++) {
        struct sockaddr_storage addr;
        socklen_t addr_len = sizeof(addr);
        int conn_fd = accept4(fd, (struct sockaddr *)&addr, &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn_fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (!listener->limit_logged)
                    log_warning("accept on port %u: %s; pausing accepts", listener->port,
                                strerror(errno));
                listener->limit_logged = true;
                loop_unwatch(loop, fd);
                listener->retry_timer = loop_timer_add(loop, ACCEPT_RETRY_MS, on_accept_retry, listener);
            }
            break; /* EAGAIN: drained */
        }
        listener->limit_logged = false;
        struct netconn *conn = netconn_accepted(listener->net, conn_fd, (struct sockaddr *)&addr);
        if (conn && listener->tls)
            transport_tls_start(conn, listener->tls, listener->fn, listener->arg);
        else if (conn)
            listener->fn(conn, listener->arg);
    }
    listener->in_accept = false;
    if (listener->close_requested)
        listener_free(listener);
}

bool net_format_address(const struct sockaddr *addr, bool with_port, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN] = "?";
    bool loopback = false, bracket = false;
    unsigned port = 0;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            const uint8_t *v4 = in6->sin6_addr.s6_addr + 12;
            inet_ntop(AF_INET, v4, text, sizeof(text));
            loopback = v4[0] == 127;
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
            loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
            bracket = true;
        }
    } else {
        snprintf(out, cap, "%s", addr->sa_family == AF_UNIX ? "unix" : "unknown");
        return addr->sa_family == AF_UNIX;
    }
    if (!with_port)
        snprintf(out, cap, "%s", text);
    else if (bracket)
        snprintf(out, cap, "[%s]:%u", text, port);
    else
        snprintf(out, cap, "%s:%u", text, port);
    return loopback;
}

void netconn__format_peer(struct netconn *conn, const struct sockaddr *addr)
{
    conn->loopback = net_format_address(addr, true, conn->peer, sizeof(conn->peer));
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (getsockname(conn->fd, (struct sockaddr *)&local, &len) < 0)
        local.ss_family = AF_UNSPEC;
    net_format_address((const struct sockaddr *)&local, true, conn->local, sizeof(conn->local));
}

static int listen_on(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_listen_socket(const char *addr, uint16_t port, uint16_t *bound_port)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *list;
    int gai = getaddrinfo(addr && *addr ? addr : NULL, service, &hints, &list);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -EINVAL;
    int fd = -1;
    errno = EADDRNOTAVAIL;
    for (const struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next)
        fd = listen_on(ai);
    freeaddrinfo(list);
    if (fd < 0)
        return -errno;
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

struct netlistener *netlistener_open(struct event_loop *loop, const char *addr, uint16_t port,
                                     netconn_accept_fn fn, void *arg)
{
    uint16_t bound_port = 0;
    int fd = net_listen_socket(addr, port, &bound_port);
    if (fd < 0) {
        errno = -fd;
        return NULL;
    }

    struct netlistener *listener = calloc(1, sizeof(*listener));
    struct netloop *net = listener ? netloop_acquire(loop) : NULL;
    int err = net ? 0 : ENOMEM;
    if (!err)
        err = -loop_watch(loop, fd, LOOP_READABLE, on_listener, listener);
    if (err) {
        close(fd);
        free(listener);
        if (net)
            netloop_release_if_unused(net);
        errno = err;
        return NULL;
    }
    listener->net = net;
    listener->fd = fd;
    listener->fn = fn;
    listener->arg = arg;
    listener->port = bound_port;
    net->listener_count++;
    return listener;
}

uint16_t netlistener_port(const struct netlistener *listener) { return listener->port; }

void netlistener_set_tls(struct netlistener *listener, struct tls_context *ctx)
{
    if (ctx)
        tls_context_ref(ctx);
    tls_context_unref(listener->tls);
    listener->tls = ctx;
}

void netlistener_close(struct netlistener *listener)
{
    if (!listener)
        return;
    if (listener->in_accept) {
        listener->close_requested = true; /* freed when its accept loop returns */
        return;
    }
    listener_free(listener);
}
