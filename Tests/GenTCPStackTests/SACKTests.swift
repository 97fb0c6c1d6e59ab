import GenTCPCore
import GenTCPStack
import GenTCPWire
import Testing

/// `segment` with the SACK-permitted option (for SYNs) or SACK blocks (for ACKs).
private func withSACK(_ segment: Segment, permitted: Bool = false, blocks: [(UInt32, UInt32)] = []) -> Segment {
    var s = segment
    s.header.sackPermitted = permitted
    for (left, right) in blocks {
        s.header.sackBlocks.append(TCPSACKBlock(left: SequenceNumber(left), right: SequenceNumber(right)))
    }
    return s
}

private func blocks(_ segment: Segment) -> [[UInt32]] {
    segment.header.sackBlocks.map { [$0.left.rawValue, $0.right.rawValue] }
}

/// Active open from port 4000 whose peer offers SACK and answers after 100 ms (so that SRTT
/// starts at 100 and a retransmission is probed only ~200 ms after it went); time then runs
/// from 0 again. Returns the connection and our ISS + 1.
private func establishWithSACK(_ h: inout Harness, options: ConnectionOptions = ConnectionOptions())
    -> (ConnectionHandle, UInt32)
{
    h.now = -100
    let connection = try! h.stack.connect(to: boardAddress, port: 80, localPort: 4000, options: options, now: MillisecondInstant(milliseconds: h.now))
    let syn = h.drain()[0]
    h.feed(withSACK(peer([.syn, .ack], seq: 5000, ack: syn.seq &+ 1, window: 65535, mss: 1460, from: 80, to: 4000),
                    permitted: true), at: 0)
    _ = h.drain()
    _ = h.events()
    return (connection, syn.seq &+ 1)
}

@Suite("SACK (RFC 2018), SACK recovery and RACK (RFC 6675, RFC 8985)")
struct SACKTests {
    @Test func offeredInOurSYNAndAnsweredOnlyWhenOffered() throws {
        var h = Harness()
        _ = try h.stack.connect(to: boardAddress, port: 80, localPort: 4000, options: ConnectionOptions(), now: 0)
        #expect(h.drain().map(\.header.sackPermitted) == [true])
        _ = try h.stack.connect(
            to: boardAddress, port: 80, localPort: 4001,
            options: ConnectionOptions(selectiveAcknowledgments: false), now: 0)
        #expect(h.drain().map(\.header.sackPermitted) == [false])

        _ = try h.stack.listen(port: 80, backlog: 4)
        h.feed(peer(.syn, seq: 1000, mss: 536, from: 5000))
        #expect(h.drain().map(\.header.sackPermitted) == [false])
        h.feed(withSACK(peer(.syn, seq: 3000, mss: 536, from: 5001), permitted: true))
        #expect(h.drain().map(\.header.sackPermitted) == [true])
    }

    @Test func heldRunsAreReportedLatestFirst() throws {
        var h = Harness()
        let listener = try h.stack.listen(port: 80, backlog: 2)
        h.feed(withSACK(peer(.syn, seq: 1000, mss: 536), permitted: true))
        let synAck = h.drain()[0]
        let iss = synAck.seq &+ 1
        h.feed(peer(.ack, seq: 1001, ack: iss), at: 1)
        let connection = try #require(try h.stack.accept(listener))
        let a = pattern(100, seed: 1), b = pattern(100, seed: 2), c = pattern(100, seed: 3), d = pattern(100, seed: 4)
        h.feed(peer(.ack, seq: 1101, ack: iss, data: b), at: 10)
        var out = h.drain()
        #expect(out.map(\.ack) == [1001])
        #expect(out.map(blocks) == [[[1101, 1201]]])
        h.feed(peer(.ack, seq: 1301, ack: iss, data: d), at: 11)
        out = h.drain()
        #expect(out.map(blocks) == [[[1301, 1401], [1101, 1201]]])
        h.feed(peer(.ack, seq: 1001, ack: iss, data: a), at: 12)
        out = h.drain()
        #expect(out.map(\.ack) == [1201])
        #expect(out.map(blocks) == [[[1301, 1401]]])
        h.feed(peer(.ack, seq: 1201, ack: iss, data: c), at: 13)
        out = h.drain()
        #expect(out.map(\.ack) == [1401])
        #expect(out.map(blocks) == [[]])
        #expect(h.read(connection) == a + b + c + d)
    }

    @Test func blocksFitTheSmallestMTU() throws {
        var h = Harness(mtu: 68)  // 28 bytes of TCP header room: three blocks, not four
        let listener = try h.stack.listen(port: 80, backlog: 2)
        h.feed(withSACK(peer(.syn, seq: 1000, mss: 28), permitted: true))
        let iss = h.drain()[0].seq &+ 1
        h.feed(peer(.ack, seq: 1001, ack: iss), at: 1)
        _ = try #require(try h.stack.accept(listener))
        var acks: [Segment] = []
        for k in 1...4 {
            h.feed(peer(.ack, seq: 1001 &+ UInt32(20 * k), ack: iss, data: pattern(10, seed: UInt64(k))), at: 10)
            acks += h.drain()
        }
        #expect(acks.map { $0.header.sackBlocks.count } == [1, 2, 3, 3])
        #expect(acks.last.map(blocks) == [[1081, 1091], [1021, 1031], [1041, 1051]])
    }

