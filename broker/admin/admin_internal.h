/* broker/admin/admin_internal.h: between the admin socket (admin.c) and the command
 * interpreter (admin_commands.c, admin_lists.c). */
#ifndef WARREN_ADMIN_INTERNAL_H
#define WARREN_ADMIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"

struct server;

/* What a command may act on: the broker, and how to stop it (stop may be NULL). */
struct admin_context {
    struct server *server;
    void (*stop)(void *data);
    void *stop_data;
};

/* Runs one request (a JSON object, see admin_commands.c) and writes the complete answer to out:
 * {"ok":true,...} or {"ok":false,"reason":"...","error":"..."}. Never fails: garbage input gets
 * an error answer. */
void admin_execute(const struct admin_context *context, const char *request, size_t len, struct json_out *out);

/* Writes an error answer; reason is a stable token warrenctl maps to its exit status. */
void admin_error(struct json_out *out, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A request argument: a NUL-terminated copy, with its length (it may hold NUL bytes). */
struct admin_arg {
    char *s;
    size_t len;
};

/* One decoded request. */
struct admin_request {
    struct server *server;
    const struct admin_context *context;
    bool stop_requested; /* set by the stop command: call context->stop once answered */
    const char *vhost; /* "/" when the request names none */
    struct admin_arg *args;
    size_t nargs;
};

/* The list_* commands (admin_lists.c). Each returns false when `command` is not one of them;
 * otherwise it has written the whole answer: {"ok":true,"columns":[...],"rows":[[...],...]}. */
bool admin_list(const struct admin_request *req, const char *command, struct json_out *out);

#endif
