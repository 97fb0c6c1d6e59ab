import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

/// The UDP events of a trace, as text.
func udpTrace(_ net: SimNetwork) -> [String] {
    net.trace.filter { if case .udp = $0.kind { return true } else { return false } }.map(\.description)
}

/// Receives in passive mode until `timeout` passes with nothing; returns the payloads.
func collect(_ socket: UDPSocket, timeout: Timeout = 50) async -> [[UInt8]] {
    var got: [[UInt8]] = []
    while let d = try? await socket.recv(timeout: timeout) { got.append(d.payload.bytes) }
    return got
}

/// 200 numbered datagrams from client to server under loss, duplication and reordering, and
/// everything the run shows afterwards as text.
func udpFaultScenario(seed: UInt64) async throws -> String {
    let (net, server, client) = try makeNetwork(seed: seed)
    net.setLink(SimLink(latency: .milliseconds(2), bytesPerSecond: 1_000_000), between: client, and: server)
    net.setDatagramFaults(SimDatagramFaults(
        lossProbability: 0.1, duplicateProbability: 0.1, reorderProbability: 0.2,
        reorderDelay: .milliseconds(3), jitter: .microseconds(200)))
    let received = Shared<[Int]>([])
    try await net.run {
        let r = try await UDPSocket.open(port: 7, options: passive, driver: .sim(net, host: server))
        let s = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
        for i in 0..<200 {
            try await s.send([UInt8(i >> 8), UInt8(i & 0xFF)] + pattern(100, seed: UInt64(i)), to: "server", port: 7)
            if i % 10 == 0 { await net.sleep(for: .microseconds(100)) }
        }
        for bytes in await collect(r) { received.update { $0.append(Int(bytes[0]) << 8 | Int(bytes[1])) } }
        r.close()
        s.close()
    }
    var text = "received \(received.value)\n"
    text += net.trace.map(\.description).joined(separator: "\n")
    text += "\nstatistics \(net.statistics)\nnow \(net.now)"
    return text
}

