import DequeModule
import GenTCP
import GenTCPCore

// The simulated network's state machine. Everything here runs under the network's lock
// (`SimNetwork.world`); time comes from the runtime's virtual clock, and work that must happen
// later (a segment's arrival, a window update, a readiness callback) is a timer on the runtime
// that calls back into `SimNetwork.fire(_:)`.
//
// A connection (`Link`) has two ends: side 0 is the client, side 1 the server. `pipes[d]` carries
// bytes from side `d` to side `1 - d`: its in-flight segments, the receiver's buffer, and the
// window accounting (bytes counted against the receiver's window until a window update, one
// latency after the receiver read them, returns the credit to the sender).

/// Work the runtime does later for the network.
enum SimTimer: Sendable {
    case synArrival(pending: Int, attempt: Int)
    case synAck(pending: Int)
    case synRefused(pending: Int)
    case synRetry(pending: Int)
    case connectDeadline(pending: Int)
    case arrival(link: Int, direction: Int)
    case windowUpdate(link: Int, direction: Int, bytes: Int)
    case notifyRead(link: Int, side: Int)
    case notifyWrite(link: Int, side: Int)
    case notifyAccept(listener: Int)
}

/// What to do once the network's lock is released: readiness callbacks and connect results.
enum SimCallback: Sendable {
    case readable(any ConnectionDelegate)
    case writable(any ConnectionDelegate)
    case acceptable(any ListenerDelegate)
    case connected(UnsafeContinuation<Result<SimConnection, SocketError>, Never>, Result<SimConnection, SocketError>)

    func run() {
        switch self {
        case .readable(let d): d.connectionReadable()
        case .writable(let d): d.connectionWritable()
        case .acceptable(let d): d.listenerAcceptable()
        case .connected(let c, let r): c.resume(returning: r)
        }
    }
}

/// Faults are looked up by these keys: a port of a host, a host, or the whole network.
enum FaultKey: Hashable {
    case network
    case host(Int)
    case port(Int, Int)
}

struct HostRecord {
    var name: String
    var addresses: [IPAddress]
    var receiveWindow: Int
    var nextEphemeral = SimWorld.ephemeralPorts.lowerBound
    /// Local ports of client connections, with how many connections use each.
    var connectionPorts: [Int: Int] = [:]
}

struct HostPair: Hashable {
    var a: Int, b: Int
    init(_ x: Int, _ y: Int) { a = min(x, y); b = max(x, y) }
}

struct DirectedPair: Hashable {
    var from: Int, to: Int
}

struct Segment {
    enum Kind {
        case data([UInt8])
        case fin
        case rst
    }
    var kind: Kind
    /// When the segment starts on the line (later than its write on a busy rate-limited line).
    var departure: UInt64
    var arrival: UInt64
    var timer: TimerID
}

final class Pipe {
    /// The receiver's window: what the sender may have outstanding.
    let window: Int
    var segments = Deque<Segment>()
    var inFlightBytes = 0
    /// Delivered, not yet read, in arrival order; `headOffset` bytes of the first are read.
    var buffer = Deque<[UInt8]>()
    var headOffset = 0
    var buffered = 0
    /// Bytes counted against the window: written and not yet credited back by a window update.
    var unacked = 0
    var finArrived = false
    /// No more segments enter (after an RST was queued or received).
    var cut = false
    var lastArrival: UInt64 = 0
    /// Data bytes handed to the network (for `resetAfterBytes`).
    var sent = 0

    init(window: Int) { self.window = window }

    var space: Int { window - unacked }
}

final class End {
    enum State {
        /// Usable by its socket (or waiting in a backlog).
        case open
        /// Closed gracefully by its socket: the next data to arrive is answered by an RST.
        case closed
        /// Closed and reset (sent or received an RST): anything arriving is dropped.
        case gone
    }
    var state = State.open
    var delegate: (any ConnectionDelegate)?
    var readArmed = false
    var writeArmed = false
    var readNotifyPending = false
    var writeNotifyPending = false
    var writeShut = false
    var readShut = false
    var resetReceived = false
    var resetReported = false
}

