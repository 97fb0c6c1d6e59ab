import GenTCPStack
import GenTCPWire
import Testing

@Suite("Data, ACKs, windows, retransmission")
struct DataTests {
    @Test func delayedAckThenEverySecondSegment() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.feed(peer([.ack, .psh], seq: 1001, ack: iss, data: pattern(100, seed: 1)), at: 100)
        #expect(h.drain().isEmpty)
        let sent = h.run(until: 1000)
        #expect(sent.count == 1)
        #expect(sent.first?.0 == 120)  // ackDelay 20 ms
        #expect(sent.first?.1.ack == 1101)
        #expect(sent.first?.1.window == 8092)
        // Two full segments: the second is acknowledged at once.
        h.feed(peer(.ack, seq: 1101, ack: iss, data: pattern(966, seed: 2)), at: 2000)
        #expect(h.drain().isEmpty)
        h.feed(peer(.ack, seq: 2067, ack: iss, data: pattern(966, seed: 3)), at: 2001)
        let ack = h.drain()
        #expect(ack.map(\.ack) == [3033])
        #expect(h.read(connection).count == 2032)
    }

    @Test func nagleHoldsSmallSegmentsUntilAcked() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h)
        #expect(h.send(connection, Array(repeating: 1, count: 10)) == 10)
        #expect(h.drain().map(\.payload.count) == [10])
        #expect(h.send(connection, Array(repeating: 2, count: 10)) == 10)
        #expect(h.drain().isEmpty)
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 10, from: 80, to: 4000), at: 50)
        let out = h.drain()
        #expect(out.map(\.payload) == [Array(repeating: 2, count: 10)])
        #expect(out.first?.seq == iss &+ 10)
    }

    @Test func noDelaySendsAtOnce() throws {
        var h = Harness()
        let (connection, _) = establishActive(&h, options: ConnectionOptions(noDelay: true))
        _ = h.send(connection, Array(repeating: 1, count: 10))
        #expect(h.drain().count == 1)
        _ = h.send(connection, Array(repeating: 2, count: 10))
        #expect(h.drain().map(\.payload.count) == [10])
    }

    @Test func retransmissionTimeoutDoublesAndAnAckEndsTheBackOff() throws {
        var h = Harness()
        // Handshake RTT 100 ms: SRTT 100, RTTVAR 50, RTO = 100 + 4·50 = 300 (RFC 6298 §2.2).
        let (connection, iss) = establishActive(&h, rtt: 100)
        h.now = 200
        _ = h.send(connection, pattern(100, seed: 1))
        let sent = h.run(until: 2350)
        // Timeouts at 500, 1100, 2300; the first retransmission also goes once more when a probe
        // interval (2·SRTT + 1 = 201) passes without an ACK.
        #expect(sent.map(\.0) == [200, 500, 701, 1100, 2300])
        #expect(sent.allSatisfy { $0.1.seq == iss && $0.1.payload.count == 100 })
        // The ACK of a retransmitted segment gives no sample (Karn), but it shows the line
        // delivers again: the RTO goes back to SRTT + 4·RTTVAR (300) instead of keeping the
        // backed-off 2400, and backs off afresh from there.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, from: 80, to: 4000), at: 2400)
        h.now = 2500
        _ = h.send(connection, pattern(10, seed: 2))
        let next = h.run(until: 5000)
        #expect(next.map(\.0) == [2500, 2800, 3001, 3400, 4600])
        #expect(h.stack.counters.timeoutRetransmissions == 6)
    }

    @Test func fastRetransmitAndNewRenoRecovery() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h)
        let mss: UInt32 = 966
        #expect(h.send(connection, pattern(6 * 966, seed: 9)) == 6 * 966)
        var out = h.drain()
        #expect(out.map(\.seq) == (0..<4).map { iss &+ $0 * mss })  // initial window: 4 segments
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, from: 80, to: 4000), at: 10)
        out = h.drain()
        #expect(out.map(\.seq) == [iss &+ 4 * mss, iss &+ 5 * mss])
        // Segment 2 lost: three duplicate ACKs.
        for _ in 0..<2 {
            h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, from: 80, to: 4000), at: 20)
            #expect(h.drain().isEmpty)
        }
        h.feed(peer(.ack, seq: 5001, ack: iss &+ mss, from: 80, to: 4000), at: 20)
        out = h.drain()
        #expect(out.map(\.seq) == [iss &+ mss])
        #expect(out.first?.payload.count == 966)
        // Partial ACK (segment 3 lost too): RFC 6582 resends the next hole at once.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 2 * mss, from: 80, to: 4000), at: 30)
        out = h.drain()
        #expect(out.map(\.seq) == [iss &+ 2 * mss])
        // Full ACK: recovery ends, nothing outstanding, no timer.
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 6 * mss, from: 80, to: 4000), at: 40)
        #expect(h.drain().isEmpty)
        #expect(h.stack.nextDeadline == nil)
        #expect(h.stack.counters.fastRetransmissions == 2)
        #expect(h.stack.counters.timeoutRetransmissions == 0)
    }

    @Test func outOfOrderSegmentsAreHeldAndDelivered() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        let a = pattern(100, seed: 1), b = pattern(100, seed: 2), c = pattern(50, seed: 3)
        h.feed(peer(.ack, seq: 1101, ack: iss, data: b), at: 10)
        // A duplicate ACK at once (RFC 5681 §4.2).
        #expect(h.drain().map(\.ack) == [1001])
        h.feed(peer(.ack, seq: 1201, ack: iss, data: c), at: 11)
        #expect(h.drain().map(\.ack) == [1001])
        #expect(h.read(connection).isEmpty)
        h.feed(peer(.ack, seq: 1001, ack: iss, data: a), at: 12)
        #expect(h.drain().map(\.ack) == [1251])  // hole filled: ACK at once
        #expect(h.read(connection) == a + b + c)
    }

    @Test func windowClosesWhenTheAppDoesNotReadAndReopens() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h, options: ConnectionOptions(receiveBufferSize: 2048))
        h.feed(peer(.ack, seq: 1001, ack: iss, data: pattern(966, seed: 1)), at: 10)
        h.feed(peer(.ack, seq: 1967, ack: iss, data: pattern(966, seed: 2)), at: 10)
        #expect(h.drain().map(\.window) == [116])
        h.feed(peer(.ack, seq: 2933, ack: iss, data: pattern(116, seed: 3)), at: 11)
        let closed = h.run(until: 100)
        #expect(closed.map(\.1.window) == [0])
        #expect(closed.map(\.1.ack) == [3049])
        // A zero-window probe is answered with the same zero window.
        h.feed(peer(.ack, seq: 3049, ack: iss, data: [9]), at: 200)
        let probeAnswer = h.drain()
        #expect(probeAnswer.map(\.ack) == [3049])
        #expect(probeAnswer.map(\.window) == [0])
        // Reading 1000 bytes reopens the window past min(buffer/2, MSS): a window update.
        #expect(h.read(connection, max: 1000).count == 1000)
        let update = h.drain()
        #expect(update.map(\.window) == [1000])
        #expect(update.map(\.ack) == [3049])
        // Reading 10 more is too little to announce (silly window avoidance).
        #expect(h.read(connection, max: 10).count == 10)
        #expect(h.drain().isEmpty)
    }

    @Test func zeroWindowProbesBackOff() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h, options: ConnectionOptions(noDelay: true))
        _ = h.send(connection, pattern(100, seed: 1))
        _ = h.drain()
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, window: 0, from: 80, to: 4000), at: 0)
        _ = h.send(connection, pattern(50, seed: 2))
        #expect(h.drain().isEmpty)
        // RTO is at its 200 ms floor: probes at 200, then 400 and 800 ms apart.
        let probes = h.run(until: 1500)
        #expect(probes.map(\.0) == [200, 600, 1400])
        #expect(probes.allSatisfy { $0.1.seq == iss &+ 100 && $0.1.payload.count == 1 })
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, window: 4096, from: 80, to: 4000), at: 1500)
        let out = h.drain()
        #expect(out.map(\.payload.count) == [50])
    }

    /// RFC 1122 §4.2.2.17: a peer that keeps answering the probes with a zero window keeps the
    /// connection, however long it lasts (neither the retransmission limit nor the user timeout
    /// counts answered probes).
    @Test func answeredZeroWindowProbesNeverGiveUp() throws {
        var h = Harness()
        let options = ConnectionOptions(noDelay: true, maximumRTO: 2000, maximumRetransmissions: 3, userTimeout: 10_000)
        let (connection, iss) = establishActive(&h, options: options)
        _ = h.send(connection, pattern(100, seed: 1))
        _ = h.drain()
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, window: 0, from: 80, to: 4000), at: 0)
        _ = h.send(connection, pattern(50, seed: 2))
        var probes = 0
        for time in stride(from: Int64(100), to: 60_000, by: 100) {
            for segment in h.run(until: time).map(\.1) where segment.payload.count == 1 {
                probes += 1
                h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, window: 0, from: 80, to: 4000), at: time)
            }
        }
        #expect(probes > 20)
        #expect(h.events().isEmpty)
        #expect(h.stack.error(connection) == nil)
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 100, window: 4096, from: 80, to: 4000), at: 60_000)
        #expect(h.drain().map(\.payload.count) == [50])
    }

    @Test func sendBufferIsBounded() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h, options: ConnectionOptions(sendBufferSize: 1000))
        #expect(h.send(connection, pattern(1500, seed: 1)) == 1000)
        #expect(h.send(connection, [1]) == 0)
        #expect(h.stack.isWritable(connection) == false)
        _ = h.drain()
        h.feed(peer(.ack, seq: 5001, ack: iss &+ 500, from: 80, to: 4000), at: 10)
        #expect(h.events() == [.writable(connection)])
        #expect(h.send(connection, pattern(600, seed: 2)) == 500)
    }

    /// Regression: two ends retransmitting to each other once deadlocked, each dropping the
    /// other's old data segments together with the ACK they carried. An owed ACK now goes out
    /// bare, at SND.MAX, ahead of the retransmission.
    @Test func owedAckGoesOutBareBeforeARetransmission() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h)
        _ = h.send(connection, pattern(966, seed: 1))
        _ = h.drain()
        _ = h.stack.poll(now: 200)  // RTO (200 ms floor) fires: go back to SND.UNA
        h.now = 200
        h.feed(peer(.ack, seq: 4000, ack: iss, data: [1, 2, 3], from: 80, to: 4000))  // old data
        let out = h.drain()
        #expect(out.map(\.payload.count) == [0, 966])
        #expect(out.first?.seq == iss &+ 966 && out.first?.ack == 5001)
        #expect(out.last?.seq == iss)
    }
}
