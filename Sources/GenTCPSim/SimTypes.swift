import GenTCP
import GenTCPCore

/// A host of a ``SimNetwork``: a name and its addresses. Every host also answers on the
/// loopback addresses (`127.0.0.1`, `::1`) and on the name `localhost`.
public struct SimHost: Hashable, Sendable, CustomStringConvertible {
    /// The host's name, as ``SimDriver/resolve(_:preference:)`` finds it (case-insensitively).
    public let name: String
    /// The host's IPv4 and IPv6 addresses, in the order given.
    public let addresses: [IPAddress]
    /// The receive window (socket buffer) of this host's connections, in bytes.
    public let receiveWindow: Int
    /// The host's index in its network.
    let index: Int
    /// The network the host belongs to.
    let network: ObjectIdentifier

    public var description: String { name }

    /// The first IPv4 address, if any.
    public var ipv4: IPAddress? { addresses.first { !$0.isIPv6 } }
    /// The first IPv6 address, if any.
    public var ipv6: IPAddress? { addresses.first { $0.isIPv6 } }
}

/// How a pair of hosts is connected: one-way latency and an optional rate.
public struct SimLink: Hashable, Sendable {
    /// One-way propagation delay of every segment.
    public var latency: Duration
    /// Bytes per second in each direction (shared by every connection between the two hosts);
    /// nil for no limit. A segment of `n` bytes occupies the line for `n / rate` seconds.
    public var bytesPerSecond: Int?

    public init(latency: Duration = .milliseconds(1), bytesPerSecond: Int? = nil) {
        self.latency = latency
        self.bytesPerSecond = bytesPerSecond
    }

    /// A serial line at `baud` with 8N1 framing (10 bits per byte): 115200 baud is 11520 B/s.
    public static func serial(baud: Int, latency: Duration = .zero) -> SimLink {
        SimLink(latency: latency, bytesPerSecond: max(1, baud / 10))
    }
}

/// Seeded fault injection. All probabilities are in `0...1`; decisions come from the network's
/// generator, so the same seed gives the same faults at the same points.
public struct SimFaults: Hashable, Sendable {
    /// Latency added to every segment and handshake, in both directions.
    public var extraLatency: Duration = .zero
    /// Extra delay drawn uniformly from `0...jitter` for every data segment (order is kept: a
    /// segment never overtakes an earlier one of the same connection and direction).
    public var jitter: Duration = .zero
    /// Probability that a connection attempt is refused (RST) although a listener is there.
    public var refuseProbability: Double = 0
    /// Reset the connection once this many bytes have gone in one direction: the receiver gets
    /// exactly these bytes, then an RST; the sender gets an RST one latency later.
    public var resetAfterBytes: Int? = nil
    /// Probability, per data segment, that the connection is reset instead of the segment going.
    public var resetProbability: Double = 0
    /// Probability, per write, that the connection takes fewer bytes than offered and room allows.
    public var shortWriteProbability: Double = 0
    /// Probability, per data segment, that delivery stalls for ``stallDuration`` (later segments
    /// of the same direction wait behind it).
    public var stallProbability: Double = 0
    /// How long a stall holds delivery.
    public var stallDuration: Duration = .milliseconds(200)

    public init(
        extraLatency: Duration = .zero, jitter: Duration = .zero, refuseProbability: Double = 0,
        resetAfterBytes: Int? = nil, resetProbability: Double = 0, shortWriteProbability: Double = 0,
        stallProbability: Double = 0, stallDuration: Duration = .milliseconds(200)
    ) {
        self.extraLatency = extraLatency
        self.jitter = jitter
        self.refuseProbability = refuseProbability
        self.resetAfterBytes = resetAfterBytes
        self.resetProbability = resetProbability
        self.shortWriteProbability = shortWriteProbability
        self.stallProbability = stallProbability
        self.stallDuration = stallDuration
    }

    /// No faults.
    public static let none = SimFaults()
}

/// Where a ``SimFaults`` setting applies. For a connection the most specific one wins: the
/// server's port, then the server host, then the client host, then the whole network.
public enum SimFaultScope: Hashable, Sendable {
    /// Every connection of the network.
    case network
    /// Connections to or from this host.
    case host(SimHost)
    /// Connections to this port of this host.
    case port(SimHost, Int)
}

