#include "CSparseKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "Sums.h"

int ds_sparse_linear_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// Lanes below `n` of a 16-lane vector (all of them for n ≥ 16).
static inline __mmask16 lanes_below(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/// What happens to a product's results as they are stored (ds_sparse_rows_product).
typedef struct {
    int rectify;
    const float *mask;
    int64_t ldMask;
} epilogue_t;

/// v through the epilogue: max(v, 0) with NaN kept (v unless v ≤ 0) when rectifying;
/// 0 where the mask row r at column c is not above 0.
__attribute__((target("avx512f"), always_inline))
static inline __m512 finish(__m512 v, const epilogue_t *out, int64_t r, int64_t c, __mmask16 lanes) {
    __m512 zero = _mm512_setzero_ps();
    if (out->rectify) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_NLE_UQ), v);
    if (out->mask) {
        __m512 m = _mm512_maskz_loadu_ps(lanes, out->mask + r * out->ldMask + c);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ), v);
    }
    return v;
}

/// acc += Σ_{e ∈ [e0, e1)} w[position[e]] · x[index[e]] over nv vectors (the terms one
/// row of a pair has beyond the other's).
__attribute__((target("avx512f"), always_inline))
static inline void row_terms(__m512 *acc, int64_t e0, int64_t e1, const int32_t *index, const int32_t *position,
                             const float *w, const float *x, int64_t ldX, const int nv, __mmask16 head,
                             __mmask16 tail) {
    for (int64_t e = e0; e < e1; e++) {
        __m512 v = _mm512_set1_ps(position ? w[position[e]] : w[e]);
        const float *p = x + (int64_t)index[e] * ldX;
#pragma clang loop unroll(full)
        for (int j = 0; j < 8; j++) {
            if (j >= nv) break;
            __mmask16 m = (j == 0 ? head : (__mmask16)0xFFFF) & (j == nv - 1 ? tail : (__mmask16)0xFFFF);
            acc[j] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, p + 16 * j), acc[j]);
        }
    }
}

/// Rows `a` and `b` (b < 0: none) over the `nv` vectors from column c of a block whose
/// last vector is masked by `tail`:
///   y[r][c ..< c + 16 nv] = bias[r] + Σ_e w[position[e]] · x[index[e]][c ..< c + 16 nv]
/// (w[e] when `position` is NULL).
/// Two rows share each pass so the loads of one hide behind the other's FMAs.
__attribute__((target("avx512f"), always_inline))
static inline void rows_block(const int32_t *start, const int32_t *index, const int32_t *position, const float *w,
                              const float *bias, int64_t a, int64_t b, const float *x, int64_t ldX, int64_t c,
                              const int nv, __mmask16 head, __mmask16 tail, float *y, int64_t ldY,
                              const epilogue_t *out) {
    __m512 ya[8], yb[8];
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) { ya[j] = _mm512_setzero_ps(); yb[j] = _mm512_setzero_ps(); }
    int64_t ea = start[a], enda = start[a + 1];
    int64_t eb = b >= 0 ? start[b] : 0, endb = b >= 0 ? start[b + 1] : 0;
    const float *xc = x + c;
    while (ea < enda && eb < endb) {
        __m512 va = _mm512_set1_ps(position ? w[position[ea]] : w[ea]);
        __m512 vb = _mm512_set1_ps(position ? w[position[eb]] : w[eb]);
        const float *pa = xc + (int64_t)index[ea] * ldX, *pb = xc + (int64_t)index[eb] * ldX;
#pragma clang loop unroll(full)
        for (int j = 0; j < 8; j++) {
            if (j >= nv) break;
            __mmask16 m = (j == 0 ? head : (__mmask16)0xFFFF) & (j == nv - 1 ? tail : (__mmask16)0xFFFF);
            ya[j] = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, pa + 16 * j), ya[j]);
            yb[j] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, pb + 16 * j), yb[j]);
        }
        ea++; eb++;
    }
    row_terms(ya, ea, enda, index, position, w, xc, ldX, nv, head, tail);
    row_terms(yb, eb, endb, index, position, w, xc, ldX, nv, head, tail);
    __m512 ba = _mm512_set1_ps(bias ? bias[a] : 0.0f);
    __m512 bb = _mm512_set1_ps(bias && b >= 0 ? bias[b] : 0.0f);
