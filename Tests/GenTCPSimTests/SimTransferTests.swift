import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

/// The server sends `size` pattern bytes and closes; the client connects and reads to the end.
/// Returns what the client read, how the stream ended, and the virtual time from the start of
/// `connect` to the end of the stream.
func download(
    _ net: SimNetwork, server: SimHost, client: SimHost, size: Int, seed: UInt64 = 7,
    clientOptions: [Option] = passive + [.buffer(16384)]
) async throws -> (sum: Checksum, end: SocketError, elapsed: UInt64) {
    try await net.run {
        let listener = try ListenSocket.listen(port: 80, options: passive, driver: .sim(net, host: server))
        net.spawn {
            let s = try await listener.accept()
            try? await s.send(pattern(size, seed: seed))
            s.close()
        }
        let start = net.now
        let c = try await Socket.connect("server", port: 80, options: clientOptions, driver: .sim(net, host: client))
        let (sum, end) = await drain(c)
        return (sum, end, net.now - start)
    }
}

@Suite struct TransferTests {
    struct Line: Sendable, CustomTestStringConvertible {
        var latency: Duration
        var bytesPerSecond: Int?
        var testDescription: String { "\(latency), \(bytesPerSecond.map { "\($0) B/s" } ?? "no rate limit")" }
    }

    @Test(arguments: [
        Line(latency: .milliseconds(1)),
        Line(latency: .milliseconds(20)),
        Line(latency: .milliseconds(5), bytesPerSecond: 1_000_000),
        Line(latency: .zero, bytesPerSecond: 11_520),  // a 115200-baud serial line
    ])
    func oneMebibyteArrivesIntactAndOnTime(line: Line) async throws {
        let size = 1 << 20
        let (net, server, client) = try makeNetwork { $0.link = SimLink(latency: line.latency, bytesPerSecond: line.bytesPerSecond) }
        let (sum, end, elapsed) = try await download(net, server: server, client: client, size: size)
        #expect(end == SocketError.closed)
        #expect(sum == Checksum.of(pattern(size, seed: 7)))

        let latency = UInt64(line.latency.components.seconds) * 1_000_000_000
            + UInt64(line.latency.components.attoseconds / 1_000_000_000)
        if let rate = line.bytesPerSecond {
            // The line is the bottleneck (its bandwidth-delay product is far below the window):
            // a handshake round trip, then every byte serialised back to back, plus the rounding
            // of each segment's time to whole nanoseconds.
            let serialisation = UInt64(size) * 1_000_000_000 / UInt64(rate)
            let expected = 2 * latency + serialisation
            #expect(elapsed >= expected)
            #expect(elapsed <= expected + 2_000)
        } else {
            // The 64 KiB window is the bottleneck: one window per round trip, 16 round trips.
            #expect(elapsed == UInt64(size / (64 * 1024)) * 2 * latency)
        }
        #expect(net.statistics.bytesDelivered == size)
    }

    @Test func activeModeDeliversEveryByte() async throws {
        let size = 256 * 1024
        let (net, server, client) = try makeNetwork()
        let sum = try await net.run {
            let listener = try ListenSocket.listen(port: 80, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                try await s.send(pattern(size, seed: 3))
                s.close()
            }
            let c = try await Socket.connect("server", port: 80, options: [.binary, .active(.once)], driver: .sim(net, host: client))
            var sum = Checksum()
            loop: while let m = try await Process.receive(timeout: 1000) {
                switch m {
                case .tcp(_, let p):
                    sum.add(p.bytes)
                    try c.setopts(.active(.once))
                case .tcpClosed: break loop
                default: Issue.record("unexpected \(m)")
                }
            }
            return sum
        }
        #expect(sum == Checksum.of(pattern(size, seed: 3)))
    }

    @Test(arguments: [64 * 1024, 4 * 1024])
    func aSenderToAPeerThatNeverReadsBlocks(window: Int) async throws {
        let (net, server, client) = try makeNetwork { $0.receiveWindow = window }
        let chunk = 8 * 1024
        let (completed, failure, received, buffered) = try await net.run { () -> (Int, SocketError?, Int, SimStatistics) in
            let listener = try ListenSocket.listen(port: 80, options: passive, driver: .sim(net, host: server))
            let c = try await Socket.connect(
                "server", port: 80, options: passive + [.sendTimeout(1000)], driver: .sim(net, host: client))
            let s = try await listener.accept()
            // Try to push 100 MB at a socket nobody reads.
            var completed = 0
            var failure: SocketError?
            let bytes = [UInt8](repeating: 0x5A, count: chunk)
            while completed < 100_000_000 {
                do throws(SocketError) {
                    try await c.send(bytes)
                    completed += chunk
                } catch {
                    failure = error
                    break
                }
            }
            let buffered = net.statistics
            // Now read what the network let through: exactly one window.
            var received = 0
            while let data = try? await s.recv(0, timeout: 0) { received += data.count }
            return (completed, failure, received, buffered)
        }
        #expect(failure == SocketError.timeout)  // no progress for the send timeout
        #expect(completed <= window)
        #expect(received == window)
        #expect(buffered.bufferedBytes == window)
        #expect(buffered.peakBufferedBytes <= window)
    }
}

@Suite struct DeterminismTests {
    static let faults = SimFaults(
        jitter: .milliseconds(3), resetProbability: 0.002, shortWriteProbability: 0.3,
        stallProbability: 0.02, stallDuration: .milliseconds(50))

    func faultyRun(seed: UInt64) async throws -> ([SimEvent], Checksum, SocketError) {
        let (net, server, client) = try makeNetwork(seed: seed) { $0.faults = DeterminismTests.faults }
        let (sum, end, _) = try await download(
            net, server: server, client: client, size: 256 * 1024,
            clientOptions: passive + [.buffer(16384), .showEconnreset(true)])
        return (net.trace, sum, end)
    }

    @Test func sameSeedSameTraceOtherSeedOtherTrace() async throws {
        let (a, sumA, endA) = try await faultyRun(seed: 11)
        let (b, sumB, endB) = try await faultyRun(seed: 11)
        let (c, _, _) = try await faultyRun(seed: 12)
        #expect(a == b)
        #expect(sumA == sumB)
        #expect(endA == endB)
        #expect(a != c)
        // The faults did something.
        #expect(a.contains { if case .fault = $0.kind { return true } else { return false } })
    }

    @Test func withoutFaultsTheSeedDoesNotMatter() async throws {
        func run(_ seed: UInt64) async throws -> [SimEvent] {
            let (net, server, client) = try makeNetwork(seed: seed)
            _ = try await download(net, server: server, client: client, size: 100_000)
            return net.trace
        }
        #expect(try await run(1) == run(2))
    }
}
