import GenTCP
import GenTCPCore
import Testing

extension Conformance {
    @Suite("B Passive receive")
    struct PassiveReceive {
        @Test("B10 basic passive exchange", arguments: Backend.all)
        func basicExchange(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await c.send("hello")
                #expect(try await p.recv(5, timeout: 30_000) == bin("hello"))
                try await p.send("world")
                #expect(try await c.recv(5, timeout: 30_000) == bin("world"))
                c.close()
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                p.close()
            }
        }

        @Test("B11 the data type follows mode", arguments: Backend.all)
        func modeTypesData(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.active(.passive)])
                #expect(try c.getopt(.mode) == .mode(.list))
                try await p.send("abc")
                #expect(try await c.recv(3, timeout: 30_000) == list("abc"))
                try c.setopts(.binary)
                try await p.send("def")
                #expect(try await c.recv(3, timeout: 30_000) == bin("def"))
                try c.setopts(.mode(.list))
                try await p.send("ghi")
                #expect(try await c.recv(0, timeout: 30_000) == list("ghi"))
                c.close()
                p.close()
            }
        }

        @Test("B12 recv(0) returns everything available", arguments: Backend.all)
        func recvZeroAll(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("0123456789")
                await ctx.sleep(50)
                #expect(try await c.recv(0, timeout: 30_000) == bin("0123456789"))
                c.close()
                p.close()
            }
        }

        @Test("B13 exact-length recv waits across segments", arguments: Backend.all)
        func exactWaits(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let sender = ctx.spawn {
                    try await p.send("abc")
                    await ctx.sleep(100)
                    try await p.send("de")
                }
                let start = ctx.now
                #expect(try await c.recv(5, timeout: 30_000) == bin("abcde"))
                #expect(ctx.elapsedMilliseconds(since: start) >= 100, "returned before the second part was sent")
                try await sender.value()
                c.close()
                p.close()
            }
        }

        @Test("B14 exact recv leaves the rest buffered", arguments: Backend.all)
        func exactThenRest(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("0123456789")
                #expect(try await c.recv(4, timeout: 30_000) == bin("0123"))
                #expect(try await c.recv(0, timeout: 30_000) == bin("456789"))
                c.close()
                p.close()
            }
        }

        @Test("B15 recv timeout, including timeout 0", arguments: Backend.all)
        func recvTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.active(.passive)])
                let start = ctx.now
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 100) }
                #expect(ctx.elapsedMilliseconds(since: start) >= 100)
                try await p.send("x")
                #expect(try await c.recv(0, timeout: 30_000) == list("x"))
                // Timeout 0 is a poll.
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 0) }
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(3, timeout: 0) }
                try await p.send("yz")
                await ctx.sleep(50)
                #expect(try await c.recv(0, timeout: 0) == list("yz"))
                // The socket is unaffected by the timeouts.
                try await c.send("ok")
                #expect(try await p.recv(2, timeout: 30_000) == bin("ok"))
                #expect(Process.current.messageCount == 0)
                c.close()
                p.close()
            }
        }

        @Test("B15 a timed-out exact recv keeps its partial data", arguments: Backend.all)
        func timeoutKeepsPartial(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("abc")
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(5, timeout: 100) }
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(5, timeout: 0) }
                try await p.send("de")
                #expect(try await c.recv(5, timeout: 30_000) == bin("abcde"))
                // And recv(0) returns the kept bytes.
                try await p.send("fgh")
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(10, timeout: 100) }
                #expect(try await c.recv(0, timeout: 30_000) == bin("fgh"))
                c.close()
                p.close()
            }
        }

        @Test("B17 recv on an active socket is einval", arguments: Backend.all)
        func recvActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)])
                for mode in [ActiveMode.active, .once, .count(3)] {
                    try c.setopts(.active(.passive))
                    try c.setopts(.active(mode))
                    await #expect(throws: SocketError.invalidArgument, "recv in \(mode)") {
                        _ = try await c.recv(0, timeout: 100)
                    }
                    await #expect(throws: SocketError.invalidArgument, "recv in \(mode)") {
                        _ = try await c.recv(5, timeout: 0)
                    }
                }
                // The socket still works in that mode.
                try await p.send("z")
                #expect(await next() == .tcp(c, bin("z")))
                c.close()
                p.close()
            }
        }

        @Test("B18 a second concurrent recv gets ealready", arguments: Backend.all)
        func concurrentRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let helper = ctx.spawn { try await c.recv(0, timeout: 30_000) }
                #expect(await ctx.waitUntil { c.recvIsWaiting })
                let start = ctx.now
                await #expect(throws: SocketError.alreadyInProgress) { _ = try await c.recv(0, timeout: 1000) }
                await #expect(throws: SocketError.alreadyInProgress) { _ = try await c.recv(3, timeout: 0) }
                #expect(ctx.elapsedMilliseconds(since: start) < 1000, "ealready is immediate, not after the timeout")
                try await p.send("one")
                #expect(try await helper.value() == bin("one"))
                // The slot is free again.
                try await p.send("two")
                #expect(try await c.recv(3, timeout: 30_000) == bin("two"))
                c.close()
                p.close()
            }
        }

        @Test("B19 any process may use a passive socket", arguments: Backend.all)
        func nonOwnerUse(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("for you")
                let helper = ctx.spawn { () async throws -> Payload in
                    #expect(c.controllingProcess != Process.current)
                    let got = try await c.recv(7, timeout: 30_000)
                    try await c.send("thanks")
                    return got
                }
                #expect(try await helper.value() == bin("for you"))
                #expect(try await p.recv(6, timeout: 30_000) == bin("thanks"))
                // The helper's exit did not close a socket it did not own.
                try await c.send("still open")
                #expect(try await p.recv(10, timeout: 30_000) == bin("still open"))
                c.close()
                p.close()
            }
        }

        @Test("B20 buffer caps recv(0), not recv(N)", arguments: Backend.all)
        func bufferCapsRecvZero(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .buffer(16)])
                let data = Pattern.bytes(count: 100)
                try await p.send(data)
                await ctx.sleep(50)
                var got: [[UInt8]] = []
                got.append(try await c.recv(0, timeout: 30_000).bytes)
                got.append(try await c.recv(50, timeout: 30_000).bytes)
                for _ in 0..<3 { got.append(try await c.recv(0, timeout: 30_000).bytes) }
                #expect(got.map(\.count) == [16, 50, 16, 16, 2])
                #expect(Array(got.joined()) == data)
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 100) }
                c.close()
                p.close()
            }
        }

        @Test("B21 buffer caps each active message", arguments: Backend.all)
        func bufferCapsActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .buffer(16)])
                let data = Pattern.bytes(count: 100)
                try await p.send(data)
                await ctx.sleep(50)
                try c.setopts(.active(.active))
                let got = await collectActive(c, count: 100)
                #expect(got.sizes == [16, 16, 16, 16, 16, 16, 4])
                #expect(got.bytes == data)
                #expect(await next(100) == .none)
                // A new buffer size applies to the next deliveries.
                try c.setopts(.active(.passive))
                try c.setopts(.buffer(4))
                try await p.send("0123456789")
                await ctx.sleep(50)
                try c.setopts(.active(.active))
                #expect(await collectActive(c, count: 10).sizes == [4, 4, 2])
                // Deliberate departure: OTP stores {buffer,0} as 1; GenTCP refuses it with einval.
                #expect(throws: SocketError.invalidArgument) { try c.setopts(.buffer(0)) }
                #expect(try c.getopt(.buffer) == .buffer(4))
                c.close()
                p.close()
            }
        }

        @Test("B22 the default buffer also chunks", arguments: Backend.all)
        func defaultBufferChunks(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let data = Pattern.bytes(count: 8192)
                try await p.send(data)
                await ctx.sleep(50)
                try c.setopts(.active(.active))
                let got = await collectActive(c, count: 8192)
                #expect(got.sizes == [1460, 1460, 1460, 1460, 1460, 892])
                #expect(got.bytes == data)
                #expect(await next(100) == .none)
                c.close()
                p.close()
            }
        }

        @Test("B23 a framed stream read as recv(4) headers and recv(N) bodies: every byte, in order", arguments: Backend.all)
        func framedStream(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                // Bodies from 1 byte to twice the default buffer, sent back to back in one go, so
                // a header's read finds the bodies behind it (what GenTCP reads ahead).
                let sizes = (0..<40).map { 1 + ($0 * 397) % 2920 }
                let bodies = sizes.enumerated().map { Pattern.bytes(count: $0.element, seed: UInt64($0.offset + 1)) }
                var stream: [UInt8] = []
                for body in bodies {
                    let n = UInt32(body.count)
                    stream += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
                    stream += body
                }
                let sender = ctx.spawn { [stream] in try await p.send(stream) }
                for body in bodies {
                    let header = try await c.recv(4, timeout: 30_000).bytes
                    let n = header.reduce(0) { $0 << 8 | Int($1) }
                    #expect(n == body.count)
                    #expect(try await c.recv(n, timeout: 30_000).bytes == body)
                }
                try await sender.value()
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 100) }
                c.close()
                p.close()
            }
        }

        @Test("B24 an exact recv reads ahead at most buffer; activation delivers that first", arguments: Backend.all)
        func readAheadWithinBuffer(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .buffer(100)])
                let data = Pattern.bytes(count: 1000)
                try await p.send(data)
                await ctx.sleep(200)
                #expect(try await c.recv(4, timeout: 30_000).bytes == Array(data[0..<4]))
                // The fixed-buffer rule: never more than `buffer` bytes read for the owner.
                let ahead = c.readAheadByteCount
                #expect(ahead <= 96)
                if ["posix", "posix-loop", "sim"].contains(backend.name) {
                    #expect(ahead == 96, "all 1,000 bytes had arrived, so one read took 100")
                }
                try c.setopts(.active(.active))
                let got = await collectActive(c, count: 996, timeout: 30_000)
                #expect(got.bytes == Array(data[4...]))
                #expect(got.sizes.allSatisfy { $0 <= 100 })
                if ahead > 0 { #expect(got.sizes.first == ahead) }
                c.close()
                p.close()
            }
        }

        @Test("B25 a timed-out exact recv after a read-ahead keeps both, in order", arguments: Backend.all)
        func readAheadThenTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let data = Pattern.bytes(count: 24)
                try await p.send(Array(data[0..<10]))
                await ctx.sleep(200)
                #expect(try await c.recv(4, timeout: 30_000).bytes == Array(data[0..<4]))
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(20, timeout: 100) }
                // The bytes that recv gathered are its partial data now, not read-ahead.
                #expect(c.readAheadByteCount == 0)
                try await p.send(Array(data[10...]))
                #expect(try await c.recv(20, timeout: 30_000).bytes == Array(data[4...]))
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 100) }
                c.close()
                p.close()
            }
        }

        @Test("Exact recv across end of stream: closed, the partial bytes are discarded", arguments: Backend.all)
        func exactAcrossEOF(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("abc")
                p.close()
                await #expect(throws: SocketError.closed) { _ = try await c.recv(5, timeout: 30_000) }
                // The three bytes are gone: the end was already reported.
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("Exact recv waiting when the end of stream comes", arguments: Backend.all)
        func exactWaitingAtEOF(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let closer = ctx.spawn {
                    try await p.send("ab")
                    await ctx.sleep(50)
                    p.close()
                }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(5, timeout: 30_000) }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 30_000) }
                try await closer.value()
                c.close()
            }
        }

        @Test("recv arguments: negative length badarg, above 64 MiB enomem, negative timeout badarg", arguments: Backend.all)
        func recvArguments(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                await #expect(throws: SocketError.badArgument) { _ = try await c.recv(-1, timeout: 100) }
                await #expect(throws: SocketError(.outOfMemory)) { _ = try await c.recv((64 << 20) + 1, timeout: 100) }
                // 64 MiB itself is allowed (it times out here: nothing was sent).
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(64 << 20, timeout: 50) }
                // OTP does not check a negative timeout (it blocks); GenTCP calls it badarg.
                await #expect(throws: SocketError.badArgument) { _ = try await c.recv(0, timeout: .milliseconds(-1)) }
                // Nothing was consumed or broken.
                try await p.send("ok")
                #expect(try await c.recv(2, timeout: 30_000) == bin("ok"))
                c.close()
                p.close()
            }
        }
    }
}
