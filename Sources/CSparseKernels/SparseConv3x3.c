#include "CSparseKernels.h"
#include <stdlib.h>
#include <string.h>

/// Geometry of the kernels: an image's plane of H·W outputs in vectors of 16 consecutive
/// positions (vector v covers 16v ..< 16v + 16; the last may run past the plane, those
/// lanes are masked), in chunks of up to 8 vectors (forward) or blocks of 4 (weight
/// gradient). Any plane size. Forward (and input gradient) on planes whose width is a
/// multiple of 16, or at most 8, read copies of each image's inputs instead (rows of 7
/// padded to 8); widths that are multiples of 16 also get the weight gradient's faster
/// interior path; 4×4 planes go in the lane layout (lanes_block).
int ds_conv3x3_sparse_supported(int64_t height, int64_t width) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && height > 0 && width > 0 ? 1 : 0;
#else
    (void)height; (void)width;
    return 0;
#endif
}

#if defined(__x86_64__)
#include <immintrin.h>
#include "Sums.h"

/// Vectors covering a plane (the last one may be partial).
static inline int64_t plane_vectors(int64_t height, int64_t width) { return (height * width + 15) / 16; }

/// The tap masks of every vector of a plane, [vector][tap], for whole blocks of four
/// vectors: lane l of vector v (plane position p = 16v + l) is valid for tap (dh, dw)
/// when p lies in the plane and its source row h + dh and column w + dw do too.
static __mmask16 *vector_masks(int64_t height, int64_t width) {
    int64_t plane = height * width, vectors = 4 * ((plane + 63) / 64);
    __mmask16 *masks = malloc((size_t)(vectors * 9) * sizeof(__mmask16));
    for (int64_t v = 0; v < vectors; v++) {
        for (int t = 0; t < 9; t++) {
            int dh = t / 3 - 1, dw = t % 3 - 1;
            unsigned m = 0;
            for (int l = 0; l < 16; l++) {
                int64_t p = 16 * v + l, h = p / width + dh, w = p % width + dw;
                if (p < plane && h >= 0 && h < height && w >= 0 && w < width) m |= 1u << l;
            }
            masks[v * 9 + t] = (__mmask16)m;
        }
    }
    return masks;
}

/// The lanes of vector v inside the plane.
static inline __mmask16 plane_lanes(int64_t v, int64_t plane) {
    int64_t left = plane - 16 * v;
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

static int channels_ascending(const int64_t *start, const int32_t *channel, int64_t r0, int64_t r1);

/// Where a row's entries [e0, e1) (ascending in channel) fall into channel groups of
/// `group` from channel c0: group q is [b[q], b[q + 1]), each bound an entry index plus
/// `shift` (the caller's slot for it).
static void group_bounds(const int32_t *channel, int64_t e0, int64_t e1, int64_t c0, int64_t group, int64_t groups,
                         int64_t shift, int64_t *b) {
    int64_t e = e0;
    for (int64_t q = 0; q < groups; q++) {
        b[q] = e + shift;
        while (e < e1 && channel[e] - c0 < (q + 1) * group) e++;
    }
    b[groups] = e1 + shift;
}

/// A run of `nv` vectors from vector `v0`.
typedef struct { int64_t v0; int nv; } conv_chunk;

/// The plane's vectors in chunks of 8, 4, 2 or 1 (the kernels' sizes).
static int64_t plan_chunks(int64_t height, int64_t width, conv_chunk *out) {
    int64_t v = 0, end = plane_vectors(height, width), n = 0;
    while (v < end) {
        int64_t left = end - v;
        int nv = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        out[n++] = (conv_chunk){v, nv};
        v += nv;
    }
    return n;
}

/// The shift of tap t in a plane of width W.
static inline int64_t tap_shift(int t, int64_t width) { return (int64_t)(t / 3 - 1) * width + (t % 3 - 1); }

/// One chunk of one image for every output row, each vector with its own masks
/// (`masks + v0·9`, stride 9): planes over 8 wide whose width is not a multiple of 16
/// (Fashion-MNIST's 28×28 and 14×14), where a vector may span rows at any column
/// (measured faster there than copies padded to a multiple of 16).
#define DS_CONV_CHUNK(NV)                                                                                           \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_chunk_##NV(const int64_t *start, const int64_t *offset, const uint8_t *tap,                   \
                                const float *values, const float *bias, int64_t rows, const float *xn, float *yn,  \
                                int64_t out_stride, int64_t p0, const __mmask16 *masks, __mmask16 last) {           \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            __m512 acc[NV];                                                                                         \
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                       \
            for (int k = 0; k < NV; k++) acc[k] = b;                                                                \
            for (int64_t e = start[r]; e < start[r + 1]; e++) {                                                     \
                const float *src = xn + offset[e] + p0;                                                             \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                const __mmask16 *m = masks + tap[e];                                                                \
                for (int k = 0; k < NV; k++)                                                                        \
                    acc[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m[9 * k], src + 16 * k), acc[k]);             \
            }                                                                                                       \
            float *out = yn + r * out_stride + p0;                                                                  \
            for (int k = 0; k < NV - 1; k++) _mm512_storeu_ps(out + 16 * k, acc[k]);                                \
            _mm512_mask_storeu_ps(out + 16 * (NV - 1), last, acc[NV - 1]);                                          \
        }                                                                                                           \
    }
DS_CONV_CHUNK(8)
DS_CONV_CHUNK(4)
DS_CONV_CHUNK(2)
DS_CONV_CHUNK(1)

typedef void (*conv_chunk_fn)(const int64_t *, const int64_t *, const uint8_t *, const float *, const float *,
                              int64_t, const float *, float *, int64_t, int64_t, const __mmask16 *, __mmask16);

static conv_chunk_fn chunk_kernel(int nv) {
    return nv == 8 ? conv_chunk_8 : nv == 4 ? conv_chunk_4 : nv == 2 ? conv_chunk_2 : conv_chunk_1;
}

/// Planes whose shifted copies keep the plane's own width: whole vectors of 16 positions
/// per row (width a multiple of 16) or whole rows per vector (width dividing 16, plane
/// a multiple of 16). Outputs then go to the plane vector by vector.
static inline int copies_fit(int64_t height, int64_t width) {
    return width % 16 == 0 || (16 % width == 0 && (height * width) % 16 == 0);
}

int ds_conv3x3_sparse_blocked_supported(int64_t height, int64_t width) {
    return ds_conv3x3_sparse_supported(height, width) && (copies_fit(height, width) || height * width <= 16);
}

/// The row length of the copies: the plane's width when `copies_fit`, else 8 (narrower
/// planes: 7 → 8), the extra columns zero. A vector then never joins one row's end to
/// the next row's start at an arbitrary column. (Copies of wider planes padded to a
/// multiple of 16, 28 → 32 or 14 → 16, measured no faster than the masked kernels.)
static inline int64_t copy_width(int64_t height, int64_t width) {
    return copies_fit(height, width) ? width : 8;
}

/// The lanes each copy-grid vector fills in copy s (`masks[3·v + s]`, v < ⌈H·cw/16⌉):
/// row h = (16v + l) / cw < H and column w = (16v + l) % cw with w + s − 1 and w in the
/// plane (a row's first column is out for s = 0, its last for s = 2, columns from W
/// always).
static __mmask16 *copy_masks(int64_t height, int64_t width, int64_t cw) {
    int64_t vectors = (height * cw + 15) / 16;
    __mmask16 *masks = malloc((size_t)(3 * vectors) * sizeof(__mmask16));
    for (int64_t v = 0; v < vectors; v++)
        for (int s = 0; s < 3; s++) {
            unsigned m = 0;
            for (int l = 0; l < 16; l++) {
                int64_t h = (16 * v + l) / cw, w = (16 * v + l) % cw;
                if (h < height && w < width && w + s - 1 >= 0 && w + s - 1 < width) m |= 1u << l;
            }
            masks[3 * v + s] = (__mmask16)m;
        }
    return masks;
}

/// One image's input planes, three times over (columns shifted by dw = −1, 0, +1), in
/// rows of `cw` (copy_width) floats: copy s of channel c is `buf + (s·channels + c)·
/// (rows + 2)·cw`, its row 1 + h holding x[c][h][w + s − 1] for w < W; zeros in row 0,
/// in rows after H, past column W and where the shifted column leaves the plane
/// (`masks`: copy_masks). `rows` ≥ H: the rows the output vectors cover. With `used`,
/// only copies s of channels c with used[s·channels + c] are made (the others are never
/// read: a stride-2 layer's phase planes, for one, need at most two of the three).
__attribute__((target("avx512f")))
static void shifted_copies(const float *xn, int64_t channels, int64_t channel_stride, int64_t height, int64_t width,
                           int64_t cw, int64_t rows, const __mmask16 *masks, const uint8_t *used, float *buf) {
    int64_t padded = (rows + 2) * cw, vectors = (height * cw + 15) / 16;
    for (int s = 0; s < 3; s++) {
        for (int64_t c = 0; c < channels; c++) {
            if (used && !used[s * channels + c]) continue;
            float *out = buf + (s * channels + c) * padded;
            const float *in = xn + c * channel_stride + (s - 1);
            memset(out, 0, (size_t)cw * sizeof(float));
            memset(out + (height + 1) * cw, 0, (size_t)((rows - height + 1) * cw) * sizeof(float));
            if (s == 1 && cw == width) {   // unshifted at the plane's width: the plane as it is
                memcpy(out + cw, in, (size_t)(height * width) * sizeof(float));
                continue;
            }
            if (cw >= 16) {   // a vector within one row: lane l of vector w0/16 reads in + h·W + w0 + l
                for (int64_t h = 0; h < height; h++)
                    for (int64_t w0 = 0; w0 < cw; w0 += 16)
                        _mm512_storeu_ps(out + (h + 1) * cw + w0,
                                         _mm512_maskz_loadu_ps(masks[3 * (w0 / 16) + s], in + h * width + w0));
                continue;
            }
            // Rows of cw < 16, 16 / cw of them to a vector: each row's lanes from its own
            // base (lane l = j·cw + w of row h0 + j reads in + (h0 + j)·W + w).
            for (int64_t v = 0; v < vectors; v++) {
                __m512 acc = _mm512_setzero_ps();
                unsigned m = masks[3 * v + s];
                int64_t h0 = 16 * v / cw;
                for (int64_t j = 0; j * cw < 16; j++) {
                    __mmask16 rm = (__mmask16)(m & (((1u << cw) - 1) << (j * cw)));
                    if (rm) acc = _mm512_mask_loadu_ps(acc, rm, in + (h0 + j) * width - j * cw);
                }
                _mm512_storeu_ps(out + cw + 16 * v, acc);
            }
        }
    }
}

/// Where output vector v of the copies' grid goes in the plane: lanes `m1` to
/// `plane + off1 + lane`, lanes `m2` (a second row, when rows are shorter than a
/// vector) to `plane + off2 + lane`.
typedef struct { int64_t off1, off2; __mmask16 m1, m2; } vector_store;

/// The stores of every output vector of an H×W plane on copies `cw` wide.
static vector_store *vector_stores(int64_t height, int64_t width, int64_t cw, int64_t vectors) {
    vector_store *stores = malloc((size_t)vectors * sizeof(vector_store));
    for (int64_t v = 0; v < vectors; v++) {
        vector_store st = {0, 0, 0, 0};
        int slot = 0;
        for (int l = 0; l < 16; l++) {
            int64_t h = (16 * v + l) / cw, w = (16 * v + l) % cw;
            if (h >= height || w >= width) continue;
            int64_t off = h * width + w - l;   // lane l lands at plane + off + l
            if (slot == 0 || (slot == 1 && off != st.off1)) {
                if (slot == 0) { st.off1 = off; slot = 1; }
                else { st.off2 = off; slot = 2; }
            }
            if (off == st.off1) st.m1 |= (__mmask16)(1u << l);
            else st.m2 |= (__mmask16)(1u << l);
        }
        stores[v] = st;
    }
    return stores;
}

