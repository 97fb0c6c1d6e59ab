import GenTCP
import GenTCPCore
import Testing

/// Sends `chunk` until a send fails; returns the error (nil if `limit` sends all succeeded), how
/// many sends succeeded, and how long the failing send took in milliseconds.
func sendUntilError(_ c: Socket, _ chunk: [UInt8], limit: Int = 4096) async -> (error: SocketError?, sent: Int, milliseconds: Double) {
    let runtime = c.driver.runtime
    for i in 0..<limit {
        let start = runtime.now
        do throws(SocketError) {
            try await c.send(chunk)
        } catch {
            return (error, i, Double(runtime.now &- start) / 1_000_000)
        }
    }
    return (nil, limit, 0)
}

/// Run-length view of a byte stream: [(byte, count)].
struct Runs {
    private(set) var runs: [(value: UInt8, count: Int)] = []
    mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { p in
            var i = 0
            while i < p.count {
                let b = p[i]
                var j = i + 1
                while j < p.count && p[j] == b { j += 1 }
                if let last = runs.last, last.value == b {
                    runs[runs.count - 1].count += j - i
                } else {
                    runs.append((b, j - i))
                }
                i = j
            }
        }
    }
}

extension Conformance {
    @Suite("D Sending")
    struct Sending {
        @Test("D39 iodata: chunks are one stream", arguments: Backend.all)
        func iodata(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await c.send(chunks: [bytes("ab"), bytes("cd"), [0x65], []])
                try await c.send("fgh")
                #expect(try await p.recv(5, timeout: 30_000) == bin("abcde"))
                #expect(try await p.recv(3, timeout: 30_000) == bin("fgh"))
                // Many chunks (more than one gather write takes) keep their order.
                let pieces = (0..<200).map { i in [UInt8](repeating: UInt8(i), count: i % 7) }
                try await c.send(chunks: pieces)
                let all = Array(pieces.joined())
                #expect(try await p.recv(all.count, timeout: 30_000).bytes == all)
                #expect(try c.getstat().sendCnt == 3)
                c.close()
                p.close()
            }
        }

