#ifndef CDENSEKERNELS_H
#define CDENSEKERNELS_H
#include <stdint.h>

/// 1 when the AVX-512 direct convolution can run on this CPU.
int ds_direct_conv_supported(void);

/// Direct 3×3 convolution, stride 1, zero padding 1 ("same" size), on channel-major
/// planes: for images i in [0, images),
///   y[co][i][h][w] (+)= Σ_ci Σ_a Σ_b wt[((ci·3 + a)·3 + b)·wstride + co] · x[ci][i][h+a−1][w+b−1]
/// with x[c][i] at x + c·channelStride + i·h·w (likewise y). `wt` is the weight
/// rearranged as [cin][3][3][wstride]: wstride ≥ cout is a multiple of 8 and the
/// entries past cout are zero (read, never used). With accumulate = 0 y is
/// overwritten, else added to. Needs AVX-512 (see ds_direct_conv_supported).
void ds_conv3x3_same(const float *x, int64_t xChannelStride, const float *wt, int64_t wstride, float *y,
                     int64_t yChannelStride, int64_t cin, int64_t cout, int64_t images, int64_t height,
                     int64_t width, int accumulate);

/// The same convolution as plain loops (the reference the tests compare against).
void ds_conv3x3_same_reference(const float *x, int64_t xChannelStride, const float *wt, int64_t wstride, float *y,
                               int64_t yChannelStride, int64_t cin, int64_t cout, int64_t images, int64_t height,
                               int64_t width, int accumulate);

/// The weight gradient of that convolution, added into dw[Cout][Cin][3][3]:
///   dw[co][ci][a][b] += Σ_i Σ_h Σ_w dy[co][i][h][w] · x[ci][i][h+a−1][w+b−1]
/// (zero outside the plane), x and dy channel-major with the given channel strides.
void ds_conv3x3_same_weight_gradient(const float *x, int64_t xChannelStride, const float *dy,
                                     int64_t dyChannelStride, float *dw, int64_t cin, int64_t cout, int64_t images,
                                     int64_t height, int64_t width);

void ds_conv3x3_same_weight_gradient_reference(const float *x, int64_t xChannelStride, const float *dy,
                                               int64_t dyChannelStride, float *dw, int64_t cin, int64_t cout,
                                               int64_t images, int64_t height, int64_t width);

#endif