final class Link {
    let id: Int
    /// Host index of each side.
    let hosts: [Int]
    /// Socket address of each side.
    let addresses: [SocketAddress]
    let faults: SimFaults
    let ends = [End(), End()]
    let pipes: [Pipe]
    /// The client's local port is released when the link is gone.
    var portReleased = false

    init(id: Int, hosts: [Int], addresses: [SocketAddress], windows: [Int], faults: SimFaults) {
        self.id = id
        self.hosts = hosts
        self.addresses = addresses
        self.faults = faults
        // pipes[d] goes to side 1 - d: its window is that side's receive window.
        self.pipes = [Pipe(window: windows[1]), Pipe(window: windows[0])]
    }

    static func direction(_ d: Int) -> SimEvent.Direction { d == 0 ? .toServer : .toClient }
}

final class ListenerRecord {
    let id: Int
    let host: Int
    let address: SocketAddress
    let backlog: Int
    var queue = Deque<Int>()
    var delegate: (any ListenerDelegate)?
    var armed = false
    var notifyPending = false

    init(id: Int, host: Int, address: SocketAddress, backlog: Int, delegate: any ListenerDelegate) {
        self.id = id
        self.host = host
        self.address = address
        self.backlog = backlog
        self.delegate = delegate
    }
}

final class PendingConnect {
    let id: Int
    let host: Int
    let destinationHost: Int?
    let local: SocketAddress
    let remote: SocketAddress
    let faults: SimFaults
    let delegate: any ConnectionDelegate
    let continuation: UnsafeContinuation<Result<SimConnection, SocketError>, Never>
    var attempt = 0
    var retryTimer: TimerID?
    var deadlineTimer: TimerID?
    var link: Int?

    init(
        id: Int, host: Int, destinationHost: Int?, local: SocketAddress, remote: SocketAddress,
        faults: SimFaults, delegate: any ConnectionDelegate,
        continuation: UnsafeContinuation<Result<SimConnection, SocketError>, Never>
    ) {
        self.id = id
        self.host = host
        self.destinationHost = destinationHost
        self.local = local
        self.remote = remote
        self.faults = faults
        self.delegate = delegate
        self.continuation = continuation
    }
}

final class SimWorld {
    static let ephemeralPorts = 49152...65535

    let runtime: SimRuntime
    let configuration: SimNetwork.Configuration
    /// Set by the network before each use; timers call back into it.
    weak var network: SimNetwork?
    var rng: SplitMix64
    var hosts: [HostRecord] = []
    var hostByName: [String: Int] = [:]
    var hostByAddress: [IPAddress: Int] = [:]
    var links: [Int: Link] = [:]
    var listeners: [Int: ListenerRecord] = [:]
    var pending: [Int: PendingConnect] = [:]
    var profiles: [HostPair: SimLink] = [:]
    var lineFreeAt: [DirectedPair: UInt64] = [:]
    var faults: [FaultKey: SimFaults] = [:]
    var trace: [SimEvent] = []
    var stats = SimStatistics()
    var nextLinkID = 1
    var nextListenerID = 1
    var nextPendingID = 1
    /// Callbacks to run once the lock is released.
    var callbacks: [SimCallback] = []
    /// True while serving a Connection or Listener method: readiness found then must be
    /// announced from a timer, never from inside the call.
    var deferCallbacks = false

    init(runtime: SimRuntime, configuration: SimNetwork.Configuration, seed: UInt64) {
        self.runtime = runtime
        self.configuration = configuration
        self.rng = SplitMix64(seed: seed)
        faults[.network] = configuration.faults
    }

    var now: UInt64 { runtime.now }

    // MARK: Bookkeeping

    func record(_ connection: Int?, _ kind: SimEvent.Kind) {
        if trace.count < configuration.traceLimit {
            trace.append(SimEvent(time: now, connection: connection, kind: kind))
        } else {
            stats.traceDropped += 1
        }
    }

    func schedule(after nanoseconds: UInt64, _ event: SimTimer) -> TimerID {
        runtime.schedule(afterNanoseconds: nanoseconds) { [weak network] in network?.fire(event) }
    }

    func schedule(at time: UInt64, _ event: SimTimer) -> TimerID {
        schedule(after: time > now ? time - now : 0, event)
    }

