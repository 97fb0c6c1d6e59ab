import DequeModule
import GenTCPCore
import Synchronization

/// What protects a socket's bytes on the wire.
public enum SocketSecurity: Sendable, Hashable {
    /// Plain TCP: `gen_tcp`.
    case plain
    /// TLS run by GenTCP (OpenSSL, in GenTCPTLS) over the driver's connection: OTP's `ssl`.
    case tls
    /// TLS run by the driver's transport (a modem's own TLS stack, see ``OffloadedTLS``).
    case offloaded
}

/// Something a process controls and that closes when the process exits.
protocol OwnedByProcess: AnyObject, Sendable {
    func ownerExited(_ process: Process)
}

/// A connected TCP socket: `gen_tcp`'s socket, on any driver.
///
/// Get one from ``connect(_:port:options:timeout:driver:)`` or ``ListenSocket/accept(timeout:)``.
/// The calling process becomes its controlling process and receives its active-mode messages.
/// Any process may call `send`, `recv`, `close` or `setopts` on it, as in OTP; only the owner may
/// hand it over with ``controllingProcess(_:)``.
///
/// Every rule of `gen_tcp` (active modes, the `buffer` cap, end-of-stream sequencing, counters,
/// ownership) is implemented here once; drivers only move bytes (see ``Connection``).
public final class Socket: Sendable, Hashable, CustomStringConvertible {
    /// A number unique among this program's sockets.
    public let id: UInt64
    /// The driver this socket runs on.
    public let driver: any Driver
    /// Plain TCP, TLS run by GenTCP, or TLS run by the driver's transport. It decides the
    /// messages: `.tcp...` for a plain socket, `.ssl...` for a secure one.
    public let security: SocketSecurity
    let runtime: any Runtime
    let state: Mutex<PortState>

    static let counter = Atomic<UInt64>(0)

    package init(driver: any Driver, options: SocketOptions, owner: Process, security: SocketSecurity = .plain) {
        self.id = Socket.counter.add(1, ordering: .relaxed).newValue
        self.driver = driver
        self.security = security
        self.runtime = driver.runtime
        self.state = Mutex(PortState(options: options, owner: owner))
    }

    /// True for a TLS socket (``SocketSecurity/tls`` or ``SocketSecurity/offloaded``).
    public var isSecure: Bool { security != .plain }

    /// `#Port<0.N>`.
    public var description: String { "#Port<0.\(id)>" }

    /// Whether a `recv` is waiting on this socket (a second one now gets `ealready`). For tests
    /// that must know the first one got that far, rather than guess with a sleep.
    package var recvIsWaiting: Bool { state.withLock { $0.recvInProgress } }

    /// How many bytes an exact `recv` read past its length and the socket still holds, for tests
    /// that check the read-ahead took place.
    package var readAheadByteCount: Int { state.withLock { $0.stash.readAhead } }

    public static func == (a: Socket, b: Socket) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

// MARK: - State

/// Everything the port layer knows about one socket. Guarded by `Socket.state`.
struct PortState {
    enum ReadEnd {
        /// Reads go to the connection.
        case open
        /// The next `recv` reports `closed` (after a failed send), then the end is dead.
        case closedPending
        /// End of stream or an error was already reported: `recv` gives `enotconn`.
        case dead
    }

    enum WriteEnd {
        case open
        /// The next `send` reports `closed` (after `shutdown(write)` or a passive EOF), then dead.
        case closedPending
        /// `send` gives `enotconn`.
        case dead
    }

    struct RecvWaiter {
        var id: UInt64
        /// 0: whatever is available up to `buffer`; N: exactly N.
        var length: Int
        var data: [UInt8]
        var filled: Int
        var continuation: UnsafeContinuation<Result<Payload, SocketError>, Never>
        var timer: TimerID?
    }

    struct SendWaiter {
        var id: UInt64
        var chunks: [[UInt8]]
        /// Index of the first chunk not fully written, and bytes of it already written.
        var chunkIndex = 0
        var chunkOffset = 0
        var total: Int
        var continuation: UnsafeContinuation<Result<Void, SocketError>, Never>?
        var timer: TimerID?

        var remaining: Int {
            var n = 0
            for i in chunkIndex..<chunks.count { n += chunks[i].count }
            return n - chunkOffset
        }
    }

