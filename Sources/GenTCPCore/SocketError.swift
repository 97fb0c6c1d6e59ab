/// The one error type of GenTCP: every failing call throws it, typed.
///
/// It wraps a ``Reason``, which names the failure as Erlang/OTP's `gen_tcp` and `inet` would
/// (`{error, econnrefused}` becomes `SocketError(.connectionRefused)`), and carries an optional
/// static detail for bad arguments, so that a wrong option says which one.
public struct SocketError: Error, Hashable, Sendable {
    /// Why the operation failed.
    public var reason: Reason
    /// A short static note on what exactly was wrong (e.g. `"buffer must be 1...16777216"`), or empty.
    public var detail: StaticString
    /// For ``Reason/tlsAlert``: the alert and whether this side generated it or received it.
    public var alert: TLSAlert?
    /// For ``Reason/tlsAlert``: `generated` (this side refused the peer) or `received`.
    public var alertOrigin: TLSAlertOrigin?

    /// An error with a reason and, for bad arguments, a note saying what was wrong.
    public init(_ reason: Reason, _ detail: StaticString = "") {
        self.reason = reason
        self.detail = detail
    }

    /// A TLS alert (`tls_alert`), naming the alert and the side that raised it.
    public init(alert: TLSAlert, origin: TLSAlertOrigin, _ detail: StaticString = "") {
        self.reason = .tlsAlert
        self.detail = detail
        self.alert = alert
        self.alertOrigin = origin
    }

    public static func == (lhs: SocketError, rhs: SocketError) -> Bool { lhs.reason == rhs.reason }
    public func hash(into hasher: inout Hasher) { hasher.combine(reason) }

    /// Lets tests and callers write `catch .closed`-style comparisons: `error == .closed`.
    public static func == (lhs: SocketError, rhs: Reason) -> Bool { lhs.reason == rhs }
}

extension SocketError {
    /// `closed`, with no detail: the socket is closed, or the stream ended.
    public static let closed = SocketError(.closed)
    /// `timeout`, with no detail: a `recv`, `accept`, `connect` or `send` ran out of time.
    public static let timeout = SocketError(.timeout)
    /// `enotconn`, with no detail: the connection is gone (after the end was reported once).
    public static let notConnected = SocketError(.notConnected)
    /// `einval`, with no detail: an invalid value for an open socket.
    public static let invalidArgument = SocketError(.invalidArgument)
    /// `ealready`, with no detail: another `recv` is already waiting on the socket.
    public static let alreadyInProgress = SocketError(.alreadyInProgress)
    /// `not_owner`, with no detail: only the controlling process may do this.
    public static let notOwner = SocketError(.notOwner)
    /// `badarg`, with no detail: a bad argument to a call that opens a socket.
    public static let badArgument = SocketError(.badArgument)
    /// `cancelled`, with no detail: the waiting task was cancelled, or its process exited.
    public static let cancelled = SocketError(.cancelled)
}

#if !hasFeature(Embedded)
extension SocketError: CustomStringConvertible {
    /// `atom: summary`, and the detail when there is one: e.g. `econnrefused: connection refused`;
    /// a TLS alert as OTP prints it, with the side: `tls_alert: unknown_ca, generated`.
    public var description: String {
        var text: String
        if reason == .tlsAlert, let alert, let alertOrigin {
            text = "\(reason.atom): \(alert.name), \(alertOrigin)"
        } else {
            text = "\(reason.atom): \(reason.summary)"
        }
        if detail.utf8CodeUnitCount > 0 { text += " (\(detail))" }
        return text
    }
}
#endif
