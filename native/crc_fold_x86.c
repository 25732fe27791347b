/* Carry-less multiplication folding for any reflected CRC of width <= 64.
 *
 * A 128-bit lane X = H*x^64 + L of message bits is carried D bits forward as
 * H*(x^(D+64) mod P) + L*(x^D mod P), which stays congruent to X*x^D and fits in 128
 * bits. PCLMULQDQ on bit-reflected operands yields the product times x, hence the
 * constants x^(D+63) and x^(D-1) computed in crc_sw.c. Once one lane is left, its 16
 * bytes are run through the scalar CRC from a zero register, which reduces it exactly.
 * Each function carries its own target attribute: no global -m flags. */
#include <string.h>
#include "crc.h"

#if defined(__x86_64__)
#include <immintrin.h>

static uint64_t scalar(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n)
{
    if (m == &crc_model_crc32c && cpu.sse42)
        return crc32c_sse42((uint32_t)reg, p, n);
    return crc_sw_update(m, reg, p, n);
}

__attribute__((target("sse4.1,pclmul"))) static inline __m128i
fold128(__m128i x, const uint64_t k[2])
{
    __m128i kk = _mm_set_epi64x((long long)k[1], (long long)k[0]);
    return _mm_xor_si128(_mm_clmulepi64_si128(x, kk, 0x00), _mm_clmulepi64_si128(x, kk, 0x11));
}

__attribute__((target("sse4.1,pclmul"))) static uint64_t
finish_lane(const crc_model *m, __m128i x, const unsigned char *p, size_t n)
{
    unsigned char lane[16];
    while (n >= 16) {
        x = _mm_xor_si128(fold128(x, m->k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    _mm_storeu_si128((__m128i *)lane, x);
    return scalar(m, scalar(m, 0, lane, 16), p, n);
}

__attribute__((target("sse4.1,pclmul"))) uint64_t
crc_fold_pclmul(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n)
{
    if (n < 64)
        return scalar(m, reg, p, n);
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p),
                               _mm_cvtsi64_si128((long long)reg));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    n -= 64;
    while (n >= 64) {
        x0 = _mm_xor_si128(fold128(x0, m->k512), _mm_loadu_si128((const __m128i *)p));
        x1 = _mm_xor_si128(fold128(x1, m->k512), _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = _mm_xor_si128(fold128(x2, m->k512), _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = _mm_xor_si128(fold128(x3, m->k512), _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    x3 = _mm_xor_si128(x3, _mm_xor_si128(fold128(x0, m->k384), fold128(x1, m->k256)));
    x3 = _mm_xor_si128(x3, fold128(x2, m->k128));
    return finish_lane(m, x3, p, n);
}

#define AVX512_TARGET "avx512f,avx512vl,vpclmulqdq,sse4.1,pclmul"

__attribute__((target(AVX512_TARGET))) static inline __m512i
fold512(__m512i x, __m512i k, __m512i data)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), data, 0x96);
}

__attribute__((target(AVX512_TARGET))) static inline __m512i
konst512(const uint64_t k[2])
{
    return _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k[1], (long long)k[0]));
}

__attribute__((target(AVX512_TARGET))) uint64_t
crc_fold_avx512(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n)
{
    if (n < 256)
        return crc_fold_pclmul(m, reg, p, n);
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p),
                                  _mm512_zextsi128_si512(_mm_cvtsi64_si128((long long)reg)));
    __m512i x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    p += 256;
    n -= 256;
    const __m512i k2048 = konst512(m->k2048);
    while (n >= 256) {
        x0 = fold512(x0, k2048, _mm512_loadu_si512(p));
        x1 = fold512(x1, k2048, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k2048, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k2048, _mm512_loadu_si512(p + 192));
        p += 256;
        n -= 256;
    }
    __m512i x = fold512(x0, konst512(m->k1536), x3);
    x = fold512(x1, konst512(m->k1024), x);
    x = fold512(x2, konst512(m->k512), x);
    const __m512i k512 = konst512(m->k512);
    while (n >= 64) {
        x = fold512(x, k512, _mm512_loadu_si512(p));
        p += 64;
        n -= 64;
    }
    __m128i r = _mm512_extracti32x4_epi32(x, 3);
    r = _mm_xor_si128(r, fold128(_mm512_extracti32x4_epi32(x, 0), m->k384));
    r = _mm_xor_si128(r, fold128(_mm512_extracti32x4_epi32(x, 1), m->k256));
    r = _mm_xor_si128(r, fold128(_mm512_extracti32x4_epi32(x, 2), m->k128));
    return finish_lane(m, r, p, n);
}

#endif
