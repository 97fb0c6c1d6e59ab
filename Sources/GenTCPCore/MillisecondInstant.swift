/// A point on the caller's monotonic clock, in whole milliseconds from any origin: the one clock
/// type of the embedded-safe cores (`GenTCPStack`'s `now` and deadlines, `GenTCPModem`'s engine).
///
/// The cores never read a clock: every call that can start or check a timer takes `now`, and
/// they answer their next deadline in the same type. An integer literal is milliseconds
/// (`stack.poll(now: 1500)`); the origin is the caller's, so values before it are negative.
/// Arithmetic saturates instead of trapping: firmware clocks run for months.
public struct MillisecondInstant: Comparable, Hashable, Sendable, ExpressibleByIntegerLiteral {
    /// Milliseconds since the caller's origin.
    public var milliseconds: Int64

    /// The instant `milliseconds` after the caller's origin.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// The instant `value` milliseconds after the caller's origin.
    public init(integerLiteral value: Int64) { milliseconds = value }

    /// The instant `delay` milliseconds later, saturating at the end of time.
    public func advanced(by delay: UInt32) -> MillisecondInstant {
        advanced(byMilliseconds: Int64(delay))
    }

    /// The instant `delta` milliseconds later (earlier when negative), saturating.
    public func advanced(byMilliseconds delta: Int64) -> MillisecondInstant {
        let (sum, overflow) = milliseconds.addingReportingOverflow(delta)
        return MillisecondInstant(milliseconds: overflow ? (delta < 0 ? .min : .max) : sum)
    }

    /// Milliseconds from `earlier` to this instant (negative when `earlier` is later), saturating.
    public func milliseconds(since earlier: MillisecondInstant) -> Int64 {
        let (difference, overflow) = milliseconds.subtractingReportingOverflow(earlier.milliseconds)
        return overflow ? (earlier.milliseconds < 0 ? .max : .min) : difference
    }

    /// Whether `lhs` comes before `rhs`.
    public static func < (lhs: MillisecondInstant, rhs: MillisecondInstant) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }
}

/// A span of whole milliseconds: the embedded-safe cores' settings (RTOs, delays, timeouts),
/// beside ``MillisecondInstant`` for the points on the clock. An integer literal is milliseconds
/// (`ackDelay: 20`); arithmetic on instants saturates.
public struct Milliseconds: Comparable, Hashable, Sendable, ExpressibleByIntegerLiteral {
    /// The span in milliseconds.
    public var value: Int64

    /// A span of `value` milliseconds.
    public init(_ value: Int64) { self.value = value }

    /// A span of `value` milliseconds.
    public init(integerLiteral value: Int64) { self.value = value }

    /// A span of `seconds` whole seconds, saturating.
    public static func seconds(_ seconds: Int64) -> Milliseconds {
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return Milliseconds(overflow ? (seconds < 0 ? .min : .max) : ms)
    }

    /// Whether `lhs` is shorter than `rhs`.
    public static func < (lhs: Milliseconds, rhs: Milliseconds) -> Bool { lhs.value < rhs.value }
}

extension MillisecondInstant {
    /// The instant `span` later (earlier when negative), saturating.
    public func advanced(by span: Milliseconds) -> MillisecondInstant {
        advanced(byMilliseconds: span.value)
    }
}
