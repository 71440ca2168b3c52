/* broker/http/http_server.c: libmicrohttpd driven by the broker's event loop (see
 * http_server.h). libmicrohttpd runs without threads in its epoll mode: it owns one epoll fd
 * holding the listener and its connections; the loop watches that fd and calls MHD_run when it
 * is readable, and a loop timer covers libmicrohttpd's own deadlines (idle connections). */
#include "http_server.h"
#include "tls_context.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "log.h"
#include "netconn.h"

#define MAX_QUERY_PARAMS 64
#define SWEEP_MS 1000 /* how often the connections' deadlines are looked at */

/* One client connection: the deadline by which its next request's headers must be in (0: none,
 * while a request is being read or answered). */
struct tracked {
    int fd;
    uint64_t headers_by_ms;
    struct tracked *prev, *next;
};

struct http_server {
    struct event_loop *loop;
    struct MHD_Daemon *daemon;
    char name[32]; /* for log lines: "management", "prometheus" */
    int epoll_fd;
    uint64_t timer;
    uint16_t port;
    size_t max_body;
    http_handler_fn fn;
    http_admit_fn admit;
    void *ctx;
    struct tls_context *tls; /* HTTPS with this certificate; NULL: plain HTTP */
    struct http_deferred *deferred; /* answers not given yet (http_defer), a list */
    struct tracked *tracked;        /* every open client connection, a list */
    size_t connections;             /* its length */
    uint64_t sweep_timer;
};

/* One request in progress: its body so far, and a deferred answer. */
struct request_state {
    char *body;
    size_t len, cap;
    bool too_big;
    struct http_deferred *deferred; /* the handler deferred and the answer is not in */
    bool suspended;                 /* libmicrohttpd holds the connection until the answer */
    bool answered;                  /* answer is in: sent when libmicrohttpd calls again */
    struct http_response answer;
};

/* What http_defer needs from the request being handled. */
struct http_pending {
    struct http_server *server;
    struct MHD_Connection *connection;
    struct request_state *state;
};

struct http_deferred {
    struct http_server *server; /* NULL once the server stopped: the answer is dropped */
    struct MHD_Connection *connection;
    struct request_state *state;
    struct http_deferred *prev, *next;
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t http_percent_decode(const char *s, size_t len, char *out, bool plus)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i] == '+' && plus ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return n;
}

/* libmicrohttpd would percent-decode the path before we see it, turning "%2F" (the vhost "/")
 * into a segment separator; we decode path segments and query values ourselves. */
static size_t keep_escaped(void *cls, struct MHD_Connection *connection, char *s)
{
    (void)cls;
    (void)connection;
    return strlen(s);
}

struct query_collect {
    struct http_param params[MAX_QUERY_PARAMS];
    size_t n;
};

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct query_collect *q = cls;
    if (q->n == MAX_QUERY_PARAMS)
        return MHD_NO;
    size_t klen = strlen(key), vlen = value ? strlen(value) : 0;
    char *k = malloc(klen + 1), *v = malloc(vlen + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return MHD_NO;
    }
    http_percent_decode(key, klen, k, true);
    http_percent_decode(value ? value : "", vlen, v, true);
    q->params[q->n].key = k;
    q->params[q->n].value = v;
    q->n++;
    return MHD_YES;
}

/* The client's address ("127.0.0.1", "::1") into out; true when it is a loopback address. */
static bool peer_address(struct MHD_Connection *connection, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr) {
        snprintf(out, cap, "unknown");
        return false;
    }
    return net_format_address(info->client_addr, false, out, cap);
}

/* Pieces of a body read through http_response.read: MHD asks for them as the socket drains. */
#define READ_BLOCK (64 * 1024)

static ssize_t read_piece(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_response *res = cls;
    long n = res->read(res->reader, pos, buf, max);
    return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void release_pieces(void *cls)
{
    struct http_response *res = cls;
    res->release(res->reader);
    free(res);
}

static struct MHD_Response *pieced_response(struct http_response *res)
{
    struct http_response *kept = malloc(sizeof *kept); /* MHD reads after the handler returned */
    if (!kept) {
        res->release(res->reader);
        return NULL;
    }
    *kept = *res;
    struct MHD_Response *response =
        MHD_create_response_from_callback(res->body_len, READ_BLOCK, read_piece, kept, release_pieces);
    if (!response)
        release_pieces(kept);
    return response;
}

static enum MHD_Result respond(struct MHD_Connection *connection, struct http_response *res)
{
    bool owned = res->body && !res->static_body;
    struct MHD_Response *response =
        res->read ? pieced_response(res)
                  : MHD_create_response_from_buffer(res->body_len, res->body ? res->body : (char *)"",
                                                    owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!response) {
        if (owned)
            free(res->body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "application/json");
    MHD_add_response_header(response, "Cache-Control", "no-cache");
    MHD_add_response_header(response, "Vary", "accept, accept-encoding, origin");
    if (res->allow)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->status == 401 && res->ask_credentials)
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"RabbitMQ Management\"");
    for (const char *const *h = res->headers; h && h[0] && h[1]; h += 2)
        MHD_add_response_header(response, h[0], h[1]);
    enum MHD_Result rc = MHD_queue_response(connection, res->status, response);
    MHD_destroy_response(response);
    return rc;
}