    func profile(_ a: Int, _ b: Int) -> SimLink {
        profiles[HostPair(a, b)] ?? configuration.link
    }

    /// One-way delay from host `a` to host `b` without jitter, faults' extra latency included.
    func latency(_ a: Int, _ b: Int, _ f: SimFaults) -> UInt64 {
        let (sum, overflow) = profile(a, b).latency.simNanoseconds.addingReportingOverflow(f.extraLatency.simNanoseconds)
        return overflow ? .max / 2 : sum
    }

    func resolvedFaults(client: Int, server: Int?, port: Int) -> SimFaults {
        if let server {
            if let f = faults[.port(server, port)] { return f }
            if let f = faults[.host(server)] { return f }
        }
        if let f = faults[.host(client)] { return f }
        return faults[.network] ?? .none
    }

    static func isLoopback(_ a: IPAddress) -> Bool {
        switch a {
        case .v4(let v): return v >> 24 == 127
        case .v6: return a == .loopbackV6
        }
    }

    static func isAny(_ a: IPAddress) -> Bool { a == .anyV4 || a == .anyV6 }

    /// True when `a` is an address of host `h` (its own, loopback, or a wildcard).
    func isLocal(_ a: IPAddress, to h: Int) -> Bool {
        SimWorld.isLoopback(a) || SimWorld.isAny(a) || hosts[h].addresses.contains(a)
    }

    /// Two bound addresses on one port clash: equal, or one is a wildcard covering the other
    /// (`::` is dual-stack, as on Linux by default).
    static func overlaps(_ a: IPAddress, _ b: IPAddress) -> Bool {
        if a == b || a == .anyV6 || b == .anyV6 { return true }
        if a == .anyV4 { return !b.isIPv6 }
        if b == .anyV4 { return !a.isIPv6 }
        return false
    }

    /// A listener bound to `bound` takes connections to `destination`.
    static func accepts(_ bound: IPAddress, _ destination: IPAddress) -> Bool {
        if bound == destination || bound == .anyV6 { return true }
        return bound == .anyV4 && !destination.isIPv6
    }

    func portInUse(_ port: Int, host h: Int) -> Bool {
        if hosts[h].connectionPorts[port, default: 0] > 0 { return true }
        return listeners.values.contains { $0.host == h && $0.address.port == port }
    }

    /// The next free ephemeral port of a host, in order (deterministic).
    func ephemeralPort(host h: Int) -> Int? {
        let range = SimWorld.ephemeralPorts
        for _ in 0..<range.count {
            let candidate = hosts[h].nextEphemeral
            hosts[h].nextEphemeral = candidate == range.upperBound ? range.lowerBound : candidate + 1
            if !portInUse(candidate, host: h) { return candidate }
        }
        return nil
    }

    func releasePort(_ link: Link) {
        guard !link.portReleased else { return }
        link.portReleased = true
        releasePort(link.addresses[0].port, host: link.hosts[0])
    }

    func releasePort(_ port: Int, host h: Int) {
        let n = hosts[h].connectionPorts[port, default: 0] - 1
        hosts[h].connectionPorts[port] = n > 0 ? n : nil
    }

    var bufferedBytes: Int {
        var n = 0
        for link in links.values {
            for p in link.pipes { n += p.inFlightBytes + p.buffered }
        }
        return n
    }

    func notePeak(_ pipe: Pipe) {
        let held = pipe.inFlightBytes + pipe.buffered
        if held > stats.peakBufferedBytes { stats.peakBufferedBytes = held }
    }

    /// Forgets a link once both ends are closed and nothing is in flight.
    func collect(_ link: Link) {
        guard link.ends[0].state != .open, link.ends[1].state != .open,
              link.pipes[0].segments.isEmpty, link.pipes[1].segments.isEmpty
        else { return }
        releasePort(link)
        links[link.id] = nil
    }

    // MARK: Readiness

    func isReadable(_ link: Link, _ side: Int) -> Bool {
        let end = link.ends[side]
        guard end.state == .open else { return false }
        let p = link.pipes[1 - side]
        return p.buffered > 0 || end.resetReceived || p.finArrived || end.readShut
    }

