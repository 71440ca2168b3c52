/* tests/unit/net/test_event_loop.c: the event loop: timer order and cancel, file events,
 * the before-sleep hook, stop from a signal handler, stale events after fd reuse, an injected
 * clock and single passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "event_loop.h"

struct record {
    int order[64];
    int count;
};

struct tagged {
    struct record *record;
    int tag;
};

static void record_timer(struct event_loop *loop, void *data)
{
    (void)loop;
    struct tagged *t = data;
    t->record->order[t->record->count++] = t->tag;
}

static void stop_timer(struct event_loop *loop, void *data)
{
    (void)data;
    loop_stop(loop);
}

static void timers_fire_in_expiry_then_creation_order(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    assert_non_null(loop);
    struct record record = {0};
    struct tagged t[5] = {{&record, 30}, {&record, 10}, {&record, 20}, {&record, 11}, {&record, 0}};
    uint64_t delays[5] = {30, 10, 20, 10, 0};
    for (int i = 0; i < 5; i++)
        assert_true(loop_timer_add(loop, delays[i], record_timer, &t[i]) > 0);
    loop_timer_add(loop, 50, stop_timer, NULL);
    uint64_t start = loop_now_ms(loop);
    assert_int_equal(loop_run(loop), 0);
    assert_true(loop_now_ms(loop) - start >= 50);
    assert_int_equal(record.count, 5);
    int expected[5] = {0, 10, 11, 20, 30};
    assert_memory_equal(record.order, expected, sizeof(expected));
    loop_destroy(loop);
}

struct cancel_case {
    struct record record;
    struct tagged a, b;
    uint64_t id_a, id_b;
};

static void cancel_b_timer(struct event_loop *loop, void *data)
{
    struct cancel_case *c = data;
    loop_timer_cancel(loop, c->id_b); /* due in the same pass: must not run */
    loop_timer_cancel(loop, c->id_a); /* already fired: ignored */
}

static void timer_cancel_before_and_during_the_pass(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    struct cancel_case c = {.a = {&c.record, 1}, .b = {&c.record, 2}};
    struct tagged never = {&c.record, 99};
    uint64_t cancelled = loop_timer_add(loop, 5, record_timer, &never);
    loop_timer_cancel(loop, cancelled);
    loop_timer_cancel(loop, cancelled); /* twice: ignored */
    loop_timer_cancel(loop, 0);
    loop_timer_cancel(loop, 0xdeadbeef12345ull);
    c.id_a = loop_timer_add(loop, 0, record_timer, &c.a);
    loop_timer_add(loop, 10, cancel_b_timer, &c);
    c.id_b = loop_timer_add(loop, 10, record_timer, &c.b);
    /* The cancelled slot is reused: the old id must not cancel the new timer. */
    struct tagged reuse = {&c.record, 3};
    uint64_t id_reuse = loop_timer_add(loop, 15, record_timer, &reuse);
    assert_int_not_equal(id_reuse, cancelled);
    loop_timer_cancel(loop, cancelled);
    loop_timer_add(loop, 30, stop_timer, NULL);
    loop_run(loop);
    assert_int_equal(c.record.count, 2);
    assert_int_equal(c.record.order[0], 1);
    assert_int_equal(c.record.order[1], 3);
    loop_destroy(loop);
}

struct heap_case {
    uint64_t last_when;
    int fired;
    int order_errors;
    struct event_loop *loop;
    uint64_t when[1000];
    int fired_flags[1000];
};
static struct heap_case heap_case;

static void heap_timer(struct event_loop *loop, void *data)
{
    (void)loop;
    int i = (int)(intptr_t)data;
    if (heap_case.when[i] < heap_case.last_when)
        heap_case.order_errors++;
    heap_case.last_when = heap_case.when[i];
    heap_case.fired++;
    heap_case.fired_flags[i]++;
}

static void many_timers_keep_heap_order_and_cancel(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    memset(&heap_case, 0, sizeof(heap_case));
    uint64_t ids[1000];
    uint32_t seed = 12345;
    uint64_t base = loop_now_ms(loop);
    for (int i = 0; i < 1000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t delay = (seed >> 16) % 40;
        heap_case.when[i] = base + delay;
        ids[i] = loop_timer_add(loop, delay, heap_timer, (void *)(intptr_t)i);
    }
    for (int i = 0; i < 1000; i += 3)
        loop_timer_cancel(loop, ids[i]);
    loop_timer_add(loop, 60, stop_timer, NULL);
    loop_run(loop);
    assert_int_equal(heap_case.order_errors, 0);
    assert_int_equal(heap_case.fired, 1000 - 334);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(heap_case.fired_flags[i], i % 3 == 0 ? 0 : 1);
    loop_destroy(loop);
}

