import Dispatch
import DSCore
import DSLayers

/// How a model's weights are made sparse: the strategy, the overall sparsity and
/// its distribution, the update schedule and the per-layer options (docs/algorithms.md §1–§3).
public struct SparsitySettings {
    public var strategy: any SparsityScheduler
    public var sparsity: Double
    public var distribution: DensityDistribution
    /// Layers kept dense (no mask).
    public var denseLayers: Set<String>
    /// Layers never ablated (SRigL).
    public var protectedLayers: Set<String>
    public var schedule: UpdateSchedule
    /// Backward passes averaged into the dense gradient of an update (≥ 1).
    public var gradientAccumulation: Int
    public var initialization: SparseInitialization
    /// Which layers train through sparse kernels (`training.sparse_kernels`).
    public var kernels: SparseKernelMode

    public init(strategy: any SparsityScheduler, sparsity: Double, distribution: DensityDistribution,
                denseLayers: Set<String> = [], protectedLayers: Set<String> = [], schedule: UpdateSchedule,
                gradientAccumulation: Int = 1, initialization: SparseInitialization = .sparseKaiming,
                kernels: SparseKernelMode = .off) {
        self.strategy = strategy; self.sparsity = sparsity; self.distribution = distribution
        self.denseLayers = denseLayers; self.protectedLayers = protectedLayers; self.schedule = schedule
        self.gradientAccumulation = gradientAccumulation; self.initialization = initialization
        self.kernels = kernels
    }
}

/// Whether sparse layers train through sparse kernels (docs/algorithms.md §6).
public enum SparseKernelMode: String, CaseIterable, Sendable {
    /// Per layer, whichever of the sparse and the masked dense kernel is faster at the
    /// layer's density (a measured crossover, so the choice is the same every run).
    case auto
    /// Every sparse layer on sparse kernels.
    case on
    /// Every layer on the dense kernel, masked after each step.
    case off
}

/// How the active weights are drawn once the initial masks exist (docs/algorithms.md §2).
public enum SparseInitialization: String, CaseIterable, Sendable {
    /// Each neuron's active weights ~ N(0, sqrt(2 / k_j)), `k_j` its sparse fan-in.
    case sparseKaiming = "sparse_kaiming"
    /// Keep the dense Kaiming draw.
    case dense
    /// The SRigL authors' std `2 / k_j`.
    case authors
}

/// One prunable weight and its mask.
public final class SparseLayer {
    /// The weight's path without `.weight` (`layer1.0.conv1`, `fc`).
    public let name: String
    public let parameter: Parameter
    /// Index of the parameter in the optimizer's parameter list.
    public let parameterIndex: Int
    public let density: LayerDensity
    /// Nil for a dense layer.
    public internal(set) var mask: SparseMask?
    /// Positions that were active at some point (for ITOP).
    public internal(set) var everActive: [Bool]
    /// Never ablated (SRigL).
    public let isProtected: Bool
    /// Sum of the last backward passes' dense gradients before an update.
    var accumulatedGradient: [Float] = []
    var accumulatedPasses = 0
    /// The Linear or Conv2d layer the weight belongs to.
    let owner: WeightLayer?
    /// The layer's sparse kernel, when it trains through one (nil: dense kernel, masked).
    public private(set) var kernel: SparseWeightKernel?

    init(name: String, parameter: Parameter, parameterIndex: Int, density: LayerDensity, isProtected: Bool,
         owner: WeightLayer?) {
        self.name = name; self.parameter = parameter; self.parameterIndex = parameterIndex
        self.density = density; self.isProtected = isProtected; self.owner = owner
        everActive = [Bool](repeating: density.isDense, count: parameter.value.count)
    }

    /// Puts the layer on a sparse kernel over its mask, or back on the dense kernel.
    func useSparseKernel(_ sparse: Bool) {
        guard let owner, let mask else { return }
        if sparse {
            let k = SparseWeightKernel(weight: parameter, mask: mask, needsColumnOrder: owner.computesInputGradient)
            kernel = k
            owner.kernel = k
        } else {
            kernel?.detach()
            kernel = nil
            owner.kernel = DenseWeightKernel(weight: parameter)
        }
    }

