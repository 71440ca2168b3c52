/* broker/core/base64.h: standard base64 (RFC 4648 section 4, with '=' padding), as RabbitMQ
 * writes password hashes in its definitions. */
#ifndef WARREN_BASE64_H
#define WARREN_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode writes for len input bytes, not counting the NUL. */
#define BASE64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)

/* Upper bound on the bytes base64_decode writes for text_len characters. */
#define BASE64_DECODED_MAX(text_len) (((text_len) / 4) * 3)

/* Writes the encoding of data[0..len) and a NUL to out, which holds at least
 * BASE64_ENCODED_LEN(len) + 1 bytes. Returns the characters written, NUL excluded. */
size_t base64_encode(const uint8_t *data, size_t len, char *out);

/* Decodes text[0..text_len) into out (room for out_cap bytes). The text must be whole padded
 * quanta of the standard alphabet, with no whitespace. Returns the bytes written, or -EINVAL
 * for malformed text, -ENOSPC when out is too small. */
long base64_decode(const char *text, size_t text_len, uint8_t *out, size_t out_cap);

#endif
