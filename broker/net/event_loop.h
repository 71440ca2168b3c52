/* broker/net/event_loop.h: a small single-threaded event loop: file events, timers and a
 * before-sleep hook. It knows nothing of AMQP; only event_loop.c includes <sys/epoll.h>. */
#ifndef WARREN_EVENT_LOOP_H
#define WARREN_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct event_loop;

enum {
    LOOP_READABLE = 1,
    LOOP_WRITABLE = 2,
    LOOP_ERROR = 4, /* hang-up or error reported on the fd (always delivered) */
};

/* Called when fd is ready; mask is a set of LOOP_* bits. */
typedef void (*loop_file_fn)(struct event_loop *loop, int fd, void *data, int mask);
/* Called once when a timer expires. */
typedef void (*loop_timer_fn)(struct event_loop *loop, void *data);
/* Called once per loop pass, after events were handled and before the loop sleeps again. */
typedef void (*loop_hook_fn)(struct event_loop *loop, void *data);

/* Creates a loop. Returns NULL on failure (errno set). */
struct event_loop *loop_create(void);

/* Frees the loop. Registered fds are not closed; pending timers are dropped. */
void loop_destroy(struct event_loop *loop);

/* Watches fd for the LOOP_READABLE/LOOP_WRITABLE bits in mask (level-triggered), replacing any
 * previous registration of fd. Returns 0 or -errno. */
int loop_watch(struct event_loop *loop, int fd, int mask, loop_file_fn fn, void *data);

/* Stops watching fd; events already collected for it in this pass are dropped, so an fd closed
 * and reused within one pass is never served with the old owner's data. */
void loop_unwatch(struct event_loop *loop, int fd);

/* Arms a one-shot timer `delay_ms` from now. Returns an id > 0, or 0 on allocation failure. */
uint64_t loop_timer_add(struct event_loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data);

/* Cancels a pending timer; unknown or already-fired ids are ignored. */
void loop_timer_cancel(struct event_loop *loop, uint64_t id);

/* Sets the single before-sleep hook (NULL clears it). */
void loop_set_before_sleep(struct event_loop *loop, loop_hook_fn fn, void *data);

/* Monotonic milliseconds, read after each wait (and before computing the wait's timeout);
 * cheap to call. */
uint64_t loop_now_ms(const struct event_loop *loop);

/* Monotonic microseconds, read at the same moments as loop_now_ms. */
uint64_t loop_now_us(const struct event_loop *loop);

/* Replaces the monotonic clock with now_us(ctx), in microseconds (tests and fuzzing drive time
 * by hand). It must never go backwards. The loop reads it at once and then at its usual
 * moments; NULL restores the monotonic clock. */
void loop_set_clock(struct event_loop *loop, uint64_t (*now_us)(void *ctx), void *ctx);

/* Runs one pass: waits at most timeout_ms (0: only collects what is ready; never negative) for
 * file events, dispatches them, runs the timers now due and the before-sleep hook. It neither
 * lingers nor looks at loop_stop. For tests and fuzzers that step the loop themselves.
 * Returns 0, or -errno if waiting failed. */
int loop_run_once(struct event_loop *loop, int timeout_ms);

/* Runs until loop_stop. The before-sleep hook also runs once before the first wait. Returns
 * 0, or -errno if waiting for events failed. */
int loop_run(struct event_loop *loop);

/* Makes loop_run return after the current pass (safe to call from any callback or a signal
 * handler). A stop requested while the loop is not running makes the next loop_run return
 * right after its first before-sleep hook. */
void loop_stop(struct event_loop *loop);

#endif
