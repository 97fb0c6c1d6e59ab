import GenTCPCore
import GenTCPStack
import GenTCPWire
import Testing

/// An IPv4/UDP datagram from the board to us (or as given), with a correct checksum unless
/// `corrupt`.
func udpDatagram(
    _ payload: [UInt8], from sourcePort: UInt16, to destinationPort: UInt16,
    source: IPv4Address = boardAddress, destination: IPv4Address = hostAddress, corrupt: Bool = false
) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 28 + payload.count)
    bytes.withUnsafeMutableBytes { buffer in
        let udp = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
        for (i, b) in payload.enumerated() { udp[8 + i] = b }
        _ = try! UDPHeader(sourcePort: sourcePort, destinationPort: destinationPort)
            .emit(into: udp, payloadLength: payload.count, source: source, destination: destination)
        _ = try! IPv4Header(source: source, destination: destination, protocol: .udp, payloadLength: 8 + payload.count,
                            dontFragment: true).emit(into: buffer)
    }
    if corrupt { bytes[27] ^= 0x01 }
    return bytes
}

extension Harness {
    mutating func openUDP(_ port: UInt16, bytes: Int = 4096, datagrams: Int = 16) throws -> DatagramHandle {
        try stack.openDatagram(port: port, queueBytes: bytes, queueDatagrams: datagrams)
    }

    mutating func sendUDP(_ h: DatagramHandle, _ payload: [UInt8], to: (IPv4Address, UInt16)?) throws(TCPError) {
        let destination = to.map { (address: $0.0, port: $0.1) }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payload.count, 1), alignment: 1)
        defer { copy.deallocate() }
        payload.withUnsafeBytes { copy.copyMemory(from: $0) }
        try stack.sendDatagram(h, chunks: [UnsafeRawBufferPointer(rebasing: copy[0..<payload.count])], to: destination)
    }

    mutating func receiveUDP(_ h: DatagramHandle, max: Int = 2048) throws -> (DatagramReceipt, [UInt8]) {
        var buffer = [UInt8](repeating: 0, count: max)
        let r = try buffer.withUnsafeMutableBytes { try stack.receiveDatagram(h, into: $0) }
        if case .datagram(let copied, _, _, _) = r { return (r, Array(buffer[0..<copied])) }
        return (r, [])
    }
}

@Suite("UDP in the stack")
struct UDPTests {
    @Test("a datagram goes to the socket on its port, whole, with its sender")
    func demux() throws {
        var h = Harness()
        let a = try h.openUDP(5000)
        let b = try h.openUDP(5001)
        h.feedRaw(udpDatagram([1, 2, 3], from: 7, to: 5001))
        h.feedRaw(udpDatagram([], from: 8, to: 5000))
        #expect(try h.receiveUDP(b) == (.datagram(copied: 3, length: 3, source: boardAddress, port: 7), [1, 2, 3]))
        #expect(try h.receiveUDP(a) == (.datagram(copied: 0, length: 0, source: boardAddress, port: 8), []))
        #expect(try h.receiveUDP(a).0 == .wouldBlock)
        #expect(h.events().filter { if case .datagramReadable = $0 { return true } else { return false } }.count == 2)
    }

    @Test("sends are valid UDP/IP with checksums; above MTU − 28 is emsgsize")
    func sends() throws {
        var h = Harness()
        let s = try h.openUDP(4000)
        try h.sendUDP(s, [9, 8, 7], to: (boardAddress, 53))
        let out = h.drainRaw()
        try #require(out.count == 1)
        try out[0].withUnsafeBytes { raw in
            let ip = try IPv4Packet(checking: raw)
            #expect(ip.isChecksumValid && ip.protocol == .udp && ip.destination == boardAddress)
            let udp = try UDPPacket(checking: ip.payload)
            #expect(udp.isChecksumValid(source: hostAddress, destination: boardAddress))
            #expect(udp.sourcePort == 4000 && udp.destinationPort == 53)
            #expect(Array(udp.payload) == [9, 8, 7])
        }
        let max = h.stack.maximumDatagramPayload
        #expect(max == h.stack.configuration.mtu - 28)
        #expect(throws: TCPError.messageTooLong) { try h.sendUDP(s, [UInt8](repeating: 0, count: max + 1), to: (boardAddress, 53)) }
        try h.sendUDP(s, [UInt8](repeating: 0, count: max), to: (boardAddress, 53))
        #expect(h.drainRaw().first?.count == h.stack.configuration.mtu)
        #expect(throws: TCPError.notConnected) { try h.sendUDP(s, [1], to: nil) }
        #expect(throws: TCPError.invalidArgument) { try h.sendUDP(s, [1], to: (boardAddress, 0)) }
        #expect(throws: TCPError.permissionDenied) { try h.sendUDP(s, [1], to: (IPv4Address(rawValue: 0xFFFF_FFFF), 9)) }
    }

