import GenTCPWire

/// The stack's own generator (SplitMix64), seeded by the caller: no global randomness, and a
/// seed replays a run exactly. Used for ephemeral ports and the first IP ID, and to derive the
/// secret key of the initial sequence numbers (``InitialSequenceNumbers``).
struct StackRandom {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next32() -> UInt32 {
        UInt32(truncatingIfNeeded: next() >> 16)
    }
}

/// Initial sequence numbers as RFC 6528 §3 gives them: ISN = M + F(localip, localport, remoteip,
/// remoteport, secretkey), where M is a clock of 4-microsecond ticks (the driver's milliseconds
/// × 250) and F is SipHash-2-4 keyed with a 128-bit secret derived from the seed. A new
/// connection to the same peer and ports starts ahead of the old one's sequence space (the clock
/// moved on), while an off-path attacker who does not know the secret cannot guess any ISN.
struct InitialSequenceNumbers {
    private var k0: UInt64
    private var k1: UInt64

    /// The secret derived from `seed` (SplitMix64 of a stream of its own, so that it tells
    /// nothing about the stack's other random choices).
    init(seed: UInt64) {
        var derive = StackRandom(seed: seed ^ 0x6528_6528_6528_6528)
        k0 = derive.next()
        k1 = derive.next()
    }

    /// The ISN for a connection between `local`:`localPort` and `remote`:`remotePort` opened at
    /// `now` (milliseconds).
    func next(
        local: IPv4Address, localPort: UInt16, remote: IPv4Address, remotePort: UInt16, now: Int64
    ) -> SequenceNumber {
        var hasher = SipHash24(k0: k0, k1: k1)
        hasher.combine(bigEndian: local.rawValue)
        hasher.combine(bigEndian: localPort)
        hasher.combine(bigEndian: remote.rawValue)
        hasher.combine(bigEndian: remotePort)
        let f = UInt32(truncatingIfNeeded: hasher.finalize())
        let m = UInt32(truncatingIfNeeded: now &* 250)
        return SequenceNumber(m &+ f)
    }
}
