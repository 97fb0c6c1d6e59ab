import GenTCPCore
import GenTCPStack
import GenTCPWire
import Testing

/// Two stacks joined by a simulated serial line: each direction is a FIFO with a fixed
/// propagation delay and a byte rate, plus seeded loss, corruption and reordering.
struct Line {
    struct InFlight {
        var arrival: Int64
        var bytes: [UInt8]
    }
    var queue: [InFlight] = []
    var busyUntil: Int64 = 0
    /// Bytes per millisecond (92 ≈ 921 600 baud 8N1).
    var bytesPerMillisecond: Int64 = 92
    var delay: Int64 = 2
    var loss: Double
    var corruption: Double
    var reorder: Double
    var rng: SplitMix64
    var delivered = 0
    var dropped = 0

    mutating func offer(_ bytes: [UInt8], now: Int64) {
        let start = max(now, busyUntil)
        let duration = max(1, Int64(bytes.count + 2) / bytesPerMillisecond)
        busyUntil = start + duration
        var arrival = busyUntil + delay
        let roll = Double(rng.next() % 1_000_000) / 1_000_000
        if roll < loss {
            dropped += 1
            return
        }
        var copy = bytes
        if roll < loss + corruption {
            let at = Int(rng.next() % UInt64(copy.count))
            copy[at] ^= UInt8(1 + rng.next() % 255)
        } else if roll < loss + corruption + reorder {
            arrival += 3 * duration + 1
        }
        queue.append(InFlight(arrival: arrival, bytes: copy))
        queue.sort { $0.arrival < $1.arrival }
    }

    /// The line is free to take another frame (the driver paces `transmit` by this).
    func canSend(_ now: Int64) -> Bool { busyUntil <= now }

    mutating func take(_ now: Int64) -> [UInt8]? {
        guard let first = queue.first, first.arrival <= now else { return nil }
        queue.removeFirst()
        delivered += 1
        return first.bytes
    }

    var nextArrival: Int64? { queue.first?.arrival }
}

struct Transfer: ~Copyable {
    var a: Stack
    var b: Stack
    var ab: Line
    var ba: Line
    var now: Int64 = 0
    var buffer = [UInt8](repeating: 0, count: 1006)

    /// `mtuA` and `mtuB` are each stack's own MTU (a datagram longer than the receiver's is
    /// dropped by it, as a SLIP decoder would).
    init(loss: Double, seed: UInt64, mtuA: Int = 1006, mtuB: Int = 1006) {
        a = Stack(configuration: StackConfiguration(
            localAddress: hostAddress, peerAddress: boardAddress, mtu: mtuA, seed: seed))
        b = Stack(configuration: StackConfiguration(
            localAddress: boardAddress, peerAddress: hostAddress, mtu: mtuB, seed: seed ^ 0xABCD))
        // Corruption and reordering at the same rate as loss: all three happen on a real line.
        ab = Line(loss: loss, corruption: loss, reorder: loss, rng: SplitMix64(seed: seed &+ 1))
        ba = Line(loss: loss, corruption: loss, reorder: loss, rng: SplitMix64(seed: seed &+ 2))
    }

    /// One step: deliver what arrived, fire timers, send what the lines can take.
    mutating func step() {
        while let bytes = ab.take(now) { bytes.withUnsafeBytes { b.receive($0, now: MillisecondInstant(milliseconds: now)) } }
        while let bytes = ba.take(now) { bytes.withUnsafeBytes { a.receive($0, now: MillisecondInstant(milliseconds: now)) } }
        _ = a.poll(now: MillisecondInstant(milliseconds: now))
        _ = b.poll(now: MillisecondInstant(milliseconds: now))
        while ab.canSend(now), let n = buffer.withUnsafeMutableBytes({ a.transmit(into: $0, now: MillisecondInstant(milliseconds: now)) }) {
            ab.offer(Array(buffer[0..<n]), now: now)
        }
        while ba.canSend(now), let n = buffer.withUnsafeMutableBytes({ b.transmit(into: $0, now: MillisecondInstant(milliseconds: now)) }) {
            ba.offer(Array(buffer[0..<n]), now: now)
        }
    }

