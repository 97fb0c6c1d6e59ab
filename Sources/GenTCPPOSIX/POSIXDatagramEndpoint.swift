import CGenTCPShims
import GenTCP
import GenTCPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A bound, non-blocking `SOCK_DGRAM` descriptor: one gen_udp socket's endpoint on the posix
/// driver.
///
/// The kernel keeps the receive queue (bounded by `SO_RCVBUF`) and counts what it drops
/// (`SO_RXQ_OVFL`, `SO_MEMINFO`); receives use `MSG_TRUNC` so a cut datagram reports its full
/// length. ICMP errors reach a connected socket as a pending socket error that the next receive
/// or send returns once (`econnrefused`); an unconnected socket never sees them (no
/// `IP_RECVERR`).
final class POSIXDatagramEndpoint: DatagramEndpoint, ReactorHandler {
    let fd: Int32
    let syscalls: Syscalls
    let isIPv6: Bool
    private let reactor: Reactor
    private let token = Atomic<UInt64>(0)
    private let delegate: Mutex<(any DatagramDelegate)?>
    private let open = Atomic<Bool>(true)
    /// The largest `SO_RXQ_OVFL` count a received datagram carried.
    let reportedDrops = Atomic<UInt32>(0)
    /// Where the socket was bound (with the kernel's port): a disconnect re-binds it there when
    /// the kernel let go of an ephemeral port.
    private let boundAddress: Mutex<SocketAddress?>
    /// The wait before a read parks (``BriefWait``).
    private let briefWait: BriefWait
    /// The block `recvmmsg(2)` fills, kept from one batch receive to the next: allocated per call,
    /// a block of 128 KiB or more (64 datagrams of a 2 KiB `buffer`) went to `mmap(2)` and
    /// page-faulted on every call. Used only inside ``receive(upTo:bufferSize:)``, which the port
    /// calls one at a time per endpoint under its lock; at most ``batchBytes``.
    nonisolated(unsafe) var receiveBlock: UnsafeMutableRawBufferPointer?

    init(fd: Int32, isIPv6: Bool, syscalls: Syscalls, reactor: Reactor, delegate: any DatagramDelegate, briefWait: BriefWaitSettings) {
        self.fd = fd
        self.isIPv6 = isIPv6
        self.syscalls = syscalls
        self.reactor = reactor
        self.delegate = Mutex(delegate)
        self.briefWait = BriefWait(briefWait)
        self.boundAddress = Mutex(SocketAddress.of(fd: fd, peer: false))
    }

    /// Registers with the reactor; call once, right after init.
    func start() {
        token.store(reactor.register(fd: fd, handler: self), ordering: .releasing)
    }

    func ready(readable: Bool, writable: Bool) {
        guard let d = delegate.withLock({ $0 }) else { return }
        if readable { d.datagramReadable() }
        if writable { d.datagramWritable() }
    }

    var maximumDatagramSize: Int { isIPv6 ? 65_527 : 65_507 }

    /// False once closed: the descriptor's number may already belong to another socket.
    var isOpen: Bool { open.load(ordering: .acquiring) }

    /// The larger of the last `SO_RXQ_OVFL` count a datagram carried and the kernel's count
    /// now (`SO_MEMINFO`): drops after the last queued datagram ride on no datagram yet.
    var droppedDatagramCount: UInt64 {
        let carried = UInt64(reportedDrops.load(ordering: .relaxed))
        guard isOpen else { return carried }
        let current = cgentcp_socket_drops(fd)
        return current > 0 ? max(carried, UInt64(current)) : carried
    }

