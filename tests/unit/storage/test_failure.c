/* tests/unit/storage/test_failure.c: a batch whose write or sync fails (ENOSPC, EIO, a short
 * write then ENOSPC) is reported once through store_take_failure, cut off the segment so the log
 * stays readable, and later batches succeed; recovery then sees exactly the good batches. Also a
 * real full filesystem (a 1 MiB tmpfs) when this process may mount one. */
#include "helpers.h"

#include <sys/mount.h>

#include "segment_log.h"

/* Fault plan, consulted by the hooks on the I/O thread while the test waits for completions. */
struct faults {
    _Atomic int fail_writes;  /* next n pwrites: write half, then fail with `error` */
    _Atomic int fail_syncs;   /* next n fdatasyncs of written data fail with `error` (the sync of
                               * the truncation that cuts a failed batch off still works) */
    _Atomic bool wrote;       /* a pwrite since the last sync */
    int error;
};

static ssize_t faulty_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct faults *f = ctx;
    if (f->fail_writes > 0) {
        if (len > 1) { /* the first half makes it, as a full disk would allow */
            ssize_t n = pwrite(fd, buf, len / 2, off);
            if (n > 0)
                return n;
        }
        f->fail_writes--;
        errno = f->error;
        return -1;
    }
    f->wrote = true;
    return pwrite(fd, buf, len, off);
}

static int faulty_sync(void *ctx, int fd)
{
    struct faults *f = ctx;
    bool wrote = f->wrote;
    f->wrote = false;
    if (f->fail_syncs > 0 && wrote) {
        f->fail_syncs--;
        errno = f->error;
        return -1;
    }
    return fdatasync(fd);
}

static struct store *open_faulty(const char *dir, struct faults *f, struct store_io_hooks *hooks)
{
    *hooks = (struct store_io_hooks){.pwrite = faulty_pwrite, .fdatasync = faulty_sync, .ctx = f};
    struct store_options opts = {.dir = dir, .disk_free_limit = 1, .io = hooks, .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    return store;
}

static void check_only_good_batches_recovered(const char *dir, const uint64_t *ids, size_t n)
{
    struct seen seen = {0};
    struct store *store = open_store(dir, 0, &seen);
    assert_int_equal(seen.nmessages, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen.messages[i].id, ids[i]);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 0);
    seen_free(&seen);
    store_close(store);
}

static void failed_write_is_reported_cut_off_and_later_batches_succeed(void **state)
{
    (void)state;
    char dir[64], path[4096];
    make_scratch(dir, sizeof(dir));
    struct faults f = {.error = ENOSPC};
    struct store_io_hooks hooks;
    struct store *store = open_faulty(dir, &f, &hooks);
    segment_file(path, sizeof(path), dir, 1);
    uint64_t b1 = put_msg(store, 1, "q", "good");
    wait_batch(store, b1);
    off_t good_size = file_size(path);

    f.fail_writes = 1; /* then the reserve is released, and nothing of a batch of publishes is retried */
    uint64_t b2 = put_msg(store, 2, "q", "this batch hits a full disk");
    put_msg(store, 3, "q", "and so does this message");
    wait_batch(store, b2);
    assert_int_equal(store_durable_batch(store), b2); /* completed, but as a failure: */
    uint64_t first = 0, last = 0;
    int error = 0;
    assert_true(store_take_failure(store, &first, &last, &error));
    assert_int_equal(first, b2);
    assert_int_equal(last, b2);
    assert_int_equal(error, ENOSPC);
    assert_false(store_take_failure(store, &first, &last, &error)); /* reported once */
    assert_int_equal(file_size(path), good_size); /* the half-written batch is gone */

    f.fail_syncs = 2; /* two consecutive failed batches form one range */
    f.error = EIO;
    wait_batch(store, put_msg(store, 4, "q", "sync fails"));
    uint64_t b5 = put_msg(store, 5, "q", "sync fails again");
    wait_batch(store, b5);
    assert_true(store_take_failure(store, &first, &last, &error));
    assert_int_equal(first, b2 + 1);
    assert_int_equal(last, b5);
    assert_int_equal(error, EIO);
    assert_int_equal(file_size(path), good_size);

    uint64_t b6 = put_msg(store, 6, "q", "disk is back");
    put_ack(store, 2, "q"); /* refers to a message that never reached the disk: harmless */
    wait_batch(store, b6);
    assert_false(store_take_failure(store, &first, &last, &error));
    store_close(store);
    uint64_t expect[] = {1, 6};
    check_only_good_batches_recovered(dir, expect, 2);
    remove_tree(dir);
}

static void failed_roll_to_a_new_segment_is_a_failed_batch(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct faults f = {.error = ENOSPC};
    struct store_io_hooks hooks = {.pwrite = faulty_pwrite, .fdatasync = faulty_sync, .ctx = &f};
    struct store_options opts = {.dir = dir, .segment_bytes = 1, .disk_free_limit = 1, .io = &hooks,
                                 .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    wait_batch(store, put_msg(store, 1, "q", "segment one"));
    f.fail_writes = 1; /* the header of segment 2 */
    uint64_t b2 = put_msg(store, 2, "q", "lost");
    wait_batch(store, b2);
    uint64_t first, last;
    int error;
    assert_true(store_take_failure(store, &first, &last, &error));
    assert_int_equal(first, b2);
    assert_false(segment_exists(dir, 2));
    wait_batch(store, put_msg(store, 3, "q", "segment two after all"));
    assert_true(segment_exists(dir, 2));
    store_close(store);
    uint64_t expect[] = {1, 3};
    check_only_good_batches_recovered(dir, expect, 2);
    remove_tree(dir);
}

/* A file system that is full until something is deleted, with a free-space gauge. */
struct disk {
    _Atomic bool full;          /* pwrites fail with ENOSPC */
    _Atomic uint64_t free_bytes;
};

static ssize_t disk_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct disk *d = ctx;
    if (d->full) {
        errno = ENOSPC;
        return -1;
    }
    return pwrite(fd, buf, len, off);
}

