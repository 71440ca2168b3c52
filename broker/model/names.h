/* broker/model/names.h: the rule every exchange, queue and vhost name obeys wherever it comes
 * from (a client, the definitions file, a segment record), and a safe way to print one. */
#ifndef WARREN_NAMES_H
#define WARREN_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

/* Names are AMQP short strings: at most 255 octets. */
#define NAME_MAX_LEN 255

/* Room for name_quote's output: 64 octets, each escaped as \xNN at worst, "..." and the NUL. */
#define NAME_QUOTE_SIZE (64 * 4 + 4)

/* 0 when name can name an exchange, a queue or a vhost: 1..255 octets (0..255 when empty_ok)
 * with no zero octet, as AMQP 0-9-1 requires of a short string. Otherwise -1, and *why (when
 * not NULL) is a static description of what is wrong. Any other octet is accepted, as RabbitMQ
 * accepts it from clients: a rule stricter than the wire's would drop, at a restart, an object
 * a client was allowed to declare. */
int name_check(struct proto_bytes name, bool empty_ok, const char **why);

/* Writes name into out (NAME_QUOTE_SIZE bytes) for a log line: its first 64 octets, those
 * outside printable ASCII (and the backslash) as \xNN, then "..." when it was longer. Returns out. */
const char *name_quote(struct proto_bytes name, char out[NAME_QUOTE_SIZE]);

#endif
