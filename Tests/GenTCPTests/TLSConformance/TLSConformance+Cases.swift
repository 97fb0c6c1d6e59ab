import GenTCP
import GenTCPCore
import GenTCPTLS
import TLSTestSupport
import Testing

// T5b-T14: the rest of tls-semantics.md §3-§8 on every backend. Each case says which section
// it follows; where GenTCP departs from OTP 25's ssl on purpose, the case asserts GenTCP's rule
// and names the departure.

/// Exact passive read by repeated `recv(0)`, returning the pieces (each one or more whole records).
private func recvPieces(_ socket: Socket, count: Int) async throws -> (bytes: [UInt8], sizes: [Int]) {
    var bytes: [UInt8] = []
    var sizes: [Int] = []
    while bytes.count < count {
        let piece = try await socket.recv(0, timeout: 30_000).bytes
        bytes += piece
        sizes.append(piece.count)
    }
    return (bytes, sizes)
}

extension TLSConformance.Records {
    @Test("T5b a 40000-byte send arrives in pieces of at most one record (16384), all bytes in order (§4, §5)", arguments: Backend.all)
    func recordCapsPieces(_ backend: Backend) async throws {
        try await backend.run { ctx in
            let (c, p) = try await ctx.tlsPair()
            let data = Pattern.bytes(count: 40_000)
            try await p.send(data)
            let (bytes, sizes) = try await recvPieces(c, count: data.count)
            #expect(bytes == data)
            #expect(sizes.allSatisfy { $0 <= 16_384 }, "piece sizes \(sizes)")
            #expect(sizes.count >= 3, "piece sizes \(sizes)")
            c.close()
            p.close()
        }
    }

    @Test("T5c recv(N) is exact across records and keeps the rest; a timed-out recv keeps its partial data (§5)", arguments: Backend.all)
    func exactRecvAcrossRecords(_ backend: Backend) async throws {
        try await backend.run { ctx in
            let (c, p) = try await ctx.tlsPair()
            try await p.send("abc")
            try await p.send("defgh")
            #expect(try await c.recv(4, timeout: 30_000) == bin("abcd"))
            #expect(try await c.recv(4, timeout: 30_000) == bin("efgh"))
            try await p.send("xy")
            await #expect(throws: SocketError.timeout) { _ = try await c.recv(5, timeout: 300) }
            try await p.send("zuv")
            #expect(try await c.recv(5, timeout: 30_000) == bin("xyzuv"))
            c.close()
            p.close()
        }
    }

    @Test("T5d 256 KiB each way at once, byte-exact (§5)", arguments: Backend.all)
    func bulkBothWays(_ backend: Backend) async throws {
        try await backend.run { ctx in
            let (c, p) = try await ctx.tlsPair()
            let up = Pattern.bytes(count: 256 * 1024, seed: 11)
            let down = Pattern.bytes(count: 256 * 1024, seed: 12)
            // Any process may send (gen_tcp's rule): two senders, and the owner reads both
            // directions, so neither side's window has to hold a whole direction.
            let upSender = ctx.spawn { () async throws -> Bool in
                try await c.send(up)
                return true
            }
            let downSender = ctx.spawn { () async throws -> Bool in
                try await p.send(down)
                return true
            }
            #expect(try await recvPieces(p, count: up.count).bytes == up)
            #expect(try await recvPieces(c, count: down.count).bytes == down)
            #expect(try await upSender.value() == true)
            #expect(try await downSender.value() == true)
            c.close()
            p.close()
        }
    }
}

