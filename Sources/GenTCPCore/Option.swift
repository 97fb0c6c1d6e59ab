/// One socket option, as in an OTP option list: `[.binary, .active(.once), .buffer(4096)]`.
///
/// `connect` and `listen` take a list of these; `setopts` applies one; `getopts` returns them.
/// A bad value given to `connect`/`listen` is `badarg` (OTP raises); given to `setopts`, `einval`.
public enum Option: Hashable, Sendable {
    /// `{active, false | true | once | N}`. Default `.active` (OTP's `true`).
    case active(ActiveMode)
    /// `{mode, binary | list}`. Default `.list`, as in OTP.
    case mode(Mode)
    /// `{buffer, Size}`: the largest active message and `recv(0)` result. Default 1460.
    case buffer(Int)
    /// `{nodelay, Bool}`: TCP_NODELAY. Default false.
    case nodelay(Bool)
    /// `{keepalive, Bool}`: SO_KEEPALIVE. Default false.
    case keepalive(Bool)
    /// `{reuseaddr, Bool}`: SO_REUSEADDR. Default false.
    case reuseaddr(Bool)
    /// `{exit_on_close, Bool}`: false keeps the socket writable after end of stream. Default true.
    case exitOnClose(Bool)
    /// `{show_econnreset, Bool}`: report an RST as `econnreset` rather than `closed`. Default false.
    case showEconnreset(Bool)
    /// `{send_timeout, T}`: a send that cannot progress for T fails with `timeout`. Default infinity.
    case sendTimeout(Timeout)
    /// `{send_timeout_close, Bool}`: close the socket when a send times out. Default false.
    case sendTimeoutClose(Bool)
    /// `{linger, {Bool, Secs}}`: nil is `{false, 0}`; `.linger(0)` makes `close` send an RST.
    case linger(Int?)
    /// Which address family to try first for a host name (mug's `ip_version_preference`;
    /// `inet`/`inet6` in OTP). Default ``IPVersionPreference/ipv4Preferred``. Connect only.
    case ipVersion(IPVersionPreference)
    /// `{port, P}`: the local port to bind before connecting (or to listen on). Connect/listen only.
    case localPort(Int)
    /// `{ip, A}` / `{ifaddr, A}`: the local address to bind. Connect/listen only.
    case localAddress(IPAddress)
    /// `{backlog, N}`: pending connections a listener queues. Default 5. Listen only.
    case backlog(Int)
    /// `{recbuf, Bytes}`: the receive queue's size (SO_RCVBUF on posix; the in-process queue of
    /// the sim, slip and at drivers). On a gen_udp socket whose `buffer` was never set, it also
    /// raises `buffer` to `min(Bytes, 65536)` (OTP's rule). gen_udp only for now.
    case recbuf(Int)
    /// `{sndbuf, Bytes}`: SO_SNDBUF on posix; other drivers keep it as a hint. gen_udp only for now.
    case sndbuf(Int)
    /// `{broadcast, Bool}`: allow sending to a broadcast address (`eacces` otherwise). gen_udp only.
    case broadcast(Bool)
    /// `{ttl, 1..255}`: the unicast time to live (IPv6: hop limit). gen_udp only.
    case ttl(Int)
    /// `{multicast_ttl, 0..255}`: the time to live of multicast datagrams. Default 1. gen_udp only.
    case multicastTTL(Int)
    /// `{multicast_loop, Bool}`: deliver our own multicast datagrams to local members. Default true.
    case multicastLoop(Bool)
    /// `{multicast_if, Address}`: the local interface address multicast datagrams leave by.
    case multicastInterface(IPAddress)
    /// `{add_membership, {Group, Interface}}`: join a multicast group on the interface whose
    /// address is given (`0.0.0.0`: the kernel's choice). Set-only; `getopts` refuses the name.
    case addMembership(group: IPAddress, interface: IPAddress)
    /// `{drop_membership, {Group, Interface}}`: leave a group. Set-only.
    case dropMembership(group: IPAddress, interface: IPAddress)
    /// `{read_packets, N}`: how many datagrams one wake-up delivers in an active mode before
    /// other sockets get a turn. Default 5, as in OTP. gen_udp only.
    case readPackets(Int)

    /// `binary`: shorthand for `.mode(.binary)`.
    public static let binary = Option.mode(.binary)
    /// `list`: shorthand for `.mode(.list)`.
    public static let list = Option.mode(.list)
    /// `inet`: an IPv4 socket (gen_udp `open`), shorthand for `.ipVersion(.ipv4Only)`.
    public static let inet = Option.ipVersion(.ipv4Only)
    /// `inet6`: an IPv6 socket (gen_udp `open`), shorthand for `.ipVersion(.ipv6Only)`.
    public static let inet6 = Option.ipVersion(.ipv6Only)

