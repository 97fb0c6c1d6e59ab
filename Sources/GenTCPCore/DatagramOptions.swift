/// The validated option set of one gen_udp socket. Every field has OTP's default, except where
/// the README lists a departure (`buffer` is 8192 on IPv6 too).
///
/// Built from an `open` option list with ``init(open:)``, changed with ``apply(all:)`` (`setopts`),
/// read with ``value(of:)``. Validation lives here once, for every driver; drivers read the fields
/// they act on (`recbuf`, `broadcast`, `ttl`, the multicast options).
public struct DatagramOptions: Hashable, Sendable {
    /// ``Option/active(_:)``: the active state now. Default `.active` (OTP's `true`).
    public var active: ActiveMode = .active
    /// ``Option/mode(_:)``. Default `.list`.
    public var mode: Mode = .list
    /// ``Option/buffer(_:)``: the largest datagram handed over; longer ones are cut to it and
    /// counted in `recvTruncated`. Default 8192.
    public var buffer: Int = DatagramOptions.defaultBuffer
    /// True once `buffer` was set explicitly: `recbuf` no longer raises it (OTP's rule).
    public var bufferIsExplicit = false
    /// ``Option/recbuf(_:)``: the receive queue's size in bytes, or nil for the driver's default
    /// (the kernel's on posix, ``defaultQueueBytes`` on in-process queues).
    public var recbuf: Int? = nil
    /// ``Option/sndbuf(_:)``, or nil for the driver's default.
    public var sndbuf: Int? = nil
    /// ``Option/reuseaddr(_:)``: share the port with other sockets that set it too. Default false.
    public var reuseaddr = false
    /// ``Option/broadcast(_:)``. Default false.
    public var broadcast = false
    /// ``Option/ttl(_:)``, or nil for the driver's default (64 on the in-process stacks).
    public var ttl: Int? = nil
    /// ``Option/multicastTTL(_:)``. Default 1.
    public var multicastTTL = 1
    /// ``Option/multicastLoop(_:)``. Default true.
    public var multicastLoop = true
    /// ``Option/multicastInterface(_:)``, or nil for the kernel's choice.
    public var multicastInterface: IPAddress? = nil
    /// ``Option/readPackets(_:)``: datagrams delivered per wake-up in an active mode. Default 5.
    public var readPackets = 5
    /// The address family: true for an IPv6 socket (`inet6`, or an IPv6 `localAddress`).
    public var isIPv6 = false
    /// ``Option/localPort(_:)``: the port to bind (0: ephemeral).
    public var localPort = 0
    /// ``Option/localAddress(_:)``: the address to bind, or nil for the wildcard address.
    public var localAddress: IPAddress? = nil

    /// The default `buffer`, OTP's on IPv4 (OTP's IPv6 default is 1460; see the README's
    /// departures).
    public static let defaultBuffer = 8192
    /// The receive queue of the in-process drivers (sim, slip, at) when `recbuf` is not set.
    public static let defaultQueueBytes = 65_536
    /// The largest `recbuf`/`sndbuf` accepted: 16 MiB.
    public static let maximumQueueBytes = 16 << 20
    /// `recbuf` raises an implicit `buffer` to at most this (OTP's cap).
    public static let recbufBufferCap = 65_536

    /// Every option at its default, an IPv4 socket on an ephemeral port.
    public init() {}

    /// Validates an `open` option list; a bad option is `badarg` (OTP raises at open).
    ///
    /// `inet6` (`.ipVersion(.ipv6Only)`) or an IPv6 `localAddress` makes an IPv6 socket; `inet6`
    /// with an IPv4 `localAddress` is `badarg`, as in OTP.
    /// - Throws: `badarg`, with a detail naming the option.
    public init(open options: [Option]) throws(SocketError) {
        self.init()
        var family: IPVersionPreference? = nil
        // The family first (from `inet`/`inet6` or an IPv6 local address), so that options that
        // depend on it (`multicastInterface`, memberships) are checked against it in any order.
        for case .localAddress(let a) in options { isIPv6 = a.isIPv6 }
        for case .ipVersion(let v) in options where v == .ipv6Only || v == .ipv4Only { isIPv6 = v == .ipv6Only }
        for option in options {
            do throws(SocketError) {
                switch option {
                case .ipVersion(let v):
                    guard v == .ipv4Only || v == .ipv6Only else {
                        throw SocketError(.invalidArgument, "a gen_udp socket is inet or inet6, not a preference")
                    }
                    family = v
                case .localPort(let p):
                    guard (0...65535).contains(p) else { throw SocketError(.invalidArgument, "port must be 0...65535") }
                    localPort = p
                case .localAddress(let a):
                    localAddress = a
                default:
                    _ = try apply(option)
                }
            } catch {
                throw SocketError(.badArgument, error.detail)
            }
        }
        if let a = localAddress {
            if family == .ipv6Only && !a.isIPv6 {
                throw SocketError(.badArgument, "inet6 with an IPv4 local address")
            }
            if family == .ipv4Only && a.isIPv6 {
                throw SocketError(.badArgument, "inet with an IPv6 local address")
            }
            isIPv6 = a.isIPv6
        }
    }

    /// The local address to bind: ``localAddress`` or the family's wildcard, with ``localPort``.
    public var bindAddress: SocketAddress {
        SocketAddress(localAddress ?? (isIPv6 ? .anyV6 : .anyV4), port: localPort)
    }

    /// The fewest datagrams a receive queue's limit allows (``queueLimit``), whatever `recbuf` says.
    public static let minimumQueueDatagrams = 16

