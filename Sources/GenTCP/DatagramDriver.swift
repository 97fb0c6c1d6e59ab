import GenTCPCore

/// The outcome of one non-blocking receive on a ``DatagramEndpoint``.
public enum DatagramReceiveResult: Hashable, Sendable {
    /// One whole datagram from `source`: `copied` bytes of it are in the buffer, `length` is its
    /// full size (larger than `copied` when the buffer was too small and the tail was discarded).
    case datagram(copied: Int, length: Int, source: SocketAddress)
    /// Nothing is queued; arm readiness and try again when told.
    case wouldBlock
    /// An error reported once, the endpoint staying usable: in practice `econnrefused` from an
    /// ICMP port unreachable on a connected socket.
    case error(SocketError.Reason)
    /// The endpoint is dead for good (the serial line hung up, the module restarted, the driver
    /// stopped): every later call fails with this reason too.
    case failed(SocketError.Reason)
}

/// The outcome of one non-blocking send on a ``DatagramEndpoint``.
public enum DatagramSendResult: Hashable, Sendable {
    /// The datagram went out whole (handed to the kernel, the stack or the module).
    case sent
    /// It cannot go now; arm write readiness and try again when told. Nothing was sent.
    case wouldBlock
    /// It was refused: `emsgsize`, `eacces` (broadcast not allowed), `econnrefused` (an ICMP error
    /// reported once on a connected socket), `enetunreach`... A dead endpoint's reason is
    /// returned for every call.
    case failed(SocketError.Reason)
}

/// Receives readiness from a datagram endpoint. Implemented by GenTCP's port layer, never by
/// drivers. The same rules as ``ConnectionDelegate``: at most once per arming, never
/// synchronously from inside an endpoint method.
public protocol DatagramDelegate: AnyObject, Sendable {
    /// A receive would now not return ``DatagramReceiveResult/wouldBlock``.
    func datagramReadable()
    /// A send would now not return ``DatagramSendResult/wouldBlock``.
    func datagramWritable()
}

/// One bound UDP endpoint, as a driver exposes it to the port layer.
///
/// The driver moves whole datagrams with their sender and keeps a bounded receive queue (the
/// kernel's on posix, a `DatagramQueue` on the in-process drivers), dropping whole datagrams and
/// counting them when it is full. Every gen_udp rule (active modes, `buffer` truncation, the
/// controlling process, counters, connect checks) lives in the port layer, once.
///
/// Methods are called with the port's lock held, from any thread, one at a time per endpoint.
public protocol DatagramEndpoint: AnyObject, Sendable {
    /// Takes the oldest queued datagram, copying at most `buffer.count` bytes of it.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult
    /// Sends one datagram made of `chunks` (in order) to `destination`, or to the connected peer
    /// when nil.
    func send(_ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult
    /// How many datagrams a send would take now without ``DatagramSendResult/wouldBlock``: 0
    /// when none (then ``armSend()``), or a driver-chosen positive number (wasi's `check-send`).
    func sendPermit() -> Int
    /// Asks for one ``DatagramDelegate/datagramReadable()`` when a receive would not block.
    func armReceive()
    /// Asks for one ``DatagramDelegate/datagramWritable()`` when a send would not block.
    func armSend()
    /// Sets (or with nil clears) the peer: later datagrams from anyone else are dropped without
    /// being counted, and a send with no destination goes to it. Nothing goes on the wire on
    /// posix, sim and slip; an at driver may have to reopen the module's link.
    func connect(to peer: SocketAddress?) async throws(SocketError)
    /// Applies an option the driver acts on (`recbuf`, `sndbuf`, `reuseaddr`, `broadcast`, `ttl`,
    /// multicast); nil on success or when the driver has no use for it. Called on every
    /// `setopts` (at open the driver reads the `DatagramOptions` it is given).
    func apply(_ option: Option) -> SocketError.Reason?
    /// The driver's own value of an option where it has one (posix reports the kernel's
    /// `recbuf`, which Linux doubles); nil to report the value asked for.
    func currentValue(of name: OptionName) -> Option?
    /// Closes the endpoint and frees its port; datagrams still queued are lost. No callback follows.
    func close()
    /// The bound address and port (`sockname`).
    func localAddress() -> SocketAddress?
    /// Datagrams dropped so far because the receive queue was full (`recvDropped`).
    var droppedDatagramCount: UInt64 { get }
    /// The largest payload one datagram may carry on this endpoint (65507 on IPv4 posix, the link
    /// MTU less headers on slip, 1460 on the modems): larger sends are `emsgsize`.
    var maximumDatagramSize: Int { get }
    /// Optional latency shortcut, as ``Connection/waitBriefly(forReadUpTo:)``.
    func waitBriefly(forReadUpTo limit: Duration?) -> Bool
    /// Takes up to `max` queued datagrams at once, each cut to `bufferSize` bytes (posix:
    /// `recvmmsg(2)`). `end` is why it stopped before `max` (``DatagramReceiveResult/wouldBlock``,
    /// an error), or nil when it took `max`. The default calls ``receive(into:)`` in a loop.
    func receive(upTo max: Int, bufferSize: Int) -> (datagrams: [ReceivedDatagram], end: DatagramReceiveResult?)
    /// Sends datagrams in order, as many as go now (posix: `sendmmsg(2)`); `end` is why it stopped
    /// before the last (would block, or the failure of the first that did not go), nil when all
    /// went. The default calls ``send(_:to:)`` in a loop.
    func send(batch: [OutgoingDatagram]) -> (sent: Int, end: DatagramSendResult?)
}

/// One datagram taken by ``DatagramEndpoint/receive(upTo:bufferSize:)``.
public struct ReceivedDatagram: Hashable, Sendable {
    /// The bytes kept (at most the buffer size asked for).
    public var bytes: [UInt8]
    /// The datagram's full length (more than `bytes.count` when it was cut).
    public var length: Int
    /// The sender.
    public var source: SocketAddress

