import CGenTCPShims
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Raw loopback sockets for the peer side

/// A plain blocking BSD socket, for checking what the wire carries without GenTCP's reading of it.
final class RawSocket {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    /// A listening socket on 127.0.0.1 and an ephemeral port.
    static func listen() throws -> (RawSocket, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &sin) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && Glibc.listen(fd, 5) == 0 && getsockname(fd, sa, &length) == 0
            }
        }
        guard ok else { close(fd); throw TestFailure("bind/listen: errno \(errno)") }
        return (RawSocket(fd: fd), Int(UInt16(bigEndian: sin.sin_port)))
    }

    /// Accepts one connection (blocking; call only when one is pending).
    func accept() throws -> RawSocket {
        let c = Glibc.accept(fd, nil, nil)
        guard c >= 0 else { throw TestFailure("accept: errno \(errno)") }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        _ = setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return RawSocket(fd: c)
    }

    /// One `read(2)`: the byte count (0 at EOF) or `-errno`.
    /// Waits (poll(2), on a thread of its own, at most 60 s) until one of `events` is pending.
    func wait(for events: Int32) async -> Bool {
        let fd = self.fd
        return await OffPool.run {
            var p = pollfd(fd: fd, events: Int16(truncatingIfNeeded: events), revents: 0)
            return poll(&p, 1, 60_000) == 1 && Int32(p.revents) & events != 0
        }
    }

    func read(max: Int = 4096) -> Int {
        var buffer = [UInt8](repeating: 0, count: max)
        let n = Glibc.read(fd, &buffer, max)
        return n >= 0 ? n : -Int(errno)
    }

    deinit { close(fd) }
}

// MARK: - (a) memory

extension POSIXTests {
    @Test("memory stays flat while a peer floods a passive socket nobody reads")
    func memoryFlat() async throws {
        try await ExclusivityGate.exclusively {
            try await Process.run {
                let ctx = TestContext.posix
                let (c, p) = try await ctx.pair(server: [.binary, .active(.passive), .sendTimeout(200)])
                let chunk = Pattern.bytes(count: 1 << 16, seed: 42)
                // Warm up the allocator and the paths a send and a recv take.
                try await p.send(chunk)
                #expect(try await c.recv(chunk.count, timeout: 2000).bytes == chunk)
                let before = try #require(residentBytes())
                // P tries to send 100 MB; C never reads. The send timeout stops P.
                var attempted = 0
                var failure: SocketError?
                while attempted < 100_000_000 {
                    do throws(SocketError) {
                        try await p.send(chunk)
                        attempted += chunk.count
                    } catch {
                        failure = error
                        break
                    }
                }
                let after = try #require(residentBytes())
                #expect(failure == .timeout, "the flood stopped on the send timeout")
                let growth = after - before
                #expect(growth < 4 << 20, "resident memory grew by \(growth) bytes while \(attempted) bytes were queued")
                // Nothing was lost: the stream is the chunk repeated, from where it stood.
                let sent = Int(try p.getstat().sendOct) - chunk.count
                #expect(sent == attempted)
                var received = 0
                while true {
                    do throws(SocketError) {
                        let got = try await c.recv(chunk.count, timeout: 200)
                        #expect(got.bytes == chunk, "chunk at offset \(received)")
                        received += chunk.count
                    } catch {
                        #expect(error.reason == .timeout)
                        break
                    }
                }
                // Whole chunks of the successful sends arrived; the timed-out send's prefix (less
                // than one chunk) is left in the kernel and is readable too.
                #expect(received >= sent && received <= sent + chunk.count, "received \(received) of \(sent)")
                c.close()
                p.close()
            }
        }
    }
}

// MARK: - (b) the syscall funnel

