import Testing
import GenTCPWire

/// The TCP segment of a captured IPv4 packet (the packets here have no IP options).
func segment(of packet: [UInt8]) -> [UInt8] { Array(packet[20...]) }

/// Parses `packet`'s TCP segment with the captured addresses.
func parseTCP(_ packet: [UInt8], verifyingChecksum: Bool = true) throws -> TCPHeader {
    try segment(of: packet).withUnsafeBytes { bytes in
        let view = try TCPPacket(checking: bytes)
        return try TCPHeader(parsing: view, source: Captured.host, destination: Captured.peer, verifyingChecksum: verifyingChecksum)
    }
}

/// Every option a reader yields over `bytes`, or the error that stopped it.
func readOptions(_ bytes: [UInt8]) -> ([TCPOption], WireError?) {
    bytes.withUnsafeBytes { raw in
        var reader = TCPOptionReader(raw)
        var options: [TCPOption] = []
        do throws(WireError) {
            while let option = try reader.next() { options.append(option) }
            return (options, nil)
        } catch {
            // A stopped reader stays stopped.
            let after = try? reader.next()
            return (options, after == nil ? error : nil)
        }
    }
}

func sack(_ pairs: (UInt32, UInt32)...) -> TCPSACKBlocks {
    var blocks = TCPSACKBlocks()
    for (left, right) in pairs { blocks.append(TCPSACKBlock(left: SequenceNumber(left), right: SequenceNumber(right))) }
    return blocks
}

@Suite("TCP")
struct TCPTests {
    /// Captured segments and their fields, read off the hex by hand; `source`/`destination`
    /// are the IPv4 addresses of the packet.
    static let captured: [(name: String, packet: [UInt8], header: TCPHeader, payload: [UInt8])] = [
        ("kernel SYN", Captured.tcpSYN, TCPHeader(
            sourcePort: 0xAF22, destinationPort: 7777, sequenceNumber: SequenceNumber(0x980A_C8CB),
            flags: .syn, window: 0xFF70, maximumSegmentSize: 536, windowScale: 10, sackPermitted: true,
            timestamps: TCPTimestamps(value: 0x4122_74EC, echoReply: 0)), []),
        ("script SYN-ACK", Captured.tcpSYNACKPython, TCPHeader(
            sourcePort: 7777, destinationPort: 0xAF22, sequenceNumber: SequenceNumber(1_000_000),
            acknowledgmentNumber: SequenceNumber(0x980A_C8CC), flags: [.syn, .ack], window: 0xFFFF,
            maximumSegmentSize: 1400, windowScale: 7, sackPermitted: true,
            timestamps: TCPTimestamps(value: 4242, echoReply: 0x4122_74EC)), []),
        ("kernel ACK", Captured.tcpACK, TCPHeader(
            sourcePort: 0xAF22, destinationPort: 7777, sequenceNumber: SequenceNumber(0x980A_C8CC),
            acknowledgmentNumber: SequenceNumber(1_000_001), flags: .ack, window: 64,
            timestamps: TCPTimestamps(value: 0x4122_74EC, echoReply: 4242)), []),
        ("kernel data", Captured.tcpData, TCPHeader(
            sourcePort: 0xAF22, destinationPort: 7777, sequenceNumber: SequenceNumber(0x980A_C8CC),
            acknowledgmentNumber: SequenceNumber(1_000_001), flags: [.psh, .ack], window: 64,
            timestamps: TCPTimestamps(value: 0x4122_751E, echoReply: 4242)),
         Array("hello ".utf8) + [0xC0, 0xDB] + Array(" slip".utf8)),
        ("kernel SACK", Captured.tcpSACK, TCPHeader(
            sourcePort: 0xAF22, destinationPort: 7777, sequenceNumber: SequenceNumber(0x980A_C8D9),
            acknowledgmentNumber: SequenceNumber(1_000_001), flags: .ack, window: 64,
            timestamps: TCPTimestamps(value: 0x4122_751F, echoReply: 4242),
            sackBlocks: sack((1_000_101, 1_000_151))), []),
        ("kernel RST", Captured.tcpRST, TCPHeader(
            sourcePort: 9, destinationPort: 5555, sequenceNumber: SequenceNumber(0),
            acknowledgmentNumber: SequenceNumber(778), flags: [.rst, .ack], window: 0), []),
        ("kernel SYN without timestamps", Captured.tcpSYNNoTimestamps, TCPHeader(
            sourcePort: 0xE1F8, destinationPort: 7778, sequenceNumber: SequenceNumber(0x4430_8D20),
            flags: .syn, window: 0xFF70, maximumSegmentSize: 536, windowScale: 10, sackPermitted: true), []),
    ]

