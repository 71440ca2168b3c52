/* broker/model/reply.h: an AMQP exception as a value. Handlers fill one and return a negative
 * status; the dispatcher is the one place that turns it into channel.close (soft error) or
 * connection.close (hard error) and logs it once. */
#ifndef WARREN_REPLY_H
#define WARREN_REPLY_H

#include <stdint.h>

#define REPLY_TEXT_MAX 255 /* reply-text is a shortstr */

struct reply_error {
    uint16_t code;      /* AMQP reply code, e.g. 404 */
    uint32_t method_id; /* SPEC_* id of the method that failed, 0 when none */
    char text[REPLY_TEXT_MAX + 1]; /* "NOT_FOUND - no queue 'q' in vhost '/'" */
};

/* Fills err with code, the failing method and a RabbitMQ-shaped text (the code's name, " - ",
 * then the formatted explanation). Always returns -1 so handlers can `return reply_fail(...)`. */
int reply_fail(struct reply_error *err, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
