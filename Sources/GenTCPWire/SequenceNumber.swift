/// A TCP sequence number: a 32-bit value compared modulo 2^32 (RFC 9293 §3.4).
///
/// Arithmetic wraps. `a < b` holds when `b` is ahead of `a` by 1 ... 2^31 − 1 (RFC 1982
/// serial-number arithmetic with SERIAL_BITS = 32). Two numbers exactly 2^31 apart are
/// *not comparable*: neither is less than the other, as RFC 1982 leaves that case undefined.
/// That is why the type offers the operators but does not conform to `Comparable`, whose
/// total order sorting algorithms rely on.
public struct SequenceNumber: Hashable, Sendable {
    /// The 32-bit value as on the wire.
    public var rawValue: UInt32

    /// The sequence number with this 32-bit value.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The sequence number with this 32-bit value (the short spelling).
    public init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The number `count` ahead (behind, when negative), wrapping.
    public func advanced(by count: Int) -> SequenceNumber {
        SequenceNumber(rawValue: rawValue &+ UInt32(truncatingIfNeeded: count))
    }

    /// How far `other` is ahead of `self`, as a signed 32-bit distance: negative when it is
    /// behind. For numbers exactly 2^31 apart it is `Int32.min`.
    public func distance(to other: SequenceNumber) -> Int32 {
        Int32(bitPattern: other.rawValue &- rawValue)
    }

    /// True when `self` lies in the window of `size` numbers starting at `start`:
    /// `start <= self < start + size`, modulo 2^32 (the form of RFC 9293's acceptability tests).
    /// Always false for a window of size 0.
    public func isInWindow(start: SequenceNumber, size: UInt32) -> Bool {
        rawValue &- start.rawValue < size
    }

    /// The number `rhs` ahead of `lhs`, wrapping.
    public static func + (lhs: SequenceNumber, rhs: UInt32) -> SequenceNumber {
        SequenceNumber(rawValue: lhs.rawValue &+ rhs)
    }

    /// The number `rhs` behind `lhs`, wrapping.
    public static func - (lhs: SequenceNumber, rhs: UInt32) -> SequenceNumber {
        SequenceNumber(rawValue: lhs.rawValue &- rhs)
    }

    /// Moves `lhs` `rhs` ahead, wrapping.
    public static func += (lhs: inout SequenceNumber, rhs: UInt32) {
        lhs.rawValue &+= rhs
    }

    /// Moves `lhs` `rhs` back, wrapping.
    public static func -= (lhs: inout SequenceNumber, rhs: UInt32) {
        lhs.rawValue &-= rhs
    }

    /// `rhs` is ahead of `lhs` by 1 ... 2^31 − 1.
    public static func < (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool {
        let ahead = rhs.rawValue &- lhs.rawValue
        return ahead != 0 && ahead < 0x8000_0000
    }

    /// `lhs` is ahead of `rhs` by 1 ... 2^31 − 1.
    public static func > (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool { rhs < lhs }
    /// Equal, or `rhs` is ahead of `lhs` by 1 ... 2^31 − 1.
    public static func <= (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool { lhs == rhs || lhs < rhs }
    /// Equal, or `lhs` is ahead of `rhs` by 1 ... 2^31 − 1.
    public static func >= (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool { lhs == rhs || rhs < lhs }
}

#if !hasFeature(Embedded)
extension SequenceNumber: CustomStringConvertible {
    public var description: String { "\(rawValue)" }
}
#endif
