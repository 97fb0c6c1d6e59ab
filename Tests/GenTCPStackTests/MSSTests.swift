import GenTCPCore
import GenTCPStack
import GenTCPWire
import Testing

/// `size` bytes each way between `t.a` (client) and `t.b` (listener on 7), until both ends saw
/// the other's FIN or `limit` steps passed. Returns what each side received.
private func exchange(_ t: inout Transfer, size: Int, limit: Int = 400_000) throws -> (atA: [UInt8], atB: [UInt8]) {
    let dataA = pattern(size, seed: 11)
    let dataB = pattern(size, seed: 12)
    let options = ConnectionOptions(sendBufferSize: 4096, receiveBufferSize: 4096)
    let listener = try t.b.listen(port: 7, backlog: 1, options: options)
    let client = try t.a.connect(to: boardAddress, port: 7, options: options, now: MillisecondInstant(milliseconds: t.now))
    var server: ConnectionHandle?
    var sent = (a: 0, b: 0)
    var shut = (a: false, b: false)
    var end = (a: false, b: false)
    var got: (a: [UInt8], b: [UInt8]) = ([], [])
    var scratch = [UInt8](repeating: 0, count: 4096)
    func drain(_ stack: inout Stack, _ handle: ConnectionHandle, into out: inout [UInt8]) throws -> Bool {
        while true {
            let r = try scratch.withUnsafeMutableBytes { try stack.recv(handle, into: $0) }
            guard case .data(let n) = r else { return r == .endOfStream }
            out += scratch[0..<n]
        }
    }
    var steps = 0
    while !(end.a && end.b) && steps < limit {
        steps += 1
        t.step()
        if let e = t.a.error(client) ?? server.flatMap({ t.b.error($0) }) {
            Issue.record("connection failed with \(e) at t = \(t.now) ms")
            break
        }
        if server == nil { server = try t.b.accept(listener) }
        if sent.a < size {
            sent.a += dataA[sent.a...].withUnsafeBytes { (try? t.a.send(client, $0)) ?? 0 }
        } else if !shut.a {
            try t.a.shutdown(client)
            shut.a = true
        }
        if let server {
            if sent.b < size {
                sent.b += dataB[sent.b...].withUnsafeBytes { (try? t.b.send(server, $0)) ?? 0 }
            } else if !shut.b {
                try t.b.shutdown(server)
                shut.b = true
            }
            if try drain(&t.b, server, into: &got.b) { end.b = true }
        }
        if try drain(&t.a, client, into: &got.a) { end.a = true }
        t.step()
        t.advance()
    }
    #expect(end.a && end.b, "both ends finished within \(limit) steps (t = \(t.now) ms)")
    #expect(got.b == dataA)
    #expect(got.a == dataB)
    return (got.a, got.b)
}

@Suite("MSS fits the MTU")
struct MSSTests {
    @Test("we advertise exactly MTU − 40, in a SYN and a SYN-ACK", arguments: [68, 96, 103, 104, 576, 1006])
    func advertised(mtu: Int) throws {
        var h = Harness(mtu: mtu)
        _ = try h.stack.listen(port: 80)
        h.feed(peer(.syn, seq: 1000, mss: 1460))
        let synAck = try #require(h.drain().first)
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.header.maximumSegmentSize == UInt16(mtu - 40))
        _ = try h.stack.connect(to: boardAddress, port: 81, localPort: 4000, now: MillisecondInstant(milliseconds: h.now))
        let syn = try #require(h.drain().first)
        #expect(syn.flags == .syn)
        #expect(syn.header.maximumSegmentSize == UInt16(mtu - 40))
    }

    @Test("a peer's MSS below 64 is honoured: our segments carry at most that much", arguments: [20, 28, 56] as [UInt16])
    func smallPeerMSS(mss: UInt16) throws {
        var h = Harness()
        let (connection, _) = establishActive(&h, options: ConnectionOptions(noDelay: true), peerMSS: mss)
        #expect(h.send(connection, pattern(1000, seed: 3)) == 1000)
        let sizes = h.drain().map(\.payload.count)
        #expect(!sizes.isEmpty)
        #expect(sizes.allSatisfy { $0 == Int(mss) }, "segment sizes \(sizes)")
    }

    @Test("two stacks, one at a small MTU, the other at 1006: 32 KiB each way byte-exact, nothing too big",
          arguments: [68, 96])
    func asymmetric(small: Int) throws {
        for (mtuA, mtuB) in [(small, 1006), (1006, small), (small, small)] {
            var t = Transfer(loss: 0, seed: 5, mtuA: mtuA, mtuB: mtuB)
            _ = try exchange(&t, size: 32 << 10)
            #expect(t.a.counters.tooBig == 0, "MTU \(mtuA) ↔ \(mtuB): datagrams too big for a")
            #expect(t.b.counters.tooBig == 0, "MTU \(mtuA) ↔ \(mtuB): datagrams too big for b")
        }
    }

    @Test("MTU 96 on a lossy line: 32 KiB each way byte-exact")
    func lossySmallMTU() throws {
        var t = Transfer(loss: 0.01, seed: 9, mtuA: 96, mtuB: 96)
        _ = try exchange(&t, size: 32 << 10)
    }
}
