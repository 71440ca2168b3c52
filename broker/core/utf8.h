/* broker/core/utf8.h: UTF-8 validation for text that arrives as arbitrary bytes (AMQP names
 * need not be UTF-8, while JSON and the Prometheus exposition format must be). */
#ifndef WARREN_UTF8_H
#define WARREN_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1 to 4) of the well-formed UTF-8 sequence at the start of s[0..n), n >= 1; 0 when
 * the bytes there are not one (overlong forms, surrogates and code points past U+10FFFF are
 * refused, as RFC 3629 says). */
size_t utf8_sequence(const unsigned char *s, size_t n);

/* True when all of s[0..n) is well-formed UTF-8 (as utf8_sequence judges it). */
bool utf8_valid(const unsigned char *s, size_t n);

#endif