struct starve_case {
    int rearms;
    int file_events;
    int fds[2];
};

static void rearm_timer(struct event_loop *loop, void *data)
{
    struct starve_case *s = data;
    s->rearms++;
    if (s->file_events == 0 && s->rearms < 1000)
        loop_timer_add(loop, 0, rearm_timer, s);
    else
        loop_stop(loop);
}

static void read_event(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    struct starve_case *s = data;
    assert_true(mask & LOOP_READABLE);
    char byte;
    assert_int_equal(read(fd, &byte, 1), 1);
    s->file_events++;
}

static void zero_delay_timer_does_not_starve_file_events(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    struct starve_case s = {0};
    assert_int_equal(pipe(s.fds), 0);
    assert_int_equal(loop_watch(loop, s.fds[0], LOOP_READABLE, read_event, &s), 0);
    assert_int_equal(write(s.fds[1], "x", 1), 1);
    loop_timer_add(loop, 0, rearm_timer, &s);
    loop_run(loop);
    assert_int_equal(s.file_events, 1);
    assert_true(s.rearms <= 3);
    loop_unwatch(loop, s.fds[0]);
    close(s.fds[0]);
    close(s.fds[1]);
    loop_destroy(loop);
}

static void count_hook(struct event_loop *loop, void *data)
{
    (void)loop;
    (*(int *)data)++;
}

static void before_sleep_runs_before_first_wait_and_after_each_pass(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    int hooks = 0;
    loop_set_before_sleep(loop, count_hook, &hooks);
    loop_timer_add(loop, 1, stop_timer, NULL);
    loop_run(loop);
    assert_true(hooks >= 2); /* once before the first wait, once after the stopping pass */
    /* A stop requested before loop_run is honoured; the loop can run again afterwards. */
    hooks = 0;
    loop_stop(loop);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(hooks, 1);
    loop_set_before_sleep(loop, NULL, NULL);
    loop_timer_add(loop, 1, stop_timer, NULL);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(hooks, 1);
    loop_destroy(loop);
}

static struct event_loop *signal_loop;
static void on_alarm(int sig)
{
    (void)sig;
    loop_stop(signal_loop);
}

static void stop_from_signal_handler_wakes_the_wait(void **state)
{
    (void)state;
    signal_loop = loop_create();
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* epoll_wait is never restarted, but the flag must not matter */
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {.it_value = {.tv_usec = 20000}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    /* No fd and no timer: without the signal this would sleep forever. */
    assert_int_equal(loop_run(signal_loop), 0);
    signal(SIGALRM, SIG_DFL);
    loop_destroy(signal_loop);
}

static void watch_rejects_bad_fds(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    assert_int_equal(loop_watch(loop, -1, LOOP_READABLE, read_event, NULL), -EINVAL);
    assert_int_equal(loop_watch(loop, 4000, LOOP_READABLE, read_event, NULL), -EBADF);
    loop_unwatch(loop, 4000); /* unknown: ignored */
    loop_unwatch(loop, 100000);
    loop_destroy(loop);
}

/* Two pipes readable in the same pass; whichever callback runs first unwatches and closes
 * the other's read end and puts an empty pipe on the same fd number. The event collected for
 * the old fd must not reach the old owner nor the new one. */
struct stale_case {
    struct event_loop *loop;
    int a[2], b[2], fresh[2];
    int owner_calls;
    int fresh_calls;
    int victim;
};

static void fresh_event(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)loop;
    (void)fd;
    (void)mask;
    ((struct stale_case *)data)->fresh_calls++;
}

static void owner_event(struct event_loop *loop, int fd, void *data, int mask)
{
    (void)mask;
    struct stale_case *s = data;
    s->owner_calls++;
    char byte;
    assert_int_equal(read(fd, &byte, 1), 1);
    if (s->owner_calls > 1)
        return;
    s->victim = fd == s->a[0] ? s->b[0] : s->a[0];
    loop_unwatch(loop, s->victim);
    close(s->victim);
    assert_int_equal(pipe(s->fresh), 0);
    if (s->fresh[0] != s->victim) { /* force the reuse of the number */
        assert_int_equal(dup2(s->fresh[0], s->victim), s->victim);
        close(s->fresh[0]);
        s->fresh[0] = s->victim;
    }
    assert_int_equal(loop_watch(loop, s->victim, LOOP_READABLE, fresh_event, s), 0);
}

