import GenTCP
import GenTCPCore

/// One thing that happened on a simulated network, at a virtual time.
public struct SimEvent: Hashable, Sendable, CustomStringConvertible {
    /// Which way a segment went on a connection.
    public enum Direction: Hashable, Sendable, CustomStringConvertible {
        /// From the side that connected to the side that accepted (`toServer`, printed `c->s`),
        /// or back (`toClient`, printed `s->c`).
        case toServer, toClient
        /// `c->s` or `s->c`.
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

    /// What happened.
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
        /// Something happened to a datagram or a UDP socket (no connection number).
        case udp(UDP)
    }

    /// Virtual nanoseconds since the network started.
    public let time: UInt64
    /// ``time`` as a `Duration` since the network started.
    public var uptime: Duration { .nanoseconds(Int64(clamping: time)) }
    /// The connection the event is about (numbered from 1 in creation order), or nil.
    public let connection: Int?
    /// What happened.
    public let kind: Kind

    /// An event, as the network records it (tests build expected traces with it).
    public init(time: UInt64, connection: Int?, kind: Kind) {
        self.time = time
        self.connection = connection
        self.kind = kind
    }

    /// One trace line: virtual milliseconds, the connection number, what happened; e.g.
    /// `12.000000ms #1 data c->s 1460`.
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
        case .udp(let u): what = "udp \(u)"
        }
        return "\(ms)\(conn) \(what)"
    }
}