/// Faults to inject through a ``Syscalls`` table that otherwise calls the real system.
final class Faults: Sendable {
    struct State {
        /// Make a connect that succeeded at once report EINPROGRESS instead.
        var forceInProgress = false
        /// What `SO_ERROR` reports after an in-progress connect (0: the real value).
        var connectSoError: Int32 = 0
        /// The next this-many reads fail with EAGAIN although data may be there.
        var readAgain = 0
        /// Every read fails with ECONNRESET.
        var readReset = false
        /// Writes move at most 1...7 bytes per call (cycling).
        var shortWrites = false
        /// socket(2) fails with EMFILE.
        var socketEMFILE = false
        /// accept(2) fails with EMFILE.
        var acceptEMFILE = false

        // What happened.
        var inProgressReturned = 0
        var forcedAgain = 0
        var shortWriteCalls = 0
        var forcedResets = 0
        var closedFDs: [Int32] = []
    }

    let state = Mutex(State())

    func with<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }

    var syscalls: Syscalls {
        let real = Syscalls.system
        return Syscalls(
            socket: { [self] domain, type, proto in
                if with({ $0.socketEMFILE }) {
                    cgentcp_set_errno(EMFILE)
                    return -1
                }
                return real.socket(domain, type, proto)
            },
            connect: { [self] fd, address, length in
                let rc = real.connect(fd, address, length)
                let e = cgentcp_errno()
                if rc == 0 && with({ $0.forceInProgress }) {
                    with { $0.inProgressReturned += 1 }
                    cgentcp_set_errno(EINPROGRESS)
                    return -1
                }
                if rc != 0 && e == EINPROGRESS { with { $0.inProgressReturned += 1 } }
                cgentcp_set_errno(e)
                return rc
            },
            bind: { real.bind($0, $1, $2) },
            listen: { real.listen($0, $1) },
            accept: { [self] fd, address, length, flags in
                if with({ $0.acceptEMFILE }) {
                    cgentcp_set_errno(EMFILE)
                    return -1
                }
                return real.accept(fd, address, length, flags)
            },
            read: { [self] fd, buffer, count in
                let fault: Int32? = with { s in
                    if s.readReset { s.forcedResets += 1; return ECONNRESET }
                    if s.readAgain > 0 { s.readAgain -= 1; s.forcedAgain += 1; return EAGAIN }
                    return nil
                }
                if let fault {
                    cgentcp_set_errno(fault)
                    return -1
                }
                return real.read(fd, buffer, count)
            },
            writev: { [self] fd, iov, count in
                let limit: Int? = with { s in
                    guard s.shortWrites else { return nil }
                    s.shortWriteCalls += 1
                    return 1 + s.shortWriteCalls % 7
                }
                guard let limit else { return real.writev(fd, iov, count) }
                // Hand the kernel at most `limit` bytes of the vector.
                var left = limit
                var cut: [iovec] = []
                for i in 0..<Int(count) where left > 0 {
                    let n = min(left, iov[i].iov_len)
                    cut.append(iovec(iov_base: iov[i].iov_base, iov_len: n))
                    left -= n
                }
                return cut.withUnsafeBufferPointer { real.writev(fd, $0.baseAddress!, Int32($0.count)) }
            },
            shutdown: { real.shutdown($0, $1) },
            close: { [self] fd in
                with { $0.closedFDs.append(fd) }
                return real.close(fd)
            },
            socketError: { [self] fd in
                let forced = with { $0.connectSoError }
                return forced != 0 ? forced : real.socketError(fd)
            }
        )
    }

    var driver: POSIXDriver { POSIXDriver(syscalls: syscalls) }
}

extension TestContext {
    /// The posix context, for tests that are not run per backend.
    static let posix = TestContext(
        backend: "posix", clientDriver: POSIXDriver.shared, serverDriver: POSIXDriver.shared,
        serverHost: "127.0.0.1", serverAddress: .loopbackV4, clientAddress: .loopbackV4,
        serverHostName: "localhost", ipv6: nil)

    /// The same context with C on another driver.
    func withClient(_ driver: any Driver) -> TestContext {
        TestContext(backend: backend, clientDriver: driver, serverDriver: serverDriver, serverHost: serverHost,
                    serverAddress: serverAddress, clientAddress: clientAddress, serverHostName: serverHostName, ipv6: ipv6)
    }
}

