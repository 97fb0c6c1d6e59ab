import GenTCPCore

/// One socket slot of ``Net``.
struct SocketSlot {
    enum Phase: Equatable { case free, connecting, open, dead }
    var phase = Phase.free
    var generation: UInt16 = 0
    var link = InterfaceConnection(raw: 0)
    var options = SocketOptions()
    var statistics = Statistics()
    /// The interface reported a failure; it is delivered after the buffered bytes.
    var failure: SocketError?
    /// The end (or failure) was reported to the program once.
    var endReported = false
    /// The write side was shut down (or a send failed): sends answer `closed`.
    var writeClosed = false
    var connectDeadline: MillisecondInstant?
    /// A `recv(length:timeout:)` waiting: its length (-1: none) and deadline.
    var recvLength = -1
    var recvDeadline: MillisecondInstant?
    /// A short send happened: post `sendable` when room frees.
    var wantSendable = false
}

/// One listener slot of ``Net``.
struct ListenerSlot {
    var inUse = false
    var generation: UInt16 = 0
    var link = InterfaceListener(raw: 0)
    var options = SocketOptions()
    var accepting = false
    var acceptDeadline: MillisecondInstant?
}

/// One timer of ``Net/sendAfter(_:tag:)``.
struct ProgramTimer {
    var armed = false
    var tag: UInt32 = 0
    var deadline = MillisecondInstant(milliseconds: 0)
}

/// How many sockets, listeners and timers a board program may hold, and its largest message.
public struct NetLimits: Sendable {
    /// Sockets open at once (connected, connecting or accepted).
    public var sockets: Int
    /// Listeners at once.
    public var listeners: Int
    /// Timers armed at once.
    public var timers: Int
    /// The largest `buffer` a socket may have: the size of the one delivery buffer every
    /// message's bytes are copied into. A larger `buffer` option is `einval`.
    public var largestBuffer: Int
    /// Messages waiting for the program (notices; data is read from the interface on demand).
    public var notices: Int

    /// Limits for a small board: 2 sockets, 1 listener, 4 timers, 1,460-byte messages.
    public init(sockets: Int = 2, listeners: Int = 1, timers: Int = 4, largestBuffer: Int = 1460, notices: Int = 16) {
        self.sockets = sockets
        self.listeners = listeners
        self.timers = timers
        self.largestBuffer = largestBuffer
        self.notices = notices
    }
}

/// gen_tcp for a board program: the calls a program makes, on a fixed socket table over one
/// ``NetworkInterface``. Every table and buffer is allocated when it is made; no call allocates.
///
/// The calls follow OTP's gen_tcp and inet (reasons, option validation, active-mode arithmetic
/// come from GenTCPCore, as on the host). Calls that block in Erlang return at once here and
/// deliver their outcome as a ``BoardMessage``.
public struct Net<Interface: NetworkInterface & ~Copyable>: ~Copyable {
    /// The network under the sockets (its counters are public where it has them). It lives in
    /// storage of its own, allocated once: an interface is hundreds of bytes (a modem engine's
    /// state), and a firmware must not hold copies of it on its stack while the run loop is
    /// built and moved into place.
    public var interface: Interface {
        _read { yield interfaceStorage.pointee }
        nonmutating _modify { yield &interfaceStorage.pointee }
    }
    let interfaceStorage: UnsafeMutablePointer<Interface>
    /// The limits it was made with.
    public let limits: NetLimits
    var sockets: [SocketSlot]
    var listeners: [ListenerSlot]
    var timers: [ProgramTimer]
    /// Messages without bytes, waiting for the program.
    var notices: FixedQueue<BoardMessage>
    let delivery: UnsafeMutableRawBufferPointer
    /// The run loop's clock at this turn.
    public internal(set) var now: MillisecondInstant
    /// Set by ``stop(status:)``.
    public internal(set) var stopStatus: Int32?
    var scanCursor = 0
    var interfaceUp = false

    /// A socket table over `interface`.
    public init(interface: consuming Interface, limits: NetLimits = NetLimits(), now: MillisecondInstant) {
        interfaceStorage = UnsafeMutablePointer<Interface>.allocate(capacity: 1)
        interfaceStorage.initialize(to: interface)
        self.limits = limits
        sockets = [SocketSlot](repeating: SocketSlot(), count: max(limits.sockets, 1))
        listeners = [ListenerSlot](repeating: ListenerSlot(), count: max(limits.listeners, 0))
        timers = [ProgramTimer](repeating: ProgramTimer(), count: max(limits.timers, 0))
        notices = FixedQueue<BoardMessage>(capacity: limits.notices + limits.sockets * 2)
        delivery = UnsafeMutableRawBufferPointer.allocate(byteCount: max(limits.largestBuffer, 1), alignment: 8)
        self.now = now
    }

