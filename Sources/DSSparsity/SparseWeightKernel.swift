import CSparseKernels
import DSCore
import DSLayers

/// The index structure of a sparse `[rows, columns]` weight, kept in two orders: by
/// row (CSR: what the forward product and the weight gradient walk) and by column (the
/// transposed CSR, which the input gradient walks as a forward product with `Wᵀ`).
///
/// A constant fan-in mask's row order is its condensed form: `values [m, k]` and
/// `indices [m, k]` for the `m` non-empty rows (ablated neurons hold no entries).
/// Rebuilding it from a mask is one scan of the mask's flags per order; a layer that
/// computes no input gradient (a network's first) builds only the row order
/// (docs/algorithms.md §6).
public struct SparsePattern: Equatable {
    public let rows: Int
    public let columns: Int
    /// `rowStart[r] ..< rowStart[r + 1]` are row `r`'s entries.
    public let rowStart: [Int32]
    /// Each entry's column (input position), ascending within a row.
    public let columnIndex: [Int32]
    /// Each entry's flat position `r · columns + c` in the dense weight.
    public let positions: [Int32]
    /// `k` when every non-empty row holds `k` entries (the condensed structure).
    public let constantFanIn: Int?
    /// The column order, when it was built.
    private let columnOrder: ColumnOrder?

    /// The arrays of the column order.
    private struct ColumnOrder: Equatable {
        var columnStart: [Int32], rowIndex: [Int32], transposedPositions: [Int32], transposedEntries: [Int32]
    }

    /// Whether the column order was built (`init(mask:columnOrder:)`).
    public var hasColumnOrder: Bool { columnOrder != nil }
    private var builtColumnOrder: ColumnOrder {
        guard let columnOrder else { preconditionFailure("SparsePattern: the column order of a \(rows)x\(columns) pattern was not built") }
        return columnOrder
    }
    /// `columnStart[c] ..< columnStart[c + 1]` are column `c`'s entries in column order.
    public var columnStart: [Int32] { builtColumnOrder.columnStart }
    /// The row of each column-order entry, ascending within a column.
    public var rowIndex: [Int32] { builtColumnOrder.rowIndex }
    /// The flat position of each column-order entry.
    public var transposedPositions: [Int32] { builtColumnOrder.transposedPositions }
    /// The row-order entry (index into `positions`) of each column-order entry.
    public var transposedEntries: [Int32] { builtColumnOrder.transposedEntries }

    /// The pattern of `mask`; its column order only when `columnOrder` is set.
    public init(mask: SparseMask, columnOrder: Bool = true) {
        precondition(mask.rows * mask.columns <= Int(Int32.max), "SparsePattern: \(mask.rows)x\(mask.columns) is too large")
        let rows = mask.rows, columns = mask.columns
        self.rows = rows; self.columns = columns
        // Large masks go in parts of whole rows on the threads: each part's entries
        // counted, then its rows written from the entries before it.
        let flags = rows * columns
        let parts = Parallel.parts(rows, work: flags)
        func part(_ p: Int) -> Range<Int> { (rows * p / parts)..<(rows * (p + 1) / parts) }
        var before = [Int](repeating: 0, count: parts + 1)   // entries before part p's rows
        if flags > 0 {
            mask.active.withFlagBytes { active in
                before.withUnsafeMutableBufferPointer { b in
                    Parallel.forRanges(parts, work: flags) { ps in
                        for p in ps {
                            let r = part(p)
                            b[p + 1] = Int(ds_flag_count(active.baseAddress! + r.lowerBound * columns, Int64(r.count * columns)))
                        }
                    }
                }
            }
            for p in 0..<parts { before[p + 1] += before[p] }
        }
        let count = before[parts]
        func entries() -> [Int32] { [Int32](unsafeUninitializedCapacity: count) { _, n in n = count } }
        var rowStart = [Int32](repeating: 0, count: rows + 1)
        var columnIndex = entries(), positions = entries()
        var order = columnOrder
            ? ColumnOrder(columnStart: [Int32](repeating: 0, count: columns + 1), rowIndex: entries(),
                          transposedPositions: entries(), transposedEntries: entries())
            : nil
        if rows > 0 && columns > 0 {
            mask.active.withFlagBytes { active in
                rowStart.withUnsafeMutableBufferPointer { rs in
                    columnIndex.withUnsafeMutableBufferPointer { ci in
                        positions.withUnsafeMutableBufferPointer { pos in
                            Parallel.forRanges(parts, work: flags) { ps in
                                for p in ps {
                                    let r = part(p)
                                    ds_build_row_order(active.baseAddress!, Int64(columns), Int64(r.lowerBound),
                                                       Int64(r.upperBound), Int64(before[p]), rs.baseAddress!,
                                                       ci.baseAddress, pos.baseAddress)
                                }
                            }
                            if order != nil { Self.buildColumnOrder(&order!, rows, columns, rs, ci) }
                        }
                    }
                }
            }
        }
        self.rowStart = rowStart; self.columnIndex = columnIndex; self.positions = positions
        self.columnOrder = order
        var fanIn: Int?, uniform = true
        for r in 0..<rows {
            let n = Int(rowStart[r + 1] - rowStart[r])
            guard n > 0 else { continue }
            if fanIn == nil { fanIn = n } else if fanIn != n { uniform = false; break }
        }
        constantFanIn = uniform ? fanIn : nil
    }

