import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

@Suite struct ConnectionTests {
    /// How the client names the server, which host it connects from, and its options.
    struct Route: Sendable, CustomTestStringConvertible {
        var target: Host
        var fromServer = false
        var options: [Option] = []
        var testDescription: String { "\(target)\(fromServer ? " (same host)" : "")" }
    }

    @Test(arguments: [
        Route(target: "server"),
        Route(target: "10.0.0.1"),
        Route(target: "fd00::1"),
        Route(target: "server", options: [.ipVersion(.ipv6Preferred)]),
        Route(target: "localhost", fromServer: true),
        Route(target: "::1", fromServer: true),
    ])
    func echo(route: Route) async throws {
        let (net, server, client) = try makeNetwork()
        let elapsed = try await net.run {
            let listener = try ListenSocket.listen(
                port: 7, options: passive + [.localAddress(.anyV6)], driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                while let data = try? await s.recv(0) { try await s.send(data.bytes) }
                s.close()
            }
            let start = net.now
            let from = route.fromServer ? server : client
            let c = try await Socket.connect(route.target, port: 7, options: passive + route.options, driver: .sim(net, host: from))
            try await c.send("hello, ")
            try await c.send(chunks: [Array("simulated ".utf8), Array("world".utf8)])
            let back = try await c.recv(22)
            #expect(back == .binary(Array("hello, simulated world".utf8)))
            c.close()
            return net.now - start
        }
        // One round trip for the handshake, one for request and reply.
        #expect(elapsed == 4 * ms)
    }

