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

/// The tap masks of every vector of a plane, [vector][tap]: lane l of vector v (plane
/// positions 16v ..< 16v + 16) is valid for tap (dh, dw) when its source row h + dh
/// and column w + dw lie inside the plane.
static __mmask16 *vector_masks(int64_t height, int64_t width) {
    int64_t vectors = height * width / 16;
    __mmask16 *masks = malloc((size_t)(vectors * 9) * sizeof(__mmask16));
    for (int64_t v = 0; v < vectors; v++) {
        for (int t = 0; t < 9; t++) {
            int dh = t / 3 - 1, dw = t % 3 - 1;
            unsigned m = 0;
            for (int l = 0; l < 16; l++) {
                int64_t p = 16 * v + l, h = p / width + dh, w = p % width + dw;
                if (h >= 0 && h < height && w >= 0 && w < width) m |= 1u << l;
            }
            masks[v * 9 + t] = (__mmask16)m;
        }
    }
    return masks;
}

/// A run of `nv` vectors from vector `v0`; `period` 0: every vector has its own masks
/// (rows at the plane's top and bottom edge), else the masks repeat every `period`
/// vectors (interior rows: only the column edges are masked).
typedef struct { int64_t v0; int nv; int period; } conv_chunk;

/// The plane in chunks of at most 8 vectors. Planes 8 wide (two rows per vector), or
/// under 3 rows, are all edge chunks.
static int64_t plan_chunks(int64_t height, int64_t width, conv_chunk *out) {
    int64_t vectors = height * width / 16, n = 0;
    if (width % 16 != 0 || height < 3) {
        for (int64_t v = 0; v < vectors; v += 8) out[n++] = (conv_chunk){v, (int)(vectors - v < 8 ? vectors - v : 8), 0};
        return n;
    }
    int64_t per_row = width / 16;
    for (int64_t v = 0; v < per_row; v += 8) out[n++] = (conv_chunk){v, (int)(per_row - v < 8 ? per_row - v : 8), 0};
    int period = per_row >= 4 ? 4 : (int)per_row;   // a row's masks repeat every row (period = vectors per row ≤ 4)
    if (per_row > 4) period = 0;
    int64_t v = per_row, end = (height - 1) * per_row;
    while (v < end) {
        int64_t left = end - v;
        int nv = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        out[n++] = (conv_chunk){v, nv, period > nv ? 0 : period};
        v += nv;
    }
    for (int64_t u = end; u < vectors; u += 8) out[n++] = (conv_chunk){u, (int)(vectors - u < 8 ? vectors - u : 8), 0};
    return n;
}

/// The shift of tap t in a plane of width W.
static inline int64_t tap_shift(int t, int64_t width) { return (int64_t)(t / 3 - 1) * width + (t % 3 - 1); }

/// One chunk of one image for every output row. Edge chunks read each vector's own mask
/// (`masks + v0·9`, stride 9); interior chunks load `P` masks per entry (the row's
/// pattern for the entry's column shift) and reuse them down the rows.
#define DS_CONV_CHUNK(NV, P)                                                                                        \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_chunk_##NV##_##P(const int64_t *start, const int64_t *offset, const uint8_t *tap,             \
                                      const float *values, const float *bias, int64_t rows, const float *xn,        \
                                      float *yn, int64_t out_stride, int64_t p0, const __mmask16 *masks) {          \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            __m512 acc[NV];                                                                                         \
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                       \
            for (int k = 0; k < NV; k++) acc[k] = b;                                                                \
            for (int64_t e = start[r]; e < start[r + 1]; e++) {                                                     \
                const float *src = xn + offset[e] + p0;                                                             \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                const __mmask16 *m = masks + tap[e];                                                                \
                if (P == 0) {                                                                                       \
                    for (int k = 0; k < NV; k++)                                                                    \
                        acc[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m[9 * k], src + 16 * k), acc[k]);         \
                } else {                                                                                            \
                    __mmask16 mk[P > 0 ? P : 1];                                                                    \
                    for (int j = 0; j < (P > 0 ? P : 1); j++) mk[j] = m[9 * j];                                     \
                    for (int k = 0; k < NV; k++)                                                                    \
                        acc[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mk[k % (P > 0 ? P : 1)], src + 16 * k),   \
                                                 acc[k]);                                                           \
                }                                                                                                   \
            }                                                                                                       \
            float *out = yn + r * out_stride + p0;                                                                  \
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(out + 16 * k, acc[k]);                                    \
        }                                                                                                           \
    }
