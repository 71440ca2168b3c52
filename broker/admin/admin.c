/* broker/admin/admin.c: the admin socket's I/O: accept, read one request line (and the body it
 * announces, if any), run it, write the answer, close. Who may connect is decided by the file's mode (0600: the broker's user,
 * and root) and checked again with the peer's credentials. Each client has a deadline. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin_internal.h"
#include "event_loop.h"
#include "log.h"
#include "mgmt.h"
#include "server.h"

struct admin_client {
    struct admin *admin;
    struct admin_client *prev, *next;
    int fd;
    uint64_t timer;
    char *in;         /* the request line (ADMIN_MAX_REQUEST bytes at most), then its body */
    size_t in_len;
    size_t in_cap;
    bool parsed;      /* req holds the request line; in_cap is then the line and its body */
    size_t body_at;   /* where the body starts in `in` */
    struct admin_request req;
    char *out;        /* the answer (one JSON document and a newline); the client is writing once set */
    size_t out_len;
    size_t sent;      /* bytes of out written */
};

struct admin {
    struct event_loop *loop;
    struct admin_context context; /* the server, its management API, and the stop handler */
    int fd;
    char *path;
    dev_t dev; /* identity of the socket file we created, so close removes only ours */
    ino_t ino;
    struct admin_client *clients;
    size_t nclients;
};

/* Frees the client. Safe from its own callbacks: nothing else refers to a client, loop_unwatch
 * drops any event still collected for the fd in this pass, and the timer is cancelled. */
static void client_close(struct admin_client *c)
{
    struct admin *admin = c->admin;
    loop_unwatch(admin->loop, c->fd);
    close(c->fd);
    if (c->timer)
        loop_timer_cancel(admin->loop, c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        admin->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    admin->nclients--;
    if (c->parsed)
        admin_request_free(&c->req);
    free(c->out);
    free(c->in);
    free(c);
}

static void on_client(struct event_loop *loop, int fd, void *data, int mask);

/* Writes what the socket takes; closes the client when the whole answer is out (or the peer
 * is gone), else waits for LOOP_WRITABLE. */
static void client_flush(struct admin_client *c)
{
    while (c->sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (loop_watch(c->admin->loop, c->fd, LOOP_WRITABLE, on_client, c) == 0)
                return;
        }
        break;
    }
    client_close(c);
}

/* Serialises the answer (taken; NULL: out of memory), ends it with a newline and starts
 * sending it. */
static void client_send(struct admin_client *c, json_t *answer)
{
    char *text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (!text) {
        answer = admin_error("internal", "out of memory");
        text = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
        json_decref(answer);
    }
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    size_t len = text ? strlen(text) : 0;
    char *out = text ? realloc(text, len + 2) : NULL;
    if (!out) {
        free(text);
        client_close(c);
        return;
    }
    out[len] = '\n';
    out[len + 1] = '\0';
    c->out = out;
    c->out_len = len + 1;
    client_flush(c);
}

/* Runs the parsed request, whose body (if any) is in; answers; then, for stop, starts the
 * shutdown (the answer is queued, and the loop flushes it before it ends). */
static void client_run(struct admin_client *c)
{
    c->req.body = c->in + c->body_at;
    json_t *answer = admin_run(&c->req);
    bool stop = c->req.stop_requested;
    struct admin *admin = c->admin;
    client_send(c, answer);
    if (stop)
        admin->context.stop(admin->context.stop_data);
}

/* The request line is in[0, len): parses it; runs it at once, or grows the buffer for the body
 * it announces. Returns true when the client has been answered. */
static bool client_parse(struct admin_client *c, size_t len)
{
    json_t *fail = admin_request_parse(&c->req, &c->admin->context, c->in, len);
    if (fail) {
        client_send(c, fail);
        return true;
    }
    c->parsed = true;
    c->body_at = len + 1;
    size_t want = c->body_at + c->req.body_bytes;
    if (c->req.body_bytes == 0 || c->in_len >= want) {
        client_run(c);
        return true;
    }
    char *grown = realloc(c->in, want);
    if (!grown) {
        client_send(c, admin_error("internal", "out of memory for a body of %zu bytes", c->req.body_bytes));
        return true;
    }
    c->in = grown;
    c->in_cap = want;
    return false;
}

/* Reads until EAGAIN; parses once a newline (or the peer's end of sending) completes the
 * request line, and runs the request once the body it announces has arrived. */
