/// A timeout as `gen_tcp` takes it: milliseconds, or `infinity`.
///
/// An integer literal is milliseconds: `recv(0, timeout: 100)`. Zero polls.
public enum Timeout: Hashable, Sendable, ExpressibleByIntegerLiteral {
    /// Wait forever (`infinity`).
    case infinity
    /// Wait at most this many milliseconds; 0 polls.
    case milliseconds(Int)

    public init(integerLiteral value: Int) { self = .milliseconds(value) }

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
