/* broker/admin/admin_internal.h: between the admin socket (admin.c), the request format and the
 * broker-local commands (admin_commands.c), the commands translated onto the management API
 * (admin_api.c) and the list_* commands (admin_lists.c). Answers are jansson documents:
 * {"ok":true,...} or {"ok":false,"reason":"...","error":"..."}. */
#ifndef WARREN_ADMIN_INTERNAL_H
#define WARREN_ADMIN_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct server;
struct mgmt;

/* The most arguments a request may carry. */
#define ADMIN_MAX_ARGS 256

/* What a command may act on: the broker, the management API's router (whose calls run with
 * every right), how to stop the broker (stop may be NULL) and what else reloads its TLS files
 * after the AMQP listener did (reload_tls may be NULL). */
struct admin_context {
    struct server *server;
    struct mgmt *mgmt;
    void (*stop)(void *data);
    void *stop_data;
    void (*reload_tls)(void *data);
    void *reload_tls_data;
};

/* A request argument: a NUL-terminated copy, with its length (it may hold NUL bytes). */
struct admin_arg {
    char *s;
    size_t len;
};

/* One decoded request (admin_request_parse). */
struct admin_request {
    struct server *server;
    struct mgmt *mgmt;
    const struct admin_context *context;
    bool stop_requested; /* set by the stop command: call context->stop once answered */
    const char *command;
    const char *vhost;   /* "/" when the request names none */
    struct admin_arg *args;
    size_t nargs;
    json_t *options;     /* the request's "options" object (borrowed from doc; may be NULL) */
    size_t body_bytes;   /* how many bytes of body follow the request line (0: none) */
    const char *body;    /* those bytes, once read (admin.c sets them before admin_run) */
    json_t *doc;         /* the parsed request line, owned */
};

/* Parses one request line (JSON, see admin_commands.c) into req. Returns NULL, or an error
 * answer (the caller owns it) and leaves nothing in req to free. On success the caller runs the
 * request once its body_bytes have been read, then frees it with admin_request_free. */
json_t *admin_request_parse(struct admin_request *req, const struct admin_context *context, const char *line,
                            size_t len);
void admin_request_free(struct admin_request *req);

/* Runs a parsed request; returns its answer (never NULL: out of memory is the caller's to
 * detect by json_dumps failing, and garbage input gets an error answer). */
json_t *admin_run(struct admin_request *req);

/* An error answer; reason is a stable token warrenctl maps to its exit status. NULL on ENOMEM. */
json_t *admin_error(const char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* {"ok":true}, to which a command adds its results. */
json_t *admin_ok(void);

/* Checks the argument count and that the first `names` arguments (user, vhost and pattern
 * names, which become C strings) hold no NUL byte. Returns NULL, or the error answer. */
json_t *admin_want_args(const struct admin_request *req, size_t min, size_t max, size_t names, const char *usage);

/* The commands translated onto management API calls (admin_api.c). Returns NULL when
 * req->command is not one of them, else its answer. */
json_t *admin_api_command(struct admin_request *req);

/* The list_* commands (admin_lists.c). Returns NULL when req->command is not one of them,
 * else the whole answer: {"ok":true,"columns":[...],"rows":[[...],...]}. */
json_t *admin_list(const struct admin_request *req);

/* ---- the management API as the admin socket calls it (admin_api.c) ------------------------ */

/* Writes "/api/..." into out from fmt, where each "%s" takes the next argument (a C string)
 * percent-encoded as one path segment. Returns 0, or -1 when it does not fit. */
int admin_api_path(char *out, size_t cap, const char *fmt, ...);
/* Runs method on path (body borrowed, may be NULL) as the broker's operator; returns the HTTP
 * status and sets *reply (owned by the caller, may be NULL). */
unsigned admin_api_call(const struct admin_request *req, const char *method, const char *path, json_t *body,
                        json_t **reply);
/* The error answer for a failed API call: 400 -> invalid, 404 -> not_found, 405 -> usage,
 * 409 -> already_exists, anything else -> internal; error is the API's reason text. */
json_t *admin_api_failed(unsigned status, const json_t *reply);
/* Does the vhost exist (a non-empty name the API finds)? */
bool admin_api_vhost_exists(const struct admin_request *req, const char *vhost);

#endif