    @Test("bad checksums and truncated headers are dropped and counted")
    func badInput() throws {
        var h = Harness()
        let s = try h.openUDP(5000)
        h.feedRaw(udpDatagram([1, 2, 3, 4], from: 7, to: 5000, corrupt: true))
        #expect(h.stack.counters.badChecksum == 1)
        // A UDP length field beyond the IP payload.
        var long = udpDatagram([1, 2], from: 7, to: 5000)
        long[25] = 200
        h.feedRaw(long)
        // Only 4 bytes of UDP header.
        var short = udpDatagram([], from: 7, to: 5000)
        short.removeLast(4)
        short[3] = 24
        short[10] = 0; short[11] = 0
        var sum = InternetChecksum()
        short.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        short[10] = UInt8(sum.checksum >> 8); short[11] = UInt8(sum.checksum & 0xFF)
        h.feedRaw(short)
        #expect(h.stack.counters.malformed == 2)
        #expect(try h.receiveUDP(s).0 == .wouldBlock)
        #expect(h.drainRaw().isEmpty)
    }

    @Test("a datagram for a closed port gets ICMP port unreachable quoting it")
    func sendsPortUnreachable() throws {
        var h = Harness()
        let datagram = udpDatagram([0xAA, 0xBB, 0xCC], from: 1234, to: 6000)
        h.feedRaw(datagram)
        let out = h.drainRaw()
        try #require(out.count == 1)
        try out[0].withUnsafeBytes { raw in
            let ip = try IPv4Packet(checking: raw)
            #expect(ip.protocol == .icmp && ip.destination == boardAddress)
            let icmp = try ICMPv4Packet(checking: ip.payload)
            #expect(icmp.isChecksumValid)
            let u = try ICMPv4Unreachable(parsing: icmp)
            #expect(u.code == ICMPv4Unreachable.portUnreachable)
            #expect(u.source == boardAddress && u.destination == hostAddress)
            #expect(u.sourcePort == 1234 && u.destinationPort == 6000)
            #expect(icmp.payload.count == 28)
        }
        #expect(h.stack.counters.portUnreachableSent == 1)
        // Not for broadcasts.
        h.feedRaw(udpDatagram([1], from: 1234, to: 6000, destination: IPv4Address(rawValue: 0xFFFF_FFFF)))
        #expect(h.drainRaw().isEmpty)
    }

    @Test("ICMP port unreachable: once to the socket connected to that peer, never to others")
    func receivesPortUnreachable() throws {
        var h = Harness()
        let connected = try h.openUDP(4000)
        let loose = try h.openUDP(4001)
        try h.stack.connectDatagram(connected, to: (boardAddress, 9))
        try h.sendUDP(connected, [1], to: nil)
        try h.sendUDP(loose, [2], to: (boardAddress, 9))
        let sent = h.drainRaw()
        try #require(sent.count == 2)
        // The board answers both with port unreachable (built by a second stack, as lwIP would).
        var board = Harness(local: boardAddress, peer: hostAddress)
        for d in sent { board.feedRaw(d) }
        let answers = board.drainRaw()
        try #require(answers.count == 2)
        for a in answers { h.feedRaw(a) }
        #expect(h.stack.counters.portUnreachableReceived == 2)
        #expect(try h.receiveUDP(connected).0 == .refused)
        #expect(try h.receiveUDP(connected).0 == .wouldBlock)
        #expect(try h.receiveUDP(loose).0 == .wouldBlock)
        // Reported to a send too, once, when no receive took it first.
        try h.sendUDP(connected, [3], to: nil)
        for d in h.drainRaw() { board.feedRaw(d) }
        for a in board.drainRaw() { h.feedRaw(a) }
        #expect(throws: TCPError.connectionRefused) { try h.sendUDP(connected, [4], to: nil) }
        try h.sendUDP(connected, [5], to: nil)
    }