#pragma clang loop unroll(full)
    for (int j = 0; j < 8; j++) {
        if (j >= nv) break;
        __mmask16 m = (j == 0 ? head : (__mmask16)0xFFFF) & (j == nv - 1 ? tail : (__mmask16)0xFFFF);
        _mm512_mask_storeu_ps(y + a * ldY + c + 16 * j, m, finish(_mm512_add_ps(ya[j], ba), out, a, c + 16 * j, m));
        if (b >= 0)
            _mm512_mask_storeu_ps(y + b * ldY + c + 16 * j, m, finish(_mm512_add_ps(yb[j], bb), out, b, c + 16 * j, m));
    }
}

#define DS_ROWS_BLOCK(NV)                                                                                              \
    case NV:                                                                                                           \
        for (int64_t r = r0; r < r1; r += 2)                                                                           \
            rows_block(start, index, position, w, bias, r, r + 1 < r1 ? r + 1 : -1, x, ldX, c, NV, head, tail, y,      \
                       ldY, &out);                                                                                     \
        break;

__attribute__((target("avx512f")))
void ds_sparse_rows_product(const int32_t *start, const int32_t *index, const int32_t *position, const float *w,
                            const float *bias, int64_t r0, int64_t r1, const float *x, int64_t ldX, int64_t c0,
                            int64_t c1, float *y, int64_t ldY, int rectify, const float *mask, int64_t ldMask) {
    const epilogue_t out = {rectify, mask, ldMask};
    // Blocks start on 64-byte boundaries of x's rows when all rows share one alignment
    // (ldX a multiple of 16): the first vector is then masked below c0 instead of every
    // load straddling two cache lines. Each output is still summed lane by lane over the
    // row's entries in order, so the result does not depend on the alignment.
    int64_t shift = ldX % 16 == 0 ? (int64_t)(((uintptr_t)(x + c0) / sizeof(float)) % 16) : 0;
    for (int64_t c = c0 - shift; c < c1; c += 128) {
        int64_t width = c1 - c < 128 ? c1 - c : 128;
        int nv = (int)((width + 15) / 16);
        __mmask16 head = c < c0 ? (__mmask16)~lanes_below(c0 - c) : (__mmask16)0xFFFF;
        __mmask16 tail = lanes_below(width - 16 * (nv - 1));
        switch (nv) {
            DS_ROWS_BLOCK(1) DS_ROWS_BLOCK(2) DS_ROWS_BLOCK(3) DS_ROWS_BLOCK(4)
            DS_ROWS_BLOCK(5) DS_ROWS_BLOCK(6) DS_ROWS_BLOCK(7) DS_ROWS_BLOCK(8)
            default: break;
        }
    }
}

/// The most vectors a block of the sampled product spans: 128 columns starting
/// anywhere in a 64-byte line.
#define DS_MAX_VECTORS 9

/// g[e ..< e + 8] += the dot products of d (nv vectors, held in registers) with the
/// x rows of entries e ..< e + 8 (each two accumulator chains would be too few: eight
/// entries keep eight chains in flight). The first and last vectors are masked by
/// `head` and `tail`.
__attribute__((target("avx512f"), always_inline))
static inline void sampled_block(const __m512 *d, const int nv, __mmask16 head, __mmask16 tail,
                                 const int32_t *index, int64_t e, int count, const float *x, int64_t ldX, float *g) {
    __m512 s[8];
    const float *p[8];
#pragma clang loop unroll(full)
    for (int k = 0; k < 8; k++) { s[k] = _mm512_setzero_ps(); p[k] = x + (int64_t)index[e + (k < count ? k : 0)] * ldX; }
#pragma clang loop unroll(full)
    for (int j = 0; j < DS_MAX_VECTORS; j++) {
        if (j >= nv) break;
        __mmask16 m = (j == 0 ? head : (__mmask16)0xFFFF) & (j == nv - 1 ? tail : (__mmask16)0xFFFF);
#pragma clang loop unroll(full)
        for (int k = 0; k < 8; k++) s[k] = _mm512_fmadd_ps(d[j], _mm512_maskz_loadu_ps(m, p[k] + 16 * j), s[k]);
    }
    __m128 lo = sums4(s[0], s[1], s[2], s[3]), hi = sums4(s[4], s[5], s[6], s[7]);
    __m512 both = _mm512_insertf32x4(_mm512_castps128_ps512(lo), hi, 1);
    __mmask16 keep = lanes_below(count);
    _mm512_mask_storeu_ps(g + e, keep, _mm512_add_ps(_mm512_maskz_loadu_ps(keep, g + e), both));
}

