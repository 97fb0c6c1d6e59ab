import CGenTCPShims
import GenTCP
import GenTCPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A connected, non-blocking TCP socket descriptor.
final class POSIXConnection: Connection, ReactorHandler {
    let fd: Int32
    let syscalls: Syscalls
    private let reactor: Reactor
    private let token = Atomic<UInt64>(0)
    private let delegate: Mutex<(any ConnectionDelegate)?>
    private let open = Atomic<Bool>(true)

    /// The wait before a read parks (``BriefWait``).
    private let briefWait: BriefWait

    init(fd: Int32, syscalls: Syscalls, reactor: Reactor, delegate: any ConnectionDelegate, briefWait: BriefWaitSettings) {
        self.fd = fd
        self.syscalls = syscalls
        self.reactor = reactor
        self.delegate = Mutex(delegate)
        self.briefWait = BriefWait(briefWait)
    }

    func waitBriefly(forReadUpTo limit: Duration?) -> Bool {
        guard open.load(ordering: .acquiring) else { return false }
        return briefWait.wait(fd: fd, token: token.load(ordering: .acquiring), reactor: reactor, limit: limit)
    }

    /// Registers with the reactor; call once, right after init.
    func start() {
        token.store(reactor.register(fd: fd, handler: self), ordering: .releasing)
    }

    func ready(readable: Bool, writable: Bool) {
        guard let d = delegate.withLock({ $0 }) else { return }
        if readable { d.connectionReadable() }
        if writable { d.connectionWritable() }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = syscalls.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return buffer.isEmpty ? .wouldBlock : .endOfStream }
            let e = cgentcp_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(SocketError.Reason(errno: e))
        }
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(chunks.count)
        for c in chunks where !c.isEmpty {
            iovecs.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: c.baseAddress), iov_len: c.count))
        }
        if iovecs.isEmpty { return .bytes(0) }
        while true {
            let n = iovecs.withUnsafeBufferPointer { syscalls.writev(fd, $0.baseAddress!, Int32($0.count)) }
            if n >= 0 { return n == 0 ? .wouldBlock : .bytes(n) }
            let e = cgentcp_errno()
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(SocketError.Reason(errno: e))
        }
    }

    func armRead() { reactor.arm(token.load(ordering: .acquiring), read: true, write: false) }
    func armWrite() { reactor.arm(token.load(ordering: .acquiring), read: false, write: true) }

    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? {
        let mode: Int32
        switch how {
        case .read: mode = Int32(SHUT_RD)
        case .write: mode = Int32(SHUT_WR)
        case .readWrite: mode = Int32(SHUT_RDWR)
        }
        if syscalls.shutdown(fd, mode) == 0 { return nil }
        return SocketError.Reason(errno: cgentcp_errno())
    }

    func close(abortive: Bool) {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        reactor.deregister(token.load(ordering: .acquiring))
        delegate.withLock { $0 = nil }
        if abortive { setLinger(fd, seconds: 0) }
        _ = syscalls.close(fd)
    }

    func localAddress() -> SocketAddress? { SocketAddress.of(fd: fd, peer: false) }
    func remoteAddress() -> SocketAddress? { SocketAddress.of(fd: fd, peer: true) }

    func apply(_ option: Option) -> SocketError.Reason? {
        applySocketOption(fd, option)
    }

    deinit {
        if open.load(ordering: .acquiring) {
            reactor.deregister(token.load(ordering: .acquiring))
            _ = syscalls.close(fd)
        }
    }
}

/// Sets `SO_LINGER` to `{on, seconds}` (`{true, 0}` makes close send an RST).
func setLinger(_ fd: Int32, seconds: Int?) {
    var l = linger(l_onoff: seconds == nil ? 0 : 1, l_linger: Int32(seconds ?? 0))
    _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
}

/// Applies the transport options to a descriptor; others are ignored.
func applySocketOption(_ fd: Int32, _ option: Option) -> SocketError.Reason? {
    func flag(_ level: Int32, _ name: Int32, _ on: Bool) -> SocketError.Reason? {
        var v: Int32 = on ? 1 : 0
        if setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 { return nil }
        return SocketError.Reason(errno: cgentcp_errno())
    }
    switch option {
    case .nodelay(let on): return flag(Int32(IPPROTO_TCP), TCP_NODELAY, on)
    case .keepalive(let on): return flag(SOL_SOCKET, SO_KEEPALIVE, on)
    case .reuseaddr(let on): return flag(SOL_SOCKET, SO_REUSEADDR, on)
    case .linger(let secs):
        setLinger(fd, seconds: secs)
        return nil
    default: return nil
    }
}
