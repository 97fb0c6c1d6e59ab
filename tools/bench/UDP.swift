import CGenTCPShims
import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// gen_udp on the posix driver against plain blocking UDP sockets on 127.0.0.1 (`--udp`).
//
// Ping-pong: the client sends one datagram, a raw blocking echo thread returns it; repeat.
// One way: a sender moves `count` datagrams to a receiver, paced by credits so that a full kernel
// queue does not turn speed into loss: the receiver reports its count every `creditEvery`
// datagrams and the sender keeps at most `window` datagrams unacknowledged. GenTCP runs both ends
// (two processes), raw runs both ends (two threads); the same protocol on both sides.

enum UDPBench {
    /// Datagrams the sender may have in flight beyond the receiver's last credit.
    static let window = 1024
    /// The receiver reports its count after this many datagrams.
    static let creditEvery = 128
    /// Datagrams per `send(batch:)` / `receive(max:)` call.
    static let batch = 64
    /// The receive queue asked for on both ends (`recbuf`/`SO_RCVBUF`): 4 MiB, Linux's default
    /// `rmem_max` here (the kernel doubles it), so a window of 1,400 B datagrams fits.
    static let recbuf = 4 << 20
    /// How long a receiver waits for the next datagram before it counts the rest as lost.
    static let quietMilliseconds = 300
    /// The `buffer` of GenTCP's receivers: the largest datagram here is 1,400 B. (Left implicit,
    /// `recbuf` would raise it to 64 KiB, and every passive `recv` would allocate that much.)
    static let genTCPBuffer = 2048

    // MARK: Raw sockets