/// `NV` vectors from copy-grid vector v0 for every output row, reading the shifted
/// copies at each entry's offset: no masks (aligned loads when the width is a multiple
/// of 16). `stores` NULL: the grid is the plane's own (vector v at 16·v); else each
/// vector's masked stores.
#define DS_CONV_ALIGNED(NV)                                                                                         \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_aligned_##NV(const int64_t *start, const int64_t *offset, const float *values,               \
                                  const float *bias, int64_t rows, const float *buf, float *yn, int64_t out_stride, \
                                  int64_t v0, const vector_store *stores) {                                         \
        int64_t p0 = 16 * v0;                                                                                       \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            __m512 acc[NV];                                                                                         \
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                       \
            for (int k = 0; k < NV; k++) acc[k] = b;                                                                \
            for (int64_t e = start[r]; e < start[r + 1]; e++) {                                                     \
                const float *src = buf + offset[e] + p0;                                                            \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                for (int k = 0; k < NV; k++) acc[k] = _mm512_fmadd_ps(v, _mm512_loadu_ps(src + 16 * k), acc[k]);    \
            }                                                                                                       \
            float *out = yn + r * out_stride;                                                                       \
            if (!stores) {                                                                                          \
                for (int k = 0; k < NV; k++) _mm512_storeu_ps(out + p0 + 16 * k, acc[k]);                           \
                continue;                                                                                           \
            }                                                                                                       \
            for (int k = 0; k < NV; k++) {                                                                          \
                vector_store st = stores[v0 + k];                                                                   \
                _mm512_mask_storeu_ps(out + st.off1, st.m1, acc[k]);                                                \
                if (st.m2) _mm512_mask_storeu_ps(out + st.off2, st.m2, acc[k]);                                     \
            }                                                                                                       \
        }                                                                                                           \
    }
DS_CONV_ALIGNED(8)
DS_CONV_ALIGNED(4)
DS_CONV_ALIGNED(2)
DS_CONV_ALIGNED(1)

/// `NV` vectors from v0 for every output row, over the entries of one channel group
/// ([b[q], b[q + 1]) of each row's bounds): the first group starts from the bias, later
/// ones from the sums stored so far. Entries run in row order, as in conv_aligned.
#define DS_CONV_GROUPED(NV)                                                                                         \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_grouped_##NV(const int64_t *bounds, int64_t groups, int64_t q, const int64_t *offset,         \
                                  const float *values, const float *bias, int64_t rows, const float *buf,          \
                                  float *yn, int64_t out_stride, int64_t v0) {                                      \
        int64_t p0 = 16 * v0;                                                                                       \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            const int64_t *b = bounds + r * (groups + 1);                                                           \
            if (q > 0 && b[q] == b[q + 1]) continue;                                                                \
            float *out = yn + r * out_stride + p0;                                                                  \
            __m512 acc[NV];                                                                                         \
            if (q == 0) {                                                                                           \
                __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                  \
                for (int k = 0; k < NV; k++) acc[k] = bv;                                                           \
            } else {                                                                                                \
                for (int k = 0; k < NV; k++) acc[k] = _mm512_loadu_ps(out + 16 * k);                                \
            }                                                                                                       \
            for (int64_t e = b[q]; e < b[q + 1]; e++) {                                                             \
                const float *src = buf + offset[e] + p0;                                                            \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                for (int k = 0; k < NV; k++) acc[k] = _mm512_fmadd_ps(v, _mm512_loadu_ps(src + 16 * k), acc[k]);    \
            }                                                                                                       \
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(out + 16 * k, acc[k]);                                    \
        }                                                                                                           \
    }
DS_CONV_GROUPED(8)
DS_CONV_GROUPED(4)
DS_CONV_GROUPED(2)
DS_CONV_GROUPED(1)

/// Planes `copies_fit` takes and planes up to 8 wide: each image's inputs copied shifted
/// and padded (`shifted_copies`, about 3·C·(H + 2)·cw floats), then every tap a plain load. The
/// sums are those of the masked kernels, term for term (zeros where they mask), plus
/// the zero columns' outputs, which are not stored.
__attribute__((target("avx512f")))
static void conv3x3_from_copies(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                const float *values, const float *bias, int64_t rows, const float *x, float *y,
                                int64_t batch, int64_t height, int64_t width, int64_t n0, int64_t n1) {
    int64_t plane = height * width, channel_stride = batch * plane, count = start[rows];
    int64_t cw = copy_width(height, width), vectors = (height * cw + 15) / 16, grid_rows = vectors * 16 / cw;
    int64_t padded = (grid_rows + 2) * cw;
    int32_t channels = 1;
    for (int64_t e = 0; e < count; e++) channels = channel[e] >= channels ? channel[e] + 1 : channels;
    int64_t *offset = malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < count; e++) {
        int dh = tap[e] / 3 - 1, s = tap[e] % 3;
        offset[e] = (s * channels + channel[e]) * padded + (1 + dh) * cw;
    }
    float *buf = aligned_alloc(64, (size_t)(3 * channels * padded) * sizeof(float));
    // Vectors straight to the plane only when they tile it exactly.
    vector_store *stores = copies_fit(height, width) ? NULL : vector_stores(height, width, cw, vectors);
    __mmask16 *masks = copy_masks(height, width, cw);
    // Channel groups whose copies for 8 vectors fit in about 24 KB, where the plane is
    // the copies' own and each row's channels ascend.
    int64_t group = (24 * 1024) / (3 * (128 + 2 * cw) * (int64_t)sizeof(float)), groups = 1;
    int64_t *bounds = NULL;
    if (!stores && group < channels && channels_ascending(start, channel, 0, rows)) {
        groups = (channels + group - 1) / group;
        bounds = malloc((size_t)(rows * (groups + 1)) * sizeof(int64_t));
        for (int64_t r = 0; r < rows; r++)
            group_bounds(channel, start[r], start[r + 1], 0, group, groups, 0, bounds + r * (groups + 1));
    }
    for (int64_t n = n0; n < n1; n++) {
        shifted_copies(x + n * plane, channels, channel_stride, height, width, cw, grid_rows, masks, NULL, buf);
        float *yn = y + n * plane;
        if (bounds) {
            for (int64_t v = 0; v < vectors;) {
                int nv = vectors - v >= 8 ? 8 : vectors - v >= 4 ? 4 : vectors - v >= 2 ? 2 : 1;
                for (int64_t q = 0; q < groups; q++) {
                    switch (nv) {
                    case 8: conv_grouped_8(bounds, groups, q, offset, values, bias, rows, buf, yn, channel_stride, v); break;
                    case 4: conv_grouped_4(bounds, groups, q, offset, values, bias, rows, buf, yn, channel_stride, v); break;
                    case 2: conv_grouped_2(bounds, groups, q, offset, values, bias, rows, buf, yn, channel_stride, v); break;
                    default: conv_grouped_1(bounds, groups, q, offset, values, bias, rows, buf, yn, channel_stride, v);
                    }
                }
                v += nv;
            }
            continue;
        }
        int64_t v = 0;
        for (; v + 8 <= vectors; v += 8) conv_aligned_8(start, offset, values, bias, rows, buf, yn, channel_stride, v, stores);
        if (v + 4 <= vectors) { conv_aligned_4(start, offset, values, bias, rows, buf, yn, channel_stride, v, stores); v += 4; }
        if (v + 2 <= vectors) { conv_aligned_2(start, offset, values, bias, rows, buf, yn, channel_stride, v, stores); v += 2; }
        if (v < vectors) conv_aligned_1(start, offset, values, bias, rows, buf, yn, channel_stride, v, stores);
    }
    free(bounds);
    free(masks);
    free(stores);
    free(buf);
    free(offset);
}

/// Planes of at most 16 positions other than 4×4 (those go in the lane layout, by a
/// plan): a vector holds one image's plane, so NI images
/// go side by side, each tap a load under the tap's mask — one mask for all of them.
/// (Channel groups for the first-level cache measured slower here: at such densities a
/// row has too few entries in a group.)
#define DS_CONV_IMAGES(NI)                                                                                          \
    __attribute__((target("avx512f")))                                                                              \
    static void conv_images_##NI(const int64_t *start, const int64_t *offset, const uint8_t *tap,                  \
                                 const float *values, const float *bias, int64_t rows, const float *xn, float *yn, \
                                 int64_t plane, int64_t out_stride, const __mmask16 *masks) {                       \
        __mmask16 lanes = plane_lanes(0, plane);                                                                    \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            __m512 acc[NI];                                                                                         \
            __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                       \
            for (int k = 0; k < NI; k++) acc[k] = b;                                                                \
            for (int64_t e = start[r]; e < start[r + 1]; e++) {                                                     \
                const float *src = xn + offset[e];                                                                  \
                __m512 v = _mm512_set1_ps(values[e]);                                                               \
                __mmask16 m = masks[tap[e]];                                                                        \
                for (int k = 0; k < NI; k++)                                                                        \
                    acc[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, src + k * plane), acc[k]);                 \
            }                                                                                                       \
            float *out = yn + r * out_stride;                                                                       \
            for (int k = 0; k < NI; k++) _mm512_mask_storeu_ps(out + k * plane, lanes, acc[k]);                     \
        }                                                                                                           \
    }
DS_CONV_IMAGES(8)
DS_CONV_IMAGES(1)

/// Planes of one vector, eight images at a time (`conv_images`).
__attribute__((target("avx512f")))
static void conv3x3_images(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                           const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                           int64_t width, int64_t n0, int64_t n1) {
    int64_t plane = height * width, channel_stride = batch * plane, count = start[rows];
    int64_t *offset = malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < count; e++) offset[e] = channel[e] * channel_stride + tap_shift(tap[e], width);
    __mmask16 *masks = vector_masks(height, width);
    int64_t n = n0;
    for (; n + 8 <= n1; n += 8)
        conv_images_8(start, offset, tap, values, bias, rows, x + n * plane, y + n * plane, plane, channel_stride, masks);
    for (; n < n1; n++)
        conv_images_1(start, offset, tap, values, bias, rows, x + n * plane, y + n * plane, plane, channel_stride, masks);
    free(masks);
    free(offset);
}

/// The taps of one input channel in one kernel column (the same column shift dw, rows
/// dh = −1, 0, +1) of one output row: on copies whose rows are whole vectors (VROW =
/// W / 16 of them), tap dh of a run of 8 vectors reads the copy's vectors from
/// (1 + dh)·VROW on, so the taps of one column read overlapping vectors — each is loaded
/// once and feeds every tap that reads it (three taps: 8 + 2·VROW loads for 24 FMAs).
/// `offset` is the copy's vector 0 for the first tap the kind holds; `w` the kind's weights
/// (forward) or `slot` their entries' sums (weight gradient), in tap order.
typedef struct { int64_t offset; float w[3]; int32_t slot[3]; } column_taps;

/// Kinds of column: 0 one tap (its own offset), 1 two adjacent taps (dh, dh + 1), 2 the
/// outer two (−1, +1), 3 all three; as tap masks over (dh + 1): 1, 3, 5, 7. A forward
/// plan's columns read the unshifted copy and shift in registers (column_apply), so
/// they go by column shift too: kind s·4 + k for shift s = dw + 1 (SHIFT_KINDS).
enum { COLUMN_KINDS = 4, SHIFT_KINDS = 12 };

/// Whether tap h of mask M reads vector j of a column's copy in a run of `span` vectors.
__attribute__((always_inline))
static inline int column_reads(int M, int VROW, int span, int h, int j) {
    return ((M >> h) & 1) && j - h * VROW >= 0 && j - h * VROW < span;
}

