import Testing
import GenTCPWire

@Suite("Internet checksum")
struct InternetChecksumTests {
    /// RFC 1071 §3 "Numerical Examples": the one's complement sum of 00 01 f2 03 f4 f5 f6 f7 is
    /// 0xddf2 (2ddf0 with the carry folded in), so the checksum is 0x220d.
    static let rfc1071 = hex("0001f203f4f5f6f7")

    @Test("RFC 1071 numerical example")
    func rfc1071Example() {
        var sum = InternetChecksum()
        Self.rfc1071.withUnsafeBytes { sum.add($0) }
        #expect(sum.sum == 0xDDF2)
        #expect(sum.checksum == 0x220D)
    }

    @Test("added in two pieces split anywhere (odd splits too), the sum is the same", arguments: 0...8)
    func incrementalSplit(split: Int) {
        var sum = InternetChecksum()
        Self.rfc1071[0..<split].withUnsafeBytes { sum.add($0) }
        Self.rfc1071[split...].withUnsafeBytes { sum.add($0) }
        #expect(sum.checksum == 0x220D)
    }

    @Test("byte by byte, and as 16- and 32-bit words, the sum is the same")
    func wordsAndBytes() {
        var bytewise = InternetChecksum()
        for byte in Self.rfc1071 { [byte].withUnsafeBytes { bytewise.add($0) } }
        #expect(bytewise.checksum == 0x220D)
        var words = InternetChecksum()
        words.add(UInt16(0x0001))
        words.add(UInt32(0xF203_F4F5))
        words.add(UInt16(0xF6F7))
        #expect(words.checksum == 0x220D)
        // A word added at an odd offset continues the byte stream: 00 | 01 f2 | 03 f4 f5 f6 f7.
        var odd = InternetChecksum()
        [UInt8(0x00)].withUnsafeBytes { odd.add($0) }
        odd.add(UInt16(0x01F2))
        hex("03f4f5f6f7").withUnsafeBytes { odd.add($0) }
        #expect(odd.checksum == 0x220D)
    }

    @Test("an odd last byte is padded with zero: 00 01 f2 03 f4 f5 f6 sums to 0xdcfb")
    func oddLength() {
        // 0x0001 + 0xf203 + 0xf4f5 + 0xf600 = 0x2dcf9 → 0xdcfb; checksum 0x2304 (checked in Python).
        var sum = InternetChecksum()
        Self.rfc1071[0..<7].withUnsafeBytes { sum.add($0) }
        #expect(sum.sum == 0xDCFB)
        #expect(sum.checksum == 0x2304)
    }

    @Test("sums of nothing and of zeros are +0; a correct checksum makes the total 0xffff")
    func zeroAndVerify() {
        #expect(InternetChecksum().sum == 0)
        var zeros = InternetChecksum()
        [UInt8](repeating: 0, count: 9).withUnsafeBytes { zeros.add($0) }
        #expect(zeros.sum == 0)
        #expect(!zeros.verifies)
        var whole = InternetChecksum()
        (Self.rfc1071 + [0x22, 0x0D]).withUnsafeBytes { whole.add($0) }
        #expect(whole.verifies)
    }

    @Test("the IPv4 header checksum of every captured packet verifies",
          arguments: [Captured.tcpSYN, Captured.tcpRST, Captured.udp, Captured.icmpEchoReply, Captured.udpWithIPOptions])
    func capturedHeaders(packet: [UInt8]) {
        let headerLength = Int(packet[0] & 0x0F) * 4
        var sum = InternetChecksum()
        packet[0..<headerLength].withUnsafeBytes { sum.add($0) }
        #expect(sum.verifies)
    }

    @Test("pseudo-header + segment of the captured SYN verifies; any other address does not")
    func pseudoHeader() {
        let segment = Array(Captured.tcpSYN[20...])
        var sum = InternetChecksum.ipv4PseudoHeader(
            source: Captured.host, destination: Captured.peer, protocol: .tcp, length: UInt16(segment.count))
        segment.withUnsafeBytes { sum.add($0) }
        #expect(sum.verifies)
        var wrong = InternetChecksum.ipv4PseudoHeader(
            source: Captured.host, destination: IPv4Address(10, 9, 0, 3), protocol: .tcp, length: UInt16(segment.count))
        segment.withUnsafeBytes { wrong.add($0) }
        #expect(!wrong.verifies)
    }

    /// RFC 1624 §4: other header octets sum to 0xCD7A, a field changes from 0x5555 to 0x3285.
    /// HC = ~(0xCD7A + 0x5555) = 0xDD2F; recomputed, HC' = ~(0xCD7A + 0x3285) = 0x0000, which
    /// equation 3 reproduces (equation 2 of RFC 1141 would give 0xFFFF).
    @Test("RFC 1624 incremental update example")
    func rfc1624() {
        #expect(InternetChecksum.updating(0xDD2F, replacing: 0x5555, with: 0x3285) == 0x0000)
        #expect(InternetChecksum.updating(0x0000, replacing: 0x3285, with: 0x5555) == 0xDD2F)
        #expect(InternetChecksum.updating(0x0000, replacing: 0x5555, with: 0x5555) == 0x0000)
    }

    @Test("an incremental TTL decrement matches a full recomputation on the captured SYN")
    func ttlDecrement() {
        var header = Array(Captured.tcpSYN[0..<20])
        let old = UInt16(header[8]) << 8 | UInt16(header[9])
        header[8] -= 1
        let new = UInt16(header[8]) << 8 | UInt16(header[9])
        let updated = InternetChecksum.updating(0xD1DF, replacing: old, with: new)
        header[10] = 0
        header[11] = 0
        var full = InternetChecksum()
        header.withUnsafeBytes { full.add($0) }
        #expect(updated == full.checksum)
        #expect(updated == 0xD2DF)
    }
}
