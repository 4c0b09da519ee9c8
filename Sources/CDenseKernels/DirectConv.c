#include "CDenseKernels.h"

void ds_conv3x3_same_reference(const float *x, int64_t xcs, const float *wt, int64_t wstride, float *y, int64_t ycs,
                               int64_t cin, int64_t cout, int64_t images, int64_t height, int64_t width,
                               int accumulate) {
    int64_t plane = height * width;
    for (int64_t co = 0; co < cout; co++) {
        for (int64_t i = 0; i < images; i++) {
            for (int64_t h = 0; h < height; h++) {
                for (int64_t w = 0; w < width; w++) {
                    float sum = 0;
                    for (int64_t ci = 0; ci < cin; ci++) {
                        for (int64_t a = 0; a < 3; a++) {
                            int64_t hh = h + a - 1;
                            if (hh < 0 || hh >= height) continue;
                            for (int64_t b = 0; b < 3; b++) {
                                int64_t ww = w + b - 1;
                                if (ww < 0 || ww >= width) continue;
                                sum += wt[((ci * 3 + a) * 3 + b) * wstride + co] * x[ci * xcs + i * plane + hh * width + ww];
                            }
                        }
                    }
                    float *out = y + co * ycs + i * plane + h * width + w;
                    *out = accumulate ? *out + sum : sum;
                }
            }
        }
    }
}

