/* broker/amqp/introspect_stats.h: how introspect.c turns the model's counters and the
 * sampler's rates (stats.h) into the views of introspect.h. Private to introspect*.c. */
#ifndef WARREN_INTROSPECT_STATS_H
#define WARREN_INTROSPECT_STATS_H

#include "introspect.h"
#include "stats.h"

struct connection;
struct queue;

/* Each fills the view's counters and, when rate is not NULL, its rates (rate[] in the
 * counters' order, as the series keep them); fields the object does not count are left 0. */
void introspect_fill_queue(const struct stats_queue *c, const float *rate, struct introspect_message_stats *out,
                           struct introspect_rates *rates);
void introspect_fill_channel(const struct stats_channel *c, const float *rate, struct introspect_message_stats *out,
                             struct introspect_rates *rates);
void introspect_fill_exchange(const struct stats_exchange *c, const float *rate,
                              struct introspect_message_stats *out, struct introspect_rates *rates);

/* The statistics part of a connection's view: counters of its channels (closed ones too),
 * rates, and socket figures. */
void introspect_fill_connection(struct connection *conn, struct introspect_connection *out);

#endif