/// acc[k] += w[h] · (copy vector k + h·VROW, shifted by S − 1 columns) for the taps h of
/// mask M, reading the unshifted copy: the loads shared by the taps, and each loaded
/// vector moved one lane along its row in registers for S ≠ 1 (valignd with its row
/// neighbour, or a zero vector past the row's end; on paired planes a permute within
/// each image's half). One copy per channel instead of three: ResNet-20's 16→16 on
/// 32×32 and 128→128 on 16×16, two threads, 8–18% faster; 64→64 on 32×32 and paired
/// 8×8 planes about even.
__attribute__((target("avx512f"), always_inline))
static inline void column_apply(const column_taps *d, const float *buf, int64_t p0, __m512 *acc, const int M,
                                const int VROW, const int S, const int PAIRED) {
    const float *src = buf + d->offset + p0;
    __m512 w[3], xs[8 + 2 * 4], zero = _mm512_setzero_ps();
    for (int h = 0; h < 3; h++) w[h] = (M >> h) & 1 ? _mm512_set1_ps(d->w[h]) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int j = 0; j < 8 + 2 * VROW; j++) {   // the vectors a tap reads, and their row neighbours a shift reads
        int needed = 0;
        for (int h = 0; h < 3; h++) {
            needed |= column_reads(M, VROW, 8, h, j);
            if (!PAIRED && S == 0 && j % VROW != VROW - 1) needed |= column_reads(M, VROW, 8, h, j + 1);
            if (!PAIRED && S == 2 && j % VROW != 0) needed |= column_reads(M, VROW, 8, h, j - 1);
        }
        xs[j] = needed ? _mm512_loadu_ps(src + 16 * j) : zero;
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < 8 + 2 * VROW; j++) {
        int used = 0;
        for (int h = 0; h < 3; h++) used |= column_reads(M, VROW, 8, h, j);
        if (!used) continue;
        __m512 x = xs[j];
        if (PAIRED && S == 0)   // lanes 0–6 → 1–7 and 8–14 → 9–15, zeros in 0 and 8
            x = _mm512_maskz_permutexvar_ps(0xFEFE, _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 8, 6, 5, 4, 3, 2, 1, 0, 0), x);
        else if (PAIRED && S == 2)
            x = _mm512_maskz_permutexvar_ps(0x7F7F, _mm512_set_epi32(15, 15, 14, 13, 12, 11, 10, 9, 7, 7, 6, 5, 4, 3, 2, 1), x);
        else if (S == 0)   // column w reads w − 1: the previous vector's last lane first
            x = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(x),
                                                        _mm512_castps_si512(j % VROW == 0 ? zero : xs[j - 1]), 15));
        else if (S == 2)   // column w reads w + 1: the next vector's first lane last
            x = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(j % VROW == VROW - 1 ? zero : xs[j + 1]),
                                                        _mm512_castps_si512(x), 1));
        for (int h = 0; h < 3; h++)
            if (column_reads(M, VROW, 8, h, j)) acc[j - h * VROW] = _mm512_fmadd_ps(w[h], x, acc[j - h * VROW]);
    }
}

/// The 8 sums of a run of vectors from where they are kept: plain, 8 vectors of the
/// plane at `out`; paired (two 8-wide images side by side, vector k row k of both), row k
/// of image a at `out + 8k` (lanes 0–7) and of image b at `out + plane + 8k` (lanes 8–15,
/// zero and never stored when `two` is 0: a lone image).
__attribute__((target("avx512f"), always_inline))
static inline void sums_load(__m512 *acc, const float *out, const int paired, int64_t plane, int two) {
    for (int k = 0; k < 8; k++) {
        if (!paired) {
            acc[k] = _mm512_loadu_ps(out + 16 * k);
            continue;
        }
        acc[k] = _mm512_maskz_loadu_ps(0x00FF, out + 8 * k);
        if (two) acc[k] = _mm512_mask_loadu_ps(acc[k], 0xFF00, out + plane + 8 * k - 8);
    }
}

__attribute__((target("avx512f"), always_inline))
static inline void sums_store(float *out, const __m512 *acc, const int paired, int64_t plane, int two) {
    for (int k = 0; k < 8; k++) {
        if (!paired) {
            _mm512_storeu_ps(out + 16 * k, acc[k]);
            continue;
        }
        _mm512_mask_storeu_ps(out + 8 * k, 0x00FF, acc[k]);
        if (two) _mm512_mask_storeu_ps(out + plane + 8 * k - 8, 0xFF00, acc[k]);
    }
}

/// A shift's four kinds of column (bs: their starts) on the copy, by column_apply.
#define DS_APPLY_SHIFT(BS, S)                                                                                       \
    for (int64_t i = BS[0]; i < BS[1]; i++) column_apply(cols + i, buf, p0, acc, 1, KV, S, KP);                     \
    for (int64_t i = BS[1]; i < BS[2]; i++) column_apply(cols + i, buf, p0, acc, 3, KV, S, KP);                     \
    for (int64_t i = BS[2]; i < BS[3]; i++) column_apply(cols + i, buf, p0, acc, 5, KV, S, KP);                     \
    for (int64_t i = BS[3]; i < BS[4]; i++) column_apply(cols + i, buf, p0, acc, 7, KV, S, KP);

/// 8 vectors from v0 for every output row over the columns of channel group q (row r's
/// columns of kind k are [b[k], b[k + 1]), b = bounds + (r·groups + q)·SHIFT_KINDS, the
/// next kind's start closing each run): the first group starts from the bias, later
/// ones from the sums stored so far (sums_load; `out0` the sums of row 0).
#define DS_CONV_COLUMNS(NAME, VROW, PAIRED)                                                                         \
    __attribute__((target("avx512f")))                                                                              \
    static void NAME(const int64_t *bounds, int64_t groups, int64_t q, const column_taps *cols, const float *bias,  \
                     int64_t rows, const float *buf, float *out0, int64_t out_stride, int64_t v0, int64_t plane,    \
                     int two) {                                                                                     \
        enum { KV = VROW, KP = PAIRED };                                                                            \
        int64_t p0 = 16 * v0;                                                                                       \
        for (int64_t r = 0; r < rows; r++) {                                                                        \
            const int64_t *b = bounds + (r * groups + q) * SHIFT_KINDS;                                             \
            if (q > 0 && b[0] == b[SHIFT_KINDS]) continue;                                                          \
            float *out = out0 + r * out_stride;                                                                     \
            __m512 acc[8];                                                                                          \
            if (q == 0) {                                                                                           \
                __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);                                                  \
                for (int k = 0; k < 8; k++) acc[k] = bv;                                                            \
            } else {                                                                                                \
                sums_load(acc, out, PAIRED, plane, two);                                                            \
            }                                                                                                       \
            DS_APPLY_SHIFT(b, 0) DS_APPLY_SHIFT((b + 4), 1) DS_APPLY_SHIFT((b + 8), 2)                              \
            sums_store(out, acc, PAIRED, plane, two);                                                               \
        }                                                                                                           \
    }
DS_CONV_COLUMNS(conv_columns_1, 1, 0)
DS_CONV_COLUMNS(conv_columns_2, 2, 0)
DS_CONV_COLUMNS(conv_columns_4, 4, 0)
DS_CONV_COLUMNS(conv_columns_paired, 1, 1)

/// Planes whose rows are 1, 2 or 4 whole vectors and whose vectors come in runs of 8
/// (16×16, 32×32, 64×64, …): the column kernels.
static inline int columns_fit(int64_t height, int64_t width) {
    return (width == 16 || width == 32 || width == 64) && (height * width / 16) % 8 == 0;
}

/// Each row's entries [lo[r], hi[r]) (input channels from c0) as columns (column_taps),
/// in channel groups of `group` and by kind within a group (ascending (channel, dw)
/// within a kind); `bounds` gets rows·groups·COLUMN_KINDS + 1 starts. Offsets address
/// copies of `channels` channels from c0, `padded` floats each, rows `cw` floats; with
/// `registers` (a forward plan) every column reads the unshifted copy, kinds go by shift
/// too (SHIFT_KINDS), and only unshifted copies are marked used. Each
/// tap's slot is base[r] + e − lo[r] (its sum's; e, its entry, when `base` is NULL), −1
/// for taps a kind does not hold; the weights are left zero. `used` (3·channels, zeroed by
/// the caller) gets a 1 for each copy s of channel c a column reads, at s·channels + c.
/// Returns the columns (malloc'd).
static column_taps *plan_columns(const int64_t *lo, const int64_t *hi, const int64_t *base, const int32_t *channel,
                                 const uint8_t *tap, int64_t rows, int64_t c0, int64_t channels,
                                 int64_t group, int64_t groups, int64_t padded, int64_t cw, int64_t *bounds,
                                 uint8_t *used, int registers) {
    const int KINDS = registers ? SHIFT_KINDS : COLUMN_KINDS;
    int64_t count = 0, cells = 3 * channels, widest = 1;
    for (int64_t r = 0; r < rows; r++) {
        count += hi[r] - lo[r];
        widest = hi[r] - lo[r] > widest ? hi[r] - lo[r] : widest;
    }
    column_taps *cols = malloc((size_t)(count > 0 ? count : 1) * sizeof(column_taps));
    uint8_t *mask = calloc((size_t)cells, 1);
    int64_t *entry = malloc((size_t)(3 * cells) * sizeof(int64_t));
    int32_t *seen = malloc((size_t)widest * sizeof(int32_t));
    int64_t *slot = malloc((size_t)(groups * KINDS) * sizeof(int64_t));
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t seen_count = 0;
        for (int64_t e = lo[r]; e < hi[r]; e++) {   // the row's cells (channel, dw) and their taps
            int64_t cell = (channel[e] - c0) * 3 + tap[e] % 3, h = tap[e] / 3;
            if (!mask[cell]) seen[seen_count++] = (int32_t)cell;
            mask[cell] |= (uint8_t)(1u << h);
            entry[3 * cell + h] = e;
        }
        for (int64_t i = 1; i < seen_count; i++) {   // ascending cells (entries run nearly so already)
            int32_t v = seen[i];
            int64_t j = i - 1;
            for (; j >= 0 && seen[j] > v; j--) seen[j + 1] = seen[j];
            seen[j + 1] = v;
        }
        int64_t *b = bounds + r * groups * KINDS;
        for (int64_t k = 0; k < groups * KINDS; k++) b[k] = 0;
        for (int64_t i = 0; i < seen_count; i++) {
            int m = mask[seen[i]];
            b[seen[i] / 3 / group * KINDS + (registers ? 4 * (seen[i] % 3) : 0)
              + (m == 7 ? 3 : m == 5 ? 2 : m == 3 || m == 6 ? 1 : 0)]++;
        }
        for (int64_t k = 0; k < groups * KINDS; k++) {   // counts → starts
            int64_t c = b[k];
            b[k] = slot[k] = n;
            n += c;
        }
        for (int64_t i = 0; i < seen_count; i++) {
            int64_t cell = seen[i], c = cell / 3;
            int m = mask[cell], kind = m == 7 ? 3 : m == 5 ? 2 : m == 3 || m == 6 ? 1 : 0;
            int first = m & 1 ? 0 : m & 2 ? 1 : 2;   // the kind's first tap (dh + 1)
            int taps[3] = {0, 1, 2}, held = 3;       // the kind's taps in order
            if (kind < 2) {                          // one tap or two adjacent: from the first one's copy row
                taps[0] = first;
                taps[1] = first + 1;
                held = kind + 1;
            } else if (kind == 2) {
                taps[1] = 2;
                held = 2;
            }
            int64_t copy = registers ? 1 : cell % 3;   // the copy read (s·channels + c)
            column_taps d = {(copy * channels + c) * padded + (kind < 2 ? first * cw : 0), {0, 0, 0}, {-1, -1, -1}};
            for (int t = 0; t < held; t++) {
                int64_t e = entry[3 * cell + taps[t]];
                int at = kind == 2 ? 2 * t : t;   // the place of the kind's t-th tap (mask bit)
                d.slot[at] = (int32_t)(base ? base[r] + e - lo[r] : e);
            }
            cols[slot[c / group * KINDS + (registers ? 4 * (cell % 3) : 0) + kind]++] = d;
            used[copy * channels + c] = 1;
            mask[cell] = 0;
        }
    }
    bounds[rows * groups * KINDS] = n;
    free(slot);
    free(seen);
    free(entry);
    free(mask);
    return cols;
}