    /// The state a checkpoint needs beyond the weights: mask, ever-active positions
    /// and a dense gradient being accumulated for the next update.
    public var savedState: (mask: SparseMask?, everActive: [Bool], accumulatedGradient: [Float], accumulatedPasses: Int) {
        (mask, everActive, accumulatedGradient, accumulatedPasses)
    }

    /// Restores what `savedState` returned.
    public func restore(mask: SparseMask?, everActive: [Bool], accumulatedGradient: [Float], accumulatedPasses: Int) {
        precondition(everActive.count == parameter.value.count, "SparseLayer.restore: \(name) size mismatch")
        self.mask = mask
        self.everActive = everActive
        self.accumulatedGradient = accumulatedGradient
        self.accumulatedPasses = accumulatedPasses
        if let mask { kernel?.update(mask: mask) }
    }

    public var rows: Int { parameter.matrixShape.rows }
    public var columns: Int { parameter.matrixShape.columns }
    /// Active weights per neuron (all `columns` for a dense layer).
    public var rowCounts: [Int] { mask?.rowCounts ?? [Int](repeating: columns, count: rows) }
    public var activeCount: Int { mask?.count ?? parameter.value.count }
}

/// What an update did to each layer, keyed by layer name.
public typealias MaskUpdates = [(layer: SparseLayer, change: MaskChange, dropFraction: Double)]

/// A model's sparse layers under one strategy: draws the initial masks, keeps inactive
/// weights and their gradients at zero (by masking after each step, or, for layers on
/// sparse kernels, by never computing them), and runs the strategy's mask updates.
public final class SparseModel {
    public let settings: SparsitySettings
    public let layers: [SparseLayer]

    /// Masks every Linear/Conv2d weight of `model` (`parameters` is the optimizer's
    /// list, for state indices). The classifier alias is resolved by the caller. With
    /// `input`, one evaluation pass on a zero sample tells `sparse_kernels: auto` each
    /// convolution's plane size (without it, every 3×3 layer gets the 8-wide crossover).
    public init(model: Layer, parameters: [Parameter], settings: SparsitySettings, input: ModelInput? = nil,
                rng: inout Xoshiro256) throws {
        self.settings = settings
        if let input, settings.kernels == .auto {
            _ = model.forward(Tensor(shape: [input.channels, 1, input.height, input.width]), training: false)
        }
        let weights = model.namedParameters().filter { $0.parameter.role == .weight }
        let owners = model.namedLayers().compactMap { $0.layer as? WeightLayer }
        let shapes = weights.map { SparseLayerShape(name: Self.layerName($0.name), dimensions: $0.parameter.value.shape) }
        let densities = try settings.distribution.densities(for: shapes, sparsity: settings.sparsity,
                                                            denseLayers: settings.denseLayers)
        var layers: [SparseLayer] = []
        for ((_, parameter), density) in zip(weights, densities) {
            guard let index = parameters.firstIndex(where: { $0 === parameter }) else {
                preconditionFailure("SparseModel: weight \(density.name) is not in the optimizer's parameter list")
            }
            let layer = SparseLayer(name: density.name, parameter: parameter, parameterIndex: index,
                                    density: density, isProtected: settings.protectedLayers.contains(density.name),
                                    owner: owners.first { $0.weight === parameter })
            if !density.isDense {
                guard density.budget > 0 else {
                    throw SparsityError("layer \(density.name) (\(layer.rows)x\(layer.columns)) keeps no weights at sparsity "
                                        + "\(settings.sparsity); lower the sparsity or list the layer in dense_layers")
                }
                // A SNIP-scored mask is chosen from gradients later (`selectInitialMasks`).
                let mask = settings.strategy.initialScoringBatches > 0
                    ? try Self.denseUntilScored(settings.strategy, layer, budget: density.budget)
                    : try settings.strategy.initialMask(name: density.name, rows: layer.rows, columns: layer.columns,
                                                        budget: density.budget, rng: &rng)
                layer.mask = mask
                layer.everActive = mask.active
                Self.initialize(layer, settings.initialization, rng: &rng)
            }
            layers.append(layer)
        }
        self.layers = layers
        applyMasks()
        chooseKernels()
        // On the sparse path, consecutive Linear layers pass activations feature-major,
        // the layout the sparse kernels compute in (no transposes between them).
        for case let sequential as Sequential in model.namedLayers().map(\.layer) {
            sequential.linkFeatureMajor(settings.kernels != .off)
        }
    }

