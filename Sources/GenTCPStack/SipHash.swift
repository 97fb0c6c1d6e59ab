/// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash, the pseudorandom function
/// behind the stack's initial sequence numbers (RFC 6528 §3 asks for a keyed hash of the
/// connection's addresses and ports). Standard library only; nothing is allocated.
struct SipHash24 {
    private var v0: UInt64
    private var v1: UInt64
    private var v2: UInt64
    private var v3: UInt64
    /// Bytes not yet folded in (fewer than 8), low byte first.
    private var tail: UInt64 = 0
    private var length = 0

    /// A hasher keyed with the 128-bit key `k0`, `k1` (`k0` holds the key's first 8 bytes,
    /// little-endian).
    init(k0: UInt64, k1: UInt64) {
        v0 = k0 ^ 0x736f_6d65_7073_6575
        v1 = k1 ^ 0x646f_7261_6e64_6f6d
        v2 = k0 ^ 0x6c79_6765_6e65_7261
        v3 = k1 ^ 0x7465_6462_7974_6573
    }

    private mutating func round() {
        v0 &+= v1
        v1 = v1.rotated(13)
        v1 ^= v0
        v0 = v0.rotated(32)
        v2 &+= v3
        v3 = v3.rotated(16)
        v3 ^= v2
        v0 &+= v3
        v3 = v3.rotated(21)
        v3 ^= v0
        v2 &+= v1
        v1 = v1.rotated(17)
        v1 ^= v2
        v2 = v2.rotated(32)
    }

    private mutating func compress(_ block: UInt64) {
        v3 ^= block
        round()
        round()
        v0 ^= block
    }

    /// Adds one byte to the message.
    mutating func combine(_ byte: UInt8) {
        tail |= UInt64(byte) << UInt64(8 * (length & 7))
        length += 1
        if length & 7 == 0 {
            compress(tail)
            tail = 0
        }
    }

    /// Adds `value`'s bytes, most significant first (network order).
    mutating func combine(bigEndian value: UInt32) {
        combine(UInt8(truncatingIfNeeded: value >> 24))
        combine(UInt8(truncatingIfNeeded: value >> 16))
        combine(UInt8(truncatingIfNeeded: value >> 8))
        combine(UInt8(truncatingIfNeeded: value))
    }

    /// Adds `value`'s bytes, most significant first (network order).
    mutating func combine(bigEndian value: UInt16) {
        combine(UInt8(truncatingIfNeeded: value >> 8))
        combine(UInt8(truncatingIfNeeded: value))
    }

    /// The hash of the bytes added.
    consuming func finalize() -> UInt64 {
        compress(tail | UInt64(truncatingIfNeeded: length) << 56)
        v2 ^= 0xFF
        round()
        round()
        round()
        round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}

extension UInt64 {
    fileprivate func rotated(_ bits: UInt64) -> UInt64 {
        (self << bits) | (self >> (64 - bits))
    }
}