/* Builds the request as the handlers see it (the body from state, or none) and runs the
 * admission check (admission) or the handler; returns what admit returned (true otherwise). */
static bool with_request(struct http_server *server, struct MHD_Connection *connection, const char *url,
                         const char *method, struct request_state *state, bool admission,
                         struct http_response *res)
{
    struct http_pending pending = {server, connection, state};
    struct query_collect query = {.n = 0};
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_param, &query);
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(connection, &password);
    char peer[64];
    bool loopback = peer_address(connection, peer, sizeof peer);
    const char *query_start = strchr(url, '?'); /* MHD passes the path only; be sure */
    char *path = query_start ? strndup(url, (size_t)(query_start - url)) : NULL;
    struct http_request req = {
        .method = method,
        .path = path ? path : url,
        .query = query.params,
        .nquery = query.n,
        .user = user,
        .password = password,
        .body = state && state->body ? state->body : "",
        .body_len = state ? state->len : 0,
        .peer = peer,
        .loopback = loopback,
        .ajax = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Requested-With") != NULL,
        .reason = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Reason"),
        .if_none_match = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH),
        .pending = state && !admission ? &pending : NULL,
    };
    bool admitted = true;
    if (admission)
        admitted = server->admit(server->ctx, &req, res);
    else
        server->fn(server->ctx, &req, res);
    if (password) {
        explicit_bzero(password, strlen(password));
        MHD_free(password);
    }
    if (user)
        MHD_free(user);
    free(path);
    for (size_t i = 0; i < query.n; i++) {
        free((char *)query.params[i].key);
        free((char *)query.params[i].value);
    }
    return admitted;
}

static enum MHD_Result too_large(struct MHD_Connection *connection)
{
    static const char text[] = "{\"error\":\"bad_request\",\"reason\":\"request body too large\"}";
    struct http_response res = {.status = 413, .body = strdup(text)};
    res.body_len = res.body ? strlen(res.body) : 0;
    return respond(connection, &res);
}

/* A request whose framing or path could be read two ways is refused, and its connection closed
 * (a proxy in front could have read it the other way: request smuggling), as RabbitMQ's cowboy
 * refuses it: 400. */
static enum MHD_Result bad_request(struct MHD_Connection *connection, const char *reason)
{
    char text[160];
    int n = snprintf(text, sizeof text, "{\"error\":\"bad_request\",\"reason\":\"%s\"}", reason);
    struct MHD_Response *response = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(connection, 400, response);
    MHD_destroy_response(response);
    return rc;
}

struct framing {
    unsigned lengths;       /* Content-Length headers */
    bool lengths_differ;    /* ... with different values */
    const char *length;
    bool bad_length;        /* one that is not a decimal number */
    unsigned encodings;     /* Transfer-Encoding headers */
    bool bad_encoding;      /* one that is not "chunked" */
};

static enum MHD_Result note_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct framing *f = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (f->lengths++ && strcmp(f->length, value ? value : "") != 0)
            f->lengths_differ = true;
        f->length = value ? value : "";
        f->bad_length |= !value || !*value || strspn(value, "0123456789") != strlen(value);
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->encodings++;
        f->bad_encoding |= !value || strcasecmp(value, "chunked") != 0;
    }
    return MHD_YES;
}

