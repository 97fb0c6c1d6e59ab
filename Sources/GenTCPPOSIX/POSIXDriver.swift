import CGenTCPShims
import GenTCP
import GenTCPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The posix driver: BSD sockets, non-blocking, one epoll reactor thread.
///
/// `connect` is a non-blocking `connect(2)` completed by write readiness and `SO_ERROR`;
/// reads and writes are tried directly on the caller's thread and only wait on the reactor when
/// the kernel says `EAGAIN`. A passive socket that nobody reads leaves its data in the kernel,
/// whose window then closes: the backpressure costs no memory here.
public struct POSIXDriver: Driver {
    /// `posix`.
    public var name: String { "posix" }
    /// The clock for this driver's socket timeouts (`RealRuntime.shared` unless injected).
    public let runtime: any Runtime
    let syscalls: Syscalls
    /// The reactor of the sockets this driver opens: the event loop's when the driver's runtime
    /// is ``EventLoopRuntime`` or the caller runs on the loop (its process is there), so their
    /// readiness is handled on the thread that runs their owners; the shared one otherwise.
    var reactor: Reactor { onLoop ? .loop : .current(or: .shared) }
    private let onLoop: Bool
    /// How long a task about to park for a read first waits on the descriptor itself.
    public let briefWait: Duration
    /// How much of ``briefWait`` is spent polling the descriptor (yielding the CPU between polls,
    /// and only while no other thread wants it) before sleeping for the rest.
    public let briefSpin: Duration
    /// ``briefWait`` in nanoseconds.
    @available(*, deprecated, renamed: "briefWait")
    public var briefWaitNanoseconds: UInt64 { Self.nanoseconds(briefWait) }
    /// Where host names are looked up (``HostLookup/system`` unless given).
    public let lookup: HostLookup

    /// The driver with real system calls and the real clock.
    public static let shared = POSIXDriver()

    /// - Parameters:
    ///   - runtime: the clock for timeouts.
    ///   - syscalls: the system-call funnel (tests pass one that injects failures).
    ///   - briefWait: before a `recv` (or the owner of one active socket) parks, its thread
    ///     first watches the socket for this long, so a prompt answer is read on the same thread
    ///     instead of through the reactor thread. Only one socket at a time waits so, and only
    ///     while the driver has nothing else to dispatch; after a miss a socket skips its next
    ///     1, 2, 4 ... 64 chances. Zero (or less) turns it off.
    ///   - briefSpin: the first part of ``briefWait``, spent polling the socket (`poll(2)` with no
    ///     timeout, `sched_yield(2)` between polls; a yield that hands the CPU to another thread
    ///     ends the spin) instead of sleeping in `ppoll(2)`: an answer that comes within it costs
    ///     no wakeup at all. On this project's 2-core VM a wakeup
    ///     from sleep is the largest cost of a round trip, and OTP's schedulers spin the same
    ///     way before they sleep; 20 µs more than doubled ping-pong (README, Performance).
    ///     Zero turns the spinning off (the wait then only sleeps).
    ///   - lookup: where host names are looked up: the system's resolver, or only a hosts file
    ///     (``HostLookup/hostsFile(path:)``, OTP's `inet_db:set_lookup([file])`).
    public init(runtime: any Runtime = RealRuntime.shared, syscalls: Syscalls = .system,
                briefWait: Duration = .microseconds(50), briefSpin: Duration = .microseconds(20),
                lookup: HostLookup = .system) {
        self.lookup = lookup
        self.runtime = runtime
        self.syscalls = syscalls
        self.onLoop = runtime is EventLoopRuntime
        self.briefWait = briefWait
        self.briefSpin = briefSpin
    }

    /// ``briefWait`` and ``briefSpin`` in nanoseconds, as the sockets take them.
    var briefWaitSettings: BriefWaitSettings {
        BriefWaitSettings(total: Self.nanoseconds(briefWait), spin: Self.nanoseconds(briefSpin))
    }

