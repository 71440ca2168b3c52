/* storage/crc32c.h: CRC32C (Castagnoli), the checksum of every on-disk record and header. */
#ifndef WARREN_CRC32C_H
#define WARREN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes of data; returns the new CRC. Thread-safe; picks
 * the SSE4.2 instruction when the CPU has it, slicing-by-8 tables otherwise. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t len);

/* The table-driven path alone, whatever the CPU (for tests comparing both paths). */
uint32_t crc32c_software(uint32_t crc, const void *data, size_t len);

/* CRC32C of one buffer. */
static inline uint32_t crc32c(const void *data, size_t len)
{
    return crc32c_extend(0, data, len);
}

#endif
