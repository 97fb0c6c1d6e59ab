import GenTCP
import GenTCPCore
import Testing

extension Conformance {
    @Suite("H Closed sockets")
    struct ClosedSockets {
        @Test("H71 everything after close (semantics §13)", arguments: Backend.all)
        func opsAfterClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                c.close()
                // Calls that go through OTP's socket registry: closed.
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { try await c.send(chunks: []) }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 100) }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(5, timeout: 0) }
                #expect(throws: SocketError.closed) { try c.controllingProcess(Process.current) }
                #expect(throws: SocketError.closed) { try c.shutdown(.write) }
                // The others hit the dead port: einval.
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.active(.once)) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.active]) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopt(.buffer) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getstat() }
                #expect(throws: SocketError.invalidArgument) { _ = try c.peername() }
                #expect(throws: SocketError.invalidArgument) { _ = try c.sockname() }
                #expect(throws: SocketError.invalidArgument) { _ = try c.port() }
                // close is always ok, any number of times.
                c.close()
                c.close()
                #expect(await next(20) == .none)
                p.close()
            }
        }

        @Test("H71 a listen socket closed twice; then accept is closed", arguments: Backend.all)
        func listenerDoubleClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let port = try l.port()
                l.close()
                l.close()
                await #expect(throws: SocketError.closed) { _ = try await l.accept(timeout: 100) }
                await #expect(throws: SocketError.closed) { _ = try await l.accept(timeout: 0) }
                await #expect(throws: SocketError.closed) { _ = try await l.accept() }
                #expect(throws: SocketError.invalidArgument) { _ = try l.sockname() }
                #expect(throws: SocketError.invalidArgument) { _ = try l.port() }
                #expect(throws: SocketError.invalidArgument) { _ = try l.getopts([.active]) }
                #expect(throws: SocketError.invalidArgument) { try l.setopts([.active(.once)]) }
                // The port is free again: nobody listens there.
                await #expect(throws: SocketError(.connectionRefused)) { _ = try await ctx.connect(port: port, []) }
            }
        }

        @Test("H71 a dead active socket (tcp_closed seen) behaves as closed", arguments: Backend.all)
        func deadActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                p.close()
                #expect(await next() == .tcpClosed(c))
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 100) }
                #expect(throws: SocketError.closed) { try c.shutdown(.write) }
                #expect(throws: SocketError.closed) { try c.controllingProcess(Process.current) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getstat() }
                #expect(throws: SocketError.invalidArgument) { _ = try c.peername() }
                c.close()
            }
        }
    }

    @Suite("I Statistics")
    struct Statistics {
        @Test("I72 counters, passive", arguments: Backend.all)
        func passiveCounters(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                #expect(try c.getstat() == GenTCPCore.Statistics())
                for _ in 0..<3 { try await c.send("12345") }
                var s = try c.getstat()
                #expect([s.sendOct, s.sendCnt, s.sendMax] == [15, 3, 5])
                // send_pend counts what the driver still holds (OTP: the port's queue): 0 at once
                // where bytes go straight to a kernel or stack, until the module's SEND OK on a
                // modem; 0 once the peer has them all, everywhere.
                #expect(s.sendPend <= 15)
                #expect(try await p.recv(15, timeout: 5000).count == 15)
                var waited = 0
                while try c.getstat().sendPend != 0, waited < 5000 {
                    await ctx.sleep(10)
                    waited += 10
                }
                s = try c.getstat()
                #expect(s.sendPend == 0)
                #expect([s.recvOct, s.recvCnt, s.recvMax] == [0, 0, 0])
                try await p.send("abcdefgh")
                _ = try await c.recv(4, timeout: 30_000)
                _ = try await c.recv(4, timeout: 30_000)
                s = try c.getstat()
                #expect([s.recvOct, s.recvCnt, s.recvMax] == [8, 2, 4])
                try await p.send("ijklmnop")
                await ctx.sleep(50)
                #expect(try await c.recv(0, timeout: 30_000).count == 8)
                s = try c.getstat()
                #expect([s.recvOct, s.recvCnt, s.recvMax] == [16, 3, 8])
                try await c.send("")
                s = try c.getstat()
                #expect([s.sendOct, s.sendCnt, s.sendMax] == [15, 4, 5])
                // Failed and timed-out calls count nothing.
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 0) }
                #expect(try c.getstat() == s)
                // P counted the same traffic the other way round (it read C's 15 bytes above).
                let ps = try p.getstat()
                #expect([ps.sendOct, ps.sendCnt, ps.recvOct] == [16, 2, 15])
                c.close()
                p.close()
            }
        }

        @Test("I72 counters, active: one per message", arguments: Backend.all)
        func activeCounters(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                for word in ["abcd", "efgh", "ijkl"] {
                    try await p.send(word)
                    #expect(await next() == .tcp(c, bin(word)))
                }
                let s = try c.getstat()
                #expect([s.recvOct, s.recvCnt, s.recvMax] == [12, 3, 4])
                c.close()
                p.close()
            }
        }
    }

    @Suite("J Listen and accept")
    struct ListenAccept {
        @Test("J73 accept timeout, and timeout 0 polls", arguments: Backend.all)
        func acceptTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                var start = ctx.now
                await #expect(throws: SocketError.timeout) { _ = try await l.accept(timeout: 100) }
                #expect(ctx.elapsedMilliseconds(since: start) >= 100)
                start = ctx.now
                await #expect(throws: SocketError.timeout) { _ = try await l.accept(timeout: 0) }
                #expect(ctx.elapsedMilliseconds(since: start) < 100, "a poll does not wait")
                // A poll returns a connection that is already pending.
                let c = try await ctx.connect(port: try l.port(), [.active(.passive)])
                await ctx.sleep(20)
                let a = try await l.accept(timeout: 0)
                #expect(try a.peername() == c.sockname())
                // A negative timeout is badarg (OTP does not validate it; deliberate).
                await #expect(throws: SocketError.badArgument) { _ = try await l.accept(timeout: .milliseconds(-1)) }
                a.close()
                c.close()
                l.close()
            }
        }

        @Test("J74 blocked acceptors see the listener close", arguments: Backend.all)
        func acceptorsSeeClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let acceptors = (0..<3).map { i in
                    ctx.spawn { () async -> SocketError? in
                        do throws(SocketError) {
                            _ = try await l.accept(timeout: i == 0 ? .infinity : 5000)
                            return nil
                        } catch { return error }
                    }
                }
                await ctx.sleep(50)
                l.close()
                for a in acceptors { #expect(try await a.value() == .closed) }
                await #expect(throws: SocketError.closed) { _ = try await l.accept(timeout: 100) }
            }
        }

        @Test("J74 several acceptors: independent timeouts, each accepted socket owned by its acceptor", arguments: Backend.all)
        func severalAcceptors(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let short = ctx.spawn { () async -> SocketError? in
                    do throws(SocketError) { _ = try await l.accept(timeout: 100); return nil } catch { return error }
                }
                let long = ctx.spawn { () async throws -> Bool in
                    let s = try await l.accept(timeout: 30_000)
                    let mine = s.controllingProcess == Process.current
                    let got = try await s.recv(5, timeout: 30_000)
                    return mine && got == bin("hello")
                }
                #expect(try await short.value(within: 30_000) == .timeout)
                // The long acceptor still waits after the short one timed out.
                let c = try await ctx.connect(port: try l.port(), [.binary, .active(.passive)])
                try await c.send("hello")
                #expect(try await long.value())
                c.close()
                l.close()
            }
        }

        @Test("J76 port in use even with reuseaddr; sockname works", arguments: Backend.all)
        func portInUse(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // send/recv/peername on a listener (enotconn in OTP) do not exist: ListenSocket has
                // no such methods, a deliberate departure.
                let l = try ctx.listen([.reuseaddr(true)])
                let port = try l.port()
                #expect(try l.sockname() == SocketAddress(ctx.serverAddress, port: port))
                for options in [[], [Option.reuseaddr(true)]] {
                    #expect(throws: SocketError(.addressInUse)) {
                        _ = try ListenSocket.listen(port: port, options: ctx.bindServer + options, driver: ctx.serverDriver)
                    }
                }
                #expect(try l.getopts([.reuseaddr, .backlog]) == [.reuseaddr(true), .backlog(5)])
                l.close()
            }
        }

        @Test("J the listener closes when its owner exits", arguments: Backend.all)
        func listenerOwnerExit(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let owner = ctx.spawn { () async throws -> ListenSocket in try ctx.listen() }
                let l = try await owner.value()
                #expect(l.controllingProcess == owner.process)
                await #expect(throws: SocketError.closed) { _ = try await l.accept(timeout: 100) }
                #expect(throws: SocketError.invalidArgument) { _ = try l.port() }
            }
        }

        @Test("J accepted sockets inherit the listener's options", arguments: Backend.all)
        func inheritedOptions(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let given: [Option] = [.list, .active(.once), .buffer(32), .nodelay(true), .exitOnClose(false),
                                       .showEconnreset(true), .sendTimeout(700), .sendTimeoutClose(true)]
                let l = try ctx.listen(given)
                let c = try await ctx.connect(port: try l.port(), [.binary, .active(.passive)])
                let a = try await l.accept(timeout: 30_000)
                #expect(try a.getopts([.mode, .active, .buffer, .nodelay, .exitOnClose, .showEconnreset,
                                       .sendTimeout, .sendTimeoutClose]) == given)
                // setopts on the listener changes what later accepts inherit.
                try l.setopts([.binary, .buffer(64)])
                let c2 = try await ctx.connect(port: try l.port(), [.binary, .active(.passive)])
                let a2 = try await l.accept(timeout: 30_000)
                #expect(try a2.getopts([.mode, .buffer]) == [.mode(.binary), .buffer(64)])
                #expect(throws: SocketError.invalidArgument) { try l.setopts([.buffer(0)]) }
                for s in [c, a, c2, a2] { s.close() }
                l.close()
            }
        }
    }
}