/// Channels per group of the column kernels: as many as keep a run's copies in about
/// 24 KB (`per_channel` bytes a channel), but at least enough for ~24 entries a row per
/// group on average (fewer leave each row's sums loaded and stored for too little work:
/// 8×8 at density 0.06–0.12, 7–13% faster in a microbenchmark), at most all of them.
static int64_t column_group(int64_t per_channel, int64_t count, int64_t rows, int64_t channels) {
    int64_t group = (24 * 1024) / per_channel;
    int64_t enough = count > 0 ? (24 * rows * channels + count - 1) / count : channels;
    if (group < enough) group = enough;
    return group < 1 ? 1 : group > channels ? channels : group;
}

/// Planes 8 wide whose height is a multiple of 8 (8×8): two images side by side, so a
/// vector is one row of both and the columns' rows are whole vectors (VROW 1).
static inline int pairs_fit(int64_t height, int64_t width) { return width == 8 && height % 8 == 0; }

int ds_conv3x3_plan_fits(int64_t height, int64_t width) {
    return ds_conv3x3_sparse_supported(height, width)
        && (columns_fit(height, width) || pairs_fit(height, width) || (height == 4 && width == 4));
}

/// Copies as shifted_copies makes, rows 16 wide holding row h of image a (lanes 0–7) and
/// of image b (lanes 8–15; zeros when b is NULL), each shifted by s − 1 columns with
/// zeros where the shift leaves its image (`used` as for shifted_copies).
__attribute__((target("avx512f")))
static void paired_copies(const float *xa, const float *xb, int64_t channels, int64_t channel_stride, int64_t height,
                          const uint8_t *used, float *buf) {
    int64_t padded = (height + 2) * 16;
    for (int s = 0; s < 3; s++) {
        unsigned half = s == 0 ? 0xFE : s == 2 ? 0x7F : 0xFF;   // columns w with w + s − 1 in the image
        __mmask16 ma = (__mmask16)half, mb = (__mmask16)(xb ? half << 8 : 0);
        for (int64_t c = 0; c < channels; c++) {
            if (used && !used[s * channels + c]) continue;
            float *out = buf + (s * channels + c) * padded;
            const float *a = xa + c * channel_stride + (s - 1), *b = xb ? xb + c * channel_stride + (s - 1) - 8 : a;
            _mm512_storeu_ps(out, _mm512_setzero_ps());
            _mm512_storeu_ps(out + (height + 1) * 16, _mm512_setzero_ps());
            for (int64_t h = 0; h < height; h++) {
                __m512 v = _mm512_maskz_loadu_ps(ma, a + 8 * h);
                _mm512_storeu_ps(out + 16 * (h + 1), _mm512_mask_loadu_ps(v, mb, b + 8 * h));
            }
        }
    }
}

/// 4×4 planes in the lane layout: a block of up to 16 images of one channel held as 16
/// vectors, one per plane position, lane i image i (lanes_block, the 16×16 transpose of
/// the images' planes). A tap is then one whole-vector load per output position it
/// reaches, and each tap reads only the positions it has inside the plane: no masked
/// lanes (a plane per vector wastes 31% of a 4×4 plane's multiply-adds on them). The
/// forward keeps a row's 16 output vectors in registers over all its entries (measured
/// 25–35% faster than eight plane-per-vector images side by side, ResNet-18's 512→512
/// layers at 90%, one thread); the weight gradient keeps a row's output gradients there
/// (1.9x its plane-per-vector units; 8.1 → 5.0 ms on two threads).

/// r[i][j] → r[j][i] for a 16×16 block in registers.
__attribute__((target("avx512f"), always_inline))
static inline void transpose16(__m512 *r) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // u[4g + k], 128-bit lane L: column 4L + k of rows 4g … 4g + 3.
    for (int k = 0; k < 4; k++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x44), v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xEE);
        r[k] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + k] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + k] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + k] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/// The 16 planes of m ≤ 16 images from `x` (16 floats apart), transposed: position p in
/// r[p], image i in lane i, lanes from m on zero.
__attribute__((target("avx512f"), always_inline))
static inline void lanes_load(const float *x, int m, __m512 *r) {
    for (int i = 0; i < 16; i++) r[i] = i < m ? _mm512_loadu_ps(x + 16 * i) : _mm512_setzero_ps();
    transpose16(r);
}

/// The lane block of m ≤ 16 images of each of `channels` channels (x: image 0 of channel
/// 0, channels `channel_stride` apart): channel c's position p at out + 256·c + 16·p.
__attribute__((target("avx512f")))
static void lanes_block(const float *x, int64_t channels, int64_t channel_stride, int m, float *out) {
    for (int64_t c = 0; c < channels; c++) {
        __m512 r[16];
        lanes_load(x + c * channel_stride, m, r);
        for (int p = 0; p < 16; p++) _mm512_store_ps(out + 256 * c + 16 * p, r[p]);
    }
}

/// Rows' entries [lo[r], hi[r]) by tap: tap t's of row r are [tb[9r + t], tb[9r + t + 1]),
/// each at lane-block offset `off` (256 · (channel − c0)), from entry `slot`, with weight
/// `w` (a plan's: ds_conv3x3_plan_weights).
typedef struct { int64_t *tb; int32_t *off; int64_t *slot; float *w; int64_t count; } lanes_order;

static lanes_order lanes_order_make(const int64_t *lo, const int64_t *hi, const int32_t *channel, const uint8_t *tap,
                                    int64_t rows, int64_t c0) {
    lanes_order o;
    o.tb = calloc((size_t)(9 * rows + 1), sizeof(int64_t));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = lo[r]; e < hi[r]; e++) o.tb[9 * r + tap[e] + 1]++;
    for (int64_t i = 0; i < 9 * rows; i++) o.tb[i + 1] += o.tb[i];
    o.count = o.tb[9 * rows];
    int64_t n = o.count > 0 ? o.count : 1, *next = malloc((size_t)(9 * rows) * sizeof(int64_t));
    o.off = malloc((size_t)n * sizeof(int32_t));
    o.slot = malloc((size_t)n * sizeof(int64_t));
    o.w = calloc((size_t)n, sizeof(float));
    memcpy(next, o.tb, (size_t)(9 * rows) * sizeof(int64_t));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = lo[r]; e < hi[r]; e++) {
            int64_t k = next[9 * r + tap[e]]++;
            o.off[k] = (int32_t)(256 * (channel[e] - c0));
            o.slot[k] = e;
        }
    free(next);
    return o;
}

static void lanes_order_free(lanes_order *o) {
    free(o->tb);
    free(o->off);
    free(o->slot);
    free(o->w);
}

/// Whether output position (h, v) of a 4×4 plane reads a source inside it at tap (dh, dw).
__attribute__((always_inline))
static inline int lanes_reaches(int h, int v, int dh, int dw) {
    return h + dh >= 0 && h + dh <= 3 && v + dw >= 0 && v + dw <= 3;
}

/// acc[p] += w · b's position p + 4·dh + dw for the positions p of a 4×4 plane whose tap
/// (dh, dw) source lies in it.
__attribute__((target("avx512f"), always_inline))
static inline void lanes_tap(__m512 *acc, const float *b, __m512 w, const int dh, const int dw) {
    for (int h = 0; h < 4; h++)
        for (int v = 0; v < 4; v++) {
            if (!lanes_reaches(h, v, dh, dw)) continue;
            int p = 4 * h + v;
            acc[p] = _mm512_fmadd_ps(w, _mm512_load_ps(b + 16 * (p + 4 * dh + dw)), acc[p]);
        }
}

#define LANES_TAP(T)                                                                                                \
    for (int64_t e = b[T]; e < b[T + 1]; e++) lanes_tap(acc, xt + o->off[e], _mm512_set1_ps(o->w[e]), T / 3 - 1, T % 3 - 1);

/// Every row of the forward over one lane block of m images (xt: lanes_block; y: image 0
/// of the block, channel 0, outputs `out_stride` apart): the row's 16 position vectors
/// in registers, transposed back into the images' planes to be stored.
__attribute__((target("avx512f")))
static void lanes_forward(const lanes_order *o, const float *bias, int64_t rows, const float *xt, float *y,
                          int64_t out_stride, int m) {
    for (int64_t r = 0; r < rows; r++) {
        __m512 acc[16];
        __m512 bv = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        for (int p = 0; p < 16; p++) acc[p] = bv;
        const int64_t *b = o->tb + 9 * r;
        LANES_TAP(0) LANES_TAP(1) LANES_TAP(2) LANES_TAP(3) LANES_TAP(4) LANES_TAP(5) LANES_TAP(6) LANES_TAP(7)
        LANES_TAP(8)
        transpose16(acc);
        for (int i = 0; i < m; i++) _mm512_storeu_ps(y + r * out_stride + 16 * i, acc[i]);
    }
}

struct ds_conv3x3_plan {
    int64_t rows, channels, height, width, cw, padded, group, groups, paired;
    int64_t *bounds;        // rows·groups·SHIFT_KINDS + 1 starts (plan_columns)
    column_taps *cols;      // slots: the taps' entries
    uint8_t *used;          // the copies the columns read (plan_columns)
    lanes_order *lanes;     // 4×4 planes: the entries by tap (no columns)
};

ds_conv3x3_plan *ds_conv3x3_plan_make(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                      const int32_t *source, int64_t rows, int64_t height, int64_t width) {
    if (!ds_conv3x3_plan_fits(height, width)) return NULL;
    ds_conv3x3_plan *plan = malloc(sizeof(ds_conv3x3_plan));
    int64_t count = start[rows];
    int32_t channels = 1;
    for (int64_t e = 0; e < count; e++) channels = channel[e] >= channels ? channel[e] + 1 : channels;
    plan->rows = rows;
    plan->channels = channels;
    plan->height = height;
    plan->width = width;
    plan->lanes = NULL;
    if (height == 4 && width == 4) {
        plan->lanes = malloc(sizeof(lanes_order));
        *plan->lanes = lanes_order_make(start, start + 1, channel, tap, rows, 0);
        if (source)
            for (int64_t k = 0; k < plan->lanes->count; k++) plan->lanes->slot[k] = source[plan->lanes->slot[k]];
        plan->cols = NULL;
        plan->bounds = NULL;
        plan->used = NULL;
        plan->paired = plan->padded = plan->group = plan->groups = 0;
        plan->cw = width;
        return plan;
    }
    plan->paired = pairs_fit(height, width);
    plan->cw = plan->paired ? 16 : width;
    plan->padded = (height + 2) * plan->cw;
    // One copy per channel (the columns shift in registers): groups of about 24 KB of them.
    plan->group = column_group((128 + 2 * plan->cw) * (int64_t)sizeof(float), count, rows, channels);
    plan->groups = (channels + plan->group - 1) / plan->group;
    plan->bounds = malloc((size_t)(rows * plan->groups * SHIFT_KINDS + 1) * sizeof(int64_t));
    plan->used = calloc((size_t)(3 * channels), 1);
    plan->cols = plan_columns(start, start + 1, NULL, channel, tap, rows, 0, channels, plan->group, plan->groups,
                              plan->padded, plan->cw, plan->bounds, plan->used, 1);
    if (source)
        for (int64_t i = 0, n = plan->bounds[rows * plan->groups * SHIFT_KINDS]; i < n; i++)
            for (int h = 0; h < 3; h++)
                if (plan->cols[i].slot[h] >= 0) plan->cols[i].slot[h] = source[plan->cols[i].slot[h]];
    return plan;
}