extension POSIXTests {
    @Suite("Syscall funnel")
    struct Funnel {
        @Test("connect: EINPROGRESS, then success")
        func connectInProgress() async throws {
            try await Process.run {
                let faults = Faults()
                faults.with { $0.forceInProgress = true }
                let ctx = TestContext.posix.withClient(faults.driver)
                let (c, p) = try await ctx.pair()
                #expect(faults.with { $0.inProgressReturned } >= 1)
                try await c.send("through")
                #expect(try await p.recv(7, timeout: 2000) == bin("through"))
                try await p.send("back")
                #expect(try await c.recv(4, timeout: 2000) == bin("back"))
                c.close()
                p.close()
            }
        }

        @Test("connect: EINPROGRESS, then SO_ERROR ECONNREFUSED closes the descriptor")
        func connectInProgressRefused() async throws {
            try await Process.run {
                let faults = Faults()
                faults.with {
                    $0.forceInProgress = true
                    $0.connectSoError = ECONNREFUSED
                }
                let ctx = TestContext.posix.withClient(faults.driver)
                let l = try ctx.listen()
                await #expect(throws: SocketError(.connectionRefused)) {
                    _ = try await ctx.connect(port: try l.port(), [])
                }
                #expect(faults.with { $0.inProgressReturned } == 1)
                #expect(faults.with { $0.closedFDs.count } == 1, "the failed descriptor is closed")
                l.close()
            }
        }

        @Test("read: EAGAIN although data is there, passive and active", arguments: [false, true])
        func readAgain(active: Bool) async throws {
            try await Process.run {
                let faults = Faults()
                let ctx = TestContext.posix.withClient(faults.driver)
                let (c, p) = try await ctx.pair()
                try await p.send("hello")
                await ctx.sleep(20)
                faults.with { $0.readAgain = 5 }
                if active {
                    try c.setopts(.active(.once))
                    #expect(await next() == .tcp(c, bin("hello")))
                } else {
                    #expect(try await c.recv(5, timeout: 2000) == bin("hello"))
                }
                #expect(faults.with { $0.forcedAgain } == 5)
                c.close()
                p.close()
            }
        }

        @Test("write: short writes of 1-7 bytes still deliver a large send byte-exact")
        func shortWrites() async throws {
            try await Process.run {
                let faults = Faults()
                let ctx = TestContext.posix.withClient(faults.driver)
                let (c, p) = try await ctx.pair()
                let pieces = [Pattern.bytes(count: 30_001, seed: 1), [], Pattern.bytes(count: 7, seed: 2),
                              Pattern.bytes(count: 40_000, seed: 3)]
                let all = Array(pieces.joined())
                let reader = ctx.spawn { try await p.recv(all.count, timeout: 5000) }
                faults.with { $0.shortWrites = true }
                try await c.send(chunks: pieces)
                faults.with { $0.shortWrites = false }
                #expect(try await reader.value(within: 10000).bytes == all)
                #expect(faults.with { $0.shortWriteCalls } >= all.count / 7)
                #expect(try c.getstat().sendOct == UInt64(all.count))
                #expect(try c.getstat().sendCnt == 1)
                c.close()
                p.close()
            }
        }

