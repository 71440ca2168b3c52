/* broker/http/http_server.h: an HTTP/1.1 listener served from the broker's event loop, for the
 * management API and the Prometheus endpoint. libmicrohttpd parses the protocol (see
 * docs/management.md for why); this layer binds the socket, plugs libmicrohttpd's epoll fd and
 * timeout into the loop, collects each request's body up to a limit, and hands every complete
 * request to one handler. It knows nothing of AMQP or JSON. No thread is started: the handler
 * runs inside the loop and must not block. */
#ifndef WARREN_HTTP_SERVER_H
#define WARREN_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_loop;
struct http_server;

/* A query parameter, percent-decoded ('+' is a space). value is "" for "?flag". */
struct http_param {
    const char *key;
    const char *value;
};

/* One complete request. Everything is valid only during the handler call. */
struct http_request {
    const char *method;  /* "GET", "PUT", ... as sent */
    const char *path;    /* as sent, NOT percent-decoded (so "%2F" stays inside a segment) */
    const struct http_param *query;
    size_t nquery;
    const char *user;     /* from basic authorization, NULL when none was sent */
    const char *password; /* idem */
    const char *body;     /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    const char *peer;     /* the client's address, e.g. "127.0.0.1" */
    bool loopback;        /* peer is a loopback address (net_format_address's rule, as for AMQP) */
    bool ajax;            /* "X-Requested-With" was sent: a 401 must not make a browser prompt */
    const char *reason;   /* the "X-Reason" header, NULL when absent */
    const char *if_none_match; /* the "If-None-Match" header (a cached file's ETag), NULL when absent */
    struct http_pending *pending; /* http_server.c's: what http_defer needs (NULL: cannot defer) */
};

/* What the handler answers. body is malloc'd and taken over by the server (NULL: empty),
 * unless static_body says it lives as long as the program (a file embedded in the binary):
 * then it is sent as it is, neither copied nor freed. */
struct http_response {
    unsigned status;
    char *body;
    size_t body_len;
    bool static_body;
    const char *content_type;  /* a static string; NULL: "application/json" */
    const char *allow;         /* for 405: the methods the resource takes ("GET, PUT") */
    bool ask_credentials;      /* 401: add WWW-Authenticate: Basic */
    const char *const *headers; /* static extra headers: name, value, ..., NULL; NULL: none */
    /* Or a body handed over in pieces, for an answer that would otherwise be joined into one
     * large buffer: read(reader, pos, buf, max) copies up to max bytes of the body from offset
     * pos into buf and returns how many (pos only grows); release(reader) is called once, when
     * the answer is sent or cannot be. body_len is the body's length; body stays NULL. */
    long (*read)(void *reader, uint64_t pos, char *buf, size_t max);
    void (*release)(void *reader);
    void *reader;
};

typedef void (*http_handler_fn)(void *ctx, const struct http_request *req, struct http_response *res);

/* The admission check, run once a request's headers are in and before any of its body is read
 * (for requests that announce one): req has no body. Returns true to go on; false after
 * filling res, which is sent at once (the body is never stored, the connection is closed). */
typedef bool (*http_admit_fn)(void *ctx, const struct http_request *req, struct http_response *res);

/* An answer given later, for a handler that must wait for something (the cluster applying a
 * change) before it can answer. Inside the handler, http_defer(req) returns a handle (NULL: the
 * request cannot wait, or out of memory; then answer now) and the handler leaves res as it is:
 * the connection is suspended, neither read nor timed out, until http_answer(d, res) gives the
 * answer (res's body is taken as a handler's is). Every handle must be answered exactly once,
 * from the loop, also after http_close or a certificate reload: the answer is then dropped
 * (the client got 503 when the server stopped). An admission check cannot defer. */
struct http_deferred;
struct http_deferred *http_defer(const struct http_request *req);
void http_answer(struct http_deferred *d, struct http_response *res);
/* Frees what res holds (its body, or its reader): an answer that will not be sent. */
void http_response_discard(struct http_response *res);

/* Limits that keep one client from holding what others share. */
#define HTTP_MAX_CONNECTIONS 128     /* more are closed at once */
#define HTTP_IDLE_TIMEOUT_S 30       /* a connection silent this long is closed */
#define HTTP_HEADERS_TIMEOUT_MS 10000 /* a request's headers must be in by then (from the
                                       * connection's start or the previous answer) */

/* Listens on bind_address:port (port 0: a free port, see http_port) and serves requests with
 * fn(ctx, ...), after admit(ctx, ...) (NULL: none) for requests with a body. A body larger
 * than max_body is refused with 413 without being stored. With tls (a reference is taken) the
 * listener speaks HTTPS with its certificate, key and priorities; NULL: plain HTTP.
 * Returns NULL after logging why (port taken, libmicrohttpd failure). */
struct tls_context;
struct http_server *http_open(struct event_loop *loop, const char *name, const char *bind_address, uint16_t port,
                              struct tls_context *tls, size_t max_body, http_handler_fn fn, http_admit_fn admit,
                              void *ctx);

/* An HTTPS server: serves new connections with tls instead (libmicrohttpd cannot swap a
 * certificate in place, so the daemon is restarted on the same listening socket: requests in
 * flight on the old one are cut, the port never stops accepting). On failure the previous
 * certificate stays in force. Returns 0, or -1 (also for a plain HTTP server). */
int http_set_tls(struct http_server *server, struct tls_context *tls);

/* The port actually bound. */
uint16_t http_port(const struct http_server *server);

/* Closes every connection and the listener and frees server (NULL is a no-op). Call before
 * the loop is destroyed. */
void http_close(struct http_server *server);

/* Percent-decodes s[0..len) into out (room for len + 1 bytes), NUL-terminated; with plus,
 * '+' becomes a space (query strings). Malformed escapes are kept as they are. Returns the
 * decoded length (the result may hold NUL bytes). */
size_t http_percent_decode(const char *s, size_t len, char *out, bool plus);

#endif
