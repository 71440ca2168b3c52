/* broker/core/base64.c: base64 encoding and strict decoding (RFC 4648 section 4). Strict so that
 * two spellings of one hash never exist: padding is required and unused bits must be zero. */
#include "base64.h"

#include <errno.h>
#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const uint8_t *data, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t group = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            group |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            group |= data[i + 2];
        out[n++] = alphabet[(group >> 18) & 63];
        out[n++] = alphabet[(group >> 12) & 63];
        out[n++] = i + 1 < len ? alphabet[(group >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? alphabet[group & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

/* The 6-bit value of c, or -1 when c is not in the alphabet. */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long base64_decode(const char *text, size_t text_len, uint8_t *out, size_t out_cap)
{
    if (text_len % 4)
        return -EINVAL;
    size_t n = 0;
    for (size_t i = 0; i < text_len; i += 4) {
        bool last = i + 4 == text_len;
        int pad = 0;
        if (last && text[i + 3] == '=')
            pad = text[i + 2] == '=' ? 2 : 1;
        uint32_t group = 0;
        for (int j = 0; j < 4; j++) {
            int v = j < 4 - pad ? sextet(text[i + j]) : 0;
            if (v < 0)
                return -EINVAL;
            group = group << 6 | (uint32_t)v;
        }
        /* Bits below the last whole byte must be zero in the canonical spelling. */
        if ((pad == 1 && (group & 0xff)) || (pad == 2 && (group & 0xffff)))
            return -EINVAL;
        size_t bytes = 3 - (size_t)pad;
        if (n + bytes > out_cap)
            return -ENOSPC;
        out[n++] = (uint8_t)(group >> 16);
        if (bytes > 1)
            out[n++] = (uint8_t)(group >> 8);
        if (bytes > 2)
            out[n++] = (uint8_t)group;
    }
    return (long)n;
}