    @Test func activeEcho() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            _ = try startEchoServer(net, on: server, port: 7)
            let c = try await Socket.connect("server", port: 7, options: [.binary], driver: .sim(net, host: client))
            try await c.send("ping")
            let m = try await Process.receive(timeout: 1000)
            guard case .tcp(let s, let data)? = m else {
                Issue.record("expected data, got \(String(describing: m))")
                return
            }
            #expect(s == c)
            #expect(data == .binary(Array("ping".utf8)))
            try c.shutdown(.write)
            let end = try await Process.receive(timeout: 1000)
            guard case .tcpClosed(let s2)? = end else {
                Issue.record("expected tcp_closed, got \(String(describing: end))")
                return
            }
            #expect(s2 == c)
        }
    }

    @Test func addressesOfBothEnds() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 0, options: passive, driver: .sim(net, host: server))
            // Ephemeral ports come in order from 49152, per host.
            #expect(try listener.port() == 49152)
            #expect(try listener.sockname() == SocketAddress(.anyV4, port: 49152))
            let c1 = try await Socket.connect("server", port: 49152, options: passive, driver: .sim(net, host: client))
            let c2 = try await Socket.connect("10.0.0.1", port: 49152, options: passive, driver: .sim(net, host: client))
            let s1 = try await listener.accept(timeout: 0)
            let s2 = try await listener.accept(timeout: 0)
            let serverAddress = SocketAddress(IPAddress(10, 0, 0, 1), port: 49152)
            #expect(try c1.sockname() == SocketAddress(IPAddress(10, 0, 0, 2), port: 49152))
            #expect(try c2.sockname() == SocketAddress(IPAddress(10, 0, 0, 2), port: 49153))
            #expect(try c1.peername() == serverAddress)
            #expect(try c2.peername() == serverAddress)
            #expect(try s1.sockname() == serverAddress)
            #expect(try s1.peername() == c1.sockname())
            #expect(try s2.peername() == c2.sockname())
            // An explicit local port is honoured.
            let c3 = try await Socket.connect(
                "server", port: 49152, options: passive + [.localPort(4000)], driver: .sim(net, host: client))
            #expect(try c3.port() == 4000)
        }
    }

    @Test func addressInUse() async throws {
        let (net, server, _) = try makeNetwork()
        try await net.run {
            let driver = try SimDriver.sim(net, host: server)
            let first = try ListenSocket.listen(port: 80, driver: driver)
            #expect(throws: SocketError(.addressInUse)) { try ListenSocket.listen(port: 80, driver: driver) }
            #expect(throws: SocketError(.addressInUse)) {
                try ListenSocket.listen(port: 80, options: [.reuseaddr(true)], driver: driver)
            }
            // A specific address under the wildcard clashes too; another port or host does not.
            #expect(throws: SocketError(.addressInUse)) {
                try ListenSocket.listen(port: 80, options: [.localAddress(IPAddress(10, 0, 0, 1))], driver: driver)
            }
            _ = try ListenSocket.listen(port: 81, driver: driver)
            // An address the host does not have.
            #expect(throws: SocketError(.addressNotAvailable)) {
                try ListenSocket.listen(port: 82, options: [.localAddress(IPAddress(10, 0, 0, 2))], driver: driver)
            }
            // Once closed, the port is free again.
            first.close()
            _ = try ListenSocket.listen(port: 80, driver: driver)
        }
    }

    /// Connects from the client with no listener behind the target; returns the error and the time.
    func refusedConnect(
        to target: Host, port: Int, listen: @escaping @Sendable (SimNetwork, SimHost) throws -> Void
    ) async throws -> (SocketError?, UInt64) {
        let (net, server, client) = try makeNetwork()
        return try await net.run {
            try listen(net, server)
            let start = net.now
            do throws(SocketError) {
                _ = try await Socket.connect(target, port: port, options: passive, driver: .sim(net, host: client))
                return (nil, net.now - start)
            } catch {
                return (error, net.now - start)
            }
        }
    }

    @Test func refusedWhenNobodyListens() async throws {
        let (error, elapsed) = try await refusedConnect(to: "10.0.0.1", port: 9) { _, _ in }
        #expect(error == SocketError(.connectionRefused))
        #expect(elapsed == 2 * ms)  // the SYN's round trip
        // By name, both of the server's addresses are tried in turn (IPv4 first), each refused.
        let (error2, elapsed2) = try await refusedConnect(to: "server", port: 9) { _, _ in }
        #expect(error2 == SocketError(.connectionRefused))
        #expect(elapsed2 == 4 * ms)
    }

    @Test func refusedOnPortZero() async throws {
        let (error, _) = try await refusedConnect(to: "server", port: 0) { _, _ in }
        #expect(error == SocketError(.connectionRefused))
    }

    @Test func refusedByAnIPv6OnlyListener() async throws {
        let (error, elapsed) = try await refusedConnect(to: "10.0.0.1", port: 7) { net, server in
            let l = try ListenSocket.listen(port: 7, options: [.localAddress(server.ipv6!)], driver: .sim(net, host: server))
            net.spawn { _ = try? await l.accept(timeout: 100) }
        }
        #expect(error == SocketError(.connectionRefused))
        #expect(elapsed == 2 * ms)
    }

    @Test func unknownNameIsNxdomain() async throws {
        let (net, _, client) = try makeNetwork()
        try await net.run { () async throws -> Void in
            await #expect(throws: SocketError(.nonExistentDomain)) {
                _ = try await Socket.connect("nowhere", port: 80, driver: .sim(net, host: client))
            }
        }
    }

    @Test func missingFamilyIsNxdomain() async throws {
        let net = try SimNetwork(seed: 1)
        let v4 = try net.addHost("v4only", addresses: [IPAddress(192, 0, 2, 1)])
        let client = try net.addHost("client")
        try await net.run { () async throws -> Void in
            await #expect(throws: SocketError(.nonExistentDomain)) {
                _ = try await Socket.connect(
                    "v4only", port: 80, options: [.ipVersion(.ipv6Only)], driver: .sim(net, host: client))
            }
            #expect(try await net.driver(for: client).resolve("V4ONLY", preference: .ipv4Only) == v4.addresses)
        }
    }

    @Test(arguments: [
        (IPVersionPreference.ipv4Only, ["10.0.0.1"]),
        (.ipv4Preferred, ["10.0.0.1", "fd00::1"]),
        (.ipv6Only, ["fd00::1"]),
        (.ipv6Preferred, ["fd00::1", "10.0.0.1"]),
    ])
    func resolveHonoursPreference(preference: IPVersionPreference, expected: [String]) async throws {
        let (net, _, client) = try makeNetwork()
        let driver = try net.driver(for: client)
        #expect(try await driver.resolve("server", preference: preference).map(\.description) == expected)
        let local = try await driver.resolve("localhost", preference: preference).map(\.description)
        #expect(local == expected.map { $0.contains(":") ? "::1" : "127.0.0.1" })
    }

    @Test func connectTimeoutUsesTheGivenLimit() async throws {
        let (net, _, client) = try makeNetwork()
        let (error, elapsed) = try await net.run { () -> (SocketError?, UInt64) in
            let start = net.now
            do throws(SocketError) {
                // Nobody has this address: the SYN goes nowhere.
                _ = try await Socket.connect("10.9.9.9", port: 80, timeout: 2500, driver: .sim(net, host: client))
                return (nil, 0)
            } catch {
                return (error, net.now - start)
            }
        }
        #expect(error == .timeout)
        #expect(elapsed == 2500 * ms)
        let syns = net.trace.filter { if case .syn = $0.kind { return true } else { return false } }
        // The SYN was sent at 0 and retransmitted at 1 s (the next would be at 3 s).
        #expect(syns.map(\.time) == [0, 1000 * ms])
        #expect(syns.map(\.uptime) == [.zero, .seconds(1)])
        #expect(net.uptime == .nanoseconds(Int64(net.now)) && net.uptime >= .milliseconds(2500))
    }

    @Test func connectWithoutLimitGivesUpAfterSynRetries() async throws {
        let (net, _, client) = try makeNetwork()
        let (error, elapsed) = try await net.run { () -> (SocketError?, UInt64) in
            do throws(SocketError) {
                _ = try await Socket.connect("10.9.9.9", port: 80, driver: .sim(net, host: client))
                return (nil, 0)
            } catch {
                return (error, net.now)
            }
        }
        // Linux's default: 6 retransmissions, 1+2+4+...+64 = 127 s of virtual time.
        #expect(error == SocketError(.connectionTimedOut))
        #expect(elapsed == 127_000 * ms)
    }

    @Test func connectionsCompleteBeforeAcceptUpToTheBacklog() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive + [.backlog(2)], driver: .sim(net, host: server))
            let times = Shared<[UInt64]>([])
            for _ in 0..<3 {
                net.spawn {
                    let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
                    times.update { $0.append(net.now) }
                    _ = try? await c.recv(0)
                }
            }
            await net.sleep(for: .milliseconds(500))
            // Two fit in the backlog without any accept; the third SYN was dropped.
            #expect(times.value == [2 * ms, 2 * ms])
            let first = try await listener.accept(timeout: 0)
            // The retransmitted SYN (at 1 s) finds room.
            await net.sleep(for: .seconds(1))
            #expect(times.value == [2 * ms, 2 * ms, 1002 * ms])
            first.close()
        }
        #expect(net.trace.contains { if case .synDropped = $0.kind { return true } else { return false } })
    }

    @Test(arguments: [false, true])
    func listenerCloseDropsPendingConnections(active: Bool) async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, driver: .sim(net, host: server))
            let opts: [Option] = active ? [.binary] : passive
            let c = try await Socket.connect("server", port: 7, options: opts, driver: .sim(net, host: client))
            listener.close()
            if active {
                let m = try await Process.receive(timeout: 1000)
                guard case .tcpClosed(let s)? = m else {
                    Issue.record("expected tcp_closed, got \(String(describing: m))")
                    return
                }
                #expect(s == c)
            } else {
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 1000) }
            }
        }
        let closed = net.trace.first { if case .listenerClosed = $0.kind { return true } else { return false } }
        #expect(closed?.kind == .listenerClosed(SocketAddress(.anyV4, port: 7), dropped: 1))
    }

    @Test func closedConnectionsAreForgotten() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            _ = try startEchoServer(net, on: server, port: 7)
            let done = net.spawn {
                let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
                try await c.send("bye")
                _ = try await c.recv(3)
                // The process exits: its socket closes.
            }
            _ = await done.waitForExit()
            #expect(net.openConnections == 1)
            await net.sleep(for: .milliseconds(10))
            #expect(net.openConnections == 0)
            #expect(net.statistics.bufferedBytes == 0)
        }
    }
}

