import GenTCP
import GenTCPCore
import Testing

/// P closes abortively: `linger {true,0}` makes its close send an RST.
func reset(_ p: Socket) throws {
    try p.setopts(.linger(0))
    p.close()
}

extension Conformance {
    @Suite("C Peer close, reset, and buffered data")
    struct PeerClose {
        @Test("C23 EOF in passive mode", arguments: Backend.all)
        func eofPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.active(.passive)])
                try await p.send("12345")
                p.close()
                #expect(try await c.recv(0, timeout: 30_000) == list("12345"))
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(3, timeout: 0) }
                // The socket is not closed in passive mode: getopts still works.
                #expect(try c.getopt(.active) == .active(.passive))
                #expect(try c.getstat().recvOct == 5)
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                // No message was sent for any of it.
                #expect(await next(50) == .none)
                c.close()
                c.close()
            }
        }

        /// How the passive end of stream came, for the activation case.
        enum PassiveEnd: String, CaseIterable, Sendable {
            case fin, finTwice, reset, resetShown, finKeepOpen
        }

        @Test("C23 activating after recv reported the end delivers tcp_closed (checked against OTP 25)",
              arguments: Backend.all, PassiveEnd.allCases)
        func activateAfterPassiveEOF(_ backend: Backend, end: PassiveEnd) async throws {
            try await backend.run { ctx in
                var options: [Option] = [.binary, .active(.passive)]
                if end == .resetShown { options.append(.showEconnreset(true)) }
                if end == .finKeepOpen { options.append(.exitOnClose(false)) }
                let (c, p) = try await ctx.pair(client: options)
                if end == .reset || end == .resetShown { try reset(p) } else { p.close() }
                await #expect(throws: end == .resetShown ? SocketError(.connectionReset) : .closed) {
                    _ = try await c.recv(0, timeout: 30_000)
                }
                if end == .finTwice {
                    await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                }
                try c.setopts(.active(.once))
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                if end == .finKeepOpen {
                    // exit_on_close=false: the socket stays, `once` is not used up by tcp_closed.
                    #expect(try c.getopt(.active) == .active(.once))
                    try await c.send("x")
                } else {
                    #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.active]) }
                    await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 100) }
                }
                c.close()
            }
        }

        @Test("C26 EOF in active mode", arguments: Backend.all)
        func eofActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.active(.active)])
                try await p.send("12345")
                p.close()
                #expect(await next() == .tcp(c, list("12345")))
                #expect(await next() == .tcpClosed(c))
                #expect(await next(100) == .none)
                // With exit_on_close (the default) the socket is now dead.
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 100) }
                #expect(throws: SocketError.invalidArgument) { _ = try c.getopts([.active]) }
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.active(.once)) }
                #expect(throws: SocketError.closed) { try c.controllingProcess(Process.current) }
                c.close()
            }
        }

        @Test("C27 a close seen while passive is reported on activation", arguments: Backend.all)
        func closeWhilePassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("data")
                p.close()
                await ctx.sleep(50)
                #expect(await next(50) == .none)
                try c.setopts(.active(.once))
                #expect(await next() == .tcp(c, bin("data")))
                #expect(await next(50) == .none)
                try c.setopts(.active(.once))
                #expect(await next() == .tcpClosed(c))
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.active(.once)) }
                #expect(await next(50) == .none)
                c.close()
            }
        }

        @Test("C27 {active,1}: tcp_passive follows the data; tcp_closed waits for re-activation", arguments: Backend.all)
        func activeOneThenClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.count(1))])
                try await p.send("data")
                p.close()
                #expect(await next() == .tcp(c, bin("data")))
                #expect(await next() == .tcpPassive(c))
                #expect(await next(100) == .none)
                try c.setopts(.active(.count(1)))
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                c.close()
            }
        }

        @Test("C29 peer shutdown after sending", arguments: Backend.all, [ShutdownHow.write, .readWrite])
        func peerShutdown(_ backend: Backend, how: ShutdownHow) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("Hej Client")
                try p.shutdown(how)
                #expect(try await c.recv(0, timeout: 30_000) == bin("Hej Client"))
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
                p.close()
            }
        }

        @Test("C30 listener closed before accept", arguments: Backend.all)
        func listenerClosedBeforeAccept(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let c = try await ctx.connect(port: try l.port(), [.active(.active)])
                await ctx.sleep(20)
                l.close()
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                c.close()
            }
        }

        @Test("C30 listener closed before accept, passive client", arguments: Backend.all)
        func listenerClosedBeforeAcceptPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen()
                let c = try await ctx.connect(port: try l.port(), [.active(.passive)])
                await ctx.sleep(20)
                l.close()
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("C31 RST, passive: the queued data, then closed, then enotconn", arguments: Backend.all)
        func resetPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("pre")
                try reset(p)
                #expect(try await c.recv(0, timeout: 30_000) == bin("pre"))
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("C31 RST, passive, show_econnreset: econnreset, then enotconn", arguments: Backend.all)
        func resetPassiveShown(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(true)])
                try reset(p)
                await #expect(throws: SocketError(.connectionReset)) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                #expect(try c.getopt(.active) == .active(.passive))
                c.close()
            }
        }

        @Test("C31 RST reaches a recv that is already waiting", arguments: Backend.all, [false, true])
        func resetWhileWaiting(_ backend: Backend, show: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(show)])
                let resetter = ctx.spawn {
                    await ctx.sleep(50)
                    try reset(p)
                }
                await #expect(throws: show ? SocketError(.connectionReset) : .closed) {
                    _ = try await c.recv(0, timeout: 30_000)
                }
                try await resetter.value()
                c.close()
            }
        }

        @Test("C32 RST, active", arguments: Backend.all, [false, true])
        func resetActive(_ backend: Backend, show: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active), .showEconnreset(show)])
                try await p.send("pre")
                try reset(p)
                #expect(await next() == .tcp(c, bin("pre")))
                if show { #expect(await next() == .tcpError(c, .connectionReset)) }
                #expect(await next() == .tcpClosed(c))
                #expect(await next(100) == .none)
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                c.close()
            }
        }

        @Test("C32 an accepted socket inherits show_econnreset from its listener", arguments: Backend.all)
        func resetInherited(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen([.binary, .active(.active), .showEconnreset(true)])
                let c = try await ctx.connect(port: try l.port(), [.binary, .active(.passive)])
                let a = try await l.accept(timeout: 30_000)
                l.close()
                #expect(try a.getopts([.showEconnreset, .active, .mode]) == [
                    .showEconnreset(true), .active(.active), .mode(.binary),
                ])
                try await c.send("pre")
                try reset(c)
                #expect(await next() == .tcp(a, bin("pre")))
                #expect(await next() == .tcpError(a, .connectionReset))
                #expect(await next() == .tcpClosed(a))
                #expect(await next(50) == .none)
                a.close()
            }
        }

        @Test("C33 RST while passive, reported on {active,once}", arguments: Backend.all, [false, true])
        func resetWhilePassive(_ backend: Backend, show: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(show)])
                try reset(p)
                await ctx.sleep(50)
                #expect(await next(50) == .none)
                try c.setopts(.active(.once))
                if show { #expect(await next() == .tcpError(c, .connectionReset)) }
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.active(.once)) }
                c.close()
            }
        }

        @Test("C34 send after the peer reset", arguments: Backend.all, [false, true])
        func sendAfterReset(_ backend: Backend, show: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .showEconnreset(show)])
                try reset(p)
                await ctx.sleep(50)
                await #expect(throws: show ? SocketError(.connectionReset) : .closed) { try await c.send("x") }
                await #expect(throws: SocketError.notConnected) { try await c.send("y") }
                c.close()
            }
        }

        @Test("C38 exit_on_close=false keeps the socket writable", arguments: Backend.all)
        func exitOnCloseFalse(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active), .exitOnClose(false)])
                try await p.send("bye")
                try p.shutdown(.write)
                #expect(await next() == .tcp(c, bin("bye")))
                #expect(await next() == .tcpClosed(c))
                try await c.send("late")
                #expect(try await p.recv(4, timeout: 30_000) == bin("late"))
                #expect(try c.getopt(.active) == .active(.active))
                #expect(await next(50) == .none)
                c.close()
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }
    }
}
