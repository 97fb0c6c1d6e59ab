import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

/// gen_udp on the posix driver, through the public `UDPSocket` API, on loopback only.
///
/// Waits for real data use limits of several seconds; a limit that must run out (a datagram that
/// must not come) is short, since it costs its full length on every run.
@Suite("POSIX UDP")
struct POSIXUDPTests {
    /// A passive binary socket on the loopback address of the family asked for.
    static func open(_ options: [Option] = [], ipv6: Bool = false, port: Int = 0) async throws -> UDPSocket {
        // `.inet6` first: DatagramOptions checks a multicast option's family against `inet6`
        // alone, an IPv6 `localAddress` deciding the family only after the whole list.
        let family: [Option] = ipv6 ? [.inet6] : []
        let base: [Option] = family + [.binary, .active(.passive), .localAddress(ipv6 ? .loopbackV6 : .loopbackV4)]
        return try await UDPSocket.open(port: port, options: base + options, driver: POSIXDriver.shared)
    }

    /// A loopback port nobody listens on (bound, read, closed: the kernel answers with ICMP port
    /// unreachable until someone takes it).
    static func deadPort(ipv6: Bool = false) async throws -> Int {
        let s = try await open(ipv6: ipv6)
        let port = try s.port()
        s.close()
        return port
    }

    /// The bytes `0, 1, 2...` (mod 251) of `count`, tagged with `seed` in the first byte.
    static func payload(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
        (0..<count).map { i in i == 0 ? seed : UInt8(i % 251) }
    }

    // MARK: Echo

    @Test("echo both ways on IPv4, passive and active, with the sender's address")
    func echoV4() async throws {
        try await Process.run {
            let a = try await Self.open()
            let b = try await Self.open()
            try await a.send(bytes("ping"), to: try b.sockname())
            let got = try await b.recv(timeout: 5000)
            #expect(got.payload == bin("ping"))
            #expect(got.source == (try a.sockname()))
            #expect(got.truncated == false)
            try await b.send(bytes("pong"), to: got.source)
            #expect(try await a.recv(timeout: 5000).payload == bin("pong"))
            // Active: the datagram comes as a message.
            try a.setopts(.active(.active))
            try await b.send(bytes("again"), to: try a.sockname())
            let m = await next(5000)
            #expect(m == .udp(a, Datagram(source: try b.sockname(), payload: bin("again"))))
            a.close()
            b.close()
        }
    }

