import GenTCPStack
import GenTCPWire
import Testing

func icmpEcho(request: Bool, identifier: UInt16, sequence: UInt16, data: [UInt8],
              from source: IPv4Address = boardAddress, to destination: IPv4Address = hostAddress) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 28 + data.count)
    bytes.withUnsafeMutableBytes { buffer in
        data.withUnsafeBytes { d in
            _ = try! ICMPv4Echo(isReply: !request, identifier: identifier, sequenceNumber: sequence)
                .emit(into: UnsafeMutableRawBufferPointer(rebasing: buffer[20...]), data: d)
        }
        _ = try! IPv4Header(source: source, destination: destination, protocol: .icmp, payloadLength: 8 + data.count,
                            dontFragment: false).emit(into: buffer)
    }
    return bytes
}

@Suite("IPv4 interface and ICMP echo")
struct InterfaceTests {
    @Test func answersEchoRequests() throws {
        var h = Harness()
        let data = (0..<56).map { UInt8($0) }
        h.feedRaw(icmpEcho(request: true, identifier: 0x4242, sequence: 1, data: data))
        let out = h.drainRaw()
        try #require(out.count == 1)
        #expect(out[0] .count == 84)
        try out[0].withUnsafeBytes { raw in
            let ip = try IPv4Packet(checking: raw)
            #expect(ip.isChecksumValid)
            #expect(ip.source == hostAddress && ip.destination == boardAddress)
            #expect(ip.timeToLive == 64)
            let icmp = try ICMPv4Packet(checking: ip.payload)
            let echo = try ICMPv4Echo(parsing: icmp)
            #expect(echo == ICMPv4Echo(isReply: true, identifier: 0x4242, sequenceNumber: 1))
            #expect(Array(icmp.payload) == data)
        }
        #expect(h.stack.counters.echoRequestsAnswered == 1)
    }

    @Test func pingsTheBoard() throws {
        var h = Harness()
        let data: [UInt8] = [1, 2, 3, 4]
        #expect(data.withUnsafeBytes { h.stack.sendEchoRequest(to: boardAddress, identifier: 7, sequence: 9, data: $0) })
        let out = h.drainRaw()
        try #require(out.count == 1)
        try out[0].withUnsafeBytes { raw in
            let ip = try IPv4Packet(checking: raw)
            #expect(ip.destination == boardAddress)
            #expect(try ICMPv4Echo(parsing: ICMPv4Packet(checking: ip.payload)).isReply == false)
        }
        h.feedRaw(icmpEcho(request: false, identifier: 7, sequence: 9, data: data))
        #expect(h.events() == [.echoReply(source: boardAddress, identifier: 7, sequence: 9, dataLength: 4)])
        #expect(h.drainRaw().isEmpty)
    }

    @Test func ipIdentificationAdvances() throws {
        var h = Harness()
        h.feed(peer(.syn, seq: 1, to: 81))
        h.feed(peer(.syn, seq: 2, to: 81))
        let ids = h.drainRaw().map { UInt16($0[4]) << 8 | UInt16($0[5]) }
        #expect(ids.count == 2)
        #expect(ids[1] == ids[0] &+ 1)
        let df = h.drainRaw()
        #expect(df.isEmpty)
    }

    enum Damage: CaseIterable { case truncated, badVersion, ipChecksum, tcpChecksum, notForUs, fragment, unknownProtocol, tooBig }

    @Test("Malformed packets are dropped and counted", arguments: Damage.allCases)
    func malformed(damage: Damage) throws {
        var h = Harness(mtu: 576)
        _ = try h.stack.listen(port: 80)
        var bytes = datagram(peer(.syn, seq: 1))
        func fixIPChecksum() {
            bytes[10] = 0; bytes[11] = 0
            var sum = InternetChecksum()
            bytes.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
            bytes[10] = UInt8(sum.checksum >> 8); bytes[11] = UInt8(sum.checksum & 0xFF)
        }
        switch damage {
        case .truncated: bytes = Array(bytes[0..<15])
        case .badVersion: bytes[0] = 0x65
        case .ipChecksum: bytes[8] ^= 0x01
        case .tcpChecksum: bytes[30] ^= 0x10
        case .notForUs: bytes[19] = 99; fixIPChecksum()
        case .fragment: bytes[6] = 0x20; fixIPChecksum()
        case .unknownProtocol: bytes[9] = 47; fixIPChecksum()  // GRE: UDP (17) is known now
        case .tooBig:
            bytes = datagram(peer(.ack, seq: 1, data: [UInt8](repeating: 0, count: 600)))
        }
        h.feedRaw(bytes)
        #expect(h.drainRaw().isEmpty)
        let c = h.stack.counters
        switch damage {
        case .truncated, .badVersion: #expect(c.malformed == 1)
        case .ipChecksum, .tcpChecksum: #expect(c.badChecksum == 1)
        case .notForUs: #expect(c.notForUs == 1)
        case .fragment: #expect(c.fragments == 1)
        case .unknownProtocol: #expect(c.unknownProtocol == 1)
        case .tooBig: #expect(c.tooBig == 1)
        }
        #expect(h.stack.connectionsInUse == 0)
    }

    @Test func randomGarbageNeverCrashes() {
        var h = Harness()
        _ = try? h.stack.listen(port: 80)
        var rng = SplitMix64(seed: 5)
        let template = datagram(peer(.syn, seq: 1, mss: 536))
        for _ in 0..<3000 {
            var bytes = template
            for _ in 0..<(1 + rng.next() % 4) {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 4 == 0 { bytes = Array(bytes[0..<Int(rng.next() % UInt64(bytes.count))]) }
            h.feedRaw(bytes)
            _ = h.drainRaw()
        }
        #expect(h.stack.counters.packetsReceived == 3000)
    }
}
