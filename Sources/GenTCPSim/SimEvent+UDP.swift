import GenTCP
import GenTCPCore

extension SimEvent {
    /// What happened to a datagram, or to a UDP socket. `from` is always the datagram's source
    /// (the sending socket's address as the receiver sees it) and `to` its destination (a
    /// broadcast address for a broadcast).
    public enum UDP: Hashable, Sendable, CustomStringConvertible {
        /// A UDP socket bound this address.
        case bound(SocketAddress)
        /// A UDP socket closed.
        case closed(SocketAddress)
        /// A send handed a datagram of `bytes` to the network (once per broadcast).
        case sent(from: SocketAddress, to: SocketAddress, bytes: Int)
        /// The loss fault dropped the datagram (recorded at send time).
        case lost(from: SocketAddress, to: SocketAddress, bytes: Int)
        /// No host has the destination address: the datagram vanished without an answer.
        case unroutable(from: SocketAddress, to: SocketAddress, bytes: Int)
        /// The duplication fault made a second copy (recorded at send time).
        case duplicated(from: SocketAddress, to: SocketAddress, bytes: Int)
        /// The reordering fault held one copy back by `nanoseconds` (recorded at send time).
        case reordered(from: SocketAddress, to: SocketAddress, nanoseconds: UInt64)
        /// The datagram entered a receiving socket's queue; `at` is that socket's bound address.
        case delivered(from: SocketAddress, to: SocketAddress, bytes: Int, at: SocketAddress)
        /// The receiving socket's queue was full: the datagram was dropped whole (and counted in
        /// that socket's `recvDropped`).
        case droppedQueueFull(from: SocketAddress, to: SocketAddress, bytes: Int, at: SocketAddress)
        /// The receiving socket is connected to another peer: the datagram was dropped, not counted.
        case filtered(from: SocketAddress, to: SocketAddress, bytes: Int, at: SocketAddress)
        /// Nobody has bound the destination port: an ICMP port unreachable goes back to `from`.
        case portUnreachable(from: SocketAddress, to: SocketAddress)
        /// The ICMP port unreachable for a datagram to `peer` reached the sending socket at
        /// `socket`; `reported` is true when the socket is connected to `peer` (it will report
        /// `econnrefused` once), false when it ignores it (unconnected, or connected elsewhere).
        case refused(socket: SocketAddress, peer: SocketAddress, reported: Bool)

        /// One trace word and its details, e.g. `sent 10.0.0.2:49152 -> 10.0.0.1:7 5`.
        public var description: String {
            switch self {
            case .bound(let a): return "bound \(a)"
            case .closed(let a): return "closed \(a)"
            case .sent(let f, let t, let n): return "sent \(f) -> \(t) \(n)"
            case .lost(let f, let t, let n): return "lost \(f) -> \(t) \(n)"
            case .unroutable(let f, let t, let n): return "unroutable \(f) -> \(t) \(n)"
            case .duplicated(let f, let t, let n): return "duplicated \(f) -> \(t) \(n)"
            case .reordered(let f, let t, let ns): return "reordered \(f) -> \(t) +\(ns) ns"
            case .delivered(let f, let t, let n, let a): return "delivered \(f) -> \(t) \(n) at \(a)"
            case .droppedQueueFull(let f, let t, let n, let a): return "dropped (queue full) \(f) -> \(t) \(n) at \(a)"
            case .filtered(let f, let t, let n, let a): return "filtered \(f) -> \(t) \(n) at \(a)"
            case .portUnreachable(let f, let t): return "port unreachable at \(t), icmp to \(f)"
            case .refused(let s, let p, let r): return "icmp refused \(p) at \(s)\(r ? "" : " (ignored)")"
            }
        }
    }
}