void ds_conv3x3_plan_free(ds_conv3x3_plan *plan) {
    if (!plan) return;
    if (plan->lanes) lanes_order_free(plan->lanes);
    free(plan->lanes);
    free(plan->cols);
    free(plan->bounds);
    free(plan->used);
    free(plan);
}

void ds_conv3x3_plan_weights(ds_conv3x3_plan *plan, const float *values) {
    if (plan->lanes) {
        for (int64_t k = 0; k < plan->lanes->count; k++) plan->lanes->w[k] = values[plan->lanes->slot[k]];
        return;
    }
    column_taps *cols = plan->cols;
    for (int64_t i = 0, n = plan->bounds[plan->rows * plan->groups * SHIFT_KINDS]; i < n; i++)
        for (int h = 0; h < 3; h++) cols[i].w[h] = cols[i].slot[h] >= 0 ? values[cols[i].slot[h]] : 0.0f;
}

/// The forward by a plan's columns: each image's unshifted copy (the plan marks only
/// those used; two images side by side on paired planes, the last one alone when the
/// count is odd) and, for each run of 8 vectors and channel group, every output row's
/// columns (conv_columns, shifting in registers).
__attribute__((target("avx512f")))
void ds_conv3x3_sparse_planned(const ds_conv3x3_plan *plan, const float *bias, const float *x, float *y,
                               int64_t batch, int64_t n0, int64_t n1) {
    int64_t rows = plan->rows, channels = plan->channels, height = plan->height, width = plan->width;
    int64_t cw = plan->cw, padded = plan->padded, groups = plan->groups;
    int64_t plane = height * width, channel_stride = batch * plane, vectors = height * cw / 16;
    if (plan->lanes) {   // 4×4: blocks of 16 images in the lane layout
        float *xt = aligned_alloc(64, (size_t)channels * 256 * sizeof(float));
        for (int64_t n = n0; n < n1; n += 16) {
            int m = n1 - n >= 16 ? 16 : (int)(n1 - n);
            lanes_block(x + 16 * n, channels, channel_stride, m, xt);
            lanes_forward(plan->lanes, bias, rows, xt, y + 16 * n, channel_stride, m);
        }
        free(xt);
        return;
    }
    const int64_t *bounds = plan->bounds;
    const column_taps *cols = plan->cols;
    float *buf = aligned_alloc(64, (size_t)(3 * channels * padded) * sizeof(float));
    if (plan->paired) {
        for (int64_t i = n0; i < n1; i += 2) {
            int two = i + 1 < n1;
            paired_copies(x + i * plane, two ? x + (i + 1) * plane : NULL, channels, channel_stride, height,
                          plan->used, buf);
            for (int64_t v = 0; v < vectors; v += 8)   // vector v: row v of both images
                for (int64_t q = 0; q < groups; q++)
                    conv_columns_paired(bounds, groups, q, cols, bias, rows, buf, y + i * plane + 8 * v,
                                        channel_stride, v, plane, two);
        }
    } else {
        __mmask16 *masks = copy_masks(height, width, cw);
        for (int64_t i = n0; i < n1; i++) {
            shifted_copies(x + i * plane, channels, channel_stride, height, width, cw, height, masks, plan->used, buf);
            float *yn = y + i * plane;
            for (int64_t v = 0; v < vectors; v += 8)
                for (int64_t q = 0; q < groups; q++) {
                    switch (cw / 16) {
                    case 1: conv_columns_1(bounds, groups, q, cols, bias, rows, buf, yn + 16 * v, channel_stride, v,
                                           plane, 0); break;
                    case 2: conv_columns_2(bounds, groups, q, cols, bias, rows, buf, yn + 16 * v, channel_stride, v,
                                           plane, 0); break;
                    default: conv_columns_4(bounds, groups, q, cols, bias, rows, buf, yn + 16 * v, channel_stride,
                                            v, plane, 0);
                    }
                }
        }
        free(masks);
    }
    free(buf);
}

__attribute__((target("avx512f")))
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1) {
    if (ds_conv3x3_plan_fits(height, width)) {
        ds_conv3x3_plan *plan = ds_conv3x3_plan_make(start, channel, tap, NULL, rows, height, width);
        ds_conv3x3_plan_weights(plan, values);
        ds_conv3x3_sparse_planned(plan, bias, x, y, batch, n0, n1);
        ds_conv3x3_plan_free(plan);
        return;
    }
    if (height * width <= 16) {
        conv3x3_images(start, channel, tap, values, bias, rows, x, y, batch, height, width, n0, n1);
        return;
    }
    if (copies_fit(height, width) || width <= 8) {
        conv3x3_from_copies(start, channel, tap, values, bias, rows, x, y, batch, height, width, n0, n1);
        return;
    }
    int64_t plane = height * width, channel_stride = batch * plane, count = start[rows];
    int64_t *offset = malloc((size_t)(count > 0 ? count : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < count; e++) offset[e] = channel[e] * channel_stride + tap_shift(tap[e], width);
    __mmask16 *masks = vector_masks(height, width);
    conv_chunk *chunks = malloc((size_t)(plane_vectors(height, width) + 2) * sizeof(conv_chunk));
    int64_t nchunks = plan_chunks(height, width, chunks);
    for (int64_t n = n0; n < n1; n++) {
        const float *xn = x + n * plane;
        float *yn = y + n * plane;
        for (int64_t c = 0; c < nchunks; c++) {
            conv_chunk ch = chunks[c];
            __mmask16 last = plane_lanes(ch.v0 + ch.nv - 1, plane);   // a partial last vector: masked stores
            chunk_kernel(ch.nv)(start, offset, tap, values, bias, rows, xn, yn, channel_stride, 16 * ch.v0,
                                masks + ch.v0 * 9, last);
        }
    }
    free(chunks);
    free(masks);
    free(offset);
}

__attribute__((target("avx512f")))
static inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/// A 16-lane sum folded to 4 lanes: lane l gets (l + l+8) + (l+4 + l+12).
__attribute__((target("avx512f"), always_inline))
static inline __m128 fold4(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/// The sum of the 4 lanes.
__attribute__((target("avx512f"), always_inline))
static inline float hsum4(__m128 q) {
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

/// Entries [e0, e0 + E) of one output row for one image, over blocks [b0, b1) of 64
/// positions: a[2j], a[2j + 1] += dy · (x shifted by entry j's tap). `P` 0: every
/// vector's own mask (`masks + 36·b + tap`, vector stride 9); else `mk[j]`, the masks of
/// row 1 repeating every P vectors. Inlined into the image loop, so `a` stays in registers.
#define DS_SAMPLED_BLOCKS(E, P)                                                                                     \
    __attribute__((target("avx512f"), always_inline))                                                               \
    static inline void sampled_blocks_##E##_##P(__m512 *a, const int64_t *offset, const uint8_t *tap, int64_t e0,  \
                                                const float *xn, const float *dn, int64_t b0, int64_t b1,          \
                                                const __mmask16 *masks, int64_t plane, __mmask16 mk[E][4]) {       \
        for (int64_t b = b0; b < b1; b++) {                                                                         \
            const float *d = dn + 64 * b;                                                                           \
            __m512 d0, d1, d2, d3;                                                                                  \
            if (P == 0 && 64 * (b + 1) > plane) {   /* the plane's partial last block */                            \
                d0 = _mm512_maskz_loadu_ps(plane_lanes(4 * b, plane), d);                                           \
                d1 = _mm512_maskz_loadu_ps(plane_lanes(4 * b + 1, plane), d + 16);                                  \
                d2 = _mm512_maskz_loadu_ps(plane_lanes(4 * b + 2, plane), d + 32);                                  \
                d3 = _mm512_maskz_loadu_ps(plane_lanes(4 * b + 3, plane), d + 48);                                  \
            } else {                                                                                                \
                d0 = _mm512_loadu_ps(d); d1 = _mm512_loadu_ps(d + 16);                                              \
                d2 = _mm512_loadu_ps(d + 32); d3 = _mm512_loadu_ps(d + 48);                                         \
            }                                                                                                       \
            for (int j = 0; j < E; j++) {                                                                           \
                const float *src = xn + offset[e0 + j] + 64 * b;                                                    \
                __mmask16 m0, m1, m2, m3;                                                                           \
                if (P == 0) {                                                                                       \
                    const __mmask16 *m = masks + 36 * b + tap[e0 + j];                                              \
                    m0 = m[0]; m1 = m[9]; m2 = m[18]; m3 = m[27];                                                   \
                } else {                                                                                            \
                    m0 = mk[j][0]; m1 = mk[j][1]; m2 = mk[j][2]; m3 = mk[j][3];                                     \
                }                                                                                                   \
                a[2 * j] = _mm512_fmadd_ps(d0, _mm512_maskz_loadu_ps(m0, src), a[2 * j]);                           \
                a[2 * j + 1] = _mm512_fmadd_ps(d1, _mm512_maskz_loadu_ps(m1, src + 16), a[2 * j + 1]);              \
                a[2 * j] = _mm512_fmadd_ps(d2, _mm512_maskz_loadu_ps(m2, src + 32), a[2 * j]);                      \
                a[2 * j + 1] = _mm512_fmadd_ps(d3, _mm512_maskz_loadu_ps(m3, src + 48), a[2 * j + 1]);              \
            }                                                                                                       \
        }                                                                                                           \
    }
DS_SAMPLED_BLOCKS(4, 0)
DS_SAMPLED_BLOCKS(1, 0)
DS_SAMPLED_BLOCKS(4, 1)
DS_SAMPLED_BLOCKS(1, 1)
DS_SAMPLED_BLOCKS(4, 2)
DS_SAMPLED_BLOCKS(1, 2)
DS_SAMPLED_BLOCKS(4, 4)
DS_SAMPLED_BLOCKS(1, 4)

/// The sums of entries [e0, e0 + E) of one output row over images [n0, n1), each image's
/// blocks in order: edge blocks [0, lo), interior blocks [lo, hi) with the row-1 masks
/// repeating every P vectors, edge blocks [hi, blocks). The sums stay in registers across
/// the images (loaded from and stored to `acc` once).
#define DS_SAMPLED_IMAGES(E, P)                                                                                     \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_images_##E##_##P(const int64_t *offset, const uint8_t *tap, int64_t e0, const float *x,    \
                                         const float *dr, int64_t n0, int64_t n1, int64_t lo, int64_t hi,          \
                                         int64_t blocks, const __mmask16 *masks, int64_t per_row, int64_t plane,   \
                                         __m512 *acc) {                                                             \
        __m512 a[2 * E];                                                                                            \
        for (int j = 0; j < 2 * E; j++) a[j] = acc[j];                                                              \
        __mmask16 mk[E][4];                                                                                         \
        for (int j = 0; j < E; j++)                                                                                 \
            for (int k = 0; k < 4; k++) mk[j][k] = P ? masks[9 * per_row + tap[e0 + j] + 9 * (k % (P ? P : 1))] : 0; \
        for (int64_t n = n0; n < n1; n++) {                                                                         \
            const float *xn = x + n * plane, *dn = dr + n * plane;                                                  \
            sampled_blocks_##E##_0(a, offset, tap, e0, xn, dn, 0, lo, masks, plane, mk);                            \
            sampled_blocks_##E##_##P(a, offset, tap, e0, xn, dn, lo, hi, masks, plane, mk);                         \
            sampled_blocks_##E##_0(a, offset, tap, e0, xn, dn, hi, blocks, masks, plane, mk);                       \
        }                                                                                                           \
        for (int j = 0; j < 2 * E; j++) acc[j] = a[j];                                                              \
    }
DS_SAMPLED_IMAGES(4, 0)
DS_SAMPLED_IMAGES(1, 0)
DS_SAMPLED_IMAGES(4, 1)
DS_SAMPLED_IMAGES(1, 1)
DS_SAMPLED_IMAGES(4, 2)
DS_SAMPLED_IMAGES(1, 2)
DS_SAMPLED_IMAGES(4, 4)
DS_SAMPLED_IMAGES(1, 4)

typedef void (*sampled_fn)(const int64_t *, const uint8_t *, int64_t, const float *, const float *, int64_t, int64_t,
                           int64_t, int64_t, int64_t, const __mmask16 *, int64_t, int64_t, __m512 *);

static sampled_fn sampled_kernel(int e, int period) {
    switch (period) {
    case 1: return e == 4 ? sampled_images_4_1 : sampled_images_1_1;
    case 2: return e == 4 ? sampled_images_4_2 : sampled_images_1_2;
    case 4: return e == 4 ? sampled_images_4_4 : sampled_images_1_4;
    default: return e == 4 ? sampled_images_4_0 : sampled_images_1_0;
    }
}

/// The same sums for planes of one block (at most 64 positions: 8×8, 7×7): entries
/// [e0, e0 + E) of one output row over every image, the sums kept in registers and the
/// masks loaded once (a block's masks do not change from image to image). Each sum runs
/// over the images in order, as in the general loop.
#define DS_SAMPLED_ONE_BLOCK(E)                                                                                     \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_one_block_##E(const int64_t *offset, const uint8_t *tap, int64_t e0, const float *x,       \
                                      const float *dr, int64_t batch, int64_t plane, const __mmask16 *masks,      \
                                      __m512 *acc) {                                                                \
        __m512 a[2 * E];                                                                                            \
        for (int j = 0; j < 2 * E; j++) a[j] = acc[j];                                                              \
        __mmask16 mk[E][4], lanes[4];                                                                               \
        for (int k = 0; k < 4; k++) lanes[k] = plane_lanes(k, plane);                                               \
        for (int j = 0; j < E; j++)                                                                                 \
            for (int k = 0; k < 4; k++) mk[j][k] = masks[tap[e0 + j] + 9 * k];                                      \
        for (int64_t n = 0; n < batch; n++) {                                                                       \
            const float *d = dr + n * plane, *xn = x + n * plane;                                                   \
            __m512 d0 = _mm512_maskz_loadu_ps(lanes[0], d), d1 = _mm512_maskz_loadu_ps(lanes[1], d + 16);           \
            __m512 d2 = _mm512_maskz_loadu_ps(lanes[2], d + 32), d3 = _mm512_maskz_loadu_ps(lanes[3], d + 48);      \
            for (int j = 0; j < E; j++) {                                                                           \
                const float *src = xn + offset[e0 + j];                                                             \
                a[2 * j] = _mm512_fmadd_ps(d0, _mm512_maskz_loadu_ps(mk[j][0], src), a[2 * j]);                     \
                a[2 * j + 1] = _mm512_fmadd_ps(d1, _mm512_maskz_loadu_ps(mk[j][1], src + 16), a[2 * j + 1]);        \
                a[2 * j] = _mm512_fmadd_ps(d2, _mm512_maskz_loadu_ps(mk[j][2], src + 32), a[2 * j]);                \
                a[2 * j + 1] = _mm512_fmadd_ps(d3, _mm512_maskz_loadu_ps(mk[j][3], src + 48), a[2 * j + 1]);        \
            }                                                                                                       \
        }                                                                                                           \
        for (int j = 0; j < 2 * E; j++) acc[j] = a[j];                                                              \
    }
