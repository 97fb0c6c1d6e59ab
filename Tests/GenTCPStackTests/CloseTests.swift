import GenTCPStack
import GenTCPWire
import Testing

@Suite("FIN, RST, TIME-WAIT, keepalive")
struct CloseTests {
    @Test func activeCloseWithHalfCloseThenTimeWait() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        try h.stack.shutdown(connection)
        var out = h.drain()
        #expect(out.map(\.flags) == [[.fin, .ack]])
        #expect(out.first?.seq == iss && out.first?.ack == 1001)
        #expect(try h.stack.state(connection) == .finWait1)
        h.feed(peer(.ack, seq: 1001, ack: iss &+ 1), at: 10)
        #expect(try h.stack.state(connection) == .finWait2)
        // Half-close: the peer still sends, we still read.
        h.feed(peer([.ack, .psh], seq: 1001, ack: iss &+ 1, data: [1, 2, 3]), at: 20)
        #expect(h.read(connection) == [1, 2, 3])
        h.feed(peer([.fin, .ack], seq: 1004, ack: iss &+ 1), at: 30)
        out = h.drain()
        #expect(out.map(\.flags) == [.ack])
        #expect(out.first?.ack == 1005)
        #expect(try h.stack.state(connection) == .timeWait)
        // A retransmitted FIN is acknowledged again.
        h.feed(peer([.fin, .ack], seq: 1004, ack: iss &+ 1), at: 1000)
        #expect(h.drain().map(\.ack) == [1005])
        // TIME-WAIT (4 s, restarted at 1000) ends at 5000.
        #expect(h.run(until: 4999).isEmpty)
        #expect(try h.stack.state(connection) == .timeWait)
        _ = h.run(until: 5000)
        #expect(try h.stack.state(connection) == .closed)
        h.stack.close(connection)
        #expect(h.stack.connectionsInUse == 0)
    }

    @Test func passiveCloseAfterPeerFin() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.feed(peer([.fin, .ack], seq: 1001, ack: iss), at: 10)
        #expect(h.drain().map(\.ack) == [1002])
        #expect(try h.stack.state(connection) == .closeWait)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(try buffer.withUnsafeMutableBytes { try h.stack.recv(connection, into: $0) } == .endOfStream)
        // Our direction stays open.
        #expect(h.send(connection, [7, 7, 7]) == 3)
        #expect(h.drain().map(\.payload) == [[7, 7, 7]])
        h.stack.close(connection)
        let fin = h.drain()
        #expect(fin.map(\.flags) == [[.fin, .ack]])
        #expect(fin.first?.seq == iss &+ 3)
        #expect(h.stack.connectionsInUse == 1)  // LAST-ACK
        h.feed(peer(.ack, seq: 1002, ack: iss &+ 4), at: 20)
        #expect(h.stack.connectionsInUse == 0)
        #expect(h.drain().isEmpty)
    }

    @Test func simultaneousClose() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        try h.stack.shutdown(connection)
        _ = h.drain()
        // The peer's FIN crosses ours: it does not acknowledge our FIN.
        h.feed(peer([.fin, .ack], seq: 1001, ack: iss), at: 10)
        #expect(h.drain().map(\.ack) == [1002])
        #expect(try h.stack.state(connection) == .closing)
        h.feed(peer(.ack, seq: 1002, ack: iss &+ 1), at: 20)
        #expect(try h.stack.state(connection) == .timeWait)
    }

    @Test func finIsRetransmitted() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.stack.close(connection)
        let sent = h.run(until: 3500)
        // The handshake sampled an RTT of 0: RTO at its 200 ms floor, then doubling. The first
        // retransmission, unanswered for a probe interval (2·SRTT + 1 = 3 ms here), goes once
        // more; after that only the RTO repeats it, since no ACK shows the peer is there.
        #expect(sent.map(\.0) == [0, 200, 203, 600, 1400, 3000])
        #expect(sent.allSatisfy { $0.1.flags == [.fin, .ack] && $0.1.seq == iss })
    }

    @Test func closeWithUnreadDataResets() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.feed(peer(.ack, seq: 1001, ack: iss, data: [1, 2]), at: 10)
        _ = h.drain()
        h.stack.close(connection)
        let out = h.drain()
        #expect(out.map(\.flags) == [[.rst, .ack]])
        #expect(out.first?.seq == iss)
        #expect(h.stack.connectionsInUse == 0)
    }

    @Test func abortSendsReset() throws {
        var h = Harness()
        let (connection, iss) = establishActive(&h)
        h.stack.abort(connection)
        let out = h.drain()
        #expect(out.map(\.flags) == [[.rst, .ack]])
        #expect(out.first?.seq == iss && out.first?.ack == 5001)
        #expect(h.stack.connectionsInUse == 0)
    }

    @Test func resetInSynSentIsRefused() throws {
        var h = Harness()
        let connection = try h.stack.connect(to: boardAddress, port: 80, localPort: 4000, now: 0)
        let syn = h.drain()[0]
        // Without an ACK of our SYN the RST is not acceptable.
        h.feed(peer(.rst, seq: 0, from: 80, to: 4000), at: 5)
        #expect(try h.stack.state(connection) == .synSent)
        // An ACK that is not ours gets a RST.
        h.feed(peer([.syn, .ack], seq: 1, ack: syn.seq &+ 7, from: 80, to: 4000), at: 6)
        let out = h.drain()
        #expect(out.map(\.flags) == [.rst])
        #expect(out.first?.seq == syn.seq &+ 7)
        h.feed(peer([.rst, .ack], seq: 0, ack: syn.seq &+ 1, from: 80, to: 4000), at: 10)
        #expect(h.events() == [.failed(connection, .connectionRefused)])
        #expect(h.stack.error(connection) == .connectionRefused)
        #expect(h.drain().isEmpty)
        #expect(h.stack.nextDeadline == nil)
    }

    @Test("RST in a synchronized state (RFC 5961 §3.2)", arguments: [
        (UInt32(1001), true, false), (UInt32(1500), false, true), (UInt32(50_000), false, false),
    ])
    func resetValidation(seq: UInt32, resets: Bool, challenge: Bool) throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.feed(peer(.rst, seq: seq, ack: iss), at: 10)
        let out = h.drain()
        if resets {
            #expect(h.events() == [.failed(connection, .connectionReset)])
            #expect(try h.stack.state(connection) == .closed)
        } else {
            #expect(try h.stack.state(connection) == .established)
        }
        #expect(out.count == (challenge ? 1 : 0))
        if challenge { #expect(out.first?.flags == .ack && out.first?.ack == 1001) }
    }

    @Test func synInEstablishedGetsChallengeAck() throws {
        var h = Harness()
        let (connection, _) = establishPassive(&h)
        h.feed(peer(.syn, seq: 3000), at: 10)
        let out = h.drain()
        #expect(out.map(\.flags) == [.ack])
        #expect(out.first?.ack == 1001)
        #expect(try h.stack.state(connection) == .established)
    }

    @Test func resetInTimeWaitAndLastAckCloses() throws {
        var h = Harness()
        let (connection, iss) = establishPassive(&h)
        h.feed(peer([.fin, .ack], seq: 1001, ack: iss), at: 10)
        h.stack.close(connection)
        _ = h.drain()
        h.feed(peer(.rst, seq: 1002), at: 20)
        #expect(h.stack.connectionsInUse == 0)
    }

    @Test func keepaliveProbesThenTimesOut() throws {
        var h = Harness()
        let options = ConnectionOptions(keepalive: true, keepaliveIdle: 1000, keepaliveInterval: 500, keepaliveCount: 2)
        let (connection, iss) = establishPassive(&h, options: options)
        let probes = h.run(until: 1999)
        #expect(probes.map(\.0) == [1000, 1500])
        // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT − 1, no data.
        #expect(probes.allSatisfy { $0.1.seq == iss &- 1 && $0.1.payload.isEmpty && $0.1.flags == .ack })
        let last = h.run(until: 2000)
        #expect(last.map(\.1.flags) == [[.rst, .ack]])
        #expect(h.events() == [.failed(connection, .timedOut)])
    }

    @Test func answeredKeepaliveKeepsTheConnection() throws {
        var h = Harness()
        let options = ConnectionOptions(keepalive: true, keepaliveIdle: 1000, keepaliveInterval: 500, keepaliveCount: 2)
        let (connection, iss) = establishPassive(&h, options: options)
        _ = h.run(until: 1000)
        h.feed(peer(.ack, seq: 1001, ack: iss), at: 1100)
        let next = h.run(until: 2150)
        #expect(next.map(\.0) == [2100])
        #expect(try h.stack.state(connection) == .established)
    }

    @Test func userTimeoutGivesUp() throws {
        var h = Harness()
        let options = ConnectionOptions(maximumRetransmissions: 3)
        let (connection, _) = establishActive(&h, options: options)
        _ = h.send(connection, [1, 2, 3])
        let sent = h.run(until: 60_000)
        // The handshake sampled RTT 0: RTO 200 ms, then 400, 800, 1600.
        // Three retransmissions (and one probe 3 ms after the first, see finIsRetransmitted),
        // then at the fourth timeout (3000) give up with a RST so that a peer that can still
        // hear us does not keep a half-open connection.
        #expect(sent.map(\.0) == [0, 200, 203, 600, 1400, 3000])
        #expect(sent.last?.1.flags == [.rst, .ack])
        #expect(h.events() == [.failed(connection, .timedOut)])
        #expect(h.stack.nextDeadline == nil)
    }
}
