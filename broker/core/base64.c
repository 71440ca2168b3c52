/* broker/core/base64.c: base64 (RFC 4648 section 4) over Nettle, GnuTLS's crypto library, so
 * the binary carries one implementation. Nettle's decoder is lenient (it skips whitespace and
 * does not insist on padding); this file adds the strictness definitions rely on, so that two
 * spellings of one hash never exist: whole padded quanta of the standard alphabet, padding only
 * at the end, and unused low bits zero. */
#include "base64.h"

#include <errno.h>
#include <nettle/base64.h>
#include <stdbool.h>
#include <string.h>

size_t base64_encode(const uint8_t *data, size_t len, char *out)
{
    size_t n = BASE64_ENCODED_LEN(len);
    base64_encode_raw(out, len, data);
    out[n] = '\0';
    return n;
}

static bool in_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* The bits of c below the last whole byte, given how many data characters its last quantum
 * has (2 or 3); c is in the alphabet. */
static unsigned stray_bits(char c, size_t data_chars)
{
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned value = (unsigned)(strchr(alphabet, c) - alphabet);
    return data_chars == 2 ? value & 0x0f : value & 0x03;
}

long base64_decode(const char *text, size_t text_len, uint8_t *out, size_t out_cap)
{
    if (text_len % 4)
        return -EINVAL;
    size_t pad = text_len && text[text_len - 1] == '=' ? (text[text_len - 2] == '=' ? 2 : 1) : 0;
    size_t data_len = text_len - pad;
    for (size_t i = 0; i < data_len; i++)
        if (!in_alphabet(text[i]))
            return -EINVAL;
    if (pad && stray_bits(text[data_len - 1], 4 - pad))
        return -EINVAL;
    size_t decoded = data_len / 4 * 3 + (pad ? 3 - pad : 0);
    if (decoded > out_cap)
        return -ENOSPC;
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    size_t written = out_cap;
    if (!base64_decode_update(&ctx, &written, out, text_len, text) || !base64_decode_final(&ctx) ||
        written != decoded)
        return -EINVAL;
    return (long)written;
}
