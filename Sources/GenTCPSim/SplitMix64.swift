/// A small deterministic pseudo-random generator (SplitMix64): 64 bits of state, one
/// multiply-xorshift mix per draw. Every fault decision of a ``SimNetwork`` comes from one of
/// these, seeded with the network's seed, so a seed replays the same faults at the same points.
public struct SplitMix64: RandomNumberGenerator, Hashable, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in `0..<1` with 53 bits of precision.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// True with probability `p` (never for p <= 0, always for p >= 1; draws only in between,
    /// so a fault switched off consumes nothing).
    public mutating func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return nextUnit() < p
    }

    /// A uniform integer in `0...bound`.
    public mutating func upTo(_ bound: UInt64) -> UInt64 {
        if bound == 0 { return 0 }
        if bound == .max { return next() }
        return next(upperBound: bound + 1)
    }
}
