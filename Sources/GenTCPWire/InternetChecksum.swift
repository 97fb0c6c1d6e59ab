/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of
/// the data taken as big-endian 16-bit words, an odd last byte padded with a zero byte.
///
/// It is incremental: ``add(_:)-(UnsafeRawBufferPointer)`` may be called any number of times with
/// pieces of any length, odd ones included, and the result is that of the concatenation. Seed it
/// with ``ipv4PseudoHeader(source:destination:protocol:length:)`` for TCP and UDP.
///
/// ```swift
/// var sum = InternetChecksum.ipv4PseudoHeader(source: a, destination: b, protocol: .tcp, length: n)
/// sum.add(segmentBytes)            // with the checksum field as received
/// let ok = sum.verifies            // or, for emitting: field = sum.checksum (field zeroed first)
/// ```
public struct InternetChecksum: Sendable {
    /// Running sum of 16-bit words; folded before it could overflow.
    private var accumulator: UInt64 = 0
    /// True when an odd number of bytes has been added: the last one waits for its partner.
    private var hasOddByte = false
    /// That byte, already shifted into the high half of its word.
    private var oddWord: UInt16 = 0

    /// An empty sum.
    public init() {}

    /// The sum of the pseudo-header that TCP and UDP over IPv4 include in their checksum
    /// (RFC 9293 §3.1, RFC 768): source, destination, a zero byte, the protocol, and the length
    /// of the TCP or UDP header plus data.
    public static func ipv4PseudoHeader(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol, length: UInt16
    ) -> InternetChecksum {
        var sum = InternetChecksum()
        sum.add(source.rawValue)
        sum.add(destination.rawValue)
        sum.add(UInt16(`protocol`.rawValue))
        sum.add(length)
        return sum
    }

    /// Adds bytes that follow everything added so far.
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        let count = bytes.count
        guard count > 0 else { return }
        if hasOddByte {
            accumulator &+= UInt64(oddWord | UInt16(bytes[0]))
            hasOddByte = false
            index = 1
        }
        // Four bytes at a time: 2^16 ≡ 1 (mod 2^16 − 1), so summing 32-bit big-endian words and
        // folding gives the same one's complement sum as 16-bit words. A UInt64 holds 2^32 such
        // words before it can overflow, far beyond any buffer this is given.
        var sum: UInt64 = 0
        while count - index >= 4 {
            sum &+= UInt64(bytes.uint32(at: index))
            index += 4
        }
        if count - index >= 2 {
            sum &+= UInt64(bytes.uint16(at: index))
            index += 2
        }
        if index < count {
            hasOddByte = true
            oddWord = UInt16(bytes[index]) << 8
        }
        accumulator = Self.fold32(accumulator &+ Self.fold32(sum))
    }

    /// Adds a 16-bit value as two bytes, most significant first.
    public mutating func add(_ value: UInt16) {
        if hasOddByte {
            // The stream is at an odd offset: the high byte completes the pending word.
            accumulator &+= UInt64(oddWord | (value >> 8))
            oddWord = (value & 0xFF) << 8
        } else {
            accumulator &+= UInt64(value)
        }
    }

    /// Adds a 32-bit value as four bytes, most significant first.
    public mutating func add(_ value: UInt32) {
        add(UInt16(truncatingIfNeeded: value >> 16))
        add(UInt16(truncatingIfNeeded: value))
    }

    /// The one's complement sum so far, folded to 16 bits (a pending odd byte is padded with a
    /// zero byte). 0 only when everything added was zero.
    public var sum: UInt16 {
        var total = accumulator
        if hasOddByte { total &+= UInt64(oddWord) }
        var folded = Self.fold32(total)
        while folded > 0xFFFF { folded = (folded & 0xFFFF) + (folded >> 16) }
        return UInt16(folded)
    }

    /// The value for a checksum field: the complement of ``sum``. Compute it with the checksum
    /// field itself added as zero.
    public var checksum: UInt16 { ~sum }

    /// True when the data, checksum field included, sums to 0xFFFF: what a correct checksum gives.
    public var verifies: Bool { sum == 0xFFFF }

    /// Folds a 64-bit sum to at most 17 bits without changing it modulo 2^16 − 1.
    @inline(__always)
    private static func fold32(_ value: UInt64) -> UInt64 {
        var v = (value & 0xFFFF_FFFF) + (value >> 32)
        v = (v & 0xFFFF) + (v >> 16)
        return (v & 0xFFFF) + (v >> 16)
    }

    /// The checksum after one 16-bit word covered by it changes from `old` to `new`, without
    /// summing the data again (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`).
    ///
    /// Use it for in-place edits such as decrementing a TTL. When `old == new` the checksum is
    /// returned unchanged (RFC 1624 erratum 4782).
    public static func updating(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16 {
        guard old != new else { return checksum }
        var total = UInt32(~checksum) + UInt32(~old) + UInt32(new)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        return ~UInt16(total)
    }
}