/* NULL when the request can be read one way only; else why not. */
static const char *ambiguous(struct MHD_Connection *connection, const char *url)
{
    struct framing f = {0};
    MHD_get_connection_values(connection, MHD_HEADER_KIND, note_framing, &f);
    if (f.lengths_differ || f.bad_length)
        return "invalid content-length";
    if (f.encodings > 1 || f.bad_encoding)
        return "unsupported transfer-encoding";
    if (f.encodings && f.lengths)
        return "both content-length and transfer-encoding";
    for (const char *p = strchr(url, '%'); p; p = strchr(p + 1, '%'))
        if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
            return "invalid percent-encoding in the path";
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    struct http_server *server = cls;
    struct request_state *state = *con_cls;
    if (!state) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct tracked *t = info ? info->socket_context : NULL;
        if (t)
            t->headers_by_ms = 0; /* its headers are in: the idle timeout watches the rest */
        const char *why = ambiguous(connection, url);
        if (why)
            return bad_request(connection, why);
        /* The headers are in; the body (if any) follows in later calls. A body that cannot be
         * accepted is refused before a byte of it is stored: one larger than the limit, or one
         * sent by a client the admission check turns away (no memory for strangers). */
        const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool chunked = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
        if (declared > server->max_body)
            return too_large(connection);
        if (server->admit && (declared > 0 || chunked)) {
            struct http_response res = {.status = 500};
            if (!with_request(server, connection, url, method, NULL, true, &res))
                return respond(connection, &res);
        }
        state = calloc(1, sizeof *state);
        if (!state)
            return MHD_NO;
        *con_cls = state;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (state->too_big || state->len + n > server->max_body) {
            state->too_big = true; /* keep reading and dropping: the answer comes at the end */
            free(state->body);
            state->body = NULL;
            state->len = state->cap = 0;
            return MHD_YES;
        }
        if (state->len + n + 1 > state->cap) {
            size_t cap = state->cap ? state->cap : 4096;
            while (cap < state->len + n + 1)
                cap *= 2;
            char *grown = realloc(state->body, cap);
            if (!grown)
                return MHD_NO;
            state->body = grown;
            state->cap = cap;
        }
        memcpy(state->body + state->len, upload_data, n);
        state->len += n;
        return MHD_YES;
    }
    if (state->answered) { /* resumed, or answered inside the handler: the deferred answer */
        state->answered = false;
        return respond(connection, &state->answer);
    }
    if (state->deferred) /* cannot happen: a suspended connection is not called */
        return MHD_YES;
    if (state->too_big)
        return too_large(connection);
    if (state->body)
        state->body[state->len] = '\0';
    struct http_response res = {.status = 500};
    with_request(server, connection, url, method, state, false, &res);
    if (state->answered) {
        state->answered = false;
        return respond(connection, &state->answer);
    }
    if (state->deferred) {
        state->suspended = true;
        MHD_suspend_connection(connection);
        return MHD_YES;
    }
    return respond(connection, &res);
}

/* Takes d off its server's list and off its request: from now on an answer given to d is
 * dropped (http_answer). */
static void deferred_detach(struct http_deferred *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        d->server->deferred = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->state->deferred = NULL;
    *d = (struct http_deferred){0};
}

static void on_timer(struct event_loop *loop, void *data);

struct http_deferred *http_defer(const struct http_request *req)
{
    struct http_pending *p = req->pending;
    if (!p || p->state->deferred || p->state->answered)
        return NULL;
    struct http_deferred *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    *d = (struct http_deferred){.server = p->server, .connection = p->connection, .state = p->state};
    d->next = p->server->deferred;
    if (d->next)
        d->next->prev = d;
    p->server->deferred = d;
    p->state->deferred = d;
    return d;
}

void http_response_discard(struct http_response *res)
{
    if (res->read)
        res->release(res->reader);
    else if (res->body && !res->static_body)
        free(res->body);
}

/* Gives res to d's request, which on_request sends, and detaches d. True when its connection
 * was suspended and is resumed now (libmicrohttpd must run for it). */
static bool give_answer(struct http_deferred *d, const struct http_response *res)
{
    struct request_state *state = d->state;
    struct MHD_Connection *connection = d->connection;
    deferred_detach(d);
    state->answer = *res;
    state->answered = true;
    if (!state->suspended)
        return false;
    state->suspended = false;
    MHD_resume_connection(connection);
    return true;
}

void http_answer(struct http_deferred *d, struct http_response *res)
{
    struct http_server *server = d->server;
    if (!server) {
        http_response_discard(res);
    } else if (give_answer(d, res)) {
        /* libmicrohttpd calls on_request again, which sends it: in a pass of its own, so that an
         * answer given from inside libmicrohttpd's callbacks never runs it again there. */
        if (server->timer)
            loop_timer_cancel(server->loop, server->timer);
        server->timer = loop_timer_add(server->loop, 0, on_timer, server);
    }
    free(d);
}

/* The server stops with answers outstanding: each connection is resumed with a 503 (sent if
 * libmicrohttpd still runs it, else closed), and each handle answered later is dropped. */
