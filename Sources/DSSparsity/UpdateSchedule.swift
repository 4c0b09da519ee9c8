import Foundation

/// When masks change and by how much (docs/algorithms.md §3): an update every `ΔT` optimizer steps
/// while `T_start ≤ t < T_end`, dropping the fraction `f(t) = α/2 · (1 + cos(π·t / T_end))`.
public struct UpdateSchedule: Equatable, Sendable {
    /// `ΔT`: optimizer steps between mask updates.
    public var interval: Int
    /// `T_end`: the last step (exclusive) at which masks may change.
    public var endStep: Int
    /// `α`: the drop fraction at step 0, decayed by a cosine to 0 at `T_end`.
    public var initialDropFraction: Double
    /// `T_start`: the first step at which masks may change (0: from the start).
    public var startStep: Int

    public init(interval: Int, endStep: Int, initialDropFraction: Double, startStep: Int = 0) {
        precondition(interval > 0, "UpdateSchedule: interval must be positive")
        self.interval = interval; self.endStep = endStep; self.initialDropFraction = initialDropFraction
        self.startStep = startStep
    }

    /// The schedule for `totalSteps` optimizer steps with `T_end = endFraction · totalSteps`
    /// and `T_start = startFraction · totalSteps`.
    public init(interval: Int, endFraction: Double, dropFraction: Double, totalSteps: Int, startFraction: Double = 0) {
        self.init(interval: interval, endStep: Int((endFraction * Double(totalSteps)).rounded(.down)),
                  initialDropFraction: dropFraction, startStep: Int((startFraction * Double(totalSteps)).rounded(.down)))
    }

    /// True when the mask update runs after optimizer step `step` (1-based count of
    /// steps taken): `step` is a multiple of `ΔT` in `[T_start, T_end)`.
    public func isUpdate(afterStep step: Int) -> Bool {
        step > 0 && step % interval == 0 && step >= startStep && step < endStep
    }

    /// True when the backward pass of optimizer step `step` (1-based) must produce the
    /// dense gradient: an update follows within `accumulation` steps (the update step
    /// and the `accumulation − 1` steps before it, whose gradients it averages).
    public func readsDenseGradient(atStep step: Int, accumulation: Int) -> Bool {
        let nextUpdate = (step + interval - 1) / interval * interval
        return nextUpdate - step < accumulation && isUpdate(afterStep: nextUpdate)
    }

    /// `f(t) = α/2 · (1 + cos(π·t / T_end))`, 0 from `T_end` on.
    public func dropFraction(atStep step: Int) -> Double {
        guard step < endStep, endStep > 0 else { return 0 }
        return initialDropFraction / 2 * (1 + cos(Double.pi * Double(step) / Double(endStep)))
    }

    /// The last update step, if any.
    public var lastUpdateStep: Int? {
        guard endStep > 1 else { return nil }
        let last = (endStep - 1) / interval * interval
        return isUpdate(afterStep: last) ? last : nil
    }

    /// Gradual pruning's progress `p = (t − T_start) / (T_last − T_start)` in [0, 1],
    /// `T_last` the last update step, so the last update reaches the target (1 when
    /// there is at most one update).
    public func pruningProgress(atStep step: Int) -> Double {
        guard let last = lastUpdateStep, last > startStep else { return 1 }
        return min(max(Double(step - startStep) / Double(last - startStep), 0), 1)
    }
}
