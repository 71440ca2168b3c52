/* storage/crc32c.c: CRC32C (Castagnoli, reflected polynomial 0x82F63B78) in software
 * (slicing-by-8) and, when the CPU supports SSE4.2, with the crc32 instruction. The choice is
 * made once, at first use.
 *
 * The crc32 instruction takes 3 cycles but a new one can start every cycle, so one chain over
 * a buffer runs at a third of what the unit can do; recovery checks every byte of the log, and
 * spent half its time here. The hardware path therefore runs three chains over three adjacent
 * blocks (of LONG, then SHORT bytes) and joins them: the CRC register is linear, so
 * crc(a || b) = shift(crc(a), |b|) ^ crc_from_zero(b), where shift(c, n) is the register after
 * n zero bytes, applied with four table lookups built once for each block length (the method
 * of Mark Adler's crc32c.c). */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static uint32_t (*implementation)(uint32_t, const uint8_t *, size_t);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t crc_software(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc; /* little-endian host: the low bytes meet the CRC */
        crc = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^
              table[5][(word >> 16) & 0xff] ^ table[4][(word >> 24) & 0xff] ^
              table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff] ^
              table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

#define LONG_BLOCK 8192 /* bytes per chain in the three-chain loops; powers of two */
#define SHORT_BLOCK 256
static uint32_t shift_long[4][256];  /* the register after LONG_BLOCK zero bytes, byte by byte */
static uint32_t shift_short[4][256]; /* after SHORT_BLOCK zero bytes */

/* A 32x32 matrix over GF(2) (column i: the image of bit i) times a vector. */
static uint32_t matrix_times(const uint32_t *matrix, uint32_t vector)
{
    uint32_t sum = 0;
    for (; vector; vector >>= 1, matrix++)
        if (vector & 1)
            sum ^= *matrix;
    return sum;
}

static void matrix_square(uint32_t *square, const uint32_t *matrix)
{
    for (int i = 0; i < 32; i++)
        square[i] = matrix_times(matrix, matrix[i]);
}

/* Fills zeros with the operator "append bytes zero bytes" (bytes a power of two), split by the
 * operand's byte so that applying it is four lookups. */
static void shift_tables(uint32_t zeros[4][256], size_t bytes)
{
    uint32_t op[32], squared[32];
    /* one zero bit: every bit moves down one, bit 0 leaves and feeds the polynomial back */
    op[0] = CRC32C_POLY;
    for (int i = 1; i < 32; i++)
        op[i] = 1u << (i - 1);
    for (size_t bits = 1; bits < bytes * 8; bits *= 2) {
        matrix_square(squared, op);
        memcpy(op, squared, sizeof(op));
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int b = 0; b < 4; b++)
            zeros[b][n] = matrix_times(op, n << (8 * b));
}

/* The register after the zero bytes of zeros' operator. */
static inline uint32_t shift(const uint32_t zeros[4][256], uint32_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

/* Three chains over [p, p + block), [p + block, ...), [p + 2 block, ...) joined into c. */
__attribute__((target("sse4.2"))) static uint64_t three_chains(uint64_t c, const uint8_t *p, size_t block,
                                                                 const uint32_t zeros[4][256])
{
    uint64_t c1 = 0, c2 = 0;
    for (const uint8_t *end = p + block; p < end; p += 8) {
        uint64_t w0, w1, w2;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + block, 8);
        memcpy(&w2, p + 2 * block, 8);
        c = _mm_crc32_u64(c, w0);
        c1 = _mm_crc32_u64(c1, w1);
        c2 = _mm_crc32_u64(c2, w2);
    }
    c = shift(zeros, (uint32_t)c) ^ (uint32_t)c1;
    return shift(zeros, (uint32_t)c) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hardware(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    for (; len >= 3 * LONG_BLOCK; p += 3 * LONG_BLOCK, len -= 3 * LONG_BLOCK)
        c = three_chains(c, p, LONG_BLOCK, shift_long);
    for (; len >= 3 * SHORT_BLOCK; p += 3 * SHORT_BLOCK, len -= 3 * SHORT_BLOCK)
        c = three_chains(c, p, SHORT_BLOCK, shift_short);
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
    implementation = crc_software;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        shift_tables(shift_long, LONG_BLOCK);
        shift_tables(shift_short, SHORT_BLOCK);
        implementation = crc_hardware;
    }
#endif
}

uint32_t crc32c_software(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&once, init);
    return ~crc_software(~crc, data, len);
}

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&once, init);
    return ~implementation(~crc, data, len);
}
