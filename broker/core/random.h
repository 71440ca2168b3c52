/* broker/core/random.h: the broker's one source of unpredictable bytes (getrandom(2)), and the
 * random tokens RabbitMQ puts in names a client must not be able to guess: server-named queues
 * (amq.gen-...), generated consumer tags (amq.ctag-...) and direct reply-to addresses. */
#ifndef WARREN_RANDOM_H
#define WARREN_RANDOM_H

#include <stddef.h>

/* Characters of a token: 128 random bits in URL-safe base64 without padding (RabbitMQ's
 * rabbit_guid:binary shape, e.g. "JzTY20BRgKO-HjmUJj0wLg"). */
#define RANDOM_TOKEN_LEN 22

/* Fills buf[0..len) from the kernel's random source. Returns 0, or -EIO when it cannot. */
int random_bytes(void *buf, size_t len);

/* Writes a new token and a NUL to out. Returns 0, or -EIO (out then holds "" ). */
int random_token(char out[RANDOM_TOKEN_LEN + 1]);

#endif