        @Test("read: ECONNRESET is closed, or econnreset when shown; then enotconn", arguments: [false, true])
        func readReset(show: Bool) async throws {
            try await Process.run {
                let faults = Faults()
                let ctx = TestContext.posix.withClient(faults.driver)
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(show)])
                faults.with { $0.readReset = true }
                try await p.send("x")
                await #expect(throws: show ? SocketError(.connectionReset) : .closed) {
                    _ = try await c.recv(0, timeout: 2000)
                }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 2000) }
                #expect(faults.with { $0.forcedResets } >= 1)
                c.close()
                p.close()
            }
        }

        @Test("read: ECONNRESET in active mode", arguments: [false, true])
        func readResetActive(show: Bool) async throws {
            try await Process.run {
                let faults = Faults()
                let ctx = TestContext.posix.withClient(faults.driver)
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(show)])
                try await p.send("x")
                await ctx.sleep(20)
                faults.with { $0.readReset = true }
                try c.setopts(.active(.active))
                if show { #expect(await next() == .tcpError(c, .connectionReset)) }
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                // The reset closed the socket (exit_on_close).
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.active]) }
                c.close()
                p.close()
            }
        }

        @Test("socket: EMFILE is system_limit for connect and listen; accept: EMFILE is system_limit")
        func emfile() async throws {
            try await Process.run {
                let faults = Faults()
                faults.with { $0.socketEMFILE = true }
                let ctx = TestContext.posix.withClient(faults.driver)
                let l = try ctx.listen()
                let port = try l.port()
                await #expect(throws: SocketError(.systemLimit)) { _ = try await ctx.connect(port: port, []) }
                #expect(throws: SocketError(.systemLimit)) {
                    _ = try ListenSocket.listen(port: 0, options: ctx.bindServer, driver: faults.driver)
                }
                faults.with { $0.socketEMFILE = false }
                // accept on a faulty listener.
                let fl = try ListenSocket.listen(port: 0, options: ctx.bindServer, driver: faults.driver)
                let c = try await Socket.connect("127.0.0.1", port: try fl.port(), options: [.active(.passive)],
                                                 timeout: 2000, driver: POSIXDriver.shared)
                await ctx.sleep(20)
                faults.with { $0.acceptEMFILE = true }
                await #expect(throws: SocketError(.systemLimit)) { _ = try await fl.accept(timeout: 0) }
                await #expect(throws: SocketError(.systemLimit)) { _ = try await fl.accept(timeout: 500) }
                faults.with { $0.acceptEMFILE = false }
                // The pending connection is still there once descriptors are back.
                let a = try await fl.accept(timeout: 2000)
                #expect(try a.peername() == c.sockname())
                for s in [a, c] { s.close() }
                fl.close()
                l.close()
            }
        }
    }
}

// MARK: - (c) linger

extension POSIXTests {
    enum LingerWay: String, CaseIterable, Sendable { case none, connectOption, setopts }

    @Test("linger(0) close sends the peer an RST (a raw peer reads ECONNRESET); a plain close sends FIN",
          arguments: LingerWay.allCases)
    func lingerZero(way: LingerWay) async throws {
        try await Process.run {
            let (raw, port) = try RawSocket.listen()
            let options: [Option] = way == .connectOption ? [.linger(0)] : []
            let c = try await Socket.connect("127.0.0.1", port: port, options: [.binary, .active(.passive)] + options,
                                             timeout: 2000, driver: POSIXDriver.shared)
            let peer = try raw.accept()
            if way == .setopts { try c.setopts(.linger(0)) }
            #expect(try c.getopt(.linger) == .linger(way == .none ? nil : 0))
            try await c.send("pre")
            // Events, not sleeps: the data has arrived, then the end (FIN or RST) has.
            #expect(await peer.wait(for: POLLIN), "the data never arrived")
            c.close()
            // POLLRDHUP (0x2000, Linux; Glibc's module leaves it out) comes with a FIN and an RST.
            #expect(await peer.wait(for: 0x2000 | POLLHUP | POLLERR), "neither FIN nor RST arrived")
            // Data that arrived before the end may be read first (Linux keeps it after an RST).
            var reads: [Int] = []
            var n = peer.read()
            while n > 0 && reads.count < 4 {
                reads.append(n)
                n = peer.read()
            }
            #expect(reads.reduce(0, +) <= 3)
            if way == .none {
                #expect(reads == [3])
                #expect(n == 0, "end of stream")
            } else {
                #expect(n == -Int(ECONNRESET), "an RST, after \(reads)")
            }
        }
    }
}
