import GenTCPCore

/// A socket of a board program (gen_tcp's `Socket`): a slot and its generation, so a closed
/// socket's handle is refused with `closed` rather than reaching its slot's next user.
public struct BoardSocket: Hashable, Sendable {
    /// The slot in the socket table.
    public let index: UInt16
    /// The slot's generation when the socket was made.
    public let generation: UInt16
}

/// A listening socket of a board program (gen_tcp's `ListenSocket`).
public struct BoardListener: Hashable, Sendable {
    /// The slot in the listener table.
    public let index: UInt16
    /// The slot's generation when the listener was made.
    public let generation: UInt16
}

/// What a board program receives: gen_tcp's messages, and the answers of the calls that would
/// block in Erlang (`connect`, `accept`, `recv` with a length or a timeout), which a run loop
/// without threads delivers as messages instead.
///
/// | Erlang | here |
/// |---|---|
/// | `{tcp, S, Data}` | ``tcp(_:_:)`` |
/// | `{tcp_closed, S}` | ``tcpClosed(_:)`` |
/// | `{tcp_error, S, Reason}` | ``tcpError(_:_:)`` (an `econnreset` one is followed by `tcpClosed`) |
/// | `{tcp_passive, S}` | ``tcpPassive(_:)`` |
/// | `gen_tcp:connect/4` returning | ``connected(_:)`` or ``connectFailed(_:_:)`` |
/// | `gen_tcp:accept/2` returning | ``accepted(_:_:)`` or ``acceptFailed(_:_:)`` |
/// | `gen_tcp:recv/3` returning | ``received(_:_:)`` or ``recvFailed(_:_:)`` |
/// | `erlang:send_after/3` | ``timer(_:)`` |
///
/// Bytes in a message are a view of the run loop's delivery buffer, valid until the program's
/// `receive` returns: copy what must outlive it.
public enum BoardMessage {
    /// `{tcp, S, Data}`: bytes in an active mode, at most `buffer` of them.
    case tcp(BoardSocket, UnsafeRawBufferPointer)
    /// `{tcp_closed, S}`: the peer closed (or reset, unless `show_econnreset`).
    case tcpClosed(BoardSocket)
    /// `{tcp_error, S, Reason}` in an active mode.
    case tcpError(BoardSocket, SocketError.Reason)
    /// `{tcp_passive, S}`: an `{active, N}` counter reached 0.
    case tcpPassive(BoardSocket)
    /// A ``Net/connect(to:port:options:timeout:)`` completed: the socket is connected.
    case connected(BoardSocket)
    /// A connect failed (`econnrefused`, `etimedout`, `timeout`…); the socket is gone.
    case connectFailed(BoardSocket, SocketError)
    /// A ``Net/accept(_:timeout:)`` took a connection.
    case accepted(BoardListener, BoardSocket)
    /// An accept failed (`timeout`, `closed` when the listener closed).
    case acceptFailed(BoardListener, SocketError)
    /// A ``Net/recv(_:length:timeout:)`` answered: exactly `length` bytes, or up to `buffer` for 0.
    case received(BoardSocket, UnsafeRawBufferPointer)
    /// A recv failed: `closed` at the end, `timeout` (nothing is lost), or the connection's reason.
    case recvFailed(BoardSocket, SocketError)
    /// A short ``Net/send(_:_:)`` left bytes behind, and the socket can take more now.
    case sendable(BoardSocket)
    /// A timer of ``Net/sendAfter(_:tag:)`` fired.
    case timer(UInt32)
    /// The network came up (a modem joined it; a SLIP line is up at once).
    case networkUp
    /// The network went down with the reason; every connection failed.
    case networkDown(SocketError)
}

/// A board program: one process, the value that receives its sockets' messages.
///
/// Generic over the network so the same program runs on a SLIP line or through a modem, in a
/// simulation, on a pty, or as firmware. `start` runs once before the first message.
public protocol BoardProgram: ~Copyable {
    /// Called once, before any message: listen, connect, arm timers.
    mutating func start<Interface: NetworkInterface & ~Copyable>(_ net: inout Net<Interface>)
    /// One message for the program (see ``BoardMessage``).
    mutating func receive<Interface: NetworkInterface & ~Copyable>(_ message: BoardMessage, _ net: inout Net<Interface>)
}