    private static func denseUntilScored(_ strategy: any SparsityScheduler, _ layer: SparseLayer, budget: Int) throws -> SparseMask {
        try strategy.structure.check(name: layer.name, rows: layer.rows, columns: layer.columns, budget: budget)
        return .dense(rows: layer.rows, columns: layer.columns)
    }

    /// Puts every masked layer on the kernel its density calls for.
    private func chooseKernels() {
        kernelChoices = layers.compactMap { layer in
            guard layer.mask != nil, layer.owner != nil else { return nil }
            let choice = KernelChoice(layer: layer, mode: settings.kernels)
            layer.useSparseKernel(choice.sparse)
            return choice
        }
    }

    /// Under `sparse_kernels: auto`, moves `layer` to the kernel its present density
    /// calls for (gradual pruning crosses the crossover as it prunes); returns the new
    /// choice when the kernel changed.
    private func rechooseKernel(_ layer: SparseLayer) -> KernelChoice? {
        guard settings.kernels == .auto, layer.mask != nil, layer.owner != nil,
              let index = kernelChoices.firstIndex(where: { $0.layer == layer.name }) else { return nil }
        let choice = KernelChoice(layer: layer, mode: settings.kernels)
        guard choice.sparse != (layer.kernel != nil) else { return nil }
        layer.useSparseKernel(choice.sparse)
        kernelChoices[index] = choice
        return choice
    }

    /// After a checkpoint's masks are restored: each layer on the kernel its restored
    /// density calls for, as the run that wrote the checkpoint had it.
    public func chooseKernelsForRestoredMasks() {
        for layer in layers { _ = rechooseKernel(layer) }
    }

    /// How long each layer's part of the last mask update took (for benchmarks).
    public struct UpdateTiming: Sendable {
        public let layer: String
        /// The strategy's new mask (selections, ablation), seconds.
        public let selection: Double
        /// Finding the dropped and grown positions and zeroing their weights.
        public let change: Double
        /// Rebuilding the sparse kernel's structures (0 on the masked path).
        public let rebuild: Double
    }

    /// The layers' timings of the last `afterStep` that updated masks.
    public private(set) var lastUpdateTimings: [UpdateTiming] = []

    /// The kernel changes the last `afterStep` made (`sparse_kernels: auto` only).
    public private(set) var lastKernelSwitches: [KernelChoice] = []

    /// SNIP (docs/algorithms.md §3.5): replaces every masked layer's full initial mask
    /// by the structure's selection of the largest connection sensitivities
    /// `|w · g|` (`gradients[i]` is layer `i`'s summed gradient, `[nOut · fanIn]`),
    /// then draws the active weights as `sparsity.init` says and re-chooses kernels.
    public func selectInitialMasks(gradients: [[Float]], rng: inout Xoshiro256) {
        precondition(gradients.count == layers.count, "selectInitialMasks: \(gradients.count) gradients for \(layers.count) layers")
        let structure = settings.strategy.structure
        for (layer, g) in zip(layers, gradients) where layer.mask != nil {
            let w = layer.parameter.value.storage
            let counts = structure.groupCounts(rows: layer.rows, columns: layer.columns, total: layer.density.budget)
            let mask = structure.selectLargest(rows: layer.rows, columns: layer.columns, counts: counts) { abs(w[$0] * g[$0]) }
            layer.mask = mask
            layer.everActive = mask.active
            Self.initialize(layer, settings.initialization, rng: &rng)
        }
        applyMasks()
        chooseKernels()
    }

