import Testing
import GenTCPWire

@Suite("ICMP echo")
struct ICMPEchoTests {
    @Test("the script's request and the kernel's reply parse")
    func parse() throws {
        let request = try withIPv4(Captured.icmpEchoRequestPython) { ip in
            let icmp = try ICMPv4Packet(checking: ip.payload)
            #expect(icmp.type == .echoRequest && icmp.code == 0)
            #expect(icmp.checksum == 0xBEA9)
            #expect(icmp.restOfHeader == 0x4242_0001)
            #expect(Array(icmp.payload) == Captured.echoData)
            return try ICMPv4Echo(parsing: icmp)
        }
        #expect(request == ICMPv4Echo(isReply: false, identifier: 0x4242, sequenceNumber: 1))
        let reply = try withIPv4(Captured.icmpEchoReply) { try ICMPv4Echo(parsing: ICMPv4Packet(checking: $0.payload)) }
        #expect(reply == request.reply)
    }

    @Test("a reply built in the request's own buffer equals the kernel's reply")
    func replyInPlace() throws {
        var message = Array(Captured.icmpEchoRequestPython[20...])
        let n = try message.withUnsafeMutableBytes { buffer in
            let request = try ICMPv4Echo(parsing: ICMPv4Packet(checking: UnsafeRawBufferPointer(buffer)))
            let data = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[8...])
            return try request.reply.emit(into: buffer, data: data)
        }
        #expect(n == 64)
        #expect(hexString(message) == hexString(Captured.icmpEchoReply[20...]))
    }

    @Test("a request emitted from its fields equals the script's request")
    func emitRequest() throws {
        let echo = ICMPv4Echo(isReply: false, identifier: 0x4242, sequenceNumber: 1)
        let (n, out) = try withScratch(count: 64) { buffer in
            try Captured.echoData.withUnsafeBytes { try echo.emit(into: buffer, data: $0) }
        }
        #expect(n == 64)
        #expect(hexString(out) == hexString(Captured.icmpEchoRequestPython[20...]))
    }

    @Test("errors: short, not an echo, nonzero code, bad checksum, no room")
    func errors() {
        let reply = Array(Captured.icmpEchoReply[20...])
        #expect(wireError { try reply[0..<7].withUnsafeBytes { try ICMPv4Packet(checking: $0) } } == .truncated)
        var unreachable = reply
        unreachable[0] = 3
        #expect(wireError { try unreachable.withUnsafeBytes { try ICMPv4Echo(parsing: ICMPv4Packet(checking: $0)) } } == .unsupported)
        var coded = reply
        coded[1] = 1
        #expect(wireError { try coded.withUnsafeBytes { try ICMPv4Echo(parsing: ICMPv4Packet(checking: $0)) } } == .unsupported)
        var corrupted = reply
        corrupted[30] ^= 0x01
        #expect(wireError { try corrupted.withUnsafeBytes { try ICMPv4Echo(parsing: ICMPv4Packet(checking: $0)) } } == .badChecksum)
        let unchecked = corrupted.withUnsafeBytes { try? ICMPv4Echo(parsing: ICMPv4Packet(checking: $0), verifyingChecksum: false) }
        #expect(unchecked?.identifier == 0x4242)
        let echo = ICMPv4Echo(isReply: true, identifier: 1, sequenceNumber: 2)
        #expect(wireError { try withScratch(count: 11) { try echo.emit(into: $0, dataLength: 4) } } == .bufferTooSmall)
        #expect(wireError { try withScratch(count: 8) { try echo.emit(into: $0, dataLength: -1) } } == .fieldOutOfRange)
        #expect(wireError { try withScratch(count: 8) { try echo.emit(into: $0, dataLength: 65508) } } == .fieldOutOfRange)
    }
}

@Suite("UDP")
struct UDPTests {
    @Test("the kernel's datagram parses and its checksum verifies")
    func parse() throws {
        try withIPv4(Captured.udp) { ip in
            let udp = try UDPPacket(checking: ip.payload)
            #expect(udp.sourcePort == 46234 && udp.destinationPort == 9)
            #expect(udp.length == 21)
            #expect(udp.checksum == 0x7FC1)
            #expect(Array(udp.payload) == Array("udp over slip".utf8))
            let header = try UDPHeader(parsing: udp, source: ip.source, destination: ip.destination)
            #expect(header == UDPHeader(sourcePort: 46234, destinationPort: 9))
            #expect(!udp.isChecksumValid(source: ip.source, destination: IPv4Address(1, 2, 3, 4)))
        }
    }