    @Test("echo both ways on IPv6 (::1), up to 65527 bytes; 65528 is emsgsize")
    func echoV6() async throws {
        try await Process.run {
            let a = try await Self.open(ipv6: true)
            let b = try await Self.open([.buffer(65_527)], ipv6: true)
            #expect(try a.sockname().address == .loopbackV6)
            try await a.send(bytes("ping6"), to: try b.sockname())
            let got = try await b.recv(timeout: 5000)
            #expect(got.payload == bin("ping6"))
            #expect(got.source == (try a.sockname()))
            try await b.send(bytes("pong6"), to: got.source)
            #expect(try await a.recv(timeout: 5000).payload == bin("pong6"))
            let largest = Self.payload(65_527, seed: 6)
            try await a.send(largest, to: try b.sockname())
            #expect(try await b.recv(timeout: 5000).payload.bytes == largest)
            await #expect(throws: SocketError(.messageTooLong)) {
                try await a.send(Self.payload(65_528), to: try b.sockname())
            }
            a.close()
            b.close()
        }
    }

    @Test("ping-pong between two processes: every answer comes back in order")
    func pingPong() async throws {
        try await Process.run {
            let echo = try await Self.open()
            let to = try echo.sockname()
            let rounds = 300
            // Any process may recv and send on a passive socket: a second process echoes.
            let echoer = Process.spawn {
                for _ in 0..<rounds {
                    let d = try await echo.recv(timeout: 30_000)
                    try await echo.send(d.payload.bytes, to: d.source)
                }
            }
            let a = try await Self.open()
            let start = ContinuousClock.now
            for i in 0..<rounds {
                let sent = Self.payload(32, seed: UInt8(i & 0xFF))
                try await a.send(sent, to: to)
                let back = try await a.recv(timeout: 30_000)
                #expect(back.payload.bytes == sent, "round \(i)")
            }
            let elapsed = ContinuousClock.now - start
            print("POSIX UDP ping-pong: \(rounds) round trips in \(elapsed)")
            #expect(try echo.getstat().recvCnt == UInt64(rounds))
            _ = echoer
            a.close()
            echo.close()
        }
    }

    // MARK: Sizes

    @Test("sizes 0, 1, 1472, 8192 and 65507 arrive whole; 65508 is emsgsize")
    func boundaries() async throws {
        try await Process.run {
            let a = try await Self.open()
            let b = try await Self.open([.buffer(65_507), .recbuf(1 << 20)])
            let to = try b.sockname()
            for (i, size) in [0, 1, 1472, 8192, 65_507].enumerated() {
                let sent = Self.payload(size, seed: UInt8(i))
                try await a.send(sent, to: to)
                let got = try await b.recv(timeout: 5000)
                #expect(got.payload.bytes == sent, "size \(size)")
                #expect(got.truncated == false, "size \(size)")
            }
            await #expect(throws: SocketError(.messageTooLong)) {
                try await a.send(Self.payload(65_508), to: to)
            }
            #expect(try a.getstat().sendCnt == 5)
            #expect(try b.getstat().recvCnt == 5)
            a.close()
            b.close()
        }
    }

    @Test("a datagram longer than buffer is cut and counted; the next recv gets the next one")
    func truncation() async throws {
        try await Process.run {
            let a = try await Self.open()
            let b = try await Self.open([.buffer(100)])
            let long = Self.payload(300, seed: 1)
            let short = Self.payload(50, seed: 2)
            try await a.send(long, to: try b.sockname())
            try await a.send(short, to: try b.sockname())
            let first = try await b.recv(timeout: 5000)
            #expect(first.payload.bytes == Array(long[0..<100]))
            #expect(first.truncated)
            #expect(try b.getstat().recvTruncated == 1)
            let second = try await b.recv(timeout: 5000)
            #expect(second.payload.bytes == short)
            #expect(second.truncated == false)
            #expect(try b.getstat().recvTruncated == 1)
            a.close()
            b.close()
        }
    }

    // MARK: ICMP

    @Test("ICMP port unreachable on a connected socket: recv gets econnrefused once, then nothing",
          arguments: [false, true])
    func refusedOnceConnected(ipv6: Bool) async throws {
        try await Process.run {
            let here: IPAddress = ipv6 ? .loopbackV6 : .loopbackV4
            let dead = try await Self.deadPort(ipv6: ipv6)
            let a = try await Self.open(ipv6: ipv6)
            try await a.connect(.address(here), port: dead)
            #expect(await refusedByRecv(a))
            await #expect(throws: SocketError.timeout) { _ = try await a.recv(timeout: 300) }
            #expect(try a.peername() == SocketAddress(here, port: dead), "the peer is kept")
            // Still usable: reconnect to a live peer.
            let b = try await Self.open(ipv6: ipv6)
            try await a.connect(to: try b.sockname())
            try await a.send(bytes("alive"))
            #expect(try await b.recv(timeout: 5000).payload == bin("alive"))
            a.close()
            b.close()
        }
    }

    @Test("ICMP port unreachable in active mode: one udp_error, the mode kept")
    func refusedActive() async throws {
        try await Process.run {
            let dead = try await Self.deadPort()
            let a = try await Self.open([.active(.active)])
            try await a.connect(.address(.loopbackV4), port: dead)
            #expect(await refusedByMessage(a))
            #expect(try a.getopt(.active) == .active(.active))
            let b = try await Self.open()
            try await a.connect(to: try b.sockname())
            try await b.send(bytes("still here"), to: try a.sockname())
            #expect(await next(5000) == .udp(a, Datagram(source: try b.sockname(), payload: bin("still here"))))
            a.close()
            b.close()
        }
    }

    @Test("no ICMP error on an unconnected socket")
    func noErrorUnconnected() async throws {
        try await Process.run {
            let dead = try await Self.deadPort()
            let a = try await Self.open()
            try await a.send(bytes("anyone?"), to: SocketAddress(.loopbackV4, port: dead))
            await #expect(throws: SocketError.timeout) { _ = try await a.recv(timeout: 300) }
            try await a.send(bytes("again?"), to: SocketAddress(.loopbackV4, port: dead))
            await #expect(throws: SocketError.timeout) { _ = try await a.recv(timeout: 300) }
            a.close()
        }
    }

    // MARK: Connect

    @Test("a connected socket takes datagrams from its peer only; disconnect keeps the port")
    func connectFilter() async throws {
        try await Process.run {
            let a = try await Self.open()
            let peer = try await Self.open()
            let third = try await Self.open()
            let port = try a.port()
            try await a.connect(to: try peer.sockname())
            try await third.send(bytes("stranger"), to: try a.sockname())
            try await peer.send(bytes("friend"), to: try a.sockname())
            let got = try await a.recv(timeout: 5000)
            #expect(got.payload == bin("friend"))
            #expect(got.source == (try peer.sockname()))
            await #expect(throws: SocketError.timeout) { _ = try await a.recv(timeout: 300) }
            try await a.disconnect()
            #expect(try a.port() == port)
            try await third.send(bytes("hello now"), to: try a.sockname())
            #expect(try await a.recv(timeout: 5000).payload == bin("hello now"))
            a.close()
            peer.close()
            third.close()
        }
    }

    @Test("disconnect keeps an ephemeral port on the wildcard address, on both families",
          arguments: [false, true])
    func disconnectWildcard(ipv6: Bool) async throws {
        try await Process.run {
            let a = try await UDPSocket.open(
                options: [ipv6 ? .inet6 : .ipVersion(.ipv4Only), .binary, .active(.passive)], driver: POSIXDriver.shared)
            let b = try await Self.open(ipv6: ipv6)
            let port = try a.port()
            try await a.connect(to: try b.sockname())
            try await a.send(bytes("one"))
            #expect(try await b.recv(timeout: 5000).source.port == port)
            try await a.disconnect()
            #expect(try a.port() == port)
            try await a.send(bytes("two"), to: try b.sockname())
            #expect(try await b.recv(timeout: 5000).source.port == port)
            a.close()
            b.close()
        }
    }

    // MARK: Broadcast and multicast

    @Test("broadcast to 127.255.255.255 is eacces until broadcast is set")
    func broadcast() async throws {
        try await Process.run {
            let receiver = try await UDPSocket.open(
                options: [.binary, .active(.passive), .localAddress(.anyV4)], driver: POSIXDriver.shared)
            let a = try await Self.open()
            let to = SocketAddress(IPAddress(127, 255, 255, 255), port: try receiver.port())
            await #expect(throws: SocketError(.permissionDenied)) { try await a.send(bytes("all"), to: to) }
            try a.setopts(.broadcast(true))
            #expect(try a.getopt(.broadcast) == .broadcast(true))
            try await a.send(bytes("all"), to: to)
            #expect(try await receiver.recv(timeout: 5000).payload == bin("all"))
            a.close()
            receiver.close()
        }
    }

    @Test("multicast on loopback: a member of 239.7.7.7 on 127.0.0.1 gets what is sent there")
    func multicast() async throws {
        try await Process.run {
            let group = IPAddress(239, 7, 7, 7)
            let receiver = try await UDPSocket.open(
                options: [.binary, .active(.passive), .localAddress(.anyV4)], driver: POSIXDriver.shared)
            do {
                try receiver.setopts(.addMembership(group: group, interface: .loopbackV4))
            } catch {
                receiver.close()
                print("POSIX UDP multicast: skipped, the kernel refused to join \(group) on 127.0.0.1 (\(error))")
                return
            }
            let sender = try await Self.open([.multicastInterface(.loopbackV4), .multicastTTL(0)])
            try await sender.send(bytes("to the group"), to: SocketAddress(group, port: try receiver.port()))
            let got = try await receiver.recv(timeout: 5000)
            #expect(got.payload == bin("to the group"))
            #expect(got.source.port == (try sender.port()))
            try receiver.setopts(.dropMembership(group: group, interface: .loopbackV4))
            try await sender.send(bytes("gone"), to: SocketAddress(group, port: try receiver.port()))
            await #expect(throws: SocketError.timeout) { _ = try await receiver.recv(timeout: 300) }
            sender.close()
            receiver.close()
        }
    }

    @Test("ttl and multicast options at open and in setopts, on both families")
    func ipOptions() async throws {
        try await Process.run {
            for ipv6 in [false, true] {
                let here: IPAddress = ipv6 ? .loopbackV6 : .loopbackV4
                let a = try await Self.open(
                    [.ttl(9), .multicastTTL(3), .multicastLoop(false), .multicastInterface(here), .broadcast(!ipv6)],
                    ipv6: ipv6)
                try a.setopts([.ttl(200), .multicastTTL(0), .multicastLoop(true), .sndbuf(65_536), .reuseaddr(true)])
                #expect(try a.getopt(.ttl) == .ttl(200))
                #expect(try a.getopt(.multicastInterface) == .multicastInterface(here))
                // Still sends after all that.
                let b = try await Self.open(ipv6: ipv6)
                try await a.send(bytes("opts"), to: try b.sockname())
                #expect(try await b.recv(timeout: 5000).payload == bin("opts"))
                a.close()
                b.close()
            }
        }
    }

    @Test("IPv6 multicast on loopback: a member of ff01::7 on ::1 gets what is sent there")
    func multicastV6() async throws {
        try await Process.run {
            let group = try #require(IPAddress("ff01::7"))
            let receiver = try await UDPSocket.open(
                options: [.inet6, .binary, .active(.passive), .localAddress(.anyV6)], driver: POSIXDriver.shared)
            do {
                try receiver.setopts(.addMembership(group: group, interface: .loopbackV6))
            } catch {
                receiver.close()
                print("POSIX UDP IPv6 multicast: skipped, the kernel refused to join \(group) on ::1 (\(error))")
                return
            }
            let sender = try await Self.open([.multicastInterface(.loopbackV6)], ipv6: true)
            do {
                try await sender.send(bytes("v6 group"), to: SocketAddress(group, port: try receiver.port()))
            } catch {
                sender.close()
                receiver.close()
                print("POSIX UDP IPv6 multicast: skipped, the kernel has no IPv6 multicast route on lo (\(error)); the join and the option calls still ran")
                return
            }
            #expect(try await receiver.recv(timeout: 5000).payload == bin("v6 group"))
            try receiver.setopts(.dropMembership(group: group, interface: .loopbackV6))
            sender.close()
            receiver.close()
        }
    }

    // MARK: Queue

    @Test("a flood into a small recbuf: drops counted, what arrives is whole and in order")
    func flood() async throws {
        try await Process.run {
            let a = try await Self.open()
            let b = try await Self.open([.recbuf(4096), .buffer(1000)])
            let count = 400
            for i in 0..<count {
                var d = Self.payload(200)
                d[0] = UInt8(i >> 8)
                d[1] = UInt8(i & 0xFF)
                try await a.send(d, to: try b.sockname())
            }
            var sequence: [Int] = []
            // Every datagram is either delivered or counted as dropped.
            while try sequence.count + Int(b.getstat().recvDropped) < count {
                let got = try await b.recv(timeout: 5000)
                #expect(got.payload.count == 200)
                #expect(got.truncated == false)
                sequence.append(Int(got.payload.bytes[0]) << 8 | Int(got.payload.bytes[1]))
            }
            let dropped = Int(try b.getstat().recvDropped)
            #expect(dropped > 0, "a 4 KiB queue cannot hold \(count) datagrams")
            #expect(sequence.count + dropped == count)
            #expect(sequence == sequence.sorted(), "what arrives arrives in order")
            #expect(Set(sequence).count == sequence.count)
            a.close()
            b.close()
        }
    }

    @Test("recbuf and sndbuf read back the kernel's (doubled) values")
    func kernelBuffers() async throws {
        try await Process.run {
            let a = try await Self.open([.recbuf(16_384), .sndbuf(16_384)])
            #expect(try a.getopt(.recbuf) == .recbuf(32_768))
            #expect(try a.getopt(.sndbuf) == .sndbuf(32_768))
            try a.setopts(.recbuf(20_000))
            #expect(try a.getopt(.recbuf) == .recbuf(40_000))
            a.close()
        }
    }

    // MARK: Batches

    @Test("send(batch:) takes all; receive(max:) returns several at once, cut at buffer")
    func batches() async throws {
        try await Process.run {
            let a = try await Self.open()
            let b = try await Self.open([.buffer(64)])
            let to = try b.sockname()
            var batch = (0..<10).map { OutgoingDatagram(Self.payload(20, seed: UInt8($0)), to: to) }
            batch.append(OutgoingDatagram(Self.payload(100, seed: 10), to: to))
            #expect(try a.checkSend() > 0)
            #expect(try a.send(batch: batch) == 11)
            var got = [try await b.recv(timeout: 5000)]
            var largest = 0
            while got.count < 11 {
                let some = try b.receive(max: 16)
                largest = max(largest, some.count)
                if some.isEmpty { got.append(try await b.recv(timeout: 5000)) } else { got += some }
            }
            #expect(largest > 1, "one receive(max:) took several datagrams")
            #expect(got.map { $0.payload.bytes[0] } == Array(0...10))
            #expect(got.allSatisfy { $0.source == (try? a.sockname()) })
            #expect(got[10].truncated && got[10].payload.count == 64)
            #expect(try b.getstat().recvTruncated == 1)
            // A batch to the connected peer.
            try await a.connect(to: to)
            #expect(try a.send(batch: [OutgoingDatagram(bytes("x")), OutgoingDatagram(bytes("y"))]) == 2)
            #expect(try await b.recv(timeout: 5000).payload == bin("x"))
            #expect(try await b.recv(timeout: 5000).payload == bin("y"))
            a.close()
            b.close()
        }
    }

    // MARK: Ports

    @Test("a taken port is eaddrinuse; two sockets with reuseaddr share one")
    func addressInUse() async throws {
        try await Process.run {
            let a = try await Self.open()
            await #expect(throws: SocketError(.addressInUse)) { _ = try await Self.open(port: try a.port()) }
            let c = try await Self.open([.reuseaddr(true)])
            let d = try await Self.open([.reuseaddr(true)], port: try c.port())
            #expect(try d.port() == (try c.port()))
            // The same port on another local address is free.
            let other = try await UDPSocket.open(
                port: try a.port(), options: [.binary, .active(.passive), .localAddress(IPAddress(127, 0, 0, 2))],
                driver: POSIXDriver.shared)
            other.close()
            a.close()
            c.close()
            d.close()
        }
    }
}