void ds_conv3x3_same_weight_gradient_reference(const float *x, int64_t xcs, const float *dy, int64_t ycs, float *dw,
                                               int64_t cin, int64_t cout, int64_t images, int64_t height,
                                               int64_t width) {
    int64_t plane = height * width;
    for (int64_t co = 0; co < cout; co++) {
        for (int64_t ci = 0; ci < cin; ci++) {
            for (int64_t a = 0; a < 3; a++) {
                for (int64_t b = 0; b < 3; b++) {
                    double sum = 0;
                    for (int64_t i = 0; i < images; i++) {
                        for (int64_t h = 0; h < height; h++) {
                            int64_t hh = h + a - 1;
                            if (hh < 0 || hh >= height) continue;
                            for (int64_t w = 0; w < width; w++) {
                                int64_t ww = w + b - 1;
                                if (ww < 0 || ww >= width) continue;
                                sum += (double)dy[co * ycs + i * plane + h * width + w]
                                       * x[ci * xcs + i * plane + hh * width + ww];
                            }
                        }
                    }
                    dw[((co * cin + ci) * 3 + a) * 3 + b] += (float)sum;
                }
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

int ds_direct_conv_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// The lanes of [w0 + b − 1, w0 + b − 1 + 16) that lie inside [0, width).
static inline __mmask16 row_mask(int64_t w0, int64_t b, int64_t width) {
    int64_t start = w0 + b - 1;
    __mmask16 mask = 0xffff;
    if (start < 0) mask &= (__mmask16)(0xffffu << (-start));
    int64_t valid = width - start;
    if (valid < 16) mask &= (__mmask16)((1u << (valid > 0 ? valid : 0)) - 1);
    return mask;
}

/// Lanes [w0 + b − 1, w0 + b − 1 + 16) of one input row, zero outside [0, width).
__attribute__((target("avx512f"), always_inline))
static inline __m512 shifted_row(const float *row, int64_t w0, int64_t b, int64_t width) {
    return _mm512_maskz_loadu_ps(row_mask(w0, b, width), row + w0 + b - 1);
}

/// One output row segment of 8 output channels × `vectors` (1 or 2) 16-wide vectors.
#define DS_CONV_TILE(VECTORS)                                                                          \
    __m512 acc[8][VECTORS];                                                                            \
    for (int c = 0; c < 8; c++)                                                                        \
        for (int v = 0; v < VECTORS; v++) acc[c][v] = _mm512_setzero_ps();                            \
    __mmask16 masks[VECTORS][3];                                                                       \
    for (int v = 0; v < VECTORS; v++)                                                                  \
        for (int b = 0; b < 3; b++) masks[v][b] = row_mask(w0 + 16 * v, b, width);                    \
    for (int64_t ci = 0; ci < cin; ci++) {                                                             \
        const float *xi = x + ci * xcs + image;                                                        \
        for (int64_t a = 0; a < 3; a++) {                                                              \
            int64_t hh = h + a - 1;                                                                    \
            if (hh < 0 || hh >= height) continue;                                                      \
            const float *row = xi + hh * width;                                                        \
            const float *wa = wt + ((ci * 3 + a) * 3) * wstride + co;                                     \
            for (int64_t b = 0; b < 3; b++) {                                                          \
                __m512 xv[VECTORS];                                                                    \
                for (int v = 0; v < VECTORS; v++)                                                      \
                    xv[v] = _mm512_maskz_loadu_ps(masks[v][b], row + w0 + 16 * v + b - 1);            \
                const float *wb = wa + b * wstride;                                                       \
                for (int c = 0; c < 8; c++) {                                                          \
                    __m512 weight = _mm512_set1_ps(wb[c]);                                             \
                    for (int v = 0; v < VECTORS; v++) acc[c][v] = _mm512_fmadd_ps(weight, xv[v], acc[c][v]); \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
    for (int c = 0; c < channels; c++) {                                                               \
        float *out = y + (co + c) * ycs + image + h * width + w0;                                      \
        for (int v = 0; v < VECTORS; v++) {                                                            \
            int64_t left = width - w0 - 16 * v;                                                        \
            __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);                      \
            __m512 r = acc[c][v];                                                                      \
            if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask, out + 16 * v));           \
            _mm512_mask_storeu_ps(out + 16 * v, mask, r);                                              \
        }                                                                                              \
    }

/// One image's output rows (offset `image` in every plane) from input channels
/// [0, cin) of `x` / `wt`.
__attribute__((target("avx512f")))
static void conv_image(const float *x, int64_t xcs, const float *wt, int64_t wstride, float *y, int64_t ycs,
                       int64_t cin, int64_t cout, int64_t image, int64_t height, int64_t width, int accumulate) {
    for (int64_t co = 0; co < cout; co += 8) {
        int channels = cout - co < 8 ? (int)(cout - co) : 8;
        for (int64_t h = 0; h < height; h++) {
            int64_t w0 = 0;
            for (; w0 + 16 < width; w0 += 32) { DS_CONV_TILE(2) }
            if (w0 < width) { DS_CONV_TILE(1) }
        }
    }
}

/// Input channels per pass over an image: 32 channels' three input rows and their
/// weights for 8 output channels (about 21 KB at width 32) stay in L1; later passes
/// add into the outputs.
enum { DS_CONV_CHANNEL_BLOCK = 32 };

__attribute__((target("avx512f")))
void ds_conv3x3_same(const float *x, int64_t xcs, const float *wt, int64_t wstride, float *y, int64_t ycs,
                     int64_t cin, int64_t cout, int64_t images, int64_t height, int64_t width, int accumulate) {
    int64_t plane = height * width;
    for (int64_t i = 0; i < images; i++) {
        for (int64_t c0 = 0; c0 < cin; c0 += DS_CONV_CHANNEL_BLOCK) {
            int64_t count = cin - c0 < DS_CONV_CHANNEL_BLOCK ? cin - c0 : DS_CONV_CHANNEL_BLOCK;
            conv_image(x + c0 * xcs, xcs, wt + c0 * 9 * wstride, wstride, y, ycs, count, cout, i * plane, height,
                       width, accumulate || c0 > 0);
        }
    }
}
/// dw for output channels [co, co + channels) (channels 1 or 2) and input channel ci
/// over image i: 9 vector accumulators per output channel, over every row segment,
/// then reduced into dw. (An image's planes stay in L1/L2 across the channel pairs.)
__attribute__((target("avx512f")))
static void weight_gradient_block(const float *x, int64_t xcs, const float *dy, int64_t ycs, float *dw, int64_t cin,
                                  int64_t co, int channels, int64_t ci, int64_t i, int64_t height, int64_t width) {
    int64_t plane = height * width;
    {
        __m512 acc[2][9];
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < 9; t++) acc[c][t] = _mm512_setzero_ps();
        const float *xi = x + ci * xcs + i * plane;
        for (int64_t h = 0; h < height; h++) {
            for (int64_t w0 = 0; w0 < width; w0 += 16) {
                int64_t left = width - w0;
                __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
                __m512 g[2];
                for (int c = 0; c < 2; c++) {
                    g[c] = c < channels ? _mm512_maskz_loadu_ps(mask, dy + (co + c) * ycs + i * plane + h * width + w0)
                                        : _mm512_setzero_ps();
                }
                for (int64_t a = 0; a < 3; a++) {
                    int64_t hh = h + a - 1;
                    if (hh < 0 || hh >= height) continue;
                    for (int64_t b = 0; b < 3; b++) {
                        __m512 xv = shifted_row(xi + hh * width, w0, b, width);
                        for (int c = 0; c < 2; c++) acc[c][a * 3 + b] = _mm512_fmadd_ps(g[c], xv, acc[c][a * 3 + b]);
                    }
                }
            }
        }
        for (int c = 0; c < channels; c++)
            for (int t = 0; t < 9; t++) dw[((co + c) * cin + ci) * 9 + t] += _mm512_reduce_add_ps(acc[c][t]);
    }
}

__attribute__((target("avx512f")))
void ds_conv3x3_same_weight_gradient(const float *x, int64_t xcs, const float *dy, int64_t ycs, float *dw,
                                     int64_t cin, int64_t cout, int64_t images, int64_t height, int64_t width) {
    for (int64_t i = 0; i < images; i++) {
        for (int64_t co = 0; co < cout; co += 2) {
            int channels = cout - co < 2 ? 1 : 2;
            for (int64_t ci = 0; ci < cin; ci++) {
                weight_gradient_block(x, xcs, dy, ycs, dw, cin, co, channels, ci, i, height, width);
            }
        }
    }
}
#else
void ds_conv3x3_same_weight_gradient(const float *x, int64_t xcs, const float *dy, int64_t ycs, float *dw,
                                     int64_t cin, int64_t cout, int64_t images, int64_t height, int64_t width) {
    ds_conv3x3_same_weight_gradient_reference(x, xcs, dy, ycs, dw, cin, cout, images, height, width);
}
int ds_direct_conv_supported(void) { return 0; }
void ds_conv3x3_same(const float *x, int64_t xcs, const float *wt, int64_t wstride, float *y, int64_t ycs,
                     int64_t cin, int64_t cout, int64_t images, int64_t height, int64_t width, int accumulate) {
    ds_conv3x3_same_reference(x, xcs, wt, wstride, y, ycs, cin, cout, images, height, width, accumulate);
}
#endif
