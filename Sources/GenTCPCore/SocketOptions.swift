/// The validated option set of one socket. Every field has OTP's default.
///
/// Built from an option list with ``init(connect:)`` or ``init(listen:)``, changed with
/// ``apply(_:)``, read with ``value(of:)``. Validation lives here once, for every driver.
public struct SocketOptions: Hashable, Sendable {
    public var active: ActiveMode = .active
    public var mode: Mode = .list
    public var buffer: Int = SocketOptions.defaultBuffer
    public var nodelay = false
    public var keepalive = false
    public var reuseaddr = false
    public var exitOnClose = true
    public var showEconnreset = false
    public var sendTimeout: Timeout = .infinity
    public var sendTimeoutClose = false
    public var linger: Int? = nil
    public var ipVersion: IPVersionPreference = .ipv4Preferred
    public var localPort: Int = 0
    public var localAddress: IPAddress? = nil
    public var backlog: Int = 5

    /// OTP's default `buffer` on Linux.
    public static let defaultBuffer = 1460
    /// The largest `buffer` accepted: 16 MiB. Anything larger is a mistake, not a buffer.
    public static let maximumBuffer = 16 << 20
    /// The largest exact `recv` length: 64 MiB, as in OTP (`enomem` above).
    public static let maximumRecvLength = 64 << 20

    /// Which kind of socket an option list is for.
    public enum Kind: Sendable { case connect, listen, accepted }

    public init() {}

    /// Validates a `connect` option list; a bad option is `badarg`.
    public init(connect options: [Option]) throws(SocketError) {
        try self.init(options, kind: .connect)
    }

    /// Validates a `listen` option list; a bad option is `badarg`.
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
    @discardableResult
    public mutating func apply(_ option: Option, kind: Kind = .connect) throws(SocketError) -> Bool {
        try apply(option, kind: kind, opening: false)
    }

    /// Applies an option list atomically: if any option is bad, none is applied (OTP rejects the
    /// whole list). Returns true when a `tcp_passive` is due.
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
        }
    }
}