    @Test("emitting IPv4 + UDP from the fields reproduces the kernel's datagram")
    func emit() throws {
        let ip = try withIPv4(Captured.udp) { try IPv4Header(parsing: $0) }
        let payload = Array("udp over slip".utf8)
        let (n, out) = try withScratch(count: 41) { buffer in
            try ip.emit(into: buffer)
            let udp = UnsafeMutableRawBufferPointer(rebasing: buffer[20...])
            payload.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: udp[8...]).copyMemory(from: $0) }
            return try UDPHeader(sourcePort: 46234, destinationPort: 9)
                .emit(into: udp, payloadLength: payload.count, source: ip.source, destination: ip.destination)
        }
        #expect(n == 21)
        #expect(hexString(out) == hexString(Captured.udp))
    }

    @Test("a zero checksum means none; a computed zero goes out as 0xffff")
    func zeroChecksum() throws {
        var datagram = Array(Captured.udp[20...])
        datagram[6] = 0
        datagram[7] = 0
        try datagram.withUnsafeBytes { bytes in
            let udp = try UDPPacket(checking: bytes)
            #expect(udp.isChecksumValid(source: .any, destination: .any))
        }
        // Find a 2-byte payload whose checksum computes to 0, by the RFC 1071 identity: the
        // complement of the sum without it.
        let header = UDPHeader(sourcePort: 1, destinationPort: 2)
        var probe = InternetChecksum.ipv4PseudoHeader(source: .any, destination: .any, protocol: .udp, length: 10)
        probe.add(UInt32(0x0001_0002))
        probe.add(UInt16(10))
        let filler = ~probe.sum
        let (_, out) = try withScratch(count: 10) { buffer in
            buffer[8] = UInt8(filler >> 8)
            buffer[9] = UInt8(filler & 0xFF)
            return try header.emit(into: buffer, payloadLength: 2, source: .any, destination: .any)
        }
        #expect(out[6] == 0xFF && out[7] == 0xFF)
        let valid = try out.withUnsafeBytes { try UDPPacket(checking: $0).isChecksumValid(source: .any, destination: .any) }
        #expect(valid)
    }

    @Test("length errors")
    func errors() {
        let datagram = Array(Captured.udp[20...])
        func check(_ bytes: [UInt8]) -> WireError? { wireError { try bytes.withUnsafeBytes { try UDPPacket(checking: $0) } } }
        #expect(check(Array(datagram[0..<7])) == .truncated)
        var short = datagram
        short[5] = 7
        #expect(check(short) == .lengthMismatch)
        var long = datagram
        long[5] = 22
        #expect(check(long) == .lengthMismatch)
        #expect(check(datagram + [0]) == nil)
        let header = UDPHeader(sourcePort: 1, destinationPort: 2)
        #expect(wireError { try withScratch(count: 9) { try header.emit(into: $0, payloadLength: 2, source: .any, destination: .any) } } == .bufferTooSmall)
        #expect(wireError { try withScratch(count: 9) { try header.emit(into: $0, payloadLength: 65528, source: .any, destination: .any) } } == .fieldOutOfRange)
    }
}

@Suite("pcap")
struct PcapTests {
    /// The file header for LINKTYPE_RAW, little-endian, per the pcap savefile format: magic
    /// a1b2c3d4, version 2.4, thiszone 0, sigfigs 0, snaplen 65535, network 101. A file made of
    /// these bytes is identified by file(1) as "pcap capture file, microsecond ts (little-endian)
    /// - version 2.4 (Raw IP, capture length 65535)".
    static let fileHeader = hex("d4c3b2a1 0200 0400 00000000 00000000 ffff0000 65000000")

    @Test("file header")
    func fileHeaderBytes() throws {
        let (n, out) = try withScratch(count: 24) { try Pcap.writeFileHeader(into: $0) }
        #expect(n == 24)
        #expect(out == Self.fileHeader)
        #expect(wireError { try withScratch(count: 23) { try Pcap.writeFileHeader(into: $0) } } == .bufferTooSmall)
    }

    @Test("record: 1 700 000 000.123456 s is seconds 0x6553f100 and 123456 µs, then the lengths and the packet")
    func record() throws {
        let (n, out) = try withScratch(count: 16 + 40) { buffer in
            try Captured.tcpRST.withUnsafeBytes { try Pcap.writeRecord(into: buffer, packet: $0, timestamp: 1_700_000_000_123_456) }
        }
        #expect(n == 56)
        #expect(hexString(out[0..<16]) == "00f1536540e2010028000000" + "28000000")
        #expect(Array(out[16...]) == Captured.tcpRST)
    }

    @Test("a snapshot length cuts the packet but keeps its original length")
    func snapshot() throws {
        let (n, out) = try withScratch(count: 30) { buffer in
            try Captured.tcpRST.withUnsafeBytes { try Pcap.writeRecord(into: buffer, packet: $0, timestamp: 0, snapshotLength: 10) }
        }
        #expect(n == 26)
        #expect(hexString(out[0..<16]) == "00000000000000000a000000" + "28000000")
        #expect(Array(out[16..<26]) == Array(Captured.tcpRST[0..<10]))
        #expect(wireError { try withScratch(count: 25) { buffer in
            try Captured.tcpRST.withUnsafeBytes { try Pcap.writeRecord(into: buffer, packet: $0, timestamp: 0, snapshotLength: 10) }
        } } == .bufferTooSmall)
    }
}
