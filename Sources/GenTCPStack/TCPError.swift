/// Why a connection operation failed, with the `inet` error atom gen_tcp reports for it.
///
/// The stack depends on GenTCPWire only, so it carries its own small enum; the driver maps each
/// case to `SocketError.Reason` by ``erlangName``.
public enum TCPError: Error, Hashable, Sendable {
    /// The handle is stale (the socket was closed) or the connection is finished: `closed`.
    case closed
    /// The peer answered our SYN with a RST (RFC 9293 §3.10.7.3): `econnrefused`.
    case connectionRefused
    /// The peer reset an established connection (RFC 9293 §3.10.7.4): `econnreset`.
    case connectionReset
    /// Retransmissions, the connect timeout, the user timeout or keepalive gave up: `etimedout`.
    case timedOut
    /// The local port is already listening or bound to the same remote endpoint: `eaddrinuse`.
    case addressInUse
    /// Every connection or listener slot is taken: `emfile`.
    case noFreeSlot
    /// A bad argument (port 0 for a remote, zero-sized buffer, a backlog of 0): `einval`.
    case invalidArgument
    /// The operation needs a connected socket: `enotconn`.
    case notConnected
    /// A UDP datagram larger than the interface carries (MTU − 28): `emsgsize`.
    case messageTooLong
    /// The UDP send queue is full; ``StackEvent/datagramSendRoom`` follows: `eagain`.
    case wouldBlock
    /// A broadcast destination on a socket without broadcast: `eacces`.
    case permissionDenied

    /// The Erlang `inet` atom for this reason.
    public var erlangName: StaticString {
        switch self {
        case .closed: "closed"
        case .connectionRefused: "econnrefused"
        case .connectionReset: "econnreset"
        case .timedOut: "etimedout"
        case .addressInUse: "eaddrinuse"
        case .noFreeSlot: "emfile"
        case .invalidArgument: "einval"
        case .notConnected: "enotconn"
        case .messageTooLong: "emsgsize"
        case .wouldBlock: "eagain"
        case .permissionDenied: "eacces"
        }
    }
}
