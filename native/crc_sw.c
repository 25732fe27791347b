/* Portable CRC arithmetic: model set-up (tables and folding constants derived from the
 * polynomial at import, so no magic constants can be mistyped), slice-by-8 update,
 * multiplication modulo P, and the dispatcher that calls the chosen implementation.
 *
 * Reflected representation: for a width-n CRC, bit (n-1) stands for x^0 and bit 0 for
 * x^(n-1), as in zlib's crc32_combine. */
#include <string.h>
#include "crc.h"

crc_model crc_model_crc32 = {.name = "crc32", .width = 32, .poly = 0xEDB88320u};
crc_model crc_model_crc32c = {.name = "crc32c", .width = 32, .poly = 0x82F63B78u};
crc_model crc_model_crc64nvme = {.name = "crc64nvme", .width = 64,
                                 .poly = 0x9A6C9329AC4BC9B5ull};

uint64_t crc_multmodp(const crc_model *m, uint64_t a, uint64_t b)
{
    uint64_t p = 0;
    for (uint64_t bit = (uint64_t)1 << (m->width - 1); bit; bit >>= 1) {
        if (a & bit)
            p ^= b;
        b = (b & 1) ? (b >> 1) ^ m->poly : b >> 1;
    }
    return p;
}

uint64_t crc_xpow(const crc_model *m, uint64_t e)
{
    uint64_t p = (uint64_t)1 << (m->width - 1); /* x^0 */
    for (int k = 0; e; e >>= 1, k++)
        if (e & 1)
            p = crc_multmodp(m, m->x2n[k], p);
    return p;
}

uint64_t crc_xpow8n(const crc_model *m, uint64_t nbytes)
{
    uint64_t p = (uint64_t)1 << (m->width - 1);
    /* x^(8n) = product of x^(2^(k+3)) over the set bits k of n. */
    for (int k = 3; nbytes && k < 64; nbytes >>= 1, k++)
        if (nbytes & 1)
            p = crc_multmodp(m, m->x2n[k], p);
    return p;
}

/* x^e mod P as the 64-bit bit-reflected word that PCLMULQDQ expects. */
static void fold_pair(const crc_model *m, unsigned distance_bits, uint64_t out[2])
{
    out[0] = crc_xpow(m, distance_bits + 63) << (64 - m->width);
    out[1] = crc_xpow(m, distance_bits - 1) << (64 - m->width);
}

void crc_model_init(crc_model *m)
{
    m->mask = m->width == 64 ? ~(uint64_t)0 : (((uint64_t)1 << m->width) - 1);
    for (unsigned i = 0; i < 256; i++) {
        uint64_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ m->poly : c >> 1;
        m->table[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            m->table[k][i] = (m->table[k - 1][i] >> 8) ^ m->table[0][m->table[k - 1][i] & 0xff];
    m->x2n[0] = (uint64_t)1 << (m->width - 2); /* x^1 */
    for (int k = 1; k < 64; k++)
        m->x2n[k] = crc_multmodp(m, m->x2n[k - 1], m->x2n[k - 1]);
    fold_pair(m, 128, m->k128);
    fold_pair(m, 256, m->k256);
    fold_pair(m, 384, m->k384);
    fold_pair(m, 512, m->k512);
    fold_pair(m, 1024, m->k1024);
    fold_pair(m, 1536, m->k1536);
    fold_pair(m, 2048, m->k2048);
}

uint64_t crc_sw_update(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= reg;
        reg = m->table[7][w & 0xff] ^ m->table[6][(w >> 8) & 0xff] ^
              m->table[5][(w >> 16) & 0xff] ^ m->table[4][(w >> 24) & 0xff] ^
              m->table[3][(w >> 32) & 0xff] ^ m->table[2][(w >> 40) & 0xff] ^
              m->table[1][(w >> 48) & 0xff] ^ m->table[0][w >> 56];
        p += 8;
        n -= 8;
    }
#endif
    while (n--)
        reg = m->table[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
    return reg;
}

uint64_t crc_update(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n)
{
    switch (m->impl) {
#if defined(__x86_64__)
    case IMPL_AVX512:
        return crc_fold_avx512(m, reg, p, n);
    case IMPL_PCLMUL:
        return crc_fold_pclmul(m, reg, p, n);
    case IMPL_SSE42:
        return crc32c_sse42((uint32_t)reg, p, n);
#endif
    default:
        return crc_sw_update(m, reg, p, n);
    }
}
