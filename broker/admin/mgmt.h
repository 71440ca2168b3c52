/* broker/admin/mgmt.h: RabbitMQ's management API over the broker (docs/management.md): one
 * router and one set of resources served through two doors: HTTP (management_port, see
 * http_server.h) for users authenticated with basic auth and authorised by their tags, and
 * the admin socket (admin.h), whose requests run with every right. */
#ifndef WARREN_MGMT_H
#define WARREN_MGMT_H

#include <jansson.h>

#include "http_server.h"

struct mgmt;
struct server;

/* The largest request body the HTTP door accepts: RabbitMQ's management.http_max_body_size
 * default (20 MiB, introduced for CVE-2023-46118; enough for a definitions file with 200,000
 * queues). A body is parsed on the event loop (a million values take seconds), so the bound is
 * also how long an administrator's upload can hold the loop. The admin socket, whose users are
 * the broker's operators, keeps a larger one (ADMIN_MAX_BODY in admin.h). */
#define MGMT_MAX_BODY (20u * 1024 * 1024)

/* Creates the API over server (which must outlive it). Returns NULL on ENOMEM. */
struct mgmt *mgmt_create(struct server *server);
void mgmt_destroy(struct mgmt *mgmt);

/* The HTTP door: an http_handler_fn with ctx = the mgmt. */
void mgmt_http_handler(void *ctx, const struct http_request *req, struct http_response *res);
/* Its http_admit_fn: a request with a body is read only from an authenticated management user
 * (else the 401 it would get, at once). */
bool mgmt_http_admit(void *ctx, const struct http_request *req, struct http_response *res);

/* The admin socket's door: runs `method path` (path as in HTTP: "/api/queues/%2F/q", with an
 * optional "?query") with body (borrowed; NULL: none) as the broker's operator. Returns the
 * HTTP status and sets *reply to the answer (the caller owns it; NULL when empty). */
unsigned mgmt_run(struct mgmt *mgmt, const char *method, const char *path, json_t *body, json_t **reply);

/* Percent-encodes len bytes of name (any bytes) as one path segment into out (cap bytes, NUL
 * added): RFC 3986's unreserved characters stay, every other byte becomes %XX, so "/" (the
 * vhost "/") is "%2F". Returns the length written, or -1 when out is too small. */
int mgmt_path_encode(const char *name, size_t len, char *out, size_t cap);

#endif
