/* broker/admin/console_assets.c: finds an embedded console file by its URL path (see
 * console_assets.h). The table is generated sorted, so a lookup is a bisection. */
#include "console_assets.h"

#include <string.h>

const struct console_asset *console_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    size_t low = 0, high = console_assets_count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int c = strcmp(path, console_assets[mid].path);
        if (c == 0)
            return &console_assets[mid];
        if (c < 0)
            high = mid;
        else
            low = mid + 1;
    }
    return NULL;
}