    func isWritable(_ link: Link, _ side: Int) -> Bool {
        let end = link.ends[side]
        guard end.state == .open else { return false }
        return end.resetReceived || end.writeShut || link.pipes[side].space > 0
    }

    func notifyReadable(_ link: Link, _ side: Int) {
        let end = link.ends[side]
        guard end.readArmed, end.delegate != nil, isReadable(link, side) else { return }
        if deferCallbacks {
            if !end.readNotifyPending {
                end.readNotifyPending = true
                _ = schedule(after: 0, .notifyRead(link: link.id, side: side))
            }
            return
        }
        end.readArmed = false
        callbacks.append(.readable(end.delegate!))
    }

    func notifyWritable(_ link: Link, _ side: Int) {
        let end = link.ends[side]
        guard end.writeArmed, end.delegate != nil, isWritable(link, side) else { return }
        if deferCallbacks {
            if !end.writeNotifyPending {
                end.writeNotifyPending = true
                _ = schedule(after: 0, .notifyWrite(link: link.id, side: side))
            }
            return
        }
        end.writeArmed = false
        callbacks.append(.writable(end.delegate!))
    }

    func notifyAcceptable(_ l: ListenerRecord) {
        guard l.armed, let d = l.delegate, !l.queue.isEmpty else { return }
        if deferCallbacks {
            if !l.notifyPending {
                l.notifyPending = true
                _ = schedule(after: 0, .notifyAccept(listener: l.id))
            }
            return
        }
        l.armed = false
        callbacks.append(.acceptable(d))
    }

    // MARK: Timers

    func handle(_ event: SimTimer) {
        deferCallbacks = false
        switch event {
        case .synArrival(let id, let attempt): synArrived(id, attempt: attempt)
        case .synAck(let id): synAcked(id)
        case .synRefused(let id): synRefused(id)
        case .synRetry(let id): synRetry(id)
        case .connectDeadline(let id): connectDeadline(id)
        case .arrival(let id, let d):
            if let link = links[id] { arrive(link, d) }
        case .windowUpdate(let id, let d, let n):
            guard let link = links[id] else { return }
            link.pipes[d].unacked -= n
            notifyWritable(link, d)
        case .notifyRead(let id, let side):
            guard let link = links[id] else { return }
            link.ends[side].readNotifyPending = false
            notifyReadable(link, side)
        case .notifyWrite(let id, let side):
            guard let link = links[id] else { return }
            link.ends[side].writeNotifyPending = false
            notifyWritable(link, side)
        case .notifyAccept(let id):
            guard let l = listeners[id] else { return }
            l.notifyPending = false
            notifyAcceptable(l)
        }
    }
}

// MARK: - Connecting

extension SimWorld {
    func startConnect(
        from h: Int, to remote: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
        delegate: any ConnectionDelegate,
        continuation: UnsafeContinuation<Result<SimConnection, SocketError>, Never>
    ) -> SocketError? {
        // Where the SYN goes, and from which of our addresses.
        let destination: Int?
        var source: IPAddress
        let target = remote.address
        if SimWorld.isLoopback(target) || SimWorld.isAny(target) {
            destination = h
            source = target.isIPv6 ? .loopbackV6 : .loopbackV4
        } else {
            destination = hostByAddress[target]
            if destination == h {
                source = target
            } else {
                guard let a = hosts[h].addresses.first(where: { $0.isIPv6 == target.isIPv6 }) else {
                    return SocketError(.networkUnreachable)
                }
                source = a
            }
        }
        if let bind = options.localAddress, !SimWorld.isAny(bind) {
            guard isLocal(bind, to: h) else { return SocketError(.addressNotAvailable) }
            guard bind.isIPv6 == target.isIPv6 else { return SocketError(.addressFamilyNotSupported) }
            source = bind
        }
        let port: Int
        if options.localPort != 0 {
            if portInUse(options.localPort, host: h) && !options.reuseaddr { return SocketError(.addressInUse) }
            port = options.localPort
        } else {
            guard let p = ephemeralPort(host: h) else { return SocketError(.addressNotAvailable) }
            port = p
        }
        hosts[h].connectionPorts[port, default: 0] += 1

        let p = PendingConnect(
            id: nextPendingID, host: h, destinationHost: destination,
            local: SocketAddress(source, port: port), remote: remote,
            faults: resolvedFaults(client: h, server: destination, port: remote.port),
            delegate: delegate, continuation: continuation)
        nextPendingID += 1
        pending[p.id] = p
        if let limit = timeoutNanoseconds {
            p.deadlineTimer = schedule(after: limit, .connectDeadline(pending: p.id))
        }
        sendSyn(p)
        return nil
    }