    @Test("a connected socket takes only its peer's datagrams; a full queue drops whole ones")
    func filterAndQueue() throws {
        var h = Harness()
        let s = try h.openUDP(5000, bytes: 10, datagrams: 2)
        try h.stack.connectDatagram(s, to: (boardAddress, 7))
        h.feedRaw(udpDatagram([1], from: 8, to: 5000))
        #expect(h.stack.counters.datagramsFiltered == 1)
        #expect(h.drainRaw().isEmpty)  // Filtered, not unreachable.
        h.feedRaw(udpDatagram([1, 1, 1, 1, 1, 1], from: 7, to: 5000))
        h.feedRaw(udpDatagram([2, 2, 2, 2, 2, 2], from: 7, to: 5000))  // 12 bytes > 10: dropped.
        h.feedRaw(udpDatagram([3, 3], from: 7, to: 5000))
        h.feedRaw(udpDatagram([4], from: 7, to: 5000))  // Third datagram > 2 slots: dropped.
        #expect(try h.stack.droppedDatagrams(s) == 2)
        #expect(try h.receiveUDP(s).1 == [1, 1, 1, 1, 1, 1])
        #expect(try h.receiveUDP(s).1 == [3, 3])
        #expect(try h.receiveUDP(s).0 == .wouldBlock)
    }

    @Test("ports: ephemeral, in use, shared with reuse, free after close; stale handles are closed")
    func ports() throws {
        var h = Harness()
        let a = try h.openUDP(0)
        #expect((49152...65535).contains(try h.stack.datagramPort(a)))
        let b = try h.stack.openDatagram(port: 7000, queueBytes: 100, queueDatagrams: 2, reuse: true)
        #expect(throws: TCPError.addressInUse) { try h.stack.openDatagram(port: 7000, queueBytes: 100, queueDatagrams: 2) }
        let c = try h.stack.openDatagram(port: 7000, queueBytes: 100, queueDatagrams: 2, reuse: true)
        h.stack.closeDatagram(b)
        h.stack.closeDatagram(c)
        #expect(throws: TCPError.closed) { try h.stack.datagramPort(b) }
        _ = try h.openUDP(7000)
    }

    @Test("the send queue fills, then frees a slot with an event")
    func sendRoom() throws {
        var h = Harness()
        let s = try h.openUDP(4000)
        var sent = 0
        while h.stack.datagramSendRoom > 0 {
            try h.sendUDP(s, [UInt8(sent)], to: (boardAddress, 9))
            sent += 1
        }
        #expect(sent == h.stack.configuration.datagramSendQueueCapacity)
        #expect(throws: TCPError.wouldBlock) { try h.sendUDP(s, [0], to: (boardAddress, 9)) }
        #expect(h.drainRaw().count == sent)
        #expect(h.events().contains(.datagramSendRoom))
    }
}

extension UDPTests {
    @Test("ICMP errors: none for sources that name no host, and a burst of 10 then one per 100 ms")
    func icmpRateLimit() throws {
        var h = Harness()
        for source in [IPv4Address(rawValue: 0), IPv4Address(rawValue: 0xFFFF_FFFF), IPv4Address(224, 0, 0, 1)] {
            h.feedRaw(udpDatagram([1], from: 9, to: 6000, source: source))
        }
        #expect(h.drainRaw().isEmpty)
        // Drained after each, so the control queue (4 slots) is not what limits them.
        var answers = 0
        for _ in 0..<50 {
            h.feedRaw(udpDatagram([1], from: 9, to: 6000))
            answers += h.drainRaw().count
        }
        #expect(answers == 10)
        #expect(h.stack.counters.icmpErrorsSuppressed == 43)
        h.now += 100
        for _ in 0..<5 { h.feedRaw(udpDatagram([1], from: 9, to: 6000)) }
        #expect(h.drainRaw().count == 1)
        h.now += 5000
        answers = 0
        for _ in 0..<20 {
            h.feedRaw(udpDatagram([1], from: 9, to: 6000))
            answers += h.drainRaw().count
        }
        #expect(answers == 10)
    }
}