    deinit {
        delivery.deallocate()
        interfaceStorage.deinitialize(count: 1)
        interfaceStorage.deallocate()
    }

    // MARK: - Opening

    /// `gen_tcp:connect/4`: opens a connection; ``BoardMessage/connected(_:)`` or
    /// ``BoardMessage/connectFailed(_:_:)`` follows (`timeout` when `timeout` passes first).
    ///
    /// - Throws: `badarg` for a bad option or timeout, `enetdown` before ``BoardMessage/networkUp``,
    ///   `emfile` when every socket slot is taken, the interface's refusal.
    public mutating func connect(to address: IPAddress, port: UInt16, options: [Option] = [],
                                 timeout: Timeout = .infinity) throws(SocketError) -> BoardSocket {
        let parsed = try SocketOptions(connect: options)
        let timeout = try timeout.validated()
        guard parsed.buffer <= limits.largestBuffer else { throw SocketError(.badArgument, "buffer above the board's largest") }
        guard port != 0 else { throw SocketError(.badArgument, "port 0") }
        guard interfaceUp else { throw SocketError(.networkDown) }
        guard let index = freeSlot() else { throw SocketError(.tooManyOpenFiles) }
        var settings = InterfaceSettings(noDelay: parsed.nodelay, keepalive: parsed.keepalive)
        if case .milliseconds(let ms) = timeout { settings.connectTimeout = Milliseconds(Int64(ms)) }
        let link = try interface.connect(to: address, port: port, settings: settings, now: now)
        open(index, link: link, options: parsed, phase: .connecting)
        if case .milliseconds(let ms) = timeout { sockets[index].connectDeadline = now.advanced(byMilliseconds: Int64(ms)) }
        return socket(index)
    }

    /// `gen_tcp:listen/2` on `port`; accepted sockets inherit `options`.
    /// - Throws: `badarg`, `eaddrinuse`, `emfile`, `enotsup` (a modem).
    public mutating func listen(port: UInt16, options: [Option] = []) throws(SocketError) -> BoardListener {
        let parsed = try SocketOptions(listen: options)
        guard parsed.buffer <= limits.largestBuffer else { throw SocketError(.badArgument, "buffer above the board's largest") }
        guard let index = listeners.firstIndex(where: { !$0.inUse }) else { throw SocketError(.tooManyOpenFiles) }
        let settings = InterfaceSettings(noDelay: parsed.nodelay, keepalive: parsed.keepalive)
        let link = try interface.listen(port: port, backlog: max(parsed.backlog, 1), settings: settings)
        listeners[index].inUse = true
        listeners[index].link = link
        listeners[index].options = parsed
        listeners[index].accepting = false
        listeners[index].acceptDeadline = nil
        return BoardListener(index: UInt16(index), generation: listeners[index].generation)
    }

    /// `gen_tcp:accept/2`: the next connection arrives as ``BoardMessage/accepted(_:_:)``
    /// (or ``BoardMessage/acceptFailed(_:_:)`` with `timeout`).
    /// - Throws: `closed` for a closed listener, `ealready` while an accept is pending, `badarg`.
    public mutating func accept(_ listener: BoardListener, timeout: Timeout = .infinity) throws(SocketError) {
        let li = try listenerSlot(listener)
        let timeout = try timeout.validated()
        guard !listeners[li].accepting else { throw .alreadyInProgress }
        listeners[li].accepting = true
        if case .milliseconds(let ms) = timeout { listeners[li].acceptDeadline = now.advanced(byMilliseconds: Int64(ms)) }
    }

    // MARK: - Data

