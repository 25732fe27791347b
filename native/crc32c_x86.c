/* CRC32C with the SSE4.2 crc32 instruction. The instruction has a latency of three
 * cycles and a throughput of one, so three independent streams over adjacent blocks
 * keep it busy; their registers are merged by shifting with PCLMULQDQ:
 * a * x^(8 BLK) mod P = crc32_u64(0, clmul(a, x^(8 BLK - 33) mod P)). */
#include <string.h>
#include "crc.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define BLK 4096

static uint64_t shift1, shift2; /* x^(8 BLK - 33), x^(16 BLK - 33), reflected */

void crc32c_sse42_init(void)
{
    shift1 = crc_xpow(&crc_model_crc32c, 8 * BLK - 33);
    shift2 = crc_xpow(&crc_model_crc32c, 16 * BLK - 33);
}

__attribute__((target("sse4.2"))) static uint32_t
crc32c_one_stream(uint32_t reg, const unsigned char *p, size_t n)
{
    uint64_t c = reg;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    while (n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t
crc32c_three_streams(uint32_t reg, const unsigned char *p, size_t n)
{
    while (n >= 3 * BLK) {
        uint64_t a = reg, b = 0, c = 0, w;
        for (const unsigned char *end = p + BLK; p < end; p += 8) {
            memcpy(&w, p, 8);
            a = _mm_crc32_u64(a, w);
            memcpy(&w, p + BLK, 8);
            b = _mm_crc32_u64(b, w);
            memcpy(&w, p + 2 * BLK, 8);
            c = _mm_crc32_u64(c, w);
        }
        __m128i t = _mm_xor_si128(
            _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)a), _mm_cvtsi64_si128((long long)shift2), 0),
            _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)b), _mm_cvtsi64_si128((long long)shift1), 0));
        reg = (uint32_t)(_mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(t)) ^ c);
        p += 2 * BLK;
        n -= 3 * BLK;
    }
    return crc32c_one_stream(reg, p, n);
}

uint32_t crc32c_sse42(uint32_t reg, const unsigned char *p, size_t n)
{
    if (n >= 3 * BLK && cpu.pclmul)
        return crc32c_three_streams(reg, p, n);
    return crc32c_one_stream(reg, p, n);
}

#endif
