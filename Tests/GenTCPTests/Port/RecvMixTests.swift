import GenTCP
import GenTCPCore
import GenTCPSim
import Testing

/// The port's receive paths mixed at random over one stream: exact reads (which read ahead up to
/// `buffer`), whole reads, polls, exact reads that time out (their bytes go back), `buffer`
/// changes, and turns in `{active, once}`, against a sender of random chunks and pauses. Whatever
/// the order, every byte must arrive once, in order, and the end after the last.
@Suite("Receive mix")
struct RecvMixTests {
    @Test("random exact and whole reads, timeouts, buffer changes and active turns: every byte once, in order",
          arguments: [Backend.sim, Backend.posix, Backend.posixLoop], [UInt64(1), 2, 3])
    func mix(_ backend: Backend, seed: UInt64) async throws {
        try await backend.run { ctx in
            let (c, p) = try await ctx.pair()
            var rng = SplitMix64(seed: seed)
            let total = 150_000
            let stream = Pattern.bytes(count: total, seed: seed)
            var plan: [(range: Range<Int>, pause: Int)] = []
            var at = 0
            while at < total {
                let n = min(total - at, 1 + Int(rng.next() % 5000))
                plan.append((at..<at + n, rng.next() % 4 == 0 ? Int(rng.next() % 20) : 0))
                at += n
            }
            let sender = ctx.spawn { [plan, stream] in
                for step in plan {
                    try await p.send(Array(stream[step.range]))
                    if step.pause > 0 { await ctx.sleep(step.pause) }
                }
                p.close()
            }
            var got: [UInt8] = []
            var operations = 0
            var readAheadSeen = 0
            while got.count < total {
                operations += 1
                let left = total - got.count
                // An exact read never asks past the end: across it OTP's rule drops the partial
                // bytes, which this test does not count on.
                let exact = min(left, 1 + Int(rng.next() % 3000))
                switch rng.next() % 10 {
                case 0, 1, 2, 3:
                    got += try await c.recv(exact, timeout: 30_000).bytes
                case 4, 5:
                    got += try await c.recv(0, timeout: 30_000).bytes
                case 6:
                    do throws(SocketError) {
                        got += try await c.recv(exact, timeout: 3).bytes
                    } catch {
                        #expect(error.reason == .timeout)
                    }
                case 7:
                    let sizes = [16, 64, 1460, 4096]
                    try c.setopts(.buffer(sizes[Int(rng.next() % 4)]))
                case 8:
                    try c.setopts(.active(.once))
                    let message = await next(30_000)
                    guard case .tcp(let s, let payload) = message, s == c else {
                        Issue.record("expected a tcp message, got \(message)")
                        return
                    }
                    got += payload.bytes
                default:
                    do throws(SocketError) {
                        got += try await c.recv(0, timeout: 0).bytes
                    } catch {
                        #expect(error.reason == .timeout)
                    }
                }
                let ahead = c.readAheadByteCount
                #expect(ahead <= 4096, "read ahead past the largest buffer")
                if ahead > 0 { readAheadSeen += 1 }
                if got.count > total || got != Array(stream[0..<got.count]) {
                    Issue.record("bytes out of order or repeated after \(operations) operations")
                    return
                }
            }
            #expect(got == stream)
            #expect(readAheadSeen > 0, "no exact read read ahead in \(operations) operations")
            await #expect(throws: SocketError.closed) { _ = try await c.recv(0, timeout: 30_000) }
            try await sender.value()
            c.close()
        }
    }
}
