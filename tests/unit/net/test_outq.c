/* tests/unit/net/test_outq.c: the output queue: coalescing copies, chunk reuse through the
 * pool, reserve/commit, large writes, and ref slices released exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "outq.h"

/* Concatenates what outq_iov reports (up to cap bytes) into out; returns the byte count. */
static size_t gather(const struct outq *q, uint8_t *out, size_t cap)
{
    struct iovec iov[1024];
    int n = outq_iov(q, iov, 1024);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        assert_true(total + iov[i].iov_len <= cap);
        memcpy(out + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    return total;
}

static void small_writes_extend_one_slice(void **state)
{
    (void)state;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    char expected[1000];
    for (int i = 0; i < 100; i++) {
        char piece[10];
        memset(piece, 'a' + i % 26, sizeof(piece));
        memcpy(expected + i * 10, piece, sizeof(piece));
        assert_int_equal(outq_write(&q, piece, sizeof(piece)), 0);
    }
    assert_int_equal(q.bytes, 1000);
    assert_int_equal(q.count, 1);
    uint8_t got[1000];
    assert_int_equal(gather(&q, got, sizeof(got)), 1000);
    assert_memory_equal(got, expected, 1000);
    outq_clear(&q);
    outq_pool_drain(&pool);
}

static void written_chunks_are_reused_from_the_pool(void **state)
{
    (void)state;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    assert_int_equal(outq_write(&q, "frame", 5), 0);
    const struct outq_slice *ring = q.ring;
    outq_advance(&q, 5);
    assert_int_equal(q.bytes, 0);
    assert_null(q.tail);          /* an idle queue holds no chunk */
    assert_null(q.ring);          /* ... and no ring */
    assert_int_equal(pool.count, 1);
    assert_int_equal(pool.ring_count, 1);
    for (int round = 0; round < 100; round++) {
        assert_int_equal(outq_write(&q, "frame", 5), 0);
        assert_int_equal(pool.count, 0); /* taken from the pool, not malloc'ed */
        assert_int_equal(pool.ring_count, 0);
        assert_ptr_equal(q.ring, ring); /* the same ring, from the pool */
        outq_advance(&q, 3);
        outq_advance(&q, 2);
        assert_int_equal(pool.count, 1);
        assert_int_equal(pool.ring_count, 1);
    }
    outq_clear(&q);
    outq_pool_drain(&pool);
    assert_int_equal(pool.count, 0);
}

static void large_write_spans_chunks_and_advances_in_pieces(void **state)
{
    (void)state;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    size_t len = 100000;
    uint8_t *data = malloc(len), *got = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 % 251);
    assert_int_equal(outq_write(&q, "x", 1), 0);
    assert_int_equal(outq_write(&q, data, len), 0);
    assert_int_equal(q.bytes, len + 1);
    assert_int_equal(q.count, (len + 1 + OUTQ_CHUNK_SIZE - 1) / OUTQ_CHUNK_SIZE);
    outq_advance(&q, 1);
    size_t done = 0;
    size_t steps[] = {1, 999, OUTQ_CHUNK_SIZE, 12345, 3};
    for (int i = 0; done < len; i = (i + 1) % 5) {
        size_t left = gather(&q, got, len);
        assert_int_equal(left, len - done);
        assert_memory_equal(got, data + done, left);
        size_t step = steps[i] < left ? steps[i] : left;
        outq_advance(&q, step);
        done += step;
    }
    assert_int_equal(q.count, 0);
    assert_true(pool.count >= 6);
    outq_clear(&q);
    outq_pool_drain(&pool);
    free(data);
    free(got);
}

