import CGenTCPShims
import GenTCP
import GenTCPCore
@testable import GenTCPPOSIX
import Synchronization
import Testing

/// The posix datagram endpoint below the port layer: what the port layer cannot show (the
/// `SO_RXQ_OVFL` count riding on a datagram, the send side of an ICMP error, a batch's end).
@Suite("POSIX UDP endpoint")
struct POSIXUDPEndpointTests {
    /// Records readiness calls and lets a test wait for the next read readiness.
    final class Readiness: DatagramDelegate {
        private let stream: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation
        let writable = Atomic<Int>(0)

        init() { (stream, continuation) = AsyncStream.makeStream(of: Void.self) }

        func datagramReadable() { continuation.yield() }
        func datagramWritable() { writable.add(1, ordering: .relaxed) }

        /// Arms `endpoint` and waits (at most `seconds`) for its read readiness.
        func waitReadable(_ endpoint: any DatagramEndpoint, seconds: Int = 10) async -> Bool {
            endpoint.armReceive()
            return await withTaskGroup(of: Bool.self) { group in
                group.addTask { [stream] in
                    for await _ in stream { return true }
                    return false
                }
                group.addTask {
                    try? await Task.sleep(for: .seconds(seconds))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
        }
    }

    static func endpoint(_ options: [Option] = [], delegate: any DatagramDelegate) async throws -> POSIXDatagramEndpoint {
        let settled = try DatagramOptions(open: [.localAddress(.loopbackV4)] + options)
        let e = try await POSIXDriver.shared.openDatagram(on: settled.bindAddress, options: settled, delegate: delegate)
        return try #require(e as? POSIXDatagramEndpoint)
    }

    /// Takes one datagram, waiting for readiness while there is none.
    static func take(_ e: POSIXDatagramEndpoint, _ readiness: Readiness) async -> DatagramReceiveResult {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let r = buffer.withUnsafeMutableBytes { e.receive(into: $0) }
            if r != .wouldBlock { return r }
            guard await readiness.waitReadable(e) else { return .wouldBlock }
        }
    }

    static func send(_ e: POSIXDatagramEndpoint, _ bytes: [UInt8], to: SocketAddress?) -> DatagramSendResult {
        bytes.withUnsafeBytes { e.send([$0], to: to) }
    }