    @Test func onlyTheHoleIsResent() throws {
        var h = Harness()
        let (connection, iss) = establishWithSACK(&h)
        let mss: UInt32 = 966
        #expect(h.send(connection, pattern(6 * 966, seed: 9)) == 6 * 966)
        #expect(h.drain().map(\.seq) == (0..<4).map { iss &+ $0 * mss })
        // Segment 2 lost: the ACK of segment 1 carries a SACK block for segments 3 and 4.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, window: 65535, from: 80, to: 4000)
            .sack([(iss &+ 2 * mss, iss &+ 4 * mss)]), at: 10)
        // Segments 5 and 6 go at once (pipe holds only segment 2); segment 2 is deemed lost a
        // quarter round trip later (RACK's reordering allowance before recovery: 10 / 4).
        #expect(h.drain().map(\.seq) == [iss &+ 4 * mss, iss &+ 5 * mss])
        let later = h.run(until: 100)
        #expect(later.map(\.0) == [12])
        #expect(later.map(\.1.seq) == [iss &+ mss])
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 6 * mss, window: 65535, from: 80, to: 4000), at: 120)
        #expect(h.drain().isEmpty)
        #expect(h.stack.nextDeadline == nil)
        #expect(h.stack.counters.fastRetransmissions == 1)
        #expect(h.stack.counters.timeoutRetransmissions == 0)
    }

    @Test func aLostRetransmissionIsFoundByWhatWasSentAfterIt() throws {
        var h = Harness()
        let (connection, iss) = establishWithSACK(&h)
        let mss: UInt32 = 966
        _ = h.send(connection, pattern(6 * 966, seed: 5))
        _ = h.drain()  // segments 1-4
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, window: 65535, from: 80, to: 4000)
            .sack([(iss &+ 2 * mss, iss &+ 4 * mss)]), at: 10)
        _ = h.drain()  // segments 5, 6
        #expect(h.run(until: 12).map(\.1.seq) == [iss &+ mss])  // segment 2 again
        // Segment 7 waits: recovery halved cwnd to 2.5 segments and 2, 5 and 6 are in flight.
        h.now = 15
        _ = h.send(connection, pattern(966, seed: 6))
        #expect(h.drain().isEmpty)
        // Segments 5 and 6 (sent before the retransmission) arrive, then 7 goes out and
        // arrives; segment 2's second copy does not: RACK sees 7 delivered and 2 not.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, window: 65535, from: 80, to: 4000)
            .sack([(iss &+ 2 * mss, iss &+ 6 * mss)]), at: 20)
        let seventh = h.drain()
        #expect(seventh.map(\.seq) == [iss &+ 6 * mss])
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, window: 65535, from: 80, to: 4000)
            .sack([(iss &+ 2 * mss, iss &+ 7 * mss)]), at: 30)
        #expect(h.drain().map(\.seq) == [iss &+ mss])
        #expect(h.stack.counters.timeoutRetransmissions == 0)
    }

    /// The scenario above up to segment 7, with and without a dedicated link: on a serial cable
    /// the loss does not halve the window, so segment 7 goes as soon as it is written.
    @Test(arguments: [false, true])
    func aDedicatedLinkKeepsItsWindowThroughALoss(dedicated: Bool) throws {
        var h = Harness(dedicatedLink: dedicated)
        let (connection, iss) = establishWithSACK(&h)
        let mss: UInt32 = 966
        _ = h.send(connection, pattern(6 * 966, seed: 5))
        _ = h.drain()
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, window: 65535, from: 80, to: 4000)
            .sack([(iss &+ 2 * mss, iss &+ 4 * mss)]), at: 10)
        _ = h.drain()
        #expect(h.run(until: 12).map(\.1.seq) == [iss &+ mss])
        h.now = 15
        _ = h.send(connection, pattern(966, seed: 6))
        #expect(h.drain().map(\.seq) == (dedicated ? [iss &+ 6 * mss] : []))
    }

    @Test func aPeerWithoutSACKGetsNewRenoAndNoBlocks() throws {
        var h = Harness()
        let listener = try h.stack.listen(port: 80, backlog: 2)
        h.feed(peer(.syn, seq: 1000, mss: 536))
        let iss = h.drain()[0].seq &+ 1
        h.feed(peer(.ack, seq: 1001, ack: iss), at: 1)
        _ = try #require(try h.stack.accept(listener))
        h.feed(peer(.ack, seq: 1101, ack: iss, data: pattern(100, seed: 2)), at: 10)
        let out = h.drain()
        #expect(out.map(\.ack) == [1001])
        #expect(out.map(blocks) == [[]])
    }
}

extension Segment {
    /// This ACK with SACK blocks.
    func sack(_ ranges: [(UInt32, UInt32)]) -> Segment {
        var s = self
        for (left, right) in ranges {
            s.header.sackBlocks.append(TCPSACKBlock(left: SequenceNumber(left), right: SequenceNumber(right)))
        }
        return s
    }
}