        @Test("D40 empty send", arguments: Backend.all)
        func emptySend(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await c.send([UInt8]())
                try await c.send(chunks: [])
                try await c.send(chunks: [[], []])
                try await c.send("")
                await #expect(throws: SocketError.timeout) { _ = try await p.recv(0, timeout: 100) }
                let stats = try c.getstat()
                #expect(stats.sendCnt == 4)
                #expect(stats.sendOct == 0)
                c.close()
                p.close()
            }
        }

        @Test("D42 send after the peer's FIN: ok, then closed, then enotconn", arguments: Backend.all)
        func sendAfterFIN(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                p.close()
                await ctx.sleep(20)
                var results: [SocketError?] = []
                for _ in 0..<20 {
                    do throws(SocketError) {
                        try await c.send("ping")
                        results.append(nil)
                    } catch {
                        results.append(error)
                        if error.reason != .closed { break }
                    }
                    await ctx.sleep(10)
                }
                // Some oks (the kernel takes the first bytes, then the peer answers RST), one
                // closed, then enotconn.
                let firstError = results.firstIndex { $0 != nil }
                #expect(firstError != nil, "every send succeeded: \(results)")
                if let i = firstError {
                    #expect(results[i] == .closed, "\(results)")
                    #expect(i + 1 < results.count && results[i + 1] == .notConnected, "\(results)")
                }
                // The failed send marks the socket closed for recv too.
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("D42 a sender blocked on a full window gets closed when the peer goes", arguments: Backend.all, [false, true])
        func blockedSenderPeerCloses(_ backend: Backend, active: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(active ? .active : .passive)])
                let chunk = [UInt8](repeating: 7, count: 1 << 16)
                let writer = ctx.spawn { await sendUntilError(c, chunk) }
                // Wait until the writer is blocked: bytes pending in send.
                var pending: UInt64 = 0
                // Until the send blocks (the loop ends then); up to 30 s, not 2: on a loaded machine
                // (or under a sanitizer) the writer can take seconds to start.
                for _ in 0..<3000 where pending == 0 {
                    await ctx.sleep(10)
                    pending = (try? c.getstat().sendPend) ?? 0
                }
                #expect(pending > 0, "the writer never blocked")
                p.close()  // unread data: the peer's kernel answers with an RST
                let result = try await writer.value()
                #expect(result.error == .closed)
                if active {
                    #expect(await next() == .tcpClosed(c))
                }
                c.close()
            }
        }

        @Test("D44 send_timeout without auto-close", arguments: Backend.all)
        func sendTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .sendTimeout(150)])
                let chunk = [UInt8](repeating: 1, count: 1 << 16)
                let first = await sendUntilError(c, chunk)
                #expect(first.error == .timeout, "after \(first.sent) sends")
                #expect(first.milliseconds >= 150)
                // The socket stays open and the next send that cannot progress times out again.
                // (It may not be the very next send: the kernel can grow its buffers meanwhile.)
                let second = await sendUntilError(c, chunk)
                #expect(second.error == .timeout, "after \(second.sent) more sends")
                #expect(second.milliseconds >= 150)
                // recv still works; no internal message was left in the mailbox.
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(0, timeout: 50) }
                #expect(Process.current.messageCount == 0)
                #expect(try c.getopt(.sendTimeout) == .sendTimeout(.milliseconds(150)))
                c.close()
                p.close()
            }
        }

        @Test("D45 send_timeout with send_timeout_close", arguments: Backend.all)
        func sendTimeoutClose(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .sendTimeout(150), .sendTimeoutClose(true)])
                let chunk = [UInt8](repeating: 1, count: 1 << 16)
                let first = await sendUntilError(c, chunk)
                #expect(first.error == .timeout, "after \(first.sent) sends")
                await #expect(throws: SocketError.notConnected) { try await c.send(chunk) }
                await #expect(throws: SocketError.notConnected) { try await c.send("x") }
                await #expect(throws: SocketError.notConnected) { _ = try await c.recv(0, timeout: 100) }
                #expect(Process.current.messageCount == 0)
                #expect(try c.getopt(.active) == .active(.passive))
                #expect(throws: SocketError.notConnected) { _ = try c.peername() }
                // OTP 25 closes gracefully: P still reads every byte of the sends that returned ok,
                // then closed (not econnreset, although P shows resets).
                try p.setopts(.showEconnreset(true))
                var received = 0
                while true {
                    do throws(SocketError) {
                        received += try await p.recv(0, timeout: 30_000).count
                    } catch {
                        #expect(error.reason == .closed)
                        break
                    }
                }
                #expect(received >= first.sent * chunk.count, "P got \(received) of \(first.sent * chunk.count) bytes sent ok")
                #expect(received < (first.sent + 1) * chunk.count)
                c.close()
                p.close()
            }
        }

        @Test("D46 parallel writers to a peer that does not read", arguments: Backend.all, [false, true])
        func parallelWriters(_ backend: Backend, autoClose: Bool) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .sendTimeout(150), .sendTimeoutClose(autoClose)])
                let chunk = [UInt8](repeating: 2, count: 1 << 16)
                let writers = (0..<2).map { _ in
                    ctx.spawn { () async -> [SocketError?] in
                        // The first error, then the next one (later sends may go through first
                        // when the kernel grows its buffers).
                        [await sendUntilError(c, chunk).error, await sendUntilError(c, chunk).error]
                    }
                }
                var results: [[SocketError?]] = []
                for w in writers { results.append(try await w.value(within: 30_000)) }
                let firsts = results.map { $0[0] }
                let seconds = results.map { $0[1] }
                #expect(firsts.contains(.timeout), "\(results)")
                if autoClose {
                    #expect(firsts.allSatisfy { $0 == .timeout || $0 == .notConnected }, "\(results)")
                    #expect(seconds.allSatisfy { $0 == .notConnected }, "\(results)")
                } else {
                    #expect(firsts.allSatisfy { $0 == .timeout }, "\(results)")
                    #expect(seconds.allSatisfy { $0 == .timeout }, "\(results)")
                }
                c.close()
                p.close()
            }
        }

        @Test("D46 after a send timeout the stream stays valid: later sends arrive whole", arguments: Backend.all)
        func resumeAfterSendTimeout(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .sendTimeout(150)])
                let size = 1 << 16
                func value(_ k: Int) -> UInt8 { UInt8(k % 200 + 1) }
                var k = 1
                var timedOut = false
                while k < 4096 {
                    do throws(SocketError) {
                        try await c.send([UInt8](repeating: value(k), count: size))
                    } catch {
                        #expect(error.reason == .timeout)
                        timedOut = true
                        break
                    }
                    k += 1
                }
                #expect(timedOut)
                // P starts reading; the next send goes through whole.
                let reader = ctx.spawn { () async throws -> Runs in
                    var runs = Runs()
                    while true {
                        do throws(SocketError) {
                            runs.add(try await p.recv(0, timeout: 30_000).bytes)
                        } catch {
                            #expect(error.reason == .closed)
                            return runs
                        }
                    }
                }
                try await c.send([UInt8](repeating: 0xEE, count: size))
                c.close()
                let runs = try await reader.value(within: 30_000).runs
                // Sends 1..<k complete, send k's prefix (possibly empty), then the 0xEE send whole.
                var expected = (1..<k).map { (value($0), size) }
                if runs.count == k + 1 {
                    #expect(runs[k - 1].value == value(k) && runs[k - 1].count <= size, "timed-out send: \(runs[k - 1])")
                    expected.append(runs[k - 1])
                }
                expected.append((0xEE, size))
                #expect(runs.count == expected.count, "runs: \(runs.count), expected \(expected.count)")
                #expect(runs.map(\.value) == expected.map(\.0))
                #expect(runs.map(\.count) == expected.map(\.1))
            }
        }

        @Test("D44 send_timeout counts time without progress: a slow reader never trips it", arguments: Backend.all)
        func sendTimeoutProgress(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.passive), .sendTimeout(6000)])
                // 16 MiB in one send; P reads 32 KiB every 25 ms, so the send blocks far longer
                // than 6 s in total (about 10 s on Linux loopback, whose socket buffers hold a few
                // MiB of it) but never goes 6 s without progress, even on
                // a loaded machine where a 25 ms sleep can take several hundred (1 s gaps were seen
                // under two CPU hogs, and a 3 s timeout tripped once). (The kernel signals
                // writability only once a good part of its send buffer is free, so the reader must
                // free that within the timeout.)
                let data = [Pattern.eightMiB, Pattern.eightMiB]
                let total = 2 * Pattern.eightMiB.count
                var expected = Pattern.eightMiBDigest
                expected.update(Pattern.eightMiB)
                let reader = ctx.spawn { () async throws -> Digest in
                    var digest = Digest()
                    while digest.length < total {
                        await ctx.sleep(25)
                        digest.update(try await p.recv(min(32 << 10, total - digest.length), timeout: 15_000).bytes)
                    }
                    return digest
                }
                let start = ctx.now
                try await c.send(chunks: data)
                #expect(ctx.elapsedMilliseconds(since: start) > 6000, "the send did not block longer than the timeout: the test proves nothing")
                #expect(try await reader.value(within: 120000) == expected)
                c.close()
                p.close()
            }
        }

        @Test("D sends from several processes never interleave", arguments: Backend.all)
        func concurrentSenders(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let size = 1 << 20
                let writers = (1...3).map { i in
                    ctx.spawn { try await c.send([UInt8](repeating: UInt8(i), count: size)) }
                }
                var runs = Runs()
                var total = 0
                while total < 3 * size {
                    let got = try await p.recv(0, timeout: 30_000).bytes
                    total += got.count
                    runs.add(got)
                }
                for w in writers { try await w.value() }
                #expect(runs.runs.count == 3, "\(runs.runs.count) runs: the sends interleaved")
                #expect(runs.runs.map(\.count) == [size, size, size])
                #expect(Set(runs.runs.map(\.value)) == [1, 2, 3])
                #expect(try c.getstat().sendCnt == 3)
                c.close()
                p.close()
            }
        }

        @Test("D close while a send is blocked: the send gets closed, P gets a prefix then the end", arguments: Backend.all)
        func closeWhileSending(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // Deliberate departure: OTP queues the whole send in its driver, returns ok and
                // still delivers all of it after close. GenTCP has no driver queue; its send returns
                // when the kernel took every byte, so close makes a waiting send fail with closed
                // (documented on Socket.close) and only what the kernel took arrives.
                let (c, p) = try await ctx.pair()
                let data = Pattern.bytes(count: 16 << 20, seed: 9)
                let writer = ctx.spawn { () async -> SocketError? in
                    do throws(SocketError) { try await c.send(data); return nil } catch { return error }
                }
                var pending: UInt64 = 0
                // Until the send blocks (the loop ends then); up to 30 s, not 2: on a loaded machine
                // (or under a sanitizer) the writer can take seconds to start.
                for _ in 0..<3000 where pending == 0 {
                    await ctx.sleep(10)
                    pending = try c.getstat().sendPend
                }
                #expect(pending > 0, "the send never blocked")
                c.close()
                #expect(try await writer.value() == .closed)
                var got: [UInt8] = []
                while true {
                    do throws(SocketError) {
                        got += try await p.recv(0, timeout: 30_000).bytes
                    } catch {
                        #expect(error.reason == .closed)
                        break
                    }
                }
                #expect(got.count > 0 && got.count < data.count)
                #expect(data.starts(with: got), "P got a prefix of the stream")
                p.close()
            }
        }

        @Test("D47 close does not lose queued output", arguments: Backend.all)
        func closeKeepsOutput(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let data = Pattern.bytes(count: 4 << 20)
                let reader = ctx.spawn { () async throws -> Digest in
                    var digest = Digest()
                    while true {
                        do throws(SocketError) {
                            digest.update(try await p.recv(0, timeout: 30_000).bytes)
                        } catch {
                            #expect(error.reason == .closed)
                            return digest
                        }
                    }
                }
                var offset = 0
                while offset < data.count {
                    try await c.send(data[offset..<offset + (1 << 16)])
                    offset += 1 << 16
                }
                c.close()
                #expect(try await reader.value(within: 10000) == Digest(of: data))
            }
        }
    }
}