    /// A blocking UDP socket bound to 127.0.0.1 on an ephemeral port, with `SO_RCVBUF` of
    /// `recbuf` when given and a receive timeout of `timeoutMilliseconds` when given.
    static func rawSocket(recbuf: Int? = nil, timeoutMilliseconds: Int? = nil) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        check(fd >= 0, "socket(SOCK_DGRAM)")
        if let recbuf {
            var size = Int32(recbuf)
            check(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) == 0, "SO_RCVBUF")
        }
        if let timeoutMilliseconds { setTimeout(fd, milliseconds: timeoutMilliseconds) }
        var address = Raw.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        check(ok, "bind UDP on 127.0.0.1")
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// `SO_RCVTIMEO`: a blocking receive fails with `EAGAIN` after this long.
    static func setTimeout(_ fd: Int32, milliseconds: Int) {
        var t = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        check(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size)) == 0, "SO_RCVTIMEO")
    }

    /// `connect(2)` to 127.0.0.1:port.
    static func rawConnect(_ fd: Int32, port: Int) {
        var address = Raw.loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        check(rc == 0, "connect UDP to 127.0.0.1:\(port)")
    }

    /// One datagram into `buffer`; its length, or -1 after the receive timeout.
    @inline(__always)
    static func rawReceive(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ capacity: Int, flags: Int32 = 0) -> Int {
        while true {
            let n = recv(fd, buffer, capacity, flags)
            if n >= 0 { return n }
            let e = cgentcp_errno()
            if e == EAGAIN || e == EWOULDBLOCK { return -1 }
            if e != EINTR { check(false, "recv(UDP)") }
        }
    }

    /// One datagram on a connected socket.
    @inline(__always)
    static func rawSend(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) {
        while true {
            if send(fd, buffer, count, 0) == count { return }
            if cgentcp_errno() != EINTR { check(false, "send(UDP)") }
        }
    }

    /// The echo peer of the ping-pong: a blocking thread that returns every datagram to its
    /// sender, until an empty datagram (or 5 s of silence).
    static func echoPeer() -> (thread: RawThread, port: Int) {
        let (fd, port) = rawSocket(timeoutMilliseconds: 5000)
        let thread = RawThread {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 64)
            defer {
                buffer.deallocate()
                close(fd)
            }
            var from = sockaddr_storage()
            while true {
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer, 65536, 0, $0, &length) }
                }
                if n < 0 && cgentcp_errno() == EINTR { continue }
                if n <= 0 { return }
                _ = withUnsafePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer, n, 0, $0, length) }
                }
            }
        }
        return (thread, port)
    }

    // MARK: Ping-pong

    /// How a GenTCP ping-pong client waits for the echo.
    enum Client: Sendable {
        /// `recv(timeout:)` on a passive socket.
        case passive
        /// `{active, true}`: `.udp` messages through `Process.receive`.
        case active
        /// `{active, once}` set again before each wait, as the TCP ping-pong does.
        case activeOnce
    }

    /// GenTCP client: a socket connected to the raw echo peer, `send` then `recv` (or a message).
    static func genTCPPingPong(_ client: Client, size: Int, roundTrips: Int, driver: POSIXDriver) async throws -> Sample {
        let (peer, port) = echoPeer()
        defer { peer.join() }
        return try await Process.run {
            let socket = try await UDPSocket.open(
                options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { socket.close() }
            try await socket.connect(.address(.loopbackV4), port: port)
            if client == .active { try socket.setopts([.active(.active)]) }
            let message = [UInt8](repeating: 0x42, count: size)
            let start = Snapshot.now()
            for _ in 0..<roundTrips {
                try await socket.send(message)
                switch client {
                case .passive:
                    let back = try await socket.recv(timeout: 2000)
                    precondition(back.payload.count == size, "gentcp-bench: short echo")
                case .active, .activeOnce:
                    if client == .activeOnce { try socket.setopts([.active(.once)]) }
                    guard case .udp(_, let back)? = try await Process.receive(timeout: 2000, where: { if case .udp = $0 { true } else { false } }) else {
                        fatalError("gentcp-bench: no echo within 2 s (or an unexpected message)")
                    }
                    precondition(back.payload.count == size, "gentcp-bench: short echo")
                }
            }
            var sample = Snapshot.now() - start
            sample.deliveries = roundTrips
            try await socket.send([])  // ends the echo peer
            return sample
        }
    }

    /// The reference: blocking `send` then `recv` on a connected socket, on this thread.
    static func rawPingPong(size: Int, roundTrips: Int) -> Sample {
        let (peer, port) = echoPeer()
        let (fd, _) = rawSocket(timeoutMilliseconds: 2000)
        rawConnect(fd, port: port)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 64)
        memset(buffer, 0x42, size)
        defer {
            buffer.deallocate()
            close(fd)
            peer.join()
        }
        let start = Snapshot.now()
        for _ in 0..<roundTrips {
            rawSend(fd, buffer, size)
            check(rawReceive(fd, buffer, 65536) == size, "ping-pong echo of \(size) B within 2 s")
        }
        var sample = Snapshot.now() - start
        sample.deliveries = roundTrips
        rawSend(fd, buffer, 0)
        return sample
    }

    // MARK: One way

    /// What a receiver counted: datagrams and the monotonic time of the last.
    struct Arrivals: Sendable {
        var received = 0
        var last: UInt64 = 0
        var calls = 0
    }

    /// A credit: the receiver's count, little-endian.
    static func credit(_ count: Int) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: UInt64(count) >> (8 * UInt64($0))) }
    }

    static func creditValue(_ bytes: some Collection<UInt8>) -> Int {
        var v: UInt64 = 0
        for (i, b) in bytes.prefix(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return Int(v)
    }

    /// GenTCP at both ends: a receiver process (passive `recv`, or `receive(max:)` with a `recv`
    /// when nothing is queued) and a sender process (`send` per datagram, or `send(batch:)`).
    /// Timed from just before the sender starts to the last datagram's arrival.
    static func genTCPOneWay(count: Int, size: Int, batched: Bool, driver: POSIXDriver) async throws -> Sample {
        try await Process.run {
            let receiver = try await UDPSocket.open(
                options: [.binary, .active(.passive), .localAddress(.loopbackV4), .recbuf(recbuf), .buffer(genTCPBuffer)],
                driver: driver)
            defer { receiver.close() }
            let sender = try await UDPSocket.open(
                options: [.binary, .active(.passive), .localAddress(.loopbackV4), .recbuf(recbuf), .sndbuf(recbuf)],
                driver: driver)
            defer { sender.close() }
            try await sender.connect(.address(.loopbackV4), port: try receiver.port())
            let result = Mutex(Arrivals())
            let receiving = Process.spawn {
                let final = try await receiveAll(on: receiver, count: count, batched: batched)
                result.withLock { $0 = final }
            }
            let start = Snapshot.now()
            let stalls = try await sendAll(on: sender, count: count, size: size, batched: batched)
            let reason = await receiving.waitForExit()
            precondition(reason == .normal, "gentcp-bench: the GenTCP receiver failed: \(reason)")
            let a = result.withLock { $0 }
            var sample = Snapshot.now() - start
            if a.received > 0 { sample.seconds = Double(a.last &- start.wall) / 1e9 }
            sample.deliveries = a.received
            sample.lost = count - a.received
            sample.stalls = stalls
            return sample
        }
    }

    /// The GenTCP receiver: up to `count` datagrams, a credit to the sender every `creditEvery`;
    /// stops early after `quietMilliseconds` without a datagram.
    private static func receiveAll(on socket: UDPSocket, count: Int, batched: Bool) async throws -> Arrivals {
        var a = Arrivals()
        var sinceCredit = 0
        var replyTo: SocketAddress?
        while a.received < count {
            var got: [Datagram] = []
            if batched {
                got = try socket.receive(max: batch)
                a.calls += 1
            }
            if got.isEmpty {
                guard let one = try await waitForOne(on: socket) else { break }
                got = [one]
                a.calls += 1
            }
            a.received += got.count
            sinceCredit += got.count
            replyTo = got[got.count - 1].source
            a.last = Snapshot.clock()
            if sinceCredit >= creditEvery, let replyTo {
                sinceCredit = 0
                try await socket.send(credit(a.received), to: replyTo)
            }
        }
        return a
    }

    /// A passive `recv` of one datagram; nil after `quietMilliseconds` without one.
    private static func waitForOne(on socket: UDPSocket) async throws -> Datagram? {
        do {
            return try await socket.recv(timeout: .milliseconds(quietMilliseconds))
        } catch where error.reason == .timeout {
            return nil
        }
    }

    /// The credits that came: the largest count among them, or nil after `quietMilliseconds`.
    private static func waitForCredit(on socket: UDPSocket) async throws -> Int? {
        guard let first = try await waitForOne(on: socket) else { return nil }
        var best = creditValue(first.payload.bytes)
        for d in try socket.receive(max: 16) { best = max(best, creditValue(d.payload.bytes)) }
        return best
    }

    /// The GenTCP sender: `count` datagrams of `size` bytes within the credit window; returns how
    /// often a credit did not come within the quiet time (the window then reopens).
    private static func sendAll(on socket: UDPSocket, count: Int, size: Int, batched: Bool) async throws -> Int {
        let message = [UInt8](repeating: 0x5A, count: size)
        let full = [OutgoingDatagram](repeating: OutgoingDatagram(message), count: batch)
        var sent = 0, credited = 0, stalls = 0
        while sent < count {
            if sent - credited >= window {
                if let c = try await waitForCredit(on: socket) {
                    credited = max(credited, c)
                } else {
                    stalls += 1
                    credited = sent
                }
                continue
            }
            if batched {
                let n = min(batch, count - sent, window - (sent - credited))
                let went = try socket.send(batch: n == batch ? full : Array(full[0..<n]))
                if went > 0 {
                    sent += went
                } else {
                    try await socket.send(message)  // waits for room
                    sent += 1
                }
            } else {
                try await socket.send(message)
                sent += 1
            }
        }
        return stalls
    }

    /// The reference: a raw blocking receiver thread and a raw blocking sender on this thread,
    /// the same credits; `recv`/`send` (on connected sockets) one datagram per call.
    static func rawOneWay(count: Int, size: Int) -> Sample {
        let (rfd, rport) = rawSocket(recbuf: recbuf, timeoutMilliseconds: quietMilliseconds)
        let (sfd, sport) = rawSocket(recbuf: recbuf, timeoutMilliseconds: quietMilliseconds)
        var sndbuf = Int32(recbuf)
        _ = setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, socklen_t(MemoryLayout<Int32>.size))
        rawConnect(sfd, port: rport)
        rawConnect(rfd, port: sport)
        let result = Mutex(Arrivals())
        let receiver = RawThread {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: genTCPBuffer, alignment: 64)
            defer { buffer.deallocate() }
            var a = Arrivals()
            var sinceCredit = 0
            while a.received < count {
                guard rawReceive(rfd, buffer, genTCPBuffer) >= 0 else { break }
                a.calls += 1
                a.received += 1
                a.last = Snapshot.clock()
                sinceCredit += 1
                if sinceCredit >= creditEvery {
                    sinceCredit = 0
                    let c = credit(a.received)
                    c.withUnsafeBytes { rawSend(rfd, $0.baseAddress!, 8) }
                }
            }
            let final = a
            result.withLock { $0 = final }
        }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 64), alignment: 64)
        memset(buffer, 0x5A, size)
        let start = Snapshot.now()
        var sent = 0, credited = 0, stalls = 0
        while sent < count {
            if sent - credited >= window {
                if rawReceive(sfd, buffer, 64) == 8 {
                    credited = max(credited, creditValue(UnsafeRawBufferPointer(start: buffer, count: 8)))
                    while rawReceive(sfd, buffer, 64, flags: Int32(MSG_DONTWAIT)) == 8 {
                        credited = max(credited, creditValue(UnsafeRawBufferPointer(start: buffer, count: 8)))
                    }
                } else {
                    stalls += 1
                    credited = sent
                }
                memset(buffer, 0x5A, size)
                continue
            }
            rawSend(sfd, buffer, size)
            sent += 1
        }
        receiver.join()
        buffer.deallocate()
        close(sfd)
        close(rfd)
        let a = result.withLock { $0 }
        var sample = Snapshot.now() - start
        if a.received > 0 { sample.seconds = Double(a.last &- start.wall) / 1e9 }
        sample.deliveries = a.received
        sample.lost = count - a.received
        sample.stalls = stalls
        return sample
    }
}