    var options: SocketOptions
    var owner: Process
    var connection: (any Connection)?
    /// True after a local close, an owner exit, or an active end of stream with `exitOnClose`.
    var closed = false
    var readEnd = ReadEnd.open
    /// A `recv` reported the end of stream, and no `tcp_closed` was sent for it yet: activating the
    /// socket later sends it (OTP does), and then the socket dies as in an active end of stream.
    var endUnannounced = false
    var writeEnd = WriteEnd.open
    /// Bytes read from the connection but not delivered yet: an exact `recv`'s read-ahead (at
    /// most `buffer`), a timed-out exact `recv`'s partial data. Bounded by `buffer` and the
    /// largest `recv` length asked for, never by what the peer sends.
    var stash = Stash()
    var recvWaiter: RecvWaiter?
    /// A `recv` is in its brief wait, outside the lock (see `Connection.waitBriefly`): it counts
    /// as waiting, so a second `recv` is refused (`ealready`) as OTP refuses it.
    var recvBriefly = false
    /// A `recv` waits, registered or in its brief wait.
    var recvInProgress: Bool { recvWaiter != nil || recvBriefly }
    /// The brief wait of the `recv` in progress is over: it no longer counts as waiting, and the
    /// read arming the wait may have withdrawn is not assumed.
    mutating func briefWaitEnded() {
        readArmed = false
        recvBriefly = false
    }
    var senders = Deque<SendWaiter>()
    var shutdownWriteWhenFlushed = false
    var readArmed = false
    var writeArmed = false
    var stats = Statistics()
    /// How long the owner has run through `recv`s that did not suspend (see ``Quantum``).
    var quantum = Quantum()
    /// The last read of a `recv` got less than it asked for: the socket was empty after it.
    var drained = false
    var nextWaiterID: UInt64 = 1
    /// After an upgrade to TLS: the driver still calls this socket, which passes readiness on to
    /// the TLS layer that now reads and writes the connection.
    var forward: (any ConnectionDelegate)?

    init(options: SocketOptions, owner: Process) {
        self.options = options
        self.owner = owner
    }

    mutating func takeWaiterID() -> UInt64 {
        defer { nextWaiterID += 1 }
        return nextWaiterID
    }
}

/// Work decided under a port's lock and done after it is released: resuming waiters (whose
/// `recv` gives `Received`: a gen_tcp `Payload`, a gen_udp `Datagram`), cancelling their timers,
/// waking mailbox receivers.
struct PortEffects<Received: Sendable> {
    var resumeRecv: [(UnsafeContinuation<Result<Received, SocketError>, Never>, Result<Received, SocketError>)] = []
    var resumeSend: [(UnsafeContinuation<Result<Void, SocketError>, Never>, Result<Void, SocketError>)] = []
    var cancelTimers: [TimerID] = []
    var wakeups: [Mailbox.Wakeup] = []

    func run(on runtime: any Runtime) {
        for t in cancelTimers { runtime.cancel(t) }
        for w in wakeups { w.resume() }
        for (c, r) in resumeRecv { c.resume(returning: r) }
        for (c, r) in resumeSend { c.resume(returning: r) }
    }
}

/// A gen_tcp socket's effects.
typealias Effects = PortEffects<Payload>

// MARK: - Connect

extension Socket {
    /// Connects to `host:port`; Erlang's `gen_tcp:connect(Address, Port, Options, Timeout)`.
    ///
    /// A host name is resolved by the driver and its addresses are tried in the order of the
    /// `.ipVersion` option (IPv4 first by default, then IPv6), within one overall `timeout`.
    /// The calling process becomes the controlling process; with the default `.active(.active)`,
    /// data may arrive as messages as soon as this returns.
    ///
    /// Cancelling the calling task, or killing the calling process, ends the call at once with
    /// `cancelled`, whatever the driver is doing; a connection the driver completes afterwards is
    /// closed (the listener's side sees it end), never handed to anyone.
    ///
    /// - Throws: `badarg` for a port outside 0...65535, a bad option or a negative timeout;
    ///   `econnrefused`, `nxdomain`, `timeout`, `etimedout`, `ehostunreach`... from the driver;
    ///   `cancelled` when the task is cancelled or the process exits.
    public static func connect(
        _ host: Host, port: Int, options: [Option] = [], timeout: Timeout = .infinity,
        driver: some Driver
    ) async throws(SocketError) -> Socket {
        try await connect(host, port: port, options: options, timeout: timeout, driver: driver, security: .plain) {
            address, options, remaining, socket async throws(SocketError) -> any Connection in
            try await driver.connect(to: address, options: options, timeout: remaining, delegate: socket)
        }
    }

    /// One connection to the driver, made by ``connect(_:port:options:timeout:driver:security:establish:)``
    /// for one address: the driver's connection (with `socket` as its delegate), or a layer over it.
    package typealias Establish = @Sendable (
        _ address: SocketAddress, _ options: SocketOptions, _ remaining: Duration?, _ socket: Socket
    ) async throws(SocketError) -> any Connection

