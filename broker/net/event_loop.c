/* broker/net/event_loop.c: the epoll event loop: fd registrations, a timer heap, the
 * before-sleep hook and the stop flag. The only file that includes <sys/epoll.h>.
 *
 * A pass: compute the timeout from the nearest timer, epoll_wait, dispatch file events, run
 * expired timers, run the before-sleep hook. The hook also runs once before the first wait so
 * that work queued before loop_run (output, closes) is not left waiting for an event.
 *
 * The loop never sleeps, spins or waits anywhere but in epoll_wait, and that wait never outlasts
 * the nearest timer: a connection with work ready is served in the pass that sees it. (An
 * earlier version slept up to 100 µs after a streaming publisher's input so that the next pass
 * carried more; that delayed every other connection too, and was removed: issue 14.)
 *
 * Stale events: every registration slot carries a generation that loop_unwatch bumps, and the
 * generation travels in the epoll user data with the fd. An event collected in this pass for a
 * registration that has since been removed (and perhaps re-made for a new socket that got the
 * same fd number) carries the old generation and is dropped.
 *
 * Timers: slots in a growable array with a free list; a binary min-heap of slot indices
 * ordered by (expiry, creation sequence) so timers with the same expiry fire in creation order.
 * A timer id is (slot generation << 32) | (slot index + 1): cancel finds the slot in O(1) and
 * removes it from the heap in O(log n); an id whose slot was freed or reused no longer matches. */
#include "event_loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 1024
/* epoll user data of the internal wake-up eventfd; real fds fit in the low 32 bits. */
#define LOOP_WAKE_TOKEN UINT64_MAX
#define TIMER_FREE UINT32_MAX

struct loop_file {
    loop_file_fn fn; /* NULL: fd not registered */
    void *data;
    int mask;
    uint32_t generation;
};

struct loop_timer {
    uint64_t when;
    uint64_t seq;
    loop_timer_fn fn;
    void *data;
    uint32_t generation;
    uint32_t heap_index; /* TIMER_FREE while the slot is on the free list */
    uint32_t next_free;
};

struct event_loop {
    int epfd;
    int wakefd;
    volatile sig_atomic_t stop;

    struct loop_file *files;
    int files_cap;

    struct loop_timer *timers;
    uint32_t timers_cap;
    uint32_t free_timer; /* head of the slot free list, TIMER_FREE when empty */
    uint32_t *heap;
    uint32_t heap_len;
    uint64_t timer_seq;

    uint64_t now_us;
    uint64_t now_ms;
    loop_hook_fn hook;
    void *hook_data;
    uint64_t (*clock)(void *ctx); /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;

    struct epoll_event events[LOOP_MAX_EVENTS];
};

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t clock_us(const struct event_loop *loop)
{
    return loop->clock ? loop->clock(loop->clock_ctx) : monotonic_us();
}

/* Reads the clock once for both resolutions. */
static void update_now(struct event_loop *loop)
{
    loop->now_us = clock_us(loop);
    loop->now_ms = loop->now_us / 1000u;
}

void loop_set_clock(struct event_loop *loop, uint64_t (*now_us)(void *ctx), void *ctx)
{
    loop->clock = now_us;
    loop->clock_ctx = ctx;
    update_now(loop);
}

struct event_loop *loop_create(void)
{
    struct event_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->free_timer = TIMER_FREE;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || loop->wakefd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LOOP_WAKE_TOKEN};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
        goto fail;
    update_now(loop);
    return loop;
fail: {
    int saved = errno;
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    free(loop);
    errno = saved;
    return NULL;
}
}

void loop_destroy(struct event_loop *loop)
{
    if (!loop)
        return;
    close(loop->epfd);
    close(loop->wakefd);
    free(loop->files);
    free(loop->timers);
    free(loop->heap);
    free(loop);
}

/* ---- file events ---- */

static uint32_t epoll_bits(int mask)
{
    uint32_t events = 0;
    if (mask & LOOP_READABLE)
        events |= EPOLLIN;
    if (mask & LOOP_WRITABLE)
        events |= EPOLLOUT;
    return events;
}

static int grow_files(struct event_loop *loop, int fd)
{
    int cap = loop->files_cap ? loop->files_cap : 64;
    while (cap <= fd)
        cap *= 2;
    struct loop_file *files = realloc(loop->files, (size_t)cap * sizeof(*files));
    if (!files)
        return -ENOMEM;
    memset(files + loop->files_cap, 0, (size_t)(cap - loop->files_cap) * sizeof(*files));
    loop->files = files;
    loop->files_cap = cap;
    return 0;
}