    /// Advances the clock to the next thing that can happen.
    mutating func advance() {
        var next = now + 1000
        for candidate in [ab.nextArrival, ba.nextArrival, a.nextDeadline?.milliseconds, b.nextDeadline?.milliseconds] {
            if let candidate, candidate < next { next = candidate }
        }
        if !ab.canSend(now) { next = min(next, ab.busyUntil) }
        if !ba.canSend(now) { next = min(next, ba.busyUntil) }
        now = max(now + (next <= now ? 0 : 0), next)
        if next <= now { now += 0 }
    }
}

@Suite("Two stacks over a lossy line")
struct TwoStackTests {
    @Test("1 MiB each way stays byte-exact", arguments: [0.0, 0.001, 0.01], [42, 3] as [UInt64])
    func bulkBothWays(loss: Double, seed: UInt64) throws {
        let size = 1 << 20
        let dataA = pattern(size, seed: 1)
        let dataB = pattern(size, seed: 2)
        var t = Transfer(loss: loss, seed: seed)
        let options = ConnectionOptions(sendBufferSize: 16384, receiveBufferSize: 16384)
        let listener = try t.b.listen(port: 7, backlog: 1, options: options)
        let client = try t.a.connect(to: boardAddress, port: 7, options: options, now: 0)
        var server: ConnectionHandle?
        var sentA = 0, sentB = 0
        var gotA: [UInt8] = [], gotB: [UInt8] = []
        gotA.reserveCapacity(size)
        gotB.reserveCapacity(size)
        var shutA = false, shutB = false
        var endA = false, endB = false
        var scratch = [UInt8](repeating: 0, count: 4096)
        var steps = 0
        var peakSlots = 0
        while !(endA && endB) {
            steps += 1
            #expect(steps < 2_000_000)
            if steps >= 2_000_000 { break }
            t.step()
            if let e = t.a.error(client) ?? server.flatMap({ t.b.error($0) }) {
                Issue.record("connection failed with \(e) at t = \(t.now) ms")
                break
            }
            if server == nil { server = try t.b.accept(listener) }
            // Application side: write as much as fits, read everything.
            if sentA < size {
                sentA += dataA[sentA...].withUnsafeBytes { (try? t.a.send(client, $0)) ?? 0 }
            } else if !shutA {
                try t.a.shutdown(client)
                shutA = true
            }
            if let server {
                if sentB < size {
                    sentB += dataB[sentB...].withUnsafeBytes { (try? t.b.send(server, $0)) ?? 0 }
                } else if !shutB {
                    try t.b.shutdown(server)
                    shutB = true
                }
                while true {
                    let r = try scratch.withUnsafeMutableBytes { try t.b.recv(server, into: $0) }
                    if case .data(let n) = r { gotB += scratch[0..<n] } else {
                        if r == .endOfStream { endB = true }
                        break
                    }
                }
            }
            while true {
                let r = try scratch.withUnsafeMutableBytes { try t.a.recv(client, into: $0) }
                if case .data(let n) = r { gotA += scratch[0..<n] } else {
                    if r == .endOfStream { endA = true }
                    break
                }
            }
            peakSlots = max(peakSlots, t.a.connectionsInUse, t.b.connectionsInUse)

            t.step()
            t.advance()
        }
        #expect(gotB.count == size)
        #expect(gotA.count == size)
        #expect(SHA256.hash(gotB) == SHA256.hash(dataA))
        #expect(SHA256.hash(gotA) == SHA256.hash(dataB))
        #expect(peakSlots == 1)
        // Both ends closed: after TIME-WAIT the slots are free again.
        t.a.close(client)
        if let server { t.b.close(server) }
        for _ in 0..<10_000 where t.a.connectionsInUse + t.b.connectionsInUse > 0 {
            t.step()
            t.advance()
        }
        #expect(t.a.connectionsInUse == 0)
        #expect(t.b.connectionsInUse == 0)
        let seconds = Double(t.now) / 1000
        print("loss \(loss): \(seconds) s simulated, \(Int(Double(size) / seconds)) B/s each way, "
            + "rto a=\(t.a.counters.timeoutRetransmissions) b=\(t.b.counters.timeoutRetransmissions) "
            + "fast a=\(t.a.counters.fastRetransmissions) b=\(t.b.counters.fastRetransmissions) "
            + "bad=\(t.a.counters.badChecksum + t.b.counters.badChecksum) steps=\(steps)")
    }
}
