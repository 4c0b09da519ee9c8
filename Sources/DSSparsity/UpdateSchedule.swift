import Foundation

/// When masks change and by how much (docs/algorithms.md §3): an update every `ΔT` optimizer steps
/// while `t < T_end`, dropping the fraction `f(t) = α/2 · (1 + cos(π·t / T_end))`.
public struct UpdateSchedule: Equatable, Sendable {
    /// `ΔT`: optimizer steps between mask updates.
    public var interval: Int
    /// `T_end`: the last step (exclusive) at which masks may change.
    public var endStep: Int
    /// `α`: the drop fraction at step 0, decayed by a cosine to 0 at `T_end`.
    public var initialDropFraction: Double

    public init(interval: Int, endStep: Int, initialDropFraction: Double) {
        precondition(interval > 0, "UpdateSchedule: interval must be positive")
        self.interval = interval; self.endStep = endStep; self.initialDropFraction = initialDropFraction
    }

    /// The schedule for `totalSteps` optimizer steps with `T_end = endFraction · totalSteps`.
    public init(interval: Int, endFraction: Double, dropFraction: Double, totalSteps: Int) {
        self.init(interval: interval, endStep: Int((endFraction * Double(totalSteps)).rounded(.down)),
                  initialDropFraction: dropFraction)
    }

    /// True when the mask update runs after optimizer step `step` (1-based count of
    /// steps taken): `step` is a multiple of `ΔT` and below `T_end`.
    public func isUpdate(afterStep step: Int) -> Bool {
        step > 0 && step % interval == 0 && step < endStep
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
}