    /// `gen_tcp:send/2` without blocking: queues what fits and returns how many bytes were
    /// taken; after a short send, ``BoardMessage/sendable(_:)`` says when to offer the rest.
    /// - Throws: `closed` (closed, shut down, or the connection ended), `enotconn` while connecting,
    ///   `econnreset` with `show_econnreset`.
    public mutating func send(_ socket: BoardSocket, _ bytes: UnsafeRawBufferPointer) throws(SocketError) -> Int {
        let index = try slot(socket)
        switch sockets[index].phase {
        case .connecting: throw .notConnected
        case .dead, .free: throw .closed
        case .open: break
        }
        if sockets[index].writeClosed { throw .closed }
        if let failure = sockets[index].failure {
            sockets[index].writeClosed = true
            throw shown(failure, sockets[index].options) ?? .closed
        }
        let taken: Int
        do throws(SocketError) {
            taken = try interface.send(sockets[index].link, bytes, now: now)
        } catch {
            sockets[index].writeClosed = true
            throw shown(error, sockets[index].options) ?? .closed
        }
        if taken < bytes.count { sockets[index].wantSendable = true }
        if taken > 0 || bytes.isEmpty { sockets[index].statistics.sent(taken) }
        return taken
    }

    /// `send` of a static string (a literal), without blocking: returns how many bytes were taken.
    public mutating func send(_ socket: BoardSocket, _ text: StaticString) throws(SocketError) -> Int {
        try send(socket, UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `send` of an array's bytes, without blocking: returns how many bytes were taken.
    public mutating func send(_ socket: BoardSocket, _ bytes: [UInt8]) throws(SocketError) -> Int {
        var result: Result<Int, SocketError> = .success(0)
        bytes.withUnsafeBytes { raw in
            do throws(SocketError) { result = .success(try send(socket, raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// `gen_tcp:recv(S, 0, 0)`: bytes already here, at most `buffer` and `into.count`, without
    /// waiting; nil when none.
    /// - Throws: `einval` in an active mode, `ealready` while a ``recv(_:length:timeout:)`` is
    ///   pending, `closed` once at the end (then `enotconn`), the connection's failure.
    public mutating func recv(_ socket: BoardSocket, into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> Int? {
        let index = try readableSlot(socket)
        guard sockets[index].recvLength < 0 else { throw .alreadyInProgress }
        let room = min(buffer.count, sockets[index].options.buffer)
        guard room > 0 else { return nil }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<room])
        switch try readOrEnd(index, into: target) {
        case .some(let n):
            sockets[index].statistics.delivered(n)
            return n
        case .none:
            return nil
        }
    }

    /// `gen_tcp:recv/3`: ``BoardMessage/received(_:_:)`` brings exactly `length` bytes (0: what
    /// is there, at most `buffer`), or ``BoardMessage/recvFailed(_:_:)`` `timeout` (the bytes stay)
    /// or `closed` (a short tail before the end is dropped, as in OTP).
    /// - Throws: `einval` in an active mode, `ealready` while one is pending, `enomem` for a
    ///   length above the board's delivery buffer, `closed`/`enotconn` after the end.
    public mutating func recv(_ socket: BoardSocket, length: Int, timeout: Timeout = .infinity) throws(SocketError) {
        let index = try readableSlot(socket)
        let timeout = try timeout.validated()
        guard sockets[index].recvLength < 0 else { throw .alreadyInProgress }
        guard length >= 0 else { throw .invalidArgument }
        guard length <= limits.largestBuffer else { throw SocketError(.outOfMemory, "length above the board's delivery buffer") }
        if sockets[index].endReported { throw .notConnected }
        sockets[index].recvLength = length
        if case .milliseconds(let ms) = timeout { sockets[index].recvDeadline = now.advanced(byMilliseconds: Int64(ms)) }
    }

    // MARK: - Options and state

    /// `inet:setopts/2`: all or nothing; `{active, N}` arithmetic as OTP's (a counter reaching 0
    /// sends ``BoardMessage/tcpPassive(_:)``).
    /// - Throws: `einval` for a bad value, or on a socket that ended in an active mode.
    public mutating func setopts(_ socket: BoardSocket, _ options: [Option]) throws(SocketError) {
        let index = try slot(socket)
        guard sockets[index].phase != .dead else { throw .invalidArgument }
        var updated = sockets[index].options
        let passive = try updated.apply(all: options)
        guard updated.buffer <= limits.largestBuffer else { throw SocketError(.invalidArgument, "buffer above the board's largest") }
        if updated.nodelay != sockets[index].options.nodelay || updated.keepalive != sockets[index].options.keepalive,
           sockets[index].phase == .open {
            try interface.configure(sockets[index].link, noDelay: updated.nodelay, keepalive: updated.keepalive)
        }
        sockets[index].options = updated
        if passive { _ = notices.push(.tcpPassive(socket)) }
    }

    /// `inet:getopts/2`: the values of `names`, in order.
    /// - Throws: `einval` on a socket that ended in an active mode, or for a gen_udp name.
    public func getopts(_ socket: BoardSocket, _ names: [OptionName]) throws(SocketError) -> [Option] {
        let index = try slot(socket)
        guard sockets[index].phase != .dead else { throw .invalidArgument }
        var values: [Option] = []
        for name in names {
            guard !name.isDatagramOnly else { throw .invalidArgument }
            values.append(sockets[index].options.value(of: name))
        }
        return values
    }

    /// `inet:getstat/1`: the socket's counters (`send_pend`: bytes sent and not yet acknowledged).
    public func getstat(_ socket: BoardSocket) throws(SocketError) -> Statistics {
        let index = try slot(socket)
        var statistics = sockets[index].statistics
        if sockets[index].phase == .open { statistics.sendPend = UInt64(interface.unsentCount(sockets[index].link)) }
        return statistics
    }

    /// `inet:peername/1`.
    public func peername(_ socket: BoardSocket) throws(SocketError) -> SocketAddress {
        let index = try slot(socket)
        guard sockets[index].phase == .open, let peer = interface.peer(sockets[index].link) else { throw .notConnected }
        return SocketAddress(peer.address, port: Int(peer.port))
    }

    /// `inet:sockname/1`.
    public func sockname(_ socket: BoardSocket) throws(SocketError) -> SocketAddress {
        let index = try slot(socket)
        guard sockets[index].phase == .open, let local = interface.local(sockets[index].link) else { throw .notConnected }
        return SocketAddress(local.address, port: Int(local.port))
    }

    // MARK: - Ending

    /// `gen_tcp:shutdown/2`: `write` sends FIN after the queued bytes; reading goes on.
    /// - Throws: `closed` after close, `enotconn` when not connected, `enotsup` where the
    ///   interface cannot half-close (a modem).
    public mutating func shutdown(_ socket: BoardSocket, _ how: ShutdownHow) throws(SocketError) {
        let index = try slot(socket)
        guard sockets[index].phase == .open else { throw sockets[index].phase == .dead ? .closed : .notConnected }
        if how == .read { return }
        if !sockets[index].writeClosed {
            try interface.shutdown(sockets[index].link, now: now)
            sockets[index].writeClosed = true
        }
    }

    /// `gen_tcp:close/1`: always succeeds; queued bytes still go out (`{linger, 0}`: a reset).
    /// Messages of this socket not yet delivered are dropped.
    public mutating func close(_ socket: BoardSocket) {
        guard let index = try? slot(socket) else { return }
        release(index, abortive: sockets[index].options.linger == 0)
    }

    /// Closes a listener; a pending accept fails with `closed`.
    public mutating func close(_ listener: BoardListener) {
        guard let li = try? listenerSlot(listener) else { return }
        interface.close(listener: listeners[li].link)
        if listeners[li].accepting { _ = notices.push(.acceptFailed(listener, .closed)) }
        listeners[li].inUse = false
        listeners[li].accepting = false
        listeners[li].generation &+= 1
    }

    // MARK: - Timers and the program's end

    /// `erlang:send_after/3`: ``BoardMessage/timer(_:)`` with `tag` after `milliseconds`.
    /// - Throws: `system_limit` when every timer is armed.
    public mutating func sendAfter(_ milliseconds: Int64, tag: UInt32) throws(SocketError) {
        guard let index = timers.firstIndex(where: { !$0.armed }) else { throw SocketError(.systemLimit) }
        timers[index] = ProgramTimer(armed: true, tag: tag, deadline: now.advanced(byMilliseconds: max(milliseconds, 0)))
    }

    /// Disarms the timers with `tag`.
    public mutating func cancelTimer(tag: UInt32) {
        for index in timers.indices where timers[index].armed && timers[index].tag == tag { timers[index].armed = false }
    }

    /// Ends the program: the run loop returns `status` (a firmware's exit status).
    public mutating func stop(status: Int32) {
        stopStatus = status
    }

    /// Sockets open or opening.
    public var openSockets: Int { sockets.reduce(0) { $0 + ($1.phase == .free ? 0 : 1) } }

    /// Whether the interface still has bytes to send for `socket` (0 when gone).
    public func unsent(_ socket: BoardSocket) -> Int {
        guard let index = try? slot(socket), sockets[index].phase == .open else { return 0 }
        return interface.unsentCount(sockets[index].link)
    }

    // MARK: - Internals

    /// A free slot, or one whose socket ended in an active mode (its handle then answers `closed`).
    mutating func freeSlot() -> Int? {
        if let index = sockets.firstIndex(where: { $0.phase == .free }) { return index }
        guard let index = sockets.firstIndex(where: { $0.phase == .dead }) else { return nil }
        release(index, abortive: false)
        return index
    }

    func socket(_ index: Int) -> BoardSocket { BoardSocket(index: UInt16(index), generation: sockets[index].generation) }

    func slot(_ socket: BoardSocket) throws(SocketError) -> Int {
        let index = Int(socket.index)
        guard index < sockets.count, sockets[index].phase != .free, sockets[index].generation == socket.generation
        else { throw .closed }
        return index
    }

    func listenerSlot(_ listener: BoardListener) throws(SocketError) -> Int {
        let index = Int(listener.index)
        guard index < listeners.count, listeners[index].inUse, listeners[index].generation == listener.generation
        else { throw .closed }
        return index
    }

    /// A socket `recv` may read: passive, connected, not yet past its end.
    func readableSlot(_ socket: BoardSocket) throws(SocketError) -> Int {
        let index = try slot(socket)
        switch sockets[index].phase {
        case .dead, .free: throw .closed
        case .connecting: throw .notConnected
        case .open: break
        }
        guard !sockets[index].options.active.delivers else { throw .invalidArgument }
        return index
    }

    mutating func open(_ index: Int, link: InterfaceConnection, options: SocketOptions, phase: SocketSlot.Phase) {
        let generation = sockets[index].generation
        sockets[index] = SocketSlot()
        sockets[index].generation = generation
        sockets[index].phase = phase
        sockets[index].link = link
        sockets[index].options = options
    }

    /// Frees a slot: its interface connection is closed (or aborted), its notices dropped.
    mutating func release(_ index: Int, abortive: Bool) {
        let socket = self.socket(index)
        if sockets[index].phase != .free && sockets[index].phase != .dead {
            if abortive { interface.abort(sockets[index].link, now: now) } else { interface.close(sockets[index].link, now: now) }
        }
        notices.remove(socket)
        sockets[index].phase = .free
        sockets[index].generation &+= 1
    }

    /// The reason to show for a failure: nil when it hides behind a plain `closed`
    /// (`econnreset` without `show_econnreset`, or `closed` itself).
    func shown(_ error: SocketError, _ options: SocketOptions) -> SocketError? {
        if error.reason == .closed { return nil }
        if error.reason == .connectionReset && !options.showEconnreset { return nil }
        return error
    }

    /// Reads into `buffer`: the count, nil when nothing is there yet; at the end throws
    /// `closed` once (then `enotconn`), or the failure's shown reason.
    mutating func readOrEnd(_ index: Int, into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> Int? {
        if sockets[index].endReported { throw .notConnected }
        let read: InterfaceRead
        do throws(SocketError) {
            read = try interface.recv(sockets[index].link, into: buffer, now: now)
        } catch {
            sockets[index].endReported = true
            throw shown(error, sockets[index].options) ?? .closed
        }
        switch read {
        case .data(let n): return n
        case .wouldBlock:
            if let failure = sockets[index].failure {
                sockets[index].endReported = true
                throw shown(failure, sockets[index].options) ?? .closed
            }
            return nil
        case .end:
            sockets[index].endReported = true
            throw .closed
        }
    }
}

extension FixedQueue where Element == BoardMessage {
    /// Drops every message about `socket`, keeping the others in order.
    mutating func remove(_ socket: BoardSocket) {
        removeAll { Self.concerns($0, socket) }
    }

    static func concerns(_ message: BoardMessage, _ socket: BoardSocket) -> Bool {
        switch message {
        case .tcp(let s, _), .tcpClosed(let s), .tcpError(let s, _), .tcpPassive(let s), .connected(let s),
             .connectFailed(let s, _), .received(let s, _), .recvFailed(let s, _), .sendable(let s):
            return s == socket
        case .accepted(_, let s): return s == socket
        case .acceptFailed, .timer, .networkUp, .networkDown: return false
        }
    }
}