    private static func buildColumnOrder(_ a: inout ColumnOrder, _ rows: Int, _ columns: Int,
                                         _ rowStart: UnsafeMutableBufferPointer<Int32>,
                                         _ columnIndex: UnsafeMutableBufferPointer<Int32>) {
        let next = UnsafeMutablePointer<Int32>.allocate(capacity: columns)
        defer { next.deallocate() }
        a.columnStart.withUnsafeMutableBufferPointer { cs in
            a.rowIndex.withUnsafeMutableBufferPointer { ri in
                a.transposedPositions.withUnsafeMutableBufferPointer { tp in
                    a.transposedEntries.withUnsafeMutableBufferPointer { te in
                        ds_build_column_order(Int64(rows), Int64(columns), rowStart.baseAddress!, columnIndex.baseAddress,
                                              cs.baseAddress!, ri.baseAddress, tp.baseAddress, te.baseAddress, next)
                    }
                }
            }
        }
    }

    /// Number of active weights.
    public var count: Int { columnIndex.count }
    /// `condensed` for a constant fan-in pattern, else `csr`.
    public var structureName: String { constantFanIn != nil ? "condensed" : "csr" }

    /// Patterns are equal when their masks are (the column order follows from the mask).
    public static func == (a: SparsePattern, b: SparsePattern) -> Bool {
        a.rows == b.rows && a.columns == b.columns && a.rowStart == b.rowStart && a.columnIndex == b.columnIndex
    }
}

