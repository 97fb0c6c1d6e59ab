import DequeModule
import GenTCPCore
import Synchronization

/// A gen_udp socket, on any driver that carries datagrams (``DatagramDriver``).
///
/// Get one from ``open(port:options:driver:)``. The calling process becomes its controlling
/// process and receives its active-mode messages (`.udp`, `.udpPassive`, `.udpError`); any
/// process may send, receive in passive mode, close or set options, as in OTP.
///
/// Every rule of gen_udp lives here once, for every driver: one datagram per send, per `recv` and
/// per message (never split, never merged, empty ones included); truncation at `buffer`, counted;
/// the active-mode machine and the controlling-process rules shared with ``Socket``; connect's
/// filter and default destination; ICMP errors reported once on connected sockets; counters.
/// Drivers move whole datagrams (see ``DatagramEndpoint``).
///
/// Memory is fixed: the driver's receive queue is bounded (`recbuf`), and in an active mode the
/// socket stops reading while `queueLimit.datagrams` of its messages wait unread in the owner's
/// mailbox, so a flood fills the driver's queue, which drops whole datagrams and counts them
/// (`getstat().recvDropped`) instead of growing the mailbox.
public final class UDPSocket: Sendable, Hashable, CustomStringConvertible {
    /// A number unique among this program's sockets (shared with gen_tcp sockets).
    public let id: UInt64
    /// The driver this socket runs on.
    public let driver: any DatagramDriver
    let runtime: any Runtime
    let state: Mutex<DatagramPortState>
    /// `.udp` messages of this socket posted and not yet received by any process. Atomic, so
    /// taking a message costs no socket lock unless the socket may have stopped at its limit
    /// (posting happens under the lock).
    let unreadMessages = Atomic<Int>(0)

    init(driver: any DatagramDriver, options: DatagramOptions, owner: Process) {
        self.id = Socket.counter.add(1, ordering: .relaxed).newValue
        self.driver = driver
        self.runtime = driver.runtime
        self.state = Mutex(DatagramPortState(options: options, owner: owner))
    }

    /// `#Port<0.N>`.
    public var description: String { "#Port<0.\(id)>" }

    /// Whether a `recv` is waiting on this socket (a second one now gets `ealready`). For tests
    /// that must know the first one got that far, rather than guess with a sleep.
    package var recvIsWaiting: Bool { state.withLock { $0.recvInProgress } }

    public static func == (a: UDPSocket, b: UDPSocket) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

// MARK: - State

/// Everything the port layer knows about one gen_udp socket. Guarded by `UDPSocket.state`.
struct DatagramPortState {
    struct RecvWaiter {
        var id: UInt64
        var continuation: UnsafeContinuation<Result<Datagram, SocketError>, Never>
        var timer: TimerID?
    }

    struct SendWaiter {
        var id: UInt64
        var chunks: [[UInt8]]
        var destination: SocketAddress?
        var continuation: UnsafeContinuation<Result<Void, SocketError>, Never>?
    }

    var options: DatagramOptions
    var owner: Process
    var endpoint: (any DatagramEndpoint)?
    var closed = false
    /// The connected peer (`peername`), or nil.
    var peer: SocketAddress?
    /// A connect (or disconnect) is under way in the driver.
    var connecting = false
    /// The endpoint died (a hung-up line, a restarted module): every call fails with this.
    var failure: SocketError.Reason?
    /// An error the endpoint reported once (ICMP) while a batch receive was under way: the next
    /// receive reports it.
    var pendingError: SocketError.Reason?
    var recvWaiter: RecvWaiter?
    /// A `recv` is in its brief wait, outside the lock (see `DatagramEndpoint.waitBriefly`): it
    /// counts as waiting, so a second `recv` is refused (`ealready`) as OTP refuses it.
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
    var readArmed = false
    /// How long the owner has run through `recv`s that did not suspend (see ``Quantum``).
    var quantum = Quantum()
    var writeArmed = false
    var stats = Statistics()
    var nextWaiterID: UInt64 = 1

    init(options: DatagramOptions, owner: Process) {
        self.options = options
        self.owner = owner
    }

