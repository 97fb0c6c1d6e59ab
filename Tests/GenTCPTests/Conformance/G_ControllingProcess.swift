import GenTCP
import GenTCPCore
import Testing

/// Waits until the calling process has at least `count` messages queued (without taking them).
func waitForMessages(_ count: Int, _ ctx: TestContext, within milliseconds: Int = 2000) async {
    var waited = 0
    while Process.current.messageCount < count && waited < milliseconds {
        await ctx.sleep(5)
        waited += 5
    }
}

/// A thrown error that ends a process abnormally.
struct Crash: Error {}

extension Conformance {
    @Suite("G Controlling process")
    struct ControllingProcess {
        @Test("G61 only the owner may reassign (OTP's quirks included)", arguments: Backend.all)
        func notOwner(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                let me = Process.current
                let bystander = ctx.spawn { await ctx.sleep(1000) }
                let outsider = ctx.spawn { () async -> [SocketError?] in
                    var results: [SocketError?] = []
                    for target in [bystander.process, Process.current] {
                        do throws(SocketError) { try c.controllingProcess(target); results.append(nil) } catch { results.append(error) }
                    }
                    // Naming the current owner is ok even for a non-owner (OTP checks that first).
                    do throws(SocketError) { try c.controllingProcess(me); results.append(nil) } catch { results.append(error) }
                    return results
                }
                #expect(try await outsider.value() == [.notOwner, .notOwner, nil])
                #expect(c.controllingProcess == me)
                // The owner naming itself is ok.
                try c.controllingProcess(me)
                #expect(c.controllingProcess == me)
                try await p.send("still mine")
                #expect(await next() == .tcp(c, bin("still mine")))
                c.close()
                p.close()
            }
        }