DS_SAMPLED_ONE_BLOCK(4)
DS_SAMPLED_ONE_BLOCK(1)


/// Asks for the 1 KB from `p` in the first-level cache: the next row's block of output
/// gradients in the blocked weight gradient, which lies a whole channel (batch · plane
/// floats) past the current one, where no hardware prefetcher looks, and would otherwise
/// be a cache miss at the start of every row's unit (measured 4–11% of the blocked
/// gradient on 16- and 32-wide planes and on paired 8×8 planes; no gain on 4×4 planes,
/// whose units walk the rows of one block of images and so stream).
__attribute__((target("avx512f"), always_inline))
static inline void prefetch_block(const float *p) {
    for (int k = 0; k < 16; k++) _mm_prefetch((const char *)p + 64 * k, _MM_HINT_T0);
}

/// The weight gradient on planes `copies_fit` takes, blocked for the first-level cache:
/// each image's inputs as shifted copies (`shifted_copies`: every tap a plain load), the
/// plane in units of T images × BV vectors, the input channels in groups whose copies for
/// one unit fit in about 24 KB. Per unit, group and row the row's gradient vectors stay in
/// registers, and every entry of that row and group adds its unit's products, folded to
/// four lanes (fold4), to its own 4-lane sum in memory: a quarter of the traffic of a
/// 16-lane sum, whose table of entries outgrows L2 on planes of 16×16 and below
/// (measured 4–21% faster over 8×8 to 32×32 planes). An entry's sum runs over units in
/// order whatever the thread split.
#define DS_SAMPLED_UNIT(T, BV)                                                                                      \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_unit_##T##_##BV(const int64_t *offset, int64_t e0, int64_t e1, const float *buf,            \
                                        int64_t image, const float *dr, int64_t plane, int64_t p0, __m128 *acc) {  \
        __m512 d[T * BV];                                                                                           \
        for (int t = 0; t < T; t++)                                                                                 \
            for (int k = 0; k < BV; k++) d[t * BV + k] = _mm512_loadu_ps(dr + t * plane + p0 + 16 * k);            \
        for (int64_t e = e0; e < e1; e++) {                                                                         \
            const float *src = buf + offset[e] + p0;                                                                \
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();                                              \
            for (int t = 0; t < T; t++)                                                                             \
                for (int k = 0; k < BV; k += 2) {                                                                   \
                    a0 = _mm512_fmadd_ps(d[t * BV + k], _mm512_loadu_ps(src + t * image + 16 * k), a0);            \
                    if (k + 1 < BV)                                                                                 \
                        a1 = _mm512_fmadd_ps(d[t * BV + k + 1], _mm512_loadu_ps(src + t * image + 16 * k + 16), a1); \
                }                                                                                                   \
            acc[e] = _mm_add_ps(acc[e], fold4(_mm512_add_ps(a0, a1)));                                              \
        }                                                                                                           \
    }
DS_SAMPLED_UNIT(1, 16)
DS_SAMPLED_UNIT(1, 8)
DS_SAMPLED_UNIT(1, 4)
DS_SAMPLED_UNIT(4, 4)
DS_SAMPLED_UNIT(1, 2)
DS_SAMPLED_UNIT(1, 1)

/// The blocked gradient's unit by columns: T copies `image` floats apart (images, or
/// pairs of images side by side), SPAN vectors of each from p0; tap h of mask M adds
/// d[SPAN·t + k] · copy t's vector k + h·VROW to its sum (kept as in sampled_unit: even
/// k into one vector, odd into another, then folded and added to the 4-lane sum in
/// memory, so one image's sums are those of sampled_unit term for term); each copy's
/// shared vectors loaded once.
__attribute__((target("avx512f"), always_inline))
static inline void column_gradient(const column_taps *c, const float *buf, int64_t image, int64_t p0,
                                   const __m512 *d, __m128 *acc, const int M, const int VROW, const int SPAN,
                                   const int T) {
    __m512 even[3], odd[3];
    for (int h = 0; h < 3; h++)
        if ((M >> h) & 1) {
            even[h] = _mm512_setzero_ps();
            odd[h] = _mm512_setzero_ps();
        }
    for (int t = 0; t < T; t++) {
        const float *src = buf + t * image + c->offset + p0;
#pragma clang loop unroll(full)
        for (int j = 0; j < SPAN + 2 * VROW; j++) {
            int used = 0;
            for (int h = 0; h < 3; h++) used |= column_reads(M, VROW, SPAN, h, j);
            if (!used) continue;
            __m512 x = _mm512_loadu_ps(src + 16 * j);
            for (int h = 0; h < 3; h++) {
                int k = j - h * VROW;
                if (!column_reads(M, VROW, SPAN, h, j)) continue;
                if (k % 2 == 0) even[h] = _mm512_fmadd_ps(d[SPAN * t + k], x, even[h]);
                else odd[h] = _mm512_fmadd_ps(d[SPAN * t + k], x, odd[h]);
            }
        }
    }
    for (int h = 0; h < 3; h++)
        if ((M >> h) & 1) acc[c->slot[h]] = _mm_add_ps(acc[c->slot[h]], fold4(_mm512_add_ps(even[h], odd[h])));
}

/// One unit of 16 vectors from p0 of one image for the columns of one row and group
/// (b: that row's and group's kind starts), the row's dy block in registers.
#define DS_SAMPLED_COLUMNS(VROW)                                                                                    \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_columns_##VROW(const int64_t *b, const column_taps *cols, const float *buf,                 \
                                       const float *dr, int64_t p0, __m128 *acc) {                                  \
        __m512 d[16];                                                                                               \
        for (int k = 0; k < 16; k++) d[k] = _mm512_loadu_ps(dr + p0 + 16 * k);                                      \
        for (int64_t i = b[0]; i < b[1]; i++) column_gradient(cols + i, buf, 0, p0, d, acc, 1, VROW, 16, 1);         \
        for (int64_t i = b[1]; i < b[2]; i++) column_gradient(cols + i, buf, 0, p0, d, acc, 3, VROW, 16, 1);         \
        for (int64_t i = b[2]; i < b[3]; i++) column_gradient(cols + i, buf, 0, p0, d, acc, 5, VROW, 16, 1);         \
        for (int64_t i = b[3]; i < b[4]; i++) column_gradient(cols + i, buf, 0, p0, d, acc, 7, VROW, 16, 1);         \
    }
DS_SAMPLED_COLUMNS(1)
DS_SAMPLED_COLUMNS(2)
DS_SAMPLED_COLUMNS(4)

/// One unit of T pairs (images `first[t]` and, when `two[t]`, the next) of rows v0 …
/// v0 + 7 for the columns of one row and group, the row's dy rows in registers.
#define DS_SAMPLED_PAIRS(T)                                                                                         \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_pairs_##T(const int64_t *b, const column_taps *cols, const float *buf, int64_t image,      \
                                  const float *dr, const int64_t *first, const int *two, int64_t plane,            \
                                  int64_t v0, __m128 *acc) {                                                        \
        __m512 d[8 * T];                                                                                            \
        for (int t = 0; t < T; t++)                                                                                 \
            for (int k = 0; k < 8; k++) {                                                                           \
                const float *row = dr + first[t] * plane + 8 * (v0 + k);                                            \
                d[8 * t + k] = _mm512_maskz_loadu_ps(0x00FF, row);                                                  \
                if (two[t]) d[8 * t + k] = _mm512_mask_loadu_ps(d[8 * t + k], 0xFF00, row + plane - 8);            \
            }                                                                                                       \
        int64_t p0 = 16 * v0;                                                                                       \
        for (int64_t i = b[0]; i < b[1]; i++) column_gradient(cols + i, buf, image, p0, d, acc, 1, 1, 8, T);         \
        for (int64_t i = b[1]; i < b[2]; i++) column_gradient(cols + i, buf, image, p0, d, acc, 3, 1, 8, T);         \
        for (int64_t i = b[2]; i < b[3]; i++) column_gradient(cols + i, buf, image, p0, d, acc, 5, 1, 8, T);         \
        for (int64_t i = b[3]; i < b[4]; i++) column_gradient(cols + i, buf, image, p0, d, acc, 7, 1, 8, T);         \
    }
DS_SAMPLED_PAIRS(2)
DS_SAMPLED_PAIRS(1)

