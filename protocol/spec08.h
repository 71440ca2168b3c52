/* protocol/spec08.h: AMQP 0-8 as RabbitMQ 3.10 speaks it, told as its differences from 0-9-1.
 * Methods keep their 0-9-1 ids and argument structs (spec.h); these two functions translate on
 * the wire, reusing the generated descriptor tables. */
#ifndef WARREN_SPEC08_H
#define WARREN_SPEC08_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"

/* The access class, which 0-9-1 dropped. RabbitMQ grants every access.request with ticket 1
 * and ignores the tickets methods carry. access.request decodes with no arguments kept. */
#define SPEC08_CLASS_ACCESS 30
#define SPEC08_ACCESS_REQUEST SPEC_METHOD_ID(30, 10)
#define SPEC08_ACCESS_REQUEST_OK SPEC_METHOD_ID(30, 11) /* encodes ticket 1 */

/* Decodes a 0-8 method payload into out under the 0-9-1 id of the same method: connection.close
 * and close-ok travel as 10/60 and 10/61; basic.consume has no arguments table (out's stays
 * empty); access.request becomes SPEC08_ACCESS_REQUEST. The methods RabbitMQ's 0-8 lacks
 * (exchange.bind/unbind, basic.nack, confirm.*, connection.blocked/unblocked/update-secret) are
 * PROTO_ERR_UNKNOWN_METHOD. Otherwise returns as spec_method_decode. */
int spec08_method_decode(const uint8_t *payload, size_t len, struct spec_method *out);

/* Encodes m as 0-8: the inverse of spec08_method_decode (basic.consume without its arguments
 * table, which is dropped), and channel.open-ok without its 0-9-1 field. A method 0-8 lacks is PROTO_ERR_UNKNOWN_METHOD. Otherwise returns as
 * spec_method_encode. */
long spec08_method_encode(const struct spec_method *m, uint8_t *out, size_t cap);

#endif