    /// `connect` with the connection step given: the TLS layer wraps the driver's connection and
    /// runs its handshake inside `establish`, within the same overall `timeout`.
    package static func connect(
        _ host: Host, port: Int, options: [Option], timeout: Timeout, driver: some Driver,
        security: SocketSecurity, establish: @escaping Establish
    ) async throws(SocketError) -> Socket {
        guard (0...65535).contains(port) else { throw SocketError(.badArgument, "port must be 0...65535") }
        let opts = try SocketOptions(connect: options)
        let limit = try timeout.validated().nanoseconds
        let caller = try Process.liveCaller()
        let start = driver.runtime.now
        let addresses: [IPAddress]
        switch host {
        case .address(let a): addresses = [a]
        case .name(let name):
            guard !name.isEmpty, name.utf8.count <= 253 else {
                throw SocketError(.badArgument, "host name must be 1...253 bytes")
            }
            if caller.mustNotWait { throw caller.cancellation }
            addresses = try await DetachedCall.run(as: caller, executor: driver.runtime.executor, orphan: { _ in }) {
                () async throws(SocketError) -> [IPAddress] in
                try await driver.resolve(name, preference: opts.ipVersion)
            }
        }
        var lastError = SocketError(.nonExistentDomain)
        for address in addresses {
            var remaining: Duration? = nil
            if let limit {
                let spent = driver.runtime.now &- start
                if spent >= limit && limit > 0 { throw SocketError.timeout }
                remaining = .nanoseconds(Int64(clamping: limit > spent ? limit - spent : 0))
            }
            if caller.mustNotWait { throw caller.cancellation }
            do {
                let socket = try await open(to: SocketAddress(address, port: port), options: opts,
                                            timeout: remaining, driver: driver, as: caller,
                                            security: security, establish: establish)
                if Socket.sendsPassiveAtOpen(options) {
                    let wakeup = socket.state.withLock { s in
                        s.closed ? nil : s.owner.mailbox.enqueue(socket.passiveMessage)
                    }
                    wakeup?.resume()
                }
                return socket
            } catch {
                lastError = error
                if error.reason == .timeout || error.reason == .cancelled { throw error }
            }
        }
        throw lastError
    }

    /// True when OTP would send `{tcp_passive, S}` right after connect: it applies the options to
    /// the new port one by one, and an `{active, N}` that brings the counter to 0 or below sends it
    /// (`connect(..., [{active,0}])` delivers `tcp_passive` at once in OTP 25).
    package static func sendsPassiveAtOpen(_ options: [Option]) -> Bool {
        var mode = ActiveMode.active
        var sends = false
        for case .active(let requested) in options {
            guard let change = try? mode.applying(requested) else { continue }
            mode = change.mode
            if change.sendsPassive { sends = true }
        }
        return sends
    }

    /// Connects to one address (no name resolution).
    public static func connect(
        to address: SocketAddress, options: [Option] = [], timeout: Timeout = .infinity,
        driver: some Driver
    ) async throws(SocketError) -> Socket {
        try await connect(.address(address.address), port: address.port, options: options,
                          timeout: timeout, driver: driver)
    }

    private static func open(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        driver: some Driver, as owner: Process, security: SocketSecurity, establish: @escaping Establish
    ) async throws(SocketError) -> Socket {
        let socket = Socket(driver: driver, options: options, owner: owner, security: security)
        // Drivers' connects cannot be interrupted: the port stops waiting instead, and closes a
        // connection that comes too late (see DetachedCall).
        let connection = try await DetachedCall.run(as: owner, executor: driver.runtime.executor, orphan: { late in
            late.close(abortive: false)
        }) { () async throws(SocketError) -> any Connection in
            try await establish(address, options, timeout, socket)
        }
        socket.attach(connection)
        return socket
    }

    /// Binds a connection to this socket: applies transport options, registers the owner, starts
    /// active delivery. Used by connect and accept.
    package func attach(_ connection: any Connection) {
        let owner: Process = state.withLock { s in
            s.connection = connection
            for name in [OptionName.nodelay, .keepalive, .linger] {
                _ = connection.apply(s.options.value(of: name))
            }
            return s.owner
        }
        guard owner.adopt(self) else {
            // The owner died while connecting: its sockets close with it.
            closeSocket(removingClosedFrom: nil)
            return
        }
        var effects = Effects()
        state.withLock { s in pumpActive(&s, &effects) }
        effects.run(on: runtime)
    }
}

// MARK: - Readiness from the driver

extension Socket: ConnectionDelegate {
    public func connectionReadable() {
        var effects = Effects()
        let forward: (any ConnectionDelegate)? = state.withLock { s in
            s.readArmed = false
            guard !s.closed else { return s.forward }
            if s.recvWaiter != nil {
                continueRecv(&s, &effects)
            } else {
                pumpActive(&s, &effects)
            }
            return nil
        }
        effects.run(on: runtime)
        forward?.connectionReadable()
    }

    public func connectionWritable() {
        var effects = Effects()
        let forward: (any ConnectionDelegate)? = state.withLock { s in
            s.writeArmed = false
            guard !s.closed else { return s.forward }
            flushSenders(&s, &effects)
            return nil
        }
        effects.run(on: runtime)
        forward?.connectionWritable()
    }
}

extension Socket: OwnedByProcess {
    func ownerExited(_ process: Process) {
        let isOwner = state.withLock { $0.owner === process }
        if isOwner { closeSocket(removingClosedFrom: nil) }
    }
}