    private func sendSyn(_ p: PendingConnect) {
        record(nil, .syn(from: p.local, to: p.remote, attempt: p.attempt))
        if let dst = p.destinationHost {
            _ = schedule(after: latency(p.host, dst, p.faults), .synArrival(pending: p.id, attempt: p.attempt))
        }
        // Exponential backoff, as a kernel retransmits an unanswered SYN.
        let rto = configuration.initialRetransmitTimeout.simNanoseconds
        let shift = min(p.attempt, 40)
        p.retryTimer = schedule(after: rto << UInt64(shift), .synRetry(pending: p.id))
    }

    private func synArrived(_ id: Int, attempt: Int) {
        guard let p = pending[id], p.link == nil, let dst = p.destinationHost else { return }
        let back = latency(dst, p.host, p.faults)
        let listener = listeners.values
            .filter { $0.host == dst && $0.address.port == p.remote.port && SimWorld.accepts($0.address.address, p.remote.address) }
            .min { $0.id < $1.id }
        guard let listener, p.remote.port != 0 else {
            _ = schedule(after: back, .synRefused(pending: id))
            return
        }
        if p.faults.refuseProbability > 0 && rng.chance(p.faults.refuseProbability) {
            stats.faults += 1
            record(nil, .fault(.refused))
            _ = schedule(after: back, .synRefused(pending: id))
            return
        }
        guard listener.queue.count < listener.backlog else {
            // A full accept queue drops the SYN; the client retransmits.
            record(nil, .synDropped(to: p.remote))
            return
        }
        let linkID = nextLinkID
        nextLinkID += 1
        let link = Link(
            id: linkID, hosts: [p.host, dst], addresses: [p.local, p.remote],
            windows: [hosts[p.host].receiveWindow, hosts[dst].receiveWindow], faults: p.faults)
        links[linkID] = link
        p.link = linkID
        stats.connections += 1
        record(linkID, .established(client: p.local, server: p.remote))
        listener.queue.append(linkID)
        notifyAcceptable(listener)
        _ = schedule(after: back, .synAck(pending: id))
    }

    private func finish(_ p: PendingConnect) {
        pending[p.id] = nil
        if let t = p.retryTimer { runtime.cancel(t) }
        if let t = p.deadlineTimer { runtime.cancel(t) }
    }

    private func synAcked(_ id: Int) {
        guard let p = pending[id], let linkID = p.link, let link = links[linkID], let network else { return }
        finish(p)
        link.ends[0].delegate = p.delegate
        record(linkID, .connected)
        callbacks.append(.connected(p.continuation, .success(SimConnection(network: network, link: linkID, side: 0))))
    }

    private func synRefused(_ id: Int) {
        guard let p = pending[id] else { return }
        finish(p)
        releasePort(p.local.port, host: p.host)
        record(nil, .refused(from: p.local, to: p.remote))
        callbacks.append(.connected(p.continuation, .failure(SocketError(.connectionRefused))))
    }

    private func synRetry(_ id: Int) {
        guard let p = pending[id], p.link == nil else { return }
        if p.attempt >= configuration.synRetries {
            fail(p, .connectionTimedOut)
            return
        }
        p.attempt += 1
        sendSyn(p)
    }

    private func connectDeadline(_ id: Int) {
        guard let p = pending[id] else { return }
        fail(p, .timeout)
    }

    private func fail(_ p: PendingConnect, _ reason: SocketError.Reason) {
        finish(p)
        record(p.link, .connectFailed(to: p.remote, reason: reason))
        if let linkID = p.link, let link = links[linkID] {
            // The server already has the connection: our side gives up with an RST.
            abort(link, side: 0)
        } else {
            releasePort(p.local.port, host: p.host)
        }
        callbacks.append(.connected(p.continuation, .failure(SocketError(reason))))
    }
}