static void orphan_deferred(struct http_server *server)
{
    static const char text[] = "{\"error\":\"unavailable\",\"reason\":\"the server is restarting\"}";
    static const struct http_response restarting = {
        .status = 503, .body = (char *)text, .body_len = sizeof text - 1, .static_body = true};
    while (server->deferred)
        give_answer(server->deferred, &restarting);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *server = cls;
    (void)toe;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct tracked *t = info ? info->socket_context : NULL;
    if (t) /* kept alive: the next request's headers have as long as the first one's */
        t->headers_by_ms = loop_now_ms(server->loop) + HTTP_HEADERS_TIMEOUT_MS;
    struct request_state *state = *con_cls;
    if (state) {
        if (state->deferred) /* the connection went before its answer came: it is dropped */
            deferred_detach(state->deferred);
        if (state->answered)
            http_response_discard(&state->answer);
        free(state->body);
        free(state);
        *con_cls = NULL;
    }
}

static void log_from_mhd(void *cls, const char *fmt, va_list ap)
{
    struct http_server *server = cls;
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        text[--n] = '\0';
    log_debug("%s http: %s", server->name, text);
}

static void run(struct http_server *server);

/* Closes (shuts down: libmicrohttpd then closes it itself) every connection whose request
 * headers are late: a client that sends nothing, or a byte now and then (which the idle
 * timeout alone would never cut), holds a connection slot for HTTP_HEADERS_TIMEOUT_MS at
 * most, as cowboy's request_timeout does for RabbitMQ. */
static void sweep(struct event_loop *loop, void *data)
{
    struct http_server *server = data;
    server->sweep_timer = 0;
    uint64_t now = loop_now_ms(loop);
    for (struct tracked *t = server->tracked; t; t = t->next) {
        if (t->headers_by_ms && now >= t->headers_by_ms && t->fd >= 0) {
            log_debug("%s http: closing a connection whose request did not come in %d ms", server->name,
                      HTTP_HEADERS_TIMEOUT_MS);
            shutdown(t->fd, SHUT_RDWR);
            t->headers_by_ms = 0;
        }
    }
    if (server->tracked)
        server->sweep_timer = loop_timer_add(loop, SWEEP_MS, sweep, server);
}

/* libmicrohttpd's word on each connection, opened or closed. */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *server = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct tracked *t = calloc(1, sizeof *t);
        *socket_context = t;
        server->connections++; /* counted even without its record: the limit must hold */
        if (!t)
            return;
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = info ? info->connect_fd : -1;
        t->headers_by_ms = loop_now_ms(server->loop) + HTTP_HEADERS_TIMEOUT_MS;
        t->next = server->tracked;
        if (t->next)
            t->next->prev = t;
        server->tracked = t;
        if (!server->sweep_timer)
            server->sweep_timer = loop_timer_add(server->loop, SWEEP_MS, sweep, server);
        return;
    }
    struct tracked *t = *socket_context;
    server->connections--;
    if (t) {
        if (t->prev)
            t->prev->next = t->next;
        else
            server->tracked = t->next;
        if (t->next)
            t->next->prev = t->prev;
        free(t);
        *socket_context = NULL;
    }
}

/* At HTTP_MAX_CONNECTIONS a new connection is closed at once. (libmicrohttpd's own limit, left
 * above this one, takes the listening socket out of its epoll set, and puts it back only in a
 * later MHD_run that nothing would trigger once the connections are gone: the port stayed dead
 * for good after one burst of 128 idle connections.) */
static enum MHD_Result admit_connection(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    struct http_server *server = cls;
    if (server->connections < HTTP_MAX_CONNECTIONS)
        return MHD_YES;
    log_debug("%s http: a connection refused: %d open already", server->name, HTTP_MAX_CONNECTIONS);
    return MHD_NO;
}

static void on_timer(struct event_loop *loop, void *data)
{
    (void)loop;
    struct http_server *server = data;
    server->timer = 0;
    run(server);
}

static void on_ready(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    (void)mask;
    run(data);
}

/* Lets libmicrohttpd do everything that is ready, then arms the timer for its next deadline
 * (0 ms when it has work it could not finish, e.g. an answer queued in this run). */
static void run(struct http_server *server)
{
    MHD_run(server->daemon);
    MHD_UNSIGNED_LONG_LONG timeout;
    if (server->timer) {
        loop_timer_cancel(server->loop, server->timer);
        server->timer = 0;
    }
    if (MHD_get_timeout(server->daemon, &timeout) == MHD_YES)
        server->timer = loop_timer_add(server->loop, timeout, on_timer, server);
}

