import GenTCPCore

/// The outcome of one non-blocking read or write on a ``Connection``.
public enum IOResult: Hashable, Sendable {
    /// This many bytes (> 0) were moved.
    case bytes(Int)
    /// Nothing can move now; arm readiness and try again when told.
    case wouldBlock
    /// Read only: the peer finished sending (FIN). Every byte before it was returned first.
    case endOfStream
    /// The connection failed: `connectionReset` for an RST, `brokenPipe` for a write after the
    /// peer's reset, `connectionTimedOut` for a failed keepalive, and so on.
    case failed(SocketError.Reason)
}

/// Receives readiness from a driver. Implemented by GenTCP's port layer, never by drivers.
///
/// Drivers call these from their own context (a reactor thread, the simulator's executor), at most
/// once per arming, and **never synchronously from inside a ``Connection`` or ``Listener`` method**
/// (the port holds its lock while calling those).
public protocol ConnectionDelegate: AnyObject, Sendable {
    /// A read would now not return ``IOResult/wouldBlock`` (data, end of stream, or an error).
    func connectionReadable()
    /// A write would now not return ``IOResult/wouldBlock``.
    func connectionWritable()
}

/// Receives accept readiness from a driver's listener.
public protocol ListenerDelegate: AnyObject, Sendable {
    /// An accept would now not return nil (or the listener failed).
    func listenerAcceptable()
}

/// One established connection, as a driver exposes it to the port layer.
///
/// The driver only moves bytes and reports ends; every `gen_tcp` rule (active modes, the
/// `buffer` cap, EOF sequencing, counters, ownership) lives in the port layer, once.
///
/// Memory contract: a driver holds at most a fixed amount of received data per connection (the
/// kernel's socket buffer, the SLIP stack's receive window, the modem's own buffer). When the
/// port stops reading, the driver stops accepting data from the peer: that is the backpressure.
///
/// Methods are called with the port's lock held, from any thread, one at a time per connection.
public protocol Connection: AnyObject, Sendable {
    /// Reads up to `buffer.count` bytes. Returns `.bytes(n)`, `.wouldBlock`, `.endOfStream`
    /// (repeatable) or `.failed`.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    /// Writes as much of `chunks` (in order, as one stream) as can go now; `.bytes(n)` counts
    /// across chunks. A short count is normal; `.wouldBlock` when nothing went.
    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult
    /// Asks for one ``ConnectionDelegate/connectionReadable()`` call when a read would not block.
    func armRead()
    /// Asks for one ``ConnectionDelegate/connectionWritable()`` call when a write would not block.
    func armWrite()
    /// Half-closes the connection (`shutdown(2)`); nil on success.
    func shutdown(_ how: ShutdownHow) -> SocketError.Reason?
    /// Closes the connection. Graceful (`abortive == false`): data already written is still
    /// delivered, then FIN. Abortive (`linger {true, 0}`): RST. The driver must release the
    /// delegate; no callback follows.
    func close(abortive: Bool)
    /// The local address and port (`sockname`).
    func localAddress() -> SocketAddress?
    /// The peer's address and port (`peername`).
    func remoteAddress() -> SocketAddress?
    /// Applies a transport option (`nodelay`, `keepalive`, `linger`, `reuseaddr`); options the
    /// driver has no use for return nil. Called at open and on every `setopts`.
    func apply(_ option: Option) -> SocketError.Reason?
    /// Optional latency shortcut: blocks the calling thread for a short, driver-chosen time (never
    /// more than `limit`; nil: no limit but the driver's own) until a read would not block; true
    /// when it would not.
    ///
    /// The port calls it, without its lock, just before parking a waiting `recv` or an owner's
    /// `receive`: when the peer answers within that time, the kernel wakes the waiting thread
    /// directly, instead of waking the reactor which then wakes the task. Drivers without a
    /// descriptor to wait on keep the default, which returns false at once.
    ///
    /// The driver may withdraw a pending ``armRead()`` while it waits (so that its own event
    /// thread does not wake for the same data); the port treats any arming as gone afterwards and
    /// arms again if it still needs to.
    func waitBriefly(forReadUpTo limit: Duration?) -> Bool
    /// Bytes the driver accepted from ``write(_:)`` and still holds, not yet taken by the peer's
    /// side of the link (a modem's send buffer until the module acknowledges them). The port adds
    /// it to `send_pend` in ``Socket/getstat()``, as OTP counts bytes queued in the driver, so a
    /// program can wait until everything it sent has left the host. Drivers that hand writes
    /// straight to the kernel or their own stack keep the default, 0.
    var unsentByteCount: Int { get }
    /// The whole error behind a ``IOResult/failed(_:)`` this connection returned, for connections
    /// whose failures say more than a reason: a TLS connection names the alert and the side that
    /// raised it. The default is `SocketError(reason)`.
    func error(for reason: SocketError.Reason) -> SocketError
}