int loop_watch(struct event_loop *loop, int fd, int mask, loop_file_fn fn, void *data)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    if (fd >= loop->files_cap) {
        int rc = grow_files(loop, fd);
        if (rc < 0)
            return rc;
    }
    struct loop_file *file = &loop->files[fd];
    struct epoll_event ev = {
        .events = epoll_bits(mask),
        .data.u64 = (uint64_t)file->generation << 32 | (uint32_t)fd,
    };
    int rc;
    if (file->fn) {
        rc = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
        /* The fd was closed without loop_unwatch and its number reused: register afresh. */
        if (rc < 0 && errno == ENOENT)
            rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    } else {
        rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    if (rc < 0)
        return -errno;
    file->fn = fn;
    file->data = data;
    file->mask = mask & (LOOP_READABLE | LOOP_WRITABLE);
    return 0;
}

void loop_unwatch(struct event_loop *loop, int fd)
{
    if (fd < 0 || fd >= loop->files_cap || !loop->files[fd].fn)
        return;
    struct loop_file *file = &loop->files[fd];
    /* EBADF when the caller already closed fd: the kernel dropped it from the set then. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    file->fn = NULL;
    file->data = NULL;
    file->mask = 0;
    file->generation++;
}

static void dispatch(struct event_loop *loop, int count)
{
    for (int i = 0; i < count; i++) {
        uint64_t token = loop->events[i].data.u64;
        if (token == LOOP_WAKE_TOKEN) {
            uint64_t value;
            while (read(loop->wakefd, &value, sizeof(value)) > 0)
                ;
            continue;
        }
        int fd = (int)(uint32_t)token;
        /* Re-read the slot for every event: callbacks may grow (move) the array. */
        struct loop_file *file = &loop->files[fd];
        if (!file->fn || file->generation != (uint32_t)(token >> 32))
            continue;
        uint32_t events = loop->events[i].events;
        int mask = 0;
        if (events & EPOLLIN)
            mask |= LOOP_READABLE;
        if (events & EPOLLOUT)
            mask |= LOOP_WRITABLE;
        /* A callback earlier in this pass may have narrowed the registration. */
        mask &= file->mask;
        if (events & (EPOLLERR | EPOLLHUP))
            mask |= LOOP_ERROR;
        if (mask)
            file->fn(loop, fd, file->data, mask);
    }
}

/* ---- timers ---- */

static bool timer_before(const struct event_loop *loop, uint32_t a, uint32_t b)
{
    const struct loop_timer *ta = &loop->timers[a], *tb = &loop->timers[b];
    return ta->when < tb->when || (ta->when == tb->when && ta->seq < tb->seq);
}

static void heap_set(struct event_loop *loop, uint32_t index, uint32_t slot)
{
    loop->heap[index] = slot;
    loop->timers[slot].heap_index = index;
}

static void heap_sift_up(struct event_loop *loop, uint32_t index)
{
    uint32_t slot = loop->heap[index];
    while (index > 0) {
        uint32_t parent = (index - 1) / 2;
        if (!timer_before(loop, slot, loop->heap[parent]))
            break;
        heap_set(loop, index, loop->heap[parent]);
        index = parent;
    }
    heap_set(loop, index, slot);
}

static void heap_sift_down(struct event_loop *loop, uint32_t index)
{
    uint32_t slot = loop->heap[index];
    for (;;) {
        uint32_t child = 2 * index + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len && timer_before(loop, loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop, loop->heap[child], slot))
            break;
        heap_set(loop, index, loop->heap[child]);
        index = child;
    }
    heap_set(loop, index, slot);
}

static void heap_remove(struct event_loop *loop, uint32_t index)
{
    uint32_t last = loop->heap[--loop->heap_len];
    if (index == loop->heap_len)
        return;
    heap_set(loop, index, last);
    if (index > 0 && timer_before(loop, last, loop->heap[(index - 1) / 2]))
        heap_sift_up(loop, index);
    else
        heap_sift_down(loop, index);
}

static void timer_free_slot(struct event_loop *loop, uint32_t slot)
{
    struct loop_timer *timer = &loop->timers[slot];
    timer->generation++;
    timer->heap_index = TIMER_FREE;
    timer->fn = NULL;
    timer->data = NULL;
    timer->next_free = loop->free_timer;
    loop->free_timer = slot;
}

