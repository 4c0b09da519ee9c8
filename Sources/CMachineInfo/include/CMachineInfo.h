#ifndef CMACHINEINFO_H
#define CMACHINEINFO_H
#include <stdint.h>

/// CPU feature bits reported by dst_cpu_features (each usable: the CPU has it and the
/// operating system saves its registers).
enum {
    DST_CPU_SSE3 = 1 << 0,
    DST_CPU_AVX = 1 << 1,
    DST_CPU_FMA = 1 << 2,
    DST_CPU_AVX2 = 1 << 3,
    DST_CPU_AVX512F = 1 << 4,
    DST_CPU_AVX512BW = 1 << 5,
    DST_CPU_AVX512DQ = 1 << 6,
    DST_CPU_AVX512VL = 1 << 7,
    DST_CPU_AVX512BF16 = 1 << 8,
};

/// The usable features as DST_CPU_* bits (0 on other architectures).
uint32_t dst_cpu_features(void);

/// The CPU's brand string (CPUID 0x80000002–4) into `out` (at least 49 bytes), and its
/// family and model numbers; an empty string and zeros where CPUID is unavailable.
void dst_cpu_identity(char *out, int32_t *family, int32_t *model);

#endif
