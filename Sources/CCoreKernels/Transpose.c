#include "CCoreKernels.h"

/// The edge of a tile grid, element by element.
static void transpose_scalar(const float *a, int64_t lda, float *b, int64_t ldb, int64_t r0, int64_t r1,
                             int64_t c0, int64_t c1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) b[c * ldb + r] = a[r * lda + c];
}

#if defined(__x86_64__)
#include <immintrin.h>

int ds_transpose_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// One 16×16 tile: 16 rows in, interleaved by pairs, fours, eights and sixteens of
/// lanes (unpack, shuffle, two 128-bit lane shuffles), 16 rows out.
__attribute__((target("avx512f"), always_inline))
static inline void tile16(const float *a, int64_t lda, float *b, int64_t ldb) {
    __m512 v[16], t[16];
    for (int i = 0; i < 16; i++) v[i] = _mm512_loadu_ps(a + i * lda);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        v[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        v[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
        v[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        v[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + 4 + j], 0xDD);
        }
    }
    for (int j = 0; j < 8; j++) {
        v[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        v[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(b + i * ldb, v[i]);
}

__attribute__((target("avx512f")))
void ds_transpose(const float *a, int64_t lda, float *b, int64_t ldb, int64_t rows, int64_t columns) {
    int64_t rows16 = rows / 16 * 16, columns16 = columns / 16 * 16;
    for (int64_t r = 0; r < rows16; r += 16)
        for (int64_t c = 0; c < columns16; c += 16) tile16(a + r * lda + c, lda, b + c * ldb + r, ldb);
    transpose_scalar(a, lda, b, ldb, 0, rows16, columns16, columns);
    transpose_scalar(a, lda, b, ldb, rows16, rows, 0, columns);
}

#else

int ds_transpose_supported(void) { return 0; }

void ds_transpose(const float *a, int64_t lda, float *b, int64_t ldb, int64_t rows, int64_t columns) {
    transpose_scalar(a, lda, b, ldb, 0, rows, 0, columns);
}

#endif
