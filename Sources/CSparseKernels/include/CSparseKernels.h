#ifndef CSPARSEKERNELS_H
#define CSPARSEKERNELS_H
#include <stdint.h>

/// The weights a lane-block layout keeps outside its slots: group g's are entries
/// start[g] ..< start[g + 1], each adding values[e] · x[indices[e]] to lane lanes[e].
typedef struct {
    const int64_t *start;
    const uint8_t *lanes;
    const float *values;
    const int32_t *indices;
} DSLaneSpill;

/// 1 when this CPU runs the AVX-512 lane-block kernel, else 0 (callers then use the
/// Swift gather-dot).
int ds_lane_blocks_supported(void);

/// Batch-1 product of a condensed layer in lane-block layout (DSSparsity's
/// LaneBlockPlan documents the layout). For groups g in [g0, g1):
///   out[16 g + l] = Σ_b Σ_{t < slotCount[g, b]} values[s, l] · x[64 b + positions[s, l]]
/// where s runs over the cell's slots from groupStart[g]; `values`/`positions` are
/// [slots, 16], `slotCount` is [groups, blocks], `x` has `features` entries (the last
/// block may be partial), plus each neuron's spilled weights.
void ds_lane_blocks_gemv(const float *values, const uint8_t *positions, const uint8_t *slotCount,
                         const int64_t *groupStart, int64_t g0, int64_t g1, int64_t blocks,
                         const float *x, int64_t features, const DSLaneSpill *spill, float *out);

/// The same product in plain C, on every CPU (the reference for the AVX-512 kernel).
void ds_lane_blocks_gemv_portable(const float *values, const uint8_t *positions, const uint8_t *slotCount,
                                  const int64_t *groupStart, int64_t g0, int64_t g1, int64_t blocks,
                                  const float *x, int64_t features, const DSLaneSpill *spill, float *out);

/// 1 when this CPU runs the AVX-512 sparse 3×3 convolution on planes of height × width
/// (H·W a multiple of 64, W a multiple of 16 or W = 8), else 0.
int ds_conv3x3_sparse_supported(int64_t height, int64_t width);

/// Sparse 3×3 "same" convolution (stride 1, padding 1) on channel-major planes
/// x [C, N, H, W] → y [rows, N, H, W], for images [n0, n1), with no padded copies (taps
/// reaching outside a plane are masked off):
///   y[r][n][h][w] = bias[r] + Σ_{e ∈ [start[r], start[r+1])} values[e] · x[channel[e]][n][h + dh][w + dw]
/// with tap[e] = (dh + 1)·3 + (dw + 1). `bias` may be NULL.
void ds_conv3x3_sparse(const int64_t *start, const int32_t *channel, const uint8_t *tap, const float *values,
                       const float *bias, int64_t rows, const float *x, float *y, int64_t batch, int64_t height,
                       int64_t width, int64_t n0, int64_t n1);

/// The same convolution's entries gathered once into *columns* (the taps of one input
/// channel and column shift, which share their loads), for planes of height × width
/// whose rows are 1, 2 or 4 whole vectors (16, 32, 64 wide) or 8 wide with a height a
/// multiple of 8 (two images side by side), or ordered by tap for 4×4 planes (the lane
/// layout: 16 images per vector, a vector per position): made from the pattern and kept
/// while it lasts, its weights set before each product.
typedef struct ds_conv3x3_plan ds_conv3x3_plan;

/// 1 when planes of height × width go by a plan on this CPU, else 0.
int ds_conv3x3_plan_fits(int64_t height, int64_t width);

/// The plan of rows [0, rows) of a pattern (as for ds_conv3x3_sparse); its taps take
/// values[source[e]] for entry e (values[e] when `source` is NULL). NULL when the plane
/// does not fit. Free with ds_conv3x3_plan_free.
ds_conv3x3_plan *ds_conv3x3_plan_make(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                      const int32_t *source, int64_t rows, int64_t height, int64_t width);

void ds_conv3x3_plan_free(ds_conv3x3_plan *plan);

/// Sets the plan's weights from the layer's `values` (as its `source` maps them): once
/// per product, before the threads run it.
void ds_conv3x3_plan_weights(ds_conv3x3_plan *plan, const float *values);

/// ds_conv3x3_sparse by a plan, with the weights last set.
void ds_conv3x3_sparse_planned(const ds_conv3x3_plan *plan, const float *bias, const float *x, float *y,
                               int64_t batch, int64_t n0, int64_t n1);