extension Connection {
    public func waitBriefly(forReadUpTo limit: Duration?) -> Bool { false }
    public var unsentByteCount: Int { 0 }
    public func error(for reason: SocketError.Reason) -> SocketError { SocketError(reason) }
}

/// A listening endpoint, as a driver exposes it.
public protocol Listener: AnyObject, Sendable {
    /// Accepts one pending connection, giving it `delegate`; nil when none is pending.
    /// Throws for a listener failure (`systemLimit` when out of descriptors, say).
    func accept(delegate: any ConnectionDelegate) throws(SocketError) -> (any Connection)?
    /// Asks for one ``ListenerDelegate/listenerAcceptable()`` call when accept would not return nil.
    func armAccept()
    /// Closes the listener; connections never accepted are reset or closed (their clients see
    /// `closed`). No callback follows.
    func close()
    /// The bound address and port (`sockname`, `inet:port`).
    func localAddress() -> SocketAddress?
}

/// A way to reach peers: BSD sockets, the simulated network, a SLIP line, an AT modem.
///
/// Drivers are values the user passes to ``Socket/connect(_:port:options:timeout:driver:)`` and
/// ``ListenSocket/listen(port:options:driver:)``; each module adds a static member
/// (`.posix`, `.sim(network)`) so calls read `driver: .posix`.
public protocol Driver: Sendable {
    /// A short name for messages and tables: `posix`, `sim`, `slip`, `at`.
    var name: String { get }
    /// The clock that times this driver's sockets (recv, send, accept and connect timeouts).
    var runtime: any Runtime { get }
    /// Resolves a host name to addresses, ordered by `preference`; `nonExistentDomain` when the
    /// name has no address in the families allowed.
    func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress]
    /// Opens a connection to `address` within `timeout` (nil: no limit but the
    /// transport's own, which fails with `connectionTimedOut`). Fails with `timeout` when the limit
    /// passes, or a reason such as `connectionRefused`. Readiness goes to `delegate`.
    func connect(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection
    /// Opens a listener on `address` (nil address: any; port 0: ephemeral). `eaddrinuse` when taken.
    func listen(
        on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate
    ) throws(SocketError) -> any Listener
}

extension Driver {
    /// ``connect(to:options:timeout:delegate:)`` with the limit in nanoseconds (nil: no limit).
    @available(*, deprecated, renamed: "connect(to:options:timeout:delegate:)")
    public func connect(
        to address: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        try await connect(to: address, options: options,
                          timeout: timeoutNanoseconds.map { .nanoseconds(Int64(clamping: $0)) }, delegate: delegate)
    }
}

extension Duration {
    /// Whole nanoseconds, 0 for a negative duration, saturating at `UInt64.max`: what drivers
    /// hand a ``Runtime`` (whose clock counts nanoseconds).
    package var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || overflow2 ? .max : total
    }
}
