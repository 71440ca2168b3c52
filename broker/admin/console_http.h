/* broker/admin/console_http.h: the web console's door on the management port. Every GET
 * outside /api is a console file (console_assets.h), served to anyone: the page logs in
 * through the API itself, which is the only thing it talks to (docs/console.md). */
#ifndef WARREN_CONSOLE_HTTP_H
#define WARREN_CONSOLE_HTTP_H

#include <stdbool.h>

#include "http_server.h"

/* Is path (as sent) one of the API's ("/api" or under "/api/")? Others are the console's. */
bool console_http_is_api(const char *path);

/* Answers req with the file at its path: 200 with the embedded bytes (no copy), 304 when the
 * browser's If-None-Match holds the file's ETag, 404 for an unknown path, 405 for a method
 * other than GET or HEAD. Console pages carry a strict Content-Security-Policy. */
void console_http_answer(const struct http_request *req, struct http_response *res);

#endif
