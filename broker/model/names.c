/* broker/model/names.c: what makes a name acceptable (names.h), checked once for clients and
 * for everything read back from disk. */
#include "names.h"

#include <stdio.h>
#include <string.h>

int name_check(struct proto_bytes name, bool empty_ok, const char **why)
{
    const char *problem = NULL;
    if (name.len == 0 && !empty_ok)
        problem = "the name is empty";
    else if (name.len > NAME_MAX_LEN)
        problem = "the name is longer than 255 bytes";
    else if (name.len && memchr(name.ptr, '\0', name.len))
        problem = "the name contains a zero byte";
    if (why)
        *why = problem;
    return problem ? -1 : 0;
}

const char *name_quote(struct proto_bytes name, char out[NAME_QUOTE_SIZE])
{
    enum { SHOWN = 64 };
    size_t at = 0;
    for (uint32_t i = 0; i < name.len && i < SHOWN; i++) {
        uint8_t c = name.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[at++] = (char)c;
        else
            at += (size_t)snprintf(out + at, NAME_QUOTE_SIZE - at, "\\x%02x", c);
    }
    if (name.len > SHOWN) {
        memcpy(out + at, "...", 3);
        at += 3;
    }
    out[at] = '\0';
    return out;
}