/// The sampled weight gradient of the same convolution, for rows [r0, r1) over images
/// [n0, n1) of the batch:
///   g[e] = Σ_{n0 ≤ n < n1} Σ_{h,w} dy[r][n][h][w] · x[channel[e]][n][h + dh][w + dw]
/// summed per 64-output block, then over blocks and images in order (a 16-lane
/// accumulator per entry, reduced once at the end).
void ds_conv3x3_sparse_sampled(const int64_t *start, const int32_t *channel, const uint8_t *tap, int64_t r0,
                               int64_t r1, const float *x, const float *dy, int64_t batch, int64_t n0, int64_t n1,
                               int64_t height, int64_t width, float *g);

/// 1 when the blocked weight gradient takes planes of height × width (whole vectors:
/// W a multiple of 16, or dividing 16 with H·W a multiple of 16).
int ds_conv3x3_sparse_blocked_supported(int64_t height, int64_t width);

/// The same gradient for the entries of every row whose input channel lies in [c0, c1)
/// (each row's entries ascending in channel), blocked for the first-level cache: each
/// image's channels [c0, c1) copied shifted, the plane in units of 16 vectors (or four
/// images of four), the channels in groups whose copies for a unit take about 24 KB;
/// per unit, group and row the row's dy block in registers and a 16-lane sum in memory
/// per entry. Each sum runs over the units of images [n0, n1) in order: the result does
/// not depend on how [c0, c1) is split.
void ds_conv3x3_sparse_sampled_blocked(const int64_t *start, const int32_t *channel, const uint8_t *tap,
                                       int64_t rows, int64_t c0, int64_t c1, const float *x, const float *dy,
                                       int64_t batch, int64_t n0, int64_t n1, int64_t height, int64_t width, float *g);

/// The phase planes of a stride-2 convolution's input x [C, N, H, W] (H, W even):
///   out[c·4 + 2·pr + pc][n][i][j] = x[c][n][2i + pr][2j + pc]   ([4C, N, H/2, W/2])
/// for the planes q = c·N + n in [q0, q1). A stride-2, padding-1 3×3 convolution of x is
/// a stride-1 one of the phase planes (each tap one phase at a shift of 0 or −1).
void ds_phase_split(const float *x, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1, float *out);

/// The inverse of ds_phase_split: dx[c][n][2i + pr][2j + pc] = phases[c·4 + 2·pr + pc][n][i][j].
void ds_phase_merge(const float *phases, int64_t batch, int64_t height, int64_t width, int64_t q0, int64_t q1,
                    float *dx);

/// 1 when this CPU runs the AVX-512 sparse Linear kernels below, else 0 (callers then
/// use the Swift kernels).
int ds_sparse_linear_supported(void);

/// Rows [r0, r1) and columns [c0, c1) of a sparse × dense product on feature-major
/// activations, the weights read in place from `w` (`position` NULL: w[e]):
///   y[r][c] = bias[r] + Σ_{e ∈ [start[r], start[r+1])} w[position[e]] · x[index[e]][c]
/// (`x[f][c]` at `x + f·ldX + c`, `y` likewise with ldY; `bias` may be NULL). Each sum
/// runs over a row's entries in order, whatever the row and column ranges. As it is
/// stored, each result goes through a ReLU when `rectify` is set (max(v, 0), NaN kept),
/// and is zeroed where `mask[r][c]` (at `mask + r·ldMask + c`, when not NULL) is not
/// above 0 (the gradient through a ReLU whose output was `mask`).
void ds_sparse_rows_product(const int32_t *start, const int32_t *index, const int32_t *position, const float *w,
                            const float *bias, int64_t r0, int64_t r1, const float *x, int64_t ldX, int64_t c0,
                            int64_t c1, float *y, int64_t ldY, int rectify, const float *mask, int64_t ldMask);

/// The sampled product for rows [r0, r1), added into g:
///   g[e] += Σ_{c < columns} dy[r][c] · x[index[e]][c]   for e ∈ [start[r], start[r+1])
/// summed per block of 128 columns (16-lane partial sums, folded by a fixed tree), then
/// over blocks in order.
void ds_sparse_rows_sampled(const int32_t *start, const int32_t *index, int64_t r0, int64_t r1, const float *dy,
                            int64_t ldDY, const float *x, int64_t ldX, int64_t columns, float *g);

