import GenTCP
import GenTCPCore
import Testing

extension Conformance {
    @Suite("F Active modes")
    struct ActiveModes {
        @Test("F56 {active,true} stream", arguments: Backend.all)
        func activeTrue(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                for word in ["one", "two", "three"] {
                    try await p.send(word)
                    #expect(await next() == .tcp(c, bin(word)))
                    #expect(try c.getopt(.active) == .active(.active))
                }
                #expect(await next(50) == .none)
                // The mode applies to the next message.
                try c.setopts(.list)
                try await p.send("four")
                #expect(await next() == .tcp(c, list("four")))
                c.close()
                p.close()
            }
        }

        @Test("F58 {active,N}: an end of stream before the count runs out is tcp_closed, no tcp_passive", arguments: Backend.all)
        func activeCountThenClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.count(5))])
                try await p.send("a")
                #expect(await next() == .tcp(c, bin("a")))
                p.close()
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                c.close()
            }
        }

        @Test("F57 {active,once} re-arming", arguments: Backend.all)
        func activeOnce(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.once)])
                #expect(try c.getopt(.active) == .active(.once))
                try await p.send("one")
                #expect(await next() == .tcp(c, bin("one")))
                #expect(try c.getopt(.active) == .active(.passive))
                try await p.send("two")
                try await p.send("three")
                await ctx.sleep(50)
                #expect(Process.current.messageCount == 0)
                try c.setopts(.active(.once))
                // Exactly one message, with whatever had arrived (at most `buffer` bytes).
                guard case .tcp(let s, let first) = await next(), s == c else {
                    Issue.record("no data message")
                    return
                }
                #expect(await next(50) == .none)
                #expect(try c.getopt(.active) == .active(.passive))
                var got = first.bytes
                while got.count < 8 {
                    try c.setopts(.active(.once))
                    guard case .tcp(_, let more) = await next() else { break }
                    got += more.bytes
                }
                #expect(got == bytes("twothree"))
                #expect(await next(50) == .none)
                c.close()
                p.close()
            }
        }

        @Test("F58 {active,N} countdown", arguments: Backend.all)
        func activeCountdown(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.count(2))])
                #expect(try c.getopt(.active) == .active(.count(2)))
                try await p.send("a")
                #expect(await next() == .tcp(c, bin("a")))
                #expect(try c.getopt(.active) == .active(.count(1)))
                try await p.send("b")
                #expect(await next() == .tcp(c, bin("b")))
                #expect(await next() == .tcpPassive(c))
                #expect(try c.getopt(.active) == .active(.passive))
                try await p.send("c")
                #expect(await next(100) == .none)
                try c.setopts(.active(.count(1)))
                #expect(await next() == .tcp(c, bin("c")))
                #expect(await next() == .tcpPassive(c))
                #expect(await next(50) == .none)
                c.close()
                p.close()
            }
        }

        @Test("F59 {active,N} arithmetic and limits (checked against OTP 25)", arguments: Backend.all)
        func activeArithmetic(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                /// Applies `{active, mode}` and checks the result, the new state and whether
                /// exactly one tcp_passive came.
                func step(_ mode: ActiveMode, fails: Bool = false, _ expected: ActiveMode, passive: Bool,
                          sourceLocation: SourceLocation = #_sourceLocation) async throws {
                    if fails {
                        #expect(throws: SocketError.invalidArgument, sourceLocation: sourceLocation) { try c.setopts(.active(mode)) }
                    } else {
                        try c.setopts(.active(mode))
                    }
                    #expect(try c.getopt(.active) == .active(expected), "after \(mode)", sourceLocation: sourceLocation)
                    if passive {
                        #expect(await next() == .tcpPassive(c), "after \(mode)", sourceLocation: sourceLocation)
                    }
                    #expect(await next(20) == .none, "after \(mode)", sourceLocation: sourceLocation)
                }
                // {active,0} and negative counts send tcp_passive even when already passive.
                try await step(.count(0), .passive, passive: true)
                try await step(.count(-3), .passive, passive: true)
                try await step(.active, .active, passive: false)
                try await step(.count(0), .passive, passive: true)
                try await step(.once, .once, passive: false)
                try await step(.count(-1), .passive, passive: true)
                try await step(.count(3), .count(3), passive: false)
                try await step(.count(-1), .count(2), passive: false)
                try await step(.count(-5), .passive, passive: true)
                try await step(.count(32767), .count(32767), passive: false)
                try await step(.count(1), fails: true, .count(32767), passive: false)
                try await step(.count(32768), fails: true, .count(32767), passive: false)
                try await step(.count(-32769), fails: true, .count(32767), passive: false)
                try await step(.count(-32768), .passive, passive: true)
                try await step(.active, .active, passive: false)
                try await step(.count(5), .count(5), passive: false)
                try await step(.once, .once, passive: false)
                try await step(.count(5), .count(5), passive: false)
                try await step(.passive, .passive, passive: false)
                c.close()
                p.close()
            }
        }

        @Test("F59 connect with {active,0} sends tcp_passive at once (OTP 25)", arguments: Backend.all)
        func connectActiveZero(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let l = try ctx.listen([.binary, .active(.count(0))])
                let c = try await ctx.connect(port: try l.port(), [.binary, .active(.count(0))])
                #expect(await next() == .tcpPassive(c))
                #expect(try c.getopt(.active) == .active(.passive))
                // A socket accepted from a {active,0} listener is passive and gets no message.
                let a = try await l.accept(timeout: 30_000)
                #expect(try a.getopt(.active) == .active(.passive))
                #expect(await next(50) == .none)
                a.close()
                c.close()
                l.close()
            }
        }

        @Test("F61 small buffer: a waiting burst becomes {active,N}'s N messages of at most buffer bytes, the rest stays unread, in order",
              arguments: Backend.all)
        func smallBufferBurst(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .buffer(100)])
                let data = Pattern.bytes(count: 3000)
                try await p.send(data)
                await ctx.sleep(50)
                try c.setopts(.active(.count(3)))
                var got: [UInt8] = []
                for _ in 0..<3 {
                    guard case .tcp(let s, let payload) = await next(), s == c else {
                        Issue.record("expected 3 data messages")
                        return
                    }
                    #expect(payload.count >= 1 && payload.count <= 100)
                    got += payload.bytes
                }
                #expect(await next() == .tcpPassive(c))
                #expect(await next(50) == .none)
                // What the three messages did not carry is still there, in order.
                got += try await recvAll(c, count: data.count - got.count)
                #expect(got == data)
                // {active,true}: the same stream as messages of at most 100 bytes.
                let more = Pattern.bytes(count: 20_000, seed: 61)
                try c.setopts(.active(.active))
                try await p.send(more)
                let (streamed, sizes, stray) = await collectActive(c, count: more.count)
                #expect(stray == nil)
                #expect(streamed == more)
                #expect(sizes.allSatisfy { $0 >= 1 && $0 <= 100 })
                c.close()
                p.close()
            }
        }

        @Test("F60 active to passive without losing data", arguments: Backend.all)
        func activeToPassive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                try await p.send("first")
                #expect(await next() == .tcp(c, bin("first")))
                try c.setopts(.active(.passive))
                try await p.send("second")
                await ctx.sleep(50)
                #expect(await next(50) == .none)
                #expect(try await c.recv(6, timeout: 30_000) == bin("second"))
                // And back: what arrives while passive is delivered on activation.
                try await p.send("third")
                await ctx.sleep(20)
                try c.setopts(.active(.active))
                #expect(await next() == .tcp(c, bin("third")))
                c.close()
                p.close()
            }
        }
    }
}