/// The blocked gradient on paired planes: two pairs (four images) at a time — the last
/// ones as one pair, or one image alone — by columns, channel groups as column_group
/// picks them for copies of two pairs.
__attribute__((target("avx512f")))
static void sampled_pairs_blocked(const int64_t *lo, const int64_t *hi, const int64_t *base, const int32_t *channel,
                                  const uint8_t *tap, int64_t count, int64_t rows, int64_t c0, int64_t channels,
                                  const float *x, const float *dy, int64_t batch, int64_t images, int64_t height,
                                  __m128 *acc) {
    int64_t plane = height * 8, channel_stride = batch * plane, padded = (height + 2) * 16;
    int64_t image = 3 * channels * padded;
    int64_t group = column_group(2 * 3 * (128 + 32) * (int64_t)sizeof(float), count, rows, channels);
    int64_t groups = (channels + group - 1) / group;
    int64_t *cb = malloc((size_t)(rows * groups * COLUMN_KINDS + 1) * sizeof(int64_t));
    uint8_t *used = calloc((size_t)(3 * channels), 1);
    column_taps *cols = plan_columns(lo, hi, base, channel, tap, rows, c0, channels, group, groups, padded, 16, cb,
                                     used, 0);
    float *buf = aligned_alloc(64, (size_t)(2 * image) * sizeof(float));
    for (int64_t n0 = 0; n0 < images; n0 += 4) {
        int64_t left = images - n0, first[2] = {n0, n0 + 2};
        int pairs = left >= 3 ? 2 : 1, two[2] = {left >= 2, left >= 4};
        for (int t = 0; t < pairs; t++)
            paired_copies(x + c0 * channel_stride + first[t] * plane,
                          two[t] ? x + c0 * channel_stride + (first[t] + 1) * plane : NULL, channels, channel_stride,
                          height, used, buf + t * image);
        for (int64_t v0 = 0; v0 < height; v0 += 8)
            for (int64_t q = 0; q < groups; q++)
                for (int64_t r = 0; r < rows; r++) {
                    const int64_t *b = cb + (r * groups + q) * COLUMN_KINDS;
                    if (b[0] == b[COLUMN_KINDS]) continue;
                    prefetch_block(dy + (r + 1 < rows ? r + 1 : r) * channel_stride + n0 * plane + 8 * v0);
                    (pairs == 2 ? sampled_pairs_2 : sampled_pairs_1)(b, cols, buf, image, dy + r * channel_stride,
                                                                     first, two, plane, v0, acc);
                }
    }
    free(buf);
    free(cols);
    free(used);
    free(cb);
}

typedef void (*sampled_unit_fn)(const int64_t *, int64_t, int64_t, const float *, int64_t, const float *, int64_t,
                                int64_t, __m128 *);

static sampled_unit_fn sampled_unit_kernel(int t, int bv) {
    if (t == 4) return sampled_unit_4_4;
    return bv == 16 ? sampled_unit_1_16 : bv == 8 ? sampled_unit_1_8 : bv == 4 ? sampled_unit_1_4
         : bv == 2 ? sampled_unit_1_2 : sampled_unit_1_1;
}

/// Whether every row's entries run in ascending channel order (the groups are then
/// contiguous runs of each row).
static int channels_ascending(const int64_t *start, const int32_t *channel, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t e = start[r] + 1; e < start[r + 1]; e++)
            if (channel[e] < channel[e - 1]) return 0;
    return 1;
}

/// Σ over T images of d[t] · the masked load of image t's plane at src (two chains).
__attribute__((target("avx512f"), always_inline))
static inline __m512 images_dot(const __m512 *d, const int T, const float *src, __mmask16 m, int64_t plane) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int t = 0; t + 1 < T; t += 2) {
        a0 = _mm512_fmadd_ps(d[t], _mm512_maskz_loadu_ps(m, src + t * plane), a0);
        a1 = _mm512_fmadd_ps(d[t + 1], _mm512_maskz_loadu_ps(m, src + (t + 1) * plane), a1);
    }
    if (T % 2) a0 = _mm512_fmadd_ps(d[T - 1], _mm512_maskz_loadu_ps(m, src + (T - 1) * plane), a0);
    return _mm512_add_ps(a0, a1);
}

/// The blocked weight gradient's unit on planes of one vector: T images side by side,
/// their gradient planes in registers (lanes past the plane zero), each entry's taps
/// loaded under its one mask (the same for every image), and the unit's sum of each
/// entry added to its running sum, four entries' lanes reduced at a time (sums4). A
/// 16-lane sum per entry kept in memory instead is 64 bytes read and written per entry
/// and unit, from a table too large for the caches at these entry counts (measured
/// 18–33% slower).
#define IMAGES_DOT(k) images_dot(d, KT, xn + offset[k], masks[tap[k]], plane)
#define DS_SAMPLED_IMAGES_UNIT(T)                                                                                   \
    __attribute__((target("avx512f")))                                                                              \
    static void sampled_images_unit_##T(const int64_t *offset, const uint8_t *tap, int64_t e0, int64_t e1,          \
                                        const float *xn, const float *dr, int64_t plane, const __mmask16 *masks,   \
                                        float *sum) {                                                               \
        __mmask16 lanes = plane_lanes(0, plane);                                                                    \
        enum { KT = T };                                                                                            \
        __m512 d[T];                                                                                                \
        for (int t = 0; t < T; t++) d[t] = _mm512_maskz_loadu_ps(lanes, dr + t * plane);                           \
        DS_ADD_SUMS(e0, e1, sum, IMAGES_DOT)                                                                        \
    }
DS_SAMPLED_IMAGES_UNIT(16)
DS_SAMPLED_IMAGES_UNIT(1)

/// The blocked weight gradient on planes of one vector (`sampled_images_unit`): no
/// copies, units of 16 images, channels [c0, c1) in groups of 64 (their planes stay in
/// L2; smaller groups leave a row too few entries per group to pay for its dy loads). `lo`, `hi`, `base`, `bounds` and `offset` as in the general case below, the
/// offsets from image 0 of channel 0.
__attribute__((target("avx512f")))
static void sampled_images_blocked(const int64_t *lo, const int64_t *hi, const int64_t *base, const int64_t *bounds,
                                   int64_t groups, const int64_t *offset, const uint8_t *taps, int64_t count,
                                   int64_t rows, const float *x, const float *dy, int64_t batch, int64_t images,
                                   int64_t height, int64_t width, float *g) {
    int64_t plane = height * width, channel_stride = batch * plane;
    float *sum = calloc((size_t)count, sizeof(float));
    __mmask16 *masks = vector_masks(height, width);
    for (int64_t n0 = 0; n0 < images;) {
        int t = images - n0 >= 16 ? 16 : 1;
        for (int64_t q = 0; q < groups; q++)
            for (int64_t r = 0; r < rows; r++) {
                const int64_t *b = bounds + r * (groups + 1);
                if (b[q] == b[q + 1]) continue;
                (t == 16 ? sampled_images_unit_16 : sampled_images_unit_1)(offset, taps, b[q], b[q + 1], x + n0 * plane,
                                                                           dy + r * channel_stride + n0 * plane, plane,
                                                                           masks, sum);
            }
        n0 += t;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = lo[r]; e < hi[r]; e++) g[e] = sum[base[r] + e - lo[r]];
    free(masks);
    free(sum);
}

/// Σ_p d[p] · b's position p + 4·dh + dw over the positions p of a 4×4 plane whose tap
/// (dh, dw) source lies in it, in two chains.
__attribute__((target("avx512f"), always_inline))
static inline __m512 lanes_dot(const __m512 *d, const float *b, const int dh, const int dw) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int n = 0;
    for (int h = 0; h < 4; h++)
        for (int v = 0; v < 4; v++) {
            if (!lanes_reaches(h, v, dh, dw)) continue;
            int p = 4 * h + v;
            __m512 x = _mm512_load_ps(b + 16 * (p + 4 * dh + dw));
            if (n++ % 2 == 0) a0 = _mm512_fmadd_ps(d[p], x, a0);
            else a1 = _mm512_fmadd_ps(d[p], x, a1);
        }
    return _mm512_add_ps(a0, a1);
}

/// Tap T's entries of a row four at a time: their sums over the block, reduced (sums4)
/// and added to `sum` in the order's slots.
#define LANES_DOT_AT(k) lanes_dot(d, xt + o->off[k], KDH, KDW)
#define LANES_DOT(T)                                                                                                \
    {                                                                                                               \
        enum { KDH = T / 3 - 1, KDW = T % 3 - 1 };                                                                  \
        DS_ADD_SUMS(b[T], b[T + 1], sum, LANES_DOT_AT)                                                              \
    }

/// Every row's sums over one lane block of m images (xt: lanes_block; dy: image 0 of the
/// block, row 0, rows `out_stride` apart), each row's output gradients transposed into
/// registers.
__attribute__((target("avx512f")))
static void lanes_sampled(const lanes_order *o, int64_t rows, const float *xt, const float *dy, int64_t out_stride,
                          int m, float *sum) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *b = o->tb + 9 * r;
        if (b[0] == b[9]) continue;
        __m512 d[16];
        lanes_load(dy + r * out_stride, m, d);
        LANES_DOT(0) LANES_DOT(1) LANES_DOT(2) LANES_DOT(3) LANES_DOT(4) LANES_DOT(5) LANES_DOT(6) LANES_DOT(7)
        LANES_DOT(8)
    }
}

/// The blocked weight gradient of 4×4 planes, entries [lo[r], hi[r]) of channels
/// [c0, c0 + channels): blocks of 16 images in order, each entry's sum over a block
/// added to its running sum.
__attribute__((target("avx512f")))
static void lanes_gradient(const int64_t *lo, const int64_t *hi, const int32_t *channel, const uint8_t *tap,
                           int64_t rows, int64_t c0, int64_t channels, const float *x, const float *dy, int64_t batch,
                           int64_t images, float *g) {
    int64_t channel_stride = batch * 16;
    lanes_order o = lanes_order_make(lo, hi, channel, tap, rows, c0);
    float *xt = aligned_alloc(64, (size_t)channels * 256 * sizeof(float));
    float *sum = calloc((size_t)(o.count > 0 ? o.count : 1), sizeof(float));
    for (int64_t n = 0; n < images; n += 16) {
        int m = images - n >= 16 ? 16 : (int)(images - n);
        lanes_block(x + c0 * channel_stride + 16 * n, channels, channel_stride, m, xt);
        lanes_sampled(&o, rows, xt, dy + 16 * n, channel_stride, m, sum);
    }
    for (int64_t k = 0; k < o.count; k++) g[o.slot[k]] = sum[k];
    free(sum);
    free(xt);
    lanes_order_free(&o);
}