/// The sparse training kernel of one Linear or Conv2d weight: forward, input gradient
/// and weight gradient over the active weights only (docs/algorithms.md §6).
///
/// The weights it multiplies by are the parameter's `activeValues` (row order, the copy
/// the optimizer steps); the input gradient reads them in column order through
/// `transposedEntries` (3×3 convolutions: `TransposedConvolution`).
/// The dense weight tensor is brought up to date from them when
/// something reads it (checkpoints, mask updates). The weight gradient goes to
/// the parameter's `activeGradient` (a sampled product: for each active `(j, i)`,
/// `Σ_b dy[j, b] · x[i, b]`), except on steps whose mask update reads the dense
/// gradient: with `computesDenseGradient` set, it is a dense GEMM into `gradient`, and
/// the active entries are taken from it.
public final class SparseWeightKernel: WeightKernel {
    public let weight: Parameter
    public private(set) var pattern: SparsePattern
    /// Set (by `SparseModel`) for the backward passes whose dense gradient a mask
    /// update will read.
    public var computesDenseGradient = false
    /// The padded input a direct convolution's forward kept for its backward.
    var keptInput: PaddedPlanes?
    /// A stride-2 convolution's scratch, kept from step to step (it grows when needed):
    /// the input's phase planes from the forward to the backward (`phasesHoldInput`),
    /// then their gradient. Reusing it spares the page faults of a fresh buffer the size
    /// of the input on every pass.
    var phaseBuffer: UnsafeMutablePointer<Float>?
    var phaseCapacity = 0
    /// Whether `phaseBuffer` holds the phase planes of the last training forward's input.
    var phasesHoldInput = false
    /// The pattern as a stride-1 convolution over phase planes (stride-2 layers), made by
    /// the first such pass after each pattern change (`phaseForm`).
    var phaseFormCache: PhaseForm?
    /// The pattern's transposed 3×3 convolution for the input gradient, made by the first
    /// such pass after each pattern change (`transposedConvolution()`).
    var transposedConvolutionCache: TransposedConvolution?
    /// 3×3 products gathered into columns (forward and input gradient, per plane size),
    /// made by the first such pass after each pattern change.
    var columnPlans: [ColumnPlan.Key: ColumnPlan] = [:]
    /// Whether 3×3 convolutions run the AVX-512 kernels on unpadded planes where the CPU
    /// and the plane size allow (tests turn it off to check the padded-plane path).
    public var usesNativeConvolution = true
    /// Whether 3×3 convolutions take their sampled weight gradient by cache-sized units
    /// and channel groups (`ds_conv3x3_sparse_sampled_blocked`): nil decides from the pattern
    /// (`SparseConvolution.takesBlockedGradient`); tests force it.
    public var blockedConvolutionGradient: Bool?
    /// Whether Linear products and weight gradients run the AVX-512 kernels where the
    /// CPU has them (tests turn it off to check the Swift kernels).
    public var usesNativeKernels = SparseProducts.nativeKernels

    deinit {
        keptInput?.deallocate()
        phaseBuffer?.deallocate()
    }

    /// Installs the kernel's pattern on `weight`: its `activePositions` and a zero
    /// `activeGradient`.
    /// `needsColumnOrder`: whether the layer computes an input gradient, the only
    /// reader of the pattern's column order (a rebuild without it is one pass over the
    /// mask, not two).
    public init(weight: Parameter, mask: SparseMask, needsColumnOrder: Bool = true) {
        precondition(weight.matrixShape == (mask.rows, mask.columns),
                     "SparseWeightKernel: mask \(mask.rows)x\(mask.columns) for weight \(weight.matrixShape)")
        self.weight = weight
        self.needsColumnOrder = needsColumnOrder
        pattern = SparsePattern(mask: mask, columnOrder: needsColumnOrder)
        attach()
    }

    public let needsColumnOrder: Bool

    /// Rebuilds the structure after a mask update (the gradients restart at zero).
    public func update(mask: SparseMask) {
        update(pattern: SparsePattern(mask: mask, columnOrder: needsColumnOrder))
    }

    /// The same with the new mask's pattern built already (with its column order when
    /// `needsColumnOrder`).
    public func update(pattern: SparsePattern) {
        precondition(pattern.rows == self.pattern.rows && pattern.columns == self.pattern.columns
                     && (pattern.hasColumnOrder || !needsColumnOrder),
                     "SparseWeightKernel.update: a \(pattern.rows)x\(pattern.columns) pattern for \(rows)x\(fanIn)")
        self.pattern = pattern
        phaseFormCache = nil
        transposedConvolutionCache = nil
        columnPlans = [:]
        attach()
    }

    /// Sets the parameter's active positions and a zero gradient at them. The dense
    /// gradient may hold what the last mask update read (or the dense kernel's last
    /// gradient): it is marked for the next `zeroGradient`, which clears it once the
    /// update has let go of it (clearing it here would first copy the storage the
    /// update still shares).
    private func attach() {
        weight.activePositions = pattern.positions
        weight.activeGradient = [Float](repeating: 0, count: pattern.count)
        weight.holdsDenseGradient = true
    }