    mutating func takeWaiterID() -> UInt64 {
        defer { nextWaiterID += 1 }
        return nextWaiterID
    }
}

/// A gen_udp socket's effects.
typealias DatagramEffects = PortEffects<Datagram>

// MARK: - Open

extension UDPSocket {
    /// Opens a UDP socket; Erlang's `gen_udp:open(Port, Options)`.
    ///
    /// Port 0 asks for an ephemeral port (read it with ``port()``). `.localAddress(a)` binds an
    /// address (default: the wildcard address); `.inet6`, or an IPv6 `localAddress`, makes an IPv6
    /// socket; `.localPort(p)` in the list overrides `port`, as `{port, P}` does in OTP. The
    /// calling process becomes the controlling process; with the default `.active(.active)`,
    /// datagrams may arrive as messages as soon as this returns.
    ///
    /// - Throws: `badarg` for a port outside 0...65535 or a bad option (OTP raises); `eaddrinuse`
    ///   when the port is taken (both sockets need `reuseaddr` to share it); `eaddrnotavail`,
    ///   `enotsup` from the driver; `cancelled` when the task is cancelled or the process exits
    ///   while a driver that must ask its module waits.
    public static func open(
        port: Int = 0, options: [Option] = [], driver: some DatagramDriver
    ) async throws(SocketError) -> UDPSocket {
        guard (0...65535).contains(port) else { throw SocketError(.badArgument, "port must be 0...65535") }
        var opts = try DatagramOptions(open: options)
        if !options.contains(where: { $0.name == .localPort }) { opts.localPort = port }
        let caller = try Process.liveCaller()
        let socket = UDPSocket(driver: driver, options: opts, owner: caller)
        let settled = opts
        let endpoint = try await DetachedCall.run(as: caller, executor: driver.runtime.executor, orphan: { late in
            late.close()
        }) { () async throws(SocketError) -> any DatagramEndpoint in
            try await driver.openDatagram(on: settled.bindAddress, options: settled, delegate: socket)
        }
        socket.state.withLock { $0.endpoint = endpoint }
        guard caller.adopt(socket) else {
            socket.close()
            throw caller.cancellation
        }
        if Socket.sendsPassiveAtOpen(options) {
            let wakeup = socket.state.withLock { s in
                s.closed ? nil : s.owner.mailbox.enqueue(.udpPassive(socket))
            }
            wakeup?.resume()
        }
        var effects = DatagramEffects()
        socket.state.withLock { s in socket.pumpActive(&s, &effects) }
        effects.run(on: socket.runtime)
        return socket
    }
}

// MARK: - Readiness from the driver

extension UDPSocket: DatagramDelegate {
    public func datagramReadable() {
        var effects = DatagramEffects()
        state.withLock { s in
            s.readArmed = false
            guard !s.closed else { return }
            if s.recvWaiter != nil {
                continueRecv(&s, &effects)
            } else {
                pumpActive(&s, &effects)
            }
        }
        effects.run(on: runtime)
    }

    public func datagramWritable() {
        var effects = DatagramEffects()
        state.withLock { s in
            s.writeArmed = false
            guard !s.closed else { return }
            flushSenders(&s, &effects)
        }
        effects.run(on: runtime)
    }
}

extension UDPSocket: OwnedByProcess {
    func ownerExited(_ process: Process) {
        let isOwner = state.withLock { $0.owner === process }
        if isOwner { close() }
    }

    /// A `.udp` message of this socket was taken from a mailbox: one more may be posted.
    func messageTaken() {
        let before = unreadMessages.subtract(1, ordering: .acquiringAndReleasing).oldValue
        if before <= 0 {
            unreadMessages.add(1, ordering: .acquiringAndReleasing)  // never below zero
            return
        }
        // Every limit is at least 16 (`DatagramOptions.queueLimit`): below that the socket cannot
        // have stopped, and nothing needs the lock. At or above, look under the lock: a pump that
        // saw the old count and stopped is resumed here (the count fell before the lock was taken).
        guard before >= DatagramOptions.minimumQueueDatagrams else { return }
        var effects = DatagramEffects()
        state.withLock { s in
            let wasFull = before >= s.options.queueLimit.datagrams
            if wasFull && !s.closed && s.recvWaiter == nil { pumpActive(&s, &effects) }
        }
        effects.run(on: runtime)
    }
}