    /// The driver with a brief wait given in nanoseconds.
    @available(*, deprecated, renamed: "init(runtime:syscalls:briefWait:briefSpin:lookup:)")
    public init(runtime: any Runtime = RealRuntime.shared, syscalls: Syscalls = .system, briefWaitNanoseconds: UInt64) {
        self.init(runtime: runtime, syscalls: syscalls,
                  briefWait: .nanoseconds(Int64(clamping: briefWaitNanoseconds)))
    }

    /// `duration` in whole nanoseconds, 0 when negative, saturating.
    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || overflow2 ? .max : total
    }

    /// Looks `host` up as ``lookup`` says (`getaddrinfo(3)`, or the hosts file alone) on a
    /// thread of its own (a slow resolver never blocks the task pool), then orders the
    /// addresses by `preference`.
    /// - Throws: `nxdomain` when the name has no address in the families allowed.
    public func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress] {
        try preference.order(await Resolver.lookup(host, using: lookup))
    }

    /// A non-blocking `socket(2)` and `connect(2)` (binding first when `localPort` or
    /// `localAddress` is set), completed by write readiness and `SO_ERROR`.
    /// - Throws: `timeout` when `timeout` passes; the `errno` of the failure otherwise
    ///   (`econnrefused`, `ehostunreach`, `etimedout`, `eaddrinuse`, `emfile`...).
    public func connect(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        let fd = try openSocket(for: address.address, options: options)
        let rc = address.withSockaddr { syscalls.connect(fd, $0, $1) }
        if rc != 0 {
            let e = cgentcp_errno()
            guard e == EINPROGRESS || e == EINTR else {
                _ = syscalls.close(fd)
                throw SocketError(SocketError.Reason(errno: e))
            }
            let waiter = ConnectWaiter(reactor: reactor, runtime: runtime)
            let outcome = await waiter.wait(fd: fd, timeout: timeout.map(Self.nanoseconds))
            if let failure = outcome {
                _ = syscalls.close(fd)
                throw SocketError(failure)
            }
            let soError = syscalls.socketError(fd)
            if soError != 0 {
                _ = syscalls.close(fd)
                throw SocketError(SocketError.Reason(errno: soError))
            }
        }
        let connection = POSIXConnection(fd: fd, syscalls: syscalls, reactor: reactor, delegate: delegate, briefWait: briefWaitSettings)
        connection.start()
        return connection
    }

    /// `socket(2)`, `bind(2)` (with `SO_REUSEADDR` when `reuseaddr` is set; IPv6 sockets are
    /// IPv6-only) and `listen(2)` with the socket's `backlog`.
    /// - Throws: `eaddrinuse`, `eaddrnotavail`, `eacces`... from the failing call.
    public func listen(
        on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate
    ) throws(SocketError) -> any Listener {
        let fd = try openSocket(for: address.address, options: options, bindTo: address)
        if syscalls.listen(fd, Int32(options.backlog)) != 0 {
            let e = cgentcp_errno()
            _ = syscalls.close(fd)
            throw SocketError(SocketError.Reason(errno: e))
        }
        let listener = POSIXListener(fd: fd, syscalls: syscalls, reactor: reactor, delegate: delegate, briefWait: briefWaitSettings)
        listener.start()
        return listener
    }

    /// `socket(2)` plus the options that must precede `bind`/`connect`, and the bind itself.
    private func openSocket(for address: IPAddress, options: SocketOptions, bindTo explicit: SocketAddress? = nil) throws(SocketError) -> Int32 {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = syscalls.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(SocketError.Reason(errno: cgentcp_errno())) }
        if options.reuseaddr { _ = applySocketOption(fd, .reuseaddr(true)) }
        if address.isIPv6 {
            // An IPv6 socket is IPv6 only, as OTP opens it (IPv4 to an IPv6 listener is refused).
            var on: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        var bindAddress = explicit
        if bindAddress == nil, options.localPort != 0 || options.localAddress != nil {
            bindAddress = SocketAddress(options.localAddress ?? (address.isIPv6 ? .anyV6 : .anyV4), port: options.localPort)
        }
        if let b = bindAddress {
            let rc = b.withSockaddr { syscalls.bind(fd, $0, $1) }
            if rc != 0 {
                let e = cgentcp_errno()
                _ = syscalls.close(fd)
                throw SocketError(SocketError.Reason(errno: e))
            }
        }
        return fd
    }
}