#define DS_SAMPLED_ROWS(NV)                                                                                            \
    case NV:                                                                                                           \
        for (int64_t r = r0; r < r1; r++) {                                                                            \
            __m512 d[NV];                                                                                              \
            for (int j = 0; j < NV; j++)                                                                               \
                d[j] = _mm512_maskz_loadu_ps((j == 0 ? head : (__mmask16)0xFFFF) & (j == NV - 1 ? tail : (__mmask16)0xFFFF), \
                                             dy + r * ldDY + c - shift + 16 * j);                                     \
            for (int64_t e = start[r]; e < start[r + 1]; e += 8) {                                                     \
                int64_t left = start[r + 1] - e;                                                                       \
                sampled_block(d, NV, head, tail, index, e, left < 8 ? (int)left : 8, x + c - shift, ldX, g);           \
            }                                                                                                          \
        }                                                                                                              \
        break;

__attribute__((target("avx512f")))
void ds_sparse_rows_sampled(const int32_t *start, const int32_t *index, int64_t r0, int64_t r1, const float *dy,
                            int64_t ldDY, const float *x, int64_t ldX, int64_t columns, float *g) {
    // When all of x's rows share one alignment (ldX a multiple of 16), a block's loads
    // start on the 64-byte line at or below it (up to nine vectors, the first masked
    // below the block), so no load straddles two lines. The sums are the same to the
    // bit wherever x lies: columns go in blocks of 128 from column 0 either way; a lane
    // adds the block's columns that are equal modulo 16, in order (the masked lanes add
    // zeros to sums that start at +0); and sums4 adds the 16 lanes in pairs 8, 4, 2 and
    // 1 lanes apart, the same pairs after the lanes are turned by `shift`.
    int64_t shift = ldX % 16 == 0 ? (int64_t)(((uintptr_t)x / sizeof(float)) % 16) : 0;
    __mmask16 head = (__mmask16)~lanes_below(shift);
    for (int64_t c = 0; c < columns; c += 128) {
        int64_t width = columns - c < 128 ? columns - c : 128;
        int nv = (int)((width + shift + 15) / 16);
        __mmask16 tail = lanes_below(width + shift - 16 * (nv - 1));
        switch (nv) {
            DS_SAMPLED_ROWS(1) DS_SAMPLED_ROWS(2) DS_SAMPLED_ROWS(3) DS_SAMPLED_ROWS(4)
            DS_SAMPLED_ROWS(5) DS_SAMPLED_ROWS(6) DS_SAMPLED_ROWS(7) DS_SAMPLED_ROWS(8) DS_SAMPLED_ROWS(9)
            default: break;
        }
    }
}

#else

int ds_sparse_linear_supported(void) { return 0; }

void ds_sparse_rows_product(const int32_t *start, const int32_t *index, const int32_t *position, const float *w,
                            const float *bias, int64_t r0, int64_t r1, const float *x, int64_t ldX, int64_t c0,
                            int64_t c1, float *y, int64_t ldY, int rectify, const float *mask, int64_t ldMask) {
    (void)start; (void)index; (void)position; (void)w; (void)bias; (void)r0; (void)r1; (void)x; (void)ldX;
    (void)c0; (void)c1; (void)y; (void)ldY; (void)rectify; (void)mask; (void)ldMask;
}

void ds_sparse_rows_sampled(const int32_t *start, const int32_t *index, int64_t r0, int64_t r1, const float *dy,
                            int64_t ldDY, const float *x, int64_t ldX, int64_t columns, float *g) {
    (void)start; (void)index; (void)r0; (void)r1; (void)dy; (void)ldDY; (void)x; (void)ldX; (void)columns; (void)g;
}

#endif