    @Test("captured segments parse to the fields read off the wire", arguments: captured)
    func parse(name: String, packet: [UInt8], header: TCPHeader, payload: [UInt8]) throws {
        try packet.withUnsafeBytes { bytes in
            let ip = try IPv4Packet(checking: bytes)
            let tcp = try TCPPacket(checking: ip.payload)
            let parsed = try TCPHeader(parsing: tcp, source: ip.source, destination: ip.destination)
            #expect(parsed == header, "\(name)")
            #expect(Array(tcp.payload) == payload)
            #expect(tcp.headerLength == header.headerLength)
            #expect(tcp.reservedBits == 0)
        }
    }

    @Test("emitting IPv4 + TCP from the fields reproduces the captured packet byte for byte", arguments: captured)
    func emit(name: String, packet: [UInt8], header: TCPHeader, payload: [UInt8]) throws {
        let ip = try withIPv4(packet) { try IPv4Header(parsing: $0) }
        let (length, out) = try withScratch(count: packet.count + 8) { buffer in
            let headerLength = try ip.emit(into: buffer)
            let tcpLength = try payload.withUnsafeBytes { payload in
                try header.emit(into: UnsafeMutableRawBufferPointer(rebasing: buffer[headerLength...]), payload: payload,
                                source: ip.source, destination: ip.destination)
            }
            return headerLength + tcpLength
        }
        #expect(length == packet.count)
        #expect(hexString(out[0..<length]) == hexString(packet), "\(name)")
    }

    @Test("emit with the payload already in place gives the same bytes")
    func emitInPlace() throws {
        var buffer = segment(of: Captured.tcpData)
        let expected = buffer
        buffer.replaceSubrange(0..<32, with: [UInt8](repeating: 0, count: 32))
        let header = Self.captured[3].header
        let n = try buffer.withUnsafeMutableBytes {
            try header.emit(into: $0, payloadLength: 13, source: Captured.host, destination: Captured.peer)
        }
        #expect(n == 45)
        #expect(buffer == expected)
    }

