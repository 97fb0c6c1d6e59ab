import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

/// Connects to an echo server and times one exchange of `message`; returns the echo and the
/// virtual time from the start of `connect` to the reply.
func timedEcho(_ net: SimNetwork, server: SimHost, client: SimHost, message: [UInt8] = Array("ping".utf8))
    async throws -> ([UInt8], UInt64)
{
    try await net.run {
        _ = try startEchoServer(net, on: server, port: 7)
        let start = net.now
        let c = try await Socket.connect("10.0.0.1", port: 7, options: passive, driver: .sim(net, host: client))
        try await c.send(message)
        let back = try await c.recv(message.count)
        return (back.bytes, net.now - start)
    }
}

func faultEvents(_ trace: [SimEvent]) -> [SimEvent.Fault] {
    trace.compactMap { if case .fault(let f) = $0.kind { return f } else { return nil } }
}

@Suite struct FaultTests {
    @Test func extraLatencySlowsEveryHop() async throws {
        let (net, server, client) = try makeNetwork { $0.faults = SimFaults(extraLatency: .milliseconds(10)) }
        let (back, elapsed) = try await timedEcho(net, server: server, client: client)
        #expect(back == Array("ping".utf8))
        #expect(elapsed == 4 * 11 * ms)
    }

    @Test func jitterDelaysDataSegmentsBySeed() async throws {
        var times: Set<UInt64> = []
        for seed in UInt64(1)...5 {
            let (net, server, client) = try makeNetwork(seed: seed) { $0.faults = SimFaults(jitter: .milliseconds(5)) }
            let message = pattern(10_000, seed: seed)
            let (back, elapsed) = try await timedEcho(net, server: server, client: client, message: message)
            #expect(back == message)
            // Jitter applies to data (one trip each way), never to the handshake.
            #expect(elapsed >= 4 * ms && elapsed <= 4 * ms + 2 * 5 * ms)
            times.insert(elapsed)
        }
        #expect(times.count > 1)
    }