    /// The option's name, for `getopts`.
    public var name: OptionName {
        switch self {
        case .active: return .active
        case .mode: return .mode
        case .buffer: return .buffer
        case .nodelay: return .nodelay
        case .keepalive: return .keepalive
        case .reuseaddr: return .reuseaddr
        case .exitOnClose: return .exitOnClose
        case .showEconnreset: return .showEconnreset
        case .sendTimeout: return .sendTimeout
        case .sendTimeoutClose: return .sendTimeoutClose
        case .linger: return .linger
        case .ipVersion: return .ipVersion
        case .localPort: return .localPort
        case .localAddress: return .localAddress
        case .backlog: return .backlog
        case .recbuf: return .recbuf
        case .sndbuf: return .sndbuf
        case .broadcast: return .broadcast
        case .ttl: return .ttl
        case .multicastTTL: return .multicastTTL
        case .multicastLoop: return .multicastLoop
        case .multicastInterface: return .multicastInterface
        case .addMembership: return .addMembership
        case .dropMembership: return .dropMembership
        case .readPackets: return .readPackets
        }
    }
}

/// The names `getopts` accepts.
public enum OptionName: Hashable, Sendable, CaseIterable {
    /// The name of the ``Option`` case of the same spelling, for `getopts`: `.active` reads
    /// ``Option/active(_:)``, `.mode` reads ``Option/mode(_:)``, `.buffer` reads
    /// ``Option/buffer(_:)``, and so on.
    case active, mode, buffer, nodelay, keepalive, reuseaddr, exitOnClose, showEconnreset
    /// The name of the ``Option`` case of the same spelling, for `getopts`: `.sendTimeout` reads
    /// ``Option/sendTimeout(_:)``, `.linger` reads ``Option/linger(_:)``, `.localAddress` reads
    /// ``Option/localAddress(_:)`` (`0.0.0.0` when none was set), and so on.
    case sendTimeout, sendTimeoutClose, linger, ipVersion, localPort, localAddress, backlog
    /// The names of the gen_udp options of the same spelling: `.recbuf` reads
    /// ``Option/recbuf(_:)``, `.broadcast` reads ``Option/broadcast(_:)``, and so on.
    /// `addMembership` and `dropMembership` are set-only: `getopts` refuses them with `einval`.
    case recbuf, sndbuf, broadcast, ttl, multicastTTL, multicastLoop, multicastInterface
    /// Set-only names (see ``recbuf``), and `read_packets`.
    case addMembership, dropMembership, readPackets
}

extension OptionName {
    /// True for the names only a gen_udp socket knows (`recbuf`, `broadcast`, `ttl`, the
    /// multicast options, `read_packets`): `getopts` on a TCP socket refuses them with `einval`.
    public var isDatagramOnly: Bool {
        switch self {
        case .recbuf, .sndbuf, .broadcast, .ttl, .multicastTTL, .multicastLoop, .multicastInterface,
             .addMembership, .dropMembership, .readPackets:
            return true
        default:
            return false
        }
    }
}

/// The order in which to try address families for a host name, as mug offers it.
public enum IPVersionPreference: Hashable, Sendable {
    /// IPv4 addresses only (OTP's `inet`); a name with only IPv6 addresses is `nxdomain`.
    case ipv4Only
    /// IPv4 addresses first, then IPv6 (the default).
    case ipv4Preferred
    /// IPv6 addresses only (OTP's `inet6`); a name with only IPv4 addresses is `nxdomain`.
    case ipv6Only
    /// IPv6 addresses first, then IPv4.
    case ipv6Preferred
}

extension IPVersionPreference {
    /// `addresses` filtered and ordered by this preference (stable within each family), as
    /// every driver's `resolve` returns them.
    /// - Throws: `nxdomain` when no address is left.
    public func order(_ addresses: [IPAddress]) throws(SocketError) -> [IPAddress] {
        let v4 = addresses.filter { !$0.isIPv6 }
        let v6 = addresses.filter { $0.isIPv6 }
        let ordered: [IPAddress]
        switch self {
        case .ipv4Only: ordered = v4
        case .ipv4Preferred: ordered = v4 + v6
        case .ipv6Only: ordered = v6
        case .ipv6Preferred: ordered = v6 + v4
        }
        guard !ordered.isEmpty else { throw SocketError(.nonExistentDomain) }
        return ordered
    }
}

/// Which side of a connection to shut down: `read`, `write` or `read_write`.
public enum ShutdownHow: Hashable, Sendable {
    /// `read`: stop receiving (`SHUT_RD`).
    case read
    /// `write`: send FIN once pending sends are written; later sends fail.
    case write
    /// `read_write`: both.
    case readWrite
}