    /// Returns the weight to dense stepping (the parameter forgets its active positions).
    public func detach() {
        weight.activePositions = nil
        weight.activeGradient = []
    }

    private var rows: Int { pattern.rows }
    private var fanIn: Int { pattern.columns }

    public func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, into y: MutableActivationView, parallel: Bool) {
        forward(x, bias: bias, rectify: false, into: y, parallel: parallel)
    }

    /// The forward product, the ReLU (when `rectify`) applied as each result is stored.
    public func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, rectify: Bool, into y: MutableActivationView,
                        parallel: Bool) {
        precondition(x.features == fanIn && y.features == rows && x.columns == y.columns,
                     "SparseWeightKernel.forward: \(x.features)x\(x.columns) → \(y.features)x\(y.columns) for W \(rows)x\(fanIn)")
        gradientCopy.clear()
        let copied = inputCopy.fill(x)   // also for the weight gradient of the same input
        product(transposed: false, copied ? inputCopy.view : x, bias: bias, into: y, parallel: parallel,
                epilogue: SparseProducts.Epilogue(rectify: rectify))
    }

    public func backwardInput(_ dy: ActivationView, into dx: MutableActivationView, parallel: Bool) {
        backwardInput(dy, maskedBy: nil, into: dx, parallel: parallel)
    }

    /// The input gradient, zeroed where `reluOutput` is not above 0 as it is stored when
    /// both are feature-major (else in a pass after it).
    public func backwardInput(_ dy: ActivationView, maskedBy reluOutput: ActivationView?, into dx: MutableActivationView,
                              parallel: Bool) {
        precondition(dy.features == rows && dx.features == fanIn && dy.columns == dx.columns,
                     "SparseWeightKernel.backwardInput: \(dy.features)x\(dy.columns) → \(dx.features)x\(dx.columns) for W \(rows)x\(fanIn)")
        let copied = gradientCopy.matches(dy) || gradientCopy.fill(dy)
        var epilogue = SparseProducts.Epilogue()
        if let m = reluOutput, !dx.batchMajor {
            precondition(m.features == dx.features && m.columns == dx.columns && !m.batchMajor,
                         "SparseWeightKernel.backwardInput: mask \(m.features)x\(m.columns) for dx \(dx.features)x\(dx.columns)")
            epilogue = SparseProducts.Epilogue(mask: m.base, ldMask: m.leadingDimension)
        }
        product(transposed: true, copied ? gradientCopy.view : dy, bias: nil, into: dx, parallel: parallel,
                epilogue: epilogue)
        gradientCopy.clear()
        if let m = reluOutput, dx.batchMajor { dx.zeroWhereNotPositive(m) }
    }

    /// Feature-major copies of batch-major operands: the forward's input (read again by
    /// the weight gradient) and the output gradient (read by both backward products),
    /// each transposed once. A copy is used only for the same block it was made from
    /// (the layer keeps its input alive until backward), and dropped at the next forward.
    private let inputCopy = FeatureMajorCopy()
    private let gradientCopy = FeatureMajorCopy()

    /// `y = W · x + bias`, or `Wᵀ · x` walking the column order.
    private func product(transposed: Bool, _ x: ActivationView, bias: UnsafePointer<Float>?,
                         into y: MutableActivationView, parallel: Bool, epilogue: SparseProducts.Epilogue) {
        let p = pattern
        SparseProducts.featureMajor(x, y) { px, ldX, py, ldY in
            weight.activeValues.withUnsafeBufferPointer { w in
                SparseProducts.product(start: transposed ? p.columnStart : p.rowStart,
                                       index: transposed ? p.rowIndex : p.columnIndex,
                                       entries: transposed ? p.transposedEntries : nil,
                                       values: w, bias: bias, outputs: y.features, features: x.features,
                                       x: px, ldX: ldX, columns: x.columns, y: py, ldY: ldY, parallel: parallel,
                                       epilogue: epilogue, native: usesNativeKernels)
            }
        }
    }

    public var gradientCount: Int { computesDenseGradient ? weight.value.count : pattern.count }

    public func weightGradient(_ dy: ActivationView, _ x: ActivationView, into gradient: UnsafeMutablePointer<Float>,
                               parallel: Bool) {
        checkGradientOperands(dy, x, "weightGradient")
        if computesDenseGradient {
            DenseWeightKernel.gemmGradient(dy, x, rows: rows, fanIn: fanIn, beta: 0, into: gradient, parallel: parallel)
            return
        }
        sampledGradient(dy, x, into: gradient, accumulate: false, parallel: parallel)
    }

    /// Adds `dy · xᵀ` into the weight's gradient: the sampled product straight into the
    /// active gradient (no block, no pass to add it), or on dense-gradient steps the
    /// dense product and the active entries taken from it.
    public func backwardWeight(_ dy: ActivationView, _ x: ActivationView, parallel: Bool) {
        guard !computesDenseGradient else { backwardWeightThroughBlock(dy, x, parallel: parallel); return }
        checkGradientOperands(dy, x, "backwardWeight")
        weight.activeGradient.withUnsafeMutableBufferPointer { g in
            sampledGradient(dy, x, into: g.baseAddress!, accumulate: true, parallel: parallel)
        }
    }

    private func checkGradientOperands(_ dy: ActivationView, _ x: ActivationView, _ caller: String) {
        precondition(dy.features == rows && x.features == fanIn && dy.columns == x.columns,
                     "SparseWeightKernel.\(caller): dy \(dy.features)x\(dy.columns), x \(x.features)x\(x.columns) for W \(rows)x\(fanIn)")
    }

    /// The sampled weight gradient into `g` (`pattern.count` entries), added to it with
    /// `accumulate`.
    private func sampledGradient(_ dy: ActivationView, _ x: ActivationView, into g: UnsafeMutablePointer<Float>,
                                 accumulate: Bool, parallel: Bool) {
        let copied = gradientCopy.fill(dy)   // false when dy is already feature-major
        let xs = inputCopy.matches(x) ? inputCopy.view : x
        SparseProducts.withFeatureMajor(copied ? gradientCopy.view : dy) { pdy, ldDY in
            SparseProducts.withFeatureMajor(xs) { px, ldX in
                SparseProducts.sampled(start: pattern.rowStart, index: pattern.columnIndex, rows: rows, features: fanIn,
                                       dy: pdy, ldDY: ldDY, x: px, ldX: ldX, columns: x.columns, into: g,
                                       accumulate: accumulate, parallel: parallel, native: usesNativeKernels,
                                       scratch: alignedInput)
            }
        }
    }

    /// The weight gradient's copy of an input whose rows do not share one alignment,
    /// kept from step to step.
    private let alignedInput = SparseProducts.AlignedBuffer()

    public func addGradient(_ gradient: UnsafePointer<Float>) {
        weight.activeGradient.withUnsafeMutableBufferPointer { active in
            if computesDenseGradient {
                weight.gradient.storage.withUnsafeMutableBufferPointer { g in
                    for i in 0..<g.count { g[i] += gradient[i] }
                }
                pattern.positions.withUnsafeBufferPointer { p in
                    for e in 0..<p.count { active[e] += gradient[Int(p[e])] }
                }
                weight.holdsDenseGradient = true
            } else {
                for e in 0..<active.count { active[e] += gradient[e] }
            }
        }
    }

}