    @Test(arguments: [1.0, 0.5])
    func refusedConnects(probability: Double) async throws {
        let (net, server, client) = try makeNetwork { $0.faults = SimFaults(refuseProbability: probability) }
        let outcomes = try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive + [.backlog(32)], driver: .sim(net, host: server))
            var outcomes: [Bool] = []
            for _ in 0..<20 {
                do throws(SocketError) {
                    _ = try await Socket.connect("10.0.0.1", port: 7, options: passive, driver: .sim(net, host: client))
                    outcomes.append(true)
                } catch {
                    #expect(error == SocketError(.connectionRefused))
                    outcomes.append(false)
                }
            }
            _ = listener
            return outcomes
        }
        let refused = outcomes.filter { !$0 }.count
        #expect(faultEvents(net.trace).filter { $0 == .refused }.count == refused)
        if probability == 1 {
            #expect(refused == 20)
        } else {
            #expect(refused > 0 && refused < 20)
        }
    }

    @Test(arguments: [10_000, 1, 64 * 1024])
    func resetAfterBytes(limit: Int) async throws {
        let (net, server, client) = try makeNetwork { $0.faults = SimFaults(resetAfterBytes: limit) }
        let serverSend = Shared<SocketError?>(nil)
        let (sum, end) = try await net.run {
            let listener = try ListenSocket.listen(port: 80, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                do throws(SocketError) {
                    try await s.send(pattern(200_000, seed: 5))
                } catch {
                    serverSend.value = error
                }
            }
            let c = try await Socket.connect(
                "10.0.0.1", port: 80, options: passive + [.showEconnreset(true)], driver: .sim(net, host: client))
            let result = await drain(c)
            await net.sleep(for: .milliseconds(10))
            return result
        }
        // The client reads exactly the bytes before the cut, then the reset.
        #expect(sum == Checksum.of(Array(pattern(200_000, seed: 5)[..<limit])))
        #expect(end == SocketError(.connectionReset))
        // The sender learns of it too.
        #expect(serverSend.value == SocketError.closed)
        #expect(faultEvents(net.trace) == [.reset(afterBytes: limit)])
    }

    @Test(arguments: [1.0, 0.01])
    func resetPerSegment(probability: Double) async throws {
        let size = 500_000
        let (net, server, client) = try makeNetwork(seed: 3) { $0.faults = SimFaults(resetProbability: probability) }
        let (sum, end, _) = try await download(
            net, server: server, client: client, size: size, clientOptions: passive + [.showEconnreset(true)])
        #expect(end == SocketError(.connectionReset))
        // What arrived is an unbroken prefix of what was sent.
        #expect(sum.count < size)
        #expect(sum == Checksum.of(Array(pattern(size, seed: 7)[..<sum.count])))
        if probability == 1 { #expect(sum.count == 0) } else { #expect(sum.count > 0) }
        let resets = faultEvents(net.trace)
        #expect(resets == [.reset(afterBytes: sum.count)])
    }

    @Test func shortWritesLoseNothing() async throws {
        let size = 300_000
        let (net, server, client) = try makeNetwork { $0.faults = SimFaults(shortWriteProbability: 1) }
        let (sum, end, _) = try await download(net, server: server, client: client, size: size)
        #expect(end == SocketError.closed)
        #expect(sum == Checksum.of(pattern(size, seed: 7)))
        let shorts = faultEvents(net.trace).compactMap { f -> (Int, Int)? in
            if case .shortWrite(let offered, let accepted) = f { return (offered, accepted) } else { return nil }
        }
        #expect(!shorts.isEmpty)
        #expect(shorts.allSatisfy { $0.1 >= 1 && $0.1 < $0.0 })
    }

    @Test func stallsHoldDelivery() async throws {
        let (net, server, client) = try makeNetwork {
            $0.faults = SimFaults(stallProbability: 1, stallDuration: .milliseconds(100))
        }
        let (back, elapsed) = try await timedEcho(net, server: server, client: client)
        #expect(back == Array("ping".utf8))
        // Request and reply each wait one stall.
        #expect(elapsed == 4 * ms + 2 * 100 * ms)
        #expect(faultEvents(net.trace) == [.stall(nanoseconds: 100 * ms), .stall(nanoseconds: 100 * ms)])
    }

    @Test func stallsKeepOrder() async throws {
        let size = 200_000
        let (net, server, client) = try makeNetwork(seed: 8) {
            $0.faults = SimFaults(jitter: .milliseconds(2), stallProbability: 0.1, stallDuration: .milliseconds(30))
        }
        let (sum, end, elapsed) = try await download(net, server: server, client: client, size: size)
        #expect(end == SocketError.closed)
        #expect(sum == Checksum.of(pattern(size, seed: 7)))
        let stalls = faultEvents(net.trace).count
        #expect(stalls > 0)
        // Without faults this takes 8 ms (4 round trips of a 64 KiB window); stalls cost more.
        #expect(elapsed > 8 * ms + 30 * ms)
    }

    @Test func faultsFollowTheirScope() async throws {
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let client = try net.addHost("client")
        let other = try net.addHost("other")
        net.setFaults(SimFaults(refuseProbability: 1), for: .port(server, 8))
        net.setFaults(SimFaults(refuseProbability: 1), for: .host(other))
        try await net.run {
            let driver = try SimDriver.sim(net, host: server)
            let l7 = try ListenSocket.listen(port: 7, driver: driver)
            let l8 = try ListenSocket.listen(port: 8, driver: driver)
            let lo = try ListenSocket.listen(port: 7, driver: .sim(net, host: other))
            _ = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
            await #expect(throws: SocketError(.connectionRefused)) {
                _ = try await Socket.connect("10.0.0.1", port: 8, options: passive, driver: .sim(net, host: client))
            }
            await #expect(throws: SocketError(.connectionRefused)) {
                _ = try await Socket.connect("other", port: 7, options: [.ipVersion(.ipv4Only)], driver: .sim(net, host: client))
            }
            // server:7 has no scope of its own and neither has `server`: the client host's applies.
            await #expect(throws: SocketError(.connectionRefused)) {
                _ = try await Socket.connect("10.0.0.1", port: 7, options: passive, driver: .sim(net, host: other))
            }
            net.setFaults(.none, for: .host(other))
            _ = try await Socket.connect("10.0.0.1", port: 7, options: passive, driver: .sim(net, host: other))
            _ = (l7, l8, lo)
        }
    }

    @Test func perHostReceiveWindow() async throws {
        // A small device with a 2 KiB window: at most 2 KiB is ever held for it.
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let device = try net.addHost("device", receiveWindow: 2048)
        let (sum, end, elapsed) = try await download(net, server: server, client: device, size: 64 * 1024)
        #expect(end == SocketError.closed)
        #expect(sum == Checksum.of(pattern(64 * 1024, seed: 7)))
        #expect(net.statistics.peakBufferedBytes <= 2048)
        // One 2 KiB window per 2 ms round trip: 32 round trips.
        #expect(elapsed == 32 * 2 * ms)
    }
}
