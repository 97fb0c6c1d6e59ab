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
/// | `{ssl, S, Data}` | `.ssl(S, payload)` |
/// | `{ssl_closed, S}` | `.sslClosed(S)` |
/// | `{ssl_error, S, Reason}` | `.sslError(S, error)` |
/// | `{ssl_passive, S}` | `.sslPassive(S)` |
/// | `{udp, S, IP, Port, Packet}` | `.udp(S, datagram)` |
/// | `{udp_passive, S}` | `.udpPassive(S)` |
/// | `{udp_error, S, Reason}` | `.udpError(S, reason)` |
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
    /// Decrypted data received in an active mode on a TLS socket: one or more whole TLS records
    /// (at most 16,384 bytes each), never split to `buffer` (as OTP's ssl).
    case ssl(Socket, Payload)
    /// The TLS peer closed with close_notify (after every byte it sent was delivered).
    case sslClosed(Socket)
    /// A TLS socket failed in an active mode: an alert (`tls_alert`, with the alert and its side in
    /// the error), `truncated` (the TCP stream ended without close_notify), `econnreset`... As in
    /// OTP's ssl, no `sslClosed` follows: the socket is dead.
    case sslError(Socket, SocketError)
    /// An `{active, N}` counter of a TLS socket reached 0.
    case sslPassive(Socket)
    /// One datagram received in an active mode (at most `buffer` bytes of it), with its sender.
    case udp(UDPSocket, Datagram)
    /// An `{active, N}` counter of a gen_udp socket reached 0.
    case udpPassive(UDPSocket)
    /// A receive error in an active mode, in practice `econnrefused` on a connected socket. The
    /// socket stays open and keeps its active state.
    case udpError(UDPSocket, SocketError.Reason)
    /// A message sent with ``Process/send(_:)``.
    case user(any Sendable)

    /// The gen_tcp (or TLS) socket this message is about, or nil for a gen_udp or user message.
    public var socket: Socket? {
        switch self {
        case .tcp(let s, _), .tcpClosed(let s), .tcpError(let s, _), .tcpPassive(let s): return s
        case .ssl(let s, _), .sslClosed(let s), .sslError(let s, _), .sslPassive(let s): return s
        case .udp, .udpPassive, .udpError, .user: return nil
        }
    }

    /// The gen_udp socket this message is about, or nil.
    public var udpSocket: UDPSocket? {
        switch self {
        case .udp(let s, _), .udpPassive(let s), .udpError(let s, _): return s
        case .tcp, .tcpClosed, .tcpError, .tcpPassive, .ssl, .sslClosed, .sslError, .sslPassive, .user:
            return nil
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
        case .ssl(let s, let p): return "{ssl, \(s), \(p.count) bytes}"
        case .sslClosed(let s): return "{ssl_closed, \(s)}"
        case .sslError(let s, let e): return "{ssl_error, \(s), \(Message.term(e))}"
        case .sslPassive(let s): return "{ssl_passive, \(s)}"
        case .udp(let s, let d): return "{udp, \(s), \(d.address), \(d.port), \(d.payload.count) bytes}"
        case .udpPassive(let s): return "{udp_passive, \(s)}"
        case .udpError(let s, let r): return "{udp_error, \(s), \(r.atom)}"
        case .user(let v): return "\(v)"
        }
    }
}

extension Message {
    /// An error as OTP writes it inside a message: `{tls_alert,{unknown_ca,generated}}` or the atom.
    static func term(_ error: SocketError) -> String {
        if error.reason == .tlsAlert, let alert = error.alert, let origin = error.alertOrigin {
            return "{tls_alert,{\(alert.name),\(origin)}}"
        }
        return "\(error.reason.atom)"
    }
}
