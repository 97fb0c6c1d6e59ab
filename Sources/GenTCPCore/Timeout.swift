/// A timeout as `gen_tcp` takes it: milliseconds, or `infinity`.
///
/// An integer literal is milliseconds: `recv(0, timeout: 100)`. Zero polls. Swift's `Duration`
/// works too: `timeout: .seconds(2)`, `timeout: .milliseconds(250)`, `Timeout(someDuration)`.
public enum Timeout: Hashable, Sendable, ExpressibleByIntegerLiteral {
    /// Wait forever (`infinity`).
    case infinity
    /// Wait at most this many milliseconds; 0 polls.
    case milliseconds(Int)

    /// `value` milliseconds: an integer literal is milliseconds, as in `gen_tcp`.
    public init(integerLiteral value: Int) { self = .milliseconds(value) }

    /// `duration`, rounded up to whole milliseconds (a timeout never ends before it was asked
    /// to), saturating at `Int.max`. A negative duration stays negative, so ``validated()``
    /// refuses it as OTP refuses a negative timeout.
    ///
    /// Emitted into the caller (as the other `Duration` conversions here): firmware that never
    /// converts a `Duration` carries none of its 128-bit arithmetic.
    @_alwaysEmitIntoClient
    public init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        // Attoseconds are within one second and share the sign of seconds.
        let perMillisecond: Int64 = 1_000_000_000_000_000
        var fraction = attoseconds / perMillisecond
        if attoseconds % perMillisecond > 0 { fraction += 1 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        let (total, overflow2) = whole.addingReportingOverflow(fraction)
        if overflow || overflow2 || total > Int64(Int.max) || total < Int64(Int.min) {
            self = .milliseconds(seconds < 0 ? Int.min : Int.max)
        } else {
            self = .milliseconds(Int(total))
        }
    }

    /// At most `seconds` seconds: `timeout: .seconds(2)` (saturating at `Int.max` milliseconds).
    @_alwaysEmitIntoClient
    public static func seconds(_ seconds: Int) -> Timeout {
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return .milliseconds(overflow ? (seconds < 0 ? Int.min : Int.max) : ms)
    }

    /// The timeout as a `Duration`, or nil for infinity.
    @_alwaysEmitIntoClient
    public var duration: Duration? {
        switch self {
        case .infinity: return nil
        case .milliseconds(let ms): return .milliseconds(ms)
        }
    }

    /// The timeout in nanoseconds, or nil for infinity. Negative values are treated as 0.
    public var nanoseconds: UInt64? {
        switch self {
        case .infinity: return nil
        case .milliseconds(let ms):
            if ms <= 0 { return 0 }
            let (value, overflow) = UInt64(ms).multipliedReportingOverflow(by: 1_000_000)
            return overflow ? UInt64.max : value
        }
    }

    /// Checks the value as OTP would: a negative timeout is a programming error (`badarg`).
    public func validated() throws(SocketError) -> Timeout {
        if case .milliseconds(let ms) = self, ms < 0 {
            throw SocketError(.badArgument, "timeout must be >= 0 milliseconds or infinity")
        }
        return self
    }
}
