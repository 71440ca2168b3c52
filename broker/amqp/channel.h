/* broker/amqp/channel.h: one AMQP channel: its state machine (open, closing), the assembly of
 * published content (method, header, bodies), and dispatch of class methods to their handlers. */
#ifndef WARREN_CHANNEL_H
#define WARREN_CHANNEL_H

#include <stdint.h>

#include "reply.h"

struct channel;
struct stats_channel;
struct connection;
struct frame;

/* Creates channel `number` on conn in the opening state (channel.open not yet handled).
 * Returns NULL on ENOMEM. */
struct channel *channel_create(struct connection *conn, uint16_t number);

/* Releases everything the channel holds (unacked deliveries go back to their queues,
 * consumers are cancelled) and frees it. */
void channel_destroy(struct channel *ch);

uint16_t channel_number(const struct channel *ch);

/* Handles one frame addressed to this channel. Soft errors close only the channel (sent here);
 * returns 0, or -1 with err filled for a hard error the caller turns into connection.close. */
int channel_handle_frame(struct channel *ch, const struct frame *frame, struct reply_error *err);

/* True once the channel finished closing (close-ok sent or received) and may be destroyed. */
int channel_is_closed(const struct channel *ch);

/* The channel's message counters (stats.h), valid while it lives. */
const struct stats_channel *channel_stats(const struct channel *ch);

#endif