DS_CONV_CHUNK(8, 0)
DS_CONV_CHUNK(4, 0)
DS_CONV_CHUNK(2, 0)
DS_CONV_CHUNK(1, 0)
DS_CONV_CHUNK(8, 1)
DS_CONV_CHUNK(4, 1)
DS_CONV_CHUNK(2, 1)
DS_CONV_CHUNK(1, 1)
DS_CONV_CHUNK(8, 2)
DS_CONV_CHUNK(4, 2)
DS_CONV_CHUNK(2, 2)
DS_CONV_CHUNK(8, 4)
DS_CONV_CHUNK(4, 4)

typedef void (*conv_chunk_fn)(const int64_t *, const int64_t *, const uint8_t *, const float *, const float *,
                              int64_t, const float *, float *, int64_t, int64_t, const __mmask16 *);

static conv_chunk_fn chunk_kernel(int nv, int period) {
    switch (period) {
    case 1: return nv == 8 ? conv_chunk_8_1 : nv == 4 ? conv_chunk_4_1 : nv == 2 ? conv_chunk_2_1 : conv_chunk_1_1;
    case 2: return nv == 8 ? conv_chunk_8_2 : nv == 4 ? conv_chunk_4_2 : conv_chunk_2_2;
    case 4: return nv == 8 ? conv_chunk_8_4 : conv_chunk_4_4;
    default: return nv == 8 ? conv_chunk_8_0 : nv == 4 ? conv_chunk_4_0 : nv == 2 ? conv_chunk_2_0 : conv_chunk_1_0;
    }
}

__attribute__((target("avx512f")))
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1) {
    int64_t plane = height * width, channel_stride = batch * plane, count = start[rows];
    int64_t *offset = malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < count; e++) offset[e] = channel[e] * channel_stride + tap_shift(tap[e], width);
    __mmask16 *masks = vector_masks(height, width);
    conv_chunk *chunks = malloc((size_t)(plane / 16 + 2) * sizeof(conv_chunk));
    int64_t nchunks = plan_chunks(height, width, chunks);
    int64_t per_row = width / 16;
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = x + n * plane;
        float *yn = y + n * plane;
        for (int64_t c = 0; c < nchunks; c++) {
            conv_chunk ch = chunks[c];
            // Interior chunks read the masks of row 1 (valid for every row shift).
            const __mmask16 *m = masks + (ch.period ? per_row : ch.v0) * 9;
            chunk_kernel(ch.nv, ch.period)(start, offset, tap, values, bias, rows, xn, yn, channel_stride, 16 * ch.v0, m);
        }
    }
    free(chunks);
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
    __mmask16 *masks = vector_masks(height, width);
    for (int64_t n = 0; n < batch; n++) {
        for (int64_t p0 = 0, b = 0; p0 < plane; p0 += 64, b++) {
            const float *xn = x + n * plane + p0;
            for (int64_t r = r0; r < r1; r++) {
                const float *d = dy + r * channel_stride + n * plane + p0;
                __m512 d0 = _mm512_loadu_ps(d), d1 = _mm512_loadu_ps(d + 16);
                __m512 d2 = _mm512_loadu_ps(d + 32), d3 = _mm512_loadu_ps(d + 48);
                for (int64_t e = start[r] - first; e < start[r + 1] - first; e++) {
                    const float *src = xn + offset[e];
                    const __mmask16 *m = masks + b * 36 + tap[first + e];
                    __m512 s0 = _mm512_mul_ps(d0, _mm512_maskz_loadu_ps(m[0], src));
                    __m512 s1 = _mm512_mul_ps(d1, _mm512_maskz_loadu_ps(m[9], src + 16));
                    s0 = _mm512_fmadd_ps(d2, _mm512_maskz_loadu_ps(m[18], src + 32), s0);
                    s1 = _mm512_fmadd_ps(d3, _mm512_maskz_loadu_ps(m[27], src + 48), s1);
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
