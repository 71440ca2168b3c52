/* broker/admin/console_assets.h: the web console's files (console/ and Debian's Chart.js),
 * embedded in the binary at build time by gen_console_assets.py, looked up by URL path. The
 * broker then needs no files at run time and a page always matches the API it was built with
 * (docs/console.md). */
#ifndef WARREN_CONSOLE_ASSETS_H
#define WARREN_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
    const char *path;          /* "/app.js" */
    const unsigned char *bytes; /* static, len bytes (followed by a NUL not counted) */
    size_t len;
    const char *content_type;  /* with its charset: "text/javascript; charset=utf-8" */
    const char *etag;          /* a quoted hash of the bytes: "\"1f2e...\"" */
};

/* The generated table (console_assets_data.c), sorted by path with strcmp. */
extern const struct console_asset console_assets[];
extern const size_t console_assets_count;

/* The file served at path (as sent, before any query; "/" is "/index.html"), or NULL. */
const struct console_asset *console_asset_find(const char *path);

#endif
