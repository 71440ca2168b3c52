/* broker/admin/console_http.c: serves the embedded console files (see console_http.h), with
 * the headers that keep a page served next to an API that acts on credentials safe: a
 * Content-Security-Policy allowing only this origin's scripts, styles and requests (no inline
 * script, so injected markup cannot run), nosniff, no framing, no referrer. Files are
 * revalidated on every load (Cache-Control: no-cache, from http_server.c) against an ETag
 * that changes with the binary, so an upgrade never mixes old and new modules. */
#include "console_http.h"

#include <string.h>

#include "console_assets.h"

#define CONSOLE_CSP                                                                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "          \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The ETag's value is set per answer; http_server.c copies the headers out before the next
 * request runs (the broker is single-threaded). */
static const char *headers[] = {
    "Content-Security-Policy", CONSOLE_CSP,
    "X-Content-Type-Options", "nosniff",
    "X-Frame-Options", "DENY",
    "Referrer-Policy", "no-referrer",
    "ETag", NULL,
    NULL, NULL,
};
enum { ETAG_VALUE = 9 };

static const char not_found[] = "Not Found\n";

bool console_http_is_api(const char *path)
{
    return strncmp(path, "/api", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

/* Does an If-None-Match value ("*", or a list of entity tags, weak or strong) name etag? */
static bool cached(const char *if_none_match, const char *etag)
{
    return if_none_match && (strcmp(if_none_match, "*") == 0 || strstr(if_none_match, etag) != NULL);
}

void console_http_answer(const struct http_request *req, struct http_response *res)
{
    res->headers = headers;
    headers[ETAG_VALUE] = NULL; /* a NULL value ends the list: no ETag unless a file is found */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        res->status = 405;
        res->allow = "GET, HEAD";
        return;
    }
    const struct console_asset *asset = console_asset_find(req->path);
    if (!asset) {
        res->status = 404;
        res->content_type = "text/plain; charset=utf-8";
        res->body = (char *)not_found;
        res->body_len = sizeof not_found - 1;
        res->static_body = true;
        return;
    }
    headers[ETAG_VALUE] = asset->etag;
    res->content_type = asset->content_type;
    if (cached(req->if_none_match, asset->etag)) {
        res->status = 304;
        return;
    }
    res->status = 200;
    res->body = (char *)asset->bytes;
    res->body_len = asset->len;
    res->static_body = true;
}