@Suite struct PeerBehaviourTests {
    @Test(arguments: [false, true])
    func resetArrivesAfterBufferedData(showEconnreset: Bool) async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                try await s.send(pattern(5000, seed: 9))
                try s.setopts(.linger(0))
                s.close()
            }
            let c = try await Socket.connect(
                "server", port: 7, options: passive + [.showEconnreset(showEconnreset)], driver: .sim(net, host: client))
            await net.sleep(for: .milliseconds(10))
            // Everything sent before the RST is still read, then the reset.
            let data = try await c.recv(5000, timeout: 0)
            #expect(data.bytes == pattern(5000, seed: 9))
            await #expect(throws: showEconnreset ? SocketError(.connectionReset) : SocketError.closed) {
                _ = try await c.recv(0, timeout: 0)
            }
        }
        #expect(net.trace.contains { $0.kind == .reset(.toClient) })
    }

    @Test func resetInActiveMode() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                try await s.send("last words")
                try s.setopts(.linger(0))
                s.close()
            }
            let c = try await Socket.connect(
                "server", port: 7, options: [.binary, .showEconnreset(true)], driver: .sim(net, host: client))
            var got: [String] = []
            while let m = try await Process.receive(timeout: 100) {
                switch m {
                case .tcp(_, let p): got.append("data \(p.text)")
                case .tcpError(_, let r): got.append("error \(r.atom)")
                case .tcpClosed: got.append("closed")
                default: got.append("\(m)")
                }
            }
            #expect(got == ["data last words", "error econnreset", "closed"])
            _ = c
        }
    }

    @Test func halfClose() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(
                port: 7, options: passive + [.exitOnClose(false)], driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                let (request, end) = await drain(s)
                #expect(end == SocketError.closed)
                // The client's write side is shut; ours is open: answer, then close.
                try await s.send("got \(request.count) bytes")
                s.close()
            }
            let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
            try await c.send(pattern(3000, seed: 1))
            try c.shutdown(.write)
            let reply = try await c.recv(0)
            #expect(reply.text == "got 3000 bytes")
            await #expect(throws: SocketError.closed) { _ = try await c.recv(0) }
            // After shutdown(write) a send fails (and, as in OTP, would also end the read side).
            await #expect(throws: SocketError.closed) { try await c.send("more") }
        }
        #expect(net.trace.contains { $0.kind == .fin(.toServer) })
        #expect(net.trace.contains { $0.kind == .fin(.toClient) })
    }

    @Test func writeToAClosedPeerIsAnsweredByReset() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                s.close()
            }
            let c = try await Socket.connect(
                "server", port: 7, options: passive + [.exitOnClose(false)], driver: .sim(net, host: client))
            await net.sleep(for: .milliseconds(10))
            // The FIN is in; the first send is still taken (as a kernel would)...
            try await c.send("anyone?")
            await net.sleep(for: .milliseconds(10))
            // ...and answered by an RST: the next send fails, then the socket is dead.
            await #expect(throws: SocketError.closed) { try await c.send("hello?") }
            await #expect(throws: SocketError.notConnected) { try await c.send("hello?") }
        }
        #expect(net.trace.contains { $0.kind == .reset(.toClient) })
    }

    @Test func closeWithUnreadDataSendsReset() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let listener = try ListenSocket.listen(port: 7, options: passive, driver: .sim(net, host: server))
            net.spawn {
                let s = try await listener.accept()
                await net.sleep(for: .milliseconds(10))
                s.close()  // the request was never read
            }
            let c = try await Socket.connect(
                "server", port: 7, options: passive + [.showEconnreset(true)], driver: .sim(net, host: client))
            try await c.send("request")
            await #expect(throws: SocketError(.connectionReset)) { _ = try await c.recv(0, timeout: 1000) }
        }
    }
}

