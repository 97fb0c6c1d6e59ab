import GenTCPCore
import GenTCPStack
import GenTCPWire
import Testing

/// Passive open: peer SYN seq 1000 from port 5000 to our 80 at t = 0, our SYN-ACK, peer ACK.
func establishPassive(_ h: inout Harness, options: ConnectionOptions = ConnectionOptions(), peerWindow: UInt16 = 8192)
    -> (ConnectionHandle, UInt32)
{
    let listener = try! h.stack.listen(port: 80, backlog: 2, options: options)
    h.feed(peer(.syn, seq: 1000, window: peerWindow, mss: 1460))
    let synAck = h.drain()[0]
    h.feed(peer(.ack, seq: 1001, ack: synAck.seq &+ 1, window: peerWindow))
    let connection = try! h.stack.accept(listener)!
    _ = h.events()
    return (connection, synAck.seq &+ 1)
}

/// Active open from our port 4000 to the board's 80; the peer answers at `rtt` with ISN 5000.
func establishActive(_ h: inout Harness, options: ConnectionOptions = ConnectionOptions(), rtt: Int64 = 0,
                     peerMSS: UInt16? = 1460, peerWindow: UInt16 = 8192) -> (ConnectionHandle, UInt32) {
    let connection = try! h.stack.connect(to: boardAddress, port: 80, localPort: 4000, options: options, now: MillisecondInstant(milliseconds: h.now))
    let syn = h.drain()[0]
    h.feed(peer([.syn, .ack], seq: 5000, ack: syn.seq &+ 1, window: peerWindow, mss: peerMSS, from: 80, to: 4000),
           at: h.now + rtt)
    #expect(h.drain().map(\.flags) == [.ack])
    _ = h.events()
    return (connection, syn.seq &+ 1)
}

@Suite("Handshakes, MSS, closed ports")
struct HandshakeTests {
    @Test func passiveOpen() throws {
        var h = Harness()
        let listener = try h.stack.listen(port: 80, backlog: 2)
        h.feed(peer(.syn, seq: 1000, mss: 536))
        let out = h.drain()
        try #require(out.count == 1)
        let synAck = out[0]
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.ack == 1001)
        #expect(synAck.window == 8192)
        #expect(synAck.header.maximumSegmentSize == 966)  // MTU 1006 − 40
        #expect(synAck.header.sourcePort == 80 && synAck.header.destinationPort == 5000)
        #expect(try h.stack.accept(listener) == nil)

