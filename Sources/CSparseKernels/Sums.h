// Horizontal sums shared by the AVX-512 kernels (x86-64 only; include after <immintrin.h>).
#ifndef DS_SUMS_H
#define DS_SUMS_H

/// The four sums of a, b, c, d's lanes, in that order (the lane halves folded first,
/// then pairs of 128-bit lanes, then within them).
__attribute__((target("avx512f"), always_inline))
static inline __m128 sums4(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, 0x4E));
    q = _mm512_add_ps(q, _mm512_permute_ps(q, 0xB1));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), q));
}

/// SUM[e] += the sum of DOT(e)'s lanes for e in [E0, E1): four entries' vectors reduced
/// together (sums4), the last ones one by one. DOT is a function-like macro of the entry.
#define DS_ADD_SUMS(E0, E1, SUM, DOT)                                                                               \
    {                                                                                                               \
        int64_t e_ = (E0), end_ = (E1);                                                                             \
        for (; e_ + 4 <= end_; e_ += 4)                                                                             \
            _mm_storeu_ps((SUM) + e_, _mm_add_ps(_mm_loadu_ps((SUM) + e_),                                          \
                                                 sums4(DOT(e_), DOT(e_ + 1), DOT(e_ + 2), DOT(e_ + 3))));           \
        for (; e_ < end_; e_++) (SUM)[e_] += _mm512_reduce_add_ps(DOT(e_));                                         \
    }

#endif
