import GenTCPCore

/// One connection of a ``NetworkInterface``: an opaque number the interface hands out (an index
/// and a generation, so a stale one is recognised).
public struct InterfaceConnection: Hashable, Sendable {
    /// The interface's own encoding; only the interface reads it.
    public var raw: UInt32
    /// The handle `raw`.
    public init(raw: UInt32) { self.raw = raw }
}

/// One listener of a ``NetworkInterface`` (see ``InterfaceConnection``).
public struct InterfaceListener: Hashable, Sendable {
    /// The interface's own encoding; only the interface reads it.
    public var raw: UInt32
    /// The handle `raw`.
    public init(raw: UInt32) { self.raw = raw }
}

/// What happened inside a ``NetworkInterface``; ``Net`` turns these into the program's messages.
public enum InterfaceEvent: Hashable, Sendable {
    /// An open started by ``NetworkInterface/connect(to:port:settings:now:)`` completed.
    case connected(InterfaceConnection)
    /// A connection failed (refused, reset, timed out, the module closed it…). For a connection
    /// still opening, the open failed. Bytes received before the failure stay readable.
    case failed(InterfaceConnection, SocketError)
    /// New bytes, or the end of the stream, can be read.
    case readable(InterfaceConnection)
    /// Send room freed after a short ``NetworkInterface/send(_:_:now:)``.
    case writable(InterfaceConnection)
    /// A connection completed its handshake on this listener and can be accepted.
    case acceptable(InterfaceListener)
    /// The interface can carry connections now (a modem joined its network; a SLIP line is up
    /// from the start).
    case up
    /// The interface lost its network or its line; every connection failed with the reason.
    case down(SocketError)
}

/// The answer of ``NetworkInterface/recv(_:into:now:)``.
public enum InterfaceRead: Hashable, Sendable {
    /// This many bytes were copied out (never 0).
    case data(Int)
    /// Nothing buffered yet; the connection is still open for reading.
    case wouldBlock
    /// The peer finished sending (FIN, or a module's close after every announced byte was read).
    case end
}

/// Per-connection settings the interface needs when it opens a connection.
public struct InterfaceSettings: Hashable, Sendable {
    /// Bytes the interface may hold unsent for the connection (0: the interface's default).
    public var sendBufferSize: Int
    /// Bytes the interface may hold received and unread (0: the interface's default).
    public var receiveBufferSize: Int
    /// `nodelay`: no Nagle delay.
    public var noDelay: Bool
    /// `keepalive`: probes on an idle connection.
    public var keepalive: Bool
    /// The longest the open may take before it fails with `etimedout` (nil: the interface's own).
    public var connectTimeout: Milliseconds?

    /// Settings with the interface's defaults.
    public init(sendBufferSize: Int = 0, receiveBufferSize: Int = 0, noDelay: Bool = false, keepalive: Bool = false,
                connectTimeout: Milliseconds? = nil) {
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
        self.noDelay = noDelay
        self.keepalive = keepalive
        self.connectTimeout = connectTimeout
    }
}

/// A network a board reaches through its line: GenTCP's own IPv4/TCP stack over SLIP
/// (``SLIPInterface``), or an AT-command modem's sockets (``ModemInterface``).
///
/// Sans-I/O, like the cores it wraps: the run loop feeds it the line's bytes, takes the bytes it
/// wants sent, and calls ``poll(now:)`` at its deadlines. Every failure is a `SocketError` with
/// gen_tcp's reasons. Not an existential anywhere: programs and the run loop are generic over it.
public protocol NetworkInterface: ~Copyable {
    /// Starts the interface (a modem's bring-up commands; nothing for SLIP).
    mutating func start(now: MillisecondInstant)
    /// Bytes that arrived on the line.
    mutating func input(_ bytes: UnsafeRawBufferPointer, now: MillisecondInstant)
    /// Writes the next bytes for the line into `buffer`; returns how many (0: nothing to send).
    mutating func output(into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant) -> Int
    /// Fires what is due at `now`; returns the next deadline (nil: none).
    mutating func poll(now: MillisecondInstant) -> MillisecondInstant?
    /// The oldest pending event, or nil.
    mutating func nextEvent() -> InterfaceEvent?
    /// True once connections can be opened (``InterfaceEvent/up`` was posted and no `down` since).
    var isUp: Bool { get }

    /// Opens a connection; ``InterfaceEvent/connected(_:)`` or ``InterfaceEvent/failed(_:_:)`` follows.
    mutating func connect(to address: IPAddress, port: UInt16, settings: InterfaceSettings, now: MillisecondInstant)
        throws(SocketError) -> InterfaceConnection
    /// Listens on `port`; `enotsup` where the interface cannot (a modem).
    mutating func listen(port: UInt16, backlog: Int, settings: InterfaceSettings) throws(SocketError) -> InterfaceListener
    /// The oldest connection ready on `listener`, or nil.
    mutating func accept(_ listener: InterfaceListener) throws(SocketError) -> InterfaceConnection?
    /// Stops listening; connections not yet accepted are reset.
    mutating func close(listener: InterfaceListener)
    /// Queues up to `bytes.count` bytes; returns how many were taken (0: full, wait for `writable`).
    mutating func send(_ connection: InterfaceConnection, _ bytes: UnsafeRawBufferPointer, now: MillisecondInstant)
        throws(SocketError) -> Int
    /// Moves buffered bytes into `buffer`. Throws the connection's failure once its bytes are read.
    mutating func recv(_ connection: InterfaceConnection, into buffer: UnsafeMutableRawBufferPointer, now: MillisecondInstant)
        throws(SocketError) -> InterfaceRead
    /// Bytes received and not yet read.
    func readableCount(_ connection: InterfaceConnection) -> Int
    /// Bytes taken by ``send(_:_:now:)`` and not yet acknowledged (or handed to the module).
    func unsentCount(_ connection: InterfaceConnection) -> Int
    /// Half-close: a FIN follows the queued data (`enotsup` where the interface cannot).
    mutating func shutdown(_ connection: InterfaceConnection, now: MillisecondInstant) throws(SocketError)
    /// Closes gracefully (queued bytes still go out); the handle is stale afterwards.
    mutating func close(_ connection: InterfaceConnection, now: MillisecondInstant)
    /// Closes abortively (RST where the interface can); the handle is stale afterwards.
    mutating func abort(_ connection: InterfaceConnection, now: MillisecondInstant)
    /// Applies `nodelay` and `keepalive` to an open connection.
    mutating func configure(_ connection: InterfaceConnection, noDelay: Bool, keepalive: Bool) throws(SocketError)
    /// The peer's address and port.
    func peer(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)?
    /// The local address and port.
    func local(_ connection: InterfaceConnection) -> (address: IPAddress, port: UInt16)?
    /// True once the peer's end (FIN, or a module's close) was received, whatever is still
    /// buffered: an exact `recv` that cannot be completed any more fails at once.
    func peerFinished(_ connection: InterfaceConnection) -> Bool
    /// True when nothing the program queued is still on its way: closes finished, sends
    /// delivered. A stopping program's run loop keeps turning until then (or its linger ends).
    var isQuiescent: Bool { get }
}

extension NetworkInterface where Self: ~Copyable {
    /// Default: unknown until ``recv(_:into:now:)`` answers ``InterfaceRead/end``.
    public func peerFinished(_ connection: InterfaceConnection) -> Bool { false }
    /// Default: always (an interface that cannot tell).
    public var isQuiescent: Bool { true }
}