// Mask-update scans on flag bytes (0 or 1) and magnitude keys (the order of |v|, NaN below
// every number: Selection.magnitudeKey). AVX-512 where the CPU has it, else plain loops;
// the results are the same.

/// With `on` set, the scans below run their plain loops on the calling thread whatever
/// the CPU has (tests compare the two); 0 restores the default.
void ds_mask_scans_portable(int on);

/// The positions i < n with flags[i] set, ascending, into out (room for all of them);
/// returns how many.
int64_t ds_flag_positions(const uint8_t *flags, int64_t n, int32_t *out);

/// How many of flags[0 ..< n] are set.
int64_t ds_flag_count(const uint8_t *flags, int64_t n);

/// The positions `first + i` (i < n) where `old` and `new` differ, ascending: set in old
/// (into dropped) and set in new (into grown); either may be NULL to count only.
/// counts[0], counts[1] get the two counts.
void ds_flag_changes(const uint8_t *old, const uint8_t *new, int64_t n, int64_t first, int64_t *dropped,
                     int64_t *grown, int64_t *counts);

/// The magnitude keys of v[0 ..< n] at or above `bound`, in order, into out (room for n);
/// returns how many.
int64_t ds_magnitude_keys_at_least(const float *v, int64_t n, uint32_t bound, uint32_t *out);

/// Among positions i < n: how many have flags[i] set or the magnitude key of v[i] above
/// `key` (returned), and in *equal how many have a key equal to it (set or not).
int64_t ds_flagged_or_above(const uint8_t *flags, const float *v, int64_t n, uint32_t key, int64_t *equal);

/// The count-th largest of keys[0 ..< n] (1 ≤ count ≤ n; keys unchanged). scratch: 2n keys.
uint32_t ds_kth_largest(const uint32_t *keys, int64_t n, int64_t count, uint32_t *scratch);

/// ds_kth_largest's t, and in *ties how many of the count winners equal t (count minus
/// the keys above t).
uint32_t ds_cut_top(const uint32_t *keys, int64_t n, int64_t count, uint32_t *scratch, int64_t *ties);

/// Sets `count` more flags among the clear ones of flags[0 ..< n]: those with the largest
/// |v[i]| (ties to the lower i, NaN below every number). `count` must not exceed the
/// clear flags; keys has room for n keys, scratch for 2n.
void ds_grow_largest(uint8_t *flags, const float *v, int64_t n, int64_t count, uint32_t *keys, uint32_t *scratch);

/// Sets flags (cleared by the caller) at the `count` positions among those with
/// eligible[i] set and w[i] != 0 (NaN included) with the largest |w[i]| (ties to the
/// lower i, NaN below every number; all of them when fewer); returns 1 when a NaN is
/// among the chosen, else 0, and -1 when its working memory (16 bytes per eligible
/// position) could not be had.
int ds_select_largest_nonzero(const uint8_t *eligible, const float *w, int64_t n, int64_t count, uint8_t *flags);

/// ds_select_largest_nonzero over the m eligible positions given: position[0 ..< m]
/// ascending, values[j] the weight at position[j] (12 bytes of working memory per position).
int ds_select_largest_nonzero_at(const int32_t *position, const float *values, int64_t m, int64_t count,
                                 uint8_t *flags);

/// Rows [r0, r1) of the row order of a sparse pattern from its [rows, columns] flags:
/// rowStart[r + 1] for those rows, and from entry e0 (the entries of the rows before r0)
/// each entry's column (ascending within a row) and flat position. rowStart[0] = 0 is
/// the caller's.
void ds_build_row_order(const uint8_t *flags, int64_t columns, int64_t r0, int64_t r1, int64_t e0,
                        int32_t *rowStart, int32_t *columnIndex, int32_t *positions);

/// The column order of the same pattern: columnStart [columns + 1], and for each entry
/// (rows ascending within a column) its row, flat position and row-order entry, from
/// the row order (rowStart [rows + 1], columnIndex). `next` [columns] is scratch.
void ds_build_column_order(int64_t rows, int64_t columns, const int32_t *rowStart, const int32_t *columnIndex,
                           int32_t *columnStart, int32_t *rowIndex, int32_t *transposedPositions,
                           int32_t *transposedEntries, int32_t *next);

#endif