@Suite struct NetworkSetupTests {
    @Test func linksAreSetPerPairOfHosts() async throws {
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let near = try net.addHost("near")
        let far = try net.addHost("far", addresses: [IPAddress(192, 0, 2, 9)])
        net.setLink(SimLink(latency: .milliseconds(50)), between: far, and: server)
        net.setLink(SimLink(latency: .microseconds(10)), between: server, and: server)
        #expect(far.ipv4 == IPAddress(192, 0, 2, 9) && far.ipv6 == nil)
        #expect(near.addresses.map(\.description) == ["10.0.0.2", "fd00::2"])
        #expect(net.host(named: "FAR") == far)
        #expect(net.hosts == [server, near, far])
        let (nearTime, farTime, loopTime) = try await net.run { () -> (UInt64, UInt64, UInt64) in
            _ = try startEchoServer(net, on: server, port: 7)
            var times: [UInt64] = []
            for (host, target) in [(near, "server"), (far, "server"), (server, "127.0.0.1")] {
                let start = net.now
                let c = try await Socket.connect(Host(target), port: 7, options: passive, driver: .sim(net, host: host))
                try await c.send("x")
                _ = try await c.recv(1)
                times.append(net.now - start)
                c.close()
            }
            return (times[0], times[1], times[2])
        }
        #expect(nearTime == 4 * ms)
        #expect(farTime == 4 * 50 * ms)
        #expect(loopTime == 4 * 10_000)
    }