static void stale_event_after_fd_reuse_is_dropped(void **state)
{
    (void)state;
    struct stale_case s = {.loop = loop_create()};
    assert_int_equal(pipe(s.a), 0);
    assert_int_equal(pipe(s.b), 0);
    assert_int_equal(loop_watch(s.loop, s.a[0], LOOP_READABLE, owner_event, &s), 0);
    assert_int_equal(loop_watch(s.loop, s.b[0], LOOP_READABLE, owner_event, &s), 0);
    assert_int_equal(write(s.a[1], "a", 1), 1);
    assert_int_equal(write(s.b[1], "b", 1), 1);
    loop_timer_add(s.loop, 20, stop_timer, NULL);
    loop_run(s.loop);
    assert_int_equal(s.owner_calls, 1);
    assert_int_equal(s.fresh_calls, 0);
    /* The new registration works once its pipe really has data. */
    assert_int_equal(write(s.fresh[1], "f", 1), 1);
    loop_timer_add(s.loop, 20, stop_timer, NULL);
    loop_run(s.loop);
    assert_true(s.fresh_calls >= 1);
    int survivor = s.victim == s.a[0] ? s.b[0] : s.a[0];
    loop_unwatch(s.loop, survivor);
    loop_unwatch(s.loop, s.victim);
    close(s.a[0]);
    close(s.a[1]);
    close(s.b[0]);
    close(s.b[1]);
    close(s.fresh[1]);
    loop_destroy(s.loop);
}

struct write_case {
    int fds[2];
    int writable;
};

static void writable_event(struct event_loop *loop, int fd, void *data, int mask)
{
    struct write_case *w = data;
    assert_true(mask & LOOP_WRITABLE);
    assert_int_equal(fd, w->fds[1]);
    w->writable++;
    /* Narrow the registration to nothing: no more events until the stop timer. */
    assert_int_equal(loop_watch(loop, fd, 0, writable_event, w), 0);
}

static uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void watch_mask_changes_take_effect(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    struct write_case w = {0};
    assert_int_equal(pipe(w.fds), 0);
    assert_int_equal(loop_watch(loop, w.fds[1], LOOP_WRITABLE, writable_event, &w), 0);
    loop_timer_add(loop, 20, stop_timer, NULL);
    loop_run(loop);
    assert_int_equal(w.writable, 1);
    loop_unwatch(loop, w.fds[1]);
    close(w.fds[0]);
    close(w.fds[1]);
    loop_destroy(loop);
}

static uint64_t fake_clock(void *ctx) { return *(uint64_t *)ctx; }

/* With an injected clock, time moves only when the caller moves it: a timer fires in the
 * first pass at or after its expiry, each loop_run_once is one pass with its hook, and a
 * pass never blocks when asked for a zero timeout. */
static void injected_clock_and_single_passes(void **state)
{
    (void)state;
    struct event_loop *loop = loop_create();
    uint64_t now_us = 5000000;
    loop_set_clock(loop, fake_clock, &now_us);
    assert_int_equal(loop_now_ms(loop), 5000);
    struct record record = {0};
    struct tagged t = {&record, 7};
    loop_timer_add(loop, 100, record_timer, &t);
    int hooks = 0;
    loop_set_before_sleep(loop, count_hook, &hooks);

    uint64_t start = test_now_ms();
    assert_int_equal(loop_run_once(loop, 0), 0);
    now_us += 99000;
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(record.count, 0);
    now_us += 1000;
    assert_int_equal(loop_run_once(loop, 50), 0); /* due now: the wait is cut to zero */
    assert_int_equal(record.count, 1);
    assert_int_equal(loop_now_ms(loop), 5100);
    assert_int_equal(hooks, 3);
    assert_true(test_now_ms() - start < 40);
    loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timers_fire_in_expiry_then_creation_order),
        cmocka_unit_test(timer_cancel_before_and_during_the_pass),
        cmocka_unit_test(many_timers_keep_heap_order_and_cancel),
        cmocka_unit_test(zero_delay_timer_does_not_starve_file_events),
        cmocka_unit_test(before_sleep_runs_before_first_wait_and_after_each_pass),
        cmocka_unit_test(stop_from_signal_handler_wakes_the_wait),
        cmocka_unit_test(watch_rejects_bad_fds),
        cmocka_unit_test(stale_event_after_fd_reuse_is_dropped),
        cmocka_unit_test(watch_mask_changes_take_effect),
        cmocka_unit_test(injected_clock_and_single_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