/// A feature-major copy of a batch-major activation block, and where it came from. The
/// buffer (64-byte aligned) is kept from step to step and grows when needed.
final class FeatureMajorCopy {
    private(set) var source: UnsafePointer<Float>?
    private(set) var features = 0, columns = 0, leadingDimension = 0
    private let buffer = SparseProducts.AlignedBuffer()
    private var data: UnsafeMutablePointer<Float>?

    /// Copies `x` when it is batch-major and returns true; false (nothing copied) when
    /// it is already feature-major.
    func fill(_ x: ActivationView) -> Bool {
        guard x.batchMajor else { source = nil; return false }
        data = buffer.reserve(x.features * x.columns)
        source = x.base; features = x.features; columns = x.columns; leadingDimension = x.leadingDimension
        BLAS.transpose(rows: columns, columns: features, x.base, lda: leadingDimension, into: data!, ldb: columns)
        return true
    }

    /// Forgets the copy (the buffer stays).
    func clear() { source = nil }

    var view: ActivationView {
        ActivationView(data!, features: features, columns: columns, leadingDimension: columns, batchMajor: false)
    }

    /// Whether this is a copy of `x`.
    func matches(_ x: ActivationView) -> Bool {
        source != nil && x.batchMajor && x.base == source && x.features == features && x.columns == columns
            && x.leadingDimension == leadingDimension
    }
}

