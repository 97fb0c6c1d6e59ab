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
    case datagramArrival(id: Int)
    case icmpArrival(endpoint: Int, peer: SocketAddress)
    case notifyDatagramRead(endpoint: Int)
    case notifyDatagramWrite(endpoint: Int)
}

/// What to do once the network's lock is released: readiness callbacks and connect results.
enum SimCallback: Sendable {
    case readable(any ConnectionDelegate)
    case writable(any ConnectionDelegate)
    case acceptable(any ListenerDelegate)
    case connected(UnsafeContinuation<Result<SimConnection, SocketError>, Never>, Result<SimConnection, SocketError>)
    case datagramReadable(any DatagramDelegate)
    case datagramWritable(any DatagramDelegate)

    func run() {
        switch self {
        case .readable(let d): d.connectionReadable()
        case .writable(let d): d.connectionWritable()
        case .acceptable(let d): d.listenerAcceptable()
        case .connected(let c, let r): c.resume(returning: r)
        case .datagramReadable(let d): d.datagramReadable()
        case .datagramWritable(let d): d.datagramWritable()
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
    /// The next ephemeral port tried for a UDP socket (UDP ports are a namespace of their own).
    var nextUDPEphemeral = SimWorld.ephemeralPorts.lowerBound
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
    /// UDP sockets by id, datagrams on the way by id, datagram faults by scope.
    var udpEndpoints: [Int: UDPEndpointRecord] = [:]
    var datagramsInFlight: [Int: InFlightDatagram] = [:]
    var datagramFaults: [FaultKey: SimDatagramFaults] = [:]
    var nextUDPID = 1
    var nextDatagramID = 1
    /// Datagram fault decisions: a generator apart from TCP's, so datagrams never shift them.
    var udpRNG: SplitMix64

    init(runtime: SimRuntime, configuration: SimNetwork.Configuration, seed: UInt64) {
        self.runtime = runtime
        self.configuration = configuration
        self.rng = SplitMix64(seed: seed)
        self.udpRNG = SplitMix64(seed: seed ^ 0x5544_5053_494D_0001)
        faults[.network] = configuration.faults
        datagramFaults[.network] = configuration.datagramFaults
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
        case .datagramArrival(let id): datagramArrived(id)
        case .icmpArrival(let id, let peer): icmpArrived(endpoint: id, peer: peer)
        case .notifyDatagramRead(let id):
            guard let e = udpEndpoints[id] else { return }
            e.readNotifyPending = false
            notifyDatagramReadable(e)
        case .notifyDatagramWrite(let id):
            guard let e = udpEndpoints[id] else { return }
            e.writeNotifyPending = false
            notifyDatagramWritable(e)
        }
    }
}