    /// Each masked layer's kernel choice, for the run log.
    public private(set) var kernelChoices: [KernelChoice] = []

    /// `layer1.0.conv1.weight` → `layer1.0.conv1`.
    public static func layerName(_ parameterPath: String) -> String {
        parameterPath.hasSuffix(".weight") ? String(parameterPath.dropLast(".weight".count)) : parameterPath
    }

    /// Redraws the active weights of every neuron for its sparse fan-in.
    static func initialize(_ layer: SparseLayer, _ mode: SparseInitialization, rng: inout Xoshiro256) {
        // A full mask (gradual pruning's start, SNIP before scoring) keeps the model's own draw.
        guard mode != .dense, let mask = layer.mask, mask.count < mask.active.count else { return }
        let counts = mask.rowCounts
        layer.parameter.value.storage.withUnsafeMutableBufferPointer { w in
            for r in 0..<layer.rows where counts[r] > 0 {
                let k = Float(counts[r])
                let std = mode == .authors ? 2 / k : (2 / k).squareRoot()
                for c in 0..<layer.columns where mask.active[r * layer.columns + c] {
                    w[r * layer.columns + c] = rng.normal() * std
                }
            }
        }
    }

    /// Sets every inactive weight to zero.
    public func applyMasks() {
        for layer in layers { mask(layer) }
    }

    private func mask(_ layer: SparseLayer) {
        guard let mask = layer.mask else { return }
        layer.parameter.value.storage.withUnsafeMutableBufferPointer { w in
            mask.active.withFlagBytes { a in
                for i in 0..<w.count { w[i] = a[i] != 0 ? w[i] : 0 }   // branch-free: vectorises
            }
        }
    }

    /// Whether the backward pass of optimizer step `step` (1-based) must produce the
    /// dense gradient: an update that reads it follows within `gradientAccumulation` steps.
    public func needsDenseGradient(forStep step: Int) -> Bool {
        settings.strategy.isDynamic && settings.strategy.usesDenseGradient
            && settings.schedule.readsDenseGradient(atStep: step, accumulation: settings.gradientAccumulation)
    }

    /// Before the backward pass of optimizer step `step` (1-based): tells the sparse
    /// kernels whether to compute the dense weight gradient.
    public func prepareBackward(forStep step: Int) {
        let dense = needsDenseGradient(forStep: step)
        for layer in layers { layer.kernel?.computesDenseGradient = dense }
    }

    /// Before the optimizer step that will be step `step` (1-based): keeps the dense
    /// gradient when an update follows within `gradientAccumulation` steps, then zeroes
    /// the gradients of inactive weights (layers on sparse kernels have none).
    public func prepareGradients(forStep step: Int) {
        let collect = needsDenseGradient(forStep: step)
        for layer in layers {
            guard let mask = layer.mask else { continue }
            if collect {
                if layer.accumulatedPasses == 0 {
                    layer.accumulatedGradient = layer.parameter.gradient.storage
                } else {
                    layer.accumulatedGradient.withUnsafeMutableBufferPointer { sum in
                        layer.parameter.gradient.storage.withUnsafeBufferPointer { g in
                            for i in 0..<sum.count { sum[i] += g[i] }
                        }
                    }
                }
                layer.accumulatedPasses += 1
            }
            guard layer.kernel == nil else { continue }
            layer.parameter.gradient.storage.withUnsafeMutableBufferPointer { g in
                mask.active.withFlagBytes { a in
                    for i in 0..<g.count { g[i] = a[i] != 0 ? g[i] : 0 }
                }
            }
        }
    }