    /// A received datagram.
    public init(bytes: [UInt8], length: Int, source: SocketAddress) {
        self.bytes = bytes
        self.length = length
        self.source = source
    }
}

extension DatagramEndpoint {
    public func waitBriefly(forReadUpTo limit: Duration?) -> Bool { false }
    public func currentValue(of name: OptionName) -> Option? { nil }

    public func receive(upTo max: Int, bufferSize: Int) -> (datagrams: [ReceivedDatagram], end: DatagramReceiveResult?) {
        var out: [ReceivedDatagram] = []
        while out.count < max {
            var result = DatagramReceiveResult.wouldBlock
            let bytes = [UInt8](unsafeUninitializedCapacity: bufferSize) { buffer, count in
                result = receive(into: UnsafeMutableRawBufferPointer(buffer))
                if case .datagram(let copied, _, _) = result { count = copied } else { count = 0 }
            }
            guard case .datagram(_, let length, let source) = result else { return (out, result) }
            out.append(ReceivedDatagram(bytes: bytes, length: length, source: source))
        }
        return (out, nil)
    }

    public func send(batch: [OutgoingDatagram]) -> (sent: Int, end: DatagramSendResult?) {
        var sent = 0
        for d in batch {
            let result = d.bytes.withUnsafeBytes { send([$0], to: d.destination) }
            guard case .sent = result else { return (sent, result) }
            sent += 1
        }
        return (sent, nil)
    }
}

/// A driver that carries gen_udp sockets as well as gen_tcp ones.
public protocol DatagramDriver: Driver {
    /// Binds a UDP endpoint on `address` (its family is the socket's; port 0: ephemeral), with
    /// the options already validated. `eaddrinuse` when the port is taken (unless both sockets set
    /// `reuseaddr` and the driver allows sharing), `eaddrnotavail` for an address that is not
    /// local, `enotsup` (with the reason) for what the transport cannot do.
    func openDatagram(
        on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate
    ) async throws(SocketError) -> any DatagramEndpoint
}
