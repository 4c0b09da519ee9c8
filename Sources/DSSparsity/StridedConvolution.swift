import CSparseKernels
import DSCore
import DSLayers

// Stride-2 3×3 convolutions on the sparse kernels: the stride-1 kernels run on the
// input's four phase planes (PhaseForm; docs/algorithms.md §6).

extension SparseWeightKernel {
    /// The phase form of the current pattern (made once per pattern).
    func phaseForm() -> PhaseForm {
        if let form = phaseFormCache { return form }
        let form = PhaseForm(pattern, columnOrder: needsColumnOrder)
        phaseFormCache = form
        return form
    }

    /// `y = W ⋆ x (+ bias)` of a stride-2 layer: the input split into its phase planes
    /// (in `phaseBuffer`, kept for the backward when `keepInput`), then the stride-1
    /// product of the phase pattern.
    func phaseConvolve(_ x: UnsafePointer<Float>, _ g: ConvGeometry, bias: UnsafePointer<Float>?,
                       into y: UnsafeMutablePointer<Float>, keepInput: Bool) {
        let form = phaseForm(), phases = phaseScratch(g)
        PhaseForm.split(x, g, into: phases)
        nativeProduct(transposed: false, start: form.pattern.rowStart, entries: form.pattern.columnIndex, flipped: false,
                      source: form.source, bias: bias, rows: pattern.rows, x: phases, y: y, PhaseForm.geometry(g))
        phasesHoldInput = keepInput
    }

    /// Backward of a stride-2 layer on its phase planes: the sampled weight gradient of
    /// the phase pattern, put back in the layer's entry order (or, on update steps, the
    /// dense gradient from column matrices of the strided input), and the input gradient
    /// as the transposed stride-1 product into phase planes, merged into `dx`.
    func phaseBackward(_ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, _ g: ConvGeometry,
                       inputGradient dx: UnsafeMutablePointer<Float>?) {
        let p = pattern, form = phaseForm(), phasePattern = form.pattern, pg = PhaseForm.geometry(g)
        let phases = phaseScratch(g)
        if !phasesHoldInput { PhaseForm.split(x, g, into: phases) }
        phasesHoldInput = false
        var block = [Float](repeating: 0, count: computesDenseGradient ? p.rows * p.columns : p.count)
        block.withUnsafeMutableBufferPointer { b in
            if computesDenseGradient {
                SparseConvolution.denseGradient(x: x, dy: dy, g, rows: p.rows, into: b.baseAddress!)
                return
            }
            var phaseBlock = [Float](repeating: 0, count: phasePattern.count)
            phaseBlock.withUnsafeMutableBufferPointer {
                SparseConvolution.nativeSampled(start: phasePattern.rowStart, entries: phasePattern.columnIndex,
                                                x: phases, dy: dy, pg, blocked: blockedConvolutionGradient,
                                                into: $0.baseAddress!)
            }
            for (e, source) in form.source.enumerated() { b[Int(source)] = phaseBlock[e] }
        }
        block.withUnsafeBufferPointer { addGradient($0.baseAddress!) }
        guard let dx else { return }
        let t = form.transposed ?? TransposedConvolution(phasePattern, channels: pg.channels, sourceOf: form.source)
        // The phase planes are read; their gradient takes their place.
        nativeProduct(transposed: true, start: t.starts, entries: t.entries, flipped: true, source: t.source,
                      bias: nil, rows: pg.channels, x: dy, y: phases, pg)
        PhaseForm.merge(phases, into: dx, g)
    }

    /// `phaseBuffer`, large enough for the phase planes of an input of geometry `g`.
    func phaseScratch(_ g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        let count = g.channels * g.batch * g.height * g.width
        if count > phaseCapacity || phaseBuffer == nil {
            phaseBuffer?.deallocate()
            phaseBuffer = .allocate(capacity: max(count, 1))
            phaseCapacity = count
        }
        return phaseBuffer!
    }
}

