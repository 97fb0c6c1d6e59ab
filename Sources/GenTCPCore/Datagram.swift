/// One received datagram: who sent it and what it holds. OTP's `{Address, Port, Packet}` from
/// `gen_udp:recv`, and the body of a `{udp, S, Address, Port, Packet}` message.
public struct Datagram: Hashable, Sendable, CustomStringConvertible {
    /// The sender's address and port.
    public var source: SocketAddress
    /// The bytes, typed by the socket's `mode` when it was delivered; at most `buffer` bytes
    /// (a longer datagram was cut, and ``truncated`` says so).
    public var payload: Payload
    /// True when the datagram was longer than `buffer` and lost its tail. OTP says nothing; GenTCP
    /// says it here and counts it in `recvTruncated`.
    public var truncated: Bool

    /// A datagram from `source`.
    public init(source: SocketAddress, payload: Payload, truncated: Bool = false) {
        self.source = source
        self.payload = payload
        self.truncated = truncated
    }

    /// The sender's address (OTP's `Address`).
    public var address: IPAddress { source.address }
    /// The sender's port (OTP's `Port`).
    public var port: Int { source.port }

    /// `{127.0.0.1, 4000, 12 bytes}`.
    public var description: String {
        "{\(source.address), \(source.port), \(payload.count) bytes\(truncated ? ", truncated" : "")}"
    }
}

/// One datagram to send in a batch (wasi's `outgoing-datagram`): the bytes and where to, or nil
/// for the connected peer.
public struct OutgoingDatagram: Hashable, Sendable {
    /// The datagram's bytes; empty is a real, empty datagram.
    public var bytes: [UInt8]
    /// The destination, or nil to send to the connected peer.
    public var destination: SocketAddress?

    /// A datagram of `bytes` to `destination` (nil: the connected peer).
    public init(_ bytes: [UInt8], to destination: SocketAddress? = nil) {
        self.bytes = bytes
        self.destination = destination
    }
}