/* Starts a daemon on the listening socket fd (HTTPS with tls, plain without) and plugs its epoll
 * fd into the loop. Returns 0, or -1 after logging why (fd is left open). */
static int start_daemon(struct http_server *server, int fd, struct tls_context *tls)
{
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0);
    /* libmicrohttpd runs its own GnuTLS sessions: the same library, certificate, key and
     * protocol priorities as the AMQPS listener (tls_context.h). */
    const char *cert = tls ? tls_context_cert_pem(tls) : NULL;
    const char *key = tls ? tls_context_key_pem(tls) : NULL;
    const char *priority = tls ? tls_context_priority(tls) : NULL;
    server->daemon = MHD_start_daemon(
        flags, 0, admit_connection, server, on_request, server, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(2 * HTTP_MAX_CONNECTIONS), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, server,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, server,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, server, MHD_OPTION_EXTERNAL_LOGGER, log_from_mhd, server,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_HTTPS_PRIORITIES, priority, MHD_OPTION_END);
    if (!server->daemon) {
        log_error("%s: cannot start the HTTP%s server", server->name, tls ? "S" : "");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    server->epoll_fd = info ? info->epoll_fd : -1;
    int rc = server->epoll_fd >= 0 ? loop_watch(server->loop, server->epoll_fd, LOOP_READABLE, on_ready, server)
                                   : -EINVAL;
    if (rc != 0) {
        log_error("%s: cannot watch the HTTP server: %s", server->name, strerror(-rc));
        MHD_quiesce_daemon(server->daemon);
        MHD_stop_daemon(server->daemon);
        server->daemon = NULL;
        return -1;
    }
    if (tls)
        server->tls = tls_context_ref(tls);
    return 0;
}

/* Stops the daemon (its connections are closed) and returns the listening socket, still open. */
static int stop_daemon(struct http_server *server)
{
    if (server->timer)
        loop_timer_cancel(server->loop, server->timer);
    server->timer = 0;
    if (server->sweep_timer)
        loop_timer_cancel(server->loop, server->sweep_timer);
    server->sweep_timer = 0;
    loop_unwatch(server->loop, server->epoll_fd);
    orphan_deferred(server); /* libmicrohttpd refuses to stop with a connection suspended */
    /* MHD_stop_daemon does not close a socket given with MHD_OPTION_LISTEN_SOCKET. */
    int fd = MHD_quiesce_daemon(server->daemon);
    MHD_stop_daemon(server->daemon);
    server->daemon = NULL;
    tls_context_unref(server->tls);
    server->tls = NULL;
    return fd;
}

struct http_server *http_open(struct event_loop *loop, const char *name, const char *bind_address, uint16_t port,
                              struct tls_context *tls, size_t max_body, http_handler_fn fn, http_admit_fn admit,
                              void *ctx)
{
    struct http_server *server = calloc(1, sizeof *server);
    if (!server) {
        log_error("%s: out of memory", name);
        return NULL;
    }
    server->loop = loop;
    snprintf(server->name, sizeof server->name, "%s", name);
    server->max_body = max_body;
    server->fn = fn;
    server->admit = admit;
    server->ctx = ctx;
    int fd = net_listen_socket(bind_address, port, &server->port);
    if (fd < 0) {
        log_error("%s: cannot listen on %s:%u: %s", name, bind_address && *bind_address ? bind_address : "*",
                  port, strerror(-fd));
        free(server);
        return NULL;
    }
    if (start_daemon(server, fd, tls) != 0) {
        close(fd);
        free(server);
        return NULL;
    }
    log_info("%s: HTTP%s listener on %s:%u", name, tls ? "S" : "", bind_address && *bind_address ? bind_address : "*",
             server->port);
    return server;
}

int http_set_tls(struct http_server *server, struct tls_context *tls)
{
    if (!server->tls || !tls)
        return -1;
    struct tls_context *previous = tls_context_ref(server->tls);
    int fd = stop_daemon(server);
    int rc = fd >= 0 ? start_daemon(server, fd, tls) : -1;
    if (rc != 0 && fd >= 0 && start_daemon(server, fd, previous) != 0) {
        log_error("%s: the HTTPS listener is down after a failed certificate reload", server->name);
        close(fd);
    }
    tls_context_unref(previous);
    return rc;
}

uint16_t http_port(const struct http_server *server)
{
    return server->port;
}

void http_close(struct http_server *server)
{
    if (!server)
        return;
    if (server->daemon) {
        int fd = stop_daemon(server);
        if (fd >= 0)
            close(fd);
    }
    free(server);
}