        @Test("G61 a dead target is badarg and leaves an active socket passive", arguments: Backend.all)
        func deadTarget(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                let dead = ctx.spawn { }
                _ = try await dead.value()
                #expect(throws: SocketError.badArgument) { try c.controllingProcess(dead.process) }
                #expect(c.controllingProcess == Process.current)
                #expect(try c.getopt(.active) == .active(.passive))
                try await p.send("kept")
                #expect(await next(50) == .none)
                #expect(try await c.recv(4, timeout: 30_000) == bin("kept"))
                c.close()
                p.close()
            }
        }

        @Test("G63 handoff moves queued data, then new data goes to the new owner", arguments: Backend.all)
        func handoffMovesData(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                try await p.send("x")
                await waitForMessages(1, ctx)
                let newOwner = ctx.spawn { () async -> [Msg] in
                    [await nextSocketMessage(), await nextSocketMessage()]
                }
                try c.controllingProcess(newOwner.process)
                #expect(c.controllingProcess == newOwner.process)
                #expect(Process.current.messageCount == 0)
                try await p.send("y")
                #expect(try await newOwner.value() == [.tcp(c, bin("x")), .tcp(c, bin("y"))])
                #expect(await next(50) == .none)
                // The new owner has exited: the socket closed with it.
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }

        @Test("G63 handoff in the middle of a stream loses and reorders nothing", arguments: Backend.all)
        func handoffDuringStream(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active), .buffer(100)])
                let stream = Pattern.bytes(count: 200 * 100, seed: 11)
                let sender = ctx.spawn {
                    for i in 0..<200 {
                        try await p.send(stream[i * 100..<(i + 1) * 100])
                        if i % 10 == 0 { await ctx.sleep(1) }
                    }
                }
                await waitForMessages(10, ctx)
                let newOwner = ctx.spawn { () async -> [UInt8] in
                    var got: [UInt8] = []
                    while got.count < stream.count {
                        guard case .tcp(let s, let payload) = await nextSocketMessage(), s == c else { break }
                        got += payload.bytes
                    }
                    return got
                }
                try c.controllingProcess(newOwner.process)
                #expect(Process.current.messageCount == 0, "every tcp message moved")
                try await sender.value()
                #expect(try await newOwner.value(within: 30_000) == stream)
                #expect(await next(50) == .none)
                p.close()
            }
        }

        @Test("G63 handoff leaves tcp_passive with the old owner", arguments: Backend.all)
        func handoffLeavesPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.count(1))])
                try await p.send("x")
                await waitForMessages(2, ctx)
                let newOwner = ctx.spawn { () async -> [Msg] in
                    [await nextSocketMessage(), await nextSocketMessage(100)]
                }
                try c.controllingProcess(newOwner.process)
                #expect(try await newOwner.value() == [.tcp(c, bin("x")), .none])
                #expect(await next() == .tcpPassive(c))
                #expect(await next(20) == .none)
                p.close()
            }
        }

        @Test("G63 handoff moves tcp_closed but leaves tcp_error (exit_on_close=false)", arguments: Backend.all)
        func handoffLeavesError(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active), .showEconnreset(true), .exitOnClose(false)])
                try await p.send("pre")
                try reset(p)
                await waitForMessages(3, ctx)
                let newOwner = ctx.spawn { () async -> [Msg] in
                    [await nextSocketMessage(), await nextSocketMessage(), await nextSocketMessage(100)]
                }
                try c.controllingProcess(newOwner.process)
                #expect(try await newOwner.value() == [.tcp(c, bin("pre")), .tcpClosed(c), .none])
                #expect(await next() == .tcpError(c, .connectionReset))
                #expect(await next(20) == .none)
            }
        }

        @Test("G67 owner exit closes the socket", arguments: Backend.all, [false, true])
        func ownerExit(_ backend: Backend, crash: Bool) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                let me = Process.current
                let owner = ctx.spawn {
                    let c = try await ctx.connect(port: port, [.binary, .active(.passive)])
                    me.send(c)
                    _ = await nextUser(String.self, 5000)
                    if crash { throw Crash() }
                }
                let p = try await l.accept(timeout: 30_000)
                l.close()
                let c = try #require(await nextUser(Socket.self))
                #expect(c.controllingProcess == owner.process)
                // A third process waits in recv on the socket.
                let reader = ctx.spawn { () async -> SocketError? in
                    do throws(SocketError) { _ = try await c.recv(0, timeout: 30_000); return nil } catch { return error }
                }
                await ctx.sleep(20)
                owner.process.send("exit")
                let reason = await ctx.waitForExit(owner.process)
                #expect(reason == (crash ? .error("\(Crash())") : .normal))
                #expect(try await reader.value() == .closed)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 100) }
                c.close()
                p.close()
                // The owner's messages died with it: nothing reached this process.
                #expect(await next(20) == .none)
            }
        }

        @Test("G68 after a handoff the old owner may exit", arguments: Backend.all)
        func oldOwnerExits(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                let me = Process.current
                let newOwner = ctx.spawn { () async throws -> Void in
                    let c = try #require(await nextUser(Socket.self, 5000))
                    _ = await nextUser(String.self, 5000)
                    #expect(c.controllingProcess == Process.current)
                    try await c.send("from new owner")
                    me.send("sent")
                    _ = await nextUser(Int.self, 5000)
                }
                let oldOwner = ctx.spawn {
                    let c = try await ctx.connect(port: port, [.binary, .active(.passive)])
                    try c.controllingProcess(newOwner.process)
                    newOwner.process.send(c)
                }
                let p = try await l.accept(timeout: 30_000)
                l.close()
                _ = try await oldOwner.value()
                newOwner.process.send("go")
                #expect(await nextUser(String.self) == "sent")
                #expect(try await p.recv(14, timeout: 30_000) == bin("from new owner"))
                newOwner.process.send(0)
                _ = try await newOwner.value()
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }

        @Test("G69 close by another process", arguments: Backend.all)
        func closeByOther(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                try await ctx.spawn { c.close() }.value()
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                // The owner gets no message for a local close.
                #expect(await next(100) == .none)
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                c.close()
                p.close()
            }
        }

        @Test("G69 close interrupts a waiting recv", arguments: Backend.all)
        func closeInterruptsRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let reader = ctx.spawn { () async -> SocketError? in
                    do throws(SocketError) {
                        _ = try await c.recv(0, timeout: 30_000)
                        return nil
                    } catch { return error }
                }
                await ctx.sleep(50)
                c.close()
                #expect(try await reader.value() == .closed)
                p.close()
            }
        }

        @Test("close removes one pending tcp_closed from the caller's mailbox, leaves tcp", arguments: Backend.all)
        func closeFlushesClosed(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                try await p.send("data")
                p.close()
                await waitForMessages(2, ctx)
                c.close()
                #expect(await next() == .tcp(c, bin("data")))
                #expect(await next(50) == .none)
            }
        }

        @Test("close by a non-owner leaves the owner's tcp_closed", arguments: Backend.all)
        func closeByOtherLeavesClosed(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                p.close()
                await waitForMessages(1, ctx)
                try await ctx.spawn { c.close() }.value()
                #expect(await next() == .tcpClosed(c))
            }
        }
    }
}
