import GenTCP
import GenTCPCore
import Testing

extension Conformance {
    @Suite("E Shutdown and half-close")
    struct Shutdown {
        @Test("E48 half-close with a reply (peer has exit_on_close=false)", arguments: Backend.all)
        func halfCloseReply(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(server: [.binary, .active(.passive), .exitOnClose(false)])
                try await c.send("req")
                try c.shutdown(.write)
                #expect(try await p.recv(3, timeout: 30_000) == bin("req"))
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                try await p.send("reply")
                p.close()
                #expect(try await c.recv(0, timeout: 30_000) == bin("reply"))
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
            }
        }

        @Test("E49 half-close when the peer has default options: no reply, closed", arguments: Backend.all)
        func halfCloseDefaultPeer(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await c.send("req")
                try c.shutdown(.write)
                #expect(try await p.recv(3, timeout: 30_000) == bin("req"))
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                // OTP 25 (checked with erl): with exit_on_close=true, P's descriptor is closed as
                // soon as its recv reports the end of stream, so C sees the end of the stream at
                // once, without P calling close, and P cannot reply.
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await p.send("reply") }
                await #expect(throws: SocketError.notConnected) { _ = try await p.recv(0, timeout: 200) }
                #expect(try p.getopt(.active) == .active(.passive))
                p.close()
                c.close()
            }
        }

        @Test("E49 a sender blocked on P when P's recv meets the end of stream gets closed", arguments: Backend.all)
        func blockedSenderAtPassiveEOF(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // GenTCP has no driver queue: a send that cannot complete reports closed, as a
                // blocked send does when the connection goes (semantics §8, busy_disconnect).
                let (c, p) = try await ctx.pair()
                let chunk = [UInt8](repeating: 3, count: 1 << 16)
                let writer = ctx.spawn { await sendUntilError(p, chunk).error }
                var pending: UInt64 = 0
                // Until the send blocks (the loop ends then); up to 30 s, not 2: on a loaded machine
                // (or under a sanitizer) the writer can take seconds to start.
                for _ in 0..<3000 where pending == 0 {
                    await ctx.sleep(10)
                    pending = try p.getstat().sendPend
                }
                #expect(pending > 0, "the writer never blocked")
                try c.shutdown(.write)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                #expect(try await writer.value() == .closed)
                c.close()
                p.close()
            }
        }

        @Test("E50 half-close, active mode", arguments: Backend.all)
        func halfCloseActive(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(client: [.binary, .active(.active)],
                                                server: [.binary, .active(.passive), .exitOnClose(false)])
                try await c.send("req")
                try c.shutdown(.write)
                #expect(try await p.recv(3, timeout: 30_000) == bin("req"))
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                try await p.send("reply")
                p.close()
                #expect(await next() == .tcp(c, bin("reply")))
                #expect(await next() == .tcpClosed(c))
                #expect(await next(50) == .none)
                c.close()
            }
        }

        @Test("E51 send after shutdown(write)", arguments: Backend.all)
        func sendAfterShutdownWrite(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // P keeps its socket open (exit_on_close=false) and even sends: C's recv must
                // still say closed after C's failed send (semantics §8, §9).
                let (c, p) = try await ctx.pair(server: [.binary, .active(.passive), .exitOnClose(false)])
                try c.shutdown(.write)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                try await p.send("in flight")
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.notConnected) { try await c.send("y") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
                p.close()
            }
        }

        @Test("E51 the failed send also drops bytes a timed-out recv kept (OTP 25)", arguments: Backend.all)
        func failedSendDropsKeptBytes(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("abc")
                await #expect(throws: SocketError.timeout) { _ = try await c.recv(5, timeout: 50) }
                try c.shutdown(.write)
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 200) }
                c.close()
                p.close()
            }
        }

        @Test("E52 shutdown(read_write)", arguments: Backend.all)
        func shutdownBoth(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try c.shutdown(.readWrite)
                await #expect(throws: SocketError.closed) { _ = try await p.recv(0, timeout: 30_000) }
                await #expect(throws: SocketError.closed) { try await c.send("x") }
                await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
                c.close()
                p.close()
            }
        }

        @Test("E52 shutdown(read_write) wakes a waiting recv with closed", arguments: Backend.all)
        func shutdownBothWakesRecv(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let waiter = ctx.spawn { () async throws -> SocketError? in
                    do throws(SocketError) {
                        _ = try await c.recv(0, timeout: 30_000)
                        return nil
                    } catch { return error }
                }
                await ctx.sleep(50)
                try c.shutdown(.readWrite)
                #expect(try await waiter.value() == .closed)
                c.close()
                p.close()
            }
        }

        @Test("E54 shutdown on a closed socket", arguments: Backend.all)
        func shutdownClosed(_ backend: Backend) async throws {
            try await backend.run { ctx in
                // shutdown on a listen socket (enotconn in OTP) does not exist: ListenSocket has no
                // shutdown, a deliberate departure.
                let (c, p) = try await ctx.pair()
                c.close()
                for how in [ShutdownHow.read, .write, .readWrite] {
                    #expect(throws: SocketError.closed) { try c.shutdown(how) }
                }
                p.close()
            }
        }

        @Test("E55 shutdown(read): recv eventually fails; sending works until then", arguments: Backend.all)
        func shutdownRead(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                try await p.send("early")
                await ctx.sleep(20)
                try c.shutdown(.read)
                try await c.send("still")
                #expect(try await p.recv(5, timeout: 30_000) == bin("still"))
                // Data already in flight may still be returned first (Linux); then closed.
                var outcome: SocketError?
                for _ in 0..<4 where outcome == nil {
                    do throws(SocketError) {
                        let got = try await c.recv(0, timeout: 30_000)
                        #expect(bytes("early").starts(with: got.bytes), "unexpected data \(got)")
                    } catch {
                        outcome = error
                    }
                }
                #expect(outcome == .closed)
                // That end of stream is a passive EOF like any other (exit_on_close): send is closed.
                await #expect(throws: SocketError.closed) { try await c.send("after") }
                c.close()
                p.close()
            }
        }

        @Test("E shutdown(write) with a send in progress: FIN after the queued bytes", arguments: Backend.all)
        func shutdownWriteAfterPending(_ backend: Backend) async throws {
            // OTP documents that the FIN waits until queued data is flushed (gen_tcp:shutdown/2);
            // GenTCP documents the same for bytes of waiting senders. (OTP 25 on this machine
            // actually dropped the 274837 bytes still in its driver queue; GenTCP keeps them.)
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair()
                let data = Pattern.bytes(count: 4 << 20)
                let writer = ctx.spawn { try await c.send(data) }
                var pending: UInt64 = 0
                // Until the send blocks (the loop ends then); up to 30 s, not 2: on a loaded machine
                // (or under a sanitizer) the writer can take seconds to start.
                for _ in 0..<3000 where pending == 0 {
                    await ctx.sleep(10)
                    pending = try c.getstat().sendPend
                }
                #expect(pending > 0, "the send never blocked")
                try c.shutdown(.write)
                await #expect(throws: SocketError.closed) { try await c.send("late") }
                var digest = Digest()
                while true {
                    do throws(SocketError) {
                        digest.update(try await p.recv(0, timeout: 30_000).bytes)
                    } catch {
                        #expect(error.reason == .closed)
                        break
                    }
                }
                #expect(digest == Digest(of: data))
                try await writer.value()
                c.close()
                p.close()
            }
        }
    }
}