extension Driver where Self == POSIXDriver {
    /// The posix driver: `driver: .posix`.
    public static var posix: POSIXDriver { POSIXDriver.shared }
}

/// Waits for a non-blocking connect to finish (write readiness) or its timeout.
private final class ConnectWaiter: ReactorHandler {
    private struct State {
        var continuation: UnsafeContinuation<SocketError.Reason?, Never>?
        var token: UInt64 = 0
        var timer: TimerID?
    }
    private let state = Mutex(State())
    private let reactor: Reactor
    private let runtime: any Runtime

    init(reactor: Reactor, runtime: any Runtime) {
        self.reactor = reactor
        self.runtime = runtime
    }

    func wait(fd: Int32, timeout: UInt64?) async -> SocketError.Reason? {
        await withUnsafeContinuation { c in
            // Everything is recorded under the lock; an event or timer that comes early waits for it.
            let token: UInt64 = state.withLock { s in
                s.continuation = c
                s.token = reactor.register(fd: fd, handler: self)
                if let timeout {
                    s.timer = runtime.schedule(afterNanoseconds: timeout) { [self] in self.finish(.timeout) }
                }
                return s.token
            }
            reactor.arm(token, read: false, write: true)
        }
    }

    func ready(readable: Bool, writable: Bool) { finish(nil) }

    private func finish(_ result: SocketError.Reason?) {
        let taken: State? = state.withLock { s in
            guard s.continuation != nil else { return nil }
            let copy = s
            s.continuation = nil
            return copy
        }
        guard let taken, let c = taken.continuation else { return }
        reactor.deregister(taken.token)
        if let t = taken.timer { runtime.cancel(t) }
        c.resume(returning: result)
    }
}

/// A listening descriptor.
final class POSIXListener: Listener, ReactorHandler {
    let fd: Int32
    let syscalls: Syscalls
    private let reactor: Reactor
    private let token = Atomic<UInt64>(0)
    private let delegate: Mutex<(any ListenerDelegate)?>
    private let open = Atomic<Bool>(true)

    /// The brief wait of the connections it accepts.
    private let briefWait: BriefWaitSettings

    init(fd: Int32, syscalls: Syscalls, reactor: Reactor, delegate: any ListenerDelegate, briefWait: BriefWaitSettings) {
        self.fd = fd
        self.syscalls = syscalls
        self.reactor = reactor
        self.delegate = Mutex(delegate)
        self.briefWait = briefWait
    }

    func start() { token.store(reactor.register(fd: fd, handler: self), ordering: .releasing) }

    func ready(readable: Bool, writable: Bool) {
        delegate.withLock { $0 }?.listenerAcceptable()
    }

    func accept(delegate: any ConnectionDelegate) throws(SocketError) -> (any Connection)? {
        while true {
            let client = syscalls.accept(fd, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if client >= 0 {
                // A process on the event loop accepting: the connection's readiness goes to the loop.
                let c = POSIXConnection(fd: client, syscalls: syscalls, reactor: .current(or: reactor),
                                        delegate: delegate, briefWait: briefWait)
                c.start()
                return c
            }
            let e = cgentcp_errno()
            switch e {
            case EINTR, ECONNABORTED: continue
            case EAGAIN, EWOULDBLOCK: return nil
            case EBADF, EINVAL: throw SocketError.closed
            default: throw SocketError(SocketError.Reason(errno: e))
            }
        }
    }

    func armAccept() { reactor.arm(token.load(ordering: .acquiring), read: true, write: false) }

    func close() {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        reactor.deregister(token.load(ordering: .acquiring))
        delegate.withLock { $0 = nil }
        _ = syscalls.close(fd)
    }

    func localAddress() -> SocketAddress? { SocketAddress.of(fd: fd, peer: false) }

    deinit {
        if open.load(ordering: .acquiring) {
            reactor.deregister(token.load(ordering: .acquiring))
            _ = syscalls.close(fd)
        }
    }
}
