import GenTCPStack
import GenTCPWire
import Testing

/// Loss repair toward a peer without SACK (lwIP 2.1 as Debian builds it): cumulative ACKs only,
/// out-of-order data held by the receiver, and a delayed ACK for a segment that fills a gap.
@Suite("Recovery without SACK: Karn on cumulative ACKs, NewReno on a dedicated link")
struct NoSACKRecoveryTests {
    /// An ACK that covers a retransmitted segment gives no RTT sample, even from the segments
    /// after it that were sent once: the receiver held those, and the ACK came for the
    /// retransmission (RFC 6298 §3). Taking it inflated SRTT by the time every hole took to
    /// repair; against lwIP on a lossy line the RTO reached its 30 s ceiling.
    @Test func anAckCoveringARetransmissionGivesNoSample() throws {
        var h = Harness()
        // Handshake RTT 100 ms: SRTT 100, RTTVAR 50, RTO 300.
        let (connection, iss) = establishActive(&h, rtt: 100)
        let mss: UInt32 = 966
        h.now = 200
        _ = h.send(connection, pattern(4 * 966, seed: 3))
        #expect(h.drain().map(\.seq) == (0..<4).map { iss &+ $0 * mss })
        for _ in 0..<3 { h.feed(peer(.ack, seq: 5001, ack: iss, from: 80, to: 4000), at: 210) }
        #expect(h.drain().map(\.seq) == [iss])
        // Everything acknowledged 200 ms after segments 2-4 went: with that sample the RTO
        // would be 112 + 250 = 362; without it, still 300.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 4 * mss, from: 80, to: 4000), at: 400)
        #expect(h.drain().isEmpty)
        h.now = 500
        _ = h.send(connection, pattern(10, seed: 4))
        #expect(h.run(until: 900).map(\.0) == [500, 800])
    }

    /// Three duplicate ACKs on a dedicated link: the hole and the segment after it go (see
    /// `markFirstHoleLost`), so that a receiver delaying the ACK for a filled gap answers at
    /// once; each partial ACK does the same. With standard congestion control, RFC 6582 as is.
    @Test(arguments: [false, true])
    func aHoleIsResentWithTheSegmentAfterIt(dedicated: Bool) throws {
        var h = Harness(dedicatedLink: dedicated)
        let (connection, iss) = establishActive(&h, rtt: 100)
        let mss: UInt32 = 966
        h.now = 200
        _ = h.send(connection, pattern(4 * 966, seed: 5))
        #expect(h.drain().count == 4)
        for _ in 0..<3 { h.feed(peer(.ack, seq: 5001, ack: iss, from: 80, to: 4000), at: 210) }
        #expect(h.drain().map(\.seq) == (dedicated ? [iss, iss &+ mss] : [iss]))
        // Partial ACK: segments 1 and 2 arrived, 3 did not.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 2 * mss, from: 80, to: 4000), at: 230)
        #expect(h.drain().map(\.seq) == (dedicated ? [iss &+ 2 * mss, iss &+ 3 * mss] : [iss &+ 2 * mss]))
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 4 * mss, from: 80, to: 4000), at: 250)
        #expect(h.drain().isEmpty)
        #expect(h.stack.nextDeadline == nil)
        #expect(h.stack.counters.timeoutRetransmissions == 0)
    }

    /// A timeout on a dedicated link toward a peer without SACK resends the earliest segment
    /// (and the one after it), not the whole window: the receiver holds most of it, and its
    /// partial ACKs point at the next holes.
    @Test func aTimeoutResendsTheFirstHoleNotTheWindow() throws {
        var h = Harness(dedicatedLink: true)
        let (connection, iss) = establishActive(&h, rtt: 100)
        let mss: UInt32 = 966
        h.now = 200
        _ = h.send(connection, pattern(4 * 966, seed: 6))
        #expect(h.drain().count == 4)
        let resent = h.run(until: 510)
        #expect(resent.map(\.0) == [500, 500])
        #expect(resent.map(\.1.seq) == [iss, iss &+ mss])
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 2 * mss, from: 80, to: 4000), at: 520)
        #expect(h.drain().map(\.seq) == [iss &+ 2 * mss, iss &+ 3 * mss])
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 4 * mss, from: 80, to: 4000), at: 540)
        #expect(h.drain().isEmpty)
        #expect(h.stack.nextDeadline == nil)
        #expect(h.stack.counters.timeoutRetransmissions == 1)
    }
}