extension TLSConformance {
    @Suite("T Calls")
    struct Calls {
        @Test("T6a recv on an active socket is einval; a second recv while one waits is ealready (§5, gen_tcp's rule)", arguments: Backend.all)
        func recvMisuse(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.active)])
                await #expect(throws: SocketError.invalidArgument) { _ = try await c.recv(0, timeout: 100) }
                try c.setopts([.active(.passive)])
                let waiting = ctx.spawn { () async throws -> Payload in try await c.recv(3, timeout: 30_000) }
                #expect(await ctx.waitUntil { c.recvIsWaiting })
                await #expect(throws: SocketError.alreadyInProgress) { _ = try await c.recv(3, timeout: 100) }
                try await p.send("one")
                #expect(try await waiting.value() == bin("one"))
                c.close()
                p.close()
            }
        }

        @Test("T6b active once: one ssl message, then passive until re-armed (§4)", arguments: Backend.all)
        func activeOnce(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.once)])
                try await p.send("first")
                #expect(await next(30_000) == .ssl(c, bin("first")))
                try await p.send("second")
                #expect(await next(500) == Msg.none)
                try c.setopts([.active(.once)])
                #expect(await next(30_000) == .ssl(c, bin("second")))
                c.close()
                p.close()
            }
        }

        @Test("T6c {active,N}: ssl_passive right after the Nth message; a close while passive shows after re-arming (§4)", arguments: Backend.all)
        func activeCount(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.count(2))])
                try await p.send("a")
                #expect(await next(30_000) == .ssl(c, bin("a")))
                try await p.send("b")
                #expect(await next(30_000) == .ssl(c, bin("b")))
                #expect(await next(30_000) == .sslPassive(c))
                try await p.send("c")
                p.close()
                #expect(await next(500) == Msg.none)
                try c.setopts([.active(.count(5))])
                #expect(await next(30_000) == .ssl(c, bin("c")))
                #expect(await next(30_000) == .sslClosed(c))
                c.close()
            }
        }

        @Test("T6d the active counter follows gen_tcp's arithmetic, not OTP ssl's (a negative step that stays positive keeps it active)", arguments: Backend.all)
        func activeArithmetic(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.count(3))])
                try c.setopts([.active(.count(-1))])
                #expect(try c.getopt(.active) == .active(.count(2)))
                try c.setopts([.active(.count(2))])
                #expect(try c.getopt(.active) == .active(.count(4)))
                try c.setopts([.active(.count(0))])
                #expect(try c.getopt(.active) == .active(.count(4)))
                try c.setopts([.active(.count(-6))])
                #expect(await next(30_000) == .sslPassive(c))
                #expect(try c.getopt(.active) == .active(.passive))
                c.close()
                p.close()
            }
        }

        @Test("T7a the peer's close_notify after data: the data, then closed on every recv and on send (§6)", arguments: Backend.all)
        func peerCloseNotify(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair()
                try await p.send("last words")
                p.close()
                #expect(try await c.recv(0, timeout: 30_000) == bin("last words"))
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await c.send("late") }
                c.close()
            }
        }

        @Test("T7b closing with unread data still ends cleanly: the peer reads closed, not a reset (§6)", arguments: Backend.all)
        func closeWithUnreadInput(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair()
                for _ in 0..<3 { try await p.send(Pattern.bytes(count: 1000)) }
                try await c.send("bye")
                // Let P's records reach C's driver, unread.
                #expect(try await p.recv(3, timeout: 30_000) == bin("bye"))
                await ctx.sleep(200)
                c.close()
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }

        @Test("T7c shutdown(write) sends close_notify, not a bare FIN: the peer reads the data then closed; no half-close, as OTP (§6)", arguments: Backend.all)
        func shutdownWrite(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair()
                try await c.send("request")
                try c.shutdown(.write)
                await #expect(throws: SocketError.closed) { try await c.send("more") }
                #expect(try await p.recv(7, timeout: 30_000) == bin("request"))
                // closed, not truncated: the close_notify came before the FIN.
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await p.send("response") }
                p.close()
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("T7d calls after close: close again ok, the rest closed (§8)", arguments: Backend.all)
        func callsAfterClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.active)])
                c.close()
                c.close()
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 0) }
                #expect(throws: SocketError.closed) { try c.setopts([.active(.once)]) }
                #expect(throws: SocketError.closed) { _ = try c.getopts([.active]) }
                #expect(throws: SocketError.closed) { try c.shutdown(.write) }
                #expect(throws: SocketError.closed) { _ = try c.negotiatedProtocol() }
                #expect(throws: SocketError.closed) { _ = try c.peerCertificate() }
                #expect(throws: SocketError.closed) { _ = try c.connectionInformation() }
                // No stray message is left behind.
                #expect(await next(300) == Msg.none)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }

        @Test("T7e a peer reset is an error, never a clean close: econnreset (§6)", arguments: Backend.all)
        func peerReset(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair()
                try await p.send("partial")
                #expect(try await c.recv(7, timeout: 30_000) == bin("partial"))
                try p.setopts([.linger(0)])
                p.close()
                let error = await #expect(throws: SocketError.self) { _ = try await c.recv(0, timeout: 30_000) }
                // A module reports a reset as the link's close (it tells the host no more), so on
                // at the TLS layer sees a transport end without close_notify: truncated. Never closed.
                let expected: SocketError.Reason = ctx.backend.hasPrefix("at-") ? .truncated : .connectionReset
                #expect(error?.reason == expected)
                c.close()
            }
        }

        @Test("T8 controlling process: not_owner for others; queued ssl messages move to the new owner (§7, gen_tcp's rules)", arguments: Backend.all)
        func controllingProcess(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(client: [.binary, .active(.once)])
                let stranger = ctx.spawn { () async throws -> SocketError? in
                    do { try c.controllingProcess(Process.current); return nil } catch { return error as? SocketError }
                }
                #expect(try await stranger.value()?.reason == .notOwner)
                try await p.send("queued")
                // Let the message reach our mailbox (if it has not yet, it goes to the heir
                // directly: the assertion below holds either way, as it must).
                await ctx.sleep(300)
                let me = Process.current
                let heir = ctx.spawn { () async throws -> Msg in
                    let m = await next(30_000)
                    me.send("done")
                    return m
                }
                await ctx.sleep(200)
                try c.controllingProcess(heir.process)
                #expect(try await heir.value() == .ssl(c, bin("queued")))
                #expect(await nextUser(String.self, 30_000) == "done")
                #expect(await nextSocketMessage(300) == Msg.none)
                c.close()
                p.close()
            }
        }
    }
}

