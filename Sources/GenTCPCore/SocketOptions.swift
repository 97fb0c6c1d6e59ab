/// The validated option set of one socket. Every field has OTP's default.
///
/// Built from an option list with ``init(connect:)`` or ``init(listen:)``, changed with
/// ``apply(_:kind:)`` or ``apply(all:kind:)``, read with ``value(of:)``. Validation lives here
/// once, for every driver. Drivers read the fields; each is the value of the ``Option`` case of
/// the same name.
public struct SocketOptions: Hashable, Sendable {
    /// ``Option/active(_:)``: the active state now (counters included). Default `.active`.
    public var active: ActiveMode = .active
    /// ``Option/mode(_:)``. Default `.list`.
    public var mode: Mode = .list
    /// ``Option/buffer(_:)``: the largest message and `recv(0)` result, 1...16 MiB. Default 1460.
    public var buffer: Int = SocketOptions.defaultBuffer
    /// ``Option/nodelay(_:)``: no Nagle delay on sends. Default false.
    public var nodelay = false
    /// ``Option/keepalive(_:)``: keepalive probes on an idle connection. Default false.
    public var keepalive = false
    /// ``Option/reuseaddr(_:)``: bind a port in TIME-WAIT. Default false.
    public var reuseaddr = false
    /// ``Option/exitOnClose(_:)``: the socket dies at end of stream. Default true.
    public var exitOnClose = true
    /// ``Option/showEconnreset(_:)``: an RST is reported as `econnreset`. Default false.
    public var showEconnreset = false
    /// ``Option/sendTimeout(_:)``: the longest a send may wait without progress. Default infinity.
    public var sendTimeout: Timeout = .infinity
    /// ``Option/sendTimeoutClose(_:)``: shut the socket down when a send times out. Default false.
    public var sendTimeoutClose = false
    /// ``Option/linger(_:)``, in seconds: nil is `{false, 0}`; 0 makes `close` send an RST.
    public var linger: Int? = nil
    /// ``Option/ipVersion(_:)``: the address families tried for a host name, in order.
    public var ipVersion: IPVersionPreference = .ipv4Preferred
    /// ``Option/localPort(_:)``: the port to bind (0: chosen by the driver). For a listener, the
    /// port asked for.
    public var localPort: Int = 0
    /// ``Option/localAddress(_:)``: the address to bind, or nil for any.
    public var localAddress: IPAddress? = nil
    /// ``Option/backlog(_:)``: pending connections a listener queues, 0...65535. Default 5.
    public var backlog: Int = 5

    /// OTP's default `buffer` on Linux.
    public static let defaultBuffer = 1460
    /// The largest `buffer` accepted: 16 MiB. Anything larger is a mistake, not a buffer.
    public static let maximumBuffer = 16 << 20
    /// The largest exact `recv` length: 64 MiB, as in OTP (`enomem` above).
    public static let maximumRecvLength = 64 << 20

    /// Which kind of socket an option list is for.
    public enum Kind: Sendable {
        /// `connect` is a socket that connects; `listen` a listener (the only kind that takes
        /// `backlog`); `accepted` a socket made by `accept` (it inherits the listener's options).
        case connect, listen, accepted
    }

    /// Every option at its default (OTP's defaults, with `buffer` 1460).
    public init() {}

    /// Validates a `connect` option list; a bad option is `badarg`.
    /// - Throws: `badarg`, with a detail naming the option.
    public init(connect options: [Option]) throws(SocketError) {
        try self.init(options, kind: .connect)
    }

    /// Validates a `listen` option list; a bad option is `badarg`.
    /// - Throws: `badarg`, with a detail naming the option.
    public init(listen options: [Option]) throws(SocketError) {
        try self.init(options, kind: .listen)
    }

    init(_ options: [Option], kind: Kind) throws(SocketError) {
        self.init()
        for option in options {
            do {
                _ = try apply(option, kind: kind, opening: true)
            } catch {
                throw SocketError(.badArgument, error.detail)
            }
        }
    }

    /// Applies one option to an open socket (`setopts`). A bad value is `einval` and changes nothing.
    /// Returns true when OTP would send `tcp_passive` because of an `active` change.
    ///
    /// - Parameters:
    ///   - option: the option to apply.
    ///   - kind: the kind of socket (`backlog` is for listeners only).
    /// - Throws: `einval` for a value out of range or an option that can only be set when
    ///   opening (`ipVersion`, `localPort`, `localAddress`).
    @discardableResult
    public mutating func apply(_ option: Option, kind: Kind = .connect) throws(SocketError) -> Bool {
        try apply(option, kind: kind, opening: false)
    }

