/// A point on the caller's monotonic clock, in milliseconds from any origin.
///
/// The engine never reads a clock: every call that can start or check a timer takes `now`, and
/// ``ModemEngine/nextDeadline`` says when to call back. Arithmetic saturates instead of trapping.
public struct ModemInstant: Comparable, Sendable {
    /// Milliseconds since the caller's origin.
    public var milliseconds: UInt64

    /// The instant `milliseconds` after the caller's origin.
    public init(milliseconds: UInt64) { self.milliseconds = milliseconds }

    /// The instant `delay` milliseconds later, saturating at the end of time.
    public func advanced(by delay: UInt32) -> ModemInstant {
        let (sum, overflow) = milliseconds.addingReportingOverflow(UInt64(delay))
        return ModemInstant(milliseconds: overflow ? UInt64.max : sum)
    }

    public static func < (lhs: ModemInstant, rhs: ModemInstant) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }
}
