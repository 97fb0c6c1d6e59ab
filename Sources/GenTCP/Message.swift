import GenTCPCore

/// What a process's mailbox holds: the socket messages of `gen_tcp`, and anything processes send
/// each other.
///
/// | OTP | here |
/// |---|---|
/// | `{tcp, S, Data}` | `.tcp(S, payload)` |
/// | `{tcp_closed, S}` | `.tcpClosed(S)` |
/// | `{tcp_error, S, Reason}` | `.tcpError(S, reason)` |
/// | `{tcp_passive, S}` | `.tcpPassive(S)` |
/// | `Pid ! Term` | `.user(term)` |
public enum Message: Sendable {
    /// Data received in an active mode, at most `buffer` bytes.
    case tcp(Socket, Payload)
    /// The peer closed (or reset, unless `showEconnreset`), or the listener closed before accept.
    case tcpClosed(Socket)
    /// An error in an active mode; `econnreset` is followed by `tcpClosed`.
    case tcpError(Socket, SocketError.Reason)
    /// An `{active, N}` counter reached 0.
    case tcpPassive(Socket)
    /// A message sent with ``Process/send(_:)``.
    case user(any Sendable)

    /// The socket this message is about, or nil for a user message.
    public var socket: Socket? {
        switch self {
        case .tcp(let s, _), .tcpClosed(let s), .tcpError(let s, _), .tcpPassive(let s): return s
        case .user: return nil
        }
    }
}

extension Message: CustomStringConvertible {
    /// The message as OTP would print it, data as a count: `{tcp, #Port<0.3>, 5 bytes}`,
    /// `{tcp_closed, #Port<0.3>}`, `{tcp_error, #Port<0.3>, econnreset}`.
    public var description: String {
        switch self {
        case .tcp(let s, let p): return "{tcp, \(s), \(p.count) bytes}"
        case .tcpClosed(let s): return "{tcp_closed, \(s)}"
        case .tcpError(let s, let r): return "{tcp_error, \(s), \(r.atom)}"
        case .tcpPassive(let s): return "{tcp_passive, \(s)}"
        case .user(let v): return "\(v)"
        }
    }
}
