#include "CSparseKernels.h"
#include <stdlib.h>
#include <string.h>

/// Geometry shared by the kernels: a block is 16·NV consecutive outputs of one image's
/// plane (whole rows, since H·W is a multiple of the block), vector k of it covers plane
/// positions p0 + 16k ..< p0 + 16k + 16.
int ds_conv3x3_sparse_supported(int64_t height, int64_t width) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return 0;
    int lanes_fit = (width % 16 == 0) || (width == 8);
    return lanes_fit && (height * width) % 64 == 0 ? 1 : 0;
#else
    (void)height; (void)width;
    return 0;
#endif
}

#if defined(__x86_64__)
#include <immintrin.h>

/// The tap masks of every block of a plane, [block][tap][vector]: lane l of vector k is
/// valid for tap (dh, dw) when its source row h + dh and column w + dw lie inside the
/// plane. Blocks are 16·nv outputs.
__attribute__((target("avx512f")))
static __mmask16 *plane_masks(int64_t height, int64_t width, int nv) {
    int64_t blocks = height * width / (16 * nv);
    __mmask16 *masks = malloc((size_t)(blocks * 9 * nv) * sizeof(__mmask16));
    for (int64_t b = 0; b < blocks; b++) {
        for (int t = 0; t < 9; t++) {
            int dh = t / 3 - 1, dw = t % 3 - 1;
            for (int k = 0; k < nv; k++) {
                unsigned m = 0;
                for (int l = 0; l < 16; l++) {
                    int64_t p = b * 16 * nv + 16 * k + l, h = p / width + dh, w = p % width + dw;
                    if (h >= 0 && h < height && w >= 0 && w < width) m |= 1u << l;
                }
                masks[(b * 9 + t) * nv + k] = (__mmask16)m;
            }
        }
    }
    return masks;
}

/// The shift of tap t in a plane of width W.
static inline int64_t tap_shift(int t, int64_t width) { return (int64_t)(t / 3 - 1) * width + (t % 3 - 1); }

#define DS_CONV_BLOCK(NV)                                                                                           \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_block##NV(const int64_t *start, const int64_t *offset, const uint8_t *tap,                    \
                               const float *values, const float *bias, int64_t rows, const float *xn,               \
                               float *yn, int64_t plane_out_stride, int64_t p0, const __mmask16 *masks) {           \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            __m512 acc[NV];                                                                                         \
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                       \
            for (int k = 0; k < NV; k++) acc[k] = b;                                                                \
            for (int64_t e = start[r]; e < start[r + 1]; e++) {                                                     \
                const float *src = xn + offset[e] + p0;                                                             \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                const __mmask16 *m = masks + tap[e] * NV;                                                           \
                for (int k = 0; k < NV; k++)                                                                        \
                    acc[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m[k], src + 16 * k), acc[k]);                 \
            }                                                                                                       \
            float *out = yn + r * plane_out_stride + p0;                                                            \
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(out + 16 * k, acc[k]);                                    \
        }                                                                                                           \
    }
DS_CONV_BLOCK(4)
DS_CONV_BLOCK(8)

__attribute__((target("avx512f")))
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1) {
    int64_t plane = height * width, channel_stride = batch * plane, count = start[rows];
    int64_t *offset = malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < count; e++) offset[e] = channel[e] * channel_stride + tap_shift(tap[e], width);
    int nv = plane % 128 == 0 ? 8 : 4;
    __mmask16 *masks = plane_masks(height, width, nv);
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = x + n * plane;
        float *yn = y + n * plane;
        for (int64_t p0 = 0, b = 0; p0 < plane; p0 += 16 * nv, b++) {
            const __mmask16 *m = masks + b * 9 * nv;
            if (nv == 8) conv_block8(start, offset, tap, values, bias, rows, xn, yn, channel_stride, p0, m);
            else conv_block4(start, offset, tap, values, bias, rows, xn, yn, channel_stride, p0, m);
        }
    }
    free(masks);
    free(offset);
}

__attribute__((target("avx512f")))
static inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

__attribute__((target("avx512f")))
void ds_conv3x3_sparse_sampled(const int64_t *start, const int32_t *channel, const uint8_t *tap, int64_t r0,
                               int64_t r1, const float *x, const float *dy, int64_t batch, int64_t height,
                               int64_t width, float *g) {
    int64_t plane = height * width, channel_stride = batch * plane;
    int64_t first = start[r0], count = start[r1] - first;
    if (count <= 0) return;
    int64_t *offset = malloc((size_t)count * sizeof(int64_t));
    __m512 *acc = aligned_alloc(64, (size_t)count * sizeof(__m512));
    for (int64_t e = 0; e < count; e++) {
        offset[e] = channel[first + e] * channel_stride + tap_shift(tap[first + e], width);
        acc[e] = _mm512_setzero_ps();
    }
    __mmask16 *masks = plane_masks(height, width, 4);
    for (int64_t n = 0; n < batch; n++) {
        for (int64_t p0 = 0, b = 0; p0 < plane; p0 += 64, b++) {
            const float *xn = x + n * plane + p0;
            for (int64_t r = r0; r < r1; r++) {
                const float *d = dy + r * channel_stride + n * plane + p0;
                __m512 d0 = _mm512_loadu_ps(d), d1 = _mm512_loadu_ps(d + 16);
                __m512 d2 = _mm512_loadu_ps(d + 32), d3 = _mm512_loadu_ps(d + 48);
                for (int64_t e = start[r] - first; e < start[r + 1] - first; e++) {
                    const float *src = xn + offset[e];
                    const __mmask16 *m = masks + (b * 9 + tap[first + e]) * 4;
                    __m512 s0 = _mm512_mul_ps(d0, _mm512_maskz_loadu_ps(m[0], src));
                    __m512 s1 = _mm512_mul_ps(d1, _mm512_maskz_loadu_ps(m[1], src + 16));
                    s0 = _mm512_fmadd_ps(d2, _mm512_maskz_loadu_ps(m[2], src + 32), s0);
                    s1 = _mm512_fmadd_ps(d3, _mm512_maskz_loadu_ps(m[3], src + 48), s1);
                    acc[e] = _mm512_add_ps(acc[e], _mm512_add_ps(s0, s1));
                }
            }
        }
    }
    free(masks);
    for (int64_t e = 0; e < count; e++) g[first + e] = hsum(acc[e]);
    free(offset);
    free(acc);
}

#else
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1) {
    (void)start; (void)channel; (void)tap; (void)values; (void)bias; (void)rows; (void)x; (void)y;
    (void)batch; (void)height; (void)width; (void)n0; (void)n1;
}
void ds_conv3x3_sparse_sampled(const int64_t *start, const int32_t *channel, const uint8_t *tap, int64_t r0,
                               int64_t r1, const float *x, const float *dy, int64_t batch, int64_t height,
                               int64_t width, float *g) {
    (void)start; (void)channel; (void)tap; (void)r0; (void)r1; (void)x; (void)dy; (void)batch; (void)height;
    (void)width; (void)g;
}
#endif