@Suite("Sim UDP", .timeLimit(.minutes(5)))
struct SimUDPTests {
    @Test("echo between two hosts keeps every boundary, empty datagrams included")
    func echo() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let big = passive + [.recbuf(200_000), .buffer(65507)]
            let e = try await UDPSocket.open(port: 7, options: big, driver: .sim(net, host: server))
            net.spawn {
                while let d = try? await e.recv() { try await e.send(d.payload.bytes, to: d.source) }
            }
            let c = try await UDPSocket.open(options: big, driver: .sim(net, host: client))
            #expect(try c.sockname() == SocketAddress(.anyV4, port: 49152))
            let sizes = [5, 0, 1, 1472, 0, 3000, 65507]
            for n in sizes { try await c.send(pattern(n, seed: UInt64(n)), to: "server", port: 7) }
            for n in sizes {
                let d = try await c.recv(timeout: 1000)
                #expect(d.source == SocketAddress(server.ipv4!, port: 7))
                #expect(!d.truncated)
                #expect(d.payload.bytes == pattern(n, seed: UInt64(n)))
            }
            await #expect(throws: SocketError.self) { try await c.recv(timeout: 20) }
            #expect(try c.getstat().recvCnt == UInt64(sizes.count))
            e.close()
            c.close()
        }
        #expect(net.statistics.datagramsSent == 14)
        #expect(net.statistics.datagramsDelivered == 14)
    }

    @Test("an active socket gets .udp messages, announced later on the simulator's executor")
    func active() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: [.binary], driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            try await c.send("ping", to: "server", port: 7)
            try await c.send("", to: "server", port: 7)
            for expected in ["ping", ""] {
                let m = try await Process.receive(timeout: 1000)
                guard case .udp(let s, let d)? = m else {
                    Issue.record("expected a datagram, got \(String(describing: m))")
                    return
                }
                #expect(s == r)
                #expect(d.payload.bytes == Array(expected.utf8))
                #expect(d.source == SocketAddress(client.ipv4!, port: try c.port()))
            }
            r.close()
            c.close()
        }
    }

    @Test("bind: ephemeral ports, eaddrinuse unless both reuseaddr, eaddrnotavail, loopback")
    func bind() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let d = try SimDriver.sim(net, host: server)
            let a = try await UDPSocket.open(port: 5000, options: passive, driver: d)
            await #expect(throws: SocketError(.addressInUse)) {
                _ = try await UDPSocket.open(port: 5000, options: passive, driver: d)
            }
            // Another host, or TCP on the same port, is no clash.
            let other = try await UDPSocket.open(port: 5000, options: passive, driver: .sim(net, host: client))
            let l = try ListenSocket.listen(port: 5000, options: passive, driver: d)
            let r1 = try await UDPSocket.open(port: 6000, options: passive + [.reuseaddr(true)], driver: d)
            let r2 = try await UDPSocket.open(port: 6000, options: passive + [.reuseaddr(true)], driver: d)
            await #expect(throws: SocketError(.addressNotAvailable)) {
                _ = try await UDPSocket.open(port: 0, options: passive + [.localAddress(client.ipv4!)], driver: d)
            }
            let e1 = try await UDPSocket.open(options: passive, driver: d)
            let e2 = try await UDPSocket.open(options: passive, driver: d)
            #expect(try e1.port() == 49152)
            #expect(try e2.port() == 49153)
            // Loopback: to itself, from 127.0.0.1.
            let lo = try await UDPSocket.open(options: passive + [.localAddress(.loopbackV4)], driver: d)
            try await lo.send("me", to: "localhost", port: try lo.port())
            let got = try await lo.recv(timeout: 100)
            #expect(got.payload.bytes == Array("me".utf8))
            #expect(got.source == SocketAddress(.loopbackV4, port: try lo.port()))
            for s in [a, other, r1, r2, e1, e2, lo] { s.close() }
            l.close()
        }
    }

    @Test("a datagram takes the link's latency plus its size over the link's rate, on the virtual clock")
    func timing() async throws {
        let (net, server, client) = try makeNetwork()
        net.setLink(SimLink(latency: .milliseconds(5), bytesPerSecond: 1000), between: client, and: server)
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: passive, driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            let start = net.now
            try await c.send(pattern(100, seed: 1), to: "server", port: 7)
            try await c.send(pattern(50, seed: 2), to: "server", port: 7)
            _ = try await r.recv(timeout: 1000)
            #expect(net.now - start == 105 * ms)  // 100 B at 1000 B/s, then 5 ms
            _ = try await r.recv(timeout: 1000)
            #expect(net.now - start == 155 * ms)  // queued behind the first on the line
            r.close()
            c.close()
        }
        let times = net.trace.compactMap { e -> UInt64? in
            if case .udp(.delivered) = e.kind { return e.time } else { return nil }
        }
        #expect(times.count == 2)
        #expect(times[1] - times[0] == 50 * ms)
    }

    @Test("a datagram above the path MTU is emsgsize at send; the largest that fits goes")
    func mtu() async throws {
        let (net, server, client) = try makeNetwork()
        net.setLink(SimLink(mtu: 576), between: client, and: server)
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: passive, driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            try await c.send(pattern(548, seed: 1), to: "server", port: 7)
            await #expect(throws: SocketError(.messageTooLong)) {
                try await c.send(pattern(549, seed: 1), to: "server", port: 7)
            }
            await #expect(throws: SocketError(.messageTooLong)) {
                try await c.send(pattern(65508, seed: 1), to: "server", port: 7)
            }
            #expect(try await r.recv(timeout: 100).payload.bytes.count == 548)
            #expect(try c.getstat().sendCnt == 1)
            r.close()
            c.close()
        }
    }

    @Test("loss, duplication and reordering are counted, and the same seed replays the same trace")
    func faults() async throws {
        let first = try await udpFaultScenario(seed: 7)
        let again = try await udpFaultScenario(seed: 7)
        #expect(first == again)
        #expect(try await udpFaultScenario(seed: 8) != first)

        let (net, server, client) = try makeNetwork(seed: 7)
        net.setDatagramFaults(SimDatagramFaults(lossProbability: 0.2, duplicateProbability: 0.2, reorderProbability: 0.3))
        let got = Shared<[[UInt8]]>([])
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: passive, driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            for i in 0..<100 { try await c.send([UInt8(i)], to: "server", port: 7) }
            got.value = await collect(r)
            r.close()
            c.close()
        }
        let s = net.statistics
        #expect(s.datagramsSent == 100)
        #expect(s.datagramsLost > 0)
        #expect(s.datagramsDuplicated > 0)
        #expect(s.datagramsReordered > 0)
        #expect(got.value.count == 100 - s.datagramsLost + s.datagramsDuplicated)
        #expect(s.datagramsDelivered == got.value.count)
        let order = got.value.map { Int($0[0]) }
        #expect(order != order.sorted())
        #expect(udpTrace(net).filter { $0.contains(" lost ") }.count == s.datagramsLost)
        #expect(udpTrace(net).filter { $0.contains(" duplicated ") }.count == s.datagramsDuplicated)
        // TCP faults are untouched: no TCP fault was recorded.
        #expect(s.faults == 0)
    }

    @Test("a full receive queue drops whole datagrams and counts them in recvDropped")
    func queueFull() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: passive + [.recbuf(1000)], driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            for i in 0..<40 { try await c.send(pattern(100, seed: UInt64(i)), to: "server", port: 7) }
            await net.sleep(for: .milliseconds(10))
            #expect(try r.getstat().recvDropped == 30)
            let got = await collect(r, timeout: 10)
            #expect(got == (0..<10).map { pattern(100, seed: UInt64($0)) })
            // Room again: the next ones queue.
            try await c.send("after", to: "server", port: 7)
            #expect(try await r.recv(timeout: 100).payload.bytes == Array("after".utf8))
            #expect(try r.getstat().recvDropped == 30)
            r.close()
            c.close()
        }
        #expect(net.statistics.datagramsDroppedQueueFull == 30)
        #expect(udpTrace(net).filter { $0.contains("dropped (queue full)") }.count == 30)
    }

    @Test("ICMP port unreachable: econnrefused once on a connected socket, after one round trip")
    func icmpConnected() async throws {
        let (net, server, client) = try makeNetwork()
        try await net.run {
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            try await c.connect("server", port: 9)
            try await c.send("x")
            await net.sleep(for: .microseconds(1_999))
            await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 0) }
            await net.sleep(for: .microseconds(10))
            await #expect(throws: SocketError(.connectionRefused)) { _ = try await c.recv(timeout: 0) }
            await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 0) }
            // Reported to the next send instead when no receive comes first.
            try await c.send("y")
            await net.sleep(for: .milliseconds(5))
            // The send that reports the error does not send its datagram.
            await #expect(throws: SocketError(.connectionRefused)) { try await c.send("z") }
            // The socket still works once someone listens.
            let r = try await UDPSocket.open(port: 9, options: passive, driver: .sim(net, host: server))
            try await c.send("w")
            #expect(try await r.recv(timeout: 100).payload.bytes == Array("w".utf8))
            await net.sleep(for: .milliseconds(5))
            await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 0) }
            r.close()
            c.close()
        }
        let refusals = net.trace.filter { if case .udp(.refused(_, _, true)) = $0.kind { return true } else { return false } }
        #expect(refusals.count == 2)
        let sent = net.trace.first { if case .udp(.sent) = $0.kind { return true } else { return false } }
        #expect(refusals.first!.time - sent!.time == 2 * ms)
    }

    @Test("ICMP port unreachable in active mode is a .udpError message")
    func icmpActive() async throws {
        let (net, _, client) = try makeNetwork()
        try await net.run {
            let c = try await UDPSocket.open(options: [.binary], driver: .sim(net, host: client))
            try await c.connect("server", port: 9)
            try await c.send("x")
            let m = try await Process.receive(timeout: 100)
            guard case .udpError(let s, let reason)? = m else {
                Issue.record("expected udp_error, got \(String(describing: m))")
                return
            }
            #expect(s == c)
            #expect(reason == .connectionRefused)
            if let more = try await Process.receive(timeout: 20) { Issue.record("one error only, then \(more)") }
            c.close()
        }
    }

    @Test("an unconnected socket never sees ICMP errors; an unknown address is silently lost")
    func icmpUnconnected() async throws {
        let (net, _, client) = try makeNetwork()
        try await net.run {
            let c = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            for _ in 0..<3 {
                try await c.send("x", to: "server", port: 9)
                await net.sleep(for: .milliseconds(5))
            }
            await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 10) }
            // Connected to an address nobody has: no answer at all.
            try await c.connect(.address(.v4(0x0A00_0063)), port: 9)
            try await c.send("void")
            await net.sleep(for: .milliseconds(10))
            try await c.send("void")
            await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 10) }
            c.close()
        }
        let trace = udpTrace(net)
        #expect(trace.filter { $0.contains("(ignored)") }.count == 3)
        #expect(trace.filter { $0.contains("unroutable") }.count == 2)
        #expect(net.statistics.portUnreachables == 3)
    }

    @Test("connect filters other senders (not counted) and sets the default destination")
    func connectFilter() async throws {
        let (net, server, client) = try makeNetwork()
        let third = try net.addHost("third")
        try await net.run {
            let r = try await UDPSocket.open(port: 7, options: passive, driver: .sim(net, host: server))
            let a = try await UDPSocket.open(port: 1000, options: passive, driver: .sim(net, host: client))
            let b = try await UDPSocket.open(port: 2000, options: passive, driver: .sim(net, host: third))
            let peer = try await r.connect("client", port: 1000)
            try await b.send("from b", to: "server", port: 7)
            try await a.send("from a", to: "server", port: 7)
            let d = try await r.recv(timeout: 100)
            #expect(d.payload.bytes == Array("from a".utf8))
            await #expect(throws: SocketError(.timeout)) { _ = try await r.recv(timeout: 10) }
            #expect(try r.getstat().recvDropped == 0)
            try await peer.send("to a")
            #expect(try await a.recv(timeout: 100).payload.bytes == Array("to a".utf8))
            try await r.disconnect()
            try await b.send("again", to: "server", port: 7)
            #expect(try await r.recv(timeout: 100).source == SocketAddress(third.ipv4!, port: 2000))
            for s in [r, a, b] { s.close() }
        }
        #expect(net.statistics.datagramsFiltered == 1)
    }

    @Test("broadcast needs the option, then reaches every socket bound to the port on the subnet")
    func broadcast() async throws {
        let (net, server, client) = try makeNetwork()
        let third = try net.addHost("third")
        let far = try net.addHost("far", addresses: [IPAddress(10, 0, 1, 1)])
        try await net.run {
            let receivers = try await [server, client, third, far].asyncMap { h in
                try await UDPSocket.open(port: 5000, options: passive, driver: .sim(net, host: h))
            }
            let s = try await UDPSocket.open(options: passive, driver: .sim(net, host: client))
            for target: IPAddress in [.v4(0xFFFF_FFFF), IPAddress(10, 0, 0, 255)] {
                await #expect(throws: SocketError(.permissionDenied)) {
                    try await s.send("all", to: .address(target), port: 5000)
                }
            }
            try s.setopts(.broadcast(true))
            for target: IPAddress in [.v4(0xFFFF_FFFF), IPAddress(10, 0, 0, 255)] {
                try await s.send("all", to: .address(target), port: 5000)
                for r in receivers.prefix(3) {
                    let d = try await r.recv(timeout: 100)
                    #expect(d.payload.bytes == Array("all".utf8))
                    #expect(d.source == SocketAddress(client.ipv4!, port: try s.port()))
                }
                // Another subnet hears nothing.
                await #expect(throws: SocketError(.timeout)) { _ = try await receivers[3].recv(timeout: 10) }
            }
            for r in receivers { r.close() }
            s.close()
        }
    }

    @Test("IPv6 sockets carry datagrams; the most specific fault scope wins")
    func ipv6AndScopes() async throws {
        let (net, server, client) = try makeNetwork { $0.datagramFaults = SimDatagramFaults(lossProbability: 1) }
        net.setDatagramFaults(.none, for: .port(server, 8))
        let v6 = passive + [.ipVersion(.ipv6Only)]
        try await net.run {
            let lossy = try await UDPSocket.open(port: 7, options: v6, driver: .sim(net, host: server))
            let clean = try await UDPSocket.open(port: 8, options: v6, driver: .sim(net, host: server))
            let c = try await UDPSocket.open(options: v6, driver: .sim(net, host: client))
            #expect(try c.sockname() == SocketAddress(.anyV6, port: 49152))
            try await c.send("seven", to: "server", port: 7)
            try await c.send("eight", to: "server", port: 8)
            let d = try await clean.recv(timeout: 100)
            #expect(d.payload.bytes == Array("eight".utf8))
            #expect(d.source == SocketAddress(client.ipv6!, port: 49152))
            await #expect(throws: SocketError(.timeout)) { _ = try await lossy.recv(timeout: 10) }
            // An IPv4 destination on an IPv6 socket is refused by the port layer.
            await #expect(throws: SocketError(.addressFamilyNotSupported)) {
                try await c.send("x", to: .address(server.ipv4!), port: 8)
            }
            for s in [lossy, clean, c] { s.close() }
        }
        #expect(net.statistics.datagramsLost == 1)
    }

    @Test("a seeded datagram run replays byte for byte beside CPU-heavy work in the same process")
    func busyMachine() async throws {
        let alone = try await udpFaultScenario(seed: 2026)
        #expect(alone.contains("udp lost"))
        #expect(alone.contains("udp duplicated"))
        #expect(alone.contains("udp reordered"))
        let (busy, work) = try await besideCPULoad { try await udpFaultScenario(seed: 2026) }
        #expect(work > 0)
        #expect(Array(busy.utf8) == Array(alone.utf8))
    }
}

extension Array where Element: Sendable {
    /// `map` with an async throwing transform, in order.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
