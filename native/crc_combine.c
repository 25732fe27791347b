/* CRC of a concatenation from the CRCs of its pieces, without the data:
 * crc(A || B) = crc(A) * x^(8 len(B)) mod P  xor  crc(B). The all-ones init and
 * xorout of every supported CRC cancel, so finalised values combine directly. */
#include "crc.h"

uint64_t crc_combine(const crc_model *m, uint64_t crc_a, uint64_t crc_b, uint64_t len_b)
{
    return crc_multmodp(m, crc_xpow8n(m, len_b), crc_a) ^ crc_b;
}
