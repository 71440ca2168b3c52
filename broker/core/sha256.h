/* broker/core/sha256.h: SHA-256 (FIPS 180-4), streaming and one-shot. Used for RabbitMQ's
 * default password hashing; no library dependency. */
#ifndef WARREN_SHA256_H
#define WARREN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

/* Hashing state; fill it with sha256_init before use. */
struct sha256 {
    uint32_t state[8];
    uint64_t total;                  /* bytes hashed so far */
    uint8_t block[SHA256_BLOCK_LEN]; /* pending input, total % 64 bytes of it */
};

/* Starts a new hash. */
void sha256_init(struct sha256 *ctx);

/* Adds len bytes (data may be NULL when len is 0). */
void sha256_update(struct sha256 *ctx, const void *data, size_t len);

/* Writes the 32-byte digest to out and wipes ctx (it may have held secrets). */
void sha256_final(struct sha256 *ctx, uint8_t out[SHA256_DIGEST_LEN]);

/* One-shot: out = SHA-256(data[0..len)). */
void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN]);

#endif