/// The blocked weight gradient for the entries whose input channel lies in [c0, c1),
/// of every row (each row's entries ascending in channel: those are one run of it).
/// Only these channels are copied, so threads that split the channels copy each one
/// once per image.
__attribute__((target("avx512f")))
void ds_conv3x3_sparse_sampled_blocked(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                       int64_t rows, int64_t c0, int64_t c1, const float *x, const float *dy,
                                       int64_t batch, int64_t n0, int64_t n1, int64_t height, int64_t width, float *g) {
    int64_t plane = height * width, channel_stride = batch * plane, images = n1 - n0;
    x += n0 * plane;
    dy += n0 * plane;
    int64_t cw = width, vectors = plane / 16, padded = (height + 2) * cw, channels = c1 - c0;
    if (channels <= 0) return;
    int64_t image = 3 * channels * padded, one_vector = plane <= 16;
    // Units of 16 vectors where the plane has them, else of four images (planes of four
    // vectors) or 16 (planes of one, read in place).
    int bv = vectors % 16 == 0 ? 16 : vectors % 8 == 0 ? 8 : vectors % 4 == 0 ? 4 : vectors % 2 == 0 ? 2 : 1;
    int t_images = bv == 4 && vectors == 4 ? 4 : 1;
    int64_t per_channel = (int64_t)t_images * 3 * (16 * bv + 2 * cw) * (int64_t)sizeof(float);
    if (one_vector) per_channel = (24 * 1024) / 64;   // groups of 64 channels (measured faster than ~24 KB groups)
    int64_t group = (24 * 1024) / per_channel;
    if (group < 1) group = 1;
    int64_t groups = (channels + group - 1) / group;
    // Row r's entries of the range are [lo[r], hi[r]); they sit at slots base[r] … in
    // `offset` and `acc`, group q of the row at slots [b[q], b[q + 1]), b = bounds + r·(groups + 1).
    int64_t *lo = malloc((size_t)(3 * rows + 1) * sizeof(int64_t)), *hi = lo + rows, *base = hi + rows;
    int64_t count = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t e = start[r], end = start[r + 1];
        while (e < end && channel[e] < c0) e++;
        lo[r] = e;
        while (e < end && channel[e] < c1) e++;
        hi[r] = e;
        base[r] = count;
        count += hi[r] - lo[r];
    }
    if (count == 0) { free(lo); return; }
    if (height == 4 && width == 4) {
        lanes_gradient(lo, hi, channel, tap, rows, c0, channels, x, dy, batch, images, g);
        free(lo);
        return;
    }
    int64_t *offset = malloc((size_t)count * sizeof(int64_t));
    int64_t *bounds = malloc((size_t)(rows * (groups + 1)) * sizeof(int64_t));
    for (int64_t r = 0; r < rows; r++) {
        group_bounds(channel, lo[r], hi[r], c0, group, groups, base[r] - lo[r], bounds + r * (groups + 1));
        for (int64_t e = lo[r]; e < hi[r]; e++) {
            int dh = tap[e] / 3 - 1, sh = tap[e] % 3;
            offset[base[r] + e - lo[r]] = one_vector ? channel[e] * channel_stride + tap_shift(tap[e], width)
                                                     : (sh * channels + channel[e] - c0) * padded + (1 + dh) * cw;
        }
    }
    if (one_vector) {
        uint8_t *taps = malloc((size_t)count);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t e = lo[r]; e < hi[r]; e++) taps[base[r] + e - lo[r]] = tap[e];
        sampled_images_blocked(lo, hi, base, bounds, groups, offset, taps, count, rows, x, dy, batch, images, height,
                               width, g);
        free(taps);
        free(bounds);
        free(offset);
        free(lo);
        return;
    }
    __m128 *acc = aligned_alloc(64, (size_t)((count + 3) / 4 * 4) * sizeof(__m128));
    for (int64_t k = 0; k < count; k++) acc[k] = _mm_setzero_ps();
    float *buf = NULL;
    __mmask16 *masks = NULL;
    if (pairs_fit(height, width)) {   // 8 wide: by columns over two images side by side
        sampled_pairs_blocked(lo, hi, base, channel, tap, count, rows, c0, channels, x, dy, batch, images, height, acc);
    } else if (bv == 16 && columns_fit(height, width)) {   // rows of whole vectors: by columns (same sums)
        buf = aligned_alloc(64, (size_t)image * sizeof(float));
        masks = copy_masks(height, width, cw);
        int64_t cgroup = column_group(per_channel, count, rows, channels), cgroups = (channels + cgroup - 1) / cgroup;
        int64_t *cb = malloc((size_t)(rows * cgroups * COLUMN_KINDS + 1) * sizeof(int64_t));
        uint8_t *used = calloc((size_t)(3 * channels), 1);
        column_taps *cols = plan_columns(lo, hi, base, channel, tap, rows, c0, channels, cgroup, cgroups, padded,
                                         cw, cb, used, 0);
        for (int64_t n = 0; n < images; n++) {
            shifted_copies(x + c0 * channel_stride + n * plane, channels, channel_stride, height, width, cw, height,
                           masks, used, buf);
            for (int64_t v0 = 0; v0 < vectors; v0 += 16)
                for (int64_t q = 0; q < cgroups; q++)
                    for (int64_t r = 0; r < rows; r++) {
                        const int64_t *b = cb + (r * cgroups + q) * COLUMN_KINDS;
                        if (b[0] == b[COLUMN_KINDS]) continue;
                        const float *dr = dy + r * channel_stride + n * plane;
                        prefetch_block(dr + (r + 1 < rows ? channel_stride : 0) + 16 * v0);
                        switch (cw / 16) {
                        case 1: sampled_columns_1(b, cols, buf, dr, 16 * v0, acc); break;
                        case 2: sampled_columns_2(b, cols, buf, dr, 16 * v0, acc); break;
                        default: sampled_columns_4(b, cols, buf, dr, 16 * v0, acc);
                        }
                    }
        }
        free(cols);
        free(used);
        free(cb);
    } else {
        buf = aligned_alloc(64, (size_t)(t_images * image) * sizeof(float));
        masks = copy_masks(height, width, cw);
        for (int64_t n0 = 0; n0 < images;) {
            int t = images - n0 >= t_images ? t_images : 1;   // the last images one at a time
            for (int i = 0; i < t; i++)
                shifted_copies(x + c0 * channel_stride + (n0 + i) * plane, channels, channel_stride, height, width,
                               cw, height, masks, NULL, buf + i * image);
            sampled_unit_fn unit = sampled_unit_kernel(t, bv);
            for (int64_t v0 = 0; v0 < vectors; v0 += bv)
                for (int64_t q = 0; q < groups; q++)
                    for (int64_t r = 0; r < rows; r++) {
                        const int64_t *b = bounds + r * (groups + 1);
                        if (b[q] == b[q + 1]) continue;
                        unit(offset, b[q], b[q + 1], buf, image, dy + r * channel_stride + n0 * plane, plane, 16 * v0,
                             acc);
                    }
            n0 += t;
        }
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = lo[r]; e < hi[r]; e++) g[e] = hsum4(acc[base[r] + e - lo[r]]);
    free(masks);
    free(buf);
    free(acc);
    free(bounds);
    free(offset);
    free(lo);
}

/// Images outermost (an image's input planes stay in L2 across the rows), each row's
/// entries four at a time over the image's blocks: edge blocks with per-vector masks,
/// interior blocks (rows 1 … H−2) with the tap's repeating column masks. Each entry
/// keeps two 16-lane sums, added and reduced once at the end; the order of the sums
/// does not depend on the thread split (rows).
__attribute__((target("avx512f")))
void ds_conv3x3_sparse_sampled(const int64_t *start, const int32_t *channel, const uint8_t *tap, int64_t r0,
                               int64_t r1, const float *x, const float *dy, int64_t batch, int64_t n0, int64_t n1,
                               int64_t height, int64_t width, float *g) {
    int64_t plane = height * width, channel_stride = batch * plane, images = n1 - n0;
    x += n0 * plane;
    dy += n0 * plane;
    int64_t first = start[r0], count = start[r1] - first;
    if (count <= 0) return;
    int64_t *offset = malloc((size_t)count * sizeof(int64_t));
    __m512 *acc = aligned_alloc(64, (size_t)(2 * count) * sizeof(__m512));
    for (int64_t e = 0; e < count; e++) {
        offset[e] = channel[first + e] * channel_stride + tap_shift(tap[first + e], width);
        acc[2 * e] = acc[2 * e + 1] = _mm512_setzero_ps();
    }
    const uint8_t *taps = tap + first;
    __mmask16 *masks = vector_masks(height, width);
    int64_t blocks = (plane + 63) / 64, per_row = width / 16;
    // Interior blocks: their rows are all in 1 … H−2 (planes 16 to 64 wide).
    int64_t lo = 0, hi = 0, period = 0;
    if (width % 16 == 0 && width <= 64 && height >= 3) {
        int64_t rows_per_block = 64 / width;
        lo = 1;
        hi = (height - 1) / rows_per_block;
        period = per_row;
        if (hi < lo) hi = lo;
    }
    if (blocks == 1) {
        // One block per plane: rows outermost, every image inside (sampled_one_block).
        for (int64_t r = r0; r < r1; r++) {
            const float *dr = dy + r * channel_stride;
            for (int64_t e = start[r] - first, end = start[r + 1] - first; e < end;) {
                if (end - e >= 4) {
                    sampled_one_block_4(offset, taps, e, x, dr, images, plane, masks, acc + 2 * e);
                    e += 4;
                } else {
                    sampled_one_block_1(offset, taps, e, x, dr, images, plane, masks, acc + 2 * e);
                    e += 1;
                }
            }
        }
    } else {
        // Tiles of images whose input planes fit in about 256 KB (they stay in L2 across
        // the rows); within a tile each entry's sums stay in registers over its images.
        int32_t channels = 1;
        for (int64_t e = 0; e < count; e++) channels = channel[first + e] >= channels ? channel[first + e] + 1 : channels;
        int64_t tile = (256 * 1024) / (channels * plane * (int64_t)sizeof(float));
        if (tile < 1) tile = 1;
        for (int64_t t0 = 0; t0 < images; t0 += tile) {
            int64_t t1 = t0 + tile < images ? t0 + tile : images;
            for (int64_t r = r0; r < r1; r++) {
                const float *dr = dy + r * channel_stride;
                int64_t e = start[r] - first, end = start[r + 1] - first;
                while (e < end) {
                    int width_e = end - e >= 4 ? 4 : 1;
                    sampled_kernel(width_e, (int)period)(offset, taps, e, x, dr, t0, t1, lo, hi, blocks, masks, per_row,
                                                         plane, acc + 2 * e);
                    e += width_e;
                }
            }
        }
    }
    for (int64_t e = 0; e < count; e++) g[first + e] = hsum(_mm512_add_ps(acc[2 * e], acc[2 * e + 1]));
    free(masks);
    free(offset);
    free(acc);
}

#else
int ds_conv3x3_plan_fits(int64_t height, int64_t width) { (void)height; (void)width; return 0; }
ds_conv3x3_plan *ds_conv3x3_plan_make(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                      const int32_t *source, int64_t rows, int64_t height, int64_t width) {
    (void)start; (void)channel; (void)tap; (void)source; (void)rows; (void)height; (void)width;
    return NULL;
}
void ds_conv3x3_plan_free(ds_conv3x3_plan *plan) { (void)plan; }
void ds_conv3x3_plan_weights(ds_conv3x3_plan *plan, const float *values) { (void)plan; (void)values; }
void ds_conv3x3_sparse_planned(const ds_conv3x3_plan *plan, const float *bias, const float *x, float *y,
                               int64_t batch, int64_t n0, int64_t n1) {
    (void)plan; (void)bias; (void)x; (void)y; (void)batch; (void)n0; (void)n1;
}
int ds_conv3x3_sparse_blocked_supported(int64_t height, int64_t width) { (void)height; (void)width; return 0; }
void ds_conv3x3_sparse_sampled_blocked(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                       int64_t rows, int64_t c0, int64_t c1, const float *x, const float *dy,
                                       int64_t batch, int64_t n0, int64_t n1, int64_t height, int64_t width, float *g) {
    (void)start; (void)channel; (void)tap; (void)rows; (void)c0; (void)c1; (void)x; (void)dy; (void)batch;
    (void)n0; (void)n1; (void)height; (void)width; (void)g;
}
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1) {
    (void)start; (void)channel; (void)tap; (void)values; (void)bias; (void)rows; (void)x; (void)y;
    (void)batch; (void)height; (void)width; (void)n0; (void)n1;
}
void ds_conv3x3_sparse_sampled(const int64_t *start, const int32_t *channel, const uint8_t *tap, int64_t r0,
                               int64_t r1, const float *x, const float *dy, int64_t batch, int64_t n0, int64_t n1,
                               int64_t height, int64_t width, float *g) {
    (void)start; (void)channel; (void)tap; (void)r0; (void)r1; (void)x; (void)dy; (void)batch; (void)n0; (void)n1;
    (void)height; (void)width; (void)g;
}
#endif
