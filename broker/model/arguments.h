/* broker/model/arguments.h: RabbitMQ's equivalence check for redeclared exchanges and queues:
 * only the arguments RabbitMQ knows are compared, integer types compare by value, and the
 * 406 text names the first argument that differs, with RabbitMQ's wording. */
#ifndef WARREN_ARGUMENTS_H
#define WARREN_ARGUMENTS_H

#include <stdint.h>

#include "proto.h"
#include "reply.h"

/* Arguments compared for classic queues, quorum queues and exchanges (NULL-terminated lists). */
extern const char *const arguments_queue_keys[];
extern const char *const arguments_quorum_queue_keys[];
extern const char *const arguments_exchange_keys[];

/* Compares current and requested (table contents) on keys. Returns 0 when equivalent, or -1
 * with err = 406 "inequivalent arg 'K' for <what> 'NAME' in vhost '/': received X but current
 * is Y". */
int arguments_equivalent(struct proto_bytes current, struct proto_bytes requested, const char *const *keys,
                         const char *what, struct proto_bytes name, uint32_t method_id, struct reply_error *err);

/* RabbitMQ's name for a field type (TABLE_*), as its error texts print them; a static string. */
const char *arguments_type_name(uint8_t type);

#endif