static int disk_unlink(void *ctx, const char *path)
{
    struct disk *d = ctx;
    d->full = false; /* whatever was deleted made room */
    return unlink(path);
}

static int disk_free(void *ctx, const char *dir, uint64_t *out)
{
    (void)dir;
    struct disk *d = ctx;
    *out = d->free_bytes;
    return 0;
}

static bool reserve_exists(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/reserve", dir);
    return access(path, F_OK) == 0;
}

static void full_disk_releases_the_reserve_for_acks_and_the_alarm_clears_when_space_returns(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    struct disk d = {.free_bytes = 1ull << 40};
    struct store_io_hooks hooks = {.pwrite = disk_pwrite, .unlink = disk_unlink, .free_bytes = disk_free, .ctx = &d};
    struct store_options opts = {.dir = dir, .disk_free_limit = 1000, .io = &hooks, .log = quiet_log};
    struct store *store = NULL;
    assert_int_equal(store_open(&opts, NULL, &store), 0);
    assert_true(reserve_exists(dir));
    assert_false(store_disk_alarm(store));
    wait_batch(store, put_msg(store, 1, "q", "before"));

    /* The disk fills: the batch gets the reserve's space and is durable; the alarm goes on. */
    d.full = true;
    d.free_bytes = 0;
    uint64_t b2 = put_ack(store, 1, "q");
    wait_batch(store, b2);
    uint64_t first, last;
    int error;
    assert_false(store_take_failure(store, &first, &last, &error));
    assert_false(reserve_exists(dir));
    assert_true(store_disk_alarm(store));

    /* Full again, no reserve left: the batch fails, once, and nothing claims it durable. */
    d.full = true;
    uint64_t b3 = put_msg(store, 3, "q", "no room");
    wait_batch(store, b3);
    assert_true(store_take_failure(store, &first, &last, &error));
    assert_int_equal(first, b3);
    assert_int_equal(error, ENOSPC);
    assert_true(store_disk_alarm(store));

    /* Space comes back (enough for the limit and the reserve): the reserve is taken back and
     * the alarm clears, without a restart. */
    d.full = false;
    d.free_bytes = 1ull << 40;
    wait_batch(store, put_msg(store, 4, "q", "after"));
    assert_true(reserve_exists(dir));
    assert_false(store_disk_alarm(store));
    store_close(store);
    uint64_t expect[] = {4};
    check_only_good_batches_recovered(dir, expect, 1);
    remove_tree(dir);
}

static void real_full_filesystem(void **state)
{
    (void)state;
    char dir[64];
    make_scratch(dir, sizeof(dir));
    if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
        remove_tree(dir);
        skip(); /* not allowed here: the hook tests above cover the logic */
    }
    struct store *store = open_store(dir, 256 * 1024, NULL);
    char body[4000];
    memset(body, 'z', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    uint64_t good[1024];
    size_t ngood = 0;
    bool failed = false;
    uint64_t id = 1;
    for (int round = 0; round < 400 && !failed; round++) {
        uint64_t b = 0, ids[4];
        for (int k = 0; k < 4; k++, id++) {
            ids[k] = id;
            b = put_msg(store, id, "q", body);
        }
        wait_batch(store, b);
        uint64_t first, last;
        int error;
        if (store_take_failure(store, &first, &last, &error)) {
            assert_int_equal(first, b);
            assert_int_equal(error, ENOSPC);
            failed = true;
        } else {
            memcpy(good + ngood, ids, sizeof(ids));
            ngood += 4;
        }
    }
    assert_true(failed);
    /* acks retire whole segments, freeing space, and the batches after that go through */
    size_t half = ngood / 2;
    uint64_t b = 0;
    for (size_t i = 0; i < half; i++)
        b = put_ack(store, good[i], "q");
    wait_batch(store, b);
    uint64_t first, last;
    int error;
    assert_false(store_take_failure(store, &first, &last, &error));
    wait_batch(store, put_msg(store, id, "q", "after space was freed"));
    assert_false(store_take_failure(store, &first, &last, &error));
    good[ngood++] = id;
    store_close(store);
    struct seen seen = {0};
    store = open_store(dir, 256 * 1024, &seen);
    struct store_stats stats;
    store_get_stats(store, &stats);
    assert_int_equal(stats.corrupt_records, 0);
    assert_int_equal(seen.nmessages, ngood - half); /* nothing from the failed batch */
    for (size_t i = 0; i < seen.nmessages; i++) /* in log order: compaction may have moved some */
        assert_non_null(seen_find(&seen, good[half + i]));
    seen_free(&seen);
    store_close(store);
    umount(dir);
    remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(failed_write_is_reported_cut_off_and_later_batches_succeed),
        cmocka_unit_test(failed_roll_to_a_new_segment_is_a_failed_batch),
        cmocka_unit_test(full_disk_releases_the_reserve_for_acks_and_the_alarm_clears_when_space_returns),
        cmocka_unit_test(real_full_filesystem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
