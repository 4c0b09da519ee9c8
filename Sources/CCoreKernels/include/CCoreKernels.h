#ifndef CCOREKERNELS_H
#define CCOREKERNELS_H
#include <stdint.h>

/// 1 when this CPU runs the AVX-512 transpose, else 0 (DSCore then calls OpenBLAS).
int ds_transpose_supported(void);

/// b[c][r] = a[r][c] for r < rows, c < columns (`a` rows `lda` floats apart, `b` rows
/// `ldb` apart): 16×16 tiles through registers, the edges element by element.
void ds_transpose(const float *a, int64_t lda, float *b, int64_t ldb, int64_t rows, int64_t columns);

#endif
