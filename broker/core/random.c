/* broker/core/random.c: getrandom(2) and the random tokens built from it. Names derived from
 * counters or addresses can be guessed (and leak the heap layout); these cannot. */
#include "random.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int random_token(char out[RANDOM_TOKEN_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t bits[16];
    out[0] = '\0';
    if (random_bytes(bits, sizeof bits) != 0)
        return -EIO;
    /* 16 bytes are 21 whole sextets and 2 bits: the last character carries those 2 bits. */
    size_t n = 0;
    uint32_t acc = 0;
    int held = 0;
    for (size_t i = 0; i < sizeof bits; i++) {
        acc = acc << 8 | bits[i];
        held += 8;
        while (held >= 6) {
            held -= 6;
            out[n++] = alphabet[(acc >> held) & 63];
        }
    }
    out[n++] = alphabet[(acc << (6 - held)) & 63];
    out[n] = '\0';
    return 0;
}
