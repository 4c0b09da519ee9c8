#include "CSparseKernels.h"

/// Adds group g's spilled weights to its 16 outputs.
static inline void add_spill(const DSLaneSpill *spill, int64_t g, const float *x, float *out) {
    for (int64_t e = spill->start[g]; e < spill->start[g + 1]; e++) {
        out[g * 16 + spill->lanes[e]] += spill->values[e] * x[spill->indices[e]];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

int ds_lane_blocks_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// Lanes of x[64 b + positions] for one slot: two 32-entry table lookups (vpermt2ps)
/// and a blend on bit 5 of the position.
__attribute__((target("avx512f"), always_inline))
static inline __m512 lookup(const uint8_t *p, __m512 x0, __m512 x1, __m512 x2, __m512 x3) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    __mmask16 high = _mm512_test_epi32_mask(q, _mm512_set1_epi32(32));
    return _mm512_mask_blend_ps(high, _mm512_permutex2var_ps(x0, q, x1), _mm512_permutex2var_ps(x2, q, x3));
}

/// acc + values[e] · x[indices[e]] in lane lanes[e] only.
__attribute__((target("avx512f"), always_inline))
static inline __m512 spill_fma(const DSLaneSpill *spill, int64_t e, const float *x, __m512 acc) {
    __mmask16 lane = (__mmask16)(1u << spill->lanes[e]);
    return _mm512_mask3_fmadd_ps(_mm512_set1_ps(spill->values[e]), _mm512_set1_ps(x[spill->indices[e]]), acc, lane);
}

__attribute__((target("avx512f")))
void ds_lane_blocks_gemv(const float *values, const uint8_t *positions, const uint8_t *slotCount,
                         const int64_t *groupStart, int64_t g0, int64_t g1, int64_t blocks,
                         const float *x, int64_t features, const DSLaneSpill *spill, float *out) {
    for (int64_t g = g0; g < g1; g++) {
        const float *v = values + groupStart[g] * 16;
        const uint8_t *p = positions + groupStart[g] * 16;
        const uint8_t *count = slotCount + g * blocks;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (int64_t b = 0; b < blocks; b++) {
            int s = count[b];
            if (s == 0) continue;
            const float *xb = x + b * 64;
            __m512 x0, x1, x2, x3;
            int64_t left = features - b * 64;
            if (left >= 64) {
                x0 = _mm512_loadu_ps(xb); x1 = _mm512_loadu_ps(xb + 16);
                x2 = _mm512_loadu_ps(xb + 32); x3 = _mm512_loadu_ps(xb + 48);
            } else {   // partial last block: masked loads never touch memory past x
                __m512 r[4];
                for (int j = 0; j < 4; j++) {
                    int64_t n = left - 16 * j;
                    __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
                    r[j] = _mm512_maskz_loadu_ps(m, xb + 16 * j);
                }
                x0 = r[0]; x1 = r[1]; x2 = r[2]; x3 = r[3];
            }
            int t = 0;
            for (; t + 2 <= s; t += 2) {   // two accumulators hide the FMA latency
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(v), lookup(p, x0, x1, x2, x3), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(v + 16), lookup(p + 16, x0, x1, x2, x3), a1);
                v += 32; p += 32;
            }
            if (t < s) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(v), lookup(p, x0, x1, x2, x3), a0);
                v += 16; p += 16;
            }
        }
        // Spilled weights: one masked FMA each into the weight's lane, over four
        // accumulators so consecutive FMAs do not wait on each other.
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
        int64_t e = spill->start[g], end = spill->start[g + 1];
        for (; e + 4 <= end; e += 4) {
            s0 = spill_fma(spill, e, x, s0); s1 = spill_fma(spill, e + 1, x, s1);
            s2 = spill_fma(spill, e + 2, x, s2); s3 = spill_fma(spill, e + 3, x, s3);
        }
        for (; e < end; e++) s0 = spill_fma(spill, e, x, s0);
        __m512 spilled = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
        _mm512_storeu_ps(out + g * 16, _mm512_add_ps(_mm512_add_ps(a0, a1), spilled));
    }
}

#else

int ds_lane_blocks_supported(void) { return 0; }

void ds_lane_blocks_gemv(const float *values, const uint8_t *positions, const uint8_t *slotCount,
                         const int64_t *groupStart, int64_t g0, int64_t g1, int64_t blocks,
                         const float *x, int64_t features, const DSLaneSpill *spill, float *out) {
    ds_lane_blocks_gemv_portable(values, positions, slotCount, groupStart, g0, g1, blocks, x, features, spill, out);
}

#endif

void ds_lane_blocks_gemv_portable(const float *values, const uint8_t *positions, const uint8_t *slotCount,
                                  const int64_t *groupStart, int64_t g0, int64_t g1, int64_t blocks,
                                  const float *x, int64_t features, const DSLaneSpill *spill, float *out) {
    (void)features;   // every position, padding included, lies inside x
    for (int64_t g = g0; g < g1; g++) {
        const float *v = values + groupStart[g] * 16;
        const uint8_t *p = positions + groupStart[g] * 16;
        float acc[16] = {0};
        for (int64_t b = 0; b < blocks; b++) {
            for (int t = 0; t < slotCount[g * blocks + b]; t++, v += 16, p += 16) {
                for (int l = 0; l < 16; l++) acc[l] += v[l] * x[b * 64 + p[l]];
            }
        }
        for (int l = 0; l < 16; l++) out[g * 16 + l] = acc[l];
        add_spill(spill, g, x, out);
    }
}