    @Test("the kernel's drop count rides on the next datagram (SO_RXQ_OVFL)")
    func dropCountControlMessage() async throws {
        let rx = Readiness()
        let receiver = try await Self.endpoint([.recbuf(4096)], delegate: rx)
        let sender = try await Self.endpoint(delegate: Readiness())
        let to = try #require(receiver.localAddress())
        for _ in 0..<300 { #expect(Self.send(sender, [UInt8](repeating: 7, count: 200), to: to) == .sent) }
        // Drain what fit, then one more datagram carries the count of what did not.
        var buffer = [UInt8](repeating: 0, count: 2048)
        while case .datagram = buffer.withUnsafeMutableBytes({ receiver.receive(into: $0) }) {}
        let kernel = cgentcp_socket_drops(receiver.fd)
        #expect(kernel > 0)
        #expect(Self.send(sender, [1], to: to) == .sent)
        guard case .datagram(1, 1, let source) = await Self.take(receiver, rx) else {
            Issue.record("the datagram after the flood did not come")
            return
        }
        #expect(source == sender.localAddress())
        #expect(UInt64(receiver.reportedDrops.load(ordering: .relaxed)) == UInt64(kernel))
        #expect(receiver.droppedDatagramCount == UInt64(kernel))
        receiver.close()
        sender.close()
    }

    @Test("ICMP port unreachable fails one send with econnrefused; the next goes")
    func refusedOnceOnSend() async throws {
        let probe = try await Self.endpoint(delegate: Readiness())
        let dead = try #require(probe.localAddress())
        probe.close()
        let readiness = Readiness()
        let e = try await Self.endpoint(delegate: readiness)
        try await e.connect(to: dead)
        // The pending error wakes the reader (EPOLLERR). Linux rate-limits ICMP errors, so on a
        // busy run a datagram may draw none: send again until one does.
        var woke = false
        for _ in 0..<20 where !woke {
            #expect(Self.send(e, [1, 2, 3], to: nil) == .sent)
            woke = await readiness.waitReadable(e, seconds: 1)
        }
        #expect(woke)
        #expect(Self.send(e, [4], to: nil) == .failed(.connectionRefused))
        #expect(Self.send(e, [5], to: nil) == .sent)
        e.close()
    }

    @Test("a batch receive stops with wouldBlock when the queue runs dry")
    func batchEnd() async throws {
        let rx = Readiness()
        let receiver = try await Self.endpoint(delegate: rx)
        let sender = try await Self.endpoint(delegate: Readiness())
        let to = try #require(receiver.localAddress())
        let (sent, end) = sender.send(batch: (0..<3).map { OutgoingDatagram([UInt8($0)], to: to) })
        #expect(sent == 3 && end == nil)
        #expect(await rx.waitReadable(receiver))
        var got: [ReceivedDatagram] = []
        var last: DatagramReceiveResult?
        while got.count < 3 {
            let (some, stop) = receiver.receive(upTo: 100, bufferSize: 16)
            got += some
            last = stop
            if got.count < 3 { #expect(await rx.waitReadable(receiver)) }
        }
        #expect(got.map(\.bytes) == [[0], [1], [2]])
        #expect(last == .wouldBlock)
        #expect(receiver.sendPermit() > 0)
        receiver.close()
        sender.close()
        #expect(receiver.receive(upTo: 4, bufferSize: 16).end == .failed(.closed))
    }

    // MARK: The syscall funnel

    /// Forces the errors loopback rarely produces on the datagram calls of the funnel.
    final class Faults: Sendable {
        struct State {
            /// The next this-many receives fail with EINTR first.
            var receiveInterrupts = 0
            /// The next this-many sends fail with EINTR first.
            var sendInterrupts = 0
            /// The next this-many sends fail with EAGAIN although the kernel has room.
            var sendAgain = 0
            /// The next send fails with this errno (0: none).
            var sendErrno: Int32 = 0
            // What happened.
            var forced = 0
        }
        let state = Mutex(State())

        func with<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }

        /// Takes one forced errno, if the state asks for one.
        private func take(_ pick: (inout State) -> Int32?) -> Int32? {
            with { s in
                guard let e = pick(&s) else { return nil }
                s.forced += 1
                return e
            }
        }

        var driver: POSIXDriver {
            var calls = Syscalls.system
            let real = Syscalls.system
            calls.receiveDatagram = { [self] fd, buffer, capacity, source, drops in
                let forced = take { s in
                    guard s.receiveInterrupts > 0 else { return nil }
                    s.receiveInterrupts -= 1
                    return EINTR
                }
                if let forced {
                    cgentcp_set_errno(forced)
                    return -1
                }
                return real.receiveDatagram(fd, buffer, capacity, source, drops)
            }
            calls.sendDatagram = { [self] fd, iov, count, destination, length in
                let forced = take { s in
                    if s.sendInterrupts > 0 { s.sendInterrupts -= 1; return EINTR }
                    if s.sendAgain > 0 { s.sendAgain -= 1; return EAGAIN }
                    if s.sendErrno != 0 { defer { s.sendErrno = 0 }; return s.sendErrno }
                    return nil
                }
                if let forced {
                    cgentcp_set_errno(forced)
                    return -1
                }
                return real.sendDatagram(fd, iov, count, destination, length)
            }
            return POSIXDriver(syscalls: calls)
        }
    }

    static func open(_ driver: POSIXDriver) async throws -> UDPSocket {
        try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
    }

    @Test("EINTR is retried on receive and on send")
    func interruptedCalls() async throws {
        try await Process.run {
            let faults = Faults()
            faults.with {
                $0.receiveInterrupts = 2
                $0.sendInterrupts = 2
            }
            let a = try await Self.open(faults.driver)
            let b = try await Self.open(faults.driver)
            try await a.send(bytes("through"), to: try b.sockname())
            #expect(try await b.recv(timeout: 5000).payload == bin("through"))
            #expect(faults.with { $0.forced } == 4)
            a.close()
            b.close()
        }
    }

    @Test("EAGAIN on send: the sender waits for write readiness, then the datagram goes")
    func sendWouldBlock() async throws {
        try await Process.run {
            let faults = Faults()
            faults.with { $0.sendAgain = 1 }
            let a = try await Self.open(faults.driver)
            let b = try await Self.open(faults.driver)
            try await a.send(bytes("later"), to: try b.sockname())
            #expect(faults.with { $0.forced } == 1)
            #expect(try await b.recv(timeout: 5000).payload == bin("later"))
            #expect(try a.getstat().sendCnt == 1)
            a.close()
            b.close()
        }
    }

    @Test("kernel errors on send are the call's and leave the socket usable", arguments: [
        (EMSGSIZE, SocketError.Reason.messageTooLong), (EACCES, .permissionDenied),
        (ENETUNREACH, .networkUnreachable), (ENOBUFS, .noBufferSpace),
    ])
    func sendErrors(errno code: Int32, reason: SocketError.Reason) async throws {
        try await Process.run {
            let faults = Faults()
            faults.with { $0.sendErrno = code }
            let a = try await Self.open(faults.driver)
            let b = try await Self.open(faults.driver)
            await #expect(throws: SocketError(reason)) { try await a.send(bytes("no"), to: try b.sockname()) }
            try await a.send(bytes("yes"), to: try b.sockname())
            #expect(try await b.recv(timeout: 5000).payload == bin("yes"))
            #expect(try a.getstat().sendCnt == 1)
            a.close()
            b.close()
        }
    }
}