    // MARK: Receive

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        guard open.load(ordering: .acquiring) else { return .failed(.closed) }
        var storage = sockaddr_storage()
        var drops = reportedDrops.load(ordering: .relaxed)
        while true {
            let n = syscalls.receiveDatagram(fd, buffer.baseAddress, buffer.count, &storage, &drops)
            if n >= 0 {
                noteDrops(drops)
                guard let source = SocketAddress(storage: storage) else { continue }
                return .datagram(copied: min(n, buffer.count), length: n, source: source)
            }
            let e = cgentcp_errno()
            if e == EINTR { continue }
            return Self.receiveFailure(errno: e)
        }
    }

    /// Keeps the largest drop count the kernel reported.
    func noteDrops(_ drops: UInt32) {
        var seen = reportedDrops.load(ordering: .relaxed)
        while drops > seen {
            let (exchanged, original) = reportedDrops.compareExchange(expected: seen, desired: drops, ordering: .relaxed)
            if exchanged { return }
            seen = original
        }
    }

    /// A failed receive's result: `EAGAIN` waits, a pending ICMP error is reported once, a dead
    /// descriptor fails for good.
    static func receiveFailure(errno e: Int32) -> DatagramReceiveResult {
        switch e {
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EBADF, ENOTSOCK: return .failed(.closed)
        default: return .error(SocketError.Reason(errno: e))
        }
    }

    // MARK: Send

    func send(_ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        guard open.load(ordering: .acquiring) else { return .failed(.closed) }
        // One chunk (every `send` of one array): an `iovec` on the stack, no array to allocate.
        if chunks.count == 1 {
            var single = iovec(iov_base: UnsafeMutableRawPointer(mutating: chunks[0].baseAddress), iov_len: chunks[0].count)
            return sendVector(&single, count: chunks[0].isEmpty ? 0 : 1, to: destination)
        }
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(chunks.count)
        for c in chunks where !c.isEmpty {
            iovecs.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: c.baseAddress), iov_len: c.count))
        }
        return iovecs.withUnsafeMutableBufferPointer { iov in
            sendVector(iov.baseAddress, count: iov.count, to: destination)
        }
    }

    /// One `sendmsg(2)` of `count` `iovec`s, retried on `EINTR`.
    private func sendVector(_ iov: UnsafeMutablePointer<iovec>?, count: Int, to destination: SocketAddress?) -> DatagramSendResult {
        while true {
            let n: Int
            if let destination {
                n = destination.withSockaddr { syscalls.sendDatagram(fd, iov, Int32(count), $0, $1) }
            } else {
                n = syscalls.sendDatagram(fd, iov, Int32(count), nil, 0)
            }
            if n >= 0 { return .sent }
            let e = cgentcp_errno()
            if e == EINTR { continue }
            return Self.sendFailure(errno: e)
        }
    }

    /// A failed send's result.
    static func sendFailure(errno e: Int32) -> DatagramSendResult {
        switch e {
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EBADF, ENOTSOCK: return .failed(.closed)
        default: return .failed(SocketError.Reason(errno: e))
        }
    }

    func sendPermit() -> Int {
        guard open.load(ordering: .acquiring) else { return 0 }
        return cgentcp_wait_writable(fd, 0) == 1 ? 64 : 0
    }

    // MARK: Readiness

    func armReceive() { reactor.arm(token.load(ordering: .acquiring), read: true, write: false) }
    func armSend() { reactor.arm(token.load(ordering: .acquiring), read: false, write: true) }

    func waitBriefly(forReadUpTo limit: Duration?) -> Bool {
        guard open.load(ordering: .acquiring) else { return false }
        return briefWait.wait(fd: fd, token: token.load(ordering: .acquiring), reactor: reactor, limit: limit)
    }

    // MARK: Peer

    func connect(to peer: SocketAddress?) async throws(SocketError) {
        guard open.load(ordering: .acquiring) else { throw SocketError.closed }
        guard let peer else { return try disconnect() }
        let rc = peer.withSockaddr { syscalls.connect(fd, $0, $1) }
        if rc != 0 { throw SocketError(SocketError.Reason(errno: cgentcp_errno())) }
    }

    /// `connect(2)` with `AF_UNSPEC`. Linux then releases a port the kernel chose (bind to port
    /// 0): bind it again so the socket keeps its port, as gen_udp's does.
    private func disconnect() throws(SocketError) {
        var unspec = sockaddr()
        unspec.sa_family = sa_family_t(AF_UNSPEC)
        let rc = syscalls.connect(fd, &unspec, socklen_t(MemoryLayout<sockaddr>.size))
        if rc != 0 {
            let e = cgentcp_errno()
            // Not connected: nothing to undo.
            if e != EINVAL && e != ENOTCONN { throw SocketError(SocketError.Reason(errno: e)) }
        }
        guard let bound = boundAddress.withLock({ $0 }) else { return }
        if SocketAddress.of(fd: fd, peer: false)?.port == bound.port { return }
        if bound.withSockaddr({ syscalls.bind(fd, $0, $1) }) != 0 {
            throw SocketError(SocketError.Reason(errno: cgentcp_errno()), "the local port was lost on disconnect")
        }
    }

    // MARK: Options

    func apply(_ option: Option) -> SocketError.Reason? {
        guard open.load(ordering: .acquiring) else { return .closed }
        return DatagramSocketOptions.apply(option, to: fd, isIPv6: isIPv6)
    }

    func currentValue(of name: OptionName) -> Option? {
        switch name {
        case .recbuf: return DatagramSocketOptions.intValue(fd, SOL_SOCKET, SO_RCVBUF).map { .recbuf($0) }
        case .sndbuf: return DatagramSocketOptions.intValue(fd, SOL_SOCKET, SO_SNDBUF).map { .sndbuf($0) }
        default: return nil
        }
    }

    // MARK: Close

    func close() {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { return }
        reactor.deregister(token.load(ordering: .acquiring))
        delegate.withLock { $0 = nil }
        _ = syscalls.close(fd)
    }

    func localAddress() -> SocketAddress? { SocketAddress.of(fd: fd, peer: false) }

    deinit {
        receiveBlock?.deallocate()
        if open.load(ordering: .acquiring) {
            reactor.deregister(token.load(ordering: .acquiring))
            _ = syscalls.close(fd)
        }
    }
}

extension SocketAddress {
    /// Reads a `sockaddr_storage` filled by the kernel; nil for another family.
    init?(storage: sockaddr_storage) {
        var copy = storage
        let address = withUnsafePointer(to: &copy) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) }
        }
        guard let address else { return nil }
        self = address
    }
}
