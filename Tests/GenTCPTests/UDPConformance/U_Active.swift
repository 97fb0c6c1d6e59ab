import GenTCP
import GenTCPCore
import Testing

extension UDPConformance {
    @Suite("U Active modes and ownership")
    struct Active {
        @Test("U20 active true: every datagram is a message, in order", arguments: Backend.all)
        func activeTrue(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary])
                let to = try ctx.address(of: p)
                let from = SocketAddress(ctx.clientAddress, port: try c.port())
                for i in 0..<20 { try await c.send(numbered(i, size: 4 + i), to: to) }
                for i in 0..<20 {
                    let d = datagram(await ctx.nextDatagram(), of: p)
                    #expect(d?.payload.bytes == numbered(i, size: 4 + i))
                    #expect(d?.source == from)
                }
                #expect(try p.getopt(.active) == .active(.active))
                c.close()
                p.close()
            }
        }

        @Test("U21 active once: one message, the rest wait; re-arm delivers the next", arguments: Backend.all)
        func activeOnce(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.once)])
                let to = try ctx.address(of: p)
                for i in 0..<3 { try await c.send(numbered(i), to: to) }
                #expect(sequenceNumber(datagram(await ctx.nextDatagram(), of: p)?.payload.bytes ?? []) == 0)
                #expect(await next(200) == .none)
                #expect(try p.getopt(.active) == .active(.passive))
                #expect(sequenceNumber(try await p.recv(timeout: 5000).payload.bytes) == 1)
                try p.setopts(.active(.once))
                #expect(sequenceNumber(datagram(await ctx.nextDatagram(), of: p)?.payload.bytes ?? []) == 2)
                c.close()
                p.close()
            }
        }

        @Test("U22 active N counts down and ends with udpPassive", arguments: Backend.all)
        func activeN(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.count(2))])
                let to = try ctx.address(of: p)
                for i in 0..<3 { try await c.send(numbered(i), to: to) }
                #expect(datagram(await ctx.nextDatagram(), of: p) != nil)
                #expect(datagram(await ctx.nextDatagram(), of: p) != nil)
                #expect(await next() == .udpPassive(p))
                #expect(await next(200) == .none)
                // Adding to the counter; 0 or less sends udp_passive at once; above 32767 is einval.
                try p.setopts(.active(.count(-5)))
                #expect(await next() == .udpPassive(p))
                try p.setopts(.active(.count(32767)))
                #expect(throws: SocketError.invalidArgument) { try p.setopts(.active(.count(1))) }
                #expect(sequenceNumber(datagram(await ctx.nextDatagram(), of: p)?.payload.bytes ?? []) == 2)
                #expect(try p.getopt(.active) == .active(.count(32766)))
                c.close()
                p.close()
            }
        }

        @Test("U23 active 0 at open sends udpPassive at once", arguments: Backend.all)
        func activeZeroAtOpen(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let p = try await ctx.openPeer([.active(.count(0))])
                #expect(await next() == .udpPassive(p))
                p.close()
            }
        }

        @Test("U24 controlling process: not_owner, badarg for a dead process, pending datagrams move", arguments: Backend.all)
        func controllingProcess(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.count(2))])
                let to = try ctx.address(of: p)
                // A non-owner may not hand it on, but naming the owner is ok.
                let me = Process.current
                let stranger = ctx.spawn { () async throws -> [SocketError?] in
                    var out: [SocketError?] = []
                    do throws(SocketError) { try p.controllingProcess(Process.current); out.append(nil) } catch { out.append(error) }
                    do throws(SocketError) { try p.controllingProcess(me); out.append(nil) } catch { out.append(error) }
                    return out
                }
                #expect(try await stranger.value() == [SocketError.notOwner, nil])
                // Two datagrams arrive as messages (then udpPassive), and move to the new owner;
                // udpPassive stays behind.
                try await c.send(bytes("a"), to: to)
                try await c.send(bytes("b"), to: to)
                while Process.current.messageCount < 3 { await ctx.sleep(10) }
                let heir = ctx.spawn { () async throws -> [Msg] in
                    var got: [Msg] = []
                    while let m = await nextUserOrSocket(5000) { got.append(m); if got.count == 2 { break } }
                    return got
                }
                try p.controllingProcess(heir.process)
                let moved = try await heir.value()
                #expect(moved.compactMap { datagram($0, of: p)?.payload } == [bin("a"), bin("b")])
                #expect(await next() == .udpPassive(p))
                #expect(p.controllingProcess == heir.process)
                c.close()
                p.close()
            }
        }

        @Test("U25 handing over to an exited process is badarg and leaves the socket passive", arguments: Backend.all)
        func handOverToDead(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let p = try await ctx.openPeer([.active(.active)])
                let dead = ctx.spawn { }
                _ = await ctx.waitForExit(dead.process)
                #expect(throws: SocketError.badArgument) { try p.controllingProcess(dead.process) }
                #expect(try p.getopt(.active) == .active(.passive))
                p.close()
            }
        }

        @Test("U26 the owner's exit closes the socket; its port is free again", arguments: Backend.all)
        func ownerExit(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let owner = ctx.spawn { () async throws -> (UDPSocket, Int) in
                    let s = try await ctx.openPeer()
                    return (s, try s.port())
                }
                let (p, port) = try await owner.value()
                _ = await ctx.waitForExit(owner.process)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(timeout: 10) }
                await #expect(throws: SocketError.closed) { try await p.send(bytes("x"), to: SocketAddress(ctx.clientAddress, port: 9)) }
                p.close()
                let again = try await ctx.openPeer(port: port)
                #expect(try again.port() == port)
                again.close()
            }
        }

        @Test("U27 a recv whose task is cancelled loses nothing", arguments: Backend.all)
        func cancelledRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair()
                let waiter = ctx.spawn { () async throws -> SocketError? in
                    do { _ = try await p.recv(timeout: 10_000); return nil } catch let e as SocketError { return e }
                }
                await ctx.sleep(50)
                waiter.process.kill()
                #expect(try await waiter.value() == SocketError.cancelled)
                try await c.send(bytes("still here"), to: try ctx.address(of: p))
                #expect(try await p.recv(timeout: 5000).payload == bin("still here"))
                c.close()
                p.close()
            }
        }

        @Test("U28 a full receive queue drops whole datagrams and counts them", arguments: Backend.all)
        func queueFull(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .active(.passive), .recbuf(4096)])
                let to = try ctx.address(of: p)
                let total = 400
                for i in 0..<total {
                    try await c.send(numbered(i, size: 512), to: to)
                    if i % 50 == 49 { await ctx.sleep(5) }
                }
                await ctx.sleep(200)
                var got: [Int] = []
                while let d = try? await p.recv(timeout: 300) {
                    guard let n = sequenceNumber(d.payload.bytes), d.payload.count == 512 else {
                        Issue.record("an altered datagram: \(d)")
                        break
                    }
                    got.append(n)
                }
                let dropped = try p.getstat().recvDropped
                #expect(got.count < total)
                #expect(dropped > 0)
                #expect(UInt64(got.count) + dropped == UInt64(total), "received \(got.count), dropped \(dropped)")
                #expect(got == got.sorted())
                c.close()
                p.close()
            }
        }

        @Test("U29 active true under a flood: the mailbox holds a bounded share, the queue drops and counts", arguments: Backend.all)
        func activeFlood(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.udpPair(peer: [.binary, .recbuf(8192)])
                let limit = 8192 / 256 < 16 ? 16 : 8192 / 256
                let to = try ctx.address(of: p)
                let total = 1000
                for i in 0..<total {
                    try await c.send(numbered(i, size: 64), to: to)
                    if i % 50 == 49 { await ctx.sleep(5) }
                }
                await ctx.sleep(200)
                #expect(Process.current.messageCount <= limit)
                var got: [Int] = []
                while case .udp(_, let d) = await next(500) { if let n = sequenceNumber(d.payload.bytes) { got.append(n) } }
                let dropped = try p.getstat().recvDropped
                #expect(UInt64(got.count) + dropped == UInt64(total), "received \(got.count), dropped \(dropped)")
                #expect(got == got.sorted())
                c.close()
                p.close()
            }
        }
    }
}

/// The next message that is a socket or user message (a helper process's view), nil on timeout.
func nextUserOrSocket(_ timeout: Timeout) async -> Msg? {
    let m = await next(timeout)
    return m == .none ? nil : m
}

