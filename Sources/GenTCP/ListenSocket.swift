import DequeModule
import GenTCPCore
import Synchronization

/// A listening socket: `gen_tcp:listen/2` and `gen_tcp:accept/2`.
///
/// Accepted sockets inherit this socket's options (active, mode, buffer, showEconnreset, ...)
/// and are owned by the process that called `accept`. Many processes may wait in `accept` at
/// once; each has its own timeout, and all get `closed` when the listener closes. An acceptor
/// that is killed or whose task is cancelled is withdrawn before it can be handed a connection,
/// so every connection goes to a live acceptor. The listener
/// closes when its controlling process exits. (`send`/`recv`/`peername` on a listener, `enotconn`
/// in OTP, do not exist on this type.)
public final class ListenSocket: Sendable, Hashable, CustomStringConvertible {
    /// A number unique among this program's sockets and listeners.
    public let id: UInt64
    /// The driver this listener runs on; accepted sockets use it too.
    public let driver: any Driver
    let runtime: any Runtime

    struct Acceptor {
        var id: UInt64
        var owner: Process
        var continuation: UnsafeContinuation<Result<Socket, SocketError>, Never>
        var timer: TimerID?
        /// The socket starts passive whatever the listener's options (a TLS accept runs its
        /// handshake before anything is delivered).
        var passive = false
    }

    struct State {
        var options: SocketOptions
        var owner: Process
        var listener: (any Listener)?
        var acceptors = Deque<Acceptor>()
        var armed = false
        var nextID: UInt64 = 1
    }
    let state: Mutex<State>

    init(driver: any Driver, options: SocketOptions, owner: Process) {
        self.id = Socket.counter.add(1, ordering: .relaxed).newValue
        self.driver = driver
        self.runtime = driver.runtime
        self.state = Mutex(State(options: options, owner: owner))
    }

    /// `#Port<0.N>`.
    public var description: String { "#Port<0.\(id)>" }
    public static func == (a: ListenSocket, b: ListenSocket) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// Listens on `port` (0: an ephemeral port, read it with ``port()``); `gen_tcp:listen/2`.
    /// Binds `.localAddress` if given, else the IPv4 any address. The backlog defaults to 5.
    ///
    /// - Throws: `badarg` for a port outside 0...65535 or a bad option; `eaddrinuse` when the port
    ///   is taken (even with `reuseaddr`, while the other listener is open).
    public static func listen(port: Int, options: [Option] = [], driver: some Driver) throws(SocketError) -> ListenSocket {
        guard (0...65535).contains(port) else { throw SocketError(.badArgument, "port must be 0...65535") }
        var opts = try SocketOptions(listen: options)
        opts.localPort = port
        let owner = Process.current
        let socket = ListenSocket(driver: driver, options: opts, owner: owner)
        let address = SocketAddress(opts.localAddress ?? .anyV4, port: port)
        let listener = try driver.listen(on: address, options: opts, delegate: socket)
        socket.state.withLock { $0.listener = listener }
        if !owner.adopt(socket) { socket.close() }
        return socket
    }

    /// Accepts one connection; `gen_tcp:accept/2`. Timeout 0 polls.
    ///
    /// Waiting acceptors are served in the order they called. Cancelling the calling task, or
    /// killing the calling process, withdraws its `accept` at once: it is never handed a
    /// connection, and the next connection goes to the next live acceptor (as in OTP, where a
    /// dead process's accept is dropped). A connection already handed over when the cancellation
    /// comes is returned, never lost.
    ///
    /// - Throws: `timeout`; `closed` when the listener is (or gets) closed; `systemLimit` when
    ///   descriptors run out; `cancelled` when the task is cancelled or the process exits while
    ///   it waits.
    public func accept(timeout: Timeout = .infinity) async throws(SocketError) -> Socket {
        try await accept(timeout: timeout, passive: false)
    }

    /// `accept`, optionally with the new socket passive whatever this listener's options say.
    package func accept(timeout: Timeout, passive: Bool) async throws(SocketError) -> Socket {
        let limit = try timeout.validated().nanoseconds
        let caller = try Process.liveCaller()
        if let first = tryAccept(for: caller, polling: limit == 0, passive: passive) { return try first.get() }
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        let result: Result<Socket, SocketError> = await caller.waiting(interrupt: {
            self.endAccept(id, with: caller.cancellation)
        }) { await withUnsafeContinuation { continuation in
            let failed: SocketError? = state.withLock { s in
                guard s.listener != nil else { return .closed }
                if caller.mustNotWait { return caller.cancellation }
                var a = Acceptor(id: id, owner: caller, continuation: continuation, timer: nil, passive: passive)
                if let limit {
                    a.timer = runtime.schedule(afterNanoseconds: limit) { [weak self] in
                        self?.endAccept(id, with: .timeout)
                    }
                }
                s.acceptors.append(a)
                arm(&s)
                return nil
            }
            if let failed { continuation.resume(returning: .failure(failed)) }
        } }
        return try result.get()
    }

    /// Tries one accept now for a caller that is not queued. nil: must wait.
    private func tryAccept(for caller: Process, polling: Bool, passive: Bool) -> Result<Socket, SocketError>? {
        let made: Result<(Socket, any Connection), SocketError>? = state.withLock { (s: inout State) -> Result<(Socket, any Connection), SocketError>? in
            guard let listener = s.listener else { return .failure(.closed) }
            // Waiting acceptors are served first.
            guard s.acceptors.isEmpty else { return polling ? .failure(.timeout) : nil }
            let socket = Socket(driver: driver, options: inherited(s.options, passive: passive), owner: caller)
            do throws(SocketError) {
                guard let c = try listener.accept(delegate: socket) else {
                    return polling ? .failure(.timeout) : nil
                }
                return .success((socket, c))
            } catch {
                return .failure(error)
            }
        }
        switch made {
        case nil: return nil
        case .failure(let e)?: return .failure(e)
        case .success(let (socket, connection))?:
            socket.attach(connection)
            return .success(socket)
        }
    }