    /// After optimizer step `step` (1-based): re-applies the masks and, on an update
    /// step, runs the strategy on every sparse layer. Returns what changed (empty when
    /// no update ran); the caller zeroes optimizer state at dropped and grown positions.
    public func afterStep(_ step: Int, rng: inout Xoshiro256) -> MaskUpdates {
        for layer in layers where layer.kernel == nil { mask(layer) }
        lastKernelSwitches = []
        guard settings.strategy.isDynamic, settings.schedule.isUpdate(afterStep: step) else { return [] }
        let fraction = settings.strategy.usesDropFraction ? settings.schedule.dropFraction(atStep: step) : 0
        let progress = settings.schedule.pruningProgress(atStep: step)
        var updates: MaskUpdates = []
        var timings: [UpdateTiming] = []
        defer { lastUpdateTimings = timings }
        for layer in layers {
            guard let mask = layer.mask else { continue }
            let gradient = layer.accumulatedPasses == 1 ? layer.accumulatedGradient
                : layer.accumulatedPasses > 1 ? layer.accumulatedGradient.map { $0 / Float(layer.accumulatedPasses) }
                : [Float](repeating: 0, count: mask.active.count)
            // The input shares the weight storage; it ends with the update, so zeroing
            // the changed weights below writes in place (no copy of the tensor).
            let t0 = DispatchTime.now().uptimeNanoseconds
            let result = { (rng: inout Xoshiro256) in
                var input = LayerUpdateInput(name: layer.name, mask: mask, weights: layer.parameter.value.storage,
                                             denseGradient: gradient, budget: layer.density.budget,
                                             dropFraction: fraction, mayAblate: !layer.isProtected,
                                             pruningProgress: progress)
                if let positions = layer.parameter.activePositions {
                    input.active = (positions, layer.parameter.activeValues)
                }
                return settings.strategy.update(input, rng: &rng)
            }(&rng)
            let t1 = DispatchTime.now().uptimeNanoseconds
            // On a sparse kernel the new pattern (built for the kernel anyway) and the
            // old one list the active positions: the change is a merge of the two lists.
            let pattern = layer.kernel.map { SparsePattern(mask: result.mask, columnOrder: $0.needsColumnOrder) }
            let tp = DispatchTime.now().uptimeNanoseconds
            let change = if let kernel = layer.kernel, let pattern {
                MaskChange(from: mask, positions: kernel.pattern.positions, to: result.mask, positions: pattern.positions,
                           ablatedRows: result.ablatedRows)
            } else {
                MaskChange(from: mask, to: result.mask, ablatedRows: result.ablatedRows)
            }
            layer.mask = result.mask
            layer.parameter.value.storage.withUnsafeMutableBufferPointer { w in
                layer.everActive.withUnsafeMutableBufferPointer { ever in
                    for i in change.grown { w[i] = 0; ever[i] = true }
                }
                for i in change.dropped { w[i] = 0 }
            }
            let t2 = DispatchTime.now().uptimeNanoseconds
            if let pattern { layer.kernel?.update(pattern: pattern) }
            let t3 = DispatchTime.now().uptimeNanoseconds
            timings.append(UpdateTiming(layer: layer.name, selection: Double(t1 - t0) * 1e-9,
                                        change: Double(t2 - tp) * 1e-9, rebuild: Double(tp - t1 + t3 - t2) * 1e-9))
            if change.dropped.count != change.grown.count, let switched = rechooseKernel(layer) {
                lastKernelSwitches.append(switched)
            }
            layer.accumulatedGradient = []
            layer.accumulatedPasses = 0
            updates.append((layer, change, fraction))
        }
        return updates
    }
}

/// Which kernel one masked layer trains through, and why.
public struct KernelChoice: Equatable, Sendable {
    public let layer: String
    /// `condensed` (constant fan-in) or `csr`.
    public let structure: String
    public let density: Double
    /// True: the sparse kernel; false: the dense kernel, masked after each step.
    public let sparse: Bool
    public let reason: String