    /// The example of SimNetwork's documentation, run twice.
    @Test func documentedExample() async throws {
        func example() async throws -> (Payload, [SimEvent]) {
            let net = try SimNetwork(seed: 42)
            let server = try net.addHost("server")
            let client = try net.addHost("client")
            net.setFaults(SimFaults(jitter: .milliseconds(2), stallProbability: 0.01))
            let reply = try await net.run {
                let l = try ListenSocket.listen(port: 7, options: [.active(.passive)], driver: .sim(net, host: server))
                net.spawn {
                    let s = try await l.accept()
                    try await s.send(try await s.recv(0).bytes)
                }
                let c = try await Socket.connect("server", port: 7, options: [.active(.passive)], driver: .sim(net, host: client))
                try await c.send("hello")
                return try await c.recv(5)
            }
            return (reply, net.trace)
        }
        let (reply, trace) = try await example()
        #expect(reply == .list(Array("hello".utf8)))
        #expect(try await example().1 == trace)
    }

    @Test func theTraceIsBounded() async throws {
        let (net, server, client) = try makeNetwork { $0.traceLimit = 10 }
        _ = try await download(net, server: server, client: client, size: 50_000)
        #expect(net.trace.count == 10)
        #expect(net.statistics.traceDropped > 0)
        #expect(net.statistics.bytesDelivered == 50_000)
    }

    @Test func workFromOutsideBetweenRunsWaitsForTheNextRun() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run { await net.sleep(for: .milliseconds(1)) }
        #expect(net.runtime.isPaused)
        // A process started directly on the runtime (not through `run`) takes its steps, but the
        // clock stays where the run left it: its connect waits for the next run.
        let elapsed = Shared<UInt64?>(nil)
        Process.spawn(runtime: net.runtime) {
            let start = net.now
            _ = try startEchoServer(net, on: server, port: 7)
            let c = try await Socket.connect("server", port: 7, options: passive, driver: .sim(net, host: client))
            try await c.send("x")
            _ = try await c.recv(1)
            elapsed.value = net.now - start
        }
        await net.runtime.settle()
        #expect(net.now == 1 * ms)
        #expect(elapsed.value == nil)
        #expect(net.runtime.isPaused)
        try await net.run { await net.sleep(for: .milliseconds(10)) }
        #expect(elapsed.value == 4 * ms)
        #expect(net.now == 11 * ms)
    }

    @Test("bad set-up throws badarg instead of trapping, and a refused host leaves no trace")
    func badSetUpThrows() throws {
        var zeroWindow = SimNetwork.Configuration()
        zeroWindow.receiveWindow = 0
        #expect(throws: SocketError(.badArgument)) { _ = try SimNetwork(configuration: zeroWindow) }
        var zeroSegment = SimNetwork.Configuration()
        zeroSegment.segmentSize = 0
        #expect(throws: SocketError(.badArgument)) { _ = try SimNetwork(configuration: zeroSegment) }

        let net = try SimNetwork(seed: 1)
        let a = try net.addHost("a")
        #expect(throws: SocketError(.badArgument)) { try net.addHost("") }
        #expect(throws: SocketError(.badArgument)) { try net.addHost("A") }
        #expect(throws: SocketError(.badArgument)) { try net.addHost("localhost") }
        #expect(throws: SocketError(.badArgument)) { try net.addHost("b", addresses: [a.addresses[0]]) }
        #expect(throws: SocketError(.badArgument)) { try net.addHost("b", addresses: [.v4(0x7F00_0001)]) }
        #expect(throws: SocketError(.badArgument)) {
            try net.addHost("b", addresses: [IPAddress(10, 9, 9, 9), IPAddress(10, 9, 9, 9)])
        }
        #expect(throws: SocketError(.badArgument)) { try net.addHost("b", receiveWindow: 0) }
        #expect(net.hosts.map(\.name) == ["a"])
        let b = try net.addHost("b", addresses: [IPAddress(10, 9, 9, 9)])
        #expect(b.addresses == [IPAddress(10, 9, 9, 9)])

        let other = try SimNetwork(seed: 2)
        let stranger = try other.addHost("stranger")
        #expect(throws: SocketError(.badArgument)) { _ = try SimDriver(network: net, host: stranger) }
        #expect(throws: SocketError(.badArgument)) { _ = try net.driver(for: stranger) }
        #expect(throws: SocketError(.badArgument)) { _ = try SimDriver.sim(net, host: stranger) }
        #expect(try net.driver(for: b).host.name == "b")
    }
}