/// One thing that happened on a simulated network, at a virtual time.
public struct SimEvent: Hashable, Sendable, CustomStringConvertible {
    /// Which way a segment went on a connection.
    public enum Direction: Hashable, Sendable, CustomStringConvertible {
        case toServer, toClient
        public var description: String { self == .toServer ? "c->s" : "s->c" }
    }

    /// A fault the network injected.
    public enum Fault: Hashable, Sendable, CustomStringConvertible {
        /// A connection attempt was refused by fault injection.
        case refused
        /// The connection was reset after `afterBytes` bytes of the given direction.
        case reset(afterBytes: Int)
        /// A write took `accepted` of `offered` bytes.
        case shortWrite(offered: Int, accepted: Int)
        /// Delivery stalled for this many nanoseconds.
        case stall(nanoseconds: UInt64)

        public var description: String {
            switch self {
            case .refused: return "refused"
            case .reset(let n): return "reset after \(n) bytes"
            case .shortWrite(let o, let a): return "short write \(a)/\(o)"
            case .stall(let ns): return "stall \(ns) ns"
            }
        }
    }

    public enum Kind: Hashable, Sendable {
        /// A listener opened.
        case listen(SocketAddress)
        /// A listener closed, dropping this many connections nobody accepted.
        case listenerClosed(SocketAddress, dropped: Int)
        /// A SYN left the client (`attempt` 0 is the first, then retransmissions).
        case syn(from: SocketAddress, to: SocketAddress, attempt: Int)
        /// A SYN reached a listener whose backlog was full and was dropped.
        case synDropped(to: SocketAddress)
        /// The handshake reached the server: connection `connection` exists, waiting in the backlog.
        case established(client: SocketAddress, server: SocketAddress)
        /// The client learned the connection is up (its `connect` returns).
        case connected
        /// The client's connect was refused (nobody listening, or a fault).
        case refused(from: SocketAddress, to: SocketAddress)
        /// The client's connect gave up: `.timeout` (the caller's limit) or `.connectionTimedOut`.
        case connectFailed(to: SocketAddress, reason: SocketError.Reason)
        /// The server accepted the connection.
        case accepted
        /// A data segment arrived.
        case data(Direction, bytes: Int)
        /// A FIN arrived.
        case fin(Direction)
        /// An RST arrived.
        case reset(Direction)
        /// A fault was injected.
        case fault(Fault)
    }

    /// Virtual nanoseconds since the network started.
    public let time: UInt64
    /// The connection the event is about (numbered from 1 in creation order), or nil.
    public let connection: Int?
    public let kind: Kind

    public init(time: UInt64, connection: Int?, kind: Kind) {
        self.time = time
        self.connection = connection
        self.kind = kind
    }

    public var description: String {
        let ms = "\(time / 1_000_000).\(String(time % 1_000_000 + 1_000_000).dropFirst())ms"
        let conn = connection.map { " #\($0)" } ?? ""
        let what: String
        switch kind {
        case .listen(let a): what = "listen \(a)"
        case .listenerClosed(let a, let n): what = "listener \(a) closed, dropped \(n)"
        case .syn(let f, let t, let n): what = "syn \(f) -> \(t) attempt \(n)"
        case .synDropped(let t): what = "syn dropped at \(t) (backlog full)"
        case .established(let c, let s): what = "established \(c) -> \(s)"
        case .connected: what = "connected"
        case .refused(let f, let t): what = "refused \(f) -> \(t)"
        case .connectFailed(let t, let r): what = "connect to \(t) failed: \(r.atom)"
        case .accepted: what = "accepted"
        case .data(let d, let n): what = "data \(d) \(n)"
        case .fin(let d): what = "fin \(d)"
        case .reset(let d): what = "rst \(d)"
        case .fault(let f): what = "fault: \(f)"
        }
        return "\(ms)\(conn) \(what)"
    }
}

/// Counters of a ``SimNetwork``.
public struct SimStatistics: Hashable, Sendable {
    /// Connections established (handshake reached a listener).
    public var connections = 0
    /// Data segments delivered, and their bytes.
    public var segments = 0
    public var bytesDelivered = 0
    /// Bytes held by the network right now: in flight plus received and not yet read.
    public var bufferedBytes = 0
    /// The most bytes one direction of one connection ever held (in flight plus unread).
    public var peakBufferedBytes = 0
    /// Faults injected.
    public var faults = 0
    /// Events not recorded because the trace reached its limit.
    public var traceDropped = 0
}
