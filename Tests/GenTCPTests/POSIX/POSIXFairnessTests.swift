import CGenTCPShims
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Processes share the cooperative pool. A process whose peer always answers at once (within the
/// driver's brief wait) never suspends in `recv`, and Swift's tasks are never preempted: before
/// such a process yielded after a quantum of running (`Quantum`) and the brief wait ran only on
/// an otherwise idle driver, as many of them as pool threads held the pool, and
/// `gentcp-bench --scale` saw 2 of 100 echo connections served for a whole run.
@Suite("posix: processes share the pool")
struct POSIXFairnessTests {
    static let clients = 6
    static let roundTrips = 5000

    enum Serving: String, CaseIterable, Sendable { case passive, activeOnce }

    @Test("echo server processes whose clients answer at once: while one client makes 5,000 round trips, every other makes at least a 20th of that",
          arguments: Serving.allCases)
    func echoServersShareThePool(serving: Serving) async throws {
        let counts = Counters(Self.clients)
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4), .backlog(16)], driver: .posix)
            defer { listener.close() }
            let port = try listener.port()
            var servers: [Process] = []
            for _ in 0..<Self.clients {
                servers.append(Process.spawn {
                    let s = try await listener.accept(timeout: 60_000)
                    defer { s.close() }
                    try s.setopts(.nodelay(true))
                    while true {
                        switch serving {
                        case .passive:
                            let request = try await s.recv(64, timeout: 60_000)
                            try await s.send(request.bytes)
                        case .activeOnce:
                            try s.setopts(.active(.once))
                            guard case .tcp(_, let request)? = try await Process.receive(timeout: 60_000) else { return }
                            try await s.send(request.bytes)
                        }
                    }
                })
            }
            // Raw blocking clients, each on a thread of its own: they answer at once.
            let done = await OffPool.run { () -> Bool in
                var threads: [pthread_t] = []
                for i in 0..<Self.clients {
                    threads.append(startThread { Self.client(port: port, index: i, counts: counts) })
                }
                // Until some client made its round trips (or, for a broken build, a generous limit).
                var waited = 0
                while counts.maximum() < Self.roundTrips && waited < 120_000 {
                    usleep(1000)
                    waited += 1
                }
                counts.stop.store(true, ordering: .releasing)
                for t in threads { pthread_join(t, nil) }
                return counts.maximum() >= Self.roundTrips
            }
            for p in servers { p.kill() }
            #expect(done, "no client reached \(Self.roundTrips) round trips")
        }
        // Each process gives up its thread after a millisecond of round trips, so the clients
        // advance together; starved ones stood still at a few round trips while two ran on.
        let seen = (0..<Self.clients).map { counts.value($0) }
        #expect(seen.allSatisfy { $0 >= Self.roundTrips / 20 }, "round trips per client: \(seen)")
    }

    /// One client: connect, then 64-byte round trips until told to stop.
    static func client(port: Int, index: Int, counts: Counters) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        sin.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return }
        var on: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0x42, count: 64)
        while !counts.stop.load(ordering: .acquiring) {
            guard write(fd, buffer, 64) == 64 else { return }
            var got = 0
            while got < 64 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, 64 - got) }
                if n > 0 {
                    got += n
                } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                    // Starved (or slow): look at the stop flag and wait on.
                    if counts.stop.load(ordering: .acquiring) { return }
                } else {
                    return
                }
            }
            counts.increment(index)
        }
    }
}

/// Round trips per client, and the stop flag.
final class Counters: Sendable {
    private let values: Mutex<[Int]>
    let stop = Atomic<Bool>(false)

    init(_ count: Int) { values = Mutex([Int](repeating: 0, count: count)) }

    func increment(_ i: Int) { values.withLock { $0[i] += 1 } }
    func value(_ i: Int) -> Int { values.withLock { $0[i] } }
    func maximum() -> Int { values.withLock { $0.max() ?? 0 } }
}

/// A joinable pthread running `body`.
private func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed (\(rc))")
    return thread
}
