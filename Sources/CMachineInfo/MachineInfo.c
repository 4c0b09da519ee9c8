#include "CMachineInfo.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

uint32_t dst_cpu_features(void) {
    __builtin_cpu_init();
    uint32_t bits = 0;
    if (__builtin_cpu_supports("sse3")) bits |= DST_CPU_SSE3;
    if (__builtin_cpu_supports("avx")) bits |= DST_CPU_AVX;
    if (__builtin_cpu_supports("fma")) bits |= DST_CPU_FMA;
    if (__builtin_cpu_supports("avx2")) bits |= DST_CPU_AVX2;
    if (__builtin_cpu_supports("avx512f")) bits |= DST_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) bits |= DST_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512dq")) bits |= DST_CPU_AVX512DQ;
    if (__builtin_cpu_supports("avx512vl")) bits |= DST_CPU_AVX512VL;
    if (__builtin_cpu_supports("avx512bf16")) bits |= DST_CPU_AVX512BF16;
    return bits;
}

void dst_cpu_identity(char *out, int32_t *family, int32_t *model) {
    unsigned int r[4] = {0, 0, 0, 0};
    out[0] = 0;
    *family = 0;
    *model = 0;
    if (__get_cpuid(1, &r[0], &r[1], &r[2], &r[3])) {
        unsigned int base = (r[0] >> 8) & 0xf, extended = (r[0] >> 20) & 0xff;
        unsigned int low = (r[0] >> 4) & 0xf, high = (r[0] >> 16) & 0xf;
        *family = (int32_t)(base == 0xf ? base + extended : base);
        *model = (int32_t)((base == 0x6 || base == 0xf) ? (high << 4) + low : low);
    }
    if (__get_cpuid_max(0x80000000, 0) >= 0x80000004) {
        for (unsigned int leaf = 0; leaf < 3; leaf++) {
            __get_cpuid(0x80000002 + leaf, &r[0], &r[1], &r[2], &r[3]);
            memcpy(out + 16 * leaf, r, 16);
        }
        out[48] = 0;
    }
}
#else
uint32_t dst_cpu_features(void) { return 0; }
void dst_cpu_identity(char *out, int32_t *family, int32_t *model) { out[0] = 0; *family = 0; *model = 0; }
#endif

static _Thread_local int32_t parallel_depth;
int32_t dst_parallel_depth(void) { return parallel_depth; }
void dst_set_parallel_depth(int32_t depth) { parallel_depth = depth; }
