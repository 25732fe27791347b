/* Shared declarations for bigupload's CRC engine.
 *
 * Every supported CRC (CRC32, CRC32C, CRC64NVME) is a reflected CRC whose init and
 * xorout are all ones, so one parameterised model serves all three. Values passed
 * across the API are finalised CRCs (like zlib's crc32(data, value)); the "register"
 * is the internal state (finalised value XOR all-ones).
 */
#ifndef BIGUPLOAD_CRC_H
#define BIGUPLOAD_CRC_H

#include <stddef.h>
#include <stdint.h>

typedef enum { IMPL_SW = 0, IMPL_SSE42 = 1, IMPL_PCLMUL = 2, IMPL_AVX512 = 3 } crc_impl;

typedef struct {
    const char *name;
    int width;              /* 32 or 64 */
    uint64_t poly;          /* reflected polynomial */
    uint64_t mask;          /* all-ones of width bits */
    uint64_t table[8][256]; /* slice-by-8 tables */
    uint64_t x2n[64];       /* x^(2^k) mod P, reflected; for combine */
    /* Folding constants, one pair per distance in bits: [0] = x^(D+63) mod P,
     * [1] = x^(D-1) mod P, both bit-reflected into 64 bits (see crc_fold_x86.c). */
    uint64_t k128[2], k256[2], k384[2], k512[2], k1024[2], k1536[2], k2048[2];
    crc_impl impl;          /* chosen implementation for this model */
} crc_model;

extern crc_model crc_model_crc32, crc_model_crc32c, crc_model_crc64nvme;

/* cpu.c */
typedef struct { int sse42, pclmul, avx512, vpclmul; } cpu_features;
extern cpu_features cpu;
void cpu_detect(void);

/* crc_sw.c: table set-up, byte-wise/slice-by-8 update, polynomial arithmetic */
void crc_model_init(crc_model *m);
uint64_t crc_sw_update(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n);
uint64_t crc_multmodp(const crc_model *m, uint64_t a, uint64_t b);
uint64_t crc_xpow8n(const crc_model *m, uint64_t nbytes);   /* x^(8n) mod P */
uint64_t crc_xpow(const crc_model *m, uint64_t e);          /* x^e mod P */

/* crc_combine.c */
uint64_t crc_combine(const crc_model *m, uint64_t crc_a, uint64_t crc_b, uint64_t len_b);

/* crc_fold_x86.c / crc32c_x86.c: register-in, register-out updates */
uint64_t crc_fold_pclmul(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n);
uint64_t crc_fold_avx512(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n);
uint32_t crc32c_sse42(uint32_t reg, const unsigned char *p, size_t n);

/* dispatch.c-equivalent lives in crc_sw.c: update with the model's chosen impl */
uint64_t crc_update(const crc_model *m, uint64_t reg, const unsigned char *p, size_t n);

#endif
