/* tests/fuzz/fuzz_connection.h: what the whole-connection fuzzer's two files share: the
 * session (a broker on a virtual clock), the client side of each connection, and the
 * operations interpreter (fuzz_connection_ops.c) that turns input bytes into traffic. */
#ifndef WARREN_FUZZ_CONNECTION_H
#define WARREN_FUZZ_CONNECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "fuzz_common.h"
#include "server.h"
#include "spec.h"

#define FUZZ_CONNS 2
#define FUZZ_CHANNELS 4 /* channels 1..4; slot 0 is unused */
#define FUZZ_TAGS 8     /* delivery tags remembered per channel */
#define FUZZ_METHOD_MAX 65536

struct fuzz_buf {
    uint8_t *data;
    size_t len, cap;
};

/* The client's view of a channel, kept in step with the broker's replies. */
enum fuzz_channel_state { FUZZ_CH_CLOSED, FUZZ_CH_OPENING, FUZZ_CH_OPEN, FUZZ_CH_CLOSING };

struct fuzz_channel {
    enum fuzz_channel_state state;
    uint64_t tags[FUZZ_TAGS]; /* the latest delivery tags received */
    unsigned tag_count;
    char consumer_tag[256]; /* of the latest consume-ok */
};

struct fuzz_client {
    int fd; /* our end of the socketpair; -1: no connection */
    bool open;        /* connection.open-ok received */
    bool closing;     /* a connection.close went one way or the other */
    bool reading;     /* false: the broker's output piles up (backpressure) */
    bool raw;         /* raw mode: no answers to the broker's methods */
    bool seen_output;
    uint8_t header[8];  /* the first bytes this client sent: its protocol header, if any */
    size_t header_len;
    uint32_t frame_max; /* what the broker's frames must respect */
    struct fuzz_buf in;  /* broker output not yet framed */
    struct fuzz_buf out; /* our frames not yet written */
    size_t out_sent;
    char last_queue[256]; /* from the latest queue.declare-ok */
    struct fuzz_channel channels[FUZZ_CHANNELS + 1];
};

struct fuzz_session {
    uint64_t now_us; /* the loop's clock */
    struct event_loop *loop;
    struct server_config config;
    struct server *server;
    struct fuzz_client clients[FUZZ_CONNS];
    size_t piece;    /* bytes per write (0: all at once) */
    size_t passes;   /* loop passes so far */
    int connects;
};

/* What goes wrong in a handshake, now and then. */
enum fuzz_handshake_fault {
    FUZZ_HS_OK,
    FUZZ_HS_WRONG_PASSWORD,
    FUZZ_HS_AMQPLAIN,       /* a PLAIN response under the AMQPLAIN mechanism */
    FUZZ_HS_UNKNOWN_VHOST,
    FUZZ_HS_CHANNEL_MAX_0,
    FUZZ_HS_FRAME_MAX_SMALL,
    FUZZ_HS_NO_OPEN,        /* tune-ok, then nothing: the handshake timer ends it */
    FUZZ_HS_FAULTS,
};

/* How a connection opens: whether the handshake is sent at all, its tune-ok values, whether
 * the client announces authentication_failure_close, and what goes wrong. */
struct fuzz_handshake {
    bool send;
    bool raw;
    bool auth_failure_close;
    enum fuzz_handshake_fault fault;
    uint32_t frame_max;
    uint16_t heartbeat;
};

/* Queues one frame, one encoded method, or raw bytes for the broker. */
void fuzz_send_frame(struct fuzz_client *c, uint8_t type, uint16_t channel, const uint8_t *payload,
                     uint32_t size);
void fuzz_send_method(struct fuzz_client *c, uint16_t channel, const struct spec_method *m);
void fuzz_send_raw(struct fuzz_client *c, const uint8_t *data, size_t len);
/* Opens a new connection for c (hanging up the old one) and queues the handshake. False when
 * the input's connection budget is spent or the socketpair fails. */
bool fuzz_connect(struct fuzz_session *s, struct fuzz_client *c, const struct fuzz_handshake *hs);
/* Closes our end without a word (the broker sees EOF). */
void fuzz_hang_up(struct fuzz_client *c);
/* Writes, runs passes and reads until everything is quiet; aborts on a livelock. */
void fuzz_settle(struct fuzz_session *s);
/* Moves the clock ms forward, then settles (TTL, x-expires, heartbeats, timeouts fire). */
void fuzz_advance(struct fuzz_session *s, uint64_t ms);
/* True once the input has used its pass budget. */
bool fuzz_out_of_budget(const struct fuzz_session *s);

/* Structured mode: decodes data into operations and runs them (fuzz_connection_ops.c). */
void fuzz_run_ops(struct fuzz_session *s, uint8_t setup, const uint8_t *data, size_t size);

#endif