    private func inherited(_ options: SocketOptions, passive: Bool) -> SocketOptions {
        var o = options
        o.localPort = 0
        o.localAddress = nil
        if passive { o.active = .passive }
        return o
    }

    /// The options an accepted socket inherits.
    package var inheritedOptions: SocketOptions {
        state.withLock { inherited($0.options, passive: false) }
    }

    private func arm(_ s: inout State) {
        guard !s.armed, let listener = s.listener else { return }
        s.armed = true
        listener.armAccept()
    }

    /// Withdraws the waiting `accept` numbered `id` (if it still waits) with `error`: its
    /// timeout, or `cancelled`.
    private func endAccept(_ id: UInt64, with error: SocketError) {
        let a: Acceptor? = state.withLock { s in
            guard let i = s.acceptors.firstIndex(where: { $0.id == id }) else { return nil }
            return s.acceptors.remove(at: i)
        }
        guard let a else { return }
        if error.reason != .timeout, let t = a.timer { runtime.cancel(t) }
        a.continuation.resume(returning: .failure(error))
    }

    /// Closes the listener; `gen_tcp:close/1`. Waiting acceptors get `closed`; connections never
    /// accepted are dropped (their clients see `closed`). Always succeeds.
    public func close() {
        let (listener, acceptors, owner): ((any Listener)?, Deque<Acceptor>, Process) = state.withLock { s in
            let result = (s.listener, s.acceptors, s.owner)
            s.listener = nil
            s.acceptors = []
            return result
        }
        listener?.close()
        owner.release(self)
        for a in acceptors {
            if let t = a.timer { runtime.cancel(t) }
            a.continuation.resume(returning: .failure(.closed))
        }
    }

    /// The bound address; `inet:sockname/1`. Throws `einval` when closed.
    public func sockname() throws(SocketError) -> SocketAddress {
        try state.withLock { s throws(SocketError) in
            guard let l = s.listener, let a = l.localAddress() else {
                throw SocketError(.invalidArgument, "socket is closed")
            }
            return a
        }
    }

    /// The bound port; `inet:port/1`. After `listen(port: 0, ...)`, the port the driver chose.
    /// - Throws: `einval` when closed.
    public func port() throws(SocketError) -> Int { try sockname().port }

    /// Options accepted sockets will inherit; `inet:setopts/2` on a listener. The list is
    /// applied atomically, as on a socket.
    /// - Throws: `einval` for a bad value or a closed listener.
    public func setopts(_ options: [Option]) throws(SocketError) {
        try state.withLock { s throws(SocketError) in
            guard s.listener != nil else { throw SocketError(.invalidArgument, "socket is closed") }
            var updated = s.options
            try updated.apply(all: options, kind: .listen)
            s.options = updated
        }
    }

    /// Reads listener options; `inet:getopts/2`.
    /// - Throws: `einval` on a closed listener, or for a gen_udp-only name.
    public func getopts(_ names: [OptionName]) throws(SocketError) -> [Option] {
        try state.withLock { s throws(SocketError) in
            guard s.listener != nil else { throw SocketError(.invalidArgument, "socket is closed") }
            if names.contains(where: \.isDatagramOnly) {
                throw SocketError(.invalidArgument, "a gen_udp option on a gen_tcp socket")
            }
            return names.map { s.options.value(of: $0) }
        }
    }

    /// The controlling process.
    public var controllingProcess: Process { state.withLock { $0.owner } }
}

extension ListenSocket: ListenerDelegate {
    public func listenerAcceptable() {
        // Serve waiting acceptors in order while connections are pending.
        while true {
            var dead: [Acceptor] = []
            let step: (Acceptor, Result<(Socket, any Connection), SocketError>)? = state.withLock { (s: inout State) -> (Acceptor, Result<(Socket, any Connection), SocketError>)? in
                s.armed = false
                // An acceptor whose process has exited is never handed a connection (its
                // interrupt may not have run yet): the connection would die with it.
                while let head = s.acceptors.first, !head.owner.isAlive { dead.append(s.acceptors.removeFirst()) }
                guard let listener = s.listener, let head = s.acceptors.first else { return nil }
                let socket = Socket(driver: driver, options: inherited(s.options, passive: head.passive), owner: head.owner)
                do throws(SocketError) {
                    guard let c = try listener.accept(delegate: socket) else {
                        arm(&s)
                        return nil
                    }
                    s.acceptors.removeFirst()
                    return (head, .success((socket, c)))
                } catch {
                    s.acceptors.removeFirst()
                    return (head, .failure(error))
                }
            }
            for a in dead {
                if let t = a.timer { runtime.cancel(t) }
                a.continuation.resume(returning: .failure(SocketError(.cancelled, "the process has exited")))
            }
            guard let (acceptor, outcome) = step else { return }
            if let t = acceptor.timer { runtime.cancel(t) }
            switch outcome {
            case .success(let (socket, connection)):
                socket.attach(connection)
                acceptor.continuation.resume(returning: .success(socket))
            case .failure(let e):
                acceptor.continuation.resume(returning: .failure(e))
            }
        }
    }
}

extension ListenSocket: OwnedByProcess {
    func ownerExited(_ process: Process) {
        if state.withLock({ $0.owner === process }) { close() }
    }
}