// MARK: - Listening

extension SimWorld {
    func listen(host h: Int, on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate) throws(SocketError) -> Int {
        guard isLocal(address.address, to: h) else { throw SocketError(.addressNotAvailable) }
        var port = address.port
        if port == 0 {
            guard let p = ephemeralPort(host: h) else { throw SocketError(.addressInUse) }
            port = p
        } else {
            for l in listeners.values where l.host == h && l.address.port == port {
                if SimWorld.overlaps(l.address.address, address.address) { throw SocketError(.addressInUse) }
            }
            if hosts[h].connectionPorts[port, default: 0] > 0 && !options.reuseaddr {
                throw SocketError(.addressInUse)
            }
        }
        let bound = SocketAddress(address.address, port: port)
        let l = ListenerRecord(
            id: nextListenerID, host: h, address: bound, backlog: max(1, options.backlog), delegate: delegate)
        nextListenerID += 1
        listeners[l.id] = l
        record(nil, .listen(bound))
        return l.id
    }

    func accept(listener id: Int, delegate: any ConnectionDelegate) -> (link: Int, side: Int)? {
        guard let l = listeners[id], let linkID = l.queue.popFirst() else { return nil }
        guard let link = links[linkID] else { return nil }
        link.ends[1].delegate = delegate
        record(linkID, .accepted)
        return (linkID, 1)
    }

    func armAccept(listener id: Int) {
        guard let l = listeners[id] else { return }
        l.armed = true
        notifyAcceptable(l)
    }

    func closeListener(_ id: Int) {
        guard let l = listeners.removeValue(forKey: id) else { return }
        l.delegate = nil
        let dropped = l.queue
        record(nil, .listenerClosed(l.address, dropped: dropped.count))
        for linkID in dropped {
            if let link = links[linkID] { close(link, side: 1, abortive: false) }
        }
    }
}

// MARK: - Moving bytes

extension SimWorld {
    func read(_ link: Link, _ side: Int, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        let end = link.ends[side]
        guard end.state == .open else { return .failed(.notConnected) }
        let p = link.pipes[1 - side]
        if p.buffered > 0 {
            guard buffer.count > 0 else { return .wouldBlock }
            var copied = 0
            while copied < buffer.count, let head = p.buffer.first {
                let n = min(buffer.count - copied, head.count - p.headOffset)
                head.withUnsafeBytes { raw in
                    let source = UnsafeRawBufferPointer(rebasing: raw[p.headOffset..<p.headOffset + n])
                    UnsafeMutableRawBufferPointer(rebasing: buffer[copied..<copied + n]).copyMemory(from: source)
                }
                copied += n
                p.headOffset += n
                if p.headOffset == head.count {
                    p.buffer.removeFirst()
                    p.headOffset = 0
                }
            }
            p.buffered -= copied
            // The freed room reaches the sender one latency later.
            let back = latency(link.hosts[side], link.hosts[1 - side], link.faults)
            _ = schedule(after: back, .windowUpdate(link: link.id, direction: 1 - side, bytes: copied))
            return .bytes(copied)
        }
        if end.resetReceived {
            end.resetReported = true
            return .failed(.connectionReset)
        }
        if p.finArrived || end.readShut { return .endOfStream }
        return .wouldBlock
    }

