/// The active state of a socket: how received data reaches the controlling process.
///
/// OTP's `{active, false | true | once | N}`:
/// - ``passive`` (`false`): nothing is delivered; data waits (in the kernel, the stack or the
///   modem) until `recv` pulls it.
/// - ``active`` (`true`): every chunk is delivered as a `.tcp` message, at most `buffer` bytes each.
/// - ``once``: one message, then the socket turns passive.
/// - ``count(_:)`` (`N`, 1...32767): N messages, then passive plus a `.tcpPassive` message.
public enum ActiveMode: Hashable, Sendable {
    /// `{active, false}`: data stays with the driver until `recv` asks for it.
    case passive
    /// `{active, true}`: every chunk that arrives becomes a `.tcp` message, with no flow control
    /// from the owner (the `buffer` size caps each message, not their number).
    case active
    /// `{active, once}`: the next chunk becomes a `.tcp` message, then the socket is passive
    /// again; no `.tcpPassive` follows.
    case once
    /// `{active, N}`: as a request, N is added to the current counter (see ``applying(_:)``); as a
    /// state, N (1...32767) messages remain before the socket turns passive and sends
    /// `.tcpPassive`.
    case count(Int)

    /// The largest counter OTP allows.
    public static let maximumCount = 32767
    /// The smallest increment `setopts` accepts.
    public static let minimumIncrement = -32768

    /// True for every mode that delivers messages.
    public var delivers: Bool {
        switch self {
        case .passive: return false
        case .active, .once: return true
        case .count(let n): return n > 0
        }
    }

    /// Outcome of applying `{active, X}` to the current state.
    public struct Change: Hashable, Sendable {
        /// The new state.
        public var mode: ActiveMode
        /// True when OTP sends `{tcp_passive, S}` because of this change.
        public var sendsPassive: Bool

        /// A change to `mode`, with or without a `tcp_passive` message.
        public init(mode: ActiveMode, sendsPassive: Bool) {
            self.mode = mode
            self.sendsPassive = sendsPassive
        }
    }

    /// Applies a requested mode to the current one with OTP's rules:
    /// an integer is *added* to a numeric counter (from `true`/`once`/`false` it starts from 0);
    /// a result above 32767, or an increment outside -32768...32767, is `einval` and changes nothing;
    /// a result of 0 or below clamps to 0, turns the socket passive and sends `tcp_passive`.
    ///
    /// - Parameter requested: the mode given to `setopts` (or in an open option list).
    /// - Returns: the new state, and whether `tcp_passive` is due.
    /// - Throws: `einval` for an increment outside -32768...32767 or a sum above 32767.
    public func applying(_ requested: ActiveMode) throws(SocketError) -> Change {
        guard case .count(let increment) = requested else {
            return Change(mode: requested, sendsPassive: false)
        }
        guard increment >= ActiveMode.minimumIncrement, increment <= ActiveMode.maximumCount else {
            throw SocketError(.invalidArgument, "active count increment must be -32768...32767")
        }
        let base: Int
        if case .count(let current) = self { base = current } else { base = 0 }
        let sum = base + increment
        if sum > ActiveMode.maximumCount {
            throw SocketError(.invalidArgument, "active count would exceed 32767")
        }
        if sum <= 0 { return Change(mode: .passive, sendsPassive: true) }
        return Change(mode: .count(sum), sendsPassive: false)
    }

    /// The state after one data message was delivered, and whether `tcp_passive` follows it.
    public func afterDelivery() -> Change {
        switch self {
        case .passive, .active: return Change(mode: self, sendsPassive: false)
        case .once: return Change(mode: .passive, sendsPassive: false)
        case .count(let n):
            if n <= 1 { return Change(mode: .passive, sendsPassive: true) }
            return Change(mode: .count(n - 1), sendsPassive: false)
        }
    }
}