    /// Applies an option list atomically: if any option is bad, none is applied (OTP rejects the
    /// whole list). Returns true when a `tcp_passive` is due.
    ///
    /// - Parameters:
    ///   - options: the options, applied in order.
    ///   - kind: the kind of socket (`backlog` is for listeners only).
    /// - Throws: `einval` for the first bad option; nothing is changed then.
    @discardableResult
    public mutating func apply(all options: [Option], kind: Kind = .connect) throws(SocketError) -> Bool {
        var copy = self
        var passive = false
        for option in options {
            if try copy.apply(option, kind: kind, opening: false) { passive = true }
        }
        self = copy
        return passive
    }

    mutating func apply(_ option: Option, kind: Kind, opening: Bool) throws(SocketError) -> Bool {
        switch option {
        case .active(let requested):
            let change = try active.applying(requested)
            active = change.mode
            return change.sendsPassive
        case .mode(let m): mode = m
        case .buffer(let size):
            guard size >= 1, size <= SocketOptions.maximumBuffer else {
                throw SocketError(.invalidArgument, "buffer must be 1...16777216 bytes")
            }
            buffer = size
        case .nodelay(let v): nodelay = v
        case .keepalive(let v): keepalive = v
        case .reuseaddr(let v): reuseaddr = v
        case .exitOnClose(let v): exitOnClose = v
        case .showEconnreset(let v): showEconnreset = v
        case .sendTimeout(let t):
            if case .milliseconds(let ms) = t, ms < 0 {
                throw SocketError(.invalidArgument, "send_timeout must be >= 0 or infinity")
            }
            sendTimeout = t
        case .sendTimeoutClose(let v): sendTimeoutClose = v
        case .linger(let secs):
            if let s = secs, s < 0 || s > 65535 {
                throw SocketError(.invalidArgument, "linger must be 0...65535 seconds or nil")
            }
            linger = secs
        case .ipVersion(let v):
            guard opening, kind == .connect else {
                throw SocketError(.invalidArgument, "ipVersion is a connect option")
            }
            ipVersion = v
        case .localPort(let p):
            guard opening else { throw SocketError(.invalidArgument, "localPort can only be set when opening") }
            guard p >= 0, p <= 65535 else { throw SocketError(.invalidArgument, "port must be 0...65535") }
            localPort = p
        case .localAddress(let a):
            guard opening else { throw SocketError(.invalidArgument, "localAddress can only be set when opening") }
            localAddress = a
        case .backlog(let n):
            guard kind == .listen else { throw SocketError(.invalidArgument, "backlog is a listen option") }
            guard n >= 0, n <= 65535 else { throw SocketError(.invalidArgument, "backlog must be 0...65535") }
            backlog = n
        case .recbuf, .sndbuf, .broadcast, .ttl, .multicastTTL, .multicastLoop, .multicastInterface,
             .addMembership, .dropMembership, .readPackets:
            throw SocketError(.invalidArgument, "a gen_udp option on a gen_tcp socket")
        }
        return false
    }

    /// The current value of one option, as `getopts` reports it.
    public func value(of name: OptionName) -> Option {
        switch name {
        case .active: return .active(active)
        case .mode: return .mode(mode)
        case .buffer: return .buffer(buffer)
        case .nodelay: return .nodelay(nodelay)
        case .keepalive: return .keepalive(keepalive)
        case .reuseaddr: return .reuseaddr(reuseaddr)
        case .exitOnClose: return .exitOnClose(exitOnClose)
        case .showEconnreset: return .showEconnreset(showEconnreset)
        case .sendTimeout: return .sendTimeout(sendTimeout)
        case .sendTimeoutClose: return .sendTimeoutClose(sendTimeoutClose)
        case .linger: return .linger(linger)
        case .ipVersion: return .ipVersion(ipVersion)
        case .localPort: return .localPort(localPort)
        case .localAddress: return .localAddress(localAddress ?? .anyV4)
        case .backlog: return .backlog(backlog)
        case .recbuf, .sndbuf, .broadcast, .ttl, .multicastTTL, .multicastLoop, .multicastInterface,
             .addMembership, .dropMembership, .readPackets:
            // Not TCP options here; `Socket.getopts` refuses these names before asking.
            return .active(active)
        }
    }
}
