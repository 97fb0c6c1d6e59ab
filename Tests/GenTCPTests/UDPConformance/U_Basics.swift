import GenTCP
import GenTCPCore
import Testing

extension UDPConformance {
    @Suite("U Basics: open, datagrams, recv, close")
    struct Basics {
        @Test("U1 open defaults", arguments: Backend.all)
        func openDefaults(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let c = try await ctx.openClient([])
                #expect(try c.getopts([.active, .mode, .buffer, .broadcast, .multicastTTL, .multicastLoop])
                        == [.active(.active), .mode(.list), .buffer(8192), .broadcast(false), .multicastTTL(1), .multicastLoop(true)])
                #expect(try c.getstat() == Statistics())
                #expect(throws: SocketError.notConnected) { _ = try c.peername() }
                #expect(try c.port() > 0)
                #expect(c.controllingProcess == Process.current)
                c.close()
            }
        }

        @Test("U2 a given port, eaddrinuse, and reuseaddr on both sockets", arguments: Backend.all)
        func givenPort(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let first = try await ctx.openPeer()
                let port = try first.port()
                await #expect(throws: SocketError(.addressInUse)) { _ = try await ctx.openPeer(port: port) }
                first.close()
                // Closed: the port is free at once.
                let again = try await ctx.openPeer([.reuseaddr(true)], port: port)
                #expect(try again.port() == port)
                // Only the newcomer sets reuseaddr: still in use.
                await #expect(throws: SocketError(.addressInUse)) { _ = try await ctx.openPeer([], port: port) }
                let shared = try await ctx.openPeer([.reuseaddr(true)], port: port)
                #expect(try shared.port() == port)
                shared.close()
                again.close()
            }
        }

        @Test("U3 bad open arguments are badarg", arguments: Backend.all)
        func badOpen(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let driver = try ctx.udpDrivers().client
                for (port, options) in [(70000, []), (-1, []), (0, [Option.active(.count(40000))]), (0, [.buffer(0)]),
                                        (0, [.inet6, .localAddress(.loopbackV4)]), (0, [.ttl(0)]), (0, [.backlog(5)]),
                                        (0, [.ipVersion(.ipv4Preferred)])] as [(Int, [Option])] {
                    await #expect(throws: SocketError.badArgument, "open(\(port), \(options))") {
                        _ = try await UDPSocket.open(port: port, options: options, driver: driver)
                    }
                }
            }
        }

        @Test("U4 one send is one datagram, with its sender", arguments: Backend.all)
        func boundaries(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let to = try ctx.address(of: p)
                for text in ["abc", "defg", "hi"] { try await c.send(bytes(text), to: to) }
                let from = SocketAddress(ctx.clientAddress, port: try c.port())
                for text in ["abc", "defg", "hi"] {
                    let d = try await p.recv(timeout: 5000)
                    #expect(d.payload == bin(text))
                    #expect(d.source == from)
                    #expect(!d.truncated)
                }
                // And back, to the sender's address and port.
                try await p.send(bytes("reply"), to: from)
                let r = try await c.recv(timeout: 5000)
                #expect(r.payload == bin("reply"))
                #expect(r.source == to)
                c.close()
                p.close()
            }
        }

        @Test("U5 an empty datagram is a real, empty delivery", arguments: Backend.all)
        func emptyDatagram(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                try await c.send([], to: try ctx.address(of: p))
                try await c.send(chunks: [[], []], to: .address(ctx.serverAddress), port: try p.port())
                #expect(try await p.recv(timeout: 5000).payload == .binary([]))
                #expect(try await p.recv(timeout: 5000).payload == .binary([]))
                try p.setopts(.active(.active))
                try await c.send([], to: try ctx.address(of: p))
                #expect(datagram(await ctx.nextDatagram(), of: p)?.payload == .binary([]))
                let stats = try p.getstat()
                #expect(stats.recvCnt == 3)
                #expect(stats.recvOct == 0)
                #expect(try c.getstat().sendCnt == 3)
                c.close()
                p.close()
            }
        }

        @Test("U6 the data type follows mode; chunks make one datagram", arguments: Backend.all)
        func modeAndChunks(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.list, .active(.passive)])
                try await c.send(chunks: [bytes("ab"), bytes("cd"), bytes("e")], to: .address(ctx.serverAddress), port: try p.port())
                #expect(try await p.recv(timeout: 5000).payload == list("abcde"))
                try p.setopts(.binary)
                try await c.send(bytes("xyz"), to: try ctx.address(of: p))
                #expect(try await p.recv(timeout: 5000).payload == bin("xyz"))
                c.close()
                p.close()
            }
        }

        @Test("U7 recv's length is ignored, as in OTP's inet backend", arguments: Backend.all)
        func lengthIgnored(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let payload = numbered(1, size: 100)
                try await c.send(payload, to: try ctx.address(of: p))
                #expect(try await p.recv(1, timeout: 5000).payload.bytes == payload)
                await #expect(throws: SocketError.badArgument) { _ = try await p.recv(-1, timeout: 10) }
                c.close()
                p.close()
            }
        }

        @Test("U8 recv timeout leaves the socket usable; timeout 0 polls", arguments: Backend.all)
        func recvTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let start = ctx.now
                await #expect(throws: SocketError.timeout) { _ = try await p.recv(timeout: 100) }
                #expect(ctx.elapsedMilliseconds(since: start) >= 99)
                await #expect(throws: SocketError.timeout) { _ = try await p.recv(timeout: 0) }
                try await c.send(bytes("late"), to: try ctx.address(of: p))
                #expect(try await p.recv(timeout: 5000).payload == bin("late"))
                c.close()
                p.close()
            }
        }

        @Test("U9 recv on an active socket is einval; a second recv is ealready", arguments: Backend.all)
        func recvRefusals(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let active = try await ctx.openClient([.active(.once)])
                await #expect(throws: SocketError.invalidArgument) { _ = try await active.recv(timeout: 10) }
                active.close()
                let first = ctx.spawn { try await p.recv(timeout: 30_000) }
                #expect(await ctx.waitUntil { p.recvIsWaiting })
                await #expect(throws: SocketError.alreadyInProgress) { _ = try await p.recv(timeout: 10) }
                try await c.send(bytes("one"), to: try ctx.address(of: p))
                #expect(try await first.value().payload == bin("one"))
                c.close()
                p.close()
            }
        }

        @Test("U10 close from another process wakes a waiting recv with closed", arguments: Backend.all)
        func closeWakesRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let p = try await ctx.openPeer()
                let waiter = ctx.spawn { () async throws -> SocketError? in
                    do { _ = try await p.recv(timeout: 10_000); return nil } catch let e as SocketError { return e }
                }
                await ctx.sleep(50)
                let closer = ctx.spawn { p.close() }
                try await closer.value()
                // The value in the message: nil (a datagram arrived) and `timeout` fail differently.
                let got = try await waiter.value()
                #expect(got == .closed, "recv ended with \(got.map { "\($0)" } ?? "a datagram")")
            }
        }

        @Test("U11 close: ok twice and from anyone; what works afterwards", arguments: Backend.all)
        func afterClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.active)])
                try await c.send(bytes("kept"), to: try ctx.address(of: p))
                // Wait until the message is in our mailbox, then close: it stays there.
                let m = await ctx.nextDatagram()
                #expect(datagram(m, of: p)?.payload == bin("kept"))
                try await c.send(bytes("in mailbox"), to: try ctx.address(of: p))
                await ctx.sleep(100)
                let other = ctx.spawn { p.close() }
                try await other.value()
                p.close()
                #expect(datagram(await ctx.nextDatagram(1000), of: p)?.payload == bin("in mailbox"))
                await #expect(throws: SocketError.closed) { try await p.send(bytes("x"), to: SocketAddress(ctx.clientAddress, port: 9)) }
                await #expect(throws: SocketError.closed) { _ = try await p.recv(timeout: 10) }
                await #expect(throws: SocketError.closed) { try await p.connect(.address(ctx.clientAddress), port: 9) }
                #expect(throws: SocketError.invalidArgument) { try p.setopts(.active(.once)) }
                #expect(throws: SocketError.invalidArgument) { _ = try p.getopts([.active]) }
                #expect(throws: SocketError.invalidArgument) { _ = try p.getstat() }
                #expect(throws: SocketError.invalidArgument) { _ = try p.sockname() }
                #expect(throws: SocketError.invalidArgument) { _ = try p.peername() }
                #expect(throws: SocketError.closed) { try p.controllingProcess(Process.current) }
                c.close()
            }
        }

        @Test("U12 getstat counts deliveries and sends", arguments: Backend.all)
        func counters(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.passive), .buffer(10)])
                let to = try ctx.address(of: p)
                try await c.send(bytes("12345"), to: to)
                // A modem cannot send an empty datagram (enotsup, counting nothing): one byte there.
                let extra: UInt64 = ctx.backend.hasPrefix("at-") ? 1 : 0
                if extra == 1 {
                    await #expect(throws: SocketError(.notSupported)) { try await c.send([], to: to) }
                    try await c.send(bytes("x"), to: to)
                } else {
                    try await c.send([], to: to)
                }
                try await c.send([UInt8](repeating: 7, count: 30), to: to)
                for _ in 0..<3 { _ = try await p.recv(timeout: 5000) }
                let r = try p.getstat()
                #expect(r.recvCnt == 3)
                #expect(r.recvOct == 15 + extra)
                #expect(r.recvMax == 10)
                #expect(r.recvTruncated == 1)
                let s = try c.getstat()
                #expect(s.sendCnt == 3)
                #expect(s.sendOct == 35 + extra)
                #expect(s.sendMax == 30)
                #expect(s.sendPend == 0)
                c.close()
                p.close()
            }
        }

        @Test("U13 setopts is atomic; gen_tcp names are einval", arguments: Backend.all)
        func setoptsAtomic(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let c = try await ctx.openClient()
                #expect(throws: SocketError.invalidArgument) { try c.setopts([.buffer(100), .ttl(300)]) }
                #expect(try c.getopt(.buffer) == .buffer(8192))
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.nodelay(true)) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.active, .nodelay]) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.addMembership]) }
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.localPort(5)) }
                try c.setopts([.buffer(100), .ttl(9), .broadcast(true)])
                #expect(try c.getopts([.buffer, .broadcast]) == [.buffer(100), .broadcast(true)])
                c.close()
            }
        }

        @Test("U14 buffer cuts long datagrams; recbuf raises an implicit buffer", arguments: Backend.all)
        func truncation(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.passive), .buffer(10)])
                let to = try ctx.address(of: p)
                try await c.send(numbered(1, size: 100), to: to)
                try await c.send(bytes("next"), to: to)
                let cut = try await p.recv(timeout: 5000)
                #expect(cut.payload.bytes == Array(numbered(1, size: 100)[0..<10]))
                #expect(cut.truncated)
                #expect(try await p.recv(timeout: 5000).payload == bin("next"))
                // Active mode cuts the same way, one message per datagram.
                try p.setopts(.active(.once))
                try await c.send(numbered(2, size: 50), to: to)
                let m = datagram(await ctx.nextDatagram(), of: p)
                #expect(m?.payload.count == 10)
                #expect(m?.truncated == true)
                #expect(try p.getstat().recvTruncated == 2)
                // OTP's recbuf rule on an implicit buffer: raise to min(recbuf, 65536), never lower.
                let q = try await ctx.openClient([.recbuf(100_000)])
                #expect(try q.getopt(.buffer) == .buffer(65536))
                try q.setopts(.recbuf(1000))
                #expect(try q.getopt(.buffer) == .buffer(65536))
                let r = try await ctx.openClient([.buffer(3000), .recbuf(100_000)])
                #expect(try r.getopt(.buffer) == .buffer(3000))
                c.close(); p.close(); q.close(); r.close()
            }
        }

        @Test("U15 the largest datagram goes whole; one byte more is emsgsize", arguments: Backend.all)
        func largest(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.passive), .buffer(65536), .recbuf(262_144)])
                let max = c.maximumDatagramSize
                #expect(max > 0)
                let big = Pattern.bytes(count: max)
                try await c.send(big, to: try ctx.address(of: p))
                let d = try await p.recv(timeout: 10_000)
                #expect(d.payload.bytes == big)
                #expect(!d.truncated)
                await #expect(throws: SocketError(.messageTooLong)) {
                    try await c.send([UInt8](repeating: 0, count: max + 1), to: try ctx.address(of: p))
                }
                #expect(try c.getstat().sendCnt == 1)
                c.close()
                p.close()
            }
        }
    }
}
