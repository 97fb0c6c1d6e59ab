/// Faults a ``MemoryLink`` injects on the line, each with a probability, drawn from a seeded
/// generator so that the same seed (and the same traffic) gives the same faults.
///
/// - **Drop**: a byte is lost on the line (it still takes its time on the wire), as after a
///   framing error or a UART overrun.
/// - **Bit flip**: one bit, chosen uniformly, of a byte is inverted, as after line noise.
/// - **Noise**: when a write starts on an idle line (between frames, typically), 1 to
///   ``maxNoiseBytes`` random bytes go on the line ahead of it, as from a board printing boot
///   messages or a floating RX line.
///
/// Each direction draws from its own generator, in transmission order, one draw per fault kind
/// that is switched on (a probability of 0 draws nothing).
public struct LineFaults: Hashable, Sendable {
    /// Chance that a byte is dropped, 0...1.
    public var dropProbability: Double
    /// Chance that a (not dropped) byte has one bit flipped, 0...1.
    public var bitFlipProbability: Double
    /// Chance that noise precedes a write that starts on an idle line, 0...1.
    public var noiseProbability: Double
    /// Most noise bytes inserted at once (at least 1).
    public var maxNoiseBytes: Int

    /// Faults with the given probabilities (none by default); `maxNoiseBytes` below 1 counts as 1.
    public init(dropProbability: Double = 0, bitFlipProbability: Double = 0,
                noiseProbability: Double = 0, maxNoiseBytes: Int = 8) {
        self.dropProbability = dropProbability
        self.bitFlipProbability = bitFlipProbability
        self.noiseProbability = noiseProbability
        self.maxNoiseBytes = max(1, maxNoiseBytes)
    }

    /// A perfect line.
    public static let none = LineFaults()
}

/// What the line toward one end of a ``MemoryLink`` did to its bytes so far.
public struct LineFaultCounts: Hashable, Sendable {
    /// Bytes dropped.
    public var dropped = 0
    /// Bytes with a bit flipped.
    public var flipped = 0
    /// Noise bytes inserted.
    public var noiseBytes = 0
    /// Bytes delivered into the receive buffer (noise and flipped bytes included).
    public var delivered = 0

    /// Every counter at zero.
    public init() {}
}

/// The fault generator: SplitMix64 (Steele, Lea and Flood, 2014), 64 bits of state.
struct FaultRandom: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `p`; draws nothing when `p` <= 0, always true when `p` >= 1.
    mutating func chance(_ p: Double) -> Bool {
        if p <= 0 { return false }
        if p >= 1 { return true }
        return Double(next() >> 11) * 0x1p-53 < p
    }

    /// A value in `0..<bound` (bound > 0).
    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }
}