/// The `--udp` cases: ping-pong 64 B and 1,400 B (passive and active against raw), one-way
/// 64 B and 1,400 B (one datagram per call, and batches, against raw one per call).
func udpCases(datagrams: Int, roundTrips: Int) -> [Case] {
    var cases: [Case] = []
    for size in [64, 1400] {
        for client in [UDPBench.Client.passive, .active, .activeOnce] {
            let how = client == .passive ? "passive recv" : client == .active ? "{active,true}" : "{active,once}"
            let short = client == .passive ? "passive" : client == .active ? "active" : "once"
            cases.append(Case(
                name: "udp-pingpong-\(short)-\(size)",
                title: "udp ping-pong \(size) B, \(how)", reference: "raw send+recv",
                work: .roundTrips(roundTrips), goal: 0.9,
                genTCP: { try await UDPBench.genTCPPingPong(client, size: size, roundTrips: roundTrips, driver: $0) },
                raw: { UDPBench.rawPingPong(size: size, roundTrips: roundTrips) }))
        }
    }
    for size in [64, 1400] {
        cases.append(Case(
            name: "udp-oneway-\(size)", title: "udp one way \(size) B, send/recv", reference: "raw send/recv",
            work: .datagrams(datagrams), goal: 0.9,
            genTCP: { try await UDPBench.genTCPOneWay(count: datagrams, size: size, batched: false, driver: $0) },
            raw: { UDPBench.rawOneWay(count: datagrams, size: size) }))
        cases.append(Case(
            name: "udp-batch-\(size)", title: "udp one way \(size) B, batches of \(UDPBench.batch)",
            reference: "raw send/recv", work: .datagrams(datagrams), goal: 1.0,
            genTCP: { try await UDPBench.genTCPOneWay(count: datagrams, size: size, batched: true, driver: $0) },
            raw: { UDPBench.rawOneWay(count: datagrams, size: size) }))
    }
    return cases
}
