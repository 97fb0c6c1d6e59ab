import Testing
import GenTCPWire

/// Parses `bytes` as an IPv4 packet and hands the view to `body`.
func withIPv4<R>(_ bytes: [UInt8], _ body: (IPv4Packet) throws -> R) throws -> R {
    try bytes.withUnsafeBytes { try body(IPv4Packet(checking: $0)) }
}

/// A packet with one field patched and, unless `keepChecksum`, its header checksum recomputed
/// (so the only fault is the patched one). Checksum code: the test's own RFC 1071 sum via
/// `InternetChecksum`, which the RFC 1071 vectors cover.
func patched(_ packet: [UInt8], at offset: Int, _ bytes: [UInt8], keepChecksum: Bool = false) -> [UInt8] {
    var out = packet
    out.replaceSubrange(offset..<min(out.count, offset + bytes.count), with: bytes)
    if !keepChecksum {
        let headerLength = min(out.count, max(20, Int(out[0] & 0x0F) * 4))
        out[10] = 0
        out[11] = 0
        var sum = InternetChecksum()
        out[0..<headerLength].withUnsafeBytes { sum.add($0) }
        out[10] = UInt8(sum.checksum >> 8)
        out[11] = UInt8(sum.checksum & 0xFF)
    }
    return out
}