    @Test("view accessors of the captured data segment")
    func accessors() throws {
        try segment(of: Captured.tcpData).withUnsafeBytes { bytes in
            let tcp = try TCPPacket(checking: bytes)
            #expect(tcp.sourcePort == 44834)
            #expect(tcp.destinationPort == 7777)
            #expect(tcp.sequenceNumber == SequenceNumber(0x980A_C8CC))
            #expect(tcp.acknowledgmentNumber == SequenceNumber(1_000_001))
            #expect(tcp.headerLength == 32)
            #expect(tcp.flags == [.psh, .ack])
            #expect(tcp.window == 64)
            #expect(tcp.checksum == 0x292B)
            #expect(tcp.urgentPointer == 0)
            #expect(tcp.options.count == 12)
            #expect(tcp.payload.count == 13)
            #expect(tcp.segmentLength == 13)
            #expect(tcp.isChecksumValid(source: Captured.host, destination: Captured.peer))
            #expect(tcp.isChecksumValid(source: Captured.peer, destination: Captured.host),
                    "the pseudo-header sum does not depend on the order of the two addresses")
            #expect(!tcp.isChecksumValid(source: Captured.host, destination: IPv4Address(10, 9, 0, 9)))
        }
        try segment(of: Captured.tcpSYN).withUnsafeBytes { bytes in
            let syn = try TCPPacket(checking: bytes)
            #expect(syn.segmentLength == 1, "SYN occupies one sequence number")
        }
    }

    @Test("the kernel SYN's options, one by one")
    func optionReader() {
        let (options, error) = readOptions(hex("020402180402080a412274ec000000000103030a"))
        #expect(error == nil)
        #expect(options == [
            .maximumSegmentSize(536), .sackPermitted,
            .timestamps(TCPTimestamps(value: 0x4122_74EC, echoReply: 0)), .noOperation, .windowScale(10),
        ])
    }

    /// Option areas and what a reader makes of them (RFC 9293 §3.1 and §3.2: kinds 0 and 1 are
    /// single bytes; every other option has a length byte counting kind and length).
    static let optionCases: [(name: String, bytes: [UInt8], options: [TCPOption], error: WireError?)] = [
        ("empty", [], [], nil),
        ("NOPs", hex("01010101"), [.noOperation, .noOperation, .noOperation, .noOperation], nil),
        ("EOL stops reading", hex("0002040218"), [.endOfList], nil),
        ("unknown kind skipped by length", hex("fe06aabbccdd01"), [.unknown(kind: 254, length: 6), .noOperation], nil),
        ("SACK with four blocks", hex("0101 0522") + [UInt8](repeating: 0, count: 32), [.noOperation, .noOperation,
            .sack(sack((0, 0), (0, 0), (0, 0), (0, 0)))], nil),
        ("window scale 15 passed through", hex("030310"), [.windowScale(16)], nil),
        ("kind with no length byte", hex("0102"), [.noOperation], .malformedOption),
        ("length 0", hex("0200"), [], .malformedOption),
        ("length 1", hex("fe01"), [], .malformedOption),
        ("length past the end", hex("fe07aabbccdd"), [], .malformedOption),
        ("MSS length 5", hex("0205021800"), [], .malformedOption),
        ("MSS length 3", hex("020302"), [], .malformedOption),
        ("window scale length 4", hex("03040a00"), [], .malformedOption),
        ("SACK-permitted length 3", hex("040300"), [], .malformedOption),
        ("SACK with no block", hex("0502"), [], .malformedOption),
        ("SACK length 11", hex("050b") + [UInt8](repeating: 0, count: 9), [], .malformedOption),
        ("timestamps length 9", hex("0809") + [UInt8](repeating: 0, count: 7), [], .malformedOption),
        ("good option then garbage", hex("02040218ff"), [.maximumSegmentSize(536)], .malformedOption),
    ]

    @Test("option areas: known kinds, unknown kinds, and malformed lengths", arguments: optionCases)
    func optionAreas(name: String, bytes: [UInt8], options: [TCPOption], error: WireError?) {
        let (read, thrown) = readOptions(bytes)
        #expect(read == options, "\(name)")
        #expect(thrown == error, "\(name)")
    }

    @Test("a malformed option makes the whole header unparsable")
    func malformedOptionInHeader() throws {
        // The kernel SYN with its MSS length byte changed from 4 to 0; the TCP checksum does not
        // matter here because verification is off.
        var bytes = segment(of: Captured.tcpSYN)
        bytes[21] = 0
        let error = wireError { try bytes.withUnsafeBytes { raw in
            try TCPHeader(parsing: TCPPacket(checking: raw), source: Captured.host, destination: Captured.peer,
                          verifyingChecksum: false)
        } }
        #expect(error == .malformedOption)
    }

    @Test("header structure errors")
    func structureErrors() {
        func check(_ bytes: [UInt8]) -> WireError? {
            wireError { try bytes.withUnsafeBytes { try TCPPacket(checking: $0) } }
        }
        let syn = segment(of: Captured.tcpSYN)
        #expect(check([]) == .truncated)
        #expect(check(Array(syn[0..<19])) == .truncated)
        #expect(check(Array(syn[0..<39])) == .truncated, "data offset 10 needs 40 bytes")
        var offset4 = syn
        offset4[12] = 0x40
        #expect(check(offset4) == .badHeaderLength)
        var offset0 = syn
        offset0[12] = 0x00
        #expect(check(offset0) == .badHeaderLength)
        var offset15 = syn
        offset15[12] = 0xF0
        #expect(check(offset15) == .truncated)
        #expect(check(Array(syn[0..<40])) == nil)
    }

    @Test("a wrong checksum is refused unless verification is off; every single bit flip is caught")
    func badChecksum() throws {
        var bytes = segment(of: Captured.tcpData)
        bytes[16] ^= 0xFF
        #expect(wireError { try parseTCP(hex("4500004154ca40004006d1d80a0900010a090002") + bytes) } == .badChecksum)
        #expect(try parseTCP(hex("4500004154ca40004006d1d80a0900010a090002") + bytes, verifyingChecksum: false).window == 64)
        for bit in 0..<(Captured.tcpData.count - 20) * 8 {
            var flipped = segment(of: Captured.tcpData)
            flipped[bit / 8] ^= 1 << (bit % 8)
            let valid = flipped.withUnsafeBytes { raw in
                (try? TCPPacket(checking: raw))?.isChecksumValid(source: Captured.host, destination: Captured.peer) ?? false
            }
            #expect(!valid, "bit \(bit)")
        }
    }

    @Test("header lengths of the emitted layouts")
    func headerLengths() {
        var header = TCPHeader(sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(0), flags: .syn, window: 0)
        #expect(header.headerLength == 20)
        header.maximumSegmentSize = 966
        #expect(header.headerLength == 24)
        header.sackPermitted = true
        #expect(header.headerLength == 28)
        header.timestamps = TCPTimestamps(value: 1, echoReply: 0)
        #expect(header.headerLength == 36)
        header.windowScale = 0
        #expect(header.headerLength == 40)
        header.sackBlocks = sack((1, 2), (3, 4))
        #expect(header.headerLength == 60)
        header.sackBlocks.append(TCPSACKBlock(left: SequenceNumber(5), right: SequenceNumber(6)))
        #expect(header.headerLength > 60)
    }

    /// Window scale + timestamps + three SACK blocks: 4 + 12 + 28 = 44 bytes aligned, too many,
    /// so the options are packed: TS (10) WS (3) SACK (26) and one zero byte of padding = 40.
    @Test("options that do not fit aligned are packed and still parse back")
    func packedLayout() throws {
        let header = TCPHeader(
            sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(3), acknowledgmentNumber: SequenceNumber(4),
            flags: .ack, window: 5, windowScale: 7, timestamps: TCPTimestamps(value: 1, echoReply: 2),
            sackBlocks: sack((0x10, 0x20), (0x30, 0x40), (0x50, 0x60)))
        #expect(header.headerLength == 60)
        let (n, out) = try withScratch(count: 60) {
            try header.emit(into: $0, payloadLength: 0, source: Captured.host, destination: Captured.peer)
        }
        #expect(n == 60)
        #expect(hexString(out[20..<60]) == hexString(hex("""
            080a0000000100000002 030307 051a000000100000002000000030000000400000005000000060 00
            """)))
        let parsed = try out.withUnsafeBytes {
            try TCPHeader(parsing: TCPPacket(checking: $0), source: Captured.host, destination: Captured.peer)
        }
        #expect(parsed == header)
    }

    @Test("emit refuses what it cannot encode, and writes nothing")
    func emitRefuses() {
        var everything = TCPHeader(
            sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(3), flags: .syn, window: 5,
            maximumSegmentSize: 1, windowScale: 1, sackPermitted: true, timestamps: TCPTimestamps(value: 1, echoReply: 2))
        everything.sackBlocks = sack((1, 2), (3, 4), (5, 6), (7, 8))
        var out = [UInt8](repeating: 0xEE, count: 100)
        func attempt(_ header: TCPHeader, payloadLength: Int, count: Int = 100) -> WireError? {
            wireError { try out.withUnsafeMutableBytes {
                try header.emit(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), payloadLength: payloadLength,
                                source: .any, destination: .any)
            } }
        }
        #expect(attempt(everything, payloadLength: 0) == .optionsTooLong)
        let plain = TCPHeader(sourcePort: 1, destinationPort: 2, sequenceNumber: SequenceNumber(3), flags: .ack, window: 5)
        #expect(attempt(plain, payloadLength: -1) == .fieldOutOfRange)
        #expect(attempt(plain, payloadLength: 65516) == .fieldOutOfRange)
        #expect(attempt(plain, payloadLength: 10, count: 29) == .bufferTooSmall)
        #expect(out.allSatisfy { $0 == 0xEE })
        #expect(attempt(plain, payloadLength: 10, count: 30) == nil)
    }

    @Test("SACK block storage holds four blocks")
    func sackBlocks() {
        var blocks = TCPSACKBlocks()
        #expect(blocks.isEmpty)
        for i in 0..<4 {
            let added = blocks.append(TCPSACKBlock(left: SequenceNumber(UInt32(i)), right: SequenceNumber(UInt32(i + 1))))
            #expect(added)
        }
        let fifth = blocks.append(TCPSACKBlock(left: SequenceNumber(9), right: SequenceNumber(9)))
        #expect(!fifth)
        #expect(blocks.count == 4)
        #expect(blocks.map(\.left.rawValue) == [0, 1, 2, 3])
        #expect(blocks[3].right == SequenceNumber(4))
        blocks.removeAll()
        #expect(blocks == TCPSACKBlocks())
    }
}

@Suite("Sequence numbers")
struct SequenceNumberTests {
    /// (a, b, a < b, b < a), modulo 2^32 (RFC 1982 with SERIAL_BITS 32).
    static let comparisons: [(UInt32, UInt32, Bool, Bool)] = [
        (0, 1, true, false),
        (5, 5, false, false),
        (0xFFFF_FFFF, 0, true, false),
        (0xFFFF_FFF0, 0x10, true, false),
        (0, 0x7FFF_FFFF, true, false),
        (0, 0x8000_0000, false, false),  // exactly 2^31 apart: not comparable
        (0x8000_0000, 0, false, false),
        (0, 0x8000_0001, false, true),
        (1_000_000, 999_999, false, true),
    ]

    @Test("comparison is modulo 2^32", arguments: comparisons)
    func compare(a: UInt32, b: UInt32, aBeforeB: Bool, bBeforeA: Bool) {
        let x = SequenceNumber(a)
        let y = SequenceNumber(b)
        #expect((x < y) == aBeforeB)
        #expect((y < x) == bBeforeA)
        #expect((y > x) == aBeforeB)
        #expect((x <= y) == (aBeforeB || a == b))
        #expect((x >= y) == (bBeforeA || a == b))
    }

    @Test("arithmetic wraps")
    func arithmetic() {
        #expect(SequenceNumber(0xFFFF_FFFF) + 2 == SequenceNumber(1))
        #expect(SequenceNumber(1) - 2 == SequenceNumber(0xFFFF_FFFF))
        #expect(SequenceNumber(0).advanced(by: -1) == SequenceNumber(0xFFFF_FFFF))
        #expect(SequenceNumber(0xFFFF_FFFF).advanced(by: 1) == SequenceNumber(0))
        var s = SequenceNumber(0xFFFF_FFFE)
        s += 3
        #expect(s == SequenceNumber(1))
        s -= 2
        #expect(s == SequenceNumber(0xFFFF_FFFF))
        #expect(SequenceNumber(0xFFFF_FFFF).distance(to: SequenceNumber(1)) == 2)
        #expect(SequenceNumber(1).distance(to: SequenceNumber(0xFFFF_FFFF)) == -2)
        #expect(SequenceNumber(0).distance(to: SequenceNumber(0x8000_0000)) == Int32.min)
        #expect(SequenceNumber(0x980A_C8CC).description == "2550843596")
    }

    @Test("window membership across the wrap")
    func window() {
        let start = SequenceNumber(0xFFFF_FFF0)
        #expect(start.isInWindow(start: start, size: 0x20))
        #expect(SequenceNumber(0x0F).isInWindow(start: start, size: 0x20))
        #expect(!SequenceNumber(0x10).isInWindow(start: start, size: 0x20))
        #expect(!SequenceNumber(0xFFFF_FFEF).isInWindow(start: start, size: 0x20))
        #expect(!start.isInWindow(start: start, size: 0))
    }
}