static void reserve_and_commit_trim_the_tail(void **state)
{
    (void)state;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    assert_int_equal(outq_write(&q, "ab", 2), 0);
    uint8_t *at = outq_reserve(&q, 100);
    assert_non_null(at);
    memcpy(at, "cde", 3);
    outq_commit(&q, 3);
    assert_int_equal(q.bytes, 5);
    assert_int_equal(outq_write(&q, "f", 1), 0);
    assert_int_equal(q.count, 1); /* still one contiguous slice */
    /* A reservation given back whole leaves nothing behind. */
    assert_non_null(outq_reserve(&q, 10));
    outq_commit(&q, 0);
    assert_non_null(outq_reserve(&q, 0));
    outq_commit(&q, 0);
    assert_int_equal(q.bytes, 6);
    /* Larger than a chunk: one dedicated contiguous block. */
    uint8_t *big = outq_reserve(&q, 3 * OUTQ_CHUNK_SIZE);
    assert_non_null(big);
    memset(big, 'z', 3 * OUTQ_CHUNK_SIZE);
    outq_commit(&q, 3 * OUTQ_CHUNK_SIZE - 1);
    assert_int_equal(q.bytes, 6 + 3 * OUTQ_CHUNK_SIZE - 1);
    uint8_t *got = malloc(q.bytes);
    assert_int_equal(gather(&q, got, q.bytes), q.bytes);
    assert_memory_equal(got, "abcdef", 6);
    assert_int_equal(got[q.bytes - 1], 'z');
    free(got);
    outq_advance(&q, q.bytes); /* the dedicated block is freed, not pooled */
    assert_int_equal(pool.count, 1);
    outq_clear(&q);
    outq_pool_drain(&pool);
}

static int releases[4];
static int release_order[8];
static int release_seen;

static void count_release(void *owner)
{
    int i = (int)(intptr_t)owner;
    releases[i]++;
    if (release_seen < 8)
        release_order[release_seen++] = i;
}

static void ref_slices_are_released_exactly_once(void **state)
{
    (void)state;
    memset(releases, 0, sizeof(releases));
    release_seen = 0;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    static const char body[] = "0123456789";
    assert_int_equal(outq_write(&q, "H", 1), 0);
    assert_int_equal(outq_write_ref(&q, body, 10, count_release, (void *)(intptr_t)0), 0);
    assert_int_equal(outq_write(&q, "T", 1), 0);
    assert_int_equal(outq_write_ref(&q, body, 10, count_release, (void *)(intptr_t)1), 0);
    assert_int_equal(outq_write_ref(&q, body, 0, count_release, (void *)(intptr_t)2), 0);
    assert_int_equal(releases[2], 1); /* empty: released at once */
    assert_int_equal(q.count, 4);
    uint8_t got[22];
    assert_int_equal(gather(&q, got, sizeof(got)), 22);
    assert_memory_equal(got, "H0123456789T0123456789", 22);
    outq_advance(&q, 5);
    assert_int_equal(releases[0], 0); /* partly written */
    outq_advance(&q, 6);
    assert_int_equal(releases[0], 1);
    outq_advance(&q, 1);
    assert_int_equal(releases[0], 1);
    assert_int_equal(releases[1], 0);
    outq_clear(&q); /* dropped unwritten: released */
    assert_int_equal(releases[1], 1);
    outq_clear(&q);
    assert_int_equal(releases[0] + releases[1] + releases[2], 3);
    assert_int_equal(release_order[1], 0);
    assert_int_equal(release_order[2], 1);
    outq_pool_drain(&pool);
}

static void ring_grows_past_its_first_capacity(void **state)
{
    (void)state;
    memset(releases, 0, sizeof(releases));
    release_seen = 0;
    struct outq_pool pool = {0};
    struct outq q;
    outq_init(&q, &pool);
    static const char body[] = "ref";
    /* Advance a little first so the ring wraps before it grows. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(outq_write_ref(&q, body, 3, count_release, (void *)(intptr_t)3), 0);
    outq_advance(&q, 15);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(outq_write_ref(&q, body, 3, count_release, (void *)(intptr_t)3), 0);
        assert_int_equal(outq_write(&q, "c", 1), 0);
    }
    assert_int_equal(q.bytes, 15 + 400);
    uint8_t got[415];
    assert_int_equal(gather(&q, got, sizeof(got)), 415);
    assert_memory_equal(got + 15, "refc", 4);
    assert_memory_equal(got + 411, "refc", 4);
    outq_advance(&q, q.bytes);
    assert_int_equal(releases[3], 110);
    outq_clear(&q);
    outq_pool_drain(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_writes_extend_one_slice),
        cmocka_unit_test(written_chunks_are_reused_from_the_pool),
        cmocka_unit_test(large_write_spans_chunks_and_advances_in_pieces),
        cmocka_unit_test(reserve_and_commit_trim_the_tail),
        cmocka_unit_test(ref_slices_are_released_exactly_once),
        cmocka_unit_test(ring_grows_past_its_first_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