    init(layer: SparseLayer, mode: SparseKernelMode) {
        self.layer = layer.name
        let mask = layer.mask ?? .dense(rows: layer.rows, columns: layer.columns)
        structure = SparsePattern(mask: mask).structureName
        density = Double(layer.activeCount) / Double(max(layer.parameter.value.count, 1))
        switch mode {
        case .on: sparse = true; reason = "sparse_kernels: on"
        case .off: sparse = false; reason = "sparse_kernels: off"
        case .auto:
            let (kind, crossover) = SparseKernelCrossover.crossover(for: layer.owner)
            sparse = density <= crossover
            reason = String(format: "auto: density %.3f %@ the %@ crossover %.2f", density,
                            sparse ? "≤" : ">", kind, crossover)
        }
    }

    /// One log line: `layer1.0.conv1: sparse (condensed) — auto: density 0.100 ≤ …`.
    public var description: String {
        "\(layer): \(sparse ? "sparse (\(structure))" : "dense, masked") — \(reason)"
    }
}

/// The densities at or below which `sparse_kernels: auto` puts a layer on the sparse
/// kernels, per layer kind, from `dst-bench kernel-crossover` (one layer's forward,
/// input gradient and weight gradient, dense kernel on the masked weight vs sparse
/// kernel, batch 128, 2 threads; README "Sparse training speed"): each at or a little
/// below the lowest density at which the two took equally long for a layer of its kind
/// in three runs of the crossover table, so a layer at the threshold does not lose
/// much. Fully connected layers 0.4 (break-even 0.45–0.6); 3×3 "same" convolutions on
/// planes 32 or more wide 0.6 (about 0.7 to above 0.8); on planes 16 to 31 wide, or 8 wide
/// with an even height (the kernels read shifted copies of 8×8 planes as of wider
/// ones), and stride-2 3×3 convolutions whose phase planes are at least 16 wide, 0.45
/// (28×28: 0.46–0.5; 16×16, 8×8 and the strided ones 0.58 to above 0.8); every other
/// convolution (strided on smaller planes, 1×1, planes under 8 wide or 8×odd: phase
/// planes of 8×8, im2col columns, masked loads, images side by side on 4×4) 0.35
/// (0.39 to 0.65). Fixed numbers, not a timing at start: the choice changes results in
/// the last bits, and a run must repeat exactly.
public enum SparseKernelCrossover {
    public static let linear = 0.4
    /// 3×3, stride 1, padding 1 on planes at least 32 wide (the direct sparse
    /// convolution on long rows).
    public static let largePlaneConvolution = 0.6
    /// 3×3, stride 1, padding 1 on planes 16 to 31 wide, or 8 wide with an even height;
    /// 3×3, stride 2, padding 1 on even planes at least 32 wide (phase planes 16 wide).
    public static let wideConvolution = 0.45
    /// Other convolutions: 3×3 on other planes (or of unknown size), strided on smaller
    /// planes, 1×1 (im2col columns through the fully connected products).
    public static let convolution = 0.35

    /// The layer kind's name and crossover (a convolution's plane size from its last
    /// forward pass, if any).
    public static func crossover(for layer: WeightLayer?) -> (kind: String, value: Double) {
        guard let conv = layer as? Conv2d else { return ("linear", linear) }
        if conv.kernelSize == 3 && conv.padding == 1, let plane = conv.inputPlane {
            if conv.stride == 1 && (plane.width >= 16 || (plane.width == 8 && plane.height % 2 == 0)) {
                return ("3x3 convolution on \(plane.height)x\(plane.width)",
                        plane.width >= 32 ? largePlaneConvolution : wideConvolution)
            }
            if conv.stride == 2 && plane.width >= 32 && plane.width % 2 == 0 && plane.height % 2 == 0 {
                return ("strided 3x3 convolution on \(plane.height)x\(plane.width)", wideConvolution)
            }
        }
        return ("convolution", convolution)
    }
}