/// A stride-2, padding-1 3×3 convolution on planes of even size as a stride-1 one over
/// the input's four phase planes (`ds_phase_split`: phase 2·pr + pc of channel c holds
/// the rows of parity pr and columns of parity pc). Input row 2i + a − 1 of tap row a is
/// row i − 1 of the odd rows (a = 0), row i of the even rows (a = 1) or row i of the odd
/// rows (a = 2), columns alike; so tap (a, b) of channel c is one phase of c at a shift
/// of −1 or 0 per axis, a tap of the stride-1 kernels on planes half as wide and high.
/// Holds the pattern over the 4C·9 phase columns and, per phase entry, the layer's
/// entry it stands for.
struct PhaseForm {
    let pattern: SparsePattern
    let source: [Int32]
    /// The input gradient's transposed convolution over the phase planes, its `source`
    /// the layer's own entries (made with the form when the layer has an input gradient).
    let transposed: TransposedConvolution?

    /// Planes this form takes: even in both sizes, phase planes at least 7 wide or of at
    /// most 16 positions.
    static func fits(_ g: ConvGeometry) -> Bool {
        g.height % 2 == 0 && g.width % 2 == 0 && (g.width / 2 >= 7 || g.height * g.width <= 64)
    }

    /// The stride-1 geometry over the phase planes.
    static func geometry(_ g: ConvGeometry) -> ConvGeometry {
        ConvGeometry(channels: 4 * g.channels, batch: g.batch, height: g.height / 2, width: g.width / 2,
                     kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1)
    }

    /// The phase column of layer column `c·9 + a·3 + b`.
    static func phaseColumn(_ column: Int) -> Int {
        let c = column / 9, a = column % 9 / 3, b = column % 3
        let parity = [1, 0, 1], shift = [-1, 0, 0]
        return (c * 4 + parity[a] * 2 + parity[b]) * 9 + (shift[a] + 1) * 3 + (shift[b] + 1)
    }

    init(_ p: SparsePattern, columnOrder: Bool) {
        let columns = p.columns * 4
        var indices: [Int] = [], source: [Int32] = []
        indices.reserveCapacity(p.count)
        source.reserveCapacity(p.count)
        for r in 0..<p.rows {
            let entries = (Int(p.rowStart[r])..<Int(p.rowStart[r + 1]))
                .map { (column: Self.phaseColumn(Int(p.columnIndex[$0])), entry: Int32($0)) }
                .sorted { $0.column < $1.column }
            for (column, entry) in entries {
                indices.append(r * columns + column)
                source.append(entry)
            }
        }
        pattern = SparsePattern(mask: SparseMask(rows: p.rows, columns: columns, activeIndices: indices),
                                columnOrder: columnOrder)
        self.source = source
        transposed = columnOrder ? TransposedConvolution(pattern, channels: columns / 9, sourceOf: source) : nil
    }

    /// The phase planes of `x`, into `out` (as many floats as `x`).
    static func split(_ x: UnsafePointer<Float>, _ g: ConvGeometry, into out: UnsafeMutablePointer<Float>) {
        forPlanes(g) { q0, q1 in ds_phase_split(x, Int64(g.batch), Int64(g.height), Int64(g.width), q0, q1, out) }
    }

    /// `dx` from the phase planes' gradient.
    static func merge(_ phases: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        forPlanes(g) { q0, q1 in ds_phase_merge(phases, Int64(g.batch), Int64(g.height), Int64(g.width), q0, q1, dx) }
    }

    /// Runs `body(q0, q1)` over runs of planes `q = c·N + n`, each thread on its images
    /// of every channel (`Parallel.forImages`).
    private static func forPlanes(_ g: ConvGeometry, _ body: (Int64, Int64) -> Void) {
        Parallel.forImages(g.batch, work: g.channels * g.batch * g.height * g.width) { images in
            guard !images.isEmpty else { return }
            for c in 0..<g.channels {
                body(Int64(c * g.batch + images.lowerBound), Int64(c * g.batch + images.upperBound))
            }
        }
    }
}