    func write(_ link: Link, _ side: Int, _ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        let end = link.ends[side]
        guard end.state == .open else { return .failed(.notConnected) }
        if end.resetReceived {
            if end.resetReported { return .failed(.brokenPipe) }
            end.resetReported = true
            return .failed(.connectionReset)
        }
        if end.writeShut { return .failed(.brokenPipe) }
        let p = link.pipes[side]
        var offered = 0
        for c in chunks { offered += c.count }
        guard offered > 0 else { return .wouldBlock }
        guard p.space > 0 else { return .wouldBlock }
        var n = min(offered, p.space)
        let f = link.faults
        if n > 1 && f.shortWriteProbability > 0 && rng.chance(f.shortWriteProbability) {
            let accepted = 1 + Int(rng.upTo(UInt64(n - 2)))
            stats.faults += 1
            record(link.id, .fault(.shortWrite(offered: n, accepted: accepted)))
            n = accepted
        }
        // Gather the n bytes in stream order.
        var bytes = [UInt8]()
        bytes.reserveCapacity(n)
        var left = n
        for c in chunks where left > 0 {
            let k = min(left, c.count)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: c[0..<k]))
            left -= k
        }
        p.unacked += n
        transmit(link, side, bytes)
        return .bytes(n)
    }

    /// Cuts written bytes into segments and puts them on the line, applying the link's faults.
    private func transmit(_ link: Link, _ d: Int, _ bytes: [UInt8]) {
        let p = link.pipes[d]
        let f = link.faults
        let mss = max(1, configuration.segmentSize)
        var offset = 0
        while offset < bytes.count && !p.cut {
            var length = min(mss, bytes.count - offset)
            var resetAfter = false
            if let limit = f.resetAfterBytes {
                let room = limit - p.sent
                if room <= 0 {
                    middleboxReset(link, d)
                    break
                }
                if length >= room {
                    length = room
                    resetAfter = true
                }
            }
            if f.resetProbability > 0 && rng.chance(f.resetProbability) {
                middleboxReset(link, d)
                break
            }
            sendData(link, d, Array(bytes[offset..<offset + length]))
            p.sent += length
            offset += length
            if resetAfter { middleboxReset(link, d) }
        }
    }

    private func sendData(_ link: Link, _ d: Int, _ bytes: [UInt8]) {
        let p = link.pipes[d]
        let f = link.faults
        let from = link.hosts[d], to = link.hosts[1 - d]
        let t = now
        var departure = t
        var arrival = t
        if let rate = profile(from, to).bytesPerSecond, rate > 0 {
            let key = DirectedPair(from: from, to: to)
            departure = max(t, lineFreeAt[key] ?? 0)
            let r = UInt64(rate)
            let transmission = (UInt64(bytes.count) * 1_000_000_000 + r - 1) / r
            arrival = departure + transmission
            lineFreeAt[key] = arrival
        }
        arrival += latency(from, to, f)
        let jitter = f.jitter.simNanoseconds
        if jitter > 0 { arrival += rng.upTo(jitter) }
        if f.stallProbability > 0 && rng.chance(f.stallProbability) {
            let stall = f.stallDuration.simNanoseconds
            stats.faults += 1
            record(link.id, .fault(.stall(nanoseconds: stall)))
            arrival += stall
        }
        enqueue(link, d, .data(bytes), departure: departure, arrival: arrival)
        p.inFlightBytes += bytes.count
        notePeak(p)
    }

    /// Puts a segment on pipe `d`, in order behind everything already there.
    private func enqueue(_ link: Link, _ d: Int, _ kind: Segment.Kind, departure: UInt64, arrival: UInt64) {
        let p = link.pipes[d]
        let at = max(arrival, p.lastArrival)
        p.lastArrival = at
        let timer = schedule(at: at, .arrival(link: link.id, direction: d))
        p.segments.append(Segment(kind: kind, departure: departure, arrival: at, timer: timer))
    }

    private func sendControl(_ link: Link, _ d: Int, _ kind: Segment.Kind) {
        let delay = latency(link.hosts[d], link.hosts[1 - d], link.faults)
        enqueue(link, d, kind, departure: now, arrival: now + delay)
    }

    /// The network resets the connection (a fault): each side gets an RST behind what is
    /// already in flight towards it, and nothing more goes either way.
    private func middleboxReset(_ link: Link, _ d: Int) {
        stats.faults += 1
        record(link.id, .fault(.reset(afterBytes: link.pipes[d].sent)))
        for dir in [d, 1 - d] where !link.pipes[dir].cut {
            link.pipes[dir].cut = true
            sendControl(link, dir, .rst)
        }
    }

    /// Side `side` sends an RST: segments that have not left yet are dropped, the RST follows
    /// those on the line.
    private func sendReset(_ link: Link, from side: Int) {
        let p = link.pipes[side]
        guard !p.cut else { return }
        p.cut = true
        let t = now
        var kept = Deque<Segment>()
        for s in p.segments {
            if s.departure > t, case .data(let bytes) = s.kind {
                runtime.cancel(s.timer)
                p.inFlightBytes -= bytes.count
            } else {
                kept.append(s)
            }
        }
        p.segments = kept
        p.lastArrival = kept.last?.arrival ?? 0
        sendControl(link, side, .rst)
    }

    private func arrive(_ link: Link, _ d: Int) {
        let p = link.pipes[d]
        let receiver = link.ends[1 - d]
        let direction = Link.direction(d)
        let t = now
        while let head = p.segments.first, head.arrival <= t {
            p.segments.removeFirst()
            switch head.kind {
            case .data(let bytes):
                p.inFlightBytes -= bytes.count
                switch receiver.state {
                case .gone:
                    break
                case .closed:
                    // Nobody will read this: answer with an RST (Linux does, for a closed socket).
                    receiver.state = .gone
                    sendReset(link, from: 1 - d)
                case .open:
                    p.buffer.append(bytes)
                    p.buffered += bytes.count
                    stats.segments += 1
                    stats.bytesDelivered += bytes.count
                    record(link.id, .data(direction, bytes: bytes.count))
                    notePeak(p)
                    notifyReadable(link, 1 - d)
                }
            case .fin:
                p.finArrived = true
                record(link.id, .fin(direction))
                notifyReadable(link, 1 - d)
            case .rst:
                record(link.id, .reset(direction))
                receiveReset(link, side: 1 - d)
            }
        }
        collect(link)
    }

    private func receiveReset(_ link: Link, side: Int) {
        let end = link.ends[side]
        guard !end.resetReceived else { return }
        end.resetReceived = true
        // Whatever this side still had going out dies with the connection (RSTs excepted).
        let out = link.pipes[side]
        out.cut = true
        var kept = Deque<Segment>()
        for s in out.segments {
            switch s.kind {
            case .rst: kept.append(s)
            case .data(let bytes):
                runtime.cancel(s.timer)
                out.inFlightBytes -= bytes.count
            case .fin:
                runtime.cancel(s.timer)
            }
        }
        out.segments = kept
        out.lastArrival = kept.last?.arrival ?? out.lastArrival
        switch end.state {
        case .open:
            notifyReadable(link, side)
            notifyWritable(link, side)
        case .closed:
            end.state = .gone
        case .gone:
            break
        }
    }

    func armRead(_ link: Link, _ side: Int) {
        link.ends[side].readArmed = true
        notifyReadable(link, side)
    }

    func armWrite(_ link: Link, _ side: Int) {
        link.ends[side].writeArmed = true
        notifyWritable(link, side)
    }

    func shutdown(_ link: Link, _ side: Int, _ how: ShutdownHow) -> SocketError.Reason? {
        let end = link.ends[side]
        guard end.state == .open else { return .notConnected }
        if end.resetReceived { return .notConnected }
        if how != .read && !end.writeShut {
            end.writeShut = true
            if !link.pipes[side].cut { sendControl(link, side, .fin) }
            notifyWritable(link, side)
        }
        if how != .write {
            end.readShut = true
            notifyReadable(link, side)
        }
        return nil
    }

    /// Closes one side: gracefully (FIN after the data, or an RST when received data is left
    /// unread, as Linux does), or abortively (RST).
    func close(_ link: Link, side: Int, abortive: Bool) {
        let end = link.ends[side]
        end.delegate = nil
        end.readArmed = false
        end.writeArmed = false
        guard end.state == .open else { return }
        if abortive || link.pipes[1 - side].buffered > 0 {
            abort(link, side: side)
            return
        }
        if !end.writeShut && !end.resetReceived {
            end.writeShut = true
            if !link.pipes[side].cut { sendControl(link, side, .fin) }
        }
        end.state = end.resetReceived ? .gone : .closed
        collect(link)
    }

    /// Side `side` goes away with an RST (linger 0, unread data at close, a failed connect).
    func abort(_ link: Link, side: Int) {
        let end = link.ends[side]
        end.delegate = nil
        end.readArmed = false
        end.writeArmed = false
        let received = link.pipes[1 - side]
        received.buffer.removeAll()
        received.headOffset = 0
        received.buffered = 0
        if !end.resetReceived { sendReset(link, from: side) }
        end.state = .gone
        collect(link)
    }
}
