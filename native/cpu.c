/* CPU feature detection, run once at import. libgcc's __builtin_cpu_supports also
 * checks that the OS saves the wider register state (XGETBV), so a feature reported
 * here is one we may use. */
#include "crc.h"

cpu_features cpu;

void cpu_detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    cpu.sse42 = __builtin_cpu_supports("sse4.2");
    cpu.pclmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
    cpu.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    cpu.vpclmul = __builtin_cpu_supports("vpclmulqdq");
#else
    cpu.sse42 = cpu.pclmul = cpu.avx512 = cpu.vpclmul = 0;
#endif
}