static int grow_timers(struct event_loop *loop)
{
    uint32_t cap = loop->timers_cap ? loop->timers_cap * 2 : 16;
    struct loop_timer *timers = realloc(loop->timers, cap * sizeof(*timers));
    if (!timers)
        return -1;
    loop->timers = timers;
    uint32_t *heap = realloc(loop->heap, cap * sizeof(*heap));
    if (!heap)
        return -1;
    loop->heap = heap;
    /* Chain the new slots so the lowest index is handed out first. */
    for (uint32_t slot = cap; slot-- > loop->timers_cap;) {
        memset(&timers[slot], 0, sizeof(timers[slot]));
        timers[slot].heap_index = TIMER_FREE;
        timers[slot].next_free = loop->free_timer;
        loop->free_timer = slot;
    }
    loop->timers_cap = cap;
    return 0;
}

uint64_t loop_timer_add(struct event_loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data)
{
    if (loop->free_timer == TIMER_FREE && grow_timers(loop) < 0)
        return 0;
    uint32_t slot = loop->free_timer;
    struct loop_timer *timer = &loop->timers[slot];
    loop->free_timer = timer->next_free;
    timer->when = delay_ms > UINT64_MAX - loop->now_ms ? UINT64_MAX : loop->now_ms + delay_ms;
    timer->seq = ++loop->timer_seq;
    timer->fn = fn;
    timer->data = data;
    loop->heap[loop->heap_len] = slot;
    heap_sift_up(loop, loop->heap_len++);
    return (uint64_t)timer->generation << 32 | (slot + 1u);
}

void loop_timer_cancel(struct event_loop *loop, uint64_t id)
{
    uint64_t low = id & UINT32_MAX;
    if (low == 0 || low > loop->timers_cap)
        return;
    uint32_t slot = (uint32_t)low - 1;
    struct loop_timer *timer = &loop->timers[slot];
    if (timer->heap_index == TIMER_FREE || timer->generation != (uint32_t)(id >> 32))
        return;
    heap_remove(loop, timer->heap_index);
    timer_free_slot(loop, slot);
}

/* Runs the timers due now. Timers added by these callbacks wait for the next pass, so a
 * callback that re-arms itself with delay 0 cannot starve file events. */
static void run_timers(struct event_loop *loop)
{
    uint64_t last_seq = loop->timer_seq;
    while (loop->heap_len) {
        uint32_t slot = loop->heap[0];
        struct loop_timer *timer = &loop->timers[slot];
        if (timer->when > loop->now_ms || timer->seq > last_seq)
            break;
        loop_timer_fn fn = timer->fn;
        void *data = timer->data;
        heap_remove(loop, 0);
        timer_free_slot(loop, slot);
        fn(loop, data);
    }
}

static int next_timeout(struct event_loop *loop)
{
    if (loop->heap_len == 0)
        return -1;
    update_now(loop);
    uint64_t when = loop->timers[loop->heap[0]].when;
    if (when <= loop->now_ms)
        return 0;
    uint64_t wait = when - loop->now_ms;
    return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* ---- the loop ---- */

void loop_set_before_sleep(struct event_loop *loop, loop_hook_fn fn, void *data)
{
    loop->hook = fn;
    loop->hook_data = data;
}

uint64_t loop_now_ms(const struct event_loop *loop) { return loop->now_ms; }
uint64_t loop_now_us(const struct event_loop *loop) { return loop->now_us; }

/* Waits up to timeout_ms (-1: forever), then dispatches, runs due timers and the hook. */
static int run_pass(struct event_loop *loop, int timeout_ms)
{
    int count = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout_ms);
    if (count < 0) {
        if (errno != EINTR)
            return -errno;
        count = 0; /* a signal: finish the pass so the stop flag is re-checked */
    }
    update_now(loop);
    dispatch(loop, count);
    run_timers(loop);
    if (loop->hook)
        loop->hook(loop, loop->hook_data);
    return 0;
}

int loop_run_once(struct event_loop *loop, int timeout_ms)
{
    int next = next_timeout(loop);
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (next >= 0 && next < timeout_ms)
        timeout_ms = next;
    return run_pass(loop, timeout_ms);
}

int loop_run(struct event_loop *loop)
{
    int rc = 0;
    update_now(loop);
    if (loop->hook)
        loop->hook(loop, loop->hook_data);
    while (!loop->stop) {
        rc = run_pass(loop, next_timeout(loop));
        if (rc < 0)
            break;
    }
    /* Cleared on the way out, not on the way in: a stop requested before loop_run still
     * counts, and the loop can be run again afterwards. */
    loop->stop = 0;
    return rc;
}

void loop_stop(struct event_loop *loop)
{
    /* Async-signal-safe: a flag and a write(2) to the eventfd. The write closes the window
     * in which a signal lands after the flag check but before epoll_wait starts sleeping. */
    int saved = errno;
    loop->stop = 1;
    uint64_t one = 1;
    ssize_t ignored = write(loop->wakefd, &one, sizeof(one));
    (void)ignored;
    errno = saved;
}
