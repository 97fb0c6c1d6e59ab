import GenTCP
import GenTCPCore
import Testing

extension UDPConformance {
    @Suite("U Connect, send forms, ICMP, batches")
    struct Connect {
        @Test("U40 connect: peername, send without a destination, the inbound filter", arguments: Backend.all)
        func connectFilters(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let third = try await ctx.openPeer()
                let cAddress = SocketAddress(ctx.clientAddress, port: try c.port())
                await #expect(throws: SocketError.invalidArgument) { try await c.send(bytes("nowhere")) }
                let sender = try await c.connect(.address(ctx.serverAddress), port: try p.port())
                #expect(try c.peername() == (try ctx.address(of: p)))
                #expect(sender.peer == (try ctx.address(of: p)))
                try await c.send(bytes("one"))
                try await sender.send(bytes("two"))
                #expect(try await p.recv(timeout: 5000).payload == bin("one"))
                #expect(try await p.recv(timeout: 5000).payload == bin("two"))
                // The third socket's datagram is dropped (not counted); the peer's arrives.
                try await third.send(bytes("stranger"), to: cAddress)
                try await p.send(bytes("peer"), to: cAddress)
                let d = try await c.recv(timeout: 5000)
                #expect(d.payload == bin("peer"))
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(timeout: 200) }
                #expect(try c.getstat().recvDropped == 0)
                // A different destination on a connected socket is eisconn (a departure).
                await #expect(throws: SocketError(.alreadyConnected)) { try await c.send(bytes("x"), to: try ctx.address(of: third)) }
                try await c.send(bytes("same"), to: try ctx.address(of: p))
                #expect(try await p.recv(timeout: 5000).payload == bin("same"))
                c.close(); p.close(); third.close()
            }
        }

        @Test("U41 disconnect lets everyone in again; reconnect keeps the local port", arguments: Backend.all)
        func disconnect(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let third = try await ctx.openPeer()
                let port = try c.port()
                let sender = try await c.connect(to: try ctx.address(of: p))
                try await c.connect(to: try ctx.address(of: third))
                #expect(try c.port() == port)
                await #expect(throws: SocketError(.alreadyConnected)) { try await sender.send(bytes("old peer")) }
                try await c.disconnect()
                #expect(throws: SocketError.notConnected) { _ = try c.peername() }
                await #expect(throws: SocketError.invalidArgument) { try await c.send(bytes("x")) }
                let cAddress = SocketAddress(ctx.clientAddress, port: port)
                try await third.send(bytes("from third"), to: cAddress)
                try await p.send(bytes("from p"), to: cAddress)
                var got = Set<[UInt8]>()
                for _ in 0..<2 { got.insert(try await c.recv(timeout: 5000).payload.bytes) }
                #expect(got == [bytes("from third"), bytes("from p")])
                try await c.disconnect()
                c.close(); p.close(); third.close()
            }
        }

        @Test("U42 connect errors leave the previous peer", arguments: Backend.all)
        func connectErrors(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                try await c.connect(to: try ctx.address(of: p))
                await #expect(throws: SocketError.badArgument) { try await c.connect(.address(ctx.serverAddress), port: 70000) }
                await #expect(throws: SocketError.invalidArgument) { try await c.connect(.address(ctx.serverAddress), port: 0) }
                await #expect(throws: SocketError(.addressFamilyNotSupported)) { try await c.connect(.address(.loopbackV6), port: 9) }
                await #expect(throws: SocketError(.nonExistentDomain)) { try await c.connect("no-such-host.invalid", port: 9) }
                #expect(try c.peername() == (try ctx.address(of: p)))
                c.close(); p.close()
            }
        }

        @Test("U43 send forms: a host name, bad ports, the other family", arguments: Backend.all)
        func sendForms(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                if let name = ctx.serverHostName {
                    try await c.send(bytes("by name"), to: .name(name), port: try p.port())
                    #expect(try await p.recv(timeout: 5000).payload == bin("by name"))
                }
                try await c.send("text", to: .address(ctx.serverAddress), port: try p.port())
                #expect(try await p.recv(timeout: 5000).payload == bin("text"))
                await #expect(throws: SocketError(.nonExistentDomain)) { try await c.send(bytes("x"), to: "no-such-host.invalid", port: 9) }
                await #expect(throws: SocketError.badArgument) { try await c.send(bytes("x"), to: .address(ctx.serverAddress), port: 65536) }
                await #expect(throws: SocketError.invalidArgument) { try await c.send(bytes("x"), to: .address(ctx.serverAddress), port: 0) }
                await #expect(throws: SocketError(.addressFamilyNotSupported)) { try await c.send(bytes("x"), to: .address(.loopbackV6), port: 9) }
                #expect(try c.getstat().sendCnt == 1 + (ctx.serverHostName == nil ? 0 : 1))
                c.close(); p.close()
            }
        }

        @Test("U44 ICMP port unreachable: once on a connected socket, to recv", arguments: Backend.all)
        func icmpConnectedPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let c = try await ctx.openClient()
                try await c.connect(.address(ctx.serverAddress), port: try await ctx.unusedUDPPort())
                #expect(await refusedByRecv(c))
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(timeout: 200) }
                // The socket still works, and hears of the next one too.
                #expect(await refusedByRecv(c))
                c.close()
            }
        }

        @Test("U45 ICMP in active mode is udpError; the mode is kept", arguments: Backend.all)
        func icmpConnectedActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let c = try await ctx.openClient([.binary, .active(.once)])
                try await c.connect(.address(ctx.serverAddress), port: try await ctx.unusedUDPPort())
                #expect(await refusedByMessage(c))
                #expect(try c.getopt(.active) == .active(.once))
                c.close()
            }
        }

        @Test("U46 an unconnected socket never hears of ICMP errors", arguments: Backend.all)
        func icmpUnconnected(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let c = try await ctx.openClient()
                let port = try await ctx.unusedUDPPort()
                for _ in 0..<3 { try await c.send(bytes("anyone?"), to: .address(ctx.serverAddress), port: port) }
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(timeout: 300) }
                try await c.send(bytes("ok"), to: .address(ctx.serverAddress), port: port)
                c.close()
            }
        }

        @Test("U47 batches: send(batch:) and receive(max:), without waiting", arguments: Backend.all)
        func batches(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                #expect(try p.receive(max: 8) == [])
                #expect(try c.checkSend() > 0)
                let to = try ctx.address(of: p)
                let batch = (0..<10).map { OutgoingDatagram(numbered($0, size: 32), to: to) }
                var sent = 0
                while sent < batch.count {
                    sent += try c.send(batch: Array(batch[sent...]))
                    if sent < batch.count { await ctx.sleep(5) }
                }
                #expect(try c.getstat().sendCnt == 10)
                // The first waits; the rest are taken in batches.
                var got = [sequenceNumber(try await p.recv(timeout: 5000).payload.bytes)]
                var rounds = 0
                while got.count < 10, rounds < 500 {
                    got += try p.receive(max: 4).map { sequenceNumber($0.payload.bytes) }
                    rounds += 1
                    if got.count < 10 { await ctx.sleep(5) }
                }
                #expect(got == (0..<10).map { Optional($0) })
                #expect(try p.getstat().recvCnt == 10)
                #expect(throws: SocketError.badArgument) { _ = try p.receive(max: 0) }
                // Batch destinations are checked: a bad first one throws, nothing is sent.
                #expect(throws: SocketError(.addressFamilyNotSupported)) {
                    _ = try c.send(batch: [OutgoingDatagram([1], to: SocketAddress(.loopbackV6, port: 9))])
                }
                c.close(); p.close()
            }
        }

        @Test("U48 a thousand datagrams arrive whole and in order", arguments: Backend.all)
        func ordering(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.passive), .recbuf(262_144)])
                let to = try ctx.address(of: p)
                let receiver = ctx.spawn { () async throws -> [Int] in
                    var got: [Int] = []
                    while got.count < 1000, let d = try? await p.recv(timeout: 5000) {
                        guard let n = sequenceNumber(d.payload.bytes) else { break }
                        got.append(n)
                    }
                    return got
                }
                for i in 0..<1000 {
                    try await c.send(numbered(i, size: 4 + i % 200), to: to)
                    if i % 20 == 19 { await ctx.sleep(1) }
                    // Never more than 200 ahead of the reader: a starved reader on a loaded
                    // machine must not turn this into a queue-overflow test (U28 is that one).
                    while i % 50 == 49, try p.getstat().recvCnt + 200 < UInt64(i) { await ctx.sleep(2) }
                }
                #expect(try await receiver.value() == Array(0..<1000))
                c.close(); p.close()
            }
        }

        @Test("U49 IPv6: echo, and families never mix", arguments: Backend.all)
        func ipv6(_ backend: Backend) async throws {
            try await backend.run { ctx in
                guard let v6 = ctx.ipv6 else { try Test.cancel("\(backend.name) has no IPv6") }
                let drivers = try ctx.udpDrivers()
                let p = try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(v6.serverAddress)], driver: drivers.server)
                let c = try await UDPSocket.open(options: [.binary, .active(.passive), .inet6], driver: drivers.client)
                #expect(try c.getopt(.ipVersion) == .ipVersion(.ipv6Only))
                try await c.send(bytes("six"), to: SocketAddress(v6.serverAddress, port: try p.port()))
                let d = try await p.recv(timeout: 5000)
                #expect(d.payload == bin("six"))
                #expect(d.source == SocketAddress(v6.clientAddress, port: try c.port()))
                await #expect(throws: SocketError(.addressFamilyNotSupported)) {
                    try await c.send(bytes("four"), to: SocketAddress(ctx.serverAddress, port: 9))
                }
                #expect(c.maximumDatagramSize >= 1232)
                c.close(); p.close()
            }
        }
    }
}
