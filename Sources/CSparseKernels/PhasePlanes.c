#include "CSparseKernels.h"

/// The phase planes of stride-2 convolutions (CSparseKernels.h): AVX-512 permutes of 32
/// floats at a time on x86-64 (callers check the CPU first, as for the convolution
/// kernels), plain loops elsewhere. Both write every float of their output.

#if defined(__x86_64__)
#include <immintrin.h>
/// Index vectors of the phase split and merge: even and odd lanes of a 32-float pair,
/// and the interleave of two 16-float halves.
__attribute__((target("avx512f")))
static inline __m512i lane_index(int first, int step) {
    int idx[16];
    for (int l = 0; l < 16; l++) idx[l] = first + step * l;
    return _mm512_loadu_si512(idx);
}

__attribute__((target("avx512f")))
void ds_phase_split(const float *x, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1, float *out) {
    int64_t half_h = height / 2, half_w = width / 2, half_plane = half_h * half_w, plane = height * width;
    __m512i even = lane_index(0, 2), odd = lane_index(1, 2);
    for (int64_t q = q0; q < q1; q++) {
        int64_t c = q / batch, n = q % batch;
        const float *src = x + q * plane;
        float *dst[4];
        for (int ph = 0; ph < 4; ph++) dst[ph] = out + ((c * 4 + ph) * batch + n) * half_plane;
        for (int64_t i = 0; i < half_h; i++) {
            for (int pr = 0; pr < 2; pr++) {
                const float *row = src + (2 * i + pr) * width;
                float *e = dst[2 * pr] + i * half_w, *o = dst[2 * pr + 1] + i * half_w;
                for (int64_t j0 = 0; j0 < half_w; j0 += 16) {
                    int64_t left = 2 * (half_w - j0);   // input floats from column 2·j0 on
                    __mmask16 ma = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                    __mmask16 mb = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
                    __mmask16 mo = left >= 32 ? 0xFFFF : (__mmask16)((1u << (left / 2)) - 1);
                    __m512 a = _mm512_maskz_loadu_ps(ma, row + 2 * j0), b = _mm512_maskz_loadu_ps(mb, row + 2 * j0 + 16);
                    _mm512_mask_storeu_ps(e + j0, mo, _mm512_permutex2var_ps(a, even, b));
                    _mm512_mask_storeu_ps(o + j0, mo, _mm512_permutex2var_ps(a, odd, b));
                }
            }
        }
    }
}

__attribute__((target("avx512f")))
void ds_phase_merge(const float *phases, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1,
                    float *dx) {
    int64_t half_h = height / 2, half_w = width / 2, half_plane = half_h * half_w, plane = height * width;
    int lo_idx[16], hi_idx[16];
    for (int l = 0; l < 16; l++) {   // output lane l of 32 takes e[l / 2] (even l) or o[l / 2] (odd l)
        lo_idx[l] = (l % 2 ? 16 : 0) + l / 2;
        hi_idx[l] = (l % 2 ? 16 : 0) + 8 + l / 2;
    }
    __m512i lo = _mm512_loadu_si512(lo_idx), hi = _mm512_loadu_si512(hi_idx);
    for (int64_t q = q0; q < q1; q++) {
        int64_t c = q / batch, n = q % batch;
        float *out = dx + q * plane;
        const float *src[4];
        for (int ph = 0; ph < 4; ph++) src[ph] = phases + ((c * 4 + ph) * batch + n) * half_plane;
        for (int64_t i = 0; i < half_h; i++) {
            for (int pr = 0; pr < 2; pr++) {
                float *row = out + (2 * i + pr) * width;
                const float *e = src[2 * pr] + i * half_w, *o = src[2 * pr + 1] + i * half_w;
                for (int64_t j0 = 0; j0 < half_w; j0 += 16) {
                    int64_t left = half_w - j0;   // phase values from j0 on
                    __mmask16 m = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                    __mmask16 mlo = left >= 8 ? 0xFFFF : (__mmask16)((1u << (2 * left)) - 1);
                    __mmask16 mhi = left >= 16 ? 0xFFFF : left <= 8 ? 0 : (__mmask16)((1u << (2 * (left - 8))) - 1);
                    __m512 ev = _mm512_maskz_loadu_ps(m, e + j0), ov = _mm512_maskz_loadu_ps(m, o + j0);
                    _mm512_mask_storeu_ps(row + 2 * j0, mlo, _mm512_permutex2var_ps(ev, lo, ov));
                    _mm512_mask_storeu_ps(row + 2 * j0 + 16, mhi, _mm512_permutex2var_ps(ev, hi, ov));
                }
            }
        }
    }
}

#else
void ds_phase_split(const float *x, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1, float *out) {
    int64_t half_h = height / 2, half_w = width / 2, half_plane = half_h * half_w, plane = height * width;
    for (int64_t q = q0; q < q1; q++) {
        int64_t c = q / batch, n = q % batch;
        for (int64_t h = 0; h < 2 * half_h; h++)
            for (int64_t w = 0; w < 2 * half_w; w++)
                out[((c * 4 + 2 * (h % 2) + w % 2) * batch + n) * half_plane + (h / 2) * half_w + w / 2] =
                    x[q * plane + h * width + w];
    }
}

void ds_phase_merge(const float *phases, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1,
                    float *dx) {
    int64_t half_h = height / 2, half_w = width / 2, half_plane = half_h * half_w, plane = height * width;
    for (int64_t q = q0; q < q1; q++) {
        int64_t c = q / batch, n = q % batch;
        for (int64_t h = 0; h < 2 * half_h; h++)
            for (int64_t w = 0; w < 2 * half_w; w++)
                dx[q * plane + h * width + w] =
                    phases[((c * 4 + 2 * (h % 2) + w % 2) * batch + n) * half_plane + (h / 2) * half_w + w / 2];
    }
}
#endif

