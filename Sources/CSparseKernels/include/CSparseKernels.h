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

#endif