    /// The receive queue bound of the in-process drivers: `recbuf` bytes (default 64 KiB) and
    /// `max(16, bytes / 256)` datagrams. In `{active, true}` the port also stops reading while
    /// that many of the socket's messages wait unread in the owner's mailbox.
    public var queueLimit: (bytes: Int, datagrams: Int) {
        let bytes = recbuf ?? DatagramOptions.defaultQueueBytes
        return (bytes, max(DatagramOptions.minimumQueueDatagrams, bytes / 256))
    }

    /// Applies an option list atomically (`setopts`): if any option is bad, none is applied.
    /// Returns true when a `udp_passive` is due (an `{active, N}` that brings the count to 0).
    /// - Throws: `einval` for the first bad option; nothing is changed then.
    @discardableResult
    public mutating func apply(all options: [Option]) throws(SocketError) -> Bool {
        var copy = self
        var passive = false
        for option in options {
            if try copy.apply(option) { passive = true }
        }
        self = copy
        return passive
    }

    /// Applies one option (`setopts`); a bad value is `einval` and changes nothing. Returns true
    /// when a `udp_passive` is due.
    /// - Throws: `einval` for a bad value, a TCP-only option, or one that only `open` takes.
    @discardableResult
    public mutating func apply(_ option: Option) throws(SocketError) -> Bool {
        switch option {
        case .active(let requested):
            let change = try active.applying(requested)
            active = change.mode
            return change.sendsPassive
        case .mode(let m): mode = m
        case .buffer(let size):
            // OTP stores 0 and negative values as 1; we refuse them (a departure: a 1-byte cut
            // is never what was meant).
            guard size >= 1, size <= SocketOptions.maximumBuffer else {
                throw SocketError(.invalidArgument, "buffer must be 1...16777216 bytes")
            }
            buffer = size
            bufferIsExplicit = true
        case .recbuf(let size):
            guard size >= 1, size <= DatagramOptions.maximumQueueBytes else {
                throw SocketError(.invalidArgument, "recbuf must be 1...16777216 bytes")
            }
            recbuf = size
            if !bufferIsExplicit { buffer = max(buffer, min(size, DatagramOptions.recbufBufferCap)) }
        case .sndbuf(let size):
            guard size >= 1, size <= DatagramOptions.maximumQueueBytes else {
                throw SocketError(.invalidArgument, "sndbuf must be 1...16777216 bytes")
            }
            sndbuf = size
        case .reuseaddr(let v): reuseaddr = v
        case .broadcast(let v): broadcast = v
        case .ttl(let t):
            guard (1...255).contains(t) else { throw SocketError(.invalidArgument, "ttl must be 1...255") }
            ttl = t
        case .multicastTTL(let t):
            guard (0...255).contains(t) else { throw SocketError(.invalidArgument, "multicast_ttl must be 0...255") }
            multicastTTL = t
        case .multicastLoop(let v): multicastLoop = v
        case .multicastInterface(let a):
            guard a.isIPv6 == isIPv6 else {
                throw SocketError(.invalidArgument, "multicast_if must be of the socket's family")
            }
            multicastInterface = a
        case .addMembership(let group, let interface), .dropMembership(let group, let interface):
            guard group.isMulticast, group.isIPv6 == isIPv6, interface.isIPv6 == isIPv6 else {
                throw SocketError(.invalidArgument, "membership needs a multicast group and an interface of the socket's family")
            }
        case .readPackets(let n):
            guard (1...65535).contains(n) else { throw SocketError(.invalidArgument, "read_packets must be 1...65535") }
            readPackets = n
        case .ipVersion, .localPort, .localAddress:
            throw SocketError(.invalidArgument, "ip version, local port and local address can only be set when opening")
        case .nodelay, .keepalive, .exitOnClose, .showEconnreset, .sendTimeout, .sendTimeoutClose,
             .linger, .backlog:
            throw SocketError(.invalidArgument, "a gen_tcp option on a gen_udp socket")
        }
        return false
    }

    /// The current value of one option, as `getopts` reports it; nil for a name a gen_udp socket
    /// does not know (TCP-only, or set-only like `addMembership`), which `getopts` refuses.
    /// `recbuf`, `sndbuf` and `ttl` report the value asked for (drivers may report their own).
    public func value(of name: OptionName) -> Option? {
        switch name {
        case .active: return .active(active)
        case .mode: return .mode(mode)
        case .buffer: return .buffer(buffer)
        case .reuseaddr: return .reuseaddr(reuseaddr)
        case .recbuf: return .recbuf(recbuf ?? DatagramOptions.defaultQueueBytes)
        case .sndbuf: return .sndbuf(sndbuf ?? DatagramOptions.defaultQueueBytes)
        case .broadcast: return .broadcast(broadcast)
        case .ttl: return .ttl(ttl ?? 64)
        case .multicastTTL: return .multicastTTL(multicastTTL)
        case .multicastLoop: return .multicastLoop(multicastLoop)
        case .multicastInterface: return .multicastInterface(multicastInterface ?? (isIPv6 ? .anyV6 : .anyV4))
        case .readPackets: return .readPackets(readPackets)
        case .ipVersion: return .ipVersion(isIPv6 ? .ipv6Only : .ipv4Only)
        case .localPort: return .localPort(localPort)
        case .localAddress: return .localAddress(localAddress ?? (isIPv6 ? .anyV6 : .anyV4))
        case .addMembership, .dropMembership, .nodelay, .keepalive, .exitOnClose, .showEconnreset,
             .sendTimeout, .sendTimeoutClose, .linger, .backlog:
            return nil
        }
    }
}