/// An exported condensed layer as a layer's kernel (`dst eval --condensed`): the
/// forward pass runs the condensed layer's own kernels (the lane-block layout at batch 1),
/// and the weight it stands for is written into the layer, whose gradients (should the
/// layer be trained further) come from a `SparseWeightKernel` over the same pattern.
/// The first backward pass drops the frozen condensed copy, so later forward passes
/// read the weight as it changes.
public final class CondensedWeightKernel: WeightKernel {
    public private(set) var condensed: CondensedLinear?
    private let sparse: SparseWeightKernel

    /// Writes `condensed`'s weight into `weight` and takes over its products.
    public init(_ condensed: CondensedLinear, weight: Parameter) {
        precondition(weight.matrixShape == (condensed.outputFeatures, condensed.inputFeatures),
                     "CondensedWeightKernel: condensed \(condensed.outputFeatures)x\(condensed.inputFeatures) for weight \(weight.matrixShape)")
        let dense = condensed.denseWeight
        weight.value.storage = dense
        var active = [Bool](repeating: false, count: dense.count)
        for (r, row) in condensed.activeRows.enumerated() {
            for i in 0..<condensed.fanIn { active[Int(row) * condensed.inputFeatures + condensed.indices[r * condensed.fanIn + i]] = true }
        }
        self.condensed = condensed
        sparse = SparseWeightKernel(weight: weight,
                                    mask: SparseMask(rows: condensed.outputFeatures, columns: condensed.inputFeatures,
                                                     active: active))
    }

    public func forward(_ x: ActivationView, bias: UnsafePointer<Float>?, into y: MutableActivationView, parallel: Bool) {
        guard let c = condensed else { sparse.forward(x, bias: bias, into: y, parallel: parallel); return }
        let zeros = bias == nil ? [Float](repeating: 0, count: c.outputFeatures) : []
        zeros.withUnsafeBufferPointer { pz in
            let b = bias ?? pz.baseAddress!
            if y.batchMajor && y.columns == 1 {
                c.forwardOne(x.base, into: y.base, laneBlocks: true, bias: b)
                return
            }
            SparseProducts.featureMajor(x, y) { px, ldX, py, ldY in
                c.forwardColumns(px, ldCol: ldX, columns: x.columns, into: py, ldY: ldY, bias: b, parallel: parallel)
            }
        }
    }

    public func backwardInput(_ dy: ActivationView, into dx: MutableActivationView, parallel: Bool) {
        condensed = nil
        sparse.backwardInput(dy, into: dx, parallel: parallel)
    }

    public var gradientCount: Int { sparse.gradientCount }

    public func weightGradient(_ dy: ActivationView, _ x: ActivationView, into gradient: UnsafeMutablePointer<Float>,
                               parallel: Bool) {
        condensed = nil
        sparse.weightGradient(dy, x, into: gradient, parallel: parallel)
    }

    public func addGradient(_ gradient: UnsafePointer<Float>) { sparse.addGradient(gradient) }

    public func backwardWeight(_ dy: ActivationView, _ x: ActivationView, parallel: Bool) {
        condensed = nil
        sparse.backwardWeight(dy, x, parallel: parallel)
    }
}