        h.feed(peer(.ack, seq: 1001, ack: synAck.seq &+ 1), at: 50)
        #expect(h.drain().isEmpty)
        #expect(h.events() == [.acceptable(listener)])
        let connection = try #require(try h.stack.accept(listener))
        #expect(try h.stack.state(connection) == .established)
        // Nothing more: no timer is armed on an idle connection.
        #expect(h.run(until: 60_000).isEmpty)
        #expect(h.stack.nextDeadline == nil)
    }

    @Test func activeOpen() throws {
        var h = Harness()
        let connection = try h.stack.connect(to: boardAddress, port: 80, localPort: 4000, now: 0)
        let syn = try #require(h.drain().first)
        #expect(syn.flags == .syn)
        #expect(syn.header.maximumSegmentSize == 966)
        #expect(syn.header.destinationPort == 80)
        #expect(try h.stack.state(connection) == .synSent)
        h.feed(peer([.syn, .ack], seq: 5000, ack: syn.seq &+ 1, mss: 1400, from: 80, to: 4000), at: 30)
        let ack = h.drain()
        #expect(ack.count == 1)
        #expect(ack.first?.flags == .ack)
        #expect(ack.first?.seq == syn.seq &+ 1)
        #expect(ack.first?.ack == 5001)
        #expect(h.events() == [.connected(connection)])
        #expect(h.run(until: 60_000).isEmpty)
    }

    @Test func synRetransmissionsThenTimeout() throws {
        var h = Harness()
        let options = ConnectionOptions(synRetries: 2)
        let connection = try h.stack.connect(to: boardAddress, port: 80, options: options, now: 0)
        let sent = h.run(until: 10_000)
        // RFC 6298 §5.5: 1 s, then doubling.
        #expect(sent.map(\.0) == [0, 1000, 3000])
        #expect(sent.allSatisfy { $0.1.flags == .syn && $0.1.seq == sent[0].1.seq })
        #expect(h.events() == [.failed(connection, .timedOut)])
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(throws: TCPError.timedOut) { try buffer.withUnsafeMutableBytes { try h.stack.recv(connection, into: $0) } }
    }

    @Test func simultaneousOpen() throws {
        var h = Harness()
        let connection = try h.stack.connect(to: boardAddress, port: 80, localPort: 4000, now: 0)
        let syn = h.drain()[0]
        h.feed(peer(.syn, seq: 5000, mss: 536, from: 80, to: 4000), at: 10)
        let synAck = h.drain()
        #expect(synAck.map(\.flags) == [[.syn, .ack]])
        #expect(synAck.first?.seq == syn.seq && synAck.first?.ack == 5001)
        h.feed(peer([.syn, .ack], seq: 5000, ack: syn.seq &+ 1, from: 80, to: 4000), at: 20)
        // The SYN,ACK is acceptable as an ACK of our SYN; its SYN is a duplicate → challenge ACK.
        _ = h.drain()
        h.feed(peer(.ack, seq: 5001, ack: syn.seq &+ 1, from: 80, to: 4000), at: 20)
        #expect(try h.stack.state(connection) == .established)
    }

    @Test("MSS from the peer's option, capped by our MTU", arguments: [
        (UInt16?.none, [536, 536, 536, 392]), (UInt16?(536), [536, 536, 536, 392]), (UInt16?(1400), [966, 966, 68]),
    ])
    func mssNegotiation(peerMSS: UInt16?, sizes: [Int]) throws {
        var h = Harness()
        let (connection, _) = establishActive(&h, options: ConnectionOptions(noDelay: true), peerMSS: peerMSS)
        #expect(h.send(connection, pattern(2000, seed: 3)) == 2000)
        #expect(h.drain().map(\.payload.count) == sizes)
    }

    @Test func closedPortAnsweredWithReset() {
        var h = Harness()
        // SYN: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
        h.feed(peer(.syn, seq: 700, to: 81))
        var out = h.drain()
        #expect(out.map(\.flags) == [[.rst, .ack]])
        #expect(out.first?.seq == 0 && out.first?.ack == 701)
        // With ACK: <SEQ=SEG.ACK><CTL=RST>.
        h.feed(peer(.ack, seq: 700, ack: 9999, data: [1, 2, 3], to: 81))
        out = h.drain()
        #expect(out.map(\.flags) == [.rst])
        #expect(out.first?.seq == 9999)
        // A RST gets nothing.
        h.feed(peer(.rst, seq: 700, to: 81))
        #expect(h.drain().isEmpty)
        #expect(h.stack.counters.resetsSent == 2)
    }

    @Test func listenerAnswersStrayAckWithReset() throws {
        var h = Harness()
        _ = try h.stack.listen(port: 80)
        h.feed(peer(.ack, seq: 1, ack: 4242))
        let out = h.drain()
        #expect(out.map(\.flags) == [.rst])
        #expect(out.first?.seq == 4242)
    }

    @Test func backlogBoundsPendingConnections() throws {
        var h = Harness()
        let listener = try h.stack.listen(port: 80, backlog: 1)
        // A backlog full of a half-open connection: the new SYN takes its place (see HalfOpenTests).
        h.feed(peer(.syn, seq: 1, from: 5000))
        var synAcks = h.drain()
        h.feed(peer(.syn, seq: 1, from: 5001))
        synAcks += h.drain()
        try #require(synAcks.map(\.header.destinationPort) == [5000, 5001])
        #expect(h.stack.counters.halfOpenEvicted == 1)
        #expect(h.stack.connectionsInUse == 1)
        // A backlog full of a connection that completed its handshake: the next SYN is dropped.
        h.feed(peer(.ack, seq: 2, ack: synAcks[1].seq &+ 1, from: 5001))
        #expect(h.events() == [.acceptable(listener)])
        h.feed(peer(.syn, seq: 1, from: 5002))
        #expect(h.drain().isEmpty)
        #expect(h.stack.counters.synsDropped == 1)
        #expect(h.stack.connectionsInUse == 1)
        // Accepting makes room again.
        #expect(try h.stack.accept(listener) != nil)
        h.feed(peer(.syn, seq: 1, from: 5003))
        #expect(h.drain().map(\.flags) == [[.syn, .ack]])
    }

    @Test func resetInSynReceivedFreesTheSlot() throws {
        var h = Harness()
        let listener = try h.stack.listen(port: 80)
        h.feed(peer(.syn, seq: 1000))
        _ = h.drain()
        #expect(h.stack.connectionsInUse == 1)
        h.feed(peer(.rst, seq: 1001))
        #expect(h.stack.connectionsInUse == 0)
        #expect(h.events().isEmpty)
        #expect(try h.stack.accept(listener) == nil)
    }

    @Test func lostSynAckIsResentOnRetransmittedSyn() throws {
        var h = Harness()
        _ = try h.stack.listen(port: 80)
        h.feed(peer(.syn, seq: 1000))
        let first = h.drain()
        h.feed(peer(.syn, seq: 1000), at: 300)
        let again = h.drain()
        #expect(again.map(\.flags) == [[.syn, .ack]])
        #expect(again.first?.seq == first.first?.seq)
    }

    @Test func staleHandleIsAnErrorNotACrash() throws {
        var h = Harness()
        let (connection, _) = establishPassive(&h)
        h.stack.close(connection)
        #expect(throws: TCPError.closed) { try [UInt8](repeating: 1, count: 3).withUnsafeBytes { try h.stack.send(connection, $0) } }
        #expect(throws: TCPError.closed) { try h.stack.state(connection) }
        let bogus = ConnectionHandle(index: 99, generation: 0)
        #expect(throws: TCPError.closed) { try h.stack.state(bogus) }
    }
}