extension TLSConformance {
    @Suite("T Handshake")
    struct Handshake {
        @Test("T9a ALPN: the server's order wins, both sides see it; none agreed: protocol_not_negotiated on both (§8)", arguments: Backend.all)
        func alpn(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(
                    clientTLS: try TLSTestContexts.client(alpn: ["http/1.1", "h2"]),
                    serverTLS: try TLSTestContexts.server(alpn: ["h2", "http/1.1"]))
                #expect(try c.negotiatedProtocol() == "h2")
                #expect(try p.negotiatedProtocol() == "h2")
                c.close()
                p.close()
                let (c2, p2) = try await ctx.tlsPair(clientTLS: try TLSTestContexts.client(alpn: ["h2"]))
                #expect(throws: SocketError(.protocolNotNegotiated)) { _ = try c2.negotiatedProtocol() }
                #expect(throws: SocketError(.protocolNotNegotiated)) { _ = try p2.negotiatedProtocol() }
                c2.close()
                p2.close()
            }
        }

        @Test("T9b peer certificates: the client sees the server's; the server sees none (no_peercert), then the client's with mutual TLS (§8)", arguments: Backend.all)
        func peerCertificates(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair()
                let serverCertificate = try c.peerCertificate()
                #expect(serverCertificate.count > 100 && serverCertificate.first == 0x30)
                #expect(throws: SocketError(.noPeerCertificate)) { _ = try p.peerCertificate() }
                #expect(try c.connectionInformation().serverName == nil)
                c.close()
                p.close()
                let (mc, mp) = try await ctx.tlsPair(
                    clientTLS: try TLSTestContexts.client(certificate: "client"),
                    serverTLS: try TLSTestContexts.server(clientAuthentication: .required))
                try await mc.send("hi")
                #expect(try await mp.recv(2, timeout: 30_000) == bin("hi"))
                let clientCertificate = try mp.peerCertificate()
                #expect(clientCertificate.first == 0x30 && clientCertificate != serverCertificate)
                #expect(try mc.peerCertificate() == serverCertificate)
                mc.close()
                mp.close()
            }
        }

        @Test("T9c versions: 1.2 when the client is limited to it; disjoint sets fail with protocol_version (§8)", arguments: Backend.all)
        func versions(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.tlsPair(clientTLS: try TLSTestContexts.client(maximum: .v1_2))
                #expect(try c.connectionInformation().protocolVersion == .v1_2)
                #expect(try p.connectionInformation().protocolVersion == .v1_2)
                try await c.send("tls12")
                #expect(try await p.recv(5, timeout: 30_000) == bin("tls12"))
                c.close()
                p.close()

                let l = try ctx.listen()
                defer { l.close() }
                let serverContext = try TLSTestContexts.server(maximum: .v1_2)
                let acceptor = ctx.spawn { () async throws -> SocketError? in
                    do {
                        _ = try await l.accept(tls: serverContext, timeout: 30_000, handshakeTimeout: 30_000)
                        return nil
                    } catch { return error as? SocketError }
                }
                let error = await #expect(throws: SocketError.self) {
                    _ = try await Socket.connect(
                        ctx.serverHost, port: try l.port(), options: [.binary],
                        tls: try TLSTestContexts.client(minimum: .v1_3), timeout: 30_000, driver: ctx.clientDriver)
                }
                #expect(error?.reason == .tlsAlert)
                #expect(error?.alert == .protocolVersion)
                #expect(try await acceptor.value()?.alert == .protocolVersion)
            }
        }

        @Test("T10 a server that never answers the ClientHello: timeout within the handshake limit, nothing left open (§3)", arguments: Backend.all)
        func silentServer(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                defer { l.close() }
                let holder = ctx.spawn { () async throws -> Payload in
                    let p = try await l.accept(timeout: 30_000)
                    // Reads the ClientHello and says nothing; returns the end it sees.
                    var seen: [UInt8] = []
                    do {
                        while true { seen += try await p.recv(0, timeout: 30_000).bytes }
                    } catch {
                        p.close()
                        return .binary(seen)
                    }
                }
                let start = ctx.now
                await #expect(throws: SocketError.timeout) {
                    _ = try await Socket.connect(
                        ctx.serverHost, port: try l.port(), options: [.binary],
                        tls: try TLSTestContexts.client(), timeout: 5000, driver: ctx.clientDriver)
                }
                let elapsed = ctx.elapsedMilliseconds(since: start)
                #expect(elapsed >= 4900, "gave up after \(elapsed) ms")
                // The abandoned connection is closed: the silent server sees its end.
                let hello = try await holder.value().bytes
                #expect(hello.first == 0x16, "a TLS handshake record came first")
            }
        }

        @Test("T11 a client that connects and never speaks: the server's handshake times out; the listener keeps accepting (§3)", arguments: Backend.all)
        func silentClient(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                defer { l.close() }
                let serverContext = try TLSTestContexts.server()
                let acceptor = ctx.spawn { () async throws -> SocketError? in
                    do {
                        _ = try await l.accept(tls: serverContext, timeout: 30_000, handshakeTimeout: 1000)
                        return nil
                    } catch { return error as? SocketError }
                }
                let mute = try await ctx.connect(port: try l.port(), [.binary, .active(.passive)], timeout: 30_000)
                #expect(try await acceptor.value()?.reason == .timeout)
                await #expect(throws: SocketError.closed) { _ = try await mute.recv(0, timeout: 30_000) }
                mute.close()
                let (c, p) = try await ctx.tlsPairOn(l)
                try await c.send("after")
                #expect(try await p.recv(5, timeout: 30_000) == bin("after"))
                c.close()
                p.close()
            }
        }

        @Test("T12 a plaintext answer to the ClientHello: a generated tls_alert, no data, no hang (§3)", arguments: Backend.all)
        func plaintextServer(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                defer { l.close() }
                let responder = ctx.spawn { () async throws -> Bool in
                    let p = try await l.accept(timeout: 30_000)
                    _ = try await p.recv(0, timeout: 30_000)
                    try await p.send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    _ = try? await p.recv(0, timeout: 30_000)
                    p.close()
                    return true
                }
                let error = await #expect(throws: SocketError.self) {
                    _ = try await Socket.connect(
                        ctx.serverHost, port: try l.port(), options: [.binary],
                        tls: try TLSTestContexts.client(), timeout: 30_000, driver: ctx.clientDriver)
                }
                #expect(error?.reason == .tlsAlert && error?.alertOrigin == .generated, "\(String(describing: error))")
                #expect(try await responder.value())
            }
        }
    }
}

extension TestContext {
    /// A TLS pair on an existing listener `l` (which stays open).
    func tlsPairOn(_ l: ListenSocket) async throws -> (c: Socket, p: Socket) {
        let serverContext = try TLSTestContexts.server()
        let me = Process.current
        let acceptor = spawn { () async throws -> Socket in
            let p = try await l.accept(tls: serverContext, timeout: 30_000, handshakeTimeout: 30_000)
            try p.controllingProcess(me)
            return p
        }
        let c = try await Socket.connect(
            serverHost, port: try l.port(), options: [.binary, .active(.passive)], tls: try TLSTestContexts.client(),
            timeout: 30_000, driver: clientDriver)
        return (c, try await acceptor.value())
    }
}