static void client_read(struct admin_client *c)
{
    for (;;) {
        if (c->in_len == c->in_cap) {
            if (!c->parsed) {
                client_send(c, admin_error("bad_request", "request longer than %d bytes", ADMIN_MAX_REQUEST));
                return;
            }
            client_run(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            client_close(c);
            return;
        }
        if (n == 0) {
            if (c->parsed)
                client_send(c, admin_error("bad_request", "the body ended after %zu of %zu bytes",
                                           c->in_len - c->body_at, c->req.body_bytes));
            else if (c->in_len == 0)
                client_close(c);
            else if (!client_parse(c, c->in_len))
                client_send(c, admin_error("bad_request", "the request announces a body but sent none"));
            return;
        }
        size_t old = c->in_len;
        c->in_len += (size_t)n;
        if (c->parsed)
            continue;
        char *newline = memchr(c->in + old, '\n', (size_t)n);
        if (newline && client_parse(c, (size_t)(newline - c->in)))
            return;
    }
}

static void on_client(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    struct admin_client *c = data;
    if (c->out) {
        client_flush(c);
        return;
    }
    if (mask & (LOOP_READABLE | LOOP_ERROR))
        client_read(c);
}

static void on_client_timeout(struct event_loop *loop, void *data)
{
    (void)loop;
    struct admin_client *c = data;
    c->timer = 0;
    log_warning("admin: client did not complete its request within %d ms; disconnecting",
                ADMIN_CLIENT_TIMEOUT_MS);
    client_close(c);
}

/* Only the broker's own user and root may drive it, whatever the socket file's mode became. */
static bool peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return false;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void on_accept(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)mask;
    struct admin *admin = data;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warning("admin: accept failed: %s", strerror(errno));
            return;
        }
        if (!peer_allowed(cfd)) {
            log_warning("admin: refused a client of another user");
            close(cfd);
            continue;
        }
        if (admin->nclients >= ADMIN_MAX_CLIENTS) {
            log_warning("admin: too many admin clients (%d); refusing one", ADMIN_MAX_CLIENTS);
            close(cfd);
            continue;
        }
        struct admin_client *c = calloc(1, sizeof *c);
        char *in = malloc(ADMIN_MAX_REQUEST);
        if (!c || !in) {
            free(c);
            free(in);
            close(cfd);
            continue;
        }
        c->admin = admin;
        c->fd = cfd;
        c->in = in;
        c->in_cap = ADMIN_MAX_REQUEST;
        c->next = admin->clients;
        if (c->next)
            c->next->prev = c;
        admin->clients = c;
        admin->nclients++;
        c->timer = loop_timer_add(loop, ADMIN_CLIENT_TIMEOUT_MS, on_client_timeout, c);
        if (!c->timer || loop_watch(loop, cfd, LOOP_READABLE, on_client, c) != 0)
            client_close(c);
    }
}

/* Removes a socket file left by a previous run. Refuses a path that is not a socket, and a
 * socket some process still accepts on (another broker with the same data directory). */
static int remove_stale(const char *path, const struct sockaddr_un *addr)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        log_error("admin: %s exists and is not a socket; not replacing it", path);
        return -EEXIST;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int live = connect(probe, (const struct sockaddr *)addr, sizeof *addr) == 0;
    close(probe);
    if (live) {
        log_error("admin: another process is serving %s; is a broker already running on this data directory?",
                  path);
        return -EADDRINUSE;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

struct admin *admin_open(struct event_loop *loop, struct server *server, const char *socket_path)
{
    char default_path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
    if (!socket_path) {
        const char *dir = server_config(server)->data_dir;
        int n = snprintf(default_path, sizeof default_path, "%s/warren.sock", dir);
        if (n < 0 || (size_t)n >= sizeof default_path) {
            log_error("admin: socket path %s/warren.sock is too long for a Unix socket", dir);
            return NULL;
        }
        socket_path = default_path;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof addr.sun_path) {
        log_error("admin: socket path %s is too long for a Unix socket", socket_path);
        return NULL;
    }
    strcpy(addr.sun_path, socket_path);

    struct admin *admin = calloc(1, sizeof *admin);
    if (!admin || !(admin->path = strdup(socket_path))) {
        free(admin);
        log_error("admin: out of memory");
        return NULL;
    }
    admin->loop = loop;
    admin->context.server = server;
    admin->fd = -1;
    /* The admin socket's door onto the management API: its own router over the same server. */
    if (!(admin->context.mgmt = mgmt_create(server))) {
        log_error("admin: out of memory");
        goto fail;
    }
    if (remove_stale(socket_path, &addr) != 0)
        goto fail;
    admin->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (admin->fd < 0) {
        log_error("admin: socket: %s", strerror(errno));
        goto fail;
    }
    /* No umask dance (the umask is process-wide and the store has a thread creating files):
     * until the chmod below, the usual umask already denies others the write permission that
     * connecting needs, and peer_allowed refuses them in any case. */
    if (bind(admin->fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        log_error("admin: cannot bind %s: %s", socket_path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (chmod(socket_path, 0600) != 0 || stat(socket_path, &st) != 0) {
        log_error("admin: cannot set the mode of %s: %s", socket_path, strerror(errno));
        unlink(socket_path);
        goto fail;
    }
    admin->dev = st.st_dev;
    admin->ino = st.st_ino;
    if (listen(admin->fd, 16) != 0 || loop_watch(loop, admin->fd, LOOP_READABLE, on_accept, admin) != 0) {
        log_error("admin: cannot listen on %s: %s", socket_path, strerror(errno));
        unlink(socket_path);
        goto fail;
    }
    log_info("admin socket listening on %s", socket_path);
    return admin;
fail:
    if (admin->fd >= 0)
        close(admin->fd);
    mgmt_destroy(admin->context.mgmt);
    free(admin->path);
    free(admin);
    return NULL;
}

void admin_set_stop_handler(struct admin *admin, void (*stop)(void *data), void *data)
{
    admin->context.stop = stop;
    admin->context.stop_data = data;
}

void admin_set_reload_tls_handler(struct admin *admin, void (*reload)(void *data), void *data)
{
    admin->context.reload_tls = reload;
    admin->context.reload_tls_data = data;
}

void admin_close(struct admin *admin)
{
    if (!admin)
        return;
    while (admin->clients)
        client_close(admin->clients);
    loop_unwatch(admin->loop, admin->fd);
    close(admin->fd);
    struct stat st;
    if (stat(admin->path, &st) == 0 && st.st_dev == admin->dev && st.st_ino == admin->ino)
        unlink(admin->path);
    mgmt_destroy(admin->context.mgmt);
    free(admin->path);
    free(admin);
}
