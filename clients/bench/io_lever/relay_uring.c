/* The completion back end: the producer is read by one multishot recv that picks its buffers
 * from a provided-buffer ring; output is sent by a send SQE prepared at the end of the pass;
 * each pass makes one system call, io_uring_submit_and_wait_timeout, which submits what the
 * previous pass prepared and waits for at least one completion. No SQPOLL: the loop blocks
 * only in that call.
 *
 * What the broker would have to do likewise: at most one send in flight per socket, and the
 * bytes it covers stay where they are until its completion (relay_take is told not to move
 * them); a partial send is resubmitted from where it stopped; reading pauses by cancelling the
 * multishot recv and resumes by arming a new one. */
#include "relay.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define RING_ENTRIES 64
#define BUFFER_COUNT 64 /* a power of two, as the buffer ring requires */
#define BUFFER_SIZE 16384
#define BUFFER_GROUP 0

enum { TAG_RECV = 1, TAG_SEND, TAG_CANCEL };

struct uring_relay {
    struct relay *relay;
    struct io_uring ring;
    struct io_uring_buf_ring *buffer_ring;
    uint8_t *buffers; /* BUFFER_COUNT * BUFFER_SIZE */
    bool recv_armed;  /* a multishot recv is live (its last CQE had IORING_CQE_F_MORE) */
    bool cancel_sent;
    bool paused;
    bool producer_eof;
    bool send_in_flight; /* [out_start, out_start + send_length) is pinned */
    bool wait_sends;     /* count this pass's send among the completions to wait for */
    unsigned sends_prepared;
};

static struct io_uring_sqe *next_sqe(struct uring_relay *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (!sqe) {
        /* Never expected with at most three SQEs per pass; correct, but one more syscall. */
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
        if (!sqe)
            relay_die("io_uring_get_sqe", -EBUSY);
    }
    return sqe;
}

static void give_buffer(struct uring_relay *loop, unsigned id)
{
    io_uring_buf_ring_add(loop->buffer_ring, loop->buffers + (size_t)id * BUFFER_SIZE,
                          BUFFER_SIZE, (unsigned short)id,
                          io_uring_buf_ring_mask(BUFFER_COUNT), 0);
    io_uring_buf_ring_advance(loop->buffer_ring, 1);
}

static void setup_buffers(struct uring_relay *loop)
{
    size_t ring_size = BUFFER_COUNT * sizeof(struct io_uring_buf);
    void *ring = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                      -1, 0);
    loop->buffers = malloc((size_t)BUFFER_COUNT * BUFFER_SIZE);
    if (ring == MAP_FAILED || !loop->buffers)
        relay_die("buffer memory", -ENOMEM);
    loop->buffer_ring = ring;
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)ring,
                                   .ring_entries = BUFFER_COUNT,
                                   .bgid = BUFFER_GROUP};
    int rc = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (rc < 0)
        relay_die("io_uring_register_buf_ring", rc);
    io_uring_buf_ring_init(loop->buffer_ring);
    for (unsigned id = 0; id < BUFFER_COUNT; id++)
        give_buffer(loop, id);
}

static void arm_recv(struct uring_relay *loop)
{
    struct io_uring_sqe *sqe = next_sqe(loop);
    io_uring_prep_recv_multishot(sqe, loop->relay->producer, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUFFER_GROUP;
    io_uring_sqe_set_data64(sqe, TAG_RECV);
    loop->recv_armed = true;
    loop->cancel_sent = false;
}

static void on_recv(struct uring_relay *loop, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        loop->recv_armed = false; /* the multishot recv ended; re-armed unless paused or EOF */
    if (cqe->res > 0) {
        unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        relay_take(loop->relay, loop->buffers + (size_t)id * BUFFER_SIZE, (size_t)cqe->res,
                   !loop->send_in_flight);
        give_buffer(loop, id);
    } else if (cqe->res == 0) {
        loop->producer_eof = true;
    } else if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED) {
        relay_die("recv", cqe->res);
    }
}