@Suite("IPv4")
struct IPv4Tests {
    /// Captured packets and their header fields, read off the hex by hand.
    static let captured: [(name: String, bytes: [UInt8], header: IPv4Header)] = [
        ("kernel SYN", Captured.tcpSYN, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .tcp, payloadLength: 40,
            timeToLive: 64, identification: 0x54C8, dontFragment: true)),
        ("kernel RST", Captured.tcpRST, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .tcp, payloadLength: 20,
            identification: 0)),
        ("kernel echo reply", Captured.icmpEchoReply, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .icmp, payloadLength: 64,
            identification: 0x8BA9, dontFragment: false)),
        ("script echo request", Captured.icmpEchoRequestPython, IPv4Header(
            source: Captured.peer, destination: Captured.host, protocol: .icmp, payloadLength: 64,
            identification: 0x1234, dontFragment: false)),
        ("kernel UDP", Captured.udp, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .udp, payloadLength: 21,
            identification: 0x635C)),
        ("kernel first fragment", Captured.fragment1, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .udp, payloadLength: 552,
            identification: 0x635E, dontFragment: false, moreFragments: true)),
        ("kernel last fragment", Captured.fragment2, IPv4Header(
            source: Captured.host, destination: Captured.peer, protocol: .udp, payloadLength: 456,
            identification: 0x635E, dontFragment: false, fragmentOffset: 552)),
    ]

    @Test("captured packets parse to the fields read off the wire", arguments: captured)
    func parse(name: String, bytes: [UInt8], header: IPv4Header) throws {
        let parsed = try withIPv4(bytes) { try IPv4Header(parsing: $0) }
        #expect(parsed == header, "\(name)")
        try withIPv4(bytes) { packet in
            #expect(packet.version == 4)
            #expect(packet.headerLength == 20)
            #expect(packet.totalLength == bytes.count)
            #expect(packet.isChecksumValid)
            #expect(packet.options.isEmpty)
            #expect(Array(packet.payload) == Array(bytes[20...]))
            #expect(packet.trailingByteCount == 0)
            #expect(!packet.reservedFlag)
        }
    }

    @Test("emitting the parsed fields reproduces the kernel's header byte for byte", arguments: captured)
    func emit(name: String, bytes: [UInt8], header: IPv4Header) throws {
        let (written, out) = try withScratch(count: 24) { try header.emit(into: $0) }
        #expect(written == 20)
        #expect(hexString(out[0..<20]) == hexString(bytes[0..<20]), "\(name)")
        #expect(out[20...].allSatisfy { $0 == 0xEE })
    }

    @Test("fragment fields")
    func fragments() throws {
        try withIPv4(Captured.fragment1) { packet in
            #expect(packet.isFragment && packet.moreFragments && packet.fragmentOffset == 0)
        }
        try withIPv4(Captured.fragment2) { packet in
            #expect(packet.isFragment && !packet.moreFragments && packet.fragmentOffset == 552)
        }
        try withIPv4(Captured.udp) { packet in
            #expect(!packet.isFragment && packet.dontFragment)
        }
    }

    @Test("options are skipped: the kernel's NOP NOP NOP EOL datagram")
    func options() throws {
        try withIPv4(Captured.udpWithIPOptions) { packet in
            #expect(packet.headerLength == 24)
            #expect(Array(packet.options) == [0x01, 0x01, 0x01, 0x00])
            #expect(packet.isChecksumValid)
            #expect(Array(packet.payload) == Array(Captured.udpWithIPOptions[24...]))
            let header = try IPv4Header(parsing: packet)
            #expect(header.payloadLength == 20)
            #expect(header.protocol == .udp)
        }
    }

    @Test("bytes after the total length are not payload")
    func trailingBytes() throws {
        try withIPv4(Captured.tcpRST + [1, 2, 3]) { packet in
            #expect(packet.trailingByteCount == 3)
            #expect(packet.payload.count == 20)
            #expect(packet.isChecksumValid)
        }
    }

    /// Broken variants of the captured SYN (the same ones seed the fuzzer).
    static let malformed: [(name: String, bytes: [UInt8], error: WireError)] = [
        ("empty", [], .truncated),
        ("19 bytes", Array(Captured.tcpSYN[0..<19]), .truncated),
        ("version 6", patched(Captured.tcpSYN, at: 0, [0x65]), .badVersion),
        ("version 0", patched(Captured.tcpSYN, at: 0, [0x05]), .badVersion),
        ("IHL 4", patched(Captured.tcpSYN, at: 0, [0x44]), .badHeaderLength),
        ("IHL 0", patched(Captured.tcpSYN, at: 0, [0x40]), .badHeaderLength),
        ("IHL 15, 40 bytes", patched(Array(Captured.tcpSYN[0..<40]), at: 0, [0x4F]), .truncated),
        ("total length one past the buffer", patched(Captured.tcpSYN, at: 2, [0x00, 0x3D]), .lengthMismatch),
        ("total length 19", patched(Captured.tcpSYN, at: 2, [0x00, 0x13]), .lengthMismatch),
        ("total length below IHL 6", patched(Captured.udpWithIPOptions, at: 2, [0x00, 0x17]), .lengthMismatch),
        ("total length 0xffff", patched(Captured.tcpSYN, at: 2, [0xFF, 0xFF]), .lengthMismatch),
    ]

    @Test("malformed headers are refused with the right error", arguments: malformed)
    func malformedHeaders(name: String, bytes: [UInt8], error: WireError) {
        #expect(wireError { try withIPv4(bytes) { _ in () } } == error, "\(name)")
    }

    @Test("a wrong header checksum is refused unless verification is off")
    func badChecksum() throws {
        let corrupted = patched(Captured.tcpSYN, at: 10, [0xDE, 0xAD], keepChecksum: true)
        try withIPv4(corrupted) { packet in
            #expect(!packet.isChecksumValid)
            #expect(wireError { try IPv4Header(parsing: packet) } == .badChecksum)
            let unchecked = try IPv4Header(parsing: packet, verifyingChecksum: false)
            #expect(unchecked.identification == 0x54C8)
        }
        // One flipped bit anywhere in the header is caught.
        for bit in 0..<160 where bit / 8 != 10 && bit / 8 != 11 {
            var flipped = Captured.tcpSYN
            flipped[bit / 8] ^= 1 << (bit % 8)
            let error = wireError { try withIPv4(flipped) { try IPv4Header(parsing: $0) } }
            #expect(error != nil, "bit \(bit)")
        }
    }

    @Test("view accessors of the captured SYN")
    func accessors() throws {
        try withIPv4(Captured.tcpSYN) { packet in
            #expect(packet.dscp == 0 && packet.ecn == 0)
            #expect(packet.timeToLive == 64)
            #expect(packet.protocol == .tcp)
            #expect(packet.headerChecksum == 0xD1DF)
            #expect(packet.source == IPv4Address(rawValue: 0x0A09_0001))
            #expect(packet.destination.octets == (10, 9, 0, 2))
            #expect(packet.header.count == 20)
            var sum = packet.pseudoHeaderChecksum
            sum.add(packet.payload)
            #expect(sum.verifies)
        }
    }

    @Test("DSCP and ECN round-trip through emit and parse")
    func dscpAndECN() throws {
        let header = IPv4Header(source: .any, destination: .broadcast, protocol: .udp, payloadLength: 0, dscp: 46, ecn: 1)
        let (_, out) = try withScratch(count: 20) { try header.emit(into: $0) }
        #expect(out[1] == 0xB9)  // 46 << 2 | 1
        #expect(try withIPv4(out) { try IPv4Header(parsing: $0) } == header)
    }

    static let unencodable: [(name: String, header: IPv4Header)] = [
        ("payload 65516", IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: 65516)),
        ("payload -1", IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: -1)),
        ("DSCP 64", IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: 0, dscp: 64)),
        ("ECN 4", IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: 0, ecn: 4)),
        ("offset 3", IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: 0, fragmentOffset: 3)),
    ]

    @Test("values the header cannot carry are refused and nothing is written", arguments: unencodable)
    func emitRefuses(name: String, header: IPv4Header) {
        var out = [UInt8](repeating: 0xEE, count: 20)
        let error = wireError { try out.withUnsafeMutableBytes { try header.emit(into: $0) } }
        #expect(error == .fieldOutOfRange, "\(name)")
        #expect(out.allSatisfy { $0 == 0xEE })
    }

    @Test("emit into 19 bytes is refused")
    func emitTooSmall() {
        let header = IPv4Header(source: .any, destination: .any, protocol: .tcp, payloadLength: 65515)
        #expect(wireError { try withScratch(count: 19) { try header.emit(into: $0) } } == .bufferTooSmall)
        #expect(wireError { try withScratch(count: 20) { try header.emit(into: $0) } } == nil)
    }

    @Test("address helpers")
    func addresses() {
        #expect(IPv4Address(127, 0, 0, 1).isLoopback)
        #expect(IPv4Address(224, 0, 0, 251).isMulticast)
        #expect(IPv4Address.any.isUnspecified)
        #expect(IPv4Address.broadcast.isBroadcast)
        #expect(IPv4Address(10, 9, 0, 1) < IPv4Address(10, 9, 0, 2))
        #expect(IPv4Address(192, 168, 1, 20).description == "192.168.1.20")
    }
}
