/* Unit tests of broker/cluster/aio_release.c: io_destroy(2) made through syscall(3) is handed to
 * the releasing thread, which destroys the context; every other call passes through unchanged.
 * The test binary links the file, so its syscall is the one under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/aio_abi.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aio_release.h"

static void other_calls_pass_through(void **state)
{
    (void)state;
    assert_int_equal(syscall(SYS_getpid), getpid());
    errno = 0;
    assert_int_equal(syscall(SYS_close, -1), -1); /* and their errors with them */
    assert_int_equal(errno, EBADF);
}

/* True once io_getevents on ctx says the context no longer exists. */
static bool destroyed(aio_context_t ctx)
{
    struct timespec none = {0, 0};
    struct io_event ev;
    errno = 0;
    return syscall(SYS_io_getevents, ctx, 0, 1, &ev, &none) == -1 && errno == EINVAL;
}

static void io_destroy_is_handed_to_the_thread_which_destroys_the_context(void **state)
{
    (void)state;
    assert_true(aio_release_start());
    assert_true(aio_release_start()); /* once: a second start changes nothing */
    aio_context_t ctx = 0;
    assert_int_equal(syscall(SYS_io_setup, 4, &ctx), 0);
    assert_false(destroyed(ctx));
    unsigned long handed = aio_release_handed(), done = aio_release_done();
    assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
    assert_int_equal(aio_release_handed(), handed + 1);
    for (unsigned i = 0; i < 100000 && aio_release_done() == done; i++) /* bounded: 10 s at most */
        usleep(100);
    assert_int_equal(aio_release_done(), done + 1);
    assert_true(destroyed(ctx));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(other_calls_pass_through),
        cmocka_unit_test(io_destroy_is_handed_to_the_thread_which_destroys_the_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