static void on_send(struct uring_relay *loop, const struct io_uring_cqe *cqe)
{
    loop->send_in_flight = false;
    if (cqe->res >= 0)
        relay_sent(loop->relay, (size_t)cqe->res); /* partial: the rest goes next pass */
    else if (cqe->res != -EINTR && cqe->res != -EAGAIN)
        relay_die("send", cqe->res);
}

/* The end of a pass: flow control, re-arming and the send, all left for the next wait. */
static void prepare(struct uring_relay *loop)
{
    struct relay *relay = loop->relay;
    if (!loop->paused && relay_pending(relay) > RELAY_OUT_HIGH_WATER) {
        loop->paused = true;
        relay->pauses++;
        if (loop->recv_armed && !loop->cancel_sent) {
            struct io_uring_sqe *sqe = next_sqe(loop);
            io_uring_prep_cancel64(sqe, TAG_RECV, 0);
            io_uring_sqe_set_data64(sqe, TAG_CANCEL);
            loop->cancel_sent = true;
        }
    } else if (loop->paused && relay_pending(relay) < RELAY_OUT_LOW_WATER) {
        loop->paused = false;
    }
    if (!loop->recv_armed && !loop->paused && !loop->producer_eof)
        arm_recv(loop);
    if (relay_pending(relay) && !loop->send_in_flight) {
        struct io_uring_sqe *sqe = next_sqe(loop);
        io_uring_prep_send(sqe, relay->consumer, relay->out + relay->out_start,
                           relay_pending(relay), MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, TAG_SEND);
        loop->send_in_flight = true;
        loop->sends_prepared++;
    }
}

int relay_run_uring(struct relay *relay, unsigned setup_flags, bool wait_sends)
{
    static struct uring_relay loop;
    loop.relay = relay;
    loop.wait_sends = wait_sends;
    int rc = io_uring_queue_init(RING_ENTRIES, &loop.ring, setup_flags);
    if (rc < 0)
        relay_die("io_uring_queue_init", rc);
    setup_buffers(&loop);
    arm_recv(&loop);

    while (!loop.producer_eof || relay_pending(relay) || loop.send_in_flight) {
        struct __kernel_timespec timeout = {.tv_sec = RELAY_WAIT_MS / 1000,
                                            .tv_nsec = (RELAY_WAIT_MS % 1000) * 1000000L};
        struct io_uring_cqe *cqe;
        /* A send to a socket with room completes inside the submit, and its CQE alone would
         * end the wait: a second pass per message. wait_sends waits for one more completion
         * per send instead; the cost is that a send to a full socket then holds back the
         * handling of the next receive until another completion or the timeout. Without a
         * live recv no other completion can come: wait for the send's alone. */
        unsigned wait_nr = 1 + (loop.wait_sends && loop.recv_armed ? loop.sends_prepared : 0);
        loop.sends_prepared = 0;
        rc = io_uring_submit_and_wait_timeout(&loop.ring, &cqe, wait_nr, &timeout, NULL);
        relay->passes++;
        if (rc < 0 && rc != -ETIME && rc != -EINTR)
            relay_die("io_uring_submit_and_wait_timeout", rc);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&loop.ring, head, cqe)
        {
            switch (cqe->user_data) {
            case TAG_RECV: on_recv(&loop, cqe); break;
            case TAG_SEND: on_send(&loop, cqe); break;
            default: break; /* TAG_CANCEL: the recv's own CQE says when it ended */
            }
            seen++;
        }
        io_uring_cq_advance(&loop.ring, seen);
        prepare(&loop);
    }
    io_uring_queue_exit(&loop.ring);
    munmap(loop.buffer_ring, BUFFER_COUNT * sizeof(struct io_uring_buf));
    free(loop.buffers);
    return 0;
}
